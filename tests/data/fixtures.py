"""Small raw files in the real field layouts of Amazon 2018 and Yelp (for the reader tests)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path


def amazon2018_lines(n_users: int = 6, n_items: int = 6) -> list[str]:
    """Every user reviews every item; ``reviewText`` is missing on some records, as in the
    real 2018 files (those keep their summary)."""
    lines = []
    for u in range(n_users):
        for i in range(n_items):
            record = {
                "overall": float(1 + (u + i) % 5),
                "verified": True,
                "reviewTime": "01 5, 2018",
                "reviewerID": f"A{u:03d}USER",
                "asin": f"B{i:09d}",
                "style": {"Format:": " Kindle Edition"},
                "reviewerName": f"user {u}",
                "reviewText": f"A great book, item {i}, said user {u}.",
                "summary": "Five Stars",
                "unixReviewTime": 1515110400 + 86400 * (u * n_items + i),
            }
            if (u + i) % 7 == 0:
                del record["reviewText"]
            if i == 0:
                record["vote"] = "2"
                record["image"] = ["https://images.example/x.jpg"]
            lines.append(json.dumps(record))
    return lines


def write_amazon2018(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def write_yelp(directory: Path, n_users: int = 6, n_businesses: int = 8) -> Path:
    """``review.json`` + ``business.json``; businesses 0-5 are restaurants in AZ, 6 is a
    restaurant in NV, 7 a hair salon in AZ."""
    directory.mkdir(parents=True, exist_ok=True)
    businesses = []
    for b in range(n_businesses):
        state = "NV" if b == 6 else "AZ"
        categories = "Hair Salons, Beauty & Spas" if b == 7 else "Restaurants, Mexican"
        businesses.append(
            {"business_id": f"biz{b:019d}", "name": f"Place {b}", "address": "1 Main St",
             "city": "Phoenix", "state": state, "postal_code": "85001", "latitude": 33.4,
             "longitude": -112.0, "stars": 4.0, "review_count": n_users, "is_open": 1,
             "attributes": {"RestaurantsTakeOut": "True"}, "categories": categories,
             "hours": {"Monday": "11:0-21:0"}}
        )  # fmt: skip
    reviews = []
    for u in range(n_users):
        for b in range(n_businesses):
            reviews.append(
                {"review_id": f"r{u:02d}{b:02d}{'x' * 16}", "user_id": f"user{u:018d}",
                 "business_id": f"biz{b:019d}", "stars": float(1 + (u * b) % 5), "useful": 0,
                 "funny": 0, "cool": 0, "text": f"Terrible tacos.\n\nGreat staff at {b}.",
                 "date": f"2019-0{1 + b % 9}-1{u} 12:30:00"}
            )  # fmt: skip
    (directory / "review.json").write_text("".join(json.dumps(r) + "\n" for r in reviews))
    (directory / "business.json").write_text("".join(json.dumps(b) + "\n" for b in businesses))
    return directory / "review.json"
