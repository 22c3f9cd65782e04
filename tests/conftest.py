"""Session-wide fixtures: one moto S3 server on 127.0.0.1 and one local Ray instance.

Ray is started once for the whole suite (each start costs seconds on 2 cores) and after the
S3 server, so that its worker processes inherit the S3 endpoint and the test credentials
(the AWS variables below are moto's dummies, not secrets). Both are stopped at the end.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Ray Train's preemption watcher (an extra actor per run, polling for node drains on spot
# clusters) has nothing to watch on a test machine; off, every fit starts one process less
os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")

# the real Amazon 2014 Musical Instruments 5-core file, shipped in the repository's data/
# (data/amazon-2014/SOURCE.md); found relative to this checkout, never outside it
REPO = Path(__file__).resolve().parents[1]
MUSICAL_INSTRUMENTS = REPO / "data" / "amazon-2014" / "Musical_Instruments_5.csv.zip"


# .ci/run sets it: there a test that would skip for want of kubectl fails instead (the deploy
# tests render k8s/ with it; a developer's machine without kubectl still skips them)
REQUIRE_KUBECTL = "RAYREC_REQUIRE_KUBECTL"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get(REQUIRE_KUBECTL) == "1":
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        if "kubectl" in str(reason):
            report.outcome = "failed"
            report.longrepr = f"{REQUIRE_KUBECTL}=1 (CI): must not skip: {reason}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible server (moto) on loopback, with the AWS_* environment pointing
    at it; stopped after the session."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in _S3_ENV}
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    yield endpoint
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


_S3_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)


@pytest.fixture(scope="session")
def ray_session(s3_endpoint: str) -> Iterator[None]:
    """One local Ray instance owned by this test session (``address="local"``: never a
    cluster that happens to run on this machine), shared by the data and training tests.

    4 logical CPUs on 2 cores: two training workers of 1 CPU each leave CPUs for Ray Data.
    Idle worker processes are kept (not killed after 1 s): every fit starts several actors
    and Ray Data tasks, and on two loaded cores each new Python process costs seconds.
    The dashboard runs because Ray's state API needs it: Ray Train's placement-group cleaner
    asks it whether a run's controller is alive, and without it the worker group of a trial
    that Tune stops early (ASHA) keeps its CPUs for ever.
    """
    import ray

    ray.init(
        address="local",
        num_cpus=4,
        include_dashboard=True,
        log_to_driver=False,
        _system_config={"idle_worker_killing_time_threshold_ms": 600_000},
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()
