"""Gradient accumulation in both engines, in this process (a one-rank gloo group, no Ray):
two micro batches of 4 with ``grad_accum=2`` make the same update as one batch of 8, and
nothing is stepped at the first micro batch."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
import torch.distributed as dist

from rayrec.data.prepared import PreparedDataset
from rayrec.models.registry import build_model, get_model_spec
from rayrec.train.collate import Collator
from rayrec.train.config import load_config
from rayrec.train.engine import Engine, build_engine
from rayrec.train.loop import data_info, token_info
from rayrec.train.reviews import load_review_index
from rayrec.train.schedule import Schedule


@pytest.fixture(scope="module")
def process_group() -> Iterator[None]:
    """A one-rank gloo process group, as DeepSpeed needs one (destroyed afterwards)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_WORLD_SIZE": "1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    dist.init_process_group("gloo", rank=0, world_size=1)
    yield
    dist.destroy_process_group()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key)
        else:
            os.environ[key] = value


def make_engine(kind: str, grad_accum: int, batch_size: int, data: Path) -> Engine:
    """A biased-MF engine with the same initial weights for every call."""
    cfg = load_config(
        "biased_mf",
        overrides=[
            f"engine.kind={kind}",
            f"train.grad_accum={grad_accum}",
            f"train.batch_size={batch_size}",
            "train.lr=0.05",
            "train.clip=null",
        ],
    )
    dataset = PreparedDataset(str(data))
    torch.manual_seed(0)
    module = build_model(
        "biased_mf", {}, data_info(dataset.manifest, token_info(cfg, dataset.manifest))
    )
    schedule = Schedule.from_config(cfg.train, steps_per_epoch=4)
    return build_engine(module, cfg, schedule, torch.device("cpu"))


def batches(data: Path, sizes: list[int]) -> list[dict[str, torch.Tensor]]:
    """Consecutive batches of the training pairs, of the given sizes."""
    dataset = PreparedDataset(str(data))
    cfg = load_config("biased_mf")
    collate = Collator(
        get_model_spec("biased_mf"),
        load_review_index(dataset.uri),
        token_info(cfg, dataset.manifest),
        train=True,
    )
    table = pq.read_table(dataset.path("pairs", "train.parquet"))
    starts = [sum(sizes[:k]) for k in range(len(sizes))]
    return [collate(table.slice(start, size)) for start, size in zip(starts, sizes, strict=True)]


def weights(engine: Engine) -> dict[str, torch.Tensor]:
    return engine.full_state_dict()


@pytest.mark.parametrize("kind", ["deepspeed", "ddp"])
def test_two_micro_batches_equal_one_batch(
    kind: str, tiny_prepared: Path, process_group: None
) -> None:
    whole = make_engine(kind, grad_accum=1, batch_size=8, data=tiny_prepared)
    accumulated = make_engine(kind, grad_accum=2, batch_size=4, data=tiny_prepared)
    before = weights(accumulated)
    assert all(torch.equal(before[k], v) for k, v in weights(whole).items())

    (batch,) = batches(tiny_prepared, [8])
    whole.step(whole.forward(batch, "all")["loss"], "all")

    first, second = batches(tiny_prepared, [4, 4])
    accumulated.step(accumulated.forward(first, "all")["loss"], "all")
    # first micro step: gradients are accumulated, the weights do not move
    assert all(torch.equal(before[k], v) for k, v in weights(accumulated).items())
    accumulated.step(accumulated.forward(second, "all")["loss"], "all")

    after_whole, after_accumulated = weights(whole), weights(accumulated)
    moved = [k for k in before if not torch.equal(before[k], after_whole[k])]
    assert "user_factors.weight" in moved
    for key in before:
        torch.testing.assert_close(after_accumulated[key], after_whole[key], rtol=1e-5, atol=1e-6)
