"""``rayrec encode``: build a review-state store with Ray Data.

The shards still missing (:mod:`rayrec.encode.store`: shard s holds a fixed range of the
sorted training review ids, so a restarted build skips the finished ones) become the rows of a
Ray dataset, and ``map_batches`` runs :class:`ShardEncoder` in an actor pool over them: each
actor loads the dataset's token store and the backbone once, encodes its shards' reviews in
length-sorted batches (``torch.inference_mode``; on a GPU actor in the model's dtype) and writes
each shard's states (float16) and index straight to the store's storage (local or s3://).
``meta.json`` is written last, by the driver, once every shard is there.

Actor pool size: ``--use-gpu`` gives each actor one GPU and starts one per GPU of the cluster;
on CPUs each actor runs ``threads`` torch threads (default 1) and the pool has
``CPUs // threads`` actors (inside a placement group, a Tune trial's, the group's CPUs and GPUs
count, not the cluster's). Each actor takes one shard at a time, so a shard goes to the first
idle actor. Measured on 2 cores (MI, 8,209 reviews, 3 shards): Ray Data's default of 4 tasks in
flight per actor sent both large shards to one of two actors about half the time (119 s against
76 s), and one actor of 2 threads took 84-88 s against 73-78 s for two of 1 thread.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
import torch

from rayrec.data import storage
from rayrec.data.prepared import MANIFEST, PreparedDataset
from rayrec.encode.backbone import backbone_shape, frozen_weights_sha256, load_backbone
from rayrec.encode.store import (
    FORMAT_VERSION,
    META,
    StateStore,
    StoreKey,
    index_name,
    shard_name,
    shard_ranges,
    write_array,
)
from rayrec.models.encoders import lower_states
from rayrec.train.reviews import TRAIN, load_review_index

BATCH_REVIEWS = 64  # reviews per encoder call
SHARD_REVIEWS = 4096  # reviews per shard file


@dataclass(frozen=True)
class EncodeRequest:
    """What to encode, and where to put it."""

    data_uri: str
    backbone: str
    max_len: int
    layer: int | None = None  # None: the last layer (the whole encoder)
    pretrained: str | None = None  # U-BERT pre-training weights replacing the backbone's
    root: str | None = None  # None: <data_uri>/review_states
    shard_reviews: int = SHARD_REVIEWS
    use_gpu: bool = False
    threads: int | None = None  # torch threads per CPU actor (None: 1, one actor per CPU)
    actors: int | None = None  # actor pool size (None: from the cluster's CPUs or GPUs)


def store_key(request: EncodeRequest) -> StoreKey:
    """The key of the states ``request`` asks for."""
    dataset = PreparedDataset(request.data_uri)
    stored = int(dataset.manifest["max_len"])
    if request.max_len > stored:
        raise ValueError(f"max_len {request.max_len} exceeds the dataset's stored {stored}")
    total, _ = backbone_shape(request.backbone)
    layer = total if request.layer is None else request.layer
    if not 0 <= layer <= total:
        raise ValueError(f"layer {layer}: the backbone has {total} layers")
    return StoreKey(
        manifest_sha256=storage.sha256(dataset.path(MANIFEST)),
        backbone=request.backbone,
        backbone_sha256=frozen_weights_sha256(request.backbone, request.pretrained, layer),
        max_len=request.max_len,
        layer=layer,
    )


def store_uri(request: EncodeRequest, key: StoreKey) -> str:
    root = request.root or storage.join(request.data_uri, "review_states")
    return storage.join(root, key.dirname())


def training_reviews(data_uri: str) -> np.ndarray:
    """The sorted ids of the reviews documents are built from."""
    return np.flatnonzero(load_review_index(data_uri).split == TRAIN)


@torch.inference_mode()
def encode_reviews(
    bert: Any, token_ids: list[np.ndarray], layer: int, device: torch.device
) -> list[np.ndarray]:
    """States ``[len_r, d]`` (float16) of the first ``layer`` layers for each review's tokens,
    computed in length-sorted batches of ``BATCH_REVIEWS`` (each review as if alone)."""
    order = np.argsort([len(t) for t in token_ids], kind="stable")
    out: list[np.ndarray] = [np.zeros((0, 0), dtype=np.float16)] * len(token_ids)
    for start in range(0, len(order), BATCH_REVIEWS):
        batch = order[start : start + BATCH_REVIEWS]
        width = max(1, max(len(token_ids[r]) for r in batch))
        ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=bool)
        for row, r in enumerate(batch):
            ids[row, : len(token_ids[r])] = token_ids[r]
            mask[row, : len(token_ids[r])] = True
        states = lower_states(
            bert, torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device), layer
        )
        states = states.float().cpu().numpy()  # numpy has no bfloat16: via float32
        for row, r in enumerate(batch):
            out[r] = states[row, : len(token_ids[r])].astype(np.float16)
    return out


def review_tokens(data_uri: str, review_ids: np.ndarray, max_len: int) -> list[np.ndarray]:
    """Each review's first ``max_len`` word pieces."""
    store = load_review_index(data_uri).tokens
    starts, stops = store.offsets[review_ids], store.offsets[review_ids + 1]
    return [store.ids[a : min(b, a + max_len)] for a, b in zip(starts, stops, strict=True)]


