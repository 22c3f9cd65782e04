"""Model registry: name -> :class:`~rayrec.models.base.ModelSpec`, and a builder.

Each model module defines its own ``*_SPEC`` next to the model (fields, task, metrics); this
module only collects them, so that the training loop, Tune and the CLI can go from a name and
a config dict to a model without importing any model by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from rayrec.models.base import DataInfo, ModelSpec, RecModel
from rayrec.models.baselines import BIASED_MF_SPEC, DEEPCONN_SPEC, GLOBAL_MEAN_SPEC, NCF_SPEC
from rayrec.models.bertrs import BERTRS_SPEC
from rayrec.models.neumf import NEUMF_SPEC
from rayrec.models.safmr import SAFMR_SPEC
from rayrec.models.sifn import SIFN_SPEC
from rayrec.models.ubert import UBERT_FINETUNE_SPEC, UBERT_PRETRAIN_SPEC

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        UBERT_PRETRAIN_SPEC,
        UBERT_FINETUNE_SPEC,
        SIFN_SPEC,
        SAFMR_SPEC,
        BERTRS_SPEC,
        GLOBAL_MEAN_SPEC,
        BIASED_MF_SPEC,
        DEEPCONN_SPEC,
        NCF_SPEC,
        NEUMF_SPEC,
    )
}


def get_model_spec(name: str) -> ModelSpec:
    """The spec registered as ``name``; a ``KeyError`` listing the known names otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(MODELS)}") from None


def build_model(
    name: str, config: Mapping[str, Any] | BaseModel | None, data_info: DataInfo
) -> RecModel:
    """Build model ``name`` from its config (a mapping, an instance of its config class, or
    None for the defaults) and the dataset's sizes. A mapping is validated by the model's
    config class, which rejects unknown keys."""
    spec = get_model_spec(name)
    if config is None:
        config = spec.config_cls()
    elif isinstance(config, Mapping):
        config = spec.config_cls.model_validate(dict(config))
    elif not isinstance(config, spec.config_cls):
        raise TypeError(
            f"model {name!r} takes a {spec.config_cls.__name__} or a dict, "
            f"not a {type(config).__name__}"
        )
    return spec.model_cls(config, data_info)
