"""Attention figures of a run's model on sample test pairs, tokens shown as text.

* SIFN (``word_attention [B, 2, M, L]``, the sentiment learner's α of eq. 2-3): the first
  review slots of the first test pair, user side and item side in turn, up to
  ``SIFN_REVIEWS`` reviews, as heat strips over their word pieces (the SIFN paper's Figure 3).
* U-BERT fine-tuning (``attention_user_to_item [B, M, L, M, L]``, the co-matching attention
  of eq. 12): for the first test pair, its user's first review against the item review that
  review attends most (its largest share of attention mass), the first
  ``MAX_MATRIX_TOKENS`` word pieces of each (the U-BERT paper's Figure 5).

Word pieces are shown as the tokenizer of the model's backbone spells them
(:func:`rayrec.models.backbone_paths.tokenizer_source`; ``tiny`` and ``minilm`` share the uncased
BERT vocabulary), ``##`` continuation marks included: the weights are per word piece.
A model whose outputs hold neither map gets neither figure.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from matplotlib.figure import Figure

from rayrec.models.backbone_paths import tokenizer_source
from rayrec.models.base import Batch
from rayrec.report.model import ReportModel
from rayrec.report.plots import ReviewWeights, comatching_figure, word_attention_figure

SIFN_REVIEWS = 3
MAX_MATRIX_TOKENS = 40
SIDES = ("user", "item")
SIFN_FIGURE, UBERT_FIGURE = "attention_sifn.png", "comatching_ubert.png"

Tokens = Callable[[list[int]], list[str]]


def tokens_of(backbone: str) -> Tokens:
    """A function from word-piece ids to their text for ``backbone``'s tokenizer."""
    from transformers import AutoTokenizer  # slow to import: only when a figure needs it

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source(backbone))
    return lambda ids: tokenizer.convert_ids_to_tokens(ids)


def sifn_reviews(
    model: ReportModel, word_attention: np.ndarray, batch: Batch, tokens: Tokens
) -> list[ReviewWeights]:
    """Up to ``SIFN_REVIEWS`` reviews of test pair 0 with their word attention."""
    reviews: list[ReviewWeights] = []
    slots = word_attention.shape[2]
    user, item = int(batch["user_idx"][0]), int(batch["item_idx"][0])
    for slot in range(slots):
        for side_index, side in enumerate(SIDES):
            if len(reviews) == SIFN_REVIEWS or not bool(batch[f"{side}_review_mask"][0, slot]):
                continue
            mask = batch[f"{side}_attention_mask"][0, slot].bool().numpy()
            ids = batch[f"{side}_input_ids"][0, slot].numpy()[mask].tolist()
            review_id = int(batch[f"{side}_review_ids"][0, slot])
            rating = float(model.reviews.rating[review_id])
            title = (
                f"{side} document of test pair (user {user}, item {item}), slot {slot}: "
                f"review {review_id}, rated {rating:g}"
            )
            weights = word_attention[0, side_index, slot][mask]
            reviews.append(ReviewWeights(title, tokens(ids), weights))
    return reviews


def ubert_matrix(
    attention: np.ndarray, batch: Batch, tokens: Tokens
) -> tuple[list[str], list[str], np.ndarray, str]:
    """User review slot 0 of test pair 0 against the item review it attends most: the two
    reviews' word pieces and the attention block between them (both cut to
    ``MAX_MATRIX_TOKENS``), and a title."""
    user_mask = batch["user_attention_mask"][0, 0].bool().numpy()
    item_present = batch["item_review_mask"][0].bool().numpy()
    mass = attention[0, 0][user_mask].sum(axis=(0, 2))  # [M] item slots
    mass[~item_present] = -1.0
    slot = int(mass.argmax())
    item_mask = batch["item_attention_mask"][0, slot].bool().numpy()
    block = attention[0, 0][user_mask][:, slot][:, item_mask]
    user_ids = batch["user_input_ids"][0, 0].numpy()[user_mask][:MAX_MATRIX_TOKENS].tolist()
    item_ids = batch["item_input_ids"][0, slot].numpy()[item_mask][:MAX_MATRIX_TOKENS].tolist()
    share = float(block.sum() / max(float(user_mask.sum()), 1.0))
    title = (
        f"co-matching of test pair (user {int(batch['user_idx'][0])}, item "
        f"{int(batch['item_idx'][0])})\nuser review {int(batch['user_review_ids'][0, 0])} x "
        f"item review {int(batch['item_review_ids'][0, slot])} (item slot {slot}: "
        f"{share:.0%} of the user tokens' attention)"
    )
    block = block[:MAX_MATRIX_TOKENS, :MAX_MATRIX_TOKENS]
    return tokens(user_ids), tokens(item_ids), block, title


def attention_figures(model: ReportModel) -> dict[str, Figure]:
    """The attention figures of ``model`` on its first test pair, by file name (none for a
    model without attention maps, or without a test pair with reviews on both sides)."""
    if not model.has_attention or model.test.num_rows == 0:
        return {}
    batch = model.batch(model.test.slice(0, 1), attention=True)
    out = model.forward(batch)
    figures: dict[str, Figure] = {}
    if "word_attention" not in out and "attention_user_to_item" not in out:
        return figures
    tokens = tokens_of(model.module.config.backbone)
    if "word_attention" in out:
        reviews = sifn_reviews(model, out["word_attention"].float().numpy(), batch, tokens)
        if reviews:
            figures[SIFN_FIGURE] = word_attention_figure(reviews)
    both_sides = bool(batch["user_review_mask"][0, 0]) and bool(batch["item_review_mask"][0].any())
    if "attention_user_to_item" in out and both_sides:
        attention = out["attention_user_to_item"].float().numpy()
        figures[UBERT_FIGURE] = comatching_figure(*ubert_matrix(attention, batch, tokens))
    return figures
