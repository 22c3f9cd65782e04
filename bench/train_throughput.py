"""Training throughput (samples/s): Ray Train's overhead and ZeRO-2 against DDP.

    python bench/train_throughput.py                         # SIFN and U-BERT fine-tuning
    python bench/train_throughput.py --data /tmp/mi --steps 40 --set model.params.backbone=tiny

For each model, on the same prepared data, batch size and number of steps, in one run:

1. a plain single-process PyTorch loop (``plain_loop.py``) against rayrec's TorchTrainer
   with 1 worker and DeepSpeed stage 0: the ratio is Ray Train's (and DeepSpeed's) overhead;
2. rayrec with 2 workers, DeepSpeed ZeRO-2 against 2 workers ``DistributedDataParallel``.

samples/s counts training samples over all workers from the first batch on (Ray Data's and
the worker group's start-up excluded; they are in the wall time). Results go to stdout and
``bench/out/train_throughput.json``. Every rayrec run leaves one CPU of the cluster to Ray
Data's read tasks: on a 2-CPU machine the 2-worker runs get 0.5 CPU (1 thread) per worker.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import ray
from plain_loop import plain_samples_per_s

from rayrec.train.config import TrainConfig, load_config
from rayrec.train.corpus import default_dataset
from rayrec.train.trainer import ensure_ray, fit

DEFAULT_MODELS = ("sifn", "ubert_finetune")
OUT = Path(__file__).resolve().parent / "out" / "train_throughput.json"
# (label, workers, engine overrides)
RAYREC_RUNS = (
    ("1 worker, DeepSpeed stage 0", 1, ["engine.kind=deepspeed", "engine.zero_stage=0"]),
    ("2 workers, DeepSpeed ZeRO-2", 2, ["engine.kind=deepspeed", "engine.zero_stage=2"]),
    ("2 workers, DDP", 2, ["engine.kind=ddp"]),
)


def bench_config(model: str, args: argparse.Namespace, storage: str, *extra: str) -> TrainConfig:
    return load_config(
        model,
        overrides=[
            "train.epochs=1",
            f"train.max_steps_per_epoch={args.steps}",
            f"train.batch_size={args.batch_size}",
            "train.max_eval_batches=1",
            "train.eval_batch_size=8",
            f"run.storage={storage}",
            "run.export_weights=false",
            *args.overrides,
            *extra,
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", default=[])
    parser.add_argument("--data", help="prepared dataset URI; default: the embedded corpus")
    parser.add_argument("--steps", type=int, default=30, help="training batches per run")
    parser.add_argument("--batch-size", type=int, default=16, help="per worker")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()

    ensure_ray()
    cluster_cpus = ray.cluster_resources()["CPU"]
    data = args.data or default_dataset()
    rows = []
    with tempfile.TemporaryDirectory() as storage:
        for model in args.model or DEFAULT_MODELS:
            plain = plain_samples_per_s(bench_config(model, args, storage), data, args.steps)
            rows.append(
                {
                    "model": model,
                    "run": "plain PyTorch, 1 process",
                    "workers": 1,
                    "samples_per_s": plain,
                    "wall_seconds": None,
                }
            )
            for label, workers, engine in RAYREC_RUNS:
                name = f"{model}-{label.replace(' ', '').replace(',', '-')}"
                cpus = min(1.0, cluster_cpus / workers)
                cfg = bench_config(
                    model,
                    args,
                    storage,
                    f"run.num_workers={workers}",
                    f"run.cpus_per_worker={cpus:g}",
                    f"run.name={name}",
                    *engine,
                )
                result = fit(cfg, data)
                rows.append(
                    {
                        "model": model,
                        "run": label,
                        "workers": workers,
                        "cpus_per_worker": cpus,
                        "samples_per_s": result["samples_per_s"],
                        "wall_seconds": result["wall_seconds"],
                    }
                )
    print(f"\n{'model':<16} {'run':<30} {'samples/s':>10} {'wall s':>7}")
    for r in rows:
        wall = f"{r['wall_seconds']:.0f}" if r["wall_seconds"] else "-"
        print(f"{r['model']:<16} {r['run']:<30} {r['samples_per_s']:>10.1f} {wall:>7}")
    print("\nratios (samples/s over samples/s, same model, batch and data):")
    for model in args.model or DEFAULT_MODELS:
        rate = {r["run"]: r["samples_per_s"] for r in rows if r["model"] == model}
        overhead = rate["1 worker, DeepSpeed stage 0"] / rate["plain PyTorch, 1 process"]
        zero = rate["2 workers, DeepSpeed ZeRO-2"] / rate["2 workers, DDP"]
        print(f"  {model}: rayrec 1 worker / plain loop {overhead:.2f}; ZeRO-2 / DDP {zero:.2f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"data": data, "args": vars(args), "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
