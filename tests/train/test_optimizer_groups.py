"""BERT-style weight decay: matrices decay, biases and LayerNorm gains do not."""

from __future__ import annotations

import torch
from torch import nn

from rayrec.train.config import load_config
from rayrec.train.engine import build_optimizer


def test_weight_decay_skips_biases_and_layer_norm() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Embedding(3, 4))
    cfg = load_config("sifn", overrides=["train.weight_decay=0.5", "train.lr=0.1"])
    optimizer = build_optimizer(list(model.parameters()), cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # no gradient: only the decay moves a parameter
    optimizer.step()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved == {"0.weight", "2.weight"}  # Linear and Embedding matrices


def test_embedding_lr_applies_to_the_models_own_tables_only() -> None:
    from rayrec.models.encoders import build_bert
    from rayrec.train.engine import embedding_tables

    model = nn.Module()
    model.user = nn.Embedding(5, 4)
    model.head = nn.Linear(4, 1)
    model.bert = build_bert("tiny")
    cfg = load_config(
        "sifn", overrides=["train.lr=1e-3", "train.embedding_lr=3e-2", "train.weight_decay=0"]
    )
    tables = embedding_tables(model)
    assert tables == {id(model.user.weight)}  # BERT's word embeddings are not a table
    optimizer = build_optimizer([model.user.weight, model.head.weight], cfg, tables)
    lrs = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert lrs == {id(model.user.weight): 3e-2, id(model.head.weight): 1e-3}
