"""Tests of the synthetic corpus generator (rayrec.data.synthetic).

One default corpus (3 domains x 12k reviews) is written once per module and read back with
plain json/pandas, the way a reader of the real files would see it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pytest

from rayrec.data import synthetic
from rayrec.data.synthetic import (
    ADVERBS,
    DOMAIN_PRESETS,
    GENERAL_NEGATIVE,
    GENERAL_POSITIVE,
    SourceFile,
    SyntheticConfig,
    iter_review_chunks,
    main,
    negative_words,
    positive_words,
    write_corpus,
)
from rayrec.data.synthetic import writers as synthetic_writers
from rayrec.data.synthetic.ids import _domain_key
from rayrec.data.synthetic.reviews import _distinct_items
from rayrec.data.synthetic.vocabulary import _OPINION_TEMPLATES, _STAR_SUMMARIES
from tests.conftest import MUSICAL_INSTRUMENTS, REPO

AMAZON_KEYS = [
    "reviewerID",
    "asin",
    "reviewerName",
    "helpful",
    "reviewText",
    "overall",
    "summary",
    "unixReviewTime",
    "reviewTime",
]
YELP_REVIEW_KEYS = [
    "review_id",
    "user_id",
    "business_id",
    "stars",
    "useful",
    "funny",
    "cool",
    "text",
    "date",
]
YELP_BUSINESS_KEYS = [
    "business_id",
    "name",
    "address",
    "city",
    "state",
    "postal_code",
    "latitude",
    "longitude",
    "stars",
    "review_count",
    "is_open",
    "attributes",
    "categories",
    "hours",
]
TARGET_DISTRIBUTION = {1: 0.06, 2: 0.05, 3: 0.09, 4: 0.20, 5: 0.60}
SMALL = SyntheticConfig.scaled(1_500)  # ~4.5k reviews over 3 domains: fast byte-level tests

LEXICON_DIR = REPO / "rayrec" / "data" / "lexicon"


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------


def _read_lines(path: str) -> list[dict]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="ascii") as f:
        return [json.loads(line) for line in f]


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _canonical(source: SourceFile) -> pd.DataFrame:
    """Canonical (user, item, rating, text) frame of one source, as the readers would build."""
    rows = _read_lines(source.uri)
    if source.format == "amazon2014":
        return pd.DataFrame(
            {
                "user": [r["reviewerID"] for r in rows],
                "item": [r["asin"] for r in rows],
                "rating": [r["overall"] for r in rows],
                "text": [r["reviewText"] for r in rows],
            }
        )
    return pd.DataFrame(
        {
            "user": [r["user_id"] for r in rows],
            "item": [r["business_id"] for r in rows],
            "rating": [r["stars"] for r in rows],
            "text": [r["text"] for r in rows],
        }
    )


def _kcore(df: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    while True:
        keep = (df.groupby("user")["user"].transform("size") >= k) & (
            df.groupby("item")["item"].transform("size") >= k
        )
        if keep.all():
            return df
        df = df[keep]


def _load_lexicon() -> tuple[set[str], set[str]]:
    """The positive and negative words of the vendored Hu-Liu lexicon, read independently of
    ``rayrec.data.lexicon``."""

    def words(name: str) -> set[str]:
        lines = (LEXICON_DIR / name).read_text(encoding="latin-1").splitlines()
        return {w.strip() for w in lines if w.strip() and not w.startswith(";")}

    return words("positive-words.txt"), words("negative-words.txt")


TOKEN = re.compile(r"[a-z]+")


def _opinion_score(text: str, pos: frozenset[str], neg: frozenset[str]) -> float:
    tokens = TOKEN.findall(text.lower())
    p = sum(t in pos for t in tokens)
    n = sum(t in neg for t in tokens)
    return (p - n) / (p + n + 1)


# ------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SourceFile]:
    out = tmp_path_factory.mktemp("corpus")
    sources = write_corpus(str(out), SyntheticConfig())
    return {s.domain: s for s in sources}


@pytest.fixture(scope="module")
def frames(corpus: dict[str, SourceFile]) -> dict[str, pd.DataFrame]:
    return {domain: _canonical(source) for domain, source in corpus.items()}


# ------------------------------------------------------------------------------------------
# layout and formats
# ------------------------------------------------------------------------------------------


def test_sources_layout(corpus: dict[str, SourceFile]) -> None:
    assert list(corpus) == ["Electronics", "Kindle_Store", "Yelp"]
    assert corpus["Electronics"].uri.endswith("/Electronics_5.json.gz")
    assert corpus["Electronics"].format == "amazon2014"
    assert corpus["Electronics"].business_uri is None
    assert corpus["Yelp"].format == "yelp"
    assert corpus["Yelp"].uri.endswith("/Yelp/review.json")
    assert corpus["Yelp"].business_uri.endswith("/Yelp/business.json")
    assert all(s.n_reviews == 12_000 for s in corpus.values())


def test_amazon_2014_layout(corpus: dict[str, SourceFile]) -> None:
    rows = _read_lines(corpus["Electronics"].uri)
    assert len(rows) == 12_000
    missing_name = 0
    date_re = re.compile(r"^\d{2} \d{1,2}, \d{4}$")
    for r in rows:
        if "reviewerName" in r:
            assert list(r) == AMAZON_KEYS
            assert isinstance(r["reviewerName"], str) and r["reviewerName"]
        else:  # as in the real files, a few records have no reviewerName
            missing_name += 1
            assert list(r) == [k for k in AMAZON_KEYS if k != "reviewerName"]
        assert re.fullmatch(r"A[0-9A-Z]{13}", r["reviewerID"])
        assert re.fullmatch(r"B0[0-9A-Z]{8}", r["asin"])
        a, b = r["helpful"]
        assert isinstance(a, int) and isinstance(b, int) and 0 <= a <= b
        assert isinstance(r["reviewText"], str) and r["reviewText"]
        assert isinstance(r["summary"], str) and r["summary"]
        assert isinstance(r["overall"], float) and r["overall"] in (1.0, 2.0, 3.0, 4.0, 5.0)
        assert isinstance(r["unixReviewTime"], int) and r["unixReviewTime"] % 86_400 == 0
        assert date_re.match(r["reviewTime"])
        day = datetime.fromtimestamp(r["unixReviewTime"], UTC)
        assert r["reviewTime"] == f"{day.month:02d} {day.day}, {day.year}"
    assert 0 < missing_name < 0.02 * len(rows)
    assert len({(r["reviewerID"], r["asin"]) for r in rows}) == len(rows)  # no duplicate pairs


def test_amazon_columns_match_real_csv_header() -> None:
    """The shipped real Amazon 2014 CSV carries the same columns as the JSON we write."""
    import zipfile

    with zipfile.ZipFile(MUSICAL_INSTRUMENTS) as z, z.open(z.namelist()[0]) as f:
        header = f.readline().decode().strip().split(",")
    assert header == AMAZON_KEYS


def test_yelp_review_layout(corpus: dict[str, SourceFile]) -> None:
    rows = _read_lines(corpus["Yelp"].uri)
    assert len(rows) == 12_000
    for r in rows:
        assert list(r) == YELP_REVIEW_KEYS
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", r["review_id"])
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", r["business_id"])
        assert isinstance(r["user_id"], str)
        assert isinstance(r["stars"], float) and r["stars"] in (1.0, 2.0, 3.0, 4.0, 5.0)
        assert all(isinstance(r[k], int) and r[k] >= 0 for k in ("useful", "funny", "cool"))
        assert isinstance(r["text"], str) and r["text"]
        datetime.strptime(r["date"], "%Y-%m-%d %H:%M:%S")
    assert len({r["review_id"] for r in rows}) == len(rows)
    assert any("\n\n" in r["text"] for r in rows)  # paragraphs, escaped in JSON


def test_yelp_business_layout_and_filter(corpus: dict[str, SourceFile]) -> None:
    reviews = pd.DataFrame(_read_lines(corpus["Yelp"].uri))
    businesses = _read_lines(corpus["Yelp"].business_uri)
    for b in businesses:
        assert list(b) == YELP_BUSINESS_KEYS
        assert isinstance(b["categories"], str) and b["categories"]
        assert isinstance(b["stars"], float) and (2 * b["stars"]).is_integer()
        assert isinstance(b["review_count"], int) and b["review_count"] > 0
        assert isinstance(b["latitude"], float) and isinstance(b["longitude"], float)
        assert b["is_open"] in (0, 1)
    frame = pd.DataFrame(businesses).set_index("business_id")
    counts = reviews["business_id"].value_counts()
    assert set(frame.index) == set(counts.index)
    assert (frame["review_count"] == counts.reindex(frame.index)).all()
    means = reviews.groupby("business_id")["stars"].mean().reindex(frame.index)
    assert ((frame["stars"] - means).abs() <= 0.25 + 1e-9).all()
    # "restaurants in AZ": most businesses, not all
    az_restaurants = (frame["state"] == "AZ") & frame["categories"].str.contains("Restaurants")
    assert 0.4 < az_restaurants.mean() < 0.9
    assert (frame["state"] != "AZ").sum() > 0 and (~frame["categories"].str.contains("Rest")).any()


# ------------------------------------------------------------------------------------------
# determinism and chunking
# ------------------------------------------------------------------------------------------


def test_same_seed_identical_bytes_different_seed_differs(tmp_path: Path) -> None:
    write_corpus(str(tmp_path / "a"), SMALL)
    write_corpus(str(tmp_path / "b"), SMALL)
    write_corpus(str(tmp_path / "c"), SMALL.model_copy(update={"seed": 1}))
    a, b, c = (_digest(tmp_path / x) for x in "abc")
    assert len(a) == 4 and a == b
    assert set(a) == set(c) and all(a[k] != c[k] for k in a)


def test_chunk_size_does_not_change_output(tmp_path: Path, monkeypatch) -> None:
    """The writer holds one chunk at a time, and chunking does not change a single byte."""
    write_corpus(str(tmp_path / "one"), SMALL, chunk_size=10**9)
    sizes: list[int] = []
    real_iter = synthetic.iter_review_chunks

    def spy(*args, **kwargs):
        for chunk in real_iter(*args, **kwargs):
            sizes.append(len(chunk))
            yield chunk

    monkeypatch.setattr(synthetic_writers, "iter_review_chunks", spy)
    write_corpus(str(tmp_path / "many"), SMALL, chunk_size=333)
    assert _digest(tmp_path / "one") == _digest(tmp_path / "many")
    assert max(sizes) <= 333 and len(sizes) > 10


def test_iter_review_chunks_concatenation_is_chunking_free() -> None:
    whole = list(iter_review_chunks(SMALL, "Kindle_Store", chunk_size=10**9))
    parts = list(iter_review_chunks(SMALL, "Kindle_Store", chunk_size=97))
    assert len(whole) == 1 and all(len(p) <= 97 for p in parts)
    a = whole[0]
    b = synthetic.ReviewChunk.concat(parts)
    assert a.text == b.text and a.summary == b.summary
    for name in ("user", "item", "rating", "timestamp", "votes", "index"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_ids_stay_distinct() -> None:
    """Domain hash inputs differ per preset, and a user never reviews an item twice, even
    when one item holds most of the popularity mass (the exact-sampling fallback)."""
    keys = {_domain_key(name) & 0xFFFFFF for name in DOMAIN_PRESETS}
    assert len(keys) == len(DOMAIN_PRESETS)
    rng = np.random.default_rng(0)
    cdf = np.cumsum(np.r_[0.9, np.full(19, 0.1 / 19)])
    owner = np.repeat(np.arange(50), 10)
    items = _distinct_items(rng, owner, cdf / cdf[-1], 20)
    assert all(len(set(items[owner == g])) == 10 for g in range(50))


# ------------------------------------------------------------------------------------------
# statistics: skew, signal, style, activity
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("domain", ["Electronics", "Kindle_Store", "Yelp"])
def test_rating_skew(frames: dict[str, pd.DataFrame], domain: str) -> None:
    share = frames[domain]["rating"].value_counts(normalize=True)
    for stars, target in TARGET_DISTRIBUTION.items():
        assert abs(share[float(stars)] - target) < 0.015, (stars, share[float(stars)])


@pytest.mark.parametrize("domain", ["Electronics", "Kindle_Store", "Yelp"])
def test_text_carries_rating_signal(frames: dict[str, pd.DataFrame], domain: str) -> None:
    df = frames[domain]
    pos, neg = positive_words(), negative_words()
    score = df["text"].map(lambda t: _opinion_score(t, pos, neg))
    assert score.corr(df["rating"]) > 0.6  # Pearson
    assert score.rank().corr(df["rating"].rank()) > 0.5  # Spearman


def test_latent_model_is_learnable(frames: dict[str, pd.DataFrame]) -> None:
    """User and item biases fitted on 80% beat the global mean clearly on the other 20%."""
    df = frames["Electronics"]
    u = df["user"].astype("category").cat.codes.to_numpy()
    i = df["item"].astype("category").cat.codes.to_numpy()
    r = df["rating"].to_numpy()
    train = np.random.default_rng(0).random(len(df)) < 0.8
    mu = r[train].mean()
    bu, bi = np.zeros(u.max() + 1), np.zeros(i.max() + 1)
    for _ in range(10):
        bu = np.bincount(u[train], r[train] - mu - bi[i[train]], len(bu))
        bu /= np.bincount(u[train], minlength=len(bu)) + 5
        bi = np.bincount(i[train], r[train] - mu - bu[u[train]], len(bi))
        bi /= np.bincount(i[train], minlength=len(bi)) + 5
    test = ~train
    mse_mean = ((r[test] - mu) ** 2).mean()
    mse_bias = ((r[test] - mu - bu[u[test]] - bi[i[test]]) ** 2).mean()
    assert mse_bias < 0.92 * mse_mean


def test_user_style_is_consistent_within_and_across_domains(
    frames: dict[str, pd.DataFrame],
) -> None:
    """Each user leans on a few favourite opinion words, the same ones in every domain."""
    general = set(GENERAL_POSITIVE) | set(GENERAL_NEGATIVE)

    def favourites(df: pd.DataFrame) -> dict[str, tuple[float, set[str]]]:
        words = df.assign(w=df["text"].str.lower().str.findall(r"[a-z]+")).explode("w")
        words = words[words["w"].isin(general)]
        out = {}
        for user, ws in words.groupby("user")["w"]:
            if len(ws) >= 30:
                counts = ws.value_counts()
                out[user] = (counts.iloc[:10].sum() / len(ws), set(counts.index[:3]))
        return out

    elec, kindle = favourites(frames["Electronics"]), favourites(frames["Kindle_Store"])
    pooled = frames["Electronics"]["text"].str.lower().str.findall(r"[a-z]+").explode()
    pooled = pooled[pooled.isin(general)].value_counts()
    pooled_top10 = pooled.iloc[:10].sum() / pooled.sum()
    assert np.mean([share for share, _ in elec.values()]) > pooled_top10 + 0.25
    both = sorted(set(elec) & set(kindle))
    assert len(both) >= 20
    overlap = np.mean([len(elec[x][1] & kindle[x][1]) / 3 for x in both])
    assert overlap > 0.4  # random users would share ~3/56 of their top words


def test_shared_users_across_domains(frames: dict[str, pd.DataFrame]) -> None:
    users = {d: set(df["user"]) for d, df in frames.items()}
    in_all = users["Electronics"] & users["Kindle_Store"] & users["Yelp"]
    assert len(in_all) > 500  # Amazon reviewerIDs reappear as Yelp user_ids
    assert all(re.fullmatch(r"A[0-9A-Z]{13}", x) for x in in_all)
    # the Yelp domain's own users have Yelp-style ids, shared users keep their Amazon id
    yelp_style = {x for x in users["Yelp"] if re.fullmatch(r"[A-Za-z0-9_-]{22}", x)}
    assert len(yelp_style) > 300 and not yelp_style & (users["Electronics"] | in_all)
    assert all(re.fullmatch(r"A[0-9A-Z]{13}", x) for x in users["Yelp"] - yelp_style)
    assert len(users["Electronics"] - users["Kindle_Store"] - users["Yelp"]) > 300
    # cross-domain corpus for a target domain: most of its 5-core users write elsewhere too
    target = _kcore(frames["Electronics"])
    elsewhere = users["Kindle_Store"] | users["Yelp"]
    assert len(set(target["user"]) & elsewhere) > 0.5 * target["user"].nunique()


def test_five_core_survival(frames: dict[str, pd.DataFrame], corpus: dict[str, SourceFile]) -> None:
    for domain, df in frames.items():
        core = _kcore(df)
        assert len(core) > 0.6 * len(df) and len(core) > 5_000, domain
        assert core["user"].nunique() > 500 and core["item"].nunique() > 300
    businesses = pd.DataFrame(_read_lines(corpus["Yelp"].business_uri))
    az = businesses[
        (businesses["state"] == "AZ") & businesses["categories"].str.contains("Restaurants")
    ]
    yelp = frames["Yelp"]
    assert len(_kcore(yelp[yelp["item"].isin(set(az["business_id"]))])) > 2_000


def test_activity_is_heavy_tailed(frames: dict[str, pd.DataFrame]) -> None:
    for df in frames.values():
        users, items = df["user"].value_counts(), df["item"].value_counts()
        assert users.max() > 6 * users.median() and items.max() > 6 * items.median()


# ------------------------------------------------------------------------------------------
# vocabulary
# ------------------------------------------------------------------------------------------


def test_opinion_words_are_in_the_lexicon() -> None:
    lex_pos, lex_neg = _load_lexicon()
    assert len(positive_words()) >= 40 and len(negative_words()) >= 40
    assert positive_words() <= lex_pos, sorted(positive_words() - lex_pos)
    assert negative_words() <= lex_neg, sorted(negative_words() - lex_neg)


def test_no_other_lexicon_words_in_text(frames: dict[str, pd.DataFrame]) -> None:
    """Fillers, nouns, templates and summaries carry no lexicon word: an opinion mask built
    from the lexicon finds exactly the generator's opinion words."""
    lex_pos, lex_neg = _load_lexicon()
    lexicon = lex_pos | lex_neg
    ours = positive_words() | negative_words()
    fixed = [*ADVERBS, *_OPINION_TEMPLATES, *_STAR_SUMMARIES]
    for preset in DOMAIN_PRESETS.values():
        for kind in preset.kinds:
            fixed += [*kind.nouns, *kind.neutral]
    fixed_tokens = set(TOKEN.findall(" ".join(fixed).lower())) - {"noun", "op", "is", "was"}
    assert not (fixed_tokens & lexicon), sorted(fixed_tokens & lexicon)
    for df in frames.values():
        tokens = set(TOKEN.findall(" ".join(df["text"]).lower()))
        assert tokens & lexicon <= ours


