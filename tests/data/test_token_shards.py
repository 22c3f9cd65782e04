"""The sharded token store (``rayrec/data/token_shards.py``) against the in-memory one.

The tiny prepared dataset (``tests/train/tiny_prepared.py``, 216 reviews) with its ``reviews/``
rewritten by :func:`write_token_shards` into row groups of 16 reviews: 14 shards, 13 of 16
reviews and one of 8. Every answer of :class:`ShardedTokenStore` is compared with
:class:`TokenStore` on the same files; the cache counters show which shards were read.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import boto3
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from rayrec.data.prepared import PreparedDataset, TokenStore
from rayrec.data.token_shards import MIB, ShardedTokenStore, shard_index, write_token_shards
from rayrec.models.registry import get_model_spec
from rayrec.train.collate import Collator, TokenInfo
from rayrec.train.config import load_config
from rayrec.train.reviews import load_review_index
from rayrec.train.trainer import fit
from tests.train.run_outcome import outcome
from tests.train.tiny_prepared import write_tiny_prepared

PER_SHARD = 16


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    """The tiny dataset, its ``reviews/`` rewritten as sorted shards of 16 reviews."""
    root = write_tiny_prepared(tmp_path_factory.mktemp("sharded"))
    table = PreparedDataset(str(root)).table("reviews")
    shutil.rmtree(root / "reviews")
    write_token_shards(table, str(root / "reviews"), PER_SHARD)
    return PreparedDataset(str(root))


@pytest.fixture(scope="module")
def full(sharded: PreparedDataset) -> TokenStore:
    return sharded.token_store()


def store(dataset: PreparedDataset, cache_mib: float = 1) -> ShardedTokenStore:
    return ShardedTokenStore(dataset.path("reviews"), cache_mib)


def assert_same(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> None:
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x, y)


def random_ids(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    """Review ids of ``shape``, about a quarter of them -1 (empty slots)."""
    ids = rng.integers(0, n, size=shape)
    return np.where(rng.random(shape) < 0.25, -1, ids)


def test_the_index_comes_from_the_footers(sharded: PreparedDataset, full: TokenStore) -> None:
    tokens = store(sharded)
    assert len(tokens) == len(full) == 216
    assert [(s.min_id, s.max_id) for s in tokens.shards] == [
        (k, min(k + PER_SHARD, 216) - 1) for k in range(0, 216, PER_SHARD)
    ]
    assert tokens.disjoint
    assert tokens.shards_read == 0 and tokens.bytes_cached == 0  # no token read yet


@pytest.mark.parametrize("max_len", [1, 5, 24, 40])
@pytest.mark.parametrize("pad_id", [0, 7])
def test_gather_equals_the_in_memory_store(
    sharded: PreparedDataset, full: TokenStore, max_len: int, pad_id: int
) -> None:
    tokens, rng = store(sharded), np.random.default_rng(max_len + pad_id)
    for shape in [(9,), (4, 3), (2, 3, 5), (0,), (3,)]:
        ids = random_ids(rng, len(full), shape)
        assert_same(tokens.gather(ids, max_len, pad_id), full.gather(ids, max_len, pad_id))
    empty = np.full((2, 2), -1)
    assert_same(tokens.gather(empty, max_len, pad_id), full.gather(empty, max_len, pad_id))


def test_row_equals_the_in_memory_store(sharded: PreparedDataset, full: TokenStore) -> None:
    tokens = store(sharded)
    for r in range(len(full)):
        assert np.array_equal(tokens.row(r), full.row(r))
        assert tokens.row(r).dtype == full.row(r).dtype == np.int32
    assert tokens.shards_read == len(tokens.shards)  # each shard read once, then cached


def test_ids_of_one_shard_read_one_shard(sharded: PreparedDataset, full: TokenStore) -> None:
    tokens = store(sharded)
    ids = np.array([[33, -1, 40], [47, 32, 33]])  # all in shard 2 (ids 32..47)
    assert_same(tokens.gather(ids, 24), full.gather(ids, 24))
    assert (tokens.shards_read, tokens.shards_cached) == (1, 1)
    tokens.gather(np.array([35]), 24)
    assert tokens.shards_read == 1  # a cache hit
    tokens.gather(np.array([15, 16]), 24)  # the ends of shards 0 and 1
    assert (tokens.shards_read, tokens.shards_cached) == (3, 3)


def test_a_small_cache_evicts_and_stays_right(sharded: PreparedDataset, full: TokenStore) -> None:
    """A bound of the largest shard: one shard fits, the next call evicts it."""
    probe = store(sharded)
    probe.gather(np.arange(len(full)), 24)
    sizes = sorted(shard.nbytes for shard in probe.cache.values())
    assert sizes[-1] < sizes[1] + sizes[2]  # no two full shards fit the bound below
    tokens = store(sharded, cache_mib=sizes[-1] / MIB)
    for _ in range(2):
        for start in range(0, len(full), PER_SHARD):
            ids = np.arange(start, min(start + PER_SHARD, len(full))).reshape(-1, 1)
            assert_same(tokens.gather(ids, 24), full.gather(ids, 24))
            assert tokens.bytes_cached <= tokens.cache_bytes
    n = len(tokens.shards)
    assert tokens.shards_read == 2 * n  # the second pass read every shard again
    assert tokens.shards_evicted >= 2 * n - 2
    ids = random_ids(np.random.default_rng(1), len(full), (64, 4))
    assert_same(tokens.gather(ids, 24), full.gather(ids, 24))  # many shards in one call:
    assert tokens.bytes_cached > tokens.cache_bytes  # all kept until the next call
    tokens.gather(np.array([0]), 24)
    assert tokens.shards_cached == 1 and tokens.bytes_cached <= tokens.cache_bytes


def test_an_unsorted_layout_gives_the_same_tokens(
    sharded: PreparedDataset, full: TokenStore, tmp_path: Path
) -> None:
    """Two files of shuffled rows in row groups of 16: every shard's id range overlaps others."""
    table = sharded.table("reviews")
    order = np.random.default_rng(0).permutation(table.num_rows)
    half = len(order) // 2
    pq.write_table(table.take(order[:half]), tmp_path / "a.parquet", row_group_size=PER_SHARD)
    pq.write_table(table.take(order[half:]), tmp_path / "b.parquet", row_group_size=PER_SHARD)
    tokens = ShardedTokenStore(str(tmp_path), cache_mib=0)
    assert not tokens.disjoint and len(tokens.shards) == 14
    rng = np.random.default_rng(2)
    for max_len in (3, 24):
        ids = random_ids(rng, len(full), (16, 4))
        assert_same(tokens.gather(ids, max_len), full.gather(ids, max_len))
    for r in rng.integers(0, len(full), 20):
        assert np.array_equal(tokens.row(int(r)), full.row(int(r)))


