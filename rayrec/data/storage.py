"""URIs: one way to read and write local paths and ``s3://`` objects.

Everything that touches storage in rayrec goes through fsspec (``s3fs`` for ``s3://``), so a
path works the same on a laptop and on a cluster. S3 credentials and endpoints come from the
standard AWS environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``,
``AWS_ENDPOINT_URL`` for S3-compatible servers), never from rayrec's own configuration.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shutil
import tempfile
from pathlib import Path
from typing import Any

import fsspec
from fsspec.core import url_to_fs

CHUNK = 1 << 20


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def absolute(uri: str) -> str:
    """A URI as it is, a local path made absolute (``~`` expanded), as Ray's storage wants."""
    return uri if is_remote(uri) else str(Path(uri).expanduser().resolve())


def join(base: str, *parts: str) -> str:
    """``base/part/...`` for a local path or a URI."""
    if is_remote(base):
        return posixpath.join(base.rstrip("/"), *parts)
    return str(Path(base, *parts))


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem of ``uri`` and the path inside it."""
    return url_to_fs(uri)


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.exists(path)


def size(uri: str) -> int:
    fs, path = filesystem(uri)
    return int(fs.size(path))


def read_json(uri: str) -> Any:
    with fsspec.open(uri, "r", encoding="utf-8") as f:
        return json.load(f)


def write_json(uri: str, obj: Any) -> None:
    """Write ``obj`` as indented JSON; local files are written to a temporary name first."""
    text = json.dumps(obj, indent=2, sort_keys=False) + "\n"
    if is_remote(uri):
        with fsspec.open(uri, "w", encoding="utf-8") as f:
            f.write(text)
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def makedirs(uri: str) -> None:
    fs, path = filesystem(uri)
    fs.makedirs(path, exist_ok=True)


def remove(uri: str) -> None:
    """Delete a file or a directory tree if it exists."""
    fs, path = filesystem(uri)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def sha256(uri: str) -> str:
    """SHA-256 of the bytes stored at ``uri``."""
    digest = hashlib.sha256()
    with fsspec.open(uri, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def local_copy(uri: str) -> Path:
    """A local path for ``uri``: itself if local, else a cached download of the s3:// object.

    The cache is keyed by the URI (delete it to refresh) and lives in ``$RAYREC_CACHE``
    (default ``~/.cache/rayrec``). The download goes to a temporary sibling first and is
    renamed into place, so concurrent workers on one node never see a half-written copy.
    """
    if not is_remote(uri):
        return Path(uri.removeprefix("file://"))
    cache = Path(os.environ.get("RAYREC_CACHE", Path.home() / ".cache" / "rayrec"))
    target = cache / "s3" / hashlib.sha256(uri.encode()).hexdigest()[:16] / Path(uri).name
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fs, path = filesystem(uri)
    tmp = Path(tempfile.mkdtemp(dir=target.parent))
    if fs.isdir(path):
        fs.get(path.rstrip("/") + "/", str(tmp / "x"), recursive=True)
    else:
        fs.get(path, str(tmp / "x"))
    try:
        (tmp / "x").rename(target)
    except OSError:  # another worker won the race
        if not target.exists():
            raise
    shutil.rmtree(tmp, ignore_errors=True)
    return target
