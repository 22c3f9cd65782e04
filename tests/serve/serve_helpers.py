"""Shared by the serving tests: run the command line, read what it wrote, biased MF by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from safetensors.torch import load_file

from rayrec.cli import main
from rayrec.data.prepared import read_table


def results(run: Path) -> dict[str, Any]:
    return json.loads((run / "results.json").read_text())


def cli(*argv: str | Path) -> int:
    """``rayrec ARGV...`` in this process (the session's Ray instance)."""
    return main([str(a) for a in argv])


def written(out: str | Path) -> pa.Table:
    """Every parquet file under ``out`` (local or s3://) as one table."""
    return read_table(str(out))


def by_pair(table: pa.Table, column: str) -> dict[tuple[int, int], float]:
    users = table.column("user_idx").to_pylist()
    items = table.column("item_idx").to_pylist()
    return dict(zip(zip(users, items, strict=True), table.column(column).to_pylist(), strict=True))


def mse(prediction: np.ndarray, rating: np.ndarray) -> float:
    error = prediction.astype(np.float64) - rating.astype(np.float64)
    return float(np.mean(error**2))


def biased_mf_by_hand(run: Path, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``mu + b_u + b_i + p_u . q_i`` from the run's weights file, in numpy."""
    w = {k: v.double().numpy() for k, v in load_file(run / "model.safetensors").items()}
    dot = (w["user_factors.weight"][users] * w["item_factors.weight"][items]).sum(-1)
    return w["mu"] + w["user_bias.weight"][users, 0] + w["item_bias.weight"][items, 0] + dot
