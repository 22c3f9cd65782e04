"""REAL batches for the SAFMR, BERT-RS and registry tests, on top of ``conftest.py``'s data.

* :func:`with_target_review`: conftest's rating batch plus each pair's own review
  (``target_*``, SAFMR's target network), looked up by (user, item).
* :func:`ranking_batch`: BERT-RS candidates: observed pairs (label 1) and, per pair, one item
  the user never reviewed (label 0); the pair text is ``[CLS] user text [SEP] item text [SEP]``
  from the user's and the item's reviews, never the pair's own review.
* :func:`compact_vocabulary`: the same batch over the ~800 word pieces it uses, so that the
  fitting tests of word-embedding models do not step 30,522-row tables.
* :func:`one_thread`: a fixture running a test on one intra-op thread (on a loaded 2-core
  machine, two threads per process made these small models 10x slower).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import PreTrainedTokenizerFast

from rayrec.models.base import Batch, DataInfo

N_POSITIVES, PAIR_LEN, DOC_REVIEWS = 8, 64, 3


def with_target_review(
    batch: Batch, reviews: pd.DataFrame, tokenizer: PreTrainedTokenizerFast
) -> Batch:
    """``batch`` plus ``target_input_ids`` / ``target_attention_mask`` [B, L]."""
    by_pair = reviews.set_index(["user", "item"])["reviewText"]
    texts = [
        by_pair.loc[(int(u), int(i))]
        for u, i in zip(batch["user_idx"], batch["item_idx"], strict=True)
    ]
    enc = tokenizer(
        texts,
        max_length=batch["user_input_ids"].shape[-1],
        truncation=True,
        padding="max_length",
        return_tensors="pt",
    )
    return {
        **batch,
        "target_input_ids": enc["input_ids"],
        "target_attention_mask": enc["attention_mask"].bool(),
    }


def _text(reviews: pd.DataFrame, column: str, key: int, exclude: int) -> str:
    others = reviews[(reviews[column] == key) & (reviews.index != exclude)]
    return " ".join(others["reviewText"].head(DOC_REVIEWS))


def ranking_batch(reviews: pd.DataFrame, tokenizer: PreTrainedTokenizerFast) -> Batch:
    """8 observed pairs and 8 sampled negatives (one per pair's user), interleaved."""
    rng = np.random.default_rng(0)
    users, items, labels, user_texts, item_texts = [], [], [], [], []
    for row_id, pair in reviews.sample(n=N_POSITIVES, random_state=2).iterrows():
        seen = set(reviews.loc[reviews["user"] == pair["user"], "item"])
        negative = int(rng.choice([i for i in range(reviews["item"].max() + 1) if i not in seen]))
        user_text = _text(reviews, "user", pair["user"], exclude=row_id)
        for item, label in ((int(pair["item"]), 1.0), (negative, 0.0)):
            users.append(int(pair["user"]))
            items.append(item)
            labels.append(label)
            user_texts.append(user_text)
            item_texts.append(_text(reviews, "item", item, exclude=row_id))
    enc = tokenizer(
        user_texts,
        item_texts,
        max_length=PAIR_LEN,
        truncation="longest_first",
        padding="max_length",
        return_tensors="pt",
    )
    return {
        "user_idx": torch.tensor(users),
        "item_idx": torch.tensor(items),
        "label": torch.tensor(labels),
        "pair_input_ids": enc["input_ids"],
        "pair_attention_mask": enc["attention_mask"].bool(),
        "pair_token_type_ids": enc["token_type_ids"],
    }


def compact_vocabulary(batch: Batch, data_info: DataInfo) -> tuple[Batch, DataInfo]:
    """Renumber the token ids of ``batch`` to 0..V-1 over the V ids it uses (pad id included)."""
    fields = [name for name in batch if name.endswith("input_ids")]
    vocabulary = torch.cat([batch[name].flatten() for name in fields]).unique()
    renumbered = {name: torch.searchsorted(vocabulary, batch[name]) for name in fields}
    pad = int(torch.searchsorted(vocabulary, torch.tensor(data_info.pad_token_id)))
    info = dataclasses.replace(data_info, vocab_size=len(vocabulary), pad_token_id=pad)
    return {**batch, **renumbered}, info


@pytest.fixture
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
