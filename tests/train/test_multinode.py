"""Multi-node training with a killed worker: two Ray nodes (``ray.cluster_utils.Cluster``),
one training worker on each, the prepared data and the checkpoints on the moto S3 server.

The run itself is driven by ``multinode_run.py`` in a child process (a process can join only
one Ray cluster; this session's tests share a local one). Worker rank 1, on the second node,
is SIGKILLed right after epoch 0 is checkpointed; ``FailureConfig(max_failures=1)`` restarts
the worker group, which resumes from ``epoch_0000`` on S3 and finishes epoch 1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import fsspec
import pytest

from rayrec.data import storage

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).with_name("multinode_run.py")
BUCKET = "rayrec-multinode"


@pytest.mark.timeout(900)
def test_two_nodes_s3_checkpoints_killed_worker_resumes(
    tiny_prepared: Path, s3_endpoint: str
) -> None:
    fs = fsspec.filesystem("s3")
    fs.mkdir(BUCKET)
    data, runs = f"s3://{BUCKET}/prepared", f"s3://{BUCKET}/runs"
    fs.put(str(tiny_prepared), f"{BUCKET}/prepared", recursive=True)
    assert storage.exists(storage.join(data, "manifest.json"))

    done = subprocess.run(
        [sys.executable, str(SCRIPT), data, runs],
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-6000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    results = report["results"]

    # one worker on each node
    assert len(report["nodes"]) == 2
    assert sorted(results["worker_nodes"]) == report["nodes"]
    # rank 1 was killed after epoch 0, on a node of this cluster, as the killed worker
    # recorded it; the restarted attempt continued from that checkpoint
    killed = results["fault_injected"]
    assert {k: killed[k] for k in ("rank", "world_size", "epoch", "step", "checkpoint")} == {
        "rank": 1,
        "world_size": 2,
        "epoch": 0,
        "step": 2,
        "checkpoint": "epoch_0000",
    }
    assert killed["node_id"] in report["nodes"]
    assert results["resumed_at_epoch"] == 1
    assert [m["epoch"] for m in results["history"]] == [0, 1]
    assert [m["step"] for m in results["history"]] == [2, 4]
    assert results["epochs_run"] == 2 and results["steps"] == 4
    # everything on S3: checkpoints (both ranks' ZeRO shards), weights, results
    output = f"{BUCKET}/runs/multinode"
    assert results["output"] == f"s3://{output}"
    assert json.loads(fs.cat(f"{output}/results.json"))["steps"] == 4
    assert fs.exists(f"{output}/model.safetensors")
    checkpoints = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(output) if "/epoch_" in p)
    assert checkpoints[-1] == "epoch_0001"
    files = " ".join(fs.find(f"{output}/epoch_0001"))
    assert "state.json" in files
    # ZeRO-2: each rank wrote its own optimizer partition into the one checkpoint
    assert "zero_pp_rank_0_" in files and "zero_pp_rank_1_" in files, files
