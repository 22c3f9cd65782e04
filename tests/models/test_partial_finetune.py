"""Partial fine-tuning trains exactly the top N layers; each review is encoded once per step
with the loss and gradients of per-slot encoding (real Musical Instruments batches)."""

from __future__ import annotations

import pytest
import torch

from rayrec.models.base import Batch, DataInfo
from rayrec.models.sifn import SIFN, SIFNConfig
from rayrec.models.ubert import (
    UBertFinetune,
    UBertFinetuneConfig,
    UBertPretrain,
    UBertPretrainConfig,
)

BERT = "review_encoder.bert."


def _repeat_pairs(batch: Batch, n: int) -> Batch:
    """The batch with its first ``n`` pairs again at the end: every review of theirs fills
    two slots of the batch (as when two pairs of one user meet in a batch)."""
    return {k: torch.cat([v, v[:n]]) for k, v in batch.items()}


def _step(model: torch.nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
    """One SGD step; the parameters before it."""
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    model(batch)["loss"].backward()
    optimizer.step()
    return before


@pytest.mark.parametrize("model_name", ["ubert_finetune", "sifn", "ubert_pretrain"])
def test_trainable_layers_trains_exactly_the_top_layers(
    model_name: str,
    data_info: DataInfo,
    rating_batch: Batch,
    pretrain_batch: Batch,
    single_thread: None,
) -> None:
    torch.manual_seed(0)
    if model_name == "ubert_finetune":
        model = UBertFinetune(UBertFinetuneConfig(backbone="tiny", trainable_layers=1), data_info)
    elif model_name == "sifn":
        model = SIFN(
            SIFNConfig(backbone="tiny", freeze_backbone=False, trainable_layers=1), data_info
        )
    else:
        model = UBertPretrain(UBertPretrainConfig(backbone="tiny", trainable_layers=1), data_info)
    batch = pretrain_batch if model_name == "ubert_pretrain" else rating_batch
    before = _step(model, batch)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    bert_changed = {k.removeprefix(BERT) for k in changed if k.startswith(BERT)}
    top = {k.removeprefix(BERT) for k in before if k.startswith(BERT + "encoder.layer.1.")}
    assert bert_changed == top  # the whole top layer and nothing below it
    assert changed - {BERT + k for k in top}  # the heads train too
    frozen = [n for n, p in model.named_parameters() if n.startswith(BERT) and p.requires_grad]
    assert all(n.startswith(BERT + "encoder.layer.1.") for n in frozen)
    assert not model.review_encoder.bert.embeddings.training  # frozen part: no dropout


def test_trainable_layers_cannot_exceed_the_backbone(data_info: DataInfo) -> None:
    with pytest.raises(ValueError, match="the backbone has 2"):
        UBertFinetune(UBertFinetuneConfig(backbone="tiny", trainable_layers=3), data_info)


@pytest.mark.parametrize("model_cls", ["ubert_finetune", "sifn"])
def test_each_review_once_gives_per_slot_loss_and_gradients(
    model_cls: str, data_info: DataInfo, rating_batch: Batch, single_thread: None
) -> None:
    batch = _repeat_pairs(rating_batch, 6)
    torch.manual_seed(0)
    if model_cls == "ubert_finetune":
        model = UBertFinetune(UBertFinetuneConfig(backbone="tiny"), data_info)
    else:
        model = SIFN(SIFNConfig(backbone="tiny", freeze_backbone=False), data_info)
        torch.nn.init.normal_(model.rating_head.weight)  # gradients reach BERT at step 0
    model.eval()  # deterministic encoder: per-slot and per-review encoding are the same math
    encoded_rows: list[int] = []
    model.review_encoder.bert.embeddings.register_forward_hook(
        lambda _m, _i, out: encoded_rows.append(out.shape[0])
    )

    def loss_and_grads(unique: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model.zero_grad()
        model.review_encoder.unique_reviews = unique
        loss = model(batch)["loss"]
        loss.backward()
        return loss.detach(), {
            n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None
        }

    loss_slots, grads_slots = loss_and_grads(unique=False)
    loss_once, grads_once = loss_and_grads(unique=True)
    per_slot, once = encoded_rows
    present = torch.cat([batch["user_review_ids"], batch["item_review_ids"]], 1)
    assert per_slot == int((present >= 0).sum())
    assert once == len(present[present >= 0].unique()) < per_slot
    assert torch.allclose(loss_once, loss_slots, atol=1e-6, rtol=1e-5)
    assert grads_once.keys() == grads_slots.keys()
    assert any(n.startswith(BERT) for n in grads_once)
    for name, grad in grads_slots.items():
        assert torch.allclose(grads_once[name], grad, atol=1e-6, rtol=1e-4), name
