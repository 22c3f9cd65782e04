"""``rayrec recommend RUN_DIR --k 10 --out URI``: each user's top-K items they have not rated.

Every item but the user's training items (``pairs/train.parquet``) is a candidate: the
validation and test items are unrated as far as the model knows, and are exactly what its
evaluation asks it to rank high. Candidates are scored by :class:`Recommender` actors in a Ray
Data actor pool, a block of users per task (``ray.data.range`` over the dense user ids), all
items of a user at once:

* rating models rank by the predicted rating, unclipped (clipping at 5 would tie the top of a
  list); a candidate pair gets the documents a held-out pair gets, its user's and its item's
  ``m`` most recent training reviews (:func:`recent_documents`, the order of
  :func:`rayrec.data.prepare.documents`; a candidate has no review of its own to leave out);
* BERT-RS ranks by its logit, the pair text built as for an evaluation candidate.

Ties are broken by the smaller item index, so a list is a function of the weights. A user with
fewer than K candidates gets them all. Output (parquet under ``--out``, local or s3://):
``user``, ``rank`` (1 = best), ``item`` (original ids), ``score``, ``user_idx``, ``item_idx``.
Text models score users x items pairs, each collated like an evaluation pair: correct, slow
on CPUs; ``--users N`` scores the first N users only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from rayrec.data.prepared import PreparedDataset, read_table
from rayrec.serve.load import Scorer, ServedRun, actor_options, id_column, pool
from rayrec.train.reviews import Csr


def recent_documents(dataset: PreparedDataset, side: str) -> Csr:
    """Per user (``side="user"``) or item: its ``m`` most recent training reviews, newest
    first, ties by the larger review id (``m``: the manifest's ``reviews_per_<side>``)."""
    table = dataset.table("reviews", columns=["review_id", f"{side}_idx", "split", "timestamp"])
    train = pc.equal(table.column("split"), "train").to_numpy(zero_copy_only=False)
    review_id = table.column("review_id").to_numpy().astype(np.int64)[train]
    owner = table.column(f"{side}_idx").to_numpy().astype(np.int64)[train]
    timestamp = table.column("timestamp").to_numpy()[train]
    order = np.lexsort((-review_id, -timestamp, owner))
    owner, review_id = owner[order], review_id[order]
    counts = np.bincount(owner, minlength=int(dataset.manifest["counts"][f"{side}s"]))
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    m = int(dataset.manifest[f"reviews_per_{side}"])
    recent = np.arange(len(owner)) - first[owner] < m
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(np.minimum(counts, m), out=offsets[1:])
    return Csr(offsets=offsets, values=review_id[recent])


def take_lists(documents: Csr, keys: np.ndarray) -> pa.ListArray:
    """Row ``keys[j]`` of ``documents`` for every j, as a list<int32> column."""
    starts = documents.offsets[keys]
    lengths = documents.offsets[keys + 1] - starts
    offsets = np.zeros(len(keys) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    positions = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    values = pa.array(documents.values[positions].astype(np.int32))
    return pa.ListArray.from_arrays(pa.array(offsets), values)


class Recommender(Scorer):
    """A Ray Data actor: a block of user ids -> their top-K lists."""

    def __init__(self, served: dict[str, Any], k: int) -> None:
        super().__init__(served)
        self.k = k
        self.users = id_column(self.dataset, "user")
        self.items = id_column(self.dataset, "item")
        pairs = self.dataset.table("pairs", "train.parquet", columns=["user_idx", "item_idx"])
        codes = pairs.column("user_idx").to_numpy().astype(np.int64) * len(self.items)
        self.rated = np.unique(codes + pairs.column("item_idx").to_numpy())  # user * n + item
        if self.spec.task == "rating":
            self.user_documents = recent_documents(self.dataset, "user")
            self.item_documents = recent_documents(self.dataset, "item")

    def candidates(self, user: int) -> np.ndarray:
        """The items ``user`` has no training pair with, ascending."""
        n = len(self.items)
        codes = user * n + np.arange(n, dtype=np.int64)
        return np.flatnonzero(~np.isin(codes, self.rated))

    def candidate_rows(self, users: np.ndarray, items: np.ndarray) -> pa.Table:
        """Candidate pairs as the collate step reads them (the rating is unknown: NaN)."""
        columns: dict[str, pa.Array] = {
            "user_idx": pa.array(users.astype(np.int32)),
            "item_idx": pa.array(items.astype(np.int32)),
        }
        if self.spec.task == "rating":
            columns["rating"] = pa.array(np.full(len(users), np.nan, dtype=np.float32))
            columns["user_review_ids"] = take_lists(self.user_documents, users)
            columns["item_review_ids"] = take_lists(self.item_documents, items)
        return pa.table(columns)

    def top_k(self, users: np.ndarray) -> pa.Table:
        """The lists of ``users``, their candidates scored together."""
        items = [self.candidates(int(u)) for u in users]
        lengths = np.array([len(i) for i in items])
        owners, flat = np.repeat(users, lengths), np.concatenate(items)
        scores = self.score(self.candidate_rows(owners, flat))
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        chosen = np.concatenate(
            [
                start + np.lexsort((flat[start : start + n], -scores[start : start + n]))[: self.k]
                for start, n in zip(starts, lengths, strict=True)
            ]
        )
        ranks = np.concatenate([np.arange(1, min(n, self.k) + 1) for n in lengths])
        return pa.table(
            {
                "user": pa.array(self.users[owners[chosen]], pa.string()),
                "rank": pa.array(ranks.astype(np.int32)),
                "item": pa.array(self.items[flat[chosen]], pa.string()),
                "score": pa.array(scores[chosen], pa.float32()),
                "user_idx": pa.array(owners[chosen].astype(np.int32)),
                "item_idx": pa.array(flat[chosen].astype(np.int32)),
            }
        )

    def __call__(self, block: pa.Table) -> pa.Table:
        users = block.column("id").to_numpy().astype(np.int64)
        # users scored together so that a model call holds about batch_size pairs
        group = max(1, self.served.batch_size // max(1, len(self.items)))
        parts = [self.top_k(users[s : s + group]) for s in range(0, len(users), group)]
        return pa.concat_tables(parts)


def recommend(
    served: ServedRun, k: int, out: str, users: int | None = None, actors: int | None = None
) -> pa.Table:
    """Top-``k`` lists of the first ``users`` users (all by default) into ``out``; returns
    the written rows, read back."""
    dataset = PreparedDataset(served.data_uri)
    n_users = int(dataset.manifest["counts"]["users"])
    n_users = min(users, n_users) if users is not None else n_users
    size, blocks = pool(served.use_gpu, actors, n_users)
    print(
        f"recommend: top {k} of {dataset.manifest['counts']['items']} items for {n_users} "
        f"users of {served.data_uri} with {served.spec.name} ({served.run_dir}), {size} "
        "actor(s) of " + ("1 GPU" if served.use_gpu else "1 CPU")
    )
    lists = ray.data.range(n_users, override_num_blocks=blocks).map_batches(
        Recommender, **actor_options(served, size, k=k)
    )
    lists.write_parquet(out)
    return read_table(out)
