"""Raw input from and prepared output to a real S3 server (moto on 127.0.0.1), and the
synthetic cross-domain corpus that U-BERT pre-trains on."""

from __future__ import annotations

import boto3
import numpy as np

from rayrec.data.prepared import SPLITS, PreparedDataset
from tests.conftest import MUSICAL_INSTRUMENTS
from tests.data.conftest import prepare_quietly


def test_s3_round_trip(ray_session, s3_endpoint: str, musical_instruments) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="reviews")
    s3.upload_file(str(MUSICAL_INSTRUMENTS), "reviews", "raw/Musical_Instruments_5.csv.zip")

    prepared = prepare_quietly(
        sources=["amazon2014:s3://reviews/raw/Musical_Instruments_5.csv.zip"],
        out="s3://reviews/prepared/mi",
    )
    listed = s3.list_objects_v2(Bucket="reviews", Prefix="prepared/mi/")["Contents"]
    keys = {item["Key"] for item in listed}
    assert "prepared/mi/manifest.json" in keys
    assert any(k.startswith("prepared/mi/reviews/") and k.endswith(".parquet") for k in keys)
    assert not any("_staging" in k for k in keys)  # staging is removed after success

    manifest = prepared.manifest
    assert manifest["counts"]["reviews"] == 10_261
    assert manifest["sources"][0]["sha256"] == musical_instruments.manifest["sources"][0]["sha256"]
    for split in SPLITS:  # the same split as the local run with the same seed
        assert prepared.pairs(split).equals(musical_instruments.pairs(split))
    assert np.array_equal(prepared.token_store().ids, musical_instruments.token_store().ids)


def test_cross_domain_corpus(synthetic_corpus: PreparedDataset) -> None:
    manifest = synthetic_corpus.manifest
    assert manifest["domains"] == ["Electronics", "Kindle_Store", "Yelp"]
    counts = manifest["counts"]
    assert counts["pretrain"] > 1000
    assert counts["records"] == counts["reviews"] + counts["pretrain"] + sum(
        manifest["dropped"].values()
    )
    assert manifest["dropped"]["kcore"] > 0 and manifest["dropped"]["not_target_user"] > 0

    reviews = synthetic_corpus.table(
        "reviews", columns=["domain_idx", "user_idx", "item_idx", "split"]
    ).to_pandas()
    other = reviews[reviews["domain_idx"] > 0]
    assert set(other["split"]) == {"pretrain"} and (other["item_idx"] == -1).all()
    assert set(other["domain_idx"]) == {1, 2}
    target = reviews[reviews["domain_idx"] == 0]
    assert set(other["user_idx"]) <= set(target["user_idx"])  # written by target users
    assert set(target["split"]) == set(SPLITS)


def test_synthetic_ratings_are_skewed_like_amazon(synthetic_corpus: PreparedDataset) -> None:
    ratings = synthetic_corpus.table("reviews", columns=["rating"]).column("rating").to_numpy()
    assert 0.5 < (ratings == 5).mean() < 0.7
