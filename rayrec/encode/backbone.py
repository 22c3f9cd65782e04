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
    pre-training that trained only the top layers (its lower layers are the backbone's). The
    pre-trained tensors are read from the file and compared with one backbone built once."""
    if not pretrained:
        return None
    plain = build_bert(source, frozen=True, add_pooling_layer=False)
    trained = _encoder_tensors(pretrained)
    names = _frozen_names(plain, layer)
    own = dict(plain.named_parameters())
    missing = [n for n in names if n not in trained]
    if missing:
        raise ValueError(f"{weights_file(pretrained)} lacks review encoder tensors {missing[:3]}")
    if all(torch.equal(trained[n].float(), own[n].detach().float()) for n in names):
        return None  # pre-training left the frozen part as the backbone has it
    flat = torch.cat([trained[n].float().reshape(-1) for n in names])
    return hashlib.sha256(flat.numpy().tobytes()).hexdigest()


def _frozen_names(bert: BertModel, layer: int) -> list[str]:
    """Parameter names of the embeddings and the first ``layer`` layers, in module order."""
    prefixes = ("embeddings.", *(f"encoder.layer.{i}." for i in range(layer)))
    return [name for name, _ in bert.named_parameters() if name.startswith(prefixes)]


def _encoder_tensors(pretrained: str) -> dict[str, torch.Tensor]:
    """The review encoder's tensors of a U-BERT pre-training ``model.safetensors``, by their
    BERT names."""
    from safetensors.torch import load_file

    file = storage.local_copy(weights_file(pretrained))
    own = {
        k.removeprefix(PRETRAINED_PREFIX): v
        for k, v in load_file(Path(file)).items()
        if k.startswith(PRETRAINED_PREFIX)
    }
    if not own:
        raise ValueError(f"{file} holds no U-BERT review encoder ({PRETRAINED_PREFIX}*)")
    return own


def backbone_shape(source: str) -> tuple[int, int]:
    """``(transformer layers, hidden width)`` of backbone ``source``, from its config only."""
    if source == "tiny":
        return int(TINY_CONFIG["num_hidden_layers"]), int(TINY_CONFIG["hidden_size"])
    from transformers import AutoConfig

    from rayrec.models.backbone_paths import tokenizer_source

    config = AutoConfig.from_pretrained(tokenizer_source(source))
    return int(config.num_hidden_layers), int(config.hidden_size)


def load_backbone(source: str, pretrained: str | None = None) -> BertModel:
    """BERT ``source`` without pooler, frozen, with U-BERT pre-trained weights if given."""
    bert = build_bert(source, frozen=True, add_pooling_layer=False)
    if pretrained:
        bert.load_state_dict(_encoder_tensors(pretrained), strict=True)
    return bert
