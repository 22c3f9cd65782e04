"""What a finished run computed, to compare two runs that must be the same (a resumed run
and the run that was never interrupted)."""

from __future__ import annotations

from typing import Any

TIMING = ("train_seconds", "samples_per_s")  # wall-clock fields of an epoch's metrics


def outcome(results: dict[str, Any]) -> dict[str, Any]:
    """A run's ``results.json`` without wall-clock times, names and the config."""
    history = [{k: v for k, v in m.items() if k not in TIMING} for m in results["history"]]
    return {
        "history": history,
        "test": results["test"],
        "best_epoch": results["best_epoch"],
        "best_val": results["best_val"],
        "steps": results["steps"],
    }
