"""Backbone weights are trusted only as safetensors, and MiniLM's only with its recorded sha256
(issue 17 item 5): a pickled ``pytorch_model.bin`` is refused, a substituted
``model.safetensors`` is caught before it is loaded."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rayrec.models.encoders import (
    MINILM_SHA256,
    TINY_CONFIG,
    build_bert,
    check_weights,
    verified_minilm_dir,
)


def tiny_checkpoint(directory: Path, safe: bool) -> Path:
    """A tiny BERT checkpoint saved as safetensors, or only as a pickled pytorch_model.bin."""
    import torch
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(**TINY_CONFIG))
    model.save_pretrained(directory)
    if not safe:
        torch.save(model.state_dict(), directory / "pytorch_model.bin")
        (directory / "model.safetensors").unlink()
    return directory


def test_the_installed_minilm_has_the_recorded_sha256() -> None:
    directory = verified_minilm_dir()
    assert (directory / "model.safetensors").is_file()


def test_substituted_minilm_weights_are_refused(tmp_path: Path) -> None:
    copy = tmp_path / "minilm"
    shutil.copytree(verified_minilm_dir(), copy)
    with open(copy / "model.safetensors", "r+b") as f:
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 1]))
    with pytest.raises(RuntimeError, match="expected " + MINILM_SHA256):
        check_weights(copy, MINILM_SHA256)


def test_a_local_backbone_loads_from_safetensors_only(tmp_path: Path) -> None:
    safe = tiny_checkpoint(tmp_path / "safe", safe=True)
    assert build_bert(str(safe)).config.hidden_size == TINY_CONFIG["hidden_size"]
    pickled = tiny_checkpoint(tmp_path / "pickled", safe=False)
    assert (pickled / "pytorch_model.bin").exists()
    assert not (pickled / "model.safetensors").exists()
    with pytest.raises(OSError):
        build_bert(str(pickled))
