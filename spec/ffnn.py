"""The feed-forward language model (Bengio et al. 2003): a window of c embedded tokens predicts the next.

Token t is predicted from the c tokens before it: ``z_t = [E ω_{t−c}; …; E ω_{t−1}] ∈ ℝ^{c d_e}`` (the
oldest on top), ``h_t = tanh(W_h z_t + b_h)``, ``ŷ_t = softmax(W_o h_t + b_o)``, ``𝓛 = −Σ_t log ŷ_t[k_t]``.

Slots before the first token (position t − c + j − 1 < 1 for slot j, which happens for t ≤ c) hold the
**zero vector**: no token, no embedding. So z_1 = 0 and ŷ_1 = softmax(W_o tanh(b_h) + b_o) is the model's
guess of the first token, and the loss sums over every token, 1..n. Implementations that pad with a start
token instead (embedding ``E_{:,1}``, vocabulary index 0) follow the named variant ``start_token``.

This module also defines the operators ``PaddedColumn`` (a column of X, or the padding outside 1..n) and
``SequenceNLL`` (the summed negative log-likelihood of the observed tokens, which rnn.loss uses too), and
``CountEquation`` (a closed-form parameter count, used by ffnn.params, rnn.params and lstm.params).
"""

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr

from .axes import c, d_e, d_h, n, v
from .equation import Equation, Invariant, Reference
from .ops import HeadConcat, Softmax, SpecOp, add, mul
from .ops_nn import Column, OneHot, Scalar, Stacked, Zeros, apply, call
from .registry import register
from .tensors import Family, Kind, tensor

SECTION = "FFNN language models"
BENGIO = "Bengio et al. 2003, §2 (without the direct connection)"

#: The token index t (1-based) and the slot j of the context window (1 = oldest, c = newest).
t = sp.Symbol("t", integer=True, positive=True)
j = sp.Symbol("j", integer=True, positive=True)


class PaddedColumn(SpecOp):
    """Column ``s`` (1-based) of X when ``1 ≤ s ≤`` its column count, else the column ``fill`` (0 by
    default): the context of an early token reaches before the sequence."""

    def __new__(cls, X: sp.Basic, s: sp.Expr, fill: sp.Basic | None = None) -> "PaddedColumn":
        fill = Zeros(X.shape[0]) if fill is None else fill
        return MatrixExpr.__new__(cls, X, sp.sympify(s), fill)

    @property
    def shape(self):
        return (self.args[0].shape[0], sp.Integer(1))

    @property
    def free_symbols(self) -> set:
        X, s, fill = self.args
        return X.free_symbols | sp.sympify(s).free_symbols | fill.free_symbols

    def _check_shapes(self, checker) -> None:
        X, _, fill = self.args
        checker.require("padded column", "rows of the fill", fill, fill.shape[0], X, X.shape[0])
        checker.require("padded column", "columns of the fill", fill, fill.shape[1], fill, sp.Integer(1))

    def _entry(self, i, j, **kwargs):
        X, s, fill = self.args
        inside = sp.And(sp.Ge(s, 1), sp.Le(s, X.shape[1]))
        if inside in (sp.true, sp.false):  # concrete position: pick the column or the fill
            return X[i, s - 1] if inside == sp.true else fill[i, 0]
        return sp.Piecewise((X[i, s - 1], inside), (fill[i, 0], True))

    def _latex(self, printer) -> str:
        return rf"{printer._print(self.args[0])}_{{:,{_index_tex(printer, self.args[1])}}}"

    def _latex_definition(self, printer) -> str:
        X, fill = printer._print(self.args[0]), printer._print(self.args[2])
        return rf"{X}_{{:,s}} = {fill} \text{{ for }} s < 1 \text{{ (before the first token)}}"

    def _torchcode(self, ctx) -> str:
        X, fill = (ctx.emit(ctx.expr(a)) for a in (self.args[0], self.args[2]))
        s = ctx.emit(ctx.size(self.args[1]))
        padding = ctx.emit(f"{fill}.expand(*{X}.shape[:-1], 1)")
        return f"({X}[..., :, {s} - 1 : {s}] if 1 <= {s} <= {X}.shape[-1] else {padding})"


