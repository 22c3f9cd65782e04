"""The driver side of a run: a ``TorchTrainer`` around the training loop, and ``results.json``.

``fit(cfg)`` reads the prepared dataset's manifest, counts the training rows (every worker
reads the training table itself, :mod:`rayrec.train.datasets`) and runs
``TorchTrainer(ScalingConfig(num_workers, use_gpu, resources_per_worker), RunConfig(name,
storage_path, FailureConfig(max_failures), CheckpointConfig(keep the best by the model's
default metric)))``. The run directory is
``<storage>/<name>`` (local or s3://); running again with the same name and storage resumes
the run from its latest checkpoint (Ray Train restores its checkpoint state from storage).

``results.json`` (next to the checkpoints and ``model.safetensors``): the test metrics of the
best checkpoint, the best epoch, the per-epoch history, the config, the prepared dataset's
URI and manifest sha256, library versions, wall time and training samples/s.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import time
from typing import Any

import deepspeed
import pyarrow
import ray
import torch
from ray.train import (
    CheckpointConfig,
    FailureConfig,
    LoggingConfig,
    RunConfig,
    ScalingConfig,
    UserCallback,
)
from ray.train.torch import TorchTrainer

import rayrec
from rayrec import logs
from rayrec.data import storage
from rayrec.data.prepared import MANIFEST, PreparedDataset
from rayrec.encode.plan import attach_store
from rayrec.models.registry import get_model_spec
from rayrec.train.checkpoint import RESULTS_FILE
from rayrec.train.config import TrainConfig
from rayrec.train.datasets import train_rows
from rayrec.train.loop import FAULT_FILE, FINAL_FILE, train_loop_per_worker
from rayrec.train.warm_start import check_init_from

STORAGE_ENV = "RAYREC_STORAGE"
DEFAULT_STORAGE = "~/rayrec/runs"


def versions() -> dict[str, str]:
    """Versions of the libraries a result depends on."""
    return {
        "rayrec": rayrec.__version__,
        "python": platform.python_version(),
        "ray": ray.__version__,
        "torch": torch.__version__,
        "deepspeed": deepspeed.__version__,
        "transformers": importlib.metadata.version("transformers"),  # not imported: slow
        "pyarrow": pyarrow.__version__,
    }


def run_name(cfg: TrainConfig) -> str:
    return cfg.run.name or f"{cfg.model.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def default_storage() -> str:
    """Where runs and sweeps go without ``--storage``: ``$RAYREC_STORAGE`` (a cluster can set
    it once, e.g. to an s3:// prefix), else ``~/rayrec/runs``. Never the working directory:
    under ``ray job submit`` that is Ray's temporary copy of the uploaded directory, deleted
    with the job's runtime resources."""
    return os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


def run_storage(cfg: TrainConfig) -> str:
    """The storage root as Ray wants it: an absolute local path or a URI."""
    return storage.absolute(cfg.run.storage or default_storage())


# Ray Train 2.60's watcher of node drains (spot preemption); its actor logs an ERROR line about
# its own restart policy (ray-project/ray#53727) to the console of every run
PREEMPTION_WATCHER_ENV = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"


def ensure_ray() -> None:
    """``ray.init()``: under ``ray job submit`` it connects to the job's cluster, on a machine
    with a running ``ray start`` cluster it connects to that one, else it starts a local one
    (``RAY_ADDRESS=local`` forces a private local instance).

    A local instance started here has Ray Train's preemption watcher off (unless
    ``RAY_TRAIN_ENABLE_PREEMPTION_WATCHER`` is set): one machine has no node drains to watch,
    and the watcher's actor prints an ERROR line to every run's console. The variable reaches
    only the processes of an instance this process starts; a cluster's nodes (KubeRay, ``ray
    start``) keep their own environment, and with it the watcher."""
    if not ray.is_initialized():
        os.environ.setdefault(PREEMPTION_WATCHER_ENV, "0")
        ray.init()
    # the training loop prints its own progress (epoch, loss, samples/s, ETA); Ray Data's
    # progress bars of the training dataset would interleave with it
    ray.data.DataContext.get_current().enable_progress_bars = False


def worker_cpus(num_workers: int, node_cpus: list[float], strategy: str = "PACK") -> float:
    """The whole CPUs each of ``num_workers`` workers can take on nodes of ``node_cpus``:
    the most for which every worker still finds room (one worker per node under
    ``STRICT_SPREAD``), at least 1. A single worker on a laptop thus gets every core, which
    its torch threads then use (``torch.set_num_threads``; SAFMR on 2 cores: 35-41 samples/s
    against 22 with one thread)."""
    for cpus in range(int(max(node_cpus, default=1)), 1, -1):
        per_node = [n >= cpus if strategy == "STRICT_SPREAD" else n // cpus for n in node_cpus]
        if sum(per_node) >= num_workers:
            return float(cpus)
    return 1.0


def with_worker_cpus(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with ``run.cpus_per_worker`` set: as given, or :func:`worker_cpus` of the
    cluster's live nodes now (an autoscaling cluster's future nodes do not count: set it)."""
    if cfg.run.cpus_per_worker is not None:
        return cfg
    nodes = [node["Resources"].get("CPU", 0.0) for node in ray.nodes() if node["Alive"]]
    cpus = worker_cpus(cfg.run.num_workers, nodes, cfg.run.placement_strategy)
    return cfg.model_copy(update={"run": cfg.run.model_copy(update={"cpus_per_worker": cpus})})


def run_cpus(cfg: TrainConfig) -> float:
    """CPUs the run's workers reserve; ``run.cpus_per_worker`` must be resolved
    (:func:`with_worker_cpus`, or a Tune trial's own default)."""
    if cfg.run.cpus_per_worker is None:
        raise ValueError("run.cpus_per_worker is unset: resolve it with with_worker_cpus")
    return cfg.run.num_workers * cfg.run.cpus_per_worker


def cpu_warning(cfg: TrainConfig, cluster_cpus: float) -> str | None:
    """A warning if the run's workers need more CPUs than the cluster has: the run waits
    until an autoscaler adds a node, and for ever on a fixed machine (a laptop). The workers
    read their data themselves (:mod:`rayrec.train.datasets`), so nothing else needs a CPU
    while they train."""
    workers = run_cpus(cfg)
    if workers <= cluster_cpus:
        return None
    fitting = cluster_cpus / cfg.run.num_workers
    fix = f"run.cpus_per_worker={fitting:g} or fewer workers" if fitting > 0 else "more nodes"
    return (
        f"warning: {cfg.run.num_workers} worker(s) of {workers / cfg.run.num_workers:g} CPU need "
        f"{workers:g} CPUs and the cluster has {cluster_cpus:g}: the run waits for more nodes "
        f"(an autoscaling cluster) and hangs on a fixed machine; use {fix}"
    )


def fit(
    cfg: TrainConfig, data_uri: str, callbacks: list[UserCallback] | None = None
) -> dict[str, Any]:
    """Train ``cfg`` on the prepared dataset at ``data_uri``; returns the results (also
    written to ``<storage>/<name>/results.json``). ``callbacks`` go to the run's
    ``RunConfig`` (a Tune trial passes Tune's ``TuneReportCallback`` to forward reports)."""
    started = time.perf_counter()
    ensure_ray()
    cfg = with_worker_cpus(cfg)
    if warning := cpu_warning(cfg, ray.cluster_resources().get("CPU", 0.0)):
        print(warning, flush=True)
    spec = get_model_spec(cfg.model.name)
    dataset = PreparedDataset(data_uri)
    manifest_sha256 = storage.sha256(dataset.path(MANIFEST))
    if cfg.train.init_from:  # absolute: the workers' working directory is not the driver's
        init_from = storage.absolute(cfg.train.init_from)
        cfg = cfg.model_copy(
            update={"train": cfg.train.model_copy(update={"init_from": init_from})}
        )
        source = check_init_from(init_from, manifest_sha256)
        print(
            f"warm start: the tensors {cfg.model.name} shares with {source['model']} run "
            f"{source['uri']} start from that run's",
            flush=True,
        )
    cfg, review_states = attach_store(cfg, dataset.uri, dataset.manifest)
    rows = {"train": train_rows(spec, dataset, cfg.data)}
    name, root = run_name(cfg), run_storage(cfg)
    output = storage.join(root, name)
    resources = {"CPU": cfg.run.cpus_per_worker} | ({"GPU": 1} if cfg.run.use_gpu else {})
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "config": cfg.model_dump(mode="json"),
            "data_uri": dataset.uri,
            "rows": rows,
            "output": output,
            "verbose": logs.is_verbose(),  # the workers' own INFO lines (rayrec.logs)
        },
        scaling_config=ScalingConfig(
            num_workers=cfg.run.num_workers,
            use_gpu=cfg.run.use_gpu,
            resources_per_worker=resources,
            placement_strategy=cfg.run.placement_strategy,
        ),
        run_config=RunConfig(
            name=name,
            storage_path=root,
            failure_config=FailureConfig(max_failures=cfg.run.max_failures),
            logging_config=LoggingConfig(log_level=logs.train_log_level()),
            callbacks=callbacks,
            checkpoint_config=CheckpointConfig(
                num_to_keep=cfg.run.keep_checkpoints,
                checkpoint_score_attribute=f"val_{spec.default_metric}",
                checkpoint_score_order=spec.metric_mode,
            ),
        ),
    )
    result = trainer.fit()
    final = storage.read_json(storage.join(output, FINAL_FILE))
    fault = storage.join(output, FAULT_FILE)
    wall = time.perf_counter() - started
    results = {
        "model": cfg.model.name,
        "name": name,
        "output": output,
        "test": {k.removeprefix("test_"): v for k, v in final.items() if k.startswith("test_")},
        "best_epoch": final.get("best_epoch"),
        "best_val": {
            k.removeprefix("best_"): v for k, v in final.items() if k.startswith("best_val")
        },
        "epochs_run": final.get("epoch", -1) + 1,
        "resumed_at_epoch": final.get("resumed_at_epoch"),
        "stopped_early": final.get("stopped_early", False),  # train.patience ended the run
        "worker_nodes": final.get("worker_nodes"),
        # ZeRO-3: what rank 0 held of each parameter before the export (numel, persistent,
        # partition, held: DeepSpeedEngine.zero3_partitions); None under stages 0-2 and DDP
        "zero3_partitions": final.get("zero3_partitions"),
        # cfg.fault's SIGKILL, as the killed worker recorded it (tests): rank, node, epoch, step
        "fault_injected": storage.read_json(fault) if storage.exists(fault) else None,
        "steps": final.get("step"),
        "samples_per_s": final.get("samples_per_s"),
        "train_seconds": final.get("train_seconds"),
        "wall_seconds": wall,
        "history": final.get("history", []),
        "rows": rows,
        "review_states": review_states,
        "data": {
            "uri": dataset.uri,
            "manifest_sha256": manifest_sha256,
        },
        "config": cfg.model_dump(mode="json"),
        "versions": versions(),
        "best_checkpoint": storage.join(output, f"epoch_{final['best_epoch']:04d}"),
        "latest_checkpoint": result.checkpoint.path if result.checkpoint else None,
        "weights": storage.join(output, "model.safetensors") if cfg.run.export_weights else None,
    }
    storage.write_json(storage.join(output, RESULTS_FILE), results)
    write_report(output)
    return results


def write_report(output: str) -> None:
    """The run's ``report.md`` and plots beside ``results.json``. A failure is printed, not
    raised: the run and its results are complete, and ``rayrec report`` rebuilds it."""
    from rayrec.report.run_report import write_run_report  # it imports this module

    try:
        report = write_run_report(output)
    except Exception as err:  # noqa: BLE001 - the run's results are written already
        print(
            f"warning: run report not written ({type(err).__name__}: {err}); rebuild it "
            f"with: rayrec report {output}",
            flush=True,
        )
        return
    print(f"report: {report.files['report.md']}", flush=True)
