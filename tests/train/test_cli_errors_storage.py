"""One error line and exit code 2, no traceback, before Ray starts, for what is wrong with a
run's ``results.json`` or with S3 (``test_cli_errors.py`` has the other user errors):

* a ``results.json`` cut short (half of it: a failed copy), one that is JSON but not an
  object, and one without the entries the command reads, given to ``rayrec report RUN``,
  ``rayrec predict RUN`` and ``rayrec recommend RUN``;
* S3 that cannot be used, on the moto server: a bucket that does not exist, for ``rayrec
  train --storage`` (also with ``--resume``), ``rayrec tune --storage``, ``rayrec prepare
  --source`` and ``--out``; and, with moto's IAM checks
  on, wrong credentials (keys S3 does not know) and a user's credentials without permission
  on the bucket, for ``rayrec train --storage`` and ``rayrec prepare --source``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import fsspec
import pytest
import ray
import requests
from test_cli_errors import fake_run, no_ray, one_error_line  # noqa: F401 (fixtures)

MISSING = "rayrec-no-such-bucket"
GUARDED = "rayrec-guarded"
SOURCE = "raw/Musical_Instruments_5.csv.zip"


@pytest.fixture
def no_ray_init(monkeypatch: pytest.MonkeyPatch) -> None:
    """``rayrec prepare`` starts Ray with ``ray.init``: here that fails the test."""

    def started(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ray was started before the user error was reported")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", started)


def damaged_results(run: Path) -> dict[str, str]:
    """Texts of a damaged ``results.json`` of ``run`` by name, the complete one's first."""
    complete = json.loads((run / "results.json").read_text()) | {
        "model": "biased_mf",
        "history": [],
    }
    text = json.dumps(complete, indent=2)
    incomplete = {k: v for k, v in complete.items() if k not in ("config", "history")}
    return {
        "cut short": text[: len(text) // 2],
        "not an object": json.dumps(list(complete)),
        "incomplete": json.dumps(incomplete),
        "no manifest sha256": json.dumps(complete | {"data": {"uri": complete["data"]["uri"]}}),
    }


@pytest.mark.usefixtures("no_ray")
def test_damaged_results_json_for_report_and_predict(
    fake_run: Path,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    results = fake_run / "results.json"
    expected = {
        "cut short": ("not JSON", "not JSON"),
        "not an object": ("a JSON list", "a JSON list"),
        "incomplete": ("incomplete: no history", "incomplete: no config"),
        "no manifest sha256": (None, "incomplete: no data.manifest_sha256"),
    }
    for name, text in damaged_results(fake_run).items():
        results.write_text(text)
        report_why, predict_why = expected[name]
        if report_why is not None:
            one_error_line(capsys, ["report", str(fake_run)], str(results), report_why)
        for command in ("predict", "recommend"):  # both read the run through open_run
            out = f"--out={tmp_path / command}"
            one_error_line(capsys, [command, str(fake_run), out], str(results), predict_why)


@pytest.mark.usefixtures("no_ray", "no_ray_init")
def test_missing_bucket(
    s3_endpoint: str, tiny_prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    missing = f"bucket {MISSING!r} does not exist"
    one_error_line(
        capsys,
        ["train", "biased_mf", f"--data={tiny_prepared}", f"--storage=s3://{MISSING}/runs"],
        f"--storage s3://{MISSING}/runs: {missing}",
    )
    one_error_line(
        capsys,
        ["train", "biased_mf", f"--data={tiny_prepared}", f"--storage=s3://{MISSING}/runs"]
        + ["--name=again", "--resume"],
        f"--storage s3://{MISSING}/runs: {missing}",
    )
    one_error_line(
        capsys,
        ["tune", "biased_mf", f"--data={tiny_prepared}", f"--storage=s3://{MISSING}/sweeps"],
        f"--storage s3://{MISSING}/sweeps: {missing}",
    )
    source = f"s3://{MISSING}/{SOURCE}"
    one_error_line(
        capsys,
        ["prepare", "--source", f"amazon2014:{source}", "--out", str(tmp_path / "out")],
        f"{source}: {missing}",
    )
    assert not (tmp_path / "out").exists()
    one_error_line(
        capsys,
        ["prepare", "--source", f"amazon2014:{tmp_path / 'x.csv.zip'}"]
        + ["--out", f"s3://{MISSING}/prepared"],
        f"--out s3://{MISSING}/prepared: {missing}",
    )


def set_credentials(key_id: str, secret: str) -> None:
    """Point S3 clients made from now on at these credentials: fsspec keeps one s3fs instance
    per set of arguments, and its credentials are those of the environment when it was
    made, so the cached instances are dropped."""
    os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = key_id, secret
    fsspec.get_filesystem_class("s3").clear_instance_cache()


@pytest.fixture
def guarded(s3_endpoint: str) -> Iterator[dict[str, str]]:
    """The bucket ``GUARDED`` (holding ``SOURCE``) with moto's IAM checks on, the credentials
    of a user without any permission, and the session's credentials restored afterwards."""
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    if GUARDED not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=GUARDED)
    s3.put_object(Bucket=GUARDED, Key=SOURCE, Body=b"not read: refused before")
    iam = boto3.client("iam", endpoint_url=s3_endpoint)
    iam.create_user(UserName="rayrec-nobody")
    key = iam.create_access_key(UserName="rayrec-nobody")["AccessKey"]
    session = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    # moto's server API: from now on requests are authenticated and authorised (IAM)
    reset = requests.post(f"{s3_endpoint}/moto-api/reset-auth", data=b"0", timeout=10)
    previous = reset.json()["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]
    try:
        yield {"nobody": key["AccessKeyId"], "nobody_secret": key["SecretAccessKey"]}
    finally:
        requests.post(f"{s3_endpoint}/moto-api/reset-auth", data=previous.encode(), timeout=10)
        set_credentials(*session)
        iam.delete_access_key(UserName="rayrec-nobody", AccessKeyId=key["AccessKeyId"])
        iam.delete_user(UserName="rayrec-nobody")


@pytest.mark.usefixtures("no_ray", "no_ray_init")
def test_credentials_s3_refuses(
    guarded: dict[str, str], tiny_prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    refused = f"S3 refuses access to bucket {GUARDED!r}"
    for key_id, secret in (
        ("rayrec-wrong-key-id", "rayrec-wrong-secret"),  # keys S3 does not know
        (guarded["nobody"], guarded["nobody_secret"]),  # a user without permission
    ):
        set_credentials(key_id, secret)
        line = one_error_line(
            capsys,
            ["train", "biased_mf", f"--data={tiny_prepared}", f"--storage=s3://{GUARDED}/runs"]
            + ["--name=denied", "--resume"],
            f"--storage s3://{GUARDED}/runs: {refused}",
            "AWS_ACCESS_KEY_ID",
        )
        assert secret not in line and key_id not in line
        source = f"s3://{GUARDED}/{SOURCE}"
        one_error_line(
            capsys,
            ["prepare", "--source", f"amazon2014:{source}", "--out", str(tmp_path / "out")],
            f"{source}: {refused}",
        )
