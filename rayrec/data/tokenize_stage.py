"""Stage 3 of ``rayrec prepare``: the token store ``reviews/`` from the staged records.

A work unit is a run of whole row groups of the staged records (``_staging/records``), about
:data:`UNIT_ROWS` records. A pool of actors, one per CPU, takes the units one at a time; an
actor reads its unit, keeps the records of the index and gives them their ids
(:func:`attach_ids`), tokenizes them (:class:`ReviewTokenizer`) and writes them as one parquet
file of ``reviews/``, named by the unit's number. The units reach the pool as in-memory blocks
(``ray.data.from_items``) and the actors write their own files, so no Ray Data read or write
task waits for a CPU while the actors hold them all.

Why not ``read_parquet(records).map_batches(ReviewTokenizer).write_parquet(reviews)``: its read
and write tasks need a CPU each, so on 2 CPUs the pool could hold only one (two actors hung,
the read tasks never scheduled). Measured on 100k realistic-length reviews (2 cores): that
pipeline with 1 actor 3,281 reviews/s; this stage's figures are in the README.

The files keep the staged order: within a unit, review ids increase (the index numbers the
target domain's reviews, then each other domain's, in ``review_key`` order, the order of the
staged files), so each written row group covers a run of ids (the layout
:mod:`rayrec.data.token_shards` reads one shard per id from).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pds
import pyarrow.parquet as pq
import ray
import ray.data

from rayrec.data import storage
from rayrec.data.prepare import SPLIT_NAMES
from rayrec.data.tokenize import ReviewTokenizer

PRETRAIN = 3  # split code of the cross-domain corpus (0 train, 1 val, 2 test)
SPLIT_LABELS = (*SPLIT_NAMES, "pretrain")
RECORD_COLUMNS = ["review_key", "rating", "timestamp", "text"]
BATCH_ROWS = 4096  # records read and tokenized at a time; one row group of the output each
UNIT_ROWS = 8192  # staged records per work unit (whole row groups)


@dataclass(frozen=True)
class Unit:
    """Consecutive row groups of the staged records, one actor call's work."""

    index: int
    paths: list[str]
    row_groups: list[int]
    rows: int


def units_of(records: str, unit_rows: int = UNIT_ROWS) -> list[Unit]:
    """The row groups of the parquet files at ``records`` (local or s3://), in file order,
    from the files' footers, cut into units of at least ``unit_rows`` records (the last may
    be smaller)."""
    fs, path = storage.filesystem(records)
    groups = sorted(
        (fragment.path, group.id, group.num_rows)
        for fragment in pds.dataset(path, filesystem=fs, format="parquet").get_fragments()
        for group in fragment.row_groups
        if group.num_rows
    )
    units: list[Unit] = []
    paths: list[str] = []
    row_groups: list[int] = []
    rows = 0
    for file, group, n in groups:
        paths.append(file)
        row_groups.append(group)
        rows += n
        if rows >= unit_rows:
            units.append(Unit(len(units), paths, row_groups, rows))
            paths, row_groups, rows = [], [], 0
    if paths:
        units.append(Unit(len(units), paths, row_groups, rows))
    return units


def sentiment(rating: np.ndarray) -> np.ndarray:
    """A review's polarity: 0 below 3 stars, 1 at 3, 2 above."""
    return np.where(rating > 3, 2, np.where(rating < 3, 0, 1)).astype(np.int8)


def attach_ids(batch: pa.Table, kept: pd.DataFrame) -> pa.Table:
    """The records of ``batch`` that ``kept`` holds (by ``review_key``; ``kept`` sorted by it),
    with their ids, split label and sentiment."""
    keys = kept["review_key"].to_numpy()
    batch_keys = batch.column("review_key").to_numpy()
    position = np.clip(np.searchsorted(keys, batch_keys), 0, max(0, len(keys) - 1))
    hit = keys[position] == batch_keys if len(keys) else np.zeros(len(batch_keys), bool)
    rows = kept.iloc[position[hit]]
    batch = batch.filter(pa.array(hit))
    return pa.table(
        {
            "review_id": pa.array(rows["review_id"].to_numpy()),
            "domain_idx": pa.array(rows["domain_idx"].to_numpy()),
            "user_idx": pa.array(rows["user_idx"].to_numpy()),
            "item_idx": pa.array(rows["item_idx"].to_numpy()),
            "rating": batch.column("rating"),
            "sentiment": pa.array(sentiment(batch.column("rating").to_numpy())),
            "split": pa.array(np.asarray(SPLIT_LABELS)[rows["split"].to_numpy()]),
            "timestamp": batch.column("timestamp"),
            "text": batch.column("text"),
        }
    )


