"""``rayrec encode MODEL --data D``: build the review-state store a run of MODEL would read.

The config is built exactly as ``rayrec train`` builds it (preset or ``--config``, ``--set``,
``--pretrained``), so the store is the one the run looks up: for SIFN (frozen BERT) the last
layer's states, with ``--set model.params.trainable_layers=N`` the states of layer ``n - N``.
Training builds a missing store itself; this command builds it ahead (e.g. on GPU nodes
before a CPU-only sweep) and says where it is.
"""

from __future__ import annotations

import argparse
import dataclasses

from rayrec.encode.build import ensure_store
from rayrec.encode.plan import store_request
from rayrec.errors import CliError
from rayrec.train.cli import check_data, check_pretrained, config_errors
from rayrec.train.config import load_config
from rayrec.train.trainer import ensure_ray


def run_encode(args: argparse.Namespace) -> int:
    """Entry point of ``rayrec encode``."""
    overrides = [*args.overrides, f"data.uri={args.data}"]
    if args.pretrained:
        overrides.append(f"model.params.pretrained={args.pretrained}")
    with config_errors():
        cfg = load_config(args.model, args.config, overrides)
    check_pretrained(cfg)
    dataset = check_data(args.data)  # before Ray starts
    if dataset is None:
        raise CliError("--data is required")
    request = store_request(cfg, dataset.uri, dataset.manifest)
    if request is None:
        raise CliError(
            f"{cfg.model.name} with this config trains its whole encoder, so it reads no "
            "review-state store: set model.params.freeze_backbone=true or "
            "model.params.trainable_layers=N (or data.review_store is off)"
        )
    request = dataclasses.replace(request, use_gpu=args.use_gpu, threads=args.threads)
    ensure_ray()
    store, info = ensure_store(request)
    how = f"built in {info['seconds']:.1f} s" if info["built"] else "already there"
    meta = store.meta
    print(
        f"review-state store ({how}): {meta['reviews']} reviews, {meta['tokens']} token rows, "
        f"layer {store.key.layer} of {meta['n_layers']}, {store.key.max_len} tokens, "
        f"width {meta['dim']}, float16\n  {store.uri}"
    )
    return 0
