"""U-BERT: pre-training and fine-tuning user representations from reviews.

Reference:
    Zhaopeng Qiu, Xian Wu, Jingyue Gao, Wei Fan. "U-BERT: Pre-training User Representations
    for Improved Recommendation." AAAI 2021.

Pre-training (:class:`UBertPretrain`, section "U-BERT" and "Pre-training Stage"), one row per
review written by a target-domain user in another domain:

* review encoder (eq. 1-4): BERT over ``[CLS] review [SEP]`` -> token states ``S^L``;
* user encoder: ``ũ = LN(u + o)`` (user and domain embeddings), ``s_u = Attn(ũ W_u, S^L, S^L)``
  (eq. 5), ``û = Fuse(ũ, s_u) = LN(H + FFN(H))``, ``H = LN(ũ W_u + s_u)`` (eq. 6);
* task #1, masked opinion token prediction (eq. 7):
  ``h_t = LN(GELU(S^L_t W1 + ũ W2 + b1))``, ``Pr(w_t) = softmax(h_t W3 + b2)``;
* task #2, opinion rating prediction (eq. 8): ``r' = û W_R + b_R``;
* loss (eq. 9), per review: mean NLL of its masked tokens + β (r' - r)^2, β = 3; averaged
  over the batch (the paper sums over the corpus; the mean only rescales the learning rate).

Fine-tuning (:class:`UBertFinetune`, "Fine-tuning U-BERT for Rating Prediction"), one row
per user-item pair of the target domain:

* each of the user's and the item's reviews is encoded separately (eq. 10); ``Ŝ^u`` is the
  row-wise concatenation of the token states of all the user's reviews (likewise ``Ŝ^i``);
* ``û = Fuse(ũ, Attn(ũ W_u, Ŝ^u, Ŝ^u))`` (eq. 11); the item encoder has the same structure and
  its own weights: ``î = Fuse(ĩ, Attn(ĩ W_i, Ŝ^i, Ŝ^i))``;
* review co-matching (eq. 12-14): ``D_u = Attn(Ŝ^u, Ŝ^i, Ŝ^i)``, ``D_i = Attn(Ŝ^i, Ŝ^u, Ŝ^u)``,
  ``M = tanh([Ŝ - D ; Ŝ ∘ D] W_M + b_M)`` (shared ``W_M``), ``t = MaxPooling(M)``;
* prediction ``r' = [û; t_u; î; t_i] W_f + b_f``, MSE loss (eq. 15).

Padding tokens and empty review slots are masked out of every attention and max-pool.

Readings of what the paper leaves open:

* W2's user vector (eq. 7 prints ``u``): we feed ``ũ = LN(u + o)``. It is still the user's own
  embedding (the gradient reaches ``u``), but layer-normalised to the scale of the BERT states
  it is added to, and domain-aware, which the paper introduces ``o`` for ("to mitigate the
  domain inconsistent problem"). ``û`` is not used: it has read the masked review itself.
* W3 is tied to BERT's word embeddings (as BERT's own MLM head is), with a free bias ``b2``:
  all-MiniLM ships no MLM head, and an untied ``d x |V|`` matrix would add 11.7M (d=384) to
  23M (d=768) parameters learned from opinion words only.
* Masking is per word piece (:func:`mask_opinion_tokens`): 50% of the review's opinion word
  pieces, rounded to nearest, at least one when the review has any, each replaced by BERT's
  80% ``[MASK]`` / 10% random token / 10% unchanged. A review without masked tokens adds only
  its rating term. Passing ``opinion_mask = attention_mask`` (minus specials) gives the
  paper's "random masking" ablation; a batch without ``mlm_labels`` trains task #2 only
  ("w/o task #1"), and ``beta = 0`` drops task #2.
* Fine-tuning's domain: the target domain's id is ``target_domain`` (default 0) in the same
  domain table as pre-training (``n_domains`` must match; the target domain's row is not
  trained by pre-training, which sees the other domains only). The item encoder also fuses
  the domain embedding, ``ĩ = LN(i + o)``, so that it has the user encoder's structure.
* ``b_R`` and ``b_f`` start at the data's global mean rating (the same model, a better start).
* ``pair_biases`` (not in the paper, off by default and in the paper preset): adds a user and
  an item bias, ``r' = [û; t_u; î; t_i] W_f + b_f + b_u + b_i``, with the per-rating L2
  penalty ``bias_reg (b_u² + b_i²)`` of a biased MF (Koren et al. 2009). Eq. 15 has no bias
  terms: a user's rating offset must then pass through ``û``, which is layer-normalised
  (``Fuse``), so W_f can read it only as a direction. On small real data (Musical
  Instruments, 8k ratings) user and item offsets carry most of what is predictable
  (biases alone: test MSE 0.75 against 0.80 for the global mean). With ``pair_biases`` W_f
  starts at zero, so that a model warm-started from a biased MF's biases
  (``train.init_from``, :mod:`rayrec.train.warm_start`) predicts exactly as those biases do
  and the text learns their residual, as SIFN's rating weight does; W_f's gradient is not
  zero at the start (the features are not), every other layer's is until W_f moves. Before
  2026-12-07 W_f kept its default (Kaiming-uniform) start there: the first predictions were
  the MF's plus a random projection of the features.
* Dropout 0.1 on the residual branches of ``Fuse``, as BERT's hidden dropout ("other
  settings keep the same with the original BERT").
* U-BERT P- (no pre-training) is ``UBertFinetune`` with ``pretrained=None``: the backbone
  comes from plain BERT weights, user embeddings and encoders are freshly initialised.

Partial fine-tuning (``trainable_layers=N``, not in the paper, which fine-tunes every layer;
the paper presets leave it unset): the embeddings and the lower ``n - N`` BERT layers are
frozen (eval mode, no gradient), only the top N layers, the entity encoders, co-matching and
heads train. In fine-tuning the frozen part's output is read from a review-state store
(``review_states``, keyed by the pre-trained weights' sha256 as well) instead of being
computed; in pre-training it is computed (the masked opinion tokens change a review's input
in every step, so there is nothing to cache), without gradient. What it changes: the lower
layers keep the pre-trained (or plain BERT) weights, so the review encoder adapts to the
domain less; the rating heads see the same structure. Each distinct review of a batch is
encoded once (:class:`~rayrec.models.encoders.ReviewEncoder`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load_file
from torch import Tensor, nn

from rayrec.data.storage import local_copy
from rayrec.encode.store import StateStore
from rayrec.models.base import ALL_PHASES, Batch, DataInfo, ModelOutput, ModelSpec, RecModel
from rayrec.models.encoders import ReviewEncoder, build_bert
from rayrec.models.layers import Attn, CoMatching, Fuse

IGNORE_INDEX = -100


def mask_opinion_tokens(
    input_ids: Tensor,
    opinion_mask: Tensor,
    attention_mask: Tensor,
    *,
    mask_token_id: int,
    vocab_size: int,
    special_ids: Iterable[int],
    generator: torch.Generator | None = None,
    ratio: float = 0.5,
) -> tuple[Tensor, Tensor]:
    """Mask ``ratio`` of each review's opinion word pieces, BERT-style (task #1).

    ``input_ids, opinion_mask, attention_mask [B, L]``. Candidates are opinion positions that
    are real, non-special tokens. Each row masks ``round(ratio * n)`` of its ``n`` candidates,
    at least one if ``n > 0``, chosen uniformly; a chosen token becomes ``[MASK]`` with
    probability 0.8, a uniform random token with 0.1, and stays with 0.1.

    Returns ``(masked_input_ids, mlm_labels)``: labels hold the original ids at the chosen
    positions and -100 elsewhere.
    """
    device = input_ids.device
    specials = torch.tensor(sorted(set(special_ids)), dtype=input_ids.dtype, device=device)
    candidates = opinion_mask.bool() & attention_mask.bool() & ~torch.isin(input_ids, specials)
    n = candidates.sum(dim=-1, keepdim=True)
    k = torch.where(n > 0, (n * ratio).round().clamp(min=1), 0)
    noise = torch.rand(input_ids.shape, generator=generator, device=device)
    rank = noise.masked_fill(~candidates, 2.0).argsort(dim=-1).argsort(dim=-1)
    chosen = candidates & (rank < k)

    action = torch.rand(input_ids.shape, generator=generator, device=device)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator, device=device)
    masked = torch.where(chosen & (action < 0.8), mask_token_id, input_ids)
    masked = torch.where(chosen & (action >= 0.8) & (action < 0.9), random_ids, masked)
    labels = torch.where(chosen, input_ids, IGNORE_INDEX)
    return masked, labels


class EntityEncoder(nn.Module):
    """U-BERT's user (and item) encoder, eq. 5-6 and 11.

    ``ẽ = LN(e + o)``; ``s = Attn(ẽ W, S, S)`` over the real tokens of ``S``;
    ``ê = Fuse(ẽ, s)``. Returns ``(ê, ẽ)``.
    """

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, dim, bias=False)  # W_u (W_i for items)
        self.attn = Attn()
        self.fuse = Fuse(dim, dropout)

    def forward(
        self, entity: Tensor, domain: Tensor, states: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        tilde = self.ln(entity + domain)  # [B, d]
        query = self.proj(tilde)
        s, _ = self.attn(query[:, None], states, states, mask)  # [B, 1, d]
        return self.fuse(query, s[:, 0]), tilde


def _user_side(
    backbone: nn.Module, data_info: DataInfo, dropout: float
) -> tuple[nn.Embedding, nn.Embedding, EntityEncoder]:
    """User embeddings, domain embeddings and user encoder: the modules (with the review
    encoder) that pre-training hands to fine-tuning. Both models keep them under the same
    attribute names, so their ``state_dict`` keys match one to one (``SHARED_PREFIXES``)."""
    if data_info.vocab_size > backbone.config.vocab_size:
        raise ValueError(
            f"tokenizer vocabulary ({data_info.vocab_size}) is larger than the backbone's "
            f"({backbone.config.vocab_size})"
        )
    dim = backbone.config.hidden_size
    return (
        nn.Embedding(data_info.n_users, dim),
        nn.Embedding(data_info.n_domains, dim),
        EntityEncoder(dim, dropout),
    )


SHARED_PREFIXES = ("review_encoder.", "user_embedding.", "domain_embedding.", "user_encoder.")
PRETRAIN_ONLY_PREFIXES = ("mlm_", "rating_head.")


class UBertPretrainConfig(BaseModel):
    """U-BERT pre-training (paper defaults: BERT width 768, β = 3, lr 3e-5, max length 200)."""

    model_config = ConfigDict(extra="forbid")

    backbone: str = "minilm"  # see rayrec.models.encoders.build_bert
    freeze_backbone: bool = False
    gradient_checkpointing: bool = False
    beta: float = 3.0  # weight of the opinion rating loss (eq. 9)
    dropout: float = 0.1
    trainable_layers: int | None = Field(None, ge=0)  # only the top N BERT layers train


class UBertPretrain(RecModel):
    """U-BERT pre-training: masked opinion token prediction + opinion rating prediction."""

    def __init__(self, config: UBertPretrainConfig, data_info: DataInfo) -> None:
        super().__init__()
        self.config = config
        bert = build_bert(
            config.backbone,
            gradient_checkpointing=config.gradient_checkpointing,
            add_pooling_layer=False,
        )
        self.review_encoder = ReviewEncoder(
            bert, frozen=config.freeze_backbone, trainable_layers=config.trainable_layers
        )
        self.user_embedding, self.domain_embedding, self.user_encoder = _user_side(
            bert, data_info, config.dropout
        )
        dim = bert.config.hidden_size
        self.mlm_transform = nn.Linear(dim, dim)  # W1, b1
        self.mlm_user = nn.Linear(dim, dim, bias=False)  # W2
        self.mlm_ln = nn.LayerNorm(dim)
        self.mlm_bias = nn.Parameter(torch.zeros(bert.config.vocab_size))  # b2; W3 is tied
        self.rating_head = nn.Linear(dim, 1)  # W_R, b_R
        nn.init.constant_(self.rating_head.bias, data_info.global_mean)

    def _mlm_loss(self, states: Tensor, user: Tensor, labels: Tensor) -> Tensor:
        """Eq. 7 and the first term of eq. 9, only at the masked positions."""
        rows, cols = (labels != IGNORE_INDEX).nonzero(as_tuple=True)
        h = self.mlm_ln(F.gelu(self.mlm_transform(states[rows, cols]) + self.mlm_user(user[rows])))
        word_embeddings = self.review_encoder.bert.embeddings.word_embeddings.weight
        logits = F.linear(h, word_embeddings, self.mlm_bias)
        nll = F.cross_entropy(logits, labels[rows, cols], reduction="none")
        per_review = nll.new_zeros(labels.shape[0]).index_add(0, rows, nll)
        count = (labels != IGNORE_INDEX).sum(dim=-1)
        return (per_review / count.clamp(min=1)).sum() / (count > 0).sum().clamp(min=1)

    def forward(self, batch: Batch, phase: str = ALL_PHASES) -> ModelOutput:
        mask = batch["attention_mask"].bool()
        states = self.review_encoder(batch["input_ids"], mask).hidden  # S^L [B, L, d]
        user = self.user_embedding(batch["user_idx"])
        domain = self.domain_embedding(batch["domain_idx"])
        user_hat, user_tilde = self.user_encoder(user, domain, states, mask)
        prediction = self.rating_head(user_hat).squeeze(-1)

        out: ModelOutput = {"prediction": prediction}
        losses = []
        if "mlm_labels" in batch:
            mlm_loss = self._mlm_loss(states, user_tilde, batch["mlm_labels"])
            out["mlm_loss"] = mlm_loss.detach()
            losses.append(mlm_loss)
        if "rating" in batch:
            rating_loss = F.mse_loss(prediction, batch["rating"].float())
            out["rating_loss"] = rating_loss.detach()
            losses.append(self.config.beta * rating_loss)
        if losses:
            out["loss"] = sum(losses)
        return out


class UBertFinetuneConfig(BaseModel):
    """U-BERT fine-tuning (paper defaults: lr 3e-5, max review length 220, 300 for Music)."""

    model_config = ConfigDict(extra="forbid")

    backbone: str = "minilm"  # must build the same architecture as the pre-trained one
    pretrained: str | None = None  # UBertPretrain model.safetensors (file or dir, local or s3://)
    target_domain: int = 0  # id of the target domain in the pre-training domain table
    freeze_backbone: bool = False
    gradient_checkpointing: bool = False
    dropout: float = 0.1
    trainable_layers: int | None = Field(None, ge=0)  # only the top N BERT layers train
    review_states: str | None = None  # review-state store of the frozen layers (set by the
    # training driver, rayrec.encode.plan)
    return_attention: bool = False  # add the co-matching attention maps (Figure 5) to outputs;
    # a batch can also ask for them with a truthy "return_attention" entry
    pair_biases: bool = False  # b_u + b_i added to eq. 15 (not in the paper; docstring)
    bias_reg: float = Field(0.0, ge=0)  # L2 of the pair's biases, per rating (pair_biases)


@dataclass(frozen=True)
class PretrainedLoad:
    """What :meth:`UBertFinetune.load_pretrained` did, key by key."""

    loaded: list[str]  # shared tensors copied from the checkpoint
    missing: list[str]  # shared tensors the checkpoint lacks (kept at their initialisation)
    unexpected: list[str]  # checkpoint tensors U-BERT pre-training does not have
    ignored: list[str]  # pre-training heads, not used in fine-tuning


class UBertFinetune(RecModel):
    """U-BERT rating prediction: user/item encoders + review co-matching (Figure 3)."""

    def __init__(self, config: UBertFinetuneConfig, data_info: DataInfo) -> None:
        super().__init__()
        self.config = config
        if not 0 <= config.target_domain < data_info.n_domains:
            raise ValueError(f"target_domain {config.target_domain} not in [0, n_domains)")
        bert = build_bert(
            config.backbone,
            gradient_checkpointing=config.gradient_checkpointing,
            add_pooling_layer=False,
        )
        self.review_encoder = ReviewEncoder(
            bert,
            frozen=config.freeze_backbone,
            trainable_layers=config.trainable_layers,
            store=StateStore(config.review_states) if config.review_states else None,
        )
        self.user_embedding, self.domain_embedding, self.user_encoder = _user_side(
            bert, data_info, config.dropout
        )
        dim = bert.config.hidden_size
        self.item_embedding = nn.Embedding(data_info.n_items, dim)
        self.item_encoder = EntityEncoder(dim, config.dropout)
        self.co_matching = CoMatching(dim)
        self.predict = nn.Linear(4 * dim, 1)  # W_f, b_f
        nn.init.constant_(self.predict.bias, data_info.global_mean)
        self.user_bias: nn.Embedding | None = None
        self.item_bias: nn.Embedding | None = None
        if config.pair_biases:
            self.user_bias = nn.Embedding(data_info.n_users, 1)
            self.item_bias = nn.Embedding(data_info.n_items, 1)
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.item_bias.weight)
            nn.init.zeros_(self.predict.weight)  # start at b_f + b_u + b_i (docstring)
        if config.pretrained is not None:
            self.load_pretrained(config.pretrained)

    def load_pretrained(self, path: str | Path, strict: bool = True) -> PretrainedLoad:
        """Copy the review encoder, user/domain embeddings and user encoder from a
        :class:`UBertPretrain` ``state_dict`` stored as safetensors (``model.safetensors``,
        or a directory holding one; local or s3://). Shape mismatches always raise; missing
        or unexpected keys raise when ``strict``."""
        file = local_copy(str(path))
        if file.is_dir():
            file = file / "model.safetensors"
        tensors = load_file(file)
        own = self.state_dict()
        shared = {key for key in own if key.startswith(SHARED_PREFIXES)}
        report = PretrainedLoad(
            loaded=sorted(shared & tensors.keys()),
            missing=sorted(shared - tensors.keys()),
            unexpected=sorted(
                k for k in tensors if k not in shared and not k.startswith(PRETRAIN_ONLY_PREFIXES)
            ),
            ignored=sorted(k for k in tensors if k.startswith(PRETRAIN_ONLY_PREFIXES)),
        )
        wrong_shape = [
            f"{k}: checkpoint {tuple(tensors[k].shape)} vs model {tuple(own[k].shape)}"
            for k in report.loaded
            if tensors[k].shape != own[k].shape
        ]
        if wrong_shape:
            raise ValueError(f"{file}: shape mismatch (same backbone and n_users?): {wrong_shape}")
        if strict and (report.missing or report.unexpected):
            raise ValueError(
                f"{file} is not a UBertPretrain state_dict for this model: "
                f"missing {report.missing}, unexpected {report.unexpected}"
            )
        self.load_state_dict({k: tensors[k] for k in report.loaded}, strict=False)
        return report

    def forward(self, batch: Batch, phase: str = ALL_PHASES) -> ModelOutput:
        b, m, length = batch["user_input_ids"].shape
        user_mask = (
            batch["user_attention_mask"].bool() & batch["user_review_mask"].bool()[..., None]
        )
        item_mask = (
            batch["item_attention_mask"].bool() & batch["item_review_mask"].bool()[..., None]
        )
        # one BERT call for the user's and the item's reviews (eq. 10)
        states = self.review_encoder(
            torch.cat([batch["user_input_ids"], batch["item_input_ids"]], dim=1),
            torch.cat([user_mask, item_mask], dim=1),
            review_ids(batch),
        ).hidden
        # Ŝ^u, Ŝ^i: row-wise concatenation of each document's review token states
        s_u, s_i = (s.reshape(b, -1, self.review_encoder.dim) for s in states.split(m, dim=1))
        user_mask, item_mask = user_mask.reshape(b, -1), item_mask.reshape(b, -1)

        domain = self.domain_embedding.weight[self.config.target_domain].expand(b, -1)
        user_hat, _ = self.user_encoder(
            self.user_embedding(batch["user_idx"]), domain, s_u, user_mask
        )
        item_hat, _ = self.item_encoder(
            self.item_embedding(batch["item_idx"]), domain, s_i, item_mask
        )
        need_weights = self.config.return_attention or bool(batch.get("return_attention", False))
        matched = self.co_matching(s_u, user_mask, s_i, item_mask, need_weights=need_weights)
        features = torch.cat([user_hat, matched.t_u, item_hat, matched.t_i], dim=-1)
        prediction = self.predict(features).squeeze(-1)
        penalty: Tensor | float = 0.0
        if self.user_bias is not None and self.item_bias is not None:
            b_u = self.user_bias(batch["user_idx"]).squeeze(-1)
            b_i = self.item_bias(batch["item_idx"]).squeeze(-1)
            prediction = prediction + b_u + b_i
            penalty = self.config.bias_reg * (b_u.square() + b_i.square()).mean()

        out: ModelOutput = {"prediction": prediction}
        if "rating" in batch:
            rating_loss = F.mse_loss(prediction, batch["rating"].float())
            out["loss"] = rating_loss + penalty
        if need_weights:
            # [B, M, L (user review tokens), M, L (item review tokens)] and the converse
            out["attention_user_to_item"] = matched.attention_u.reshape(b, m, length, m, length)
            out["attention_item_to_user"] = matched.attention_i.reshape(b, m, length, m, length)
        return out


def review_ids(batch: Batch) -> Tensor | None:
    """``[B, 2M]`` ids of the user's, then the item's review slots, if the batch has them."""
    if "user_review_ids" not in batch:
        return None
    return torch.cat([batch["user_review_ids"], batch["item_review_ids"]], dim=1)


UBERT_PRETRAIN_SPEC = ModelSpec(
    name="ubert_pretrain",
    model_cls=UBertPretrain,
    config_cls=UBertPretrainConfig,
    # opinion_mask is read by the collate step, which builds mlm_labels with mask_opinion_tokens
    batch_fields=frozenset(
        ("user_idx", "domain_idx", "rating", "input_ids", "attention_mask")
        + ("opinion_mask", "mlm_labels")
    ),
    task="pretrain",
    metrics=("loss", "mlm_loss", "rating_loss"),
    default_metric="loss",
)

UBERT_FINETUNE_SPEC = ModelSpec(
    name="ubert_finetune",
    model_cls=UBertFinetune,
    config_cls=UBertFinetuneConfig,
    batch_fields=frozenset(
        ("user_idx", "item_idx", "rating")
        + ("user_input_ids", "user_attention_mask", "user_review_mask")
        + ("item_input_ids", "item_attention_mask", "item_review_mask")
        + ("user_review_ids", "item_review_ids")  # each review once per step; the store
    ),
    task="rating",
    metrics=("mse", "rmse", "mae"),
    default_metric="mse",
)
