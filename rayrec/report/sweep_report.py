"""The report of a sweep: ``report.md`` and ``curves.png`` in the sweep directory.

``curves.png`` draws every trial's validation metric (the sweep's ``metric``) per epoch. A
trial's curve comes from its training run's ``results.json`` history
(``<sweep>/runs/<trial>/``) when the run finished, else from the ``progress.csv`` Tune keeps
in ``<sweep>/<trial>/`` (one row per reported epoch): a trial ASHA stopped, or one still
running or interrupted, is drawn as far as it got. A trial that reported fewer epochs than
the sweep's ``train.epochs`` ends with an ``x``.

``report.md``: the sweep's settings (``sweep.json``), the trial table (``trials.md``, written
by :mod:`rayrec.tune.report` just before), the best epoch of every curve, and the plot.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

from matplotlib.figure import Figure

from rayrec.data import storage
from rayrec.report.output import read_text, write_bytes, write_text
from rayrec.report.plots import Curve, curves_figure, png_bytes
from rayrec.report.run_report import value_text
from rayrec.train.trainer import RESULTS_FILE
from rayrec.tune.report import CSV_FILE, MARKDOWN_FILE
from rayrec.tune.sweep import SWEEP_FILE, SweepSpec
from rayrec.tune.trainable import runs_root

REPORT_FILE, CURVES_FIGURE = "report.md", "curves.png"
PROGRESS_FILE = "progress.csv"  # Tune's per-trial table of reports
PARAMS_FILE = "params.json"  # Tune's per-trial sampled values


@dataclass(frozen=True)
class TrialCurve:
    """One trial's validation curve and where it was read."""

    trial_id: str
    epochs: list[int]  # 1-based
    values: list[float]
    source: str  # "results.json" or "progress.csv"


def _number(text: str | None) -> float | None:
    """A CSV cell as a float; None if empty or not a finite number."""
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _points(pairs: list[tuple[int, float | None]]) -> tuple[list[int], list[float]]:
    """Sorted epochs and values, the last report of an epoch kept (a restarted trial may
    report an epoch again), epochs without a value dropped."""
    by_epoch = {epoch: value for epoch, value in pairs if value is not None}
    epochs = sorted(by_epoch)
    return epochs, [by_epoch[e] for e in epochs]


def trial_ids(directory: str) -> list[str]:
    """Trials of the sweep: the training runs under ``runs/`` and Tune's trial directories
    that hold a ``progress.csv`` (a trial whose run never started has only the latter)."""
    fs, path = storage.filesystem(directory)
    ids = set()
    runs = storage.filesystem(runs_root(directory))[1]
    if fs.isdir(runs):
        ids |= {p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(runs, detail=False)}
    for entry in fs.ls(path, detail=False):
        name = entry.rstrip("/").rsplit("/", 1)[-1]
        if fs.exists(f"{entry.rstrip('/')}/{PROGRESS_FILE}"):
            ids.add(name)
    return sorted(ids)


def results_curve(directory: str, trial_id: str, metric: str) -> TrialCurve | None:
    """The curve in the history of the trial's finished run, None if it did not finish."""
    results = storage.join(runs_root(directory), trial_id, RESULTS_FILE)
    if not storage.exists(results):
        return None
    history = storage.read_json(results).get("history", [])
    pairs = [(int(m["epoch"]) + 1, m.get(metric)) for m in history]
    pairs = [(e, float(v) if isinstance(v, int | float) else None) for e, v in pairs]
    return TrialCurve(trial_id, *_points(pairs), source=RESULTS_FILE)


def progress_curve(directory: str, trial_id: str, metric: str) -> TrialCurve:
    """The curve in Tune's ``progress.csv`` of the trial (empty if there is none): the epoch
    each row reports (``epoch`` + 1), else its ``training_iteration``."""
    progress = storage.join(directory, trial_id, PROGRESS_FILE)
    text = read_text(progress) if storage.exists(progress) else ""
    pairs = []
    for row in csv.DictReader(io.StringIO(text)):
        epoch = _number(row.get("epoch"))
        iteration = _number(row.get("training_iteration"))
        if epoch is not None:
            pairs.append((int(epoch) + 1, _number(row.get(metric))))
        elif iteration is not None:
            pairs.append((int(iteration), _number(row.get(metric))))
    return TrialCurve(trial_id, *_points(pairs), source=PROGRESS_FILE)


def trial_curve(directory: str, trial_id: str, metric: str) -> TrialCurve:
    """The curve of one trial: its run's history if the run finished, else Tune's rows."""
    return results_curve(directory, trial_id, metric) or progress_curve(directory, trial_id, metric)


