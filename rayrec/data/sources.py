"""Raw review sources: Amazon 2014 / 2018 and Yelp dumps, local or ``s3://``, as Ray Data.

A source is named on the command line as ``FORMAT:URI[:DOMAIN]`` (:func:`parse_source`).
:class:`ReviewDatasource` reads a list of sources as Ray Data read tasks: an uncompressed JSON
lines file (``.json``) larger than ``range_bytes`` (64 MiB) is read as byte ranges in
parallel, one task per range (a line belongs to the range holding its first byte); a
compressed file (``.json.gz``, ``.csv.zip``) or a CSV file (quoted fields may hold newlines)
is one read task, as gzip and zip streams cannot be split. Every record becomes the
canonical review record of DESIGN.md section 3::

    domain, user_id, item_id: string   rating: float32   text, summary: string
    timestamp: int64 (unix seconds)

plus bookkeeping columns that make sure nothing is dropped silently:

    review_key: int64   (source index << 40) | line number, or | the line's byte offset in
                        a file read by ranges; unique across the sources, in file order
    source: int32       index of the source in the list
    line: int64         1-based line (JSON) or record (CSV) number in the file (in a file
                        read by ranges: in the range; the index stage adds the lines of
                        the ranges before, :func:`ranges_of`)
    status: string      "ok", "malformed", "empty" (no text and no summary), "business"
                        (a Yelp review outside the ``business.json`` filter) or "eof"
    detail: string      why a line is malformed; for the single "eof" row of a file (line
                        0), JSON ``{"sha256": ..., "records": n}`` of the file; a range's
                        also has ``range``, ``start``, ``end`` and ``lines``, its
                        ``sha256`` is that of the lines it owns and its key is
                        ``(source << 40) | (2**40 - 1 - range)``, beyond any line's
    text_key: int64     64-bit hash of the normalised text (:func:`normalise_text`) of an
                        "ok" record: the index stage finds near-duplicates on it without
                        reading the text

Formats and their real field names:

* ``amazon2014``: JSON lines (``.json``, ``.json.gz``) with ``reviewerID, asin, overall,
  reviewText, summary, unixReviewTime``, or the same columns as CSV (``.csv``, ``.csv.zip``:
  the zip's single member is streamed, never unpacked to disk);
* ``amazon2018``: the same JSON fields; ``reviewText`` may be missing;
* ``yelp``: ``review.json`` lines with ``review_id, user_id, business_id, stars, text, date``;
  an optional sibling ``business.json`` (same name with "review" replaced by "business")
  filters businesses by ``state`` and ``categories``.

A review's text is ``reviewText`` (Yelp ``text``); where that is empty, the summary stands in
for it (7 of the 10,261 Musical Instruments reviews have only a summary). A review with
neither is kept out as "empty".
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import fsspec
import pyarrow as pa
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from rayrec.data import storage

FORMATS = ("amazon2014", "amazon2018", "yelp")
LINE_BITS = 40
BLOCK_ROWS = 50_000
CHUNK_SIZE = 1 << 20
RANGE_BYTES = 64 << 20  # bytes per read task of an uncompressed JSON lines file

RECORD_SCHEMA = pa.schema(
    [
        ("domain", pa.string()),
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("rating", pa.float32()),
        ("text", pa.string()),
        ("summary", pa.string()),
        ("timestamp", pa.int64()),
        ("review_key", pa.int64()),
        ("source", pa.int32()),
        ("line", pa.int64()),
        ("status", pa.string()),
        ("detail", pa.string()),
        ("text_key", pa.int64()),
    ]
)

_PUNCTUATION = re.compile(r"[^\w\s]+")


def normalise_text(text: str) -> str:
    """Lowercase, punctuation stripped, whitespace collapsed: ``"Great  strings!!"`` and
    ``"great strings"`` are the same review text."""
    return " ".join(_PUNCTUATION.sub("", text.lower()).split())


def text_key(text: str) -> int:
    """The signed 64-bit key of ``normalise_text(text)`` (BLAKE2b)."""
    digest = hashlib.blake2b(normalise_text(text).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


class SourceError(Exception):
    """Bad input that stops preparation: the message names the file (and line)."""


@dataclass(frozen=True)
class Source:
    """One raw input: its format, URI and the domain its reviews belong to."""

    format: str
    uri: str
    domain: str

    def __str__(self) -> str:
        return f"{self.format}:{self.uri}:{self.domain}"


def default_domain(fmt: str, uri: str) -> str:
    """``reviews_Musical_Instruments_5.json.gz`` and ``Musical_Instruments_5.csv.zip`` ->
    ``Musical_Instruments``; Yelp -> ``yelp``."""
    if fmt == "yelp":
        return "yelp"
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    name = re.sub(r"(\.(json|csv|gz|zip))+$", "", name)
    name = re.sub(r"^reviews_", "", name)
    return re.sub(r"_5$", "", name) or name


def parse_source(spec: str) -> Source:
    """Parse ``FORMAT:URI[:DOMAIN]``; the URI may itself hold ``://``."""
    fmt, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise SourceError(f"source {spec!r}: expected FORMAT:URI[:DOMAIN]")
    if fmt not in (*FORMATS, "synthetic"):
        raise SourceError(
            f"source {spec!r}: unknown format {fmt!r} (known: {', '.join(FORMATS)}, synthetic)"
        )
    uri, domain = rest, ""
    head, colon, tail = rest.rpartition(":")
    if colon and tail and "/" not in tail and head not in ("s3", "file", "gs", "memory"):
        uri, domain = head, tail
    return Source(fmt, uri, domain or default_domain(fmt, uri))


