"""The data a run without ``--data`` uses, prepared on first use into the cache.

``real_dataset()`` prepares the real Musical Instruments 5-core reviews shipped in the
repository's ``data/`` (the main job's data, :mod:`rayrec.train.demo`) with ``rayrec
prepare``'s defaults. ``default_dataset()`` prepares the synthetic cross-domain corpus
(:mod:`rayrec.data.synthetic`, three domains sharing users; the first is the target) with
:func:`rayrec.data.pipeline.prepare` into ``$RAYREC_CACHE/prepared/<name>`` (default
``~/.cache/rayrec``) and reuses it afterwards (a directory with a manifest is complete).

``EMBEDDED_SETTINGS``: the quick settings a run on the embedded corpus gets on top of its
model's preset (short reviews, few steps), so that every job and the demo finish within
minutes on two CPU cores. The presets themselves are for real data.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rayrec.data import storage
from rayrec.data.pipeline import PrepareConfig, prepare
from rayrec.data.prepared import MANIFEST

DEMO_CORPUS: dict[str, Any] = {
    "synthetic_reviews": 1500,  # per domain, before the 5-core filter
    "max_len": 64,
    "reviews_per_user": 4,
    "reviews_per_item": 4,
    "negatives": 49,
    "seed": 0,
}


EMBEDDED_SETTINGS: dict[str, list[str]] = {
    "ubert_pretrain": [
        "data.max_len=32",
        "train.epochs=1",
        "train.batch_size=16",
        "train.max_steps_per_epoch=60",
        "train.lr=1e-4",
        "train.log_every=10",
    ],
    "ubert_finetune": [
        "data.max_len=32",
        "data.reviews_per_doc=2",
        "train.epochs=2",
        "train.batch_size=16",
        "train.max_steps_per_epoch=25",
        "train.lr=1e-4",
        "train.log_every=5",
    ],
    "sifn": [
        "data.max_len=32",
        "data.reviews_per_doc=3",
        "train.epochs=2",
        "train.batch_size=16",
        "train.max_steps_per_epoch=20",
        "train.log_every=5",
    ],
    "safmr": [
        "model.params.target_epochs=1",
        "model.params.max_reviews=4",
        "model.params.max_review_len=32",
        "data.max_len=32",
        "data.reviews_per_doc=4",
        "train.epochs=3",
        "train.batch_size=32",
        "train.log_every=10",
    ],
    "bertrs": [
        "data.pair_max_len=48",
        "train.epochs=1",
        "train.batch_size=16",
        "train.max_steps_per_epoch=20",
        "train.eval_batch_size=50",
        "train.log_every=5",
    ],
    "deepconn": [
        "data.max_len=32",
        "data.reviews_per_doc=4",
        "train.epochs=3",
        "train.batch_size=32",
    ],
    "global_mean": ["train.epochs=2"],
    "biased_mf": ["train.epochs=10", "train.batch_size=64", "train.lr=2e-2", "train.log_every=50"],
    "ncf": ["train.epochs=5", "train.batch_size=64"],
    "neumf": ["train.epochs=3", "train.batch_size=64"],
}


def cache_root() -> Path:
    return Path(os.environ.get("RAYREC_CACHE", Path.home() / ".cache" / "rayrec"))


REAL_CORPUS: dict[str, Any] = {"max_len": 128, "seed": 0}  # rayrec prepare's defaults


def real_dataset(report: Callable[[str], None] = print, **changes: Any) -> str:
    """URI of the shipped Musical Instruments 5-core reviews prepared with ``REAL_CORPUS``
    (updated with ``changes``: e.g. ``seed=1`` for another split), preparing them into the
    cache on first use (:func:`rayrec.data.real.musical_instruments_path`)."""
    from rayrec.data.real import musical_instruments_path

    params = REAL_CORPUS | changes
    source = musical_instruments_path()
    key = json.dumps({"file": storage.sha256(str(source)), **params}, sort_keys=True)
    out = cache_root() / "prepared" / f"mi-seed{params['seed']}-{_digest(key)}"
    what = f"the shipped Musical Instruments reviews ({source.name})"
    return _cached(out, f"amazon2014:{source}", params, what, report)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _cached(
    out: Path, source: str, params: dict[str, Any], what: str, report: Callable[[str], None]
) -> str:
    """``out`` if it holds a prepared dataset (its manifest is written last), else ``source``
    prepared into it with ``params``."""
    if storage.exists(storage.join(str(out), MANIFEST)):
        return str(out)
    report(f"preparing {what} into {out}")
    prepare(PrepareConfig(sources=[source], out=str(out), overwrite=True, **params), report)
    return str(out)


def default_dataset(report: Callable[[str], None] = print, **changes: Any) -> str:
    """URI of the prepared embedded corpus (``DEMO_CORPUS`` updated with ``changes``),
    preparing it if it is not in the cache yet."""
    params = DEMO_CORPUS | changes
    out = cache_root() / "prepared" / f"synthetic-{_digest(json.dumps(params, sort_keys=True))}"
    return _cached(out, f"synthetic:{out}-raw", params, "the embedded synthetic corpus", report)
