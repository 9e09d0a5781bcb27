"""The LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000), step by step.

Each equation is in the tutorial's step form, over the token's embedding x_t and the previous states
``h_{t−1}``, ``c_{t−1}`` (both 0 before the first token):

- ``lstm.gates``      ``f_t, i_t, o_t = σ(W_• x_t + U_• h_{t−1} + b_•)``;
- ``lstm.candidate``  ``c̃_t = tanh(W_c x_t + U_c h_{t−1} + b_c)``;
- ``lstm.cell``       ``c_t = f_t ⊙ c_{t−1} + i_t ⊙ c̃_t`` (from the gates and the candidate);
- ``lstm.hidden``     the whole step, ending in ``h_t = o_t ⊙ tanh(c_t)``:
  (x_t, h_{t−1}, c_{t−1}) ↦ (h_t, c_t), torch.nn.LSTMCell's form. Its variant ``sequence`` is the step
  unrolled over X ∈ ℝ^{d_e×n} from h_0 = c_0 = 0 (torch.nn.LSTM's form);
- ``lstm.params``     ``4 d_h (d_e + d_h + 1)``: the recurrence alone (four gates with one bias each).

torch.nn.LSTM stacks the four blocks in the order i, f, g (= c̃), o: ``weight_ih = [W_i; W_f; W_c; W_o]``,
``weight_hh = [U_i; U_f; U_c; U_o]``, and has two bias vectors whose sum is ``[b_i; b_f; b_c; b_o]``.
"""

import sympy as sp
from sympy.core.symbol import Str
from sympy.matrices.expressions.matexpr import MatrixExpr

from ._recurrent import SECTION, previous_state, step_input, t
from .axes import d_e, d_h, n
from .equation import Equation, Invariant, Reference
from .ffnn import CountEquation
from .ops import HeadConcat, SpecOp, add, mul
from .ops_nn import Column, Zeros, apply, call, had
from .registry import register
from .tensors import Family, FamilyMember, tensor

SOURCE = "Hochreiter & Schmidhuber 1997; forget gate: Gers et al. 2000"

#: The gates and the candidate, in the tutorial's order, with their activation.
BLOCKS = (("f", "sigmoid"), ("i", "sigmoid"), ("o", "sigmoid"), ("c", "tanh"))
GATES = ("f", "i", "o")


def block_params(name: str) -> tuple:
    W = tensor(f"W_{name}", (d_h, d_e), meaning=f"input weights of {_what(name)}")
    U = tensor(f"U_{name}", (d_h, d_h), meaning=f"recurrent weights of {_what(name)}")
    b = tensor(f"b_{name}", (d_h,), meaning=f"bias of {_what(name)}")
    return W, U, b


def _what(name: str) -> str:
    return {"f": "the forget gate", "i": "the input gate", "o": "the output gate", "c": "the candidate"}[name]


def lstm_params() -> tuple:
    """The 12 parameters of the recurrence: (W_•, U_•, b_•) for • = f, i, o, c."""
    return tuple(p for name, _ in BLOCKS for p in block_params(name))


def _block(name: str, x, h_prev, params: dict):
    """``φ(W_• x + U_• h_{t−1} + b_•)``: the one definition of a gate (σ) or of the candidate (tanh)."""
    act = dict(BLOCKS)[name]
    return apply(act, add(mul(params[f"W_{name}"], x), mul(params[f"U_{name}"], h_prev), params[f"b_{name}"]))


def _cell(f, i, c_prev, c_tilde):
    return add(had(f, c_prev), had(i, c_tilde))


def _hidden(o, c_now):
    return had(o, apply("tanh", c_now))


def _reference() -> Reference:
    return Reference(SECTION, source=SOURCE, status="R")


def _state(name: str, tex: str, meaning: str):
    return tensor(name, (d_h,), tex=tex, meaning=meaning)


# --- lstm.gates -----------------------------------------------------------------------------------------
def gates() -> Equation:
    x_t, h_prev = step_input(), previous_state()
    params = {p.name: p for g in GATES for p in block_params(g)}
    outs = {g: _state(f"{g}_t", f"{g}_{{t}}", _what(g)) for g in GATES}
    return Equation(
        "lstm.gates",
        "LSTM gates",
        inputs=(x_t, h_prev),
        params=tuple(params.values()),
        intermediates=tuple(outs.values()),
        bindings=[(outs[g], _block(g, x_t, h_prev, params)) for g in GATES],
        outputs=tuple(outs.values()),
        reference=_reference(),
        invariants=(Invariant("gates_in_unit_interval", {"gates": ["f_t", "i_t", "o_t"]}),),
        notes="f_t (forget), i_t (input) and o_t (output) are σ(W_• x_t + U_• h_{t−1} + b_•) ∈ (0,1)^{d_h}, "
        "each a gate in the sense of rnn.gate. torch.nn.LSTM orders its blocks i, f, g, o.",
    )


