"""A run on S3 (the moto server on 127.0.0.1) that is killed, then resumed with ``rayrec train
--resume``, is the run that was never killed.

Two workers (DeepSpeed ZeRO-2: each rank writes its own optimizer partition into the
checkpoint), DeepCoNN (dropout 0.5), two epochs of two steps, ``run.max_failures=0``: the kill
ends the first command; the second, ``rayrec train ... --name NAME --storage s3://... --resume``
without the fault, finishes the run. Both tests compare the finished run with the same command
never killed (history without wall-clock fields, test and best validation metrics, steps,
``model.safetensors`` bit for bit).

* ``fault.kill_during_upload=1``: rank 0 dies in the middle of the upload of ``epoch_0001``:
  the first half of its checkpoint files are in the bucket, the others are not, and the
  checkpoint is never reported. (Rank 1 has usually uploaded and reported its ZeRO shard by
  then: the bucket can hold every DeepSpeed file of ``epoch_0001``, with rank 0's
  ``state.json`` missing.) The resumed run must continue from ``epoch_0000`` (the last
  checkpoint Ray Train registered), not from the half-written directory, and train epoch 1
  again; its upload then completes the directory.
* ``fault.kill_at_step=3``: rank 0 dies in the middle of epoch 1 (after ``epoch_0000`` is
  committed); the command is ``--resume auto``, and the very same command line, run again,
  continues from that checkpoint (as a RayJob re-applied, or retried by KubeRay's
  ``backoffLimit``, runs its entrypoint again unchanged) instead of refusing the existing run
  name or starting over, and trains epoch 1 again from its first step.

Equivalence holds because the epoch's permutation is a function of ``(seed, epoch)``, the
optimizer and schedule states are in the checkpoint, and dropout's generator is seeded per
epoch (a generator left where the fresh attempt's initialisation put it would draw other
masks). The uninterrupted run is also the determinism check: two fits of one seed agree
exactly, and ``train.seed=1`` gives another history, so the equality is not vacuous. The
kill right after a committed checkpoint, on two nodes, is ``test_multinode.py``'s.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fsspec
import pytest
from run_outcome import outcome
from safetensors.torch import load as load_safetensors

from rayrec.cli import main

pytestmark = [pytest.mark.usefixtures("ray_cluster"), pytest.mark.slow]

BUCKET = "rayrec-resume"
RUNS = f"s3://{BUCKET}/runs"


def command(data: Path, name: str, *extra: str) -> list[str]:
    """``rayrec train`` of the tests' run, storage on S3."""
    return [
        *("train", "deepconn", f"--data={data}", f"--storage={RUNS}", f"--name={name}"),
        *("--epochs=2", "--num-workers=2", "--set=engine.zero_stage=2"),
        *("--set=train.batch_size=8", "--set=train.max_steps_per_epoch=2"),
        *("--set=model.params.word_vectors=null", "--set=model.params.embed_dim=16"),
        "--set=model.params.freeze_word_vectors=false",
        *("--set=data.max_len=16", "--set=data.reviews_per_doc=2", "--set=run.max_failures=0"),
        *extra,
    ]


def bucket() -> fsspec.AbstractFileSystem:
    """An S3 filesystem of its own: no listing cached before the workers wrote, and none
    left in the instance rayrec's driver reads through (s3fs answers from its listings)."""
    return fsspec.filesystem("s3", skip_instance_cache=True)


def results_of(name: str) -> dict[str, Any]:
    return json.loads(bucket().cat(f"{BUCKET}/runs/{name}/results.json"))


def assert_same_run(name: str, reference: str) -> None:
    """``name`` computed what ``reference`` did, its exported weights bit for bit."""
    assert outcome(results_of(name)) == outcome(results_of(reference))
    fs = bucket()
    weights = load_safetensors(fs.cat(f"{BUCKET}/runs/{name}/model.safetensors"))
    expected = load_safetensors(fs.cat(f"{BUCKET}/runs/{reference}/model.safetensors"))
    assert weights.keys() == expected.keys()
    for key, tensor in weights.items():
        assert tensor.equal(expected[key]), key