class UnitTokenizer:
    """Ray Data callable class: a batch of :class:`Unit` rows -> one row per unit (``unit``,
    ``reviews``: how many it wrote), each unit's tokens written to ``OUT/part-<unit>.parquet``
    (one row group per :data:`BATCH_ROWS` records read)."""

    def __init__(self, tokenizer: str, max_len: int, kept: str, out: str) -> None:
        self.tokenizer = ReviewTokenizer(tokenizer, max_len)
        # the staged records, the index and ``out`` all lie under the prepared directory
        self.fs, kept_path = storage.filesystem(kept)
        self.kept = pq.read_table(kept_path, filesystem=self.fs).to_pandas()
        self.out = out

    def tokenized_batches(self, unit: dict[str, Any]) -> Iterator[pa.Table]:
        for path, row_group in zip(unit["paths"], unit["row_groups"], strict=True):
            with self.fs.open(path, "rb") as f:
                batches = pq.ParquetFile(f).iter_batches(
                    BATCH_ROWS, row_groups=[int(row_group)], columns=RECORD_COLUMNS
                )
                for batch in batches:
                    reviews = attach_ids(pa.Table.from_batches([batch]), self.kept)
                    if reviews.num_rows:
                        yield self.tokenizer(reviews)

    def write(self, unit: dict[str, Any]) -> int:
        """Tokenize ``unit`` into its file; returns how many reviews it wrote."""
        _, path = storage.filesystem(storage.join(self.out, f"part-{unit['index']:06d}.parquet"))
        rows, writer = 0, None
        for table in self.tokenized_batches(unit):
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, filesystem=self.fs)
            writer.write_table(table)
            rows += table.num_rows
        if writer is not None:
            writer.close()
        return rows

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        units = pd.DataFrame(batch).to_dict("records")
        written = [self.write(unit) for unit in units]
        return {"unit": batch["index"], "reviews": np.asarray(written, dtype=np.int64)}


def tokenize_records(
    records: str, kept: str, out: str, tokenizer: str, max_len: int, actors: int
) -> Iterator[tuple[int, int]]:
    """Tokenize the staged records at ``records`` that the parquet file ``kept`` holds (the
    index's ``review_key`` and ids, sorted by ``review_key``) into ``out`` with
    ``actors`` actors; yields ``(units done, reviews written)`` after each unit, in the order
    they finish.

    Each actor's tokenizer gets the cluster's CPUs divided among the actors as Rust threads
    (``RAYON_NUM_THREADS``; 1 with an actor per CPU). Each actor has two units in flight, so
    it starts the next as soon as one ends (with one, about a quarter of its time went waiting
    for the next unit). Measured on 100k realistic-length reviews on 2 cores: 2 actors of 1
    thread 5,547 reviews/s with start-up (19.4 s busy in 15.1 s), 2 actors of 2 threads
    5,252."""
    units = units_of(records)
    threads = max(1, int(ray.cluster_resources().get("CPU", 1)) // actors)
    storage.makedirs(out)
    dataset = ray.data.from_items(
        [vars(u) for u in units], override_num_blocks=max(1, len(units))
    ).map_batches(
        UnitTokenizer,
        fn_constructor_kwargs={
            "tokenizer": tokenizer, "max_len": max_len, "kept": kept, "out": out,
        },
        batch_size=1,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=2),
        num_cpus=1,
        runtime_env={"env_vars": {"RAYON_NUM_THREADS": str(threads)}},
    )  # fmt: skip
    reviews = 0
    for done, row in enumerate(dataset.iter_rows(), start=1):
        reviews += int(row["reviews"])
        yield done, reviews
