"""Baselines for rating prediction, so that every number has an honest floor.

* :class:`GlobalMean`: ``r̂ = μ``. μ is one learned scalar that starts at the training split's
  mean rating (``DataInfo.global_mean``) and is trained with the MSE like every other model:
  the training loop needs no special case (no model without parameters), and the scalar can
  only move towards the training mean, which is its MSE optimum.
* :class:`BiasedMF`: ``r̂ = μ + b_u + b_i + p_u · q_i`` (Y. Koren, R. Bell, C. Volinsky,
  "Matrix Factorization Techniques for Recommender Systems", IEEE Computer 2009), MSE plus the
  paper's L2 penalty (below). μ is the fixed global mean (a buffer); biases start at 0,
  factors at N(0, 0.1²); ``factors: 0`` is the biases-only model ``μ + b_u + b_i``.
* :class:`DeepCoNN`: L. Zheng, V. Noroozi, P. S. Yu, "Joint Deep Modeling of Users and Items
  Using Reviews for Recommendation", WSDM 2017. Two text CNNs, one over the user's reviews
  concatenated into one document and one over the item's (embedding, convolution + ReLU,
  max over time, fully connected layer: the shared :class:`~rayrec.models.encoders.TextCNN`),
  dropout, and an FM on ``[x_u; x_i]``, MSE. Defaults are SAFMR's Table 3 CNN settings, so
  that the two compare like with like: 100 filters of width 3, 50 features per side,
  300-d word embeddings (learned from N(0, 1), over the BERT uncased vocabulary the data is
  tokenized with; ``word_vectors: minilm`` starts them from MiniLM's 384-d word-piece table
  instead, the pre-trained vectors DeepCoNN's paper uses being word2vec's), dropout 0.5; FM
  factors k = 8 (not given by either paper). The CNN output is linear (no activation) and
  dropout sits on ``[x_u; x_i]``. ``pair_biases`` (not in the paper, off by default) adds
  biased MF's user and item biases, ``r̂ = FM([x_u; x_i]) + b_u + b_i``, with its per-rating
  penalty ``bias_reg (b_u² + b_i²)``: named as :class:`BiasedMF` names them, so that
  ``train.init_from`` a tuned MF run starts DeepCoNN within a few hundredths of a star of
  that MF's predictions (the FM's bias starts at μ, its linear weights at 0, its pairwise term
  near 0: :func:`~rayrec.models.fm.init_dense_fm`) and the text learns what the biases leave
  (:mod:`rayrec.train.warm_start`).
* :class:`NCF`: NeuMF of X. He, L. Liao, H. Zhang, L. Nie, X. Hu, T.-S. Chua, "Neural
  Collaborative Filtering", WWW 2017 (GMF and MLP branches fused by one output layer),
  without text. The paper scores implicit feedback with a sigmoid and log loss; for the
  rating task the output is linear, ``r̂ = h · [l_g; l_m] + b`` with b starting at the global
  mean, and the loss is the MSE. MLP: NCF's tower pattern (each layer half the width of the
  one below), read as ``L`` Linear+ReLU layers ending at the ``f`` predictive factors, so the
  embeddings are ``f · 2^(L-1)`` wide per side (f = 32, L = 3: 256 -> 128 -> 64 -> 32);
  embeddings start at N(0, 0.01²), as in NCF. Its four embedding tables carry the L2 penalty
  below (one λ, ``reg``); the MLP and output weights are dense and left to the optimizer's
  weight decay.

L2 penalty of the id models (BiasedMF, NCF). Koren et al. 2009, eq. 5, minimise over the
observed ratings κ
``Σ_(u,i)∈κ (r_ui − μ − b_u − b_i − p_uᵀq_i)² + λ (‖p_u‖² + ‖q_i‖² + b_u² + b_i²)``:
the penalty of a user's (item's) parameters is paid once per rating of that user (item), which
is what the paper's SGD step does (``e_ui = r_ui − r̂_ui``; ``b_u ← b_u + γ (e_ui − λ b_u)``,
``p_u ← p_u + γ (e_ui q_i − λ p_u)``, and likewise for the item). The batch loss here is that
objective's mean over the batch's B ratings, with separate λs for biases and factors:

    loss = 1/B Σ_b [ (r_b − r̂_b)² + bias_reg (b_u² + b_i²) + reg (‖p_u‖² + ‖q_i‖²) ]

Its gradient in b_u is ``−(2/B)(e − bias_reg · b_u)`` per rating: the SGD step above with the
same λ and ``γ = 2·lr/B``. ``loss`` (what the optimizer minimises and ``train_loss`` reports)
includes the penalty; the evaluation metrics (:mod:`rayrec.eval.metrics`) read only
``prediction``, so validation and test MSE are the plain squared error. A penalty on the rows
a batch touches, not on whole tables, is also why AdamW's weight decay (which shrinks every
row at every step, seen or not, by ``lr · weight_decay``) is no stand-in for it: the
``biased_mf`` and ``ncf`` presets set ``weight_decay: 0`` and carry λs chosen on validation
(their headers say how).

Review documents (DeepCoNN, also used by SAFMR): a user's (item's) review slots are
concatenated into one token sequence by :func:`concat_reviews`, keeping only real tokens in
slot order. So empty slots and padding never reach the CNN and the result does not depend on
how the batch was padded; as in DeepCoNN, a convolution window may span two adjacent reviews.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from rayrec.models.base import ALL_PHASES, Batch, DataInfo, ModelOutput, ModelSpec, RecModel
from rayrec.models.encoders import TextCNN, word_vectors
from rayrec.models.fm import FM

RATING_METRICS = ("mse", "rmse", "mae")
ID_FIELDS = ("user_idx", "item_idx", "rating")
DOCUMENT_FIELDS = tuple(
    f"{side}_{name}"
    for side in ("user", "item")
    for name in ("input_ids", "attention_mask", "review_mask")
)


def concat_reviews(
    input_ids: Tensor,
    attention_mask: Tensor,
    review_mask: Tensor,
    max_reviews: int | None = None,
    max_review_len: int | None = None,
) -> tuple[Tensor, Tensor]:
    """One document per row: ``[B, M, L]`` review slots -> ``(ids [B, T], mask [B, T])``.

    Only the first ``max_reviews`` slots and the first ``max_review_len`` positions of each
    review are kept (None: all). The real tokens of the kept slots are packed left in slot
    order; T is the longest document of the batch (at least 1).
    """
    input_ids = input_ids[:, :max_reviews, :max_review_len]
    real = attention_mask[:, :max_reviews, :max_review_len].bool()
    real = (real & review_mask[:, :max_reviews, None].bool()).flatten(1)
    counts = real.sum(dim=1)
    width = max(int(counts.max()), 1)
    # destination of each real token; padding goes to an extra column that is dropped
    slot = (real.cumsum(dim=1) - 1).masked_fill(~real, width)
    packed = input_ids.new_zeros(input_ids.shape[0], width + 1)
    packed = packed.scatter(1, slot, input_ids.flatten(1).masked_fill(~real, 0))[:, :width]
    mask = torch.arange(width, device=counts.device) < counts[:, None]
    return packed, mask


class ReviewCNNConfig(BaseModel):
    """Fields of a text CNN over review documents (shared by DeepCoNN and SAFMR)."""

    model_config = ConfigDict(extra="forbid")

    embed_dim: int = 300  # word embeddings over DataInfo.vocab_size
    # pre-trained word vectors: a BERT backbone source ("minilm", a directory, s3://) whose
    # word-piece table starts the embeddings (embed_dim must be its width: 384 for MiniLM);
    # None: learned from N(0, 1)
    word_vectors: str | None = None
    freeze_word_vectors: bool = False  # keep the pre-trained vectors fixed
    kernel_size: int = 3
    n_filters: int = 100
    cnn_out_dim: int = 50  # width of the CNN's fully connected output
    max_reviews: int | None = None  # review slots read per document (None: all)
    max_review_len: int | None = None  # tokens read per review (None: all)

    @model_validator(mode="after")
    def _frozen_vectors_are_pretrained(self) -> ReviewCNNConfig:
        if self.freeze_word_vectors and self.word_vectors is None:
            raise ValueError(
                "model.params.freeze_word_vectors=true keeps an N(0, 1) table fixed: give "
                "model.params.word_vectors, or set freeze_word_vectors=false"
            )
        return self

    def text_cnn(self, vocab_size: int, vectors: Tensor | None) -> TextCNN:
        """A :class:`TextCNN` of these settings, its embeddings started from ``vectors``."""
        return TextCNN(
            vocab_size,
            embed_dim=self.embed_dim,
            kernel_size=self.kernel_size,
            n_filters=self.n_filters,
            out_dim=self.cnn_out_dim,
            vectors=vectors,
            freeze_vectors=self.freeze_word_vectors,
        )

    def load_word_vectors(self) -> Tensor | None:
        """The ``word_vectors`` table, or None; an error naming the field if its width is not
        ``embed_dim``."""
        if self.word_vectors is None:
            return None
        vectors = word_vectors(self.word_vectors)
        if vectors.shape[1] != self.embed_dim:
            raise ValueError(
                f"model.params.word_vectors {self.word_vectors!r} are {vectors.shape[1]} wide "
                f"but model.params.embed_dim is {self.embed_dim}: set embed_dim to "
                f"{vectors.shape[1]}"
            )
        return vectors


def document(batch: Batch, side: str) -> tuple[Tensor, Tensor, Tensor]:
    """``(input_ids, attention_mask, review_mask)`` of the ``"user"`` or ``"item"`` document."""
    return (
        batch[f"{side}_input_ids"],
        batch[f"{side}_attention_mask"],
        batch[f"{side}_review_mask"],
    )


class DocumentCNN(nn.Module):
    """A :class:`TextCNN` over a concatenated review document: ``[B, M, L] -> [B, out]``."""

    def __init__(
        self, vocab_size: int, config: ReviewCNNConfig, vectors: Tensor | None = None
    ) -> None:
        super().__init__()
        self.cnn = config.text_cnn(vocab_size, vectors)
        self.max_reviews = config.max_reviews
        self.max_review_len = config.max_review_len

    def forward(self, input_ids: Tensor, attention_mask: Tensor, review_mask: Tensor) -> Tensor:
        ids, mask = concat_reviews(
            input_ids, attention_mask, review_mask, self.max_reviews, self.max_review_len
        )
        return self.cnn(ids, mask)


def _rating_output(prediction: Tensor, batch: Batch, penalty: Tensor | None = None) -> ModelOutput:
    """``prediction``, and with the batch's ratings ``loss``: the MSE plus ``penalty`` [B]
    (the per-rating L2 penalty of the module docstring), averaged over the batch."""
    out: ModelOutput = {"prediction": prediction}
    if "rating" in batch:
        out["loss"] = F.mse_loss(prediction, batch["rating"].float())
        if penalty is not None:
            out["loss"] = out["loss"] + penalty.mean()
    return out


def _squared_norm(rows: Tensor) -> Tensor:
    """``‖row‖²`` of each row of ``rows`` [B, d] -> [B]."""
    return rows.square().sum(dim=-1)


class GlobalMeanConfig(BaseModel):
    """GlobalMean has no hyper-parameters."""

    model_config = ConfigDict(extra="forbid")


class GlobalMean(RecModel):
    """``r̂ = μ``, one learned scalar starting at the training mean rating."""

    def __init__(self, config: GlobalMeanConfig, data_info: DataInfo) -> None:
        super().__init__()
        self.config = config
        # shape [1], not a 0-d scalar: DeepSpeed 0.19 broadcasts parameters as bytes
        # (``p.view(torch.uint8)``), which fails for 0-d tensors
        self.mean = nn.Parameter(torch.full((1,), float(data_info.global_mean)))

    def forward(self, batch: Batch, phase: str = ALL_PHASES) -> ModelOutput:
        # repeat, not expand: a view of the parameter keeps requires_grad under no_grad and
        # inference_mode (torch 2.13), and its .numpy() fails in the report and predict
        return _rating_output(self.mean.repeat(batch["user_idx"].shape[0]), batch)


class BiasedMFConfig(BaseModel):
    """Biased matrix factorization (0 for both λs: the unregularised model)."""

    model_config = ConfigDict(extra="forbid")

    factors: int = Field(32, ge=0)  # width of p_u and q_i; 0: biases only
    init_std: float = 0.1
    reg: float = Field(0.0, ge=0)  # λ of ‖p_u‖² + ‖q_i‖², per rating
    bias_reg: float = Field(0.0, ge=0)  # λ of b_u² + b_i², per rating


def zero_bias_tables(data_info: DataInfo) -> tuple[nn.Embedding, nn.Embedding]:
    """A user and an item bias table ``b_u``, ``b_i`` (one column each), all zeros."""
    user_bias = nn.Embedding(data_info.n_users, 1)
    item_bias = nn.Embedding(data_info.n_items, 1)
    nn.init.zeros_(user_bias.weight)
    nn.init.zeros_(item_bias.weight)
    return user_bias, item_bias


class BiasedMF(RecModel):
    """``r̂ = μ + b_u + b_i + p_u · q_i`` with μ the fixed global mean, MSE + L2 penalty.

    With ``factors: 0`` there are no factor tables at all (not empty ones: DeepSpeed
    broadcasts every parameter, and a model should hold no parameter that cannot learn)."""

    def __init__(self, config: BiasedMFConfig, data_info: DataInfo) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("mu", torch.tensor(float(data_info.global_mean)))
        self.user_bias, self.item_bias = zero_bias_tables(data_info)
        self.user_factors: nn.Embedding | None = None
        self.item_factors: nn.Embedding | None = None
        if config.factors > 0:
            self.user_factors = nn.Embedding(data_info.n_users, config.factors)
            self.item_factors = nn.Embedding(data_info.n_items, config.factors)
            nn.init.normal_(self.user_factors.weight, std=config.init_std)
            nn.init.normal_(self.item_factors.weight, std=config.init_std)

    def forward(self, batch: Batch, phase: str = ALL_PHASES) -> ModelOutput:
        user, item = batch["user_idx"], batch["item_idx"]
        b_u, b_i = self.user_bias(user).squeeze(-1), self.item_bias(item).squeeze(-1)
        prediction = self.mu + b_u + b_i
        penalty = self.config.bias_reg * (b_u.square() + b_i.square())
        if self.user_factors is not None and self.item_factors is not None:
            p_u, q_i = self.user_factors(user), self.item_factors(item)
            prediction = prediction + (p_u * q_i).sum(dim=-1)
            penalty = penalty + self.config.reg * (_squared_norm(p_u) + _squared_norm(q_i))
        return _rating_output(prediction, batch, penalty)


class DeepCoNNConfig(ReviewCNNConfig):
    """DeepCoNN hyper-parameters (SAFMR's Table 3 CNN settings by default)."""

    fm_k: int = 8  # width of the FM factors
    dropout: float = 0.5
    pair_biases: bool = False  # b_u + b_i added to the FM (not in the paper; module docstring)
    bias_reg: float = Field(0.0, ge=0)  # λ of b_u² + b_i², per rating (pair_biases)


class DeepCoNN(RecModel):
    """User CNN and item CNN over concatenated review documents, FM on ``[x_u; x_i]``
    (plus ``b_u + b_i`` with ``pair_biases``)."""

    def __init__(self, config: DeepCoNNConfig, data_info: DataInfo) -> None:
        super().__init__()
        self.config = config
        vectors = config.load_word_vectors()
        self.user_cnn = DocumentCNN(data_info.vocab_size, config, vectors)
        self.item_cnn = DocumentCNN(data_info.vocab_size, config, vectors)
        self.dropout = nn.Dropout(config.dropout)
        self.fm = FM(2 * config.cnn_out_dim, config.fm_k, bias=data_info.global_mean)
        self.user_bias: nn.Embedding | None = None
        self.item_bias: nn.Embedding | None = None
        if config.pair_biases:
            self.user_bias, self.item_bias = zero_bias_tables(data_info)

    def forward(self, batch: Batch, phase: str = ALL_PHASES) -> ModelOutput:
        x_u = self.user_cnn(*document(batch, "user"))
        x_i = self.item_cnn(*document(batch, "item"))
        prediction = self.fm(self.dropout(torch.cat([x_u, x_i], dim=-1)))
        if self.user_bias is None or self.item_bias is None:
            return _rating_output(prediction, batch)
        b_u = self.user_bias(batch["user_idx"]).squeeze(-1)
        b_i = self.item_bias(batch["item_idx"]).squeeze(-1)
        penalty = self.config.bias_reg * (b_u.square() + b_i.square())
        return _rating_output(prediction + b_u + b_i, batch, penalty)


class NeuralCF(nn.Module):
    """NCF's two branches without the output layer: ``(user, item) -> [l_g; l_m]`` of width 2f.

    GMF ``l_g = u_g ∘ i_g`` (f wide); MLP on ``[u_m; i_m]`` with ``mlp_layers`` ReLU layers
    halving down to f. Shared by :class:`NCF` and BERT-RS (its eq. 9-11).
    """

    def __init__(self, n_users: int, n_items: int, factors: int, mlp_layers: int) -> None:
        super().__init__()
        widths = [factors * 2**i for i in range(mlp_layers, -1, -1)]  # 2·emb, ..., f
        self.user_gmf = nn.Embedding(n_users, factors)
        self.item_gmf = nn.Embedding(n_items, factors)
        self.user_mlp = nn.Embedding(n_users, widths[0] // 2)
        self.item_mlp = nn.Embedding(n_items, widths[0] // 2)
        for embedding in (self.user_gmf, self.item_gmf, self.user_mlp, self.item_mlp):
            nn.init.normal_(embedding.weight, std=0.01)
        layers: list[nn.Module] = []
        for width_in, width_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(width_in, width_out), nn.ReLU()]
        self.mlp = nn.Sequential(*layers)
        self.out_dim = 2 * factors

    def forward(self, user: Tensor, item: Tensor) -> Tensor:
        gmf = self.user_gmf(user) * self.item_gmf(item)
        mlp = self.mlp(torch.cat([self.user_mlp(user), self.item_mlp(item)], dim=-1))
        return torch.cat([gmf, mlp], dim=-1)

    def squared_norms(self, user: Tensor, item: Tensor) -> Tensor:
        """``‖u_g‖² + ‖i_g‖² + ‖u_m‖² + ‖i_m‖²`` of each pair's embedding rows -> [B]."""
        gmf = _squared_norm(self.user_gmf(user)) + _squared_norm(self.item_gmf(item))
        return gmf + _squared_norm(self.user_mlp(user)) + _squared_norm(self.item_mlp(item))


class NCFConfig(BaseModel):
    """NeuMF for rating prediction (paper: 3 MLP layers; factors in {8, 16, 32, 64})."""

    model_config = ConfigDict(extra="forbid")

    factors: int = 32  # predictive factors f: GMF width and last MLP layer
    mlp_layers: int = 3
    reg: float = Field(0.0, ge=0)  # λ of the pair's embedding rows' squared norms, per rating


class NCF(RecModel):
    """NeuMF with a linear output for ratings: ``r̂ = h · [l_g; l_m] + b``, MSE + L2 penalty."""

    def __init__(self, config: NCFConfig, data_info: DataInfo) -> None:
        super().__init__()
        self.config = config
        self.branches = NeuralCF(
            data_info.n_users, data_info.n_items, config.factors, config.mlp_layers
        )
        self.predict = nn.Linear(self.branches.out_dim, 1)
        nn.init.constant_(self.predict.bias, data_info.global_mean)

    def forward(self, batch: Batch, phase: str = ALL_PHASES) -> ModelOutput:
        user, item = batch["user_idx"], batch["item_idx"]
        prediction = self.predict(self.branches(user, item)).squeeze(-1)
        penalty = self.config.reg * self.branches.squared_norms(user, item)
        return _rating_output(prediction, batch, penalty)


def _rating_spec(
    name: str, model_cls: type[RecModel], config_cls: type, fields: tuple[str, ...]
) -> ModelSpec:
    return ModelSpec(
        name=name,
        model_cls=model_cls,
        config_cls=config_cls,
        batch_fields=frozenset(fields),
        task="rating",
        metrics=RATING_METRICS,
        default_metric="mse",
    )


# GlobalMean reads user_idx only for the batch size
GLOBAL_MEAN_SPEC = _rating_spec("global_mean", GlobalMean, GlobalMeanConfig, ("user_idx", "rating"))
BIASED_MF_SPEC = _rating_spec("biased_mf", BiasedMF, BiasedMFConfig, ID_FIELDS)
# the ids for pair_biases only (two integers a row)
DEEPCONN_SPEC = _rating_spec("deepconn", DeepCoNN, DeepCoNNConfig, ID_FIELDS + DOCUMENT_FIELDS)
NCF_SPEC = _rating_spec("ncf", NCF, NCFConfig, ID_FIELDS)
