"""The collate step against a tiny prepared dataset written in the prepared format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from tiny_prepared import CLS, MAX_LEN, PAD, SEP, M

from rayrec.data.prepared import PreparedDataset
from rayrec.models.registry import get_model_spec
from rayrec.train.collate import Collator, TokenInfo, pad_lists
from rayrec.train.reviews import ReviewIndex, load_review_index


@pytest.fixture(scope="module")
def dataset(tiny_prepared: Path) -> PreparedDataset:
    return PreparedDataset(str(tiny_prepared))


@pytest.fixture(scope="module")
def index(dataset: PreparedDataset) -> ReviewIndex:
    return load_review_index(dataset.uri)


@pytest.fixture(scope="module")
def reviews(dataset: PreparedDataset) -> dict[int, dict]:
    return {r["review_id"]: r for r in dataset.table("reviews").to_pylist()}


@pytest.fixture(scope="module")
def tokens(dataset: PreparedDataset) -> TokenInfo:
    return TokenInfo.from_manifest(dataset.manifest)


def collator(name: str, index: ReviewIndex, tokens: TokenInfo, train: bool = True) -> Collator:
    return Collator(get_model_spec(name), index, tokens, train=train, seed=7)


def test_pad_lists_cuts_and_pads() -> None:
    column = pa.array([[1, 2, 3, 4, 5], [], [7]], pa.list_(pa.int32()))
    assert pad_lists(column, 3).tolist() == [[1, 2, 3], [-1, -1, -1], [7, -1, -1]]


def test_rating_batch_fields_shapes_and_contents(
    dataset: PreparedDataset, index: ReviewIndex, tokens: TokenInfo, reviews: dict
) -> None:
    rows = dataset.pairs("train").slice(0, 10)
    batch = collator("sifn", index, tokens)(rows)
    assert set(batch) == get_model_spec("sifn").batch_fields
    assert batch["user_input_ids"].shape == (10, M, MAX_LEN)
    assert batch["user_attention_mask"].dtype == torch.bool
    assert batch["item_review_mask"].shape == (10, M)
    for b, row in enumerate(rows.to_pylist()):
        for side, other in (("user", "item"), ("item", "user")):
            ids = row[f"{side}_review_ids"]
            mask = batch[f"{side}_review_mask"][b]
            assert mask.tolist() == [k < len(ids) for k in range(M)]
            for k in range(M):
                tokens_k = batch[f"{side}_input_ids"][b, k]
                attention_k = batch[f"{side}_attention_mask"][b, k]
                if k < len(ids):
                    review = reviews[ids[k]]
                    n = len(review["input_ids"])
                    assert tokens_k[:n].tolist() == review["input_ids"]
                    assert attention_k.tolist() == [t < n for t in range(MAX_LEN)]
                    assert batch[f"{side}_review_sentiment"][b, k] == review["sentiment"]
                    assert batch[f"{side}_review_{other}_idx"][b, k] == review[f"{other}_idx"]
                else:  # empty slot: all padding
                    assert not attention_k.any() and (tokens_k == PAD).all()
                    assert batch[f"{side}_review_sentiment"][b, k] == -100
                    assert batch[f"{side}_review_{other}_idx"][b, k] == 0


def test_only_listed_fields_and_target_only_in_training(
    dataset: PreparedDataset, index: ReviewIndex, tokens: TokenInfo, reviews: dict
) -> None:
    rows = dataset.pairs("train").slice(0, 4)
    train = collator("safmr", index, tokens, train=True)(rows)
    assert set(train) == get_model_spec("safmr").batch_fields
    own = reviews[rows.column("review_id")[0].as_py()]["input_ids"]
    assert train["target_input_ids"][0, : len(own)].tolist() == own
    evaluation = collator("safmr", index, tokens, train=False)(dataset.pairs("val").slice(0, 4))
    assert "target_input_ids" not in evaluation and "target_attention_mask" not in evaluation
    assert set(collator("biased_mf", index, tokens)(rows)) == {"user_idx", "item_idx", "rating"}


def test_no_val_or_test_review_in_any_document(
    dataset: PreparedDataset, index: ReviewIndex, tokens: TokenInfo, reviews: dict
) -> None:
    for split in ("train", "val", "test"):
        rows = dataset.pairs(split)
        ids = np.concatenate(
            [pad_lists(rows.column(f"{s}_review_ids"), M) for s in ("user", "item")], axis=1
        )
        assert all(reviews[r]["split"] == "train" for r in ids[ids >= 0])
        collator("sifn", index, tokens, train=split == "train")(rows)  # the guard passes
    # a document holding a test review is refused
    rows = dataset.pairs("val").slice(0, 2)
    test_review = dataset.pairs("test").column("review_id")[0].as_py()
    leaked = rows.set_column(
        rows.schema.get_field_index("user_review_ids"),
        "user_review_ids",
        pa.array([[test_review], []], pa.list_(pa.int32())),
    )
    with pytest.raises(ValueError, match="non-training reviews"):
        collator("sifn", index, tokens, train=False)(leaked)


def _pretrain_rows(dataset: PreparedDataset) -> pa.Table:
    table = dataset.table("reviews", columns=["review_id", "user_idx", "domain_idx", "rating"])
    split = dataset.table("reviews", columns=["split"]).column("split").to_pylist()
    return table.filter(pa.array([s == "pretrain" for s in split])).slice(0, 16)


def test_pretrain_masks_opinion_tokens_deterministically(
    dataset: PreparedDataset, index: ReviewIndex, tokens: TokenInfo, reviews: dict
) -> None:
    rows = _pretrain_rows(dataset)
    collate = collator("ubert_pretrain", index, tokens)
    first, again, other = collate(rows, step=3), collate(rows, step=3), collate(rows, step=4)
    assert set(first) == get_model_spec("ubert_pretrain").batch_fields
    for name in first:
        assert torch.equal(first[name], again[name]), name
    assert not torch.equal(first["mlm_labels"], other["mlm_labels"])
    labelled = first["mlm_labels"] != -100
    assert labelled.any()
    assert (first["opinion_mask"] | ~labelled).all()  # only opinion word pieces are masked
    for b, review_id in enumerate(rows.column("review_id").to_pylist()):
        original = reviews[review_id]["input_ids"]
        positions = labelled[b].nonzero().squeeze(1).tolist()
        assert [first["mlm_labels"][b, p].item() for p in positions] == [
            original[p] for p in positions
        ]
        n_opinion = sum(reviews[review_id]["opinion_mask"])
        assert len(positions) == (max(1, round(n_opinion * 0.5)) if n_opinion else 0)


def test_bertrs_pair_text_from_training_reviews_only(
    dataset: PreparedDataset, index: ReviewIndex, tokens: TokenInfo, reviews: dict
) -> None:
    rows = dataset.table("ranking", "train.parquet").slice(0, 12)
    batch = collator("bertrs", index, tokens)(rows)
    assert set(batch) == get_model_spec("bertrs").batch_fields | {"group"}
    pairs = {(r["user_idx"], r["item_idx"]): r for r in reviews.values() if r["item_idx"] >= 0}
    for b, row in enumerate(rows.to_pylist()):
        n = int(batch["pair_attention_mask"][b].sum())
        ids = batch["pair_input_ids"][b, :n].tolist()
        assert ids[0] == CLS and ids[-1] == SEP and ids.count(SEP) == 2
        first_sep = ids.index(SEP)
        types = batch["pair_token_type_ids"][b, :n].tolist()
        assert types == [0] * (first_sep + 1) + [1] * (n - first_sep - 1)
        assert n <= tokens.pair_max_len
        own = pairs.get((row["user_idx"], row["item_idx"]))
        if own is not None:  # the pair's own review never enters its text
            body = own["input_ids"][1:-1]
            text = " ".join(map(str, ids))
            assert " ".join(map(str, body)) not in text


def test_ranking_evaluation_rows_expand_to_candidates(
    dataset: PreparedDataset, index: ReviewIndex, tokens: TokenInfo
) -> None:
    rows = dataset.table("ranking", "val.parquet").slice(0, 3)
    batch = collator("bertrs", index, tokens, train=False)(rows)
    negatives = rows.column("negatives").to_pylist()
    sizes = [1 + len(n) for n in negatives]
    assert batch["group"].tolist() == [g for g, s in enumerate(sizes) for _ in range(s)]
    start = 0
    for g, row in enumerate(rows.to_pylist()):
        items = batch["item_idx"][start : start + sizes[g]].tolist()
        assert items == [row["item_idx"], *negatives[g]]
        assert batch["label"][start : start + sizes[g]].tolist() == [1.0] + [0.0] * len(
            negatives[g]
        )
        start += sizes[g]
