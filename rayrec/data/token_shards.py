"""A token store read shard by shard, for corpora whose tokens do not fit one worker's memory.

:class:`~rayrec.data.prepared.TokenStore` holds every review's word pieces in memory: fine for
the corpora of the paper (MI, a few million reviews), not for the full Amazon 2018 corpus (233M
reviews, about 100 GB of tokens), which every Ray Train worker of a node would load again.

:class:`ShardedTokenStore` answers the same calls (``len``, :meth:`~ShardedTokenStore.gather`,
:meth:`~ShardedTokenStore.row`, identical arrays) from the prepared dataset's ``reviews/``
parquet files themselves:

* a **shard** is one parquet row group of ``reviews/``. The store's index is built from the
  files' footers only (no token is read): per row group, its file, its number of rows and the
  smallest and largest ``review_id`` from the row group's column statistics.
* :meth:`~ShardedTokenStore.gather` finds the shards whose ``[min, max]`` range holds one of
  the requested ids and reads those row groups only, three columns (``review_id``,
  ``input_ids``, ``opinion_mask``), local or ``s3://``. Each shard read places its rows by its
  own ``review_id`` column, so a layout whose ranges overlap (a writer that did not sort) still
  gives the right tokens, at the price of reading every shard whose range covers an id.
  :func:`write_token_shards` writes the layout the store is made for: rows sorted by
  ``review_id`` in row groups of ``reviews_per_shard`` rows, whose ranges are disjoint, so that
  an id lies in the range of exactly one shard.
* shards read stay in a least-recently-used cache bounded by ``cache_mib``: after a call has
  read what it needs, the least recently used shards that the call did not touch are evicted
  until the cached bytes are within the bound (the shards of the current call are always kept,
  so one call over more shards than the bound holds them all until the next call).
  ``shards_read``, ``shards_evicted``, ``shards_cached`` and ``bytes_cached`` say what happened.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pds
import pyarrow.parquet as pq

from rayrec.data import storage
from rayrec.data.prepared import TokenStore

TOKEN_COLUMNS = ["review_id", "input_ids", "opinion_mask"]
MIB = 2**20


@dataclass(frozen=True)
class ShardInfo:
    """One row group of ``reviews/``, as its file's footer describes it."""

    fragment: pds.ParquetFileFragment  # the file, restricted to this one row group
    num_rows: int
    min_id: int
    max_id: int


@dataclass(frozen=True)
class LoadedShard:
    """The tokens of one shard: ``store`` row k is review ``review_ids[k]`` (sorted)."""

    review_ids: np.ndarray  # int64 [rows], ascending
    store: TokenStore

    @classmethod
    def read(cls, info: ShardInfo) -> LoadedShard:
        """Read the shard's row group: its three token columns, nothing else."""
        table = info.fragment.to_table(columns=TOKEN_COLUMNS)
        review_ids = table.column("review_id").to_numpy().astype(np.int64)
        order = np.argsort(review_ids, kind="stable")
        tokens = TokenStore.from_lists(
            table.column("input_ids").take(pa.array(order)),
            table.column("opinion_mask").take(pa.array(order)),
        )
        return cls(review_ids=review_ids[order], store=tokens)

    @property
    def nbytes(self) -> int:
        """Bytes held in memory: the ids and the token arrays."""
        return self.review_ids.nbytes + self.store.nbytes

    def find(self, wanted: np.ndarray) -> np.ndarray:
        """Row of each id of ``wanted`` in this shard, -1 where the shard does not hold it."""
        pos = np.minimum(np.searchsorted(self.review_ids, wanted), len(self.review_ids) - 1)
        return np.where(self.review_ids[pos] == wanted, pos, -1)


def shard_index(uri: str) -> list[ShardInfo]:
    """Every row group of the parquet files at ``uri`` (local or s3://), sorted by its smallest
    review id, from the files' footers."""
    fs, path = storage.filesystem(uri)
    shards = []
    for fragment in pds.dataset(path, filesystem=fs, format="parquet").get_fragments():
        for piece in fragment.split_by_row_group():
            group = piece.row_groups[0]
            stats = group.statistics.get("review_id")
            if group.num_rows and not stats:
                raise ValueError(f"{piece.path}: row group {group.id} has no review_id statistics")
            if group.num_rows:
                shards.append(ShardInfo(piece, group.num_rows, stats["min"], stats["max"]))
    return sorted(shards, key=lambda s: (s.min_id, s.max_id))


