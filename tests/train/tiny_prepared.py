"""A tiny prepared dataset written with pyarrow in the format of rayrec/data/prepared.py.

24 users, 16 items; each user rates 6 target-domain items (latest review -> test, the one
before -> val, the rest -> train) and writes 3 "pretrain" reviews in two other domains.
Ratings follow user + item biases (there is signal to learn); tokens are random word pieces
of the uncased BERT vocabulary wrapped in [CLS] ... [SEP], about 30% marked as opinion words.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rayrec.data.pipeline import PrepareConfig

N_USERS, N_ITEMS, PER_USER, PRETRAIN_PER_USER = 24, 16, 6, 3
MAX_LEN, M, N_NEGATIVES = 24, 4, 5
PAD, CLS, SEP, MASK, VOCAB = 0, 101, 102, 103, 30522
DOMAINS = ["Target", "Other_A", "Other_B"]


def _tokens(rng: np.random.Generator) -> tuple[list[int], list[bool]]:
    n = int(rng.integers(4, MAX_LEN - 1))
    ids = [CLS, *rng.integers(1000, 3000, size=n).tolist(), SEP]
    opinion = [False, *(rng.random(n) < 0.3).tolist(), False]
    return ids, opinion


def _sentiment(rating: float) -> int:
    return 0 if rating < 3 else 1 if rating == 3 else 2


def write_tiny_prepared(out: Path, seed: int = 0) -> Path:
    """Write the dataset into ``out`` (created) and return it."""
    rng = np.random.default_rng(seed)
    user_bias = rng.normal(0, 1, N_USERS)
    item_bias = rng.normal(0, 1, N_ITEMS)
    rows: list[dict] = []
    rated: dict[int, list[int]] = {}
    for u in range(N_USERS):
        items = rng.choice(N_ITEMS, size=PER_USER, replace=False)
        rated[u] = items.tolist()
        times = np.sort(rng.integers(1_500_000_000, 1_600_000_000, size=PER_USER))
        for k, (i, ts) in enumerate(zip(items, times, strict=True)):
            score = 3.8 + user_bias[u] + item_bias[i] + rng.normal(0, 0.3)
            split = "test" if k == PER_USER - 1 else "val" if k == PER_USER - 2 else "train"
            rows.append(
                dict(
                    domain_idx=0,
                    user_idx=u,
                    item_idx=int(i),
                    split=split,
                    rating=float(np.clip(np.round(score), 1, 5)),
                    timestamp=int(ts),
                )
            )
    for u in range(N_USERS):
        for _ in range(PRETRAIN_PER_USER):
            score = 3.8 + user_bias[u] + rng.normal(0, 0.3)
            rows.append(
                dict(
                    domain_idx=int(rng.integers(1, len(DOMAINS))),
                    user_idx=u,
                    item_idx=-1,
                    split="pretrain",
                    rating=float(np.clip(np.round(score), 1, 5)),
                    timestamp=int(rng.integers(1_500_000_000, 1_600_000_000)),
                )
            )
    for r, row in enumerate(rows):
        row["review_id"] = r
        row["sentiment"] = _sentiment(row["rating"])
        row["input_ids"], row["opinion_mask"] = _tokens(rng)

    out.mkdir(parents=True, exist_ok=True)
    for sub in ("reviews", "pairs", "ranking", "ids"):
        (out / sub).mkdir(exist_ok=True)
    reviews = pa.table(
        {
            "review_id": pa.array([r["review_id"] for r in rows], pa.int32()),
            "domain_idx": pa.array([r["domain_idx"] for r in rows], pa.int16()),
            "user_idx": pa.array([r["user_idx"] for r in rows], pa.int32()),
            "item_idx": pa.array([r["item_idx"] for r in rows], pa.int32()),
            "rating": pa.array([r["rating"] for r in rows], pa.float32()),
            "sentiment": pa.array([r["sentiment"] for r in rows], pa.int8()),
            "split": pa.array([r["split"] for r in rows], pa.string()),
            "timestamp": pa.array([r["timestamp"] for r in rows], pa.int64()),
            "input_ids": pa.array([r["input_ids"] for r in rows], pa.list_(pa.int32())),
            "opinion_mask": pa.array([r["opinion_mask"] for r in rows], pa.list_(pa.bool_())),
        }
    )
    # two files in shuffled order: readers must place rows by review_id
    order = rng.permutation(len(rows))
    half = len(order) // 2
    pq.write_table(reviews.take(order[:half]), out / "reviews" / "part-0.parquet")
    pq.write_table(reviews.take(order[half:]), out / "reviews" / "part-1.parquet")

    target = [r for r in rows if r["domain_idx"] == 0]
    train = sorted((r for r in target if r["split"] == "train"), key=lambda r: -r["timestamp"])

    def documents(row: dict, key: str) -> list[int]:
        return [
            r["review_id"]
            for r in train
            if r[key] == row[key] and r["review_id"] != row["review_id"]
        ][:M]

    for split in ("train", "val", "test"):
        part = [r for r in target if r["split"] == split]
        pq.write_table(
            pa.table(
                {
                    "user_idx": pa.array([r["user_idx"] for r in part], pa.int32()),
                    "item_idx": pa.array([r["item_idx"] for r in part], pa.int32()),
                    "rating": pa.array([r["rating"] for r in part], pa.float32()),
                    "review_id": pa.array([r["review_id"] for r in part], pa.int32()),
                    "user_review_ids": pa.array(
                        [documents(r, "user_idx") for r in part], pa.list_(pa.int32())
                    ),
                    "item_review_ids": pa.array(
                        [documents(r, "item_idx") for r in part], pa.list_(pa.int32())
                    ),
                }
            ),
            out / "pairs" / f"{split}.parquet",
        )

    def unrated(u: int, n: int) -> list[int]:
        return rng.choice(sorted(set(range(N_ITEMS)) - set(rated[u])), n, replace=False).tolist()

    ranking_train = [(r["user_idx"], r["item_idx"], 1.0) for r in train]
    ranking_train += [(u, unrated(u, 1)[0], 0.0) for u, _, _ in list(ranking_train)]
    pq.write_table(
        pa.table(
            {
                "user_idx": pa.array([u for u, _, _ in ranking_train], pa.int32()),
                "item_idx": pa.array([i for _, i, _ in ranking_train], pa.int32()),
                "label": pa.array([y for _, _, y in ranking_train], pa.float32()),
            }
        ),
        out / "ranking" / "train.parquet",
    )
    for split in ("val", "test"):
        part = [r for r in target if r["split"] == split]
        pq.write_table(
            pa.table(
                {
                    "user_idx": pa.array([r["user_idx"] for r in part], pa.int32()),
                    "item_idx": pa.array([r["item_idx"] for r in part], pa.int32()),
                    "negatives": pa.array(
                        [unrated(r["user_idx"], N_NEGATIVES) for r in part], pa.list_(pa.int32())
                    ),
                }
            ),
            out / "ranking" / f"{split}.parquet",
        )
    pq.write_table(
        pa.table(
            {
                "user_idx": pa.array(range(N_USERS), pa.int32()),
                "user_id": pa.array([f"U{u:03d}" for u in range(N_USERS)], pa.large_string()),
            }
        ),
        out / "ids" / "users.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "item_idx": pa.array(range(N_ITEMS), pa.int32()),
                "item_id": pa.array([f"I{i:03d}" for i in range(N_ITEMS)], pa.large_string()),
            }
        ),
        out / "ids" / "items.parquet",
    )

    # the keys of rayrec.data.pipeline's manifest, every one (tests/data/test_prepared_format.py
    # compares them, and the parquet schemas above, with what the real `rayrec prepare` writes)
    by_split = {
        split: sum(r["split"] == split for r in target) for split in ("train", "val", "test")
    }
    per_domain = {
        name: {
            "reviews": sum(r["domain_idx"] == d for r in rows),
            "users": len({r["user_idx"] for r in rows if r["domain_idx"] == d}),
            "items": N_ITEMS if d == 0 else 0,
        }
        for d, name in enumerate(DOMAINS)
    }
    # what `rayrec prepare` records of its arguments: every PrepareConfig field, as it dumps them
    config = PrepareConfig(
        sources=[f"synthetic:{out}-raw"],
        out=str(out),
        target=DOMAINS[0],
        kcore=1,
        seed=seed,
        max_len=MAX_LEN,
        reviews_per_user=M,
        reviews_per_item=M,
        negatives=N_NEGATIVES,
    )
    manifest = {
        "schema_version": 1,
        "rayrec_version": "0.1.0",
        "created": "2026-01-01T00:00:00Z",
        "domains": DOMAINS,
        "target_domain": DOMAINS[0],
        "counts": {
            "records": len(rows),
            "reviews": len(target),
            "users": N_USERS,
            "items": N_ITEMS,
            **by_split,
            "pretrain": len(rows) - len(target),
            "per_domain": per_domain,
            "ranking": {
                "train": len(ranking_train),
                "val": by_split["val"],
                "test": by_split["test"],
            },
            "ranking_skipped_users": {"train": 0, "val": 0, "test": 0},
        },
        "dropped": {
            reason: 0
            for reason in (
                "malformed",
                "empty",
                "business",
                "duplicate",
                "near_duplicate",
                "kcore",
                "not_target_user",
                "held_out_copy",
            )
        },
        "global_mean": float(np.mean([r["rating"] for r in train])),
        "sources": [
            {
                "uri": f"{out}-raw/{name}.json",
                "format": "synthetic",
                "domain": name,
                "sha256": "0" * 64,
                "records": per_domain[name]["reviews"],
                "malformed": 0,
                "malformed_examples": [],
            }
            for name in DOMAINS
        ],
        "seed": seed,
        "kcore": 1,
        "split": list(config.split),
        "reviews_per_user": M,
        "reviews_per_item": M,
        "negatives": N_NEGATIVES,
        "max_len": MAX_LEN,
        "tokenizer": {
            "name": "minilm",
            "class": "BertTokenizer",
            "vocab_size": VOCAB,
            "vocab_sha256": "0" * 64,
            "pad_token_id": PAD,
            "cls_token_id": CLS,
            "sep_token_id": SEP,
            "mask_token_id": MASK,
            "lowercase": True,
        },
        "lexicon": {"name": "Hu and Liu (KDD 2004) opinion lexicon", "sha256": "0" * 64},
        "storage": {
            "token_store_tokens": sum(len(r["input_ids"]) for r in rows),
            "token_store_bytes": 0,
            "inline_layout_tokens_estimate": 0,
            "inline_over_store": 0.0,
        },
        "seconds": {"read": 0.0, "index": 0.0, "tokenize": 0.0, "total": 0.0},
        "config": json.loads(config.model_dump_json()),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out
