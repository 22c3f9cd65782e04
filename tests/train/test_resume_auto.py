"""``rayrec train --resume auto``: one command line serves a run's first attempt and its retry,
and the resumed run is the uninterrupted one.

A RayJob that is re-applied, or retried by KubeRay (``backoffLimit``) after its cluster was
lost, runs its entrypoint again unchanged. The first attempt here is killed in the middle of
its second epoch, after its first checkpoint (``fault.kill_at_step=3`` with 2 steps per epoch
and ``run.max_failures=0``: nothing restarts it inside the attempt); the very same command
line, run again, continues from that checkpoint instead of refusing the existing run name or
starting over, and trains epoch 1 again from its first step.

Equivalence: the same command under another name, never killed, gives the very same history
(losses, validation metrics, steps), test metrics and ``model.safetensors`` (bit for bit):
the epoch's permutation is a function of ``(seed, epoch)``, the optimizer and schedule states
are in the checkpoint, and dropout's generator is seeded per epoch (DeepCoNN: dropout 0.5, so
a generator left where the fresh attempt's initialisation put it would draw other masks).
The uninterrupted run is also the determinism check: two fits of one seed agree exactly;
``train.seed=1`` gives another history. The kill right after a committed checkpoint, on two
nodes and S3, is ``test_multinode.py``'s.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from run_outcome import outcome
from safetensors.torch import load_file

from rayrec.cli import main

pytestmark = [pytest.mark.usefixtures("ray_cluster"), pytest.mark.slow]


def results_at(run_dir: Path) -> dict:
    """The ``results.json`` of a finished run."""
    return json.loads((run_dir / "results.json").read_text())


def command(data: Path, storage: Path, name: str = "retried", *extra: str) -> list[str]:
    """The job's command line, identical for every attempt."""
    return [
        *("train", "deepconn", f"--data={data}", f"--storage={storage}"),
        *(f"--name={name}", "--resume", "auto", "--epochs=2"),
        *("--set=train.batch_size=8", "--set=train.max_steps_per_epoch=2"),
        *("--set=model.params.embed_dim=16", "--set=data.max_len=16"),
        *("--set=data.reviews_per_doc=2", "--set=run.max_failures=0"),
        *extra,
    ]


@pytest.mark.timeout(600)
def test_killed_mid_epoch_the_same_command_continues_as_if_never_killed(
    tiny_prepared: Path, tmp_path: Path
) -> None:
    storage = tmp_path / "runs"
    run_dir = storage / "retried"
    killed = command(tiny_prepared, storage, "retried", "--set=fault.kill_at_step=3")
    with pytest.raises(Exception):  # noqa: B017 (Ray Train's failure after the SIGKILL)
        main(killed)
    assert (run_dir / "epoch_0000").is_dir() and not (run_dir / "epoch_0001").exists()
    assert not (run_dir / "results.json").exists()

    assert main(killed) == 0
    results = json.loads((run_dir / "results.json").read_text())
    assert results["resumed_at_epoch"] == 1
    fault = results["fault_injected"]
    assert (fault["epoch"], fault["step"], fault["checkpoint"]) == (1, 3, None)
    assert [m["epoch"] for m in results["history"]] == [0, 1]
    assert [m["step"] for m in results["history"]] == [2, 4]
    assert results["epochs_run"] == 2

    assert main(command(tiny_prepared, storage, "uninterrupted")) == 0
    assert outcome(results_at(run_dir)) == outcome(results_at(storage / "uninterrupted"))
    resumed = load_file(run_dir / "model.safetensors")
    uninterrupted = load_file(storage / "uninterrupted" / "model.safetensors")
    assert resumed.keys() == uninterrupted.keys()
    for key, tensor in resumed.items():
        assert tensor.equal(uninterrupted[key]), key

    assert main(command(tiny_prepared, storage, "seed1", "--set=train.seed=1")) == 0
    other = outcome(results_at(storage / "seed1"))["history"]
    same = outcome(results_at(run_dir))["history"]
    for epoch, same_seed in zip(other, same, strict=True):
        assert epoch["train_loss"] != same_seed["train_loss"]
        assert epoch["val_mse"] != same_seed["val_mse"]


def test_resume_auto_needs_a_name(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "biased_mf", f"--storage={tmp_path}", "--resume", "auto"]) == 2
    assert "--resume auto needs --name" in capsys.readouterr().err
