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
def ray_cluster(ray_session: None) -> None:
    """The suite's one local Ray instance (``ray_session`` in ``tests/conftest.py``)."""
