"""Where SAFMR's rating signal is lost: linear read-outs of a trained run's features.

    python bench/compare.py --data /tmp/mi/seed0 --storage /tmp/compare --variants safmr_wv
    python bench/safmr_readout.py --run /tmp/compare/safmr_wv-seed0

SAFMR predicts with its source network only: ``C_L`` (the Transform of the user's and the
item's documents, eq. 9-10) read by SA-FM_B (eq. 14). Eq. 13 trains the source side to
regress ``X_A``, the target network's features of the pair's own review. This script loads a
run's exported weights (``model.safetensors``, its best validation epoch) and asks, for each
stage, how much of the rating a ridge regression on that stage's (standardised) features
recovers on the validation split, fitted on the training pairs (``--train-rows``: the first N):

=================  ==========================================================================
read-out           features
=================  ==========================================================================
``model``          the run's own prediction, SA-FM_B(C_L) (no fit)
``C_L``            eq. 10's output, what SA-FM_B reads
``X_B;X_C``        the source CNNs' document features, eq. 9's input
``X_A``            the target CNN's features of the pair's own review (not available at test
                   time: the ceiling eq. 13 regresses towards)
``mean X_A``       ``X_A`` averaged over the user's and over the item's training reviews (a
                   training pair leaves its own out, as its documents do): what eq. 13's
                   least-squares optimum, ``E[X_A | documents]``, could carry at best
``mean rating``    the user's and the item's mean training rating (a bias model's content)
=================  ==========================================================================

Each read-out's validation MSE is the best over a grid of ridge strengths, chosen on
validation itself: an optimistic figure for what a stage holds, not a model to report. The
global mean's validation MSE is the floor every row should beat. The last line printed is one
JSON object with the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from rayrec.data.prepared import PreparedDataset
from rayrec.errors import CliError
from rayrec.eval.metrics import RATING_RANGE
from rayrec.models.baselines import document
from rayrec.models.safmr import SAFMR
from rayrec.serve.load import SERVE_READS, Scorer, ServedRun, check_data, load_run_config
from rayrec.train.checkpoint import WEIGHTS_FILE, read_results
from rayrec.train.collate import Collator
from rayrec.train.loop import token_info

RIDGE_STRENGTHS = (1.0, 10.0, 100.0, 1_000.0, 10_000.0)
BATCH = 256


def open_safmr(run_dir: str) -> Scorer:
    """The run's model (its best weights) and evaluation collate step, on this process."""
    results = read_results(run_dir, SERVE_READS)
    cfg = load_run_config(run_dir, results, use_gpu=False)
    if cfg.model.name != "safmr":
        raise CliError(f"{run_dir}: a {cfg.model.name} run, not safmr")
    dataset = check_data(results, None)
    served = ServedRun(
        run_dir=run_dir,
        config=cfg.model_dump(mode="json"),
        data_uri=dataset.uri,
        weights=str(Path(run_dir, WEIGHTS_FILE)),
        use_gpu=False,
        batch_size=BATCH,
    )
    return Scorer(dataclasses.asdict(served))


@torch.inference_mode()
def stage_features(scorer: Scorer, rows: pa.Table) -> dict[str, np.ndarray]:
    """Per pair: the model's prediction, ``C_L``, ``[X_B; X_C]`` and ``X_A`` (eval mode)."""
    model: SAFMR = scorer.model
    cfg = scorer.served.cfg
    tokens = token_info(cfg, scorer.dataset.manifest)
    with_target = Collator(scorer.spec, scorer.reviews, tokens, train=True, seed=cfg.train.seed)
    parts: dict[str, list[np.ndarray]] = {"model": [], "C_L": [], "X_B;X_C": [], "X_A": []}
    for start in range(0, rows.num_rows, BATCH):
        chunk = rows.slice(start, BATCH)
        batch = scorer.collate(chunk)
        x_b = model.activation(model.user_cnn(*document(batch, "user")))
        x_c = model.activation(model.item_cnn(*document(batch, "item")))
        c_l = model.source_features(batch)
        prediction, _ = model.source_fm(c_l)  # the evaluation forward, SA-FM_B(C_L)
        parts["model"].append(prediction[:, None].numpy())
        parts["C_L"].append(c_l.numpy())
        parts["X_B;X_C"].append(torch.cat([x_b, x_c], dim=-1).numpy())
        parts["X_A"].append(model.target_features(with_target(chunk)).numpy())
    return {name: np.concatenate(values).astype(np.float64) for name, values in parts.items()}


