"""Recurrent language models in PyTorch: the Elman step and its unrolling, the output, the loss, the gate.

Batch-first: ``x_t: (*batch, d_e)``, ``h: (*batch, d_h)``, a sequence ``X: (*batch, n, d_e)``; parameters keep
the spec's orientation, so ``W_x x_t`` is ``x_t @ W_x.T``. The state starts at ``h_0 = 0``; column t of the
output (row t here) is the distribution of token t + 1, and teacher forcing scores tokens 2..n.

torch.nn.RNN computes the same step with ``weight_ih = W_x``, ``weight_hh = W_h`` and two bias vectors
whose sum is ``b_h`` (so it holds d_h more parameters: the spec's variant rnn.params[two_biases]).
"""

from collections.abc import Callable

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from ._registry import checked, implements
from .ffnn import LMOutput, embed, language_model_output, positive_sizes


@implements("rnn.elman_step")
@checked
def elman_step(
    x_t: Float[Tensor, "*batch d_e"],
    h_prev: Float[Tensor, "*batch d_h"],
    W_x: Float[Tensor, "d_h d_e"],
    W_h: Float[Tensor, "d_h d_h"],
    b_h: Float[Tensor, " d_h"],
) -> Float[Tensor, "*batch d_h"]:
    """``h_t = tanh(W_x x_t + W_h h_{t−1} + b_h)`` (torch.nn.RNNCell)."""
    return torch.tanh(x_t @ W_x.T + h_prev @ W_h.T + b_h)


def unroll(
    step: Callable[..., Tensor | tuple[Tensor, ...]],
    X: Float[Tensor, "*batch n d_e"],
    states: tuple[Tensor, ...],
    params: tuple[Tensor, ...],
    keep: int = 1,
) -> tuple[Tensor, ...]:
    """Apply ``step(x_t, *states, *params)`` for t = 1..n, feeding its first ``len(states)`` results back
    as the next states; return the first ``keep`` of them at every position, stacked: ``(*batch, n, ·)``."""
    seen: list[tuple[Tensor, ...]] = []
    for t in range(X.shape[-2]):
        out = step(X[..., t, :], *states, *params)
        out = out if isinstance(out, tuple) else (out,)
        states = out[: len(states)]
        seen.append(out)
    return tuple(torch.stack([o[j] for o in seen], dim=-2) for j in range(keep))


@checked
def elman_sequence(
    X: Float[Tensor, "*batch n d_e"],
    W_x: Float[Tensor, "d_h d_e"],
    W_h: Float[Tensor, "d_h d_h"],
    b_h: Float[Tensor, " d_h"],
    h_0: Float[Tensor, "*batch d_h"] | None = None,
) -> Float[Tensor, "*batch n d_h"]:
    """``H = [h_1, …, h_n]`` from ``h_0`` (0 by default): the spec's variant rnn.elman_step[sequence]
    (torch.nn.RNN)."""
    h_0 = X.new_zeros(*X.shape[:-2], W_h.shape[0]) if h_0 is None else h_0  # (*batch, d_h)
    (H,) = unroll(elman_step, X, (h_0,), (W_x, W_h, b_h))
    return H  # (*batch, n, d_h)


def recurrent_language_model(
    k: Tensor, E: Tensor, sequence: Callable[..., Tensor], cell: tuple[Tensor, ...], W_o: Tensor, b_o: Tensor
) -> LMOutput:
    """Embed, run the recurrence, and read out the next token's distribution at every position."""
    H = sequence(embed(k, E), *cell)  # (*batch, n, d_h)
    return language_model_output(H @ W_o.T + b_o, k, shift=1)  # logits (*batch, n, v)


@implements("rnn.output")
@checked
def output(
    k: Int[Tensor, "*batch n"],
    E: Float[Tensor, "d_e v"],
    W_x: Float[Tensor, "d_h d_e"],
    W_h: Float[Tensor, "d_h d_h"],
    b_h: Float[Tensor, " d_h"],
    W_o: Float[Tensor, "v d_h"],
    b_o: Float[Tensor, " v"],
) -> Float[Tensor, "*batch n v"]:
    """``Ŷ = softmax_col(W_o H + b_o 1_nᵀ)``: row t is ``ŷ_{t+1} = softmax(W_o h_t + b_o)``."""
    return recurrent_language_model(k, E, elman_sequence, (W_x, W_h, b_h), W_o, b_o).probabilities


@implements("rnn.loss")
@checked
def loss(
    k: Int[Tensor, "*batch n"],
    E: Float[Tensor, "d_e v"],
    W_x: Float[Tensor, "d_h d_e"],
    W_h: Float[Tensor, "d_h d_h"],
    b_h: Float[Tensor, " d_h"],
    W_o: Float[Tensor, "v d_h"],
    b_o: Float[Tensor, " v"],
) -> Float[Tensor, "*batch"]:
    """Teacher forcing: ``𝓛 = −Σ_{t=1}^{n−1} log ŷ_{t+1}[k_{t+1}]``."""
    return recurrent_language_model(k, E, elman_sequence, (W_x, W_h, b_h), W_o, b_o).loss


@implements("rnn.params")
@checked
def params(v: int, d_e: int, d_h: int) -> int:
    """``v d_e + d_h (d_e + d_h + 1) + v (d_h + 1)``: E, then W_x, W_h and b_h, then W_o and b_o."""
    positive_sizes("rnn.params", v=v, d_e=d_e, d_h=d_h)
    return v * d_e + d_h * (d_e + d_h + 1) + v * (d_h + 1)


@implements("rnn.gate")
@checked
def gate(
    a: Float[Tensor, "*batch d_h"], u: Float[Tensor, "*batch d_h"]
) -> tuple[Float[Tensor, "*batch d_h"], Float[Tensor, "*batch d_h"]]:
    """The semi-binary mask ``m = σ(a)`` and the gated vector ``ũ = u ⊙ m``."""
    m = torch.sigmoid(a)
    return m, u * m


class RNNLM(nn.Module):
    """The recurrent (Elman) language model: embedding, tanh recurrence from h_0 = 0, softmax output."""

    def __init__(self, v: int, d_e: int, d_h: int, *, std: float = 0.1) -> None:
        super().__init__()
        positive_sizes("RNNLM", v=v, d_e=d_e, d_h=d_h)
        self.v, self.d_e, self.d_h = v, d_e, d_h
        self.E = nn.Parameter(torch.randn(d_e, v) * std)
        self.W_x = nn.Parameter(torch.randn(d_h, d_e) * std)
        self.W_h = nn.Parameter(torch.randn(d_h, d_h) * std)
        self.b_h = nn.Parameter(torch.zeros(d_h))
        self.W_o = nn.Parameter(torch.randn(v, d_h) * std)
        self.b_o = nn.Parameter(torch.zeros(v))

    def forward(self, k: Int[Tensor, "*batch n"]) -> LMOutput:
        """Logits and distributions of the next token after each prefix, and the teacher-forcing loss."""
        return recurrent_language_model(
            k, self.E, elman_sequence, (self.W_x, self.W_h, self.b_h), self.W_o, self.b_o
        )

    def spec_params(self) -> dict[str, Tensor]:
        """The parameters named and oriented as in the spec."""
        names = ("E", "W_x", "W_h", "b_h", "W_o", "b_o")
        return {name: getattr(self, name) for name in names}
