# ruff: noqa: F722
"""Built-in audit targets of one recurrent step: ``nn.RNNCell``, ``nn.LSTMCell`` and ``nn.GRUCell``
(torch 2.13), called as a decoding loop calls them, ``h = cell(x_t, h)``.

The cells hold the same weights as nn.RNN / nn.LSTM / nn.GRU without the ``_l0`` suffix: ``weight_ih``
(input rows), ``weight_hh`` (recurrent rows) and two bias vectors per gate, ``bias_ih`` and ``bias_hh``. In
the RNN and LSTM cells the two are only ever added, so their sum is the spec's bias: all of it goes in
``bias_ih``, and ``bias_hh`` is zero (as torch_recurrent does). The GRU cell is different: its ``bias_hh``
n-block sits inside the reset gate, ``n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`` — torch's GRU applies
the reset gate *after* the recurrent product (``reset_after``, Cho et al.'s second form), so ``b_hn`` is the
spec's ``b_U`` of ``gru.step[reset_after]``, not a second half of ``b``. The spec's GRU (reset before the
product) has no such bias, so the built-in sets ``b_hn = 0``; the r- and z-blocks of ``bias_hh`` are zero as
in the other cells.

``nn.GRUCell`` is audited two ways. ``torch.nn.GRUCell`` loops it over a sequence (``gru.step[sequence]``,
``h = cell(x_t, h)`` from ``h = None``, torch's zeros): the audit fails from the second token on (the first
starts from h_0 = 0, where the two forms agree), and the spec has no unrolled reset-after form to name.
``torch.nn.GRUCell[h]`` is one step against ``gru.step`` with a layout that returns h_t only (the equation's
outputs also include r_t, z_t and h̃_t, which torch does not return; the checks compare h_t alone): its
verdict is ``variant``, matching ``gru.step[reset_after]`` with b_U pinned to 0 (bias_hh's n-block is 0).
How the built-ins build and call torch's objects: _torch.
"""

from collections.abc import Callable

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor, nn

from ._registry import builtin
from ._torch import build, call
from .torch_recurrent import _lstm_params, _lstm_step_signature, _rnn_params, _zeros

_TWO_BIASES = (
    "torch holds two bias vectors that it only adds, bias_ih + bias_hh, where the spec has one: all of the "
    "spec's bias goes in bias_ih, bias_hh = 0"
)


def _rows(x: Tensor, d: int) -> Tensor:
    """A cell's input with its leading batch axes flattened into torch's one, ``(B, d)``."""
    return x.reshape(-1, d)


# --- nn.RNNCell ---------------------------------------------------------------------------------------------
@builtin(
    "torch.nn.RNNCell",
    "rnn.elman_step",
    description=(
        "nn.RNNCell(d_e, d_h, nonlinearity='tanh'), one step: h_t = cell(x_t, h_{t−1}) on a batch of rows "
        f"(B, d_e), (B, d_h). {_TWO_BIASES}."
    ),
    mapping={
        "x_t": "input (batch, d_e)",
        "h_prev": "hx (batch, d_h)",
        "h_t": "the returned h' (batch, d_h)",
        "W_x": "weight_ih",
        "W_h": "weight_hh",
        "b_h": "bias_ih + bias_hh (bias_ih = b_h, bias_hh = 0)",
        "d_e": "input_size",
        "d_h": "hidden_size",
    },
)
def _rnn_cell() -> Callable:
    def rnn_cell(
        x_t: Float[Tensor, "*batch d_e"],
        h_prev: Float[Tensor, "*batch d_h"],
        W_x: Float[Tensor, "d_h d_e"],
        W_h: Float[Tensor, "d_h d_h"],
        b_h: Float[Tensor, " d_h"],
    ) -> Float[Tensor, "*batch d_h"]:
        *batch, d_e = x_t.shape
        d_h = W_h.shape[0]
        cell = build(nn.RNNCell, d_e, d_h, nonlinearity="tanh", like=x_t)
        params = {k.removesuffix("_l0"): v for k, v in _rnn_params(W_x, W_h, b_h).items()}  # as nn.RNN
        h_t = call(cell, params, _rows(x_t, d_e), _rows(h_prev, d_h))  # (B, d_h)
        return h_t.reshape(*batch, d_h)

    return rnn_cell


