"""Registry: every model builds by name and runs on a batch of exactly its declared fields."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from real_batch import one_thread, ranking_batch, with_target_review  # noqa: F401

from rayrec.models.base import Batch, RecModel
from rayrec.models.baselines import NCF, NCFConfig
from rayrec.models.registry import MODELS, build_model, get_model_spec

pytestmark = pytest.mark.usefixtures("one_thread")

NAMES = (
    "ubert_pretrain",
    "ubert_finetune",
    "sifn",
    "safmr",
    "bertrs",
    "global_mean",
    "biased_mf",
    "deepconn",
    "ncf",
    "neumf",
)
SMALL_CNN = {"embed_dim": 16, "n_filters": 16, "cnn_out_dim": 8, "fm_k": 4}
SMALL = {
    "ubert_pretrain": {"backbone": "tiny"},
    "ubert_finetune": {"backbone": "tiny"},
    "sifn": {"backbone": "tiny"},
    "safmr": SMALL_CNN,
    "bertrs": {"backbone": "tiny"},
    "deepconn": SMALL_CNN,
    "biased_mf": {"factors": 8},
    "ncf": {"factors": 8},
    "neumf": {"factors": 8},
}
RATING_METRICS = ("mse", "rmse", "mae")


@pytest.fixture(scope="module")
def task_batches(rating_batch, pretrain_batch, reviews, tokenizer) -> dict[str, Batch]:
    return {
        "rating": with_target_review(rating_batch, reviews, tokenizer),
        "pretrain": pretrain_batch,
        "ranking": ranking_batch(reviews, tokenizer),
    }


def test_names() -> None:
    assert tuple(MODELS) == NAMES
    assert all(spec.name == name for name, spec in MODELS.items())


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="unknown model 'nope'.*safmr.*ncf"):
        get_model_spec("nope")
    with pytest.raises(KeyError, match="known models"):
        build_model("nope", {}, None)


def test_tasks_and_metrics() -> None:
    for name in ("ubert_finetune", "sifn", "safmr", "global_mean", "biased_mf", "deepconn", "ncf"):
        spec = get_model_spec(name)
        assert spec.task == "rating" and spec.metrics[:3] == RATING_METRICS
        assert (spec.default_metric, spec.metric_mode) == ("mse", "min")
    for name in ("bertrs", "neumf"):
        ranking = get_model_spec(name)
        assert ranking.task == "ranking" and (ranking.default_metric, ranking.metric_mode) == (
            "ndcg@10",
            "max",
        )
        assert set(ranking.metrics) == {f"{m}@{k}" for m in ("hr", "ndcg") for k in (1, 3, 5, 10)}
    pretrain = get_model_spec("ubert_pretrain")
    assert pretrain.task == "pretrain" and pretrain.default_metric == "loss"
    assert get_model_spec("safmr").extra["train_only_fields"] == {
        "target_input_ids",
        "target_attention_mask",
    }


@pytest.mark.parametrize("name", NAMES)
def test_builds_and_runs_on_exactly_its_fields(name, data_info, task_batches) -> None:
    spec = get_model_spec(name)
    torch.manual_seed(0)
    model = build_model(name, SMALL.get(name, {}), data_info)
    assert isinstance(model, spec.model_cls) and isinstance(model, RecModel)
    source = task_batches[spec.task]
    batch = {field: source[field] for field in spec.batch_fields}
    model.train()
    for phase in model.update_phases:
        out = model(batch, phase=phase)
        assert out["prediction"].shape == (16,)
        assert torch.isfinite(out["loss"]), phase
        out["loss"].backward()
    # evaluation: val/test batches never carry the training-only fields
    eval_batch = {
        k: v for k, v in batch.items() if k not in spec.extra.get("train_only_fields", ())
    }
    with torch.no_grad():
        out = model.eval()(eval_batch)
    assert out["prediction"].shape == (16,) and torch.isfinite(out["prediction"]).all()


def test_build_model_config_forms(data_info) -> None:
    assert isinstance(build_model("ncf", None, data_info), NCF)
    model = build_model("ncf", NCFConfig(factors=4), data_info)
    assert model.config.factors == 4
    with pytest.raises(ValidationError):
        build_model("ncf", {"factors": 4, "typo": 1}, data_info)
    with pytest.raises(TypeError, match="NCFConfig"):
        build_model("ncf", get_model_spec("deepconn").config_cls(), data_info)
