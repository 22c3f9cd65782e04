"""In-domain U-BERT pre-training reads the target domain's training reviews only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rayrec.data.prepared import PreparedDataset
from rayrec.models.registry import get_model_spec
from rayrec.train.config import load_config
from rayrec.train.datasets import eval_table, load_train_table, train_rows
from rayrec.train.reviews import SPLIT_CODES, load_review_index


def test_in_domain_pretraining_reads_target_training_reviews_only(tiny_prepared: Path) -> None:
    uri = str(tiny_prepared)
    index = load_review_index(uri)
    cfg = load_config("ubert_pretrain", overrides=["data.pretrain_reviews=target_train"])
    train = load_train_table(uri, "pretrain", cfg.data.pretrain_val_every, "target_train").rows
    val = eval_table(get_model_spec("ubert_pretrain"), PreparedDataset(uri), index, "val", cfg.data)
    ids = np.concatenate([train.column("review_id").to_numpy(), val.column("review_id").to_numpy()])
    target_train = np.flatnonzero(index.split == SPLIT_CODES["train"])
    assert np.array_equal(np.sort(ids), target_train)  # all of them, nothing else
    assert not set(train.column("review_id").to_numpy()) & set(val.column("review_id").to_numpy())
    assert (index.domain_idx[ids] == 0).all()
    spec = get_model_spec("ubert_pretrain")
    assert train_rows(spec, PreparedDataset(uri), cfg.data) == train.num_rows
    # the paper's setting reads the other domains' reviews, none of the target's
    other = load_train_table(uri, "pretrain", cfg.data.pretrain_val_every).rows
    assert (index.split[other.column("review_id").to_numpy()] == SPLIT_CODES["pretrain"]).all()
