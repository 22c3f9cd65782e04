"""cluster/local_cluster.py starts a head and a worker node with token authentication; a
U-BERT pretraining job goes through ``ray job submit --working-dir . -- python
jobs/pretrain_ubert.py``; the script stops the cluster leaving nothing; the same job run
locally computes the same losses.

Token authentication (on by default for local clusters since Ray 2.59) stays on: the script
writes a fresh token and every node and client reads it from ``RAY_AUTH_TOKEN_PATH``. The job
is checked to fail without the token.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from deploy_manifests import REPO

sys.path.insert(0, str(REPO / "tests" / "train"))
from run_outcome import TIMING  # noqa: E402
from tiny_prepared import write_tiny_prepared  # noqa: E402

SCRIPT = REPO / "cluster" / "local_cluster.py"
# Not the script's default port: a developer's own local cluster is left alone.
PORT = 26479
JOB_SETTINGS = [
    "--set=model.params.backbone=tiny",
    "--set=data.max_len=16",
    "--set=data.pretrain_val_every=4",
    "--set=train.batch_size=8",
    "--set=train.max_steps_per_epoch=2",
    "--set=train.max_eval_batches=1",
    "--epochs=1",
]


@pytest.fixture
def temp_dir() -> Iterator[Path]:
    """A short temp dir under /tmp (Ray's socket paths must stay short)."""
    path = Path(tempfile.mkdtemp(prefix="rrlc-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run(command: str, temp_dir: Path, *flags: str) -> subprocess.CompletedProcess:
    """Run one command of the script against the test's cluster."""
    return subprocess.run(
        [sys.executable, SCRIPT, command, "--port", str(PORT), "--temp-dir", temp_dir, *flags],
        capture_output=True,
        text=True,
        timeout=300,
    )


def leftovers(temp_dir: Path) -> list[str]:
    """Raylets and GCS servers of the cluster, and anything still listening on its ports."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] in ("raylet", "gcs_server") and str(temp_dir) in cmdline:
            found.append(f"{proc.info['name']} {proc.pid}")
    ports = {PORT, PORT + 1, PORT + 2}
    found += [
        f"listener on {c.laddr.port}"
        for c in psutil.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port in ports
    ]
    return found


def submit(temp_dir: Path, data: Path, storage: Path, token: bool) -> subprocess.CompletedProcess:
    """``ray job submit --working-dir . -- python jobs/pretrain_ubert.py`` with small settings,
    with or without the cluster's token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["RAY_AUTH_MODE"] = "token"
    if token:
        env["RAY_AUTH_TOKEN_PATH"] = str(temp_dir / "auth_token")
    else:
        env["RAY_AUTH_TOKEN"] = "not-the-token"
    command = [
        *(sys.executable, "-m", "ray.scripts.scripts", "job", "submit"),
        f"--address=http://127.0.0.1:{PORT + 1}",
        "--working-dir=.",
        "--",
        *("python", "jobs/pretrain_ubert.py", f"--data={data}", f"--storage={storage}"),
        *("--name=submitted", *JOB_SETTINGS),
    ]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.timeout(900)
def test_two_nodes_job_submit_and_clean_stop(temp_dir: Path, tmp_path: Path) -> None:
    data = write_tiny_prepared(tmp_path / "prepared")
    storage = tmp_path / "runs"
    try:
        started = run(
            "start", temp_dir, "--workers", "1", "--cpus-per-node", "2", "--timeout", "300"
        )
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"Ray cluster of 2 nodes at 127.0.0.1:{PORT}" in started.stdout
        token = temp_dir / "auth_token"
        assert stat.S_IMODE(token.stat().st_mode) == 0o600
        assert f"RAY_AUTH_TOKEN_PATH={token}" in started.stdout
        status = run("status", temp_dir)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "2 of 2 nodes alive" in status.stdout

        # refused for its token (HTTP 403 from the dashboard, Ray's AuthenticationError), not
        # for any other reason a submission can fail (address, working dir, entrypoint)
        refused = submit(temp_dir, data, storage, token=False)
        said = refused.stdout + refused.stderr
        assert refused.returncode != 0
        assert "Authentication failed" in said, said[-3000:]
        assert "token is invalid or incorrect" in said, said[-3000:]
        assert not storage.exists()

        job = submit(temp_dir, data, storage, token=True)
        assert job.returncode == 0, job.stdout[-4000:] + job.stderr[-4000:]
        assert "succeeded" in job.stdout
        results = json.loads((storage / "submitted" / "results.json").read_text())
        assert results["model"] == "ubert_pretrain" and results["epochs_run"] == 1
        assert (storage / "submitted" / "model.safetensors").stat().st_size > 0
    finally:
        stopped = run("stop", temp_dir)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert leftovers(temp_dir) == []

    # the same job run by `python jobs/pretrain_ubert.py` on a private local instance computes
    # what the submitted one computed on the two-node cluster (issue: best val loss 8.7007 in
    # a local run, 8.2872 submitted, before dropout was seeded per (seed, epoch, rank))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")} | {
        "RAY_ADDRESS": "local"
    }
    local = subprocess.run(
        [sys.executable, "jobs/pretrain_ubert.py", f"--data={data}", f"--storage={storage}"]
        + ["--name=local", *JOB_SETTINGS],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert local.returncode == 0, local.stdout[-4000:] + local.stderr[-4000:]
    ran_here = json.loads((storage / "local" / "results.json").read_text())
    for key in ("best_val", "best_epoch", "steps"):
        assert ran_here[key] == results[key], key
    assert [without_timing(m) for m in ran_here["history"]] == [
        without_timing(m) for m in results["history"]
    ]


def without_timing(metrics: dict) -> dict:
    """An epoch's metrics without its wall-clock fields."""
    return {k: v for k, v in metrics.items() if k not in TIMING}
