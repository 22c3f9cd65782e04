"""Candidate documents (no Ray): a user's and an item's ``m`` most recent training reviews in
the order :func:`rayrec.data.prepare.documents` gives a held-out pair, ties included."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rayrec.data.prepare import documents
from rayrec.data.prepared import PreparedDataset
from rayrec.serve.recommend import recent_documents, take_lists

M = 3


def test_recent_documents_are_the_documents_of_held_out_pairs(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n, users, items = 400, 80, 100
    user, item = rng.integers(0, users, n), rng.integers(0, items, n)
    timestamp = rng.integers(0, 6, n) * 86_400  # whole days: many ties
    split = rng.choice(np.array(["train", "val", "test"]), n, p=[0.7, 0.15, 0.15])
    (tmp_path / "reviews").mkdir()
    pq.write_table(
        pa.table(
            {
                "review_id": pa.array(np.arange(n), pa.int32()),
                "user_idx": pa.array(user, pa.int32()),
                "item_idx": pa.array(item, pa.int32()),
                "split": split,
                "timestamp": timestamp,
            }
        ).take(rng.permutation(n)),  # stored in any order
        tmp_path / "reviews" / "part-0.parquet",
    )
    manifest = {
        "schema_version": 1,
        "counts": {"users": users, "items": items},
        "reviews_per_user": M,
        "reviews_per_item": M,
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    dataset = PreparedDataset(str(tmp_path))
    held_out = np.flatnonzero(split != "train")
    ids, is_train = np.arange(n), split == "train"
    for side, owner in (("user", user), ("item", item)):
        expected = documents(owner, ids, timestamp, is_train, M)[held_out]
        got = take_lists(recent_documents(dataset, side), owner[held_out]).to_pylist()
        assert got == [[r for r in row if r >= 0] for row in expected.tolist()]
        assert any(len(row) == M for row in got) and any(len(row) < M for row in got)
