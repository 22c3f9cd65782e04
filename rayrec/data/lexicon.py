"""The Hu and Liu (2004) opinion lexicon, vendored in ``rayrec/data/lexicon/`` (see SOURCE.md).

U-BERT's first pre-training task masks the opinion words of a review; :func:`opinion_spans`
finds them as whole words (case-insensitive) so that the tokenizer stage can mark the word
pieces that cover them.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from importlib import resources

LEXICON_FILES = ("positive-words.txt", "negative-words.txt")

# A word: starts with a letter or digit, may continue with letters, digits and the joiners
# the lexicon uses inside words ("well-known", "a+", "2-faced", "don't").
_WORD = re.compile(r"[a-z0-9][a-z0-9'+*-]*")


def _lexicon_text(name: str) -> str:
    # negative-words.txt is Latin-1, not UTF-8 (SOURCE.md)
    return resources.files("rayrec.data").joinpath("lexicon", name).read_text(encoding="latin-1")


@cache
def opinion_words() -> frozenset[str]:
    """All words of the positive and negative lists (comment lines start with ``;``)."""
    words: set[str] = set()
    for name in LEXICON_FILES:
        for line in _lexicon_text(name).splitlines():
            word = line.strip()
            if word and not word.startswith(";"):
                words.add(word.lower())
    return frozenset(words)


@cache
def lexicon_sha256() -> str:
    """Checksum of the two vendored files, recorded in every prepared manifest."""
    digest = hashlib.sha256()
    for name in LEXICON_FILES:
        digest.update(_lexicon_text(name).encode("latin-1"))
    return digest.hexdigest()


def opinion_spans(text: str, words: frozenset[str]) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` of the whole words of ``text`` found in ``words``.

    A candidate that is not in the lexicon is tried again without trailing joiners
    ("great--" -> "great"), so punctuation glued to a word does not hide it.
    """
    spans = []
    for match in _WORD.finditer(text.lower()):
        word = match.group()
        if word not in words:
            word = word.rstrip("'+*-")
            if word not in words:
                continue
        spans.append((match.start(), match.start() + len(word)))
    return spans
