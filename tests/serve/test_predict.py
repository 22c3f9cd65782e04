"""``rayrec predict`` on real runs of the tiny dataset: one row per pair of the split, the
original ids, and the run's own test MSE recomputed from the written file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from serve_helpers import biased_mf_by_hand, by_pair, cli, mse, results, written

pytestmark = pytest.mark.slow


def test_predict_reproduces_the_runs_test_mse(
    mf_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "predictions"
    assert cli("predict", mf_run, "--out", out, "--batch-size", "5", "--actors", "2") == 0
    table = written(out)
    assert table.column_names == ["user", "item", "rating", "prediction", "user_idx", "item_idx"]
    test = pq.read_table(tiny_data / "pairs" / "test.parquet")
    assert table.num_rows == test.num_rows
    assert by_pair(table, "rating") == by_pair(test, "rating")  # every test pair, once
    users, items = (table.column(c).to_numpy() for c in ("user_idx", "item_idx"))
    assert table.column("user").to_pylist() == [f"U{u:03d}" for u in users]
    assert table.column("item").to_pylist() == [f"I{i:03d}" for i in items]
    prediction = table.column("prediction").to_numpy()
    raw = biased_mf_by_hand(mf_run, users, items)
    assert ((raw < 1) | (raw > 5)).any()  # the run predicts off the scale: the clip matters
    np.testing.assert_allclose(prediction, np.clip(raw, 1, 5), rtol=1e-5)
    expected = results(mf_run)["test"]["mse"]
    assert mse(prediction, table.column("rating").to_numpy()) == pytest.approx(expected, rel=1e-5)


def test_predict_text_model_reads_or_reattaches_its_store(
    sifn_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIFN reads its frozen BERT's states from the data's store; a copy of the run whose
    store is gone re-attaches the data's store and predicts the same."""
    out = tmp_path / "sifn"
    assert cli("predict", sifn_run, "--out", out) == 0
    table = written(out)
    expected = results(sifn_run)
    assert expected["config"]["model"]["params"]["review_states"]
    ratings = table.column("rating").to_numpy()
    measured = mse(table.column("prediction").to_numpy(), ratings)
    assert measured == pytest.approx(expected["test"]["mse"], rel=1e-5)

    moved = tmp_path / "moved-run"
    moved.mkdir()
    shutil.copy(sifn_run / "model.safetensors", moved)
    expected["config"]["model"]["params"]["review_states"] = str(tmp_path / "gone")
    (moved / "results.json").write_text(json.dumps(expected))
    capsys.readouterr()
    assert cli("predict", moved, "--out", tmp_path / "again", "--split", "test") == 0
    assert "are gone: attaching the store" in capsys.readouterr().out
    again = by_pair(written(tmp_path / "again"), "prediction")
    first = by_pair(table, "prediction")
    assert again.keys() == first.keys()
    np.testing.assert_allclose([again[k] for k in first], list(first.values()), rtol=1e-5)


def test_predict_val_split(mf_run: Path, tiny_data: Path, tmp_path: Path) -> None:
    """--split val scores the validation pairs (the run's best_val is their MSE)."""
    assert cli("predict", mf_run, "--split", "val", "--out", tmp_path / "val") == 0
    table = written(tmp_path / "val")
    val = pq.read_table(tiny_data / "pairs" / "val.parquet")
    assert by_pair(table, "rating") == by_pair(val, "rating")
    best = results(mf_run)["best_val"]["val_mse"]
    measured = mse(table.column("prediction").to_numpy(), table.column("rating").to_numpy())
    assert measured == pytest.approx(best, rel=1e-5)
