"""Synthetic review corpus generator: Amazon 2014 and Yelp files with a learnable structure.

Why: the real corpora are large, licensed and not reachable from these machines, yet every stage
of rayrec (readers, k-core, split, tokenization, U-BERT cross-domain pretraining, rating and
ranking models) needs data that behaves like them. This module writes files in the *real* source
formats, so the real readers are exercised end to end, and gives the data enough structure that
a model which works should beat the global mean:

* **Domains with shared users.** By default two Amazon-2014 domains (``Electronics``,
  ``Kindle_Store``) and one Yelp domain. A pool of *shared* users writes in every domain, under
  the same id string (the Amazon ``reviewerID`` is reused as Yelp ``user_id``), so the
  cross-domain corpus of U-BERT finds the target domain's users in the other domains. Each
  domain also has its own users (Yelp-only users get 22-character Yelp-style ids).
* **Activity.** Zipf-like: a user's weight in a domain is ``(rank + offset) ** -a`` where the
  rank comes from a global "activeness" of the user plus domain noise (heavy reviewers are heavy
  everywhere, not identically so); items likewise. A user's reviews in a domain are of distinct
  items (no duplicate user-item pairs), at most ``max_user_item_share`` of the catalogue. The
  defaults (per domain 12k reviews, 1,000 shared + 600 own users, 600 items) keep about 84% of
  each domain through the iterative 5-core filter.
* **Ratings** come from a latent model ``b_u + b_i + p_u . q_i + noise`` (``b_i`` slightly
  correlated with item popularity, as in real data). The score is cut into 1..5 stars at the
  quantiles of a fixed-size calibration sample of the domain's own (user, item) distribution,
  so the Amazon skew (default 5: 60%, 4: 20%, 3: 9%, 2: 5%, 1: 6%) holds by construction while
  a matrix-factorization model has real signal to learn. A shared user keeps its bias and
  factors in every domain (items are per domain).
* **Text** is assembled from sentence templates: opinion sentences about domain nouns (the
  item's own few aspects most of the time, so item documents are consistent) and neutral
  sentences. An opinion word is positive with a probability that rises with the rating, and
  every user has a *style*: a preferred subset of opinion words used most of the time (shared
  across domains, which is what user-aware text models such as U-BERT can exploit), a favourite
  intensifier and how often it is used, verbosity, opinion density and exclamation habit.
  Opinion words are a hand-picked list of words that all occur in the Hu and Liu (2004) opinion
  lexicon; fillers and nouns contain no lexicon word, so a lexicon-based opinion-token mask
  finds exactly the sentiment-carrying words (a test checks both facts against the lexicon).
* **Length.** ``text_length="short"`` (the default, for tests and demos): 1-10 sentences,
  about 25-35 MiniLM word pieces. ``"realistic"``: a log-normal number of word pieces per
  review with the domain's mean and standard deviation (``DomainPreset.word_pieces``; the
  user's verbosity carries part of the spread), up to 128 sentences. Musical Instruments'
  is measured on the shipped 5-core file (10,261 reviews: mean 115, sd 145, median 67, 99th
  percentile 723 word pieces); Electronics (140 +- 170), Kindle Store (125 +- 150) and Yelp
  (150 +- 140) are chosen longer than it, as those corpora's reviews are (no copy of them
  is reachable here to measure). Measured on 3,000 generated reviews per domain: means
  141 / 124 / 158 word pieces, medians 91 / 84 / 114.

Formats (DESIGN.md section 3), written exactly as the originals lay them out:

* Amazon 2014: ``<Domain>_5.json.gz``, one JSON object per line with ``reviewerID, asin,
  reviewerName, helpful [a, b], reviewText, overall (float), summary, unixReviewTime (int, a
  midnight UTC), reviewTime ("MM D, YYYY": month zero-padded, day not, as in the real files)``.
  As in the real files a small share of records has no ``reviewerName`` key
  (``missing_name_rate``). Separators ``", "`` and ``": "`` as in those files.
* Yelp: ``<Domain>/review.json`` (``review_id, user_id, business_id, stars (float, as in the
  current Yelp Open Dataset), useful, funny, cool, text, date "YYYY-MM-DD HH:MM:SS"``; text may
  hold paragraph breaks) and ``<Domain>/business.json`` (``business_id, name, address, city,
  state, postal_code, latitude, longitude, stars (half stars), review_count, is_open,
  attributes, categories (a comma-separated string), hours``), compact JSON like the real
  files, one line per business with at least one review; its stars and review_count are
  computed from the reviews written. Most businesses are in AZ and most are restaurants, so a
  "Restaurants in AZ" filter keeps most but not all of the domain.

Determinism and scale: every random draw comes from a numpy ``Generator(PCG64)`` seeded by a
``SeedSequence`` of (seed, domain, stream, index). Per-domain state (user and item parameters,
review counts) is O(users + items); reviews are generated per *block* of users holding about
``GENERATION_BLOCK`` reviews, each block with its own stream, so the bytes written do not
depend on the chunk size used to group blocks for writing. The writer holds at most one chunk
(``chunk_size`` reviews plus one block) at a time, and gzip is fed in fixed-size pieces with
``mtime=0`` so the same seed gives byte-identical files. Files go to a local directory or any
fsspec URI such as ``s3://bucket/prefix``.

CLI: ``python -m rayrec.data.synthetic --out DIR --reviews N --seed S`` (``--reviews`` is per
domain; users and items scale with it so the density stays that of the defaults).

Measured on the 2-core dev VM (Python 3.11, numpy 2.4, gzip level 1): ``--reviews 66667``
(200k reviews in 3 domains) takes 3.5 s, about 60k reviews/s; peak RSS is 128 MB for 100k
reviews and 185 MB for 1M, the difference being the 10x larger user and item population and a
fuller chunk. With the population and chunk size fixed (20k), 100k and 1M reviews peak at
113 MB and 120 MB: memory is O(users + items + chunk_size), not O(reviews).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import posixpath
import re
import sys
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

import fsspec
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ADVERBS",
    "BinarySink",
    "DOMAIN_PRESETS",
    "GENERAL_NEGATIVE",
    "GENERAL_POSITIVE",
    "GENERATION_BLOCK",
    "DomainPreset",
    "ItemKind",
    "ReviewChunk",
    "SourceFile",
    "SyntheticConfig",
    "iter_review_chunks",
    "main",
    "negative_words",
    "open_output",
    "positive_words",
    "write_corpus",
]

SourceFormat = Literal["amazon2014", "yelp"]

#: Reviews per generation block. Part of the determinism contract: changing it changes the
#: corpus for a given seed. Write chunks are groups of whole blocks, so chunking does not.
GENERATION_BLOCK = 1024
_MAX_SENTENCES = 10
_MAX_SENTENCES_REALISTIC = 128  # about 1,000 word pieces: beyond MI's 99.9th percentile
_GZIP_PIECE = 1 << 20  # gzip is always fed 1 MiB pieces: output independent of chunking

# --------------------------------------------------------------------------------------------
# Vocabulary. Every opinion word below is in the Hu and Liu opinion lexicon (positive words in
# positive-words.txt, negative in negative-words.txt); no filler, noun or template word is.
# All opinion words are adjectives so they fit every template.
# --------------------------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


#: Opinion words usable in every domain; users' preferred subsets are drawn from these.
GENERAL_POSITIVE = _words(
    "great excellent good perfect amazing awesome nice wonderful fantastic reliable impressive"
    " beautiful solid easy outstanding superb enjoyable brilliant pleasant incredible terrific"
    " fabulous flawless elegant lovely remarkable superior decent"
)
GENERAL_NEGATIVE = _words(
    "terrible poor awful bad cheap disappointing horrible useless mediocre annoying frustrating"
    " lousy pathetic ugly worthless overpriced overrated unreliable weak confusing dull sloppy"
    " shoddy flawed dreadful awkward lame unbearable"
)
#: Intensifiers (not in the lexicon). Index 0 means "no intensifier".
ADVERBS: tuple[str, ...] = ("", "very ", "really ", "quite ", "so ", "extremely ", "truly ")
_STAR_SUMMARIES = ("One Star", "Two Stars", "Three Stars", "Four Stars", "Five Stars")
#: P(opinion word is positive | rating 1..5).
_P_POSITIVE = np.array([0.08, 0.18, 0.5, 0.82, 0.95])
_OPINION_TEMPLATES: tuple[str, ...] = (
    "the {noun} {is} {op}",
    "the {noun} {was} {op}",
    "{op} {noun}",
    "I found the {noun} {op}",
    "overall the {noun} {seems} {op}",
    "in my opinion the {noun} {is} {op}",
)


@dataclass(frozen=True)
class ItemKind:
    """A family of items within a domain (one for Amazon domains; several for Yelp)."""

    name: str
    weight: float
    nouns: tuple[str, ...]
    neutral: tuple[str, ...]  # sentences without opinion words; may use {noun}
    #: Yelp: (categories string, business name suffix) of the kind's businesses.
    businesses: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DomainPreset:
    """Everything domain-specific: format, file code, vocabulary, dates and text length."""

    name: str
    format: SourceFormat
    code: str  # one base-36 character in the asin, keeps item ids unique across domains
    kinds: tuple[ItemKind, ...]
    positive: tuple[str, ...]  # domain-specific opinion words, on top of the general ones
    negative: tuple[str, ...]
    verbosity: float  # multiplies the user's sentence count
    start: str  # first review date (ISO)
    end: str  # last review date (ISO)
    #: Mean and standard deviation of a review's word pieces (MiniLM's uncased BERT
    #: vocabulary, no special tokens) with ``text_length="realistic"``.
    word_pieces: tuple[float, float] = (115.0, 145.0)


_ELECTRONICS = DomainPreset(
    name="Electronics",
    format="amazon2014",
    code="E",
    kinds=(
        ItemKind(
            name="device",
            weight=1.0,
            nouns=_words(
                "cable battery screen charger case adapter remote speaker keyboard mouse"
                " headphones port button cord plug camera lens mount sound display"
            ),
            neutral=(
                "I bought this {noun} for my laptop",
                "it arrived two days after I ordered it",
                "I have had the {noun} for about a month now",
                "the {noun} came in a small box",
                "I use it every day at the office",
                "this replaced an old {noun} I had",
                "my son uses it for school",
                "the {noun} {is} black and a bit smaller than I expected",
            ),
        ),
    ),
    positive=_words("sturdy durable fast responsive sharp bright crisp quiet sleek handy"),
    negative=_words(
        "flimsy fragile noisy slow clunky laggy dim buggy unresponsive defective faulty"
    ),
    verbosity=1.0,
    word_pieces=(140.0, 170.0),
    start="2004-01-01",
    end="2014-07-23",
)
_KINDLE = DomainPreset(
    name="Kindle_Store",
    format="amazon2014",
    code="K",
    kinds=(
        ItemKind(
            name="book",
            weight=1.0,
            nouns=_words(
                "story author characters book writing ending protagonist villain dialogue series"
                " narrator novel setting romance pacing chapters"
            ),
            neutral=(
                "I read this book over the weekend",
                "this is the second book in the series",
                "I downloaded it to my kindle last month",
                "the story takes place in a small town",
                "I finished it in two days",
                "it is a short read of about a hundred pages",
                "I downloaded it during a sale",
            ),
        ),
    ),
    positive=_words(
        "captivating engaging vivid witty charming heartwarming entertaining clever inspiring"
        " powerful"
    ),
    negative=_words("boring tedious shallow repetitive cliched implausible"),
    verbosity=1.3,
    word_pieces=(125.0, 150.0),
    start="2007-11-19",
    end="2014-07-23",
)
_MUSICAL_INSTRUMENTS = DomainPreset(
    name="Musical_Instruments",
    format="amazon2014",
    code="M",
    kinds=(
        ItemKind(
            name="gear",
            weight=1.0,
            nouns=_words(
                "strings pedal amp tuner stand cable guitar strap picks mic pickup capo knobs tone"
            ),
            neutral=(
                "I bought this {noun} for my son",
                "I use it with my acoustic guitar",
                "I play in a small band on weekends",
                "the {noun} came in a padded box",
                "I have been playing for about ten years",
            ),
        ),
    ),
    positive=_words("sturdy durable rich warm smooth clear crisp accurate stable"),
    negative=_words("flimsy noisy stiff harsh muddy unstable inaccurate"),
    verbosity=1.0,
    word_pieces=(115.0, 145.0),
    start="2004-01-01",
    end="2014-07-23",
)
_YELP = DomainPreset(
    name="Yelp",
    format="yelp",
    code="Y",
    kinds=(
        ItemKind(
            name="restaurant",
            weight=0.72,
            nouns=_words(
                "food service waiter waitress menu staff salsa tacos pizza burger fries patio"
                " drinks dessert portions bartender atmosphere"
            ),
            neutral=(
                "we came here for dinner on a friday night",
                "I ordered the tacos and a drink",
                "we were seated at a table by the window",
                "my husband and I stopped in for lunch",
                "we waited about ten minutes for a table",
                "we will be back next time we are in town",
                "parking is in the lot behind the building",
            ),
            businesses=(
                ("Restaurants, Mexican", "Taqueria"),
                ("Mexican, Restaurants, Food", "Cantina"),
                ("Restaurants, Pizza, Italian", "Pizzeria"),
                ("Burgers, Restaurants, American (Traditional)", "Grill"),
                ("Restaurants, Sandwiches, Breakfast & Brunch", "Cafe"),
                ("Thai, Restaurants", "Thai Kitchen"),
                ("Restaurants, Japanese, Sushi Bars", "Sushi"),
                ("Nightlife, Bars, Restaurants", "Tavern"),
            ),
        ),
        ItemKind(
            name="shop",
            weight=0.28,
            nouns=_words(
                "staff service store selection appointment owner shop technician manicure"
                " haircut prices"
            ),
            neutral=(
                "I stopped in on a saturday morning",
                "I made an appointment online",
                "this shop is close to my house",
                "I have been coming here for two years",
                "I called ahead to ask about the {noun}",
            ),
            businesses=(
                ("Shopping, Fashion", "Boutique"),
                ("Beauty & Spas, Nail Salons", "Nails"),
                ("Hair Salons, Beauty & Spas", "Hair Studio"),
                ("Automotive, Auto Repair", "Auto Repair"),
                ("Home Services, Movers", "Movers"),
                ("Food, Coffee & Tea", "Coffee"),
            ),
        ),
    ),
    positive=_words(
        "delicious fresh friendly attentive cozy generous lively authentic knowledgeable courteous"
    ),
    negative=_words(
        "rude dirty bland stale greasy cold crowded inattentive expensive filthy lukewarm"
    ),
    verbosity=1.4,
    word_pieces=(150.0, 140.0),
    start="2008-01-01",
    end="2018-11-14",
)
#: Domains the generator knows, by name (the Amazon 2014 file stem, or "Yelp").
DOMAIN_PRESETS: dict[str, DomainPreset] = {
    p.name: p for p in (_ELECTRONICS, _KINDLE, _MUSICAL_INSTRUMENTS, _YELP)
}

_FIRST_NAMES = _words(
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara"
    " Richard Susan Joseph Jessica Thomas Sarah Chris Karen Daniel Nancy Matt Lisa Anthony"
    " Betty Mark Sandra Steven Ashley Paul Emily Andrew Donna Josh Michelle Kevin Carol Brian"
)
_LAST_NAMES = _words(
    "Smith Johnson Williams Brown Jones Miller Davis Garcia Wilson Anderson Taylor Thomas"
    " Moore Jackson Martin Lee Thompson White Harris Clark Lewis Walker Hall Young King Wright"
    " Lopez Hill Scott Adams"
)
_BUSINESS_PREFIXES = (
    *_words("Cactus Copper Mesa Saguaro Sonoran Camelback Sunset Desert Canyon Juniper Olive"),
    *("Blue Door", "Red Rock", "Old Town", "Elm Street", "Maple", "Harbor", "Union", "Lucky"),
)
_STREETS = (
    "Main St",
    "Camelback Rd",
    "Indian School Rd",
    "Central Ave",
    "Mill Ave",
    "Scottsdale Rd",
    "Broadway",
    "Market St",
)
#: (city, state, latitude, longitude, postal code prefix).
_AZ_CITIES = (
    ("Phoenix", "AZ", 33.448, -112.074, "850"),
    ("Scottsdale", "AZ", 33.494, -111.926, "852"),
    ("Tempe", "AZ", 33.425, -111.940, "852"),
    ("Mesa", "AZ", 33.415, -111.831, "852"),
    ("Chandler", "AZ", 33.306, -111.841, "852"),
    ("Glendale", "AZ", 33.538, -112.186, "853"),
)
_OTHER_CITIES = (
    ("Las Vegas", "NV", 36.170, -115.140, "891"),
    ("Henderson", "NV", 36.040, -114.982, "890"),
    ("Cleveland", "OH", 41.499, -81.694, "441"),
    ("Pittsburgh", "PA", 40.441, -79.996, "152"),
    ("Charlotte", "NC", 35.227, -80.843, "282"),
    ("Madison", "WI", 43.073, -89.401, "537"),
)
_WEEKDAYS = _words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")


def positive_words() -> frozenset[str]:
    """All positive opinion words the generator can emit."""
    return frozenset(GENERAL_POSITIVE).union(*(p.positive for p in DOMAIN_PRESETS.values()))


def negative_words() -> frozenset[str]:
    """All negative opinion words the generator can emit."""
    return frozenset(GENERAL_NEGATIVE).union(*(p.negative for p in DOMAIN_PRESETS.values()))


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------

PerDomain = int | dict[str, int]


class SyntheticConfig(BaseModel):
    """What to generate. The defaults give a demo corpus: 3 domains x 12k reviews, of which a
    5-core filter keeps most; ``scaled(n)`` keeps the same density for ``n`` reviews per domain.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(0, ge=0)
    domains: tuple[str, ...] = ("Electronics", "Kindle_Store", "Yelp")
    reviews_per_domain: PerDomain = 12_000
    n_shared_users: int = Field(1_000, ge=0)
    n_users_per_domain: PerDomain = 600
    n_items_per_domain: PerDomain = 600
    latent_dim: int = Field(3, ge=1)
    #: P(rating = 1..5); reached through quantile cut points of the latent score.
    rating_distribution: tuple[float, float, float, float, float] = (0.06, 0.05, 0.09, 0.2, 0.6)
    user_bias_std: float = Field(0.4, ge=0)
    item_bias_std: float = Field(0.4, ge=0)
    #: Standard deviation of the user-item interaction p_u . q_i.
    interaction_std: float = Field(1.0, ge=0)
    noise_std: float = Field(0.4, ge=0)
    #: Correlation of item bias with log item popularity (popular items rate a bit higher).
    popularity_bias: float = 0.15
    #: Zipf exponents and rank offsets (as a fraction of the population) of the activity laws.
    user_zipf: float = Field(1.0, gt=0)
    item_zipf: float = Field(0.9, gt=0)
    user_rank_offset: float = Field(0.08, gt=0)
    item_rank_offset: float = Field(0.05, gt=0)
    #: A user reviews at most this share of a domain's items (reviews are of distinct items).
    max_user_item_share: float = Field(0.2, gt=0, le=0.5)
    #: Share of user preference for its favourite opinion words (vs the whole vocabulary).
    style_strength: float = Field(0.75, ge=0, le=1)
    #: Share of Yelp businesses located in AZ.
    yelp_az_share: float = Field(0.8, ge=0, le=1)
    #: Share of Amazon records without a ``reviewerName`` key, as in the real files.
    missing_name_rate: float = Field(0.005, ge=0, le=1)
    calibration_samples: int = Field(200_000, ge=1_000)
    #: "short": 1-10 sentences, about 25-35 word pieces (fast tests and demos); "realistic":
    #: each domain's ``DomainPreset.word_pieces`` (a log-normal length per review, the
    #: user's verbosity kept), e.g. Musical Instruments' measured 115 +- 145 word pieces.
    text_length: Literal["short", "realistic"] = "short"

    @model_validator(mode="after")
    def _check(self) -> SyntheticConfig:
        if not self.domains or len(set(self.domains)) != len(self.domains):
            raise ValueError("domains must be a non-empty list of distinct names")
        unknown = [d for d in self.domains if d not in DOMAIN_PRESETS]
        if unknown:
            raise ValueError(f"unknown domains {unknown}; known: {sorted(DOMAIN_PRESETS)}")
        for field in ("reviews_per_domain", "n_users_per_domain", "n_items_per_domain"):
            value = getattr(self, field)
            if isinstance(value, dict):
                missing = set(self.domains) - set(value)
                extra = set(value) - set(self.domains)
                if missing or extra:
                    raise ValueError(f"{field}: missing {sorted(missing)}, extra {sorted(extra)}")
            values = value.values() if isinstance(value, dict) else [value]
            if any(v < 1 for v in values):
                raise ValueError(f"{field} must be >= 1")
        if abs(sum(self.rating_distribution) - 1.0) > 1e-6 or min(self.rating_distribution) <= 0:
            raise ValueError("rating_distribution must be 5 positive probabilities summing to 1")
        for domain in self.domains:
            cap = self.max_items_per_user(domain)
            if self.reviews(domain) > cap * (self.n_shared_users + self.own_users(domain)):
                raise ValueError(f"{domain}: too many reviews for the users and items given")
        return self

    def reviews(self, domain: str) -> int:
        return _pick(self.reviews_per_domain, domain)

    def own_users(self, domain: str) -> int:
        return _pick(self.n_users_per_domain, domain)

    def items(self, domain: str) -> int:
        return _pick(self.n_items_per_domain, domain)

    def max_items_per_user(self, domain: str) -> int:
        return max(1, int(self.items(domain) * self.max_user_item_share))

    @classmethod
    def scaled(cls, reviews_per_domain: int, **overrides: Any) -> SyntheticConfig:
        """A config with ``reviews_per_domain`` reviews per domain and users and items scaled
        to keep the density of the defaults (which are sized for 12k reviews per domain)."""
        base = cls()
        factor = reviews_per_domain / _pick(base.reviews_per_domain, base.domains[0])
        values: dict[str, Any] = {
            "reviews_per_domain": reviews_per_domain,
            "n_shared_users": max(1, round(base.n_shared_users * factor)),
            "n_users_per_domain": max(1, round(_pick(base.n_users_per_domain, "") * factor)),
            "n_items_per_domain": max(50, round(_pick(base.n_items_per_domain, "") * factor)),
        }
        values.update(overrides)
        return cls(**values)


