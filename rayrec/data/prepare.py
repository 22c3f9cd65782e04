"""Preparation of the review index: k-core, split, id maps, documents and the ranking view.

These steps need a global view of the data (who reviewed what) but only a few small columns
of it, so they run in the driver on numpy arrays: 10M reviews are ~400 MB of keys, not the
GBs of their text. The text stays in Ray Data (:mod:`rayrec.data.pipeline`).

Everything is deterministic for a given seed:

* duplicates: a user who reviewed the same item twice in a domain keeps the latest review;
  with ``drop_near_duplicates`` a user who posted the same normalised text twice in a domain
  keeps the latest too (both :func:`latest`); another domain's review that copies the
  text of one of the user's validation or test reviews never enters the cross-domain corpus
  (:func:`copies_of`), so pre-training never sees a held-out text;
* :func:`kcore`: iterative k-core on the target domain (every user and item keeps at least k
  reviews; repeat until stable), as the 5-core datasets of the papers;
* :func:`split_pairs`: a seeded random 80/10/10 split of the target domain's user-item pairs;
* :func:`documents`: per pair, up to ``m`` TRAINING reviews of its user and of its item, the
  most recent first (ties by review id), never the pair's own review: validation and test
  reviews never enter a document, so no label leaks into the inputs;
* :func:`ranking_view`: BERT-RS's implicit feedback: training positives with one seeded
  negative each (an item the user never rated in any split), and per validation / test user
  one held-out positive against ``n`` sampled negatives. Training keeps each negative row's
  user and redraws its item every epoch (:mod:`rayrec.train.datasets`), so the training
  negatives fix the ratio (one per positive) and who gets them, not the items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

SPLIT_NAMES = ("train", "val", "test")
DOCUMENT_ROWS = 1 << 18  # pairs whose documents are built at once
SAMPLE_CELLS = 1 << 20  # negatives drawn at once (rows x count)


def latest(
    groups: tuple[np.ndarray, ...], timestamp: np.ndarray, review_key: np.ndarray
) -> np.ndarray:
    """Mask of the rows that are the latest (then the highest key) of their group: the rows
    with equal values in every array of ``groups``.

    With ``groups = (domain, user, item)`` it keeps one review per (domain, user, item); with
    ``(domain, user, text_key)`` one per (domain, user, normalised text), the hash of
    :func:`rayrec.data.sources.text_key`: a user who posted the same text on several items
    (product variants, re-posts) keeps one.
    """
    order = np.lexsort((review_key, timestamp, *reversed(groups)))
    last = np.ones(len(order), dtype=bool)
    if len(order):
        last[:-1] = np.any([g[order][1:] != g[order][:-1] for g in groups], axis=0)
    keep = np.zeros(len(order), dtype=bool)
    keep[order[last]] = True
    return keep


def copies_of(
    user: np.ndarray, text_key: np.ndarray, original_user: np.ndarray, original_text: np.ndarray
) -> np.ndarray:
    """Mask of the rows whose (user, normalised text) is that of one of the originals."""
    if not len(user) or not len(original_user):
        return np.zeros(len(user), dtype=bool)
    originals = pd.MultiIndex.from_arrays([original_user, original_text])
    return pd.MultiIndex.from_arrays([user, text_key]).isin(originals)


def kcore(users: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the rows in the iterative k-core of the (user, item) graph.

    ``users`` and ``items`` are integer codes. Rows of users or items with fewer than ``k``
    remaining rows are removed until every remaining user and item has at least ``k``.
    """
    keep = np.ones(len(users), dtype=bool)
    if k <= 1:
        return keep
    while True:
        user_count = np.bincount(users[keep], minlength=users.max(initial=-1) + 1)
        item_count = np.bincount(items[keep], minlength=items.max(initial=-1) + 1)
        still = keep & (user_count[users] >= k) & (item_count[items] >= k)
        if still.sum() == keep.sum():
            return keep
        keep = still


def split_pairs(n: int, fractions: tuple[float, float, float], seed: int) -> np.ndarray:
    """A split label (0 train, 1 val, 2 test) for each of ``n`` pairs, seeded.

    Sizes: ``round(n * val)`` validation and ``round(n * test)`` test pairs, the rest train.
    """
    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    n_val, n_test = round(n * fractions[1]), round(n * fractions[2])
    labels = np.zeros(n, dtype=np.int8)
    order = np.random.default_rng(seed).permutation(n)
    labels[order[n - n_val - n_test : n - n_test]] = 1
    labels[order[n - n_test :]] = 2
    return labels


def documents(
    owner: np.ndarray,
    review_id: np.ndarray,
    timestamp: np.ndarray,
    is_train: np.ndarray,
    m: int,
) -> np.ndarray:
    """``[n_pairs, m]`` int32 review ids (-1 = empty slot) of each pair's document.

    ``owner`` is the pair's user (or item) code, ``review_id`` its own review. A document
    holds the owner's ``m`` most recent training reviews other than the pair's own. Built
    :data:`DOCUMENT_ROWS` pairs at a time, so its temporaries do not grow with the corpus.
    """
    n_owners = owner.max(initial=-1) + 1
    train = np.flatnonzero(is_train)
    # the owner's m + 1 most recent training reviews, newest first
    order = train[np.lexsort((-review_id[train], -timestamp[train], owner[train]))]
    first = np.searchsorted(owner[order], np.arange(n_owners))
    rank = np.arange(len(order)) - first[owner[order]]
    top = np.full((n_owners, m + 1), -1, dtype=np.int32)
    kept = rank <= m
    top[owner[order][kept], rank[kept]] = review_id[order][kept]
    del order, rank, kept

    out = np.empty((len(owner), m), dtype=np.int32)
    for start in range(0, len(owner), DOCUMENT_ROWS):
        rows = slice(start, start + DOCUMENT_ROWS)
        candidates = top[owner[rows]]  # [rows, m + 1]
        usable = (candidates >= 0) & (candidates != review_id[rows, None])
        # stable compaction: usable slots first, in recency order; then cut to m
        position = np.argsort(~usable, axis=1, kind="stable")
        compact = np.take_along_axis(candidates, position, axis=1)
        compact[~np.take_along_axis(usable, position, axis=1)] = -1
        out[rows] = compact[:, :m]
    return out