def business_file(review_uri: str) -> str:
    """Yelp's ``business.json`` beside ``review.json`` (``yelp_academic_dataset_*`` too)."""
    head, _, name = review_uri.rpartition("/")
    return (
        f"{head}/{name.replace('review', 'business')}"
        if head
        else name.replace("review", "business")
    )


def allowed_businesses(
    review_uri: str, state: str | None, category: str | None
) -> frozenset[str] | None:
    """Business ids passing the state / category filter, or None when there is no filter."""
    if state is None and category is None:
        return None
    uri = business_file(review_uri)
    if uri == review_uri or not storage.exists(uri):
        raise SourceError(f"{review_uri}: a Yelp filter needs {uri}, which does not exist")
    keep = set()
    with fsspec.open(uri, "rt", encoding="utf-8", compression="infer") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                business = json.loads(raw)
                categories = {c.strip() for c in (business.get("categories") or "").split(",")}
                if (state is None or business.get("state") == state) and (
                    category is None or category in categories
                ):
                    keep.add(business["business_id"])
            except (ValueError, KeyError, AttributeError) as err:
                message = f"{uri}, line {number}: malformed business record ({err})"
                raise SourceError(message) from None
    return frozenset(keep)


def check_source(source: Source) -> None:
    """Fail early, in the driver, on a missing, empty or unreadable source file (an s3://
    file of a missing bucket, or of a bucket S3 refuses these credentials, included)."""
    if problem := storage.bucket_problem(source.uri):
        raise SourceError(f"{source.uri}: {problem}")
    if not storage.exists(source.uri):
        raise SourceError(f"{source.uri}: no such file")
    if storage.size(source.uri) == 0:
        raise SourceError(f"{source.uri}: the file is empty")
    name = source.uri.lower()
    if source.format == "amazon2014" and not name.endswith(
        (".json", ".json.gz", ".csv", ".csv.zip")
    ):
        raise SourceError(f"{source.uri}: amazon2014 reads .json, .json.gz, .csv or .csv.zip files")
    if source.format in ("amazon2018", "yelp") and not name.endswith((".json", ".json.gz")):
        raise SourceError(f"{source.uri}: {source.format} reads .json or .json.gz files")


# ---- one record -> canonical fields -----------------------------------------------------


class Malformed(ValueError):
    """A record that cannot be read; the message names the field."""