class ShardEncoder:
    """A Ray Data actor: loads the token store and the backbone once, encodes whole shards."""

    def __init__(self, request: dict[str, Any], key: dict[str, Any], out: str) -> None:
        self.request = EncodeRequest(**request)
        self.key = StoreKey(**key)
        self.out = out
        if self.request.use_gpu:
            self.device = torch.device("cuda", 0)  # Ray sets CUDA_VISIBLE_DEVICES per actor
        else:
            self.device = torch.device("cpu")
        self.bert = load_backbone(self.request.backbone, self.request.pretrained).to(self.device)
        self.train_ids = training_reviews(self.request.data_uri)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self.request.use_gpu:
            # here, not in __init__: Ray Data calls the actor from a thread other than the
            # one that built it, and OpenMP's thread count is a per-thread setting
            torch.set_num_threads(self.request.threads or 1)
        done: dict[str, list[float]] = {"shard": [], "reviews": [], "tokens": [], "seconds": []}
        ranges = shard_ranges(len(self.train_ids), self.request.shard_reviews)
        for shard in batch["shard"].tolist():
            started = time.perf_counter()
            start, stop = ranges[shard]
            ids = self.train_ids[start:stop]
            tokens = review_tokens(self.request.data_uri, ids, self.key.max_len)
            states = encode_reviews(self.bert, tokens, self.key.layer, self.device)
            rows = np.array([len(s) for s in states], dtype=np.int64)
            dim = self.bert.config.hidden_size
            flat = np.concatenate([s.reshape(-1, dim) for s in states])  # a shard is never empty
            write_array(storage.join(self.out, shard_name(shard)), flat)
            write_array(storage.join(self.out, index_name(shard)), np.stack([ids, rows], 1))
            done["shard"].append(shard)
            done["reviews"].append(len(ids))
            done["tokens"].append(int(rows.sum()))
            done["seconds"].append(time.perf_counter() - started)
        return {k: np.array(v) for k, v in done.items()}


def available_resources() -> dict[str, float]:
    """The CPUs and GPUs this build may use: its placement group's (a Tune trial's), else
    the cluster's."""
    group = ray.util.get_current_placement_group()
    if group is None:
        return ray.cluster_resources()
    totals: dict[str, float] = {}
    for bundle in group.bundle_specs:
        for name, amount in bundle.items():
            totals[name] = totals.get(name, 0.0) + amount
    return totals


def pool_size(request: EncodeRequest) -> tuple[int, int]:
    """``(actors, threads per actor)`` from the resources this build may use."""
    resources = available_resources()
    if request.use_gpu:
        return request.actors or max(1, int(resources.get("GPU", 0))), 1
    cpus = max(1, int(resources.get("CPU", 1)))
    threads = min(request.threads or 1, cpus)
    return request.actors or max(1, cpus // threads), threads


def ensure_store(request: EncodeRequest, log: Any = print) -> tuple[StateStore, dict[str, Any]]:
    """Open the store ``request`` asks for, building (or finishing) it first if needed.

    Returns the store and what happened: ``{"uri", "built": bool, "seconds", "shards_built"}``.
    """
    key = store_key(request)
    uri = store_uri(request, key)
    if storage.exists(storage.join(uri, META)):
        return StateStore(uri, expect=key), {"uri": uri, "built": False, "seconds": 0.0}
    started = time.perf_counter()
    train_ids = training_reviews(request.data_uri)
    ranges = shard_ranges(len(train_ids), request.shard_reviews)
    todo = [s for s in range(len(ranges)) if not storage.exists(storage.join(uri, index_name(s)))]
    if todo:
        actors, threads = pool_size(request)
        request = dataclasses.replace(request, threads=threads)
        log(
            f"encode: {len(train_ids)} training reviews of {request.data_uri} with "
            f"{request.backbone} (layer {key.layer}, {key.max_len} tokens): {len(todo)} of "
            f"{len(ranges)} shards to build, {actors} actor(s) x "
            + ("1 GPU" if request.use_gpu else f"{threads} thread(s)")
        )
        shards = ray.data.from_items([{"shard": s} for s in todo], override_num_blocks=len(todo))
        results = shards.map_batches(
            ShardEncoder,
            fn_constructor_kwargs={
                "request": dataclasses.asdict(request),
                "key": dataclasses.asdict(key),
                "out": uri,
            },
            batch_size=1,
            # one shard at a time per actor: a shard goes to the first idle actor
            compute=ray.data.ActorPoolStrategy(
                size=min(actors, len(todo)), max_tasks_in_flight_per_actor=1
            ),
            num_cpus=0 if request.use_gpu else threads,
            num_gpus=1 if request.use_gpu else 0,
        )
        reviews_done, todo_reviews = 0, sum(ranges[s][1] - ranges[s][0] for s in todo)
        for n, row in enumerate(results.iter_rows(), start=1):
            reviews_done += int(row["reviews"])
            elapsed = time.perf_counter() - started
            rate = reviews_done / elapsed
            eta = (todo_reviews - reviews_done) / rate if rate else 0.0
            log(
                f"encode: shard {n}/{len(todo)} done, {reviews_done}/{todo_reviews} reviews, "
                f"{rate:.0f} reviews/s, ETA {eta:.0f} s"
            )
    n_layers, dim = backbone_shape(request.backbone)
    index = load_review_index(request.data_uri)
    lengths = np.diff(index.tokens.offsets)[train_ids]
    seconds = time.perf_counter() - started
    meta = {
        "format": FORMAT_VERSION,
        "key": dataclasses.asdict(key),
        "dim": dim,
        "n_layers": n_layers,
        "dtype": "float16",
        "shards": len(ranges),
        "shard_reviews": request.shard_reviews,
        "reviews": int(len(train_ids)),
        "review_slots": len(index.split),  # review ids run 0..review_slots-1
        "tokens": int(np.minimum(lengths, key.max_len).sum()),
        "build_seconds": seconds,
    }
    storage.write_json(storage.join(uri, META), meta)
    return StateStore(uri, expect=key), {"uri": uri, "built": True, "seconds": seconds}
