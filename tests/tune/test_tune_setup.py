"""How a sweep is set up: trial concurrency, scheduler and search algorithm (no Ray)."""

from __future__ import annotations

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search.optuna import OptunaSearch

from rayrec.errors import CliError
from rayrec.train.config import load_config
from rayrec.train.trainer import run_cpus
from rayrec.tune.space import parse_expressions
from rayrec.tune.sweep import SweepSpec, scheduler_for, search_for
from rayrec.tune.trainable import (
    check_stopped_trials_free_their_cpus,
    trial_config,
    trials_that_fit,
)


@pytest.mark.parametrize(
    ("cpus", "workers", "requested", "expected"),
    [
        (4, 1, None, 2),  # the test cluster: 1 worker + 1 data CPU per trial
        (4, 1, 1, 1),
        (4, 1, 8, 2),  # --max-concurrent never oversubscribes
        (2, 1, None, 1),  # a 2-core laptop: one trial at a time
        (16, 3, None, 4),
    ],
)
def test_trials_that_fit(cpus: int, workers: int, requested: int | None, expected: int) -> None:
    cfg = load_config("biased_mf", overrides=[f"run.num_workers={workers}"])
    assert trials_that_fit(cpus, cfg, requested) == expected


def test_trials_are_sized_as_trial_config_sizes_their_workers() -> None:
    """Unset CPUs: what trial_config gives each worker; set: that value (2 + 1 data CPU)."""
    unset = load_config("biased_mf")
    sized = trial_config(unset.model_dump(mode="json"), {}, runs="/r", name="t")
    assert trials_that_fit(4, unset, None) == int(4 // (sized.run.cpus_per_worker + 1))
    two = load_config("biased_mf", overrides=["run.cpus_per_worker=2"])
    assert trials_that_fit(7, two, None) == 2
    with pytest.raises(ValueError, match="unset"):
        run_cpus(unset)  # a lone run resolves it first (fit's with_worker_cpus)


def test_a_trial_bigger_than_the_cluster_is_refused() -> None:
    cfg = load_config("biased_mf", overrides=["run.num_workers=4"])
    with pytest.raises(CliError, match="needs 4 CPUs for its workers plus 1"):
        trials_that_fit(4, cfg, None)
    with pytest.raises(CliError, match="at least 1"):
        trials_that_fit(4, load_config("biased_mf"), 0)


def _spec(epochs: int, **changes: object) -> SweepSpec:
    base = load_config("sifn", overrides=[f"train.epochs={epochs}"]).model_dump(mode="json")
    fields = dict(model="sifn", data_uri="/d", base=base, keys=[], metric="val_mse", mode="min")
    return SweepSpec(**(fields | {"num_samples": 4} | changes))


def _decisions(scheduler, values_per_iteration: list[list[float]]) -> list[list[str]]:
    """What ``scheduler`` decides (Tune's public ``TrialScheduler.on_trial_result``) for
    trials reporting ``values_per_iteration[t][k]`` (trial k's val_mse) at iteration t + 1."""
    trials = [Trial("sifn", stub=True) for _ in values_per_iteration[0]]
    for trial in trials:
        scheduler.on_trial_add(None, trial)
    return [
        [
            scheduler.on_trial_result(
                None, trial, {"training_iteration": t + 1, "val_mse": values[k]}
            )
            for k, trial in enumerate(trials)
        ]
        for t, values in enumerate(values_per_iteration)
    ]


def test_asha_rungs_end_before_the_last_epoch() -> None:
    """Three epochs: rungs after epochs 1 and 2, none after the last, and no trial stopped
    for reaching max_t. Observed through the scheduler's decisions (ASHAScheduler has no
    public reading of its rungs, max_t or stop_last_trials)."""
    spec = _spec(epochs=3)
    go, stop = TrialScheduler.CONTINUE, TrialScheduler.STOP

    def decisions(values: list[list[float]]) -> list[list[str]]:
        asha = scheduler_for(spec)
        assert isinstance(asha, ASHAScheduler)
        asha.set_search_properties(spec.metric, spec.mode)
        return _decisions(asha, values)

    # the best reports first: the others fall below the top half at each rung (epochs 1, 2);
    # at epoch 3 and after there is no rung, and the leader is never stopped
    best_first = [1.0, 2.0, 3.0, 4.0]
    assert decisions([best_first] * 4) == [[go, stop, stop, stop]] * 2 + [[go] * 4] * 2
    # the worst first: each is within the top half of those seen when it reports
    assert decisions([best_first[::-1]] * 3) == [[go] * 4] * 3
    assert isinstance(scheduler_for(_spec(epochs=1)), FIFOScheduler)  # nothing to compare
    assert isinstance(scheduler_for(_spec(epochs=3, scheduler="fifo")), FIFOScheduler)


def test_search_algorithms() -> None:
    space = parse_expressions("sifn", ["lr=loguniform(1e-4, 1e-2)"])
    assert search_for(_spec(2), space) is None  # random: Tune's variant generator
    assert isinstance(search_for(_spec(2, search="optuna"), space), OptunaSearch)
    grid = parse_expressions("sifn", ["sifn.lambda=grid(0.1, 1, 10)"])
    with pytest.raises(CliError, match="grid"):
        search_for(_spec(2, search="optuna"), grid)


def test_trial_config_names_the_run_and_reads_the_states() -> None:
    base = load_config("sifn", overrides=["train.lr=1e-3"]).model_dump(mode="json")
    cfg = trial_config(
        base, {"train.lr": 0.05}, runs="/s/runs", name="t_00001", states="/s/encodings/k"
    )
    assert (cfg.train.lr, cfg.run.name, cfg.run.storage) == (0.05, "t_00001", "/s/runs")
    assert cfg.model.params["review_states"] == "/s/encodings/k"
    assert base["train"]["lr"] == 1e-3 and "review_states" not in base["model"]["params"]
    # run.cpus_per_worker unset: a trial's workers take 1 CPU each (trials side by side), not
    # the whole cluster as a lone run's would; a value the sweep sets or samples stays
    assert base["run"]["cpus_per_worker"] is None and cfg.run.cpus_per_worker == 1.0
    sampled = trial_config(base, {"run.cpus_per_worker": 2.0}, runs="/s/runs", name="t_00002")
    assert sampled.run.cpus_per_worker == 2.0


def test_without_the_state_api_early_stopping_is_refused() -> None:
    assert check_stopped_trials_free_their_cpus(stops_early=True, state_api=True) is None
    warning = check_stopped_trials_free_their_cpus(stops_early=False, state_api=False)
    assert warning and warning.startswith("warning:") and "never freed" in warning
    with pytest.raises(CliError, match="--include-dashboard=true.*--scheduler fifo"):
        check_stopped_trials_free_their_cpus(stops_early=True, state_api=False)
