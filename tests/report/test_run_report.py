"""Reports and TensorBoard events of real short runs on the tiny prepared dataset.

Three real ``trainer.fit()`` runs of 2 epochs of 3 steps, each written once per module and read
by several tests: biased MF with its run directory on the moto S3 server (the events are
written locally and uploaded), SIFN and U-BERT fine-tuning (tiny BERT, no pre-training) on
local disk. Each run's report is written by ``fit`` itself; ``rayrec report`` rebuilds it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import fsspec
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rayrec.cli import main
from rayrec.data import storage
from rayrec.report.attention import SIFN_FIGURE, UBERT_FIGURE, attention_figures, tokens_of
from rayrec.report.model import ReportModel
from rayrec.report.output import read_bytes, read_text
from rayrec.report.plots import legend_texts, loss_figure
from rayrec.report.run_report import LOSS_FIGURE, RATINGS_FIGURE, REPORT_FILE
from rayrec.report.tensorboard import TENSORBOARD_DIR
from rayrec.train.config import load_config
from rayrec.train.trainer import fit

pytestmark = [pytest.mark.usefixtures("ray_session"), pytest.mark.slow, pytest.mark.timeout(1200)]

EPOCHS, STEPS = 2, 3
SHORT = [
    f"train.epochs={EPOCHS}",
    "train.batch_size=8",
    f"train.max_steps_per_epoch={STEPS}",
    "train.log_every=1",
]
TEXT = ["model.params.backbone=tiny", "data.max_len=16", "data.reviews_per_doc=2"]
BUCKET = "rayrec-reports"


def train(model: str, storage_root: str, data: Path, *overrides: str) -> dict[str, Any]:
    cfg = load_config(
        model, overrides=[f"run.storage={storage_root}", f"run.name={model}", *SHORT, *overrides]
    )
    return fit(cfg, str(data))


@pytest.fixture(scope="module")
def mf_run(tiny_data: Path, s3_endpoint: str) -> dict[str, Any]:
    """Biased MF, its run directory on S3."""
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=BUCKET)
    return train("biased_mf", f"s3://{BUCKET}/runs", tiny_data)


@pytest.fixture(scope="module")
def sifn_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return train("sifn", str(tmp_path_factory.mktemp("runs")), tiny_data, *TEXT)


@pytest.fixture(scope="module")
def ubert_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return train("ubert_finetune", str(tmp_path_factory.mktemp("runs")), tiny_data, *TEXT)


def metric_lines(results: dict[str, Any]) -> list[str]:
    """The metric rows report.md must hold: names and values as results.json has them."""
    lines = [f"| test_{k} | {v:.6g} |" for k, v in results["test"].items()]
    lines += [f"| best {k} | {v:.6g} |" for k, v in results["best_val"].items()]
    return lines


def scalars(events: EventAccumulator, tag: str) -> tuple[list[int], list[float]]:
    values = events.Scalars(tag)
    return [v.step for v in values], [v.value for v in values]


def check_events(directory: str, results: dict[str, Any]) -> None:
    """The event files hold every epoch's train_loss and val metrics and every step's loss."""
    events = EventAccumulator(directory)
    events.Reload()
    history = results["history"]
    for name in ("train_loss", "val_mse", "val_mae", "samples_per_s"):
        steps, values = scalars(events, f"epoch/{name}")
        assert steps == list(range(1, EPOCHS + 1))
        assert values == pytest.approx([m[name] for m in history], rel=1e-5)
    steps, values = scalars(events, "step/train_loss")
    assert steps == list(range(1, EPOCHS * STEPS + 1))
    # the last step's running loss of an epoch is that epoch's train_loss
    last = [values[steps.index(STEPS * (e + 1))] for e in range(EPOCHS)]
    assert last == pytest.approx([m["train_loss"] for m in history], rel=1e-5)


def test_loss_legend_names_the_runs_own_metrics(sifn_run: dict[str, Any]) -> None:
    figure = loss_figure(sifn_run["history"], "val_mse")
    assert legend_texts(figure) == ["train_loss", "val_mse"]


def test_sifn_report_plots_metrics_and_attention(
    sifn_run: dict[str, Any], check_png: Callable[[bytes], None]
) -> None:
    run = Path(sifn_run["output"])
    for name in (LOSS_FIGURE, RATINGS_FIGURE, SIFN_FIGURE):
        check_png((run / name).read_bytes())
    assert not (run / UBERT_FIGURE).exists()
    text = (run / REPORT_FILE).read_text()
    for line in metric_lines(sifn_run):
        assert line in text
    for name in (LOSS_FIGURE, RATINGS_FIGURE, SIFN_FIGURE):
        assert f"![{name}]({name})" in text
    assert "| epoch | train_loss |" in text and "tokenizer" in text
    assert "model:\n  name: sifn" in text  # the config as YAML


def test_rebuilt_model_predicts_the_runs_test_metrics(sifn_run: dict[str, Any]) -> None:
    """The ratings plot's model is the run's: on all (24) test pairs, its clipped predictions
    give the run's test MSE and MAE."""
    weights = read_bytes(storage.join(sifn_run["output"], "model.safetensors"))
    model = ReportModel.load(sifn_run, weights)
    predicted, true = model.predictions()
    assert len(true) == model.test.num_rows == 24
    assert predicted.min() >= 1 and predicted.max() <= 5
    errors = predicted.astype(float) - true
    assert float((errors**2).mean()) == pytest.approx(sifn_run["test"]["mse"], rel=1e-5)
    assert float(abs(errors).mean()) == pytest.approx(sifn_run["test"]["mae"], rel=1e-5)


