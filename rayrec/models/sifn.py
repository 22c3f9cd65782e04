"""SIFN: Sentiment-aware Interactive Fusion Network for review-based rating prediction.

Reference:
    Kai Zhang, Hao Qian, Qi Liu, Zhiqiang Zhang, Jun Zhou, Jianhui Ma, Enhong Chen.
    "SIFN: A Sentiment-aware Interactive Fusion Network for Review-based Item
    Recommendation." CIKM 2021 (short paper).

Per user-item pair, with ``m`` reviews of the user and ``m`` of the item:

* BERT encoding (eq. 1): the last hidden states ``e_1..e_l`` of each review;
* sentiment learner (eq. 2-3): ``α_i = softmax_i(tanh(W_a e_i + b_a))``, ``s = Σ α_i e_i``;
* sentiment prediction (eq. 4): a 3-way classifier on ``s`` (negative / neutral / positive:
  rating < 3 / = 3 / > 3), cross-entropy ``L_s``;
* rating learner: ``o_j = W_o [s_j ; e_id]`` (eq. 6), review attention
  ``d = Σ_j softmax_j(tanh(W o_j + b)) o_j`` (eq. 7), fusion ``f`` (eq. 8), interactive
  network ``p = (d^U + e^U_id) ∘ (d^I + e^I_id) + W f + b`` (eq. 9);
* ``r̂ = w_r · p + b_U + b_I`` (eq. 10) plus a global bias, ``L = L_r + λ L_s`` (eq. 11) with
  ``L_r`` the MSE.

Settings (section 3.2): id embedding size 16, dropout 0.2, λ in {0.1, 1, 10}, batch 100,
Adam with lr 1e-3. Ablations (section 3.4) map to config switches: ``review_attention=False``
(SIFN_sa, mean over the reviews), ``fusion=False`` (SIFN_fn), ``interaction="fm"`` (SIFN_in),
``sentiment_weight=0`` (SIFN_sp). SIFN_w2v (GloVe instead of BERT) is not provided.

Readings of what the paper leaves open:

* BERT is frozen by default (``freeze_backbone``): the heads train with lr 1e-3, far above a
  BERT fine-tuning rate. ``freeze_backbone=False`` fine-tunes it, ``trainable_layers=N``
  fine-tunes its top N layers only (not in the paper: a cost trade-off).
  Frozen, BERT's token states of a review never change: ``review_states`` (a review-state
  store, :mod:`rayrec.encode.store`, attached by the training driver) makes the model read
  them by review id instead of running BERT (no backbone is built then); with
  ``trainable_layers`` the store holds the frozen lower layers' output and only the top N run.
  Fine-tuned, each distinct review of a batch is encoded once
  (:class:`~rayrec.models.encoders.ReviewEncoder`).
* Sizes: ``k`` in eq. 5-9 is the id embedding size (16): ``W_o`` maps ``[s_j ; e_id]`` of size
  ``d_bert + k`` to ``k``, so that ``d^U + e^U_id`` in eq. 9 closes.
* ``e_id`` in ``o_j`` (eq. 6) is by default (``review_id="other"``) the embedding of the
  *other* party of review j: for a user document the item the review is about
  (``user_review_item_idx``), for an item document the user who wrote it
  (``item_review_user_idx``), as NARRE does. ``review_id="owner"`` is eq. 6 as printed: the
  document owner's own id, the same for all j. Either is read from the same id tables as
  ``e^U_id`` / ``e^I_id`` (the paper defines one per side).
* Eq. 4 prints ``softmax(s)``; a linear layer ``s -> 3`` precedes the softmax. The word
  attention and the classifier are shared by user and item reviews ("we use the same
  method"); ``W_o`` and the review attention have separate user and item weights.
* ``L_s`` is the cross-entropy averaged over all present user and item review slots of the
  batch (labels -100 and empty slots ignored); with full documents this equals eq. 4.
* Fusion (eq. 8, ``d^U W_f d^I`` does not map to ``R^k`` as printed): ``f = (W_f d^U) ∘ d^I``,
  ``W_f`` in ``R^{k x k}`` projecting the user side into the item side's space, which is what
  the text says W_f does. Without fusion (SIFN_fn) the ``W f`` term of eq. 9 is dropped.
* SIFN_in: an FM over the fields ``z = (d^U, e^U_id, d^I, e^I_id[, f])``, each a k-vector:
  ``y = w0 + w . concat(z) + c Σ_{a<b} <z_a, z_b>``, which replaces ``w_r · p``; user and item
  biases are kept. ``w`` and the scale ``c`` of the pairwise term start at 0 (``w0`` at the
  global mean) so that SIFN_in, like SIFN, starts at the global mean: over N(0, 1) id
  embeddings the pairwise term alone puts the first predictions ±10 stars off.
* ``id_reg`` and ``bias_reg`` (not in the paper, 0 by default): the L2 penalty of a biased
  MF (Koren et al. 2009) on the pair's id embeddings ``e^U_id, e^I_id`` and biases ``b_U,
  b_I``, per rating, added to ``L_r``; on 8k training ratings the unregularised id terms fit
  the training pairs that a tuned MF regularises away.
* Dropout 0.2 on each review vector ``s_j`` and on ``p``. The global bias starts at the data's
  global mean rating and ``w_r`` at zero (the paper gives no initialisation), so an untrained
  model predicts the global mean: with a random ``w_r`` the N(0, 1) id embeddings in ``p``
  put noise of the ratings' own scale on every prediction at step 0 (measured on the embedded
  corpus, quick settings: test MSE 1.608 with a random ``w_r``, 1.345 with zero, against
  1.385 for the global mean).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from rayrec.encode.store import StateStore
from rayrec.models.base import ALL_PHASES, Batch, DataInfo, ModelOutput, ModelSpec, RecModel
from rayrec.models.encoders import ReviewEncoder, build_bert
from rayrec.models.layers import AttentionPool, masked_mean

N_SENTIMENTS = 3  # 0 negative, 1 neutral, 2 positive
IGNORE_INDEX = -100


class SIFNConfig(BaseModel):
    """SIFN hyper-parameters (paper defaults)."""

    model_config = ConfigDict(extra="forbid")

    backbone: str = "minilm"  # see rayrec.models.encoders.build_bert
    freeze_backbone: bool = True
    gradient_checkpointing: bool = False
    id_dim: int = 16  # k
    dropout: float = 0.2
    sentiment_weight: float = 1.0  # λ; 0 is SIFN_sp
    review_attention: bool = True  # False: SIFN_sa
    fusion: bool = True  # False: SIFN_fn
    interaction: Literal["interactive", "fm"] = "interactive"  # "fm": SIFN_in
    return_attention: bool = False  # add word and review attention (Figure 3) to outputs;
    # a batch can also ask for them with a truthy "return_attention" entry
    trainable_layers: int | None = Field(None, ge=0)  # partial fine-tuning (needs
    # freeze_backbone false): only the top N BERT layers train
    review_id: Literal["other", "owner"] = "other"  # e_id of eq. 6 (see the docstring)
    id_reg: float = Field(0.0, ge=0)  # L2 of the pair's id embeddings, per rating (docstring)
    bias_reg: float = Field(0.0, ge=0)  # L2 of the pair's biases b_U, b_I, per rating
    review_states: str | None = None  # review-state store (rayrec.encode.store) of the
    # frozen layers; set by the training driver (rayrec.encode.plan)

    @model_validator(mode="after")
    def _check_states(self) -> SIFNConfig:
        if self.trainable_layers is not None and self.freeze_backbone:
            raise ValueError("trainable_layers is partial fine-tuning: set freeze_backbone false")
        if self.review_states is not None and not (
            self.freeze_backbone or self.trainable_layers is not None
        ):
            raise ValueError("review_states holds frozen-encoder states: the encoder trains")
        return self


class RatingTower(nn.Module):
    """One side of the rating learner: ``o_j = W_o [s_j ; e_id]`` and review aggregation."""

    def __init__(self, text_dim: int, id_dim: int, attention: bool) -> None:
        super().__init__()
        self.project = nn.Linear(text_dim + id_dim, id_dim, bias=False)  # W_o
        self.attention = AttentionPool(id_dim) if attention else None

    def forward(self, reviews: Tensor, other_ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        o = self.project(torch.cat([reviews, other_ids], dim=-1))  # [B, M, k]
        if self.attention is None:
            return masked_mean(o, mask), mask / mask.sum(-1, keepdim=True).clamp(min=1)
        return self.attention(o, mask)


class SIFN(RecModel):
    """SIFN: BERT + sentiment learner + rating learner with fusion and interactive layers."""

    def __init__(self, config: SIFNConfig, data_info: DataInfo) -> None:
        super().__init__()
        self.config = config
        self.review_encoder: ReviewEncoder | None = None
        self.review_states: StateStore | None = None
        store = StateStore(config.review_states) if config.review_states else None
        if store is not None and config.freeze_backbone:  # the store replaces BERT entirely
            self.review_states = store
            d = store.dim
        else:
            bert = build_bert(
                config.backbone,
                gradient_checkpointing=config.gradient_checkpointing,
                add_pooling_layer=False,
            )
            self.review_encoder = ReviewEncoder(
                bert,
                frozen=config.freeze_backbone,
                trainable_layers=config.trainable_layers,
                store=store,
            )
            d = bert.config.hidden_size
        k = config.id_dim
        # sentiment learner, shared by user and item reviews
        self.word_attention = AttentionPool(d)
        self.sentiment_head = nn.Linear(d, N_SENTIMENTS)
        self.dropout = nn.Dropout(config.dropout)
        # rating learner
        self.user_id = nn.Embedding(data_info.n_users, k)
        self.item_id = nn.Embedding(data_info.n_items, k)
        self.user_tower = RatingTower(d, k, config.review_attention)
        self.item_tower = RatingTower(d, k, config.review_attention)
        self.fusion = nn.Linear(k, k, bias=False) if config.fusion else None  # W_f
        n_fields = 5 if config.fusion else 4
        if config.interaction == "interactive":
            self.fused_proj = nn.Linear(k, k) if config.fusion else None  # W, b of eq. 9
            self.rating_head = nn.Linear(k, 1)  # w_r and the global bias
        else:
            self.fused_proj = None
            self.rating_head = nn.Linear(n_fields * k, 1)  # FM: w and w0
            self.fm_scale = nn.Parameter(torch.zeros(1))  # of the pairwise term (docstring)
        nn.init.zeros_(self.rating_head.weight)  # start at the global mean (module docstring)
        nn.init.constant_(self.rating_head.bias, data_info.global_mean)
        self.user_bias = nn.Embedding(data_info.n_users, 1)
        self.item_bias = nn.Embedding(data_info.n_items, 1)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)

    def _score(self, d_u: Tensor, e_u: Tensor, d_i: Tensor, e_i: Tensor) -> Tensor:
        """Fusion (eq. 8) and interaction (eq. 9-10, or the FM of SIFN_in), without biases."""
        fused = self.fusion(d_u) * d_i if self.fusion is not None else None
        if self.config.interaction == "fm":
            fields = [d_u, e_u, d_i, e_i] + ([fused] if fused is not None else [])
            stacked = torch.stack(fields, dim=1)  # [B, F, k]
            pairwise = 0.5 * (stacked.sum(1).pow(2) - stacked.pow(2).sum(1)).sum(-1)
            return self.rating_head(stacked.flatten(1)).squeeze(-1) + self.fm_scale * pairwise
        p = (d_u + e_u) * (d_i + e_i)
        if self.fused_proj is not None:
            p = p + self.fused_proj(fused)
        return self.rating_head(self.dropout(p)).squeeze(-1)

    def forward(self, batch: Batch, phase: str = ALL_PHASES) -> ModelOutput:
        review_mask = torch.stack([batch["user_review_mask"], batch["item_review_mask"]], 1).bool()
        token_mask = (
            torch.stack([batch["user_attention_mask"], batch["item_attention_mask"]], dim=1).bool()
            & review_mask[..., None]
        )  # [B, 2, M, L]
        tokens = self._token_states(batch, token_mask)  # [B, 2, M, L, d]

        # sentiment learner and sentiment prediction
        reviews, word_attention = self.word_attention(tokens, token_mask)  # [B, 2, M, d]
        reviews = self.dropout(reviews)
        sentiment_logits = self.sentiment_head(reviews)  # [B, 2, M, 3]

        # rating learner
        e_u, e_i = self.user_id(batch["user_idx"]), self.item_id(batch["item_idx"])
        m = review_mask.shape[-1]
        if self.config.review_id == "owner":  # eq. 6 as printed: the document owner's id
            user_review_ids = e_u[:, None].expand(-1, m, -1)
            item_review_ids = e_i[:, None].expand(-1, m, -1)
        else:  # the other party of each review (NARRE's reading)
            user_review_ids = self.item_id(batch["user_review_item_idx"])
            item_review_ids = self.user_id(batch["item_review_user_idx"])
        d_u, user_review_attention = self.user_tower(
            reviews[:, 0], user_review_ids, review_mask[:, 0]
        )
        d_i, item_review_attention = self.item_tower(
            reviews[:, 1], item_review_ids, review_mask[:, 1]
        )
        prediction = (
            self._score(d_u, e_u, d_i, e_i)
            + self.user_bias(batch["user_idx"]).squeeze(-1)
            + self.item_bias(batch["item_idx"]).squeeze(-1)
        )

        out: ModelOutput = {"prediction": prediction, "sentiment_logits": sentiment_logits}
        if "rating" in batch:
            rating_loss = F.mse_loss(prediction, batch["rating"].float())
            out["rating_loss"] = rating_loss.detach()
            out["loss"] = rating_loss + self._penalty(batch, e_u, e_i)
            if "user_review_sentiment" in batch and self.config.sentiment_weight > 0:
                sentiment_loss = self._sentiment_loss(sentiment_logits, batch, review_mask)
                out["sentiment_loss"] = sentiment_loss.detach()
                out["loss"] = out["loss"] + self.config.sentiment_weight * sentiment_loss
        if self.config.return_attention or bool(batch.get("return_attention", False)):
            out["word_attention"] = word_attention  # [B, 2 (user, item), M, L]
            out["review_attention"] = torch.stack(
                [user_review_attention, item_review_attention], dim=1
            )  # [B, 2, M]
        return out

    def _token_states(self, batch: Batch, token_mask: Tensor) -> Tensor:
        """BERT's last-layer states of every review slot: computed, or read precomputed."""
        review_ids = torch.stack([batch["user_review_ids"], batch["item_review_ids"]], dim=1)
        if self.review_states is None:
            input_ids = torch.stack([batch["user_input_ids"], batch["item_input_ids"]], dim=1)
            return self.review_encoder(input_ids, token_mask, review_ids).hidden
        states = self.review_states.gather(review_ids, token_mask.shape[-1])
        return states.to(token_mask.device, self.sentiment_head.weight.dtype)

    def _penalty(self, batch: Batch, e_u: Tensor, e_i: Tensor) -> Tensor | float:
        """The per-rating L2 penalty of the pair's id rows and biases (0 by default)."""
        c = self.config
        if not (c.id_reg or c.bias_reg):
            return 0.0
        b_u = self.user_bias(batch["user_idx"]).squeeze(-1)
        b_i = self.item_bias(batch["item_idx"]).squeeze(-1)
        ids = e_u.square().sum(-1) + e_i.square().sum(-1)
        return (c.id_reg * ids + c.bias_reg * (b_u.square() + b_i.square())).mean()

    @staticmethod
    def _sentiment_loss(logits: Tensor, batch: Batch, review_mask: Tensor) -> Tensor:
        """``L_s``: cross-entropy over the present user and item review slots (eq. 4)."""
        labels = torch.stack([batch["user_review_sentiment"], batch["item_review_sentiment"]], 1)
        labels = labels.masked_fill(~review_mask, IGNORE_INDEX).flatten()
        total = F.cross_entropy(logits.flatten(0, 2), labels, reduction="sum")
        return total / (labels != IGNORE_INDEX).sum().clamp(min=1)


SIFN_SPEC = ModelSpec(
    name="sifn",
    model_cls=SIFN,
    config_cls=SIFNConfig,
    batch_fields=frozenset(
        ("user_idx", "item_idx", "rating", "user_review_item_idx", "item_review_user_idx")
        + ("user_input_ids", "user_attention_mask", "user_review_mask", "user_review_sentiment")
        + ("item_input_ids", "item_attention_mask", "item_review_mask", "item_review_sentiment")
        + ("user_review_ids", "item_review_ids")  # for precomputed review states
    ),
    task="rating",
    metrics=("mse", "rmse", "mae"),
    default_metric="mse",
)
