"""Encode once: what the review-state store and unique-review batching save, in one run.

    rayrec prepare --out /tmp/mi/seed0 \
        --source amazon2014:data/amazon-2014/Musical_Instruments_5.csv.zip
    python bench/encode_once.py --data /tmp/mi/seed0
    python bench/encode_once.py --data /tmp/mi/seed0 --budget-s 300   # + equal-time U-BERT runs

On the same prepared data (real Musical Instruments), side by side:

1. encoder tokens per training example, from the pairs table and the review lengths (no model):
   per slot (every document slot encoded), unique (each distinct review of a random batch
   once) and grouped (the same with ``train.group_batches=item``);
2. ``rayrec encode`` (the Ray Data actor pool, start-up included) building SIFN's store from
   scratch against a plain PyTorch loop of the same frozen MiniLM and batching over the same
   reviews on all cores, run first, before Ray starts (reviews/s each);
3. SIFN (paper preset: frozen MiniLM, M = 6, 64 tokens): an epoch reading the store against
   today's per-step encoding (``data.review_store=off``), the latter timed over a few steps and
   scaled to the epoch's steps (an epoch of per-step encoding is most of an hour here);
4. U-BERT fine-tuning (M = 4, 64 tokens, so that ``trainable_layers=0`` reads SIFN's store):
   samples/s of full fine-tuning, ``trainable_layers=1`` and ``0``, and with ``--budget-s``
   the test MSE each reaches when trained for the same wall-clock time (store builds are
   reported beside it, not inside the budget).

samples/s counts from the first batch (Ray start-up excluded; it is in the wall time). The
last line is one JSON object with the figures; ``bench/out/encode_once.json`` keeps the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch

from rayrec.encode.backbone import load_backbone
from rayrec.encode.build import (
    BATCH_REVIEWS,
    EncodeRequest,
    ensure_store,
    review_tokens,
    training_reviews,
)
from rayrec.train.config import load_config
from rayrec.train.grouping import grouped_order
from rayrec.train.reviews import load_review_index
from rayrec.train.trainer import ensure_ray, fit

OUT = Path(__file__).resolve().parent / "out" / "encode_once.json"
SIFN = ["data.max_len=64", "data.reviews_per_doc=6", "train.batch_size=32"]
UBERT = ["data.max_len=64", "data.reviews_per_doc=4", "train.batch_size=16"]
UBERT_VARIANTS = {
    "full": [],
    "top1": ["model.params.trainable_layers=1"],
    "top0": ["model.params.trainable_layers=0"],
}


def tokens_per_example(data: str, m: int, length: int, batch: int, seed: int = 0) -> dict:
    """Encoder tokens per example: per slot, unique per random batch, unique per grouped one."""
    pairs = pq.read_table(Path(data) / "pairs" / "train.parquet")
    index = load_review_index(data)
    lengths = np.minimum(np.diff(index.tokens.offsets), length)
    docs = [
        [ids[:m] for ids in pairs.column(f"{side}_review_ids").to_pylist()]
        for side in ("user", "item")
    ]
    slots = [u + i for u, i in zip(*docs, strict=True)]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(slots))
    grouped = grouped_order(order, pairs.column("item_idx").to_numpy(), batch, rng)

    def unique_tokens(positions: np.ndarray) -> float:
        total = 0
        for b in range(len(positions) // batch):
            ids = {r for p in positions[b * batch : (b + 1) * batch] for r in slots[p]}
            total += int(lengths[list(ids)].sum())
        return total / (len(positions) // batch * batch)

    naive = sum(int(lengths[s].sum()) for s in slots) / len(slots)
    return {"naive": naive, "unique": unique_tokens(order), "grouped": unique_tokens(grouped)}


@torch.inference_mode()
def plain_reviews_per_s(data: str, length: int, sample: int, threads: int) -> float:
    """A plain PyTorch loop in this process: frozen MiniLM over the training reviews (a random
    sample of ``sample`` of them if ``sample``), length-sorted batches of ``BATCH_REVIEWS`` as
    ``rayrec encode`` batches them, ``threads`` intra-op threads; the states are not kept
    (the store also converts and writes them), the model's loading is not timed."""
    torch.set_num_threads(threads)
    ids = training_reviews(data)
    if sample:
        ids = np.sort(np.random.default_rng(0).choice(ids, min(sample, len(ids)), replace=False))
    tokens = review_tokens(data, ids, length)
    bert = load_backbone("minilm")
    started = time.perf_counter()
    order = np.argsort([len(t) for t in tokens], kind="stable")
    for start in range(0, len(order), BATCH_REVIEWS):
        batch = [tokens[r] for r in order[start : start + BATCH_REVIEWS]]
        width = max(len(t) for t in batch)
        input_ids = torch.zeros(len(batch), width, dtype=torch.long)
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        for row, t in enumerate(batch):
            input_ids[row, : len(t)] = torch.from_numpy(t.astype(np.int64))
            mask[row, : len(t)] = 1
        bert(input_ids=input_ids, attention_mask=mask)
    return len(ids) / (time.perf_counter() - started)


