"""SAFMR: TransNet's target/source networks with self-attention factorization machines.

Reference: "SAFMR", a deep recommendation model based on self-attention factorization
machines (``shared/papers/safmr.txt``, sections 3-5, Algorithms 1-2), built on TransNets
(R. Catherine, W. Cohen, "TransNets: Learning to Transform for Recommendation", RecSys 2017).

Per user-item pair (U, I):

* text CNN (eq. 1-4): word embedding -> convolution (kernel 3, 100 filters, ReLU, eq. 1) ->
  max over time (eq. 2-3) -> fully connected layer to 50 features (eq. 4), the shared
  :class:`~rayrec.models.encoders.TextCNN`;
* SA-FM (eq. 6-8): :class:`~rayrec.models.fm.SAFM` (its docstring gives the reading);
* target network (Algorithm 1): ``X_A = CNN_A(rev_UI)`` over the pair's own review,
  ``ŷ_A = SAFM_A(X_A)``, ``loss_A = |y_UI - ŷ_A|`` (eq. 12);
* source network (Algorithm 2): ``X_B = CNN_B(Text_U - rev_UI)``,
  ``X_C = CNN_C(Text_I - rev_UI)``, ``C_0 = [X_B X_C]`` (eq. 9), Transform
  ``C_l = φ(C_{l-1} G_l + g_l)``, l = 1..L (eq. 10), ``loss_transform = ||C_L - X_A||^2``
  (eq. 13), ``ŷ_B = SAFM_B(C_L)``, ``loss_B = |y_UI - ŷ_B|`` (eq. 14);
* at test time only the source network runs: the prediction is ``ŷ_B`` and the batch needs no
  ``target_*`` field (the target review is not written yet).

Training is three steps per batch, each with its own optimizer (``update_phases``):

==========  ==================================  ================================================
phase       loss                                parameters stepped (``phase_parameters``)
==========  ==================================  ================================================
target      ``loss_A`` (eq. 12)                 CNN_A (with its word embeddings), SAFM_A
transform   ``loss_transform`` (eq. 13)         CNN_B, CNN_C (with their embeddings), Transform
source      ``loss_B`` (eq. 14)                 SAFM_B
==========  ==================================  ================================================

With ``target_epochs`` = T > 0 training runs in two stages instead (a departure from the
paper's per-batch alternation, which TransNets' separate objectives allow): the first T epochs
run the target step alone; from epoch T on the target network is frozen and every batch runs
the transform and source steps, so eq. 13 regresses a fixed ``X_A`` rather than one that
moves as the target network sharpens (on MI the joint schedule's transform loss rises while
the target's falls: ``docs/results-mi.md``). Early stopping counts from epoch T (the source
network, the one evaluated, does not train before it).

``forward(batch, phase)`` computes only what the phase needs and runs everything outside the
phase's own parameters under ``no_grad``, so a phase's loss has gradients for exactly its
parameters. ``phase="all"`` is evaluation: the source network only, ``prediction = ŷ_B`` and
``loss = loss_B`` when the batch has ratings.

Readings of what the paper leaves open:

* Who trains in which step: section 5.2 says the transform loss is followed by "the remaining
  trainable parameter of the source network", trained by ``loss_B``; as in TransNets, the
  transform step trains the source CNNs and the Transform layer (the only parameters
  upstream of ``C_L``) and the source step trains SAFM_B alone, on a ``C_L`` that is fixed
  for it. The three sets are disjoint; ``X_A`` is a fixed regression target in the transform
  step (detached, and without dropout).
* Documents ``Text_U``, ``Text_I``: the user's (item's) training reviews except ``rev_UI``,
  concatenated into one token sequence (:func:`~rayrec.models.baselines.concat_reviews`), the
  first ``max_reviews`` = 10 reviews of at most ``max_review_len`` = 80 tokens each (Table 3);
  the target review is cut to ``max_review_len`` as well.
* Word embeddings: over the BERT uncased vocabulary the data is tokenized with, learned
  from N(0, 1) (300-d), or, closer to the paper's pre-trained word vectors over its own
  50,000-word vocabulary, started from MiniLM's word-piece table (``word_vectors: minilm``,
  384-d). Each of the three CNNs has its own embedding table (a copy of the same vectors),
  so that the phases stay disjoint.
* Transform sizes: ``G_1 ∈ R^{2n×n}`` (``C_0`` is ``[X_B X_C]``, 2n wide), ``G_l ∈ R^{n×n}``
  after (the paper prints n×n for all); ``G_l`` ~ truncated normal (std 0.1, cut at 2 std),
  ``g_l = 0.1``.
* Activations: the CNN's fully connected layer ``X = f(WM + b)`` (eq. 4) and the Transform's
  ``φ`` (eq. 10) are left undefined (eq. 1's φ is ReLU). Both are read as one function,
  ``activation`` (tanh by default, which keeps both signs; or ReLU), so that ``C_L`` and
  ``X_A`` have the same range: with a linear ``f`` the target network grows ``X_A`` beyond
  what tanh (or ReLU, for negative features) layers can produce, and eq. 13 cannot reach 0.
* ``||·||^2`` is summed over the n features and averaged over the batch; the L1 losses are
  averaged over the batch (eq. 11 sums: only the scale of the learning rate changes).
* Rating loss: eq. 11-14 use the L1 norm (section 4.3: "the L1 norm was better than the L2
  norm" on the paper's data), while the paper reports MSE. An L1 loss is minimised by the
  conditional median, not the mean: on ratings as skewed as Amazon's (most are 5 stars) it
  pulls predictions to 5 and the MSE up. ``rating_loss`` is ``"l1"`` (the paper's, and
  ``configs/paper/safmr.yaml``) or ``"mse"`` (the squared error the evaluation measures);
  it replaces eq. 12 and eq. 14 alike, eq. 13 stays the squared L2 norm.
* Dropout 0.5 (Table 3) on the CNN outputs ``X_A`` (target step), ``X_B`` and ``X_C``, as in
  DeepCoNN. ``w0`` of both SA-FMs starts at the training mean rating.
* ``k``, the SA-FM embedding width, is not given; 8 by default.

Training settings of the paper (the loop's, not this module's): Adam, lr 0.008 with decay
0.99, batch 128, 15 epochs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from rayrec.models.base import ALL_PHASES, Batch, DataInfo, ModelOutput, ModelSpec, RecModel
from rayrec.models.baselines import (
    DOCUMENT_FIELDS,
    RATING_METRICS,
    DocumentCNN,
    ReviewCNNConfig,
    document,
)
from rayrec.models.fm import SAFM

TARGET_FIELDS = ("target_input_ids", "target_attention_mask")
PHASE_MODULES: dict[str, tuple[str, ...]] = {
    "target": ("target_cnn", "target_fm"),
    "transform": ("user_cnn", "item_cnn", "transform"),
    "source": ("source_fm",),
}


class SAFMRConfig(ReviewCNNConfig):
    """SAFMR hyper-parameters (Table 3 defaults; lr 0.008 is the loop's)."""

    max_reviews: int | None = 10
    max_review_len: int | None = 80
    fm_k: int = 8  # SA-FM embedding width k
    dropout: float = 0.5
    transform_layers: int = 2  # L
    activation: Literal["tanh", "relu"] = "tanh"  # f of eq. 4 and φ of eq. 10
    rating_loss: Literal["l1", "mse"] = "l1"  # eq. 12 and 14: the paper's L1, or squared error
    target_epochs: int = Field(0, ge=0)  # > 0: the target network alone first, then frozen


class Transform(nn.Module):
    """Eq. 10: ``C_l = φ(C_{l-1} G_l + g_l)``, ``2n -> n -> ... -> n``."""

    def __init__(
        self, in_dim: int, out_dim: int, n_layers: int, activation: Callable[[Tensor], Tensor]
    ) -> None:
        super().__init__()
        widths = [in_dim] + [out_dim] * n_layers
        self.layers = nn.ModuleList(
            nn.Linear(w_in, w_out) for w_in, w_out in zip(widths[:-1], widths[1:], strict=True)
        )
        for layer in self.layers:
            nn.init.trunc_normal_(layer.weight, std=0.1, a=-0.2, b=0.2)
            nn.init.constant_(layer.bias, 0.1)
        self.activation = activation

    def forward(self, c: Tensor) -> Tensor:
        for layer in self.layers:
            c = self.activation(layer(c))
        return c


class SAFMR(RecModel):
    """Target network (training only) and source network with a Transform, SA-FM heads."""

    update_phases = tuple(PHASE_MODULES)

    def __init__(self, config: SAFMRConfig, data_info: DataInfo) -> None:
        super().__init__()
        self.config = config
        n, k, mean = config.cnn_out_dim, config.fm_k, data_info.global_mean
        vectors = config.load_word_vectors()
        self.target_cnn = config.text_cnn(data_info.vocab_size, vectors)
        self.target_fm = SAFM(n, k, bias=mean)
        self.user_cnn = DocumentCNN(data_info.vocab_size, config, vectors)
        self.item_cnn = DocumentCNN(data_info.vocab_size, config, vectors)
        self.activation = torch.tanh if config.activation == "tanh" else torch.relu
        self.transform = Transform(2 * n, n, config.transform_layers, self.activation)
        self.source_fm = SAFM(n, k, bias=mean)
        self.dropout = nn.Dropout(config.dropout)
        self.rating_loss = F.l1_loss if config.rating_loss == "l1" else F.mse_loss

    def phase_parameters(self, phase: str) -> Iterator[nn.Parameter]:
        if phase == ALL_PHASES:
            return super().phase_parameters(phase)
        if phase not in PHASE_MODULES:
            raise ValueError(f"SAFMR has no update phase {phase!r}; phases: {self.update_phases}")
        modules = [getattr(self, name) for name in PHASE_MODULES[phase]]
        return (p for module in modules for p in module.parameters() if p.requires_grad)

    def phases_at(self, epoch: int) -> tuple[str, ...]:
        """All three steps every epoch; with ``target_epochs`` = T, the target step alone in
        epochs ``< T``, then transform and source (the target network frozen)."""
        stages = self.config.target_epochs
        if stages == 0:
            return self.update_phases
        return ("target",) if epoch < stages else ("transform", "source")

    def patience_from(self) -> int:
        return self.config.target_epochs

    def target_features(self, batch: Batch) -> Tensor:
        """``X_A = f(CNN_A(rev_UI))`` (no dropout), ``[B, n]``."""
        missing = [name for name in TARGET_FIELDS if name not in batch]
        if missing:
            raise KeyError(f"SAFMR's target network needs {missing} (training batches only)")
        length = self.config.max_review_len
        x_a = self.target_cnn(
            batch["target_input_ids"][:, :length], batch["target_attention_mask"][:, :length]
        )
        return self.activation(x_a)

    def source_features(self, batch: Batch) -> Tensor:
        """``C_L``: user and item CNNs, ``C_0 = [X_B X_C]`` (eq. 9), Transform (eq. 10)."""
        x_b = self.dropout(self.activation(self.user_cnn(*document(batch, "user"))))
        x_c = self.dropout(self.activation(self.item_cnn(*document(batch, "item"))))
        return self.transform(torch.cat([x_b, x_c], dim=-1))

    def forward(self, batch: Batch, phase: str = ALL_PHASES) -> ModelOutput:
        if phase == "target":
            prediction, attention = self.target_fm(self.dropout(self.target_features(batch)))
            loss = self.rating_loss(prediction, batch["rating"].float())
            return {"loss": loss, "prediction": prediction, "attention": attention}
        if phase == "transform":
            with torch.no_grad():
                x_a = self.target_features(batch)
            c_l = self.source_features(batch)
            with torch.no_grad():
                prediction, _ = self.source_fm(c_l)
            loss = (c_l - x_a).square().sum(dim=-1).mean()
            return {"loss": loss, "prediction": prediction}
        if phase == "source":
            with torch.no_grad():
                c_l = self.source_features(batch)
            prediction, attention = self.source_fm(c_l)
            loss = self.rating_loss(prediction, batch["rating"].float())
            return {"loss": loss, "prediction": prediction, "attention": attention}
        if phase == ALL_PHASES:
            prediction, attention = self.source_fm(self.source_features(batch))
            out: ModelOutput = {"prediction": prediction, "attention": attention}
            if "rating" in batch:
                out["loss"] = self.rating_loss(prediction, batch["rating"].float())
            return out
        raise ValueError(f"SAFMR has no update phase {phase!r}; phases: {self.update_phases}")


SAFMR_SPEC = ModelSpec(
    name="safmr",
    model_cls=SAFMR,
    config_cls=SAFMRConfig,
    batch_fields=frozenset(("rating",) + DOCUMENT_FIELDS + TARGET_FIELDS),
    task="rating",
    metrics=RATING_METRICS,
    default_metric="mse",
    # the collate step builds these for training batches only (base.py: never in val/test)
    extra={"train_only_fields": frozenset(TARGET_FIELDS)},
)
