"""Transformers for time series: TST's input and masked reconstruction loss (Zerveas et al. 2021) and
PatchTST's channel-independent patching (Nie et al. 2023).

A multivariate series of m variables is a matrix ``X ∈ ℝ^{m×n}`` (TST: one column ``x_t ∈ ℝ^m`` per time
step, a time step is a token) or ``X ∈ ℝ^{m×L_in}`` (PatchTST: one row per variable, each row cut into
patches, a patch is a token).

**PatchTST's end padding.** Before patching, each series is extended by S copies of its last value
(``nn.ReplicationPad1d((0, S))`` in the official code, ``padding_patch='end'``), so that the last patch
reaches the end of the series: ``x̃ = [x_1, …, x_{L_in}, x_{L_in}, …, x_{L_in}] ∈ ℝ^{L_in+S}`` and
``N = ⌊(L_in − P)/S⌋ + 2`` patches of length P at stride S. The variant ``no_padding`` patches the series as
it is (``N = ⌊(L_in − P)/S⌋ + 1``, the last ``(L_in − P) mod S`` values left out); the variant ``drop_start``
has the same N but leaves out the FIRST ``r = (L_in − P) mod S`` values, so that the last patch ends at the
last value: ``X_p^{(i)} = unfold_{P,S}(X_{i, r+1:L_in})``. That is Hugging Face transformers'
``PatchTSTPatchify`` (``sequence_start = L_in − ((N − 1) S + P)``); the two variants agree when S divides
``L_in − P``.
"""

import sympy as sp
from sympy.core.symbol import Str
from sympy.matrices.expressions.matexpr import MatrixExpr

from ._errors import SpecError
from .axes import P, axis, d_e, n, n_max
from .equation import Equation, Invariant, Reference
from .ops import Ones, SpecOp, T, add, mul
from .ops_nn import Column, FirstColumns, apply, had
from .registry import register
from .tensors import Family, Kind, tensor
from .vit import HCat

d_x, L_in, S_p, N_p = (axis(a) for a in ("d_x", "L_in", "S_p", "N_p"))
#: The variable index of per-variable families, i = 1..m.
i = sp.Symbol("i", integer=True, positive=True)

SECTION = "§5 Transformers for time series"
ZERVEAS = "Zerveas et al. 2021, §3.1"
NIE = "Nie et al. 2023, §3.1"
EMPTY = ("zero", "nan")


class Ratio(SpecOp):
    """``a / b`` of two 1×1 matrices, with ``b = 0`` defined: 0 (``empty="zero"``, the spec's mean over no
    entry) or NaN (``empty="nan"``, torch's mean of an empty selection)."""

    def __new__(cls, num, den, empty: str = "zero") -> "Ratio":
        empty = str(empty)
        if empty not in EMPTY:
            raise SpecError(f"Ratio: empty must be one of {EMPTY}, found {empty!r}")
        return MatrixExpr.__new__(cls, num, den, Str(empty))

    @property
    def empty(self) -> str:
        return self.args[2].name

    @property
    def shape(self):
        return (sp.Integer(1), sp.Integer(1))

    def _check_shapes(self, checker) -> None:
        for x in self.args[:2]:
            checker.require("ratio", "rows", x, x.shape[0], x, sp.Integer(1))
            checker.require("ratio", "columns", x, x.shape[1], x, sp.Integer(1))

    def _entry(self, i, j, **kwargs):
        num, den = self.args[0][0, 0], self.args[1][0, 0]
        fill = sp.S.Zero if self.empty == "zero" else sp.nan
        return sp.Piecewise((fill, sp.Eq(den, 0)), (num / den, True))

    def _latex(self, printer) -> str:
        num, den = (printer._print(x) for x in self.args[:2])
        return rf"\frac{{{num}}}{{{den}}}"

    def _latex_definition(self, printer) -> str:
        fill = "0" if self.empty == "zero" else r"\mathrm{NaN}"
        return rf"\frac{{a}}{{b}} := {fill} \text{{ if }} b = 0"

    def _torchcode(self, ctx) -> str:
        num, den = (ctx.emit(ctx.expr(x)) for x in self.args[:2])
        fill = "0.0" if self.empty == "zero" else "math.nan"
        return f"torch.where({den} == 0, {fill}, {num} / {den})"


