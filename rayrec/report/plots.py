"""The figures of run and sweep reports, drawn on matplotlib's Agg canvas.

Every function returns a :class:`~matplotlib.figure.Figure` attached to a ``FigureCanvasAgg``:
no pyplot, no GUI backend and no global figure registry, so drawing is safe in a Ray driver
or worker and never leaks figures. :func:`png_bytes` renders one. Legends carry the run's own
metric names as ``results.json`` spells them (``train_loss``, ``val_mse``, ``val_ndcg@10``),
so a plot reads the same as the history table beside it.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 120
TRAIN_LOSS = "train_loss"
TOKENS_PER_LINE = 12  # word-attention strips: tokens per line of a review
RATING_BINS = np.arange(0.875, 5.25, 0.25)  # 1..5 stars in quarter steps, centred on integers


def new_figure(width: float, height: float) -> Figure:
    """An empty figure on an Agg canvas (constrained layout: legends and bars fit)."""
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def png_bytes(figure: Figure) -> bytes:
    """The figure rendered as PNG."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # a word piece in a script the font lacks: a box is drawn
        warnings.filterwarnings(
            "ignore", message="Glyph .* missing from font", category=UserWarning
        )
        figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def legend_texts(figure: Figure) -> list[str]:
    """The texts of every legend of the figure (its axes' legends, then its own)."""
    legends = [axes.get_legend() for axes in figure.axes if axes.get_legend() is not None]
    return [text.get_text() for legend in legends + figure.legends for text in legend.get_texts()]


def _epochs_and_values(history: Sequence[Mapping[str, Any]], key: str) -> tuple[list, list]:
    """1-based epochs and values of ``key`` in the history entries that hold a number."""
    points = [
        (int(m["epoch"]) + 1, float(m[key]))
        for m in history
        if isinstance(m.get(key), int | float) and not math.isnan(m[key])
    ]
    return [e for e, _ in points], [v for _, v in points]


def loss_figure(history: Sequence[Mapping[str, Any]], val_key: str) -> Figure:
    """Training loss (left axis) and the validation metric ``val_key`` (right axis: a ranking
    metric is not on the loss's scale) per epoch, one legend with both names."""
    figure = new_figure(6.4, 3.8)
    loss_axes = figure.add_subplot()
    epochs, losses = _epochs_and_values(history, TRAIN_LOSS)
    lines = loss_axes.plot(epochs, losses, "o-", color="C0", label=TRAIN_LOSS)
    loss_axes.set_xlabel("epoch")
    loss_axes.set_ylabel(TRAIN_LOSS)
    val_epochs, values = _epochs_and_values(history, val_key)
    if values:
        metric_axes = loss_axes.twinx()
        lines += metric_axes.plot(val_epochs, values, "s--", color="C1", label=val_key)
        metric_axes.set_ylabel(val_key)
    loss_axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_axes.legend(lines, [line.get_label() for line in lines], loc="best")
    loss_axes.set_title(f"{TRAIN_LOSS} and {val_key} per epoch")
    return figure


def ratings_figure(predicted: np.ndarray, true: np.ndarray, split: str = "test") -> Figure:
    """Histograms of predicted (already clipped to [1, 5]) and true ratings of ``split``,
    with the MSE of exactly these predictions in the title."""
    figure = new_figure(6.4, 3.8)
    axes = figure.add_subplot()
    axes.hist(true, bins=RATING_BINS, alpha=0.6, color="C2", label=f"true rating ({split})")
    axes.hist(predicted, bins=RATING_BINS, alpha=0.6, color="C0", label="predicted, clipped")
    mse = float(np.mean((predicted - true) ** 2)) if len(true) else float("nan")
    axes.set_xlabel("rating")
    axes.set_ylabel("pairs")
    axes.set_xticks([1, 2, 3, 4, 5])
    axes.set_title(f"{split}: {len(true)} pairs, MSE of these predictions {mse:.4f}")
    axes.legend(loc="upper left")
    return figure


