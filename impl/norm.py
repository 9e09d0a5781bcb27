"""Layer normalisation in PyTorch, to be read beside spec/norm.py.

Batch-first: a token is a row of ``H`` (``n × d_e``), so the statistics are taken over the last axis.
``eps = 0`` is the tutorial's form; a constant token (σ = 0) then normalises to 0, its output is β (the
spec's convention). ``eps > 0`` is the spec's variant ``norm.layer_norm[eps]``, bound to ``eps``.
"""

import torch
from jaxtyping import Float
from torch import Tensor, nn

from ._registry import checked, implements


def _normalise(H: Tensor, eps: float) -> Tensor:
    """``(h − μ1)/√(σ² + ε)`` over the last axis, population variance; 0 for a constant h when ε = 0
    (NaN when h holds a NaN or an infinity, as the spec's formula)."""
    mu = H.mean(dim=-1, keepdim=True)  # (*batch, n, 1)
    var = ((H - mu) ** 2).mean(dim=-1, keepdim=True)  # (*batch, n, 1), divisor d_e
    if eps > 0:
        return (H - mu) / torch.sqrt(var + eps)
    constant = var == 0  # not `var > 0`: a NaN variance (NaN or ±∞ in h) must give NaN, not 0
    spread = torch.sqrt(torch.where(constant, torch.ones_like(var), var))  # no 0/0, even in the gradient
    return torch.where(constant, torch.zeros_like(H), (H - mu) / spread)


@implements("norm.layer_norm", variants={"eps": {}})
@checked
def layer_norm(
    H: Float[Tensor, "*batch n d_e"],
    alpha: Float[Tensor, " d_e"],
    beta: Float[Tensor, " d_e"],
    eps: float = 0.0,
) -> Float[Tensor, "*batch n d_e"]:
    """``LN(h; α, β) = α ⊙ (h − μ1)/σ + β`` for every token h, ``σ = √((1/d_e) Σ (h_j − μ)² + ε)``."""
    if eps < 0:
        raise ValueError(f"layer_norm: eps must be ≥ 0, found {eps}")
    return alpha * _normalise(H, eps) + beta


class LayerNorm(nn.Module):
    """Layer norm over the model width with scale α (ones) and shift β (zeros), as torch.nn.LayerNorm."""

    def __init__(self, d_e: int, eps: float = 0.0) -> None:
        super().__init__()
        if d_e <= 0 or eps < 0:
            raise ValueError(f"LayerNorm: d_e must be positive and eps ≥ 0, found d_e={d_e}, eps={eps}")
        self.d_e, self.eps = d_e, eps
        self.alpha = nn.Parameter(torch.ones(d_e))
        self.beta = nn.Parameter(torch.zeros(d_e))

    def forward(self, H: Float[Tensor, "*batch n d_e"]) -> Float[Tensor, "*batch n d_e"]:
        return layer_norm(H, self.alpha, self.beta, eps=self.eps)

    def spec_params(self) -> dict[str, Tensor]:
        """α and β as the spec names them."""
        return {"alpha": self.alpha, "beta": self.beta}

    def extra_repr(self) -> str:
        return f"d_e={self.d_e}, eps={self.eps}"
