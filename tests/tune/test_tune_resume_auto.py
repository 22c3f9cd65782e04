"""``rayrec tune --resume auto --name NAME``: resumes the sweep NAME if its sweep.json exists
under --storage, starts it otherwise (the decision only: Ray and the Tuner are replaced)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from rayrec.cli import main
from rayrec.tune import cli as tune_cli
from rayrec.tune import sweep


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch, tiny_data: Path) -> list[tuple[str, str]]:
    """What run_tune asked of the sweep module: ("start" | "resume", name)."""
    seen: list[tuple[str, str]] = []
    spec = SimpleNamespace(metric="val_mse", data_uri=str(tiny_data))
    result = SimpleNamespace(table="", best=None, files={}, rows=[], directory="x")
    monkeypatch.setattr(tune_cli, "ensure_ray", lambda: None)
    monkeypatch.setattr(sweep, "load_spec", lambda root, name: spec)
    monkeypatch.setattr(sweep, "resume", lambda root, name: seen.append(("resume", name)) or result)
    monkeypatch.setattr(
        sweep, "start", lambda spec, space, root, name: seen.append(("start", name)) or result
    )
    return seen


def tune(storage: Path, data: Path) -> list[str]:
    return [
        *("tune", "biased_mf", f"--storage={storage}", f"--data={data}"),
        *("--name=sweep1", "--resume", "auto", "--num-samples=1"),
    ]


def test_a_missing_sweep_starts_and_an_existing_one_resumes(
    tmp_path: Path, tiny_data: Path, calls
) -> None:
    assert main(tune(tmp_path, tiny_data)) == 0
    (tmp_path / "sweep1").mkdir()
    (tmp_path / "sweep1" / sweep.SWEEP_FILE).write_text(json.dumps({}))
    assert main(tune(tmp_path, tiny_data)) == 0
    assert calls == [("start", "sweep1"), ("resume", "sweep1")]


def test_auto_needs_a_name_and_is_no_name(tmp_path: Path, calls, capsys) -> None:
    assert main(["tune", "biased_mf", f"--storage={tmp_path}", "--resume", "auto"]) == 2
    assert "--resume auto needs --name" in capsys.readouterr().err
    assert main(["tune", "biased_mf", f"--storage={tmp_path}", "--name=auto"]) == 2
    assert "--name auto is reserved" in capsys.readouterr().err
    assert calls == []
