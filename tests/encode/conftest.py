"""Fixtures for the review-state store tests: the tiny prepared dataset of ``tests/train``
(put on ``sys.path`` as in ``tests/tune/conftest.py``) and stores built from it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))

from tiny_prepared import write_tiny_prepared  # noqa: E402


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_prepared(tmp_path_factory.mktemp("encode-prepared"))
