"""Stage 2 of ``rayrec prepare`` (:mod:`rayrec.data.pipeline`): the review index.

In the driver, on numeric columns (:mod:`rayrec.data.index_columns`; the steps themselves are
:mod:`rayrec.data.prepare`): the per-file malformed-record check, duplicates, the target
domain's k-core, the cross-domain corpus, id maps, the split, documents and the ranking view.
It writes ``pairs/``, ``ranking/`` and ``ids/`` and returns the kept records' ids for the
tokenize stage. It reads no text and holds no string per record, and builds and writes the
large tables in chunks, so its memory is the columns' (about 210 MB per million records read;
README, "Preparation at scale").
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rayrec.data import storage
from rayrec.data.index_columns import Reviews, read_index_columns
from rayrec.data.prepare import (
    SPLIT_NAMES,
    copies_of,
    documents,
    kcore,
    latest,
    list_column,
    ranking_view,
    split_pairs,
)
from rayrec.data.review_reader import LINE_BITS, ranges_of
from rayrec.data.sources import Source, SourceError
from rayrec.data.tokenize_stage import PRETRAIN

if TYPE_CHECKING:
    from rayrec.data.pipeline import PrepareConfig

Report = Callable[[str], None]


STEP_QUIET_S = 5.0  # an index stage that is still running after this names each next step
WRITE_ROWS = 1 << 18  # rows per parquet row group, and per chunk of the pairs' writes
#: Why a record is not in the prepared dataset (``manifest.json``'s ``dropped``), in words.
DROP_REASONS = {
    "malformed": "unreadable",
    "empty": "no text",
    "business": "outside the Yelp business filter",
    "duplicate": "the same user and item again",
    "near_duplicate": "the same user and text again, --drop-near-duplicates",
    "kcore": "users or items with fewer than {kcore} reviews, --kcore",
    "not_target_user": "other domains' reviews by users not in the target domain",
    "held_out_copy": "other domains' copies of a validation or test review's text",
}


class _Steps:
    """The index stage's progress, one line a step: it runs in the driver and has no fraction
    to show, so it names the step it starts, once the stage has run for
    :data:`STEP_QUIET_S` (a small corpus's index prints only its result)."""

    def __init__(self, report: Report) -> None:
        self.report, self.started = report, time.perf_counter()

    def __call__(self, step: str) -> None:
        elapsed = time.perf_counter() - self.started
        if elapsed >= STEP_QUIET_S:
            self.report(f"index: {step} ({elapsed:.0f} s in)")


class NothingLeft(SourceError):
    """Every record was filtered out: no target review survives."""


def check_malformed(
    frame: pd.DataFrame, sources: list[Source], max_malformed: float
) -> list[dict[str, Any]]:
    """Per-source record counts and checksums; stop when a file has too many bad records.

    A file read by byte ranges has one "eof" row per range; its malformed lines' numbers
    (counted within their range) get the lines of the ranges before added."""
    eofs = frame[frame["status"] == "eof"]
    summary = []
    for index, source in enumerate(sources):
        eof = ranges_of(
            [json.loads(d) for d in eofs.loc[eofs["source"] == index, "detail"]], source.uri
        )
        rows = frame[frame["source"] == index]
        bad = rows[rows["status"] == "malformed"]
        lines = bad["line"].to_numpy()
        if "line_offsets" in eof:
            offset = bad["review_key"].to_numpy() & ((1 << LINE_BITS) - 1)
            which = np.searchsorted(eof["range_starts"], offset, side="right") - 1
            lines = lines + np.asarray(eof["line_offsets"])[which]
        bad = bad.assign(line=lines).sort_values("line")
        total = eof["records"]
        examples = [f"line {line}: {detail}" for line, detail in bad[["line", "detail"]].values]
        if len(bad) > max_malformed * total:
            raise SourceError(
                f"{source.uri}: {len(bad):,} of {total:,} records are malformed "
                f"(limit {max_malformed:.2%}, --max-malformed); first: {'; '.join(examples[:5])}"
            )
        summary.append(
            {
                "uri": source.uri,
                "format": source.format,
                "domain": source.domain,
                "sha256": eof["sha256"],
                "records": total,
                "malformed": len(bad),
                "malformed_examples": examples[:20],
                **({"read_ranges": eof["ranges"]} if "ranges" in eof else {}),
            }
        )
    return summary


def write_table(table: pd.DataFrame | pa.Table, uri: str) -> None:
    fs, path = storage.filesystem(uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    pq.write_table(table, path, filesystem=fs, row_group_size=WRITE_ROWS)


def write_tables(tables: Iterator[pa.Table], uri: str) -> None:
    """Tables of one schema (at least one) written one after another as one parquet file, so
    that only one chunk of the rows is ever built at a time."""
    fs, path = storage.filesystem(uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    first = next(tables)
    with pq.ParquetWriter(path, first.schema, filesystem=fs) as writer:
        writer.write_table(first, row_group_size=WRITE_ROWS)
        for table in tables:
            writer.write_table(table, row_group_size=WRITE_ROWS)


def _deduplicate(reviews: Reviews, drop_near_duplicates: bool, dropped: dict[str, int]) -> Reviews:
    """One review per (domain, user, item), and per (domain, user, text) if asked."""
    keep = latest(
        (reviews.domain, reviews.user, reviews.item), reviews.timestamp, reviews.review_key
    )
    dropped["duplicate"] = int((~keep).sum())
    reviews = reviews.take(keep)
    dropped["near_duplicate"] = 0
    if drop_near_duplicates:
        keep = latest(
            (reviews.domain, reviews.user, reviews.text_key), reviews.timestamp, reviews.review_key
        )
        dropped["near_duplicate"] = int((~keep).sum())
        reviews = reviews.take(keep)
    return reviews


def index_reviews(
    config: PrepareConfig, sources: list[Source], records: str, report: Report
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The review index of the staged ``records``: writes ``pairs/``, ``ranking/`` and
    ``ids/`` under ``config.out``; returns the kept records' ids (by review_key) and the
    manifest entries it measured."""
    step = _Steps(report)
    reviews, names = read_index_columns(records)
    step(f"{len(reviews):,} readable reviews; duplicates, k-core")
    source_summary = check_malformed(names.bookkeeping, sources, config.max_malformed)
    counts = names.status_counts
    records_total = sum(counts.values()) - counts.get("eof", 0)
    dropped = {reason: counts.get(reason, 0) for reason in ("malformed", "empty", "business")}
    reviews = _deduplicate(reviews, config.drop_near_duplicates, dropped)

    target = config.target or sources[0].domain
    domains = [target, *sorted({s.domain for s in sources} - {target})]
    domain_idx = pd.Index(domains).get_indexer(names.domain_names)[reviews.domain]
    in_target = domain_idx == 0
    core = np.zeros(len(reviews), dtype=bool)
    core[in_target] = kcore(reviews.user[in_target], reviews.item[in_target], config.kcore)
    dropped["kcore"] = int(in_target.sum() - core.sum())
    users = np.unique(reviews.user[core])
    cross = ~in_target & np.isin(reviews.user, users)
    dropped["not_target_user"] = int((~in_target).sum() - cross.sum())
    if not core.any():
        raise NothingLeft(_nothing_left(config, target, records_total, dropped))

    step(f"{int(core.sum()):,} target reviews kept; ids, split, documents")
    target_rows = reviews.take(core)
    other_rows = reviews.take(cross)
    other_domain = domain_idx[cross]
    del reviews, domain_idx, in_target, core, cross  # the driver holds each column once
    order = np.lexsort((other_rows.review_key, other_domain))
    other_rows, other_domain = other_rows.take(order), other_domain[order]
    n_target = len(target_rows)
    user_idx = np.searchsorted(users, target_rows.user).astype(np.int32)
    items = np.unique(target_rows.item)
    item_idx = np.searchsorted(items, target_rows.item).astype(np.int32)
    review_id = np.arange(n_target, dtype=np.int32)
    split = split_pairs(n_target, config.split, config.seed)
    held_out = split > 0
    copies = copies_of(
        other_rows.user, other_rows.text_key, target_rows.user[held_out],
        target_rows.text_key[held_out],
    )  # fmt: skip
    dropped["held_out_copy"] = int(copies.sum())
    other_rows, other_domain = other_rows.take(~copies), other_domain[~copies]
    rating = target_rows.rating
    is_train = split == 0
    user_docs = documents(
        user_idx, review_id, target_rows.timestamp, is_train, config.reviews_per_user
    )
    item_docs = documents(
        item_idx, review_id, target_rows.timestamp, is_train, config.reviews_per_item
    )
    report(
        f"index: {n_target:,} reviews, {len(users):,} users, {len(items):,} items in "
        f"{target}; {len(other_rows):,} cross-domain reviews"
    )

    step("writing pairs/")
    out = config.out
    for code, name in enumerate(SPLIT_NAMES):
        rows = np.flatnonzero(split == code)
        chunks = (rows[k : k + WRITE_ROWS] for k in range(0, max(len(rows), 1), WRITE_ROWS))
        write_tables(
            (
                pa.table(
                    {
                        "user_idx": user_idx[chunk],
                        "item_idx": item_idx[chunk],
                        "rating": rating[chunk],
                        "review_id": review_id[chunk],
                        "user_review_ids": list_column(user_docs[chunk]),
                        "item_review_ids": list_column(item_docs[chunk]),
                    }
                )
                for chunk in chunks
            ),
            storage.join(out, "pairs", f"{name}.parquet"),
        )
    del user_docs, item_docs  # written: the ranking view's sampling needs the room
    step(f"ranking view: {config.negatives} sampled negatives per held-out user")
    ranking = ranking_view(user_idx, item_idx, split, len(items), config.negatives, config.seed)
    for name in SPLIT_NAMES:
        write_table(getattr(ranking, name), storage.join(out, "ranking", f"{name}.parquet"))
    write_table(
        pa.table({"user_idx": np.arange(len(users), dtype=np.int32),
                  "user_id": names.user_names.take(pa.array(users))}),
        storage.join(out, "ids", "users.parquet"),
    )  # fmt: skip
    write_table(
        pa.table({"item_idx": np.arange(len(items), dtype=np.int32),
                  "item_id": names.item_names.take(pa.array(items))}),
        storage.join(out, "ids", "items.parquet"),
    )  # fmt: skip

    kept = pd.DataFrame(
        {
            "review_key": np.concatenate([target_rows.review_key, other_rows.review_key]),
            "review_id": np.arange(n_target + len(other_rows), dtype=np.int32),
            "domain_idx": np.concatenate([np.zeros(n_target), other_domain]).astype(np.int16),
            "user_idx": np.concatenate([user_idx, np.searchsorted(users, other_rows.user)]).astype(
                np.int32
            ),
            "item_idx": np.concatenate([item_idx, np.full(len(other_rows), -1)]).astype(np.int32),
            "split": np.concatenate([split, np.full(len(other_rows), PRETRAIN)]).astype(np.int8),
        }
    ).sort_values("review_key")

    per_domain = {
        domain: {
            "reviews": int((kept["domain_idx"] == i).sum()),
            "users": int(kept.loc[kept["domain_idx"] == i, "user_idx"].nunique()),
            "items": len(items) if i == 0 else len(np.unique(other_rows.item[other_domain == i])),
        }
        for i, domain in enumerate(domains)
    }
    entries = {
        "domains": domains,
        "target_domain": target,
        "counts": {
            "records": records_total,
            "reviews": n_target,
            "users": len(users),
            "items": len(items),
            **{name: int((split == code).sum()) for code, name in enumerate(SPLIT_NAMES)},
            "pretrain": len(other_rows),
            "per_domain": per_domain,
            "ranking": {name: len(getattr(ranking, name)) for name in SPLIT_NAMES},
            "ranking_skipped_users": ranking.skipped,
        },
        "dropped": dropped,
        "global_mean": float(rating[is_train].mean()) if is_train.any() else 3.0,
        "sources": source_summary,
    }
    if records_total != n_target + len(other_rows) + sum(dropped.values()):
        raise AssertionError(f"review accounting does not add up: {entries['counts']}, {dropped}")
    return kept, entries


def _nothing_left(config: PrepareConfig, target: str, records: int, dropped: dict[str, int]) -> str:
    reasons = "; ".join(
        f"{reason} {count:,} ({DROP_REASONS[reason].format(kcore=config.kcore)})"
        for reason, count in dropped.items()
        if count
    )
    return (
        f"nothing to prepare: of {records:,} records read, no {target} review is left "
        f"(dropped: {reasons or 'none'}); nothing was written to {config.out}"
    )