def run(model: str, data: str, storage: str, name: str, overrides: list[str]) -> dict[str, Any]:
    cfg = load_config(
        model,
        overrides=[
            "train.epochs=1",
            f"run.storage={storage}",
            f"run.name={name}",
            "run.export_weights=false",
            *overrides,
        ],
    )
    return fit(cfg, data)


def measure_encode(root: str, data: str, plain: float) -> dict[str, Any]:
    """``rayrec encode`` building SIFN's store from scratch against the plain loop's
    ``plain`` reviews/s."""
    store, info = ensure_store(EncodeRequest(data, "minilm", 64, layer=6, root=root))
    encode = store.meta["reviews"] / info["seconds"]
    return {
        "store_build_s": info["seconds"],
        "encode_reviews_per_s": encode,
        "plain_reviews_per_s": plain,
        "encode_vs_plain": encode / plain,
    }


def measure_sifn(args: argparse.Namespace, root: str, tmp: str) -> dict[str, Any]:
    """SIFN's epoch reading the store against per-step encoding (scaled from a few steps)."""
    with_store = run("sifn", args.data, tmp, "sifn-store", [*SIFN, f"data.review_store={root}"])
    per_step = [f"train.max_steps_per_epoch={args.naive_steps}", "train.max_eval_batches=1"]
    naive = run("sifn", args.data, tmp, "sifn-naive", [*SIFN, "data.review_store=off", *per_step])
    naive_epoch = naive["train_seconds"] / naive["steps"] * with_store["steps"]
    return {
        "sifn_store_epoch_s": with_store["train_seconds"],
        "sifn_naive_epoch_s": naive_epoch,
        "sifn_epoch_speedup": naive_epoch / with_store["train_seconds"],
        "sifn_store_test_mse": with_store["test"]["mse"],
    }


def measure_ubert(args: argparse.Namespace, root: str, tmp: str) -> dict[str, Any]:
    """U-BERT fine-tuning samples/s per variant, and the equal-time test MSE (--budget-s)."""
    ubert: dict[str, dict[str, Any]] = {}
    for variant, extra in UBERT_VARIANTS.items():
        probe = [f"train.max_steps_per_epoch={args.ubert_steps}", "train.max_eval_batches=1"]
        settings = [*UBERT, *extra, f"data.review_store={root}"]
        result = run("ubert_finetune", args.data, tmp, f"ubert-{variant}", [*settings, *probe])
        ubert[variant] = {
            "samples_per_s": result["samples_per_s"],
            "store_build_s": (result["review_states"] or {}).get("seconds", 0.0),
        }
        if args.budget_s:
            steps = max(1, int(args.budget_s * result["samples_per_s"] / 16))
            budget = run(
                "ubert_finetune",
                args.data,
                tmp,
                f"ubert-{variant}-budget",
                [*settings, f"train.max_steps_per_epoch={steps}"],
            )
            ubert[variant] |= {
                "budget_steps": steps,
                "budget_train_s": budget["train_seconds"],
                "budget_test_mse": budget["test"]["mse"],
            }
    full = ubert["full"]["samples_per_s"]
    return {
        "ubert": ubert,
        "ubert_top1_speedup": ubert["top1"]["samples_per_s"] / full,
        "ubert_top0_speedup": ubert["top0"]["samples_per_s"] / full,
    }


