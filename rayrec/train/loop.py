"""``train_loop_per_worker``: the one training loop of every model.

Per worker: read the prepared dataset's manifest and review index once, build the model from
the registry and the engine from the config, resume from ``ray.train.get_checkpoint()`` if
there is one (epoch and step counters continue), then per epoch:

1. train on this rank's part of the epoch's global permutation of the training table
   (:class:`~rayrec.train.datasets.TrainTable`, a function of ``(seed, epoch)``; tokens
   gathered by the collate step), every update phase of the model once per batch;
2. evaluate on this rank's shard of "val" (read by the worker, see
   :mod:`rayrec.train.datasets`); the metrics are all-reduced, so all ranks agree;
3. every rank saves its part of the checkpoint and calls ``ray.train.report(metrics,
   checkpoint)`` (Ray merges the ranks' files into one directory ``epoch_NNNN``).

A checkpoint counts (a resumed attempt continues from it, the best one is tested) only once
Ray Train's controller has registered it, which it does when every rank's report has arrived,
and a rank reports only after its upload has finished. A directory that a worker killed in
the middle of its upload left half-written in storage is never registered, so never resumed
from (``fault.kill_during_upload``; ``tests/train/test_resume_s3.py``).

Rank 0 also writes TensorBoard scalars into ``<run dir>/tensorboard/`` (per epoch, and the
running loss every ``train.log_every`` steps: :mod:`rayrec.report.tensorboard`).

With ``train.patience`` set, the run ends early once that many epochs in a row have not
bettered the best validation metric (:func:`epochs_since_best`; the ranks decide alike, as
their metrics are all-reduced, and a resumed attempt decides from the restored history),
counted from the model's ``patience_from()`` epoch on. A model that trains in stages runs the
update phases ``phases_at(epoch)`` in each epoch (SAFMR's ``target_epochs``).

After the last epoch every rank loads the best reported checkpoint (the model's default
metric on "val"), evaluates "test" with it, and rank 0 writes ``model.safetensors`` (the
ZeRO-3 partitions are gathered first) and ``final_metrics.json`` into the run directory,
which the driver turns into ``results.json`` (Ray Train's result holds the metrics of the
last checkpointed report only). Every rank reports the same number of times.
"""

from __future__ import annotations

import functools
import math
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import ray.train
import torch
from ray.train import CheckpointConsistencyMode

from rayrec import logs
from rayrec.data import storage
from rayrec.data.prepared import PreparedDataset
from rayrec.eval.metrics import Evaluation
from rayrec.models.base import ALL_PHASES, DataInfo, RecModel
from rayrec.models.registry import build_model, get_model_spec
from rayrec.progress import LINE_EVERY_S, Progress
from rayrec.report.tensorboard import EventLog
from rayrec.train.checkpoint import (
    WEIGHTS_FILE,
    checkpoint_directory,
    export_weights,
    read_state,
    write_state,
)
from rayrec.train.collate import Collator, TokenInfo
from rayrec.train.config import TrainConfig, TrainSection
from rayrec.train.datasets import (
    eval_batch_count,
    eval_batches,
    eval_splits,
    eval_table,
    load_train_table,
)
from rayrec.train.engine import Engine, build_engine
from rayrec.train.reviews import load_review_index
from rayrec.train.schedule import Schedule
from rayrec.train.warm_start import warm_start

EVAL_SEED_OFFSET = 1_000_003
FINAL_FILE = "final_metrics.json"  # evaluation masks (U-BERT) differ from training ones
FAULT_FILE = "fault_injected.json"  # which rank the fault injection killed, where and when


def data_info(manifest: dict[str, Any], tokens: TokenInfo) -> DataInfo:
    """The sizes a model needs, from the manifest and the collate sizes."""
    return DataInfo(
        n_users=int(manifest["counts"]["users"]),
        n_items=int(manifest["counts"]["items"]),
        n_domains=len(manifest["domains"]),
        vocab_size=tokens.vocab_size,
        pad_token_id=tokens.pad_token_id,
        global_mean=float(manifest["global_mean"]),
        max_len=tokens.max_len,
        reviews_per_doc=tokens.reviews_per_doc,
        mask_token_id=tokens.mask_token_id,
    )


def token_info(cfg: TrainConfig, manifest: dict[str, Any]) -> TokenInfo:
    d = cfg.data
    return TokenInfo.from_manifest(
        manifest,
        max_len=d.max_len,
        reviews_per_doc=d.reviews_per_doc,
        pair_max_len=d.pair_max_len,
    )


