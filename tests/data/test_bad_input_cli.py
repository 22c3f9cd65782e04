"""Bad real input through the ``rayrec prepare`` command line, as a user runs it (a subprocess):
exactly one line on stderr, exit code 2, nothing that looks like a prepared dataset, Ray's
own output in the log file the line names. The subprocesses join the test session's Ray
instance (``RAY_ADDRESS``) instead of starting their own: seconds, not half a minute."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rayrec.cli import main
from rayrec.logs import configure
from tests.data.fixtures import amazon2018_lines, write_amazon2018

SMALL = ["--negatives", "2", "--max-len", "32", "--tokenize-actors", "1"]


@pytest.fixture
def cli(ray_session, tmp_path: Path):
    import ray

    env = os.environ | {
        "RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        "RAYREC_LOG_DIR": str(tmp_path / "logs"),
        "HF_HUB_OFFLINE": "1",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "rayrec.cli", "prepare", *SMALL, *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    return run


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rayrec prepare: error: ")
    assert all(line.startswith("[prepare] ") for line in result.stdout.splitlines()), result.stdout
    return lines[0]


def repeats_file(path: Path) -> Path:
    """An Amazon 2018 file in which almost every line repeats a user-item pair: 3 users x 3
    items written 4 times; de-duplication leaves 9 reviews and the 5-core filter none."""
    return write_amazon2018(path, amazon2018_lines(3, 3) * 4)


def test_nothing_left_after_filtering_is_one_line_and_writes_nothing(cli, tmp_path: Path) -> None:
    source = repeats_file(tmp_path / "Kindle_Store_5.json.gz")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")  # --out may be an existing directory
    result = cli("--source", f"amazon2018:{source}", "--out", str(out))
    assert result.returncode == 2
    line = _one_line(result)
    assert "nothing to prepare: of 36 records read, no Kindle_Store review is left" in line
    assert "duplicate 27 (the same user and item again)" in line
    assert "kcore 9 (users or items with fewer than 5 reviews, --kcore)" in line
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # left as it was


def test_truncated_gzip_is_one_line_naming_the_log_with_the_traceback(cli, tmp_path: Path) -> None:
    full = write_amazon2018(tmp_path / "full.json.gz", amazon2018_lines(30, 30))
    cut = tmp_path / "Cut_5.json.gz"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    result = cli("--source", f"amazon2014:{cut}", "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    line = _one_line(result)
    assert f"{cut}: the compressed file is truncated or corrupt after" in line
    assert line.endswith(".log)") and " (traceback in " in line
    assert "retried" not in line  # Ray Data's retry advice, appended to the task's error
    log = Path(line.rsplit(" (traceback in ", 1)[1][:-1])
    assert log.parent == tmp_path / "logs" and log.is_file()
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "SourceError" in text
    assert "read_source" in text  # the read task's own frames
    assert "Using address" in text  # Ray's start-up line: in the file only
    assert "Progress bars disabled" in text  # Ray Data's notice of the policy: likewise
    assert not (tmp_path / "out").exists()


def test_a_prepare_that_succeeds_prints_only_rayrecs_lines(cli, tmp_path: Path) -> None:
    """Ray 2.60's driver prints an ERROR line of its C++ core for each Ray Data actor pool
    (``core_worker.cc``, ray-project/ray#53727: the tokenizer's): it belongs in the log file,
    with Ray's own lines, not on the terminal."""
    source = write_amazon2018(tmp_path / "Kindle_Store_5.json.gz", amazon2018_lines(8, 8))
    out = tmp_path / "out"
    result = cli("--source", f"amazon2018:{source}", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(f"prepared {out} in ") and result.stderr.count("\n") == 1
    ours = [line for line in result.stdout.splitlines() if not line.startswith("[prepare] ")]
    assert ours[0].split() == ["domain", "reviews", "users", "items"], result.stdout
    assert not any("core_worker" in line or "pid=" in line for line in ours), result.stdout
    (log,) = (tmp_path / "logs").iterdir()
    assert "core_worker.cc" in log.read_text()  # Ray's line, in the file instead


def test_verbose_shows_ray_output_and_the_traceback(
    ray_session, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("RAYREC_LOG_DIR", str(tmp_path / "logs"))
    full = write_amazon2018(tmp_path / "full.json.gz", amazon2018_lines(30, 30))
    cut = tmp_path / "Cut_5.json.gz"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    try:
        code = main(["prepare", *SMALL, "--verbose", "--source", f"amazon2014:{cut}",
                     "--out", str(tmp_path / "out")])  # fmt: skip
    finally:
        configure("test")  # back to the default policy for the tests that follow
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback (most recent call last)" in err and "SourceError" in err
    assert err.count("rayrec prepare: error:") == 1


def test_nothing_left_in_process_leaves_no_out(ray_session, tmp_path: Path, capsys) -> None:
    source = repeats_file(tmp_path / "Kindle_Store_5.json.gz")
    out = tmp_path / "new" / "out"
    code = main(["prepare", *SMALL, "--source", f"amazon2018:{source}", "--out", str(out)])
    assert code == 2
    assert "nothing to prepare" in capsys.readouterr().err
    assert not out.exists()


def test_verbose_leaves_rays_console_handlers_unfiltered(tmp_path: Path, monkeypatch) -> None:
    """(Ray's console handlers write to the stream they were created with, which capsys
    does not see: the handlers are checked instead.)"""
    import logging

    monkeypatch.setenv("RAYREC_LOG_DIR", str(tmp_path))

    def filtered() -> dict[str, bool]:
        return {
            name: any(
                type(f).__name__ == "_ConsoleFilter"
                for h in logging.getLogger(name).handlers
                for f in h.filters
            )
            for name in ("ray", "ray.data")
        }

    try:
        configure("test", verbose=True)
        assert filtered() == {"ray": False, "ray.data": False}
    finally:
        configure("test")
    assert filtered() == {"ray": True, "ray.data": True}
