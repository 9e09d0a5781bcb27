"""Recurrent language models: the Elman step, its unrolling, the output layer, the loss and the gate.

The state starts at ``h_0 = 0`` and each token updates it: ``h_t = tanh(W_x x_t + W_h h_{t−1} + b_h)``
with ``x_t = E ω_t``. After reading t tokens the model predicts the next one,
``ŷ_{t+1} = softmax(W_o h_t + b_o)``, so column t of ``Ŷ = softmax_col(W_o H + b_o 1_nᵀ)`` is
``P(w_{t+1} | w_1..w_t)`` and teacher forcing scores tokens 2..n: ``𝓛 = −Σ_{t=1}^{n−1} log ŷ_{t+1}[k_{t+1}]``.

``rnn.elman_step`` is one step (torch.nn.RNNCell's form); its variant ``sequence`` is the step unrolled over
a sequence from h_0 = 0 (torch.nn.RNN's form), and the property ``unrolls_to_sequence`` holds the step to
it. ``rnn.output`` and ``rnn.loss`` have variants ``lstm`` and ``gru``: the same language model with the
LSTM (spec/lstm.py) or GRU (spec/gru.py) recurrence in place of the Elman step, so this module imports
those cells; what the three share (the section, the token index, a step's inputs) is spec/_recurrent.py.
"""

from ._recurrent import SECTION, previous_state, step_input, t
from .axes import d_e, d_h, n, v
from .equation import Equation, Invariant, Reference
from .ffnn import CountEquation, SequenceNLL
from .gru import gru_params
from .lstm import lstm_params
from .ops import HeadConcat, Ones, Softmax, T, add, mul
from .ops_nn import Column, OneHot, Zeros, apply, call, had
from .registry import register
from .tensors import Family, Kind, tensor

ELMAN = "Elman 1990; Mikolov et al. 2010 (RNN language model)"

#: The recurrence of each language model, and its name in LaTeX.
_MODEL = {"elman": "RNNLM", "lstm": "LSTMLM", "gru": "GRULM"}


def elman_params():
    W_x = tensor("W_x", (d_h, d_e), meaning="input-to-hidden weights")
    W_h = tensor("W_h", (d_h, d_h), meaning="hidden-to-hidden (recurrent) weights")
    b_h = tensor("b_h", (d_h,), meaning="hidden bias")
    return W_x, W_h, b_h


def _elman(x, h_prev, W_x, W_h, b_h):
    """``tanh(W_x x + W_h h_{t−1} + b_h)``: the one definition of the step, used by every equation here."""
    return apply("tanh", add(mul(W_x, x), mul(W_h, h_prev), b_h))


# --- rnn.elman_step -------------------------------------------------------------------------------------
def elman_step(sequence: bool = False) -> Equation:
    W_x, W_h, b_h = elman_params()
    reference = Reference(SECTION, source=ELMAN, status="R")
    if sequence:
        X = tensor("X", (d_e, n), meaning="embedded tokens, column t = x_t")
        h = Family("h", t, n, (d_h,), start=0, tex="h_{{index}}", meaning="state after token t")
        H = tensor("H", (d_h, n), meaning="the states side by side, column t = h_t")
        return Equation(
            "rnn.elman_step",
            "Elman recurrence, unrolled over a sequence",
            inputs=(X,),
            params=(W_x, W_h, b_h),
            intermediates=(h, H),
            bindings=[
                (h[0], Zeros(d_h)),
                (h[t], _elman(Column(X, t), h[t - 1], W_x, W_h, b_h)),
                (H, HeadConcat(h[t], t, n)),
            ],
            outputs=(H,),
            reference=reference,
            invariants=(Invariant("causal_in_tokens", {"tokens": {"X": 1}, "outputs": {"H": 1}, "lag": 0}),),
            notes="h_0 = 0 and h_t = tanh(W_x x_t + W_h h_{t−1} + b_h) for t = 1..n (torch.nn.RNN).",
        )
    x_t, h_prev = step_input(), previous_state()
    h_t = tensor("h_t", (d_h,), meaning="state after token t")
    return Equation(
        "rnn.elman_step",
        "Elman recurrence step",
        inputs=(x_t, h_prev),
        params=(W_x, W_h, b_h),
        intermediates=(h_t,),
        bindings=[(h_t, _elman(x_t, h_prev, W_x, W_h, b_h))],
        outputs=(h_t,),
        reference=reference,
        invariants=(
            Invariant(
                "unrolls_to_sequence",
                {
                    "sequence": "rnn.elman_step[sequence]",
                    "input": {"x_t": "X"},
                    "state": {"h_prev": "h_t"},
                    "outputs": {"h_t": "H"},
                },
            ),
            Invariant("lies_between", {"value": "h_t", "low": -1, "high": 1}),
        ),
        notes="h_t = tanh(W_x x_t + W_h h_{t−1} + b_h), h_0 = 0; W_x ∈ ℝ^{d_h×d_e}, W_h ∈ ℝ^{d_h×d_h}. "
        "torch.nn.RNNCell: weight_ih = W_x, weight_hh = W_h, bias_ih + bias_hh = b_h (two bias vectors "
        "whose sum is b_h).",
    )


