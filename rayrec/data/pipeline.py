"""``rayrec prepare``: raw review dumps -> a prepared dataset (:mod:`rayrec.data.prepared`).

Three stages, each leaving a marker under ``OUT/_staging/`` so that a run that fails can be
started again with the same command and resumes after the last finished stage:

1. **read** (Ray Data, one task per file; :mod:`rayrec.data.review_reader`): every record of
   every source becomes a canonical record with a status (:mod:`rayrec.data.sources`),
   written as parquet to ``OUT/_staging/records``. Malformed records are counted per file;
   above ``max_malformed`` (a fraction of the file's records) preparation stops with an error
   naming the file and the first bad lines.
2. **index** (driver, numpy; :mod:`rayrec.data.index_stage`): duplicates, k-core, cross-domain
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
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pyarrow as pa
import ray
from pydantic import BaseModel, ConfigDict, Field, field_validator

from rayrec import __version__
from rayrec.data import storage
from rayrec.data.index_stage import Report, index_reviews, write_table
from rayrec.data.lexicon import lexicon_sha256
from rayrec.data.prepare import SPLIT_NAMES
from rayrec.data.prepared import MANIFEST, SCHEMA_VERSION, parquet_dataset
from rayrec.data.read_progress import ByteCounter, run_with_progress
from rayrec.data.review_reader import RANGE_BYTES, ReviewDatasource
from rayrec.data.sources import (
    RECORD_SCHEMA,
    Source,
    SourceError,
    allowed_businesses,
    check_source,
    parse_source,
)
from rayrec.data.tokenize import tokenizer_info
from rayrec.data.tokenize_stage import tokenize_records
from rayrec.progress import Progress

READ_QUIET_S = 5.0  # a read that ends sooner shows no progress, only its end


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
    counter = ByteCounter.remote()
    datasource = ReviewDatasource(sources, businesses, config.read_range_bytes, counter)
    tasks = sum(len(r) for r in datasource.ranges)
    report(f"read: {len(sources)} file(s) in {tasks} read task(s)")
    for line in datasource.plan():
        report(f"read:   {line}")
    try:
        run_with_progress(
            lambda: ray.data.read_datasource(datasource).write_parquet(records),
            counter,
            sum(datasource.sizes),
            report,
            quiet_for=READ_QUIET_S,
        )
    finally:
        ray.kill(counter)
    report(f"read: done in {time.perf_counter() - mark:.1f} s")
    stages.done("read", inputs)
    return records


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
    write_table(kept, kept_uri)
    progress = Progress("tokenize", len(kept), report)
    for _, written in tokenize_records(
        records, kept_uri, reviews, config.tokenizer, config.max_len, actors
    ):
        progress.update(written)
    progress.close()
    stages.done("tokenize", inputs)


def _column_batches(uri: str, column: str) -> Iterator[pa.Array]:
    """One column of a parquet file or directory, a record batch at a time (never whole)."""
    for batch in parquet_dataset(uri).to_batches(columns=[column]):
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
    kept, entries = index_reviews(config, sources, records, report)
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
