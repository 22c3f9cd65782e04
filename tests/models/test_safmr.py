"""SA-FM and SAFMR: shapes, per-phase gradients, evaluation without the target review,
padding invariance, and the three-optimizer training step on real reviews."""

from __future__ import annotations

import math

import pytest
import torch
from real_batch import compact_vocabulary, one_thread, with_target_review  # noqa: F401

from rayrec.models.base import Batch
from rayrec.models.encoders import word_vectors
from rayrec.models.fm import SAFM
from rayrec.models.safmr import SAFMR, TARGET_FIELDS, SAFMRConfig

SMALL = {"embed_dim": 16, "n_filters": 16, "cnn_out_dim": 8, "fm_k": 4}
PHASES = ("target", "transform", "source")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def safmr_batch(rating_batch, reviews, tokenizer) -> Batch:
    return with_target_review(rating_batch, reviews, tokenizer)


def _safmr(data_info, **kwargs) -> SAFMR:
    torch.manual_seed(0)
    return SAFMR(SAFMRConfig(**{**SMALL, **kwargs}), data_info)


def test_safm_attention_and_formula() -> None:
    torch.manual_seed(0)
    safm = SAFM(5, k=3, bias=2.0)
    x = torch.randn(4, 5)
    y, attention = safm(x)
    assert y.shape == (4,) and attention.shape == (4, 5, 5)
    assert torch.allclose(attention.sum(-1), torch.ones(4, 5))
    assert (attention.diagonal(dim1=-2, dim2=-1) == 0).all()  # no self-interaction
    e = x[..., None] * safm.factors
    r, h, s = e @ safm.query.weight.T, e @ safm.key.weight.T, e @ safm.value.weight.T
    scores = (r @ h.transpose(1, 2) / math.sqrt(3)).masked_fill(torch.eye(5, dtype=bool), -1e9)
    expected = 2.0 + x @ safm.linear.weight[0] + (e * (scores.softmax(-1) @ s)).sum((1, 2))
    assert torch.allclose(y, expected, atol=1e-5)


def test_phases_partition_the_parameters(data_info) -> None:
    model = _safmr(data_info)
    assert model.update_phases == PHASES
    sets = [{id(p) for p in model.phase_parameters(phase)} for phase in PHASES]
    assert all(sets) and sum(map(len, sets)) == len(set.union(*sets))  # non-empty, disjoint
    assert set.union(*sets) == {id(p) for p in model.parameters()}
    with pytest.raises(ValueError, match="no update phase"):
        model.phase_parameters("nope")


def test_target_epochs_train_in_two_stages(data_info) -> None:
    """Joint by default (every step every epoch, early stopping from epoch 0); with
    ``target_epochs`` = 2 the target step alone in epochs 0-1, then transform and source,
    and early stopping counts from epoch 2."""
    joint = _safmr(data_info)
    assert [joint.phases_at(e) for e in (0, 5)] == [PHASES, PHASES]
    assert joint.patience_from() == 0
    staged = _safmr(data_info, target_epochs=2)
    assert [staged.phases_at(e) for e in range(4)] == [
        ("target",),
        ("target",),
        ("transform", "source"),
        ("transform", "source"),
    ]
    assert staged.patience_from() == 2


def test_outputs_per_phase(data_info, safmr_batch) -> None:
    model = _safmr(data_info).eval()
    n = SMALL["cnn_out_dim"]
    with torch.no_grad():
        for phase in (*PHASES, "all"):
            out = model(safmr_batch, phase=phase)
            assert out["prediction"].shape == (16,) and out["loss"].shape == ()
            assert torch.isfinite(out["loss"])
        assert model(safmr_batch)["attention"].shape == (16, n, n)
        # transform and source both predict with the source network
        assert torch.equal(
            model(safmr_batch, phase="transform")["prediction"], model(safmr_batch)["prediction"]
        )
    with pytest.raises(ValueError, match="no update phase"):
        model(safmr_batch, phase="nope")


@pytest.mark.parametrize("phase", PHASES)
def test_each_phase_reaches_exactly_its_parameters(data_info, safmr_batch, phase) -> None:
    model = _safmr(data_info).train()
    model(safmr_batch, phase=phase)["loss"].backward()
    own = {id(p) for p in model.phase_parameters(phase)}
    for name, p in model.named_parameters():
        if id(p) in own:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{phase}: {name} has no grad"
        else:
            assert p.grad is None, f"{phase}: gradient leaked to {name}"