def _field(record: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in record:
        raise Malformed(f"missing field {name!r}")
    value = record[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise Malformed(f"field {name!r} has type {type(value).__name__}")
    return value


def _rating(value: Any, name: str) -> float:
    try:
        rating = float(value)
    except (TypeError, ValueError):
        raise Malformed(f"field {name!r} is not a number: {value!r}") from None
    if not 1.0 <= rating <= 5.0:
        raise Malformed(f"field {name!r} out of range 1-5: {rating}")
    return rating


def _optional_text(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Malformed(f"field {name!r} has type {type(value).__name__}")
    return value


def amazon_record(record: dict[str, Any], text_required: bool) -> tuple:
    """Amazon 2014 / 2018 fields -> ``(user, item, rating, text, summary, timestamp)``."""
    if text_required and "reviewText" not in record:
        raise Malformed("missing field 'reviewText'")
    timestamp = record.get("unixReviewTime", 0)
    try:
        timestamp = int(timestamp)
    except (TypeError, ValueError):
        raise Malformed(f"field 'unixReviewTime' is not an integer: {timestamp!r}") from None
    return (
        _field(record, "reviewerID", str),
        _field(record, "asin", str),
        _rating(_field(record, "overall", (int, float, str)), "overall"),
        _optional_text(record, "reviewText"),
        _optional_text(record, "summary"),
        timestamp,
    )


def yelp_record(record: dict[str, Any]) -> tuple:
    """Yelp ``review.json`` fields -> ``(user, item, rating, text, summary, timestamp)``."""
    date = _field(record, "date", str)
    try:
        when = datetime.strptime(date, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        raise Malformed(f"field 'date' is not 'YYYY-MM-DD HH:MM:SS': {date!r}") from None
    return (
        _field(record, "user_id", str),
        _field(record, "business_id", str),
        _rating(_field(record, "stars", (int, float)), "stars"),
        _optional_text(record, "text"),
        "",
        int(when.timestamp()),
    )


# ---- one file -> Arrow blocks ------------------------------------------------------------


class _HashingReader(io.RawIOBase):
    """Passes bytes through while hashing them, so a file is read once for both."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        self.digest.update(data)
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


def _open_records(source: Source) -> tuple[Iterator, Callable[[], str]]:
    """The file's records and a function giving the SHA-256 of its bytes once read."""
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
        return _csv_records(archive.open(members[0])), lambda: digest
    hashing = _HashingReader(raw)
    stream: IO[bytes] = io.BufferedReader(hashing, CHUNK_SIZE)
    if name.endswith(".gz"):
        stream = gzip.GzipFile(fileobj=stream)  # type: ignore[assignment]
    records = _csv_records(stream) if ".csv" in name else _json_lines(stream)
    return records, lambda: hashing.digest.hexdigest()


def read_source(
    source: Source,
    index: int,
    businesses: frozenset[str] | None = None,
    byte_range: tuple[int, int, int] | None = None,
) -> Iterator[pa.Table]:
    """Every record of one file as Arrow blocks of :data:`RECORD_SCHEMA`, then one "eof" row.

    ``byte_range`` ``(range number, start, end)``: only the lines of an uncompressed JSON
    lines file starting in ``[start, end)``, keyed by their byte offsets."""
    if source.format == "yelp":
        to_fields: Callable[[dict[str, Any]], tuple] = yelp_record
    else:
        text_required = source.format == "amazon2014"
        to_fields = lambda record: amazon_record(record, text_required)  # noqa: E731
    lines = None
    if byte_range is None:
        plain, file_sha256 = _open_records(source)
        records: Iterator[tuple[int, Any, int | None]] = (
            (line, record, None) for line, record in plain
        )
    else:
        lines = _RangeLines(source.uri, byte_range[1], byte_range[2])
        records = _json_range_records(lines)
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


class ReviewDatasource(Datasource):
    """Ray Data datasource over review files: ``ray.data.read_datasource(ReviewDatasource(...))``.

    One read task per source file; ``businesses[i]`` is the Yelp business filter of source
    ``i`` (or None).
    """

    def __init__(
        self,
        sources: list[Source],
        businesses: list[frozenset[str] | None] | None = None,
        range_bytes: int = RANGE_BYTES,
    ) -> None:
        super().__init__()
        self.sources = sources
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
                    source=source, index=index, businesses=businesses, byte_range=byte_range
                ) -> Iterator[pa.Table]:
                    return read_source(source, index, businesses, byte_range)

                tasks.append(ReadTask(read, metadata, schema=RECORD_SCHEMA))
        return tasks
