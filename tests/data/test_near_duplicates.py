"""Near-duplicates: the same user's same text (up to case, punctuation and spacing) on two
items, and other domains' copies of a validation or test review's text (which would put a
held-out text into U-BERT's pre-training corpus). Counted by reason in manifest.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rayrec.data.prepare import copies_of, latest
from rayrec.data.prepared import PreparedDataset
from rayrec.data.sources import normalise_text, text_key
from tests.data.conftest import prepare_quietly
from tests.data.fixtures import amazon2018_lines, write_amazon2018


def test_normalised_text() -> None:
    assert normalise_text("  Great\tstrings!!  Don't   buy...") == "great strings dont buy"
    assert text_key("Great strings!") == text_key("great   STRINGS") != text_key("great string")


def _frame(rows: list[tuple]) -> pd.DataFrame:
    """Columns as the index stage holds them: integer codes (here user "u1" -> 1)."""
    frame = pd.DataFrame(rows, columns=["domain", "user", "text_key", "timestamp", "review_key"])
    return frame.assign(domain=frame["domain"].map(ord), user=frame["user"].str[1:].astype(int))


def test_latest_per_text_keeps_the_latest_per_domain_and_user() -> None:
    frame = _frame(
        [
            ("A", "u1", 7, 10, 0),
            ("A", "u1", 7, 30, 1),  # u1's copy, later: kept
            ("A", "u2", 7, 20, 2),  # another user's same text: kept
            ("B", "u1", 7, 5, 3),  # another domain: kept here (copies_of's business)
            ("A", "u1", 8, 1, 4),
        ]
    )
    keep = latest(
        (frame["domain"].to_numpy(), frame["user"].to_numpy(), frame["text_key"].to_numpy()),
        frame["timestamp"].to_numpy(),
        frame["review_key"].to_numpy(),
    )
    assert frame["review_key"][keep].tolist() == [1, 2, 3, 4]


def test_copies_of_matches_user_and_text() -> None:
    held_out = _frame([("A", "u1", 7, 0, 0), ("A", "u2", 8, 0, 1)])
    other = _frame([("B", "u1", 7, 0, 2), ("B", "u2", 7, 0, 3), ("C", "u2", 8, 0, 4)])

    def copies(originals: pd.DataFrame) -> list[bool]:
        return copies_of(
            other["user"].to_numpy(), other["text_key"].to_numpy(),
            originals["user"].to_numpy(), originals["text_key"].to_numpy(),
        ).tolist()  # fmt: skip

    assert copies(held_out) == [True, False, True]
    assert copies(held_out.iloc[:0]) == [False] * 3


@pytest.fixture(scope="module")
def copied(ray_session, tmp_path_factory) -> PreparedDataset:
    """Kindle_Store (target): 6 users x 6 items, plus user 1 re-posting its item-0 text on a
    seventh item, later, in other case and punctuation. Books: every Kindle review's record
    again on a Books item (same user, same text)."""
    root: Path = tmp_path_factory.mktemp("copies")
    kindle = amazon2018_lines()
    repost = json.loads(kindle[6])  # user 1, item 0
    assert repost["reviewText"] == "A great book, item 0, said user 1."
    repost |= {"asin": "B999999999", "reviewText": "a GREAT book item 0 said   user 1!!"}
    repost["unixReviewTime"] += 10**7
    kindle.append(json.dumps(repost))
    books = [json.dumps(json.loads(line) | {"asin": "X" + json.loads(line)["asin"][1:]})
             for line in amazon2018_lines()]  # fmt: skip
    return prepare_quietly(
        sources=[
            f"amazon2018:{write_amazon2018(root / 'Kindle_Store_5.json.gz', kindle)}",
            f"amazon2018:{write_amazon2018(root / 'Books_5.json.gz', books)}",
        ],
        out=str(root / "prepared"),
        kcore=1,
        negatives=2,
        drop_near_duplicates=True,
    )


def test_near_duplicates_and_held_out_copies_are_counted(copied: PreparedDataset) -> None:
    manifest = copied.manifest
    counts, dropped = manifest["counts"], manifest["dropped"]
    assert counts["records"] == 37 + 36
    assert dropped["near_duplicate"] == 1 and dropped["duplicate"] == 0
    assert counts["reviews"] == 36
    # every held-out Kindle review's text has its Books copy by the same user: all dropped
    held_out = counts["val"] + counts["test"]
    assert held_out > 0 and dropped["held_out_copy"] == held_out
    assert counts["pretrain"] == 36 - held_out
    assert counts["records"] == counts["reviews"] + counts["pretrain"] + sum(dropped.values())


def test_no_held_out_text_in_the_pretraining_corpus(copied: PreparedDataset) -> None:
    reviews = copied.table("reviews", columns=["user_idx", "split", "input_ids"]).to_pandas()
    reviews["text"] = reviews["input_ids"].map(lambda ids: tuple(np.asarray(ids).tolist()))
    held_out = reviews[reviews["split"].isin(["val", "test"])]
    pretrain = reviews[reviews["split"] == "pretrain"]
    assert len(pretrain) > 0
    texts = set(zip(held_out["user_idx"], held_out["text"], strict=True))
    assert not any((u, t) in texts for u, t in zip(pretrain["user_idx"], pretrain["text"],
                                                    strict=True))  # fmt: skip
