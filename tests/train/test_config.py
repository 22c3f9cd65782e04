"""Run configuration: presets, dotted overrides, validation; safe checkpoint loading."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from rayrec.cli import CliError, build_parser
from rayrec.models.registry import MODELS
from rayrec.train.checkpoint import SafeTorchCheckpointEngine
from rayrec.train.cli import check_run_name, config_from_args
from rayrec.train.config import CONFIG_DIR, apply_override, load_config
from rayrec.train.loop import eval_batch_limit
from rayrec.train.schedule import Schedule
from rayrec.train.trainer import cpu_warning, run_storage, worker_cpus


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_has_a_preset_opening_with_its_command(name: str) -> None:
    text = (CONFIG_DIR / f"{name}.yaml").read_text()
    assert text.startswith(f"# rayrec train {name} --config rayrec/configs/{name}.yaml")
    assert load_config(name).model.name == name


def test_dotted_overrides_parse_yaml_values() -> None:
    cfg = load_config(
        "sifn",
        overrides=[
            "train.lr=3e-5",
            "model.params.backbone=tiny",
            "train.clip=null",
            "train.betas=[0.8, 0.9]",
            "engine.precision=bf16",
        ],
    )
    assert cfg.train.lr == 3e-5 and cfg.train.clip is None and cfg.train.betas == (0.8, 0.9)
    assert cfg.model.params["backbone"] == "tiny" and cfg.engine.precision == "bf16"
    tree: dict = {"a": 1}
    with pytest.raises(ValueError, match="not a section"):
        apply_override(tree, "a.b=2")
    with pytest.raises(ValueError, match="KEY=VALUE"):
        apply_override(tree, "train.lr")


def test_invalid_values_are_rejected() -> None:
    with pytest.raises(ValidationError):
        load_config("sifn", overrides=["train.lrr=1"])  # unknown key
    with pytest.raises(ValidationError):
        load_config("sifn", overrides=["model.params.no_such_field=1"])  # model's own config
    with pytest.raises(ValidationError):
        load_config("sifn", overrides=["engine.zero_stage=4"])
    with pytest.raises(ValidationError, match="ZeRO stage 3"):
        load_config("safmr", overrides=["engine.zero_stage=3"])


def test_schedule_warmup_then_linear_decay() -> None:
    cfg = load_config(
        "biased_mf", overrides=["train.epochs=2", "train.warmup=2", "train.schedule=linear"]
    )
    schedule = Schedule.from_config(cfg.train, steps_per_epoch=5)
    assert [schedule(s) for s in range(3)] == [0.5, 1.0, 1.0]
    assert schedule(9) == pytest.approx(1 / 8)


class _Payload:
    def __reduce__(self):
        return (print, ("executed",))


def test_checkpoint_loading_refuses_arbitrary_pickles(tmp_path: Path) -> None:
    engine = SafeTorchCheckpointEngine()
    good = tmp_path / "good.pt"
    torch.save({"module": {"w": torch.ones(2)}, "global_steps": 3}, good)
    assert engine.load(str(good))["global_steps"] == 3
    bad = tmp_path / "bad.pt"
    torch.save({"module": _Payload()}, bad)
    with pytest.raises(Exception, match="Weights only load failed"):
        engine.load(str(bad))


def _train_args(**changes: object) -> argparse.Namespace:
    args = build_parser().parse_args(["train", "biased_mf"])
    for key, value in changes.items():
        setattr(args, key, value)
    return args


def test_cli_flags_override_the_preset_and_set() -> None:
    args = _train_args(overrides=["train.epochs=7", "train.lr=0.5"], epochs=2, num_workers=3)
    cfg = config_from_args(args)
    assert cfg.train.epochs == 2 and cfg.train.lr == 0.5 and cfg.run.num_workers == 3
    with pytest.raises(CliError, match="--pretrained is for ubert_finetune"):
        config_from_args(_train_args(pretrained="x.safetensors"))
    with pytest.raises(CliError, match="invalid configuration"):
        config_from_args(_train_args(overrides=["train.epochs=0"]))


def test_cli_run_names_are_not_reused_by_accident(tmp_path: Path) -> None:
    cfg = config_from_args(_train_args(storage=str(tmp_path), name="run1"))
    with pytest.raises(CliError, match="--resume needs"):
        check_run_name(cfg, resume=True)
    check_run_name(cfg, resume=False)
    (tmp_path / "run1").mkdir()
    with pytest.raises(CliError, match="exists"):
        check_run_name(cfg, resume=False)
    check_run_name(cfg, resume=True)


def test_workers_that_need_more_cpus_than_the_cluster_are_warned_about() -> None:
    two_workers = load_config("biased_mf", overrides=["run.num_workers=2", "run.cpus_per_worker=1"])
    assert cpu_warning(two_workers, cluster_cpus=2) is None  # they read their own data
    warning = cpu_warning(two_workers, cluster_cpus=1)
    assert warning and "need 2 CPUs and the cluster has 1" in warning
    assert "run.cpus_per_worker=0.5" in warning
    assert "more nodes" in cpu_warning(two_workers, cluster_cpus=0)  # autoscaled: no CPU yet


@pytest.mark.parametrize(
    ("workers", "nodes", "strategy", "expected"),
    [
        (1, [2.0], "PACK", 2.0),  # a laptop's single worker: every core
        (2, [2.0], "PACK", 1.0),
        (3, [2.0], "PACK", 1.0),  # does not fit: 1, and cpu_warning says so
        (2, [8.0, 2.0], "PACK", 4.0),  # both on the large node
        (2, [8.0, 2.0], "STRICT_SPREAD", 2.0),  # one on each node
        (2, [1.0, 3.0], "PACK", 1.0),  # 2 each would leave one worker without a node
        (4, [16.0, 16.0, 0.0], "SPREAD", 8.0),  # a KubeRay head of 0 CPUs
    ],
)
def test_unset_worker_cpus_take_the_cluster_share_that_fits(
    workers: int, nodes: list[float], strategy: str, expected: float
) -> None:
    assert worker_cpus(workers, nodes, strategy) == expected


def test_runs_go_to_rayrec_storage_or_home_never_the_working_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # under `ray job submit`: Ray's temporary copy of the upload
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RAYREC_STORAGE", raising=False)
    cfg = load_config("biased_mf")
    assert run_storage(cfg) == str(tmp_path / "home" / "rayrec" / "runs")
    monkeypatch.setenv("RAYREC_STORAGE", "s3://bucket/runs")
    assert run_storage(cfg) == "s3://bucket/runs"
    flagged = load_config("biased_mf", overrides=["run.storage=relative/runs"])
    assert run_storage(flagged) == str(tmp_path / "relative" / "runs")


def test_max_val_batches_bounds_validation_and_never_the_test_split() -> None:
    train = load_config("bertrs", overrides=["train.max_val_batches=3"]).train
    assert eval_batch_limit(train, "val") == 3
    assert eval_batch_limit(train, "test") is None
    both = load_config("bertrs", overrides=["train.max_eval_batches=5"]).train
    assert eval_batch_limit(both, "val") == eval_batch_limit(both, "test") == 5
