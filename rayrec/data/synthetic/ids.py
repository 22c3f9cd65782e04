"""Random streams and ids: seeded generators per (seed, domain, stream, index) and the
bijective hashes behind Amazon and Yelp id strings, so every id is unique and reproducible."""

from __future__ import annotations

import json
import zlib

import numpy as np

_STREAM_SHARED, _STREAM_USERS, _STREAM_ITEMS, _STREAM_COUNTS = 1, 2, 3, 4
_STREAM_CALIBRATION, _STREAM_BLOCK = 5, 6


#: JSON string encoder of the json module (C implementation): quotes and escapes ``str``.
_enc = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]


def _domain_key(domain: str) -> int:
    return zlib.crc32(domain.encode())


def _rng(*key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(key))))


_TAG_SHARED_USER, _TAG_USER, _TAG_ITEM, _TAG_REVIEW = 0, 1, 2, 3


def _keys(tag: int, domain: str, index: np.ndarray) -> np.ndarray:
    """Distinct uint64 id-hash inputs: tag (8 bits) | domain (24 bits) | index (32 bits)."""
    dom = 0 if tag == _TAG_SHARED_USER else _domain_key(domain) & 0xFFFFFF
    return np.uint64((tag << 56) | (dom << 32)) + np.asarray(index).astype(np.uint64)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A bijection on uint64 with good mixing (the SplitMix64 finaliser)."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


_BASE36 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8)
_BASE64 = np.frombuffer(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", dtype=np.uint8
)


def _digits(values: np.ndarray, alphabet: np.ndarray, width: int) -> np.ndarray:
    """Fixed-width base-len(alphabet) digits of uint64 values, as an (n, width) uint8 array."""
    base = np.uint64(len(alphabet))
    out = np.empty((len(values), width), dtype=np.uint8)
    v = values.astype(np.uint64)
    for pos in range(width - 1, -1, -1):
        out[:, pos] = alphabet[(v % base).astype(np.intp)]
        v = v // base
    return out


def _as_str(chars: np.ndarray, prefix: str = "") -> np.ndarray:
    """(n, w) uint8 -> object array of ``prefix + chars``."""
    raw = np.ascontiguousarray(chars).view(f"S{chars.shape[1]}").ravel()
    return np.array([prefix + s.decode() for s in raw.tolist()], dtype=object)


def _amazon_user_ids(keys: np.ndarray) -> np.ndarray:
    """``A`` + 13 base-36 digits of a bijective hash: unique for distinct keys."""
    return _as_str(_digits(_splitmix64(keys), _BASE36, 13), "A")


def _yelp_ids(keys: np.ndarray) -> np.ndarray:
    """22 url-safe base-64 characters; the first 11 encode a bijective hash, so unique."""
    h1 = _splitmix64(keys)
    h2 = _splitmix64(h1 ^ np.uint64(0x5851F42D4C957F2D))
    return _as_str(np.concatenate([_digits(h1, _BASE64, 11), _digits(h2, _BASE64, 11)], axis=1))


def _asins(domain_code: str, n: int) -> np.ndarray:
    """``B0`` + domain character + 7 base-36 digits of an affine bijection of the index."""
    modulus = 36**7
    if n > modulus:
        raise ValueError("too many items for 7 base-36 digits")
    idx = np.arange(n, dtype=np.uint64)
    # 0x9E3779B is odd and not a multiple of 3, hence invertible mod 36**7; no overflow for
    # n < 36**7 since 36**7 * 0x9E3779B < 2**64.
    values = (idx * np.uint64(0x9E3779B) + np.uint64(12_345_678)) % np.uint64(modulus)
    return _as_str(_digits(values, _BASE36, 7), "B0" + domain_code)
