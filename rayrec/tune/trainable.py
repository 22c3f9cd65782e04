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

Resources: the trial function itself reserves 0.01 CPU (it only waits on its run); the run's
workers reserve ``num_workers * cpus_per_worker`` CPUs through their own placement group, and
one CPU of the cluster is left to Ray Data's read tasks. :func:`max_concurrent_trials` caps
the number of simultaneous trials so that every running trial's workers fit at once: trials
never wait on each other's resources.
"""

from __future__ import annotations

import copy
from typing import Any

import ray
from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback

from rayrec.data import storage
from rayrec.errors import CliError
from rayrec.train.config import TrainConfig
from rayrec.train.trainer import fit
from rayrec.tune.space import apply_values

DATA_CPUS = 1.0  # left free for Ray Data's read tasks of the running trials
# the trial driver only waits on its run: a token share of a CPU (Tune refuses an empty one)
TRIAL_RESOURCES = tune.PlacementGroupFactory([{"CPU": 0.01}])


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
    return TrainConfig.model_validate(tree)


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
    fit(cfg, data_uri, callbacks=[TuneReportCallback()])


def run_cpus(cfg: TrainConfig) -> float:
    """CPUs one training run reserves."""
    return cfg.run.num_workers * cfg.run.cpus_per_worker


def max_concurrent_trials(cfg: TrainConfig, requested: int | None) -> int:
    """How many trials may run at once on the current cluster: every running trial's
    workers fit together, with :data:`DATA_CPUS` to spare; ``requested`` can only lower it."""
    total = float(ray.cluster_resources().get("CPU", 0))
    per_trial = run_cpus(cfg)
    fits = int((total - DATA_CPUS) // per_trial)
    if fits < 1:
        raise CliError(
            f"a trial needs {per_trial:g} CPUs for its workers plus {DATA_CPUS:g} for Ray Data; "
            f"the cluster has {total:g}: lower --num-workers or run.cpus_per_worker"
        )
    if requested is not None and requested < 1:
        raise CliError("--max-concurrent must be at least 1")
    return min(fits, requested) if requested else fits


def runs_root(sweep_dir: str) -> str:
    """Where the trials' training runs live."""
    return storage.join(sweep_dir, "runs")