class SequenceNLL(SpecOp):
    """``𝓛 = −Σ_{t=1}^{n−s} log Y_{k_{t+s}, t}`` (a 1×1 matrix): the negative log-likelihood of the observed
    tokens under the distributions in the columns of Y, column t predicting token t + s (s = ``shift``:
    0 when column t already predicts token t, 1 when column t predicts the next token)."""

    def __new__(cls, Y: sp.Basic, k: sp.Basic, shift: int = 0) -> "SequenceNLL":
        return MatrixExpr.__new__(cls, Y, k, sp.Integer(shift))

    @property
    def shape(self):
        return (sp.Integer(1), sp.Integer(1))

    def _check_shapes(self, checker) -> None:
        Y, k, _ = self.args
        what = "negative log-likelihood"
        checker.require(what, "tokens (columns of Y, rows of k)", Y, Y.shape[1], k, k.shape[0])
        checker.require(what, "index vector columns", k, k.shape[1], k, sp.Integer(1))

    def _entry(self, i, j, **kwargs):
        Y, k, shift = self.args
        rows, count = Y.shape[0], Y.shape[1] - shift
        if not (sp.sympify(rows).is_Integer and sp.sympify(count).is_Integer):
            s = sp.Dummy("t", integer=True)
            return -sp.Sum(sp.log(Y[k[s + shift, 0], s]), (s, 0, count - 1))
        terms = []
        for col in range(int(count)):
            token = k[col + int(shift), 0]
            picked = sp.Add(
                *[sp.Piecewise((Y[r, col], sp.Eq(token, r)), (0, True)) for r in range(int(rows))]
            )
            terms.append(sp.log(picked))
        return -sp.Add(*terms)

    def _latex(self, printer) -> str:
        Y, k, shift = self.args
        top = printer._print(Y.shape[1] - shift)
        at = printer._print(t + shift)
        return rf"-\sum_{{t=1}}^{{{top}}} \log {printer._print(Y)}_{{{printer._print(k)}_{{{at}}}, t}}"

    def _torchcode(self, ctx) -> str:
        Y, k = (ctx.emit(ctx.expr(a)) for a in self.args[:2])
        shift = int(self.args[2])
        count = f"{Y}.shape[-1] - {shift}"
        picked = ctx.emit(
            f"torch.gather({Y}[..., :, :{count}], -2, {k}.long()[..., {shift}:, :].transpose(-1, -2))"
        )
        return f"(-torch.log({picked}).sum(dim=-1, keepdim=True))"


class CountEquation(Equation):
    """A parameter count: no inputs, one scalar output ``N`` bound to a closed-form formula in the axes
    (the equation's axes are the formula's)."""

    def __init__(self, eq_id: str, title: str, formula: sp.Expr, **kwargs) -> None:
        self.formula = sp.sympify(formula)
        N = tensor("N", (), Kind.INDEX, meaning="number of parameters")
        super().__init__(
            eq_id, title, intermediates=(N,), bindings=[(N, Scalar(self.formula))], outputs=(N,), **kwargs
        )


def _index_tex(printer, s: sp.Expr) -> str:
    """An index such as ``t − c``, positive terms first (SymPy would print ``- c + t``)."""
    terms = sorted(sp.Add.make_args(sp.sympify(s)), key=lambda a: a.could_extract_minus_sign())
    out = printer._print(terms[0])
    for term in terms[1:]:
        text = printer._print(term)
        out += f" - {text[1:].lstrip()}" if text.startswith("-") else f" + {text}"
    return out


def _tokens():
    return tensor("k", (n,), Kind.INDEX, meaning="token indices k_1..k_n (0-based vocabulary rows)")


def _embedding():
    return tensor("E", (d_e, v), meaning="token embedding; column r embeds vocabulary entry r")


