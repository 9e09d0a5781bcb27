"""Transformers for time series in PyTorch, batch-first, to be read beside spec/timeseries.py.

A series is ``(*batch, length, m)``: one row per time step, one column per variable (the transpose of the
spec's ``X ∈ ℝ^{m×n}``), as TST's and PatchTST's code take it. Two models:

- ``TST`` (Zerveas et al. 2021): time steps are tokens; ``u_t = W_p x_t + b_p + λ_t``, an encoder, and a
  linear reconstruction of every entry, trained with the masked MSE over the masked entries;
- ``PatchTST`` (Nie et al. 2023): each variable alone (channel independence) is padded with its last value,
  cut into N patches of length P at stride S, embedded with a shared ``W_p``, encoded, and a linear head on
  the flattened patches forecasts the next T steps.
"""

import math

import torch
from jaxtyping import Bool, Float
from torch import Tensor, nn

from ._registry import checked, implements
from .activation import activation_function
from .transformer import TransformerStack, stack


@implements("timeseries.input")
@checked
def input_(
    X: Float[Tensor, "*batch n d_x"],
    W_p: Float[Tensor, "d_e d_x"],
    b_p: Float[Tensor, " d_e"],
    Lambda: Float[Tensor, "d_e n_max"],
    *,
    scale: bool = False,
) -> Float[Tensor, "*batch n d_e"]:
    """``u_t = W_p x_t + b_p + λ_t`` for every time step t; ``scale`` multiplies the projection by √d_e
    (the variant scaled, TST's official code)."""
    n, n_max = X.shape[-2], Lambda.shape[-1]
    if n > n_max:
        raise ValueError(f"timeseries input: n={n} time steps but only n_max={n_max} positions")
    U = X @ W_p.transpose(0, 1) + b_p  # (*batch, n, d_e)
    if scale:
        U = U * math.sqrt(W_p.shape[0])
    return U + Lambda[:, :n].transpose(0, 1)  # (*batch, n, d_e)


@implements("timeseries.masked_mse")
@checked
def masked_mse(
    X: Float[Tensor, "*batch n d_x"],
    X_hat: Float[Tensor, "*batch n d_x"],
    mask: Bool[Tensor, "*batch n d_x"],
) -> Float[Tensor, "*batch"]:
    """``𝓛 = Σ_𝓜 (x̂ − x)² / |𝓜|`` over the masked entries (``mask`` True) of each example; 0 when none is
    masked (the spec's convention; torch's mean of an empty selection would be NaN)."""
    squared = torch.where(mask, (X_hat - X) ** 2, 0.0).sum(dim=(-2, -1))  # (*batch,)
    count = mask.sum(dim=(-2, -1)).to(squared.dtype)  # (*batch,)
    return torch.where(count > 0, squared / count.clamp(min=1), 0.0)


def pad_end(X: Float[Tensor, "*batch d_x L_in"], S: int) -> Float[Tensor, "*batch d_x L_in+S_p"]:
    """Each series followed by S copies of its last value (``nn.ReplicationPad1d((0, S))``)."""
    return torch.cat([X, X[..., -1:].expand(*X.shape[:-1], S)], dim=-1)


