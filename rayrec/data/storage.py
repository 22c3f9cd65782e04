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
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import fsspec
from fsspec.core import url_to_fs

CHUNK = 1 << 20
# A URI inside any text (a flag value, a --set override, a --source FORMAT:URI:DOMAIN).
URI_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s,;]+")
# Query parameters that make a URI a credential: presigned S3 (SigV4 and SigV2), GCS, Azure
# SAS, and bare tokens.
SIGNED_QUERY_KEYS = {
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "awsaccesskeyid",
    "signature",
    "x-goog-signature",
    "x-goog-credential",
    "googleaccessid",
    "sig",
    "token",
    "access_token",
}


class UnsafeURI(ValueError):
    """A URI that would put a credential into rayrec's outputs, or a deletion too wide."""


def credential_problem(text: str) -> str | None:
    """Why ``text`` holds a URI that carries a credential (``user:pass@`` or a presigned query
    string), or None. rayrec records its URIs verbatim (results.json, manifest.json, sweep.json,
    logs), so such a URI is refused rather than stored: credentials come from the environment
    (the AWS variables, an instance profile, IRSA), never from a URI."""
    for uri in URI_IN_TEXT.findall(text):
        parts = urlsplit(uri)
        if "@" in parts.netloc:
            return f"{_redacted(parts)} has credentials in it (user:password@)"
        keys = {key.lower() for key, _ in parse_qsl(parts.query, keep_blank_values=True)}
        signed = sorted(keys & SIGNED_QUERY_KEYS)
        if signed:
            return f"{_redacted(parts)} is a signed URL (query {', '.join(signed)})"
    return None


def _redacted(parts: Any) -> str:
    """A URI without its credentials or its query, safe to print."""
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}{parts.path}"


def check_deletable(uri: str) -> None:
    """Refuse to delete a whole bucket, a filesystem root or a home directory (or a parent of
    the home directory): ``--overwrite`` removes its target recursively."""
    if is_remote(uri):
        parts = urlsplit(uri)
        if parts.path.strip("/") == "":
            raise UnsafeURI(f"refusing to delete {uri}: it is a bucket root")
        return
    path = Path(uri.removeprefix("file://")).expanduser().absolute()
    resolved = path.resolve()
    home = Path.home().resolve()
    for candidate in (path, resolved):
        if candidate == Path(candidate.anchor) or candidate in (home, *home.parents):
            raise UnsafeURI(f"refusing to delete {uri}: it is a filesystem root or home")


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


def bucket_problem(uri: str) -> str | None:
    """Why the bucket of an ``s3://`` URI cannot be used: it does not exist, or S3 refuses
    the request (wrong credentials, or credentials without permission on the bucket); None
    for a local path or a bucket these credentials reach. One HEAD request, made by the
    commands before they start work that would fail on it later (a Ray Train run on a
    missing bucket ends in a traceback from its storage setup)."""
    if not uri.startswith("s3://"):
        return None
    fs, path = filesystem(uri)
    name = path.split("/", 1)[0]
    try:
        fs.info(name)
    except FileNotFoundError:
        return f"bucket {name!r} does not exist"
    except PermissionError as err:
        return (
            f"S3 refuses access to bucket {name!r} ({err}): check the credentials "
            "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and their permissions on the bucket"
        )
    except Exception as err:  # noqa: BLE001 - an unreachable endpoint, a malformed name...
        return f"bucket {name!r} is not reachable ({type(err).__name__}: {err})"
    return None


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


def put_file(local: Path, uri: str) -> None:
    """Copy the local file ``local`` to ``uri`` (a local path: its directory is created)."""
    fs, path = filesystem(uri)
    if not is_remote(uri):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    fs.put_file(str(local), path)


def makedirs(uri: str) -> None:
    fs, path = filesystem(uri)
    fs.makedirs(path, exist_ok=True)


def remove(uri: str) -> None:
    """Delete a file or a directory tree if it exists (never a bucket root, a filesystem root
    or a home directory: :func:`check_deletable`)."""
    check_deletable(uri)
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
