"""BERT-RS's training candidates on the tiny prepared dataset: negatives redrawn every epoch
among the items the user never rated in any split, pair texts built alike for both labels,
and ranking on the logit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from tiny_prepared import CLS, PAD, SEP, M

from rayrec.data.prepared import PreparedDataset
from rayrec.eval.metrics import Evaluation
from rayrec.models.base import DataInfo
from rayrec.models.bertrs import BertRS, BertRSConfig
from rayrec.models.registry import get_model_spec
from rayrec.train.collate import Collator, TokenInfo
from rayrec.train.datasets import load_train_table
from rayrec.train.reviews import ReviewIndex, load_review_index

SEED = 3


def _rated(data: Path) -> set[tuple[int, int]]:
    """Every (user, item) with a target-domain review, whatever its split."""
    reviews = pq.read_table(data / "reviews", columns=["user_idx", "item_idx"]).to_pylist()
    return {(r["user_idx"], r["item_idx"]) for r in reviews if r["item_idx"] >= 0}


def test_negatives_are_redrawn_every_epoch_never_a_rated_item(tiny_prepared: Path) -> None:
    stored = pq.read_table(tiny_prepared / "ranking" / "train.parquet")
    labels = stored.column("label").to_numpy()
    users = stored.column("user_idx").to_numpy()
    items = stored.column("item_idx").to_numpy()
    rated = _rated(tiny_prepared)
    held_out = {
        (r["user_idx"], r["item_idx"])
        for split in ("val", "test")
        for r in pq.read_table(tiny_prepared / "ranking" / f"{split}.parquet").to_pylist()
    }
    assert held_out and held_out <= rated  # val / test items count as rated
    table = load_train_table(str(tiny_prepared), "ranking", 20)
    negative = labels == 0
    drawn = []
    for epoch in range(4):
        rows = table.epoch_rows(epoch, SEED)
        assert rows.schema == stored.schema
        # the positives and who gets a negative (the prepared 1:1 ratio) are the table's
        assert np.array_equal(rows.column("label").to_numpy(), labels)
        assert np.array_equal(rows.column("user_idx").to_numpy(), users)
        epoch_items = rows.column("item_idx").to_numpy()
        assert np.array_equal(epoch_items[~negative], items[~negative])
        pairs = set(zip(users[negative].tolist(), epoch_items[negative].tolist(), strict=True))
        assert not pairs & rated
        drawn.append(epoch_items[negative])
    for a, b in zip(drawn, drawn[1:], strict=False):
        assert (a != b).mean() > 0.6  # 10 unrated items per user: 0.9 expected
    assert np.array_equal(
        table.epoch_rows(2, SEED).column("item_idx").to_numpy()[negative], drawn[2]
    )


def _body(index: ReviewIndex, review: int) -> list[int]:
    """A review's word pieces without its [CLS] and [SEP] (as in the pair text)."""
    ids = index.tokens.ids[index.tokens.offsets[review] : index.tokens.offsets[review + 1]]
    return ids[1:-1].tolist()


def _text(index: ReviewIndex, reviews: np.ndarray) -> list[int]:
    """The text of the top M of ``reviews`` (most recent first)."""
    return sum((_body(index, r) for r in reviews[:M]), [])


def _left_out(index: ReviewIndex, reviews: np.ndarray, text: list[int]) -> int | None:
    """The first position k in ``reviews`` such that ``text`` is the text of ``reviews``
    without review k; None if there is none."""
    for k in range(len(reviews)):
        if _text(index, np.delete(reviews, k)) == text:
            return k
    return None


