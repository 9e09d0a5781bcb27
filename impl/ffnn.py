"""The feed-forward language model (Bengio et al. 2003) in PyTorch, to be read beside spec/ffnn.py.

Batch-first: tokens are ``k: (*batch, n)``, a context is a row ``z_t: (*batch, c·d_e)``; parameters keep the
spec's orientation (``E: (d_e, v)``, ``W_h: (d_h, c·d_e)``), so ``W_h z_t`` is ``z_t @ W_h.T``. Slots of the
context before the first token hold zeros (the spec's convention), or the embedding of a start token.

Also here, for every language model of impl/ffnn, rnn, lstm and gru: ``LMOutput`` (logits, probabilities,
loss) and ``language_model_output``, the softmax head and the summed negative log-likelihood.
"""

import functools
import operator
import types
import typing
from typing import NamedTuple

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from ._registry import checked, implements
from .lm import check_ids

#: The context width c·d_e as the runtime checks see it (see ``_checked_context``).
_CONTEXT_AXIS = "c_times_d_e"


def _one_axis(annotation: object) -> object:
    """``annotation`` with the axis ``c*d_e`` renamed to one named axis (unions and tuples included)."""
    dims = getattr(annotation, "dim_str", None)
    if dims is not None:
        return Float[Tensor, dims.replace("c*d_e", _CONTEXT_AXIS)] if "c*d_e" in dims else annotation
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is tuple:
        return tuple[tuple(_one_axis(a) for a in args)]
    if isinstance(annotation, types.UnionType):
        return functools.reduce(operator.or_, (_one_axis(a) for a in args))
    return annotation


def _checked_context(fn):
    """``@checked`` for a function with the context axis ``c*d_e``.

    jaxtyping evaluates ``c*d_e`` only once some argument has bound an axis ``c`` of its own, and no
    argument here has one: the runtime check reads ``c*d_e`` as one axis (the same size wherever it occurs),
    while the verifier binds the annotations as written.
    """
    runtime = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    runtime.__kwdefaults__ = fn.__kwdefaults__
    runtime.__qualname__, runtime.__module__ = fn.__qualname__, fn.__module__
    runtime.__annotations__ = {k: _one_axis(a) for k, a in fn.__annotations__.items()}
    check = checked(runtime)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return check(*args, **kwargs)

    return wrapper


class LMOutput(NamedTuple):
    """A language model's forward pass: for each position, the logits and the distribution they give
    (of the token there for the FFNN, of the next token for the recurrent models), and the loss."""

    logits: Float[Tensor, "*batch n v"]
    probabilities: Float[Tensor, "*batch n v"]
    loss: Float[Tensor, "*batch"]


@checked
def sequence_nll(
    log_probs: Float[Tensor, "*batch n v"], k: Int[Tensor, "*batch n"], shift: int = 0
) -> Float[Tensor, "*batch"]:
    """``−Σ_{t=1}^{n−s} log ŷ_t[k_{t+s}]``: position t's distribution scores token t + s (s = ``shift``)."""
    n = k.shape[-1]
    targets = k[..., shift:].unsqueeze(-1)  # (*batch, n − s, 1)
    picked = log_probs[..., : n - shift, :].gather(-1, targets).squeeze(-1)  # (*batch, n − s)
    return -picked.sum(dim=-1)


def language_model_output(
    logits: Float[Tensor, "*batch n v"], k: Int[Tensor, "*batch n"], shift: int
) -> LMOutput:
    """Softmax of the logits at every position, and the loss from log-softmax (the stable form of
    ``log softmax``)."""
    return LMOutput(
        logits, torch.softmax(logits, dim=-1), sequence_nll(torch.log_softmax(logits, dim=-1), k, shift)
    )


def embed(k: Int[Tensor, "*batch n"], E: Float[Tensor, "d_e v"]) -> Float[Tensor, "*batch n d_e"]:
    """``x_t = E ω_t``: column k_t of E, looked up rather than multiplied."""
    check_ids("ffnn.embed", k, E.shape[-1])
    return E.T[k]  # (*batch, n, d_e)


@implements("ffnn.context", variants={"start_token": {"start": 0}})
@_checked_context
def context(
    k: Int[Tensor, "*batch n"], E: Float[Tensor, "d_e v"], c: int, *, start: int | None = None
) -> Float[Tensor, "*batch n c*d_e"]:
    """``z_t = [E ω_{t−c}; …; E ω_{t−1}]`` for every t, oldest slot first; before the first token the slots
    hold zeros, or the embedding of the token ``start`` (the spec's variant start_token is start = 0)."""
    if c < 1:
        raise ValueError(f"ffnn.context: the context window c must be at least 1, found c={c}")
    X = embed(k, E)  # (*batch, n, d_e)
    pad = torch.zeros_like(X[..., :1, :]) if start is None else E.T[start].expand_as(X[..., :1, :])
    pad = pad.expand(*X.shape[:-2], c, X.shape[-1])  # (*batch, c, d_e): the c slots before token 1
    padded = torch.cat([pad, X], dim=-2)  # (*batch, c + n, d_e): x_{1−c}, …, x_n
    windows = padded.unfold(-2, c, 1)[..., :-1, :, :]  # (*batch, n, d_e, c): window t is x_{t−c}, …, x_{t−1}
    return windows.transpose(-1, -2).flatten(-2)  # (*batch, n, c*d_e)


