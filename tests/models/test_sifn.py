"""SIFN: outputs, ablation switches, gradients, padding invariance, fitting real reviews."""

from __future__ import annotations

import pytest
import torch

from rayrec.models.sifn import SIFN, SIFNConfig

pytestmark = pytest.mark.usefixtures("single_thread")


def _sifn(data_info, **kwargs) -> SIFN:
    torch.manual_seed(0)
    return SIFN(SIFNConfig(backbone="tiny", **kwargs), data_info)


def _with_live_head(model: SIFN) -> SIFN:
    """w_r starts at zero (the rating learner starts at the global mean), which zeroes every
    gradient behind it and makes every prediction the same at step 0; a random w_r shows
    the wiring."""
    torch.nn.init.normal_(model.rating_head.weight, std=0.1)
    return model


def test_an_untrained_model_predicts_the_global_mean(data_info, rating_batch) -> None:
    model = _sifn(data_info).eval()
    with torch.no_grad():
        prediction = model(rating_batch)["prediction"]
    assert torch.allclose(prediction, torch.full((16,), data_info.global_mean))


def test_outputs_and_attention(data_info, rating_batch) -> None:
    model = _sifn(data_info, return_attention=True).eval()
    out = model(rating_batch)
    assert out["prediction"].shape == (16,)
    assert {"loss", "rating_loss", "sentiment_loss"} <= out.keys()
    assert out["sentiment_logits"].shape == (16, 2, 4, 3)
    words, reviews = out["word_attention"], out["review_attention"]
    assert words.shape == (16, 2, 4, 32) and reviews.shape == (16, 2, 4)
    slots = torch.stack([rating_batch["user_review_mask"], rating_batch["item_review_mask"]], 1)
    assert torch.allclose(words.sum(-1)[slots], torch.ones(int(slots.sum())))
    assert (words.sum(-1)[~slots] == 0).all()
    assert torch.allclose(reviews.sum(-1), torch.ones(16, 2))


def test_frozen_backbone_gets_no_gradient(data_info, rating_batch) -> None:
    model = _sifn(data_info).train()
    assert not model.review_encoder.bert.training
    model(rating_batch)["loss"].backward()
    assert all(p.grad is None for p in model.review_encoder.parameters())


@pytest.mark.parametrize(
    "switches",
    [
        {"freeze_backbone": False},
        {"review_attention": False, "fusion": False},
        {"interaction": "fm"},
        {"interaction": "fm", "fusion": False},
    ],
)
def test_every_trainable_parameter_gets_a_gradient(
    data_info, rating_batch, assert_all_grads, switches
) -> None:
    model = _with_live_head(_sifn(data_info, **switches)).train()
    model(rating_batch)["loss"].backward()
    assert_all_grads(model)


def test_sentiment_weight_zero_is_rating_loss_only(data_info, rating_batch) -> None:
    out = _sifn(data_info, sentiment_weight=0.0)(rating_batch)
    assert "sentiment_loss" not in out and torch.equal(out["loss"], out["rating_loss"])


@pytest.mark.parametrize("switches", [{}, {"interaction": "fm", "review_attention": False}])
def test_padding_invariance(data_info, rating_batch, pad_rating_batch, switches) -> None:
    model = _with_live_head(_sifn(data_info, freeze_backbone=False, **switches)).eval()
    with torch.no_grad():
        a = model(rating_batch)
        b = model(pad_rating_batch(rating_batch, 2, 7))
    assert torch.allclose(a["prediction"], b["prediction"], atol=1e-5)
    assert torch.allclose(a["loss"], b["loss"], atol=1e-5)


def test_fits_a_real_batch(data_info, rating_batch, fit) -> None:
    before, after = fit(_sifn(data_info), rating_batch, steps=25, lr=1e-2)
    assert after["loss"] < 0.5 * before["loss"], (before, after)
    assert after["sentiment_loss"] < before["sentiment_loss"], (before, after)


def test_id_and_bias_penalty_is_the_documented_l2(data_info, rating_batch) -> None:
    torch.manual_seed(0)
    plain = SIFN(SIFNConfig(backbone="tiny"), data_info).eval()
    regularised = SIFN(SIFNConfig(backbone="tiny", id_reg=0.1, bias_reg=0.5), data_info).eval()
    regularised.load_state_dict(plain.state_dict())
    torch.nn.init.normal_(regularised.user_bias.weight)  # non-zero biases
    plain.load_state_dict(regularised.state_dict())
    with torch.no_grad():
        base, penalised = plain(rating_batch)["loss"], regularised(rating_batch)["loss"]
    e_u = plain.user_id(rating_batch["user_idx"]).square().sum(-1)
    e_i = plain.item_id(rating_batch["item_idx"]).square().sum(-1)
    b_u = plain.user_bias(rating_batch["user_idx"]).squeeze(-1)
    b_i = plain.item_bias(rating_batch["item_idx"]).squeeze(-1)
    expected = (0.1 * (e_u + e_i) + 0.5 * (b_u.square() + b_i.square())).mean()
    assert torch.allclose(penalised - base, expected, rtol=1e-5)
    assert expected > 0.1
