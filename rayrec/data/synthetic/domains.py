"""Per-domain state: users (shared across domains, then each domain's own), items, review
counts per generation block, rating cut points and the preformatted pieces of output lines."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rayrec.data.synthetic.config import SyntheticConfig
from rayrec.data.synthetic.ids import (
    _STREAM_CALIBRATION,
    _STREAM_COUNTS,
    _STREAM_ITEMS,
    _STREAM_SHARED,
    _STREAM_USERS,
    _TAG_ITEM,
    _TAG_SHARED_USER,
    _TAG_USER,
    _amazon_user_ids,
    _asins,
    _domain_key,
    _enc,
    _keys,
    _rng,
    _yelp_ids,
)
from rayrec.data.synthetic.phrasebook import _Phrasebook, _pieces_per_sentence
from rayrec.data.synthetic.presets import DOMAIN_PRESETS, DomainPreset
from rayrec.data.synthetic.vocabulary import (
    _FIRST_NAMES,
    _LAST_NAMES,
    ADVERBS,
    GENERAL_NEGATIVE,
    GENERAL_POSITIVE,
)

#: Reviews per generation block. Part of the determinism contract: changing it changes the
#: corpus for a given seed. Write chunks are groups of whole blocks, so chunking does not.
GENERATION_BLOCK = 1024

_PREFERRED = 5  # size of a user's favourite opinion-word subsets


@dataclass
class _Users:
    """Per-user parameters, shared by all domains for shared users."""

    keys: np.ndarray  # uint64, unique across the corpus (id hash input)
    activeness: np.ndarray
    bias: np.ndarray
    factors: np.ndarray  # (n, latent_dim)
    verbosity: np.ndarray  # mean number of sentences
    opinion_rate: np.ndarray
    pref_pos: np.ndarray  # (n, _PREFERRED) indices into GENERAL_POSITIVE
    pref_neg: np.ndarray  # (n, _PREFERRED) indices into GENERAL_NEGATIVE
    adverb_rate: np.ndarray
    fav_adverb: np.ndarray
    exclaim_rate: np.ndarray
    vote_rate: np.ndarray
    first_name: np.ndarray
    last_name: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, keys: np.ndarray, cfg: SyntheticConfig) -> _Users:
        n, k = len(keys), cfg.latent_dim
        component_std = np.sqrt(cfg.interaction_std) / k**0.25
        return cls(
            keys=keys,
            activeness=rng.standard_normal(n),
            bias=rng.normal(0.0, cfg.user_bias_std, n),
            factors=rng.normal(0.0, component_std, (n, k)),
            verbosity=rng.lognormal(np.log(3.5), 0.35, n),
            opinion_rate=rng.beta(6.0, 3.0, n),
            pref_pos=_favourites(rng, n, len(GENERAL_POSITIVE)),
            pref_neg=_favourites(rng, n, len(GENERAL_NEGATIVE)),
            adverb_rate=rng.beta(2.0, 3.0, n),
            fav_adverb=rng.integers(1, len(ADVERBS), n),
            exclaim_rate=rng.beta(1.0, 5.0, n),
            vote_rate=rng.lognormal(0.0, 0.8, n),
            first_name=rng.integers(0, len(_FIRST_NAMES), n),
            last_name=rng.integers(0, len(_LAST_NAMES), n),
        )

    def concat(self, other: _Users) -> _Users:
        return _Users(
            **{
                name: np.concatenate([getattr(self, name), getattr(other, name)])
                for name in self.__dataclass_fields__
            }
        )


def _favourites(rng: np.random.Generator, n: int, vocabulary: int) -> np.ndarray:
    """``_PREFERRED`` distinct word indices per user, drawn in slices to bound temporaries
    (slicing consumes the stream exactly as one big draw would)."""
    out = np.empty((n, _PREFERRED), dtype=np.int16)
    for start in range(0, n, 8192):
        stop = min(n, start + 8192)
        out[start:stop] = rng.random((stop - start, vocabulary)).argsort(axis=1)[:, :_PREFERRED]
    return out


def _zipf_weights(rank: np.ndarray, exponent: float, offset: float) -> np.ndarray:
    w = (rank + offset) ** -exponent
    return w / w.sum()


def _ranks(score: np.ndarray) -> np.ndarray:
    """Rank 1 for the largest score."""
    order = np.argsort(-score, kind="stable")
    ranks = np.empty(len(score), dtype=np.float64)
    ranks[order] = np.arange(1, len(score) + 1)
    return ranks


def _allocate(rng: np.random.Generator, total: int, p: np.ndarray, cap: int) -> np.ndarray:
    """Multinomial counts summing to ``total`` with each count at most ``cap``."""
    counts = rng.multinomial(total, p)
    while True:
        over = counts > cap
        excess = int((counts[over] - cap).sum())
        if excess == 0:
            return counts
        counts[over] = cap
        room = np.where(counts < cap, p, 0.0)
        counts += rng.multinomial(excess, room / room.sum())


@dataclass
class _DomainState:
    """Parameters of one domain: O(users + items) memory, never O(reviews)."""

    name: str
    preset: DomainPreset
    n_reviews: int
    users: _Users  # population: shared users first, then the domain's own
    user_ids: np.ndarray  # object array of id strings
    user_names: np.ndarray
    item_ids: np.ndarray
    item_bias: np.ndarray
    item_factors: np.ndarray
    item_cdf: np.ndarray
    item_kind: np.ndarray
    item_nouns: np.ndarray  # (n_items, 3) indices into ``nouns``
    nouns: tuple[str, ...]
    kind_noun_offset: np.ndarray
    kind_noun_count: np.ndarray
    neutral: tuple[str, ...]
    kind_neutral_offset: np.ndarray
    kind_neutral_count: np.ndarray
    pos_vocab: tuple[str, ...]  # GENERAL_POSITIVE first, then the domain's words
    neg_vocab: tuple[str, ...]
    phrasebook: _Phrasebook
    pieces_per_sentence: float  # word pieces of an average sentence (estimated, no tokenizer)
    thresholds: np.ndarray  # 4 cut points of the latent score
    block_users: list[np.ndarray]  # population indices per generation block, in file order
    block_counts: list[np.ndarray]
    t_start: int  # unix seconds, a midnight
    t_end: int
    line_heads: np.ndarray  # Amazon: '{"reviewerID": "<id>", "asin": "' per user
    line_names: np.ndarray  # Amazon: '", "reviewerName": "<name>", "helpful": [' per user
    day_strings: np.ndarray  # Amazon reviewTime ("MM D, YYYY") per day since t_start


def _shared_users(cfg: SyntheticConfig) -> _Users:
    keys = _keys(_TAG_SHARED_USER, "", np.arange(cfg.n_shared_users))
    return _Users.draw(_rng(cfg.seed, _STREAM_SHARED), keys, cfg)


def _build_domain(cfg: SyntheticConfig, domain: str, shared: _Users) -> _DomainState:
    preset = DOMAIN_PRESETS[domain]
    dkey = _domain_key(domain)
    n_own, n_items = cfg.own_users(domain), cfg.items(domain)

    # Users: the shared pool plus the domain's own users.
    own_keys = _keys(_TAG_USER, domain, np.arange(n_own))
    own = _Users.draw(_rng(cfg.seed, dkey, _STREAM_USERS), own_keys, cfg)
    users = shared.concat(own)
    if preset.format == "amazon2014":
        user_ids = _amazon_user_ids(users.keys)
    else:  # Yelp: shared users keep their Amazon-style id, own users get Yelp-style ids
        user_ids = np.concatenate([_amazon_user_ids(shared.keys), _yelp_ids(own_keys)])
    first = np.array(_FIRST_NAMES, dtype=object)[users.first_name]
    last = np.array(_LAST_NAMES, dtype=object)[users.last_name]
    user_names = first + " " + last

    # Items.
    rng = _rng(cfg.seed, dkey, _STREAM_ITEMS)
    kind_weights = np.array([k.weight for k in preset.kinds])
    item_kind = rng.choice(len(preset.kinds), n_items, p=kind_weights / kind_weights.sum())
    item_p = _zipf_weights(
        _ranks(rng.standard_normal(n_items)), cfg.item_zipf, cfg.item_rank_offset * n_items
    )
    log_p = np.log(item_p)
    popularity = (log_p - log_p.mean()) / (log_p.std() + 1e-12)
    item_bias = rng.normal(0.0, cfg.item_bias_std, n_items) + cfg.popularity_bias * popularity
    item_factors = rng.normal(
        0.0, np.sqrt(cfg.interaction_std) / cfg.latent_dim**0.25, (n_items, cfg.latent_dim)
    )
    nouns: list[str] = []
    neutral: list[str] = []
    noun_offset, noun_count, neutral_offset, neutral_count = [], [], [], []
    for kind in preset.kinds:
        noun_offset.append(len(nouns))
        noun_count.append(len(kind.nouns))
        nouns.extend(kind.nouns)
        neutral_offset.append(len(neutral))
        neutral_count.append(len(kind.neutral))
        neutral.extend(kind.neutral)
    kn_off, kn_cnt = np.array(noun_offset), np.array(noun_count)
    # Each item has three aspects (nouns of its kind) its reviews talk about most of the time.
    item_nouns = kn_off[item_kind, None] + (
        rng.random((n_items, 3)) * kn_cnt[item_kind, None]
    ).astype(np.int64)

    # Review counts per user (Zipf over a rank driven by global activeness + domain noise).
    rng = _rng(cfg.seed, dkey, _STREAM_COUNTS)
    score = users.activeness + 0.7 * rng.standard_normal(len(users.keys))
    n_pop = len(score)
    user_p = _zipf_weights(_ranks(score), cfg.user_zipf, cfg.user_rank_offset * n_pop)
    counts = _allocate(rng, cfg.reviews(domain), user_p, cfg.max_items_per_user(domain))
    order = rng.permutation(n_pop)
    order = order[counts[order] > 0]
    starts = np.cumsum(counts[order]) - counts[order]
    block_of = starts // GENERATION_BLOCK
    cuts = np.flatnonzero(np.diff(block_of)) + 1
    block_users = np.split(order, cuts)
    block_counts = [counts[b] for b in block_users]

    # Rating cut points: quantiles of the latent score over a calibration sample of the
    # domain's (user, item) distribution (noise included).
    item_cdf = np.cumsum(item_p)
    item_cdf /= item_cdf[-1]
    rng = _rng(cfg.seed, dkey, _STREAM_CALIBRATION)
    m = cfg.calibration_samples
    cu = rng.choice(n_pop, m, p=counts / counts.sum())
    ci = np.minimum(np.searchsorted(item_cdf, rng.random(m), side="right"), n_items - 1)
    cal = _latent_score(users, cu, item_bias, item_factors, ci, cfg.noise_std, rng)
    thresholds = np.quantile(cal, np.cumsum(cfg.rating_distribution)[:4])

    # Text vocabulary and preformatted pieces of the output lines.
    pos_vocab = GENERAL_POSITIVE + preset.positive
    neg_vocab = GENERAL_NEGATIVE + preset.negative
    amazon = preset.format == "amazon2014"
    days = np.arange(np.datetime64(preset.start, "D"), np.datetime64(preset.end, "D") + 1)
    book = _Phrasebook.build(nouns, neutral, pos_vocab + neg_vocab)
    return _DomainState(
        name=domain,
        preset=preset,
        n_reviews=cfg.reviews(domain),
        users=users,
        user_ids=user_ids,
        user_names=user_names,
        item_ids=(
            _asins(preset.code, n_items)
            if amazon
            else _yelp_ids(_keys(_TAG_ITEM, domain, np.arange(n_items)))
        ),
        item_bias=item_bias,
        item_factors=item_factors,
        item_cdf=item_cdf,
        item_kind=item_kind,
        item_nouns=item_nouns,
        nouns=tuple(nouns),
        kind_noun_offset=kn_off,
        kind_noun_count=kn_cnt,
        neutral=tuple(neutral),
        kind_neutral_offset=np.array(neutral_offset),
        kind_neutral_count=np.array(neutral_count),
        pos_vocab=pos_vocab,
        neg_vocab=neg_vocab,
        phrasebook=book,
        pieces_per_sentence=_pieces_per_sentence(book),
        thresholds=thresholds,
        block_users=block_users,
        block_counts=block_counts,
        t_start=int(days[0].astype("datetime64[s]").astype(np.int64)),
        t_end=int(days[-1].astype("datetime64[s]").astype(np.int64)),
        line_heads=np.array(
            [f'{{"reviewerID": {_enc(uid)}, "asin": "' for uid in user_ids.tolist()]
            if amazon
            else [],
            dtype=object,
        ),
        line_names=np.array(
            [f'", "reviewerName": {_enc(n)}, "helpful": [' for n in user_names.tolist()]
            if amazon
            else [],
            dtype=object,
        ),
        day_strings=np.array(
            [f"{d.month:02d} {d.day}, {d.year}" for d in days.astype(object)] if amazon else [],
            dtype=object,
        ),
    )


def _latent_score(
    users: _Users,
    u: np.ndarray,
    item_bias: np.ndarray,
    item_factors: np.ndarray,
    i: np.ndarray,
    noise_std: float,
    rng: np.random.Generator,
) -> np.ndarray:
    interaction = np.einsum("nk,nk->n", users.factors[u], item_factors[i])
    noise = rng.normal(0.0, noise_std, len(u))
    return users.bias[u] + item_bias[i] + interaction + noise
