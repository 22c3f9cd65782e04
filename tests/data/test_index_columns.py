"""The index stage's reader of the staged records: codes, order and bookkeeping, checked
against pandas on a small staged table spread over several files and record batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rayrec.data.index_columns import read_index_columns


def staged_records(n: int, seed: int) -> pd.DataFrame:
    """Records as the read stage stages them: "ok" reviews, malformed lines, eof rows."""
    rng = np.random.default_rng(seed)
    status = rng.choice(["ok", "ok", "ok", "malformed"], n)
    status[-2:] = "eof"
    return pd.DataFrame(
        {
            "domain": rng.choice(["Kindle", "Electronics"], n),
            "user_id": [f"u{k}" for k in rng.integers(0, 300, n)],
            "item_id": [f"i{k:03d}" for k in rng.integers(0, 120, n)],
            "rating": rng.integers(1, 6, n).astype(np.float64),
            "timestamp": rng.integers(0, 10**9, n),
            "review_key": rng.permutation(n) * 7,  # unique, in no order
            "source": "raw/x.json",
            "line": np.arange(n),
            "status": status,
            "detail": np.where(status == "malformed", "bad json", None),
            "text_key": rng.integers(-(2**62), 2**62, n),
            "text": "t",
        }
    )


def test_reviews_are_coded_and_ordered_as_pandas_would(tmp_path: Path) -> None:
    frame = staged_records(3000, seed=0)
    staged = tmp_path / "records"
    staged.mkdir()
    for k, start in enumerate(range(0, len(frame), 1000)):  # 3 files of several row groups
        part = frame.iloc[start : start + 1000]
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False),
                       staged / f"part-{k}.parquet", row_group_size=128)  # fmt: skip

    reviews, names = read_index_columns(str(staged))

    ok = frame[frame["status"] == "ok"].sort_values("review_key")
    assert np.array_equal(reviews.review_key, ok["review_key"])
    for field, column, distinct in (
        ("user", "user_id", names.user_names),
        ("item", "item_id", names.item_names),
        ("domain", "domain", names.domain_names),
    ):
        codes, expected_names = pd.factorize(ok[column], sort=True)
        assert getattr(reviews, field).dtype == np.int32
        assert np.array_equal(getattr(reviews, field), codes), field
        assert list(distinct if isinstance(distinct, np.ndarray) else distinct.to_pylist()) == list(
            expected_names
        )
    assert np.array_equal(reviews.rating, ok["rating"].astype(np.float32))
    assert np.array_equal(reviews.timestamp, ok["timestamp"])
    assert np.array_equal(reviews.text_key, ok["text_key"])
    assert names.status_counts == frame["status"].value_counts().to_dict()
    bookkeeping = frame[frame["status"] != "ok"]
    assert sorted(names.bookkeeping["line"]) == sorted(bookkeeping["line"])
    assert set(names.bookkeeping.columns) >= {"source", "line", "status", "detail"}
