"""Bad input gives one error line and exit code 2; the same commands on a moto S3 server
(the run, the prepared dataset and the output all under s3://)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import boto3
import numpy as np
import pytest
from serve_helpers import cli, mse, results, written
from tiny_prepared import write_tiny_prepared

import rayrec
from rayrec.data import storage

pytestmark = pytest.mark.slow


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    return err


def test_foreign_data_and_bad_input_are_refused(
    mf_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = write_tiny_prepared(tmp_path / "other", seed=1)  # same shape, another seed
    capsys.readouterr()
    out = tmp_path / "out"
    assert cli("predict", mf_run, "--data", other, "--out", out) == 2
    line = error_line(capsys)
    assert line.startswith(f"rayrec predict: error: --data {other}: manifest sha256 ")
    assert "is not the run's" in line
    assert not out.exists()  # refused before anything ran

    assert cli("recommend", mf_run, "--data", other, "--out", out) == 2
    assert "is not the run's" in error_line(capsys)

    assert cli("predict", tmp_path / "no-run", "--out", out) == 2
    assert error_line(capsys).endswith("not a finished run (no results.json)")

    out.mkdir()
    (out / "old.parquet").write_bytes(b"x")
    assert cli("predict", mf_run, "--out", out) == 2
    assert "exists and is not empty" in error_line(capsys)

    assert cli("recommend", mf_run, "--k", "0", "--out", tmp_path / "k0") == 2
    assert error_line(capsys) == "rayrec recommend: error: --k 0: must be at least 1"
    assert cli("predict", mf_run, "--batch-size", "0", "--out", tmp_path / "b0") == 2
    assert "--batch-size 0: must be at least 1" in error_line(capsys)


def copy_run(run: Path, to: Path, edit: Callable[[dict], None]) -> Path:
    """The run's weights and its results.json, edited, in a new run directory."""
    to.mkdir()
    shutil.copy(run / "model.safetensors", to)
    tree = results(run)
    edit(tree["config"])
    (to / "results.json").write_text(json.dumps(tree))
    return to


def test_config_of_an_older_rayrec(
    mf_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Keys this rayrec no longer has are ignored outside ``model`` (and named), refused
    inside it."""
    old = copy_run(mf_run, tmp_path / "old", lambda c: c["train"].update(shuffle_buffer=4096))
    capsys.readouterr()
    assert cli("predict", old, "--out", tmp_path / "old-out") == 0
    assert "ignoring config keys this rayrec no longer has: train.shuffle_buffer" in (
        capsys.readouterr().out
    )
    measured = written(tmp_path / "old-out")
    ratings = measured.column("rating").to_numpy()
    assert mse(measured.column("prediction").to_numpy(), ratings) == pytest.approx(
        results(mf_run)["test"]["mse"], rel=1e-5
    )

    alien = copy_run(mf_run, tmp_path / "alien", lambda c: c["model"]["params"].update(wide=1))
    assert cli("recommend", alien, "--out", tmp_path / "alien-out") == 2
    assert error_line(capsys) == (
        f"rayrec recommend: error: {alien} (trained with rayrec {rayrec.__version__}): "
        "invalid configuration: model.wide: Extra inputs are not permitted"
    )


def test_predict_and_recommend_on_s3(
    mf_run: Path, tiny_data: Path, s3_endpoint: str, tmp_path: Path
) -> None:
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="serving")
    fs, _ = storage.filesystem("s3://serving")
    for sub in ("manifest.json", "reviews", "pairs", "ranking", "ids"):
        for path in [tiny_data / sub, *sorted((tiny_data / sub).rglob("*"))]:
            if path.is_file():
                fs.put_file(str(path), f"serving/prepared/{path.relative_to(tiny_data)}")
    for name in ("results.json", "model.safetensors"):
        fs.put_file(str(mf_run / name), f"serving/runs/biased_mf/{name}")

    run, data = "s3://serving/runs/biased_mf", "s3://serving/prepared"
    assert cli("predict", run, "--data", data, "--out", "s3://serving/out/predictions") == 0
    table = written("s3://serving/out/predictions")
    assert table.num_rows == 24
    measured = mse(table.column("prediction").to_numpy(), table.column("rating").to_numpy())
    assert measured == pytest.approx(results(mf_run)["test"]["mse"], rel=1e-5)

    assert cli("recommend", run, "--data", data, "--k", "4", "--out", "s3://serving/out/top4") == 0
    lists = written("s3://serving/out/top4")
    assert lists.num_rows == 24 * 4
    local = tmp_path / "top4"
    assert cli("recommend", mf_run, "--k", "4", "--out", local) == 0
    key = ["user_idx", "rank"]
    s3_rows, local_rows = (
        t.sort_by([(c, "ascending") for c in key]) for t in (lists, written(local))
    )
    assert s3_rows.column("item").to_pylist() == local_rows.column("item").to_pylist()
    np.testing.assert_array_equal(s3_rows.column("score"), local_rows.column("score"))
