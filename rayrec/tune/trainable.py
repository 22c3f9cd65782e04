"""One Tune trial = one full rayrec training run, and how many trials fit on the cluster.

The trial is a Tune *function* trainable (the driver-function pattern Ray documents since
``Tuner(trainer)`` was deprecated in 2.43): it applies the trial's sampled values to the
sweep's base config, names the run after the trial id, and calls
:func:`rayrec.train.trainer.fit`, whose ``TorchTrainer`` forwards every epoch's report to
Tune through ``TuneReportCallback``. Tune's scheduler (ASHA) sees ``val_*`` after every epoch
(``training_iteration`` = epochs run) and stops a trial by stopping its actor, which takes
the Train controller and workers it owns with it.

Runs live in ``<sweep>/runs/<trial id>``: a trial restarted by ``Tuner.restore`` (a resumed
sweep) continues its training run from the run's latest checkpoint.

Resources (sized so that trials never wait on each other): a trial's placement group holds
its driver (a little memory, no CPU: it only waits on its run) and one CPU for the Ray Data
tasks the trial runs itself (the workers read their training data without Ray Data; a trial
builds a review-state store when the sweep varies what its states depend on), which are
pointed at that group (:func:`pin_data_to_trial`) and sized to it; the run's workers take
``num_workers * cpus_per_worker`` CPUs in Ray Train's own placement group. Without the
pinning, Ray Data shares the cluster's unreserved CPUs among all live executions, and
concurrent trials on a small machine can each be left with less than the one CPU a task
needs (they then wait forever). :func:`max_concurrent_trials` caps the
trials running at once so that all of them fit together.
"""

from __future__ import annotations

import copy
from typing import Any

import ray
import ray.data
from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from rayrec.data import storage
from rayrec.errors import CliError
from rayrec.train.config import TrainConfig
from rayrec.train.trainer import fit, run_cpus
from rayrec.tune.space import apply_values

DRIVER_MEMORY = 256 * 1024**2  # the trial driver's bundle (Tune refuses an empty one)
DATA_CPUS = 1.0  # the Ray Data tasks a trial runs itself (a store the sweep could not share)
TRIAL_WORKER_CPUS = 1.0  # a trial worker's CPUs when run.cpus_per_worker is unset
TRIAL_RESOURCES = tune.PlacementGroupFactory([{"memory": DRIVER_MEMORY}, {"CPU": DATA_CPUS}])


def trial_config(
    base: dict[str, Any],
    values: dict[str, Any],
    *,
    runs: str,
    name: str,
    states: str | None = None,
) -> TrainConfig:
    """The run config of a trial: ``base`` with the sampled ``values``, run ``name`` under
    ``runs``, reading precomputed review ``states`` if given."""
    tree = apply_values(copy.deepcopy(base), values)
    tree = apply_values(tree, {"run.name": name, "run.storage": runs})
    if states is not None:
        tree = apply_values(tree, {"model.params.review_states": states})
    return with_trial_worker_cpus(TrainConfig.model_validate(tree))


def with_trial_worker_cpus(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with ``run.cpus_per_worker`` as given, or :data:`TRIAL_WORKER_CPUS` if unset:
    trials run side by side, so a trial's workers do not take the whole cluster's share as
    a lone run's do (:func:`rayrec.train.trainer.with_worker_cpus`)."""
    if cfg.run.cpus_per_worker is not None:
        return cfg
    run = cfg.run.model_copy(update={"cpus_per_worker": TRIAL_WORKER_CPUS})
    return cfg.model_copy(update={"run": run})


def run_trial(
    config: dict[str, Any],
    *,
    base: dict[str, Any],
    data_uri: str,
    runs: str,
    states: str | None = None,
) -> None:
    """Tune entry point: fit the trial's run; Tune receives its reports via the callback."""
    name = tune.get_context().get_trial_id()
    cfg = trial_config(base, config, runs=runs, name=name, states=states)
    pin_data_to_trial()
    fit(cfg, data_uri, callbacks=[TuneReportCallback()])


def pin_data_to_trial() -> None:
    """Run this process's Ray Data tasks in the trial's placement group (its data CPU)."""
    group = ray.util.get_current_placement_group()
    if group is None:
        return
    strategy = PlacementGroupSchedulingStrategy(group, placement_group_capture_child_tasks=True)
    context = ray.data.DataContext.get_current()
    context.scheduling_strategy = strategy
    context.scheduling_strategy_large_args = strategy


def max_concurrent_trials(cfg: TrainConfig, requested: int | None) -> int:
    """How many trials of ``cfg`` may run at once on the current cluster."""
    return trials_that_fit(float(ray.cluster_resources().get("CPU", 0)), cfg, requested)


def trials_that_fit(total_cpus: float, cfg: TrainConfig, requested: int | None) -> int:
    """How many trials run at once on ``total_cpus``: all running trials' workers and data
    CPUs fit together (each trial's workers as :func:`trial_config` sizes them);
    ``requested`` (``--max-concurrent``) can only lower it."""
    workers = run_cpus(with_trial_worker_cpus(cfg))
    fits = int(total_cpus // (workers + DATA_CPUS))
    if fits < 1:
        raise CliError(
            f"a trial needs {workers:g} CPUs for its workers plus {DATA_CPUS:g} for Ray "
            f"Data; the cluster has {total_cpus:g}: lower --num-workers or run.cpus_per_worker"
        )
    if requested is not None and requested < 1:
        raise CliError("--max-concurrent must be at least 1")
    return min(fits, requested) if requested else fits


def state_api_available() -> bool:
    """Whether Ray's state API (served by the dashboard) answers on the current cluster."""
    from ray.util.state import list_actors

    try:
        list_actors(limit=1, timeout=10, raise_on_missing_output=False)
    except Exception:  # noqa: BLE001 - any failure means Ray Train's cleaner cannot ask it
        return False
    return True


def check_stopped_trials_free_their_cpus(stops_early: bool, state_api: bool) -> str | None:
    """A trial stopped early (ASHA) kills its Train controller; Ray Train's placement-group
    cleaner then frees the run's worker CPUs only if the state API tells it the controller
    died. Without the state API: an error if the scheduler stops trials early (the sweep
    would stall once the leaked CPUs fill the cluster), else a warning to print."""
    if state_api:
        return None
    problem = (
        "Ray's state API does not answer (the cluster runs without its dashboard, or several "
        "Ray instances run on this machine): the CPUs of a trial stopped before its end are "
        "never freed"
    )
    if stops_early:
        raise CliError(
            f"{problem}, and ASHA stops trials early. Start Ray with its dashboard "
            "(`ray start --head --include-dashboard=true`) or pass --scheduler fifo"
        )
    return f"warning: {problem}"


def runs_root(sweep_dir: str) -> str:
    """Where the trials' training runs live."""
    return storage.join(sweep_dir, "runs")
