"""Stacking on real data: do the text models hold signal that biased MF does not?

    python bench/compare.py --data /tmp/mi/seed0 /tmp/mi/seed1 /tmp/mi/seed2 \\
        --storage /tmp/compare --variants biased_mf ncf sifn ubert_frozen_e8
    python bench/blend.py --data /tmp/mi/seed0 /tmp/mi/seed1 /tmp/mi/seed2 \\
        --storage /tmp/compare --blends biased_mf+ncf biased_mf+sifn biased_mf+sifn+ubert_frozen_e8

A blend (Netflix-prize style linear stacking) predicts ``w0 + Σ_k w_k r̂_k``, the ``r̂_k`` its
members' predictions (``rayrec predict`` of each member's run under ``--storage``, clipped to
[1, 5] as every evaluation is); the weights are the least-squares fit on the *validation*
split of the same seed, and the blend is then scored once on test, clipped to [1, 5].
A member's run is trained first if it is missing (``bench/compare.py``'s code path).

Readings: the members chose their best epoch on the same validation split, so the validation
fit is slightly optimistic (their validation errors are a little smaller than a held-out
split's); with ~1,000 validation ratings and a handful of weights the fit itself overfits
little. A blend of MF with a model that reads no text (``biased_mf+ncf``) is the control: a
text blend that beats MF only as much as that one shows the gain of averaging two models, not
of reading reviews.

Writes ``blend.md`` and ``blend.json`` under ``--storage`` (the member predictions under
``--storage``/predictions/, made again when a member's run holds other weights than the ones
that made them); the last line printed is one JSON object with the per-seed figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
from compare import REFERENCE, VARIANTS, run_variant, split_seeds, summary

from rayrec.data import storage
from rayrec.data.prepared import read_table
from rayrec.eval.metrics import RATING_RANGE
from rayrec.logs import configure
from rayrec.serve.load import open_run
from rayrec.serve.predict import predict
from rayrec.train.checkpoint import WEIGHTS_FILE
from rayrec.train.trainer import ensure_ray

SPLITS = ("val", "test")
MADE_BY = "_SUCCESS"  # in a split's predictions: the SHA-256 of the weights that made them


def member_predictions(run_dir: str, out: str) -> dict[str, pa.Table]:
    """A run's clipped predictions of validation and test, in pair order, cached under out
    with the SHA-256 of the weights that made them: made again when the run's weights are
    others (a run trained again under the same name) or the last write was interrupted."""
    weights = storage.sha256(storage.join(run_dir, WEIGHTS_FILE))
    served = None
    tables = {}
    for split in SPLITS:
        target = storage.join(out, split)
        made_by = Path(target, MADE_BY)
        if not made_by.exists() or made_by.read_text() != weights:
            shutil.rmtree(target, ignore_errors=True)
            served = served or open_run(run_dir, None, use_gpu=False, batch_size=None)[0]
            predict(served, split, target)
            made_by.write_text(weights)
        tables[split] = read_table(target).sort_by(
            [("user_idx", "ascending"), ("item_idx", "ascending")]
        )
    return tables


def fit_blend(val: np.ndarray, ratings: np.ndarray) -> np.ndarray:
    """Least-squares weights ``[w0, w_1..w_K]`` of ``ratings ~ w0 + val @ w``."""
    design = np.column_stack([np.ones(len(val)), val])
    weights, *_ = np.linalg.lstsq(design, ratings, rcond=None)
    return weights


def apply_blend(weights: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    return np.clip(weights[0] + predictions @ weights[1:], *RATING_RANGE)


def check_same_pairs(tables: dict[str, dict[str, pa.Table]]) -> None:
    """Every member scored the same pairs in the same order (blend_seed stacks their columns)."""
    first, *others = tables
    for m in others:
        for split in SPLITS:
            same = all(
                np.array_equal(
                    tables[m][split].column(key).to_numpy(),
                    tables[first][split].column(key).to_numpy(),
                )
                for key in ("user_idx", "item_idx")
            )
            if not same:
                raise SystemExit(f"{m}: its {split} predictions are not of the same pairs")


def blend_seed(members: list[str], tables: dict[str, dict[str, pa.Table]]) -> dict:
    """Fit on validation, score on test: one seed's blend figures."""
    columns = {
        split: np.column_stack(
            [tables[m][split].column("prediction").to_numpy() for m in members]
        ).astype(np.float64)
        for split in SPLITS
    }
    ratings = {
        split: tables[members[0]][split].column("rating").to_numpy().astype(np.float64)
        for split in SPLITS
    }
    weights = fit_blend(columns["val"], ratings["val"])
    mse = {
        split: float(np.mean((apply_blend(weights, columns[split]) - ratings[split]) ** 2))
        for split in SPLITS
    }
    return {"weights": weights.tolist(), "val_mse": mse["val"], "test_mse": mse["test"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="+", required=True, help="one prepared split per seed")
    parser.add_argument("--seeds", nargs="+", type=int, help="default: each split's manifest seed")
    parser.add_argument("--storage", required=True, help="bench/compare.py's runs")
    parser.add_argument("--blends", nargs="+", required=True, help="VARIANT+VARIANT[+...]")
    parser.add_argument("--verbose", action="store_true", help="Ray's own console output")
    args = parser.parse_args()
    log = configure("bench-blend", verbose=args.verbose)
    print(f"Ray's log: {log}")
    seeds = split_seeds(args.data, args.seeds)
    blends = [b.split("+") for b in args.blends]
    members = sorted({m for b in blends for m in b} | {REFERENCE})
    unknown = set(members) - VARIANTS.keys()
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; known: {sorted(VARIANTS)}")
    ensure_ray()
    root = storage.absolute(args.storage)
    figures: dict[str, dict] = {}
    reference: list[float] = []
    per_seed: list[dict[str, dict[str, pa.Table]]] = []
    for data, seed in zip(args.data, seeds, strict=True):
        runs = {m: run_variant(m, data, seed, root, []) for m in members}
        tables = {
            m: member_predictions(
                run["output"], storage.join(root, "predictions", f"{m}-seed{seed}")
            )
            for m, run in runs.items()
        }
        check_same_pairs(tables)
        per_seed.append(tables)
        reference.append(runs[REFERENCE]["test"]["mse"])
    head = " | ".join(f"seed {s}" for s in seeds)
    lines = [
        f"| blend | {head} | mean ± std | Δ vs MF per seed | wins "
        f"| seed {seeds[0]} weights: w0; members |",
        "|---|" + "---:|" * (len(seeds) + 3) + "---|",
    ]
    for blend in blends:
        runs = [blend_seed(blend, tables) for tables in per_seed]
        mse = [r["test_mse"] for r in runs]
        diffs = [m - ref for m, ref in zip(mse, reference, strict=True)]
        name = "+".join(blend)
        figures[name] = {"runs": runs, "test_mse": mse, "paired_diff": diffs}
        w = runs[0]["weights"]
        lines.append(
            f"| {name} | "
            + " | ".join(f"{m:.4f}" for m in mse)
            + f" | {summary(mse)} | "
            + " / ".join(f"{d:+.4f}" for d in diffs)
            + f" | {sum(d < 0 for d in diffs)}/{len(diffs)} | {w[0]:.2f}; "
            + ", ".join(f"{x:.2f}" for x in w[1:])
            + " |"
        )
    text = "\n".join(lines)
    print("\n" + text)
    summary_json = {"seeds": seeds, "biased_mf_test_mse": reference, **figures}
    storage.write_json(storage.join(root, "blend.json"), summary_json)
    Path(root, "blend.md").write_text(f"Blends on {', '.join(args.data)}\n\n{text}\n")
    print(json.dumps(summary_json))


if __name__ == "__main__":
    main()
