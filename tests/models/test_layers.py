"""Masked layers and text encoders: shapes, padding, empty rows, gradients."""

from __future__ import annotations

import boto3
import pytest
import torch
import torch.nn.functional as F

from rayrec.models.backbone_paths import tokenizer_source
from rayrec.models.encoders import ReviewEncoder, TextCNN, build_bert
from rayrec.models.layers import (
    AttentionPool,
    Attn,
    CoMatching,
    Fuse,
    masked_max,
    masked_mean,
    masked_softmax,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def _mask(lengths: list[int], width: int) -> torch.Tensor:
    return torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]


def test_masked_softmax_ignores_padding_and_zeroes_empty_rows() -> None:
    scores = torch.randn(3, 5, requires_grad=True)
    mask = _mask([5, 2, 0], 5)
    weights = masked_softmax(scores, mask)
    assert torch.allclose(weights[:2].sum(-1), torch.ones(2))
    assert torch.equal(weights[~mask], torch.zeros(int((~mask).sum())))
    assert torch.equal(weights[2], torch.zeros(5))
    weights.pow(2).sum().backward()
    assert torch.isfinite(scores.grad).all()


def test_masked_max_and_mean() -> None:
    x = torch.tensor([[[1.0, -5.0], [3.0, 9.0], [100.0, 100.0]]]).repeat(2, 1, 1)
    mask = _mask([2, 0], 3)
    assert torch.equal(masked_max(x, mask), torch.tensor([[3.0, 9.0], [0.0, 0.0]]))
    assert torch.equal(masked_mean(x, mask), torch.tensor([[2.0, 2.0], [0.0, 0.0]]))


@pytest.mark.parametrize("need_weights", [False, True])
def test_attn_masks_keys_and_empty_queries(need_weights: bool) -> None:
    torch.manual_seed(0)
    q = torch.randn(3, 4, 8, requires_grad=True)
    k, v = torch.randn(3, 6, 8), torch.randn(3, 6, 8)
    key_mask = _mask([6, 3, 0], 6)
    out, weights = Attn()(q, k, v, key_mask, need_weights=need_weights)
    assert out.shape == (3, 4, 8)
    assert torch.equal(out[2], torch.zeros(4, 8))  # no keys: zeros, not NaN
    # masked keys have no influence
    k2, v2 = k.clone(), v.clone()
    k2[1, 3:], v2[1, 3:] = 1e3, -1e3
    out2, _ = Attn()(q, k2, v2, key_mask, need_weights=need_weights)
    assert torch.allclose(out, out2, atol=1e-6)
    # both code paths agree
    ref, ref_weights = Attn()(q, k, v, key_mask, need_weights=True)
    assert torch.allclose(out, ref, atol=1e-6)
    assert ref_weights.shape == (3, 4, 6)
    out.sum().backward()
    assert torch.isfinite(q.grad).all() and torch.equal(q.grad[2], torch.zeros(4, 8))


def test_fuse_and_attention_pool() -> None:
    torch.manual_seed(0)
    assert Fuse(8, dropout=0.0)(torch.randn(2, 8), torch.randn(2, 8)).shape == (2, 8)
    pool = AttentionPool(8)
    x, mask = torch.randn(2, 3, 5, 8), _mask([5, 1, 0], 5).expand(2, 3, 5)
    out, weights = pool(x, mask)
    assert out.shape == (2, 3, 8) and weights.shape == (2, 3, 5)
    assert torch.allclose(weights[:, :2].sum(-1), torch.ones(2, 2))
    assert torch.equal(out[:, 2], torch.zeros(2, 8))
    padded, _ = pool(F.pad(x, (0, 0, 0, 3), value=7.0), F.pad(mask, (0, 3)))
    assert torch.allclose(out, padded, atol=1e-6)


def test_co_matching_is_padding_invariant() -> None:
    torch.manual_seed(0)
    layer = CoMatching(8)
    s_u, s_i = torch.randn(2, 5, 8), torch.randn(2, 7, 8)
    m_u, m_i = _mask([5, 2], 5), _mask([4, 0], 7)
    out = layer(s_u, m_u, s_i, m_i, need_weights=True)
    assert out.t_u.shape == out.t_i.shape == (2, 8)
    assert out.attention_u.shape == (2, 5, 7) and out.attention_i.shape == (2, 7, 5)
    assert torch.equal(out.t_i[1], torch.zeros(8))  # item side without tokens
    padded = layer(
        F.pad(s_u, (0, 0, 0, 3), value=3.0),
        F.pad(m_u, (0, 3)),
        F.pad(s_i, (0, 0, 0, 2)),
        F.pad(m_i, (0, 2)),
    )
    assert torch.allclose(out.t_u, padded.t_u, atol=1e-6)
    assert torch.allclose(out.t_i, padded.t_i, atol=1e-6)