def side_means(
    keys_train: np.ndarray, values: np.ndarray, keys: np.ndarray, leave_own_out: bool
) -> np.ndarray:
    """Mean of ``values`` over each key's training rows (the row itself left out for a
    training row); the overall mean where a key has no other row."""
    n = int(max(keys_train.max(), keys.max())) + 1
    sums = np.zeros((n, values.shape[1]))
    counts = np.zeros(n)
    np.add.at(sums, keys_train, values)
    np.add.at(counts, keys_train, 1)
    total, count = sums[keys], counts[keys]
    if leave_own_out:
        total, count = total - values, count - 1
    means = total / np.maximum(count, 1)[:, None]
    return np.where(count[:, None] > 0, means, values.mean(0))


def ridge_val_mse(
    x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
) -> tuple[float, float]:
    """The best validation MSE (clipped to the rating range) over :data:`RIDGE_STRENGTHS` of
    a ridge fit on standardised features (unpenalised intercept), and its strength."""
    mean, std = x_train.mean(0), x_train.std(0) + 1e-12
    a = np.c_[(x_train - mean) / std, np.ones(len(x_train))]
    b = np.c_[(x_val - mean) / std, np.ones(len(x_val))]
    penalty = np.diag([1.0] * x_train.shape[1] + [0.0])
    best = (float("inf"), 0.0)
    for strength in RIDGE_STRENGTHS:
        w = np.linalg.solve(a.T @ a + strength * penalty, a.T @ y_train)
        mse = float(np.mean((np.clip(b @ w, *RATING_RANGE) - y_val) ** 2))
        best = min(best, (mse, strength))
    return best


def readouts(scorer: Scorer, train_rows: int | None = None) -> dict[str, dict[str, float]]:
    """Validation MSE of every read-out (module docstring), fitted on the first
    ``train_rows`` training pairs (all by default)."""
    dataset: PreparedDataset = scorer.dataset
    train = dataset.pairs("train")
    if train_rows is not None:
        train = train.slice(0, train_rows)
    val = dataset.pairs("val")
    y_train = train.column("rating").to_numpy().astype(np.float64)
    y_val = val.column("rating").to_numpy().astype(np.float64)
    f_train, f_val = stage_features(scorer, train), stage_features(scorer, val)
    out = {
        "global mean": {"val_mse": float(np.mean((y_train.mean() - y_val) ** 2))},
        "model": {
            "val_mse": float(np.mean((np.clip(f_val["model"][:, 0], *RATING_RANGE) - y_val) ** 2))
        },
    }
    for stage in ("C_L", "X_B;X_C", "X_A"):
        mse, strength = ridge_val_mse(f_train[stage], y_train, f_val[stage], y_val)
        out[stage] = {
            "val_mse": mse,
            "ridge": strength,
            "spread": float(f_val[stage].std(0).mean()),
        }
    keys = {
        side: (train.column(f"{side}_idx").to_numpy(), val.column(f"{side}_idx").to_numpy())
        for side in ("user", "item")
    }
    for name, values in (("mean X_A", f_train["X_A"]), ("mean rating", y_train[:, None])):
        x_train = np.hstack([side_means(k_tr, values, k_tr, True) for k_tr, _ in keys.values()])
        x_val = np.hstack([side_means(k_tr, values, k_va, False) for k_tr, k_va in keys.values()])
        mse, strength = ridge_val_mse(x_train, y_train, x_val, y_val)
        out[name] = {"val_mse": mse, "ridge": strength}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a finished safmr run's directory")
    parser.add_argument(
        "--train-rows",
        type=int,
        help="fit the read-outs on the first N training pairs (default: all)",
    )
    args = parser.parse_args(argv)
    try:
        scorer = open_safmr(args.run)
    except CliError as err:
        parser.error(str(err))
    torch.set_num_threads(os.cpu_count() or 1)  # the Scorer takes one thread (a Ray actor's)
    figures = readouts(scorer, args.train_rows)
    floor = figures["global mean"]["val_mse"]
    print("| read-out | val MSE | vs global mean | ridge |\n|---|---:|---:|---:|")
    for name, row in figures.items():
        gain = 100 * (row["val_mse"] / floor - 1)
        print(f"| {name} | {row['val_mse']:.4f} | {gain:+.1f}% | {row.get('ridge', '-')} |")
    print(json.dumps({"run": args.run, "train_rows": args.train_rows, "readouts": figures}))


if __name__ == "__main__":
    main()
