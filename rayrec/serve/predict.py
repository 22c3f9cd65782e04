"""``rayrec predict RUN_DIR --split test --out URI``: score a split's pairs with a run's weights.

The rows of ``pairs/{split}.parquet`` (user, item, rating, the pair's two documents) are read
with Ray Data and scored by :class:`Predictor` actors (``map_batches`` over an actor pool, one
GPU or one CPU each), each holding the run's model once (:class:`~rayrec.serve.load.Scorer`).
Rating models' predictions are clipped to :data:`~rayrec.eval.metrics.RATING_RANGE` as the
evaluation clips them, so the MSE of the written file is the run's test MSE for
``--split test`` (fp32 runs: a bf16 run was evaluated in bf16, predict runs in fp32).
BERT-RS's ``prediction`` is its logit (the score it ranks on), unclipped.

Output (parquet files under ``--out``, a local directory or s3://, which must not exist yet
or be empty): ``user``, ``item`` (the original ids of the dataset's ``ids/`` maps),
``rating``, ``prediction``, ``user_idx``, ``item_idx``, one row per pair of the split.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa

from rayrec.data import storage
from rayrec.data.parquet_reads import read_parquet
from rayrec.data.prepared import read_table
from rayrec.eval.metrics import RATING_RANGE
from rayrec.serve.load import Scorer, ServedRun, actor_options, id_column, pool


class Predictor(Scorer):
    """A Ray Data actor: a block of pair rows -> their predictions with the original ids."""

    def __init__(self, served: dict[str, Any]) -> None:
        super().__init__(served)
        self.users = id_column(self.dataset, "user")
        self.items = id_column(self.dataset, "item")

    def __call__(self, rows: pa.Table) -> pa.Table:
        prediction = self.score(rows)
        if self.spec.task == "rating":
            prediction = np.clip(prediction, *RATING_RANGE)
        users = rows.column("user_idx").to_numpy()
        items = rows.column("item_idx").to_numpy()
        return pa.table(
            {
                "user": pa.array(self.users[users], pa.string()),
                "item": pa.array(self.items[items], pa.string()),
                "rating": rows.column("rating"),
                "prediction": pa.array(prediction, pa.float32()),
                "user_idx": rows.column("user_idx"),
                "item_idx": rows.column("item_idx"),
            }
        )


def predict(served: ServedRun, split: str, out: str, actors: int | None = None) -> pa.Table:
    """Score ``pairs/{split}.parquet`` into ``out``; returns the written rows, read back."""
    source = storage.join(served.data_uri, "pairs", f"{split}.parquet")
    n_rows = read_table(source, columns=["user_idx"]).num_rows
    size, blocks = pool(served.use_gpu, actors, math.ceil(n_rows / served.batch_size))
    print(
        f"predict: {n_rows} {split} pairs of {served.data_uri} with {served.spec.name} "
        f"({served.run_dir}), {size} actor(s) of " + ("1 GPU" if served.use_gpu else "1 CPU")
    )
    scored = (
        read_parquet(source)
        .repartition(blocks)
        .map_batches(Predictor, **actor_options(served, size))
    )
    scored.write_parquet(out)
    return read_table(out)