# ------------------------------------------------------------------------------------------
# config, CLI, s3
# ------------------------------------------------------------------------------------------


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="unknown domains"):
        SyntheticConfig(domains=("Electronics", "Nope"))
    with pytest.raises(ValueError, match="missing"):
        SyntheticConfig(reviews_per_domain={"Electronics": 10})
    cfg = SyntheticConfig(
        domains=("Musical_Instruments", "Yelp"),
        reviews_per_domain={"Musical_Instruments": 800, "Yelp": 500},
        n_shared_users=100,
        n_users_per_domain=50,
        n_items_per_domain={"Musical_Instruments": 60, "Yelp": 40},
    )
    assert cfg.reviews("Yelp") == 500 and cfg.items("Yelp") == 40


def test_per_domain_sizes(tmp_path: Path) -> None:
    cfg = SyntheticConfig(
        domains=("Musical_Instruments", "Yelp"),
        reviews_per_domain={"Musical_Instruments": 800, "Yelp": 500},
        n_shared_users=100,
        n_users_per_domain=50,
        n_items_per_domain={"Musical_Instruments": 60, "Yelp": 40},
    )
    sources = write_corpus(str(tmp_path), cfg)
    assert [(s.domain, s.n_reviews) for s in sources] == [
        ("Musical_Instruments", 800),
        ("Yelp", 500),
    ]
    assert len(_read_lines(sources[0].uri)) == 800
    assert len({r["asin"] for r in _read_lines(sources[0].uri)}) <= 60


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path), "--reviews", "1000", "--seed", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["reviews"] == 3_000
    assert {Path(s["uri"]).name for s in report["sources"]} == {
        "Electronics_5.json.gz",
        "Kindle_Store_5.json.gz",
        "review.json",
    }
    assert (tmp_path / "Yelp" / "business.json").exists()