# --- lstm.candidate -------------------------------------------------------------------------------------
def candidate() -> Equation:
    x_t, h_prev = step_input(), previous_state()
    params = {p.name: p for p in block_params("c")}
    c_tilde = _state("c_tilde", r"\tilde{c}_{t}", "candidate cell state")
    return Equation(
        "lstm.candidate",
        "LSTM candidate cell state",
        inputs=(x_t, h_prev),
        params=tuple(params.values()),
        intermediates=(c_tilde,),
        bindings=[(c_tilde, _block("c", x_t, h_prev, params))],
        outputs=(c_tilde,),
        reference=_reference(),
        invariants=(Invariant("lies_between", {"value": "c_tilde", "low": -1, "high": 1}),),
        notes="c̃_t = tanh(W_c x_t + U_c h_{t−1} + b_c) ∈ (−1,1)^{d_h}; torch.nn.LSTM calls it g.",
    )


# --- lstm.cell ------------------------------------------------------------------------------------------
def cell() -> Equation:
    f_t, i_t = _state("f_t", "f_{t}", _what("f")), _state("i_t", "i_{t}", _what("i"))
    c_prev = _state("c_prev", "c_{t - 1}", "cell state after the previous token (0 before the first)")
    c_tilde = _state("c_tilde", r"\tilde{c}_{t}", "candidate cell state")
    c_t = _state("c_t", "c_{t}", "cell state after token t")
    return Equation(
        "lstm.cell",
        "LSTM cell state update",
        inputs=(f_t, i_t, c_prev, c_tilde),
        intermediates=(c_t,),
        bindings=[(c_t, _cell(f_t, i_t, c_prev, c_tilde))],
        outputs=(c_t,),
        reference=_reference(),
        notes="c_t = f_t ⊙ c_{t−1} + i_t ⊙ c̃_t: the forget gate keeps part of the old cell state, the "
        "input gate lets in part of the candidate.",
    )


# --- lstm.hidden ----------------------------------------------------------------------------------------
def _step_equation() -> Equation:
    x_t, h_prev = step_input(), previous_state()
    c_prev = _state("c_prev", "c_{t - 1}", "cell state after the previous token (0 before the first)")
    params = {p.name: p for p in lstm_params()}
    g = {name: _state(f"{name}_t", f"{name}_{{t}}", _what(name)) for name in GATES}
    c_tilde = _state("c_tilde", r"\tilde{c}_{t}", "candidate cell state")
    c_t = _state("c_t", "c_{t}", "cell state after token t")
    h_t = _state("h_t", "h_{t}", "hidden state after token t")
    return Equation(
        "lstm.hidden",
        "LSTM step: hidden state h_t = o_t ⊙ tanh(c_t)",
        inputs=(x_t, h_prev, c_prev),
        params=tuple(params.values()),
        intermediates=(*g.values(), c_tilde, c_t, h_t),
        bindings=[
            *[(g[name], _block(name, x_t, h_prev, params)) for name in GATES],
            (c_tilde, _block("c", x_t, h_prev, params)),
            (c_t, _cell(g["f"], g["i"], c_prev, c_tilde)),
            (h_t, _hidden(g["o"], c_t)),
        ],
        outputs=(h_t, c_t),
        reference=_reference(),
        invariants=(
            Invariant(
                "unrolls_to_sequence",
                {
                    "sequence": "lstm.hidden[sequence]",
                    "input": {"x_t": "X"},
                    "state": {"h_prev": "h_t", "c_prev": "c_t"},
                    "outputs": {"h_t": "H", "c_t": "C"},
                },
            ),
            Invariant("lies_between", {"value": "h_t", "low": -1, "high": 1}),
        ),
        notes="One step of the LSTM, (x_t, h_{t−1}, c_{t−1}) ↦ (h_t, c_t), composed of lstm.gates, "
        "lstm.candidate and lstm.cell, ending in h_t = o_t ⊙ tanh(c_t) ∈ (−1,1)^{d_h} (torch.nn.LSTMCell).",
    )


class VStack(SpecOp):
    """Two blocks on top of one another, ``[A; B]`` (a state made of two vectors)."""

    def __new__(cls, A: sp.Basic, B: sp.Basic) -> "VStack":
        return MatrixExpr.__new__(cls, A, B)

    @property
    def shape(self):
        A, B = self.args
        return (A.shape[0] + B.shape[0], A.shape[1])

    def _check_shapes(self, checker) -> None:
        A, B = self.args
        checker.require("vertical stack", "columns", A, A.shape[1], B, B.shape[1])

    def _entry(self, i, j, **kwargs):
        A, B = self.args
        return sp.Piecewise((A[i, j], sp.Lt(i, A.shape[0])), (B[i - A.shape[0], j], True))

    def _explicit(self, explicit):
        return sp.ImmutableMatrix(sp.Matrix.vstack(*(explicit(a) for a in self.args)))

    def _latex(self, printer) -> str:
        A, B = (printer._print(a) for a in self.args)
        return rf"\begin{{bmatrix}} {A} \\ {B} \end{{bmatrix}}"

    def _torchcode(self, ctx) -> str:
        A, B = (ctx.emit(ctx.expr(a)) for a in self.args)
        batch = ctx.emit(f"torch.broadcast_shapes({A}.shape[:-2], {B}.shape[:-2])")
        parts = ", ".join(f"{x}.expand(*{batch}, *{x}.shape[-2:])" for x in (A, B))
        return f"torch.cat([{parts}], dim=-2)"


