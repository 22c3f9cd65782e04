"""The report of one training run: ``report.md`` and PNG plots beside its ``results.json``.

``report.md`` holds, in order: the run's identity (model, output, data, manifest sha256,
versions), the test metrics and the best validation metric (named as ``results.json`` names
them: ``test_mse``, ``best val_mse``), the data manifest summary (counts, split fractions,
seed, k-core, tokenizer, max_len, review slots), the per-epoch history table, the plots it has
(and why any other is missing), and the config as YAML.

Plots:

* ``loss.png``: ``train_loss`` and the model's validation metric per epoch (every run);
* ``ratings.png``: predicted (clipped to [1, 5]) against true ratings of at most
  ``max_rows`` test pairs (rating models whose weights were exported: the model is rebuilt,
  :mod:`rayrec.report.model`);
* ``attention_sifn.png`` / ``comatching_ubert.png``: SIFN's word attention, U-BERT's review
  co-matching on a sample test pair (:mod:`rayrec.report.attention`).

A run directory on s3:// is read and written in place: the weights are downloaded into
memory, the plots and the report uploaded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from rayrec.data import storage
from rayrec.data.prepared import MANIFEST
from rayrec.models.registry import get_model_spec
from rayrec.report.output import read_bytes, write_bytes, write_text
from rayrec.report.plots import loss_figure, png_bytes, ratings_figure
from rayrec.train.checkpoint import WEIGHTS_FILE
from rayrec.train.trainer import RESULTS_FILE

REPORT_FILE = "report.md"
LOSS_FIGURE, RATINGS_FIGURE = "loss.png", "ratings.png"
PREDICTION_PLOTS = f"{RATINGS_FIGURE} and attention figures"  # what a model rebuild draws
MANIFEST_KEYS = (  # the manifest entries the summary lists, beside counts and tokenizer
    "target_domain",
    "domains",
    "split",
    "seed",
    "kcore",
    "max_len",
    "reviews_per_user",
    "reviews_per_item",
    "negatives",
    "global_mean",
)
TOKENIZER_KEYS = ("name", "class", "vocab_size", "vocab_sha256", "lowercase")


@dataclass
class RunReport:
    """What was written: files by name, and why a plot is missing."""

    directory: str
    files: dict[str, str] = field(default_factory=dict)  # file name -> URI
    missing: dict[str, str] = field(default_factory=dict)  # plots not made -> reason
    ignored_keys: list[str] = field(default_factory=list)  # old config keys, to rebuild


def value_text(value: Any) -> str:
    """A table cell: floats with 6 significant digits, other values as they print."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(value_text(v) for v in row) + " |" for row in rows]
    return lines


