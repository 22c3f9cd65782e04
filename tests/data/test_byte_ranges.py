"""Uncompressed JSON lines read by byte ranges in parallel (one read task per range), and the
same records, ids and split as the file read whole; a ``.json.gz`` stays one read task."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from rayrec.data.pipeline import PrepareConfig, prepare
from rayrec.data.prepared import SPLITS, PreparedDataset
from rayrec.data.sources import LINE_BITS, Source, byte_ranges, ranges_of, read_source
from tests.data.fixtures import amazon2018_lines


def _lines() -> list[str]:
    lines = amazon2018_lines()
    lines[17] = "not json at all"  # line 18
    return lines


def _rows(tables) -> list[dict]:
    return pa.concat_tables(list(tables)).to_pylist()


def test_ranges_own_every_line_once_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "Kindle_Store_5.json"
    path.write_text("\n".join(_lines()) + "\n\n" + amazon2018_lines(1, 1)[0])  # no final \n
    source, size = Source("amazon2018", str(path), "Kindle_Store"), path.stat().st_size
    assert byte_ranges(size, size) == [(0, size)]
    ranges = byte_ranges(size, 700)  # every range boundary falls inside a line
    assert ranges[0][0] == 0 and ranges[-1][1] == size and len(ranges) > 10
    whole = [r for r in _rows(read_source(source, 0)) if r["status"] != "eof"]
    parts, eofs = [], []
    for number, (start, end) in enumerate(ranges):
        rows = _rows(read_source(source, 0, None, (number, start, end)))
        parts += [r for r in rows if r["status"] != "eof"]
        eofs += [json.loads(r["detail"]) for r in rows if r["status"] == "eof"]

    def content(row: dict) -> dict:
        return {k: v for k, v in row.items() if k not in ("review_key", "line")}

    assert [content(r) for r in parts] == [content(r) for r in whole]  # 37 records
    keys = [r["review_key"] for r in parts]
    assert keys == sorted(set(keys))  # unique, in file order
    text = path.read_bytes()
    offsets = [k & ((1 << LINE_BITS) - 1) for k in keys]
    assert all(o == 0 or text[o - 1 : o] == b"\n" for o in offsets)  # each at a line start
    info = ranges_of(eofs, str(path))
    assert info["records"] == len(whole) == 37 and info["ranges"] == len(ranges)
    (bad,) = [r for r in parts if r["status"] == "malformed"]
    which = np.searchsorted(info["range_starts"], bad["review_key"] & ((1 << LINE_BITS) - 1),
                            side="right") - 1  # fmt: skip
    assert bad["line"] + info["line_offsets"][which] == 18


@pytest.fixture(scope="module")
def both(ray_session, tmp_path_factory) -> dict[str, tuple[PreparedDataset, list[str]]]:
    """The same lines as a .json file read in 1 KiB ranges and as one .json.gz task."""
    root: Path = tmp_path_factory.mktemp("ranges")
    plain = root / "Kindle_Store_5.json"
    plain.write_text("\n".join(_lines()) + "\n")
    packed = root / "gz" / "Kindle_Store_5.json.gz"
    packed.parent.mkdir()
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    out = {}
    for name, path in (("json", plain), ("gz", packed)):
        config = PrepareConfig(
            sources=[f"amazon2018:{path}"], out=str(root / f"out-{name}"), kcore=1,
            negatives=2, max_len=32, tokenize_actors=1, max_malformed=0.05,
            read_range_bytes=1024,
        )  # fmt: skip
        lines: list[str] = []
        prepare(config, report=lines.append)
        out[name] = (PreparedDataset(config.out), lines)
    return out


def test_prepare_reads_json_by_ranges_and_says_so(both) -> None:
    (ranged, ranged_lines), (whole, whole_lines) = both["json"], both["gz"]
    size = Path(ranged.manifest["sources"][0]["uri"]).stat().st_size
    tasks = len(byte_ranges(size, 1024))
    assert tasks > 5
    assert f"read: 1 file(s) in {tasks} read task(s)" in ranged_lines
    assert any("Kindle_Store_5.json: " in x and "byte ranges" in x for x in ranged_lines)
    assert "read: 1 file(s) in 1 read task(s)" in whole_lines
    assert "read:   Kindle_Store_5.json.gz: one read task (compressed: cannot be split)" in (
        whole_lines
    )
    (source,) = ranged.manifest["sources"]
    assert source["read_ranges"] == tasks and source["records"] == 36
    assert source["malformed_examples"][0].startswith("line 18: not JSON")
    assert whole.manifest["sources"][0]["malformed_examples"] == source["malformed_examples"]


def test_ranges_give_the_same_dataset_as_one_task(both) -> None:
    ranged, whole = both["json"][0], both["gz"][0]
    assert ranged.manifest["counts"] == whole.manifest["counts"]
    for split in SPLITS:
        assert ranged.pairs(split).equals(whole.pairs(split))
    assert np.array_equal(ranged.token_store().ids, whole.token_store().ids)
