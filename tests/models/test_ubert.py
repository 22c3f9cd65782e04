"""U-BERT: opinion masking, pre-training, fine-tuning and checkpoint hand-over."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from rayrec.cli import build_parser
from rayrec.models.encoders import build_bert
from rayrec.models.ubert import (
    SHARED_PREFIXES,
    UBertFinetune,
    UBertFinetuneConfig,
    UBertPretrain,
    UBertPretrainConfig,
    mask_opinion_tokens,
)
from rayrec.train.cli import config_from_args
from rayrec.train.loop import build_module, token_info

pytestmark = pytest.mark.usefixtures("single_thread")

MASK_ID, VOCAB, SPECIALS = 103, 30522, (0, 100, 101, 102, 103)


def _pretrain(data_info) -> UBertPretrain:
    torch.manual_seed(0)
    return UBertPretrain(UBertPretrainConfig(backbone="tiny"), data_info)


def _finetune(data_info, **kwargs) -> UBertFinetune:
    torch.manual_seed(0)
    return UBertFinetune(UBertFinetuneConfig(**{"backbone": "tiny", **kwargs}), data_info)


def test_mask_opinion_tokens_masks_half_of_the_opinion_pieces_only() -> None:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, VOCAB, (400, 64), generator=generator)
    ids[:, 0], ids[:, 50], ids[:, 51:] = 101, 102, 0
    attention = ids != 0
    opinion = torch.rand(400, 64, generator=generator) < 0.3
    opinion[:, 0] = True  # a special token marked as opinion is never masked
    opinion[:5] = False  # reviews without opinion words
    masked, labels = mask_opinion_tokens(
        ids,
        opinion,
        attention,
        mask_token_id=MASK_ID,
        vocab_size=VOCAB,
        special_ids=SPECIALS,
        generator=generator,
    )
    chosen = labels != -100
    candidates = opinion & attention & (ids != 101) & (ids != 102)
    assert not (chosen & ~candidates).any()
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(masked[~chosen], ids[~chosen])
    assert not chosen[:5].any()
    assert (chosen[5:].sum(-1) >= 1).all()
    ratio = chosen.sum() / candidates.sum()
    assert 0.45 < ratio < 0.55
    share_mask = (masked[chosen] == MASK_ID).float().mean()
    share_same = (masked[chosen] == ids[chosen]).float().mean()
    assert 0.75 < share_mask < 0.85 and 0.06 < share_same < 0.14
    again = mask_opinion_tokens(
        ids,
        opinion,
        attention,
        mask_token_id=MASK_ID,
        vocab_size=VOCAB,
        special_ids=SPECIALS,
        generator=torch.Generator().manual_seed(1),
    )
    assert not torch.equal(again[1], labels)


def test_mask_opinion_tokens_masks_at_least_one() -> None:
    ids = torch.tensor([[101, 2204, 102, 0]])
    opinion = torch.tensor([[False, True, False, False]])
    _, labels = mask_opinion_tokens(
        ids,
        opinion,
        ids != 0,
        mask_token_id=MASK_ID,
        vocab_size=VOCAB,
        special_ids=SPECIALS,
    )
    assert labels.tolist() == [[-100, 2204, -100, -100]]


def test_pretrain_outputs_grads_and_padding(data_info, pretrain_batch, assert_all_grads) -> None:
    assert (pretrain_batch["mlm_labels"] != -100).any(-1).sum() >= 12  # real opinion words
    model = _pretrain(data_info)
    out = model(pretrain_batch)
    assert out["prediction"].shape == (16,)
    assert {"loss", "mlm_loss", "rating_loss"} <= out.keys()
    out["loss"].backward()
    assert_all_grads(model)

    model.eval()
    padded = {k: F.pad(v, (0, 9)) if v.dim() == 2 else v for k, v in pretrain_batch.items()}
    padded["mlm_labels"] = F.pad(pretrain_batch["mlm_labels"], (0, 9), value=-100)
    with torch.no_grad():
        a, b = model(pretrain_batch), model(padded)
    assert torch.allclose(a["prediction"], b["prediction"], atol=1e-5)
    assert torch.allclose(a["loss"], b["loss"], atol=1e-5)


def test_pretrain_fits_a_real_batch(data_info, pretrain_batch, fit) -> None:
    before, after = fit(_pretrain(data_info), pretrain_batch, steps=40, lr=3e-3)
    assert after["loss"] < 0.5 * before["loss"], (before, after)
    assert after["mlm_loss"] < 0.5 * before["mlm_loss"], (before, after)


def test_finetune_outputs_attention_grads_and_padding(
    data_info, rating_batch, assert_all_grads, pad_rating_batch
) -> None:
    model = _finetune(data_info, return_attention=True)
    out = model(rating_batch)
    assert out["prediction"].shape == (16,) and out["loss"].dim() == 0
    attention = out["attention_user_to_item"]
    assert attention.shape == (16, 4, 32, 4, 32)
    assert out["attention_item_to_user"].shape == (16, 4, 32, 4, 32)
    real_rows = rating_batch["user_attention_mask"]
    assert torch.allclose(attention.sum((-2, -1))[real_rows], torch.ones(int(real_rows.sum())))
    assert (attention.sum((-2, -1))[~real_rows] == 0).all()
    out["loss"].backward()
    assert_all_grads(model)

    model.eval()
    model.config.return_attention = False
    with torch.no_grad():
        a = model(rating_batch)["prediction"]
        b = model(pad_rating_batch(rating_batch, 2, 7))["prediction"]
    assert torch.allclose(a, b, atol=1e-5)
    assert "attention_user_to_item" not in model(rating_batch)
    asked = model({**rating_batch, "return_attention": torch.tensor(True)})
    assert "attention_user_to_item" in asked


def test_finetune_fits_a_real_batch(data_info, rating_batch, fit) -> None:
    before, after = fit(_finetune(data_info), rating_batch, steps=25, lr=3e-3)
    assert after["loss"] < 0.5 * before["loss"], (before, after)


def _manifest(data_info, max_len: int) -> dict:
    """A prepared dataset's manifest with ``data_info``'s sizes (what the workers read)."""
    return {
        "counts": {"users": data_info.n_users, "items": data_info.n_items},
        "domains": [f"domain{d}" for d in range(data_info.n_domains)],
        "global_mean": data_info.global_mean,
        "max_len": max_len,
        "reviews_per_user": data_info.reviews_per_doc,
        "reviews_per_item": data_info.reviews_per_doc,
        "tokenizer": {
            "vocab_size": data_info.vocab_size,
            "pad_token_id": data_info.pad_token_id,
            "cls_token_id": 101,
            "sep_token_id": 102,
            "mask_token_id": data_info.mask_token_id,
        },
    }


def _finetune_as_trained(data_info, *flags: str) -> UBertFinetune:
    """``rayrec train ubert_finetune FLAGS``: the flags made a config by the command line,
    the model built from it as every training worker builds it."""
    args = build_parser().parse_args(
        ["train", "ubert_finetune", "--data=unused", "--set=model.params.backbone=tiny", *flags]
    )
    cfg = config_from_args(args)
    manifest = _manifest(data_info, max_len=data_info.max_len)
    torch.manual_seed(0)
    model = build_module(cfg, manifest, token_info(cfg, manifest))
    assert isinstance(model, UBertFinetune)
    return model


def test_pretrained_flag_loads_exactly_the_pretrained_tensors(data_info, tmp_path) -> None:
    pretrained = _pretrain(data_info)
    with torch.no_grad():  # move away from any initialisation the fine-tuning model could share
        for p in pretrained.parameters():
            p.add_(torch.randn_like(p))
    saved = {k: v.detach().clone() for k, v in pretrained.state_dict().items()}
    save_file(saved, tmp_path / "model.safetensors")
    shared = sorted(k for k in saved if k.startswith(SHARED_PREFIXES))
    assert any(k.startswith("review_encoder.bert.encoder") for k in shared)
    assert "user_embedding.weight" in shared and "user_encoder.proj.weight" in shared

    # --pretrained DIR (a directory holding the file), through the command line's config
    model = _finetune_as_trained(data_info, f"--pretrained={tmp_path}")
    own = {k: v.detach().clone() for k, v in model.state_dict().items()}
    assert set(shared) <= set(own)
    for key in shared:
        assert torch.equal(own[key], saved[key]), key
    assert not torch.equal(own["item_encoder.proj.weight"], own["user_encoder.proj.weight"])

    # the same model without --pretrained holds none of the pre-trained tensors
    plain = _finetune_as_trained(data_info).state_dict()
    assert not any(torch.equal(plain[k], saved[k]) for k in shared if saved[k].numel() > 1)


def test_load_pretrained_reports_every_key(data_info, tmp_path) -> None:
    state = {k: v.detach().clone() for k, v in _pretrain(data_info).state_dict().items()}
    save_file(state, tmp_path / "model.safetensors")
    report = _finetune(data_info).load_pretrained(tmp_path / "model.safetensors")
    assert report.missing == [] and report.unexpected == []
    assert set(report.ignored) == {k for k in state if k.startswith(("mlm_", "rating_head."))}
    assert report.loaded == sorted(set(state) - set(report.ignored))


def test_finetune_rejects_a_foreign_checkpoint(data_info, tmp_path) -> None:
    model = _finetune(data_info)
    save_file({"something.else": torch.zeros(2)}, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="missing"):
        model.load_pretrained(tmp_path)
    report = model.load_pretrained(tmp_path, strict=False)
    assert report.unexpected == ["something.else"] and report.loaded == []
    save_file({"user_embedding.weight": torch.zeros(3, 32)}, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="shape"):
        model.load_pretrained(tmp_path, strict=False)


def test_finetune_from_plain_bert_weights(data_info, rating_batch, tmp_path) -> None:
    """U-BERT P-: no pre-training, the backbone from plain BERT weights."""
    bert = build_bert("tiny", tiny_config={"initializer_range": 0.05})
    bert.save_pretrained(tmp_path)
    model = _finetune(data_info, backbone=str(tmp_path))
    bert_state = bert.state_dict()
    for key, value in model.review_encoder.bert.state_dict().items():
        assert torch.equal(value, bert_state[key]), key
    assert model(rating_batch)["prediction"].shape == (16,)
