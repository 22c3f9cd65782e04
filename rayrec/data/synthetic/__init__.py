"""Synthetic review corpus generator: Amazon 2014 and Yelp files with a learnable structure.

Why: the real corpora are large, licensed and not reachable from these machines, yet every stage
of rayrec (readers, k-core, split, tokenization, U-BERT cross-domain pretraining, rating and
ranking models) needs data that behaves like them. This package writes files in the *real* source
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

Modules, each with one purpose (the public names are re-exported here):

* :mod:`~rayrec.data.synthetic.vocabulary`: the fixed word lists (opinion words, intensifiers,
  sentence templates, names of people and places);
* :mod:`~rayrec.data.synthetic.presets`: ``DomainPreset``, ``ItemKind`` and ``DOMAIN_PRESETS``;
  ``positive_words`` / ``negative_words``;
* :mod:`~rayrec.data.synthetic.config`: ``SyntheticConfig`` and ``SourceFile``;
* :mod:`~rayrec.data.synthetic.ids`: seeded random streams and id strings;
* :mod:`~rayrec.data.synthetic.domains`: users, items and per-domain state, the latent rating
  model, ``GENERATION_BLOCK``;
* :mod:`~rayrec.data.synthetic.phrasebook`: every sentence and summary a domain can produce;
* :mod:`~rayrec.data.synthetic.text`: review lengths, texts and summaries;
* :mod:`~rayrec.data.synthetic.reviews`: ``ReviewChunk`` and ``iter_review_chunks``;
* :mod:`~rayrec.data.synthetic.sinks`: ``open_output``, deterministic gzip on any fsspec URI;
* :mod:`~rayrec.data.synthetic.writers`: the Amazon and Yelp file layouts and ``write_corpus``;
* :mod:`~rayrec.data.synthetic.cli`: ``main``, run by ``python -m rayrec.data.synthetic``.
"""

from rayrec.data.synthetic.cli import main
from rayrec.data.synthetic.config import SourceFile, SyntheticConfig
from rayrec.data.synthetic.domains import GENERATION_BLOCK
from rayrec.data.synthetic.presets import (
    DOMAIN_PRESETS,
    DomainPreset,
    ItemKind,
    negative_words,
    positive_words,
)
from rayrec.data.synthetic.reviews import ReviewChunk, iter_review_chunks
from rayrec.data.synthetic.sinks import BinarySink, open_output
from rayrec.data.synthetic.vocabulary import ADVERBS, GENERAL_NEGATIVE, GENERAL_POSITIVE
from rayrec.data.synthetic.writers import write_corpus

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
