"""The staged records as the index stage reads them: numeric columns, no strings per row.

The index stage (:func:`rayrec.data.pipeline.prepare`'s second stage) needs, of every record,
its domain, user, item, rating, time, keys and status, never its text. Held as Python
strings in a pandas frame, 10M records' user and item names alone take GBs; here they are
read one column at a time and turned into int32 codes numbered in the sorted order of
the distinct names (the numbering ``pandas.factorize(sort=True)`` gives), so the stage holds
about 40 bytes a record and the distinct names once.

Rows come sorted by ``review_key`` (file order), the order every later step relies on.
Only the few rows that are not reviews (one "eof" row per file or byte range, and the
malformed records) stay a frame, for the per-file accounting of
:func:`rayrec.data.pipeline`'s malformed-record check.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from rayrec.data.prepared import parquet_dataset

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


def _key_order(table: pa.Table) -> np.ndarray:
    """The row order that sorts ``table`` by its ``review_key`` column (stable)."""
    return np.argsort(table.column("review_key").to_numpy(), kind="stable")


def read_index_columns(records: str) -> tuple[Reviews, IndexNames]:
    """The staged records at ``records`` (parquet, local or s3://): the "ok" ones as
    :class:`Reviews`, and the :class:`IndexNames`.

    One scan for the numbers, then one per name column (its distinct values, sorted, and
    every record's int32 code in them): so at most one string column of the records is held
    at a time, beside the numeric columns, instead of every column at once."""
    dataset = parquet_dataset(records)
    ok = pc.field("status") == "ok"
    numbers = dataset.to_table(columns=list(NUMERIC_FIELDS), filter=ok)
    order = _key_order(numbers)
    fields = {
        field: numbers.column(field).to_numpy()[order].astype(dtype, copy=False)
        for field, dtype in NUMERIC_FIELDS.items()
    }
    del numbers, order
    distinct: dict[str, pa.Array] = {}
    for field, name in zip(CODED_FIELDS, NAME_COLUMNS, strict=True):
        table = dataset.to_table(columns=[name, "review_key"], filter=ok)
        distinct[name] = sorted_distinct(table.column(name).chunks)
        codes = pc.index_in(table.column(name).cast(pa.large_string()), value_set=distinct[name])
        fields[field] = codes.to_numpy().astype(np.int32, copy=False)[_key_order(table)]
        del table, codes
    status = dataset.to_table(columns=["status"]).column("status")
    counts = {e["values"]: int(e["counts"]) for e in pc.value_counts(status).to_pylist()}
    bookkeeping = dataset.to_table(
        columns=READ_COLUMNS, filter=pc.field("status").isin(BOOKKEEPING)
    )
    pa.default_memory_pool().release_unused()  # the scans' buffers, back to the system
    return Reviews(**fields), IndexNames(
        domain_names=np.asarray(distinct["domain"].to_pylist(), dtype=object),
        user_names=distinct["user_id"],
        item_names=distinct["item_id"],
        bookkeeping=bookkeeping.to_pandas(),
        status_counts=counts,
    )