def test_sifn_attention_shows_each_reviews_word_pieces_and_weights(
    sifn_run: dict[str, Any],
) -> None:
    """Each strip is one review's word pieces as text with its softmax weights (sum 1)."""
    weights = read_bytes(storage.join(sifn_run["output"], "model.safetensors"))
    model = ReportModel.load(sifn_run, weights)
    figure = attention_figures(model)[SIFN_FIGURE]
    strips = [axes for axes in figure.axes if axes.get_title(loc="left")]
    assert 2 <= len(strips) <= 3
    tokens = tokens_of("tiny")
    batch = model.batch(model.test.slice(0, 1))
    first = batch["user_input_ids"][0, 0][batch["user_attention_mask"][0, 0].bool()]
    assert [t.get_text() for t in strips[0].texts] == tokens(first.tolist())
    for axes in strips:
        cells = axes.get_images()[0].get_array().compressed()  # the review's tokens only
        assert len(cells) == len(axes.texts)
        assert math.isclose(float(cells.sum()), 1.0, rel_tol=1e-5)


def test_ubert_report_has_the_comatching_map(
    ubert_run: dict[str, Any], check_png: Callable[[bytes], None]
) -> None:
    run = Path(ubert_run["output"])
    for name in (LOSS_FIGURE, RATINGS_FIGURE, UBERT_FIGURE):
        check_png((run / name).read_bytes())
    assert not (run / SIFN_FIGURE).exists()
    text = (run / REPORT_FILE).read_text()
    assert f"![{UBERT_FIGURE}]({UBERT_FIGURE})" in text
    for line in metric_lines(ubert_run):
        assert line in text


def test_report_command_rebuilds_a_local_run(sifn_run: dict[str, Any]) -> None:
    run = Path(sifn_run["output"])
    before = (run / REPORT_FILE).read_text()
    names = (REPORT_FILE, LOSS_FIGURE, RATINGS_FIGURE, SIFN_FIGURE)
    for name in names:
        (run / name).unlink()
    assert main(["report", str(run)]) == 0
    assert all((run / name).stat().st_size > 0 for name in names)
    assert (run / REPORT_FILE).read_text() == before


def test_local_tensorboard_events(sifn_run: dict[str, Any]) -> None:
    check_events(str(Path(sifn_run["output"], TENSORBOARD_DIR)), sifn_run)


def test_s3_run_report_events_and_rebuild(
    mf_run: dict[str, Any], tmp_path: Path, check_png: Callable[[bytes], None]
) -> None:
    """Biased MF on S3: no attention figure; the events were uploaded; ``rayrec report``
    rebuilds the report in the bucket after its files are deleted."""
    run = mf_run["output"]
    assert run == f"s3://{BUCKET}/runs/biased_mf"
    fs = fsspec.filesystem("s3")
    names = [REPORT_FILE, LOSS_FIGURE, RATINGS_FIGURE]
    for name in names[1:]:
        check_png(read_bytes(f"{run}/{name}"))
    text = read_text(f"{run}/{REPORT_FILE}")
    for line in metric_lines(mf_run):
        assert line in text
    assert "attention" not in text and not fs.exists(f"{BUCKET}/runs/biased_mf/{SIFN_FIGURE}")

    fs.get(f"{BUCKET}/runs/biased_mf/{TENSORBOARD_DIR}", str(tmp_path / "tb"), recursive=True)
    check_events(str(tmp_path / "tb"), mf_run)

    for name in names:
        fs.rm(f"{BUCKET}/runs/biased_mf/{name}")
    assert main(["report", run]) == 0
    assert read_text(f"{run}/{REPORT_FILE}") == text
    for name in names[1:]:
        check_png(read_bytes(f"{run}/{name}"))
