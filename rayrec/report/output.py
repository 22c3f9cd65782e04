"""Writing report files to a local path or an ``s3://`` URI, and reading them back."""

from __future__ import annotations

from pathlib import Path

import fsspec

from rayrec.data import storage


def write_bytes(uri: str, data: bytes) -> None:
    """Write ``data`` to ``uri``; a local file goes to a temporary name first, so a reader
    never sees half a PNG."""
    if storage.is_remote(uri):
        with fsspec.open(uri, "wb") as f:
            f.write(data)
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def write_text(uri: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``uri``."""
    write_bytes(uri, text.encode("utf-8"))


def read_bytes(uri: str) -> bytes:
    """The bytes stored at ``uri`` (read whole: exported weights, small tables)."""
    with fsspec.open(uri, "rb") as f:
        return f.read()


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")
