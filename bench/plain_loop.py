"""The reference for Ray Train's overhead: one model trained by a plain PyTorch loop.

One process, no Ray, no DeepSpeed: the rows of ``pairs/train.parquet`` in order, the same
collate step as the workers (:class:`rayrec.train.collate.Collator`, tokens gathered from the
token store), the same model from the registry, AdamW over each update phase's parameters
and gradient clipping, ``torch.set_num_threads`` as a rayrec worker of ``cpus_per_worker``
CPUs sets it. ``train_throughput.py`` runs it beside the TorchTrainer run of the same config.
"""

from __future__ import annotations

import time

import pyarrow.parquet as pq
import torch

from rayrec.data.prepared import PreparedDataset
from rayrec.models.registry import build_model, get_model_spec
from rayrec.train.collate import Collator
from rayrec.train.config import TrainConfig
from rayrec.train.loop import data_info, token_info, torch_threads
from rayrec.train.reviews import load_review_index


def plain_samples_per_s(cfg: TrainConfig, data_uri: str, steps: int) -> float:
    """Training samples/s of ``steps`` batches of ``cfg``, timed from the first batch on
    (as the rayrec loop times an epoch)."""
    torch.set_num_threads(torch_threads(cfg.run.cpus_per_worker))
    torch.manual_seed(cfg.train.seed)
    spec = get_model_spec(cfg.model.name)
    dataset = PreparedDataset(data_uri)
    reviews = load_review_index(dataset.uri)
    tokens = token_info(cfg, dataset.manifest)
    collate = Collator(spec, reviews, tokens, train=True, seed=cfg.train.seed)
    model = build_model(cfg.model.name, cfg.model.params, data_info(dataset.manifest, tokens))
    model.train()
    phases = model.update_phases
    params = {p: list(model.phase_parameters(p)) for p in phases}
    optimizers = {
        p: torch.optim.AdamW(params[p], lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
        for p in phases
    }
    table = pq.read_table(dataset.path("pairs", "train.parquet"))
    size = cfg.train.batch_size
    if table.num_rows < steps * size:
        raise ValueError(f"{steps} batches of {size} need {steps * size} rows: {table.num_rows}")
    started = time.perf_counter()
    for step in range(steps):
        batch = collate(table.slice(step * size, size), step=step)
        for phase in phases:
            loss = model(batch, phase=phase)["loss"]
            loss.backward()
            if cfg.train.clip:
                torch.nn.utils.clip_grad_norm_(params[phase], cfg.train.clip)
            optimizers[phase].step()
            optimizers[phase].zero_grad(set_to_none=True)
    return steps * size / (time.perf_counter() - started)
