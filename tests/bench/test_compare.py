"""``bench/compare.py`` reads a stored run only if it is the run its variant would train now:
on the same split and with the same settings (a preset changed since is a new run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from compare import VARIANTS, config_changes, run_variant

from rayrec.data import storage
from rayrec.data.prepared import MANIFEST
from rayrec.train.config import load_config
from rayrec.train.trainer import RESULTS_FILE

OLD_PRESET = VARIANTS["deepconn_random"][1]  # DeepCoNN's preset until 2026-12-07


def dumped(model: str, *overrides: str) -> dict:
    return load_config(model, overrides=list(overrides)).model_dump(mode="json")


def test_an_unchanged_config_has_no_changes() -> None:
    assert config_changes(dumped("deepconn"), dumped("deepconn")) == []


def test_a_preset_left_out_default_is_no_change() -> None:
    """``model.params`` are compared with the model's defaults filled in: a stored run that
    spelled out a default is the same run as one that left it out."""
    explicit = dumped("deepconn", "model.params.kernel_size=3")
    assert config_changes(explicit, dumped("deepconn")) == []


def test_changed_settings_are_named() -> None:
    old_preset = dumped("deepconn", *OLD_PRESET)
    changed = config_changes(old_preset, dumped("deepconn", "train.lr=1e-3"))
    assert changed == [
        "model.params.embed_dim",
        "model.params.freeze_word_vectors",
        "model.params.word_vectors",
        "train.lr",
    ]


def test_the_store_fit_attached_is_not_a_change() -> None:
    stored = dumped("sifn", "model.params.review_states=/data/review_states/minilm-L64")
    assert config_changes(stored, dumped("sifn")) == []


def test_where_the_split_was_read_is_not_a_change() -> None:
    """A run trained by ``rayrec train --data DIR`` records DIR; the split is checked by its
    manifest instead."""
    assert config_changes(dumped("deepconn", "data.uri=/tmp/mi/seed0"), dumped("deepconn")) == []


def store_run(root: Path, name: str, data: Path, config: dict) -> None:
    results = {
        "data": {"uri": str(data), "manifest_sha256": storage.sha256(str(data / MANIFEST))},
        "config": config,
        "test": {"mse": 0.5},
    }
    (root / name).mkdir(parents=True)
    (root / name / RESULTS_FILE).write_text(json.dumps(results))


def test_a_stored_run_of_the_variant_is_read_not_trained(tmp_path: Path, tiny_data: Path) -> None:
    store_run(tmp_path, "deepconn-seed0", tiny_data, dumped("deepconn"))
    results = run_variant("deepconn", str(tiny_data), 0, str(tmp_path), [])
    assert results["test"] == {"mse": 0.5}


def test_a_stored_run_of_other_settings_is_refused(tmp_path: Path, tiny_data: Path) -> None:
    """The DeepCoNN run stored before the preset moved to MiniLM's vectors is not read as
    today's preset."""
    old_preset = dumped("deepconn", *OLD_PRESET)
    store_run(tmp_path, "deepconn-seed0", tiny_data, old_preset)
    with pytest.raises(SystemExit, match=r"deepconn-seed0/results.json: trained with other "):
        run_variant("deepconn", str(tiny_data), 0, str(tmp_path), [])
    with pytest.raises(
        SystemExit, match=r"model.params.embed_dim, model.params.freeze_word_vectors, "
    ):
        run_variant("deepconn", str(tiny_data), 0, str(tmp_path), [])


def test_a_stored_run_of_another_split_is_refused(tmp_path: Path, tiny_data: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / MANIFEST).write_text("{}")
    store_run(tmp_path / "runs", "deepconn-seed0", other, dumped("deepconn"))
    with pytest.raises(SystemExit, match=r"not on .* \(seed 0\)"):
        run_variant("deepconn", str(tiny_data), 0, str(tmp_path / "runs"), [])
