"""The frozen-encoder fast path of a sweep: every trial reads one review-state store.

A model whose text encoder is (partly) frozen gives each review the same states in every step
of every trial, so a sweep of N trials would pay for the same encoder passes N times over.
Before the first trial the sweep driver attaches the run's review-state store
(:mod:`rayrec.encode.plan`: the store under ``<data>/review_states/``, built by ``rayrec
encode``'s Ray Data job if it is absent) and every trial's model reads it by review id
(``model.params.review_states``). The store is keyed by the dataset's manifest hash, the
backbone, the review length and the layer, so later sweeps and runs on the same data reuse it.

It applies when the run would read a store (:func:`~rayrec.encode.plan.store_request`) and no
swept key changes what a review's states are (:data:`STATE_KEYS`);
``RAYREC_TUNE_ENCODE_ONCE=0`` turns it off (to measure what it saves).
"""

from __future__ import annotations

import os
from typing import Any

from rayrec.data.prepared import PreparedDataset
from rayrec.encode.plan import attach_store, store_request
from rayrec.train.config import TrainConfig
from rayrec.tune.space import SearchSpace

STATE_KEYS = (
    "model.params.backbone",
    "model.params.freeze_backbone",
    "model.params.trainable_layers",
    "model.params.pretrained",
    "data.max_len",
    "data.review_store",
)
ENV_SWITCH = "RAYREC_TUNE_ENCODE_ONCE"


def cache_blocker(cfg: TrainConfig, space: SearchSpace, data_uri: str) -> str | None:
    """Why the sweep of ``cfg`` cannot share one store, or None if it can."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return f"{ENV_SWITCH}=0"
    swept = sorted(set(space.dimensions) & set(STATE_KEYS))
    if swept:
        return f"the sweep varies {', '.join(swept)}"
    dataset = PreparedDataset(data_uri)
    if store_request(cfg, dataset.uri, dataset.manifest) is None:
        return f"{cfg.model.name} trains its whole encoder (or data.review_store is off)"
    return None


def ensure_encodings(cfg: TrainConfig, data_uri: str) -> tuple[str, dict[str, Any]]:
    """The store every trial of ``cfg`` reads (built now if absent) and what was done."""
    dataset = PreparedDataset(data_uri)
    attached, info = attach_store(cfg, dataset.uri, dataset.manifest)
    assert info is not None, "cache_blocker() said the store applies"
    return attached.model.params["review_states"], info
