"""FM, review documents and the baselines: shapes, gradients, padding, fitting real data."""

from __future__ import annotations

import pytest
import torch
from real_batch import compact_vocabulary, one_thread  # noqa: F401

from rayrec.models.base import RecModel
from rayrec.models.baselines import (
    NCF,
    BiasedMF,
    BiasedMFConfig,
    DeepCoNN,
    DeepCoNNConfig,
    GlobalMean,
    GlobalMeanConfig,
    NCFConfig,
    concat_reviews,
)
from rayrec.models.fm import FM

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL_CNN = {"embed_dim": 16, "n_filters": 16, "cnn_out_dim": 8, "fm_k": 4}


def _build(name: str, data_info, **kwargs) -> RecModel:
    torch.manual_seed(0)
    if name == "global_mean":
        return GlobalMean(GlobalMeanConfig(**kwargs), data_info)
    if name == "biased_mf":
        return BiasedMF(BiasedMFConfig(**kwargs), data_info)
    if name == "ncf":
        return NCF(NCFConfig(**{"factors": 8, **kwargs}), data_info)
    return DeepCoNN(DeepCoNNConfig(**{**SMALL_CNN, **kwargs}), data_info)


MODELS = ("global_mean", "biased_mf", "deepconn", "ncf")


def test_fm_matches_the_pairwise_sum() -> None:
    torch.manual_seed(0)
    fm = FM(6, k=3, bias=1.5)
    x = torch.randn(4, 6)
    pairwise = sum(
        (fm.factors[i] @ fm.factors[j]) * x[:, i] * x[:, j]
        for i in range(6)
        for j in range(i + 1, 6)
    )
    expected = 1.5 + x @ fm.linear.weight[0] + pairwise
    assert torch.allclose(fm(x), expected, atol=1e-5)


def test_concat_reviews_packs_real_tokens_in_order() -> None:
    ids = torch.tensor([[[5, 6, 0], [0, 0, 0], [7, 0, 0]], [[8, 9, 4], [3, 0, 0], [2, 2, 0]]])
    attention = ids > 0
    review_mask = torch.tensor([[True, False, True], [True, True, False]])
    packed, mask = concat_reviews(ids, attention, review_mask)
    assert packed.tolist() == [[5, 6, 7, 0], [8, 9, 4, 3]] and mask.sum(1).tolist() == [3, 4]
    packed, mask = concat_reviews(ids, attention, review_mask, max_reviews=1, max_review_len=2)
    assert packed.tolist() == [[5, 6], [8, 9]] and mask.all()


@pytest.mark.parametrize("name", MODELS)
def test_outputs_and_gradients(name, data_info, rating_batch, assert_all_grads) -> None:
    model = _build(name, data_info).train()
    out = model(rating_batch)
    assert out["prediction"].shape == (16,) and out["loss"].shape == ()
    out["loss"].backward()
    assert_all_grads(model)
    no_rating = {k: v for k, v in rating_batch.items() if k != "rating"}
    assert "loss" not in model.eval()(no_rating)


def test_global_mean_starts_at_the_training_mean(data_info, rating_batch) -> None:
    prediction = _build("global_mean", data_info)(rating_batch)["prediction"]
    assert torch.allclose(prediction, torch.full((16,), data_info.global_mean))


def test_deepconn_padding_invariance(data_info, rating_batch, pad_rating_batch) -> None:
    model = _build("deepconn", data_info).eval()
    with torch.no_grad():
        a, b = model(rating_batch), model(pad_rating_batch(rating_batch, 2, 7))
    assert torch.allclose(a["prediction"], b["prediction"], atol=1e-5)


@pytest.mark.parametrize("name", ("biased_mf", "deepconn", "ncf"))
def test_fits_a_real_batch(name, data_info, rating_batch, fit) -> None:
    batch, info = compact_vocabulary(rating_batch, data_info)
    extra = {"dropout": 0.1} if name == "deepconn" else {}
    before, after = fit(_build(name, info, **extra), batch, steps=150, lr=1e-2)
    assert after["loss"] < 0.5 * before["loss"], (before, after)


def test_global_mean_fits_the_batch_mean(data_info, rating_batch, fit) -> None:
    """The global mean cannot halve its loss: it reaches the batch variance, its optimum."""
    model = _build("global_mean", data_info)
    before, after = fit(model, rating_batch, steps=200, lr=5e-2)
    ratings = rating_batch["rating"]
    assert after["loss"] < before["loss"]
    assert abs(model.mean.item() - ratings.mean().item()) < 0.02
    assert after["loss"] == pytest.approx(float(ratings.var(unbiased=False)), abs=1e-3)
