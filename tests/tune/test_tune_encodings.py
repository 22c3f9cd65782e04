"""The frozen-encoder fast path of a sweep: one review-state store read by every trial gives
SIFN the predictions BERT would, and is built once, only when the states cannot vary."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

from rayrec.data.prepared import PreparedDataset
from rayrec.models.base import DataInfo
from rayrec.models.registry import get_model_spec
from rayrec.models.sifn import SIFN, SIFNConfig
from rayrec.train.collate import Collator, TokenInfo
from rayrec.train.config import load_config
from rayrec.train.reviews import load_review_index
from rayrec.tune.encodings import cache_blocker, ensure_encodings
from rayrec.tune.space import parse_expressions

MAX_LEN, M = 16, 3
TINY_SIFN = ["model.params.backbone=tiny", f"data.max_len={MAX_LEN}"]


@pytest.fixture(scope="module")
def store_uri(tiny_data: Path, ray_session: None) -> str:
    cfg = load_config("sifn", overrides=TINY_SIFN)
    uri, _ = ensure_encodings(cfg, str(tiny_data))
    return uri


def test_sifn_reading_the_store_predicts_as_with_bert(tiny_data: Path, store_uri: str) -> None:
    dataset = PreparedDataset(str(tiny_data))
    tokens = TokenInfo.from_manifest(dataset.manifest, max_len=MAX_LEN, reviews_per_doc=M)
    collate = Collator(
        get_model_spec("sifn"), load_review_index(str(tiny_data)), tokens, train=False
    )
    batch = collate(pq.read_table(tiny_data / "pairs" / "val.parquet"))
    info = DataInfo(24, 16, 3, 30522, 0, 3.5, MAX_LEN, M)
    torch.manual_seed(0)
    with_bert = SIFN(SIFNConfig(backbone="tiny"), info).eval()
    # a random rating head: with SIFN's zero start every prediction would be the global mean
    nn.init.normal_(with_bert.rating_head.weight, std=1.0)
    cached = SIFN(SIFNConfig(backbone="tiny", review_states=store_uri), info).eval()
    assert cached.review_encoder is None  # no BERT built
    heads = {k: v for k, v in with_bert.state_dict().items() if not k.startswith("review_enc")}
    cached.load_state_dict(heads)
    with torch.no_grad():
        expected, got = with_bert(batch), cached(batch)
    assert expected["prediction"].std() > 0.05  # the text reaches the prediction
    assert torch.allclose(got["prediction"], expected["prediction"], atol=2e-3, rtol=0)
    assert torch.allclose(got["loss"], expected["loss"], atol=2e-3, rtol=0)


def test_store_applies_only_when_the_states_cannot_vary(tiny_data: Path, store_uri: str) -> None:
    data = str(tiny_data)
    cfg = load_config("sifn", overrides=TINY_SIFN)
    assert cache_blocker(cfg, parse_expressions("sifn", ["lr=choice(1e-3, 1e-2)"]), data) is None
    varied = parse_expressions("sifn", ["max_len=choice(16, 24)"])
    assert "data.max_len" in cache_blocker(cfg, varied, data)
    tuned = load_config("sifn", overrides=["model.params.freeze_backbone=false"])
    assert "trains its whole encoder" in cache_blocker(tuned, parse_expressions("sifn", []), data)
    off = load_config("sifn", overrides=[*TINY_SIFN, "data.review_store=off"])
    assert "review_store is off" in cache_blocker(off, parse_expressions("sifn", []), data)
    biased_mf = load_config("biased_mf")
    assert cache_blocker(biased_mf, parse_expressions("biased_mf", []), data) is not None

    again, info = ensure_encodings(cfg, data)  # the module's store: found, not rebuilt
    assert again == store_uri and info["built"] is False and info["seconds"] == 0.0
    assert (
        Path(store_uri, "meta.json").exists()
        and Path(store_uri).parent == tiny_data / "review_states"
    )
