"""Uncompressed JSON lines read by byte ranges in parallel (one read task per range): the
same records, in the same order, as the file read whole (so the same ids and split); a
``.json.gz`` or a CSV file stays one read task, and prepare says how each file is read."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from rayrec.data.pipeline import PrepareConfig, prepare
from rayrec.data.prepared import PreparedDataset
from rayrec.data.review_reader import (
    LINE_BITS,
    ReviewDatasource,
    byte_ranges,
    ranges_of,
    read_source,
)
from rayrec.data.sources import Source
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


def test_compressed_and_csv_files_are_one_read_task(tmp_path: Path) -> None:
    big = "\n".join(_lines()) + "\n"
    (tmp_path / "Kindle_Store_5.json.gz").write_bytes(gzip.compress(big.encode()))
    (tmp_path / "small_5.json").write_text(big)
    (tmp_path / "big_5.csv").write_text("reviewerID\n" + "A1\n" * 2000)
    sources = [Source("amazon2018", str(tmp_path / "Kindle_Store_5.json.gz"), "K"),
               Source("amazon2018", str(tmp_path / "small_5.json"), "S"),
               Source("amazon2014", str(tmp_path / "big_5.csv"), "C")]  # fmt: skip
    datasource = ReviewDatasource(sources, range_bytes=1024)
    assert [len(r) for r in datasource.ranges] == [1, len(byte_ranges(len(big), 1024)), 1]
    assert (
        datasource.plan()[0]
        == "Kindle_Store_5.json.gz: one read task (compressed: cannot be split)"
    )
    assert datasource.plan()[2] == "big_5.csv: one read task (CSV: cannot be split)"
    assert len(datasource.get_read_tasks(1)) == 2 + len(datasource.ranges[1])


def test_read_tasks_count_every_byte_of_every_file_once(
    ray_session, tmp_path: Path, monkeypatch
) -> None:
    import ray

    from rayrec.data import review_reader
    from rayrec.data.read_progress import ByteCounter

    text = "\n".join(_lines()) + "\n"
    (tmp_path / "Kindle_Store_5.json.gz").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "Books_5.json").write_text(text)
    sources = [Source("amazon2018", str(tmp_path / "Kindle_Store_5.json.gz"), "K"),
               Source("amazon2018", str(tmp_path / "Books_5.json"), "B")]  # fmt: skip
    counter = ByteCounter.remote()
    datasource = ReviewDatasource(sources, range_bytes=1024, counter=counter)
    assert len(datasource.ranges[1]) > 3
    ray.data.read_datasource(datasource).materialize()
    assert ray.get(counter.total.remote()) == sum(p.stat().st_size for p in tmp_path.iterdir())
    # within a task: the bytes read so far, before each block (here of 5 records)
    monkeypatch.setattr(review_reader, "BLOCK_ROWS", 5)
    seen: list[int] = []
    size = len(text.encode())
    list(read_source(sources[1], 0, None, (0, 0, size), seen.append))
    assert len(seen) == 36 // 5 and seen == sorted(set(seen)) and 0 < seen[-1] < size


def test_prepare_reads_json_by_ranges_and_says_so(ray_session, tmp_path: Path, monkeypatch) -> None:
    from rayrec.data import index_stage, pipeline

    monkeypatch.setattr(pipeline, "READ_QUIET_S", 0.0)  # show the progress, however short
    monkeypatch.setattr(index_stage, "STEP_QUIET_S", 0.0)
    plain = tmp_path / "Kindle_Store_5.json"
    plain.write_text("\n".join(_lines()) + "\n")
    config = PrepareConfig(
        sources=[f"amazon2018:{plain}"], out=str(tmp_path / "out"), kcore=1, negatives=2,
        max_len=32, tokenize_actors=1, max_malformed=0.05, read_range_bytes=1024,
    )  # fmt: skip
    lines: list[str] = []
    manifest = prepare(config, report=lines.append)
    tasks = len(byte_ranges(plain.stat().st_size, 1024))
    assert tasks > 5 and f"read: 1 file(s) in {tasks} read task(s)" in lines
    kib = plain.stat().st_size // 1024
    assert f"read: 100% ({kib:,} of {kib:,} KiB" in "\n".join(lines), lines
    steps = [x.split(" (")[0] for x in lines if x.startswith("index: ") and " s in)" in x]
    assert steps == [
        "index: 35 readable reviews; duplicates, k-core",
        "index: 35 target reviews kept; ids, split, documents",
        "index: writing pairs/",
        "index: ranking view: 2 sampled negatives per held-out user",
    ]
    assert any("Kindle_Store_5.json: " in x and "byte ranges" in x for x in lines)
    (source,) = manifest["sources"]
    assert source["read_ranges"] == tasks and source["records"] == 36
    assert source["malformed_examples"][0].startswith("line 18: not JSON")
    assert manifest["counts"]["reviews"] == 35  # every other line, once
    store = PreparedDataset(config.out).token_store()
    assert len(store) == 35
