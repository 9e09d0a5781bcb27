# ruff: noqa: F722
"""Built-in audit targets: ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU`` (torch 2.13), one step and whole sequences.

torch holds two bias vectors per gate where the spec has one: the spec's bias goes in ``bias_ih_l0`` and
``bias_hh_l0`` is zero. How the built-ins build and call torch's objects: _torch.
"""

from collections.abc import Callable, Mapping

import torch
from jaxtyping import Float
from torch import Tensor, nn

from ._registry import builtin
from ._torch import build, call

# --- nn.RNN / nn.LSTM / nn.GRU ------------------------------------------------------------------------------
_TWO_BIASES = (
    "torch holds two bias vectors whose sum is the spec's bias: all of it in bias_ih_l0, bias_hh_l0 = 0"
)


def _zeros(b: Tensor) -> Tensor:
    return torch.zeros_like(b)


def _rnn_params(W_x: Tensor, W_h: Tensor, b_h: Tensor) -> dict[str, Tensor]:
    return {"weight_ih_l0": W_x, "weight_hh_l0": W_h, "bias_ih_l0": b_h, "bias_hh_l0": _zeros(b_h)}


_RNN_MAPPING = {
    "W_x": "weight_ih_l0",
    "W_h": "weight_hh_l0",
    "b_h": "bias_ih_l0 + bias_hh_l0 (bias_ih_l0 = b_h, bias_hh_l0 = 0)",
    "d_e": "input_size",
    "d_h": "hidden_size",
}


@builtin(
    "torch.nn.RNN",
    "rnn.elman_step[sequence]",
    description=(
        "nn.RNN(d_e, d_h, nonlinearity='tanh', batch_first=True) over the whole sequence from h_0 = 0: "
        f"output, h_n = rnn(X); H = output. {_TWO_BIASES}."
    ),
    mapping={"X": "input (batch, n, d_e)", "H": "output (batch, n, d_h)", **_RNN_MAPPING},
)
def _rnn_sequence() -> Callable:
    def rnn(
        X: Float[Tensor, "*batch n d_e"],
        W_x: Float[Tensor, "d_h d_e"],
        W_h: Float[Tensor, "d_h d_h"],
        b_h: Float[Tensor, " d_h"],
    ) -> Float[Tensor, "*batch n d_h"]:
        *batch, n, d_e = X.shape
        module = build(nn.RNN, d_e, W_h.shape[0], nonlinearity="tanh", batch_first=True, like=X)
        output, _ = call(module, _rnn_params(W_x, W_h, b_h), X.reshape(-1, n, d_e))
        return output.reshape(*batch, n, -1)

    return rnn


@builtin(
    "torch.nn.RNN[h_0]",
    "rnn.elman_step",
    description=(
        "One step of nn.RNN(d_e, d_h, nonlinearity='tanh', batch_first=True): "
        f"output, h_n = rnn(x_t[:, None], h_0) with h_0 = h_{{t−1}}; h_t = h_n. {_TWO_BIASES}."
    ),
    mapping={
        "x_t": "input (batch, 1, d_e)",
        "h_prev": "h_0 (1, batch, d_h)",
        "h_t": "h_n[0]",
        **_RNN_MAPPING,
    },
)
def _rnn_step() -> Callable:
    def rnn(
        x_t: Float[Tensor, "*batch d_e"],
        h_prev: Float[Tensor, "*batch d_h"],
        W_x: Float[Tensor, "d_h d_e"],
        W_h: Float[Tensor, "d_h d_h"],
        b_h: Float[Tensor, " d_h"],
    ) -> Float[Tensor, "*batch d_h"]:
        *batch, d_e = x_t.shape
        d_h = W_h.shape[0]
        module = build(nn.RNN, d_e, d_h, nonlinearity="tanh", batch_first=True, like=x_t)
        x, h_0 = x_t.reshape(-1, 1, d_e), h_prev.reshape(1, -1, d_h)
        _, h_n = call(module, _rnn_params(W_x, W_h, b_h), x, h_0)
        return h_n[0].reshape(*batch, d_h)

    return rnn


