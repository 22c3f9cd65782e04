"""The Ray datasets of a training task, read lazily from a prepared dataset (local or s3://).

* rating models: ``pairs/{train,val,test}.parquet``;
* ranking models (BERT-RS): ``ranking/{train,val,test}.parquet``;
* U-BERT pretraining: the ``reviews/`` rows of split "pretrain" (ids only, no tokens); the
  other domains have no validation split, so reviews with ``review_id % pretrain_val_every
  == 0`` are held out as "val" (deterministic, about 5% by default) and there is no "test".

Ray Train splits each dataset across the workers (``DataConfig`` default: every dataset,
equal shards, so that every rank runs the same number of steps, as ZeRO's collectives
need). Tokens are gathered by the collate step in the workers.
"""

from __future__ import annotations

import ray.data
from ray.data.expressions import col

from rayrec.data.prepared import PreparedDataset
from rayrec.models.base import ModelSpec
from rayrec.train.config import DataSection

SPLITS = ("train", "val", "test")
PRETRAIN_COLUMNS = ["review_id", "user_idx", "domain_idx", "rating", "split"]


def task_datasets(
    spec: ModelSpec, dataset: PreparedDataset, data: DataSection
) -> dict[str, ray.data.Dataset]:
    """``{"train", "val"[, "test"]}`` datasets of ``spec.task``."""
    if spec.task == "rating":
        return {s: ray.data.read_parquet(dataset.path("pairs", f"{s}.parquet")) for s in SPLITS}
    if spec.task == "ranking":
        return {s: ray.data.read_parquet(dataset.path("ranking", f"{s}.parquet")) for s in SPLITS}
    if spec.task == "pretrain":
        reviews = ray.data.read_parquet(dataset.path("reviews"), columns=PRETRAIN_COLUMNS)
        pretrain = reviews.filter(expr=col("split") == "pretrain")
        held_out = col("review_id") % data.pretrain_val_every == 0
        return {
            "train": pretrain.filter(expr=~held_out),
            "val": pretrain.filter(expr=held_out),
        }
    raise ValueError(f"no datasets for task {spec.task!r}")
