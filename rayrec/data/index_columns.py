"""The staged records as the index stage reads them: numeric columns, no strings per row.

The index stage (:func:`rayrec.data.pipeline.prepare`'s second stage) needs, of every record,
its domain, user, item, rating, time, keys and status, never its text. Held as Python
strings in a pandas frame, 10M records' user and item names alone take GBs; here they are
read a record batch at a time and turned into int32 codes numbered in the sorted order of
the distinct names (the numbering ``pandas.factorize(sort=True)`` gives), so the stage holds
about 40 bytes a record and the distinct names once.

Rows come sorted by ``review_key`` (file order), the order every later step relies on.
Only the few rows that are not reviews (one "eof" row per file or byte range, and the
malformed records) stay a frame, for the per-file accounting of
:func:`rayrec.data.pipeline`'s malformed-record check.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds

from rayrec.data import storage

READ_COLUMNS = ["domain", "user_id", "item_id", "rating", "timestamp", "review_key", "source"]
READ_COLUMNS += ["line", "status", "detail", "text_key"]
BOOKKEEPING = ("eof", "malformed")  # statuses whose rows stay a frame
NAME_COLUMNS = ("domain", "user_id", "item_id")  # read as int32 codes ...
CODED_FIELDS = ("domain", "user", "item")  # ... into these fields of Reviews
NUMERIC_FIELDS = {
    "rating": np.float32,
    "timestamp": np.int64,
    "review_key": np.int64,
    "text_key": np.int64,
}


@dataclass
class Reviews:
    """The "ok" records, one array each, in ``review_key`` order."""

    domain: np.ndarray  # int32 code into ``domain_names``
    user: np.ndarray  # int32 code into ``user_names`` (sorted)
    item: np.ndarray  # int32 code into ``item_names`` (sorted)
    rating: np.ndarray  # float32
    timestamp: np.ndarray  # int64
    review_key: np.ndarray  # int64
    text_key: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.review_key)

    def take(self, rows: np.ndarray) -> Reviews:
        """The rows ``rows`` (a mask or positions) of every column."""
        return Reviews(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})


@dataclass
class IndexNames:
    """What the index stage reads of the staged records besides their :class:`Reviews`."""

    domain_names: np.ndarray  # object (str)
    user_names: pa.Array  # sorted distinct user ids
    item_names: pa.Array  # sorted distinct item ids
    bookkeeping: pd.DataFrame  # the "eof" and "malformed" rows, all READ_COLUMNS
    status_counts: dict[str, int]  # records per status ("eof" rows included)


def sorted_distinct(chunks: list[pa.Array]) -> pa.Array:
    """The distinct values of ``chunks`` (strings), sorted, as large_string (the type of the
    prepared format's id tables: pandas' strings in Arrow)."""
    strings = [chunk.cast(pa.large_string()) for chunk in chunks]
    distinct = pc.unique(pa.chunked_array(strings, type=pa.large_string()))
    return distinct.take(pc.array_sort_indices(distinct))


def _codes(column: pa.Array, distinct: pa.Array) -> np.ndarray:
    """int32 positions of ``column``'s values in ``distinct``."""
    codes = pc.index_in(column.cast(pa.large_string()), value_set=distinct)
    return codes.to_numpy(zero_copy_only=False).astype(np.int32)


def _dataset(records: str) -> pds.Dataset:
    fs, path = storage.filesystem(records)
    return pds.dataset(path, filesystem=fs, format="parquet")


def read_index_columns(records: str) -> tuple[Reviews, IndexNames]:
    """The staged records at ``records`` (parquet, local or s3://): the "ok" ones as
    :class:`Reviews`, and the :class:`IndexNames`.

    Two passes over the files, a record batch at a time: the first collects the distinct
    names of the "ok" records, the second turns each batch into codes and numbers. So no
    string column of all records is ever held, only the distinct names and the numeric
    columns."""
    dataset = _dataset(records)
    names: dict[str, list[pa.Array]] = {name: [] for name in NAME_COLUMNS}
    for batch in dataset.to_batches(columns=[*NAME_COLUMNS, "status"]):
        ok = batch.filter(pc.equal(batch.column("status"), "ok"))
        for name in NAME_COLUMNS:
            names[name].append(pc.unique(ok.column(name)))
    distinct = {name: sorted_distinct(chunks) for name, chunks in names.items()}

    status_counts: Counter[str] = Counter()
    bookkeeping: list[pa.RecordBatch] = []
    parts: dict[str, list[np.ndarray]] = {name: [] for name in (*CODED_FIELDS, *NUMERIC_FIELDS)}
    for batch in dataset.to_batches(columns=READ_COLUMNS):
        status = batch.column("status")
        for entry in pc.value_counts(status).to_pylist():
            status_counts[entry["values"]] += int(entry["counts"])
        bookkeeping.append(batch.filter(pc.is_in(status, pa.array(BOOKKEEPING))))
        ok = batch.filter(pc.equal(status, "ok"))
        for field, name in zip(CODED_FIELDS, NAME_COLUMNS, strict=True):
            parts[field].append(_codes(ok.column(name), distinct[name]))
        for field, dtype in NUMERIC_FIELDS.items():
            values = ok.column(field).to_numpy(zero_copy_only=False)
            parts[field].append(values.astype(dtype, copy=False))
    dtypes = {**dict.fromkeys(CODED_FIELDS, np.int32), **NUMERIC_FIELDS}
    columns = {f: np.concatenate([np.empty(0, dtypes[f]), *parts[f]]) for f in dtypes}
    order = np.argsort(columns["review_key"], kind="stable")
    reviews = Reviews(**{field: values[order] for field, values in columns.items()})
    pa.default_memory_pool().release_unused()  # the read buffers, back to the system
    return reviews, IndexNames(
        domain_names=np.asarray(distinct["domain"].to_pylist(), dtype=object),
        user_names=distinct["user_id"],
        item_names=distinct["item_id"],
        bookkeeping=pa.Table.from_batches(
            bookkeeping, schema=pa.schema([dataset.schema.field(name) for name in READ_COLUMNS])
        ).to_pandas(),
        status_counts=dict(status_counts),
    )
