"""The backbone a store's states come from: a BERT source, optionally with U-BERT pre-trained
weights in place of its own (U-BERT fine-tuning starts from the pre-trained review encoder)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from rayrec.data import storage
from rayrec.models.encoders import TINY_CONFIG, build_bert

if TYPE_CHECKING:
    from transformers import BertModel

PRETRAINED_PREFIX = "review_encoder.bert."  # UBertPretrain's backbone in its state_dict


def weights_file(pretrained: str) -> str:
    """The ``model.safetensors`` of a U-BERT pre-training run (a file or its directory)."""
    if pretrained.endswith(".safetensors"):
        return pretrained
    return storage.join(pretrained, "model.safetensors")


def frozen_weights_sha256(source: str, pretrained: str | None, layer: int) -> str | None:
    """The sha256 of the weights a store of ``layer`` depends on (the embeddings and layers
    ``0..layer-1``) when U-BERT pre-trained weights replace the backbone's; None without them.

    Hashing the frozen part, not the file, lets a fine-tuning run reuse the store of a
    pre-training that trained only the top layers (its lower layers are the backbone's)."""
    if not pretrained:
        return None
    bert = load_backbone(source, pretrained)
    if torch.equal(_flat(bert, layer), _flat(load_backbone(source), layer)):
        return None  # pre-training left the frozen part as the backbone has it
    return hashlib.sha256(_flat(bert, layer).numpy().tobytes()).hexdigest()


def _flat(bert: BertModel, layer: int) -> torch.Tensor:
    """The embeddings' and the first ``layer`` layers' parameters, as one float32 vector."""
    modules = [bert.embeddings, *bert.encoder.layer[:layer]]
    return torch.cat([p.detach().float().reshape(-1) for m in modules for p in m.parameters()])


def backbone_shape(source: str) -> tuple[int, int]:
    """``(transformer layers, hidden width)`` of backbone ``source``, from its config only."""
    if source == "tiny":
        return int(TINY_CONFIG["num_hidden_layers"]), int(TINY_CONFIG["hidden_size"])
    from transformers import AutoConfig

    from rayrec.models.encoders import tokenizer_source

    config = AutoConfig.from_pretrained(tokenizer_source(source))
    return int(config.num_hidden_layers), int(config.hidden_size)


def load_backbone(source: str, pretrained: str | None = None) -> BertModel:
    """BERT ``source`` without pooler, frozen, with U-BERT pre-trained weights if given."""
    bert = build_bert(source, frozen=True, add_pooling_layer=False)
    if pretrained:
        from safetensors.torch import load_file

        file = storage.local_copy(weights_file(pretrained))
        tensors = load_file(Path(file))
        own = {
            k.removeprefix(PRETRAINED_PREFIX): v
            for k, v in tensors.items()
            if k.startswith(PRETRAINED_PREFIX)
        }
        if not own:
            raise ValueError(f"{file} holds no U-BERT review encoder ({PRETRAINED_PREFIX}*)")
        bert.load_state_dict(own, strict=True)
    return bert