def _pick(value: PerDomain, domain: str) -> int:
    return value[domain] if isinstance(value, dict) else value


@dataclass(frozen=True)
class SourceFile:
    """One written source, as a reader needs it (``business_uri`` only for Yelp)."""

    format: SourceFormat
    uri: str
    domain: str
    business_uri: str | None = None
    n_reviews: int = 0


# --------------------------------------------------------------------------------------------
# Random streams and ids
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Users, items and per-domain state
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Review generation
# --------------------------------------------------------------------------------------------


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


def _capitalize(text: str) -> str:
    return text[0].upper() + text[1:]


def _noun_forms(noun: str) -> dict[str, str]:
    """Template fields for ``noun`` with verb agreement ("the drinks were ...")."""
    plural = noun.endswith("s") and not noun.endswith("ss") and noun != "series"
    return {
        "noun": noun,
        "is": "are" if plural else "is",
        "was": "were" if plural else "was",
        "seems": "seem" if plural else "seems",
    }


@dataclass(frozen=True)
class _Phrasebook:
    """Every sentence and summary a domain can produce, built once per domain, so that text
    assembly is integer arithmetic in numpy plus one ``str.join`` per review.

    Opinion sentence id: ``((template * n_nouns + noun) * n_ops + op) * 2 + exclaim`` where
    ``op = adverb * n_words + word``; neutral sentences follow at ``neutral_base``.
    """

    sentences: np.ndarray  # object array of str
    summaries: np.ndarray
    n_nouns: int
    n_words: int
    neutral_base: int
    star_base: int

    @classmethod
    def build(
        cls, nouns: Sequence[str], neutral: Sequence[str], words: Sequence[str]
    ) -> _Phrasebook:
        forms = [_noun_forms(noun) for noun in nouns]
        ops = [adverb + word for adverb in ADVERBS for word in words]
        capital_ops = [_capitalize(op) for op in ops]
        sentences: list[str] = []
        for template in _OPINION_TEMPLATES:
            head, tail = template.split("{op}")
            for form in forms:
                pre, post = head.format(**form), tail.format(**form)
                if pre:
                    pre, opening = _capitalize(pre), ops
                else:
                    opening = capital_ops
                for op in opening:
                    sentence = pre + op + post
                    sentences += (sentence + ".", sentence + "!")
        neutral_base = len(sentences)
        for text in neutral:
            for form in forms:
                sentence = _capitalize(text.format(**form))
                sentences += (sentence + ".", sentence + "!")
        summaries = [op + noun for op in capital_ops for noun in ["", *(" " + n for n in nouns)]]
        star_base = len(summaries)
        summaries += _STAR_SUMMARIES
        return cls(
            sentences=np.array(sentences, dtype=object),
            summaries=np.array(summaries, dtype=object),
            n_nouns=len(nouns),
            n_words=len(words),
            neutral_base=neutral_base,
            star_base=star_base,
        )


