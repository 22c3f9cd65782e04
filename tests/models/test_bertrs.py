"""BERT-RS: outputs, gradients, frozen backbone, padding invariance, fitting real candidates."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from real_batch import one_thread, ranking_batch  # noqa: F401

from rayrec.models.base import Batch
from rayrec.models.bertrs import BertRS, BertRSConfig

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def candidates(reviews, tokenizer) -> Batch:
    return ranking_batch(reviews, tokenizer)


def _bertrs(data_info, **kwargs) -> BertRS:
    torch.manual_seed(0)
    return BertRS(BertRSConfig(backbone="tiny", **kwargs), data_info)


def test_candidates_are_real_and_balanced(candidates, tokenizer) -> None:
    assert candidates["label"].tolist() == [1.0, 0.0] * 8
    assert (candidates["pair_input_ids"][:, 0] == tokenizer.cls_token_id).all()
    assert (candidates["pair_token_type_ids"] == 1).any(dim=1).all()  # both segments present


def test_outputs_and_gradients(data_info, candidates, assert_all_grads) -> None:
    """The text head W_s starts at zero (the model starts as its id branches): it has a
    gradient at once, and after one step so has every parameter upstream of it."""
    model = _bertrs(data_info).train()
    assert not model.predict_semantic.weight.any()
    out = model(candidates)
    assert out["prediction"].shape == (16,) and out["loss"].shape == ()
    assert torch.isfinite(out["prediction"]).all()  # the logit: ranked on, not squashed
    out["loss"].backward()
    assert model.predict_semantic.weight.grad.abs().sum() > 0
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    model.zero_grad()
    model(candidates)["loss"].backward()
    assert_all_grads(model)
    model.eval()
    with torch.no_grad():
        no_label = model({k: v for k, v in candidates.items() if k != "label"})
        assert "loss" not in no_label
        probability = torch.sigmoid(no_label["prediction"])  # ŷ of eq. 12
        expected = F.binary_cross_entropy(probability, candidates["label"])
        assert torch.allclose(model(candidates)["loss"], expected, atol=1e-6)


def test_frozen_backbone_trains_only_the_pooler_and_heads(data_info, candidates) -> None:
    model = _bertrs(data_info, freeze_backbone=True).train()
    assert not any(layer.training for layer in model.bert.encoder.layer)
    assert model.bert.pooler.training
    model(candidates)["loss"].backward()
    assert all(p.grad is None for p in model.bert.encoder.parameters())
    assert all(p.grad is None for p in model.bert.embeddings.parameters())
    assert all(p.grad is not None for p in model.bert.pooler.parameters())


def test_padding_invariance(data_info, candidates) -> None:
    model = _bertrs(data_info).eval()
    padded = {k: F.pad(v, (0, 9)) if k.startswith("pair_") else v for k, v in candidates.items()}
    with torch.no_grad():
        a, b = model(candidates), model(padded)
    assert torch.allclose(a["prediction"], b["prediction"], atol=1e-5)


def test_fits_real_candidates(data_info, candidates, fit) -> None:
    before, after = fit(_bertrs(data_info), candidates, steps=60, lr=1e-3)
    assert after["loss"] < 0.5 * before["loss"], (before, after)


def test_reg_penalises_the_candidates_id_rows(data_info, candidates) -> None:
    """``reg`` adds NeuMF's L2 penalty of the batch's GMF and MLP rows, averaged over it."""
    plain, penalised = _bertrs(data_info).eval(), _bertrs(data_info, reg=0.5).eval()
    with torch.no_grad():
        norms = plain.branches.squared_norms(candidates["user_idx"], candidates["item_idx"])
        gap = penalised(candidates)["loss"] - plain(candidates)["loss"]
    assert norms.mean() > 0
    torch.testing.assert_close(gap, 0.5 * norms.mean())


def test_trainable_layers_trains_the_top_layer_pooler_and_heads(data_info, candidates) -> None:
    model = _bertrs(data_info, trainable_layers=1).train()
    assert not model.bert.embeddings.training and not model.bert.encoder.layer[0].training
    assert model.bert.encoder.layer[1].training
    model(candidates)["loss"].backward()
    with_grad = {n for n, p in model.bert.named_parameters() if p.grad is not None}
    top = {n for n, _ in model.bert.named_parameters() if n.startswith("encoder.layer.1.")}
    pooler = {n for n, _ in model.bert.named_parameters() if n.startswith("pooler.")}
    assert with_grad == top | pooler
