"""The hand-written prepared dataset that every train/tune/serve test reads
(``tests/train/tiny_prepared.py``) against what the real ``rayrec prepare`` writes, and a
training run on the real pipeline's output.

The datasets of the real pipeline are this directory's session fixtures (``conftest.py``):
the shipped Musical Instruments reviews (one domain) and the synthetic 3-domain corpus (the
tiny fixture's shape: a target domain, two others, pretraining reviews).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rayrec.data import storage
from rayrec.data.prepared import PreparedDataset
from rayrec.train.config import load_config
from rayrec.train.trainer import fit
from tests.train.tiny_prepared import write_tiny_prepared

TABLES = [
    ("reviews",),
    *(("pairs", f"{split}.parquet") for split in ("train", "val", "test")),
    *(("ranking", f"{split}.parquet") for split in ("train", "val", "test")),
    ("ids", "users.parquet"),
    ("ids", "items.parquet"),
]
KEYED_BY_DOMAIN = ("counts.per_domain",)  # its keys are the domains' names (data, not format)


def manifest_keys(value: Any, prefix: str = "") -> set[str]:
    """Every key path of a manifest: ``a.b`` for nested objects, ``a[].b`` for the objects
    of a list, ``a.*`` for the entries of a mapping keyed by domain name."""
    keys: set[str] = set()
    if isinstance(value, dict):
        for key, child in value.items():
            path = f"{prefix}.*" if prefix in KEYED_BY_DOMAIN else f"{prefix}.{key}".lstrip(".")
            keys.add(path)
            keys |= manifest_keys(child, path)
    elif isinstance(value, list):
        for child in value:
            keys |= manifest_keys(child, f"{prefix}[]")
    return keys


def layout(root: Path) -> list[str]:
    """The dataset's files, with the token store's part files as one ``reviews/*.parquet``."""
    files = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    return sorted({"reviews/*.parquet" if f.startswith("reviews/") else f for f in files})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    return PreparedDataset(str(write_tiny_prepared(tmp_path_factory.mktemp("tiny-format"))))


@pytest.mark.parametrize("real_name", ["synthetic_corpus", "musical_instruments"])
def test_tiny_fixture_has_the_real_pipelines_format(
    real_name: str, tiny: PreparedDataset, request: pytest.FixtureRequest
) -> None:
    real: PreparedDataset = request.getfixturevalue(real_name)
    assert layout(Path(tiny.uri)) == layout(Path(real.uri))
    assert all(name.endswith(".parquet") for name in layout(Path(real.uri)) if "/" in name)
    for parts in TABLES:
        ours, theirs = tiny.table(*parts).schema, real.table(*parts).schema
        assert ours.remove_metadata() == theirs.remove_metadata(), (parts, ours, theirs)
    missing = manifest_keys(real.manifest) - manifest_keys(tiny.manifest)
    extra = manifest_keys(tiny.manifest) - manifest_keys(real.manifest)
    assert (sorted(missing), sorted(extra)) == ([], [])
    assert set(tiny.manifest["counts"]["per_domain"]) == set(tiny.manifest["domains"])


def test_manifest_keys_see_nesting_lists_and_domains() -> None:
    keys = manifest_keys(
        {"a": {"b": 1}, "sources": [{"uri": "x"}], "counts": {"per_domain": {"D": {"n": 1}}}}
    )
    assert keys == {
        "a",
        "a.b",
        "sources",
        "sources[].uri",
        "counts",
        "counts.per_domain",
        "counts.per_domain.*",
        "counts.per_domain.*.n",
    }


@pytest.mark.slow
def test_training_on_the_real_pipelines_output(
    musical_instruments: PreparedDataset, tmp_path: Path
) -> None:
    """NCF (ZeRO-1, bf16 autocast on CPU) for one epoch on the real Musical Instruments
    reviews as ``rayrec prepare`` wrote them: every training pair is read, and the test
    error is the real split's, near the global mean's error after 32 steps."""
    cfg = load_config(
        "ncf",
        overrides=[
            f"run.storage={tmp_path}",
            "run.name=ncf-real",
            "train.epochs=1",
            "train.lr=1e-2",
            "engine.zero_stage=1",
            "engine.precision=bf16",
        ],
    )
    results = fit(cfg, musical_instruments.uri)
    counts = musical_instruments.manifest["counts"]
    assert results["rows"]["train"] == counts["train"]
    assert results["steps"] == counts["train"] // cfg.train.batch_size
    manifest = storage.join(musical_instruments.uri, "manifest.json")
    assert results["data"]["manifest_sha256"] == storage.sha256(manifest)
    on_disk = json.loads((tmp_path / "ncf-real" / "results.json").read_text())
    assert on_disk["test"] == results["test"]

    train = musical_instruments.pairs("train").column("rating").to_numpy()
    test = musical_instruments.pairs("test").column("rating").to_numpy()
    mean_mse = float(np.mean((test - train.mean()) ** 2))  # 0.80 on this split
    assert results["test"]["mse"] == pytest.approx(results["test"]["rmse"] ** 2)
    assert 0.8 * mean_mse < results["test"]["mse"] < 1.25 * mean_mse, (results["test"], mean_mse)