def print_table(figures: dict[str, Any], args: argparse.Namespace) -> None:
    print("\nencoder tokens per training example (SIFN: M = 6 per side, 64 tokens, batch 32)")
    for k in ("naive", "unique", "grouped"):
        print(f"  {k:<8} {figures[f'tokens_per_example_{k}']:8.1f}")
    if "encode_vs_plain" in figures:
        print(
            f"\nrayrec encode {figures['encode_reviews_per_s']:.1f} reviews/s, plain loop "
            f"{figures['plain_reviews_per_s']:.1f} reviews/s: {figures['encode_vs_plain']:.2f}x "
            f"(store built in {figures['store_build_s']:.0f} s)"
        )
    if "sifn_epoch_speedup" in figures:
        print(
            f"SIFN epoch: store {figures['sifn_store_epoch_s']:.0f} s, per-step encoding "
            f"{figures['sifn_naive_epoch_s']:.0f} s (from {args.naive_steps} steps): "
            f"{figures['sifn_epoch_speedup']:.1f}x; "
            f"test MSE after 1 epoch {figures['sifn_store_test_mse']:.4f}"
        )
    if "ubert" in figures:
        print(f"\n{'U-BERT fine-tuning':<22} {'samples/s':>10} {'store s':>8} {'budget MSE':>11}")
        for variant, row in figures["ubert"].items():
            mse = f"{row['budget_test_mse']:.4f}" if "budget_test_mse" in row else "-"
            rate, built = row["samples_per_s"], row["store_build_s"]
            print(f"  {variant:<20} {rate:>10.2f} {built:>8.0f} {mse:>11}")


PARTS = ("encode", "sifn", "ubert")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="prepared real dataset (e.g. MI)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--naive-steps", type=int, default=6, help="SIFN per-step encoding")
    parser.add_argument("--ubert-steps", type=int, default=8, help="U-BERT throughput probes")
    parser.add_argument(
        "--plain-sample", type=int, default=0, help="plain loop: reviews (0: all of the store's)"
    )
    parser.add_argument("--budget-s", type=float, default=0.0, help="U-BERT equal-time runs")
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    # the plain loop first, on a machine without Ray (its daemons cost a 2-core machine some
    # of a core), on all of its cores
    if "encode" in args.parts:
        plain = plain_reviews_per_s(args.data, 64, args.plain_sample, cpus)
    ensure_ray()
    import ray

    if int(ray.cluster_resources()["CPU"]) != cpus:
        raise SystemExit(f"Ray sees {ray.cluster_resources()['CPU']} CPUs, this machine {cpus}")
    figures: dict[str, Any] = {"data": args.data, "cpus": cpus}
    tokens = tokens_per_example(args.data, m=6, length=64, batch=32)
    figures |= {f"tokens_per_example_{k}": v for k, v in tokens.items()}
    with tempfile.TemporaryDirectory() as tmp:
        root = str(Path(tmp) / "stores")  # a fresh store: its build is measured
        if "encode" in args.parts:
            figures |= measure_encode(root, args.data, plain)
        if "sifn" in args.parts:
            figures |= measure_sifn(args, root, tmp)
        if "ubert" in args.parts:
            figures |= measure_ubert(args, root, tmp)
    print_table(figures, args)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"args": vars(args), **figures}, indent=2))
    print(json.dumps({k: v for k, v in figures.items() if k not in ("data",)}))


if __name__ == "__main__":
    main()