#: Spread of the users' verbosity (``_Users.verbosity``: log-normal, median 3.5, sigma 0.35).
_VERBOSITY_MEDIAN, _VERBOSITY_SIGMA = 3.5, 0.35


#: Word pieces per word-or-punctuation unit of an average sentence: chosen once so that the
#: realistic corpus' mean word pieces, measured with MiniLM's tokenizer, land within 5% of
#: the presets' means (the generator itself needs no tokenizer; a test checks the result).
_PIECES_PER_UNIT = 0.95
_UNIT = re.compile(r"\w+|[^\w\s]")


def _pieces_per_sentence(book: _Phrasebook, samples: int = 2000) -> float:
    """Estimated word pieces of an average sentence: opinion sentences (two thirds of them,
    the users' mean opinion rate) and neutral ones, a fixed stride of each."""

    def mean_units(sentences: np.ndarray) -> float:
        step = max(1, len(sentences) // samples)
        return float(np.mean([len(_UNIT.findall(x)) for x in sentences[::step].tolist()]))

    opinion = mean_units(book.sentences[: book.neutral_base])
    neutral = mean_units(book.sentences[book.neutral_base :])
    return _PIECES_PER_UNIT * (2 / 3 * opinion + 1 / 3 * neutral)


def _realistic_sentences(
    rng: np.random.Generator, state: _DomainState, verbosity: np.ndarray, cap: int
) -> np.ndarray:
    """Sentences per review for a log-normal word-piece length with the preset's mean and
    standard deviation: the user's verbosity (relative to the median user) carries part of
    the spread, the review the rest, so a wordy user stays wordy."""
    mean, sd = state.preset.word_pieces
    sigma2 = np.log1p((sd / mean) ** 2)
    mu = np.log(mean) - sigma2 / 2
    review_sigma = np.sqrt(max(sigma2 - _VERBOSITY_SIGMA**2, 0.0))
    log_pieces = (
        mu + np.log(verbosity / _VERBOSITY_MEDIAN) + rng.normal(0, review_sigma, len(verbosity))
    )
    sentences = np.rint(np.exp(log_pieces) / state.pieces_per_sentence).astype(np.int64)
    return np.clip(sentences, 1, cap)


def _texts(
    rng: np.random.Generator,
    state: _DomainState,
    u: np.ndarray,
    i: np.ndarray,
    rating: np.ndarray,
    style_strength: float,
    text_length: str = "short",
) -> tuple[list[str], list[str]]:
    """Review texts and summaries: vectorised draws of sentence ids, one join per review."""
    n, s = len(u), _MAX_SENTENCES if text_length == "short" else _MAX_SENTENCES_REALISTIC
    us, book = state.users, state.phrasebook
    n_pos, n_neg = len(state.pos_vocab), len(state.neg_vocab)

    def opinion_words(cols: int) -> np.ndarray:
        """Word ids (positives, then negatives): polarity from the rating, choice from style."""
        positive = rng.random((n, cols)) < _P_POSITIVE[rating - 1][:, None]
        use_pref = rng.random((n, cols)) < style_strength
        slot = rng.integers(0, _PREFERRED, (n, cols))
        pos = np.where(
            use_pref,
            np.take_along_axis(us.pref_pos[u], slot, axis=1),
            rng.integers(0, n_pos, (n, cols)),
        )
        neg = np.where(
            use_pref,
            np.take_along_axis(us.pref_neg[u], slot, axis=1),
            rng.integers(0, n_neg, (n, cols)),
        )
        return np.where(positive, pos, n_pos + neg)

    def intensifiers(shape: tuple[int, ...], rate: np.ndarray) -> np.ndarray:
        """Adverb ids: the user's favourite most of the time, at the user's rate; 0 = none."""
        fav = us.fav_adverb[u].reshape((n,) + (1,) * (len(shape) - 1))
        other = rng.integers(1, len(ADVERBS), shape)
        adverb = np.where(rng.random(shape) < 0.7, fav, other)
        return np.where(rng.random(shape) < rate, adverb, 0)

    if text_length == "short":
        lam = us.verbosity[u] * state.preset.verbosity
        n_sent = np.clip(1 + rng.poisson(np.maximum(lam - 1.0, 0.0)), 1, s)
    else:
        n_sent = _realistic_sentences(rng, state, us.verbosity[u], s)
    is_opinion = rng.random((n, s)) < us.opinion_rate[u][:, None]
    is_opinion[:, 0] = True  # every review states an opinion
    op = intensifiers((n, s), us.adverb_rate[u][:, None]) * book.n_words + opinion_words(s)
    template = rng.integers(0, len(_OPINION_TEMPLATES), (n, s))
    kind = state.item_kind[i]
    own_noun = np.take_along_axis(state.item_nouns[i], rng.integers(0, 3, (n, s)), axis=1)
    any_noun = state.kind_noun_offset[kind][:, None] + (
        rng.random((n, s)) * state.kind_noun_count[kind][:, None]
    ).astype(np.int64)
    noun = np.where(rng.random((n, s)) < 0.75, own_noun, any_noun)
    neutral = state.kind_neutral_offset[kind][:, None] + (
        rng.random((n, s)) * state.kind_neutral_count[kind][:, None]
    ).astype(np.int64)
    exclaim = (rng.random((n, s)) < us.exclaim_rate[u][:, None]).astype(np.int64)
    n_ops = len(ADVERBS) * book.n_words
    opinion_id = ((template * book.n_nouns + noun) * n_ops + op) * 2 + exclaim
    neutral_id = book.neutral_base + (neutral * book.n_nouns + noun) * 2 + exclaim
    sentence_id = np.where(is_opinion, opinion_id, neutral_id)
    flat = book.sentences[sentence_id[np.arange(s) < n_sent[:, None]]].tolist()
    ends = np.cumsum(n_sent).tolist()
    starts = [0, *ends[:-1]]
    texts = [" ".join(flat[a:b]) for a, b in zip(starts, ends, strict=True)]
    if state.preset.format == "yelp":  # Yelp texts may have paragraphs
        for r in np.flatnonzero((n_sent >= 4) & (rng.random(n) < 0.4)).tolist():
            a, b = starts[r], ends[r]
            cut = a + (b - a) // 2
            texts[r] = " ".join(flat[a:cut]) + "\n\n" + " ".join(flat[cut:b])

    summary_op = intensifiers((n,), np.full(n, 0.3)) * book.n_words + opinion_words(1)[:, 0]
    summary_noun = np.where(rng.random(n) < 0.5, noun[:, 0] + 1, 0)
    summary_id = np.where(
        rng.random(n) < 0.12,
        book.star_base + rating - 1,
        summary_op * (book.n_nouns + 1) + summary_noun,
    )
    return texts, book.summaries[summary_id].tolist()


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


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


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


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rayrec.data.synthetic --out DIR --reviews N --seed S``."""
    parser = argparse.ArgumentParser(
        prog="python -m rayrec.data.synthetic", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", required=True, help="output directory or URI (s3://...)")
    parser.add_argument(
        "--reviews",
        type=int,
        default=None,
        help="reviews per domain; users and items scale with it (default: config defaults)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--domains", default=None, help="comma-separated, e.g. Electronics,Yelp")
    parser.add_argument("--chunk-size", type=int, default=50_000)
    parser.add_argument("--compresslevel", type=int, default=1, help="gzip level (1 = fastest)")
    parser.add_argument(
        "--text-length",
        choices=("short", "realistic"),
        default="short",
        help="review lengths (realistic: DomainPreset.word_pieces)",
    )
    args = parser.parse_args(argv)

    overrides: dict[str, Any] = {"seed": args.seed, "text_length": args.text_length}
    if args.domains:
        overrides["domains"] = tuple(d.strip() for d in args.domains.split(",") if d.strip())
    if args.reviews is not None:
        config = SyntheticConfig.scaled(args.reviews, **overrides)
    else:
        config = SyntheticConfig(**overrides)
    started = time.perf_counter()
    sources = write_corpus(
        args.out, config, chunk_size=args.chunk_size, compresslevel=args.compresslevel
    )
    seconds = time.perf_counter() - started
    total = sum(s.n_reviews for s in sources)
    report = {
        "sources": [asdict(s) for s in sources],
        "reviews": total,
        "seconds": round(seconds, 3),
        "reviews_per_second": round(total / seconds) if seconds > 0 else None,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