# --- ffnn.context ---------------------------------------------------------------------------------------
def context(start_token: bool = False) -> Equation:
    k, E = _tokens(), _embedding()
    Omega = tensor("Omega", (v, n), Kind.ONE_HOT, tex=r"\Omega", meaning="one-hot tokens ω_1..ω_n")
    X = tensor("X", (d_e, n), meaning="embedded tokens, x_t = E ω_t")
    z = Family(
        "z", t, n, (c * d_e,), tex="z_{{index}}", meaning="context of token t: the c embeddings before it"
    )
    Z = tensor("Z", (c * d_e, n), meaning="the contexts side by side, column t = z_t")
    fill = Column(E, 1) if start_token else None
    return Equation(
        "ffnn.context",
        "Context window of c embedded tokens",
        inputs=(k,),
        params=(E,),
        intermediates=(Omega, X, z, Z),
        bindings=[
            (Omega, OneHot(k, v)),
            (X, mul(E, Omega)),
            (z[t], Stacked(PaddedColumn(X, t - c - 1 + j, fill), j, c)),
            (Z, HeadConcat(z[t], t, n)),
        ],
        outputs=(Z,),
        reference=Reference(SECTION, source=BENGIO, status="R"),
        invariants=(Invariant("context_window", {"tokens": "k", "output": "Z", "window": "c"}),),
        notes="z_t = [E ω_{t−c}; …; E ω_{t−1}] stacks the embeddings of the c previous tokens, oldest on "
        "top. Before the first token the slots hold the zero vector (the spec's convention; see the "
        "start_token variant). Bengio et al. call c 'n − 1' and the concatenation x.",
    )


# --- ffnn.hidden ----------------------------------------------------------------------------------------
def _hidden_params():
    W_h = tensor("W_h", (d_h, c * d_e), meaning="hidden layer weights")
    b_h = tensor("b_h", (d_h,), meaning="hidden layer bias")
    return W_h, b_h


def hidden() -> Equation:
    z_t = tensor("z_t", (c * d_e,), meaning="context of the predicted token")
    W_h, b_h = _hidden_params()
    h_t = tensor("h_t", (d_h,), meaning="hidden state of position t")
    return Equation(
        "ffnn.hidden",
        "Hidden layer of the FFNN language model",
        inputs=(z_t,),
        params=(W_h, b_h),
        intermediates=(h_t,),
        bindings=[(h_t, apply("tanh", add(mul(W_h, z_t), b_h)))],
        outputs=(h_t,),
        reference=Reference(SECTION, source=BENGIO, status="R"),
        invariants=(Invariant("lies_between", {"value": "h_t", "low": -1, "high": 1}),),
        notes="h_t = tanh(W_h z_t + b_h), W_h ∈ ℝ^{d_h×c d_e}. Bengio et al. write H and d.",
    )


# --- ffnn.output ----------------------------------------------------------------------------------------
def _output_params():
    W_o = tensor("W_o", (v, d_h), meaning="output layer weights")
    b_o = tensor("b_o", (v,), meaning="output layer bias")
    return W_o, b_o


def output(direct: bool = False) -> Equation:
    h_t = tensor("h_t", (d_h,), meaning="hidden state of position t")
    z_t = tensor("z_t", (c * d_e,), meaning="context of the predicted token")
    W_o, b_o = _output_params()
    U = tensor("U", (v, c * d_e), meaning="direct connection from the context to the output")
    y_t = tensor("y_t", (v,), Kind.PROBABILITY, tex=r"\hat{y}_{t}", meaning="distribution of token t")
    logits = add(mul(W_o, h_t), b_o, mul(U, z_t)) if direct else add(mul(W_o, h_t), b_o)
    return Equation(
        "ffnn.output",
        "Output layer of the FFNN language model",
        inputs=(h_t, z_t) if direct else (h_t,),
        params=(W_o, b_o, U) if direct else (W_o, b_o),
        intermediates=(y_t,),
        bindings=[(y_t, Softmax(logits, "columns"))],
        outputs=(y_t,),
        reference=Reference(SECTION, source=BENGIO, status="R"),
        invariants=(Invariant("columns_are_distributions", {"outputs": ["y_t"]}),),
        notes="ŷ_t = softmax(W_o h_t + b_o) ∈ (0,1)^v, the distribution of token t given the c before it. "
        "Bengio et al.'s optional direct connection adds U z_t (variant 'direct').",
    )


