"""Opinion-token masks: Hu-Liu words marked on their word pieces, other words not."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

from rayrec.data.lexicon import opinion_spans, opinion_words
from rayrec.data.prepared import PreparedDataset
from rayrec.data.review_reader import read_source
from rayrec.data.sources import Source
from rayrec.data.tokenize import ReviewTokenizer, load_tokenizer, opinion_token_mask
from tests.conftest import MUSICAL_INSTRUMENTS


@functools.cache
def hf_tokenizer() -> Any:
    """transformers' tokenizer of the same source: the reference ReviewTokenizer must equal."""
    return load_tokenizer("minilm")


@pytest.fixture(scope="module")
def tokenizer() -> ReviewTokenizer:
    return ReviewTokenizer("minilm", max_len=64)


def _marked(tokenizer: ReviewTokenizer, text: str) -> dict[str, bool]:
    (ids,), (mask,) = tokenizer.encode([text])
    pieces = hf_tokenizer().convert_ids_to_tokens(ids.tolist())
    return dict(zip(pieces, mask.tolist(), strict=True))


def test_great_and_terrible_are_marked_the_is_not(tokenizer: ReviewTokenizer) -> None:
    marked = _marked(tokenizer, "The strings are GREAT, the tuner is terrible!")
    assert marked["great"] and marked["terrible"]
    assert not marked["the"] and not marked["strings"] and not marked[","]
    assert not marked["[CLS]"] and not marked["[SEP]"]


def test_every_piece_of_a_split_opinion_word_is_marked(tokenizer: ReviewTokenizer) -> None:
    (ids,), (mask,) = tokenizer.encode(["it was unbelievably good"])
    pieces = hf_tokenizer().convert_ids_to_tokens(ids.tolist())
    word = [i for i, p in enumerate(pieces) if p in ("un", "##bel", "##ie", "##va", "##bly")]
    assert len(word) > 1 and mask[word].all()  # "unbelievably" is a negative-lexicon word
    assert mask[pieces.index("good")] and not mask[pieces.index("was")]


def test_a_long_review_is_tokenized_only_as_far_as_the_truncation_keeps() -> None:
    """The prefix encodings equal the tokenizer's on the whole texts (ids and offsets), also
    where a long text's prefix holds too few pieces and the whole text is tokenized again."""
    tokenizer = ReviewTokenizer("minilm", max_len=8)
    unknown_words = " ".join(["x" * 120] * 20)  # one [UNK] a word: 48 characters hold one piece
    texts = ["the tuner is great " * 40, unknown_words, "y" * 500, "short and great"]
    prefixes = tokenizer.word_prefixes(texts)
    assert [len(p) < len(t) for p, t in zip(prefixes, texts, strict=True)] == [1, 1, 0, 0]
    got = tokenizer.truncated_encodings(texts)
    want = tokenizer.backend.encode_batch(texts)
    assert [(e.ids, e.offsets) for e in got] == [(e.ids, e.offsets) for e in want]
    assert len(got[1]) == tokenizer.max_len  # tokenized again, whole


def _span_masks(tokenizer: ReviewTokenizer, texts: list[str]) -> list[np.ndarray]:
    """The definition: opinion words found on the text, mapped to pieces by their offsets."""
    encoded = hf_tokenizer()(
        texts, max_length=tokenizer.max_len, truncation=True, return_offsets_mapping=True
    )
    words = opinion_words()
    return [
        opinion_token_mask(offsets, opinion_spans(text, words))
        for text, offsets in zip(texts, encoded["offset_mapping"], strict=True)
    ]


@pytest.mark.parametrize("max_len", [128, 24])
def test_piece_masks_equal_the_span_definition_on_real_reviews(max_len: int) -> None:
    """Every one of the 10,261 Musical Instruments reviews gets the same ids and the same
    mask from the pipeline's id-based matcher as from the character-span definition; at
    max_len 24 most reviews are cut, so the looked-up last word is exercised thousands of
    times."""
    tables = list(read_source(Source("amazon2014", str(MUSICAL_INSTRUMENTS), "MI"), 0))
    texts = [
        row["text"]
        for table in tables
        for row in table.select(["text", "status"]).to_pylist()
        if row["status"] == "ok"
    ]
    assert len(texts) == 10_261
    tokenizer = ReviewTokenizer("minilm", max_len=max_len)
    ids, masks = tokenizer.encode(texts)
    expected = hf_tokenizer()(texts, max_length=max_len, truncation=True)["input_ids"]
    assert all(np.array_equal(a, b) for a, b in zip(ids, expected, strict=True))
    differ = [
        k for k, (a, b) in enumerate(zip(masks, _span_masks(tokenizer, texts), strict=True))
        if not np.array_equal(a, b)
    ]  # fmt: skip
    assert differ == []
    cut = sum(len(a) == max_len for a in ids)
    assert cut > (5_000 if max_len == 24 else 2_000)
    assert 0.03 < np.concatenate(masks).mean() < 0.2


def test_glued_joiners_make_one_word_spaced_ones_do_not(tokenizer: ReviewTokenizer) -> None:
    marked = _marked(tokenizer, "a well-known brand")
    assert marked["well"] and marked["-"] and marked["known"]  # "well-known" is in the lexicon
    (ids,), (mask,) = tokenizer.encode(["good - but flimsy. -great"])
    pieces = hf_tokenizer().convert_ids_to_tokens(ids.tolist())
    assert [p for p, m in zip(pieces, mask, strict=True) if m] == [
        "good",
        "fl",
        "##im",
        "##sy",
        "great",
    ]


def test_a_cut_word_is_looked_up_whole() -> None:
    """Cut after "hang" (of "hanger", not an opinion word), nothing is marked; cut inside
    "unbelievably" (an opinion word), its kept pieces are."""
    short = ReviewTokenizer("minilm", max_len=5)
    (ids,), (mask,) = short.encode(["a guitar hanger"])
    assert hf_tokenizer().convert_ids_to_tokens(ids.tolist())[-2:] == ["hang", "[SEP]"]
    assert not mask.any()
    (ids,), (mask,) = short.encode(["so unbelievably bad"])
    assert hf_tokenizer().convert_ids_to_tokens(ids.tolist())[2:4] == ["un", "##bel"]
    assert mask[2:4].all() and not mask[:2].any()


def test_matches_are_whole_words_only() -> None:
    words = opinion_words()
    assert "great" in words and "the" not in words
    assert opinion_spans("greatest greatness great", frozenset({"great"})) == [(19, 24)]
    assert opinion_spans("a well-known brand", words) == [(2, 12)]


def test_prepared_store_marks_great_and_never_the(musical_instruments: PreparedDataset) -> None:
    store = musical_instruments.token_store()
    vocab = hf_tokenizer().get_vocab()
    great, the = store.ids == vocab["great"], store.ids == vocab["the"]
    assert great.sum() > 1000 and store.opinion[great].mean() > 0.99  # "great" as a word
    assert the.sum() > 1000 and not store.opinion[the].any()
    assert 0.01 < store.opinion.mean() < 0.2
    ids, mask, opinion = store.gather(np.array([[0, -1], [1, 2]]), max_len=16)
    assert ids.shape == mask.shape == opinion.shape == (2, 2, 16)
    assert not mask[0, 1].any() and (ids[0, 1] == 0).all() and mask[1].any(axis=-1).all()
