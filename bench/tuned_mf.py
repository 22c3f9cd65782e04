"""The global mean and the shipped biased MF preset on prepared datasets, as `rayrec train`.

    for S in 0 1 2; do
      rayrec prepare --source amazon2014:data/amazon-2014/Musical_Instruments_5.csv.zip \
        --seed $S --out /tmp/mi/seed$S
    done
    python bench/tuned_mf.py /tmp/mi/seed0 /tmp/mi/seed1 /tmp/mi/seed2

Every model trains with its preset unchanged (``rayrec/configs/<model>.yaml``; the biased MF
preset's hyper-parameters were chosen on validation, see its header) through
:func:`rayrec.train.trainer.fit`, the function `rayrec train` runs: the checkpoint of the best
validation MSE is kept and tested once. Prints one table row per dataset and model (the
dataset's split seed from its manifest, best epoch counted from 0 as in ``results.json``,
validation and test MSE) and, last, one
JSON object with the same figures, one list entry per dataset:
``{"data": [...], "seeds": [...], "global_mean_val": [...], "global_mean_test": [...], ...}``.
Runs go under ``--storage`` (default: a new temporary folder, printed).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from rayrec.data.prepared import PreparedDataset
from rayrec.train.config import load_config
from rayrec.train.trainer import fit

MODELS = ("global_mean", "biased_mf")


def train_preset(model: str, data: str, storage: str, name: str) -> tuple[int, float, float]:
    """``model``'s preset on ``data``: (best epoch, its validation MSE, its test MSE)."""
    cfg = load_config(model, overrides=[f"run.storage={storage}", f"run.name={name}"])
    results = fit(cfg, data)
    return results["best_epoch"], results["best_val"]["val_mse"], results["test"]["mse"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="+", help="prepared datasets (local or s3://)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="presets to train")
    parser.add_argument("--storage", help="where the runs go (default: a new temporary folder)")
    args = parser.parse_args()
    storage = args.storage or tempfile.mkdtemp(prefix="tuned-mf-")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    print(f"runs under {storage}", flush=True)
    figures: dict[str, list] = {"data": [], "seeds": []}
    rows = []
    for data in args.data:
        seed = PreparedDataset(data).manifest["seed"]
        figures["data"].append(data)
        figures["seeds"].append(seed)
        for model in args.models:
            name = f"{model}-seed{seed}-{stamp}"
            epoch, val, test = train_preset(model, data, storage, name)
            figures.setdefault(f"{model}_val", []).append(round(val, 4))
            figures.setdefault(f"{model}_test", []).append(round(test, 4))
            rows.append(f"{seed:>4}  {model:<12}{epoch:>11}{val:>9.4f}{test:>10.4f}  {data}")
    print(f"\n{'seed':>4}  {'model':<12}{'best epoch':>11}{'val MSE':>9}{'test MSE':>10}  data")
    print("\n".join(rows))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
