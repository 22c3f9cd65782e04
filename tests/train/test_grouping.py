"""Grouped batches: still every row once per epoch, seeded, and batches that share items."""

from __future__ import annotations

import numpy as np

from rayrec.train.grouping import grouped_order

ROWS, ITEMS, BATCH = 1000, 50, 20


def _items() -> np.ndarray:
    return np.random.default_rng(7).integers(0, ITEMS, ROWS)


def test_grouped_order_is_a_seeded_permutation_with_batches_of_few_items() -> None:
    items = _items()
    order = np.random.default_rng(0).permutation(ROWS)
    grouped = grouped_order(order, items, BATCH, np.random.default_rng(1))
    assert np.array_equal(np.sort(grouped), np.arange(ROWS))  # every row once
    again = grouped_order(order, items, BATCH, np.random.default_rng(1))
    assert np.array_equal(grouped, again)
    other = grouped_order(order, items, BATCH, np.random.default_rng(2))
    assert not np.array_equal(grouped, other)

    def distinct_items(positions: np.ndarray) -> float:
        batches = positions[: ROWS // BATCH * BATCH].reshape(-1, BATCH)
        return float(np.mean([len(np.unique(items[b])) for b in batches]))

    # 20 rows per item on average: a grouped batch spans ~2 items, a random one ~17
    assert distinct_items(grouped) < 3 < 12 < distinct_items(order)


def test_grouping_is_for_rating_pairs_only() -> None:
    import pytest
    from pydantic import ValidationError

    from rayrec.train.config import load_config

    assert load_config("sifn", overrides=["train.group_batches=item"]).train.group_batches == "item"
    with pytest.raises(ValidationError, match="group_batches groups rating pairs"):
        load_config("bertrs", overrides=["train.group_batches=item"])
