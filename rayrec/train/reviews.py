"""Everything the collate step needs to know about reviews, loaded once per worker process.

:class:`ReviewIndex` holds the token store (:class:`~rayrec.data.prepared.TokenStore`: all
tokens in memory; with ``data.token_cache_mib`` set, a
:class:`~rayrec.data.token_shards.ShardedTokenStore` that reads only the row groups of
``reviews/`` its batches need) and, per review id, the columns of ``reviews/`` that batches
carry besides tokens (user, item, split, sentiment), plus each user's and each item's TRAINING
reviews, most recent first (BERT-RS builds its pair text from them). :func:`load_review_index`
caches one index per dataset URI (and cache bound) in the process, so a Ray Train worker reads
the prepared dataset (local or s3://) once however many datasets, epochs and evaluations it
runs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from rayrec.data.prepared import PreparedDataset, TokenStore
from rayrec.data.token_shards import ShardedTokenStore

SPLIT_CODES = {"train": 0, "val": 1, "test": 2, "pretrain": 3}
TRAIN = SPLIT_CODES["train"]
# the columns of reviews/ besides the tokens (what the index reads with a sharded store)
INDEX_COLUMNS = [
    "review_id",
    "domain_idx",
    "user_idx",
    "item_idx",
    "rating",
    "sentiment",
    "split",
    "timestamp",
]


@dataclass(frozen=True)
class Csr:
    """Rows of variable length: ``values[offsets[k]:offsets[k + 1]]`` is row k."""

    offsets: np.ndarray  # int64 [K + 1]
    values: np.ndarray  # int64 [N]

    def row(self, k: int) -> np.ndarray:
        return self.values[self.offsets[k] : self.offsets[k + 1]]


def _group(keys: np.ndarray, values: np.ndarray, n_keys: int) -> Csr:
    """Group ``values`` by ``keys`` (0..n_keys-1), keeping the given order within a key."""
    order = np.argsort(keys, kind="stable")
    counts = np.bincount(keys, minlength=n_keys)
    offsets = np.zeros(n_keys + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return Csr(offsets=offsets, values=values[order].astype(np.int64))


@dataclass(frozen=True)
class ReviewIndex:
    """Per-review arrays indexed by review id, and the token store."""

    tokens: TokenStore | ShardedTokenStore
    user_idx: np.ndarray  # int64 [R]
    item_idx: np.ndarray  # int64 [R], -1 outside the target domain
    domain_idx: np.ndarray  # int64 [R], 0 = target domain
    rating: np.ndarray  # float32 [R]
    split: np.ndarray  # uint8 [R], SPLIT_CODES
    sentiment: np.ndarray  # int64 [R], 0 negative / 1 neutral / 2 positive
    user_train: Csr  # per user: training review ids, most recent first
    item_train: Csr  # per item: training review ids, most recent first

    @classmethod
    def from_table(
        cls,
        table: pa.Table,
        n_users: int,
        n_items: int,
        tokens: ShardedTokenStore | None = None,
    ) -> ReviewIndex:
        """Build from a ``reviews/`` table: all columns of the prepared format, or only
        :data:`INDEX_COLUMNS` when ``tokens`` (the sharded store of its tokens) is given."""
        order = np.argsort(table.column("review_id").to_numpy())
        table = table.take(pa.array(order))
        if tokens is not None and not (
            len(tokens) == table.num_rows
            and np.array_equal(table.column("review_id").to_numpy(), np.arange(table.num_rows))
        ):
            raise ValueError("reviews/ must hold review ids 0..R-1 exactly once")

        def column(name: str) -> np.ndarray:
            return table.column(name).to_numpy(zero_copy_only=False)

        split_names = column("split")
        unknown = set(np.unique(split_names)) - SPLIT_CODES.keys()
        if unknown:
            raise ValueError(f"reviews/: unknown split values {sorted(unknown)}")
        split = np.zeros(len(split_names), dtype=np.uint8)
        for name, code in SPLIT_CODES.items():
            split[split_names == name] = code
        user_idx = column("user_idx").astype(np.int64)
        item_idx = column("item_idx").astype(np.int64)
        train = np.flatnonzero(split == TRAIN)
        recent_first = train[np.argsort(-column("timestamp")[train], kind="stable")]
        return cls(
            tokens=TokenStore.from_table(table) if tokens is None else tokens,
            user_idx=user_idx,
            item_idx=item_idx,
            domain_idx=column("domain_idx").astype(np.int64),
            rating=column("rating").astype(np.float32),
            split=split,
            sentiment=column("sentiment").astype(np.int64),
            user_train=_group(user_idx[recent_first], recent_first, n_users),
            item_train=_group(item_idx[recent_first], recent_first, n_items),
        )

    def check_train_only(self, review_ids: np.ndarray, what: str) -> None:
        """Raise if any id (-1 = empty slot) is not a training review: a document must never
        carry a validation or test review (that would leak the label)."""
        ids = review_ids[review_ids >= 0]
        bad = ids[self.split[ids] != TRAIN]
        if bad.size:
            raise ValueError(f"{what}: non-training reviews {bad[:10].tolist()} in a document")


@functools.lru_cache(maxsize=2)
def load_review_index(uri: str, token_cache_mib: float | None = None) -> ReviewIndex:
    """The :class:`ReviewIndex` of the prepared dataset at ``uri``, read once per process.

    ``token_cache_mib`` None: all tokens in memory; a number: the tokens stay in ``reviews/``
    and are read shard by shard, at most that many MiB cached (``data.token_cache_mib``)."""
    dataset = PreparedDataset(uri)
    counts = dataset.manifest["counts"]
    if token_cache_mib is None:
        return ReviewIndex.from_table(dataset.table("reviews"), counts["users"], counts["items"])
    return ReviewIndex.from_table(
        dataset.table("reviews", columns=INDEX_COLUMNS),
        counts["users"],
        counts["items"],
        ShardedTokenStore(dataset.path("reviews"), token_cache_mib),
    )
