"""``bench/blend.py``'s cached member predictions: read again while the run's weights are the
ones that made them, made again when the run was trained again under the same name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from blend import MADE_BY, member_predictions
from safetensors.torch import load_file, save_file

from rayrec.data import storage
from rayrec.train.checkpoint import WEIGHTS_FILE
from rayrec.train.config import load_config
from rayrec.train.trainer import fit

SHORT = ["train.batch_size=8", "train.max_steps_per_epoch=3", "train.epochs=1"]


def predicted(tables: dict) -> np.ndarray:
    return tables["test"].column("prediction").to_numpy()


def test_cached_predictions_follow_the_run_weights(
    tmp_path: Path, tiny_data: Path, ray_session: None
) -> None:
    cfg = load_config("biased_mf", overrides=[f"run.storage={tmp_path}", "run.name=mf", *SHORT])
    fit(cfg, str(tiny_data))
    run, cache = tmp_path / "mf", str(tmp_path / "predictions" / "mf-seed0")
    first = member_predictions(str(run), cache)
    marker = Path(cache, "test", MADE_BY)
    assert marker.read_text() == storage.sha256(str(run / WEIGHTS_FILE))
    written = marker.stat().st_mtime_ns
    np.testing.assert_array_equal(predicted(member_predictions(str(run), cache)), predicted(first))
    assert marker.stat().st_mtime_ns == written  # read, not made again

    weights = load_file(str(run / WEIGHTS_FILE))  # the same run trained again: other weights
    weights["item_bias.weight"] = weights["item_bias.weight"] - 0.5
    save_file(weights, str(run / WEIGHTS_FILE))
    again = predicted(member_predictions(str(run), cache))
    np.testing.assert_allclose(again, np.clip(predicted(first) - 0.5, 1, 5), atol=1e-5)
