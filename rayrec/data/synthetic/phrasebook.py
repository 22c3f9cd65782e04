"""The phrasebook: every sentence and summary a domain can produce, built once per domain, and
the estimated word pieces of its average sentence."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rayrec.data.synthetic.vocabulary import _OPINION_TEMPLATES, _STAR_SUMMARIES, ADVERBS


def _capitalize(text: str) -> str:
    return text[0].upper() + text[1:]


def _noun_forms(noun: str) -> dict[str, str]:
    """Template fields for ``noun`` with verb agreement ("the drinks were ...")."""
    plural = noun.endswith("s") and not noun.endswith("ss") and noun != "series"
    return {
        "noun": noun,
        "is": "are" if plural else "is",
        "was": "were" if plural else "was",
        "seems": "seem" if plural else "seems",
    }


@dataclass(frozen=True)
class _Phrasebook:
    """Every sentence and summary a domain can produce, built once per domain, so that text
    assembly is integer arithmetic in numpy plus one ``str.join`` per review.

    Opinion sentence id: ``((template * n_nouns + noun) * n_ops + op) * 2 + exclaim`` where
    ``op = adverb * n_words + word``; neutral sentences follow at ``neutral_base``.
    """

    sentences: np.ndarray  # object array of str
    summaries: np.ndarray
    n_nouns: int
    n_words: int
    neutral_base: int
    star_base: int

    @classmethod
    def build(
        cls, nouns: Sequence[str], neutral: Sequence[str], words: Sequence[str]
    ) -> _Phrasebook:
        forms = [_noun_forms(noun) for noun in nouns]
        ops = [adverb + word for adverb in ADVERBS for word in words]
        capital_ops = [_capitalize(op) for op in ops]
        sentences: list[str] = []
        for template in _OPINION_TEMPLATES:
            head, tail = template.split("{op}")
            for form in forms:
                pre, post = head.format(**form), tail.format(**form)
                if pre:
                    pre, opening = _capitalize(pre), ops
                else:
                    opening = capital_ops
                for op in opening:
                    sentence = pre + op + post
                    sentences += (sentence + ".", sentence + "!")
        neutral_base = len(sentences)
        for text in neutral:
            for form in forms:
                sentence = _capitalize(text.format(**form))
                sentences += (sentence + ".", sentence + "!")
        summaries = [op + noun for op in capital_ops for noun in ["", *(" " + n for n in nouns)]]
        star_base = len(summaries)
        summaries += _STAR_SUMMARIES
        return cls(
            sentences=np.array(sentences, dtype=object),
            summaries=np.array(summaries, dtype=object),
            n_nouns=len(nouns),
            n_words=len(words),
            neutral_base=neutral_base,
            star_base=star_base,
        )


#: Word pieces per word-or-punctuation unit of an average sentence: chosen once so that the
#: realistic corpus' mean word pieces, measured with MiniLM's tokenizer, land within 5% of
#: the presets' means (the generator itself needs no tokenizer; a test checks the result).
_PIECES_PER_UNIT = 0.95
_UNIT = re.compile(r"\w+|[^\w\s]")


def _pieces_per_sentence(book: _Phrasebook, samples: int = 2000) -> float:
    """Estimated word pieces of an average sentence: opinion sentences (two thirds of them,
    the users' mean opinion rate) and neutral ones, a fixed stride of each."""

    def mean_units(sentences: np.ndarray) -> float:
        step = max(1, len(sentences) // samples)
        return float(np.mean([len(_UNIT.findall(x)) for x in sentences[::step].tolist()]))

    opinion = mean_units(book.sentences[: book.neutral_base])
    neutral = mean_units(book.sentences[book.neutral_base :])
    return _PIECES_PER_UNIT * (2 / 3 * opinion + 1 / 3 * neutral)
