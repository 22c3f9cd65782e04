"""Opinion-word masks found on word-piece ids, a whole batch at a time in numpy.

:func:`rayrec.data.lexicon.opinion_spans` finds the Hu-Liu words of one text with a regular
expression and :func:`rayrec.data.tokenize.opinion_token_mask` maps them onto word pieces
through character offsets: about 50 us of Python per review, as much as tokenizing it. This
module gets the same mask from the ids the tokenizer returns, vectorised over the batch:

* **Words.** The regular expression's word is ``[a-z0-9][a-z0-9'+*-]*``. A BERT tokenizer
  splits text on whitespace and punctuation, so such a word is a *chain* of pieces: alphanumeric
  pieces, their ``##`` continuations, and the joiner pieces ``' + * -`` glued to them with no
  character between (``well-known`` -> ``well - known``). Two alphanumeric words are never
  glued (whitespace or punctuation separates them), so only the two boundaries of a joiner
  piece need its characters' positions: they are asked of the encoding for those pieces only.
* **Lookup.** A chain is a word of the lexicon when the hash of its pieces' ids (a polynomial
  hash modulo 2**64, computed with prefix sums) is the hash of a lexicon word tokenized on its
  own (WordPiece splits a word the same way in any context). Leading joiners are not part of a
  word (``-great`` -> ``great``); a chain that is not in the lexicon is tried again without its
  trailing joiners (``great--`` -> ``great``), as :func:`opinion_spans` does.

* **Truncation.** The last word of a review cut at ``max_len`` is looked up on the text
  (:func:`rayrec.data.lexicon.opinion_word_at`): its kept pieces are marked when the whole word
  is an opinion word, as the character-span reading marks them.

Where the two readings can differ: accented letters (the tokenizer strips accents, so
``naïve`` is found here and not by the regular expression). On the 10,261 real Musical
Instruments reviews the two masks are equal (``tests/data/test_tokenize.py``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np

from rayrec.data.lexicon import opinion_word_at

JOINERS = ("'", "+", "*", "-")
_ALNUM = re.compile(r"[a-z0-9]+")
_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd, so it has an inverse modulo 2**64
_BASE_INVERSE = np.uint64(pow(int(_BASE), -1, 2**64))


def _powers(base: np.uint64, n: int) -> np.ndarray:
    """``base ** k`` modulo 2**64 for k in 0..n-1 (numpy's uint64 arithmetic wraps)."""
    powers = np.full(n, base, dtype=np.uint64)
    powers[0] = 1
    return np.cumprod(powers, dtype=np.uint64)


def sequence_hash(ids: Sequence[int]) -> int:
    """The hash of one piece sequence, as :meth:`PieceLexicon.mask` computes it for chains."""
    with np.errstate(over="ignore"):
        return int(np.sum(np.asarray(ids, dtype=np.uint64) * _powers(_BASE, len(ids))))


class PieceLexicon:
    """A lexicon compiled to a vocabulary's pieces: per-id classes and the words' hashes."""

    def __init__(self, vocab: dict[str, int], encode_word: Any, words: frozenset[str]) -> None:
        """``encode_word(word)`` returns the piece ids of one word without special tokens."""
        self.words = words
        size = max(vocab.values()) + 1
        self.continuation = np.zeros(size, dtype=bool)
        self.alnum = np.zeros(size, dtype=bool)
        self.joiner = np.zeros(size, dtype=bool)
        for piece, index in vocab.items():
            stem = piece[2:] if piece.startswith("##") else piece
            self.continuation[index] = piece.startswith("##") and len(piece) > 2
            self.alnum[index] = bool(_ALNUM.fullmatch(stem))
            self.joiner[index] = piece in JOINERS
        pieces = [encode_word(word) for word in words]
        self.word_hashes = np.unique(np.array([sequence_hash(p) for p in pieces], dtype=np.uint64))
        self.starts_word = np.zeros(size, dtype=bool)  # a lexicon word starts with this piece
        self.starts_word[[p[0] for p in pieces if p]] = True

    def mask(
        self, encodings: Sequence[Any], texts: Sequence[str], max_len: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(lengths, ids, mask)`` of a batch of ``tokenizers`` encodings of ``texts``
        (``[CLS] ... [SEP]``, truncated to ``max_len``); ids and mask flat, in batch order.

        Pieces of different encodings are never chained: every encoding starts with a special
        token (not alphanumeric, not a joiner), which breaks chains.
        """
        lengths = np.fromiter((len(e) for e in encodings), dtype=np.int64, count=len(encodings))
        ids = np.fromiter(
            chain.from_iterable(e.ids for e in encodings), dtype=np.int64, count=int(lengths.sum())
        )
        glued = self._glued(encodings, lengths, ids)
        wordish = self.alnum[ids] | self.joiner[ids]
        linked = np.zeros(len(ids), dtype=bool)
        linked[1:] = wordish[1:] & wordish[:-1] & (self.continuation[ids[1:]] | glued[1:])
        mask = self._match(ids, linked, wordish)
        ends = np.cumsum(lengths)
        for e in np.flatnonzero(lengths == max_len):
            self._mark_cut_word(encodings[e], texts[e], ends[e] - lengths[e], linked, wordish, mask)
        return lengths, ids.astype(np.int32), mask

    def _mark_cut_word(
        self,
        encoding: Any,
        text: str,
        start: int,
        linked: np.ndarray,
        wordish: np.ndarray,
        mask: np.ndarray,
    ) -> None:
        """The last word of a truncated review, looked up on the text: its kept pieces are
        marked if the whole word is an opinion word (as the character-span reading does)."""
        last = start + len(encoding) - 2  # the piece before [SEP]
        if not wordish[last]:
            return
        first = last
        while linked[first]:
            first -= 1
        while first <= last and not self.alnum[encoding.ids[first - start]]:
            first += 1  # leading joiners are not part of a word
        if first > last:
            return
        begin = encoding.token_to_chars(first - start)[0]
        end = begin + opinion_word_at(text.lower(), begin, self.words)
        for k in range(first, last + 1):
            mask[k] = encoding.token_to_chars(k - start)[0] < end

    def _glued(self, encodings: Sequence[Any], lengths: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """``glued[k]``: piece k starts where piece k - 1 ends (asked only next to joiners)."""
        glued = np.zeros(len(ids), dtype=bool)
        joiner = np.flatnonzero(self.joiner[ids])
        if not len(joiner):
            return glued
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        boundaries = np.unique(np.concatenate([joiner, joiner + 1]))
        owner = np.searchsorted(starts, boundaries, side="right") - 1
        local = boundaries - starts[owner]
        inside = (local >= 1) & (local < lengths[owner])
        for k, e, j in zip(boundaries[inside], owner[inside], local[inside], strict=True):
            here, before = encodings[e].token_to_chars(j), encodings[e].token_to_chars(j - 1)
            glued[k] = here is not None and before is not None and here[0] == before[1]
        return glued

    def _match(self, ids: np.ndarray, linked: np.ndarray, wordish: np.ndarray) -> np.ndarray:
        """Mark the pieces of the chains whose (stripped) hash is a lexicon word's."""
        n = len(ids)
        members = np.flatnonzero(wordish)  # chains are runs of members
        if not len(members):
            return np.zeros(n, dtype=bool)
        heads = np.flatnonzero(~linked[members])  # where each chain starts in members
        alnum = self.alnum[ids[members]]
        first = np.minimum.reduceat(np.where(alnum, members, n), heads)
        last_alnum = np.maximum.reduceat(np.where(alnum, members, -1), heads)
        last = members[np.append(heads[1:], len(members)) - 1]
        # chains with an alphanumeric piece that can start a lexicon word
        words = first < n
        words[words] = self.starts_word[ids[first[words]]]
        first, last_alnum, last = first[words], last_alnum[words], last[words]

        with np.errstate(over="ignore"):
            prefix = np.zeros(n + 1, dtype=np.uint64)
            np.cumsum(ids.astype(np.uint64) * _powers(_BASE, n), out=prefix[1:])
            inverse = _powers(_BASE_INVERSE, n)

            def chain_hash(begin: np.ndarray, end: np.ndarray) -> np.ndarray:
                return (prefix[end + 1] - prefix[begin]) * inverse[begin]

            whole = self._known(chain_hash(first, last))
            stripped = ~whole & self._known(chain_hash(first, last_alnum))
        end = np.where(whole, last, last_alnum)
        hit = whole | stripped
        delta = np.zeros(n + 1, dtype=np.int64)
        delta[first[hit]] += 1  # matched words never overlap: no index repeats
        delta[end[hit] + 1] -= 1
        return np.cumsum(delta[:n]) > 0

    def _known(self, hashes: np.ndarray) -> np.ndarray:
        at = np.searchsorted(self.word_hashes, hashes)
        return self.word_hashes[np.minimum(at, len(self.word_hashes) - 1)] == hashes
