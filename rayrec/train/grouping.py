"""Grouped batches: an epoch order in which pairs that share an item (or a user) meet in a
batch, so that a batch's documents share more reviews and encoding each distinct review once
(:class:`~rayrec.models.encoders.ReviewEncoder`) saves more.

``train.group_batches: item`` (or ``user``) reorders the epoch's permutation: every group
(item) gets a random rank, rows are sorted by it (ties in permutation order, so a group's rows
stay shuffled), the sorted order is cut into global batches, and the batches are shuffled. Every
row is still seen once per epoch and the order is still a function of (seed, epoch); but a
batch is no longer a uniform sample of the table (its ratings cluster by item), which can bias
the gradient of a step: it is off by default, a cost trade-off to measure, not a paper setting.
"""

from __future__ import annotations

import numpy as np


def grouped_order(
    order: np.ndarray, groups: np.ndarray, batch_rows: int, rng: np.random.Generator
) -> np.ndarray:
    """``order`` (a permutation of row positions) regrouped: rows of one group adjacent, in
    batches of ``batch_rows`` whose order is shuffled. ``groups[p]`` is row p's group id."""
    group_rank = rng.permutation(int(groups.max()) + 1)
    by_group = order[np.argsort(group_rank[groups[order]], kind="stable")]
    n_batches = -(-len(by_group) // batch_rows)
    chunks = [by_group[b * batch_rows : (b + 1) * batch_rows] for b in range(n_batches)]
    return np.concatenate([chunks[b] for b in rng.permutation(n_batches)])
