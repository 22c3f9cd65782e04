"""The papers' settings ship as presets beside the CPU ones, each opening with its command."""

from __future__ import annotations

from pathlib import Path

import pytest

from rayrec.train.config import CONFIG_DIR, load_config

PAPER = sorted((CONFIG_DIR / "paper").glob("*.yaml"))


def test_every_text_model_has_a_paper_preset() -> None:
    assert {p.stem for p in PAPER} == {
        "ubert_pretrain",
        "ubert_finetune",
        "sifn",
        "safmr",
        "bertrs",
    }


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_paper_preset_validates_and_opens_with_its_command(path: Path) -> None:
    cfg = load_config(path=path)
    assert cfg.model.name == path.stem
    first = path.read_text().splitlines()[0]
    assert first.startswith(f"# rayrec train {path.stem} --config rayrec/configs/paper/{path.name}")
    assert cfg.model.params.get("trainable_layers") is None  # the papers fine-tune every layer
    if cfg.model.name in ("ubert_pretrain", "ubert_finetune", "bertrs"):
        assert cfg.train.lr <= 1e-4 and cfg.train.weight_decay == 0.01  # BERT's recipe
