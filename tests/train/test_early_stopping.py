"""Early stopping (``train.patience``): the rule, and a real run that it ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from rayrec.train.config import load_config
from rayrec.train.loop import epochs_since_best
from rayrec.train.trainer import fit


def test_epochs_since_best_counts_from_the_earliest_best() -> None:
    history = [{"val_mse": v} for v in (0.9, 0.8, 0.85, 0.8, 0.81)]
    assert epochs_since_best(history, "val_mse", "min") == 3  # the tie at 0.8 is no gain
    assert epochs_since_best(history[:2], "val_mse", "min") == 0
    assert epochs_since_best(history, "val_mse", "max") == 4
    assert epochs_since_best([], "val_mse", "min") == 0
    hits = [{"val_hr@10": v} for v in (0.2, 0.3, 0.25)]
    assert epochs_since_best(hits, "val_hr@10", "max") == 1


@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
def test_patience_ends_a_run_that_stopped_improving(tmp_path: Path, tiny_prepared: Path) -> None:
    """The global mean at lr 1e-12 cannot move (a float32 rating of ~4 does not change by
        1e-12), so every epoch after the first ties it: with patience 2 the run of 6 epochs ends
        after its third. (Which of the tied epochs is tested is Ray's choice of the checkpoints it
    keeps: ``run.keep_checkpoints`` 2, ties broken towards the newer.)"""
    cfg = load_config(
        "global_mean",
        overrides=[
            f"run.storage={tmp_path}",
            "run.name=gm",
            "train.epochs=6",
            "train.patience=2",
            "train.lr=1e-12",
            "train.weight_decay=0",
            "train.max_steps_per_epoch=2",
        ],
    )
    results = fit(cfg, str(tiny_prepared))
    assert [m["epoch"] for m in results["history"]] == [0, 1, 2]
    assert len({m["val_mse"] for m in results["history"]}) == 1, results["history"]
    assert results["stopped_early"] is True
    assert results["epochs_run"] == 3
    assert results["best_val"]["val_mse"] == results["history"][0]["val_mse"]
    assert set(results["test"]) == {"mse", "rmse", "mae"}
