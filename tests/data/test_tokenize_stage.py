"""The tokenize stage's work units and actors (rayrec/data/tokenize_stage.py), on staged records
written here: several files of several row groups, some records not in the index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pds
import pyarrow.parquet as pq
import pytest

from rayrec.data.tokenize import ReviewTokenizer
from rayrec.data.tokenize_stage import attach_ids, tokenize_records, units_of
from rayrec.progress import Progress
from tests.conftest import MUSICAL_INSTRUMENTS

GROUPS_PER_FILE = (3, 1, 4)  # row groups of the three staged files
GROUP_ROWS = 50


def mi_texts(n: int) -> list[str]:
    import pandas as pd

    frame = pd.read_csv(MUSICAL_INSTRUMENTS, usecols=["reviewText"], nrows=n)
    return frame["reviewText"].fillna("").astype(str).tolist()


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> tuple[Path, Path, pa.Table]:
    """Staged records (8 row groups in 3 files, real MI texts), and the index keeping every
    third record dropped (as de-duplication or the k-core would)."""
    root = tmp_path_factory.mktemp("staged")
    records = root / "records"
    records.mkdir()
    total = sum(GROUPS_PER_FILE) * GROUP_ROWS
    texts = mi_texts(total)
    keys = np.arange(total, dtype=np.int64) * 7  # increasing, as a file's line numbers
    start = 0
    for number, groups in enumerate(GROUPS_PER_FILE):
        rows = slice(start, start + groups * GROUP_ROWS)
        table = pa.table(
            {
                "review_key": keys[rows],
                "rating": np.tile(np.arange(1, 6, dtype=np.float32), total // 5)[rows],
                "timestamp": np.arange(total, dtype=np.int64)[rows],
                "text": texts[rows],
            }
        )
        pq.write_table(table, records / f"part-{number}.parquet", row_group_size=GROUP_ROWS)
        start = rows.stop
    kept_rows = np.flatnonzero(np.arange(total) % 3 != 2)
    kept = pa.table(
        {
            "review_key": keys[kept_rows],
            "review_id": np.arange(len(kept_rows), dtype=np.int32),
            "domain_idx": np.zeros(len(kept_rows), dtype=np.int16),
            "user_idx": (kept_rows % 11).astype(np.int32),
            "item_idx": (kept_rows % 13).astype(np.int32),
            "split": (kept_rows % 4).astype(np.int8),  # 3: the cross-domain corpus
        }
    )
    pq.write_table(kept, root / "kept.parquet")
    return records, root / "kept.parquet", kept


def test_units_cover_every_row_group_once_in_file_order(staged) -> None:
    records, _, _ = staged
    units = units_of(str(records), unit_rows=120)  # 3 row groups of 50 a unit
    assert [u.index for u in units] == list(range(len(units)))
    covered = [(Path(p).name, g) for u in units for p, g in zip(u.paths, u.row_groups, strict=True)]
    expected = [(f"part-{f}.parquet", g) for f, n in enumerate(GROUPS_PER_FILE) for g in range(n)]
    assert covered == expected
    assert [u.rows for u in units] == [150, 150, 100]  # the last unit holds what is left
    assert len(units_of(str(records), unit_rows=1)) == sum(GROUPS_PER_FILE)


def test_two_actors_write_the_tokens_of_one_direct_call(staged, ray_session, tmp_path) -> None:
    """Two actors, units of one row group: every kept record tokenized once, with the ids,
    labels and tokens of rayrec's tokenizer called on the whole table in this process."""
    records, kept_path, kept = staged
    out = tmp_path / "reviews"
    progress = list(tokenize_records(str(records), str(kept_path), str(out), "minilm", 32, 2))
    assert [done for done, _ in progress] == list(range(1, len(progress) + 1))
    assert progress[-1][1] == kept.num_rows
    written = pds.dataset(str(out), format="parquet").to_table().sort_by("review_id")

    staged_table = pds.dataset(str(records), format="parquet").to_table()
    expected = ReviewTokenizer("minilm", 32)(attach_ids(staged_table, kept.to_pandas()))
    assert written.equals(expected.sort_by("review_id"))
    assert set(written.column("split").to_pylist()) == {"train", "val", "test", "pretrain"}
    for path in sorted(out.glob("*.parquet")):  # each file a run of increasing ids
        ids = pq.read_table(path, columns=["review_id"]).column("review_id").to_numpy()
        assert np.all(np.diff(ids) > 0)


def test_progress_prints_a_line_at_each_tenth_off_a_terminal() -> None:
    lines: list[str] = []
    progress = Progress("tokenize", 1000, lines.append)
    for done in range(0, 1001, 50):
        progress.update(done)
    progress.close()
    assert len(lines) == 11  # 10%, 20%, ..., 100%, then the closing line
    assert lines[0].startswith("tokenize:  10% (100 of 1,000 reviews")
    assert lines[-1].startswith("tokenize: 1,000 reviews in ")


def test_a_short_stage_with_quiet_for_prints_nothing() -> None:
    lines: list[str] = []
    quiet = Progress("evaluating val", 20, lines.append, unit="batches", quiet_for=60.0)
    for done in range(1, 21):
        quiet.update(done)
    quiet.close()
    assert lines == []
    loud = Progress("evaluating val", 20, lines.append, unit="batches", quiet_for=0.0)
    loud.update(20)
    loud.close()
    assert lines[0].startswith("evaluating val: 100% (20 of 20 batches")
