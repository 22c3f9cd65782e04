"""Byte-identical output: binary sinks on local paths or fsspec URIs, gzip with ``mtime=0``
fed in fixed-size pieces."""

from __future__ import annotations

import contextlib
import gzip
import posixpath
from collections.abc import Iterator
from typing import Any, Protocol

import fsspec

_GZIP_PIECE = 1 << 20  # gzip is always fed 1 MiB pieces: output independent of chunking


class BinarySink(Protocol):
    """What ``open_output`` yields: something with ``write(bytes)``."""

    def write(self, data: bytes, /) -> int: ...


class _PieceWriter:
    """Buffers writes and forwards them in fixed-size pieces (plus the tail on close), so the
    compressed stream does not depend on how the caller sized its writes. (zlib 1.2 happens
    to be insensitive to that; other deflate back ends such as zlib-ng need not be.)"""

    def __init__(self, sink: gzip.GzipFile, piece: int = _GZIP_PIECE) -> None:
        self._sink, self._piece, self._buf = sink, piece, bytearray()

    def write(self, data: bytes) -> int:
        self._buf += data
        if len(self._buf) >= self._piece:
            cut = len(self._buf) - len(self._buf) % self._piece
            view = memoryview(self._buf)
            for start in range(0, cut, self._piece):
                self._sink.write(view[start : start + self._piece])
            view.release()
            del self._buf[:cut]
        return len(data)

    def flush_tail(self) -> None:
        if self._buf:
            self._sink.write(bytes(self._buf))
            self._buf.clear()


@contextlib.contextmanager
def open_output(
    uri: str,
    *,
    storage_options: dict[str, Any] | None = None,
    compresslevel: int = 1,
) -> Iterator[BinarySink]:
    """Open ``uri`` (local path or any fsspec URI, e.g. ``s3://bucket/key``) for binary writing.

    A ``.gz`` suffix gzips the stream. The gzip layer is ours, not fsspec's
    ``compression="gzip"``: fsspec's writes the current time into the gzip header, which would
    break byte-identical output; here ``mtime=0``, no file name, and fixed-size input pieces.
    Local parent directories are created.
    """
    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    if "file" in fs.protocol or "local" in fs.protocol:
        fs.makedirs(posixpath.dirname(path) or ".", exist_ok=True)
    with fs.open(path, "wb") as raw:
        if not uri.endswith(".gz"):
            yield raw
            return
        with gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=compresslevel
        ) as gz:
            pieces = _PieceWriter(gz)
            yield pieces
            pieces.flush_tail()
