"""Attention in PyTorch, batch-first, to be read beside spec/attention.py.

The tutorial's row form carries over directly: a token is a row, ``Q = H W_Q + b_Q`` with ``H`` batch-first
(``n × d_e``, the transpose of the tutorial's ``H ∈ ℝ^{d_e×n}``). Per-head parameter families are stacked on
a leading ``M`` axis. Masks are additive (0 or −∞); a query whose keys are all masked gets zero weights,
the spec's convention.
"""

import math

import torch
from jaxtyping import Bool, Float
from torch import Tensor, nn
from torch.nn.functional import linear

from ._registry import checked, implements


def _project(
    X: Float[Tensor, "*batch n d_e"], W: Float[Tensor, "M d_e d"], b: Float[Tensor, "M d"] | None
) -> Float[Tensor, "*batch M n d"]:
    """``Xᵀ W^{(m)} + 1 b^{(m)ᵀ}`` for every head m at once: one product with the heads side by side,
    ``X [W^{(1)}, …, W^{(M)}]``, then split into heads."""
    M, d_e, d = W.shape
    W_heads = W.transpose(0, 1).reshape(d_e, M * d)  # (d_e, M*d)
    out = linear(X, W_heads.transpose(0, 1), None if b is None else b.reshape(M * d))  # (*batch, n, M*d)
    return out.unflatten(-1, (M, d)).transpose(-3, -2)  # (*batch, M, n, d)


@implements("attention.projections")
@checked
def projections(
    H: Float[Tensor, "*batch n d_e"],
    W_Q: Float[Tensor, "M d_e d_k"],
    b_Q: Float[Tensor, "M d_k"],
    W_K: Float[Tensor, "M d_e d_k"],
    b_K: Float[Tensor, "M d_k"],
    W_V: Float[Tensor, "M d_e d_v"],
    b_V: Float[Tensor, "M d_v"],
) -> tuple[Float[Tensor, "*batch M n d_k"], Float[Tensor, "*batch M n d_k"], Float[Tensor, "*batch M n d_v"]]:
    """Queries, keys and values of every head: ``Q_m = Hᵀ W_Q^{(m)} + 1_n b_Q^{(m)ᵀ}`` (row form)."""
    return _project(H, W_Q, b_Q), _project(H, W_K, b_K), _project(H, W_V, b_V)


def _softmax_rows(Z: Tensor) -> Tensor:
    """Row softmax of scores of any shape (queries × keys)."""
    weights = torch.softmax(Z, dim=-1)  # NaN on a fully masked row
    fully_masked = torch.isneginf(Z).all(dim=-1, keepdim=True)  # (*batch, n_q, 1)
    return weights.masked_fill(fully_masked, 0.0)


@implements("attention.softmax_rows")
@checked
def softmax_rows(Z: Float[Tensor, "*batch n n"]) -> Float[Tensor, "*batch n n"]:
    """Softmax of each row of the scores; a row of −∞ only (fully masked) gives zero weights."""
    return _softmax_rows(Z)