def test_text_cnn_shapes_padding_and_grads() -> None:
    torch.manual_seed(0)
    cnn = TextCNN(vocab_size=50, embed_dim=6, kernel_size=3, n_filters=5, out_dim=4)
    ids = torch.randint(1, 50, (2, 3, 7))
    mask = _mask([7, 4, 0], 7).expand(2, 3, 7)
    ids = ids * mask
    out = cnn(ids, mask)
    assert out.shape == (2, 3, 4)
    padded = cnn(F.pad(ids, (0, 5)), F.pad(mask, (0, 5)))
    assert torch.allclose(out, padded, atol=1e-6)
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in cnn.parameters())


def test_build_bert_tiny_is_seeded_and_loads_from_a_local_dir(tmp_path) -> None:
    first, second = build_bert("tiny"), build_bert("tiny")
    assert first.config.hidden_size == 32 and first.config.vocab_size == 30522
    pairs = zip(first.parameters(), second.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    first.save_pretrained(tmp_path)
    loaded = build_bert(str(tmp_path), frozen=True)
    assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.training
    assert torch.equal(
        loaded.embeddings.word_embeddings.weight, first.embeddings.word_embeddings.weight
    )


def test_build_bert_minilm_and_offline_hub_error() -> None:
    bert = build_bert("minilm", add_pooling_layer=False)
    assert bert.config.hidden_size == 384 and bert.pooler is None
    assert (tokenizer_source("minilm") + "/").endswith("model/")
    with pytest.raises(RuntimeError, match="offline"):
        build_bert("no-such-org/no-such-bert")


def test_review_encoder_skips_empty_slots_and_is_padding_invariant() -> None:
    encoder = ReviewEncoder(build_bert("tiny")).eval()
    ids = torch.randint(1000, 2000, (2, 3, 6))
    mask = _mask([6, 3, 0], 6).expand(2, 3, 6)
    states = encoder(ids * mask, mask)
    assert states.hidden.shape == (2, 3, 6, 32) and states.cls.shape == (2, 3, 32)
    assert states.pooled.shape == (2, 3, 32)
    assert torch.equal(states.hidden[:, 2], torch.zeros(2, 6, 32))
    padded = encoder(F.pad(ids * mask, (0, 4)), F.pad(mask, (0, 4)))
    assert torch.allclose(states.hidden, padded.hidden[..., :6, :], atol=1e-5)
    empty = encoder(ids, torch.zeros_like(mask))
    assert torch.equal(empty.hidden, torch.zeros(2, 3, 6, 32))


def test_review_encoder_frozen_stays_in_eval_and_checkpointing_trains() -> None:
    frozen = ReviewEncoder(build_bert("tiny"), frozen=True).train()
    assert not frozen.bert.training
    ids, mask = torch.randint(1000, 2000, (2, 5)), torch.ones(2, 5, dtype=torch.bool)
    assert not frozen(ids, mask).hidden.requires_grad

    encoder = ReviewEncoder(build_bert("tiny", gradient_checkpointing=True)).train()
    encoder(ids, mask).hidden.sum().backward()
    assert encoder.bert.encoder.layer[0].attention.self.query.weight.grad is not None


def test_build_bert_from_s3(tmp_path, monkeypatch, s3_endpoint: str) -> None:
    """An s3:// backbone is downloaded once into the cache and loaded (moto on loopback)."""
    monkeypatch.setenv("RAYREC_CACHE", str(tmp_path / "cache"))
    bert = build_bert("tiny")
    bert.save_pretrained(tmp_path / "tiny")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="models")
    for file in (tmp_path / "tiny").iterdir():
        s3.upload_file(str(file), "models", f"backbones/tiny/{file.name}")

    loaded = build_bert("s3://models/backbones/tiny")
    weight = loaded.embeddings.word_embeddings.weight
    assert torch.equal(weight, bert.embeddings.word_embeddings.weight)
    assert (tmp_path / "cache" / "s3").is_dir()
    assert tokenizer_source("s3://models/backbones/tiny").startswith(str(tmp_path / "cache"))
