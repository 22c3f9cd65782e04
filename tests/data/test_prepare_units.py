"""The index steps on hand-made arrays: k-core, split sizes, documents, ranking negatives."""

from __future__ import annotations

import numpy as np
import pytest

from rayrec.data import prepare
from rayrec.data.prepare import (
    documents,
    kcore,
    ranking_view,
    sample_unseen,
    servable,
    split_pairs,
)


def test_kcore_is_iterative() -> None:
    # user 2's only review sits on item 3; removing item 3 (1 review) leaves user 2 empty,
    # and item 2 then loses its second reviewer
    users = np.array([0, 0, 1, 1, 2, 2, 0, 1])
    items = np.array([0, 1, 0, 1, 2, 3, 2, 2])
    keep = kcore(users, items, 2)
    assert keep.tolist() == [True, True, True, True, False, False, True, True]
    assert kcore(users, items, 3).sum() == 0


def test_split_sizes_and_seed() -> None:
    labels = split_pairs(1001, (0.8, 0.1, 0.1), seed=0)
    assert np.bincount(labels).tolist() == [801, 100, 100]
    assert np.array_equal(labels, split_pairs(1001, (0.8, 0.1, 0.1), seed=0))
    assert not np.array_equal(labels, split_pairs(1001, (0.8, 0.1, 0.1), seed=1))
    with pytest.raises(ValueError, match="sum to 1"):
        split_pairs(10, (0.8, 0.1, 0.2), seed=0)


def test_documents_are_recent_training_reviews_without_the_own_one() -> None:
    owner = np.array([0, 0, 0, 1, 1, 0])
    review_id = np.arange(6)
    timestamp = np.array([5, 3, 9, 1, 2, 7])
    is_train = np.array([True, True, True, True, False, True])
    docs = documents(owner, review_id, timestamp, is_train, m=2)
    assert docs.tolist() == [[2, 5], [2, 5], [5, 0], [-1, -1], [3, -1], [2, 0]]


def test_ranking_negatives_are_never_rated_and_users_without_room_are_counted() -> None:
    user = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    item = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    split = np.array([0, 1, 0, 2, 0, 0, 1, 2])
    view = ranking_view(user, item, split, n_items=6, negatives=3, seed=0)
    rated = {(u, i) for u, i in zip(user, item, strict=True)}
    for table in (view.val, view.test):
        for row in table.to_pandas().itertuples():
            assert len(set(row.negatives)) == 3
            assert not any((row.user_idx, n) in rated for n in row.negatives)
    assert view.skipped == {"train": 0, "val": 1, "test": 1}  # user 2 rated 4 of 6 items
    train = view.train.to_pandas()
    negatives = train[train["label"] == 0]
    assert not any((r.user_idx, r.item_idx) in rated for r in negatives.itertuples())


def test_documents_and_negatives_are_built_in_bounded_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Chunked building (a few rows at a time, so that the temporaries do not grow with the
    corpus) gives the same documents, and negatives as valid as one draw of everything."""
    rng = np.random.default_rng(3)
    n, n_users, n_items = 400, 40, 30
    user, item = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    timestamp, is_train = rng.integers(0, 50, n), rng.random(n) < 0.8
    whole = documents(user, np.arange(n), timestamp, is_train, m=4)
    monkeypatch.setattr(prepare, "DOCUMENT_ROWS", 7)
    assert np.array_equal(documents(user, np.arange(n), timestamp, is_train, m=4), whole)
    assert whole.dtype == np.int32

    seen = np.unique(user.astype(np.int64) * n_items + item)
    users = np.flatnonzero(servable(np.arange(n_users), n_items, seen, 5))
    one_draw = sample_unseen(np.random.default_rng(0), users, n_items, seen, 5)
    monkeypatch.setattr(prepare, "SAMPLE_CELLS", 12)  # two rows at a time
    chunked = sample_unseen(np.random.default_rng(0), users, n_items, seen, 5)
    assert chunked.shape == one_draw.shape == (len(users), 5)
    assert not np.array_equal(chunked, one_draw)  # another order of draws ...
    for draws in (one_draw, chunked):  # ... as valid: distinct items the user never rated
        assert all(len(set(row)) == 5 for row in draws)
        assert not np.isin(users[:, None] * n_items + draws, seen).any()