def test_shards_on_s3(s3_endpoint: str, sharded: PreparedDataset, full: TokenStore) -> None:
    """Written to and read from a real S3 server (moto): the footer index, one shard read."""
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="token-shards")
    uri = "s3://token-shards/reviews"
    write_token_shards(sharded.table("reviews"), uri, PER_SHARD)
    tokens = ShardedTokenStore(uri, 1)
    assert len(tokens.shards) == 14 and tokens.disjoint
    ids = np.array([[100, -1], [111, 96]])  # shard 6 (ids 96..111)
    assert_same(tokens.gather(ids, 24), full.gather(ids, 24))
    assert tokens.shards_read == 1
    assert np.array_equal(tokens.row(200), full.row(200))


def test_missing_review_ids_are_refused(sharded: PreparedDataset, tmp_path: Path) -> None:
    table = sharded.table("reviews")
    kept = table.filter(np.arange(table.num_rows) != 100)
    write_token_shards(kept, str(tmp_path), PER_SHARD)
    with pytest.raises(ValueError, match="0..R-1"):
        ShardedTokenStore(str(tmp_path), 1)
    with pytest.raises(FileExistsError):
        write_token_shards(kept, str(tmp_path), PER_SHARD)


def test_review_index_with_shards_equals_in_memory(sharded: PreparedDataset) -> None:
    """Every array of the index, and BERT-RS pair text (``Collator._review_text``, one
    review at a time through ``row``), with the sharded store as without."""
    memory, shards = load_review_index(sharded.uri), load_review_index(sharded.uri, 0)
    assert isinstance(memory.tokens, TokenStore)
    assert isinstance(shards.tokens, ShardedTokenStore) and shards.tokens.cache_bytes == 0
    for name in ("user_idx", "item_idx", "domain_idx", "rating", "split", "sentiment"):
        assert np.array_equal(getattr(memory, name), getattr(shards, name)), name
    for name in ("user_train", "item_train"):
        a, b = getattr(memory, name), getattr(shards, name)
        assert np.array_equal(a.offsets, b.offsets) and np.array_equal(a.values, b.values)
    info = TokenInfo.from_manifest(sharded.manifest)
    rows = sharded.table("ranking", "train.parquet").slice(0, 12)
    spec = get_model_spec("bertrs")
    a = Collator(spec, memory, info, train=True, seed=3)(rows, step=0)
    b = Collator(spec, shards, info, train=True, seed=3)(rows, step=0)
    assert set(a) == set(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert shards.tokens.shards_read > 0


def sifn_run(storage: Path, data: str, name: str, *extra: str) -> dict:
    """SIFN, tiny backbone, one epoch of 2 steps, DDP, the encoder run on gathered tokens."""
    overrides = [
        f"run.storage={storage}",
        f"run.name={name}",
        "train.epochs=1",
        "train.batch_size=8",
        "train.max_steps_per_epoch=2",
        "model.params.backbone=tiny",
        "data.max_len=16",
        "data.reviews_per_doc=2",
        "engine.kind=ddp",
        "data.review_store=off",  # the frozen encoder reads the tokens of every batch
        *extra,
    ]
    return fit(load_config("sifn", overrides=overrides), data)


@pytest.mark.slow
def test_training_with_shards_equals_in_memory(
    ray_session: None, sharded: PreparedDataset, tmp_path: Path
) -> None:
    """``data.token_cache_mib=0`` (every call reads its shards again unless the previous call
    read them) computes what the in-memory run does."""
    results = {
        "memory": sifn_run(tmp_path, sharded.uri, "memory"),
        "shards": sifn_run(tmp_path, sharded.uri, "shards", "data.token_cache_mib=0"),
    }
    assert results["shards"]["config"]["data"]["token_cache_mib"] == 0
    assert results["memory"]["config"]["data"]["token_cache_mib"] is None
    assert outcome(results["shards"]) == outcome(results["memory"])
    assert results["memory"]["history"][0]["train_loss"] > 0


@pytest.mark.slow
def test_training_workers_build_the_sharded_store(
    ray_session: None, sharded: PreparedDataset, tmp_path: Path
) -> None:
    """A token store whose footers lack statistics cannot be sharded: the run with
    ``data.token_cache_mib`` fails with the sharded store's error (its workers build one)."""
    data = tmp_path / "data"
    shutil.copytree(sharded.uri, data)
    reviews = data / "reviews" / "part-00000.parquet"
    pq.write_table(pq.read_table(reviews), reviews, write_statistics=False)
    with pytest.raises(Exception, match="has no review_id statistics"):
        sifn_run(tmp_path, str(data), "shards", "data.token_cache_mib=1")


@pytest.mark.parametrize("real_name", ["musical_instruments", "synthetic_corpus"])
def test_the_pipeline_writes_disjoint_shards(
    real_name: str, request: pytest.FixtureRequest
) -> None:
    """``rayrec prepare``'s own store is the layout the reader is made for: every row group
    holds a run of consecutive review ids (one read task's records keep their file order,
    and ids follow that order within a domain), so an id lies in exactly one shard; on the
    multi-domain synthetic corpus too."""
    real: PreparedDataset = request.getfixturevalue(real_name)
    shards = shard_index(real.path("reviews"))
    starts = np.array([s.min_id for s in shards])
    ends = np.array([s.max_id for s in shards])
    rows = np.array([s.num_rows for s in shards])
    assert len(shards) > 1
    assert (ends - starts + 1 == rows).all()  # consecutive ids within a shard
    assert starts[0] == 0 and (starts[1:] == ends[:-1] + 1).all()  # no gap, no overlap
    store = ShardedTokenStore(real.path("reviews"), cache_mib=1)
    store.gather(np.array([ends[0], ends[0]]), max_len=8)
    assert store.shards_read == 1