@implements("attention.causal_mask")
@checked
def causal_mask(
    n: int, *, dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> Float[Tensor, "n n"]:
    """``S_ij = 0`` for ``j ≤ i`` and ``−∞`` for ``j > i``."""
    future = torch.ones(n, n, dtype=torch.bool, device=device).triu(diagonal=1)
    return torch.zeros(n, n, dtype=dtype, device=device).masked_fill(future, -math.inf)


@implements("attention.padding_mask")
@checked
def padding_mask(
    keep: Bool[Tensor, "*batch n"], *, dtype: torch.dtype = torch.float32
) -> Float[Tensor, "*batch n n"]:
    """``−∞`` in the columns of padded keys (``keep = False``), 0 elsewhere, for every query row."""
    n = keep.shape[-1]
    row = torch.zeros(keep.shape, dtype=dtype, device=keep.device).masked_fill(~keep, -math.inf)
    return row.unsqueeze(-2).expand(*keep.shape[:-1], n, n)  # (*batch, n, n)


@implements("attention.scaled_dot_product")
@checked
def scaled_dot_product(
    Q: Float[Tensor, "*batch n d_k"],
    K: Float[Tensor, "*batch n d_k"],
    V: Float[Tensor, "*batch n d_v"],
    S: Float[Tensor, "*#batch n n"] | None = None,
) -> Float[Tensor, "*batch n d_v"]:
    """``P = softmax(Q Kᵀ / √d_k + S) V``."""
    d_k = Q.shape[-1]
    scores = Q @ K.transpose(-2, -1) / math.sqrt(d_k)  # (*batch, n, n)
    if S is not None:
        scores = scores + S
    return softmax_rows(scores) @ V  # (*batch, n, d_v)


def _heads(
    Q: Float[Tensor, "*batch M n_q d_k"],
    K: Float[Tensor, "*batch M n_k d_k"],
    V: Float[Tensor, "*batch M n_k d_v"],
    S: Float[Tensor, "*#batch n_q n_k"] | None,
    W_O: Float[Tensor, "M*d_v d_e"],
    b_O: Float[Tensor, " d_e"],
) -> Float[Tensor, "*batch n_q d_e"]:
    """Attend in every head, put the heads side by side and project: ``(P W_O)ᵀ + b_O 1ᵀ``."""
    d_k = Q.shape[-1]
    scores = Q @ K.transpose(-2, -1) / math.sqrt(d_k)  # (*batch, M, n_q, n_k)
    if S is not None:
        scores = scores + S.unsqueeze(-3)  # one mask for every head
    P = _softmax_rows(scores) @ V  # (*batch, M, n_q, d_v)
    P = P.transpose(-3, -2).flatten(-2)  # (*batch, n_q, M*d_v): [P_1, …, P_M]
    return linear(P, W_O.transpose(0, 1), b_O)  # P W_O + 1 b_Oᵀ: (*batch, n_q, d_e)


@implements("attention.multi_head")
@checked
def multi_head(
    H: Float[Tensor, "*batch n d_e"],
    W_Q: Float[Tensor, "M d_e d_k"],
    b_Q: Float[Tensor, "M d_k"],
    W_K: Float[Tensor, "M d_e d_k"],
    b_K: Float[Tensor, "M d_k"],
    W_V: Float[Tensor, "M d_e d_v"],
    b_V: Float[Tensor, "M d_v"],
    W_O: Float[Tensor, "M*d_v d_e"],
    b_O: Float[Tensor, " d_e"],
    S: Float[Tensor, "*#batch n n"] | None = None,
) -> Float[Tensor, "*batch n d_e"]:
    """Equation (28): ``A = ([P_1, …, P_M] W_O)ᵀ + b_O 1_nᵀ``, ``P_m = softmax(Q_m K_mᵀ/√d_k + S) V_m``."""
    Q, K, V = projections(H, W_Q, b_Q, W_K, b_K, W_V, b_V)  # (*batch, M, n, d_k|d_v)
    return _heads(Q, K, V, S, W_O, b_O)


@implements("attention.cross")
@checked
def cross(
    H_dec: Float[Tensor, "*batch n_d d_e"],
    H_enc: Float[Tensor, "*batch n_e d_e"],
    W_Q: Float[Tensor, "M d_e d_k"],
    b_Q: Float[Tensor, "M d_k"],
    W_K: Float[Tensor, "M d_e d_k"],
    b_K: Float[Tensor, "M d_k"],
    W_V: Float[Tensor, "M d_e d_v"],
    b_V: Float[Tensor, "M d_v"],
    W_O: Float[Tensor, "M*d_v d_e"],
    b_O: Float[Tensor, " d_e"],
) -> Float[Tensor, "*batch n_d d_e"]:
    """Queries from the decoder, keys and values from the encoder; no causal mask."""
    Q = _project(H_dec, W_Q, b_Q)  # (*batch, M, n_d, d_k)
    K = _project(H_enc, W_K, b_K)  # (*batch, M, n_e, d_k)
    V = _project(H_enc, W_V, b_V)  # (*batch, M, n_e, d_v)
    return _heads(Q, K, V, None, W_O, b_O)


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention holding the parameters of equation (28) in the spec's orientation."""

    def __init__(
        self, d_e: int, M: int, d_k: int | None = None, d_v: int | None = None, *, std: float = 0.02
    ) -> None:
        super().__init__()
        if d_e <= 0 or M <= 0:
            raise ValueError(f"MultiHeadAttention: d_e and M must be positive, found d_e={d_e}, M={M}")
        d_k = d_k if d_k is not None else d_e // M
        d_v = d_v if d_v is not None else d_k
        if d_k <= 0 or d_v <= 0:
            raise ValueError(f"MultiHeadAttention: d_k = d_e // M must be positive, found d_e={d_e}, M={M}")
        self.d_e, self.M, self.d_k, self.d_v = d_e, M, d_k, d_v
        self.W_Q = nn.Parameter(torch.randn(M, d_e, d_k) * std)
        self.b_Q = nn.Parameter(torch.zeros(M, d_k))
        self.W_K = nn.Parameter(torch.randn(M, d_e, d_k) * std)
        self.b_K = nn.Parameter(torch.zeros(M, d_k))
        self.W_V = nn.Parameter(torch.randn(M, d_e, d_v) * std)
        self.b_V = nn.Parameter(torch.zeros(M, d_v))
        self.W_O = nn.Parameter(torch.randn(M * d_v, d_e) * std)
        self.b_O = nn.Parameter(torch.zeros(d_e))

    def forward(
        self, H: Float[Tensor, "*batch n d_e"], S: Float[Tensor, "*#batch n n"] | None = None
    ) -> Float[Tensor, "*batch n d_e"]:
        return multi_head(H, **self.spec_params(), S=S)

    def spec_params(self) -> dict[str, Tensor]:
        """The parameters named and oriented as in the spec (families stacked on the head axis)."""
        return {
            "W_Q": self.W_Q,
            "b_Q": self.b_Q,
            "W_K": self.W_K,
            "b_K": self.b_K,
            "W_V": self.W_V,
            "b_V": self.b_V,
            "W_O": self.W_O,
            "b_O": self.b_O,
        }
