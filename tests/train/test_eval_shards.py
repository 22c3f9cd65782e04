"""Evaluation across workers: the uneven-shard padding of ``eval_batches``, the all-reduce in
``Evaluation.result()`` (two real gloo ranks) and the bf16 switch of the DeepSpeed config.

None of these needs Ray: ``eval_batches`` is a pure function of (table, rank, world), the
reduction is checked with two ``torch.distributed`` processes on 127.0.0.1, and the DeepSpeed
config is a dict built from the run's config.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pyarrow as pa
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rayrec.eval.metrics import Evaluation
from rayrec.train.config import load_config
from rayrec.train.datasets import eval_batches
from rayrec.train.engine import deepspeed_config


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("rows", [1, 3, 5, 7, 13])
@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_every_row_is_counted_exactly_once(world: int, rows: int, batch_size: int) -> None:
    table = pa.table({"row": pa.array(range(rows), pa.int32())})
    counted: list[int] = []
    batches_per_rank = []
    for rank in range(world):
        shard = list(eval_batches(table, rank, world, batch_size))
        batches_per_rank.append(len(shard))
        for part, is_counted in shard:
            assert 1 <= part.num_rows <= batch_size
            if is_counted:
                counted += part.column("row").to_pylist()
    assert sorted(counted) == list(range(rows))  # no row lost, none counted twice
    assert len(set(batches_per_rank)) == 1  # ZeRO-3: every rank runs as many forwards


def test_a_batch_limit_counts_each_row_at_most_once() -> None:
    table = pa.table({"row": pa.array(range(11), pa.int32())})
    counted = [
        row
        for rank in range(3)
        for part, is_counted in eval_batches(table, rank, 3, 2, limit=1)
        if is_counted
        for row in part.column("row").to_pylist()
    ]
    assert sorted(counted) == [0, 1, 4, 5, 8, 9]  # the first batch of each rank's shard


def _batches() -> list[tuple[str, dict, dict]]:
    """Evaluation batches of every task, deterministic (the same in every process)."""
    g = torch.Generator().manual_seed(0)
    out = []
    for size in (3, 5, 2, 7, 1):
        rating = torch.randint(1, 6, (size,), generator=g).double()
        prediction = rating + torch.randn(size, generator=g) * 1.5
        sentiment = torch.randint(-1, 3, (size, 2), generator=g)
        sentiment[sentiment < 0] = -100  # absent review slots
        batch = {
            "rating": rating,
            "user_review_sentiment": sentiment,
            "item_review_sentiment": sentiment.flip(1),
        }
        logits = torch.randn(size, 2, 2, 3, generator=g)
        out.append(("rating", batch, {"prediction": prediction, "sentiment_logits": logits}))
        groups = size
        group = torch.arange(groups).repeat_interleave(4)
        label = torch.zeros(4 * groups)
        label[::4] = 1.0
        scores = torch.randn(4 * groups, generator=g)
        out.append(("ranking", {"label": label, "group": group}, {"prediction": scores}))
        losses = {k: torch.rand((), generator=g) for k in ("loss", "mlm_loss", "rating_loss")}
        out.append(("pretrain", {}, {"prediction": torch.zeros(size), **losses}))
    return out


def _evaluate(rank: int, world: int) -> dict[str, dict[str, float]]:
    """Every task's metrics over batches ``rank, rank + world, ...`` (all-reduced)."""
    evaluations = {task: Evaluation(task) for task in ("rating", "ranking", "pretrain")}
    for i, (task, batch, out) in enumerate(_batches()):
        if i // 3 % world == rank:
            evaluations[task].update(batch, out)
    return {task: e.result() for task, e in evaluations.items()}


def _rank_main(rank: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.save(_evaluate(rank, 2), Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_ranks_all_reduced_equal_one_process(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank_main, args=(port, str(tmp_path)), nprocs=2, join=True)
    single = _evaluate(0, 1)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    alone = _evaluate(0, 2)  # rank 0's own batches, not reduced: differs from the whole
    assert alone["rating"]["mse"] != pytest.approx(single["rating"]["mse"])
    for result in ranks:
        assert result.keys() == single.keys()
        for task, metrics in single.items():
            assert result[task].keys() == metrics.keys()
            for key, value in metrics.items():
                assert result[task][key] == pytest.approx(value, rel=1e-12), (task, key)


def test_bf16_switch_gives_a_bf16_deepspeed_config() -> None:
    """The DeepSpeed config only: bf16 training needs a GPU (or a CPU DeepSpeed accelerator
    with bf16 kernels), which this machine has not, so no bf16 engine is built here."""
    from deepspeed.runtime.config import DeepSpeedConfig

    bf16 = load_config("biased_mf", overrides=["engine.precision=bf16", "engine.zero_stage=2"])
    fp32 = load_config("biased_mf", overrides=["engine.zero_stage=2"])
    assert fp32.engine.precision == "fp32"
    assert deepspeed_config(bf16)["bf16"] == {"enabled": True}
    assert deepspeed_config(fp32)["bf16"] == {"enabled": False}
    parsed = DeepSpeedConfig(deepspeed_config(bf16))  # DeepSpeed's own reading of the dict
    assert parsed.bfloat16_config.enabled and not parsed.float16_config.enabled
    assert parsed.zero_optimization_stage == 2
    assert not DeepSpeedConfig(deepspeed_config(fp32)).bfloat16_config.enabled