def test_s3_output_matches_local(tmp_path: Path, s3_endpoint: str) -> None:
    creds = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **creds)
    s3.create_bucket(Bucket="corpus")
    options = {  # passed explicitly: write_corpus's storage_options reach s3fs
        "key": "test",
        "secret": "test",
        "client_kwargs": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"},
    }
    cfg = SyntheticConfig.scaled(300)
    sources = write_corpus("s3://corpus/synthetic", cfg, storage_options=options)
    assert sources[0].uri == "s3://corpus/synthetic/Electronics_5.json.gz"
    assert sources[2].business_uri == "s3://corpus/synthetic/Yelp/business.json"
    write_corpus(str(tmp_path), cfg)
    for key, digest in _digest(tmp_path).items():
        body = s3.get_object(Bucket="corpus", Key=f"synthetic/{key}")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == digest, key


# ------------------------------------------------------------------------------------------
# realistic review lengths
# ------------------------------------------------------------------------------------------


def _word_pieces(texts: list[str]) -> np.ndarray:
    from rayrec.data.tokenize import load_tokenizer

    backend = load_tokenizer("minilm").backend_tokenizer  # Rust, all cores, no truncation
    backend.no_truncation()
    backend.no_padding()
    encoded = backend.encode_batch(texts, add_special_tokens=False)
    return np.array([len(e.ids) for e in encoded])


def test_realistic_lengths_match_the_presets_and_the_shipped_file(
    frames: dict[str, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    shipped = pd.read_csv(MUSICAL_INSTRUMENTS)
    real = _word_pieces(shipped["reviewText"].fillna(shipped["summary"]).astype(str).tolist())
    mean, sd = DOMAIN_PRESETS["Musical_Instruments"].word_pieces
    assert abs(real.mean() - mean) < 2 and abs(real.std() - sd) < 2  # measured on that file
    cfg = SyntheticConfig.scaled(1500, text_length="realistic", calibration_samples=20_000)
    for domain in cfg.domains:
        pieces = _word_pieces([t for c in iter_review_chunks(cfg, domain) for t in c.text])
        target = DOMAIN_PRESETS[domain].word_pieces[0]
        assert abs(pieces.mean() / target - 1) < 0.1, (domain, pieces.mean())
        assert pieces.mean() > real.mean() and np.median(pieces) > np.median(real)
        assert np.percentile(pieces, 99) > 4 * np.median(pieces)  # a long tail, like real data
        short = frames[domain]["text"].iloc[:1500].tolist()  # the default corpus stays short
        assert _word_pieces(short).mean() < 40
