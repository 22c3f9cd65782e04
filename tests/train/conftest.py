"""Fixtures for training tests: a tiny prepared dataset (written in the prepared format)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from tiny_prepared import write_tiny_prepared  # noqa: E402


@pytest.fixture(scope="session")
def tiny_prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_prepared(tmp_path_factory.mktemp("prepared"))


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray instance owned by this test session (never a cluster of someone else's).

    4 logical CPUs on 2 cores: two training workers of 1 CPU each leave CPUs for Ray Data."""
    import ray

    # idle worker processes are kept (not killed after 1 s): every fit starts several actors
    # and Ray Data tasks, and on two loaded cores each new Python process costs seconds
    ray.init(
        address="local",
        num_cpus=4,
        include_dashboard=False,
        _system_config={"idle_worker_killing_time_threshold_ms": 600_000},
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()