def list_column(rows: np.ndarray) -> pa.ListArray:
    """A ``[n, m]`` int array as a list<int32> column (m values a row), without a Python list."""
    n, m = rows.shape
    offsets = pa.array(np.arange(0, (n + 1) * m, m, dtype=np.int32))
    values = np.ascontiguousarray(rows, dtype=np.int32).reshape(-1)  # no copy if int32
    return pa.ListArray.from_arrays(offsets, pa.array(values))


@dataclass(frozen=True)
class RankingView:
    train: pa.Table  # user_idx, item_idx, label
    val: pa.Table  # user_idx, item_idx, negatives (list<int32>, built from one flat array)
    test: pa.Table
    #: rows left out per split because their user has rated nearly every item
    skipped: dict[str, int]


def sample_unseen(
    rng: np.random.Generator, users: np.ndarray, n_items: int, seen: np.ndarray, count: int
) -> np.ndarray:
    """``[len(users), count]`` distinct int32 items per row that the row's user has not rated.

    ``seen`` holds sorted codes ``user * n_items + item`` of every rated pair; every user
    in ``users`` must have at least ``count`` unrated items (:func:`servable`). Rejection
    sampling, redrawing only the rejected cells, :data:`SAMPLE_CELLS` cells at a time (rows
    in order, one stream of ``rng``): the temporaries stay ~8 MB an array at any corpus size,
    and a draw of at most that many cells is the one an unchunked sampler makes.
    """
    out = np.empty((len(users), count), dtype=np.int32)
    rows = max(1, SAMPLE_CELLS // max(count, 1))
    for start in range(0, len(users), rows):
        chunk = users[start : start + rows].astype(np.int64)
        out[start : start + rows] = _sample_rows(rng, chunk, n_items, seen, count)
    return out


def _sample_rows(
    rng: np.random.Generator, users: np.ndarray, n_items: int, seen: np.ndarray, count: int
) -> np.ndarray:
    """:func:`sample_unseen` for one chunk of rows (int64 ``users``)."""
    out = rng.integers(0, n_items, size=(len(users), count))
    while True:
        codes = users[:, None] * n_items + out
        # membership in the sorted ``seen`` by binary search: np.isin sorts both arrays again
        # every round (60% of the index stage's time at 300k reviews)
        at = np.minimum(np.searchsorted(seen, codes), max(0, len(seen) - 1))
        bad = seen[at] == codes if len(seen) else np.zeros(codes.shape, dtype=bool)
        if count > 1:  # repeated items within a row
            order = np.argsort(out, axis=1)
            sorted_out = np.take_along_axis(out, order, axis=1)
            repeat = np.zeros_like(bad)
            np.put_along_axis(repeat, order[:, 1:], sorted_out[:, 1:] == sorted_out[:, :-1], axis=1)
            bad |= repeat
        if not bad.any():
            return out
        out[bad] = rng.integers(0, n_items, size=int(bad.sum()))


def servable(users: np.ndarray, n_items: int, seen: np.ndarray, count: int) -> np.ndarray:
    """Mask of the ``users`` entries with at least ``count`` items they never rated."""
    rated = np.bincount(seen // n_items, minlength=users.max(initial=-1) + 1)
    return n_items - rated[users] >= count


def ranking_view(
    user: np.ndarray, item: np.ndarray, split: np.ndarray, n_items: int, negatives: int, seed: int
) -> RankingView:
    """BERT-RS's implicit view of the target domain's pairs (see the module docstring)."""
    rng = np.random.default_rng([seed, 1])
    seen = np.unique(user.astype(np.int64) * n_items + item)
    train = np.flatnonzero(split == 0)
    skipped = {}
    keep = servable(user[train], n_items, seen, 1)
    skipped["train"] = int((~keep).sum())
    train = train[keep]
    train_users = user[train]
    train_negatives = sample_unseen(rng, train_users, n_items, seen, 1)[:, 0]
    train_table = pa.table(
        {
            "user_idx": np.concatenate([train_users, train_users]).astype(np.int32),
            "item_idx": np.concatenate([item[train], train_negatives]).astype(np.int32),
            "label": np.repeat(np.array([1.0, 0.0], dtype=np.float32), len(train)),
        }
    )
    held_out = []
    for code, name in ((1, "val"), (2, "test")):
        rows = np.flatnonzero(split == code)
        rows = rows[rng.permutation(len(rows))]
        _, first = np.unique(user[rows], return_index=True)  # one positive per user, seeded
        rows = np.sort(rows[first])
        keep = servable(user[rows], n_items, seen, negatives)
        skipped[name] = int((~keep).sum())
        rows = rows[keep]
        sampled = sample_unseen(rng, user[rows], n_items, seen, negatives)
        held_out.append(
            pa.table(
                {
                    "user_idx": user[rows].astype(np.int32),
                    "item_idx": item[rows].astype(np.int32),
                    "negatives": list_column(sampled),
                }
            )
        )
    return RankingView(train_table, *held_out, skipped=skipped)
