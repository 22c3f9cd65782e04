"""``rayrec demo`` (``jobs/demo.py``): the main job, on real reviews, in minutes on 2 CPU cores.

1. prepare the Amazon Musical Instruments 5-core reviews shipped in the repository's ``data/``
   (10,261 reviews; 80/10/10 split of the pairs, seed 0: 1,026 test ratings), or use ``--data``;
2. train, on that one split, the global mean, the tuned biased MF, SIFN (frozen MiniLM: the
   review states are read from the dataset's review-state store, built once by ``rayrec
   encode``'s Ray Data job on the first run) and U-BERT without pre-training whose review
   encoder is frozen too (``trainable_layers=0``: it reads the same store, and its user/item
   encoders, co-matching and prediction layers train);
3. print each model's test MSE, RMSE and MAE (best validation epoch) and its paired difference
   to biased MF on the same test pairs.

Every run is a ``TorchTrainer`` run of its model's preset (``rayrec/configs``) with the
settings of :data:`DEMO_RUNS` on top, chosen on the validation split only. One split is one
paired comparison, not evidence across splits: ``bench/compare.py`` runs the three-seed grid.
``--set KEY=VALUE`` applies to every run whose model has that key (``model.params.X`` only to
the models with a parameter X); ``--epochs``, ``--num-workers``, ``--storage`` and
``--use-gpu`` apply to every run. U-BERT's cross-domain pre-training on the synthetic corpus
is ``python jobs/pretrain_ubert.py``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from rayrec.data.prepared import PreparedDataset
from rayrec.models.registry import get_model_spec
from rayrec.train.cli import CliError, check_data, config_from_args
from rayrec.train.corpus import real_dataset
from rayrec.train.trainer import ensure_ray, fit

REFERENCE = "biased MF"
# label -> (model, settings on top of its preset), chosen on seed 0's validation split
DEMO_RUNS: dict[str, tuple[str, list[str]]] = {
    "global mean": ("global_mean", []),
    REFERENCE: ("biased_mf", []),
    "SIFN (frozen MiniLM)": ("sifn", ["train.epochs=3", "train.log_every=50"]),
    "U-BERT P- (frozen MiniLM)": (
        "ubert_finetune",
        [
            "model.params.trainable_layers=0",
            "data.max_len=64",  # the length of SIFN's store: both read one store
            "train.lr=1e-3",
            "train.epochs=1",
            "train.max_steps_per_epoch=200",
            "train.log_every=50",
        ],
    ),
}


def applies(model: str, override: str) -> bool:
    """Whether a user ``--set`` override is for ``model`` (``model.params.X``: X is one of its
    parameters)."""
    key = override.partition("=")[0].strip()
    if not key.startswith("model."):
        return True
    field = key.removeprefix("model.params.")
    return field in get_model_spec(model).config_cls.model_fields


def _run(args: argparse.Namespace, label: str, name: str, data: str) -> dict[str, Any]:
    model, settings = DEMO_RUNS[label]
    own = [o for o in args.overrides if applies(model, o)]
    run_args = argparse.Namespace(
        **{**vars(args), "overrides": [*settings, *own], "name": name, "data": data}
    )
    cfg = config_from_args(run_args, model=model)
    print(f"\n=== {label} ({model}) ===", flush=True)
    return fit(cfg, data)


def table(runs: dict[str, dict[str, Any]]) -> str:
    """The test metrics of every run and their paired difference to biased MF."""
    reference = runs[REFERENCE]["test"]["mse"]
    lines = [
        f"{'model':<28} {'val MSE':>8} {'test MSE':>9} {'RMSE':>7} {'MAE':>7} "
        f"{'vs MF':>8} {'gain':>7}"
    ]
    for label, result in runs.items():
        test, val = result["test"], result["best_val"].get("val_mse", float("nan"))
        diff = test["mse"] - reference
        gain = -diff / reference
        lines.append(
            f"{label:<28} {val:>8.4f} {test['mse']:>9.4f} {test['rmse']:>7.4f} "
            f"{test['mae']:>7.4f} {diff:>+8.4f} {gain:>+7.1%}"
        )
    return "\n".join(lines)


def run_demo(args: argparse.Namespace) -> int:
    """Entry point of ``rayrec demo``."""
    if args.config:
        raise CliError("demo runs four presets; use --set KEY=VALUE instead of --config")
    check_data(args.data)  # before Ray starts
    started = time.perf_counter()
    ensure_ray()  # before preparing data, which would otherwise start Ray without worker logs
    data = args.data or real_dataset()
    stamp = args.name or f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    runs = {label: _run(args, label, f"{stamp}-{DEMO_RUNS[label][0]}", data) for label in DEMO_RUNS}
    n_test = PreparedDataset(data).manifest["counts"]["test"]
    print(f"\nTest metrics on {data} ({n_test} test ratings; best validation epoch of each run;")
    print("'vs MF': paired test MSE difference to biased MF on the same pairs, 'gain' its share)")
    print(table(runs))
    print(f"total wall time {time.perf_counter() - started:.0f} s")
    return 0
