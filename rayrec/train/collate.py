"""The collate step: rows of a prepared dataset -> the batch fields of :mod:`rayrec.models.base`.

Interaction tables carry review ids only; tokens are gathered here from the worker's
:class:`~rayrec.train.reviews.ReviewIndex`. Three kinds of rows, by the model's task:

* ``rating``: ``pairs/{split}.parquet`` rows (user_idx, item_idx, rating, review_id,
  user_review_ids, item_review_ids) -> user / item documents ``[B, M, L]`` with review masks,
  sentiments and the other party of each review; ``target_*`` (the pair's own review) only
  in training batches and only for models that list it (SAFMR's target network).
* ``pretrain``: ``reviews/`` rows of split "pretrain" (review_id, user_idx, domain_idx, rating)
  -> ``input_ids [B, L]`` with 50% of the opinion word pieces masked by
  :func:`~rayrec.models.ubert.mask_opinion_tokens`, from a generator seeded by
  ``(seed, step)``: the same step masks the same tokens on every run and every resume.
* ``ranking``: ``ranking/train.parquet`` rows (user_idx, item_idx, label), or
  ``ranking/{val,test}.parquet`` rows (user_idx, item_idx, negatives) which are expanded to one
  candidate per item, the held-out positive first, with ``group [B]`` naming the row each
  candidate came from. The pair text is ``[CLS] user text [SEP] item text [SEP]``: the user's
  and the item's most recent training reviews (at most M each, without their own [CLS] /
  [SEP]), never a review of this user about this item, cut longest-first to ``pair_max_len``;
  in training rows each side leaves out one review whatever the label
  (:meth:`Collator._pair_text`).

Only the fields the model's :class:`~rayrec.models.base.ModelSpec` lists are built. Every review
id placed in a document is checked to be a training review (a validation or test review in a
document would leak its rating). Fields are padded to fixed ``M`` and ``L`` (documents) or to
the longest candidate of the batch (pair text).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from rayrec.models.base import Batch, ModelSpec
from rayrec.models.ubert import IGNORE_INDEX, mask_opinion_tokens
from rayrec.train.reviews import ReviewIndex

DOCUMENT_SIDES = {"user": "item", "item": "user"}  # side -> the other party of its reviews


@dataclass(frozen=True)
class TokenInfo:
    """Tokenizer ids and sizes the collate step needs (from the manifest and the config)."""

    max_len: int  # L: tokens per review
    reviews_per_doc: int  # M: review slots per user / item document
    pair_max_len: int  # BERT-RS pair text length
    vocab_size: int
    pad_token_id: int
    cls_token_id: int
    sep_token_id: int
    mask_token_id: int

    @classmethod
    def from_manifest(
        cls,
        manifest: dict,
        *,
        max_len: int | None = None,
        reviews_per_doc: int | None = None,
        pair_max_len: int | None = None,
    ) -> TokenInfo:
        """Sizes from the manifest unless given (``max_len`` cannot exceed the stored one)."""
        tok = manifest["tokenizer"]
        stored = int(manifest["max_len"])
        m = reviews_per_doc or max(manifest["reviews_per_user"], manifest["reviews_per_item"])
        return cls(
            max_len=min(max_len or stored, stored),
            reviews_per_doc=int(m),
            pair_max_len=int(pair_max_len or stored),
            vocab_size=int(tok["vocab_size"]),
            pad_token_id=int(tok["pad_token_id"]),
            cls_token_id=int(tok["cls_token_id"]),
            sep_token_id=int(tok["sep_token_id"]),
            mask_token_id=int(tok["mask_token_id"]),
        )


def pad_lists(column: pa.ChunkedArray | pa.Array, width: int) -> np.ndarray:
    """A list<int> column as ``[B, width]`` int64, cut to ``width``, padded with -1."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    lengths = pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False)
    values = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(np.int64)
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    positions = np.arange(width)
    keep = positions[None, :] < np.minimum(lengths, width)[:, None]
    out = np.full((len(lengths), width), -1, dtype=np.int64)
    out[keep] = values[(starts[:, None] + positions[None, :])[keep]]
    return out