class Difference(SpecOp):
    """``A − B`` (SymPy would write A + (−1) B)."""

    prints_as_sum = True

    def __new__(cls, A, B) -> "Difference":
        return MatrixExpr.__new__(cls, A, B)

    @property
    def shape(self):
        return self.args[0].shape

    def _check_shapes(self, checker) -> None:
        A, B = self.args
        checker.require("difference", "rows", A, A.shape[0], B, B.shape[0])
        checker.require("difference", "columns", A, A.shape[1], B, B.shape[1])

    def _entry(self, i, j, **kwargs):
        return self.args[0][i, j] - self.args[1][i, j]

    def _latex(self, printer) -> str:
        return f"{printer._print(self.args[0])} - {printer._print(self.args[1])}"

    def _torchcode(self, ctx) -> str:
        return f"({ctx.expr(self.args[0])} - {ctx.expr(self.args[1])})"


class Unfold(SpecOp):
    """The patches of row ``i`` (1-based) of X as columns, ``torch.Tensor.unfold(-1, P, S)``:
    ``[unfold_{P,S}(X_{i,:})]_{r,j} = X_{i,(j−1)S + r}`` for r = 1..P, j = 1..N.

    ``start`` (a size expression, 0 by default) first leaves out that many values at the start of the row:
    ``unfold_{P,S}(X_{i, start+1:})``, ``X[..., i − 1, start:].unfold(-1, P, S)`` (the variant drop_start of
    timeseries.patching, start = (L_in − P) mod S)."""

    def __new__(cls, X, row, size, stride, count, start=0) -> "Unfold":
        return MatrixExpr.__new__(cls, X, *(sp.sympify(x) for x in (row, size, stride, count, start)))

    @property
    def start(self) -> sp.Expr:
        return self.args[5]

    @property
    def shape(self):
        return (self.args[2], self.args[4])

    def _entry(self, r, j, **kwargs):
        X, row, _, stride, _, start = self.args
        return X[row - 1, start + j * stride + r]

    def _latex(self, printer) -> str:
        X, row, size, stride = (printer._print(a) for a in self.args[:4])
        if self.start == 0:
            columns = ":"
        else:  # X_{i, start+1:L} with the row's own length L
            end = printer._print(self.args[0].shape[1])
            columns = f"{self._latex_first(printer)}:{end}"
        return rf"\operatorname{{unfold}}_{{{size},{stride}}}\left({X}_{{{row},{columns}}}\right)"

    def _latex_first(self, printer) -> str:
        """The first column kept, start + 1: ``(L_in − P) mod S + 1`` with ``\\operatorname{mod}``."""
        start = self.start
        if isinstance(start, sp.Mod):
            a, b = start.args
            left = printer._print(a)
            left = rf"\left({left}\right)" if isinstance(a, sp.Add) else left
            return rf"{left} \operatorname{{mod}} {printer._print(b)} + 1"
        return printer._print(start + 1)

    def _latex_definition(self, printer) -> str:
        _, _, size, stride = (printer._print(a) for a in self.args[:4])
        lhs = rf"\left[\operatorname{{unfold}}_{{{size},{stride}}}(x)\right]_{{r,j}}"
        return rf"{lhs} = x_{{(j-1){stride} + r}}, \quad r = 1..{size}"

    def _torchcode(self, ctx) -> str:
        X = ctx.emit(ctx.expr(self.args[0]))
        row, size, stride, start = (ctx.size(a) for a in (*self.args[1:4], self.start))
        columns = ":" if self.start == 0 else f"{start}:"
        return f"{X}[..., {row} - 1, {columns}].unfold(-1, {size}, {stride}).transpose(-1, -2)"