@pytest.fixture(scope="module")
def uninterrupted(tiny_prepared: Path, s3_endpoint: str) -> str:
    """The tests' run, never killed; its name."""
    bucket().mkdir(BUCKET)
    assert main(command(tiny_prepared, "uninterrupted")) == 0
    assert results_of("uninterrupted")["fault_injected"] is None
    return "uninterrupted"


def kill_then_resume(data: Path, name: str, fault: str, auto: bool = False) -> dict[str, Any]:
    """Run the command with ``fault`` (it dies), then ``--resume`` it (with ``auto``: the
    same command line twice, ``--resume auto`` and the fault in both); the fault's record."""
    first = command(data, name, f"--set=fault.{fault}", *(["--resume", "auto"] if auto else []))
    with pytest.raises(Exception):  # noqa: B017 (Ray Train's failure after the SIGKILL)
        main(first)
    fs = bucket()
    run = f"{BUCKET}/runs/{name}"
    assert fs.exists(f"{run}/epoch_0000/state.json")
    assert not fs.exists(f"{run}/results.json")
    record = json.loads(fs.cat(f"{run}/fault_injected.json"))
    killed = record | {"files": sorted(p.removeprefix(f"{run}/") for p in fs.find(run))}

    assert main(first if auto else command(data, name, "--resume")) == 0
    results = results_of(name)
    assert results["resumed_at_epoch"] == 1
    assert [m["epoch"] for m in results["history"]] == [0, 1]
    assert [m["step"] for m in results["history"]] == [2, 4]
    return killed


@pytest.mark.timeout(600)
def test_killed_during_checkpoint_upload_resumes_from_the_last_complete_one(
    tiny_prepared: Path, uninterrupted: str
) -> None:
    killed = kill_then_resume(tiny_prepared, "upload", "kill_during_upload=1")
    assert (killed["rank"], killed["world_size"], killed["epoch"], killed["step"]) == (0, 2, 1, 4)
    upload = killed["interrupted_upload"]
    assert upload["checkpoint"] == "epoch_0001"
    assert upload["uploaded"] and upload["not_uploaded"]
    assert "state.json" in upload["uploaded"] + upload["not_uploaded"]
    # at the kill the bucket held a part of epoch_0001: rank 0's first files, not the others
    for path in upload["uploaded"]:
        assert f"epoch_0001/{path}" in killed["files"], path
    for path in upload["not_uploaded"]:
        assert f"epoch_0001/{path}" not in killed["files"], path

    # the resumed attempt trained epoch 1 again and completed the directory
    fs = bucket()
    for path in upload["uploaded"] + upload["not_uploaded"]:
        assert fs.exists(f"{BUCKET}/runs/upload/epoch_0001/{path}"), path
    assert_same_run("upload", uninterrupted)


@pytest.mark.timeout(600)
def test_the_same_command_resumes_auto_on_s3_after_a_kill_mid_epoch(
    tiny_prepared: Path, uninterrupted: str
) -> None:
    killed = kill_then_resume(tiny_prepared, "midepoch", "kill_at_step=3", auto=True)
    where = (killed["rank"], killed["epoch"], killed["step"], killed["checkpoint"])
    assert where == (0, 1, 3, None)
    assert killed["interrupted_upload"] is None
    assert not any(path.startswith("epoch_0001/") for path in killed["files"])
    assert results_of("midepoch")["fault_injected"]["step"] == 3  # the first attempt's kill
    assert_same_run("midepoch", uninterrupted)

    assert main(command(tiny_prepared, "seed1", "--set=train.seed=1")) == 0
    other = outcome(results_of("seed1"))["history"]
    same = outcome(results_of(uninterrupted))["history"]
    for epoch, same_seed in zip(other, same, strict=True):
        assert epoch["train_loss"] != same_seed["train_loss"]
        assert epoch["val_mse"] != same_seed["val_mse"]