class Part(SpecOp):
    """Rows ``offset + 1 .. offset + rows`` of X, written with a name of their own: the part ``h_{t−1}`` of
    the stacked state ``[h_{t−1}; c_{t−1}]``. ``tex`` names the part, ``{index}`` standing for the index of X
    when X is a member of a family."""

    def __new__(cls, X: sp.Basic, offset: sp.Expr, rows: sp.Expr, tex: str | Str) -> "Part":
        return MatrixExpr.__new__(
            cls, X, sp.sympify(offset), sp.sympify(rows), tex if isinstance(tex, Str) else Str(tex)
        )

    @property
    def shape(self):
        return (self.args[2], self.args[0].shape[1])

    def _entry(self, i, j, **kwargs):
        return self.args[0][self.args[1] + i, j]

    def _latex(self, printer) -> str:
        X, offset, rows, tex = self.args
        if isinstance(X, FamilyMember):
            return tex.name.replace("{index}", ",".join(printer._print(k) for k in X.indices))
        first, last = printer._print(offset + 1), printer._print(offset + rows)
        return rf"{printer._print(X)}_{{{first}:{last}}}"

    def _torchcode(self, ctx) -> str:
        X = ctx.emit(ctx.expr(self.args[0]))
        first, rows = (ctx.size(a) for a in self.args[1:3])
        return f"{X}[..., {first} : {first} + {rows}, :]"


def _sequence_equation() -> Equation:
    X = tensor("X", (d_e, n), meaning="embedded tokens, column t = x_t")
    params = {p.name: p for p in lstm_params()}
    s = Family(
        "s",
        t,
        n,
        (2 * d_h,),
        start=0,
        tex=r"\begin{bmatrix} h_{{index}} \\ c_{{index}} \end{bmatrix}",
        meaning="state after token t: h_t on top of c_t",
    )
    H = tensor("H", (d_h, n), meaning="hidden states, column t = h_t")
    C = tensor("C", (d_h, n), meaning="cell states, column t = c_t")
    step = {"x_t": Column(X, t), "h_prev": _h_part(s[t - 1]), "c_prev": _c_part(s[t - 1]), **params}
    return Equation(
        "lstm.hidden",
        "LSTM, unrolled over a sequence",
        inputs=(X,),
        params=tuple(params.values()),
        intermediates=(s, H, C),
        bindings=[
            (s[0], Zeros(2 * d_h)),
            (
                s[t],
                VStack(
                    call("lstm.hidden", "h_t", tex=r"\operatorname{LSTM}_{h}", **step),
                    call("lstm.hidden", "c_t", tex=r"\operatorname{LSTM}_{c}", **step),
                ),
            ),
            (H, HeadConcat(_h_part(s[t]), t, n)),
            (C, HeadConcat(_c_part(s[t]), t, n)),
        ],
        outputs=(H, C),
        reference=_reference(),
        invariants=(
            Invariant("causal_in_tokens", {"tokens": {"X": 1}, "outputs": {"H": 1, "C": 1}, "lag": 0}),
        ),
        notes="h_0 = c_0 = 0, then the LSTM step (lstm.hidden) for t = 1..n (torch.nn.LSTM). The two states "
        "are one family [h_t; c_t] because each step needs both of the previous ones.",
    )


def _h_part(state):
    return Part(state, 0, d_h, "h_{{index}}")


def _c_part(state):
    return Part(state, d_h, d_h, "c_{{index}}")


def hidden(sequence: bool = False) -> Equation:
    return _sequence_equation() if sequence else _step_equation()


# --- lstm.params ----------------------------------------------------------------------------------------
def params(two_biases: bool = False) -> Equation:
    return CountEquation(
        "lstm.params",
        "Parameter count of the LSTM recurrence",
        4 * d_h * (d_e + d_h + (2 if two_biases else 1)),
        reference=_reference(),
        invariants=()
        if two_biases
        else (Invariant("count_equals_model_numel", {"model": "impl.lstm:LSTMCell"}),),
        notes="Four blocks (f, i, o, c̃), each W_• ∈ ℝ^{d_h×d_e}, U_• ∈ ℝ^{d_h×d_h}, b_• ∈ ℝ^{d_h}. The "
        "embedding and the output layer of an LSTM language model are counted as in rnn.params.",
    )


register(gates())
register(candidate())
register(cell())
register(hidden()).add_variant(
    "sequence",
    lambda: hidden(sequence=True),
    "the step unrolled over X ∈ ℝ^{d_e×n} from h_0 = c_0 = 0, outputs H and C (torch.nn.LSTM's form)",
)
register(params()).add_variant(
    "two_biases",
    lambda: params(two_biases=True),
    "two bias vectors per block (torch.nn.LSTM and LSTMCell: bias_ih and bias_hh): 4 d_h (d_e + d_h + 2)",
)
