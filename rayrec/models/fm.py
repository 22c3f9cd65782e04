"""Factorization machines over dense feature vectors: FM and SAFMR's self-attention FM.

FM (S. Rendle, "Factorization Machines", ICDM 2010; SAFMR eq. 5)::

    ŷ = w0 + Σ_i w_i x_i + Σ_{i<j} <v_i, v_j> x_i x_j

computed in O(n k) as ``0.5 Σ_f [(Σ_i v_if x_i)^2 - Σ_i v_if^2 x_i^2]``. DeepCoNN and
TransNet put it on the concatenated text features of a user and an item.

SA-FM (SAFMR, "a deep recommendation model based on self-attention factorization machines",
``shared/papers/safmr.txt`` section 4, eq. 6-8). As printed the paper gives ``R = W_r X``,
``H = W_h X``, ``S = W_s X`` (eq. 6), ``x̂_i = softmax_i(h_i^T r_i / sqrt(k))`` (eq. 7, Algorithm 1
writes the full matrix ``softmax(H^T R / sqrt(k))``) and ``ŷ = w0 + Σ w_i x_i + Σ ŝ_i x̂_i``
(eq. 8), with X a matrix of N feature *vectors* of size k, while the CNN in front of it
outputs one vector of n scalar features. Readings taken here:

* the N vectors are FM's per-feature embeddings ``e_i = x_i v_i`` (``v_i ∈ R^k``, the V of
  eq. 5), so ``E = [e_1 .. e_n] ∈ R^{n×k}`` and ``R = E W_r``, ``H = E W_h``, ``S = E W_s`` with
  ``W_r, W_h, W_s ∈ R^{k×k}`` (eq. 6, no biases);
* eq. 7 is scaled dot-product self-attention with the full matrix of Algorithm 1:
  ``A = softmax_j(r_i · h_j / sqrt(k))`` row-wise, k being the width of the attended vectors
  (the paper says "the dimension of the word vector": here that width is k). A feature does not
  attend to itself (the diagonal is masked), mirroring FM's ``j ≠ i``;
* eq. 8's interaction term is the attention-weighted FM interaction
  ``Σ_i <e_i, ŝ_i>`` with ``ŝ_i = Σ_{j≠i} A_ij s_j``, i.e. ``Σ_i Σ_{j≠i} A_ij e_i^T W_s e_j``.
  This is the paper's stated aim (FM "assigns the same weight to each cross-feature"; attention
  learns a weight per pair): with uniform attention and ``W_s = I`` it is exactly
  ``2/(n-1)`` times FM's pairwise term.

Needs n >= 3 features for the attention to depend on the input (with n = 2 each feature has a
single partner and its weight is 1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rayrec.models.layers import masked_softmax

FACTOR_INIT_STD = 0.1  # libFM's default init_stdev for the factors V (one-hot inputs)


def init_dense_fm(linear: nn.Linear, factors: nn.Parameter) -> None:
    """Initialisation of an FM over n dense features (neither DeepCoNN nor SAFMR gives one):
    ``w = 0`` and ``v ~ N(0, (0.1 / sqrt(n))²)``. libFM's N(0, 0.1²) is made for one-hot
    inputs, where two features are non-zero; over n = 100 dense CNN features of size ~1 the
    pairwise term's n²/2 products put the first predictions ±2.5 stars off ``w0`` (a first
    training MSE of ~10 on Musical Instruments, DeepCoNN). Scaled by 1/sqrt(n) its spread no
    longer grows with n (about ±0.03 here), so an untrained model predicts ``w0`` (the global
    mean) to within a few hundredths, and the factors still get gradients."""
    nn.init.zeros_(linear.weight)
    nn.init.normal_(factors, std=FACTOR_INIT_STD / math.sqrt(factors.shape[0]))


class FM(nn.Module):
    """Second-order factorization machine (eq. 5): ``x [..., n] -> ŷ [...]``.

    Args:
        n_features: n, the width of ``x``.
        k: width of the factors ``v_i``.
        bias: initial global bias ``w0`` (the rating models pass the training mean).
    """

    def __init__(self, n_features: int, k: int = 8, bias: float = 0.0) -> None:
        super().__init__()
        self.w0 = nn.Parameter(torch.full((1,), float(bias)))  # 1-d: DeepSpeed broadcasts bytes
        self.linear = nn.Linear(n_features, 1, bias=False)
        self.factors = nn.Parameter(torch.empty(n_features, k))
        init_dense_fm(self.linear, self.factors)

    def forward(self, x: Tensor) -> Tensor:
        e = x[..., None] * self.factors  # [..., n, k]: e_i = x_i v_i
        pairwise = 0.5 * (e.sum(dim=-2).square() - e.square().sum(dim=-2)).sum(dim=-1)
        return self.w0 + self.linear(x).squeeze(-1) + pairwise


class SAFM(nn.Module):
    """Self-attention FM (SAFMR eq. 6-8, read as in the module docstring).

    ``forward(x [B, n]) -> (ŷ [B], A [B, n, n])`` where ``A`` is the attention between features.

    Args:
        n_features: n, the width of ``x``.
        k: width of the per-feature embeddings and of the attention.
        bias: initial global bias ``w0``.
    """

    def __init__(self, n_features: int, k: int = 8, bias: float = 0.0) -> None:
        super().__init__()
        self.w0 = nn.Parameter(torch.full((1,), float(bias)))  # 1-d: DeepSpeed broadcasts bytes
        self.linear = nn.Linear(n_features, 1, bias=False)
        self.factors = nn.Parameter(torch.empty(n_features, k))
        init_dense_fm(self.linear, self.factors)
        self.query = nn.Linear(k, k, bias=False)  # W_r
        self.key = nn.Linear(k, k, bias=False)  # W_h
        self.value = nn.Linear(k, k, bias=False)  # W_s
        self.register_buffer("others", ~torch.eye(n_features, dtype=torch.bool), persistent=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        e = x[..., None] * self.factors  # [B, n, k]: e_i = x_i v_i
        r, h, s = self.query(e), self.key(e), self.value(e)  # eq. 6
        scores = r @ h.transpose(-2, -1) / math.sqrt(e.size(-1))
        attention = masked_softmax(scores, self.others)  # eq. 7, [B, n, n]
        s_hat = attention @ s  # ŝ_i = Σ_j A_ij s_j
        interaction = (e * s_hat).sum(dim=(-2, -1))  # eq. 8: Σ_i <e_i, ŝ_i>
        return self.w0 + self.linear(x).squeeze(-1) + interaction, attention
