"""What each task trains and evaluates on, read from a prepared dataset (local or s3://).

* rating models: ``pairs/{train,val,test}.parquet``;
* ranking models (BERT-RS): ``ranking/{train,val,test}.parquet``;
* U-BERT pretraining: the ``reviews/`` rows of split "pretrain" (ids only, no tokens); the
  other domains have no validation split, so reviews with ``review_id % pretrain_val_every
  == 0`` are held out as "val" (deterministic, about 5% by default) and there is no "test".

Training data is a Ray dataset (:func:`train_dataset`), split by Ray Train across the
workers (``DataConfig`` default: equal shards, so every rank runs the same number of steps,
as ZeRO's collectives need). Evaluation splits are small (one row per held-out pair or user)
and are read by each worker directly (:func:`eval_table`) and cut into contiguous shards by
rank (:func:`eval_batches`): no Ray Data execution (tasks, split coordinators) per epoch.
Training reads use Ray Data's actor-free parquet reader (:mod:`rayrec.data.parquet_reads`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
import ray.data
from ray.data.expressions import col

from rayrec.data import storage
from rayrec.data.parquet_reads import read_parquet
from rayrec.data.prepared import PreparedDataset
from rayrec.models.base import ModelSpec
from rayrec.train.config import DataSection
from rayrec.train.reviews import SPLIT_CODES, ReviewIndex

PRETRAIN_COLUMNS = ["review_id", "user_idx", "domain_idx", "rating", "split"]
TABLES = {"rating": "pairs", "ranking": "ranking"}


def eval_splits(spec: ModelSpec) -> tuple[str, ...]:
    """The evaluation splits of a task: pretraining has no test split."""
    return ("val",) if spec.task == "pretrain" else ("val", "test")


def train_dataset(spec: ModelSpec, dataset: PreparedDataset, data: DataSection) -> ray.data.Dataset:
    """The training rows of ``spec.task`` as a lazily read Ray dataset."""
    if spec.task in TABLES:
        return read_parquet(dataset.path(TABLES[spec.task], "train.parquet"))
    if spec.task == "pretrain":
        reviews = read_parquet(dataset.path("reviews")).select_columns(PRETRAIN_COLUMNS)
        held_out = col("review_id") % data.pretrain_val_every == 0
        return reviews.filter(expr=(col("split") == "pretrain") & ~held_out)
    raise ValueError(f"no training data for task {spec.task!r}")


def train_rows(spec: ModelSpec, dataset: PreparedDataset, data: DataSection) -> int:
    """Number of training rows, from parquet metadata (rating, ranking) or the ids of the
    reviews (pretraining), without running Ray Data."""
    if spec.task in TABLES:
        fs, path = storage.filesystem(dataset.path(TABLES[spec.task], "train.parquet"))
        return pds.dataset(path, filesystem=fs, format="parquet").count_rows()
    table = dataset.table("reviews", columns=["review_id", "split"])
    ids = table.column("review_id").to_numpy()
    pretrain = pc.equal(table.column("split"), "pretrain").to_numpy(zero_copy_only=False)
    return int((pretrain & (ids % data.pretrain_val_every != 0)).sum())


def eval_table(
    spec: ModelSpec, dataset: PreparedDataset, reviews: ReviewIndex, split: str, data: DataSection
) -> pa.Table:
    """The rows of evaluation ``split`` ("val" or "test") of ``spec.task``."""
    if spec.task in TABLES:
        return dataset.table(TABLES[spec.task], f"{split}.parquet")
    if spec.task == "pretrain" and split == "val":
        ids = np.flatnonzero(reviews.split == SPLIT_CODES["pretrain"])
        ids = ids[ids % data.pretrain_val_every == 0]
        return pa.table(
            {
                "review_id": ids,
                "user_idx": reviews.user_idx[ids],
                "domain_idx": reviews.domain_idx[ids],
                "rating": reviews.rating[ids],
            }
        )
    raise ValueError(f"no {split!r} split for task {spec.task!r}")


def eval_batches(
    table: pa.Table, rank: int, world: int, batch_size: int, limit: int | None = None
) -> Iterator[tuple[pa.Table, bool]]:
    """This rank's contiguous shard of ``table`` in batches, as ``(rows, counted)``.

    Every rank yields the same number of batches (ZeRO-3 gathers parameters in every forward,
    so all ranks must run as many); a rank whose shard is used up runs its first row again
    with ``counted=False``, to be left out of the metrics."""
    per_rank = math.ceil(table.num_rows / world)
    shard = table.slice(rank * per_rank, per_rank)
    n_batches = max(1, math.ceil(per_rank / batch_size))
    if limit is not None:
        n_batches = min(n_batches, limit)
    for b in range(n_batches):
        rows = shard.slice(b * batch_size, batch_size)
        if rows.num_rows:
            yield rows, True
        else:
            yield table.slice(0, 1), False
