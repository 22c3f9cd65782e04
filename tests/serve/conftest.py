"""Fixtures for the serving tests: the tiny prepared dataset of ``tests/train`` (put on
``sys.path`` as in ``tests/tune/conftest.py``) and real runs trained on it once per session
with :func:`rayrec.train.trainer.fit`: biased MF (ids only), SIFN with the tiny BERT (text
documents, frozen encoder read from a review-state store) and BERT-RS with the tiny BERT
(ranking, pair texts)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))

from tiny_prepared import write_tiny_prepared  # noqa: E402

SHORT = ["train.batch_size=8", "train.max_steps_per_epoch=3", "train.eval_batch_size=7"]
# wide factors (N(0, 1)): some predictions fall off the 1-5 scale, so the clip is exercised
MF = ["model.params.factors=4", "model.params.init_std=1.0"]
TEXT = ["model.params.backbone=tiny", "data.max_len=16", "data.reviews_per_doc=2"]


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_prepared(tmp_path_factory.mktemp("serve-prepared"))


def _fit(storage: Path, data: Path, model: str, *overrides: str) -> dict[str, Any]:
    from rayrec.train.config import load_config
    from rayrec.train.trainer import fit

    cfg = load_config(
        model, overrides=[f"run.storage={storage}", f"run.name={model}", *SHORT, *overrides]
    )
    return fit(cfg, str(data))


@pytest.fixture(scope="session")
def run_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve-runs")


@pytest.fixture(scope="session")
def mf_run(tiny_data: Path, run_root: Path, ray_session: None) -> Path:
    """A biased MF run (2 epochs): its run directory."""
    _fit(run_root, tiny_data, "biased_mf", "train.epochs=2", *MF)
    return run_root / "biased_mf"


@pytest.fixture(scope="session")
def sifn_run(tiny_data: Path, run_root: Path, ray_session: None) -> Path:
    """A SIFN run on the tiny BERT (frozen: its states come from the data's store)."""
    _fit(run_root, tiny_data, "sifn", "train.epochs=1", *TEXT)
    return run_root / "sifn"


@pytest.fixture(scope="session")
def bertrs_run(tiny_data: Path, run_root: Path, ray_session: None) -> Path:
    """A BERT-RS run on the tiny BERT."""
    _fit(run_root, tiny_data, "bertrs", "train.epochs=1", *TEXT, "data.pair_max_len=32")
    return run_root / "bertrs"
