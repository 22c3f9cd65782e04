"""Training throughput (samples/s) of rayrec models through the real TorchTrainer.

    python bench/train_throughput.py                          # default models, embedded corpus
    python bench/train_throughput.py --model sifn --engine ddp --engine deepspeed:2 \
        --steps 40 --data s3://BUCKET/prepared/electronics --set model.params.backbone=tiny

Each (model, engine) pair is one run of one epoch of ``--steps`` steps; samples/s counts
training samples over all workers from the first batch on (Ray Data's start-up excluded).
Results go to stdout and ``bench/out/train_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from rayrec.train.config import load_config
from rayrec.train.corpus import default_dataset
from rayrec.train.trainer import ensure_ray, fit

DEFAULT_MODELS = ("biased_mf", "deepconn", "ubert_finetune")
OUT = Path(__file__).resolve().parent / "out" / "train_throughput.json"


def engine_overrides(engine: str) -> list[str]:
    """``ddp``, ``deepspeed:STAGE`` or ``deepspeed:STAGE:bf16`` as config overrides."""
    kind, *rest = engine.split(":")
    overrides = [f"engine.kind={kind}"]
    if rest:
        overrides.append(f"engine.zero_stage={rest[0]}")
    if len(rest) > 1:
        overrides.append(f"engine.precision={rest[1]}")
    return overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", default=[])
    parser.add_argument(
        "--engine", action="append", default=[], help="ddp | deepspeed:STAGE[:bf16]"
    )
    parser.add_argument("--data", help="prepared dataset URI; default: the embedded corpus")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()

    data = args.data or default_dataset()
    ensure_ray()
    rows = []
    with tempfile.TemporaryDirectory() as storage:
        for model in args.model or DEFAULT_MODELS:
            for engine in args.engine or ["deepspeed:0"]:
                cfg = load_config(
                    model,
                    overrides=[
                        "train.epochs=1",
                        f"train.max_steps_per_epoch={args.steps}",
                        f"train.batch_size={args.batch_size}",
                        "train.max_eval_batches=1",
                        f"run.num_workers={args.num_workers}",
                        f"run.storage={storage}",
                        f"run.name={model}-{engine.replace(':', '-')}",
                        "run.export_weights=false",
                        *engine_overrides(engine),
                        *args.overrides,
                    ],
                )
                result = fit(cfg, data)
                rows.append(
                    {
                        "model": model,
                        "engine": engine,
                        "workers": args.num_workers,
                        "batch_size": args.batch_size,
                        "steps": result["steps"],
                        "samples_per_s": result["samples_per_s"],
                        "train_seconds": result["train_seconds"],
                        "wall_seconds": result["wall_seconds"],
                    }
                )
    print(f"\n{'model':<16} {'engine':<14} {'workers':>7} {'samples/s':>10} {'wall s':>7}")
    for r in rows:
        print(
            f"{r['model']:<16} {r['engine']:<14} {r['workers']:>7} "
            f"{r['samples_per_s']:>10.1f} {r['wall_seconds']:>7.0f}"
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"data": data, "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