# --- rnn.output -----------------------------------------------------------------------------------------
def head_params(cell: str = "elman"):
    """The output layer. The LSTM's output gate owns W_o, b_o: its language model names the layer W_y, b_y."""
    name = "y" if cell == "lstm" else "o"
    W = tensor(f"W_{name}", (v, d_h), meaning="output layer weights")
    b = tensor(f"b_{name}", (v,), meaning="output layer bias")
    return W, b


def _cell_params(cell: str) -> tuple:
    if cell == "elman":
        return elman_params()
    return lstm_params() if cell == "lstm" else gru_params()


def output(cell: str = "elman") -> Equation:
    k = tensor("k", (n,), Kind.INDEX, meaning="token indices k_1..k_n (0-based vocabulary rows)")
    E = tensor("E", (d_e, v), meaning="token embedding; column r embeds vocabulary entry r")
    Omega = tensor("Omega", (v, n), Kind.ONE_HOT, tex=r"\Omega", meaning="one-hot tokens ω_1..ω_n")
    X = tensor("X", (d_e, n), meaning="embedded tokens, column t = x_t = E ω_t")
    H = tensor("H", (d_h, n), meaning="states, column t = h_t")
    Y_hat = tensor(
        "Y_hat", (v, n), Kind.PROBABILITY, tex=r"\hat{Y}", meaning="column t: ŷ_{t+1} = P(w_{t+1} | w_1..w_t)"
    )
    cell_params = _cell_params(cell)
    W_o, b_o = head_params(cell)
    head = (Y_hat, Softmax(add(mul(W_o, H), mul(b_o, T(Ones(n)))), "columns"))
    bindings: list = [(Omega, OneHot(k, v)), (X, mul(E, Omega))]
    if cell == "elman":
        h = Family("h", t, n, (d_h,), start=0, tex="h_{{index}}", meaning="state after token t")
        intermediates: tuple = (Omega, X, h, H, Y_hat)
        bindings += [
            (h[0], Zeros(d_h)),
            (h[t], _elman(Column(X, t), h[t - 1], *cell_params)),
            (H, HeadConcat(h[t], t, n)),
        ]
    else:
        intermediates = (Omega, X, H, Y_hat)
        sequence = "lstm.hidden[sequence]" if cell == "lstm" else "gru.step[sequence]"
        arguments = {p.name: p for p in cell_params}
        bindings.append((H, call(sequence, "H", tex=rf"\operatorname{{{cell.upper()}}}", X=X, **arguments)))
    bindings.append(head)
    return Equation(
        "rnn.output",
        "Output of the recurrent language model at every position",
        inputs=(k,),
        params=(E, *cell_params, W_o, b_o),
        intermediates=intermediates,
        bindings=bindings,
        outputs=(Y_hat,),
        reference=Reference(SECTION, source=ELMAN, status="R"),
        invariants=(
            Invariant("causal_in_tokens", {"tokens": {"k": 0}, "outputs": {"Y_hat": 1}, "lag": 0}),
            Invariant("columns_are_distributions", {"outputs": ["Y_hat"]}),
        ),
        notes="ŷ_{t+1} = softmax(W_o h_t + b_o): column t of Ŷ is the distribution of the next token after "
        "reading t tokens (column n predicts past the end of the sequence).",
    )


