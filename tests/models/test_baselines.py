"""FM, review documents and the baselines: shapes, gradients, padding, fitting real data."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from real_batch import compact_vocabulary, one_thread  # noqa: F401
from safetensors import safe_open
from safetensors.torch import save_file

from rayrec.eval.metrics import Evaluation
from rayrec.models.backbone_paths import minilm_dir
from rayrec.models.base import DataInfo, RecModel
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
from rayrec.models.encoders import word_vectors
from rayrec.models.fm import FM
from rayrec.models.registry import build_model
from rayrec.train.checkpoint import WEIGHTS_FILE
from rayrec.train.config import load_config
from rayrec.train.warm_start import warm_start

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


@pytest.mark.parametrize("name", MODELS)
def test_predictions_under_inference_mode_can_become_numpy(name, data_info, rating_batch) -> None:
    """What the run report and ``rayrec predict`` do; GlobalMean's prediction used to be a view
    of its parameter, which keeps requires_grad even under inference_mode in torch 2.13."""
    model = _build(name, data_info).eval()
    with torch.inference_mode():
        prediction = model(rating_batch)["prediction"]
    assert not prediction.requires_grad and prediction.numpy().shape == (16,)


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


# ------------------------------------------------------------------------------------------
# the L2 penalty of the id models (rayrec.models.baselines docstring)
# ------------------------------------------------------------------------------------------

TINY = DataInfo(
    n_users=3,
    n_items=2,
    n_domains=1,
    vocab_size=10,
    pad_token_id=0,
    global_mean=4.0,
    max_len=4,
    reviews_per_doc=1,
)
TINY_BATCH = {
    "user_idx": torch.tensor([0, 1, 0]),
    "item_idx": torch.tensor([0, 1, 1]),
    "rating": torch.tensor([4.0, 3.0, 5.0]),
}


def _tiny_mf(**params) -> BiasedMF:
    """A biased MF on 3 users x 2 items with weights set by hand."""
    model = BiasedMF(BiasedMFConfig(**params), TINY)
    with torch.no_grad():
        model.user_bias.weight.copy_(torch.tensor([[0.5], [-1.0], [0.0]]))
        model.item_bias.weight.copy_(torch.tensor([[0.25], [0.0]]))
        if params.get("factors", 32) > 0:
            model.user_factors.weight.copy_(torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 0.0]]))
            model.item_factors.weight.copy_(torch.tensor([[0.0, 2.0], [1.0, -1.0]]))
    return model


def test_biased_mf_loss_is_mse_plus_the_documented_penalty() -> None:
    model = _tiny_mf(factors=2, reg=0.1, bias_reg=0.2)
    out = model(TINY_BATCH)
    # pair (u0, i0): 4 + 0.5 + 0.25 + (1·0 + 0·2) = 4.75, rating 4
    # pair (u1, i1): 4 - 1 + 0 + (0.5·1 + 0.5·-1) = 3.0, rating 3
    # pair (u0, i1): 4 + 0.5 + 0 + (1·1 + 0·-1) = 5.5, rating 5
    assert out["prediction"].tolist() == pytest.approx([4.75, 3.0, 5.5])
    mse = (0.75**2 + 0.0 + 0.5**2) / 3
    # bias_reg (b_u² + b_i²) and reg (|p_u|² + |q_i|²), per pair
    biases = [0.5**2 + 0.25**2, 1.0**2 + 0.0, 0.5**2 + 0.0]
    factors = [1.0 + 4.0, 0.5 + 2.0, 1.0 + 2.0]
    penalty = sum(0.2 * b + 0.1 * f for b, f in zip(biases, factors, strict=True)) / 3
    assert out["loss"].item() == pytest.approx(mse + penalty)


def test_biased_mf_with_zero_factors_is_biases_only(data_info, rating_batch, fit) -> None:
    model = _tiny_mf(factors=0, bias_reg=0.2)
    assert {name for name, _ in model.named_parameters()} == {
        "user_bias.weight",
        "item_bias.weight",
    }
    out = model(TINY_BATCH)
    assert out["prediction"].tolist() == pytest.approx([4.75, 3.0, 4.5])
    mse = (0.75**2 + 0.0 + 0.5**2) / 3
    penalty = 0.2 * ((0.5**2 + 0.25**2) + 1.0 + 0.5**2) / 3
    assert out["loss"].item() == pytest.approx(mse + penalty)
    # and it learns from real data: biases alone cut the loss on a real batch
    torch.manual_seed(0)
    before, after = fit(
        BiasedMF(BiasedMFConfig(factors=0), data_info), rating_batch, steps=100, lr=5e-2
    )
    assert after["loss"] < 0.8 * before["loss"], (before, after)


@pytest.mark.parametrize(
    ("name", "params"),
    [("biased_mf", {"reg": 0.05}), ("biased_mf", {"bias_reg": 0.05}), ("ncf", {"reg": 0.05})],
)
def test_penalty_raises_the_loss_not_the_prediction(name, params, data_info, rating_batch) -> None:
    plain, penalised = _build(name, data_info), _build(name, data_info, **params)
    if name == "biased_mf":  # biases start at 0, where their penalty is 0: move them
        with torch.no_grad():
            plain.user_bias.weight.normal_(std=0.3)
            plain.item_bias.weight.normal_(std=0.3)
    penalised.load_state_dict(plain.state_dict())
    a, b = plain(rating_batch), penalised(rating_batch)
    assert torch.equal(a["prediction"], b["prediction"])
    assert b["loss"].item() > a["loss"].item()


def test_ncf_penalty_is_the_rows_squared_norms(data_info, rating_batch) -> None:
    model = _build("ncf", data_info, reg=0.5)
    with torch.no_grad():
        out = model(rating_batch)
    user, item = rating_batch["user_idx"], rating_batch["item_idx"]
    branches = model.branches
    norms = sum(
        table.weight.detach()[ids].pow(2).sum(dim=1)
        for table, ids in (
            (branches.user_gmf, user),
            (branches.item_gmf, item),
            (branches.user_mlp, user),
            (branches.item_mlp, item),
        )
    )
    mse = float(((out["prediction"] - rating_batch["rating"]) ** 2).mean())
    assert out["loss"].item() == pytest.approx(mse + 0.5 * float(norms.mean()), rel=1e-5)
    assert out["loss"].item() > mse


def test_evaluation_of_a_penalised_model_is_the_plain_mse(data_info, rating_batch) -> None:
    """Validation and test metrics read predictions: the penalty is a training term only."""
    model = _build("biased_mf", data_info, reg=1.0, bias_reg=1.0).eval()
    with torch.no_grad():
        out = model(rating_batch)
    evaluation = Evaluation("rating")
    evaluation.update(rating_batch, out)
    clipped = out["prediction"].clamp(1.0, 5.0)
    mse = float(((clipped - rating_batch["rating"]) ** 2).mean())
    assert evaluation.result()["mse"] == pytest.approx(mse, rel=1e-6)
    assert out["loss"].item() > mse + 0.5  # 32 factors of N(0, 0.1²) per side: ~0.64


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (BiasedMFConfig, "factors"),
        (BiasedMFConfig, "reg"),
        (BiasedMFConfig, "bias_reg"),
        (NCFConfig, "reg"),
    ],
)
def test_negative_sizes_and_penalties_are_refused(config, field) -> None:
    with pytest.raises(ValidationError, match=field):
        config(**{field: -1})


def test_untrained_deepconn_predicts_the_global_mean(data_info, rating_batch) -> None:
    """At the paper's sizes (100 dense CNN features into the FM), the untrained model is
    within a few hundredths of a star of the global mean (fm.init_dense_fm); with libFM's
    one-hot initialisation the pairwise term alone put it ±2.5 stars off."""
    torch.manual_seed(0)
    model = DeepCoNN(DeepCoNNConfig(), data_info).eval()
    with torch.no_grad():
        prediction = model(rating_batch)["prediction"]
    assert (prediction - data_info.global_mean).abs().max() < 0.25, prediction


def test_deepconn_starts_from_pretrained_word_vectors(data_info) -> None:
    table = word_vectors("tiny")
    model = _build("deepconn", data_info, word_vectors="tiny", embed_dim=table.shape[1])
    for cnn in (model.user_cnn.cnn, model.item_cnn.cnn):
        assert torch.equal(cnn.embedding.weight, table)
        assert cnn.embedding.weight.requires_grad
    # two tables, not one shared: training the user side leaves the item side's vectors alone
    assert model.user_cnn.cnn.embedding.weight is not model.item_cnn.cnn.embedding.weight
    frozen = _build(
        "deepconn",
        data_info,
        word_vectors="tiny",
        embed_dim=table.shape[1],
        freeze_word_vectors=True,
    )
    trainable = {id(p) for p in frozen.phase_parameters("all")}
    assert id(frozen.user_cnn.cnn.embedding.weight) not in trainable
    assert id(frozen.fm.factors) in trainable


def test_word_vectors_of_another_width_name_the_field(data_info) -> None:
    with pytest.raises(
        ValueError, match=r"word_vectors 'tiny' are 32 wide but model.params.embed_dim is 16"
    ):
        _build("deepconn", data_info, word_vectors="tiny")


def test_frozen_word_vectors_need_pretrained_ones(data_info) -> None:
    with pytest.raises(ValueError, match=r"freeze_word_vectors=true keeps an N\(0, 1\) table"):
        _build("deepconn", data_info, freeze_word_vectors=True)


def test_minilm_word_vectors_are_its_word_piece_table() -> None:
    with safe_open(str(minilm_dir() / "model.safetensors"), "pt") as weights:
        expected = weights.get_tensor("embeddings.word_embeddings.weight")
    assert torch.equal(word_vectors("minilm"), expected)


def test_the_deepconn_preset_builds_on_minilm_vectors(data_info) -> None:
    """The shipped preset, on a dataset tokenized with MiniLM (``rayrec prepare``'s default):
    its width fits the table, both CNNs hold it, and it stays out of the trainable set."""
    minilm_sized = dataclasses.replace(data_info, vocab_size=30522)
    model = build_model("deepconn", load_config("deepconn").model.params, minilm_sized)
    expected = word_vectors("minilm")
    for cnn in (model.user_cnn.cnn, model.item_cnn.cnn):
        assert torch.equal(cnn.embedding.weight, expected)
        assert not cnn.embedding.weight.requires_grad


def test_deepconn_pair_biases_start_at_a_warm_started_mf(
    tmp_path, data_info, rating_batch, assert_all_grads
) -> None:
    """``pair_biases`` names its tables as biased MF does: ``train.init_from`` an MF run
    (here its exported weights) starts DeepCoNN within a few hundredths of a star of that
    MF's predictions, and the biases, the CNNs and the FM all train."""
    mf = _build("biased_mf", data_info, factors=0)
    with torch.no_grad():
        mf.user_bias.weight.normal_(0, 0.5)
        mf.item_bias.weight.normal_(0, 0.5)
    save_file(mf.state_dict(), str(tmp_path / WEIGHTS_FILE))
    model = _build("deepconn", data_info, pair_biases=True, bias_reg=0.5)
    assert warm_start(model, str(tmp_path)) == ["item_bias.weight", "user_bias.weight"]
    with torch.no_grad():
        offset = model.eval()(rating_batch)["prediction"] - mf.eval()(rating_batch)["prediction"]
    assert offset.abs().max() < 0.05, offset
    model.train()(rating_batch)["loss"].backward()
    assert_all_grads(model)


def test_deepconn_pair_biases_pay_the_mf_penalty(data_info, rating_batch) -> None:
    model = _build("deepconn", data_info, pair_biases=True, bias_reg=0.5, dropout=0.0)
    with torch.no_grad():
        model.user_bias.weight.fill_(0.2)
        model.item_bias.weight.fill_(-0.1)
    out = model(rating_batch)
    mse = F.mse_loss(out["prediction"], rating_batch["rating"].float())
    assert out["loss"].item() == pytest.approx(mse.item() + 0.5 * (0.2**2 + 0.1**2), rel=1e-5)
    without = _build("deepconn", data_info, dropout=0.0)
    assert "user_bias.weight" not in dict(without.named_parameters())
    # the same CNNs and FM (one seed): the biases add b_u + b_i to each prediction
    shift = out["prediction"] - without(rating_batch)["prediction"]
    assert shift.detach() == pytest.approx(torch.full_like(shift, 0.1), abs=1e-5)
