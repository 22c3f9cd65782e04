"""The contract between prepared data, models and the training loop.

Every model in :mod:`rayrec.models` is an ``nn.Module`` whose ``forward`` takes one batch (a
``dict[str, Tensor]`` built by the collate step of :mod:`rayrec.train`) and returns a
:class:`ModelOutput` (a plain dict): ``loss`` (scalar, present whenever the batch carries the
labels the model trains on) and ``prediction`` (``[B]``: a rating, or for ranking models the
score candidates are ranked on, BERT-RS's logit), plus optional model-specific extras
(``attention``, ``sentiment_logits``, ...).

Batch fields (B = batch, M = review slots per user / item document, L = tokens per review).
A model declares the fields it reads in its :class:`ModelSpec` so the collate step builds only
those. Token fields are ``torch.long``; masks are ``torch.bool`` (True = real, False = padding).

Rating prediction (one row per user-item pair):
    user_idx [B], item_idx [B]          dense ids (0..n_users-1, 0..n_items-1)
    rating [B] float                    the pair's rating (the label)
    user_input_ids [B, M, L]            tokens of up to M training reviews the user wrote,
    user_attention_mask [B, M, L]       excluding the pair's own review; all-False rows are
    user_review_mask [B, M]             empty slots (users with fewer than M reviews)
    user_review_sentiment [B, M]        0 negative / 1 neutral / 2 positive, -100 for empty slots
    item_input_ids / item_attention_mask / item_review_mask / item_review_sentiment  likewise
    user_review_item_idx [B, M]         the item each user review is about (0 for empty slots)
    item_review_user_idx [B, M]         the user who wrote each item review (0 for empty slots)
    user_review_ids / item_review_ids [B, M]
                                        the review id in each slot (-1 for empty slots): a
                                        frozen encoder's states are looked up by it
    target_input_ids [B, L], target_attention_mask [B, L]
                                        the pair's own review: training split only (SAFMR's
                                        target network); never present in val/test batches
U-BERT pretraining (one row per review in the other domains):
    user_idx [B], domain_idx [B], rating [B], input_ids [B, L], attention_mask [B, L],
    opinion_mask [B, L] bool            word pieces of Hu-Liu opinion words
    mlm_labels [B, L]                   original ids at masked positions, -100 elsewhere
                                        (built by ``rayrec.models.ubert.mask_opinion_tokens``)
BERT-RS (implicit feedback, one row per user-item candidate):
    user_idx [B], item_idx [B], label [B] float (1 observed, 0 sampled negative),
    pair_input_ids [B, L], pair_attention_mask [B, L], pair_token_type_ids [B, L]
                                        ``[CLS] user text [SEP] item text [SEP]`` built from
                                        training reviews only, never the pair's own review

Multi-step updates (SAFMR's Algorithms 1-2): a model lists its ``update_phases`` in order and
``phase_parameters(phase)`` gives each phase's parameters; the loop calls
``model(batch, phase=p)`` and steps only that phase's parameters, once per phase per batch.
Single-phase models use the phase ``"all"``. A model that trains in stages (SAFMR's
``target_epochs``) says which phases run in an epoch (``phases_at``) and from which epoch on
early stopping may count (``patience_from``: the epochs before it do not train what is
evaluated).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

Batch = dict[str, torch.Tensor]
ModelOutput = dict[str, torch.Tensor]

ALL_PHASES = "all"


class RecModel(nn.Module):
    """Base class: one ``forward(batch, phase)`` and optional update phases."""

    update_phases: tuple[str, ...] = (ALL_PHASES,)

    def phase_parameters(self, phase: str) -> Iterator[nn.Parameter]:
        """Trainable parameters stepped in ``phase`` (every trainable one for ``"all"``)."""
        if phase != ALL_PHASES:
            raise ValueError(f"{type(self).__name__} has no update phase {phase!r}")
        return (p for p in self.parameters() if p.requires_grad)

    def phases_at(self, epoch: int) -> tuple[str, ...]:
        """The update phases run in ``epoch`` (0-based), in order: all, every epoch."""
        return self.update_phases

    def patience_from(self) -> int:
        """The first epoch that early stopping counts (0: all). Epochs before it do not train
        the network that evaluation runs, so cannot better its metric."""
        return 0

    def forward(self, batch: Batch, phase: str = ALL_PHASES) -> ModelOutput:  # pragma: no cover
        raise NotImplementedError


@dataclass(frozen=True)
class ModelSpec:
    """What the training loop needs to know about a model, without knowing the model.

    Attributes:
        name: registry key (``"sifn"``, ``"ubert_finetune"``, ...).
        model_cls: the ``RecModel`` subclass.
        config_cls: its pydantic/dataclass config; ``model_cls(config, data_info)`` builds it.
        batch_fields: batch fields the model reads (see the module docstring).
        task: ``"rating"`` (MSE/RMSE/MAE), ``"ranking"`` (HR@K, NDCG@K) or ``"pretrain"``.
        metrics: names of the validation metrics the model reports.
        default_metric: metric that selects the best checkpoint.
        metric_mode: ``"min"`` or ``"max"`` for ``default_metric``.
    """

    name: str
    model_cls: type[RecModel]
    config_cls: type
    batch_fields: frozenset[str]
    task: str
    metrics: tuple[str, ...]
    default_metric: str
    metric_mode: str = "min"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataInfo:
    """Sizes a model needs from the prepared dataset's manifest."""

    n_users: int
    n_items: int
    n_domains: int
    vocab_size: int
    pad_token_id: int
    global_mean: float
    max_len: int
    reviews_per_doc: int
    mask_token_id: int = 103


ModelFactory = Callable[[Any, DataInfo], RecModel]
