"""Every user error of the run commands ends in one line on stderr and exit code 2, before Ray
starts: a missing or foreign ``--data``, a bad ``--metric``, ``--resume`` of an unknown run or
sweep, a missing ``--pretrained``, a directory that is no run for ``report`` / ``predict`` /
``recommend``.

``main()`` (the console script's entry point: its return value is the exit code) runs in
this process with every ``ensure_ray`` the commands reach replaced by a failure, so an error
raised only after Ray started fails the test. No subprocess: importing rayrec's training
stack (torch, Ray, DeepSpeed) in a fresh process costs 20 s on the test machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import rayrec.encode.cli
import rayrec.serve.load
import rayrec.train.cli
import rayrec.train.demo
import rayrec.train.trainer
import rayrec.tune.cli
from rayrec.cli import main
from rayrec.data import storage
from rayrec.train.config import load_config


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    def started() -> None:
        raise AssertionError("Ray was started before the user error was reported")

    for module in (
        rayrec.train.trainer,
        rayrec.train.cli,
        rayrec.train.demo,
        rayrec.tune.cli,
        rayrec.encode.cli,
        rayrec.serve.load,
    ):
        monkeypatch.setattr(module, "ensure_ray", started)


@pytest.fixture
def foreign(tmp_path: Path) -> Path:
    """A directory that exists but is not a prepared dataset (nor a run, nor a sweep)."""
    directory = tmp_path / "foreign"
    directory.mkdir()
    (directory / "notes.txt").write_text("not a dataset\n")
    return directory


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """A directory whose manifest.json is not JSON."""
    directory = tmp_path / "broken"
    directory.mkdir()
    (directory / "manifest.json").write_text("{ half a manifest")
    return directory


@pytest.fixture
def fake_run(tmp_path: Path, tiny_prepared: Path) -> Path:
    """A run directory as ``fit`` leaves it (results.json, model.safetensors), trained on
    the tiny dataset: enough for ``predict`` and ``recommend`` to check their arguments."""
    run = tmp_path / "runs" / "biased_mf"
    run.mkdir(parents=True)
    results = {
        "config": load_config("biased_mf").model_dump(mode="json"),
        "data": {
            "uri": str(tiny_prepared),
            "manifest_sha256": storage.sha256(str(tiny_prepared / "manifest.json")),
        },
        "test": {"mse": 1.0, "mae": 1.0},
        "versions": {"rayrec": "0.1.0"},
    }
    (run / "results.json").write_text(json.dumps(results))
    (run / "model.safetensors").write_bytes(b"")
    return run


def one_error_line(capsys: pytest.CaptureFixture, argv: list[str], *needles: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"rayrec {argv[0]}: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.usefixtures("no_ray")
@pytest.mark.parametrize("command", ["train", "tune", "encode", "demo"])
def test_missing_foreign_or_broken_data(
    command: str, tmp_path: Path, foreign: Path, broken: Path, capsys: pytest.CaptureFixture
) -> None:
    model = [] if command == "demo" else ["sifn"]
    storage_flag = [] if command == "encode" else [f"--storage={tmp_path / 'runs'}"]
    for data, why in (
        (tmp_path / "missing", "no such directory"),
        (foreign, "no manifest.json"),
        (broken, "not a readable prepared dataset"),
    ):
        one_error_line(
            capsys, [command, *model, f"--data={data}", *storage_flag], f"--data {data}", why
        )


@pytest.mark.usefixtures("no_ray")
def test_run_and_sweep_refusals(
    tmp_path: Path, tiny_prepared: Path, capsys: pytest.CaptureFixture
) -> None:
    runs = f"--storage={tmp_path / 'runs'}"
    data = f"--data={tiny_prepared}"
    one_error_line(
        capsys,
        ["train", "biased_mf", data, runs, "--resume", "--name=nope"],
        "--resume needs --name of an existing run",
    )
    one_error_line(
        capsys, ["train", "biased_mf", runs, "--resume", "auto"], "--resume auto needs --name"
    )
    one_error_line(
        capsys,
        ["train", "ubert_finetune", data, runs, f"--pretrained={tmp_path / 'none.safetensors'}"],
        "--pretrained",
        "no such file",
    )
    one_error_line(
        capsys,
        ["encode", "ubert_finetune", data, f"--pretrained={tmp_path / 'none.safetensors'}"],
        "--pretrained",
        "no such file",
    )
    one_error_line(
        capsys, ["tune", "biased_mf", data, runs, "--metric=val_nope"], "--metric val_nope"
    )
    one_error_line(capsys, ["tune", "biased_mf", runs, "--resume=nope"], "no sweep 'nope'")


@pytest.mark.usefixtures("no_ray")
def test_report_predict_recommend_refusals(
    tmp_path: Path, foreign: Path, fake_run: Path, capsys: pytest.CaptureFixture
) -> None:
    one_error_line(capsys, ["report", str(tmp_path / "missing")], "neither a run")
    one_error_line(capsys, ["report", str(foreign)], "neither a run")
    for command in ("predict", "recommend"):
        out = f"--out={tmp_path / command}"
        one_error_line(capsys, [command, str(foreign), out], "not a finished run")
        one_error_line(
            capsys, [command, str(fake_run), out, f"--data={foreign}"], f"--data {foreign}"
        )
    one_error_line(
        capsys, ["predict", str(fake_run), f"--out={tmp_path / 'p'}", "--batch-size=0"], "--batch"
    )
