"""``rayrec train --resume auto``: one command line serves a run's first attempt and its retry.

A RayJob that is re-applied, or retried by KubeRay (``backoffLimit``) after its cluster was
lost, runs its entrypoint again unchanged. The first attempt here is killed right after its
first checkpoint (``fault.kill_after_epoch=0`` with ``run.max_failures=0``: nothing restarts it
inside the attempt); the very same command line, run again, continues from that checkpoint
instead of refusing the existing run name or starting over.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rayrec.cli import main

pytestmark = [pytest.mark.usefixtures("ray_cluster"), pytest.mark.slow]


def command(data: Path, storage: Path) -> list[str]:
    """The job's command line, identical for every attempt."""
    return [
        *("train", "biased_mf", f"--data={data}", f"--storage={storage}"),
        *("--name=retried", "--resume", "auto", "--epochs=2"),
        *("--set=train.batch_size=8", "--set=train.max_steps_per_epoch=2"),
        *("--set=run.max_failures=0", "--set=fault.kill_after_epoch=0"),
    ]


@pytest.mark.timeout(600)
def test_killed_after_first_checkpoint_the_same_command_continues(
    tiny_prepared: Path, tmp_path: Path
) -> None:
    storage = tmp_path / "runs"
    run_dir = storage / "retried"
    with pytest.raises(Exception):  # noqa: B017 (Ray Train's failure after the SIGKILL)
        main(command(tiny_prepared, storage))
    assert (run_dir / "epoch_0000").is_dir()
    assert not (run_dir / "results.json").exists()

    assert main(command(tiny_prepared, storage)) == 0
    results = json.loads((run_dir / "results.json").read_text())
    assert results["resumed_at_epoch"] == 1
    assert [m["epoch"] for m in results["history"]] == [0, 1]
    assert results["epochs_run"] == 2


def test_resume_auto_needs_a_name(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "biased_mf", f"--storage={tmp_path}", "--resume", "auto"]) == 2
    assert "--resume auto needs --name" in capsys.readouterr().err
