"""Search-space expressions, aliases, space files and best.yaml (no Ray)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ray import tune

from rayrec.cli import TRAINABLE_MODELS, main
from rayrec.train.config import load_config
from rayrec.tune.report import TrialRow, best_config, best_yaml
from rayrec.tune.space import (
    SpaceError,
    check_space,
    load_space_file,
    parse_expression,
    parse_expressions,
)


@pytest.mark.parametrize(
    ("model", "expression", "key", "kind", "args"),
    [
        ("sifn", "lr=loguniform(1e-5,1e-2)", "train.lr", "loguniform", (1e-5, 1e-2)),
        ("sifn", "sifn.lambda=choice(0.1,1,10)", "model.params.sentiment_weight", "choice", None),
        ("sifn", "dropout=uniform(0.1, 0.3)", "model.params.dropout", "uniform", (0.1, 0.3)),
        ("sifn", "max_len=grid(32, 64)", "data.max_len", "grid", (32, 64)),
        ("ubert_pretrain", "ubert.beta=choice(1,3)", "model.params.beta", "choice", (1, 3)),
        ("safmr", "kernels=randint(50, 200)", "model.params.n_filters", "randint", (50, 200)),
        ("biased_mf", "train.weight_decay=quniform(0, 1e-3, 1e-4)", None, "quniform", None),
    ],
)
def test_expressions_and_aliases(
    model: str, expression: str, key: str | None, kind: str, args: tuple | None
) -> None:
    space = parse_expression(model, expression)
    (dim,) = space.dimensions.values()
    assert dim.key == (key or expression.partition("=")[0])
    assert dim.kind == kind
    if args is not None:
        assert dim.args == args
    check_space(load_config(model), space)


def test_plain_values_fix_a_key_and_later_expressions_win() -> None:
    space = parse_expressions(
        "sifn", ["lr=choice(1e-3, 1e-2)", "model.params.backbone=tiny", "train.lr=3e-4"]
    )
    assert space.dimensions == {}
    assert space.fixed == {"model.params.backbone": "tiny", "train.lr": 3e-4}
    domains = parse_expressions("sifn", ["lr=loguniform(1e-4, 1e-2)"]).param_space()
    assert isinstance(domains["train.lr"], tune.search.sample.Float)
    assert 1e-4 <= domains["train.lr"].sample() <= 1e-2


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("lr=loguniform(0, 1e-2)", "LOW > 0"),
        ("lr=loguniform(1e-2, 1e-5)", "LOW must be below HIGH"),
        ("lr=uniform(1e-3)", "takes 2 numbers"),
        ("lr=gaussian(0, 1)", "unknown distribution 'gaussian'"),
        ("lr=choice()", "at least one value"),
        ("sifn.lambda=choice(0.1, 1", "unbalanced parentheses"),
        ("lr=uniform(low, 1)", "LOW must be a finite number"),
        ("dim=randint(1.5, 4)", "unknown key 'dim'"),
        ("safmr.kernels=choice(50, 100)", "'safmr' is not a config section nor the model sifn"),
        ("lr", "is not KEY=DIST or KEY=VALUE"),
    ],
)
def test_bad_expression_is_named(expression: str, says: str) -> None:
    with pytest.raises(SpaceError) as err:
        parse_expression("sifn", expression)
    assert repr(expression) in str(err.value) or expression in str(err.value)
    assert says in str(err.value)


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("train.lr=choice(1e-3, -1)", "value -1 is invalid"),
        ("model.params.no_such_knob=choice(1, 2)", "value 1 is invalid"),
        ("sifn.lambda=choice(ten)", "value 'ten' is invalid"),
    ],
)
def test_value_the_config_rejects_is_named(expression: str, says: str) -> None:
    with pytest.raises(SpaceError) as err:
        check_space(load_config("sifn"), parse_expression("sifn", expression))
    assert repr(expression) in str(err.value)
    assert says in str(err.value)


def test_cli_reports_a_bad_expression_before_starting_ray(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["tune", "sifn", "--set", "sifn.lambda=logunifrom(0.1, 10)"])
    assert code == 2
    err = capsys.readouterr().err
    assert "rayrec tune: error: 'sifn.lambda=logunifrom(0.1, 10)'" in err
    assert "unknown distribution 'logunifrom'" in err


@pytest.mark.parametrize("model", TRAINABLE_MODELS)
def test_every_model_ships_a_valid_space(model: str) -> None:
    space = load_space_file(model)
    assert space.dimensions, f"{model}: empty space"
    assert "train.lr" in space.dimensions
    check_space(load_config(model), space)


def test_paper_settings_in_the_shipped_spaces() -> None:
    sifn = load_space_file("sifn").dimensions
    assert sifn["model.params.sentiment_weight"].args == (0.1, 1, 10)
    assert {"train.lr", "model.params.dropout"} <= set(sifn)
    assert "model.params.beta" in load_space_file("ubert_pretrain").dimensions
    assert "data.max_len" in load_space_file("ubert_finetune").dimensions
    safmr = load_space_file("safmr").dimensions
    assert {"model.params.n_filters", "model.params.transform_layers"} <= set(safmr)
    assert "model.params.factors" in load_space_file("bertrs").dimensions
    # the id baselines sweep their L2 penalties, and biased MF includes the biases-only model
    mf = load_space_file("biased_mf").dimensions
    assert all(0 in mf[f"model.params.{key}"].args for key in ("factors", "reg", "bias_reg"))
    assert "train.weight_decay" not in mf
    assert 0 in load_space_file("ncf").dimensions["model.params.reg"].args


def test_space_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "space.yaml"
    bad.write_text("lr: loguniform(1e-4, 1e-2)\n")
    with pytest.raises(SpaceError, match="space: {KEY: DIST}"):
        load_space_file("sifn", bad)
    with pytest.raises(SpaceError, match="does not exist"):
        load_space_file("sifn", tmp_path / "missing.yaml")
    bad.write_text("space:\n  lr: loguniform(1e-4)\n")
    with pytest.raises(SpaceError, match="loguniform"):
        load_space_file("sifn", bad)


def test_best_yaml_is_a_train_config(tmp_path: Path) -> None:
    base = load_config(
        "sifn", overrides=["model.params.backbone=tiny", "data.uri=/data/mi"]
    ).model_dump(mode="json")
    row = TrialRow(
        trial_id="abc_00001",
        status="completed",
        epochs=2,
        best=0.81,
        best_epoch=2,
        test=0.9,
        values={"model.params.sentiment_weight": 10, "train.lr": 0.002},
    )
    cfg = best_config(base, row)
    cfg.model.params["review_states"] = "/sweep/encodings/x"  # a sweep-only setting
    path = tmp_path / "best.yaml"
    path.write_text(best_yaml(cfg, "/sweeps/s", row, "val_mse"))
    loaded = load_config("sifn", path)
    assert loaded.model.params["sentiment_weight"] == 10
    assert loaded.train.lr == 0.002
    assert loaded.data.uri == "/data/mi"
    assert "review_states" not in loaded.model.params
    assert path.read_text().startswith("# rayrec train sifn --config best.yaml\n")
