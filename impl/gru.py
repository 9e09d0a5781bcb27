"""The GRU in PyTorch, in the catalogue's form, to be read beside spec/gru.py.

``step`` returns the reset gate, the update gate, the candidate and the new state (the spec's outputs of
gru.step); ``gru_sequence`` unrolls it from h_0 = 0; ``GRULM`` is the language model of the spec's
rnn.output[gru] and rnn.loss[gru].

torch.nn.GRU differs in two ways (``step_reset_after`` and ``GRUCell.from_torch`` show both):
its candidate applies the reset gate after the recurrent product, ``tanh(W x + b + r ⊙ (U h + b_U))``
(the spec's variant gru.step[reset_after]), and its update gate is our ``1 − z``.
"""

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from ._registry import checked, implements
from .ffnn import LMOutput, positive_sizes
from .rnn import recurrent_language_model, unroll

#: The parameters of the recurrence, in the order the functions take them.
PARAMS = ("W_r", "U_r", "b_r", "W_z", "U_z", "b_z", "W", "U", "b")

_State = Float[Tensor, "*batch d_h"]


@implements("gru.step")
@checked
def step(
    x_t: Float[Tensor, "*batch d_e"],
    h_prev: Float[Tensor, "*batch d_h"],
    W_r: Float[Tensor, "d_h d_e"],
    U_r: Float[Tensor, "d_h d_h"],
    b_r: Float[Tensor, " d_h"],
    W_z: Float[Tensor, "d_h d_e"],
    U_z: Float[Tensor, "d_h d_h"],
    b_z: Float[Tensor, " d_h"],
    W: Float[Tensor, "d_h d_e"],
    U: Float[Tensor, "d_h d_h"],
    b: Float[Tensor, " d_h"],
) -> tuple[_State, _State, _State, _State]:
    """``r_t``, ``z_t``, ``h̃_t = tanh(W x_t + U (r_t ⊙ h_{t−1}) + b)`` and
    ``h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ h̃_t``."""
    r_t = torch.sigmoid(x_t @ W_r.T + h_prev @ U_r.T + b_r)
    z_t = torch.sigmoid(x_t @ W_z.T + h_prev @ U_z.T + b_z)
    h_tilde = torch.tanh(x_t @ W.T + (r_t * h_prev) @ U.T + b)
    h_t = (1 - z_t) * h_prev + z_t * h_tilde
    return r_t, z_t, h_tilde, h_t


@checked
def step_reset_after(
    x_t: Float[Tensor, "*batch d_e"],
    h_prev: Float[Tensor, "*batch d_h"],
    W_r: Float[Tensor, "d_h d_e"],
    U_r: Float[Tensor, "d_h d_h"],
    b_r: Float[Tensor, " d_h"],
    W_z: Float[Tensor, "d_h d_e"],
    U_z: Float[Tensor, "d_h d_h"],
    b_z: Float[Tensor, " d_h"],
    W: Float[Tensor, "d_h d_e"],
    U: Float[Tensor, "d_h d_h"],
    b: Float[Tensor, " d_h"],
    b_U: Float[Tensor, " d_h"],
) -> tuple[_State, _State, _State, _State]:
    """The spec's variant gru.step[reset_after] (torch.nn.GRU's candidate):
    ``h̃_t = tanh(W x_t + b + r_t ⊙ (U h_{t−1} + b_U))``."""
    r_t = torch.sigmoid(x_t @ W_r.T + h_prev @ U_r.T + b_r)
    z_t = torch.sigmoid(x_t @ W_z.T + h_prev @ U_z.T + b_z)
    h_tilde = torch.tanh(x_t @ W.T + b + r_t * (h_prev @ U.T + b_U))
    h_t = (1 - z_t) * h_prev + z_t * h_tilde
    return r_t, z_t, h_tilde, h_t


def _state_only(x_t: Tensor, h_prev: Tensor, *params: Tensor) -> Tensor:
    return step(x_t, h_prev, *params)[-1]


