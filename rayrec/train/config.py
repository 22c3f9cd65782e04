"""Typed run configuration: pydantic models, YAML presets and dotted ``--set`` overrides.

A run is ``TrainConfig``: the model and its hyper-parameters (validated by the model's own
config class from the registry), the prepared data, the optimisation, the engine (DeepSpeed
or DDP) and the run (workers, storage, failures). Presets live in ``rayrec/configs/*.yaml``
(``preset_path("sifn")``); ``--set train.lr=3e-5 --set model.params.backbone=tiny`` overrides
any field, the value parsed as YAML (``1e-3`` is a number, ``null`` is None, ``[1, 2]`` a list).

GPU: ``run.use_gpu: true`` asks Ray for one GPU per worker; the process group backend then
is NCCL and the engine places the model on the worker's CUDA device. That path cannot run on
these CPU machines and is untested here; everything else is the same code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rayrec.models.registry import get_model_spec

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(_Strict):
    """The model: a registry name and its config (validated by the model's config class)."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> ModelSection:
        try:
            spec = get_model_spec(self.name)
        except KeyError as err:
            raise ValueError(str(err)) from None
        spec.config_cls.model_validate(self.params)
        return self


class DataSection(_Strict):
    """The prepared dataset and the sizes read from it (None: the manifest's)."""

    uri: str | None = None  # None: the embedded synthetic corpus, prepared on first use
    max_len: int | None = Field(None, ge=4)  # tokens per review (at most the stored max_len)
    reviews_per_doc: int | None = Field(None, ge=1)  # M review slots per document
    pair_max_len: int | None = Field(None, ge=8)  # BERT-RS pair text
    pretrain_val_every: int = Field(20, ge=2)  # U-BERT: review_id % this == 0 -> validation
    # U-BERT pre-training reads the other domains' reviews (the paper), or the target domain's
    # own training reviews (in-domain: real data without other domains, e.g. MI)
    pretrain_reviews: Literal["other_domains", "target_train"] = "other_domains"
    # review-state store of a frozen (part of an) encoder: "auto" (<data>/review_states, built
    # on first use), "off" (encode in every step) or a root directory (rayrec.encode.plan)
    review_store: str = "auto"
    # None: every worker holds all tokens of reviews/ in memory; a number: workers read only
    # the row groups (shards) of reviews/ their batches need, at most this many MiB cached
    # (rayrec.data.token_shards)
    token_cache_mib: int | None = Field(None, ge=0)

    @field_validator("review_store", mode="before")
    @classmethod
    def _store_switch(cls, value: Any) -> Any:
        """YAML reads ``off`` / ``on`` as booleans: ``--set data.review_store=off`` works."""
        if isinstance(value, bool):
            return "auto" if value else "off"
        return value


class TrainSection(_Strict):
    """Optimisation. ``batch_size`` is per worker and per micro step."""

    epochs: int = Field(3, ge=1)
    # early stopping: end the run after this many epochs in a row without a better validation
    # metric (the model's default; a tie is no improvement); None: every epoch runs
    patience: int | None = Field(None, ge=1)
    batch_size: int = Field(32, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    embedding_lr: float | None = Field(None, gt=0)  # lr of id/bias tables (None: lr)
    # a finished run on the same dataset whose tensors (same name and shape) start this
    # model, e.g. SIFN's biases from a tuned biased MF (rayrec.train.warm_start)
    init_from: str | None = None
    betas: tuple[float, float] = (0.9, 0.999)
    clip: float | None = Field(1.0, gt=0)  # max gradient norm; None: no clipping
    warmup: float = Field(0.0, ge=0)  # < 1: fraction of all optimizer steps; >= 1: steps
    schedule: Literal["constant", "linear", "cosine", "exponential"] = "linear"
    decay_gamma: float = Field(0.99, gt=0, le=1)  # exponential: lr factor per epoch
    max_steps_per_epoch: int | None = Field(None, ge=1)  # micro steps; None: the whole shard
    max_eval_batches: int | None = Field(None, ge=1)  # per worker and evaluation
    # validation only (the test split stays whole): its first N batches per worker, the same
    # ones every epoch; None: max_eval_batches. For a ranking model whose every validation
    # costs minutes (BERT-RS: 100 candidate texts per held-out positive)
    max_val_batches: int | None = Field(None, ge=1)
    # an epoch is a seeded global permutation (rayrec.train.datasets); "item" / "user" groups
    # the batches by that id so that they share reviews (rayrec.train.grouping): off by default
    group_batches: Literal["none", "item", "user"] = "none"
    seed: int = 0
    log_every: int = Field(20, ge=1)  # micro steps between progress lines


class EngineSection(_Strict):
    """DeepSpeed (ZeRO stage, precision) or plain DDP."""

    kind: Literal["deepspeed", "ddp"] = "deepspeed"
    zero_stage: int = Field(0, ge=0, le=3)
    precision: Literal["fp32", "bf16"] = "fp32"
    # further entries of DeepSpeed's zero_optimization section, passed as they are (DeepSpeed
    # checks them), e.g. stage3_param_persistence_threshold: ZeRO-3 keeps parameters of at
    # most that many elements (default 1e5) whole on every rank; 0 partitions them all
    zero_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("zero_options")
    @classmethod
    def _no_stage(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "stage" in value:
            raise ValueError("the ZeRO stage is engine.zero_stage, not engine.zero_options.stage")
        return value


class FaultSection(_Strict):
    """Fault injection for tests, on the first attempt only (a resumed attempt has a
    checkpoint): SIGKILL worker ``rank`` right after epoch ``kill_after_epoch`` is
    checkpointed, or right after its micro step ``kill_at_step`` (counted over the whole run,
    from 1: mid-epoch when it is not a multiple of the steps per epoch; the restarted attempt
    resumes from the last checkpoint and trains that epoch again from its first step), or in
    the middle of the upload of epoch ``kill_during_upload``'s checkpoint (the first half of
    the rank's checkpoint files are in storage, the others never arrive, and the report of
    that checkpoint is never made: :meth:`rayrec.train.loop.Worker.interrupted_upload`)."""

    kill_after_epoch: int | None = Field(None, ge=0)
    kill_at_step: int | None = Field(None, ge=1)
    kill_during_upload: int | None = Field(None, ge=0)
    rank: int = Field(0, ge=0)


class RunSection(_Strict):
    """Where and how the run executes."""

    name: str | None = None  # None: <model>-<timestamp>
    storage: str | None = None  # local dir or s3://; None: $RAYREC_STORAGE, else ~/rayrec/runs
    num_workers: int = Field(1, ge=1)
    use_gpu: bool = False
    # None: as many as the cluster gives each worker (rayrec.train.trainer.worker_cpus); a Tune
    # trial's workers take 1 each, so that trials run side by side
    cpus_per_worker: float | None = Field(None, gt=0)
    # how workers are spread over nodes (Ray placement group strategy); STRICT_SPREAD puts
    # every worker on its own node
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"
    max_failures: int = Field(0, ge=-1)  # -1: retry forever
    keep_checkpoints: int = Field(2, ge=1)  # best ones by the model's default metric
    export_weights: bool = True  # write model.safetensors of the best checkpoint


class TrainConfig(_Strict):
    """A whole run."""

    model: ModelSection
    data: DataSection = Field(default_factory=DataSection)
    train: TrainSection = Field(default_factory=TrainSection)
    engine: EngineSection = Field(default_factory=EngineSection)
    run: RunSection = Field(default_factory=RunSection)
    fault: FaultSection = Field(default_factory=FaultSection)

    @model_validator(mode="after")
    def _check_phases(self) -> TrainConfig:
        spec = get_model_spec(self.model.name)
        if self.train.group_batches != "none" and spec.task != "rating":
            raise ValueError(
                f"train.group_batches groups rating pairs; {self.model.name} trains on "
                f"{spec.task} rows (its negatives are redrawn every epoch): leave it none"
            )
        phases = spec.model_cls.update_phases
        if len(phases) > 1 and self.engine.kind == "deepspeed":
            if self.engine.zero_stage == 3:
                raise ValueError(
                    f"{self.model.name} steps {len(phases)} parameter groups separately "
                    "(one DeepSpeed engine each); ZeRO stage 3 partitions the whole module "
                    "and cannot be shared by several engines: use zero_stage <= 2"
                )
            if self.train.grad_accum != 1:
                raise ValueError(f"{self.model.name}: multi-phase updates need grad_accum 1")
        return self


def preset_path(name: str) -> Path:
    """The shipped preset ``rayrec/configs/<name>.yaml``."""
    return CONFIG_DIR / f"{name}.yaml"


def apply_override(tree: dict[str, Any], assignment: str) -> None:
    """Apply one dotted ``key.sub=value`` to a nested dict (value parsed as YAML)."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override {assignment!r} is not KEY=VALUE")
    *parents, leaf = key.strip().split(".")
    node = tree
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValueError(f"override {assignment!r}: {part!r} is not a section")
        node = child
    node[leaf] = yaml.safe_load(raw) if raw.strip() else None


def load_config(
    model: str | None = None,
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> TrainConfig:
    """Config from a YAML file (default: the preset of ``model``), then the overrides.

    ``model`` (when given) replaces ``model.name``; a preset of another model keeps its
    ``model.params`` only if they fit (they are validated against ``model``)."""
    if path is None and model is not None and preset_path(model).exists():
        path = preset_path(model)
    tree: dict[str, Any] = {}
    if path is not None:
        tree = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(tree, dict):
            raise ValueError(f"{path}: a config file holds a mapping")
    if model is not None:
        tree.setdefault("model", {})["name"] = model
    for assignment in overrides:
        apply_override(tree, assignment)
    return TrainConfig.model_validate(tree)
