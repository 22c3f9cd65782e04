"""``rayrec recommend`` on real runs of the tiny dataset (24 users, 16 items, 4 training items
per user: 12 candidates each): K distinct unrated items per user in score order, the true top K
of the model's scores, and with every candidate listed (K = 12) the run's own test metrics
recomputed from the lists (SIFN's MSE on the test pairs, BERT-RS's HR/NDCG on its ranking
candidates)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from serve_helpers import biased_mf_by_hand, by_pair, cli, mse, results, written

from rayrec.eval.metrics import ranking_sums

pytestmark = pytest.mark.slow

N_ITEMS, CANDIDATES = 16, 12


def training_items(data: Path) -> dict[int, set[int]]:
    train = pq.read_table(data / "pairs" / "train.parquet")
    items: dict[int, set[int]] = {}
    for u, i in zip(
        train.column("user_idx").to_pylist(), train.column("item_idx").to_pylist(), strict=True
    ):
        items.setdefault(u, set()).add(i)
    return items


def check_lists(table: pa.Table, data: Path, k: int, users: int) -> dict[int, list[int]]:
    """Every list holds k distinct items the user has no training pair with, ranked 1..k by
    non-increasing score; returns each user's items in rank order."""
    assert table.column_names == ["user", "rank", "item", "score", "user_idx", "item_idx"]
    columns = (table.column(c).to_pylist() for c in ("user_idx", "rank", "item_idx"))
    rows = sorted(zip(*columns, strict=True))
    scores = by_pair(table, "score")
    train = training_items(data)
    lists: dict[int, list[int]] = {}
    for u, _, i in rows:
        lists.setdefault(u, []).append(i)
    assert sorted(lists) == list(range(users))
    for u, items in lists.items():
        assert len(items) == k and len(set(items)) == k
        assert not set(items) & train[u]
        ranked = [scores[(u, i)] for i in items]
        assert ranked == sorted(ranked, reverse=True)
    assert sorted(set(table.column("rank").to_pylist())) == list(range(1, k + 1))
    users_ids = table.column("user").to_pylist()
    assert users_ids == [f"U{u:03d}" for u in table.column("user_idx").to_pylist()]
    assert table.column("item").to_pylist() == [
        f"I{i:03d}" for i in table.column("item_idx").to_pylist()
    ]
    return lists


def test_recommend_biased_mf_lists_the_true_top_k(
    mf_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "top5"
    assert cli("recommend", mf_run, "--k", "5", "--out", out, "--actors", "2") == 0
    table = written(out)
    lists = check_lists(table, tiny_data, 5, users=24)
    train = training_items(tiny_data)
    scores = by_pair(table, "score")
    for u, items in lists.items():
        candidates = np.array(sorted(set(range(N_ITEMS)) - train[u]))
        expected = biased_mf_by_hand(mf_run, np.full(len(candidates), u), candidates)
        # the model's own score, unclipped, and no candidate left out scores higher
        np.testing.assert_allclose(
            [scores[(u, i)] for i in items], expected[np.searchsorted(candidates, items)], rtol=1e-5
        )
        assert set(items) == set(candidates[np.argsort(-expected, kind="stable")[:5]])

    few = tmp_path / "first-three"
    assert cli("recommend", mf_run, "--k", "3", "--users", "3", "--out", few) == 0
    check_lists(written(few), tiny_data, 3, users=3)


def test_recommend_sifn_scores_test_pairs_as_evaluation(
    sifn_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    """A candidate gets the documents of a held-out pair: with every candidate listed, the
    clipped scores of the test pairs give the run's test MSE."""
    out = tmp_path / "sifn-all"
    assert cli("recommend", sifn_run, "--k", str(CANDIDATES), "--out", out) == 0
    check_lists(written(out), tiny_data, CANDIDATES, users=24)
    scores = by_pair(written(out), "score")
    test = by_pair(pq.read_table(tiny_data / "pairs" / "test.parquet"), "rating")
    prediction = np.clip([scores[pair] for pair in test], 1, 5)
    assert mse(prediction, np.array(list(test.values()))) == pytest.approx(
        results(sifn_run)["test"]["mse"], rel=1e-5
    )


def test_recommend_bertrs_ranks_by_logit_as_evaluation(
    bertrs_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    """BERT-RS scores a candidate with the evaluation pair text: the lists' scores of each
    ranking/test row's positive and negatives give the run's test HR@K and NDCG@K."""
    out = tmp_path / "bertrs-all"
    assert cli("recommend", bertrs_run, "--k", str(CANDIDATES), "--out", out) == 0
    check_lists(written(out), tiny_data, CANDIDATES, users=24)
    scores = by_pair(written(out), "score")
    ranking = pq.read_table(tiny_data / "ranking" / "test.parquet").to_pylist()
    candidate_scores, labels, groups = [], [], []
    for g, row in enumerate(ranking):
        for j, item in enumerate([row["item_idx"], *row["negatives"]]):
            candidate_scores.append(scores[(row["user_idx"], item)])
            labels.append(1.0 if j == 0 else 0.0)
            groups.append(g)
    ks = (1, 3, 5, 10)
    hits, ndcg, n = ranking_sums(
        torch.tensor(candidate_scores, dtype=torch.float64),
        torch.tensor(labels),
        torch.tensor(groups),
        ks,
    )
    test = results(bertrs_run)["test"]
    for j, k in enumerate(ks):
        assert float(hits[j]) / n == pytest.approx(test[f"hr@{k}"], abs=1e-9)
        assert float(ndcg[j]) / n == pytest.approx(test[f"ndcg@{k}"], rel=1e-5)
