"""Which review-state store a run reads, and attaching it to the run's config.

A run reads a store when its model accepts ``review_states`` (SIFN, U-BERT fine-tuning) and
part of its encoder does not train:

* ``freeze_backbone: true`` (SIFN as the paper trains it): the last layer's states, and the
  model builds no BERT at all;
* ``trainable_layers: N`` (partial fine-tuning): the states of layer ``n - N``; the model runs
  only its top N layers over them (N = 0: the last layer's states, nothing runs).

``data.review_store`` chooses: ``auto`` (default) uses the store under
``<data>/review_states/`` and builds it first if it is absent, ``off`` runs the encoder in
every step, any other value is the root directory (local or s3://) to keep stores in. A config
that names ``model.params.review_states`` itself (a Tune trial) is left as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rayrec.encode.backbone import backbone_shape
from rayrec.encode.build import EncodeRequest, ensure_store
from rayrec.models.registry import get_model_spec
from rayrec.train.config import TrainConfig


def frozen_layers(params: Any) -> int | None:
    """How many of the backbone's layers a model config keeps frozen (None: it trains all)."""
    total, _ = backbone_shape(params.backbone)
    if getattr(params, "freeze_backbone", False):
        return total
    trainable = getattr(params, "trainable_layers", None)
    return None if trainable is None else total - trainable


def review_length(cfg: TrainConfig, manifest: dict[str, Any]) -> int:
    """Tokens per review the run reads (the collate step's L)."""
    stored = int(manifest["max_len"])
    return min(cfg.data.max_len or stored, stored)


def store_request(
    cfg: TrainConfig, data_uri: str, manifest: dict[str, Any]
) -> EncodeRequest | None:
    """The store ``cfg`` reads from the dataset at ``data_uri``, or None (see the module)."""
    if cfg.data.review_store == "off":
        return None
    config_cls = get_model_spec(cfg.model.name).config_cls
    if "review_states" not in config_cls.model_fields:
        return None
    params = config_cls.model_validate(cfg.model.params)
    layer = frozen_layers(params)
    if params.review_states is not None or layer is None:
        return None
    return EncodeRequest(
        data_uri=data_uri,
        backbone=params.backbone,
        max_len=review_length(cfg, manifest),
        layer=layer,
        pretrained=getattr(params, "pretrained", None),
        root=None if cfg.data.review_store == "auto" else cfg.data.review_store,
        use_gpu=cfg.run.use_gpu,
    )


def attach_store(
    cfg: TrainConfig,
    data_uri: str,
    manifest: dict[str, Any],
    log: Callable[[str], None] = print,
) -> tuple[TrainConfig, dict[str, Any] | None]:
    """``cfg`` reading its store (built now if needed), and what was used; unchanged if the
    run reads none."""
    request = store_request(cfg, data_uri, manifest)
    if request is None:
        return cfg, None
    store, info = ensure_store(request, log)
    how = f"built in {info['seconds']:.0f} s" if info["built"] else "found"
    log(
        f"review states: {store.meta['reviews']} reviews, layer {store.key.layer} of "
        f"{store.meta['n_layers']}, {store.key.max_len} tokens ({how}): {store.uri}"
    )
    tree = cfg.model_dump(mode="json")
    tree["model"]["params"]["review_states"] = store.uri
    return TrainConfig.model_validate(tree), info | {"layer": store.key.layer}
