"""cluster/local_cluster.py starts a head and a worker node, and stops them leaving nothing."""

from __future__ import annotations

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

SCRIPT = REPO / "cluster" / "local_cluster.py"
# Not the script's default port: a developer's own local cluster is left alone.
PORT = 26479


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


@pytest.mark.timeout(600)
def test_two_nodes_start_and_stop_clean(temp_dir: Path) -> None:
    try:
        started = run("start", temp_dir, "--workers", "1", "--cpus-per-node", "1", "--no-dashboard")
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"Ray cluster of 2 nodes at 127.0.0.1:{PORT}" in started.stdout
        token = temp_dir / "auth_token"
        assert stat.S_IMODE(token.stat().st_mode) == 0o600
        assert f"RAY_AUTH_TOKEN_PATH={token}" in started.stdout
        status = run("status", temp_dir)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "2 of 2 nodes alive" in status.stdout
    finally:
        stopped = run("stop", temp_dir)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert leftovers(temp_dir) == []
