"""Fixtures for the report tests: the tiny prepared dataset of ``tests/train`` and a PNG check.

``tests/train`` is a rootless test directory whose helpers are imported by module name; it is
put on ``sys.path`` here so that this directory also runs on its own (``pytest tests/report``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))

from tiny_prepared import write_tiny_prepared  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_PNG_BYTES = 15_000  # the report's smallest canvas with empty axes is about 10 KB


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_prepared(tmp_path_factory.mktemp("report-prepared"))


@pytest.fixture(scope="session")
def check_png() -> Callable[[bytes], None]:
    """A check that bytes are a PNG file with more drawn on it than empty axes."""

    def check(data: bytes) -> None:
        assert data[:8] == PNG_SIGNATURE
        assert len(data) > MIN_PNG_BYTES, len(data)

    return check