# --- timeseries.input (TST) -----------------------------------------------------------------------
def input_(scale: bool = False) -> Equation:
    X = tensor("X", (d_x, n), meaning="the series, one column x_t ∈ ℝ^m per time step")
    W_p = tensor("W_p", (d_e, d_x), tex="W_{p}", meaning="input projection")
    b_p = tensor("b_p", (d_e,), tex="b_{p}", meaning="input projection bias")
    Lambda = tensor("Lambda", (d_e, n_max), tex=r"\Lambda", meaning="learned positional encoding")
    U = tensor("U", (d_e, n), meaning="encoder input, one column u_t per time step")
    projected = add(mul(W_p, X), mul(b_p, T(Ones(n))))
    if scale:
        projected = mul(sp.sqrt(d_e), projected)
    return Equation(
        "timeseries.input",
        "TST input: projected time steps plus learned positions",
        inputs=(X,),
        params=(W_p, b_p, Lambda),
        intermediates=(U,),
        bindings=[(U, add(projected, FirstColumns(Lambda, n)))],
        outputs=(U,),
        reference=Reference(SECTION, source=ZERVEAS, status="R"),
        constraints=(sp.Le(n, n_max),),
        invariants=(
            Invariant(
                "token_locality",
                {"input": "X", "input_axis": 1, "output": "U", "output_axis": 1, "offset": 0},
            ),
        ),
        notes="u_t = W_p x_t + b_p + λ_t: each time step x_t ∈ ℝ^m (m variables) is a token, projected "
        "to d_e and given a learned position (the first n columns of Λ, as in the tutorial's transformer "
        "input). "
        "The paper writes u_t = W_p x_t + b_p and adds positional encodings W_pos. The official code "
        "(mvts_transformer) multiplies the projection by √d_e: the variant scaled.",
    )


# --- timeseries.masked_mse ------------------------------------------------------------------------
def masked_mse(empty: str = "zero") -> Equation:
    X = tensor("X", (d_x, n), meaning="the series (targets)")
    X_hat = tensor("X_hat", (d_x, n), tex=r"\hat{X}", meaning="the model's reconstruction")
    mask = tensor(
        "mask",
        (d_x, n),
        Kind.MASK,
        tex=r"\mathcal{M}",
        meaning="1 where the entry was masked (and is scored)",
    )
    E = tensor("E", (), meaning="sum of the squared errors over the masked entries")
    count = tensor("count", (), tex=r"|\mathcal{M}|", meaning="number of masked entries")
    loss = tensor("loss", (), tex=r"\mathcal{L}", meaning="mean squared error over the masked entries")
    return Equation(
        "timeseries.masked_mse",
        "Masked reconstruction loss (mean squared error over masked entries)",
        inputs=(X, X_hat, mask),
        intermediates=(E, count, loss),
        bindings=[
            (E, mul(T(Ones(d_x)), had(mask, apply("square", Difference(X_hat, X))), Ones(n))),
            (count, mul(T(Ones(d_x)), mask, Ones(n))),
            (loss, Ratio(E, count, empty)),
        ],
        outputs=(loss,),
        reference=Reference(SECTION, source=f"{ZERVEAS}, eq. 4", status="R"),
        invariants=(
            Invariant(
                "masked_entries_only",
                {"prediction": "X_hat", "mask": "mask", "output": "loss", "empty": empty},
            ),
        ),
        notes="𝓛 = (1/|𝓜|) Σ_{(j,t)∈𝓜} (x̂_{j,t} − x_{j,t})²: the mean over the masked entries only "
        "(TST masks single entries of each variable, not whole time steps). With no masked entry "
        "(|𝓜| = 0) the spec defines 𝓛 = 0, the empty sum; the official code takes torch's mean of an "
        "empty masked_select, NaN — the variant empty_nan. Over a batch the code averages over every "
        "masked entry of the batch (the equation applied to the batch laid end to end), not the mean of "
        "per-example losses.",
    )


# --- timeseries.patching (PatchTST) ---------------------------------------------------------------
#: How the series is made to fit the patches: "end" (pad with S copies of the last value, the official
#: code's ReplicationPad1d), "none" (patch it as it is, the last (L_in − P) mod S values left out) or
#: "drop_start" (the first (L_in − P) mod S values left out, transformers' PatchTSTPatchify).
PADDINGS = ("end", "none", "drop_start")


