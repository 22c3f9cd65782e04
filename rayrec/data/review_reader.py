"""Review source files (:mod:`rayrec.data.sources`) as Ray Data read tasks.

:class:`ReviewDatasource` reads a list of sources as Ray Data read tasks: an uncompressed JSON
lines file (``.json``) larger than ``range_bytes`` (64 MiB) is read as byte ranges in
parallel, one task per range (a line belongs to the range holding its first byte); a
compressed file (``.json.gz``, ``.csv.zip``) or a CSV file (quoted fields may hold newlines)
is one read task, as gzip and zip streams cannot be split. :func:`read_source` turns one file
(or one byte range of it) into Arrow blocks of :data:`~rayrec.data.sources.RECORD_SCHEMA`,
then one "eof" row; :func:`ranges_of` puts a file's count and checksum together from its
ranges' "eof" rows.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any

import fsspec
import pyarrow as pa
import ray
from ray import ObjectRef
from ray.actor import ActorHandle
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from rayrec.data import storage
from rayrec.data.sources import (
    RECORD_SCHEMA,
    Malformed,
    Source,
    SourceError,
    amazon_record,
    text_key,
    yelp_record,
)

LINE_BITS = 40
BLOCK_ROWS = 50_000
CHUNK_SIZE = 1 << 20
RANGE_BYTES = 64 << 20  # bytes per read task of an uncompressed JSON lines file


# ---- one file -> Arrow blocks ------------------------------------------------------------


class _HashingReader(io.RawIOBase):
    """Passes bytes through while hashing them, so a file is read once for both."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        self.digest.update(data)
        self.bytes_read += len(data)
        buffer[: len(data)] = data
        return len(data)


class _BlockBuilder:
    """Accumulates rows of :data:`RECORD_SCHEMA` and cuts them into Arrow tables."""

    def __init__(self, source: Source, index: int) -> None:
        self.source, self.index = source, index
        self.columns: dict[str, list] = {name: [] for name in RECORD_SCHEMA.names}

    def add(
        self,
        line: int,
        status: str,
        fields: tuple | None = None,
        detail: str | None = None,
        position: int | None = None,
    ) -> None:
        """One row; ``position`` (default: ``line``) goes into the review key."""
        user, item, rating, text, summary, timestamp = fields or (None,) * 6
        key = text_key(text) if status == "ok" else None
        review_key = (self.index << LINE_BITS) | (line if position is None else position)
        row = (
            self.source.domain, user, item, rating, text, summary, timestamp,
            review_key, self.index, line, status, detail, key,
        )  # fmt: skip
        for name, value in zip(RECORD_SCHEMA.names, row, strict=True):
            self.columns[name].append(value)

    def __len__(self) -> int:
        return len(self.columns["line"])

    def flush(self) -> pa.Table:
        table = pa.table(self.columns, schema=RECORD_SCHEMA)
        self.columns = {name: [] for name in RECORD_SCHEMA.names}
        return table


def _json_lines(stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | Malformed]]:
    for number, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError as err:
            yield number, Malformed(f"not JSON ({err.__class__.__name__}: {err})")
            continue
        if not isinstance(record, dict):
            yield number, Malformed(f"a JSON {type(record).__name__}, not an object")
            continue
        yield number, record


def splittable(source: Source) -> bool:
    """Whether a source can be read by byte ranges: uncompressed JSON lines."""
    return source.uri.lower().endswith(".json")


