"""The real reviews shipped in the repository's ``data/`` and the function that finds them."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pandas as pd
import pytest

from rayrec.data.real import musical_instruments_path
from tests.conftest import MUSICAL_INSTRUMENTS, REPO


def test_musical_instruments_path_is_the_checkouts_file() -> None:
    path = musical_instruments_path()
    assert path == MUSICAL_INSTRUMENTS
    assert path.is_relative_to(REPO)


def test_shipped_file_matches_its_source_sha256() -> None:
    """SOURCE.md's sha256 is the file's: the copy is the documented one, whole."""
    source = (MUSICAL_INSTRUMENTS.parent / "SOURCE.md").read_text()
    documented = re.search(r"sha256 \(zip\): ([0-9a-f]{64})", source)
    assert documented is not None
    assert hashlib.sha256(MUSICAL_INSTRUMENTS.read_bytes()).hexdigest() == documented.group(1)
    reviews = pd.read_csv(MUSICAL_INSTRUMENTS, usecols=["reviewerID", "asin", "overall"])
    assert len(reviews) == 10_261
    assert (reviews["reviewerID"].nunique(), reviews["asin"].nunique()) == (1_429, 900)


def test_missing_file_names_the_expected_path(tmp_path: Path) -> None:
    expected = tmp_path / "amazon-2014" / "Musical_Instruments_5.csv.zip"
    with pytest.raises(FileNotFoundError, match=re.escape(str(expected))):
        musical_instruments_path(tmp_path)
