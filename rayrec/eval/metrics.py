"""Evaluation metrics, accumulated as sums so that workers can add them up with one all-reduce.

* rating task: MSE, RMSE, MAE of ``prediction`` against ``rating``, with the prediction
  clipped to ``RATING_RANGE`` = [1, 5] first: every source rayrec reads (Amazon 2014/2018,
  Yelp, the synthetic corpus) rates in 1-5 stars, so a prediction outside the scale is moved
  to its nearest end before it is scored, for every rating model alike. Only the evaluation
  clips; training losses are the models' own, on unclipped predictions (a clipped prediction
  would have no gradient beyond the ends). When the model outputs
  ``sentiment_logits`` ``[B, 2, M, 3]`` (SIFN), ``sentiment_acc``: the accuracy of the 3-way
  sentiment prediction over the present user and item review slots.
* ranking task (BERT-RS): one held-out positive per user among sampled negatives
  (``group`` names each candidate's user row; the positive has ``label`` 1). The positive's
  rank is the number of candidates of its group that score higher **or equal** (ties count
  against the model, so a constant scorer gets HR@1 = 0, not 1). ``hr@K`` = 1 if rank < K;
  ``ndcg@K`` = ``1 / log2(rank + 2)`` if rank < K, else 0; both averaged over users.
* pretrain task (U-BERT): batch-size-weighted means of ``loss``, ``mlm_loss`` and
  ``rating_loss``.

Every worker evaluates its own shard; :meth:`Evaluation.result` all-reduces the sums when
``torch.distributed`` is initialised, so every rank returns the same numbers.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist

from rayrec.models.base import Batch, ModelOutput

RATING_RANGE = (1.0, 5.0)  # the star scale of every rating source (module docstring)
RANKING_KS = (1, 3, 5, 10)
PRETRAIN_LOSSES = ("loss", "mlm_loss", "rating_loss")
IGNORE_INDEX = -100


def ranking_sums(
    scores: torch.Tensor, labels: torch.Tensor, group: torch.Tensor, ks: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Summed ``hr@k`` and ``ndcg@k`` (one entry per k) and the number of groups.

    Each group must hold exactly one candidate with label 1."""
    n_groups = int(group.max()) + 1 if group.numel() else 0
    positive = labels > 0.5
    counts = torch.bincount(group[positive], minlength=n_groups)
    if not torch.all(counts == 1):
        raise ValueError("each ranking group needs exactly one positive candidate")
    positive_score = torch.zeros(n_groups, dtype=scores.dtype)
    positive_score[group[positive]] = scores[positive]
    above = (scores >= positive_score[group]) & ~positive
    rank = torch.bincount(group[above], minlength=n_groups).double()
    hits = torch.stack([(rank < k).double().sum() for k in ks])
    gains = 1.0 / torch.log2(rank + 2.0)
    ndcg = torch.stack([torch.where(rank < k, gains, 0.0).sum() for k in ks])
    return hits, ndcg, n_groups


class Evaluation:
    """Accumulates one evaluation pass of a task (``rating``, ``ranking`` or ``pretrain``)."""

    def __init__(self, task: str, ks: tuple[int, ...] = RANKING_KS) -> None:
        if task not in ("rating", "ranking", "pretrain"):
            raise ValueError(f"unknown task {task!r}")
        self.task = task
        self.ks = ks
        size = {"rating": 5, "ranking": 2 * len(ks) + 1, "pretrain": len(PRETRAIN_LOSSES) + 1}
        self.sums = torch.zeros(size[task], dtype=torch.float64)

    def update(self, batch: Batch, out: ModelOutput) -> None:
        """Add one batch and the model's outputs on it."""
        prediction = out["prediction"].detach().double().cpu()
        if self.task == "rating":
            error = prediction.clamp(*RATING_RANGE) - batch["rating"].double()
            self.sums[:3] += torch.stack(
                [error.square().sum(), error.abs().sum(), torch.tensor(float(error.numel()))]
            )
            if "sentiment_logits" in out and "user_review_sentiment" in batch:
                labels = torch.stack(
                    [batch["user_review_sentiment"], batch["item_review_sentiment"]], 1
                )
                present = labels != IGNORE_INDEX
                guess = out["sentiment_logits"].detach().cpu().argmax(-1)
                self.sums[3] += (guess == labels)[present].sum()
                self.sums[4] += present.sum()
        elif self.task == "ranking":
            hits, ndcg, n = ranking_sums(prediction, batch["label"], batch["group"], self.ks)
            k = len(self.ks)
            self.sums[:k] += hits
            self.sums[k : 2 * k] += ndcg
            self.sums[2 * k] += n
        else:
            size = float(prediction.shape[0])
            for j, name in enumerate(PRETRAIN_LOSSES):
                if name in out:
                    self.sums[j] += float(out[name].detach()) * size
            self.sums[-1] += size

    def result(self) -> dict[str, float]:
        """The metrics over every worker's batches (all-reduced when distributed)."""
        sums = self.sums.clone()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(sums)
        if self.task == "rating":
            n = max(float(sums[2]), 1.0)
            out = {"mse": float(sums[0]) / n, "mae": float(sums[1]) / n}
            out["rmse"] = math.sqrt(out["mse"])
            if sums[4] > 0:
                out["sentiment_acc"] = float(sums[3] / sums[4])
            return out
        if self.task == "ranking":
            k, n = len(self.ks), max(float(sums[-1]), 1.0)
            out = {f"hr@{kk}": float(sums[j]) / n for j, kk in enumerate(self.ks)}
            out |= {f"ndcg@{kk}": float(sums[k + j]) / n for j, kk in enumerate(self.ks)}
            return out
        n = max(float(sums[-1]), 1.0)
        return {name: float(sums[j]) / n for j, name in enumerate(PRETRAIN_LOSSES)}