def _lstm_params(p: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """torch's gate order i, f, g (= c̃), o."""
    b = torch.cat([p["b_i"], p["b_f"], p["b_c"], p["b_o"]])
    return {
        "weight_ih_l0": torch.cat([p["W_i"], p["W_f"], p["W_c"], p["W_o"]]),
        "weight_hh_l0": torch.cat([p["U_i"], p["U_f"], p["U_c"], p["U_o"]]),
        "bias_ih_l0": b,
        "bias_hh_l0": _zeros(b),
    }


_LSTM_MAPPING = {
    "W_i, W_f, W_c, W_o": "weight_ih_l0 row blocks 0, 1, 2, 3 (torch's gate order i, f, g = c̃, o)",
    "U_i, U_f, U_c, U_o": "weight_hh_l0 row blocks 0, 1, 2, 3",
    "b_i, b_f, b_c, b_o": "bias_ih_l0 blocks 0, 1, 2, 3 (+ bias_hh_l0 = 0)",
    "d_e": "input_size",
    "d_h": "hidden_size",
}
_LSTM_NOTE = f"{_TWO_BIASES} (each in torch's gate order i, f, g, o)"


def _lstm_step_signature(run: Callable) -> Callable:
    def lstm(
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
        params = dict(W_f=W_f, U_f=U_f, b_f=b_f, W_i=W_i, U_i=U_i, b_i=b_i)
        params.update(W_o=W_o, U_o=U_o, b_o=b_o, W_c=W_c, U_c=U_c, b_c=b_c)
        return run(x_t, h_prev, c_prev, params)

    return lstm


@builtin(
    "torch.nn.LSTM[h_0,c_0]",
    "lstm.hidden",
    description=(
        "One step of nn.LSTM(d_e, d_h, batch_first=True): "
        "output, (h_n, c_n) = lstm(x_t[:, None], (h_0, c_0)) "
        f"with h_0 = h_{{t−1}}, c_0 = c_{{t−1}}; h_t = h_n, c_t = c_n. {_LSTM_NOTE}."
    ),
    mapping={"x_t": "input (batch, 1, d_e)", "h_prev, c_prev": "(h_0, c_0)", "h_t, c_t": "(h_n[0], c_n[0])"}
    | _LSTM_MAPPING,
)
def _lstm_step() -> Callable:
    def run(x_t: Tensor, h_prev: Tensor, c_prev: Tensor, p: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        *batch, d_e = x_t.shape
        d_h = p["W_f"].shape[0]
        module = build(nn.LSTM, d_e, d_h, batch_first=True, like=x_t)
        state = (h_prev.reshape(1, -1, d_h), c_prev.reshape(1, -1, d_h))
        _, (h_n, c_n) = call(module, _lstm_params(p), x_t.reshape(-1, 1, d_e), state)
        return h_n[0].reshape(*batch, d_h), c_n[0].reshape(*batch, d_h)

    return _lstm_step_signature(run)


@builtin(
    "torch.nn.LSTM",
    "lstm.hidden[sequence]",
    description=(
        "nn.LSTM(d_e, d_h, batch_first=True) from h_0 = c_0 = 0. H is the output of one call over the whole "
        "sequence, output, _ = lstm(X); torch returns only the last cell state, so C = [c_1, …, c_n] is read "
        "from the same module stepped token by token, _, (h, c) = lstm(X[:, t:t+1], (h, c)), as a decoding "
        f"loop calls it. {_LSTM_NOTE}."
    ),
    mapping={"X": "input (batch, n, d_e)", "H": "output", "C": "c_n of each step, stacked"} | _LSTM_MAPPING,
)
def _lstm_sequence() -> Callable:
    def lstm(
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
    ) -> tuple[Float[Tensor, "*batch n d_h"], Float[Tensor, "*batch n d_h"]]:
        *batch, n, d_e = X.shape
        d_h = W_f.shape[0]
        params = _lstm_params(dict(W_f=W_f, U_f=U_f, b_f=b_f, W_i=W_i, U_i=U_i, b_i=b_i, W_o=W_o, U_o=U_o,
                                   b_o=b_o, W_c=W_c, U_c=U_c, b_c=b_c))  # fmt: skip
        module = build(nn.LSTM, d_e, d_h, batch_first=True, like=X)
        x = X.reshape(-1, n, d_e)
        output, _ = call(module, params, x)
        cells, state = [], None
        for t in range(n):
            _, state = call(module, params, x[:, t : t + 1], state)
            cells.append(state[1][0])  # c_t: (B, d_h)
        C = torch.stack(cells, dim=-2)
        return output.reshape(*batch, n, d_h), C.reshape(*batch, n, d_h)

    return lstm


@builtin(
    "torch.nn.GRU",
    "gru.step[sequence]",
    description=(
        "nn.GRU(d_e, d_h, batch_first=True) over the whole sequence from h_0 = 0: output, h_n = gru(X); "
        "H = output. KNOWN DIFFERENCE: torch's GRU applies the reset gate after the recurrent product, "
        "h̃ = tanh(W x + b + r ⊙ (U h + b_U)) (the spec's one-step variant gru.step[reset_after]), while "
        "gru.step[sequence] unrolls the catalogue's h̃ = tanh(W x + U (r ⊙ h) + b): the audit fails on the "
        "values from the second token on. The spec has no unrolled reset_after form, and torch returns none "
        "of r_t, z_t, h̃_t, so gru.step[reset_after] itself cannot be audited on nn.GRU. torch's update gate "
        f"is the spec's 1 − z: its z-blocks are −W_z, −U_z, −b_z. {_TWO_BIASES} (b_U = 0)."
    ),
    mapping={
        "X": "input (batch, n, d_e)",
        "H": "output",
        "W_r, W_z, W": "weight_ih_l0 row blocks r, z, n: W_r, −W_z, W (torch's z is the spec's 1 − z)",
        "U_r, U_z, U": "weight_hh_l0 row blocks r, z, n: U_r, −U_z, U",
        "b_r, b_z, b": "bias_ih_l0 blocks r, z, n: b_r, −b_z, b (+ bias_hh_l0 = 0)",
        "d_e": "input_size",
        "d_h": "hidden_size",
    },
)
def _gru_sequence() -> Callable:
    def gru(
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
    ) -> Float[Tensor, "*batch n d_h"]:
        *batch, n, d_e = X.shape
        d_h = W.shape[0]
        bias = torch.cat([b_r, -b_z, b])
        params = {
            "weight_ih_l0": torch.cat([W_r, -W_z, W]),
            "weight_hh_l0": torch.cat([U_r, -U_z, U]),
            "bias_ih_l0": bias,
            "bias_hh_l0": _zeros(bias),
        }
        module = build(nn.GRU, d_e, d_h, batch_first=True, like=X)
        output, _ = call(module, params, X.reshape(-1, n, d_e))
        return output.reshape(*batch, n, d_h)

    return gru
