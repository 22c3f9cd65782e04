"""BERT-RS's training candidates on the tiny prepared dataset: negatives redrawn every epoch
among the items the user never rated in any split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from rayrec.train.datasets import load_train_table

SEED = 3


def _rated(data: Path) -> set[tuple[int, int]]:
    """Every (user, item) with a target-domain review, whatever its split."""
    reviews = pq.read_table(data / "reviews", columns=["user_idx", "item_idx"]).to_pylist()
    return {(r["user_idx"], r["item_idx"]) for r in reviews if r["item_idx"] >= 0}


def test_negatives_are_redrawn_every_epoch_never_a_rated_item(tiny_prepared: Path) -> None:
    stored = pq.read_table(tiny_prepared / "ranking" / "train.parquet")
    labels = stored.column("label").to_numpy()
    users = stored.column("user_idx").to_numpy()
    items = stored.column("item_idx").to_numpy()
    rated = _rated(tiny_prepared)
    held_out = {
        (r["user_idx"], r["item_idx"])
        for split in ("val", "test")
        for r in pq.read_table(tiny_prepared / "ranking" / f"{split}.parquet").to_pylist()
    }
    assert held_out and held_out <= rated  # val / test items count as rated
    table = load_train_table(str(tiny_prepared), "ranking", 20)
    negative = labels == 0
    drawn = []
    for epoch in range(4):
        rows = table.epoch_rows(epoch, SEED)
        assert rows.schema == stored.schema
        # the positives and who gets a negative (the prepared 1:1 ratio) are the table's
        assert np.array_equal(rows.column("label").to_numpy(), labels)
        assert np.array_equal(rows.column("user_idx").to_numpy(), users)
        epoch_items = rows.column("item_idx").to_numpy()
        assert np.array_equal(epoch_items[~negative], items[~negative])
        pairs = set(zip(users[negative].tolist(), epoch_items[negative].tolist(), strict=True))
        assert not pairs & rated
        drawn.append(epoch_items[negative])
    for a, b in zip(drawn, drawn[1:], strict=False):
        assert (a != b).mean() > 0.6  # 10 unrated items per user: 0.9 expected
    assert np.array_equal(
        table.epoch_rows(2, SEED).column("item_idx").to_numpy()[negative], drawn[2]
    )