@implements(
    "timeseries.patching",
    variants={
        "no_bias": {},
        "no_padding": {"padding": False},
        "drop_start": {"padding": False, "drop_start": True},
    },
)
@checked
def patching(
    X: Float[Tensor, "*batch L_in d_x"],
    W_p: Float[Tensor, "d_e P"],
    W_pos: Float[Tensor, "d_e N_p"],
    S_p: int,
    b_p: Float[Tensor, " d_e"] | None = None,
    *,
    padding: bool = True,
    drop_start: bool = False,
) -> Float[Tensor, "*batch d_x N_p d_e"]:
    """``U^{(i)} = W_p X_p^{(i)} + b_p 1ᵀ + W_pos`` for each variable i on its own: the series padded with
    S copies of its last value (``padding``), cut into N patches of length P at stride S, one per row.
    Without ``b_p`` it is the variant no_bias, with ``padding=False`` the variant no_padding (the last
    ``(L_in − P) mod S`` values left out), with ``padding=False, drop_start=True`` the variant drop_start (the
    first ``(L_in − P) mod S`` values left out, transformers' PatchTSTPatchify)."""
    P, N = W_p.shape[-1], W_pos.shape[-1]
    if padding and drop_start:
        raise ValueError(
            "patching: drop_start=True leaves out the start instead of padding; pass padding=False"
        )
    series = X.transpose(-1, -2)  # (*batch, d_x, L_in): one row per variable
    if padding:
        series = pad_end(series, S_p)  # (*batch, d_x, L_in + S)
    if P > series.shape[-1] or S_p <= 0:
        raise ValueError(
            f"patching: patch length P={P} and stride S={S_p} do not fit a series of {X.shape[-2]}"
        )
    if drop_start:
        series = series[..., (series.shape[-1] - P) % S_p :]  # (*batch, d_x, L_in − r): ends with a patch
    patches = series.unfold(-1, P, S_p)  # (*batch, d_x, N, P): patch j starts at (j − 1) S
    if patches.shape[-2] != N:
        raise ValueError(f"patching: the series gives {patches.shape[-2]} patches, W_pos has N={N} positions")
    U = patches @ W_p.transpose(0, 1)  # (*batch, d_x, N, d_e)
    if b_p is not None:
        U = U + b_p
    return U + W_pos.transpose(0, 1)  # (*batch, d_x, N, d_e)


def num_patches(L_in: int, P: int, S: int, padding: bool = True) -> int:
    """``N = ⌊(L_in − P)/S⌋ + 2`` with end padding, ``+ 1`` without."""
    if P > L_in or S <= 0 or P <= 0:
        raise ValueError(f"num_patches: need 0 < P ≤ L_in and S > 0, found L_in={L_in}, P={P}, S={S}")
    return (L_in - P) // S + (2 if padding else 1)


def _encode(U: Tensor, blocks: TransformerStack) -> Tensor:
    return stack(
        U,
        None,
        **blocks.spec_params(),
        norm_first=blocks.norm_first,
        activation=blocks.activation,
        eps=blocks.eps,
    )


class TST(nn.Module):
    """TST (Zerveas et al. 2021) for masked reconstruction: ``timeseries.input``, L post-LN blocks with GELU
    (the paper's layer norm option; its default BatchNorm is not reproduced), and
    ``X̂ = W_out GELU(H^L) + b_out`` (the official code applies the activation before the output layer).

    ``scale_input`` is the variant scaled (√d_e, the official code). ``loss`` zeroes the masked entries of
    the input, reconstructs, and averages the squared error over every masked entry of the batch.
    """

    def __init__(
        self,
        d_x: int,
        d_e: int,
        M: int,
        L: int,
        d_f: int,
        n_max: int,
        *,
        eps: float = 1e-5,
        scale_input: bool = False,
        std: float = 0.02,
    ) -> None:
        super().__init__()
        if min(d_x, d_e, M, L, d_f, n_max) <= 0:
            raise ValueError(
                f"TST: sizes must be positive, found d_x={d_x}, d_e={d_e}, M={M}, L={L}, d_f={d_f}, "
                f"n_max={n_max}"
            )
        self.scale_input = scale_input
        self.W_p = nn.Parameter(torch.randn(d_e, d_x) * std)
        self.b_p = nn.Parameter(torch.zeros(d_e))
        self.Lambda = nn.Parameter(torch.randn(d_e, n_max) * std)
        self.blocks = TransformerStack(L, d_e, M, d_f, norm_first=False, activation="gelu", eps=eps, std=std)
        self.W_out = nn.Parameter(torch.randn(d_x, d_e) * std)
        self.b_out = nn.Parameter(torch.zeros(d_x))

    def forward(self, X: Float[Tensor, "*batch n d_x"]) -> Float[Tensor, "*batch n d_x"]:
        """The reconstruction ``X̂`` of a (masked) series."""
        U = input_(X, self.W_p, self.b_p, self.Lambda, scale=self.scale_input)  # (*batch, n, d_e)
        H = _encode(U, self.blocks)  # (*batch, n, d_e)
        return activation_function("gelu")(H) @ self.W_out.transpose(0, 1) + self.b_out  # (*batch, n, d_x)

    def loss(self, X: Float[Tensor, "*batch n d_x"], mask: Bool[Tensor, "*batch n d_x"]) -> Float[Tensor, ""]:
        """The masked MSE of the batch: the input's masked entries (``mask`` True) are set to 0, and the
        squared error is averaged over every masked entry of the batch (0 if none)."""
        X_hat = self(X.masked_fill(mask, 0.0))
        d_x = X.shape[-1]
        # the batch laid end to end as one series: a mean over all its masked entries
        return masked_mse(X.reshape(-1, d_x), X_hat.reshape(-1, d_x), mask.reshape(-1, d_x))

    def spec_params(self) -> dict[str, Tensor]:
        return {
            "W_p": self.W_p,
            "b_p": self.b_p,
            "Lambda": self.Lambda,
            **self.blocks.spec_params(),
            "W_out": self.W_out,
            "b_out": self.b_out,
        }


