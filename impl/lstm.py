"""The LSTM in PyTorch, step by step, to be read beside spec/lstm.py.

Batch-first vectors (``x_t: (*batch, d_e)``, ``h, c: (*batch, d_h)``), parameters in the spec's orientation
(``W_•: (d_h, d_e)``, ``U_•: (d_h, d_h)``). ``hidden`` is one step (torch.nn.LSTMCell), ``lstm_sequence``
the step unrolled from h_0 = c_0 = 0 (torch.nn.LSTM), ``LSTMLM`` the language model of the spec's
rnn.output[lstm] and rnn.loss[lstm].

torch.nn.LSTM stacks its blocks in the order i, f, g (= c̃), o and has two bias vectors:
``weight_ih = [W_i; W_f; W_c; W_o]``, ``weight_hh = [U_i; U_f; U_c; U_o]``,
``bias_ih + bias_hh = [b_i; b_f; b_c; b_o]`` (see ``from_torch``); it holds 4 d_h parameters more than
lstm.params counts (the spec's variant lstm.params[two_biases]).
"""

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from ._registry import checked, implements
from .ffnn import LMOutput, positive_sizes
from .rnn import recurrent_language_model, unroll

#: The parameters of the recurrence, in the order the functions take them.
PARAMS = ("W_f", "U_f", "b_f", "W_i", "U_i", "b_i", "W_o", "U_o", "b_o", "W_c", "U_c", "b_c")


def _affine(x_t: Tensor, h_prev: Tensor, W: Tensor, U: Tensor, b: Tensor) -> Tensor:
    """``W x_t + U h_{t−1} + b``."""
    return x_t @ W.T + h_prev @ U.T + b


@implements("lstm.gates")
@checked
def gates(
    x_t: Float[Tensor, "*batch d_e"],
    h_prev: Float[Tensor, "*batch d_h"],
    W_f: Float[Tensor, "d_h d_e"],
    U_f: Float[Tensor, "d_h d_h"],
    b_f: Float[Tensor, " d_h"],
    W_i: Float[Tensor, "d_h d_e"],
    U_i: Float[Tensor, "d_h d_h"],
    b_i: Float[Tensor, " d_h"],
    W_o: Float[Tensor, "d_h d_e"],
    U_o: Float[Tensor, "d_h d_h"],
    b_o: Float[Tensor, " d_h"],
) -> tuple[Float[Tensor, "*batch d_h"], Float[Tensor, "*batch d_h"], Float[Tensor, "*batch d_h"]]:
    """``f_t, i_t, o_t = σ(W_• x_t + U_• h_{t−1} + b_•)``."""
    f_t = torch.sigmoid(_affine(x_t, h_prev, W_f, U_f, b_f))
    i_t = torch.sigmoid(_affine(x_t, h_prev, W_i, U_i, b_i))
    o_t = torch.sigmoid(_affine(x_t, h_prev, W_o, U_o, b_o))
    return f_t, i_t, o_t


@implements("lstm.candidate")
@checked
def candidate(
    x_t: Float[Tensor, "*batch d_e"],
    h_prev: Float[Tensor, "*batch d_h"],
    W_c: Float[Tensor, "d_h d_e"],
    U_c: Float[Tensor, "d_h d_h"],
    b_c: Float[Tensor, " d_h"],
) -> Float[Tensor, "*batch d_h"]:
    """``c̃_t = tanh(W_c x_t + U_c h_{t−1} + b_c)``."""
    return torch.tanh(_affine(x_t, h_prev, W_c, U_c, b_c))


@implements("lstm.cell")
@checked
def cell(
    f_t: Float[Tensor, "*batch d_h"],
    i_t: Float[Tensor, "*batch d_h"],
    c_prev: Float[Tensor, "*batch d_h"],
    c_tilde: Float[Tensor, "*batch d_h"],
) -> Float[Tensor, "*batch d_h"]:
    """``c_t = f_t ⊙ c_{t−1} + i_t ⊙ c̃_t``."""
    return f_t * c_prev + i_t * c_tilde


@implements("lstm.hidden")
@checked
def hidden(
    x_t: Float[Tensor, "*batch d_e"],
    h_prev: Float[Tensor, "*batch d_h"],
    c_prev: Float[Tensor, "*batch d_h"],
    W_f: Float[Tensor, "d_h d_e"],
    U_f: Float[Tensor, "d_h d_h"],
    b_f: Float[Tensor, " d_h"],
    W_i: Float[Tensor, "d_h d_e"],
    U_i: Float[Tensor, "d_h d_h"],
    b_i: Float[Tensor, " d_h"],
    W_o: Float[Tensor, "d_h d_e"],
    U_o: Float[Tensor, "d_h d_h"],
    b_o: Float[Tensor, " d_h"],
    W_c: Float[Tensor, "d_h d_e"],
    U_c: Float[Tensor, "d_h d_h"],
    b_c: Float[Tensor, " d_h"],
) -> tuple[Float[Tensor, "*batch d_h"], Float[Tensor, "*batch d_h"]]:
    """One LSTM step (torch.nn.LSTMCell): the gates, the candidate, ``c_t`` and ``h_t = o_t ⊙ tanh(c_t)``."""
    f_t, i_t, o_t = gates(x_t, h_prev, W_f, U_f, b_f, W_i, U_i, b_i, W_o, U_o, b_o)
    c_tilde = candidate(x_t, h_prev, W_c, U_c, b_c)
    c_t = cell(f_t, i_t, c_prev, c_tilde)
    h_t = o_t * torch.tanh(c_t)
    return h_t, c_t