def test_training_texts_are_built_alike_for_both_labels(tiny_prepared: Path) -> None:
    """Every user has 4 training reviews (= M): leaving the own review out of positives only
    made "the user text holds all 4 reviews" (a longer text) a perfect sign of a negative.
    Now each side of every training candidate leaves out exactly one review: the own review
    of a positive, one drawn uniformly for a negative."""
    dataset = PreparedDataset(str(tiny_prepared))
    index = load_review_index(dataset.uri)
    tokens = TokenInfo.from_manifest(dataset.manifest, pair_max_len=1024)  # no cut
    collate = Collator(get_model_spec("bertrs"), index, tokens, train=True, seed=SEED)
    table = load_train_table(dataset.uri, "ranking", 20)
    counts = {"user": [], "item": []}  # per label: reviews missing from the side's top M
    lengths: dict[float, list[int]] = {0.0: [], 1.0: []}
    drawn_positions = set()
    for epoch in range(3):
        rows = table.epoch_rows(epoch, SEED)
        batch = collate(rows)
        for b, row in enumerate(rows.to_pylist()):
            u, i, label = row["user_idx"], row["item_idx"], row["label"]
            ids = batch["pair_input_ids"][b][batch["pair_attention_mask"][b]].tolist()
            sep = ids.index(SEP)
            texts = {"user": ids[1:sep], "item": ids[sep + 1 : -1]}
            lengths[label].append(len(texts["user"]))
            for side, reviews, other, key in (
                ("user", index.user_train.row(u), index.item_idx, i),
                ("item", index.item_train.row(i), index.user_idx, u),
            ):
                if not len(reviews):  # an item without training reviews: nothing to leave out
                    assert texts[side] == []
                    continue
                k = _left_out(index, reviews, texts[side])
                assert k is not None, (side, row)  # exactly one review left out
                own = np.flatnonzero(other[reviews] == key)
                if label == 1:  # the pair's own review
                    assert texts[side] == _text(index, np.delete(reviews, own)), (side, row)
                else:
                    assert not len(own)
                n_shown = min(M, len(reviews))
                counts[side].append((label, n_shown - len(np.delete(reviews, k)[:M])))
                if side == "user" and label == 0:
                    drawn_positions.add(k)
    # all users have at most M training reviews: each text misses one, whatever the label
    assert {missing for _, missing in counts["user"]} == {1}
    short_items = [(label, missing) for label, missing in counts["item"] if missing]
    assert {label for label, _ in short_items} == {0.0, 1.0}
    # the text length does not tell the label (before: negatives' 4/3 of positives')
    mean = {label: np.mean(values) for label, values in lengths.items()}
    assert abs(mean[1.0] / mean[0.0] - 1) < 0.1, mean
    assert drawn_positions == set(range(4))  # a negative leaves out any of the 4 reviews


def test_evaluation_texts_leave_nothing_out(tiny_prepared: Path) -> None:
    """All candidates of a held-out row share the user's full text (top M of all training
    reviews), and every item text is the item's top M."""
    dataset = PreparedDataset(str(tiny_prepared))
    index = load_review_index(dataset.uri)
    tokens = TokenInfo.from_manifest(dataset.manifest, pair_max_len=1024)
    collate = Collator(get_model_spec("bertrs"), index, tokens, train=False, seed=SEED)
    rows = dataset.table("ranking", "test.parquet").slice(0, 4)
    batch = collate(rows)
    for b in range(len(batch["label"])):
        u, i = int(batch["user_idx"][b]), int(batch["item_idx"][b])
        ids = batch["pair_input_ids"][b][batch["pair_attention_mask"][b]].tolist()
        sep = ids.index(SEP)
        assert ids[1:sep] == _text(index, index.user_train.row(u))
        assert ids[sep + 1 : -1] == _text(index, index.item_train.row(i))


def test_ranking_uses_the_logit_not_a_saturated_sigmoid() -> None:
    """Logits 30 and 20 both have sigmoid 1.0 in float32; the higher logit ranks first."""
    info = DataInfo(2, 2, 1, 30522, PAD, 3.5, 16, 2)
    torch.manual_seed(0)
    model = BertRS(BertRSConfig(backbone="tiny"), info).eval()
    with torch.no_grad():
        for param in (model.predict_ids.weight, model.predict_ids.bias):
            param.zero_()
        model.predict_ids.weight[0, 0] = 1.0  # the logit is the first GMF feature u_g[0] * i_g[0]
        model.branches.user_gmf.weight.zero_()
        model.branches.item_gmf.weight.zero_()
        model.branches.user_gmf.weight[0, 0] = 1.0
        model.branches.item_gmf.weight[:, 0] = torch.tensor([30.0, 20.0])
    text = torch.tensor([[CLS, 2000, SEP, 2001, SEP]] * 2)
    batch = {
        "user_idx": torch.tensor([0, 0]),
        "item_idx": torch.tensor([0, 1]),
        "pair_input_ids": text,
        "pair_attention_mask": torch.ones_like(text, dtype=torch.bool),
        "pair_token_type_ids": torch.tensor([[0, 0, 0, 1, 1]] * 2),
        "group": torch.tensor([0, 0]),
    }
    with torch.no_grad():
        out = model(batch)
    assert torch.sigmoid(torch.tensor([30.0, 20.0])).tolist() == [1.0, 1.0]  # a tie
    for label, hit in (([1.0, 0.0], 1.0), ([0.0, 1.0], 0.0)):
        evaluation = Evaluation("ranking", ks=(1,))
        evaluation.update(batch | {"label": torch.tensor(label)}, out)
        assert evaluation.result()["hr@1"] == hit, label
    assert torch.allclose(out["prediction"], torch.tensor([30.0, 20.0]))