@implements("ffnn.hidden")
@_checked_context
def hidden(
    z_t: Float[Tensor, "*batch c*d_e"], W_h: Float[Tensor, "d_h c*d_e"], b_h: Float[Tensor, " d_h"]
) -> Float[Tensor, "*batch d_h"]:
    """``h_t = tanh(W_h z_t + b_h)``."""
    return torch.tanh(z_t @ W_h.T + b_h)


def _logits(
    h_t: Tensor, W_o: Tensor, b_o: Tensor, z_t: Tensor | None = None, U: Tensor | None = None
) -> Tensor:
    """``W_o h_t + b_o [+ U z_t]``."""
    if (z_t is None) != (U is None):
        raise ValueError("ffnn: the direct connection needs both the context z_t and its weights U")
    logits = h_t @ W_o.T + b_o
    return logits if U is None else logits + z_t @ U.T


@implements("ffnn.output", variants={"direct": {}})
@_checked_context
def output(
    h_t: Float[Tensor, "*batch d_h"],
    W_o: Float[Tensor, "v d_h"],
    b_o: Float[Tensor, " v"],
    z_t: Float[Tensor, "*batch c*d_e"] | None = None,
    U: Float[Tensor, "v c*d_e"] | None = None,
) -> Float[Tensor, "*batch v"]:
    """``ŷ_t = softmax(W_o h_t + b_o)``; with ``z_t`` and ``U``, Bengio et al.'s direct connection
    ``+ U z_t`` (the spec's variant direct)."""
    return torch.softmax(_logits(h_t, W_o, b_o, z_t, U), dim=-1)


def _forward(
    k: Tensor,
    E: Tensor,
    W_h: Tensor,
    b_h: Tensor,
    W_o: Tensor,
    b_o: Tensor,
    U: Tensor | None,
    start: int | None,
) -> LMOutput:
    d_e, width = E.shape[0], W_h.shape[-1]
    if width % d_e:
        raise ValueError(f"ffnn: W_h has {width} columns, which is not c·d_e for d_e = {d_e}")
    Z = context(k, E, width // d_e, start=start)  # (*batch, n, c*d_e)
    H = hidden(Z, W_h, b_h)  # (*batch, n, d_h)
    logits = _logits(H, W_o, b_o, Z if U is not None else None, U)  # (*batch, n, v)
    return language_model_output(logits, k, shift=0)


@implements("ffnn.loss", variants={"direct": {}})
@_checked_context
def loss(
    k: Int[Tensor, "*batch n"],
    E: Float[Tensor, "d_e v"],
    W_h: Float[Tensor, "d_h c*d_e"],
    b_h: Float[Tensor, " d_h"],
    W_o: Float[Tensor, "v d_h"],
    b_o: Float[Tensor, " v"],
    U: Float[Tensor, "v c*d_e"] | None = None,
    *,
    start: int | None = None,
) -> tuple[Float[Tensor, "*batch n v"], Float[Tensor, "*batch"]]:
    """``Ŷ = [ŷ_1, …, ŷ_n]``, ŷ_t from the c tokens before t, and ``𝓛 = −Σ_{t=1}^{n} log ŷ_t[k_t]``."""
    out = _forward(k, E, W_h, b_h, W_o, b_o, U, start)
    return out.probabilities, out.loss


def positive_sizes(who: str, **sizes: int) -> None:
    """A ValueError naming every size that is not positive."""
    bad = [f"{name}={size}" for name, size in sizes.items() if size <= 0]
    if bad:
        raise ValueError(f"{who}: sizes must be positive, found {', '.join(bad)}")


@implements("ffnn.params")
@checked
def params(v: int, d_e: int, d_h: int, c: int) -> int:
    """``v d_e + d_h (c d_e + 1) + v (d_h + 1)``: E, then W_h and b_h, then W_o and b_o."""
    positive_sizes("ffnn.params", v=v, d_e=d_e, d_h=d_h, c=c)
    return v * d_e + d_h * (c * d_e + 1) + v * (d_h + 1)


class FFNNLM(nn.Module):
    """Bengio et al.'s feed-forward language model: embedding, a window of c tokens, tanh hidden layer,
    softmax output, and with ``direct=True`` the direct connection U from the context to the output."""

    def __init__(self, v: int, d_e: int, d_h: int, c: int, *, direct: bool = False, std: float = 0.1) -> None:
        super().__init__()
        positive_sizes("FFNNLM", v=v, d_e=d_e, d_h=d_h, c=c)
        self.v, self.d_e, self.d_h, self.c = v, d_e, d_h, c
        self.E = nn.Parameter(torch.randn(d_e, v) * std)
        self.W_h = nn.Parameter(torch.randn(d_h, c * d_e) * std)
        self.b_h = nn.Parameter(torch.zeros(d_h))
        self.W_o = nn.Parameter(torch.randn(v, d_h) * std)
        self.b_o = nn.Parameter(torch.zeros(v))
        self.U = nn.Parameter(torch.randn(v, c * d_e) * std) if direct else None

    def forward(self, k: Int[Tensor, "*batch n"]) -> LMOutput:
        """Logits and distributions of every token (token t from the c before it) and the loss over all n."""
        p = self.spec_params()
        return _forward(k, p["E"], p["W_h"], p["b_h"], p["W_o"], p["b_o"], p.get("U"), None)

    def spec_params(self) -> dict[str, Tensor]:
        """The parameters named and oriented as in the spec (U only with the direct connection)."""
        out = {"E": self.E, "W_h": self.W_h, "b_h": self.b_h, "W_o": self.W_o, "b_o": self.b_o}
        return out if self.U is None else {**out, "U": self.U}
