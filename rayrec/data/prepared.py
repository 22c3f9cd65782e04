"""The prepared-dataset format that every model and job reads, and its reader.

``rayrec prepare`` writes one directory (local or ``s3://``)::

    manifest.json           counts, dropped reviews by reason, seed, k-core, tokenizer, max_len,
                            sources (URI, format, domain, sha256), schema_version, ...
    reviews/*.parquet       the token store: one row per kept review, tokens stored once
        review_id int32       dense 0..R-1 (target-domain reviews first)
        domain_idx int16      0 = target domain, 1.. = the other domains (manifest "domains")
        user_idx int32        dense user id (users of the target domain after k-core)
        item_idx int32        dense item id of the target domain; -1 in other domains
        rating float32        1..5
        sentiment int8        0 negative (<3), 1 neutral (=3), 2 positive (>3)  (SIFN)
        split string          "train", "val", "test" (target domain) or "pretrain" (others)
        timestamp int64       unix seconds
        input_ids list<int32> word pieces [CLS] ... [SEP], truncated to max_len, no padding
        opinion_mask list<bool>  word pieces of Hu-Liu opinion words (U-BERT task #1)
    pairs/{train,val,test}.parquet   one row per user-item pair of the target domain
        user_idx, item_idx int32, rating float32, review_id int32 (the pair's own review)
        user_review_ids, item_review_ids list<int32>: up to m TRAINING reviews of the user /
        the item, most recent first, never the pair's own review, never a val/test review
    ranking/train.parquet   BERT-RS implicit view: user_idx, item_idx, label float32
                            (1 = a training pair, 0 = a seeded negative the user never rated)
    ranking/{val,test}.parquet  per user: user_idx, item_idx (one held-out positive),
                            negatives list<int32> (``negatives`` items the user never rated)
    ids/users.parquet (user_idx, user_id), ids/items.parquet (item_idx, item_id)

Tokens live once in the token store; the interaction tables hold review ids, and the
training collate step gathers tokens with :class:`TokenStore`. A review that appears in 20
documents is stored once instead of 20 times (the manifest's ``storage`` entry gives the
measured sizes of both layouts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pds

from rayrec.data import storage

SCHEMA_VERSION = 1
SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"


def parquet_dataset(uri: str) -> pds.Dataset:
    """A parquet file or directory of parquet files, local or s3://, as an Arrow dataset
    (read nothing yet: scan it whole, by columns or by batches)."""
    fs, path = storage.filesystem(uri)
    return pds.dataset(path, filesystem=fs, format="parquet")


def read_table(uri: str, columns: list[str] | None = None) -> pa.Table:
    """A parquet file or directory of parquet files, local or s3://, as one Arrow table."""
    return parquet_dataset(uri).to_table(columns=columns)


@dataclass
class TokenStore:
    """All reviews' word pieces in CSR form: ``ids[offsets[r]:offsets[r + 1]]`` is review r."""

    offsets: np.ndarray  # int64 [R + 1]
    ids: np.ndarray  # int32 [total tokens]
    opinion: np.ndarray  # bool [total tokens]

    @classmethod
    def from_table(cls, table: pa.Table) -> TokenStore:
        """Build from a ``reviews/`` table (any row order: rows are placed by review_id)."""
        order = np.argsort(table.column("review_id").to_numpy())
        review_ids = table.column("review_id").to_numpy()[order]
        if not np.array_equal(review_ids, np.arange(len(review_ids))):
            raise ValueError("reviews/ must hold review ids 0..R-1 exactly once")
        return cls.from_lists(
            table.column("input_ids").take(pa.array(order)),
            table.column("opinion_mask").take(pa.array(order)),
        )

    @classmethod
    def from_lists(cls, tokens: pa.ChunkedArray, opinion: pa.ChunkedArray) -> TokenStore:
        """Build from ``input_ids`` and ``opinion_mask`` list columns: row k is review k."""
        lengths = pa.compute.list_value_length(tokens).to_numpy(zero_copy_only=False)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(
            offsets=offsets,
            ids=pa.compute.list_flatten(tokens).to_numpy().astype(np.int32, copy=False),
            opinion=pa.compute.list_flatten(opinion).to_numpy(zero_copy_only=False),
        )

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def nbytes(self) -> int:
        """Bytes of the three arrays."""
        return self.offsets.nbytes + self.ids.nbytes + self.opinion.nbytes

    def row(self, review_id: int) -> np.ndarray:
        """Word pieces (int32, unpadded, untruncated) of review ``review_id``."""
        return self.ids[self.offsets[review_id] : self.offsets[review_id + 1]]

    def gather(
        self, review_ids: np.ndarray, max_len: int, pad_id: int = 0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Tokens of ``review_ids`` (any shape, -1 = empty slot) padded to ``max_len``.

        Returns ``(input_ids, attention_mask, opinion_mask)`` of shape ``[*shape, max_len]``.
        """
        flat = np.asarray(review_ids).reshape(-1)
        safe = np.where(flat >= 0, flat, 0)
        starts = self.offsets[safe]
        lengths = np.where(flat >= 0, np.minimum(self.offsets[safe + 1] - starts, max_len), 0)
        positions = np.arange(max_len)
        mask = positions[None, :] < lengths[:, None]
        source = (starts[:, None] + positions[None, :])[mask]
        ids = np.full(mask.shape, pad_id, dtype=np.int64)
        ids[mask] = self.ids[source]
        opinion = np.zeros(mask.shape, dtype=bool)
        opinion[mask] = self.opinion[source]
        shape = (*np.shape(review_ids), max_len)
        return ids.reshape(shape), mask.reshape(shape), opinion.reshape(shape)


class PreparedDataset:
    """A prepared dataset at ``uri``: its manifest and its tables."""

    def __init__(self, uri: str) -> None:
        self.uri = uri.rstrip("/")
        manifest_uri = storage.join(self.uri, MANIFEST)
        if not storage.exists(manifest_uri):
            raise FileNotFoundError(f"{self.uri}: not a prepared dataset (no {MANIFEST})")
        self.manifest: dict[str, Any] = storage.read_json(manifest_uri)
        version = self.manifest.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"{manifest_uri}: schema_version {version}, this rayrec reads {SCHEMA_VERSION}"
            )

    def path(self, *parts: str) -> str:
        return storage.join(self.uri, *parts)

    def table(self, *parts: str, columns: list[str] | None = None) -> pa.Table:
        return read_table(self.path(*parts), columns)

    def pairs(self, split: str) -> pa.Table:
        return self.table("pairs", f"{split}.parquet")

    def token_store(self) -> TokenStore:
        return TokenStore.from_table(
            self.table("reviews", columns=["review_id", "input_ids", "opinion_mask"])
        )
