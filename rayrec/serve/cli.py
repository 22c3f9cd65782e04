"""``rayrec predict`` and ``rayrec recommend``: a finished run's weights on its prepared data.

Both open the run (:func:`~rayrec.serve.load.open_run`: ``results.json``, the weights, the
dataset checked against the run's manifest sha256), start or join Ray, and write parquet to
``--out`` (local or s3://). They end with one summary: predict the error of the written
predictions (and the run's own test figures for ``--split test``), recommend the lists'
size.
"""

from __future__ import annotations

import argparse

import numpy as np
import pyarrow as pa

from rayrec.errors import CliError
from rayrec.serve.load import check_out, open_run
from rayrec.serve.predict import predict
from rayrec.serve.recommend import recommend


def rating_errors(table: pa.Table) -> dict[str, float]:
    """MSE and MAE of ``prediction`` against ``rating`` (float64 sums, as evaluation)."""
    error = table.column("prediction").to_numpy().astype(np.float64) - table.column(
        "rating"
    ).to_numpy().astype(np.float64)
    return {"mse": float(np.mean(error**2)), "mae": float(np.mean(np.abs(error)))}


def run_predict(args: argparse.Namespace) -> int:
    """Entry point of ``rayrec predict``."""
    check_out(args.out)
    served, results = open_run(args.run_dir, args.data, args.use_gpu, args.batch_size)
    table = predict(served, args.split, args.out, args.actors)
    print(f"predict: {table.num_rows} rows -> {args.out}")
    if served.spec.task == "rating":
        errors = rating_errors(table)
        line = f"  {args.split} mse {errors['mse']:.6f} mae {errors['mae']:.6f}"
        test = results.get("test", {})
        if args.split == "test" and {"mse", "mae"} <= test.keys():
            line += f" (results.json: test mse {test['mse']:.6f} mae {test['mae']:.6f}"
            if limit := served.cfg.train.max_eval_batches:
                line += f", on part of the split: max_eval_batches={limit} per worker"
            line += ")"
        print(line)
    return 0


def run_recommend(args: argparse.Namespace) -> int:
    """Entry point of ``rayrec recommend``."""
    if args.k < 1:
        raise CliError(f"--k {args.k}: must be at least 1")
    if args.users is not None and args.users < 1:
        raise CliError(f"--users {args.users}: must be at least 1")
    check_out(args.out)
    served, _ = open_run(args.run_dir, args.data, args.use_gpu, args.batch_size)
    table = recommend(served, args.k, args.out, args.users, args.actors)
    users = len(set(table.column("user_idx").to_pylist()))
    print(f"recommend: {table.num_rows} rows, {users} users -> {args.out}")
    return 0
