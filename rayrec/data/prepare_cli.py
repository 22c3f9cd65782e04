"""``rayrec prepare`` (and ``jobs/prepare_data.py``): flags -> :class:`PrepareConfig` -> run,
then a summary table. Bad input ends with one error line naming the file, exit code 2; an
error raised in a Ray task also names the log file holding its traceback (:mod:`rayrec.logs`)."""

from __future__ import annotations

import argparse
import os
import sys
import time

from pydantic import ValidationError

from rayrec.data import storage
from rayrec.data.pipeline import PrepareConfig, prepare
from rayrec.data.sources import SourceError
from rayrec.errors import CliError
from rayrec.logs import log_exception

DEFAULT_OUT = "prepared/synthetic"
DEFAULT_SYNTHETIC = "synthetic:{out}/_raw"


def _source_error(err: BaseException) -> SourceError | None:
    """The :class:`SourceError` behind ``err``: Ray wraps errors raised in read tasks."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        original = getattr(err, "cause", None)  # ray.exceptions.RayTaskError keeps it here
        if isinstance(original, SourceError):
            return original
        if isinstance(err, SourceError):
            return err
        err = err.__cause__ or err.__context__
    return None


def config_from_args(args: argparse.Namespace) -> PrepareConfig:
    if args.source and not args.out:
        raise CliError("--out is required with --source (a local directory or s3:// URI)")
    out = args.out or DEFAULT_OUT
    if args.overwrite:  # the deletion guard first: it needs no request to S3
        try:
            storage.check_deletable(out)
        except storage.UnsafeURI as err:
            raise CliError(f"--overwrite: {err}") from None
    if problem := storage.bucket_problem(out):
        raise CliError(f"--out {out}: {problem}")
    sources = args.source or [DEFAULT_SYNTHETIC.format(out=out.rstrip("/"))]
    try:
        return PrepareConfig(
            sources=sources,
            out=out,
            target=args.target,
            kcore=args.kcore,
            seed=args.seed,
            split=args.split,
            tokenizer=args.tokenizer,
            max_len=args.max_len,
            reviews_per_user=args.reviews_per_user,
            reviews_per_item=args.reviews_per_item,
            negatives=args.negatives,
            max_malformed=args.max_malformed,
            drop_near_duplicates=args.drop_near_duplicates,
            yelp_state=args.yelp_state,
            yelp_category=args.yelp_category,
            synthetic_reviews=args.synthetic_reviews,
            tokenize_actors=args.tokenize_actors,
            overwrite=args.overwrite,
        )
    except ValidationError as err:
        raise CliError(str(err).replace("\n", " ")) from None


def summary_table(manifest: dict) -> str:
    """The end-of-run table: per domain kept reviews, then splits and drops."""
    counts = manifest["counts"]
    lines = [f"{'domain':<24}{'reviews':>10}{'users':>9}{'items':>9}"]
    for domain, c in counts["per_domain"].items():
        role = " (target)" if domain == manifest["target_domain"] else ""
        lines.append(f"{domain + role:<24}{c['reviews']:>10,}{c['users']:>9,}{c['items']:>9,}")
    lines.append(
        f"split train/val/test: {counts['train']:,} / {counts['val']:,} / {counts['test']:,}"
        f"   cross-domain (pretrain): {counts['pretrain']:,}"
    )
    dropped = ", ".join(f"{k} {v:,}" for k, v in manifest["dropped"].items())
    lines.append(f"records read: {counts['records']:,}; dropped: {dropped}")
    for source in manifest["sources"]:
        if source["malformed"]:
            lines.append(f"  {source['uri']}: {source['malformed']} malformed, e.g. "
                         f"{source['malformed_examples'][0]}")  # fmt: skip
    lines.append(f"storage: {manifest['storage']}")
    return "\n".join(lines)


def run_prepare(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    config = config_from_args(args)
    started = time.perf_counter()
    try:
        manifest = prepare(config, report=lambda line: print(f"[prepare] {line}", flush=True))
    except Exception as err:  # noqa: BLE001 - only input errors become one line
        source_error = _source_error(err)
        if source_error is None:
            raise
        # one line: Ray Data appends its retry advice on further lines of a task's error
        message = str(source_error).split("\n", 1)[0]
        if source_error is not err:  # raised in a Ray task: the traceback is worth keeping
            log = log_exception(err)
            if log is not None:
                message += f" (traceback in {log})"
        raise CliError(message) from None
    print(summary_table(manifest))
    print(f"prepared {config.out} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0