def test_evaluation_without_the_target_review(data_info, safmr_batch) -> None:
    model = _safmr(data_info).eval()
    test_batch = {k: v for k, v in safmr_batch.items() if k not in TARGET_FIELDS}
    with torch.no_grad():
        out = model(test_batch)
        assert torch.equal(out["prediction"], model(safmr_batch)["prediction"])
        expected = (out["prediction"] - test_batch["rating"]).abs().mean()
        assert torch.allclose(out["loss"], expected)
        del test_batch["rating"]
        assert "loss" not in model(test_batch)
    with pytest.raises(KeyError, match="target_input_ids"):
        model(test_batch, phase="target")


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_padding_invariance(data_info, safmr_batch, pad_rating_batch, activation) -> None:
    model = _safmr(data_info, activation=activation).eval()
    padded = pad_rating_batch(safmr_batch, 2, 7)  # also pads target_* [B, L] by 2 tokens
    assert padded["user_input_ids"].shape[1:] == (6, 39)
    with torch.no_grad():
        for phase in ("all", "target"):
            a, b = model(safmr_batch, phase=phase), model(padded, phase=phase)
            assert torch.allclose(a["prediction"], b["prediction"], atol=1e-5), phase


def test_review_budget_truncates_documents(data_info, safmr_batch) -> None:
    model = _safmr(data_info, max_reviews=2, max_review_len=10).eval()
    cut = dict(safmr_batch)
    for side in ("user", "item"):
        cut[f"{side}_input_ids"] = safmr_batch[f"{side}_input_ids"][:, :2, :10]
        cut[f"{side}_attention_mask"] = safmr_batch[f"{side}_attention_mask"][:, :2, :10]
        cut[f"{side}_review_mask"] = safmr_batch[f"{side}_review_mask"][:, :2]
    with torch.no_grad():
        assert torch.equal(model(safmr_batch)["prediction"], model(cut)["prediction"])


def test_three_optimizer_training_fits_a_real_batch(data_info, safmr_batch) -> None:
    """Algorithms 1-2 as the loop runs them: per batch a target, a transform and a source step,
    each with its own Adam (the paper's lr 0.008). Dropout 0.1: the test is about fitting."""
    batch, info = compact_vocabulary(safmr_batch, data_info)
    model = _safmr(info, dropout=0.1)
    optimizers = {
        phase: torch.optim.Adam(model.phase_parameters(phase), lr=0.008) for phase in PHASES
    }

    def eval_losses() -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            return {phase: float(model(batch, phase)["loss"]) for phase in (*PHASES, "all")}

    before = eval_losses()
    model.train()
    for _ in range(200):
        for phase in PHASES:
            optimizers[phase].zero_grad()
            model(batch, phase=phase)["loss"].backward()
            optimizers[phase].step()
    after = eval_losses()
    for phase in ("target", "transform", "all"):  # "all": the source network's L1 loss
        assert after[phase] < 0.5 * before[phase], (phase, before, after)


def test_untrained_safmr_predicts_the_global_mean(data_info, safmr_batch) -> None:
    """Like DeepCoNN's FM (fm.init_dense_fm): the untrained SA-FMs over dense CNN features
    start within a few hundredths of a star of the global mean."""
    torch.manual_seed(0)
    model = SAFMR(SAFMRConfig(), data_info).eval()  # the paper's sizes
    with torch.no_grad():
        prediction = model(safmr_batch)["prediction"]
    assert (prediction - data_info.global_mean).abs().max() < 0.25, prediction


@pytest.mark.parametrize("rating_loss", ["l1", "mse"])
def test_rating_loss_is_the_configured_one(data_info, safmr_batch, rating_loss) -> None:
    """Eq. 12 and 14 in the paper's L1 or as squared error; eq. 13 is the same in both."""
    model = _safmr(data_info, rating_loss=rating_loss).eval()
    rating = safmr_batch["rating"].float()
    with torch.no_grad():
        for phase in ("target", "source", "all"):
            out = model(safmr_batch, phase=phase)
            error = out["prediction"] - rating
            expected = error.abs().mean() if rating_loss == "l1" else error.square().mean()
            assert torch.allclose(out["loss"], expected), phase
        other = _safmr(data_info, rating_loss="mse" if rating_loss == "l1" else "l1").eval()
        transform = model(safmr_batch, phase="transform")["loss"]
        assert torch.equal(transform, other(safmr_batch, phase="transform")["loss"])


def test_each_network_copies_the_pretrained_word_vectors(data_info) -> None:
    table = word_vectors("tiny")
    model = _safmr(data_info, word_vectors="tiny", embed_dim=table.shape[1])
    embeddings = [
        model.target_cnn.embedding.weight,
        model.user_cnn.cnn.embedding.weight,
        model.item_cnn.cnn.embedding.weight,
    ]
    assert all(torch.equal(weight, table) for weight in embeddings)
    assert len({id(weight) for weight in embeddings}) == 3  # the phases stay disjoint
