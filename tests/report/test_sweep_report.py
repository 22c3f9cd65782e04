"""The report of a real sweep: two biased MF trials of 2 epochs (Ray Tune, FIFO).

The suite's one local Ray instance (4 logical CPUs) runs both trials at once: a trial's worker
takes 1 CPU and its Ray Data reads another.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

from rayrec.cli import main
from rayrec.report.plots import legend_texts
from rayrec.report.run_report import value_text
from rayrec.report.sweep_report import (
    CURVES_FIGURE,
    PROGRESS_FILE,
    REPORT_FILE,
    load_spec,
    progress_curve,
    results_curve,
    sweep_curves,
    sweep_figure,
)
from rayrec.report.tensorboard import TENSORBOARD_DIR

pytestmark = [pytest.mark.usefixtures("ray_session"), pytest.mark.slow, pytest.mark.timeout(1800)]

METRIC = "val_mse"


def curve_row(trial: str, values: list[float]) -> str:
    """The start of a trial's row in report.md's curve table (before its source)."""
    return f"| {trial} | {len(values)} | {min(values):.6g} | {values.index(min(values)) + 1} | "


@pytest.fixture(scope="module")
def sweep_dir(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    storage_root = tmp_path_factory.mktemp("sweeps")
    code = main(
        [
            "tune",
            "biased_mf",
            f"--data={tiny_data}",
            f"--storage={storage_root}",
            "--name=mf",
            "--num-samples=1",
            "--epochs=2",
            "--set=lr=grid(0.01, 0.1)",
            "--scheduler=fifo",
            "--max-concurrent=2",
            "--set=train.batch_size=8",
            "--set=train.max_steps_per_epoch=2",
            "--set=run.export_weights=false",
        ]
    )
    assert code == 0
    return storage_root / "mf"


def test_sweep_report_curves_from_both_sources(
    sweep_dir: Path, check_png: Callable[[bytes], None]
) -> None:
    """Every trial's curve: its run's history and Tune's progress.csv agree; report.md lists
    each trial's best epoch and embeds the trial table; the legend names values and status."""
    check_png((sweep_dir / CURVES_FIGURE).read_bytes())
    text = (sweep_dir / REPORT_FILE).read_text()
    trials = sorted(p.name for p in (sweep_dir / "runs").iterdir())
    assert len(trials) == 2
    for trial in trials:
        finished = results_curve(str(sweep_dir), trial, METRIC)
        reported = progress_curve(str(sweep_dir), trial, METRIC)
        assert finished is not None
        assert finished.epochs == reported.epochs == [1, 2]
        assert reported.values == pytest.approx(finished.values, rel=1e-12)
        assert curve_row(trial, finished.values) + "results.json |" in text
        assert (sweep_dir / "runs" / trial / "loss.png").exists()  # each trial's run report
    assert "| trial | train.lr |" in text  # trials.md
    spec = load_spec(str(sweep_dir))
    labels = legend_texts(sweep_figure(str(sweep_dir), spec, sweep_curves(str(sweep_dir), METRIC)))
    lrs = [json.loads((sweep_dir / t / "params.json").read_text())["train.lr"] for t in trials]
    assert len(labels) == len(trials)
    for label, trial, lr in zip(labels, trials, lrs, strict=True):
        assert label.startswith(f"{trial}: ") and label.endswith(" (completed)")
        assert f"train.lr={value_text(lr)}" in label
    assert sorted(lrs) == [0.01, 0.1]


def test_report_command_reads_an_unfinished_trial_from_tune(sweep_dir: Path) -> None:
    """A trial without results.json (stopped, interrupted) is drawn from progress.csv."""
    trial = sorted(p.name for p in (sweep_dir / "runs").iterdir())[0]
    results = sweep_dir / "runs" / trial / "results.json"
    finished = results_curve(str(sweep_dir), trial, METRIC)
    assert finished is not None
    results.unlink()
    (sweep_dir / REPORT_FILE).unlink()
    (sweep_dir / CURVES_FIGURE).unlink()
    assert main(["report", str(sweep_dir)]) == 0
    text = (sweep_dir / REPORT_FILE).read_text()
    assert curve_row(trial, finished.values) + f"{PROGRESS_FILE} |" in text
    assert (sweep_dir / CURVES_FIGURE).stat().st_size > 0


def test_tensorboard_logdir_of_a_sweep_holds_every_trial(sweep_dir: Path) -> None:
    """What ``tensorboard --logdir SWEEP`` loads: one run per trial with its epoch scalars."""
    events = EventMultiplexer().AddRunsFromDirectory(str(sweep_dir))
    events.Reload()
    for trial in sorted(p.name for p in (sweep_dir / "runs").iterdir()):
        run = f"runs/{trial}/{TENSORBOARD_DIR}"
        assert run in events.Runs()
        values = [s.value for s in events.Scalars(run, f"epoch/{METRIC}")]
        expected = progress_curve(str(sweep_dir), trial, METRIC).values
        assert values == pytest.approx(expected, rel=1e-6)
