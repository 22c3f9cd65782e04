"""The benchmark scripts of ``bench/`` import each other by module name (they run as
``python bench/compare.py``); that folder and ``tests/train`` (its tiny prepared dataset) are
put on ``sys.path`` here."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "train"))

from tiny_prepared import write_tiny_prepared  # noqa: E402


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_prepared(tmp_path_factory.mktemp("bench-prepared"))
