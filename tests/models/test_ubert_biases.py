"""U-BERT fine-tuning's optional user/item biases (``pair_biases``, not in the paper)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rayrec.models.ubert import UBertFinetune, UBertFinetuneConfig

pytestmark = pytest.mark.usefixtures("single_thread")


def _model(data_info, **kwargs) -> UBertFinetune:
    torch.manual_seed(0)
    model = UBertFinetune(UBertFinetuneConfig(backbone="tiny", dropout=0.0, **kwargs), data_info)
    return model.eval()


def test_pair_biases_start_at_zero_and_shift_exactly_their_rows(data_info, rating_batch) -> None:
    biased = _model(data_info, pair_biases=True, bias_reg=0.5)
    with torch.no_grad():
        base = biased(rating_batch)["prediction"]
        # biases and W_f start at zero: the prediction is b_f, the global mean
        torch.testing.assert_close(base, torch.full_like(base, data_info.global_mean))
        biased.predict.weight.normal_(0, 0.05)  # a trained-looking W_f: the biases add to it
        base = biased(rating_batch)["prediction"]
        user, item = rating_batch["user_idx"][0], rating_batch["item_idx"][3]
        biased.user_bias.weight[user] = 0.5
        biased.item_bias.weight[item] = -0.25
        out = biased(rating_batch)
    shift = 0.5 * (rating_batch["user_idx"] == user) - 0.25 * (rating_batch["item_idx"] == item)
    torch.testing.assert_close(out["prediction"], base + shift)
    b_u = 0.5 * (rating_batch["user_idx"] == user).float()
    b_i = -0.25 * (rating_batch["item_idx"] == item).float()
    penalty = 0.5 * (b_u.square() + b_i.square()).mean()
    mse = F.mse_loss(out["prediction"], rating_batch["rating"].float())
    torch.testing.assert_close(out["loss"], mse + penalty)


def test_pair_biases_learn(data_info, rating_batch) -> None:
    model = _model(data_info, pair_biases=True).train()
    model(rating_batch)["loss"].backward()
    seen = rating_batch["user_idx"].unique()
    assert model.user_bias.weight.grad[seen].abs().sum() > 0
    assert model.predict.weight.grad.abs().sum() > 0  # W_f starts at zero, and learns
    assert "user_bias.weight" not in dict(_model(data_info).named_parameters())
