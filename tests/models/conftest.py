"""Fixtures for model tests: a tiny random BERT and tiny batches of REAL reviews.

The rating batch holds 16 user-item pairs of Amazon 2014 Musical Instruments; each pair's user
and item documents are built from OTHER reviews of the same user / item (never the pair's own
review), with 1 to 4 of the M = 4 slots filled so that empty slots are exercised, L = 32 word
pieces per review, tokenized with the all-MiniLM tokenizer (the tiny BERT shares its uncased
vocabulary). Opinion masks mark the word pieces of whole words in the Hu-Liu lexicon.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from collections.abc import Callable, Iterator  # noqa: E402

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from transformers import AutoTokenizer, PreTrainedTokenizerFast  # noqa: E402

from rayrec.data.lexicon import opinion_words  # noqa: E402
from rayrec.models.backbone_paths import tokenizer_source  # noqa: E402
from rayrec.models.base import Batch, DataInfo, RecModel  # noqa: E402
from rayrec.models.ubert import mask_opinion_tokens  # noqa: E402
from tests.conftest import MUSICAL_INSTRUMENTS as REVIEWS  # noqa: E402

N_PAIRS, M, L = 16, 4, 32


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    return AutoTokenizer.from_pretrained(tokenizer_source("tiny"))


@pytest.fixture(scope="session")
def reviews() -> pd.DataFrame:
    frame = pd.read_csv(REVIEWS, usecols=["reviewerID", "asin", "reviewText", "overall"])
    frame["reviewText"] = frame["reviewText"].fillna("")
    frame["user"] = frame["reviewerID"].astype("category").cat.codes
    frame["item"] = frame["asin"].astype("category").cat.codes
    return frame


@pytest.fixture(scope="session")
def lexicon() -> frozenset[str]:
    """The Hu-Liu lexicon vendored in ``rayrec/data/lexicon/`` (its words are lower case)."""
    return opinion_words()


@pytest.fixture(scope="session")
def data_info(reviews: pd.DataFrame, tokenizer: PreTrainedTokenizerFast) -> DataInfo:
    return DataInfo(
        n_users=int(reviews["user"].max()) + 1,
        n_items=int(reviews["item"].max()) + 1,
        n_domains=3,  # 0 = the target domain, 1-2 = "other" domains of the pre-training rows
        vocab_size=tokenizer.vocab_size,
        pad_token_id=tokenizer.pad_token_id,
        global_mean=float(reviews["overall"].mean()),
        max_len=L,
        reviews_per_doc=M,
        mask_token_id=tokenizer.mask_token_id,
    )


def _tokenize(tokenizer: PreTrainedTokenizerFast, texts: list[str]) -> tuple[torch.Tensor, ...]:
    enc = tokenizer(texts, max_length=L, truncation=True, padding="max_length", return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"].bool()


def _sentiment(rating: float) -> int:
    return 2 if rating > 3 else 0 if rating < 3 else 1


@pytest.fixture(scope="session")
def rating_batch(reviews: pd.DataFrame, tokenizer: PreTrainedTokenizerFast) -> Batch:
    """16 real pairs; documents from the other reviews of the pair's user and item."""
    pairs = reviews.sample(n=N_PAIRS, random_state=0)
    batch: dict[str, list] = {"user_idx": [], "item_idx": [], "rating": []}
    docs: dict[str, list] = {"user": [], "item": []}
    for i, (row_id, pair) in enumerate(pairs.iterrows()):
        batch["user_idx"].append(pair["user"])
        batch["item_idx"].append(pair["item"])
        batch["rating"].append(pair["overall"])
        n_slots = 1 + i % M
        for side in ("user", "item"):
            others = reviews[(reviews[side] == pair[side]) & (reviews.index != row_id)]
            docs[side].append(others.sample(n=n_slots, random_state=i))

    out: Batch = {
        "user_idx": torch.tensor(batch["user_idx"]),
        "item_idx": torch.tensor(batch["item_idx"]),
        "rating": torch.tensor(batch["rating"], dtype=torch.float32),
    }
    for side in ("user", "item"):
        ids = torch.zeros(N_PAIRS, M, L, dtype=torch.long)
        attention = torch.zeros(N_PAIRS, M, L, dtype=torch.bool)
        review_mask = torch.zeros(N_PAIRS, M, dtype=torch.bool)
        sentiment = torch.full((N_PAIRS, M), -100, dtype=torch.long)
        review_ids = torch.full((N_PAIRS, M), -1, dtype=torch.long)  # -1: empty slot
        for b, doc in enumerate(docs[side]):
            n = len(doc)
            review_ids[b, :n] = torch.tensor(doc.index.tolist())
            ids[b, :n], attention[b, :n] = _tokenize(tokenizer, doc["reviewText"].tolist())
            review_mask[b, :n] = True
            sentiment[b, :n] = torch.tensor([_sentiment(r) for r in doc["overall"]])
        out[f"{side}_input_ids"] = ids
        out[f"{side}_attention_mask"] = attention
        out[f"{side}_review_mask"] = review_mask
        out[f"{side}_review_sentiment"] = sentiment
        out[f"{side}_review_ids"] = review_ids
    out["user_review_item_idx"] = _other_idx(docs["user"], "item")
    out["item_review_user_idx"] = _other_idx(docs["item"], "user")
    return out


