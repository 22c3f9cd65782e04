"""BERT-RS: BERT semantic layer + GMF + MLP for personalized (implicit-feedback) ranking.

Reference:
    Kezhi Lu, Qian Zhang, Guangquan Zhang, Jie Lu. "BERT-RS: A Neural Personalized
    Recommender System with BERT." (``shared/papers/bert-rs.md``)

One row per user-item candidate (label 1 observed, 0 sampled negative):

* semantic layer (section 3.2): BERT over the pair's text, then the pooler
  ``b_s = tanh(S W^{p1} + b^{p1})`` on the ``[CLS]`` state (eq. 7) and
  ``l_s = (u_s ∘ b_s) ∘ (i_s ∘ b_s)`` (eq. 8) with semantic user/item embeddings u_s, i_s;
* GMF (eq. 9): ``l_g = u_g ∘ i_g``;
* MLP (eq. 10-11): ReLU layers on ``[u_m; i_m]``, output ``l_m``;
* prediction (section 3.5): ``ŷ = sigmoid(W [l_s; l_g; l_m] + b)``, binary cross-entropy
  (eq. 12), written ``W_s l_s + W_id [l_g; l_m] + b`` (the same function: ``W = [W_s W_id]``).
  ``prediction`` is that logit, ``ŷ = sigmoid(prediction)``:
  the ranking metrics (HR@K, NDCG@K) rank candidates on it. Ranking on ŷ loses the order of
  confident candidates: in float32 the sigmoid is exactly 1.0 from a logit of about 17 on,
  and :func:`~rayrec.eval.metrics.ranking_sums` counts a tie against the positive.

Settings (section 4.2): 3 MLP layers and 32 predictive factors (also the GMF width), Adam with
lr 1e-4 (the loop's), BERT-base; here the backbone is any :func:`build_bert` source (default
the all-MiniLM-L6-v2 package, "tiny" in tests).

Readings of what the paper leaves open:

* The text of an unobserved pair is not stated. Read as ``[CLS] user text [SEP] item text
  [SEP]`` built by the data step from the user's and the item's training reviews, never the
  pair's own review (``pair_input_ids``, ``pair_token_type_ids`` 0 / 1 for the two segments).
  In training, both labels' texts are built the same way: each side leaves out one review,
  a positive its own, a negative one drawn uniformly, so that the text does not tell the
  label (:meth:`rayrec.train.collate.Collator._pair_text`). The negatives are redrawn every
  epoch among the items the user never rated (:mod:`rayrec.train.datasets`).
* ``b_s`` is BERT's own pooler (the paper's "pooler layer, a linear layer and a Tanh"), so
  ``b_s``, ``u_s`` and ``i_s`` are as wide as the backbone (d). With ``freeze_backbone`` the
  embeddings and transformer layers are frozen (and kept in eval mode) while the pooler,
  eq. 7's ``W^{p1}, b^{p1}``, still trains.
* u_s and i_s start at 1, so that ``l_s = b_s ∘ b_s`` carries the text from the first step and
  the embeddings learn per-user and per-item re-weightings of it (with NCF's N(0, 0.01²) start
  the four-way product would be ~1e-4 and the semantic branch would barely train).
* "3 MLP layers and 32 predictive factors": three Linear+ReLU layers halving down to 32, so
  embeddings of 128 per side, 256 -> 128 -> 64 -> 32 (NCF's tower pattern,
  :class:`~rayrec.models.baselines.NeuralCF`); GMF embeddings are 32 wide.
* ``trainable_layers=N`` (partial fine-tuning, not in the paper): the embeddings and the
  lower layers are frozen (eval mode, no gradient, so autograd keeps no activations for them)
  and only the top N layers, the pooler and the heads train. The frozen part still runs in
  every step: the pair text concatenates a user's and an item's reviews, so its lower-layer
  states depend on the pair and a per-review store (:mod:`rayrec.encode.store`) cannot hold
  them.
* ``W_s`` starts at zero, so the model starts as its id branches (NeuMF,
  :mod:`rayrec.models.neumf`, whose ``branches`` and ``predict_ids`` it names alike): with
  ``train.init_from=<a neumf run>`` it starts at that tuned ranker's logits exactly and the
  text learns what the ids leave (as SIFN and U-BERT start from MF's biases). Until
  2026-12-07 ``W`` was one ``nn.Linear`` with its default random start, named ``predict``.
* ``reg`` (not in the paper, 0 by default): NeuMF's L2 penalty on the candidate's GMF and MLP
  embedding rows; on MI the unpenalised id tables memorise the training positives (see
  :mod:`rayrec.models.neumf`).
* The loss is computed from the logit (``binary_cross_entropy_with_logits``), the same
  quantity as eq. 12 without ``log(sigmoid)`` underflow; eq. 12 as printed lacks its minus.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from rayrec.models.base import ALL_PHASES, Batch, DataInfo, ModelOutput, ModelSpec, RecModel
from rayrec.models.baselines import NeuralCF
from rayrec.models.encoders import build_bert
from rayrec.models.neumf import RANKING_METRICS, ranking_output


class BertRSConfig(BaseModel):
    """BERT-RS hyper-parameters (paper: 3 MLP layers, 32 factors, Adam lr 1e-4)."""

    model_config = ConfigDict(extra="forbid")

    backbone: str = "minilm"  # see rayrec.models.encoders.build_bert
    freeze_backbone: bool = False  # freeze all of BERT but its pooler (eq. 7)
    trainable_layers: int | None = Field(None, ge=0)  # only the top N layers (and the pooler)
    gradient_checkpointing: bool = False
    factors: int = 32  # GMF width and last MLP layer
    mlp_layers: int = 3
    reg: float = Field(0.0, ge=0)  # L2 of the candidate's id rows (not in the paper; NeuMF's)


class BertRS(RecModel):
    """BERT-RS: ``sigmoid(W [l_s; l_g; l_m] + b)`` over a user-item candidate (``prediction``
    is the logit inside the sigmoid)."""

    def __init__(self, config: BertRSConfig, data_info: DataInfo) -> None:
        super().__init__()
        self.config = config
        self.bert = build_bert(
            config.backbone, gradient_checkpointing=config.gradient_checkpointing
        )
        layers = self.bert.encoder.layer
        if config.trainable_layers is not None and config.trainable_layers > len(layers):
            raise ValueError(
                f"trainable_layers={config.trainable_layers}: the backbone has {len(layers)}"
            )
        trainable = config.trainable_layers
        if trainable is None:
            trainable = 0 if config.freeze_backbone else len(layers)
        frozen = len(layers) - trainable  # embeddings and layers 0..frozen-1; the pooler trains
        self.frozen_modules: list[nn.Module] = (
            [self.bert.embeddings, *layers[:frozen]] if frozen else []
        )
        for module in self.frozen_modules:
            module.requires_grad_(False)
        d = self.bert.config.hidden_size
        self.user_semantic = nn.Embedding(data_info.n_users, d)  # u_s
        self.item_semantic = nn.Embedding(data_info.n_items, d)  # i_s
        nn.init.ones_(self.user_semantic.weight)
        nn.init.ones_(self.item_semantic.weight)
        self.branches = NeuralCF(
            data_info.n_users, data_info.n_items, config.factors, config.mlp_layers
        )
        self.predict_semantic = nn.Linear(d, 1, bias=False)  # W_s
        nn.init.zeros_(self.predict_semantic.weight)  # start as the id branches (docstring)
        self.predict_ids = nn.Linear(self.branches.out_dim, 1)  # W_id, b: NeuMF's head

    def train(self, mode: bool = True) -> BertRS:
        super().train(mode)
        for module in self.frozen_modules:  # no dropout in frozen layers
            module.eval()
        return self

    def forward(self, batch: Batch, phase: str = ALL_PHASES) -> ModelOutput:
        user, item = batch["user_idx"], batch["item_idx"]
        b_s = self.bert(
            input_ids=batch["pair_input_ids"],
            attention_mask=batch["pair_attention_mask"].long(),
            token_type_ids=batch["pair_token_type_ids"],
        ).pooler_output  # eq. 7
        l_s = (self.user_semantic(user) * b_s) * (self.item_semantic(item) * b_s)  # eq. 8
        logit = self.predict_semantic(l_s) + self.predict_ids(self.branches(user, item))
        penalty = self.config.reg * self.branches.squared_norms(user, item)
        return ranking_output(logit.squeeze(-1), batch, penalty)


BERTRS_SPEC = ModelSpec(
    name="bertrs",
    model_cls=BertRS,
    config_cls=BertRSConfig,
    batch_fields=frozenset(
        ("user_idx", "item_idx", "label")
        + ("pair_input_ids", "pair_attention_mask", "pair_token_type_ids")
    ),
    task="ranking",
    metrics=RANKING_METRICS,
    default_metric="ndcg@10",
    metric_mode="max",
)
