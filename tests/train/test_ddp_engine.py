"""The DDP engine across two processes (a two-rank gloo group, no Ray): SAFMR's three
update phases (each forward reaches a subset of the parameters, so DDP must look for the
unused ones) and biased MF (one phase, every parameter used, no search) both step, and the
two ranks, fed different batches, end with the same weights."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from rayrec.data.prepared import PreparedDataset
from rayrec.models.registry import build_model, get_model_spec
from rayrec.train.collate import Collator
from rayrec.train.config import load_config
from rayrec.train.engine import build_engine
from rayrec.train.loop import data_info, token_info
from rayrec.train.reviews import load_review_index
from rayrec.train.schedule import Schedule

WORLD = 2
BATCH = 4
STEPS = 2
SETTINGS = {
    "safmr": [
        "model.params.word_vectors=null",
        "model.params.embed_dim=16",
        "model.params.max_reviews=2",
        "model.params.max_review_len=16",
        "data.max_len=16",
        "data.reviews_per_doc=2",
    ],
    "biased_mf": [],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_rank(rank: int, model: str, data: str, port: int, out: str) -> None:
    """One rank: STEPS batches of its own through every update phase, then compare weights."""
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        overrides = ["engine.kind=ddp", f"train.batch_size={BATCH}", *SETTINGS[model]]
        cfg = load_config(model, overrides=overrides)
        dataset = PreparedDataset(data)
        tokens = token_info(cfg, dataset.manifest)
        torch.manual_seed(0)
        module = build_model(model, cfg.model.params, data_info(dataset.manifest, tokens))
        initial = {n: p.detach().clone() for n, p in module.named_parameters()}
        names = {id(p): n for n, p in module.named_parameters()}
        phase_names = {
            phase: [names[id(p)] for p in module.phase_parameters(phase)]
            for phase in module.update_phases
        }
        schedule = Schedule.from_config(cfg.train, steps_per_epoch=STEPS)
        engine = build_engine(module, cfg, schedule, torch.device("cpu"))
        collate = Collator(
            get_model_spec(model), load_review_index(dataset.uri), tokens, train=True, seed=rank
        )
        table = pq.read_table(dataset.path("pairs", "train.parquet"))
        for step in range(STEPS):
            batch = collate(table.slice((step * WORLD + rank) * BATCH, BATCH))
            for phase in module.update_phases:
                engine.step(engine.forward(batch, phase)["loss"], phase)

        weights = engine.full_state_dict()
        flat = torch.cat([v.flatten() for v in weights.values()])
        gathered = [torch.empty_like(flat) for _ in range(WORLD)]
        dist.all_gather(gathered, flat)
        if rank == 0:
            wrapper = engine.model
            report = {
                "ddp": isinstance(wrapper, DistributedDataParallel),
                "find_unused": bool(getattr(wrapper, "find_unused_parameters", False)),
                "ranks_equal": all(torch.equal(gathered[0], g) for g in gathered[1:]),
                "phases_moved": {
                    phase: any(not torch.equal(weights[n], initial[n]) for n in names)
                    for phase, names in phase_names.items()
                },
            }
            Path(out).write_text(json.dumps(report))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize(("model", "find_unused"), [("safmr", True), ("biased_mf", False)])
def test_two_ranks_step_every_phase_and_agree(
    model: str, find_unused: bool, tiny_prepared: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    mp.spawn(train_rank, args=(model, str(tiny_prepared), free_port(), str(out)), nprocs=WORLD)
    report = json.loads(out.read_text())
    assert report["ddp"] and report["ranks_equal"]
    assert report["find_unused"] is find_unused
    assert all(report["phases_moved"].values()), report["phases_moved"]
