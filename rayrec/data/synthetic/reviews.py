"""Review generation: ``ReviewChunk`` and the reviews of one domain, block by block from each
block's own random stream, regrouped into chunks of any size (``iter_review_chunks``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from rayrec.data.synthetic.config import SyntheticConfig
from rayrec.data.synthetic.domains import (
    _build_domain,
    _DomainState,
    _latent_score,
    _shared_users,
)
from rayrec.data.synthetic.ids import _STREAM_BLOCK, _domain_key, _rng
from rayrec.data.synthetic.text import _texts


@dataclass
class ReviewChunk:
    """A run of consecutive reviews of one domain, in file order.

    ``user`` and ``item`` index the domain's user population and catalogue (the writers turn
    them into id strings); ``votes`` holds Amazon ``helpful [a, b]`` in columns 0-1, or Yelp
    ``useful, funny, cool``; ``index`` is the review's position in the domain's stream (Yelp
    review ids derive from it).
    """

    user: np.ndarray  # population index
    item: np.ndarray
    rating: np.ndarray  # int 1..5
    timestamp: np.ndarray  # unix seconds
    votes: np.ndarray  # (n, 3) int
    text: list[str]
    summary: list[str]
    has_name: np.ndarray  # bool; Amazon only
    index: np.ndarray

    def __len__(self) -> int:
        return len(self.rating)

    @staticmethod
    def concat(chunks: Sequence[ReviewChunk]) -> ReviewChunk:
        if len(chunks) == 1:
            return chunks[0]
        return ReviewChunk(
            **{
                name: (
                    [x for c in chunks for x in getattr(c, name)]
                    if name in ("text", "summary")
                    else np.concatenate([getattr(c, name) for c in chunks])
                )
                for name in ReviewChunk.__dataclass_fields__
            }
        )

    def slice(self, start: int, stop: int) -> ReviewChunk:
        return ReviewChunk(
            **{name: getattr(self, name)[start:stop] for name in ReviewChunk.__dataclass_fields__}
        )


def _repeats(owner: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """Rows whose (owner, item) pair already occurred in an earlier row."""
    key = owner.astype(np.int64) * n_items + items
    order = np.argsort(key, kind="stable")
    repeat = np.zeros(len(key), dtype=bool)
    repeat[1:] = key[order][1:] == key[order][:-1]
    return order[repeat]


def _distinct_items(
    rng: np.random.Generator, owner: np.ndarray, cdf: np.ndarray, n_items: int
) -> np.ndarray:
    """One item per row, distinct within each ``owner`` group, drawn from ``cdf``.

    Repeats are redrawn until none are left (counts are capped well below the catalogue size,
    so this converges in a few rounds); groups still stuck fall back to exact sampling.
    """
    items = np.minimum(np.searchsorted(cdf, rng.random(len(owner)), side="right"), n_items - 1)
    for _ in range(60):
        repeats = _repeats(owner, items, n_items)
        if len(repeats) == 0:
            return items
        redraw = np.searchsorted(cdf, rng.random(len(repeats)), side="right")
        items[repeats] = np.minimum(redraw, n_items - 1)
    p = np.diff(cdf, prepend=0.0)
    for g in np.unique(owner[_repeats(owner, items, n_items)]).tolist():
        rows = np.flatnonzero(owner == g)
        items[rows] = rng.choice(n_items, len(rows), replace=False, p=p)
    return items


def _generate_block(cfg: SyntheticConfig, state: _DomainState, b: int, first: int) -> ReviewChunk:
    """All reviews of generation block ``b`` (its users' reviews), from the block's own stream."""
    rng = _rng(cfg.seed, _domain_key(state.name), _STREAM_BLOCK, b)
    bu, bc = state.block_users[b], state.block_counts[b]
    n = int(bc.sum())
    us = state.users
    u = np.repeat(bu, bc)
    owner = np.repeat(np.arange(len(bu)), bc)
    n_items = len(state.item_ids)
    i = _distinct_items(rng, owner, state.item_cdf, n_items)
    score = _latent_score(us, u, state.item_bias, state.item_factors, i, cfg.noise_std, rng)
    rating = 1 + np.searchsorted(state.thresholds, score)

    # Dates skew recent (review volume grows over time); Amazon dates are midnights.
    t = state.t_start + (rng.beta(2.2, 1.0, n) * (state.t_end - state.t_start)).astype(np.int64)
    if state.preset.format == "amazon2014":
        t -= t % 86_400
        total = rng.geometric(0.45, n) - 1
        helpful = rng.binomial(total, np.array([0.3, 0.4, 0.55, 0.7, 0.8])[rating - 1])
        votes = np.stack([helpful, total, np.zeros(n, dtype=np.int64)], axis=1)
    else:
        lam = us.vote_rate[u][:, None] * np.array([0.9, 0.3, 0.4])
        votes = rng.poisson(lam)
    has_name = rng.random(n) >= cfg.missing_name_rate

    text, summary = _texts(rng, state, u, i, rating, cfg.style_strength, cfg.text_length)
    return ReviewChunk(
        user=u,
        item=i,
        rating=rating,
        timestamp=t,
        votes=votes,
        text=text,
        summary=summary,
        has_name=has_name,
        index=np.arange(first, first + n, dtype=np.int64),
    )


def iter_review_chunks(
    config: SyntheticConfig,
    domain: str,
    chunk_size: int = 50_000,
    *,
    _state: _DomainState | None = None,
) -> Iterator[ReviewChunk]:
    """Reviews of ``domain`` in file order, in chunks of at most ``chunk_size`` reviews.

    Generation is per fixed block of users, so the concatenation of the chunks is the same
    for every ``chunk_size``; at most one chunk plus one block is held at a time.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    state = _state or _build_domain(config, domain, _shared_users(config))
    pending: list[ReviewChunk] = []
    held = 0
    first = 0
    for b in range(len(state.block_users)):
        block = _generate_block(config, state, b, first)
        first += len(block)
        pending.append(block)
        held += len(block)
        while held >= chunk_size:
            merged = ReviewChunk.concat(pending)
            yield merged.slice(0, chunk_size)
            rest = merged.slice(chunk_size, len(merged))
            pending, held = ([rest], len(rest)) if len(rest) else ([], 0)
    if held:
        yield ReviewChunk.concat(pending)