def build_module(cfg: TrainConfig, manifest: dict[str, Any], tokens: TokenInfo) -> RecModel:
    """The run's model as every worker builds it, from ``cfg.model`` and the dataset's sizes
    (a fine-tuning model loads its ``model.params.pretrained`` checkpoint here: the
    ``--pretrained`` flag of ``rayrec train``), then takes ``train.init_from``'s tensors
    (:mod:`rayrec.train.warm_start`)."""
    model = build_model(cfg.model.name, cfg.model.params, data_info(manifest, tokens))
    if cfg.train.init_from:
        warm_start(model, cfg.train.init_from)
    return model


def steps_per_epoch(cfg: TrainConfig, train_rows: int, world_size: int) -> int:
    """Micro steps per epoch and worker (equal shards: every worker runs as many)."""
    steps = max(1, (train_rows // world_size) // cfg.train.batch_size)
    return min(steps, cfg.train.max_steps_per_epoch or steps)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of torch's global generator (dropout) for ``epoch`` on ``rank``: a function of
    ``(train.seed, epoch, rank)`` only (stream 2 of the epoch's generators; 0 and 1 are the
    permutation and the negatives, :mod:`rayrec.train.datasets`)."""
    state = np.random.SeedSequence([seed, epoch, 2, rank]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 32 | int(state[1])


def epochs_since_best(history: list[dict[str, Any]], key: str, mode: str) -> int:
    """Epochs reported after the one with the best ``key`` (``mode`` "min" or "max"; the
    earliest of equal values counts as the best, so a tie is no improvement); 0 for an empty
    ``history`` or one whose last epoch is the best."""
    values = [m[key] for m in history if key in m]
    if not values:
        return 0
    sign = 1.0 if mode == "min" else -1.0
    best = min(range(len(values)), key=lambda i: (sign * values[i], i))
    return len(values) - 1 - best


def _format_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 60}m{seconds % 60:02d}s"


def eval_batch_limit(train: TrainSection, split: str) -> int | None:
    """The batches per worker of an evaluation of ``split``: ``max_val_batches`` bounds the
    validation split only, ``max_eval_batches`` every split."""
    if split == "val" and train.max_val_batches is not None:
        return train.max_val_batches
    return train.max_eval_batches


def torch_threads(cpus_per_worker: float | None) -> int:
    """The torch threads of a CPU worker: its whole CPUs, no more than the machine's (a local
    Ray may count more logical CPUs than it has, as the test suite's does)."""
    return max(1, min(int(cpus_per_worker or 1), os.cpu_count() or 1))


class Worker:
    """The state of one training worker (one rank)."""

    def __init__(self, loop_config: dict[str, Any]) -> None:
        self.cfg = TrainConfig.model_validate(loop_config["config"])
        self.run = loop_config
        ctx = ray.train.get_context()
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
        if not self.cfg.run.use_gpu:
            torch.set_num_threads(torch_threads(self.cfg.run.cpus_per_worker))
        self.spec = get_model_spec(self.cfg.model.name)
        dataset = PreparedDataset(loop_config["data_uri"])
        reviews = load_review_index(dataset.uri, self.cfg.data.token_cache_mib)
        self.eval_tables = {
            split: eval_table(self.spec, dataset, reviews, split, self.cfg.data)
            for split in eval_splits(self.spec)
        }
        self.tokens = token_info(self.cfg, dataset.manifest)
        seed = self.cfg.train.seed
        self.train_collate = Collator(self.spec, reviews, self.tokens, train=True, seed=seed)
        self.eval_collate = Collator(
            self.spec, reviews, self.tokens, train=False, seed=seed + EVAL_SEED_OFFSET
        )
        torch.manual_seed(seed)
        module = build_module(self.cfg, dataset.manifest, self.tokens)
        self.steps = steps_per_epoch(self.cfg, loop_config["rows"]["train"], self.world)
        optimizer_steps = math.ceil(self.steps / self.cfg.train.grad_accum)
        schedule = Schedule.from_config(self.cfg.train, optimizer_steps)
        device = ray.train.torch.get_device() if self.cfg.run.use_gpu else torch.device("cpu")
        self.engine: Engine = build_engine(module, self.cfg, schedule, device)
        self.state: dict[str, Any] = {"epoch": 0, "step": 0, "history": []}
        self.resumed_at: int | None = None  # the epoch a restored checkpoint continues at
        self.node_id = ray.get_runtime_context().get_node_id()
        self.events = EventLog(loop_config["output"], enabled=self.rank == 0)  # TensorBoard

    def log(self, message: str) -> None:
        """A progress line from rank 0 (written to stdout directly: Ray Train's patched
        ``print`` shows each line twice on the driver)."""
        if self.rank == 0:
            sys.stdout.write(f"[{self.cfg.model.name}] {message}\n")
            sys.stdout.flush()

    def restore(self) -> None:
        """Continue from the latest checkpoint of this run, if there is one."""
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return
        with checkpoint_directory(checkpoint) as directory:
            self.engine.load(directory)
            self.state = read_state(directory)
        self.resumed_at = self.state["epoch"]
        self.log(f"resumed after epoch {self.state['epoch']} (step {self.state['step']})")

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over this rank's part of the epoch's training rows; returns the epoch's
        train metrics."""
        cfg, model = self.cfg, self.engine.module
        phases = model.phases_at(epoch)
        model.train()
        table = load_train_table(
            self.run["data_uri"],
            self.spec.task,
            cfg.data.pretrain_val_every,
            cfg.data.pretrain_reviews,
            cfg.data.token_cache_mib,
        )
        # dropout draws from torch's global generator: seeded by (seed, epoch, rank) at the
        # start of every epoch, so that a run resumed from a checkpoint (or killed mid-epoch
        # and restarted at that epoch) draws the same masks as an uninterrupted run
        torch.manual_seed(epoch_seed(cfg.train.seed, epoch, self.rank))
        totals = dict.fromkeys(phases, 0.0)
        samples, n = 0, 0
        group = cfg.train.group_batches
        batches = table.batches(
            epoch,
            cfg.train.seed,
            self.rank,
            self.world,
            cfg.train.batch_size,
            self.steps,
            group_by=None if group == "none" else f"{group}_idx",
        )
        # the clock starts at the first batch: reading the table (first epoch) and drawing
        # the epoch's negatives are not training throughput
        started = time.perf_counter()
        for n, rows in enumerate(batches, start=1):
            if n == 1:
                started = time.perf_counter()
            step = self.state["step"] * self.world + self.rank
            batch = self.train_collate(rows, step=step)
            for phase in phases:
                loss = self.engine.forward(batch, phase)["loss"]
                self.engine.step(loss, phase)
                totals[phase] += float(loss.detach())
            self.state["step"] += 1
            samples += rows.num_rows * self.world
            if self.cfg.fault.kill_at_step == self.state["step"]:
                self.inject_fault(epoch, checkpoint=None)
            if n % cfg.train.log_every == 0 or n == self.steps:
                elapsed = time.perf_counter() - started
                rate = samples / elapsed
                eta = (self.steps - n) * elapsed / n
                self.log(
                    f"epoch {epoch + 1}/{cfg.train.epochs} step {n}/{self.steps} "
                    f"loss {totals[phases[-1]] / n:.4f} lr {self.engine.lr(phases[-1]):.2e} "
                    f"{rate:.1f} samples/s ETA {_format_eta(eta)}"
                )
                self.events.step_loss(self.state["step"], totals[phases[-1]] / n)
        elapsed = time.perf_counter() - started
        metrics = {"train_loss": totals[phases[-1]] / max(n, 1)}
        if len(model.update_phases) > 1:
            metrics |= {f"train_loss_{p}": totals[p] / max(n, 1) for p in phases}
        metrics |= {"train_samples": samples, "train_seconds": elapsed}
        metrics["samples_per_s"] = samples / elapsed if elapsed > 0 else 0.0
        metrics["torch_threads"] = torch.get_num_threads()
        return metrics

    @torch.no_grad()
    def evaluate(self, split: str) -> dict[str, float]:
        """Metrics of the model on ``split`` over all workers' shards."""
        self.engine.module.eval()
        evaluation = Evaluation(self.spec.task)
        train = self.cfg.train
        args = (self.world, train.eval_batch_size, eval_batch_limit(train, split))
        table = self.eval_tables[split]
        total = eval_batch_count(table, *args)
        progress = Progress(
            f"evaluating {split}", total, self.log, unit="batches", quiet_for=LINE_EVERY_S
        )
        for i, (rows, counted) in enumerate(eval_batches(table, self.rank, *args)):
            batch = self.eval_collate(rows, step=i * self.world + self.rank)
            out = self.engine.forward(batch, ALL_PHASES)
            if counted:
                evaluation.update(batch, out)
            progress.update(i + 1)
        progress.close()
        return evaluation.result()

    def report_epoch(self, epoch: int, metrics: dict[str, Any]) -> None:
        """Save this rank's part of the checkpoint and report it (every rank)."""
        self.state["epoch"] = epoch + 1
        self.state["history"].append(metrics)
        name = f"epoch_{epoch:04d}"
        upload = None
        if self.cfg.fault.kill_during_upload == epoch and self.fault_armed():
            # the checkpoints reported so far are committed first (the wait cannot run inside
            # the upload: this report is already counted there): only this one is cut short
            ray.train.get_all_reported_checkpoints(
                consistency_mode=CheckpointConsistencyMode.COMMITTED
            )
            upload = functools.partial(self.interrupted_upload, epoch)
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            self.engine.save(directory)
            if self.rank == 0:
                write_state(directory, self.state)
            ray.train.report(
                metrics,
                checkpoint=ray.train.Checkpoint.from_directory(tmp),
                checkpoint_dir_name=name,
                checkpoint_upload_fn=upload,  # None: Ray's own upload (pyarrow copy_files)
            )
        if self.cfg.fault.kill_after_epoch == epoch:
            self.inject_fault(epoch, checkpoint=name)

    def patience_exhausted(self) -> bool:
        """Whether ``train.patience`` epochs in a row have not bettered the best validation
        metric (said once, by rank 0)."""
        patience = self.cfg.train.patience
        key = f"val_{self.spec.default_metric}"
        counted = self.engine.module.patience_from()
        history = [m for m in self.state["history"] if m["epoch"] >= counted]
        stale = epochs_since_best(history, key, self.spec.metric_mode)
        if patience is None or stale < patience:
            return False
        best = history[-1 - stale]
        self.log(
            f"early stop after epoch {self.state['epoch']}: {key} not better than "
            f"{best[key]:.4f} (epoch {best['epoch'] + 1}) for {stale} epochs"
        )
        return True

    def fault_armed(self) -> bool:
        """Whether ``cfg.fault`` kills this worker: it is the fault's rank, on the run's first
        attempt (no checkpoint restored) and nobody was killed yet (no ``fault_injected.json``:
        a kill before any checkpoint leaves none to restore)."""
        if self.cfg.fault.rank != self.rank or self.resumed_at is not None:
            return False
        return not storage.exists(storage.join(self.run["output"], FAULT_FILE))

    def inject_fault(self, epoch: int, checkpoint: str | None) -> None:
        """``cfg.fault``'s SIGKILL of this worker (if :meth:`fault_armed`), after recording it
        in ``fault_injected.json``; ``checkpoint``: the one just committed (None: killed
        mid-epoch, after step ``state["step"]``)."""
        if not self.fault_armed():
            return
        # wait until the controller has registered the checkpoints reported so far: a report
        # is processed asynchronously, and a worker killed soon after it may lose it (the
        # restarted attempt would then start over, not resume)
        ray.train.get_all_reported_checkpoints(consistency_mode=CheckpointConsistencyMode.COMMITTED)
        where = f"after epoch {epoch}" if checkpoint else f"at step {self.state['step']}"
        self.kill(where, epoch, checkpoint)

    def interrupted_upload(
        self, epoch: int, checkpoint: ray.train.Checkpoint, name: str
    ) -> ray.train.Checkpoint:
        """``cfg.fault.kill_during_upload``: the ``checkpoint_upload_fn`` of ``ray.train.report``
        that dies half-way. The first half of this rank's checkpoint files (by path; at least
        one, never all) are copied into the checkpoint directory ``name`` of the run's storage,
        then the worker is SIGKILLed: the storage holds a part of the checkpoint, as a kill in
        the middle of Ray's file-by-file copy leaves it, and the report of the checkpoint is
        never made (Ray Train counts a checkpoint once every rank's report arrived)."""
        local = Path(checkpoint.path)
        files = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
        uploaded = files[: max(1, len(files) // 2)] if len(files) > 1 else []
        destination = storage.join(self.run["output"], name)
        for relative in uploaded:
            storage.put_file(local / relative, storage.join(destination, *relative.split("/")))
        interrupted = {
            "checkpoint": name,
            "uploaded": uploaded,
            "not_uploaded": files[len(uploaded) :],
        }
        self.kill(
            f"uploading {name} ({len(uploaded)} of {len(files)} files)", epoch, None, interrupted
        )
        raise AssertionError("unreachable: the worker was killed")

    def kill(
        self,
        where: str,
        epoch: int,
        checkpoint: str | None,
        interrupted_upload: dict[str, Any] | None = None,
    ) -> NoReturn:
        """Record the fault in ``fault_injected.json``, then SIGKILL this worker."""
        self.log(f"fault injection: killing rank {self.rank} {where}")
        record = {
            "rank": self.rank,
            "world_size": self.world,
            "epoch": epoch,
            "step": self.state["step"],
            "checkpoint": checkpoint,
            "interrupted_upload": interrupted_upload,
            "node_id": self.node_id,
            "pid": os.getpid(),
        }
        storage.write_json(storage.join(self.run["output"], FAULT_FILE), record)
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable: SIGKILL")

    def worker_nodes(self) -> list[str]:
        """The Ray node id of every rank (a collective: every rank calls it)."""
        if not torch.distributed.is_initialized():
            return [self.node_id]
        nodes: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(nodes, self.node_id)
        return nodes

    def finish(self) -> dict[str, Any]:
        """Load the best checkpoint, evaluate "test", export the weights; final metrics."""
        key = f"val_{self.spec.default_metric}"
        reported = [c for c in ray.train.get_all_reported_checkpoints() if key in c.metrics]
        sign = 1.0 if self.spec.metric_mode == "min" else -1.0
        best = min(reported, key=lambda c: (sign * c.metrics[key], c.metrics["epoch"]))
        with checkpoint_directory(best.checkpoint) as directory:
            self.engine.load(directory)
        final: dict[str, Any] = {
            "best_epoch": best.metrics["epoch"],
            f"best_{key}": best.metrics[key],
        }
        if "test" in self.eval_tables:
            final |= {f"test_{k}": v for k, v in self.evaluate("test").items()}
        # ZeRO-3: what this rank holds of every parameter before the export gathers them
        # (results.json: rank 0's)
        partitions = self.engine.zero3_partitions()
        if self.cfg.run.export_weights:
            weights = self.engine.full_state_dict()  # collective under ZeRO-3
            if self.rank == 0:
                export_weights(weights, storage.join(self.run["output"], WEIGHTS_FILE))
        self.log("best checkpoint: " + ", ".join(f"{k} {v:.4g}" for k, v in final.items()))
        final["zero3_partitions"] = partitions
        return final


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point; ``loop_config`` is built by :func:`rayrec.train.trainer.fit`."""
    if not loop_config.get("verbose"):
        logs.quiet_train_worker()
    worker = Worker(loop_config)
    worker.restore()
    cfg = worker.cfg
    stopped_early = False
    for epoch in range(worker.state["epoch"], cfg.train.epochs):
        if worker.patience_exhausted():
            stopped_early = True
            break
        metrics: dict[str, Any] = {"epoch": epoch, **worker.train_epoch(epoch)}
        metrics |= {f"val_{k}": v for k, v in worker.evaluate("val").items()}
        metrics["step"] = worker.state["step"]
        worker.log(
            f"epoch {epoch + 1}/{cfg.train.epochs} done: train_loss {metrics['train_loss']:.4f} "
            + " ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith("val_"))
        )
        worker.events.epoch(epoch, metrics)
        worker.report_epoch(epoch, metrics)
    final = worker.finish()
    worker.events.close()
    history = worker.state["history"]
    throughput = [m["samples_per_s"] for m in history if m.get("samples_per_s")]
    final |= {
        "final": True,
        "epoch": worker.state["epoch"] - 1,
        "step": worker.state["step"],
        "samples_per_s": sum(throughput) / len(throughput) if throughput else 0.0,
        "train_seconds": sum(m["train_seconds"] for m in history),
        "history": history,
        "resumed_at_epoch": worker.resumed_at,
        "stopped_early": stopped_early,
        "worker_nodes": worker.worker_nodes(),
    }
    if worker.rank == 0:  # Ray Train keeps only checkpointed reports: the driver reads this
        storage.write_json(storage.join(loop_config["output"], FINAL_FILE), final)