@checked
def gru_sequence(
    X: Float[Tensor, "*batch n d_e"],
    W_r: Float[Tensor, "d_h d_e"],
    U_r: Float[Tensor, "d_h d_h"],
    b_r: Float[Tensor, " d_h"],
    W_z: Float[Tensor, "d_h d_e"],
    U_z: Float[Tensor, "d_h d_h"],
    b_z: Float[Tensor, " d_h"],
    W: Float[Tensor, "d_h d_e"],
    U: Float[Tensor, "d_h d_h"],
    b: Float[Tensor, " d_h"],
    h_0: Float[Tensor, "*batch d_h"] | None = None,
) -> Float[Tensor, "*batch n d_h"]:
    """``H = [h_1, …, h_n]`` from ``h_0`` (0 by default): the spec's variant gru.step[sequence]."""
    h_0 = X.new_zeros(*X.shape[:-2], W.shape[0]) if h_0 is None else h_0  # (*batch, d_h)
    (H,) = unroll(_state_only, X, (h_0,), (W_r, U_r, b_r, W_z, U_z, b_z, W, U, b))
    return H  # (*batch, n, d_h)


class GRUCell(nn.Module):
    """One GRU step holding its 9 parameters in the spec's orientation."""

    def __init__(self, d_e: int, d_h: int, *, std: float = 0.1) -> None:
        super().__init__()
        positive_sizes("GRUCell", d_e=d_e, d_h=d_h)
        self.d_e, self.d_h = d_e, d_h
        for suffix in ("_r", "_z", ""):
            setattr(self, f"W{suffix}", nn.Parameter(torch.randn(d_h, d_e) * std))
            setattr(self, f"U{suffix}", nn.Parameter(torch.randn(d_h, d_h) * std))
            setattr(self, f"b{suffix}", nn.Parameter(torch.zeros(d_h)))

    def forward(self, x_t: Float[Tensor, "*batch d_e"], h_prev: Float[Tensor, "*batch d_h"]) -> Tensor:
        """The new state h_t."""
        return step(x_t, h_prev, **self.spec_params())[-1]

    def spec_params(self) -> dict[str, Tensor]:
        """The parameters named and oriented as in the spec."""
        return {name: getattr(self, name) for name in PARAMS}

    @staticmethod
    def from_torch(module: nn.GRU | nn.GRUCell) -> dict[str, Tensor]:
        """The parameters of a one-layer torch.nn.GRU (or GRUCell) for ``step_reset_after``: blocks r, z, n
        (= h̃) of ``weight_ih``, ``weight_hh``; the update gate negated (torch's z is our 1 − z); the
        biases of r and z summed; the candidate's two biases kept apart (b, and b_U inside r ⊙ (·))."""
        suffix = "_l0" if isinstance(module, nn.GRU) else ""
        W, U = getattr(module, f"weight_ih{suffix}"), getattr(module, f"weight_hh{suffix}")
        b_i, b_h = getattr(module, f"bias_ih{suffix}"), getattr(module, f"bias_hh{suffix}")
        (W_r, W_z, W_n), (U_r, U_z, U_n) = W.chunk(3), U.chunk(3)
        (bi_r, bi_z, bi_n), (bh_r, bh_z, bh_n) = b_i.chunk(3), b_h.chunk(3)
        return {
            "W_r": W_r, "U_r": U_r, "b_r": bi_r + bh_r,
            "W_z": -W_z, "U_z": -U_z, "b_z": -(bi_z + bh_z),
            "W": W_n, "U": U_n, "b": bi_n, "b_U": bh_n,
        }  # fmt: skip


class GRULM(nn.Module):
    """The GRU language model: embedding, GRU from h_0 = 0, softmax output layer."""

    def __init__(self, v: int, d_e: int, d_h: int, *, std: float = 0.1) -> None:
        super().__init__()
        positive_sizes("GRULM", v=v, d_e=d_e, d_h=d_h)
        self.v, self.d_e, self.d_h = v, d_e, d_h
        self.E = nn.Parameter(torch.randn(d_e, v) * std)
        self.cell = GRUCell(d_e, d_h, std=std)
        self.W_o = nn.Parameter(torch.randn(v, d_h) * std)
        self.b_o = nn.Parameter(torch.zeros(v))

    def forward(self, k: Int[Tensor, "*batch n"]) -> LMOutput:
        """Logits and distributions of the next token after each prefix, and the teacher-forcing loss."""
        cell = tuple(self.cell.spec_params().values())
        return recurrent_language_model(k, self.E, gru_sequence, cell, self.W_o, self.b_o)

    def spec_params(self) -> dict[str, Tensor]:
        """The parameters named and oriented as in the spec's rnn.output[gru]."""
        return {"E": self.E, **self.cell.spec_params(), "W_o": self.W_o, "b_o": self.b_o}
