"""The gated recurrent unit (Cho et al. 2014), in the catalogue's form.

``r_t = σ(W_r x_t + U_r h_{t−1} + b_r)`` (reset gate), ``z_t = σ(W_z x_t + U_z h_{t−1} + b_z)`` (update gate),
``h̃_t = tanh(W x_t + U (r_t ⊙ h_{t−1}) + b)`` and ``h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ h̃_t``: the new state is
an entry-wise convex combination of the old state and the candidate.

Real code differs in two ways:

- torch.nn.GRU, cuDNN and Keras (reset_after=True) apply the reset gate *after* the recurrent product,
  ``h̃_t = tanh(W x_t + b + r_t ⊙ (U h_{t−1} + b_U))``, with a second bias b_U inside: the named variant
  ``reset_after``. It is a different function of the same parameters, not a reparametrisation.
- torch writes ``h_t = (1 − z'_t) ⊙ h̃_t + z'_t ⊙ h_{t−1}``: its update gate is our 1 − z_t, i.e. torch's
  update-gate weights and biases are ours negated (σ(−a) = 1 − σ(a)).

torch stacks the blocks in the order r, z, n (= h̃): ``weight_ih = [W_r; W_z; W]``,
``weight_hh = [U_r; U_z; U]``.
"""

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr

from ._recurrent import SECTION, previous_state, step_input, t
from .axes import d_e, d_h, n
from .equation import Equation, Invariant, Reference
from .ops import HeadConcat, SpecOp, add, mul
from .ops_nn import Column, Zeros, apply, call, had
from .registry import register
from .tensors import Family, tensor

SOURCE = "Cho et al. 2014; the interpolation as written by Chung et al. 2014"


class OneMinus(SpecOp):
    """``1 − z`` entry by entry (the complement of a gate)."""

    def __new__(cls, X: sp.Basic) -> "OneMinus":
        return MatrixExpr.__new__(cls, X)

    @property
    def shape(self):
        return self.args[0].shape

    def _entry(self, i, j, **kwargs):
        return 1 - self.args[0][i, j]

    def _latex(self, printer) -> str:
        return rf"\left(1 - {printer._print(self.args[0])}\right)"

    def _torchcode(self, ctx) -> str:
        return f"(1 - {ctx.emit(ctx.expr(self.args[0]))})"


def gru_params(reset_after: bool = False) -> tuple:
    """(W_r, U_r, b_r, W_z, U_z, b_z, W, U, b), and b_U for the reset-after form."""
    out = []
    for sub, what in (("r", "the reset gate"), ("z", "the update gate"), ("", "the candidate")):
        name = f"_{sub}" if sub else ""
        out += [
            tensor(f"W{name}", (d_h, d_e), meaning=f"input weights of {what}"),
            tensor(f"U{name}", (d_h, d_h), meaning=f"recurrent weights of {what}"),
            tensor(f"b{name}", (d_h,), meaning=f"bias of {what}"),
        ]
    if reset_after:
        out.append(tensor("b_U", (d_h,), meaning="bias of the recurrent product, inside the reset gate"))
    return tuple(out)


def _gate(sub: str, x, h_prev, p: dict):
    return apply("sigmoid", add(mul(p[f"W_{sub}"], x), mul(p[f"U_{sub}"], h_prev), p[f"b_{sub}"]))


def _candidate(x, h_prev, r, p: dict, reset_after: bool):
    if reset_after:
        return apply("tanh", add(mul(p["W"], x), p["b"], had(r, add(mul(p["U"], h_prev), p["b_U"]))))
    return apply("tanh", add(mul(p["W"], x), mul(p["U"], had(r, h_prev)), p["b"]))


def _interpolate(z, h_prev, h_tilde):
    return add(had(OneMinus(z), h_prev), had(z, h_tilde))


def _vector(name: str, tex: str, meaning: str):
    return tensor(name, (d_h,), tex=tex, meaning=meaning)


def step(reset_after: bool = False, sequence: bool = False) -> Equation:
    params = gru_params(reset_after)
    p = {q.name: q for q in params}
    reference = Reference(SECTION, source=SOURCE, status="R")
    if sequence:
        X = tensor("X", (d_e, n), meaning="embedded tokens, column t = x_t")
        h = Family("h", t, n, (d_h,), start=0, tex="h_{{index}}", meaning="state after token t")
        H = tensor("H", (d_h, n), meaning="the states side by side, column t = h_t")
        gru = call("gru.step", "h_t", tex=r"\operatorname{GRU}", x_t=Column(X, t), h_prev=h[t - 1], **p)
        return Equation(
            "gru.step",
            "GRU, unrolled over a sequence",
            inputs=(X,),
            params=params,
            intermediates=(h, H),
            bindings=[(h[0], Zeros(d_h)), (h[t], gru), (H, HeadConcat(h[t], t, n))],
            outputs=(H,),
            reference=reference,
            invariants=(Invariant("causal_in_tokens", {"tokens": {"X": 1}, "outputs": {"H": 1}, "lag": 0}),),
            notes="h_0 = 0, then the GRU step (gru.step) for t = 1..n.",
        )
    x_t, h_prev = step_input(), previous_state()
    r_t = _vector("r_t", "r_{t}", "reset gate")
    z_t = _vector("z_t", "z_{t}", "update gate")
    h_tilde = _vector("h_tilde", r"\tilde{h}_{t}", "candidate state")
    h_t = _vector("h_t", "h_{t}", "state after token t")
    invariants = [
        Invariant("gates_in_unit_interval", {"gates": ["r_t", "z_t"]}),
        Invariant(
            "convex_interpolation", {"value": "h_t", "weight": "z_t", "start": "h_prev", "end": "h_tilde"}
        ),
    ]
    if not reset_after:
        invariants.append(
            Invariant(
                "unrolls_to_sequence",
                {
                    "sequence": "gru.step[sequence]",
                    "input": {"x_t": "X"},
                    "state": {"h_prev": "h_t"},
                    "outputs": {"h_t": "H"},
                },
            )
        )
    return Equation(
        "gru.step",
        "GRU step",
        inputs=(x_t, h_prev),
        params=params,
        intermediates=(r_t, z_t, h_tilde, h_t),
        bindings=[
            (r_t, _gate("r", x_t, h_prev, p)),
            (z_t, _gate("z", x_t, h_prev, p)),
            (h_tilde, _candidate(x_t, h_prev, r_t, p, reset_after)),
            (h_t, _interpolate(z_t, h_prev, h_tilde)),
        ],
        outputs=(r_t, z_t, h_tilde, h_t),
        reference=reference,
        invariants=tuple(invariants),
        notes="Reset gate r_t, update gate z_t, candidate h̃_t = tanh(W x_t + U(r_t ⊙ h_{t−1}) + b), and "
        "h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ h̃_t, which lies entry-wise between h_{t−1} and h̃_t. Cho et al. "
        "write the interpolation with z and 1 − z the other way round (as torch does); the catalogue's "
        "form is used here. torch.nn.GRU is the variant reset_after with its update gate negated.",
    )


_step = register(step())
_step.add_variant(
    "reset_after",
    lambda: step(reset_after=True),
    "reset gate applied after the recurrent product, with its own bias: "
    "h̃_t = tanh(W x_t + b + r_t ⊙ (U h_{t−1} + b_U)) (torch.nn.GRU, cuDNN, Keras reset_after)",
)
_step.add_variant(
    "sequence",
    lambda: step(sequence=True),
    "the step unrolled over X ∈ ℝ^{d_e×n} from h_0 = 0, H = [h_1, …, h_n] (torch.nn.GRU's loop)",
)
