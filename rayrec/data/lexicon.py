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


def lexicon_word(word: str, words: frozenset[str]) -> str | None:
    """``word`` if it is in ``words``, else ``word`` without trailing joiners ("great--" ->
    "great") if that is, else None: punctuation glued to a word does not hide it."""
    if word in words:
        return word
    stripped = word.rstrip("'+*-")
    return stripped if stripped in words else None


def opinion_word_at(lower_text: str, start: int, words: frozenset[str]) -> int:
    """Length of the lexicon word of the whole word starting at ``start`` of the lowercased
    text, 0 if there is none."""
    match = _WORD.match(lower_text, start)
    found = lexicon_word(match.group(), words) if match else None
    return len(found) if found else 0


def opinion_spans(text: str, words: frozenset[str]) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` of the whole words of ``text`` found in ``words``
    (:func:`lexicon_word`)."""
    spans = []
    for match in _WORD.finditer(text.lower()):
        word = lexicon_word(match.group(), words)
        if word:
            spans.append((match.start(), match.start() + len(word)))
    return spans
