"""What each task trains and evaluates on, read from a prepared dataset (local or s3://).

* rating models: ``pairs/{train,val,test}.parquet``;
* ranking models (BERT-RS): ``ranking/{train,val,test}.parquet``, the training negatives
  redrawn every epoch (below);
* U-BERT pretraining: the ``reviews/`` rows of split "pretrain" (ids only, no tokens), or
  with ``data.pretrain_reviews=target_train`` the target domain's training reviews; neither
  has a validation split of its own, so reviews with ``review_id % pretrain_val_every == 0``
  are held out as "val" (deterministic, about 5% by default) and there is no "test".

Training order (:class:`TrainTable`). Every worker holds the whole training table, read
through rayrec's storage layer (local or s3://, so every node of a cluster reaches it) once
per process by :func:`load_train_table`. It is small: ids only, about 150 MB of Arrow for
1.35M rating pairs with their two documents of 10 review ids, 30 MB for a ranking table of
2.7M candidates; pretraining rows come from the review index the worker holds anyway. Epoch
``e`` trains on one global permutation of the table, ``default_rng([seed, e, 0])``: a
function of ``(train.seed, e)`` only, so it is the same on every rank, for every world size,
on every run and after a resume at an epoch boundary. Rank ``r`` of ``W`` takes the
permutation's positions ``r, r + W, r + 2W, ...``, ``N // W`` of them (every rank has as many
rows), and its step ``s`` is its rows ``s·B .. (s+1)·B - 1``; the partial last batch is
dropped, so every rank runs ``N // (B·W)`` steps, as ZeRO's collectives need. Step ``s`` of
the whole run therefore trains on the permutation's positions ``[s·B·W, (s+1)·B·W)``: the
same rows for any ``W`` with the same global batch ``B·W`` (where a rank's part holds at least
one batch; a smaller part is one batch of the whole part). Rows are taken by position from
the table, so a batch keeps the table's columns and types.

This replaces Ray Data's streaming shard, which served each worker its rows in file order
(Amazon dumps sorted by item, ``ranking/train`` all positives then all negatives, pretraining
domain after domain) through a local shuffle buffer: batches clustered by item and label, and
every epoch ended on the same rows.

Ranking negatives (:class:`NegativeSampler`): the negative rows of ``ranking/train.parquet``
fix how many negatives there are and whose (the prepared ratio: one per positive, for the
same user); their items are redrawn every epoch from ``default_rng([seed, e, 1])``, uniformly
among the items the user never rated in ANY split (train, val or test: a held-out item must
not be taught as a negative). The positives are the table's.

Evaluation splits are small (one row per held-out pair or user) and are read by each worker
directly (:func:`eval_table`) and cut into contiguous shards by rank (:func:`eval_batches`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds

from rayrec.data import storage
from rayrec.data.prepare import sample_unseen, servable
from rayrec.data.prepared import PreparedDataset
from rayrec.models.base import ModelSpec
from rayrec.train.config import DataSection
from rayrec.train.grouping import grouped_order
from rayrec.train.reviews import SPLIT_CODES, ReviewIndex, load_review_index

TABLES = {"rating": "pairs", "ranking": "ranking"}
PERMUTATION, NEGATIVES = 0, 1  # the streams of an epoch's generators: [seed, epoch, stream]


def eval_splits(spec: ModelSpec) -> tuple[str, ...]:
    """The evaluation splits of a task: pretraining has no test split."""
    return ("val",) if spec.task == "pretrain" else ("val", "test")


def epoch_generator(seed: int, epoch: int, stream: int) -> np.random.Generator:
    """The generator of ``stream`` (``PERMUTATION`` or ``NEGATIVES``) in ``epoch``."""
    return np.random.default_rng([seed, epoch, stream])


@dataclass(frozen=True)
class NegativeSampler:
    """Redraws the items of a ranking table's negative rows (label 0), see the module
    docstring."""

    n_items: int
    seen: np.ndarray  # sorted int64 codes user * n_items + item of every rated pair

    @classmethod
    def from_reviews(cls, reviews: ReviewIndex, n_items: int) -> NegativeSampler:
        """Every target-domain review (any split) marks its pair as rated."""
        target = reviews.item_idx >= 0
        codes = reviews.user_idx[target] * n_items + reviews.item_idx[target]
        return cls(n_items=n_items, seen=np.unique(codes))

    def check(self, rows: pa.Table) -> None:
        """Raise if a negative row's user has rated every item (nothing left to draw)."""
        users = self._negative_users(rows)[1]
        if not servable(users, self.n_items, self.seen, 1).all():
            raise ValueError("ranking/train.parquet: a negative row's user has rated every item")

    def _negative_users(self, rows: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        negative = np.flatnonzero(rows.column("label").to_numpy() == 0)
        users = rows.column("user_idx").to_numpy().astype(np.int64)[negative]
        return negative, users

    def redraw(self, rows: pa.Table, rng: np.random.Generator) -> pa.Table:
        """``rows`` with a new unrated item in every negative row."""
        negative, users = self._negative_users(rows)
        items = rows.column("item_idx").to_numpy().copy()
        items[negative] = sample_unseen(rng, users, self.n_items, self.seen, 1)[:, 0]
        position = rows.schema.get_field_index("item_idx")
        column = pa.array(items, type=rows.schema.field("item_idx").type)
        return rows.set_column(position, "item_idx", column)


@dataclass(frozen=True)
class TrainTable:
    """A task's training rows and the order of every epoch (see the module docstring)."""

    rows: pa.Table  # one chunk per column: rows are taken by position
    negatives: NegativeSampler | None = None  # ranking: the negatives' items are redrawn

    def epoch_rows(self, epoch: int, seed: int) -> pa.Table:
        """The table of ``epoch`` in stored order (ranking: with that epoch's negatives)."""
        if self.negatives is None:
            return self.rows
        return self.negatives.redraw(self.rows, epoch_generator(seed, epoch, NEGATIVES))

    def rank_positions(
        self,
        epoch: int,
        seed: int,
        rank: int,
        world: int,
        group_by: str | None = None,
        batch_size: int = 1,
    ) -> np.ndarray:
        """Row positions of rank ``rank`` of ``world`` in ``epoch``, in training order
        (``group_by`` a column: batches grouped by it, :mod:`rayrec.train.grouping`)."""
        per_rank = self.rows.num_rows // world
        if per_rank == 0:
            raise ValueError(f"{self.rows.num_rows} training rows for {world} workers")
        rng = epoch_generator(seed, epoch, PERMUTATION)
        order = rng.permutation(self.rows.num_rows)
        if group_by is not None:
            groups = self.rows.column(group_by).to_numpy().astype(np.int64)
            order = grouped_order(order, groups, batch_size * world, rng)
        return order[rank : per_rank * world : world]

    def batches(
        self,
        epoch: int,
        seed: int,
        rank: int,
        world: int,
        batch_size: int,
        limit: int | None = None,
        group_by: str | None = None,
    ) -> Iterator[pa.Table]:
        """Up to ``limit`` batches of this rank in ``epoch``, without the partial last one
        (one batch of the whole part where it is smaller than a batch): as many as
        :func:`rayrec.train.loop.steps_per_epoch` counts, on every rank."""
        rows = self.epoch_rows(epoch, seed)
        positions = self.rank_positions(epoch, seed, rank, world, group_by, batch_size)
        n_batches = max(1, len(positions) // batch_size)
        if limit is not None:
            n_batches = min(n_batches, limit)
        for b in range(n_batches):
            yield rows.take(pa.array(positions[b * batch_size : (b + 1) * batch_size]))


PRETRAIN_SPLITS = {"other_domains": "pretrain", "target_train": "train"}


def _pretrain_rows(
    reviews: ReviewIndex, every: int, held_out: bool, source: str = "other_domains"
) -> pa.Table:
    """Pretraining reviews (ids only): those with ``review_id % every == 0`` (validation)
    when ``held_out``, else the others (training). ``source`` (``data.pretrain_reviews``):
    the other domains' reviews of the target users (the paper's cross-domain setting), or the
    target domain's own TRAINING reviews (in-domain pre-training for data without other
    domains: a validation or test review is never read, so the fine-tuned model is not told
    the held-out ratings)."""
    ids = np.flatnonzero(reviews.split == SPLIT_CODES[PRETRAIN_SPLITS[source]])
    ids = ids[(ids % every == 0) == held_out]
    return pa.table(
        {
            "review_id": ids,
            "user_idx": reviews.user_idx[ids],
            "domain_idx": reviews.domain_idx[ids],
            "rating": reviews.rating[ids],
        }
    )


@functools.lru_cache(maxsize=1)
def load_train_table(
    uri: str,
    task: str,
    pretrain_val_every: int,
    pretrain_reviews: str = "other_domains",
    token_cache_mib: int | None = None,
) -> TrainTable:
    """The :class:`TrainTable` of ``task`` on the prepared dataset at ``uri``, read once per
    process (like :func:`~rayrec.train.reviews.load_review_index`, whose index it uses: the
    one of the worker's ``token_cache_mib``)."""
    reviews = load_review_index(uri, token_cache_mib)
    if task == "pretrain":
        rows = _pretrain_rows(reviews, pretrain_val_every, False, pretrain_reviews)
        return TrainTable(rows)
    if task not in TABLES:
        raise ValueError(f"no training data for task {task!r}")
    dataset = PreparedDataset(uri)
    rows = dataset.table(TABLES[task], "train.parquet").combine_chunks()
    if task == "rating":
        return TrainTable(rows)
    negatives = NegativeSampler.from_reviews(reviews, int(dataset.manifest["counts"]["items"]))
    negatives.check(rows)
    return TrainTable(rows, negatives)


def train_rows(spec: ModelSpec, dataset: PreparedDataset, data: DataSection) -> int:
    """Number of training rows, from parquet metadata (rating, ranking) or the ids of the
    reviews (pretraining), without reading the tables: what the driver tells the workers."""
    if spec.task in TABLES:
        fs, path = storage.filesystem(dataset.path(TABLES[spec.task], "train.parquet"))
        return pds.dataset(path, filesystem=fs, format="parquet").count_rows()
    table = dataset.table("reviews", columns=["review_id", "split"])
    ids = table.column("review_id").to_numpy()
    split = PRETRAIN_SPLITS[data.pretrain_reviews]
    pretrain = pc.equal(table.column("split"), split).to_numpy(zero_copy_only=False)
    return int((pretrain & (ids % data.pretrain_val_every != 0)).sum())


def eval_table(
    spec: ModelSpec, dataset: PreparedDataset, reviews: ReviewIndex, split: str, data: DataSection
) -> pa.Table:
    """The rows of evaluation ``split`` ("val" or "test") of ``spec.task``."""
    if spec.task in TABLES:
        return dataset.table(TABLES[spec.task], f"{split}.parquet")
    if spec.task == "pretrain" and split == "val":
        return _pretrain_rows(reviews, data.pretrain_val_every, True, data.pretrain_reviews)
    raise ValueError(f"no {split!r} split for task {spec.task!r}")


def eval_batch_count(table: pa.Table, world: int, batch_size: int, limit: int | None) -> int:
    """How many batches every rank runs in an evaluation of ``table`` (:func:`eval_batches`)."""
    n_batches = max(1, math.ceil(math.ceil(table.num_rows / world) / batch_size))
    return n_batches if limit is None else min(n_batches, limit)


def eval_batches(
    table: pa.Table, rank: int, world: int, batch_size: int, limit: int | None = None
) -> Iterator[tuple[pa.Table, bool]]:
    """This rank's contiguous shard of ``table`` in batches, as ``(rows, counted)``.

    Every rank yields the same number of batches (ZeRO-3 gathers parameters in every forward,
    so all ranks must run as many); a rank whose shard is used up runs its first row again
    with ``counted=False``, to be left out of the metrics."""
    per_rank = math.ceil(table.num_rows / world)
    shard = table.slice(rank * per_rank, per_rank)
    for b in range(eval_batch_count(table, world, batch_size, limit)):
        rows = shard.slice(b * batch_size, batch_size)
        if rows.num_rows:
            yield rows, True
        else:
            yield table.slice(0, 1), False
