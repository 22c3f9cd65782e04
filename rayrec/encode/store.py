"""The review-state store: encoder states of every document review, computed once.

A text encoder that does not train gives a review the same states in every step, epoch, trial
and run. The store holds them, so that training reads states by review id instead of running
the encoder (SIFN as the paper trains it, U-BERT and SIFN with ``trainable_layers``). What it
holds is fixed by a :class:`StoreKey`:

* the prepared dataset (its ``manifest.json`` sha256: the token ids and the split);
* the backbone (its source, and when U-BERT pre-trained weights replace it the sha256 of the
  frozen part's weights: a pre-training that trained only the top layers shares the store);
* the review length ``max_len`` (states of a review's first ``max_len`` word pieces);
* the layer: the output of the first ``layer`` transformer layers (``layer == n_layers``: the
  last hidden states; fewer: the input of the top ``n_layers - layer`` layers that train).

Only training reviews are stored: documents are built from training reviews only (validation
and test pairs read the same states as training).

Layout of ``<root>/<StoreKey.dirname()>/`` (local or s3://):

* ``shard-NNNNN.npy``: float16 ``[T_s, d]``, the states of shard s's reviews, one after another;
* ``shard-NNNNN.index.npy``: int64 ``[n_s, 2]``, per review of the shard its id and its number of
  token rows (written after the states: its presence means the shard is complete);
* ``meta.json``, written last: the key, ``dim``, ``n_layers``, the shards and the counts.

Shard s holds the training reviews ``train_ids[s * S:(s + 1) * S]`` (sorted ids, S =
``shard_reviews``), so an interrupted build resumes at the first missing shard.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rayrec.data import storage

FORMAT_VERSION = 1
META = "meta.json"
DEFAULT_STORE_DIR = "review_states"  # under the prepared dataset's directory


class StoreMismatch(ValueError):
    """A store that does not hold the states the caller needs (other data, backbone, ...)."""


@dataclass(frozen=True)
class StoreKey:
    """What a store's states depend on (see the module docstring)."""

    manifest_sha256: str
    backbone: str
    backbone_sha256: str | None  # of the frozen weights, when U-BERT pre-training changed them
    max_len: int
    layer: int

    def dirname(self) -> str:
        """A directory name that tells the key apart from every other key."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        name = Path(self.backbone.rstrip("/")).name or "backbone"
        return f"{name}-L{self.max_len}-layer{self.layer}-{digest}"

    def check(self, meta: dict[str, Any], uri: str) -> None:
        """Raise :class:`StoreMismatch` naming the first field where ``meta`` differs."""
        stored = meta.get("key", {})
        for field, wanted in dataclasses.asdict(self).items():
            if stored.get(field) != wanted:
                raise StoreMismatch(
                    f"review-state store {uri} was built for {field}={stored.get(field)!r}, "
                    f"this run needs {field}={wanted!r}: build a store for it with rayrec encode"
                )


def shard_name(shard: int) -> str:
    return f"shard-{shard:05d}.npy"


def index_name(shard: int) -> str:
    return f"shard-{shard:05d}.index.npy"


def shard_ranges(n_reviews: int, shard_reviews: int) -> list[tuple[int, int]]:
    """``[start, stop)`` positions in the sorted training ids of every shard."""
    return [(s, min(s + shard_reviews, n_reviews)) for s in range(0, n_reviews, shard_reviews)]


def write_array(uri: str, array: np.ndarray) -> None:
    """``np.save`` to a local path (through a temporary name) or an s3:// object."""
    if storage.is_remote(uri):
        fs, path = storage.filesystem(uri)
        with fs.open(path, "wb") as f:
            np.save(f, array)
        return
    target = Path(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    with tmp.open("wb") as f:
        np.save(f, array)
    tmp.replace(target)


class StateStore:
    """A finished store, opened for reading (s3:// stores are copied to the local cache once).

    ``gather(review_ids, length)`` returns float32 states ``[..., length, d]`` with zeros past
    each review's end and at empty slots (-1): the tensor :class:`ReviewEncoder` would give.
    """

    def __init__(self, uri: str, expect: StoreKey | None = None) -> None:
        meta_uri = storage.join(uri, META)
        if not storage.exists(meta_uri):
            raise StoreMismatch(f"{uri} is not a finished review-state store (no {META})")
        self.uri = uri
        self.meta: dict[str, Any] = storage.read_json(meta_uri)
        if self.meta.get("format") != FORMAT_VERSION:
            raise StoreMismatch(f"{uri}: store format {self.meta.get('format')!r} is not ours")
        if expect is not None:
            expect.check(self.meta, uri)
        self.key = StoreKey(**self.meta["key"])
        self.dim = int(self.meta["dim"])
        directory = storage.local_copy(uri)
        n_reviews = int(self.meta["review_slots"])
        self.shard = np.full(n_reviews, -1, dtype=np.int64)  # per review id: its shard
        self.start = np.zeros(n_reviews, dtype=np.int64)  # first row in the shard
        self.length = np.zeros(n_reviews, dtype=np.int64)  # token rows
        self.states: list[np.ndarray] = []
        for s in range(int(self.meta["shards"])):
            index = np.load(directory / index_name(s))
            ids, rows = index[:, 0], index[:, 1]
            self.shard[ids] = s
            self.length[ids] = rows
            self.start[ids] = np.concatenate([[0], np.cumsum(rows)[:-1]])
            self.states.append(np.load(directory / shard_name(s), mmap_mode="r"))

    @property
    def max_len(self) -> int:
        return self.key.max_len

    def gather(self, review_ids: torch.Tensor | np.ndarray, length: int) -> torch.Tensor:
        """States of ``review_ids [...]`` (-1: empty slot) as float32 ``[..., length, d]``."""
        if length != self.key.max_len:
            raise StoreMismatch(
                f"review-state store {self.uri} holds reviews of {self.key.max_len} tokens, "
                f"the batch has {length}: set data.max_len={self.key.max_len} or build another"
            )
        ids = torch.as_tensor(review_ids).cpu().numpy()
        shape = ids.shape
        flat = ids.reshape(-1)
        present = flat >= 0
        safe = np.where(present, flat, 0)
        missing = present & (self.shard[safe] < 0)
        if missing.any():
            raise StoreMismatch(
                f"review-state store {self.uri} has no states for reviews "
                f"{flat[missing][:10].tolist()} (only training reviews are stored)"
            )
        out = np.zeros((len(flat), length, self.dim), dtype=np.float32)
        for s in np.unique(self.shard[safe[present]]):
            slots = np.flatnonzero(present & (self.shard[safe] == s))
            rows = np.minimum(self.length[flat[slots]], length)
            keep = np.arange(length)[None, :] < rows[:, None]
            source = self.start[flat[slots]][:, None] + np.arange(length)[None, :]
            block = np.zeros((len(slots), length, self.dim), dtype=np.float32)
            block[keep] = self.states[s][source[keep]]
            out[slots] = block
        return torch.from_numpy(out).reshape(*shape, length, self.dim)
