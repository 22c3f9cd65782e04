"""A finished run, opened for serving: its config, its data and its best weights.

:func:`open_run` reads ``RUN_DIR/results.json`` on the driver and checks what the actors will
rely on: the run trained a model that scores user-item pairs (not U-BERT pre-training), it
exported ``model.safetensors``, and the prepared dataset is the one it was trained on (the
sha256 of ``manifest.json`` equals ``results.json``'s ``data.manifest_sha256``: a dataset
prepared with another seed or split has other dense ids, other documents and other held-out
pairs, and its predictions would be silently wrong). ``--data`` may name a copy of that
dataset elsewhere (another directory, s3://). A run trained by an older rayrec loads where
only keys outside ``model`` that this version no longer has differ (they are named and
ignored: nothing here reads them); a model parameter it no longer has is refused.

A config naming a review-state store (``model.params.review_states``, set by training) keeps
it if the store is still there; otherwise the store of the dataset being served is attached
as training attaches one (:func:`rayrec.encode.plan.attach_store`: found, or built from the
same key), so the model reads the same float16 states it was evaluated with.

:class:`Scorer` is what each Ray Data actor holds: the model built from the config exactly as
the training loop builds it (:func:`~rayrec.train.loop.token_info`,
:func:`~rayrec.train.loop.data_info`, :func:`~rayrec.models.registry.build_model`), the run's
weights loaded over it with safetensors (``strict``: every tensor of the model, nothing else),
and the evaluation collate step (``Collator(train=False)``). U-BERT fine-tuning's
``pretrained`` is not read: the run's own weights replace every tensor it would load.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import ray
import torch
from safetensors.torch import load as load_safetensors

from rayrec.data import storage
from rayrec.data.prepared import MANIFEST, PreparedDataset
from rayrec.encode.plan import attach_store
from rayrec.encode.store import META
from rayrec.errors import CliError
from rayrec.models.base import ALL_PHASES, ModelSpec
from rayrec.models.registry import build_model, get_model_spec
from rayrec.train.checkpoint import WEIGHTS_FILE, read_results
from rayrec.train.cli import config_errors
from rayrec.train.collate import Collator
from rayrec.train.config import TrainConfig
from rayrec.train.engine import to_device
from rayrec.train.loop import EVAL_SEED_OFFSET, data_info, token_info
from rayrec.train.reviews import load_review_index
from rayrec.train.trainer import ensure_ray

# the entries of results.json serving reads (a damaged or incomplete one: one line)
SERVE_READS = ("config", "data.uri", "data.manifest_sha256")
SCORED_TASKS = ("rating", "ranking")  # U-BERT pre-training scores no user-item pairs
TASKS_PER_ACTOR = 4  # blocks per actor: the pool balances uneven blocks
DATA_CPUS = 1.0  # left to Ray Data's read and write tasks beside the actor pool


@dataclass(frozen=True)
class ServedRun:
    """What the actors need to rebuild a run's model (plain values: sent to Ray actors)."""

    run_dir: str
    config: dict[str, Any]  # TrainConfig as JSON, review states resolved
    data_uri: str
    weights: str
    use_gpu: bool
    batch_size: int  # pairs per model call

    @property
    def cfg(self) -> TrainConfig:
        return TrainConfig.model_validate(self.config)

    @property
    def spec(self) -> ModelSpec:
        return get_model_spec(self.config["model"]["name"])


def check_data(results: dict[str, Any], data: str | None) -> PreparedDataset:
    """The prepared dataset to serve: ``data`` or the run's own, refused unless its manifest
    is the one the run was trained on."""
    uri = data or results["data"]["uri"]
    try:
        dataset = PreparedDataset(uri)
    except (FileNotFoundError, ValueError) as err:
        raise CliError(f"--data {uri}: {err}") from None
    digest = storage.sha256(dataset.path(MANIFEST))
    trained = results["data"]["manifest_sha256"]
    if digest != trained:
        raise CliError(
            f"--data {uri}: manifest sha256 {digest[:12]} is not the run's {trained[:12]} "
            f"(trained on {results['data']['uri']}): another prepared dataset has other ids "
            "and splits"
        )
    return dataset