def step_generator(seed: int, step: int) -> torch.Generator:
    """A torch generator seeded by ``(seed, step)`` only."""
    state = np.random.SeedSequence([seed, step]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class Collator:
    """Builds a model batch from a pyarrow table of rows (see the module docstring).

    ``train=False`` builds evaluation batches: no train-only fields (``target_*``).
    """

    def __init__(
        self,
        spec: ModelSpec,
        reviews: ReviewIndex,
        tokens: TokenInfo,
        *,
        train: bool,
        seed: int = 0,
    ) -> None:
        train_only = spec.extra.get("train_only_fields", frozenset())
        self.fields = spec.batch_fields if train else spec.batch_fields - train_only
        self.task = spec.task
        self.reviews = reviews
        self.tokens = tokens
        self.seed = seed
        specials = (tokens.pad_token_id, tokens.cls_token_id, tokens.sep_token_id)
        self.special_ids = frozenset(specials + (tokens.mask_token_id,))

    def __call__(self, rows: pa.Table, step: int = 0) -> Batch:
        """The batch of ``rows``; ``step`` seeds the pretraining masks."""
        if self.task == "rating":
            return self._rating(rows)
        if self.task == "pretrain":
            return self._pretrain(rows, step)
        if self.task == "ranking":
            return self._ranking(rows)
        raise ValueError(f"no collate step for task {self.task!r}")

    def _ints(self, rows: pa.Table, name: str) -> torch.Tensor:
        return torch.from_numpy(rows.column(name).to_numpy().astype(np.int64))

    def _floats(self, rows: pa.Table, name: str) -> torch.Tensor:
        return torch.from_numpy(rows.column(name).to_numpy().astype(np.float32))

    def _keep(self, batch: dict[str, torch.Tensor]) -> Batch:
        return {name: value for name, value in batch.items() if name in self.fields}

    def _rating(self, rows: pa.Table) -> Batch:
        t, idx = self.tokens, self.reviews
        batch: dict[str, torch.Tensor] = {
            "user_idx": self._ints(rows, "user_idx"),
            "item_idx": self._ints(rows, "item_idx"),
            "rating": self._floats(rows, "rating"),
        }
        for side, other in DOCUMENT_SIDES.items():
            if not any(name.startswith(f"{side}_") for name in self.fields - batch.keys()):
                continue
            ids = pad_lists(rows.column(f"{side}_review_ids"), t.reviews_per_doc)
            idx.check_train_only(ids, f"{side}_review_ids")
            present = ids >= 0
            safe = np.where(present, ids, 0)
            input_ids, attention, _ = idx.tokens.gather(ids, t.max_len, t.pad_token_id)
            other_idx = idx.item_idx if other == "item" else idx.user_idx
            batch[f"{side}_input_ids"] = torch.from_numpy(input_ids)
            batch[f"{side}_attention_mask"] = torch.from_numpy(attention)
            batch[f"{side}_review_mask"] = torch.from_numpy(present)
            batch[f"{side}_review_ids"] = torch.from_numpy(ids)
            batch[f"{side}_review_sentiment"] = torch.from_numpy(
                np.where(present, idx.sentiment[safe], IGNORE_INDEX)
            )
            batch[f"{side}_review_{other}_idx"] = torch.from_numpy(
                np.where(present, other_idx[safe], 0)
            )
        if "target_input_ids" in self.fields:
            own = rows.column("review_id").to_numpy().astype(np.int64)
            input_ids, attention, _ = idx.tokens.gather(own, t.max_len, t.pad_token_id)
            batch["target_input_ids"] = torch.from_numpy(input_ids)
            batch["target_attention_mask"] = torch.from_numpy(attention)
        return self._keep(batch)

    def _pretrain(self, rows: pa.Table, step: int) -> Batch:
        t = self.tokens
        review_ids = rows.column("review_id").to_numpy().astype(np.int64)
        input_ids, attention, opinion = self.reviews.tokens.gather(
            review_ids, t.max_len, t.pad_token_id
        )
        batch: dict[str, torch.Tensor] = {
            "user_idx": self._ints(rows, "user_idx"),
            "domain_idx": self._ints(rows, "domain_idx"),
            "rating": self._floats(rows, "rating"),
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(attention),
            "opinion_mask": torch.from_numpy(opinion),
        }
        if "mlm_labels" in self.fields:
            batch["input_ids"], batch["mlm_labels"] = mask_opinion_tokens(
                batch["input_ids"],
                batch["opinion_mask"],
                batch["attention_mask"],
                mask_token_id=t.mask_token_id,
                vocab_size=t.vocab_size,
                special_ids=self.special_ids,
                generator=step_generator(self.seed, step),
            )
        return self._keep(batch)

    def _ranking(self, rows: pa.Table) -> Batch:
        users = rows.column("user_idx").to_numpy().astype(np.int64)
        items = rows.column("item_idx").to_numpy().astype(np.int64)
        if "negatives" in rows.column_names:  # evaluation: positive first, then negatives
            negatives = rows.column("negatives").to_pylist()
            groups = [np.full(1 + len(n), g, dtype=np.int64) for g, n in enumerate(negatives)]
            candidates = [
                np.array([i, *n], dtype=np.int64) for i, n in zip(items, negatives, strict=True)
            ]
            labels = [np.eye(1, len(c), dtype=np.float32)[0] for c in candidates]
            group = np.concatenate(groups)
            users, items = users[group], np.concatenate(candidates)
            label = np.concatenate(labels)
        else:
            group = np.arange(len(users), dtype=np.int64)
            label = rows.column("label").to_numpy().astype(np.float32)
        batch: dict[str, torch.Tensor] = {
            "user_idx": torch.from_numpy(users),
            "item_idx": torch.from_numpy(items),
            "label": torch.from_numpy(label),
        }
        if "pair_input_ids" in self.fields:
            training = "negatives" not in rows.column_names
            batch.update(self._pair_text(users, items, leave_one_out=training))
        batch = self._keep(batch)
        batch["group"] = torch.from_numpy(group)
        return batch

    def _review_text(self, review_ids: np.ndarray) -> np.ndarray:
        """Word pieces of reviews, concatenated, without each review's [CLS] and [SEP]."""
        store, t = self.reviews.tokens, self.tokens
        pieces = []
        for r in review_ids:
            ids = store.row(r)
            if len(ids) and ids[0] == t.cls_token_id:
                ids = ids[1:]
            if len(ids) and ids[-1] == t.sep_token_id:
                ids = ids[:-1]
            pieces.append(ids)
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int32)

    @staticmethod
    def _leave_out(reviews: np.ndarray, own: np.ndarray, draw: int | None) -> np.ndarray:
        """``reviews`` without the pair's own review (``own`` marks it); where there is none
        and ``draw`` is given, without the review at position ``draw % len(reviews)``."""
        if own.any():
            return reviews[~own]
        if draw is None or not len(reviews):
            return reviews
        return np.delete(reviews, draw % len(reviews))

    def _pair_documents(
        self, user: int, item: int, leave_one_out: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """The review ids of a candidate's user text and item text (see :meth:`_pair_text`),
        at most M each, most recent first."""
        idx, m = self.reviews, self.tokens.reviews_per_doc
        draws: list[int | None] = [None, None]
        if leave_one_out:  # a function of the candidate: the same on every run and rank
            draws = np.random.default_rng([self.seed, user, item]).integers(0, 1 << 62, 2).tolist()
        user_reviews, item_reviews = idx.user_train.row(user), idx.item_train.row(item)
        user_reviews = self._leave_out(user_reviews, idx.item_idx[user_reviews] == item, draws[0])
        item_reviews = self._leave_out(item_reviews, idx.user_idx[item_reviews] == user, draws[1])
        return user_reviews[:m], item_reviews[:m]

    def _pair_text(
        self, users: np.ndarray, items: np.ndarray, leave_one_out: bool
    ) -> dict[str, torch.Tensor]:
        """``[CLS] user text [SEP] item text [SEP]`` per candidate (longest-first cut).

        The user text is the user's most recent training reviews (at most M), the item text
        the item's, never the pair's own review. ``leave_one_out`` (rows of
        ``ranking/train``): each side leaves out exactly one of its training reviews, the
        pair's own review where there is one (a positive), else one drawn uniformly (a
        negative). A user has one positive per training review, so for both labels the user
        text is "the user's training reviews but one, drawn uniformly", and the item text
        likewise: given the user (the item), its text has the same distribution for both
        labels. Leaving the own review out of positives only made "a review is missing" (a
        shorter text, with users of at most M reviews) a sign of label 1, one that never
        holds at evaluation. Evaluation candidates leave nothing out: none has a training
        review of its pair, so every candidate of a held-out row gets the user's full text.
        """
        t, idx = self.tokens, self.reviews
        budget = t.pair_max_len - 3
        sequences, segments = [], []
        for u, i in zip(users, items, strict=True):
            user_reviews, item_reviews = self._pair_documents(int(u), int(i), leave_one_out)
            idx.check_train_only(np.concatenate([user_reviews, item_reviews]), "pair text")
            user_text = self._review_text(user_reviews)
            item_text = self._review_text(item_reviews)
            n_user = min(len(user_text), max(budget - len(item_text), budget // 2))
            n_item = min(len(item_text), budget - n_user)
            sequences.append(
                np.concatenate(
                    [
                        [t.cls_token_id],
                        user_text[:n_user],
                        [t.sep_token_id],
                        item_text[:n_item],
                        [t.sep_token_id],
                    ]
                )
            )
            segments.append(n_user + 2)
        width = max(len(s) for s in sequences)
        ids = np.full((len(sequences), width), t.pad_token_id, dtype=np.int64)
        lengths = np.array([len(s) for s in sequences])
        mask = np.arange(width)[None, :] < lengths[:, None]
        ids[mask] = np.concatenate(sequences)
        token_types = (np.arange(width)[None, :] >= np.array(segments)[:, None]) & mask
        return {
            "pair_input_ids": torch.from_numpy(ids),
            "pair_attention_mask": torch.from_numpy(mask),
            "pair_token_type_ids": torch.from_numpy(token_types.astype(np.int64)),
        }
