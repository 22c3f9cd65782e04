"""``bench/safmr_readout.py``: the side means leave a training pair's own review out, the ridge
read-out recovers a linear rating, and the script reads a stored SAFMR run (weights as
``rayrec train`` exports them) into one JSON line, refusing a run of another model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from safmr_readout import RIDGE_STRENGTHS, main, open_safmr, ridge_val_mse, side_means

from rayrec.data import storage
from rayrec.data.prepared import MANIFEST, PreparedDataset
from rayrec.eval.metrics import RATING_RANGE
from rayrec.models.registry import build_model
from rayrec.train.checkpoint import WEIGHTS_FILE
from rayrec.train.config import load_config
from rayrec.train.loop import data_info, token_info
from rayrec.train.trainer import RESULTS_FILE

SMALL = [
    "model.params.word_vectors=null",
    "model.params.embed_dim=16",
    "model.params.n_filters=16",
    "model.params.cnn_out_dim=8",
    "model.params.fm_k=4",
    "model.params.max_reviews=3",
    "model.params.max_review_len=16",
    "data.max_len=16",
    "data.reviews_per_doc=3",
]
READOUTS = {"global mean", "model", "C_L", "X_B;X_C", "X_A", "mean X_A", "mean rating"}


def test_side_means_leave_the_training_row_out() -> None:
    keys_train = np.array([0, 0, 0, 1])
    values = np.array([[1.0], [2.0], [6.0], [5.0]])
    own_out = side_means(keys_train, values, keys_train, leave_own_out=True)
    # user 0's rows see the other two of theirs; user 1 has no other row: the overall mean
    np.testing.assert_allclose(own_out[:, 0], [4.0, 3.5, 1.5, 3.5])
    held_out = side_means(keys_train, values, np.array([0, 1, 2]), leave_own_out=False)
    np.testing.assert_allclose(held_out[:, 0], [3.0, 5.0, 3.5])  # key 2: never in training


def test_ridge_recovers_a_linear_rating() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = np.clip(3.0 + 0.5 * x[:, 0] - 0.3 * x[:, 2], *RATING_RANGE)
    mse, strength = ridge_val_mse(x[:300], y[:300], x[300:], y[300:])
    assert mse < 1e-3 and strength == min(RIDGE_STRENGTHS)
    noise_mse, _ = ridge_val_mse(x[:300], rng.permutation(y)[:300], x[300:], y[300:])
    assert noise_mse > 0.1  # features unrelated to the rating read out nothing


def stored_safmr_run(root: Path, data: Path, model: str = "safmr") -> Path:
    """A run directory as ``rayrec train`` leaves it: results.json and model.safetensors
    (here an untrained model's weights)."""
    cfg = load_config(model, overrides=SMALL if model == "safmr" else [])
    run = root / f"{model}-seed0"
    run.mkdir()
    results = {
        "data": {"uri": str(data), "manifest_sha256": storage.sha256(str(data / MANIFEST))},
        "config": cfg.model_dump(mode="json"),
    }
    (run / RESULTS_FILE).write_text(json.dumps(results))
    manifest = PreparedDataset(str(data)).manifest
    torch.manual_seed(0)
    tokens = token_info(cfg, manifest)
    network = build_model(cfg.model.name, cfg.model.params, data_info(manifest, tokens))
    save_file(network.state_dict(), str(run / WEIGHTS_FILE))
    return run


def test_readouts_of_a_stored_run(
    tmp_path: Path, tiny_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = stored_safmr_run(tmp_path, tiny_data)
    main(["--run", str(run)])
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    readouts = figures["readouts"]
    assert set(readouts) == READOUTS
    assert all(np.isfinite(row["val_mse"]) for row in readouts.values())
    assert all(
        readouts[name]["ridge"] in RIDGE_STRENGTHS for name in READOUTS - {"global mean", "model"}
    )
    # the "model" row is the run's own evaluation: the served model's clipped predictions
    scorer = open_safmr(str(run))
    val = scorer.dataset.pairs("val")
    predicted = np.clip(scorer.score(val), *RATING_RANGE)
    truth = val.column("rating").to_numpy()
    assert readouts["model"]["val_mse"] == pytest.approx(float(np.mean((predicted - truth) ** 2)))


def test_a_run_of_another_model_is_refused(
    tmp_path: Path, tiny_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = stored_safmr_run(tmp_path, tiny_data, model="biased_mf")
    with pytest.raises(SystemExit) as exit_info:
        main(["--run", str(run)])
    assert exit_info.value.code == 2
    assert f"{run}: a biased_mf run, not safmr" in capsys.readouterr().err
