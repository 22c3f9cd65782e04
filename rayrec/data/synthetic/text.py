"""Review texts and summaries: sentence counts (short or realistic lengths) and vectorised
draws of phrasebook ids from the rating and the user's style, one join per review."""

from __future__ import annotations

import numpy as np

from rayrec.data.synthetic.domains import _PREFERRED, _DomainState
from rayrec.data.synthetic.vocabulary import _OPINION_TEMPLATES, ADVERBS

_MAX_SENTENCES = 10
_MAX_SENTENCES_REALISTIC = 128  # about 1,000 word pieces: beyond MI's 99.9th percentile
#: P(opinion word is positive | rating 1..5).
_P_POSITIVE = np.array([0.08, 0.18, 0.5, 0.82, 0.95])

#: Spread of the users' verbosity (``_Users.verbosity``: log-normal, median 3.5, sigma 0.35).
_VERBOSITY_MEDIAN, _VERBOSITY_SIGMA = 3.5, 0.35


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