# --- rnn.loss -------------------------------------------------------------------------------------------
def loss(cell: str = "elman") -> Equation:
    out = output(cell)
    k = out.declared("k")
    Y_hat = tensor(
        "Y_hat", (v, n), Kind.PROBABILITY, tex=r"\hat{Y}", meaning="column t: P(w_{t+1} | w_1..w_t)"
    )
    L = tensor("L", (), tex=r"\mathcal{L}", meaning="negative log-likelihood of tokens 2..n")
    arguments = {d.name: d for d in (*out.inputs, *out.params)}
    out_id = "rnn.output" if cell == "elman" else f"rnn.output[{cell}]"
    return Equation(
        "rnn.loss",
        "Teacher-forcing loss of the recurrent language model",
        inputs=(k,),
        params=out.params,
        intermediates=(Y_hat, L),
        bindings=[
            (Y_hat, call(out_id, "Y_hat", tex=rf"\operatorname{{{_MODEL[cell]}}}", **arguments)),
            (L, SequenceNLL(Y_hat, k, 1)),
        ],
        outputs=(L,),
        reference=Reference(SECTION, source=ELMAN, status="R"),
        notes="Teacher forcing: the true tokens are fed in, and 𝓛 = −Σ_{t=1}^{n−1} log ŷ_{t+1}[k_{t+1}] "
        "scores tokens 2..n (the first token is not predicted; n = 1 gives 𝓛 = 0).",
    )


# --- rnn.params -----------------------------------------------------------------------------------------
def params(two_biases: bool = False) -> Equation:
    count = v * d_e + d_h * (d_e + d_h + (2 if two_biases else 1)) + v * (d_h + 1)
    return CountEquation(
        "rnn.params",
        "Parameter count of the recurrent (Elman) language model",
        count,
        reference=Reference(SECTION, source=ELMAN, status="R"),
        invariants=()
        if two_biases
        else (Invariant("count_equals_model_numel", {"model": "impl.rnn:RNNLM"}),),
        notes="E (v d_e), W_x, W_h and b_h (d_h (d_e + d_h + 1)), W_o and b_o (v (d_h + 1)).",
    )


# --- rnn.gate -------------------------------------------------------------------------------------------
def gate() -> Equation:
    a = tensor("a", (d_h,), meaning="gate pre-activation")
    u = tensor("u", (d_h,), meaning="the vector being gated")
    m = tensor("m", (d_h,), meaning="semi-binary mask, entries in (0, 1)")
    u_tilde = tensor("u_tilde", (d_h,), tex=r"\tilde{u}", meaning="gated vector")
    return Equation(
        "rnn.gate",
        "Gate: a sigmoid mask applied entry by entry",
        inputs=(a, u),
        intermediates=(m, u_tilde),
        bindings=[(m, apply("sigmoid", a)), (u_tilde, had(u, m))],
        outputs=(m, u_tilde),
        reference=Reference(SECTION, source="Hochreiter & Schmidhuber 1997; Cho et al. 2014"),
        invariants=(
            Invariant("gates_in_unit_interval", {"gates": ["m"]}),
            Invariant("lies_between", {"value": "u_tilde", "low": 0, "high": "u"}),
        ),
        notes="m = σ(a) ∈ (0,1)^d is a 'semi-binary mask'; ũ = u ⊙ m lets through a fraction of each "
        "entry of u. The tutorial writes d for the width; here it is d_h. LSTM and GRU gates have this "
        "form.",
    )


register(elman_step()).add_variant(
    "sequence",
    lambda: elman_step(sequence=True),
    "the step unrolled over X ∈ ℝ^{d_e×n} from h_0 = 0, H = [h_1, …, h_n] (torch.nn.RNN's form)",
)
for _build in (output, loss):
    _eq = register(_build())
    for _cell in ("lstm", "gru"):
        _eq.add_variant(
            _cell,
            lambda build=_build, cell=_cell: build(cell),
            f"the same language model with the {_cell.upper()} recurrence in place of the Elman step",
        )
register(params()).add_variant(
    "two_biases",
    lambda: params(two_biases=True),
    "two bias vectors in the recurrence (torch.nn.RNN: bias_ih and bias_hh): + d_h",
)
register(gate())
