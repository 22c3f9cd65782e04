"""Synthetic review corpus generator: Amazon 2014 and Yelp files with a learnable structure.

The command line (``python -m rayrec.data.synthetic``): writes the corpus with
:func:`~rayrec.data.synthetic.writers.write_corpus` and prints a JSON report of the files,
the reviews written and the time taken. The first line above is its ``--help`` description.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from rayrec.data.synthetic.config import SyntheticConfig
from rayrec.data.synthetic.writers import write_corpus


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rayrec.data.synthetic --out DIR --reviews N --seed S``."""
    parser = argparse.ArgumentParser(
        prog="python -m rayrec.data.synthetic", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", required=True, help="output directory or URI (s3://...)")
    parser.add_argument(
        "--reviews",
        type=int,
        default=None,
        help="reviews per domain; users and items scale with it (default: config defaults)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--domains", default=None, help="comma-separated, e.g. Electronics,Yelp")
    parser.add_argument("--chunk-size", type=int, default=50_000)
    parser.add_argument("--compresslevel", type=int, default=1, help="gzip level (1 = fastest)")
    parser.add_argument(
        "--text-length",
        choices=("short", "realistic"),
        default="short",
        help="review lengths (realistic: DomainPreset.word_pieces)",
    )
    args = parser.parse_args(argv)

    overrides: dict[str, Any] = {"seed": args.seed, "text_length": args.text_length}
    if args.domains:
        overrides["domains"] = tuple(d.strip() for d in args.domains.split(",") if d.strip())
    if args.reviews is not None:
        config = SyntheticConfig.scaled(args.reviews, **overrides)
    else:
        config = SyntheticConfig(**overrides)
    started = time.perf_counter()
    sources = write_corpus(
        args.out, config, chunk_size=args.chunk_size, compresslevel=args.compresslevel
    )
    seconds = time.perf_counter() - started
    total = sum(s.n_reviews for s in sources)
    report = {
        "sources": [asdict(s) for s in sources],
        "reviews": total,
        "seconds": round(seconds, 3),
        "reviews_per_second": round(total / seconds) if seconds > 0 else None,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