class ShardedTokenStore:
    """The token store of ``reviews/`` at ``uri``, read one row group (shard) at a time and
    cached up to ``cache_mib`` MiB; the same answers as :class:`TokenStore`."""

    def __init__(self, uri: str, cache_mib: float) -> None:
        self.uri = uri
        self.cache_bytes = int(cache_mib * MIB)
        self.shards = shard_index(uri)
        self.min_ids = np.array([s.min_id for s in self.shards], dtype=np.int64)
        self.max_ids = np.array([s.max_id for s in self.shards], dtype=np.int64)
        # sorted by min id, disjoint ranges: one candidate shard per id (a binary search)
        self.disjoint = bool(np.all(self.max_ids[:-1] < self.min_ids[1:]))
        self.n_reviews = sum(s.num_rows for s in self.shards)
        if self.shards and (self.min_ids[0] != 0 or self.max_ids.max() != self.n_reviews - 1):
            raise ValueError(f"{uri}: must hold review ids 0..R-1 exactly once")
        self.cache: OrderedDict[int, LoadedShard] = OrderedDict()
        self.shards_read = 0
        self.shards_evicted = 0

    def __len__(self) -> int:
        return self.n_reviews

    @property
    def shards_cached(self) -> int:
        """Shards in the cache now."""
        return len(self.cache)

    @property
    def bytes_cached(self) -> int:
        """Bytes of the shards in the cache now."""
        return sum(shard.nbytes for shard in self.cache.values())

    def gather(
        self, review_ids: np.ndarray, max_len: int, pad_id: int = 0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`TokenStore.gather`: tokens of ``review_ids`` (any shape, -1 = empty slot)
        padded to ``max_len``, as ``(input_ids, attention_mask, opinion_mask)``."""
        flat = np.asarray(review_ids, dtype=np.int64).reshape(-1)
        wanted = np.unique(flat[flat >= 0])
        compact, position = self._compact(wanted)
        local = np.full(flat.shape, -1, dtype=np.int64)
        local[flat >= 0] = position[np.searchsorted(wanted, flat[flat >= 0])]
        return compact.gather(local.reshape(np.shape(review_ids)), max_len, pad_id)

    def row(self, review_id: int) -> np.ndarray:
        """Word pieces (int32, unpadded, untruncated) of review ``review_id``."""
        compact, _ = self._compact(np.array([review_id], dtype=np.int64))
        return compact.row(0)

    def _compact(self, wanted: np.ndarray) -> tuple[TokenStore, np.ndarray]:
        """The reviews ``wanted`` (unique ids) as a small :class:`TokenStore`, and the row
        of each id of ``wanted`` in it. The store ends with one empty review: a call with
        empty slots only still has a store to index."""
        shard_of, row_of = self._locate(wanted)
        grouped = np.argsort(shard_of, kind="stable")  # the ids shard by shard
        position = np.empty(len(wanted), dtype=np.int64)
        position[grouped] = np.arange(len(wanted))
        lengths, ids, opinion = [np.zeros(1, dtype=np.int64)], [], []
        for k in np.unique(shard_of):
            store = self.cache[int(k)].store
            rows = row_of[grouped][shard_of[grouped] == k]
            starts = store.offsets[rows]
            n = store.offsets[rows + 1] - starts
            source = np.repeat(starts - (np.cumsum(n) - n), n) + np.arange(n.sum())
            lengths.append(n)
            ids.append(store.ids[source])
            opinion.append(store.opinion[source])
        lengths.append(np.zeros(1, dtype=np.int64))
        compact = TokenStore(
            offsets=np.cumsum(np.concatenate(lengths)),
            ids=np.concatenate([np.zeros(0, dtype=np.int32), *ids]),
            opinion=np.concatenate([np.zeros(0, dtype=bool), *opinion]),
        )
        return compact, position

    def _candidates(self, wanted: np.ndarray) -> np.ndarray:
        """Indices of the shards whose id range holds at least one id of ``wanted``."""
        if self.disjoint:
            k = np.searchsorted(self.min_ids, wanted, side="right") - 1
            k = k[(k >= 0) & (self.max_ids[np.maximum(k, 0)] >= wanted)]
            return np.unique(k)
        inside = (self.min_ids[:, None] <= wanted) & (wanted <= self.max_ids[:, None])
        return np.flatnonzero(inside.any(axis=1))

    def _locate(self, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Load the shards that hold ``wanted``; per id, its shard index and row there."""
        candidates = self._candidates(wanted)
        self._load(candidates)
        shard_of = np.full(len(wanted), -1, dtype=np.int64)
        row_of = np.full(len(wanted), -1, dtype=np.int64)
        for k in candidates:
            rows = self.cache[int(k)].find(wanted)
            hit = (rows >= 0) & (shard_of < 0)
            shard_of[hit], row_of[hit] = k, rows[hit]
        if (shard_of < 0).any():
            raise KeyError(f"{self.uri}: no review ids {wanted[shard_of < 0][:10].tolist()}")
        return shard_of, row_of

    def _load(self, needed: np.ndarray) -> None:
        """Make the ``needed`` shards the most recently used entries of the cache (reading
        those it lacks), then evict least recently used others beyond the bound."""
        for k in map(int, needed):
            if k in self.cache:
                self.cache.move_to_end(k)
            else:
                self.cache[k] = LoadedShard.read(self.shards[k])
                self.shards_read += 1
        keep = set(map(int, needed))
        total = self.bytes_cached
        while total > self.cache_bytes and next(iter(self.cache)) not in keep:
            _, shard = self.cache.popitem(last=False)
            total -= shard.nbytes
            self.shards_evicted += 1


def write_token_shards(table: pa.Table, uri: str, reviews_per_shard: int) -> str:
    """Write a ``reviews/`` table to ``uri/part-00000.parquet`` (local or s3://; ``uri`` holds
    no other parquet file), sorted by ``review_id`` in row groups of ``reviews_per_shard``
    rows: the layout :class:`ShardedTokenStore` reads one shard per id. Returns the file."""
    fs, path = storage.filesystem(uri)
    fs.makedirs(path, exist_ok=True)
    target = storage.join(path, "part-00000.parquet")
    if fs.exists(target):
        raise FileExistsError(f"{storage.join(uri, 'part-00000.parquet')} exists")
    ordered = table.sort_by("review_id")
    pq.write_table(ordered, target, filesystem=fs, row_group_size=reviews_per_shard)
    return storage.join(uri, "part-00000.parquet")
