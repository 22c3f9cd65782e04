"""Real Ray Train runs (TorchTrainer, DeepSpeed engines) on the tiny prepared dataset.

One local Ray instance serves the whole module (``ray_cluster`` fixture); every run is a
real ``trainer.fit()`` of 1-2 epochs of 2 steps with the tiny BERT backbone. Biased MF (two
workers, ZeRO-2), the killed worker and the resume from checkpoint are tested across two
nodes in ``test_multinode.py``; global mean trains in the Tune sweep tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from rayrec.models.base import DataInfo
from rayrec.models.ubert import UBertFinetune, UBertFinetuneConfig
from rayrec.train.config import load_config
from rayrec.train.trainer import fit

pytestmark = [pytest.mark.usefixtures("ray_cluster"), pytest.mark.slow]

SHORT = ["train.epochs=1", "train.batch_size=8", "train.max_steps_per_epoch=2"]
TEXT = ["model.params.backbone=tiny", "data.max_len=16", "data.reviews_per_doc=2"]
RATING_KEYS = {"mse", "rmse", "mae"}


def run(model: str, storage: Path, data: Path, *overrides: str) -> dict:
    """Fit ``model`` and check that results.json holds what ``fit`` returned."""
    cfg = load_config(model, overrides=[f"run.storage={storage}", f"run.name={model}", *overrides])
    results = fit(cfg, str(data))
    on_disk = json.loads((storage / model / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(results))
    assert results["versions"]["ray"].startswith("2.60")
    assert len(results["data"]["manifest_sha256"]) == 64
    assert results["samples_per_s"] > 0
    return results


@pytest.mark.parametrize(
    ("model", "engine"),
    [
        ("ncf", ["engine.zero_stage=1", "engine.precision=bf16"]),
        ("deepconn", ["engine.zero_stage=3", "model.params.embed_dim=16", "data.max_len=16"]),
    ],
)
def test_rating_baselines(
    model: str, engine: list[str], tmp_path: Path, tiny_prepared: Path
) -> None:
    results = run(model, tmp_path, tiny_prepared, *SHORT, *engine)
    assert set(results["test"]) == RATING_KEYS
    assert 0 < results["test"]["mse"] < 10
    assert results["best_epoch"] == 0
    assert (tmp_path / model / "epoch_0000" / "state.json").exists()


def test_ubert_pretrain_zero3_bf16_then_finetune(tmp_path: Path, tiny_prepared: Path) -> None:
    pre = run(
        "ubert_pretrain",
        tmp_path,
        tiny_prepared,
        *SHORT,
        *TEXT,
        "engine.zero_stage=3",
        "engine.precision=bf16",
        "data.pretrain_val_every=4",
    )
    assert pre["test"] == {} and set(pre["best_val"]) == {"val_loss"}
    weights = tmp_path / "ubert_pretrain" / "model.safetensors"
    tensors = load_file(weights)
    assert "mlm_bias" in tensors and "user_embedding.weight" in tensors
    info = DataInfo(24, 16, 3, 30522, 0, 3.5, 16, 2)
    loaded = UBertFinetune(UBertFinetuneConfig(backbone="tiny"), info).load_pretrained(weights)
    assert loaded.loaded and not loaded.missing

    fine = run(
        "ubert_finetune",
        tmp_path,
        tiny_prepared,
        *SHORT,
        *TEXT,
        "engine.zero_stage=2",
        f"model.params.pretrained={weights}",
    )
    assert set(fine["test"]) == RATING_KEYS


def test_sifn_ddp(tmp_path: Path, tiny_prepared: Path) -> None:
    results = run("sifn", tmp_path, tiny_prepared, *SHORT, *TEXT, "engine.kind=ddp")
    assert set(results["test"]) == RATING_KEYS | {"sentiment_acc"}
    assert 0 <= results["test"]["sentiment_acc"] <= 1


def test_safmr_three_phases(tmp_path: Path, tiny_prepared: Path) -> None:
    results = run(
        "safmr",
        tmp_path,
        tiny_prepared,
        *SHORT,
        "engine.zero_stage=1",
        "model.params.embed_dim=16",
        "model.params.max_reviews=2",
        "model.params.max_review_len=16",
    )
    epoch = results["history"][0]
    assert {"train_loss_target", "train_loss_transform", "train_loss_source"} <= set(epoch)
    assert set(results["test"]) == RATING_KEYS


def test_bertrs_ranking_metrics(tmp_path: Path, tiny_prepared: Path) -> None:
    results = run(
        "bertrs",
        tmp_path,
        tiny_prepared,
        *SHORT,
        *TEXT,
        "data.pair_max_len=32",
        "engine.zero_stage=0",
    )
    ks = (1, 3, 5, 10)
    assert set(results["test"]) == {f"hr@{k}" for k in ks} | {f"ndcg@{k}" for k in ks}
    assert results["test"]["hr@10"] == 1.0  # 6 candidates per user: always in the top 10
    assert results["test"]["hr@1"] <= results["test"]["hr@3"] <= results["test"]["hr@5"]