def trial_statuses(directory: str) -> dict[str, str]:
    """Each trial's status from ``trials.csv`` (empty before the table is written)."""
    uri = storage.join(directory, CSV_FILE)
    if not storage.exists(uri):
        return {}
    return {row["trial"]: row["status"] for row in csv.DictReader(io.StringIO(read_text(uri)))}


def trial_values(directory: str, trial_id: str) -> dict[str, object]:
    """The trial's sampled values, from the ``params.json`` Tune writes when it starts it."""
    uri = storage.join(directory, trial_id, PARAMS_FILE)
    return storage.read_json(uri) if storage.exists(uri) else {}


def curve_label(trial_id: str, values: dict[str, object], status: str | None) -> str:
    """``trial: key=value, ... (status)``, the parts that are known."""
    label = trial_id
    if values:
        label += ": " + ", ".join(f"{k}={value_text(v)}" for k, v in values.items())
    return f"{label} ({status})" if status else label


def best_point(curve: TrialCurve, mode: str) -> tuple[int, float] | None:
    """The best ``(epoch, value)`` of a curve (ties: the earlier epoch)."""
    if not curve.values:
        return None
    sign = 1.0 if mode == "min" else -1.0
    k = min(range(len(curve.values)), key=lambda j: (sign * curve.values[j], j))
    return curve.epochs[k], curve.values[k]


def sweep_markdown(
    spec: SweepSpec, directory: str, curves: list[TrialCurve], trials_md: str | None
) -> str:
    """The text of the sweep's ``report.md``."""
    name = directory.rstrip("/").rsplit("/", 1)[-1]
    lines = [
        f"# Sweep `{name}`: {spec.model}",
        "",
        f"- directory: `{directory}`",
        f"- data: `{spec.data_uri}`",
        f"- metric: {spec.metric} ({spec.mode}), scheduler {spec.scheduler}, "
        f"search {spec.search}, {spec.num_samples} sample(s), {spec.epochs} epoch(s) per trial",
        f"- swept: {', '.join(spec.keys) or 'nothing'}",
        "",
        "## Trials",
        "",
        trials_md.rstrip("\n") if trials_md else f"({MARKDOWN_FILE} is not written yet)",
        "",
        "## Validation curves",
        "",
        f"![{CURVES_FIGURE}]({CURVES_FIGURE})",
        "",
        f"| trial | epochs | best {spec.metric} | at epoch | read from |",
        "| --- | --- | --- | --- | --- |",
    ]
    for curve in curves:
        best = best_point(curve, spec.mode)
        value, epoch = (f"{best[1]:.6g}", str(best[0])) if best else ("", "")
        lines.append(
            f"| {curve.trial_id} | {len(curve.epochs)} | {value} | {epoch} | {curve.source} |"
        )
    return "\n".join(lines) + "\n"


def load_spec(directory: str) -> SweepSpec:
    """The ``sweep.json`` of the sweep in ``directory``."""
    return SweepSpec(**storage.read_json(storage.join(directory, SWEEP_FILE)))


def sweep_curves(directory: str, metric: str) -> list[TrialCurve]:
    """Every trial's curve of ``metric``, in trial id order."""
    return [trial_curve(directory, t, metric) for t in trial_ids(directory)]


def sweep_figure(directory: str, spec: SweepSpec, curves: list[TrialCurve]) -> Figure:
    """``curves.png``: the curves labelled with each trial's values and status."""
    statuses = trial_statuses(directory)
    drawn = [
        Curve(
            label=curve_label(
                c.trial_id, trial_values(directory, c.trial_id), statuses.get(c.trial_id)
            ),
            epochs=c.epochs,
            values=c.values,
            stopped=len(c.epochs) < spec.epochs,
        )
        for c in curves
    ]
    return curves_figure(drawn, spec.metric)


def write_sweep_report(directory: str) -> dict[str, str]:
    """Write ``report.md`` and ``curves.png`` of the sweep in ``directory`` (local or
    s3://); returns their URIs by kind."""
    spec = load_spec(directory)
    curves = sweep_curves(directory, spec.metric)
    files = {
        "report": storage.join(directory, REPORT_FILE),
        "curves": storage.join(directory, CURVES_FIGURE),
    }
    write_bytes(files["curves"], png_bytes(sweep_figure(directory, spec, curves)))
    trials_uri = storage.join(directory, MARKDOWN_FILE)
    trials_md = read_text(trials_uri) if storage.exists(trials_uri) else None
    write_text(files["report"], sweep_markdown(spec, directory, curves, trials_md))
    return files
