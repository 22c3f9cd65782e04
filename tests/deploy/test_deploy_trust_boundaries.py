"""Trust boundaries of the command line: no credential-bearing URI is accepted (rayrec writes
its URIs verbatim into results.json, manifest.json and sweep.json), and ``--overwrite`` never
deletes a bucket root, a filesystem root or a home directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from rayrec.cli import main
from rayrec.data import storage

SIGNED = "s3://bucket/prepared?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc123"
USERINFO = "https://reader:hunter2@store.example.com/raw/reviews.json.gz"


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["train", "sifn", f"--data={SIGNED}"], "--data"),
        (["train", "sifn", "--storage=s3://AKID:SECRET@bucket/runs"], "--storage"),
        (["train", "sifn", f"--set=data.uri={SIGNED}"], "--set"),
        (["tune", "sifn", f"--data={USERINFO}"], "--data"),
        (["prepare", f"--source=amazon2014:{USERINFO}:Books", "--out=prepared/x"], "--source"),
        (["prepare", "--out=s3://bucket/p?X-Goog-Signature=1"], "--out"),
    ],
)
def test_a_uri_with_credentials_is_refused_in_one_line(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"rayrec {argv[0]}: error: {flag}:")
    assert "hunter2" not in err and "abc123" not in err and "SECRET" not in err


def test_a_config_file_with_a_signed_uri_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(f"model: {{name: biased_mf}}\ndata: {{uri: '{SIGNED}'}}\n")
    for command in ("train", "tune"):
        assert main([command, "biased_mf", f"--config={config}"]) == 2
        err = capsys.readouterr().err
        assert "invalid configuration: s3://bucket/prepared is a signed URL" in err
        assert "abc123" not in err


def test_rayrec_storage_from_the_environment_is_checked_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("RAYREC_STORAGE", "s3://bucket/runs?X-Amz-Security-Token=t")
    assert main(["train", "sifn"]) == 2
    assert "$RAYREC_STORAGE" in capsys.readouterr().err


@pytest.mark.parametrize(
    "uri",
    [
        "s3://bucket/prepared/electronics",
        "s3://bucket/runs?versionId=3",
        "prepared/local",
        "amazon2014:s3://bucket/raw/Books_5.json.gz:Books",
    ],
)
def test_plain_uris_pass(uri: str) -> None:
    assert storage.credential_problem(uri) is None


@pytest.mark.parametrize("uri", ["s3://bucket", "s3://bucket/", "/", "~", "file:///"])
def test_overwrite_refuses_a_root(uri: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["prepare", f"--out={uri}", "--overwrite"]) == 2
    assert "--overwrite: refusing to delete" in capsys.readouterr().err
    with pytest.raises(storage.UnsafeURI):
        storage.remove(uri)


def test_removal_of_a_home_parent_or_a_symlink_to_root_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home" / "me"
    home.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    link = tmp_path / "looks-harmless"
    link.symlink_to("/")
    for uri in (str(home), str(home.parent), str(link)):
        with pytest.raises(storage.UnsafeURI):
            storage.check_deletable(uri)
    victim = tmp_path / "out"
    (victim / "sub").mkdir(parents=True)
    storage.remove(str(victim))  # an ordinary directory is still removed
    assert not victim.exists()
