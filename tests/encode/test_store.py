"""The review-state store: built by Ray Data, read back as the encoder's own states, refused
when it was built for other data, another backbone, length or layer, resumed shard by shard."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from rayrec.encode.build import EncodeRequest, ensure_store, store_key, store_uri
from rayrec.encode.store import META, StateStore, StoreMismatch, index_name
from rayrec.models.encoders import ReviewEncoder, build_bert
from rayrec.train.reviews import TRAIN, load_review_index

MAX_LEN = 16
SHARD = 10  # small shards: the tiny dataset spans several


def _request(tiny_data: Path, root: Path | str, **changes: object) -> EncodeRequest:
    base = EncodeRequest(
        data_uri=str(tiny_data),
        backbone="tiny",
        max_len=MAX_LEN,
        root=str(root),
        shard_reviews=SHARD,
        threads=1,
        actors=1,
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def stores(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory, ray_session: None) -> dict:
    """The last layer's store and layer 1's (the input of the tiny BERT's top layer)."""
    root = tmp_path_factory.mktemp("stores")
    last, info = ensure_store(_request(tiny_data, root))
    lower, _ = ensure_store(_request(tiny_data, root, layer=1))
    return {"root": root, "last": last, "layer1": lower, "info": info}


def _on_the_fly(tiny_data: Path, review_ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """What the frozen tiny BERT computes for these reviews in one padded batch."""
    index = load_review_index(str(tiny_data))
    ids, mask, _ = index.tokens.gather(review_ids, MAX_LEN, 0)
    encoder = ReviewEncoder(build_bert("tiny", add_pooling_layer=False), frozen=True)
    with torch.no_grad():
        hidden = encoder(torch.from_numpy(ids), torch.from_numpy(mask)).hidden
    return hidden, torch.from_numpy(mask)


def test_store_holds_every_training_review_as_the_encoder_computes_it(
    tiny_data: Path, stores: dict
) -> None:
    store: StateStore = stores["last"]
    index = load_review_index(str(tiny_data))
    train = np.flatnonzero(index.split == TRAIN)
    assert store.meta["reviews"] == len(train) and store.meta["shards"] == -(-len(train) // SHARD)
    assert stores["info"]["built"] and store.meta["dim"] == 32 and store.key.layer == 2
    expected, mask = _on_the_fly(tiny_data, train)
    got = store.gather(train, MAX_LEN)
    # float16 storage: relative error ~5e-4 of states of norm ~1 (LayerNorm outputs)
    assert torch.allclose(got[mask], expected[mask], atol=4e-3, rtol=0)
    assert not got[~mask].any()  # zeros past each review's end
    # the tolerance tells reviews and positions apart: a neighbour's states are far off
    both = mask[1:] & mask[:-1]
    assert (got[1:][both] - expected[:-1][both]).abs().amax() > 0.5
    shifted = mask[:, 1:] & mask[:, :-1]
    assert (got[:, 1:][shifted] - expected[:, :-1][shifted]).abs().amax() > 0.5
    # empty slots are zeros, non-training reviews are refused
    assert not store.gather(np.array([-1]), MAX_LEN).any()
    other = np.flatnonzero(index.split != TRAIN)[:1]
    with pytest.raises(StoreMismatch, match="only training reviews"):
        store.gather(other, MAX_LEN)
    with pytest.raises(StoreMismatch, match=f"data.max_len={MAX_LEN}"):
        store.gather(train[:1], MAX_LEN + 1)


def test_top_layer_over_the_layer_store_equals_the_whole_encoder(
    tiny_data: Path, stores: dict
) -> None:
    index = load_review_index(str(tiny_data))
    train = np.flatnonzero(index.split == TRAIN)[:20]
    expected, mask = _on_the_fly(tiny_data, train)
    ids, _, _ = index.tokens.gather(train, MAX_LEN, 0)
    partial = ReviewEncoder(
        build_bert("tiny", add_pooling_layer=False), trainable_layers=1, store=stores["layer1"]
    ).eval()
    with torch.no_grad():
        got = partial(torch.from_numpy(ids), mask, torch.from_numpy(train)).hidden
    assert torch.allclose(got[mask], expected[mask], atol=1e-2, rtol=0)
    with pytest.raises(ValueError, match="holds layer 2, trainable_layers=1 needs layer 1"):
        ReviewEncoder(build_bert("tiny"), trainable_layers=1, store=stores["last"])


def test_a_store_for_other_data_backbone_length_or_layer_is_refused(
    tiny_data: Path, stores: dict, tmp_path: Path
) -> None:
    store: StateStore = stores["last"]
    key = store.key
    for field, value in [
        ("manifest_sha256", "0" * 64),
        ("backbone", "minilm"),
        ("max_len", MAX_LEN * 2),
        ("layer", 1),
        ("backbone_sha256", "f" * 64),
    ]:
        with pytest.raises(StoreMismatch, match=f"built for {field}=.*needs {field}="):
            StateStore(store.uri, expect=dataclasses.replace(key, **{field: value}))
    with pytest.raises(StoreMismatch, match="not a finished review-state store"):
        StateStore(str(tmp_path))


def test_an_interrupted_build_resumes_at_the_missing_shard(
    tiny_data: Path, stores: dict, tmp_path: Path
) -> None:
    request = _request(tiny_data, tmp_path)
    first, _ = ensure_store(request)
    uri = Path(store_uri(request, store_key(request)))
    (uri / META).unlink()  # as if the build died before its last shard
    (uri / index_name(1)).unlink()
    kept = (uri / index_name(0)).stat().st_mtime_ns
    lines: list[str] = []
    again, info = ensure_store(request, log=lines.append)
    assert info["built"] and "1 of" in lines[0]  # only the missing shard was encoded
    assert (uri / index_name(0)).stat().st_mtime_ns == kept
    ids = np.flatnonzero(load_review_index(str(tiny_data)).split == TRAIN)
    assert torch.equal(again.gather(ids, MAX_LEN), stores["last"].gather(ids, MAX_LEN))


def test_a_store_streams_to_s3_and_reads_back(
    tiny_data: Path, stores: dict, s3_endpoint: str, tmp_path: Path, monkeypatch
) -> None:
    import boto3

    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="states")
    monkeypatch.setenv("RAYREC_CACHE", str(tmp_path / "cache"))  # a fresh download cache
    remote, info = ensure_store(_request(tiny_data, "s3://states/stores"))
    assert info["built"] and remote.uri.startswith("s3://states/stores/")
    reopened = StateStore(remote.uri, expect=stores["last"].key)
    ids = np.flatnonzero(load_review_index(str(tiny_data)).split == TRAIN)
    assert torch.equal(reopened.gather(ids, MAX_LEN), stores["last"].gather(ids, MAX_LEN))


def test_the_key_follows_the_frozen_weights_of_pretrained_backbones(
    tiny_data: Path, tmp_path: Path
) -> None:
    from safetensors.torch import save_file

    from rayrec.models.base import DataInfo
    from rayrec.models.ubert import UBertPretrain, UBertPretrainConfig

    info = DataInfo(24, 16, 3, 30522, 0, 3.5, MAX_LEN, 3)
    weights = UBertPretrain(UBertPretrainConfig(backbone="tiny"), info).state_dict()
    top = "review_encoder.bert.encoder.layer.1.output.dense.weight"
    weights[top] = weights[top] + 1.0  # pre-training changed the top layer only
    save_file({k: v.contiguous() for k, v in weights.items()}, tmp_path / "top.safetensors")
    bottom = "review_encoder.bert.encoder.layer.0.output.dense.weight"
    weights[bottom] = weights[bottom] + 1.0  # and now a frozen one too
    save_file({k: v.contiguous() for k, v in weights.items()}, tmp_path / "low.safetensors")

    def key(pretrained: str | None, layer: int):
        return store_key(_request(tiny_data, tmp_path, pretrained=pretrained, layer=layer))

    plain = key(None, 1)
    assert key(str(tmp_path / "top.safetensors"), 1) == plain  # layer 1's input: unchanged
    assert key(str(tmp_path / "top.safetensors"), 2) != key(None, 2)  # the last layer's
    assert key(str(tmp_path / "low.safetensors"), 1) != plain
