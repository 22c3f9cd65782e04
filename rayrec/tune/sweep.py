"""A sweep: ``Tuner`` over :func:`~rayrec.tune.trainable.run_trial`, its table, resume.

Layout of a sweep ``<storage>/<name>/`` (local or s3://):

* Tune's experiment state and one directory per trial (named by trial id);
* ``sweep.json``: what the sweep was started with (model, data, base config, swept keys,
  metric, scheduler, search), read back by ``--resume NAME``;
* ``runs/<trial id>/``: each trial's training run (checkpoints, ``results.json``);
* ``trials.csv``, ``trials.md``, ``best.yaml`` (:mod:`rayrec.tune.report`), ``report.md`` and
  ``curves.png`` (:mod:`rayrec.report.sweep_report`), rewritten at the end of every
  invocation, also after an interruption.

ASHA compares trials on the validation metric after each epoch (``training_iteration``),
with rungs at epochs 1, 2, 4, ... before the last epoch (``max_t`` = epochs - 1 and
``stop_last_trials=False``): a trial that survives them always completes its last epoch and
its test evaluation. An interrupted sweep (Ctrl-C, a stopped job) is continued by
``Tuner.restore``: finished trials are kept as they are, unfinished ones restart and their
training runs continue from their latest checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from rayrec.data import storage
from rayrec.errors import CliError
from rayrec.train.config import TrainConfig
from rayrec.tune import report
from rayrec.tune.encodings import cache_blocker, ensure_encodings
from rayrec.tune.space import SearchSpace
from rayrec.tune.trainable import (
    TRIAL_RESOURCES,
    check_stopped_trials_free_their_cpus,
    max_concurrent_trials,
    run_trial,
    runs_root,
    state_api_available,
)

SWEEP_FILE = "sweep.json"
AUTO = "auto"  # --resume auto: resume the sweep named --name if it exists, else start it


@dataclass
class SweepSpec:
    """Everything a sweep was started with (``sweep.json``)."""

    model: str
    data_uri: str
    base: dict[str, Any]  # the base TrainConfig as a tree (the fixed values applied)
    keys: list[str]  # swept dotted keys
    metric: str
    mode: str
    num_samples: int
    scheduler: str = "asha"
    search: str = "random"
    max_concurrent: int | None = None
    encodings: str | None = None  # the review-state store every trial reads (frozen encoder)
    encode_seconds: float | None = None  # time the store took to build (0: it existed)

    @property
    def epochs(self) -> int:
        return TrainConfig.model_validate(self.base).train.epochs


@dataclass(frozen=True)
class SweepResult:
    """A finished (or interrupted) sweep: its rows, best trial and output files."""

    directory: str
    rows: list[report.TrialRow]
    best: report.TrialRow | None
    table: str  # aligned, for the terminal
    files: dict[str, str]


def trial_dirname(trial: Trial) -> str:
    """Trial directories are named by trial id (the same id names its training run)."""
    return trial.trial_id


def scheduler_for(spec: SweepSpec) -> TrialScheduler:
    """ASHA on the validation metric, rungs before the last epoch; or FIFO."""
    if spec.scheduler == "fifo" or spec.epochs < 2:
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=spec.epochs - 1,
        grace_period=1,
        reduction_factor=2,
        stop_last_trials=False,
    )


def check_cluster(spec: SweepSpec) -> None:
    """Refuse (or warn about) a cluster where stopped trials would keep their CPUs."""
    stops_early = isinstance(scheduler_for(spec), ASHAScheduler)
    warning = check_stopped_trials_free_their_cpus(stops_early, state_api_available())
    if warning:
        print(warning, flush=True)


def search_for(spec: SweepSpec, space: SearchSpace) -> Any:
    """Random search (Tune's variant generator) or Optuna's TPE sampler."""
    if spec.search == "random":
        return None
    if space.has_grid:
        raise CliError("grid(...) needs --search random: Optuna samples, it does not enumerate")
    if not space.dimensions:
        raise CliError("--search optuna needs at least one distribution to search")
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(seed=TrainConfig.model_validate(spec.base).train.seed)


def trainable(spec: SweepSpec, directory: str) -> Any:
    """The trial function with the sweep's fixed arguments and resources bound."""
    bound = tune.with_parameters(
        run_trial,
        base=spec.base,
        data_uri=spec.data_uri,
        runs=runs_root(directory),
        states=spec.encodings,
    )
    return tune.with_resources(bound, TRIAL_RESOURCES)


def prepare_encodings(spec: SweepSpec, space: SearchSpace) -> str:
    """Attach the review-state store every trial reads, if the frozen-encoder path applies;
    a note."""
    cfg = TrainConfig.model_validate(spec.base)
    blocker = cache_blocker(cfg, space, spec.data_uri)
    if blocker is not None:
        return f"review states are encoded by every trial: {blocker}"
    spec.encodings, info = ensure_encodings(cfg, spec.data_uri)
    spec.encode_seconds = info["seconds"]
    how = f"built in {info['seconds']:.1f} s" if info["built"] else "found"
    return f"review states: one store for every trial ({how}): {spec.encodings}"


def start(
    spec: SweepSpec,
    space: SearchSpace,
    storage_root: str,
    name: str,
    callbacks: Sequence[tune.Callback] = (),
) -> SweepResult:
    """Run a new sweep ``<storage_root>/<name>``."""
    directory = storage.join(storage_root, name)
    if storage.exists(storage.join(directory, SWEEP_FILE)):
        raise CliError(f"sweep {name!r} exists under {storage_root}: pass --resume {name}")
    check_cluster(spec)
    concurrency = max_concurrent_trials(TrainConfig.model_validate(spec.base), spec.max_concurrent)
    print(prepare_encodings(spec, space), flush=True)
    storage.write_json(storage.join(directory, SWEEP_FILE), asdict(spec))
    tuner = tune.Tuner(
        trainable(spec, directory),
        param_space=space.param_space(),
        tune_config=tune.TuneConfig(
            metric=spec.metric,
            mode=spec.mode,
            search_alg=search_for(spec, space),
            scheduler=scheduler_for(spec),
            num_samples=spec.num_samples,
            max_concurrent_trials=concurrency,
            reuse_actors=False,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(name=name, storage_path=storage_root, callbacks=list(callbacks)),
    )
    return finish(spec, tuner.fit(), directory)


def load_spec(storage_root: str, name: str) -> SweepSpec:
    """The spec of the existing sweep ``<storage_root>/<name>``."""
    path = storage.join(storage_root, name, SWEEP_FILE)
    if not storage.exists(path):
        raise CliError(f"--resume {name}: no sweep {name!r} under {storage_root}")
    return SweepSpec(**storage.read_json(path))


def resume(storage_root: str, name: str) -> SweepResult:
    """Continue the interrupted sweep ``<storage_root>/<name>``: finished trials are kept,
    unfinished and errored ones run (again), pending samples are drawn."""
    spec = load_spec(storage_root, name)
    directory = storage.join(storage_root, name)
    if spec.encodings is not None and not storage.exists(spec.encodings):
        raise CliError(f"the sweep's review states {spec.encodings} are gone")
    check_cluster(spec)
    tuner = tune.Tuner.restore(
        directory,
        trainable=trainable(spec, directory),
        resume_unfinished=True,
        resume_errored=True,
    )
    return finish(spec, tuner.fit(), directory)


def finish(spec: SweepSpec, grid: tune.ResultGrid, directory: str) -> SweepResult:
    """Rows, table and files of a sweep after ``Tuner.fit`` returned."""
    runs = runs_root(directory)
    rows = report.trial_rows(grid, spec.keys, spec.metric, spec.mode, spec.epochs, runs)
    header, cells = report.table(rows, spec.keys, spec.metric)
    files = {
        "csv": storage.join(directory, report.CSV_FILE),
        "markdown": storage.join(directory, report.MARKDOWN_FILE),
    }
    report.write_text(files["csv"], report.csv_text(header, cells))
    report.write_text(files["markdown"], report.markdown(header, cells))
    best = report.best_row(rows, spec.mode)
    if best is not None:
        files["best"] = storage.join(directory, report.BEST_FILE)
        cfg = report.best_config(spec.base, best)
        report.write_text(files["best"], report.best_yaml(cfg, directory, best, spec.metric))
    from rayrec.report.sweep_report import write_sweep_report  # it imports this module

    files |= write_sweep_report(directory)  # report.md, curves.png
    return SweepResult(directory, rows, best, report.plain(header, cells), files)
