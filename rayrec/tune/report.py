"""The end of a sweep: the table of trials (printed, CSV, Markdown) and the best config.

One row per trial: its id, status, epochs run, best validation metric (the best value any
epoch reported, as ASHA compared it), the epoch of that value, the test metric of the run's
best checkpoint (finished runs only) and the swept values. Status:

* ``completed``: the training run finished (its ``results.json`` exists);
* ``stopped (asha)``: ASHA stopped it after fewer epochs than configured;
* ``error``: the trial failed (its error in ``Result.error``);
* ``incomplete``: none of these (e.g. an interrupted sweep that was not resumed).

``best.yaml`` is the base config with the best trial's values, without anything that only
makes sense inside the sweep (run name, storage, the precomputed review states): ``rayrec
train MODEL --config best.yaml`` trains it as it is.
"""

from __future__ import annotations

import copy
import csv
import io
import math
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import yaml
from ray.tune import ResultGrid

from rayrec.data import storage
from rayrec.train.config import TrainConfig
from rayrec.train.trainer import RESULTS_FILE
from rayrec.tune.space import apply_values

CSV_FILE, MARKDOWN_FILE, BEST_FILE = "trials.csv", "trials.md", "best.yaml"


@dataclass(frozen=True)
class TrialRow:
    """One trial of the table."""

    trial_id: str
    status: str
    epochs: int
    best: float | None  # best validation metric over the epochs reported
    best_epoch: int | None  # 1-based
    test: float | None  # test metric of the best checkpoint (finished runs)
    values: dict[str, Any]  # the swept keys


def trial_rows(
    grid: ResultGrid, keys: list[str], metric: str, mode: str, epochs: int, runs: str
) -> list[TrialRow]:
    """The table rows of a finished (or interrupted) sweep, in trial order."""
    rows = []
    for result in grid:
        trial_id = PurePosixPath(result.path or "unknown").name  # directories: trial ids
        frame = result.metrics_dataframe
        values = [] if frame is None or metric not in frame else frame[metric].tolist()
        values = [v for v in values if v is not None and not math.isnan(v)]
        best = (min if mode == "min" else max)(values) if values else None
        results_uri = storage.join(runs, trial_id, RESULTS_FILE)
        finished = storage.read_json(results_uri) if storage.exists(results_uri) else None
        if result.error is not None:
            status = "error"
        elif finished is not None:
            status = "completed"
        elif 0 < len(values) < epochs:
            status = "stopped (asha)"
        else:
            status = "incomplete"
        test_key = metric.removeprefix("val_")
        rows.append(
            TrialRow(
                trial_id=trial_id,
                status=status,
                epochs=len(values),
                best=best,
                best_epoch=values.index(best) + 1 if values else None,
                test=(finished or {}).get("test", {}).get(test_key),
                values={k: (result.config or {}).get(k) for k in keys},  # None: failed early
            )
        )
    return sorted(rows, key=lambda r: r.trial_id)


def best_row(rows: list[TrialRow], mode: str) -> TrialRow | None:
    """The trial with the best validation metric (ties: the earlier trial)."""
    scored = [r for r in rows if r.best is not None]
    if not scored:
        return None
    sign = 1.0 if mode == "min" else -1.0
    return min(scored, key=lambda r: sign * r.best)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(rows: list[TrialRow], keys: list[str], metric: str) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the trial table."""
    test = "test_" + metric.removeprefix("val_")
    header = ["trial", *keys, f"best {metric}", "best epoch", "epochs", test, "status"]
    cells = [
        [
            r.trial_id,
            *(_cell(r.values.get(k)) for k in keys),
            _cell(r.best),
            _cell(r.best_epoch),
            str(r.epochs),
            _cell(r.test),
            r.status,
        ]
        for r in rows
    ]
    return header, cells


def markdown(header: list[str], cells: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


def csv_text(header: list[str], cells: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(cells)
    return out.getvalue()


def plain(header: list[str], cells: list[list[str]]) -> str:
    """The table for a terminal: aligned columns."""
    widths = [max(len(x) for x in column) for column in zip(header, *cells, strict=True)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)) for row in [header]]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def best_config(base: dict[str, Any], row: TrialRow) -> TrainConfig:
    """The base config with the best trial's values: a config of its own (validated)."""
    return TrainConfig.model_validate(apply_values(copy.deepcopy(base), row.values))


def best_yaml(cfg: TrainConfig, sweep: str, row: TrialRow, metric: str) -> str:
    """``best.yaml``: a header naming where it comes from, then the config."""
    tree = cfg.model_dump(mode="json")
    tree["model"]["params"].pop("review_states", None)
    tree["run"].update(name=None, storage=None)
    header = (
        f"# rayrec train {cfg.model.name} --config best.yaml\n"
        f"# best trial {row.trial_id} of sweep {sweep}: {metric} {row.best:.6g} "
        f"(epoch {row.best_epoch}); swept: "
        + ", ".join(f"{k}={_cell(v)}" for k, v in row.values.items())
        + "\n"
    )
    return header + yaml.safe_dump(tree, sort_keys=False)


def write_text(uri: str, text: str) -> None:
    fs, path = storage.filesystem(uri)
    with fs.open(path, "w") as f:
        f.write(text)
