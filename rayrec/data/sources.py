"""Raw review sources: Amazon 2014 / 2018 and Yelp dumps, local or ``s3://``, and their records.

A source is named on the command line as ``FORMAT:URI[:DOMAIN]`` (:func:`parse_source`).
:mod:`rayrec.data.review_reader` reads the sources as Ray Data read tasks. Every record becomes
the canonical review record of DESIGN.md section 3::

    domain, user_id, item_id: string   rating: float32   text, summary: string
    timestamp: int64 (unix seconds)

plus bookkeeping columns that make sure nothing is dropped silently:

    review_key: int64   (source index << 40) | line number, or | the line's byte offset in
                        a file read by ranges; unique across the sources, in file order
    source: int32       index of the source in the list
    line: int64         1-based line (JSON) or record (CSV) number in the file (in a file
                        read by ranges: in the range; the index stage adds the lines of
                        the ranges before, :func:`~rayrec.data.review_reader.ranges_of`)
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

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import fsspec
import pyarrow as pa

from rayrec.data import storage

FORMATS = ("amazon2014", "amazon2018", "yelp")

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
