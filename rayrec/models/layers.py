"""Masked building blocks shared by the review models.

Every function here takes a boolean mask (True = real, False = padding) next to its input and
never lets padding into a softmax, a max-pool or a mean. A row whose positions are all padding
(an empty review slot, a user without reviews) gives zeros, never NaN, in the forward and the
backward pass.

Shapes: ``x [..., N, d]`` with ``mask [..., N]``; reductions run over ``N`` (dim -2).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def masked_softmax(scores: Tensor, mask: Tensor, dim: int = -1) -> Tensor:
    """Softmax over the True positions of ``mask``; padding and all-padding rows get weight 0."""
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=dim) * mask


def masked_max(x: Tensor, mask: Tensor) -> Tensor:
    """Max over rows: ``[..., N, d], [..., N] -> [..., d]``; zeros where no row is real."""
    filled = x.masked_fill(~mask[..., None], torch.finfo(x.dtype).min)
    return filled.amax(dim=-2) * mask.any(dim=-1, keepdim=True)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over rows: ``[..., N, d], [..., N] -> [..., d]``; zeros where no row is real."""
    weights = mask.to(x.dtype)[..., None]
    return (x * weights).sum(dim=-2) / weights.sum(dim=-2).clamp(min=1.0)


class Attn(nn.Module):
    """Scaled dot-product attention ``softmax(Q K^T / sqrt(d)) V`` with a key mask (U-BERT eq. 1).

    ``q [..., Lq, d], k [..., Lk, d], v [..., Lk, dv], key_mask [..., Lk] -> [..., Lq, dv]``.
    A query whose keys are all padding gets a zero output. With ``need_weights`` the attention
    matrix ``[..., Lq, Lk]`` is computed explicitly and returned; otherwise the fused kernel
    (``F.scaled_dot_product_attention``) runs and no ``Lq x Lk`` matrix is kept for backward on
    backends with a memory-efficient kernel.
    """

    def forward(
        self, q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        if need_weights:
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
            weights = masked_softmax(scores, key_mask[..., None, :])
            return weights @ v, weights
        has_key = key_mask.any(dim=-1, keepdim=True)
        # The fused kernel gives NaN for a query without keys: let such a query see every key,
        # then zero its output (the gradient through the zeroed output is exactly 0).
        mask = (key_mask | ~has_key)[..., None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return out * has_key[..., None], None


class Fuse(nn.Module):
    """U-BERT's fusion kernel (eq. 6): ``Fuse(x, s) = LN(H + FFN(H))``, ``H = LN(x W + s)``.

    ``FFN(H) = GELU(H W1 + b1) W2 + b2`` with inner width 4d (eq. 3). The projection ``x W`` is
    passed in already computed because the encoders share ``W`` with their attention query
    (eq. 5: ``s = Attn(x W, S, S)``). Dropout sits on both residual branches, as in BERT.
    """

    def __init__(self, dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.ln_h = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.ln_out = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, xw: Tensor, s: Tensor) -> Tensor:
        h = self.ln_h(xw + self.dropout(s))
        return self.ln_out(h + self.dropout(self.ffn(h)))


class AttentionPool(nn.Module):
    """Additive attention pooling ``a_i = softmax_i(tanh(w . x_i + b))``, ``out = Σ a_i x_i``.

    This is SIFN's word attention (eq. 2-3) and review attention (eq. 7): a scalar score per
    row, squashed by tanh, softmax over the real rows. Returns ``(out [..., d], a [..., N])``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Linear(dim, 1)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        weights = masked_softmax(torch.tanh(self.score(x)).squeeze(-1), mask)
        return (weights[..., None] * x).sum(dim=-2), weights


class CoMatchingOutput(NamedTuple):
    t_u: Tensor  # [B, d] user-side matching summary
    t_i: Tensor  # [B, d] item-side matching summary
    attention_u: Tensor | None  # [B, Nu, Ni] user tokens attending item tokens (0 at padding)
    attention_i: Tensor | None  # [B, Ni, Nu] item tokens attending user tokens (0 at padding)


class CoMatching(nn.Module):
    """U-BERT's review co-matching layer (eq. 12-14).

    ``D_u = Attn(S_u, S_i, S_i)``, ``D_i = Attn(S_i, S_u, S_u)``;
    ``M = tanh([S - D ; S ∘ D] W_M + b_M)`` with ``W_M`` shared by both sides;
    ``t = MaxPooling(M)`` row-wise over the real tokens only.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.attn = Attn()
        self.match = nn.Linear(2 * dim, dim)

    def _side(self, s: Tensor, s_mask: Tensor, other: Tensor, other_mask: Tensor, need: bool):
        d, weights = self.attn(s, other, other, other_mask, need_weights=need)
        m = torch.tanh(self.match(torch.cat([s - d, s * d], dim=-1)))
        if weights is not None:  # padding queries attend too (their rows are pooled away)
            weights = weights * s_mask[..., None]
        return masked_max(m, s_mask), weights

    def forward(
        self, s_u: Tensor, mask_u: Tensor, s_i: Tensor, mask_i: Tensor, need_weights: bool = False
    ) -> CoMatchingOutput:
        t_u, attention_u = self._side(s_u, mask_u, s_i, mask_i, need_weights)
        t_i, attention_i = self._side(s_i, mask_i, s_u, mask_u, need_weights)
        return CoMatchingOutput(t_u, t_i, attention_u, attention_i)