def byte_ranges(size: int, range_bytes: int) -> list[tuple[int, int]]:
    """``[start, end)`` ranges of at most about ``range_bytes`` covering ``size`` bytes."""
    count = max(1, -(-size // range_bytes))
    bounds = [round(size * k / count) for k in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


class _RangeLines:
    """The lines of ``uri`` whose first byte lies in ``[start, end)``, with their byte
    offsets; hashes exactly those bytes (the ranges of a file own every byte once)."""

    def __init__(self, uri: str, start: int, end: int) -> None:
        self.uri, self.start, self.end = uri, start, end
        self.digest = hashlib.sha256()
        self.lines = 0
        self.bytes_read = 0  # of the range, as far as its lines have been read

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        with fsspec.open(self.uri, "rb") as raw:
            stream = raw  # fsspec's files buffer and seek (local files, s3fs)
            position = self.start
            if self.start > 0:
                stream.seek(self.start - 1)
                if stream.read(1) != b"\n":  # a line begun in the range before: its own
                    position += len(stream.readline())
            while position < self.end:
                line = stream.readline()
                if not line:
                    return
                self.digest.update(line)
                self.lines += 1
                self.bytes_read = position + len(line) - self.start
                yield position, line
                position += len(line)


def _json_range_records(
    lines: _RangeLines,
) -> Iterator[tuple[int, dict[str, Any] | Malformed, int]]:
    """(1-based line in the range, record or :class:`Malformed`, byte offset) per line."""
    for number, (position, raw) in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError as err:
            yield number, Malformed(f"not JSON ({err.__class__.__name__}: {err})"), position
            continue
        if not isinstance(record, dict):
            yield number, Malformed(f"a JSON {type(record).__name__}, not an object"), position
            continue
        yield number, record, position


def _csv_records(stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | Malformed]]:
    reader = csv.reader(io.TextIOWrapper(stream, encoding="utf-8", newline=""))
    header = next(reader, None)
    if header is None:
        return
    start = reader.line_num + 1
    for row in reader:
        if len(row) != len(header):
            yield start, Malformed(f"{len(row)} columns, the header has {len(header)}")
        else:
            yield start, dict(zip(header, row, strict=True))
        start = reader.line_num + 1


def _open_records(source: Source) -> tuple[Iterator, Callable[[], str], Callable[[], int]]:
    """The file's records, a function giving the SHA-256 of its bytes once read, and one
    giving how many of its bytes have been read so far."""
    name = source.uri.lower()
    raw = fsspec.open(source.uri, "rb").open()
    if name.endswith(".zip"):
        data = raw.read()  # zip needs random access; the 5-core CSV zips are small
        raw.close()
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [m for m in archive.namelist() if not m.endswith("/")]
        if len(members) != 1:
            raise SourceError(f"{source.uri}: expected one file in the zip, found {members}")
        digest = hashlib.sha256(data).hexdigest()
        return _csv_records(archive.open(members[0])), lambda: digest, lambda: len(data)
    hashing = _HashingReader(raw)
    stream: IO[bytes] = io.BufferedReader(hashing, CHUNK_SIZE)
    if name.endswith(".gz"):
        stream = gzip.GzipFile(fileobj=stream)  # type: ignore[assignment]
    records = _csv_records(stream) if ".csv" in name else _json_lines(stream)
    return records, lambda: hashing.digest.hexdigest(), lambda: hashing.bytes_read


def read_source(
    source: Source,
    index: int,
    businesses: frozenset[str] | None = None,
    byte_range: tuple[int, int, int] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[pa.Table]:
    """Every record of one file as Arrow blocks of :data:`RECORD_SCHEMA`, then one "eof" row.

    ``byte_range`` ``(range number, start, end)``: only the lines of an uncompressed JSON
    lines file starting in ``[start, end)``, keyed by their byte offsets. ``progress`` is
    called before each block with the bytes of the file (or range) read so far (compressed
    bytes for a compressed file)."""
    if source.format == "yelp":
        to_fields: Callable[[dict[str, Any]], tuple] = yelp_record
    else:
        text_required = source.format == "amazon2014"
        to_fields = lambda record: amazon_record(record, text_required)  # noqa: E731
    lines = None
    if byte_range is None:
        plain, file_sha256, bytes_read = _open_records(source)
        records: Iterator[tuple[int, Any, int | None]] = (
            (line, record, None) for line, record in plain
        )
    else:
        lines = _RangeLines(source.uri, byte_range[1], byte_range[2])
        records = _json_range_records(lines)
        bytes_read = lambda: lines.bytes_read  # noqa: E731
    block = _BlockBuilder(source, index)
    count = 0
    try:
        for line, record, position in records:
            count += 1
            if isinstance(record, Malformed):
                block.add(line, "malformed", detail=str(record), position=position)
            else:
                try:
                    fields = to_fields(record)
                except Malformed as err:
                    block.add(line, "malformed", detail=str(err), position=position)
                else:
                    if not fields[3].strip():  # no text: the summary stands in
                        fields = (*fields[:3], fields[4], *fields[4:])
                    if not fields[3].strip():
                        status = "empty"
                    elif businesses is not None and fields[1] not in businesses:
                        status = "business"
                    else:
                        status = "ok"
                    block.add(line, status, fields, position=position)
            if len(block) >= BLOCK_ROWS:
                if progress is not None:
                    progress(bytes_read())
                yield block.flush()
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise SourceError(
            f"{source.uri}: the compressed file is truncated or corrupt after {count} records "
            f"({err})"
        ) from None
    except UnicodeDecodeError as err:
        raise SourceError(f"{source.uri}: not UTF-8 text after {count} records ({err})") from None
    if lines is not None:
        number, start, end = byte_range  # type: ignore[misc]
        detail = {"sha256": lines.digest.hexdigest(), "records": count, "range": number,
                  "start": start, "end": end, "lines": lines.lines}  # fmt: skip
        # keyed at the top of the key space, where no line's byte offset reaches
        block.add(0, "eof", detail=json.dumps(detail), position=(1 << LINE_BITS) - 1 - number)
        yield block.flush()
        return
    if count == 0:
        raise SourceError(f"{source.uri}: no records in the file")
    block.add(0, "eof", detail=json.dumps({"sha256": file_sha256(), "records": count}))
    yield block.flush()


def ranges_of(eofs: list[dict[str, Any]], uri: str) -> dict[str, Any]:
    """One file's record count and checksum from its "eof" rows: one row, or one per byte
    range (then ``line_offsets``: lines before each range, by range start, and ``sha256``
    the SHA-256 of the ranges' own SHA-256s in order, ``ranges`` their number)."""
    if len(eofs) == 1 and "range" not in eofs[0]:
        return eofs[0]
    eofs = sorted(eofs, key=lambda e: e["start"])
    records = sum(e["records"] for e in eofs)
    if records == 0:
        raise SourceError(f"{uri}: no records in the file")
    chained = hashlib.sha256("".join(e["sha256"] for e in eofs).encode()).hexdigest()
    lines_before = [0]
    for e in eofs[:-1]:
        lines_before.append(lines_before[-1] + e["lines"])
    return {
        "sha256": chained,
        "records": records,
        "ranges": len(eofs),
        "range_starts": [e["start"] for e in eofs],
        "line_offsets": lines_before,
    }


class _Counted:
    """Called with the bytes a read task has read so far: adds what is new to a
    :class:`~rayrec.data.read_progress.ByteCounter` (if any), without waiting for it;
    :meth:`finish` waits, so that a task's bytes are all counted once it has returned (an
    actor runs one caller's calls in order, but calls from the driver may overtake them)."""

    def __init__(self, counter: ActorHandle | None) -> None:
        self.counter, self.sent = counter, 0

    def __call__(self, bytes_read: int) -> ObjectRef | None:
        if self.counter is None or bytes_read <= self.sent:
            return None
        added = self.counter.add.remote(bytes_read - self.sent)
        self.sent = bytes_read
        return added

    def finish(self, size: int) -> None:
        """Count the task's whole file or range (``size`` bytes) and wait for the counter."""
        added = self(size)
        if added is not None:
            ray.get(added)


class ReviewDatasource(Datasource):
    """Ray Data datasource over review files: ``ray.data.read_datasource(ReviewDatasource(...))``.

    One read task per source file or byte range; ``businesses[i]`` is the Yelp business
    filter of source ``i`` (or None). With ``counter`` (a
    :class:`~rayrec.data.read_progress.ByteCounter` actor) each task adds the bytes it has
    read to it as it goes (before each block), and its whole file's or range's size by its
    end, so that the counter reaches the sources' total size when the read is done.
    """

    def __init__(
        self,
        sources: list[Source],
        businesses: list[frozenset[str] | None] | None = None,
        range_bytes: int = RANGE_BYTES,
        counter: ActorHandle | None = None,
    ) -> None:
        super().__init__()
        self.sources = sources
        self.counter = counter
        self.businesses = businesses or [None] * len(sources)
        self.sizes = [storage.size(s.uri) for s in sources]
        self.ranges = [
            byte_ranges(size, range_bytes) if splittable(source) else [(0, size)]
            for source, size in zip(sources, self.sizes, strict=True)
        ]

    def plan(self) -> list[str]:
        """How each file is read, in words (``rayrec prepare`` prints it)."""
        out = []
        for source, ranges in zip(self.sources, self.ranges, strict=True):
            name = source.uri.rsplit("/", 1)[-1]
            if len(ranges) > 1:
                mib = (ranges[0][1] - ranges[0][0]) / 2**20
                out.append(f"{name}: {len(ranges)} byte ranges of {mib:.3g} MiB in parallel")
            elif splittable(source):
                out.append(f"{name}: one read task (smaller than one byte range)")
            else:
                kind = "CSV" if ".csv" in name.lower() else "compressed"
                out.append(f"{name}: one read task ({kind}: cannot be split)")
        return out

    def estimate_inmemory_data_size(self) -> int:
        return sum(self.sizes) * 4  # compressed text expands roughly this much

    def get_read_tasks(self, parallelism: int, per_task_row_limit=None, data_context=None):
        tasks = []
        for index, (source, businesses, ranges) in enumerate(
            zip(self.sources, self.businesses, self.ranges, strict=True)
        ):
            for number, (start, end) in enumerate(ranges):
                metadata = BlockMetadata(
                    num_rows=None,
                    size_bytes=(end - start) * 4,
                    exec_stats=None,
                    input_files=[source.uri],
                )
                byte_range = (number, start, end) if len(ranges) > 1 else None

                def read(
                    source=source,
                    index=index,
                    businesses=businesses,
                    byte_range=byte_range,
                    size=end - start,
                    counter=self.counter,
                ) -> Iterator[pa.Table]:
                    counted = _Counted(counter)
                    yield from read_source(source, index, businesses, byte_range, counted)
                    counted.finish(size)

                tasks.append(ReadTask(read, metadata, schema=RECORD_SCHEMA))
        return tasks