@dataclass(frozen=True)
class ReviewWeights:
    """One review's word pieces and their attention weights (one weight per piece)."""

    title: str
    tokens: list[str]
    weights: np.ndarray  # [len(tokens)]


def word_attention_figure(reviews: Sequence[ReviewWeights]) -> Figure:
    """SIFN's word attention as heat strips (the SIFN paper's Figure 3): each review's word
    pieces in reading order, ``TOKENS_PER_LINE`` to a line, each cell coloured by its weight on
    one shared scale, with one colour bar."""
    lines = [max(1, math.ceil(len(r.tokens) / TOKENS_PER_LINE)) for r in reviews]
    figure = new_figure(11.0, 0.9 + sum(0.32 * n + 0.45 for n in lines))
    grid = figure.add_gridspec(len(reviews), 1, height_ratios=lines)
    vmax = max((float(r.weights.max()) for r in reviews if len(r.weights)), default=1.0)
    image = None
    for row, (review, n_lines) in enumerate(zip(reviews, lines, strict=True)):
        axes = figure.add_subplot(grid[row])
        cells = np.full(n_lines * TOKENS_PER_LINE, np.nan)
        cells[: len(review.weights)] = review.weights
        image = axes.imshow(
            cells.reshape(n_lines, TOKENS_PER_LINE),
            cmap="Reds",
            vmin=0.0,
            vmax=vmax,
            aspect="auto",
        )
        for k, token in enumerate(review.tokens):
            line, column = divmod(k, TOKENS_PER_LINE)
            axes.text(column, line, token, ha="center", va="center", fontsize=7)
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_title(review.title, fontsize=9, loc="left")
    if image is not None:
        figure.colorbar(image, ax=figure.axes, label="word attention weight", shrink=0.9)
    return figure


def comatching_figure(
    user_tokens: Sequence[str], item_tokens: Sequence[str], weights: np.ndarray, title: str
) -> Figure:
    """U-BERT's review co-matching as a heat map (the U-BERT paper's Figure 5): rows are the
    word pieces of a user review, columns those of an item review, cells the attention of
    each user token on each item token."""
    figure = new_figure(
        max(6.0, 1.8 + 0.16 * len(item_tokens)), max(4.5, 1.8 + 0.16 * len(user_tokens))
    )
    axes = figure.add_subplot()
    image = axes.imshow(weights, cmap="Blues", aspect="auto", vmin=0.0)
    axes.set_xticks(range(len(item_tokens)), item_tokens, rotation=90, fontsize=7)
    axes.set_yticks(range(len(user_tokens)), user_tokens, fontsize=7)
    axes.set_xlabel("item review word pieces")
    axes.set_ylabel("user review word pieces")
    axes.set_title(title, fontsize=9)
    figure.colorbar(image, ax=axes, label="co-matching attention weight")
    return figure


@dataclass(frozen=True)
class Curve:
    """One trial's validation metric per epoch (1-based epochs)."""

    label: str
    epochs: list[int]
    values: list[float]
    stopped: bool  # it ended before the sweep's last epoch


def curves_figure(curves: Sequence[Curve], metric: str) -> Figure:
    """Every trial's validation curve on one axis; a trial that ended before the sweep's
    last epoch (stopped by ASHA, or still running) ends with an ``x``. One legend entry per
    trial, its label as given."""
    figure = new_figure(8.0, 4.2 + 0.2 * math.ceil(len(curves) / 2))
    axes = figure.add_subplot()
    for k, curve in enumerate(curves):
        colour = f"C{k % 10}"
        axes.plot(curve.epochs, curve.values, "o-", color=colour, label=curve.label, ms=4)
        if curve.stopped and curve.epochs:
            axes.plot(curve.epochs[-1], curve.values[-1], "x", color=colour, ms=10, mew=2)
    axes.set_xlabel("epoch")
    axes.set_ylabel(metric)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title(f"{metric} per epoch, every trial (x: ended before the last epoch)")
    if curves:
        figure.legend(loc="outside lower center", ncols=2, fontsize=8)
    return figure
