"""Evaluation metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from rayrec.eval.metrics import RATING_RANGE, Evaluation, ranking_sums


def test_rating_metrics_and_sentiment_accuracy() -> None:
    evaluation = Evaluation("rating")
    batch = {
        "rating": torch.tensor([5.0, 1.0]),
        "user_review_sentiment": torch.tensor([[2, -100], [0, 1]]),
        "item_review_sentiment": torch.tensor([[2, 2], [-100, -100]]),
    }
    logits = torch.zeros(2, 2, 2, 3)
    logits[..., 2] = 1.0  # always "positive": right on 3 of the 5 present slots
    evaluation.update(batch, {"prediction": torch.tensor([4.0, 3.0]), "sentiment_logits": logits})
    evaluation.update({"rating": torch.tensor([2.0])}, {"prediction": torch.tensor([2.0])})
    result = evaluation.result()
    assert result["mse"] == pytest.approx((1 + 4 + 0) / 3)
    assert result["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert result["mae"] == pytest.approx(1.0)
    assert result["sentiment_acc"] == pytest.approx(3 / 5)


def test_rating_predictions_are_clipped_to_the_star_scale() -> None:
    """6 against 5 and -1 against 1 score 0 once clipped to [1, 5]; 4.5 against 5 is kept."""
    assert RATING_RANGE == (1.0, 5.0)
    evaluation = Evaluation("rating")
    evaluation.update(
        {"rating": torch.tensor([5.0, 1.0, 5.0])}, {"prediction": torch.tensor([6.0, -1.0, 4.5])}
    )
    result = evaluation.result()
    assert result["mse"] == pytest.approx(0.25 / 3)
    assert result["mae"] == pytest.approx(0.5 / 3)


def test_ranking_ranks_ties_against_the_positive() -> None:
    # group 0: positive scored 0.9, one negative above -> rank 1
    # group 1: positive ties with a negative -> rank 1; group 2: best -> rank 0
    scores = torch.tensor([0.9, 0.95, 0.1, 0.5, 0.5, 0.2, 0.8, 0.1, 0.3])
    labels = torch.tensor([1.0, 0, 0, 1, 0, 0, 1, 0, 0])
    group = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    hits, ndcg, n = ranking_sums(scores, labels, group, (1, 3))
    assert n == 3
    assert hits.tolist() == [1.0, 3.0]
    assert ndcg.tolist() == pytest.approx([1.0, 1.0 + 2 / math.log2(3)])
    constant = ranking_sums(torch.ones(9), labels, group, (1,))
    assert constant[0].tolist() == [0.0]


def test_ranking_evaluation_averages_over_users() -> None:
    evaluation = Evaluation("ranking", ks=(1, 10))
    batch = {"label": torch.tensor([1.0, 0.0, 1.0, 0.0]), "group": torch.tensor([0, 0, 1, 1])}
    evaluation.update(batch, {"prediction": torch.tensor([0.9, 0.1, 0.2, 0.7])})
    result = evaluation.result()
    assert result["hr@1"] == 0.5 and result["hr@10"] == 1.0
    assert result["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3)) / 2)


def test_pretrain_losses_weighted_by_batch_size() -> None:
    evaluation = Evaluation("pretrain")
    for size, loss in ((3, 1.0), (1, 5.0)):
        out = {"prediction": torch.zeros(size), "loss": torch.tensor(loss)}
        evaluation.update(
            {}, out | {"mlm_loss": torch.tensor(loss), "rating_loss": torch.tensor(0.0)}
        )
    assert evaluation.result() == pytest.approx({"loss": 2.0, "mlm_loss": 2.0, "rating_loss": 0.0})