@checked
def lstm_sequence(
    X: Float[Tensor, "*batch n d_e"],
    W_f: Float[Tensor, "d_h d_e"],
    U_f: Float[Tensor, "d_h d_h"],
    b_f: Float[Tensor, " d_h"],
    W_i: Float[Tensor, "d_h d_e"],
    U_i: Float[Tensor, "d_h d_h"],
    b_i: Float[Tensor, " d_h"],
    W_o: Float[Tensor, "d_h d_e"],
    U_o: Float[Tensor, "d_h d_h"],
    b_o: Float[Tensor, " d_h"],
    W_c: Float[Tensor, "d_h d_e"],
    U_c: Float[Tensor, "d_h d_h"],
    b_c: Float[Tensor, " d_h"],
    h_0: Float[Tensor, "*batch d_h"] | None = None,
    c_0: Float[Tensor, "*batch d_h"] | None = None,
) -> tuple[Float[Tensor, "*batch n d_h"], Float[Tensor, "*batch n d_h"]]:
    """``H = [h_1, …, h_n]`` and ``C = [c_1, …, c_n]`` from ``h_0``, ``c_0`` (0 by default): the spec's
    variant lstm.hidden[sequence] (torch.nn.LSTM)."""
    zeros = X.new_zeros(*X.shape[:-2], W_f.shape[0])  # (*batch, d_h)
    states = (zeros if h_0 is None else h_0, zeros if c_0 is None else c_0)
    params = (W_f, U_f, b_f, W_i, U_i, b_i, W_o, U_o, b_o, W_c, U_c, b_c)
    H, C = unroll(hidden, X, states, params, keep=2)
    return H, C  # (*batch, n, d_h) each


def _hidden_states(X: Tensor, *params: Tensor) -> Tensor:
    return lstm_sequence(X, *params)[0]


@implements("lstm.params")
@checked
def params(d_e: int, d_h: int) -> int:
    """``4 d_h (d_e + d_h + 1)``: W_•, U_• and b_• for the three gates and the candidate."""
    positive_sizes("lstm.params", d_e=d_e, d_h=d_h)
    return 4 * d_h * (d_e + d_h + 1)


class LSTMCell(nn.Module):
    """One LSTM step holding the 12 parameters of lstm.params in the spec's orientation."""

    def __init__(self, d_e: int, d_h: int, *, std: float = 0.1) -> None:
        super().__init__()
        positive_sizes("LSTMCell", d_e=d_e, d_h=d_h)
        self.d_e, self.d_h = d_e, d_h
        for block in ("f", "i", "o", "c"):
            setattr(self, f"W_{block}", nn.Parameter(torch.randn(d_h, d_e) * std))
            setattr(self, f"U_{block}", nn.Parameter(torch.randn(d_h, d_h) * std))
            setattr(self, f"b_{block}", nn.Parameter(torch.zeros(d_h)))

    def forward(
        self,
        x_t: Float[Tensor, "*batch d_e"],
        h_prev: Float[Tensor, "*batch d_h"],
        c_prev: Float[Tensor, "*batch d_h"],
    ) -> tuple[Tensor, Tensor]:
        return hidden(x_t, h_prev, c_prev, **self.spec_params())

    def spec_params(self) -> dict[str, Tensor]:
        """The parameters named and oriented as in the spec."""
        return {name: getattr(self, name) for name in PARAMS}

    @classmethod
    def from_torch(cls, module: nn.LSTM | nn.LSTMCell) -> "LSTMCell":
        """The cell holding the weights of a one-layer torch.nn.LSTM (or LSTMCell): the blocks of
        ``weight_ih``, ``weight_hh`` are i, f, g (= c̃), o, and the two bias vectors are summed."""
        suffix = "_l0" if isinstance(module, nn.LSTM) else ""
        W, U = getattr(module, f"weight_ih{suffix}"), getattr(module, f"weight_hh{suffix}")
        b = getattr(module, f"bias_ih{suffix}") + getattr(module, f"bias_hh{suffix}")
        out = cls(W.shape[1], W.shape[0] // 4)
        with torch.no_grad():
            for block, rows in zip("ifco", zip(W.chunk(4), U.chunk(4), b.chunk(4), strict=True), strict=True):
                for prefix, value in zip("WUb", rows, strict=True):
                    getattr(out, f"{prefix}_{block}").copy_(value)
        return out


class LSTMLM(nn.Module):
    """The LSTM language model: embedding, LSTM from h_0 = c_0 = 0, softmax output layer (W_y, b_y, as the
    output gate owns the names W_o, b_o)."""

    def __init__(self, v: int, d_e: int, d_h: int, *, std: float = 0.1) -> None:
        super().__init__()
        positive_sizes("LSTMLM", v=v, d_e=d_e, d_h=d_h)
        self.v, self.d_e, self.d_h = v, d_e, d_h
        self.E = nn.Parameter(torch.randn(d_e, v) * std)
        self.cell = LSTMCell(d_e, d_h, std=std)
        self.W_y = nn.Parameter(torch.randn(v, d_h) * std)
        self.b_y = nn.Parameter(torch.zeros(v))

    def forward(self, k: Int[Tensor, "*batch n"]) -> LMOutput:
        """Logits and distributions of the next token after each prefix, and the teacher-forcing loss."""
        cell = tuple(self.cell.spec_params().values())
        return recurrent_language_model(k, self.E, _hidden_states, cell, self.W_y, self.b_y)

    def spec_params(self) -> dict[str, Tensor]:
        """The parameters named and oriented as in the spec's rnn.output[lstm]."""
        return {"E": self.E, **self.cell.spec_params(), "W_y": self.W_y, "b_y": self.b_y}