# --- nn.LSTMCell --------------------------------------------------------------------------------------------
@builtin(
    "torch.nn.LSTMCell",
    "lstm.hidden",
    description=(
        "nn.LSTMCell(d_e, d_h), one step: h_t, c_t = cell(x_t, (h_{t−1}, c_{t−1})) on a batch of rows. "
        "torch stacks the four gates' rows in the order i, f, g (= c̃), o; lstm.hidden is the step with both "
        f"states as its outputs, as torch.nn.LSTM[h_0,c_0]. {_TWO_BIASES} (in torch's gate order)."
    ),
    mapping={
        "x_t": "input (batch, d_e)",
        "h_prev, c_prev": "hx = (h_0, c_0), each (batch, d_h)",
        "h_t, c_t": "the returned (h_1, c_1)",
        "W_i, W_f, W_c, W_o": "weight_ih row blocks 0, 1, 2, 3 (torch's gate order i, f, g = c̃, o)",
        "U_i, U_f, U_c, U_o": "weight_hh row blocks 0, 1, 2, 3",
        "b_i, b_f, b_c, b_o": "bias_ih blocks 0, 1, 2, 3 (+ bias_hh = 0)",
        "d_e": "input_size",
        "d_h": "hidden_size",
    },
)
def _lstm_cell() -> Callable:
    def run(x_t: Tensor, h_prev: Tensor, c_prev: Tensor, p: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        *batch, d_e = x_t.shape
        d_h = p["W_f"].shape[0]
        # nn.LSTM's layer-0 parameters are the cell's, without the suffix (torch's gate order i, f, g, o)
        params = {k.removesuffix("_l0"): v for k, v in _lstm_params(p).items()}
        cell = build(nn.LSTMCell, d_e, d_h, like=x_t)
        h_t, c_t = call(cell, params, _rows(x_t, d_e), (_rows(h_prev, d_h), _rows(c_prev, d_h)))
        return h_t.reshape(*batch, d_h), c_t.reshape(*batch, d_h)

    return _lstm_step_signature(run)


# --- nn.GRUCell ---------------------------------------------------------------------------------------------
def _gru_params(
    W_r: Tensor,
    U_r: Tensor,
    b_r: Tensor,
    W_z: Tensor,
    U_z: Tensor,
    b_z: Tensor,
    W: Tensor,
    U: Tensor,
    b: Tensor,
) -> dict[str, Tensor]:
    """nn.GRUCell's parameters holding the spec's GRU: torch's row blocks are r, z, n, and its update gate is
    the spec's 1 − z (z-blocks negated, as σ(−a) = 1 − σ(a)); bias_hh = 0: its r- and z-blocks only add to
    bias_ih's, and its n-block is reset_after's b_U, which the spec's GRU does not have."""
    bias = torch.cat([b_r, -b_z, b])
    return {
        "weight_ih": torch.cat([W_r, -W_z, W]),  # (3 d_h, d_e)
        "weight_hh": torch.cat([U_r, -U_z, U]),  # (3 d_h, d_h)
        "bias_ih": bias,
        "bias_hh": _zeros(bias),
    }


_GRU_MAPPING = (
    ("W_r, W_z, W", "weight_ih row blocks r, z, n: W_r, −W_z, W (torch's z is the spec's 1 − z)"),
    ("U_r, U_z, U", "weight_hh row blocks r, z, n: U_r, −U_z, U"),
    ("b_r, b_z, b", "bias_ih blocks r, z, n: b_r, −b_z, b"),
    ("b_U (reset_after)", "bias_hh block n, inside the reset gate; bias_hh = 0 (no b_U in gru.step)"),
    ("d_e", "input_size"),
    ("d_h", "hidden_size"),
)
_GRU_FORM = (
    "torch's update gate is the spec's 1 − z: its z-blocks are −W_z, −U_z, −b_z. Of torch's two biases, the "
    "r- and z-blocks are only added (the spec's bias in bias_ih, bias_hh = 0 there); bias_hh's n-block is "
    "b_U inside the reset gate, which the catalogue's GRU does not have: it is 0 here."
)


@builtin(
    "torch.nn.GRUCell",
    "gru.step[sequence]",
    description=(
        "nn.GRUCell(d_e, d_h) looped over the sequence as a decoding loop calls it: h = None, then "
        "h = cell(x_t, h) for t = 1..n (None is torch's h_0 = 0); H = [h_1, …, h_n]. KNOWN DIFFERENCE: "
        "torch's GRU cell applies the reset gate after the recurrent product, "
        "h̃ = tanh(W x + b + r ⊙ (U h + b_U)) (the spec's one-step variant gru.step[reset_after]), while "
        "gru.step[sequence] unrolls the catalogue's h̃ = tanh(W x + U (r ⊙ h) + b): the audit fails on the "
        "values from the second token on (from h_0 = 0 the two agree). The spec has no unrolled reset_after "
        "form, so the diagnosis names no variant; one step of the cell is torch.nn.GRUCell[h], which matches "
        f"gru.step[reset_after]. {_GRU_FORM}"
    ),
    mapping=(
        ("X", "the inputs x_t = X[:, t] (batch, d_e), one call each"),
        ("H", "the returned h of each call, stacked on t"),
        *_GRU_MAPPING,
    ),
)
def _gru_cell() -> Callable:
    def gru_cell(
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
        params = _gru_params(W_r, U_r, b_r, W_z, U_z, b_z, W, U, b)
        cell = build(nn.GRUCell, d_e, d_h, like=X)
        x = X.reshape(-1, n, d_e)  # (B, n, d_e)
        h, states = None, []
        for t in range(n):
            h = call(cell, params, x[:, t], h)  # (B, d_h)
            states.append(h)
        H = torch.stack(states, dim=-2)  # (B, n, d_h)
        return H.reshape(*batch, n, d_h)

    return gru_cell


#: torch.nn.GRUCell[h]'s binding: the step's inputs and parameters as the spec lays them out, h_t returned.
_GRU_STEP_LAYOUT = (
    "x_t=*batch d_e, h_prev=*batch d_h, W_r=d_h d_e, U_r=d_h d_h, b_r=d_h, W_z=d_h d_e, U_z=d_h d_h, "
    "b_z=d_h, W=d_h d_e, U=d_h d_h, b=d_h -> h_t=*batch d_h"
)


def _no_b_U(sizes) -> np.ndarray:
    """b_U = 0, as the built-in's bias_hh n-block is: gru.step[reset_after]'s b_U, which the diagnosis
    evaluates."""
    return np.zeros(int(sizes["d_h"]))


@builtin(
    "torch.nn.GRUCell[h]",
    "gru.step",
    description=(
        "nn.GRUCell(d_e, d_h), one step: h_t = cell(x_t, h_{t−1}) on a batch of rows (B, d_e), (B, d_h). "
        "torch returns h_t only; gru.step's outputs are r_t, z_t, h̃_t and h_t, so the built-in's layout "
        "returns h_t and the checks compare it alone. KNOWN DIFFERENCE: torch's GRU cell applies the reset "
        "gate after the recurrent product, h̃ = tanh(W x + b + r ⊙ (U h + b_U)), where gru.step has "
        "h̃ = tanh(W x + U (r ⊙ h) + b): the audit fails against gru.step and matches its variant reset_after "
        "(Cho et al.'s second form, cuDNN's and Keras' reset_after), with b_U pinned to 0 as bias_hh's "
        f"n-block is. {_GRU_FORM}"
    ),
    mapping=(
        ("x_t", "input (batch, d_e)"),
        ("h_prev", "hx (batch, d_h)"),
        ("h_t", "the returned h' (batch, d_h); r_t, z_t, h̃_t are not returned"),
        *_GRU_MAPPING,
    ),
    pins={"b_U": _no_b_U},
    layout=_GRU_STEP_LAYOUT,
)
def _gru_cell_step() -> Callable:
    def gru_cell_step(
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
    ) -> Float[Tensor, "*batch d_h"]:
        *batch, d_e = x_t.shape
        d_h = W.shape[0]
        cell = build(nn.GRUCell, d_e, d_h, like=x_t)
        params = _gru_params(W_r, U_r, b_r, W_z, U_z, b_z, W, U, b)
        h_t = call(cell, params, _rows(x_t, d_e), _rows(h_prev, d_h))  # (B, d_h)
        return h_t.reshape(*batch, d_h)

    return gru_cell_step
