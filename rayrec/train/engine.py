"""Engines: what wraps the model for distributed training, behind one small interface.

Both engines run the model's update phases (:mod:`rayrec.models.base`): for each phase an
optimizer (AdamW) over ``model.phase_parameters(phase)`` and a learning-rate schedule
(:class:`~rayrec.train.schedule.Schedule`); the loop calls ``forward(batch, phase)`` then
``step(loss, phase)`` per phase per batch.

* :class:`DeepSpeedEngine`: ``deepspeed.initialize`` from :func:`deepspeed_config` (ZeRO
  stage 0-3, fp32 or bf16, gradient accumulation, clipping); the optimizer and schedule are
  passed in as objects, so DeepSpeed builds no optimizer op. A model with several update
  phases (SAFMR) gets one DeepSpeed engine per phase over the same module, each owning its
  phase's parameters; the phases' parameter sets are disjoint and a phase's forward leaves
  the other phases' gradients empty, so each engine reduces and steps only its own. Several
  engines cannot share a ZeRO-3 module (stage 3 partitions every parameter of the module) and
  gradient accumulation would mix the phases' gradients, so multi-phase runs need stage <= 2
  and ``grad_accum`` 1 (checked by :class:`~rayrec.train.config.TrainConfig`).
* :class:`DDPEngine`: ``DistributedDataParallel``, manual gradient accumulation with
  ``no_sync``, clipping, bf16 through ``torch.autocast``. Only a model with several update
  phases gets ``find_unused_parameters`` (each phase's forward reaches a subset of the
  parameters); a single-phase model reaches all its trainable parameters in every forward
  (checked per model in ``tests/models``), so it skips DDP's per-step search of the graph.

DeepSpeed's communication backend JIT-compiles a C++ shared-memory op (``deepspeed_shm_comm``,
about 100 s with gcc on 2 cores) when it starts. The op serves only
``inference_all_reduce`` (tensor-parallel inference); training collectives go through
``torch.distributed`` (gloo on CPU, NCCL on GPU). :func:`skip_unused_ops` marks it
unavailable in DeepSpeed's own table of compatible ops before the first engine starts, so
no compiler runs.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, Protocol

import deepspeed
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import LambdaLR

from rayrec.models.base import ALL_PHASES, Batch, ModelOutput, RecModel
from rayrec.train.checkpoint import SafeTorchCheckpointEngine
from rayrec.train.config import TrainConfig
from rayrec.train.schedule import Schedule

SHM_OP = "deepspeed_shm_comm"


class Engine(Protocol):
    """What the loop needs from an engine."""

    module: RecModel
    device: torch.device

    def forward(self, batch: Batch, phase: str) -> ModelOutput: ...

    def step(self, loss: torch.Tensor, phase: str) -> None: ...

    def lr(self, phase: str = ALL_PHASES) -> float: ...

    def save(self, directory: Path) -> None: ...

    def load(self, directory: Path) -> None: ...

    def zero3_partitions(self) -> dict[str, dict[str, int]] | None: ...

    def full_state_dict(self) -> dict[str, torch.Tensor]: ...


def skip_unused_ops() -> None:
    """Tell DeepSpeed its shared-memory inference op is unavailable (see module docstring)."""
    deepspeed.ops.__compatible_ops__[SHM_OP] = False


def embedding_tables(module: nn.Module) -> set[int]:
    """The ``id()`` of every weight of the model's own ``nn.Embedding`` tables (users, items,
    their biases, a CNN's words), not of a pre-trained text encoder's embeddings."""
    transformers = sys.modules.get("transformers")  # imported only by models that build BERT
    encoder: set[int] = set()
    if transformers is not None:
        for sub in module.modules():
            if isinstance(sub, transformers.PreTrainedModel):
                encoder |= {id(p) for p in sub.parameters()}
    return {
        id(sub.weight)
        for sub in module.modules()
        if isinstance(sub, nn.Embedding) and id(sub.weight) not in encoder
    }


def build_optimizer(
    params: list[torch.nn.Parameter], cfg: TrainConfig, tables: set[int] = frozenset()
) -> torch.optim.Optimizer:
    """AdamW; ``train.weight_decay`` applies to matrices (weights, embeddings) only, not to
    biases and LayerNorm gains (every 1-D parameter), as BERT's recipe and nanoGPT do.

    ``train.embedding_lr`` (if set) is the learning rate of the embedding ``tables``
    (:func:`embedding_tables`): Adam moves a parameter by about lr per update and a user's
    row is updated only in the steps that hold the user, so at a text head's lr (1e-3) the id
    embeddings and biases of a hybrid model move far slower than a biased MF's (3e-2)."""
    t = cfg.train
    table_lr = t.embedding_lr or t.lr
    groups = [
        {"params": [p for p in params if id(p) in tables], "lr": table_lr},
        {"params": [p for p in params if id(p) not in tables and p.dim() >= 2]},
        {"params": [p for p in params if id(p) not in tables and p.dim() < 2], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    return torch.optim.AdamW(groups, lr=t.lr, betas=t.betas, weight_decay=t.weight_decay)


def _phase_key(phases: tuple[str, ...], phase: str) -> str:
    """The phase whose optimizer (engine) serves ``phase``: the first one for "all"."""
    return phases[0] if phase == ALL_PHASES else phase


def _phase_params(module: RecModel, phase: str) -> list[torch.nn.Parameter]:
    params = list(module.phase_parameters(phase))
    if not params:
        raise ValueError(f"{type(module).__name__}: phase {phase!r} has no trainable parameter")
    return params


def deepspeed_config(cfg: TrainConfig) -> dict[str, Any]:
    """The DeepSpeed config of a run (no optimizer / scheduler: they are passed as objects)."""
    return {
        "train_micro_batch_size_per_gpu": cfg.train.batch_size,
        "gradient_accumulation_steps": cfg.train.grad_accum,
        "gradient_clipping": cfg.train.clip or 0.0,
        "zero_optimization": {"stage": cfg.engine.zero_stage, **cfg.engine.zero_options},
        "bf16": {"enabled": cfg.engine.precision == "bf16"},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 1 << 30,
        "wall_clock_breakdown": False,
    }


def to_device(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


class DeepSpeedEngine:
    """One DeepSpeed engine per update phase of ``module`` (one for single-phase models)."""

    def __init__(self, module: RecModel, cfg: TrainConfig, schedule: Schedule) -> None:
        skip_unused_ops()
        self.module = module
        self.phases = module.update_phases
        self.engines: dict[str, Any] = {}
        tables = embedding_tables(module)
        for phase in self.phases:
            optimizer = build_optimizer(_phase_params(module, phase), cfg, tables)
            engine, *_ = deepspeed.initialize(
                model=module,
                optimizer=optimizer,
                lr_scheduler=LambdaLR(optimizer, schedule),
                config=deepspeed_config(cfg),
            )
            engine.checkpoint_engine = SafeTorchCheckpointEngine(engine._config)
            self.engines[phase] = engine
        self.device = self.engines[self.phases[0]].device

    def _engine(self, phase: str) -> Any:
        return self.engines[_phase_key(self.phases, phase)]

    def forward(self, batch: Batch, phase: str) -> ModelOutput:
        return self._engine(phase)(to_device(batch, self.device), phase=phase)

    def step(self, loss: torch.Tensor, phase: str) -> None:
        engine = self.engines[phase]
        engine.backward(loss)
        engine.step()

    def lr(self, phase: str = ALL_PHASES) -> float:
        """The current learning rate of ``phase``'s optimizer (the first phase's for "all")."""
        return float(self._engine(phase).get_lr()[0])

    def save(self, directory: Path) -> None:
        """Every rank writes its files (model states, its optimizer shard) per phase tag."""
        for phase, engine in self.engines.items():
            engine.save_checkpoint(str(directory), tag=phase, save_latest=False)

    def load(self, directory: Path) -> None:
        for phase, engine in self.engines.items():
            path, _ = engine.load_checkpoint(str(directory), tag=phase)
            if path is None:
                raise FileNotFoundError(f"{directory}: no DeepSpeed checkpoint {phase!r}")

    def zero3_partitions(self) -> dict[str, dict[str, int]] | None:
        """Under ZeRO-3, what this rank holds of every parameter, from DeepSpeed's parameter
        attributes and API: ``numel`` (the whole parameter, ``ds_numel``), ``persistent`` (1:
        kept whole on every rank, ``ds_persist``: at most ``stage3_param_persistence_threshold``
        elements; 0: partitioned), ``partition`` (the elements of this rank's fp32 partition,
        ``deepspeed.utils.safe_get_local_fp32_param``) and ``held`` (the elements the
        parameter holds on this rank now: 0 once ZeRO-3 has released it). None under stages
        0-2."""
        if not self.engines[self.phases[0]].zero_optimization_partition_weights():
            return None
        return {
            name: {
                "numel": int(param.ds_numel),
                "persistent": int(bool(param.ds_persist)),
                "partition": int(deepspeed.utils.safe_get_local_fp32_param(param).numel()),
                "held": int(param.numel()),
            }
            for name, param in self.module.named_parameters()
        }

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """The whole module's weights on every rank (ZeRO-3 gathers its partitions)."""
        params = list(self.module.parameters())
        stage3 = self.engines[self.phases[0]].zero_optimization_partition_weights()
        with deepspeed.zero.GatheredParameters(params, enabled=stage3):
            return {
                k: v.detach().float().cpu().clone() for k, v in self.module.state_dict().items()
            }


class DDPEngine:
    """``DistributedDataParallel`` with one AdamW + schedule per update phase."""

    def __init__(
        self, module: RecModel, cfg: TrainConfig, schedule: Schedule, device: torch.device
    ) -> None:
        self.module = module.to(device)
        self.device = device
        self.phases = module.update_phases
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        several_phases = len(self.phases) > 1
        self.model: torch.nn.Module = (
            DistributedDataParallel(module, find_unused_parameters=several_phases)
            if distributed
            else module
        )
        self.accum, self.clip = cfg.train.grad_accum, cfg.train.clip
        self.bf16 = cfg.engine.precision == "bf16"
        self.params = {p: _phase_params(module, p) for p in self.phases}
        tables = embedding_tables(module)
        self.optimizers = {p: build_optimizer(self.params[p], cfg, tables) for p in self.phases}
        self.schedulers = {p: LambdaLR(self.optimizers[p], schedule) for p in self.phases}
        self.micro = dict.fromkeys(self.phases, 0)

    def forward(self, batch: Batch, phase: str) -> ModelOutput:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.model(to_device(batch, self.device), phase=phase)

    def step(self, loss: torch.Tensor, phase: str) -> None:
        self.micro[phase] += 1
        boundary = self.micro[phase] % self.accum == 0
        sync = isinstance(self.model, DistributedDataParallel) and not boundary
        with self.model.no_sync() if sync else contextlib.nullcontext():
            (loss / self.accum).backward()
        if boundary:
            if self.clip:
                torch.nn.utils.clip_grad_norm_(self.params[phase], self.clip)
            self.optimizers[phase].step()
            self.schedulers[phase].step()
            self.optimizers[phase].zero_grad(set_to_none=True)

    def lr(self, phase: str = ALL_PHASES) -> float:
        """The current learning rate of ``phase``'s optimizer (the first phase's for "all")."""
        return float(self.schedulers[_phase_key(self.phases, phase)].get_last_lr()[0])

    def save(self, directory: Path) -> None:
        """Rank 0 writes the weights (safetensors) and the optimizer states."""
        if dist.is_initialized() and dist.get_rank() != 0:
            return
        directory.mkdir(parents=True, exist_ok=True)
        weights = {k: v.detach().cpu().contiguous() for k, v in self.module.state_dict().items()}
        save_file(weights, str(directory / "model.safetensors"))
        torch.save(
            {
                "optimizers": {p: o.state_dict() for p, o in self.optimizers.items()},
                "schedulers": {p: s.state_dict() for p, s in self.schedulers.items()},
                "micro": self.micro,
            },
            directory / "optimizer.pt",
        )

    def load(self, directory: Path) -> None:
        self.module.load_state_dict(load_file(directory / "model.safetensors", device="cpu"))
        self.module.to(self.device)
        state = torch.load(directory / "optimizer.pt", map_location=self.device, weights_only=True)
        for p in self.phases:
            self.optimizers[p].load_state_dict(state["optimizers"][p])
            self.schedulers[p].load_state_dict(state["schedulers"][p])
        self.micro = dict(state["micro"])

    def zero3_partitions(self) -> dict[str, dict[str, int]] | None:
        """None: DDP keeps every parameter whole on every rank."""
        return None

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().float().cpu().clone() for k, v in self.module.state_dict().items()}


def build_engine(
    module: RecModel, cfg: TrainConfig, schedule: Schedule, device: torch.device
) -> Engine:
    """The engine of ``cfg.engine.kind`` around ``module``."""
    if cfg.engine.kind == "deepspeed":
        return DeepSpeedEngine(module, cfg, schedule)
    return DDPEngine(module, cfg, schedule, device)
