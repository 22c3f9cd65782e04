"""Prepared datasets shared by the data tests (each preparation costs tens of seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rayrec.data.pipeline import PrepareConfig, prepare
from rayrec.data.prepared import PreparedDataset
from tests.conftest import MUSICAL_INSTRUMENTS

MI_SOURCE = f"amazon2014:{MUSICAL_INSTRUMENTS}"


def prepare_quietly(**fields) -> PreparedDataset:
    config = PrepareConfig(**{"max_len": 64, "tokenize_actors": 1, **fields})
    prepare(config, report=lambda line: None)
    return PreparedDataset(config.out)


@pytest.fixture(scope="session")
def musical_instruments(ray_session, tmp_path_factory) -> PreparedDataset:
    """The real Musical Instruments 5-core file, prepared with seed 0."""
    out = tmp_path_factory.mktemp("mi") / "seed0"
    return prepare_quietly(sources=[MI_SOURCE], out=str(out), seed=0)


@pytest.fixture(scope="session")
def synthetic_corpus(ray_session, tmp_path_factory) -> PreparedDataset:
    """The synthetic 3-domain corpus (Electronics target, Kindle and Yelp as other domains)."""
    root: Path = tmp_path_factory.mktemp("synthetic")
    return prepare_quietly(
        sources=[f"synthetic:{root / 'raw'}"],
        out=str(root / "prepared"),
        synthetic_reviews=3000,
    )
