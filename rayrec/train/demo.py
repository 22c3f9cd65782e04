"""``rayrec demo`` (``jobs/demo.py``): the main job, end to end on one prepared dataset.

1. prepare the embedded synthetic cross-domain corpus (or use ``--data``);
2. U-BERT pretraining on the other domains' reviews of the target domain's users;
3. U-BERT fine-tuning on the target domain, from the pretraining's ``model.safetensors``;
4. the global-mean and biased-MF baselines on the same split;
5. a table of the three models' test MSE (and RMSE, MAE).

Each step is a ``TorchTrainer`` run with its model's preset (``rayrec/configs``) and the
quick settings of the embedded corpus (``EMBEDDED_SETTINGS``: short reviews, few steps, the
presets' all-MiniLM-L6-v2 backbone), so the whole job runs in minutes on two CPU cores; the
same settings apply with ``--data``. ``--set KEY=VALUE`` applies to every run, except
``model.params.*`` which applies to the U-BERT runs only; ``--epochs``, ``--num-workers``,
``--storage`` and ``--use-gpu`` apply to every run.
"""

from __future__ import annotations

import argparse
import time

from rayrec.data import storage
from rayrec.train.cli import CliError, config_from_args
from rayrec.train.corpus import EMBEDDED_SETTINGS, default_dataset
from rayrec.train.trainer import ensure_ray, fit


def _run(args: argparse.Namespace, model: str, name: str, data: str, *extra: str) -> dict:
    """One run of the demo: ``model``'s preset, the demo's settings, the user's overrides."""
    own = [o for o in args.overrides if model.startswith("ubert") or not o.startswith("model.")]
    overrides = [*EMBEDDED_SETTINGS[model], *own, *extra]
    run_args = argparse.Namespace(
        **{**vars(args), "overrides": overrides, "name": name, "data": data}
    )
    cfg = config_from_args(run_args, model=model)
    print(f"\n=== {model} ===", flush=True)
    return fit(cfg, data)


def run_demo(args: argparse.Namespace) -> int:
    """Entry point of ``rayrec demo``."""
    if args.config:
        raise CliError("demo runs four presets; use --set KEY=VALUE instead of --config")
    started = time.perf_counter()
    ensure_ray()  # before preparing data, which would otherwise start Ray without worker logs
    data = args.data or default_dataset()
    stamp = args.name or f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    pretrain = _run(args, "ubert_pretrain", f"{stamp}-ubert-pretrain", data)
    weights = pretrain["weights"]
    if weights is None or not storage.exists(weights):
        raise CliError("pretraining exported no model.safetensors (run.export_weights=false?)")
    runs = {
        "U-BERT (pretrained + fine-tuned)": _run(
            args,
            "ubert_finetune",
            f"{stamp}-ubert-finetune",
            data,
            f"model.params.pretrained={weights}",
        ),
        "global mean": _run(args, "global_mean", f"{stamp}-global-mean", data),
        "biased MF": _run(args, "biased_mf", f"{stamp}-biased-mf", data),
    }
    print(f"\nTest metrics on {data} (best validation checkpoint of each run)")
    print(f"{'model':<34} {'MSE':>8} {'RMSE':>8} {'MAE':>8} {'epochs':>7} {'samples/s':>10}")
    for label, result in runs.items():
        test = result["test"]
        print(
            f"{label:<34} {test['mse']:>8.4f} {test['rmse']:>8.4f} {test['mae']:>8.4f} "
            f"{result['epochs_run']:>7d} {result['samples_per_s']:>10.1f}"
        )
    print(f"pretraining: best val loss {pretrain['best_val'].get('val_loss', float('nan')):.4f}")
    print(f"total wall time {time.perf_counter() - started:.0f} s")
    return 0
