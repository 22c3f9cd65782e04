"""``rayrec prepare``: raw review dumps -> a prepared dataset (:mod:`rayrec.data.prepared`).

Three stages, each leaving a marker under ``OUT/_staging/`` so that a run that fails can be
started again with the same command and resumes after the last finished stage:

1. **read** (Ray Data, one task per file): every record of every source becomes a canonical
   record with a status (:mod:`rayrec.data.sources`), written as parquet to
   ``OUT/_staging/records``. Malformed records are counted per file; above ``max_malformed``
   (a fraction of the file's records) preparation stops with an error naming the file and
   the first bad lines.
2. **index** (driver, numpy; :mod:`rayrec.data.prepare`): duplicates, k-core, cross-domain
   corpus, id maps, split, documents, ranking view; writes ``pairs/``, ``ranking/``, ``ids/``.
   It reads no text and holds no string per record: the records' ids become int32 codes
   (:mod:`rayrec.data.index_columns`), about 40 bytes a record.
3. **tokenize** (Ray Data; :mod:`rayrec.data.tokenize_stage`): a pool of actors, one per
   CPU, each reading a unit of the staged records (whole row groups, about 8k records) at a
   time, gives the kept records their ids, tokenizes them and writes the token store
   ``reviews/``.

``manifest.json`` is written last: a directory with a manifest is complete. The staging
directory is removed after success.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pds
import pyarrow.parquet as pq
import ray
from pydantic import BaseModel, ConfigDict, Field, field_validator

from rayrec import __version__
from rayrec.data import storage
from rayrec.data.index_columns import Reviews, read_index_columns
from rayrec.data.lexicon import lexicon_sha256
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
from rayrec.data.prepared import MANIFEST, SCHEMA_VERSION
from rayrec.data.sources import (
    LINE_BITS,
    RANGE_BYTES,
    RECORD_SCHEMA,
    ReviewDatasource,
    Source,
    SourceError,
    allowed_businesses,
    check_source,
    parse_source,
    ranges_of,
)
from rayrec.data.tokenize import tokenizer_info
from rayrec.data.tokenize_stage import PRETRAIN, tokenize_records
from rayrec.progress import Progress

#: Why a record is not in the prepared dataset (``manifest.json``'s ``dropped``), in words.
WRITE_ROWS = 1 << 18  # rows per parquet row group, and per chunk of the pairs' writes
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


class NothingLeft(SourceError):
    """Every record was filtered out: no target review survives."""


class PrepareConfig(BaseModel):
    """Everything ``rayrec prepare`` takes (the CLI flags, one to one)."""

    model_config = ConfigDict(extra="forbid")

    sources: list[str] = Field(min_length=1)
    out: str
    target: str | None = None  # default: the first source's domain
    kcore: int = Field(5, ge=1)
    seed: int = 0
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    tokenizer: str = "minilm"
    max_len: int = Field(128, ge=8)
    reviews_per_user: int = Field(10, ge=1)
    reviews_per_item: int = Field(10, ge=1)
    negatives: int = Field(99, ge=1)
    max_malformed: float = Field(0.001, ge=0, le=1)
    drop_near_duplicates: bool = False  # (domain, user, normalised text) duplicates
    yelp_state: str | None = None
    yelp_category: str | None = None
    synthetic_reviews: int | None = Field(None, ge=100)  # per domain, for synthetic:URI
    tokenize_actors: int | None = Field(None, ge=1)  # default: the cluster's free CPUs
    read_range_bytes: int = Field(RANGE_BYTES, ge=1024)  # per read task of a .json file
    overwrite: bool = False

    @field_validator("split", mode="before")
    @classmethod
    def _parse_split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(float(x) for x in value.split(","))
        return value


Report = Callable[[str], None]


def _resolve_sources(config: PrepareConfig, report: Report) -> list[Source]:
    """Parse the source specs; ``synthetic:URI`` writes the embedded corpus there first."""
    from rayrec.data import synthetic

    sources = []
    for spec in config.sources:
        source = parse_source(spec)
        if source.format != "synthetic":
            sources.append(source)
            continue
        cfg = (
            synthetic.SyntheticConfig.scaled(config.synthetic_reviews, seed=config.seed)
            if config.synthetic_reviews
            else synthetic.SyntheticConfig(seed=config.seed)
        )
        marker = storage.join(source.uri, "_SYNTHETIC.json")
        if storage.exists(marker) and storage.read_json(marker)["config"] == cfg.model_dump():
            files = [synthetic.SourceFile(**f) for f in storage.read_json(marker)["files"]]
            report(f"synthetic corpus: reusing {source.uri}")
        else:
            report(f"synthetic corpus: writing {sum(map(cfg.reviews, cfg.domains)):,} reviews")
            files = synthetic.write_corpus(source.uri, cfg)
            storage.write_json(
                marker, {"config": cfg.model_dump(), "files": [f.__dict__ for f in files]}
            )
        sources += [Source(f.format, f.uri, f.domain) for f in files]
    domains = [s.domain for s in sources]
    target = config.target or domains[0]
    if target not in domains:
        raise SourceError(f"target domain {target!r} is not among the sources' {domains}")
    for source in sources:
        check_source(source)
    return sources


class _Stages:
    """Markers of finished stages under ``OUT/_staging``: a stage is redone when its inputs
    (the JSON given to :meth:`done`) differ from those recorded."""

    def __init__(self, out: str) -> None:
        self.root = storage.join(out, "_staging")

    def path(self, *parts: str) -> str:
        return storage.join(self.root, *parts)

    def finished(self, stage: str, inputs: dict[str, Any]) -> bool:
        marker = self.path(f"{stage}.json")
        return storage.exists(marker) and storage.read_json(marker) == inputs

    def done(self, stage: str, inputs: dict[str, Any]) -> None:
        storage.write_json(self.path(f"{stage}.json"), inputs)


def _read(config: PrepareConfig, sources: list[Source], stages: _Stages, report: Report) -> str:
    """Stage 1: all records with a status, to ``_staging/records``."""
    records = stages.path("records")
    inputs = {
        "sources": [str(s) for s in sources],
        "yelp_state": config.yelp_state,
        "yelp_category": config.yelp_category,
        "columns": RECORD_SCHEMA.names,  # records staged by an older rayrec are read again
        "range_bytes": config.read_range_bytes,
    }
    if stages.finished("read", inputs):
        report("read: done in an earlier run, reusing the staged records")
        return records
    storage.remove(records)
    mark = time.perf_counter()
    businesses = [
        allowed_businesses(s.uri, config.yelp_state, config.yelp_category)
        if s.format == "yelp"
        else None
        for s in sources
    ]
    datasource = ReviewDatasource(sources, businesses, config.read_range_bytes)
    tasks = sum(len(r) for r in datasource.ranges)
    report(f"read: {len(sources)} file(s) in {tasks} read task(s)")
    for line in datasource.plan():
        report(f"read:   {line}")
    ray.data.read_datasource(datasource).write_parquet(records)
    report(f"read: done in {time.perf_counter() - mark:.1f} s")
    stages.done("read", inputs)
    return records


def _check_malformed(
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


def _write_table(table: pd.DataFrame | pa.Table, uri: str) -> None:
    fs, path = storage.filesystem(uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    pq.write_table(table, path, filesystem=fs, row_group_size=WRITE_ROWS)


def _write_tables(tables: Iterator[pa.Table], uri: str) -> None:
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


def _index(
    config: PrepareConfig, sources: list[Source], records: str, report: Report
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Stage 2: the review index, on numeric columns (:mod:`rayrec.data.index_columns`).
    Returns the kept records' ids (by review_key) and the manifest entries it measured."""
    reviews, names = read_index_columns(records)
    source_summary = _check_malformed(names.bookkeeping, sources, config.max_malformed)
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

    out = config.out
    for code, name in enumerate(SPLIT_NAMES):
        rows = np.flatnonzero(split == code)
        chunks = (rows[k : k + WRITE_ROWS] for k in range(0, max(len(rows), 1), WRITE_ROWS))
        _write_tables(
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
    ranking = ranking_view(user_idx, item_idx, split, len(items), config.negatives, config.seed)
    for name in SPLIT_NAMES:
        _write_table(getattr(ranking, name), storage.join(out, "ranking", f"{name}.parquet"))
    _write_table(
        pa.table({"user_idx": np.arange(len(users), dtype=np.int32),
                  "user_id": names.user_names.take(pa.array(users))}),
        storage.join(out, "ids", "users.parquet"),
    )  # fmt: skip
    _write_table(
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


def _tokenize(
    config: PrepareConfig, records: str, kept: pd.DataFrame, stages: _Stages, report: Report
) -> None:
    """Stage 3: the token store ``reviews/`` (:mod:`rayrec.data.tokenize_stage`)."""
    reviews = storage.join(config.out, "reviews")
    inputs = {
        "tokenizer": config.tokenizer,
        "max_len": config.max_len,
        "index": hashlib.sha256(pd.util.hash_pandas_object(kept).to_numpy()).hexdigest(),
    }
    if stages.finished("tokenize", inputs):
        report("tokenize: done in an earlier run, reusing the token store")
        return
    storage.remove(reviews)
    # one actor per free CPU: the actors read and write their units themselves, so no other
    # task needs a CPU while they run
    actors = config.tokenize_actors or max(1, int(ray.available_resources().get("CPU", 1)))
    report(f"tokenize: {len(kept):,} reviews with {actors} tokenizer actor(s)")
    kept_uri = stages.path("kept.parquet")  # read by the actors (no object-store argument)
    _write_table(kept, kept_uri)
    progress = Progress("tokenize", len(kept), report)
    for _, written in tokenize_records(
        records, kept_uri, reviews, config.tokenizer, config.max_len, actors
    ):
        progress.update(written)
    progress.close()
    stages.done("tokenize", inputs)


def _column_batches(uri: str, column: str) -> Iterator[pa.Array]:
    """One column of a parquet file or directory, a record batch at a time (never whole)."""
    fs, path = storage.filesystem(uri)
    for batch in pds.dataset(path, filesystem=fs, format="parquet").to_batches(columns=[column]):
        yield batch.column(column)


def _storage_figures(out: str) -> dict[str, Any]:
    """Sizes of the token store vs. the tokens an inline layout (tokens in every pair row)
    would hold: the measurement behind storing each review's tokens once."""
    reviews = storage.join(out, "reviews")
    tokens = n_reviews = 0
    for ids in _column_batches(reviews, "input_ids"):
        tokens += int(pa.compute.sum(pa.compute.list_value_length(ids)).as_py() or 0)
        n_reviews += len(ids)
    fs, path = storage.filesystem(reviews)
    files = fs.find(path, detail=True).values()
    store_bytes = sum(f["size"] for f in files if f["name"].endswith(".parquet"))
    doc_slots = 0
    for name in SPLIT_NAMES:
        for column in ("user_review_ids", "item_review_ids"):
            for ids in _column_batches(storage.join(out, "pairs", f"{name}.parquet"), column):
                doc_slots += int((pa.compute.list_flatten(ids).to_numpy() >= 0).sum())
    inline = doc_slots * tokens / max(1, n_reviews)
    return {
        "token_store_tokens": tokens,
        "token_store_bytes": int(store_bytes),
        "inline_layout_tokens_estimate": int(inline),
        "inline_over_store": round(float(inline / max(1, tokens)), 2),
    }


def _read_and_index(
    config: PrepareConfig, stages: _Stages, timings: dict[str, float], report: Report
) -> tuple[pd.DataFrame, dict[str, Any]]:
    sources = _resolve_sources(config, report)
    if not ray.is_initialized():
        ray.init(log_to_driver=False)
    mark = time.perf_counter()
    records = _read(config, sources, stages, report)
    timings["read"] = time.perf_counter() - mark
    mark = time.perf_counter()
    kept, entries = _index(config, sources, records, report)
    timings["index"] = time.perf_counter() - mark
    return kept, entries


def _same_config(recorded: dict[str, Any], config: PrepareConfig) -> bool:
    """Whether a manifest's config is ``config``; a field it lacks (an older rayrec's
    manifest) counts as that field's default."""
    defaults = json.loads(PrepareConfig.model_construct().model_dump_json())
    current = json.loads(config.model_dump_json())
    return {**{k: defaults.get(k) for k in current}, **recorded} == current


def prepare(config: PrepareConfig, report: Report = print) -> dict[str, Any]:
    """Run the whole preparation; returns the manifest (also written to ``OUT/manifest.json``)."""
    started = time.perf_counter()
    manifest_uri = storage.join(config.out, MANIFEST)
    if storage.exists(manifest_uri):
        manifest = storage.read_json(manifest_uri)
        if not config.overwrite and _same_config(manifest["config"], config):
            report(f"{config.out} is already prepared with this configuration")
            return manifest
        if not config.overwrite:
            raise SourceError(
                f"{config.out} already holds a prepared dataset of another configuration "
                "(use --overwrite)"
            )
        storage.remove(config.out)
    stages = _Stages(config.out)
    out_existed, staging_existed = storage.exists(config.out), storage.exists(stages.root)
    timings: dict[str, float] = {}
    try:
        kept, entries = _read_and_index(config, stages, timings, report)
    except SourceError:
        # bad input: the same command would fail again, so nothing is kept for a resume and
        # OUT is left as it was (the index stage writes nothing before its checks pass)
        if not out_existed:
            storage.remove(config.out)
        elif not staging_existed:
            storage.remove(stages.root)
        raise
    mark = time.perf_counter()
    _tokenize(config, stages.path("records"), kept, stages, report)
    timings["tokenize"] = time.perf_counter() - mark

    manifest = {
        "schema_version": SCHEMA_VERSION,
        "rayrec_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **entries,
        "seed": config.seed,
        "kcore": config.kcore,
        "split": list(config.split),
        "reviews_per_user": config.reviews_per_user,
        "reviews_per_item": config.reviews_per_item,
        "negatives": config.negatives,
        "max_len": config.max_len,
        "tokenizer": tokenizer_info(config.tokenizer),
        "lexicon": {"name": "Hu and Liu (KDD 2004) opinion lexicon", "sha256": lexicon_sha256()},
        "storage": _storage_figures(config.out),
        "seconds": {k: round(v, 1) for k, v in timings.items()}
        | {"total": round(time.perf_counter() - started, 1)},
        "config": json.loads(config.model_dump_json()),
    }
    storage.write_json(manifest_uri, manifest)
    storage.remove(stages.root)
    return manifest