# --- ffnn.loss ------------------------------------------------------------------------------------------
def loss(direct: bool = False) -> Equation:
    k, E = _tokens(), _embedding()
    W_h, b_h = _hidden_params()
    W_o, b_o = _output_params()
    U = tensor("U", (v, c * d_e), meaning="direct connection from the context to the output")
    Z = tensor("Z", (c * d_e, n), meaning="contexts, column t = z_t")
    h = Family("h", t, n, (d_h,), tex="h_{{index}}", meaning="hidden state of position t")
    y = Family("y", t, n, (v,), Kind.PROBABILITY, tex=r"\hat{y}_{{index}}", meaning="distribution of token t")
    Y_hat = tensor("Y_hat", (v, n), Kind.PROBABILITY, tex=r"\hat{Y}", meaning="column t: P(w_t | c before)")
    L = tensor("L", (), tex=r"\mathcal{L}", meaning="negative log-likelihood of the sequence")
    z_t = Column(Z, t)
    head = {"h_t": h[t], "W_o": W_o, "b_o": b_o, **({"z_t": z_t, "U": U} if direct else {})}
    out_id = "ffnn.output[direct]" if direct else "ffnn.output"
    return Equation(
        "ffnn.loss",
        "Loss of the FFNN language model",
        inputs=(k,),
        params=(E, W_h, b_h, W_o, b_o, *((U,) if direct else ())),
        intermediates=(Z, h, y, Y_hat, L),
        bindings=[
            (Z, call("ffnn.context", "Z", tex=r"\operatorname{context}", k=k, E=E)),
            (h[t], call("ffnn.hidden", "h_t", tex=r"\operatorname{hidden}", z_t=z_t, W_h=W_h, b_h=b_h)),
            (y[t], call(out_id, "y_t", tex=r"\operatorname{output}", **head)),
            (Y_hat, HeadConcat(y[t], t, n)),
            (L, SequenceNLL(Y_hat, k, 0)),
        ],
        outputs=(Y_hat, L),
        reference=Reference(SECTION, source=BENGIO, status="R"),
        invariants=(
            Invariant("causal_in_tokens", {"tokens": {"k": 0}, "outputs": {"Y_hat": 1}, "lag": 1}),
            Invariant("columns_are_distributions", {"outputs": ["Y_hat"]}),
        ),
        notes="The composition of ffnn.context, ffnn.hidden and ffnn.output at every position, and "
        "𝓛 = −Σ_{t=1}^{n} log ŷ_t[k_t]: every token is predicted, the first from an all-padding context.",
    )


# --- ffnn.params ----------------------------------------------------------------------------------------
def params(direct: bool = False) -> Equation:
    count = v * d_e + d_h * (c * d_e + 1) + v * (d_h + 1) + (v * c * d_e if direct else 0)
    return CountEquation(
        "ffnn.params",
        "Parameter count of the FFNN language model",
        count,
        reference=Reference(SECTION, source="Bengio et al. 2003, §2", status="R"),
        invariants=(
            Invariant(
                "count_equals_model_numel",
                {"model": "impl.ffnn:FFNNLM", "options": {"direct": direct}},
            ),
        ),
        notes="E (v d_e), W_h and b_h (d_h (c d_e + 1)), W_o and b_o (v (d_h + 1)); the direct connection "
        "adds U (v c d_e).",
    )


register(context()).add_variant(
    "start_token",
    lambda: context(start_token=True),
    "slots before the first token hold the embedding of a start token (vocabulary index 0), not zeros",
)
register(hidden())
register(output()).add_variant(
    "direct", lambda: output(direct=True), "with Bengio et al.'s direct connection: + U z_t in the logits"
)
register(loss()).add_variant(
    "direct", lambda: loss(direct=True), "the output layer has the direct connection U z_t"
)
register(params()).add_variant(
    "direct", lambda: params(direct=True), "with the direct connection U ∈ ℝ^{v×c d_e}: + v c d_e"
)