def resolve_review_states(cfg: TrainConfig, dataset: PreparedDataset) -> TrainConfig:
    """``cfg`` reading a review-state store that exists (see the module docstring)."""
    states = cfg.model.params.get("review_states")
    if states is None or storage.exists(storage.join(states, META)):
        return cfg
    tree = cfg.model_dump(mode="json")
    del tree["model"]["params"]["review_states"]
    print(f"review states {states} are gone: attaching the store of {dataset.uri}")
    try:
        resolved, _ = attach_store(TrainConfig.model_validate(tree), dataset.uri, dataset.manifest)
    except (FileNotFoundError, ValueError) as err:
        raise CliError(f"review-state store of {dataset.uri}: {err}") from None
    return resolved


def known_config(tree: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A run's config without the keys of ``data``, ``train``, ``engine``, ``run`` and
    ``fault`` that this rayrec no longer has (a run trained by an older version), and their
    dotted names. ``model`` is kept whole: a parameter the model no longer has is refused
    when the config is validated."""
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for section, value in tree.items():
        field = TrainConfig.model_fields.get(section)
        if field is None:
            dropped.append(section)
        elif section == "model" or not isinstance(value, dict):
            kept[section] = value
        else:
            known = field.annotation.model_fields
            kept[section] = {k: v for k, v in value.items() if k in known}
            dropped += [f"{section}.{k}" for k in value if k not in known]
    return kept, dropped


def load_run_config(run_dir: str, results: dict[str, Any], use_gpu: bool) -> TrainConfig:
    """The run's config as this rayrec reads it, with ``run.use_gpu`` set to ``use_gpu`` (a
    store built for it runs where the scoring runs)."""
    tree, dropped = known_config(results["config"])
    if dropped:
        print(f"{run_dir}: ignoring config keys this rayrec no longer has: {', '.join(dropped)}")
    tree["run"] = {**tree.get("run", {}), "use_gpu": use_gpu}
    try:
        with config_errors():
            return TrainConfig.model_validate(tree)
    except CliError as err:
        trained = results.get("versions", {}).get("rayrec", "?")
        raise CliError(f"{run_dir} (trained with rayrec {trained}): {err}") from None


def open_run(
    run_dir: str, data: str | None, use_gpu: bool, batch_size: int | None
) -> tuple[ServedRun, dict[str, Any]]:
    """The run at ``run_dir`` ready to serve and its ``results.json``; every
    problem a user can fix is a :class:`CliError`, raised before Ray starts; then it starts
    or joins Ray (a vanished review-state store is rebuilt)."""
    run_dir = run_dir.rstrip("/")
    results = read_results(run_dir, SERVE_READS)
    cfg = load_run_config(run_dir, results, use_gpu)
    spec = get_model_spec(cfg.model.name)
    if spec.task not in SCORED_TASKS:
        raise CliError(f"{run_dir}: a {spec.name} run scores no user-item pairs")
    weights = storage.join(run_dir, WEIGHTS_FILE)
    if not storage.exists(weights):
        raise CliError(f"{run_dir}: no {WEIGHTS_FILE} (trained with run.export_weights false?)")
    if batch_size is not None and batch_size < 1:
        raise CliError(f"--batch-size {batch_size}: must be at least 1")
    dataset = check_data(results, data)
    ensure_ray()
    cfg = resolve_review_states(cfg, dataset)
    served = ServedRun(
        run_dir=run_dir,
        config=cfg.model_dump(mode="json"),
        data_uri=dataset.uri,
        weights=weights,
        use_gpu=use_gpu,
        batch_size=batch_size or cfg.train.eval_batch_size,
    )
    return served, results


def read_weights(uri: str) -> dict[str, torch.Tensor]:
    """A safetensors file (local or s3://), read whole: never a stale cached copy."""
    with fsspec.open(uri, "rb") as f:
        return load_safetensors(f.read())


def pool(use_gpu: bool, actors: int | None, tasks: int) -> tuple[int, int]:
    """``(actors, blocks)``: one actor per GPU (``use_gpu``) or per CPU of the cluster but
    ``DATA_CPUS`` (left to Ray Data's read and write tasks: actors holding every CPU would
    wait for ever on a read), fewer if ``actors`` says so, never more than there are tasks;
    up to ``TASKS_PER_ACTOR`` blocks each."""
    if actors is not None and actors < 1:
        raise CliError(f"--actors {actors}: must be at least 1")
    resources = ray.cluster_resources()
    if use_gpu:
        available = int(resources.get("GPU", 0))
        if available == 0:
            raise CliError("--use-gpu: the Ray cluster has no GPU")
    else:
        available = int(resources.get("CPU", 0) - DATA_CPUS)
        if available < 1:
            raise CliError(
                f"the Ray cluster has {resources.get('CPU', 0):g} CPU(s): scoring needs one "
                f"per actor and {DATA_CPUS:g} for Ray Data's reads and writes"
            )
    size = max(1, min(actors or available, available, tasks))
    return size, max(1, min(tasks, TASKS_PER_ACTOR * size))


def actor_options(served: ServedRun, size: int, **kwargs: Any) -> dict[str, Any]:
    """``map_batches`` arguments of a pool of ``size`` actors, each built from ``served``
    and ``kwargs``."""
    return {
        "compute": ray.data.ActorPoolStrategy(size=size),
        "batch_size": None,  # one block per call: the actor cuts it into model batches
        "batch_format": "pyarrow",
        "num_cpus": 0 if served.use_gpu else 1,
        "num_gpus": 1 if served.use_gpu else 0,
        "fn_constructor_kwargs": {"served": dataclasses.asdict(served), **kwargs},
    }


def check_out(out: str) -> None:
    """Refuse an ``--out`` that already holds files (Ray Data would add its files beside
    them, and a reader would see both)."""
    fs, path = storage.filesystem(out)
    if fs.exists(path) and (not fs.isdir(path) or fs.ls(path)):
        raise CliError(f"--out {out} exists and is not empty: remove it or choose another")


def id_column(dataset: PreparedDataset, side: str) -> np.ndarray:
    """The original ids of ``side`` ("user" or "item"), indexed by the dense index."""
    table = dataset.table("ids", f"{side}s.parquet")
    ids = np.empty(table.num_rows, dtype=object)
    ids[table.column(f"{side}_idx").to_numpy()] = table.column(f"{side}_id").to_numpy(
        zero_copy_only=False
    )
    return ids


class Scorer:
    """The model of a run and its evaluation collate step, built once per actor process."""

    def __init__(self, served: dict[str, Any]) -> None:
        self.served = ServedRun(**served)
        cfg, self.spec = self.served.cfg, self.served.spec
        if self.served.use_gpu:
            self.device = torch.device("cuda", 0)  # Ray sets CUDA_VISIBLE_DEVICES per actor
        else:
            self.device = torch.device("cpu")
            torch.set_num_threads(1)  # one CPU per actor (actor_options)
        dataset = PreparedDataset(self.served.data_uri)
        self.dataset = dataset
        self.reviews = load_review_index(dataset.uri)
        tokens = token_info(cfg, dataset.manifest)
        seed = cfg.train.seed + EVAL_SEED_OFFSET
        self.collate = Collator(self.spec, self.reviews, tokens, train=False, seed=seed)
        params = dict(cfg.model.params)
        params.pop("pretrained", None)  # the run's weights replace everything it holds
        model = build_model(cfg.model.name, params, data_info(dataset.manifest, tokens))
        model.load_state_dict(read_weights(self.served.weights), strict=True)
        self.model = model.to(self.device).eval()

    def model_rows(self, rows: pa.Table) -> pa.Table:
        """``rows`` (user_idx, item_idx, and for rating models the pair's documents) as the
        collate step reads them: for the ranking task one evaluation candidate per row (no
        negatives: the pair text is built as for held-out candidates)."""
        if self.spec.task == "rating":
            return rows
        empty = pa.array([[]] * rows.num_rows, pa.list_(pa.int32()))
        return pa.table(
            {
                "user_idx": rows.column("user_idx"),
                "item_idx": rows.column("item_idx"),
                "negatives": empty,
            }
        )

    @torch.inference_mode()
    def score(self, rows: pa.Table) -> np.ndarray:
        """The model's ``prediction`` for every row, float32 (unclipped)."""
        rows = self.model_rows(rows)
        size = self.served.batch_size
        out = [np.zeros(0, dtype=np.float32)]
        for start in range(0, rows.num_rows, size):
            batch = self.collate(rows.slice(start, size))
            prediction = self.model(to_device(batch, self.device), ALL_PHASES)["prediction"]
            out.append(prediction.float().cpu().numpy())
        return np.concatenate(out)
