"""Real Ray Train runs (TorchTrainer, DeepSpeed engines) on the tiny prepared dataset.

One local Ray instance serves the whole module (``ray_cluster`` fixture); every run is a
real ``trainer.fit()`` of 1-2 epochs of 2 steps with the tiny BERT backbone. Biased MF (two
workers, ZeRO-2), the killed worker and the resume from checkpoint are tested across two
nodes in ``test_multinode.py``; global mean trains in the Tune sweep tests; NCF (ZeRO-1,
bf16) on the real pipeline's output in ``tests/data/test_prepared_format.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import ray
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


def worst_constant_mse(data: Path) -> float:
    """Test MSE of the worse of the constant predictions 1 and 5, the scale's ends."""
    test = pq.read_table(data / "pairs" / "test.parquet").column("rating").to_numpy()
    return float(max(np.mean((test - 1) ** 2), np.mean((test - 5) ** 2)))


def test_deepconn_zero3_keeps_the_best_epoch(tmp_path: Path, tiny_prepared: Path) -> None:
    """Two epochs: the best epoch is the one of the lowest validation MSE and its checkpoint
    the one tested. After 4 steps DeepCoNN is far from the training mean's error (test MSE
    1.9 against 0.9): the check against that baseline is on real data, with NCF (ZeRO-1,
    bf16) in tests/data/test_prepared_format.py."""
    results = run(
        "deepconn",
        tmp_path,
        tiny_prepared,
        *SHORT,
        "train.epochs=2",
        "engine.zero_stage=3",
        "model.params.word_vectors=null",  # the preset's MiniLM table is 384 wide
        "model.params.freeze_word_vectors=false",
        "model.params.embed_dim=16",
        "data.max_len=16",
    )
    assert set(results["test"]) == RATING_KEYS
    val = [m["val_mse"] for m in results["history"]]
    assert len(val) == 2 and val[0] != val[1]
    best = results["best_epoch"]
    assert best == int(np.argmin(val))
    assert results["best_val"] == {"val_mse": val[best]}
    assert results["best_checkpoint"] == str(tmp_path / "deepconn" / f"epoch_{best:04d}")
    assert (tmp_path / "deepconn" / f"epoch_{best:04d}" / "state.json").exists()
    assert results["test"]["rmse"] == pytest.approx(results["test"]["mse"] ** 0.5)
    assert results["test"]["mae"] <= results["test"]["rmse"]
    assert 0 < results["test"]["mse"] < worst_constant_mse(tiny_prepared), results["history"]


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
    """``target_epochs=2``: epochs 0-1 run the target step alone, epoch 2 the transform and
    source steps. With patience 1 the run would end after epoch 1 if the target epochs
    counted (their validation is the untrained source network's, the same twice)."""
    results = run(
        "safmr",
        tmp_path,
        tiny_prepared,
        *SHORT,
        "train.epochs=3",
        "train.patience=1",
        "model.params.target_epochs=2",
        "engine.zero_stage=1",
        "model.params.word_vectors=null",
        "model.params.embed_dim=16",
        "model.params.max_reviews=2",
        "model.params.max_review_len=16",
    )
    history = results["history"]
    assert history[0]["val_mse"] == history[1]["val_mse"]
    losses = [{k for k in m if k.startswith("train_loss_")} for m in history]
    assert losses == [
        {"train_loss_target"},
        {"train_loss_target"},
        {"train_loss_transform", "train_loss_source"},
    ]
    epoch = results["history"][0]
    # run.cpus_per_worker unset: the single worker takes the whole (one-node) cluster and
    # runs as many torch threads as the machine has cores of it
    cluster_cpus = ray.cluster_resources()["CPU"]
    assert results["config"]["run"]["cpus_per_worker"] == cluster_cpus
    assert epoch["torch_threads"] == min(int(cluster_cpus), os.cpu_count())
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
        "train.max_val_batches=1",  # validation on its first batch, the test split whole
    )
    ks = (1, 3, 5, 10)
    assert set(results["test"]) == {f"hr@{k}" for k in ks} | {f"ndcg@{k}" for k in ks}
    test = results["test"]
    users = pq.read_table(tiny_prepared / "ranking" / "test.parquet").num_rows
    for key, value in test.items():  # every test user counted exactly once
        assert 0 <= value <= 1, key
        if key.startswith("hr@"):
            assert value * users == pytest.approx(round(value * users)), (key, value)
    assert test["hr@1"] <= test["hr@3"] <= test["hr@5"] <= test["hr@10"]
    assert test["ndcg@1"] == pytest.approx(test["hr@1"])  # a hit at rank 0 gains 1
    for k in ks:
        assert test[f"ndcg@{k}"] <= test[f"hr@{k}"] + 1e-12
    # 6 candidates per user (1 positive, 5 negatives): the positive ranks 0..5, so HR@10 is 1
    # by construction and NDCG@10 at least 1/log2(7); ranks are scored among the 6 only
    assert test["hr@10"] == 1.0 and test["ndcg@10"] >= 1 / np.log2(7) - 1e-12
    assert test["ndcg@10"] == pytest.approx(test["ndcg@5"] + (1 - test["hr@5"]) / np.log2(7))


def test_bertrs_started_from_a_neumf_run_ranks_as_it(tmp_path: Path, tiny_prepared: Path) -> None:
    """NeuMF trains in the loop like any ranker, and BERT-RS with ``train.init_from`` its run
    starts at its logits: with a learning rate too small to move anything, BERT-RS's test
    metrics are NeuMF's, while from its own random start they are not."""
    neumf = run("neumf", tmp_path, tiny_prepared, "train.epochs=2", "train.batch_size=8")
    assert set(neumf["test"]) == {f"{m}@{k}" for m in ("hr", "ndcg") for k in (1, 3, 5, 10)}
    still = [*SHORT, *TEXT, "data.pair_max_len=32", "engine.zero_stage=0", "train.lr=1e-12"]
    started = load_config(
        "bertrs",
        overrides=[
            f"run.storage={tmp_path}",
            "run.name=bertrs-from-neumf",
            f"train.init_from={tmp_path / 'neumf'}",
            *still,
        ],
    )
    assert fit(started, str(tiny_prepared))["test"] == pytest.approx(neumf["test"])
    cold = run("bertrs", tmp_path, tiny_prepared, *still)
    assert cold["test"] != pytest.approx(neumf["test"])
