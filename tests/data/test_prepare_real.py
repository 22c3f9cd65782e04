"""The real Amazon 2014 Musical Instruments 5-core file through ``prepare``: counts, split,
determinism and leakage."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest

from rayrec.data.prepared import SPLITS, PreparedDataset
from tests.data.conftest import MI_SOURCE, prepare_quietly


def test_counts_match_the_published_dataset(musical_instruments: PreparedDataset) -> None:
    counts = musical_instruments.manifest["counts"]
    assert (counts["reviews"], counts["users"], counts["items"]) == (10_261, 1_429, 900)
    assert counts["train"] + counts["val"] + counts["test"] == 10_261
    assert abs(counts["train"] - 0.8 * 10_261) <= 1 and abs(counts["test"] - 0.1 * 10_261) <= 1
    assert sum(musical_instruments.manifest["dropped"].values()) == 0
    for split in SPLITS:
        assert musical_instruments.pairs(split).num_rows == counts[split]


def test_manifest_records_what_was_prepared(musical_instruments: PreparedDataset) -> None:
    manifest = musical_instruments.manifest
    (source,) = manifest["sources"]
    assert source["sha256"] == (
        "2590e8df07ba4991e17960f76e75d58d45af8c70e4f9d6ff0972cd1681c18dbc"
    )  # SOURCE.md of the dataset
    assert source["records"] == 10_261 and source["format"] == "amazon2014"
    assert manifest["kcore"] == 5 and manifest["seed"] == 0 and manifest["max_len"] == 64
    assert manifest["tokenizer"]["vocab_size"] == 30_522
    assert manifest["schema_version"] == 1


def test_every_review_is_tokenized_once(musical_instruments: PreparedDataset) -> None:
    reviews = musical_instruments.table("reviews")
    ids = np.sort(reviews.column("review_id").to_numpy())
    assert np.array_equal(ids, np.arange(10_261))
    lengths = pc.list_value_length(reviews.column("input_ids")).to_numpy()
    assert lengths.min() >= 3 and lengths.max() == 64  # [CLS] ... [SEP], truncated to max_len
    assert set(reviews.column("split").to_pylist()) == set(SPLITS)
    store = musical_instruments.token_store()
    assert len(store) == 10_261 and store.opinion.any()


def _review_ids_by_split(prepared: PreparedDataset) -> dict[str, set[int]]:
    return {s: set(prepared.pairs(s).column("review_id").to_pylist()) for s in SPLITS}


def test_no_validation_or_test_review_enters_a_document(
    musical_instruments: PreparedDataset,
) -> None:
    held_out = set().union(*(_review_ids_by_split(musical_instruments)[s] for s in ("val", "test")))
    for split in SPLITS:
        pairs = musical_instruments.pairs(split)
        for column in ("user_review_ids", "item_review_ids"):
            docs = pc.list_flatten(pairs.column(column)).to_numpy()
            assert held_out.isdisjoint(docs[docs >= 0].tolist())
        own = pairs.column("review_id").to_numpy()
        user_docs = np.stack(pairs.column("user_review_ids").to_numpy(zero_copy_only=False))
        assert not (user_docs == own[:, None]).any()  # never the pair's own review


def test_documents_belong_to_their_user_and_item(musical_instruments: PreparedDataset) -> None:
    reviews = musical_instruments.table("reviews", columns=["review_id", "user_idx", "item_idx"])
    order = np.argsort(reviews.column("review_id").to_numpy())
    author = reviews.column("user_idx").to_numpy()[order]
    subject = reviews.column("item_idx").to_numpy()[order]
    pairs = musical_instruments.pairs("test")
    user_docs = np.stack(pairs.column("user_review_ids").to_numpy(zero_copy_only=False))
    item_docs = np.stack(pairs.column("item_review_ids").to_numpy(zero_copy_only=False))
    users, items = pairs.column("user_idx").to_numpy(), pairs.column("item_idx").to_numpy()
    rows, slots = np.nonzero(user_docs >= 0)
    assert np.array_equal(author[user_docs[rows, slots]], users[rows])
    rows, slots = np.nonzero(item_docs >= 0)
    assert np.array_equal(subject[item_docs[rows, slots]], items[rows])
    assert (user_docs >= 0).sum(axis=1).max() == 10  # up to m = 10 reviews


def test_ranking_negatives_are_unseen_items(musical_instruments: PreparedDataset) -> None:
    seen = set()
    for split in SPLITS:
        pairs = musical_instruments.pairs(split)
        users, items = pairs.column("user_idx").to_pylist(), pairs.column("item_idx").to_pylist()
        seen |= set(zip(users, items, strict=True))
    test = musical_instruments.table("ranking", "test.parquet").to_pylist()
    assert len(test) == len({row["user_idx"] for row in test})  # one held-out positive per user
    for row in test:
        assert len(set(row["negatives"])) == 99
        assert not any((row["user_idx"], item) in seen for item in row["negatives"])
    train = musical_instruments.table("ranking", "train.parquet")
    assert pc.sum(train.column("label")).as_py() == musical_instruments.manifest["counts"]["train"]


@pytest.fixture(scope="module")
def reprepared(musical_instruments: PreparedDataset, tmp_path_factory):
    """The same file prepared again with seed 0 and with seed 1."""
    root = tmp_path_factory.mktemp("mi-again")
    return {
        seed: prepare_quietly(sources=[MI_SOURCE], out=str(root / f"seed{seed}"), seed=seed)
        for seed in (0, 1)
    }


def test_same_seed_same_split_other_seed_another(
    musical_instruments: PreparedDataset, reprepared: dict[int, PreparedDataset]
) -> None:
    first = _review_ids_by_split(musical_instruments)
    assert _review_ids_by_split(reprepared[0]) == first
    for split in SPLITS:
        assert musical_instruments.pairs(split).equals(reprepared[0].pairs(split))
    other = _review_ids_by_split(reprepared[1])
    assert other["test"] != first["test"]
    assert {k: len(v) for k, v in other.items()} == {k: len(v) for k, v in first.items()}


def test_tokens_are_deterministic(
    musical_instruments: PreparedDataset, reprepared: dict[int, PreparedDataset]
) -> None:
    a, b = musical_instruments.token_store(), reprepared[0].token_store()
    assert np.array_equal(a.offsets, b.offsets) and np.array_equal(a.ids, b.ids)
    assert np.array_equal(a.opinion, b.opinion)