def patching(bias: bool = True, padding: str = "end") -> Equation:
    if padding not in PADDINGS:
        raise SpecError(f"timeseries.patching: padding must be one of {PADDINGS}, found {padding!r}")
    X = tensor("X", (d_x, L_in), meaning="the series, one row per variable")
    W_p = tensor("W_p", (d_e, P), tex="W_{p}", meaning="patch projection, shared by every variable")
    b_p = tensor("b_p", (d_e,), tex="b_{p}", meaning="patch projection bias")
    W_pos = tensor("W_pos", (d_e, N_p), tex=r"W_{\mathrm{pos}}", meaning="learned position of each patch")
    X_pad = tensor(
        "X_pad", (d_x, L_in + S_p), tex=r"\tilde{X}", meaning="each series padded with its last value"
    )
    X_p = Family("X_p", i, d_x, (P, N_p), tex="X_{p}", meaning="patches of variable i, one per column")
    U = Family("U", i, d_x, (d_e, N_p), meaning="encoder input of variable i, one column per patch")
    embedded = mul(W_p, X_p[i])
    if bias:
        embedded = add(embedded, mul(b_p, T(Ones(N_p))))
    if padding == "end":
        bindings = [
            (X_pad, HCat(X, mul(Column(X, L_in), T(Ones(S_p))))),
            (X_p[i], Unfold(X_pad, i, P, S_p, N_p)),
        ]
    elif padding == "none":
        bindings = [(X_p[i], Unfold(X, i, P, S_p, N_p))]
    else:  # the first r = (L_in − P) mod S values left out: the last patch ends at x_{L_in}
        bindings = [(X_p[i], Unfold(X, i, P, S_p, N_p, start=sp.Mod(L_in - P, S_p)))]
    bindings.append((U[i], add(embedded, W_pos)))
    extra = 2 if padding == "end" else 1
    cut = {
        "end": "x̃ = [x, x_{L_in} 1_Sᵀ] (end padding by repetition, module docstring), patched",
        "none": "the series patched as it is (its last (L_in − P) mod S values left out)",
        "drop_start": "the series patched without its first r = (L_in − P) mod S values, X_p^{(i)} = "
        "unfold_{P,S}(x_{r+1:L_in}), so that the last patch ends at x_{L_in} (Hugging Face transformers' "
        "PatchTSTPatchify: sequence_start = L_in − ((N − 1) S + P); the official code pads the end with "
        "nn.ReplicationPad1d((0, S)) instead, the equation itself)",
    }[padding]
    return Equation(
        "timeseries.patching",
        "PatchTST patching: channel-independent patches, projected, with positions",
        inputs=(X,),
        params=(W_p, *((b_p,) if bias else ()), W_pos),
        intermediates=((X_pad,) if padding == "end" else ()) + (X_p, U),
        bindings=bindings,
        outputs=(U,),
        reference=Reference(SECTION, source=NIE, status="R"),
        constraints=(sp.Eq(N_p, sp.floor((L_in - P) / S_p) + extra), sp.Le(P, L_in)),
        invariants=(Invariant("channel_independence", {"input": "X", "output": "U"}),),
        notes="Each variable i is a univariate series, patched and embedded on its own with the same W_p, "
        f"b_p and W_pos (channel independence): {cut}; X_p^{{(i)}} ∈ ℝ^{{P×N}} holds the patches of length P "
        "at stride S as columns, "
        f"N = ⌊(L_in − P)/S⌋ + {extra}, and "
        "U^{(i)} = W_p X_p^{(i)} + b_p 1ᵀ + W_pos ∈ ℝ^{d_e×N}. The paper writes W_p x_p without a bias; the "
        "official code's nn.Linear(P, d_e) has one (variant no_bias is the paper's). RevIN instance "
        "normalisation, applied before patching in the code, is not part of this equation.",
    )


register(input_()).add_variant(
    "scaled", lambda: input_(scale=True), "√d_e (W_p x_t + b_p) + λ_t (mvts_transformer)"
)
register(masked_mse()).add_variant(
    "empty_nan", lambda: masked_mse("nan"), "NaN when no entry is masked (torch's mean of an empty selection)"
)
_PATCHING = register(patching())
_PATCHING.add_variant("no_bias", lambda: patching(bias=False), "W_p x_p without b_p, as the paper writes it")
_PATCHING.add_variant(
    "no_padding",
    lambda: patching(padding="none"),
    "no end padding: N = ⌊(L_in − P)/S⌋ + 1, the last (L_in − P) mod S values left out (padding_patch=None)",
)
_PATCHING.add_variant(
    "drop_start",
    lambda: patching(padding="drop_start"),
    "no padding, the first (L_in − P) mod S values left out: N = ⌊(L_in − P)/S⌋ + 1 patches ending at the "
    "last value (transformers' PatchTSTPatchify)",
)
