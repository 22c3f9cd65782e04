"""The source files: Amazon 2014 and Yelp lines laid out as the real files are, Yelp
business records, and ``write_corpus`` writing every domain of a config."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np

from rayrec.data.synthetic.config import SourceFile, SyntheticConfig
from rayrec.data.synthetic.domains import _build_domain, _DomainState, _shared_users
from rayrec.data.synthetic.ids import (
    _STREAM_ITEMS,
    _TAG_REVIEW,
    _domain_key,
    _enc,
    _keys,
    _rng,
    _yelp_ids,
)
from rayrec.data.synthetic.reviews import ReviewChunk, iter_review_chunks
from rayrec.data.synthetic.sinks import BinarySink, open_output
from rayrec.data.synthetic.vocabulary import (
    _AZ_CITIES,
    _BUSINESS_PREFIXES,
    _OTHER_CITIES,
    _STREETS,
    _WEEKDAYS,
)


def _join(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name


def _amazon_lines(state: _DomainState, chunk: ReviewChunk) -> str:
    """Amazon 2014 JSON lines: keys in the order of the real files, ", " and ": " like them."""
    heads = state.line_heads[chunk.user].tolist()
    named = state.line_names[chunk.user]
    mids = np.where(chunk.has_name, named, '", "helpful": [').tolist()
    day = (chunk.timestamp - state.t_start) // 86_400
    dates = state.day_strings[day].tolist()
    lines = [
        f'{head}{asin}{mid}{votes[0]}, {votes[1]}], "reviewText": {_enc(text)}, '
        f'"overall": {rating}.0, "summary": {_enc(summary)}, '
        f'"unixReviewTime": {ts}, "reviewTime": "{date}"}}\n'
        for head, asin, mid, votes, text, rating, summary, ts, date in zip(
            heads,
            state.item_ids[chunk.item].tolist(),
            mids,
            chunk.votes.tolist(),
            chunk.text,
            chunk.rating.tolist(),
            chunk.summary,
            chunk.timestamp.tolist(),
            dates,
            strict=True,
        )
    ]
    return "".join(lines)


def _yelp_lines(state: _DomainState, chunk: ReviewChunk) -> str:
    """Yelp review.json lines: keys in the order of the real files, compact like them."""
    dates = np.datetime_as_string(chunk.timestamp.astype("datetime64[s]"), unit="s")
    review_ids = _yelp_ids(_keys(_TAG_REVIEW, state.name, chunk.index)).tolist()
    lines = [
        f'{{"review_id":"{rid}","user_id":"{uid}","business_id":"{bid}",'
        f'"stars":{rating}.0,"useful":{votes[0]},"funny":{votes[1]},'
        f'"cool":{votes[2]},"text":{_enc(text)},"date":"{date[:10]} {date[11:]}"}}\n'
        for rid, uid, bid, rating, votes, text, date in zip(
            review_ids,
            state.user_ids[chunk.user].tolist(),
            state.item_ids[chunk.item].tolist(),
            chunk.rating.tolist(),
            chunk.votes.tolist(),
            chunk.text,
            dates.tolist(),
            strict=True,
        )
    ]
    return "".join(lines)


def _business_lines(
    cfg: SyntheticConfig, state: _DomainState, sums: np.ndarray, counts: np.ndarray
) -> Iterator[str]:
    """business.json records for businesses with reviews; stars = mean rounded to half stars."""
    rng = _rng(cfg.seed, _domain_key(state.name), _STREAM_ITEMS, 1)
    n = len(state.item_ids)
    in_az = rng.random(n) < cfg.yelp_az_share
    az_city = rng.integers(0, len(_AZ_CITIES), n)
    other_city = rng.integers(0, len(_OTHER_CITIES), n)
    prefix = rng.integers(0, len(_BUSINESS_PREFIXES), n)
    business_u = rng.random(n)
    street_no = rng.integers(100, 9999, n)
    street = rng.integers(0, len(_STREETS), n)
    postal = rng.integers(0, 100, n)
    jitter = rng.normal(0.0, 0.05, (n, 2))
    is_open = rng.random(n) < 0.85
    price = rng.integers(1, 4, n)
    open_hour = rng.integers(7, 12, n)
    for b in np.flatnonzero(counts).tolist():
        kind = state.preset.kinds[state.item_kind[b]]
        city, st, lat, lon, zip3 = (
            _AZ_CITIES[az_city[b]] if in_az[b] else _OTHER_CITIES[other_city[b]]
        )
        categories, suffix = kind.businesses[int(business_u[b] * len(kind.businesses))]
        restaurant = "Restaurants" in categories
        record = {
            "business_id": state.item_ids[b],
            "name": f"{_BUSINESS_PREFIXES[prefix[b]]} {suffix}",
            "address": f"{street_no[b]} {_STREETS[street[b]]}",
            "city": city,
            "state": st,
            "postal_code": f"{zip3}{postal[b]:02d}",
            "latitude": round(lat + jitter[b, 0], 7),
            "longitude": round(lon + jitter[b, 1], 7),
            "stars": float(np.round(2 * sums[b] / counts[b]) / 2),
            "review_count": int(counts[b]),
            "is_open": int(is_open[b]),
            "attributes": (
                {"RestaurantsPriceRange2": str(price[b]), "RestaurantsTakeOut": "True"}
                if restaurant
                else None
            ),
            "categories": categories,
            "hours": {day: f"{open_hour[b]}:0-21:0" for day in _WEEKDAYS} if is_open[b] else None,
        }
        yield json.dumps(record, separators=(",", ":")) + "\n"


def write_corpus(
    out_uri: str,
    config: SyntheticConfig | None = None,
    *,
    chunk_size: int = 50_000,
    storage_options: dict[str, Any] | None = None,
    compresslevel: int = 1,
) -> list[SourceFile]:
    """Write every domain of ``config`` under ``out_uri``; returns the files, in domain order.

    Amazon domains -> ``<Domain>_5.json.gz``; Yelp domains -> ``<Domain>/review.json`` and
    ``<Domain>/business.json``. One domain is in memory at a time, and of it O(users + items)
    parameters and one chunk of reviews (``chunk_size``, which never changes the output).
    """
    cfg = config or SyntheticConfig()
    shared = _shared_users(cfg)
    options = {"storage_options": storage_options}
    sources = []
    for domain in cfg.domains:
        state = _build_domain(cfg, domain, shared)
        chunks = iter_review_chunks(cfg, domain, chunk_size, _state=state)
        if state.preset.format == "amazon2014":
            uri = _join(out_uri, f"{domain}_5.json.gz")
            with open_output(uri, compresslevel=compresslevel, **options) as f:
                written = _write_amazon(f, state, chunks)
            sources.append(SourceFile("amazon2014", uri, domain, None, written))
        else:
            uri = _join(out_uri, f"{domain}/review.json")
            business_uri = _join(out_uri, f"{domain}/business.json")
            with (
                open_output(uri, **options) as f,
                open_output(business_uri, **options) as business,
            ):
                written = _write_yelp(f, business, cfg, state, chunks)
            sources.append(SourceFile("yelp", uri, domain, business_uri, written))
        del state, chunks  # free this domain before the next one is built
    return sources


def _write_amazon(f: BinarySink, state: _DomainState, chunks: Iterator[ReviewChunk]) -> int:
    written = 0
    for chunk in chunks:
        f.write(_amazon_lines(state, chunk).encode("ascii"))
        written += len(chunk)
    return written


def _write_yelp(
    f: BinarySink,
    business: BinarySink,
    cfg: SyntheticConfig,
    state: _DomainState,
    chunks: Iterator[ReviewChunk],
) -> int:
    """review.json, then business.json with stars and review_count of the reviews written."""
    n_items = len(state.item_ids)
    sums, counts = np.zeros(n_items), np.zeros(n_items, dtype=np.int64)
    for chunk in chunks:
        f.write(_yelp_lines(state, chunk).encode("ascii"))
        np.add.at(sums, chunk.item, chunk.rating)
        np.add.at(counts, chunk.item, 1)
    for line in _business_lines(cfg, state, sums, counts):
        business.write(line.encode("ascii"))
    return int(counts.sum())