def metric_rows(results: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """``(name, value)`` of the test metrics and the best validation metrics."""
    rows = [(f"test_{k}", v) for k, v in results.get("test", {}).items()]
    rows += [(f"best {k}", v) for k, v in results.get("best_val", {}).items()]
    best = results.get("best_epoch")
    rows.append(("best epoch", best))
    return rows


def history_columns(history: Sequence[Mapping[str, Any]]) -> list[str]:
    """The keys of the history entries, in first-seen order, ``epoch`` first."""
    columns: list[str] = ["epoch"]
    for entry in history:
        columns += [k for k in entry if k not in columns]
    return columns


def manifest_lines(manifest: Mapping[str, Any] | None, data_uri: str) -> list[str]:
    """The manifest summary: scalar counts, the entries of ``MANIFEST_KEYS``, the tokenizer."""
    if manifest is None:
        return [f"The prepared dataset {data_uri} is not readable: no manifest summary."]
    counts = manifest.get("counts", {})
    lines = markdown_table(
        ["count", "value"], [(k, v) for k, v in counts.items() if isinstance(v, int | float)]
    )
    entries = [(k, manifest[k]) for k in MANIFEST_KEYS if k in manifest]
    lines += ["", *markdown_table(["entry", "value"], entries)]
    tokenizer = manifest.get("tokenizer", {})
    tokenizer_rows = [(k, tokenizer[k]) for k in TOKENIZER_KEYS if k in tokenizer]
    lines += ["", *markdown_table(["tokenizer", "value"], tokenizer_rows)]
    return lines


def report_markdown(
    results: Mapping[str, Any], manifest: Mapping[str, Any] | None, report: RunReport
) -> str:
    """The text of ``report.md`` (see the module docstring)."""
    data = results.get("data", {})
    versions = results.get("versions", {})
    history = results.get("history", [])
    lines = [
        f"# Run `{results.get('name')}`: {results.get('model')}",
        "",
        f"- output: `{report.directory}`",
        f"- data: `{data.get('uri')}` (manifest sha256 `{data.get('manifest_sha256')}`)",
        f"- epochs run: {results.get('epochs_run')}, steps: {results.get('steps')}, "
        f"samples/s: {value_text(results.get('samples_per_s'))}, "
        f"wall: {value_text(results.get('wall_seconds'))} s",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        "",
        "## Metrics",
        "",
        *markdown_table(["metric", "value"], metric_rows(results)),
        "",
        "## Data",
        "",
        *manifest_lines(manifest, str(data.get("uri"))),
        "",
        "## History",
        "",
    ]
    columns = history_columns(history)
    lines += markdown_table(columns, [[m.get(c) for c in columns] for m in history])
    lines += ["", "## Plots", ""]
    lines += [f"![{name}]({name})" for name in report.files if name.endswith(".png")]
    lines += [f"- {name}: not made: {why}" for name, why in report.missing.items()]
    if report.ignored_keys:
        lines += [
            "",
            "The model was rebuilt without config keys this rayrec no longer has: "
            + ", ".join(f"`{k}`" for k in report.ignored_keys),
        ]
    config = yaml.safe_dump(results.get("config", {}), sort_keys=False)
    lines += ["", "## Config", "", "```yaml", config.rstrip("\n"), "```", ""]
    return "\n".join(lines)


def _write_png(report: RunReport, name: str, figure: Any) -> None:
    uri = storage.join(report.directory, name)
    write_bytes(uri, png_bytes(figure))
    report.files[name] = uri


def _model_plots(
    report: RunReport, results: Mapping[str, Any], manifest: Mapping[str, Any] | None, rows: int
) -> None:
    """``ratings.png`` and the attention figures, or the reason they are not made."""
    spec = get_model_spec(results["model"])
    weights = storage.join(report.directory, WEIGHTS_FILE)
    reason = None
    if spec.task != "rating":
        reason = f"{spec.name} is a {spec.task} model: its predictions are not ratings"
    elif manifest is None:
        reason = "the prepared dataset is not readable"
    elif not storage.exists(weights):
        reason = f"no {WEIGHTS_FILE} in the run directory (run.export_weights false?)"
    if reason is not None:
        report.missing[PREDICTION_PLOTS] = reason
        return
    from rayrec.report.attention import attention_figures  # torch, transformers: only here
    from rayrec.report.model import ReportModel

    model = ReportModel.load(dict(results), read_bytes(weights))
    report.ignored_keys = model.ignored_keys
    predicted, true = model.predictions(rows)
    _write_png(report, RATINGS_FIGURE, ratings_figure(predicted, true))
    for name, figure in attention_figures(model).items():
        _write_png(report, name, figure)


def write_run_report(directory: str, max_rows: int = 2000) -> RunReport:
    """Write ``report.md`` and the plots of the run in ``directory`` (local or s3://) from
    its ``results.json``; returns what was written."""
    results = storage.read_json(storage.join(directory, RESULTS_FILE))
    report = RunReport(directory)
    spec = get_model_spec(results["model"])
    _write_png(report, LOSS_FIGURE, loss_figure(results["history"], f"val_{spec.default_metric}"))
    manifest_uri = storage.join(results["data"]["uri"], MANIFEST)
    manifest = storage.read_json(manifest_uri) if storage.exists(manifest_uri) else None
    _model_plots(report, results, manifest, max_rows)
    text = report_markdown(results, manifest, report)
    report.files[REPORT_FILE] = storage.join(directory, REPORT_FILE)
    write_text(report.files[REPORT_FILE], text)
    return report
