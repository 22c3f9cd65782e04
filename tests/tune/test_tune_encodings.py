"""The frozen-encoder fast path: reviews encoded once give the model the states BERT would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from rayrec.data.prepared import PreparedDataset
from rayrec.models.base import DataInfo
from rayrec.models.encoders import ReviewStateCache
from rayrec.models.registry import get_model_spec
from rayrec.models.sifn import SIFN, SIFNConfig
from rayrec.train.collate import Collator, TokenInfo
from rayrec.train.config import load_config
from rayrec.train.reviews import TRAIN, load_review_index
from rayrec.tune.encodings import cache_blocker, encode_reviews, ensure_encodings
from rayrec.tune.space import parse_expressions

MAX_LEN, M = 16, 3


@pytest.fixture(scope="module")
def states_dir(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("states")
    encode_reviews(str(tiny_data), "tiny", MAX_LEN, out)
    return out


def test_cache_holds_every_training_review_cut_to_max_len(
    tiny_data: Path, states_dir: Path
) -> None:
    cache = ReviewStateCache(str(states_dir))
    index = load_review_index(str(tiny_data))
    lengths = np.diff(cache.offsets)
    train = index.split == TRAIN
    expected = np.minimum(np.diff(index.tokens.offsets), MAX_LEN)
    assert np.array_equal(lengths[train], expected[train])
    assert not lengths[~train].any()  # validation / test / other domains: never in a document
    assert cache.states.dtype == np.float16 and cache.dim == 32 and cache.max_len == MAX_LEN
    with pytest.raises(ValueError, match="data.max_len=16"):
        cache.gather(torch.zeros(1, 1, dtype=torch.long), MAX_LEN + 1)


def test_sifn_with_precomputed_states_predicts_as_with_bert(
    tiny_data: Path, states_dir: Path
) -> None:
    dataset = PreparedDataset(str(tiny_data))
    tokens = TokenInfo.from_manifest(dataset.manifest, max_len=MAX_LEN, reviews_per_doc=M)
    collate = Collator(
        get_model_spec("sifn"), load_review_index(str(tiny_data)), tokens, train=False
    )
    batch = collate(pq.read_table(tiny_data / "pairs" / "val.parquet"))
    info = DataInfo(24, 16, 3, 30522, 0, 3.5, MAX_LEN, M)
    torch.manual_seed(0)
    with_bert = SIFN(SIFNConfig(backbone="tiny"), info).eval()
    cached = SIFN(SIFNConfig(backbone="tiny", review_states=str(states_dir)), info).eval()
    assert cached.review_encoder is None  # no BERT built
    heads = {k: v for k, v in with_bert.state_dict().items() if not k.startswith("review_enc")}
    cached.load_state_dict(heads)
    with torch.no_grad():
        expected, got = with_bert(batch), cached(batch)
    assert torch.allclose(got["prediction"], expected["prediction"], atol=2e-3)
    assert torch.allclose(got["loss"], expected["loss"], rtol=2e-3)


def test_cache_applies_only_to_a_frozen_encoder_whose_states_do_not_vary(
    tiny_data: Path, tmp_path: Path
) -> None:
    cfg = load_config("sifn", overrides=["model.params.backbone=tiny", "data.max_len=16"])
    assert cache_blocker(cfg, parse_expressions("sifn", ["lr=choice(1e-3, 1e-2)"])) is None
    varied = parse_expressions("sifn", ["max_len=choice(16, 24)"])
    assert "data.max_len" in cache_blocker(cfg, varied)
    tuned = load_config("sifn", overrides=["model.params.freeze_backbone=false"])
    assert "fine-tuned" in cache_blocker(tuned, parse_expressions("sifn", []))
    assert "no precomputed" in cache_blocker(
        load_config("biased_mf"), parse_expressions("biased_mf", [])
    )

    uri, meta = ensure_encodings(cfg, str(tiny_data), str(tmp_path))
    again, _ = ensure_encodings(cfg, str(tiny_data), str(tmp_path))  # reused, not re-encoded
    assert again == uri and meta["max_len"] == 16 and meta["reviews"] > 0
    assert (Path(uri) / "states.npy").stat().st_size > 0
