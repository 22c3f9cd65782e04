"""Opinion-token masks: Hu-Liu words marked on their word pieces, other words not."""

from __future__ import annotations

import numpy as np
import pytest

from rayrec.data.lexicon import opinion_spans, opinion_words
from rayrec.data.prepared import PreparedDataset
from rayrec.data.tokenize import ReviewTokenizer


@pytest.fixture(scope="module")
def tokenizer() -> ReviewTokenizer:
    return ReviewTokenizer("minilm", max_len=64)


def _marked(tokenizer: ReviewTokenizer, text: str) -> dict[str, bool]:
    (ids,), (mask,) = tokenizer.encode([text])
    pieces = tokenizer.tokenizer.convert_ids_to_tokens(ids.tolist())
    return dict(zip(pieces, mask.tolist(), strict=True))


def test_great_and_terrible_are_marked_the_is_not(tokenizer: ReviewTokenizer) -> None:
    marked = _marked(tokenizer, "The strings are GREAT, the tuner is terrible!")
    assert marked["great"] and marked["terrible"]
    assert not marked["the"] and not marked["strings"] and not marked[","]
    assert not marked["[CLS]"] and not marked["[SEP]"]


def test_every_piece_of_a_split_opinion_word_is_marked(tokenizer: ReviewTokenizer) -> None:
    (ids,), (mask,) = tokenizer.encode(["it was unbelievably good"])
    pieces = tokenizer.tokenizer.convert_ids_to_tokens(ids.tolist())
    word = [i for i, p in enumerate(pieces) if p in ("un", "##bel", "##ie", "##va", "##bly")]
    assert len(word) > 1 and mask[word].all()  # "unbelievably" is a negative-lexicon word
    assert mask[pieces.index("good")] and not mask[pieces.index("was")]


def test_matches_are_whole_words_only() -> None:
    words = opinion_words()
    assert "great" in words and "the" not in words
    assert opinion_spans("greatest greatness great", frozenset({"great"})) == [(19, 24)]
    assert opinion_spans("a well-known brand", words) == [(2, 12)]


def test_prepared_store_marks_great_and_never_the(musical_instruments: PreparedDataset) -> None:
    store = musical_instruments.token_store()
    vocab = ReviewTokenizer("minilm", max_len=8).tokenizer.get_vocab()
    great, the = store.ids == vocab["great"], store.ids == vocab["the"]
    assert great.sum() > 1000 and store.opinion[great].mean() > 0.99  # "great" as a word
    assert the.sum() > 1000 and not store.opinion[the].any()
    assert 0.01 < store.opinion.mean() < 0.2
    ids, mask, opinion = store.gather(np.array([[0, -1], [1, 2]]), max_len=16)
    assert ids.shape == mask.shape == opinion.shape == (2, 2, 16)
    assert not mask[0, 1].any() and (ids[0, 1] == 0).all() and mask[1].any(axis=-1).all()