def _other_idx(docs: list[pd.DataFrame], column: str) -> torch.Tensor:
    idx = torch.zeros(len(docs), M, dtype=torch.long)
    for b, doc in enumerate(docs):
        idx[b, : len(doc)] = torch.tensor(doc[column].tolist())
    return idx


def _opinion_mask(
    tokenizer: PreTrainedTokenizerFast, texts: list[str], lexicon: frozenset[str]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tokenize ``texts``; mark the word pieces of whole words found in ``lexicon``."""
    enc = tokenizer(texts, max_length=L, truncation=True, padding="max_length", return_tensors="pt")
    opinion = torch.zeros_like(enc["input_ids"], dtype=torch.bool)
    for b, text in enumerate(texts):
        for t, word in enumerate(enc.word_ids(b)):
            if word is not None:
                start, end = enc.word_to_chars(b, word)
                opinion[b, t] = text[start:end].lower() in lexicon
    return enc["input_ids"], enc["attention_mask"].bool(), opinion


@pytest.fixture(scope="session")
def pretrain_batch(
    reviews: pd.DataFrame, tokenizer: PreTrainedTokenizerFast, lexicon: frozenset[str]
) -> Batch:
    """16 real reviews with opinion masks and masked opinion tokens, in domains 1-2."""
    rows = reviews.sample(n=N_PAIRS, random_state=1)
    input_ids, attention, opinion = _opinion_mask(tokenizer, rows["reviewText"].tolist(), lexicon)
    masked, labels = mask_opinion_tokens(
        input_ids,
        opinion,
        attention,
        mask_token_id=tokenizer.mask_token_id,
        vocab_size=tokenizer.vocab_size,
        special_ids=tokenizer.all_special_ids,
        generator=torch.Generator().manual_seed(0),
    )
    return {
        "user_idx": torch.tensor(rows["user"].tolist()),
        "domain_idx": torch.arange(N_PAIRS) % 2 + 1,
        "rating": torch.tensor(rows["overall"].tolist(), dtype=torch.float32),
        "input_ids": masked,
        "attention_mask": attention,
        "opinion_mask": opinion,
        "mlm_labels": labels,
    }


def _pad_rating_batch(batch: Batch, extra_slots: int, extra_tokens: int) -> Batch:
    """Append empty review slots (M) and padding tokens (L) to a rating batch."""
    out = dict(batch)
    for key, value in batch.items():
        if value.dim() == 3:  # [B, M, L]
            out[key] = F.pad(value, (0, extra_tokens, 0, extra_slots))
        elif value.dim() == 2:  # [B, M]
            fill = -100 if key.endswith("sentiment") else 0
            out[key] = F.pad(value, (0, extra_slots), value=fill)
    return out


@pytest.fixture
def pad_rating_batch() -> Callable[[Batch, int, int], Batch]:
    return _pad_rating_batch


@pytest.fixture
def assert_all_grads() -> Callable[[RecModel], None]:
    def check(model: RecModel) -> None:
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        assert names, "model has no trainable parameters"
        no_grad = [
            n
            for n, p in model.named_parameters()
            if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)
        ]
        assert not no_grad, f"parameters without gradient: {no_grad}"

    return check


def _fit(model: RecModel, batch: Batch, *, steps: int, lr: float) -> tuple[dict, dict]:
    """Adam on one batch; returns the eval-mode losses (``*loss*`` outputs) before and after."""
    torch.manual_seed(0)

    def eval_losses() -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            out = model(batch)
        return {k: float(v) for k, v in out.items() if k.endswith("loss")}

    before = eval_losses()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        model(batch)["loss"].backward()
        optimizer.step()
    return before, eval_losses()


@pytest.fixture
def fit() -> Callable[..., tuple[dict, dict]]:
    return _fit


@pytest.fixture
def single_thread() -> Iterator[None]:
    """One intra-op thread: on a loaded 2-core machine these tiny models run several times
    faster than with two threads fighting other processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
