"""NeuMF for implicit feedback: the id-only ranker inside BERT-RS, and its tuned baseline.

Reference:
    Xiangnan He, Lizi Liao, Hanwang Zhang, Liqiang Nie, Xia Hu, Tat-Seng Chua. "Neural
    Collaborative Filtering." WWW 2017, section 3.4 (NeuMF) and eq. 7 (log loss).

One row per user-item candidate (label 1 observed, 0 a sampled negative), as BERT-RS's:

* GMF ``l_g = u_g ∘ i_g`` and MLP ``l_m`` on ``[u_m; i_m]``: the shared
  :class:`~rayrec.models.baselines.NeuralCF` (BERT-RS's eq. 9-11);
* ``ŷ = sigmoid(h · [l_g; l_m] + b)`` (NeuMF's eq. 12); ``prediction`` is the logit inside the
  sigmoid, which the ranking metrics rank on (see :mod:`rayrec.models.bertrs`);
* binary cross-entropy on the logit (eq. 7) plus ``reg · (‖u_g‖² + ‖i_g‖² + ‖u_m‖² + ‖i_m‖²)``
  of each candidate's rows, averaged over the batch (the L2 penalty rayrec's rating NCF uses).

Readings:

* The paper's negatives are sampled from the unobserved items (4 per positive); here they are
  rayrec's ranking data: 1 per positive, redrawn every epoch among the items the user never
  rated (:mod:`rayrec.train.datasets`), as BERT-RS trains.
* No pre-training of GMF and MLP (the paper's NeuMF with pre-training): both start from
  N(0, 0.01²), the paper's start without it.
* The L2 penalty is not in the paper (it tunes lr and factors only). On MI with 1:1
  negatives an unpenalised NeuMF memorises the training positives within a few epochs (its
  validation HR@10 falls after epoch 4 at lr 1e-3, after epoch 2 at 3e-3); ``reg`` is chosen on
  validation (``rayrec/configs/neumf.yaml``).
* Names: ``branches`` and ``predict_ids`` are BERT-RS's id branches and id head, with the same
  shapes, so ``train.init_from=<a neumf run>`` starts BERT-RS at this ranker's logits exactly
  (its text head starts at zero: :class:`~rayrec.models.bertrs.BertRS`).
"""

from __future__ import annotations

import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from rayrec.eval.metrics import RANKING_KS
from rayrec.models.base import ALL_PHASES, Batch, DataInfo, ModelOutput, ModelSpec, RecModel
from rayrec.models.baselines import NeuralCF

RANKING_METRICS = tuple(f"hr@{k}" for k in RANKING_KS) + tuple(f"ndcg@{k}" for k in RANKING_KS)


class NeuMFConfig(BaseModel):
    """NeuMF for ranking (paper: 3 MLP layers; factors in {8, 16, 32, 64})."""

    model_config = ConfigDict(extra="forbid")

    factors: int = 32  # predictive factors: GMF width and last MLP layer
    mlp_layers: int = 3
    reg: float = Field(0.0, ge=0)  # λ of the candidate's embedding rows' squared norms


def ranking_output(logit: Tensor, batch: Batch, penalty: Tensor) -> ModelOutput:
    """``prediction`` (the logit) and, for labelled candidates, BCE on it plus ``penalty``
    [B] (the L2 penalty of the module docstring), averaged over the batch."""
    out: ModelOutput = {"prediction": logit}
    if "label" in batch:
        bce = F.binary_cross_entropy_with_logits(logit, batch["label"].float())
        out["loss"] = bce + penalty.mean()
    return out


class NeuMF(RecModel):
    """NeuMF ranker: ``logit = h · [l_g; l_m] + b`` over a user-item candidate."""

    def __init__(self, config: NeuMFConfig, data_info: DataInfo) -> None:
        super().__init__()
        self.config = config
        self.branches = NeuralCF(
            data_info.n_users, data_info.n_items, config.factors, config.mlp_layers
        )
        self.predict_ids = nn.Linear(self.branches.out_dim, 1)

    def forward(self, batch: Batch, phase: str = ALL_PHASES) -> ModelOutput:
        user, item = batch["user_idx"], batch["item_idx"]
        logit = self.predict_ids(self.branches(user, item)).squeeze(-1)
        penalty = self.config.reg * self.branches.squared_norms(user, item)
        return ranking_output(logit, batch, penalty)


NEUMF_SPEC = ModelSpec(
    name="neumf",
    model_cls=NeuMF,
    config_cls=NeuMFConfig,
    batch_fields=frozenset(("user_idx", "item_idx", "label")),
    task="ranking",
    metrics=RANKING_METRICS,
    default_metric="ndcg@10",
    metric_mode="max",
)
