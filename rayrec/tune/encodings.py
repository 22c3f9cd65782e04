"""The frozen-encoder fast path: encode the reviews once per sweep, let every trial reuse them.

A model whose text encoder is frozen (SIFN as the paper trains it) gives each review the same
BERT states in every step of every trial, so a sweep of N trials would pay for the same
encoder passes N times over. Instead the sweep driver encodes every review that can appear in
a document (the training reviews) once, before the first trial, into
``<sweep>/encodings/<key>/`` (float16 ``states.npy``, ``offsets.npy`` by review id,
``meta.json``; format in :class:`~rayrec.models.encoders.ReviewStateCache`) and the trials'
models read them by review id (``model.params.review_states``) instead of building BERT.

The cache applies when the model accepts ``review_states``, its backbone is frozen, and no
swept key changes what a review's states are (backbone, freezing, ``data.max_len``);
``RAYREC_TUNE_ENCODE_ONCE=0`` turns it off (to measure what it saves). The key
names the backbone, the length and the dataset's manifest hash: a resumed sweep, or another
sweep given the same directory, reuses a finished cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rayrec.data import storage
from rayrec.data.prepared import MANIFEST, PreparedDataset
from rayrec.models.encoders import ReviewStateCache, build_bert
from rayrec.models.registry import get_model_spec
from rayrec.train.config import TrainConfig
from rayrec.train.reviews import TRAIN, load_review_index
from rayrec.tune.space import SearchSpace

STATE_KEYS = ("model.params.backbone", "model.params.freeze_backbone", "data.max_len")
BATCH_REVIEWS = 64
ENV_SWITCH = "RAYREC_TUNE_ENCODE_ONCE"


def cache_blocker(cfg: TrainConfig, space: SearchSpace) -> str | None:
    """Why the sweep of ``cfg`` cannot use precomputed states, or None if it can."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return f"{ENV_SWITCH}=0"
    config_cls = get_model_spec(cfg.model.name).config_cls
    if "review_states" not in config_cls.model_fields:
        return f"{cfg.model.name} has no precomputed-states path"
    params = config_cls.model_validate(cfg.model.params)
    if not getattr(params, "freeze_backbone", False):
        return "the backbone is fine-tuned (freeze_backbone is false)"
    swept = sorted(set(space.dimensions) & set(STATE_KEYS))
    if swept:
        return f"the sweep varies {', '.join(swept)}"
    return None


def review_length(cfg: TrainConfig, manifest: dict) -> int:
    """Tokens per review the trials read (the collate step's L)."""
    stored = int(manifest["max_len"])
    return min(cfg.data.max_len or stored, stored)


def cache_key(backbone: str, max_len: int, manifest_sha: str) -> str:
    digest = hashlib.sha256(f"{backbone}|{max_len}|{manifest_sha}".encode()).hexdigest()[:12]
    return f"{Path(backbone).name or 'backbone'}-L{max_len}-{digest}"


@torch.inference_mode()
def encode_reviews(data_uri: str, backbone: str, max_len: int, out: Path) -> dict:
    """Encode every training review's first ``max_len`` tokens with the frozen ``backbone``
    into ``out`` (a local directory); returns the meta written next to the arrays."""
    started = time.perf_counter()
    index = load_review_index(data_uri)
    store = index.tokens
    reviews = np.flatnonzero(index.split == TRAIN)
    lengths = np.minimum(np.diff(store.offsets)[reviews], max_len)
    order = reviews[np.argsort(lengths, kind="stable")]  # similar lengths batch together
    bert = build_bert(backbone, frozen=True, add_pooling_layer=False)
    dim = bert.config.hidden_size
    counts = np.zeros(len(store.offsets) - 1, dtype=np.int64)
    counts[reviews] = lengths
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    states = np.lib.format.open_memmap(
        out / "states.npy", mode="w+", dtype=np.float16, shape=(int(offsets[-1]), dim)
    )
    for start in range(0, len(order), BATCH_REVIEWS):
        batch = order[start : start + BATCH_REVIEWS]
        width = int(counts[batch].max())
        ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.arange(width)[None, :] < counts[batch][:, None]
        for row, r in enumerate(batch):
            ids[row, : counts[r]] = store.ids[store.offsets[r] : store.offsets[r] + counts[r]]
        hidden = bert(
            input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask).long()
        ).last_hidden_state.numpy()
        for row, r in enumerate(batch):
            states[offsets[r] : offsets[r + 1]] = hidden[row, : counts[r]]
    states.flush()
    np.save(out / "offsets.npy", offsets)
    meta = {
        "backbone": backbone,
        "max_len": max_len,
        "dim": dim,
        "reviews": len(reviews),
        "tokens": int(offsets[-1]),
        "dtype": "float16",
        "seconds": time.perf_counter() - started,
    }
    (out / ReviewStateCache.META).write_text(json.dumps(meta, indent=2))
    return meta


def ensure_encodings(cfg: TrainConfig, data_uri: str, sweep_dir: str) -> tuple[str, dict]:
    """The cache directory of ``cfg``'s backbone and review length under ``sweep_dir``,
    encoded now unless a finished one is there; returns it and its meta."""
    dataset = PreparedDataset(data_uri)
    config_cls = get_model_spec(cfg.model.name).config_cls
    backbone = config_cls.model_validate(cfg.model.params).backbone
    max_len = review_length(cfg, dataset.manifest)
    key = cache_key(backbone, max_len, storage.sha256(dataset.path(MANIFEST)))
    uri = storage.join(sweep_dir, "encodings", key)
    meta_uri = storage.join(uri, ReviewStateCache.META)
    if storage.exists(meta_uri):  # written last: its presence means the cache is complete
        return uri, storage.read_json(meta_uri)
    if storage.is_remote(uri):
        with tempfile.TemporaryDirectory() as tmp:
            meta = encode_reviews(dataset.uri, backbone, max_len, Path(tmp))
            fs, path = storage.filesystem(uri)
            for name in ("states.npy", "offsets.npy", ReviewStateCache.META):
                fs.put(str(Path(tmp) / name), f"{path}/{name}")
        return uri, meta
    local = Path(uri)
    local.mkdir(parents=True, exist_ok=True)
    return uri, encode_reviews(dataset.uri, backbone, max_len, local)
