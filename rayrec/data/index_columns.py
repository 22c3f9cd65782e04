"""The staged records as the index stage reads them: numeric columns, no strings per row.

The index stage (:func:`rayrec.data.pipeline.prepare`'s second stage) needs, of every record,
its domain, user, item, rating, time, keys and status, never its text. Held as Python
strings in a pandas frame, 10M records' user and item names alone take GBs; here they are
read as Arrow columns and turned into int32 codes numbered in the sorted order of the
distinct names (the numbering ``pandas.factorize(sort=True)`` gives), so the stage holds
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

from rayrec.data.prepared import read_table

READ_COLUMNS = ["domain", "user_id", "item_id", "rating", "timestamp", "review_key", "source"]
READ_COLUMNS += ["line", "status", "detail", "text_key"]
BOOKKEEPING = ("eof", "malformed")  # statuses whose rows stay a frame


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
class IndexColumns:
    """What the index stage reads of the staged records."""

    reviews: Reviews
    domain_names: np.ndarray  # object (str)
    user_names: pa.Array  # sorted distinct user ids
    item_names: pa.Array  # sorted distinct item ids
    bookkeeping: pd.DataFrame  # the "eof" and "malformed" rows, all READ_COLUMNS
    status_counts: dict[str, int]  # records per status ("eof" rows included)


def sorted_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """int32 codes of a string column, numbering its distinct values in sorted order, and
    those values."""
    distinct = pc.unique(column)
    distinct = distinct.take(pc.array_sort_indices(distinct))
    codes = pc.index_in(column, value_set=distinct)
    # large_string: the type of the prepared format's id tables (pandas' strings in Arrow)
    return codes.to_numpy(zero_copy_only=False).astype(np.int32), distinct.cast(pa.large_string())


def _numpy(table: pa.Table, name: str, dtype: type) -> np.ndarray:
    return table.column(name).to_numpy().astype(dtype, copy=False)


def read_index_columns(records: str) -> IndexColumns:
    """The staged records at ``records`` (parquet, local or s3://) as :class:`IndexColumns`."""
    table = read_table(records, READ_COLUMNS)
    status = table.column("status")
    counts = pc.value_counts(status).to_pylist()
    status_counts = {entry["values"]: int(entry["counts"]) for entry in counts}
    bookkeeping = table.filter(pc.is_in(status, pa.array(BOOKKEEPING))).to_pandas()
    ok = table.filter(pc.equal(status, "ok"))
    del table, status
    ok = ok.take(pc.sort_indices(ok.column("review_key")))
    domain, domain_names = sorted_codes(ok.column("domain"))
    user, user_names = sorted_codes(ok.column("user_id"))
    item, item_names = sorted_codes(ok.column("item_id"))
    reviews = Reviews(
        domain=domain,
        user=user,
        item=item,
        rating=_numpy(ok, "rating", np.float32),
        timestamp=_numpy(ok, "timestamp", np.int64),
        review_key=_numpy(ok, "review_key", np.int64),
        text_key=_numpy(ok, "text_key", np.int64),
    )
    return IndexColumns(
        reviews=reviews,
        domain_names=np.asarray(domain_names.to_pylist(), dtype=object),
        user_names=user_names,
        item_names=item_names,
        bookkeeping=bookkeeping,
        status_counts=status_counts,
    )
