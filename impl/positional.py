"""Positional encodings in PyTorch, to be read beside spec/positional.py.

``Λ`` is held in the spec's orientation, ``d_e × n_max`` (one column per position); the functions return
batch-first ``n × d_e`` (one row per position), ready to add to the token embeddings.
"""

import math

import torch
from jaxtyping import Float
from torch import Tensor, nn

from ._registry import checked, implements

#: The base of the wavelengths (Vaswani et al. 2017, §3.5).
BASE = 10_000.0


@implements("positional.learned")
@checked
def learned(Lambda: Float[Tensor, "d_e n_max"], n: int) -> Float[Tensor, "n d_e"]:
    """``Λ_{:,1:n}``: the learned encodings of the first n positions, one row per position."""
    n_max = Lambda.shape[-1]
    if not 0 < n <= n_max:
        raise ValueError(f"learned positions: need 0 < n ≤ n_max, found n={n}, n_max={n_max}")
    return Lambda[:, :n].transpose(0, 1)  # (n, d_e)


@implements("positional.sinusoidal")
@checked
def sinusoidal(
    d_e: int, n_max: int, *, dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> Float[Tensor, "n_max d_e"]:
    """``Λ_{2i,t} = sin(t/10000^{2i/d_e})``, ``Λ_{2i+1,t} = cos(t/10000^{2i/d_e})``, 0-based i and t.

    Returned as ``Λᵀ`` (row t is position t). An odd d_e keeps the last sine row without its cosine.
    """
    if d_e <= 0 or n_max <= 0:
        raise ValueError(
            f"sinusoidal positions: d_e and n_max must be positive, found d_e={d_e}, n_max={n_max}"
        )
    row = torch.arange(d_e, device=device)
    pair = (row // 2).to(torch.float64)  # i of rows 2i and 2i+1
    omega = torch.exp(-math.log(BASE) * 2.0 * pair / d_e)  # (d_e,), ω_i = 10000^{−2i/d_e}
    t = torch.arange(n_max, dtype=torch.float64, device=device)
    angle = t.unsqueeze(-1) * omega  # (n_max, d_e)
    return torch.where(row % 2 == 0, torch.sin(angle), torch.cos(angle)).to(dtype)


class LearnedPositionalEncoding(nn.Module):
    """A learned ``Λ ∈ ℝ^{d_e×n_max}``; ``forward(n)`` returns ``Λ_{:,1:n}ᵀ`` (n × d_e)."""

    def __init__(self, n_max: int, d_e: int, *, std: float = 0.01) -> None:
        super().__init__()
        if n_max <= 0 or d_e <= 0:
            raise ValueError(
                f"LearnedPositionalEncoding: sizes must be positive, found n_max={n_max}, d_e={d_e}"
            )
        self.Lambda = nn.Parameter(torch.randn(d_e, n_max) * std)

    def forward(self, n: int) -> Float[Tensor, "n d_e"]:
        return learned(self.Lambda, n)

    def spec_params(self) -> dict[str, Tensor]:
        return {"Lambda": self.Lambda}


class SinusoidalPositionalEncoding(nn.Module):
    """The fixed sinusoidal table as a buffer (no parameters); ``forward(n)`` returns its first n rows."""

    def __init__(self, n_max: int, d_e: int) -> None:
        super().__init__()
        self.register_buffer("table", sinusoidal(d_e, n_max), persistent=False)  # (n_max, d_e)

    def forward(self, n: int) -> Float[Tensor, "n d_e"]:
        if not 0 < n <= self.table.shape[0]:
            raise ValueError(
                f"sinusoidal positions: need 0 < n ≤ n_max, found n={n}, n_max={self.table.shape[0]}"
            )
        return self.table[:n]
