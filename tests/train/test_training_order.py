"""The order of the training rows (rayrec.train.datasets.TrainTable) on the tiny prepared
dataset, whose tables are stored in a clustered order like the real ones: ``pairs/train`` by
user, ``ranking/train`` all positives then all negatives, pretraining reviews by user.

Each epoch must be one seeded global permutation, a function of (seed, epoch) only, cut into
equal, disjoint parts by rank (positions r, r + W, ...), so that a step of the whole run
trains on the same rows for any number of workers with the same global batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from rayrec.train.datasets import TrainTable, load_train_table

TASKS = ("rating", "ranking", "pretrain")
SEED = 5


def _table(data: Path, task: str) -> TrainTable:
    return load_train_table(str(data), task, 4)


def _positions(table: TrainTable, epoch: int, world: int, batch: int, seed: int = SEED) -> list:
    """Per rank, per step: the table positions of the batch (the rows ``batches`` yields)."""
    steps = max(1, table.rows.num_rows // world // batch)
    return [
        [
            table.rank_positions(epoch, seed, rank, world)[s * batch : (s + 1) * batch]
            for s in range(steps)
        ]
        for rank in range(world)
    ]


def test_ranking_batches_mix_labels_like_the_table(tiny_prepared: Path) -> None:
    """ranking/train holds all positives, then all negatives: every batch must still hold
    about the table's share of positives (in stored order the first batches are all 1)."""
    table = _table(tiny_prepared, "ranking")
    labels = table.rows.column("label").to_numpy()
    share = labels.mean()
    assert share == 0.5 and labels[: len(labels) // 2].all()  # the stored order is clustered
    for world in (1, 2):
        for rank in range(world):
            batches = list(table.batches(0, SEED, rank, world, batch_size=32))
            assert len(batches) == len(labels) // world // 32
            fractions = [b.column("label").to_numpy().mean() for b in batches]
            assert all(abs(f - share) <= 0.25 for f in fractions), fractions
            assert abs(np.mean(fractions) - share) <= 0.1, fractions


@pytest.mark.parametrize("task", TASKS)
def test_every_batch_spreads_over_the_table(tiny_prepared: Path, task: str) -> None:
    """No batch is a run of neighbouring rows of the stored order (item / label / domain
    clusters): the mean stored position of every batch is near the middle of the table."""
    table = _table(tiny_prepared, task)
    n = table.rows.num_rows
    for epoch in (0, 1):
        for part in _positions(table, epoch, world=1, batch=16)[0]:
            assert abs(part.mean() / n - 0.5) < 0.25, (epoch, part)


@pytest.mark.parametrize("task", TASKS)
def test_epochs_differ_and_a_seed_repeats_its_order(tiny_prepared: Path, task: str) -> None:
    table = _table(tiny_prepared, task)
    epoch0 = table.rank_positions(0, SEED, 0, 1)
    epoch1 = table.rank_positions(1, SEED, 0, 1)
    assert sorted(epoch0) == sorted(epoch1) == list(range(table.rows.num_rows))
    assert (epoch0 != epoch1).mean() > 0.5
    assert not np.array_equal(table.rank_positions(0, SEED + 1, 0, 1), epoch0)
    # a resumed run is a fresh process: the table is read again, the order is the same
    before = [b.to_pydict() for b in table.batches(1, SEED, 1, 2, batch_size=8)]
    load_train_table.cache_clear()
    reread = _table(tiny_prepared, task)
    assert reread is not table
    assert [b.to_pydict() for b in reread.batches(1, SEED, 1, 2, batch_size=8)] == before


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("world", [2, 3, 5])
def test_ranks_get_disjoint_equal_parts_covering_the_table(
    tiny_prepared: Path, task: str, world: int
) -> None:
    table = _table(tiny_prepared, task)
    n = table.rows.num_rows
    parts = [table.rank_positions(0, SEED, rank, world) for rank in range(world)]
    assert {len(p) for p in parts} == {n // world}
    union = np.concatenate(parts)
    assert len(set(union.tolist())) == len(union)  # disjoint
    left_out = set(range(n)) - set(union.tolist())
    assert len(left_out) == n % world  # the whole table but the tail of the permutation
    order = table.rank_positions(0, SEED, 0, 1)
    assert left_out == set(order[n - n % world :].tolist())
    # the batches are those rows of the epoch's table, in that order
    rows = table.epoch_rows(0, SEED)
    for rank, part in enumerate(parts):
        batches = list(table.batches(0, SEED, rank, world, batch_size=4))
        assert len(batches) == n // world // 4
        expected = rows.take(pa.array(part[: 4 * len(batches)]))
        assert pa.concat_tables(batches).equals(expected)


@pytest.mark.parametrize("task", TASKS)
def test_a_step_trains_on_the_same_rows_for_any_world_size(tiny_prepared: Path, task: str) -> None:
    """Global batch 12 as 1 x 12, 2 x 6, 3 x 4 and 4 x 3: step s covers the same rows."""
    table = _table(tiny_prepared, task)
    steps = {}
    for world in (1, 2, 3, 4):
        parts = _positions(table, epoch=1, world=world, batch=12 // world)
        steps[world] = [
            sorted(np.concatenate([parts[r][s] for r in range(world)]).tolist())
            for s in range(len(parts[0]))
        ]
    assert len(steps[1]) == table.rows.num_rows // 12
    assert steps[1] == steps[2] == steps[3] == steps[4]
