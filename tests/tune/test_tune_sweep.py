"""Real sweeps: Ray Tune trials that each fit a TorchTrainer on the tiny prepared dataset.

The suite's one local Ray instance (4 logical CPUs) runs them: a trial's worker takes 1 CPU,
one CPU stays free for Ray Data, so at most 2 trials run at once here.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
from pathlib import Path

import boto3
import fsspec
import pytest
from ray import tune

from rayrec.cli import build_parser, main
from rayrec.data import storage
from rayrec.train.cli import config_from_args
from rayrec.train.config import load_config
from rayrec.tune import sweep, trainable
from rayrec.tune.space import parse_expressions

# every trial starts its own Train controller, workers and Ray Data actors: on two loaded
# cores a sweep test has taken 9-15 minutes, above the suite's default 900 s timeout
pytestmark = [
    pytest.mark.usefixtures("ray_session"),
    pytest.mark.slow,
    pytest.mark.timeout(1800),
]

TINY_RUN = [
    "--set=train.batch_size=8",
    "--set=train.max_steps_per_epoch=2",
    "--set=train.max_eval_batches=1",
    "--set=train.eval_batch_size=32",
    "--set=run.export_weights=false",
]
TINY_SIFN = [
    "--set=model.params.backbone=tiny",
    "--set=data.max_len=16",
    "--set=data.reviews_per_doc=2",
]


def test_the_suite_cluster_answers_the_state_api() -> None:
    """Ray Train frees a stopped trial's worker CPUs only through the state API."""
    assert trainable.state_api_available()


def test_sifn_sweep_asha_stops_early_and_best_config_trains(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """4 trials of SIFN (tiny BERT, frozen: encoded once for the sweep), ASHA after epoch 1.

    The grid puts a sane learning rate first and three that wreck the model after it, so the
    rung after epoch 1 must stop at least one of them, whichever order they report in.
    """
    code = main(
        [
            "tune",
            "sifn",
            f"--data={tiny_data}",
            f"--storage={tmp_path}",
            "--name=lam",
            "--num-samples=1",
            "--epochs=2",
            "--set=lr=grid(0.001, 0.5, 1.0, 2.0)",
            "--set=sifn.lambda=choice(0.1, 1, 10)",
            "--set=dropout=0.2",
            "--max-concurrent=2",
            *TINY_RUN,
            *TINY_SIFN,
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "one store for every trial" in out
    sweep_dir = tmp_path / "lam"
    spec = json.loads((sweep_dir / "sweep.json").read_text())
    assert spec["encodings"] and Path(spec["encodings"], "meta.json").exists()
    assert sorted(spec["keys"]) == ["model.params.sentiment_weight", "train.lr"]

    with (sweep_dir / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert {float(r["train.lr"]) for r in rows} == {0.001, 0.5, 1.0, 2.0}
    stopped = [r for r in rows if r["status"] == "stopped (asha)"]
    completed = [r for r in rows if r["status"] == "completed"]
    assert stopped, rows
    assert len(stopped) + len(completed) == 4
    for r in stopped:  # stopped after epoch 1: its run never finished
        assert r["epochs"] == "1"
        assert not (sweep_dir / "runs" / r["trial"] / "results.json").exists()
    for r in completed:
        assert r["epochs"] == "2" and float(r["test_mse"]) > 0
        results = json.loads((sweep_dir / "runs" / r["trial"] / "results.json").read_text())
        assert results["config"]["model"]["params"]["review_states"] == spec["encodings"]
        assert results["epochs_run"] == 2
    assert (sweep_dir / "trials.md").read_text().count("\n") == 2 + 4

    best = min(rows, key=lambda r: float(r["best val_mse"]))
    assert float(best["train.lr"]) == 0.001
    best_file = sweep_dir / "best.yaml"
    cfg = load_config("sifn", best_file)
    assert cfg.train.lr == 0.001
    assert cfg.model.params["sentiment_weight"] == float(best["model.params.sentiment_weight"])
    assert "review_states" not in cfg.model.params and cfg.run.name is None

    # the best config goes through `rayrec train --config` unchanged: the same run config as
    # the best trial's, but BERT runs in the model again (no review states)
    args = build_parser().parse_args(["train", "sifn", f"--config={best_file}"])
    trained = config_from_args(args).model_dump(mode="json")
    trial = json.loads((sweep_dir / "runs" / best["trial"] / "results.json").read_text())["config"]
    trial["model"]["params"].pop("review_states")
    trial["run"].update(name=None, storage=None)
    # a trial's workers took 1 CPU each; the lone run leaves it unset (the cluster's share)
    assert trial["run"]["cpus_per_worker"] == 1.0 and trained["run"]["cpus_per_worker"] is None
    trial["run"]["cpus_per_worker"] = None
    assert trained == trial


def read_text(uri: str) -> str:
    with fsspec.open(uri, "r", encoding="utf-8") as f:
        return f.read()


class InterruptAfterFirstTrial(tune.Callback):
    """Stop the sweep like Ctrl-C does, as soon as one trial has finished."""

    def on_trial_complete(self, iteration: int, trials: list, trial: object, **info) -> None:
        os.kill(os.getpid(), signal.SIGUSR1)  # Tune's handler: save the state and end the run


def test_interrupted_sweep_on_s3_resumes_without_repeating_a_finished_trial(
    tiny_data: Path, s3_endpoint: str
) -> None:
    """The sweep, its trials' runs and its table live on the moto S3 server."""
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="sweeps")
    root = "s3://sweeps/tune"
    model = "global_mean"
    flags = ["train.batch_size=8", "train.max_steps_per_epoch=2", "run.export_weights=false"]
    space = parse_expressions(model, ["lr=grid(0.001, 0.1)"])
    cfg = load_config(model, overrides=[*flags, "train.epochs=1", f"data.uri={tiny_data}"])
    spec = sweep.SweepSpec(
        model=model,
        data_uri=str(tiny_data),
        base=cfg.model_dump(mode="json"),
        keys=list(space.dimensions),
        metric="val_mse",
        mode="min",
        num_samples=1,
        max_concurrent=1,
    )
    first = sweep.start(spec, space, root, "cut", callbacks=[InterruptAfterFirstTrial()])
    assert first.directory == "s3://sweeps/tune/cut"
    done = [r for r in first.rows if r.status == "completed"]
    assert len(done) == 1, first.table
    finished = storage.join(first.directory, "runs", done[0].trial_id, "results.json")
    before = read_text(finished)  # a second run of the trial would write another wall time

    assert main(["tune", model, f"--storage={root}", "--resume=cut"]) == 0
    rows = list(csv.DictReader(io.StringIO(read_text(f"{first.directory}/trials.csv"))))
    assert len(rows) == 2
    assert all(r["status"] == "completed" and r["epochs"] == "1" for r in rows), rows
    assert {float(r["train.lr"]) for r in rows} == {0.001, 0.1}
    assert read_text(finished) == before  # the finished trial did not run again
    progress = read_text(f"{first.directory}/{done[0].trial_id}/progress.csv")
    assert progress.count("\n") == 2  # header + its one epoch, not repeated
    assert storage.exists(f"{first.directory}/best.yaml")