class PatchTST(nn.Module):
    """A PatchTST-style forecaster (Nie et al. 2023): channel-independent ``timeseries.patching``, L post-LN
    blocks with GELU shared by every variable, and a linear head from the flattened patches of each
    variable to its next T values.

    The head flattens each variable's encoder output (d_e, N) feature-major, as the official Flatten_Head
    does, so its weight is ``(T, d_e N)``. Not reproduced from the official code's defaults: RevIN instance
    normalisation, BatchNorm in the blocks, residual attention scores (res_attention), dropout.
    """

    def __init__(
        self,
        L_in: int,
        P: int,
        S: int,
        d_e: int,
        M: int,
        L: int,
        d_f: int,
        T: int,
        *,
        eps: float = 1e-5,
        padding: bool = True,
        std: float = 0.02,
    ) -> None:
        super().__init__()
        if min(d_e, M, L, d_f, T) <= 0:
            raise ValueError(
                f"PatchTST: sizes must be positive, found d_e={d_e}, M={M}, L={L}, d_f={d_f}, T={T}"
            )
        self.S, self.padding = S, padding
        self.N = num_patches(L_in, P, S, padding)
        self.W_p = nn.Parameter(torch.randn(d_e, P) * std)
        self.b_p = nn.Parameter(torch.zeros(d_e))
        self.W_pos = nn.Parameter(torch.randn(d_e, self.N) * std)
        self.blocks = TransformerStack(L, d_e, M, d_f, norm_first=False, activation="gelu", eps=eps, std=std)
        self.W_head = nn.Parameter(torch.randn(T, d_e * self.N) * std)
        self.b_head = nn.Parameter(torch.zeros(T))

    def forward(self, X: Float[Tensor, "*batch L_in d_x"]) -> Float[Tensor, "*batch T d_x"]:
        """The forecast of the next T steps of every variable."""
        U = patching(X, self.W_p, self.W_pos, self.S, self.b_p, padding=self.padding)  # (*batch, d_x, N, d_e)
        H = _encode(U, self.blocks)  # (*batch, d_x, N, d_e): the variables are a batch axis
        flat = H.transpose(-1, -2).flatten(-2)  # (*batch, d_x, d_e N), feature-major
        return (flat @ self.W_head.transpose(0, 1) + self.b_head).transpose(-1, -2)  # (*batch, T, d_x)

    def spec_params(self) -> dict[str, Tensor]:
        return {
            "W_p": self.W_p,
            "b_p": self.b_p,
            "W_pos": self.W_pos,
            **self.blocks.spec_params(),
            "W_head": self.W_head,
            "b_head": self.b_head,
        }
