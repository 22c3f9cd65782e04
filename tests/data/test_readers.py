"""Readers on small files in the real layouts, and bad input through ``rayrec prepare``:
each error is one line naming the file, with exit code 2; nothing is dropped silently."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from rayrec.cli import main
from rayrec.data.prepared import PreparedDataset
from rayrec.data.review_reader import read_source
from rayrec.data.sources import Source, SourceError, parse_source
from tests.data.fixtures import amazon2018_lines, write_amazon2018, write_yelp

SMALL = ["--kcore", "1", "--negatives", "2", "--max-len", "32", "--tokenize-actors", "1"]


def _prepare(capsys, *args: str) -> tuple[int, str]:
    code = main(["prepare", *SMALL, *args])
    return code, capsys.readouterr().err


def _error_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.strip().splitlines() if "rayrec prepare: error:" in line]
    assert len(lines) == 1, stderr
    return lines[0]


def test_parse_source_handles_uris_with_colons() -> None:
    assert parse_source("amazon2014:s3://bucket/Kindle_Store_5.json.gz") == Source(
        "amazon2014", "s3://bucket/Kindle_Store_5.json.gz", "Kindle_Store"
    )
    assert parse_source("yelp:s3://b/yelp/review.json:Yelp_AZ").domain == "Yelp_AZ"
    assert parse_source("amazon2018:/data/reviews_Books_5.json.gz").domain == "Books"
    with pytest.raises(SourceError, match="unknown format 'imdb'"):
        parse_source("imdb:/data/x.json")


def test_amazon2018_missing_review_text_falls_back_to_summary(tmp_path: Path) -> None:
    path = write_amazon2018(tmp_path / "Kindle_Store_5.json.gz", amazon2018_lines())
    (table,) = read_source(Source("amazon2018", str(path), "Kindle_Store"), 0)
    rows = table.to_pylist()
    records, eof = rows[:-1], rows[-1]
    assert len(records) == 36 and eof["status"] == "eof"
    assert all(r["status"] == "ok" for r in records)
    missing = [r for r in records if r["text"] == "Five Stars"]
    assert len(missing) == sum(1 for u in range(6) for i in range(6) if (u + i) % 7 == 0)
    assert {r["rating"] for r in records} == {1.0, 2.0, 3.0, 4.0, 5.0}


def test_amazon2014_requires_review_text(tmp_path: Path) -> None:
    path = write_amazon2018(tmp_path / "x.json.gz", amazon2018_lines())
    (table,) = read_source(Source("amazon2014", str(path), "x"), 0)
    statuses = table.column("status").to_pylist()
    assert statuses.count("malformed") == sum(
        1 for u in range(6) for i in range(6) if (u + i) % 7 == 0
    )
    detail = table.column("detail").to_pylist()[statuses.index("malformed")]
    assert detail == "missing field 'reviewText'"


def test_yelp_business_filter_accounts_for_every_review(
    ray_session, tmp_path: Path, capsys
) -> None:
    review = write_yelp(tmp_path / "yelp")
    out = tmp_path / "out"
    code, err = _prepare(
        capsys, "--source", f"yelp:{review}:Yelp", "--out", str(out),
        "--yelp-state", "AZ", "--yelp-category", "Restaurants",
    )  # fmt: skip
    assert code == 0, err
    manifest = PreparedDataset(str(out)).manifest
    assert manifest["counts"]["records"] == 48
    assert manifest["dropped"]["business"] == 12  # businesses 6 (NV) and 7 (not a restaurant)
    assert manifest["counts"]["reviews"] == 36 and manifest["counts"]["items"] == 6
    assert manifest["target_domain"] == "Yelp"


def test_malformed_lines_above_the_limit_stop_with_file_and_lines(
    ray_session, tmp_path: Path, capsys
) -> None:
    lines = amazon2018_lines()
    lines[2] = '{"overall": 5.0, "reviewerID": "A1", "asin": '  # cut-off JSON, line 3
    lines[9] = '{"overall": "five", "reviewerID": "A1", "asin": "B1"}'  # line 10
    path = write_amazon2018(tmp_path / "bad.json.gz", lines)
    code, err = _prepare(capsys, "--source", f"amazon2018:{path}", "--out", str(tmp_path / "out"))
    assert code == 2
    line = _error_line(err)
    assert str(path) in line and "2 of 36 records are malformed" in line
    assert "line 3: not JSON" in line and "line 10: field 'overall' is not a number" in line


def test_malformed_lines_below_the_limit_are_counted_and_reported(
    ray_session, tmp_path: Path, capsys
) -> None:
    lines = amazon2018_lines()
    lines[4] = "not json at all"
    path = write_amazon2018(tmp_path / "some_bad.json.gz", lines)
    out = tmp_path / "out"
    code, err = _prepare(
        capsys, "--source", f"amazon2018:{path}", "--out", str(out), "--max-malformed", "0.05"
    )
    assert code == 0, err
    manifest = PreparedDataset(str(out)).manifest
    assert manifest["dropped"]["malformed"] == 1
    assert manifest["sources"][0]["malformed_examples"][0].startswith("line 5: not JSON")
    assert manifest["counts"]["records"] == manifest["counts"]["reviews"] + 1


def test_truncated_gzip_is_one_error_line(ray_session, tmp_path: Path, capsys) -> None:
    full = write_amazon2018(tmp_path / "full.json.gz", amazon2018_lines(30, 30))
    cut = tmp_path / "Cut_5.json.gz"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(EOFError):  # the file really is truncated
        gzip.decompress(cut.read_bytes())
    code, err = _prepare(capsys, "--source", f"amazon2014:{cut}", "--out", str(tmp_path / "o"))
    assert code == 2
    line = _error_line(err)
    assert str(cut) in line and "truncated or corrupt" in line


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("amazon2014:{tmp}/missing_5.json.gz", "{tmp}/missing_5.json.gz: no such file"),
        ("amazon2014:{tmp}/empty_5.json.gz", "{tmp}/empty_5.json.gz: the file is empty"),
        ("amazon2014:{tmp}/notes.txt", "amazon2014 reads .json, .json.gz, .csv or .csv.zip"),
        ("parquet:{tmp}/x.parquet", "unknown format 'parquet'"),
    ],
)
def test_bad_sources_fail_before_any_work(tmp_path: Path, capsys, spec: str, message: str) -> None:
    (tmp_path / "empty_5.json.gz").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("hello")
    code, err = _prepare(
        capsys, "--source", spec.format(tmp=tmp_path), "--out", str(tmp_path / "out")
    )
    assert code == 2
    assert message.format(tmp=tmp_path) in _error_line(err)
    assert not (tmp_path / "out").exists()
