"""Operators of the spec: SymPy matrix expressions that know their shape, meaning, notation and code.

Each operator defines in one place:

- ``shape`` — symbolic;
- ``_entry(i, j)`` — its meaning element by element in plain SymPy (the single source of truth: the exact
  oracle, the generated code and the LaTeX all come from the same object);
- ``_check_shapes(checker)`` — what its operands must agree on;
- ``_latex(printer)`` — the matrix-level notation of the tutorial;
- ``_torchcode(printer)`` — PyTorch source for code generation (batched over leading axes, spec orientation);
- ``_explicit(explicit)`` — its explicit matrix at concrete sizes, from the explicit matrices of its operands.

The printers (spec/printing/) import the operators, never the other way round: an operator's notation is its
``_latex`` method, which prints its operands only through ``printer._print``.
"""

import sympy as sp
from sympy.core.symbol import Str
from sympy.logic.boolalg import BooleanAtom
from sympy.matrices.expressions.matexpr import MatrixExpr

from ._errors import SpecError

#: What a softmax row (or column) whose every score is −∞ becomes. The spec's convention is ``zero``:
#: the weights form the empty distribution over no admissible key, so the attention output of that
#: query is the empty sum, 0. Real code produces ``uniform`` (finite fills such as finfo.min: every
#: score equals the fill after rounding) or ``nan`` (a naive softmax of −∞ entries).
FULLY_MASKED = ("zero", "uniform", "nan")


class LineMax(sp.Max):
    """The largest of a softmax's line, the shift that keeps its exponentials finite: SymPy's ``Max``,
    left unevaluated whenever an argument is symbolic, also when it is rebuilt (by ``cse``, ``subs``,
    ``xreplace``). Evaluating ``Max`` compares every pair of its arguments symbolically; over a row of
    scores that is n² relational queries that can never decide anything, and it dominated the oracle's
    compile time. With numbers only it is ``Max`` itself."""

    def __new__(cls, *args, **assumptions):
        args = tuple(sp.sympify(a) for a in args)
        if all(a.is_number for a in args):
            return sp.Max(*args, **assumptions)
        assumptions["evaluate"] = False
        return super().__new__(cls, *args, **assumptions)


class SpecOp(MatrixExpr):
    """Base of the spec's operators; subclasses list their matrix operands in ``matrix_args``."""

    #: Whether the notation has a top-level ``+`` or ``−`` (a negation, a difference, an entry-wise
    #: formula): the printers wrap it in parentheses inside a product or a Hadamard product.
    prints_as_sum: bool = False
    #: Whether the entries ``_explicit`` gives repeat subexpressions that the oracle names once (``cse``):
    #: False where ``_explicit`` names the shared parts itself or the entries share nothing (a softmax, a
    #: layer norm, a one-hot), and a search for them would be wasted compile time.
    shares_subexpressions: bool = True

    @property
    def matrix_args(self) -> tuple[sp.Basic, ...]:
        return tuple(a for a in self.args if getattr(a, "is_Matrix", False))

    def _check_shapes(self, checker) -> None:
        return None

    def _explicit(self, explicit):
        """Entries at concrete sizes: rebuild the operator on explicit operands and ask ``_entry``."""
        args = [explicit(a) if getattr(a, "is_Matrix", False) else a for a in self.args]
        concrete = self.func(*args)
        rows, cols = (int(s) for s in concrete.shape)
        return sp.ImmutableMatrix(rows, cols, lambda i, j: concrete._entry(i, j))

    def _latex_definition(self, printer) -> str | None:
        """The element-wise definition shown under an equation ("where …"), if the notation needs one."""
        return None

    def _sympystr(self, printer) -> str:
        inner = ", ".join(printer._print(a) for a in self.args if not isinstance(a, Str))
        return f"{type(self).__name__}({inner})"


def _str(value: str) -> Str:
    return value if isinstance(value, Str) else Str(value)


class Softmax(SpecOp):
    """Softmax of each row (``axis="rows"``, attention) or each column (``axis="columns"``, LM heads).

    ``[softmax(Z)]_{ij} = e^{Z_ij} / Σ_{j'} e^{Z_{ij'}}``. Scores of −∞ get weight 0; a row whose scores are
    all −∞ follows ``fully_masked`` (see FULLY_MASKED).
    """

    shares_subexpressions = False  # _explicit names each line's maximum, exponentials and sum

    def __new__(cls, X: sp.Basic, axis: str = "rows", fully_masked: str = "zero") -> "Softmax":
        axis, fully_masked = str(axis), str(fully_masked)
        if axis not in ("rows", "columns"):
            raise SpecError(f"Softmax: axis must be 'rows' or 'columns', found {axis!r}")
        if fully_masked not in FULLY_MASKED:
            raise SpecError(f"Softmax: fully_masked must be one of {FULLY_MASKED}, found {fully_masked!r}")
        return MatrixExpr.__new__(cls, X, _str(axis), _str(fully_masked))

    @property
    def arg(self) -> sp.Basic:
        return self.args[0]

    @property
    def axis(self) -> str:
        return self.args[1].name

    @property
    def fully_masked(self) -> str:
        return self.args[2].name

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        return self.arg.shape

    def _line(self, i, j):
        """The entries softmax normalises over, and the position of (i, j) among them."""
        X = self.arg
        if self.axis == "rows":
            return (lambda k: X[i, k]), X.shape[1], j
        return (lambda k: X[k, j]), X.shape[0], i

    def _entry(self, i, j, **kwargs):
        get, size, pos = self._line(i, j)
        if not (sp.sympify(size).is_Integer):
            k = sp.Dummy("k", integer=True)
            return sp.exp(get(pos)) / sp.Sum(sp.exp(get(k)), (k, 0, size - 1))
        line = [get(k) for k in range(int(size))]
        top = LineMax(*line) if len(line) > 1 else line[0]
        ratio = sp.exp(get(pos) - top) / sp.Add(*[sp.exp(x - top) for x in line])
        empty = {"zero": sp.S.Zero, "uniform": sp.Integer(1) / size, "nan": sp.nan}[self.fully_masked]
        return sp.Piecewise((empty, sp.Eq(top, -sp.oo)), (ratio, True))

    def _explicit(self, explicit):
        """The entries at concrete sizes, as ``_entry`` gives them, with each line's maximum, exponentials
        and normaliser built (and named by ``explicit``) once per line instead of once per entry: a line
        of n entries costs n exponentials, not n²."""
        X = explicit(self.arg)
        lines = X if self.axis == "rows" else X.T
        rows, cols = lines.shape
        raw = [LineMax(*lines[i, :]) if cols > 1 else lines[i, 0] for i in range(rows)]
        tops = explicit(sp.ImmutableMatrix(rows, 1, raw))
        exps = explicit(sp.ImmutableMatrix(rows, cols, lambda i, j: sp.exp(lines[i, j] - tops[i, 0])))
        sums = explicit(sp.ImmutableMatrix(rows, 1, [sp.Add(*exps[i, :]) for i in range(rows)]))
        empty = {"zero": sp.S.Zero, "uniform": sp.Integer(1) / cols, "nan": sp.nan}[self.fully_masked]
        # whether a line may be all −∞ is decided on its entries, as _entry decides it (real logits never
        # are: their softmax has no masking convention); the named maximum stands in where that is open
        empties = [sp.Eq(top, -sp.oo) for top in raw]
        empties = [
            e if isinstance(e, BooleanAtom) else sp.Eq(tops[i, 0], -sp.oo) for i, e in enumerate(empties)
        ]
        out = sp.ImmutableMatrix(
            rows, cols, lambda i, j: sp.Piecewise((empty, empties[i]), (exps[i, j] / sums[i, 0], True))
        )
        return out if self.axis == "rows" else out.T

    def _latex_definition(self, printer) -> str:
        empty = {"zero": "0", "uniform": r"1/n", "nan": r"\mathrm{NaN}"}[self.fully_masked]
        if self.axis == "rows":
            body = r"\left[\operatorname{softmax}(Z)\right]_{ij} = \frac{e^{Z_{ij}}}{\sum_{j'} e^{Z_{ij'}}}"
            return rf"{body} \quad ({empty} \text{{ if every }} Z_{{ij'}} = -\infty)"
        body = (
            r"\left[\operatorname{softmax}_{\mathrm{col}}(Z)\right]_{ij} = "
            r"\frac{e^{Z_{ij}}}{\sum_{i'} e^{Z_{i'j}}}"
        )
        return rf"{body} \quad ({empty} \text{{ if every }} Z_{{i'j}} = -\infty)"

    def _latex(self, printer) -> str:
        sub = "" if self.axis == "rows" else r"_{\mathrm{col}}"
        return rf"\operatorname{{softmax}}{sub}\left({printer._print(self.arg)}\right)"

    def _torchcode(self, ctx) -> str:
        x = ctx.emit(ctx.expr(self.arg))
        dim = -1 if self.axis == "rows" else -2
        w = ctx.emit(f"torch.softmax({x}, dim={dim})")
        if self.fully_masked == "nan":
            return w
        empty = ctx.emit(f"torch.isneginf({x}).all(dim={dim}, keepdim=True)")
        fill = "0.0" if self.fully_masked == "zero" else f"1.0 / {x}.shape[{dim}]"
        return f"torch.where({empty}, {fill}, {w})"


class Ones(SpecOp):
    """The all-ones column vector ``1_n``; ``Ones(n) b^T`` broadcasts a bias to every row."""

    def __new__(cls, size: sp.Expr) -> "Ones":
        return MatrixExpr.__new__(cls, sp.sympify(size))

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        return (self.args[0], sp.Integer(1))

    def _entry(self, i, j, **kwargs):
        return sp.S.One

    def _latex(self, printer) -> str:
        return rf"\mathbf{{1}}_{{{printer._print(self.args[0])}}}"

    def _torchcode(self, ctx) -> str:
        return f"torch.ones({ctx.size(self.args[0])}, 1, dtype={ctx.dtype}, device={ctx.device})"


class CausalMask(SpecOp):
    """The causal mask ``S ∈ {0, −∞}^{n×n}``: ``S_ij = 0`` if ``j ≤ i`` and the fill (−∞) if ``j > i``."""

    def __new__(cls, size: sp.Expr, fill: sp.Expr = -sp.oo) -> "CausalMask":
        return MatrixExpr.__new__(cls, sp.sympify(size), sp.sympify(fill))

    @property
    def fill(self) -> sp.Expr:
        return self.args[1]

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        return (self.args[0], self.args[0])

    def _entry(self, i, j, **kwargs):
        return sp.Piecewise((sp.S.Zero, sp.Le(j, i)), (self.fill, True))

    def _latex(self, printer) -> str:
        return rf"S^{{\mathrm{{causal}}}}_{{{printer._print(self.args[0])}}}"

    def _latex_definition(self, printer) -> str:
        return (
            rf"\left({self._latex(printer)}\right)_{{ij}} = \begin{{cases}} 0 & j \le i \\ "
            rf"{printer._print(self.fill)} & j > i \end{{cases}}"
        )

    def _torchcode(self, ctx) -> str:
        n = ctx.size(self.args[0])
        above = ctx.emit(f"torch.ones({n}, {n}, dtype=torch.bool, device={ctx.device}).triu(diagonal=1)")
        return (
            f"torch.zeros({n}, {n}, dtype={ctx.dtype}, device={ctx.device})"
            f".masked_fill({above}, {ctx.scalar(self.fill)})"
        )


class PaddingMask(SpecOp):
    """The padding mask ``S ∈ {0, −∞}^{r×n}`` from a keep vector ``k ∈ {0,1}^n``: the fill in the
    columns of padded keys (``k_j = 0``), 0 elsewhere, for each of the ``r`` query rows."""

    def __new__(cls, keep: sp.Basic, rows: sp.Expr, fill: sp.Expr = -sp.oo) -> "PaddingMask":
        return MatrixExpr.__new__(cls, keep, sp.sympify(rows), sp.sympify(fill))

    @property
    def keep(self) -> sp.Basic:
        return self.args[0]

    @property
    def fill(self) -> sp.Expr:
        return self.args[2]

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        return (self.args[1], self.keep.shape[0])

    def _check_shapes(self, checker) -> None:
        checker.require(
            "padding mask", "keep vector columns", self.keep, self.keep.shape[1], self.keep, sp.Integer(1)
        )

    def _entry(self, i, j, **kwargs):
        return sp.Piecewise((sp.S.Zero, sp.Gt(self.keep[j, 0], 0)), (self.fill, True))

    def _latex(self, printer) -> str:
        return rf"S^{{\mathrm{{pad}}}}\left({printer._print(self.keep)}\right)"

    def _latex_definition(self, printer) -> str:
        k = printer._print(self.keep)
        return (
            rf"\left({self._latex(printer)}\right)_{{ij}} = \begin{{cases}} 0 & {k}_{{j}} = 1 \\ "
            rf"{printer._print(self.fill)} & {k}_{{j}} = 0 \end{{cases}}"
        )

    def _torchcode(self, ctx) -> str:
        keep = ctx.emit(ctx.expr(self.keep))
        rows = ctx.size(self.args[1])
        row = ctx.emit(
            f"torch.where({keep}.transpose(-1, -2) > 0, 0.0, {ctx.scalar(self.fill)}).to({ctx.dtype})"
        )
        return f"{row}.expand(*{row}.shape[:-2], {rows}, {row}.shape[-1])"


class MaskFill(SpecOp):
    """An additive mask with its −∞ entries replaced by a finite fill (−10⁴, finfo.min): a variant."""

    def __new__(cls, S: sp.Basic, fill: sp.Expr) -> "MaskFill":
        return MatrixExpr.__new__(cls, S, sp.sympify(fill))

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        return self.args[0].shape

    def _entry(self, i, j, **kwargs):
        s = self.args[0][i, j]
        return sp.Piecewise((self.args[1], sp.Eq(s, -sp.oo)), (s, True))

    def _latex(self, printer) -> str:
        S, fill = (printer._print(a) for a in self.args)
        return rf"\left.{S}\right|_{{-\infty \to {fill}}}"

    def _torchcode(self, ctx) -> str:
        s = ctx.emit(ctx.expr(self.args[0]))
        return f"{s}.masked_fill(torch.isneginf({s}), {ctx.scalar(self.args[1])})"


class HeadConcat(SpecOp):
    """Concatenation of per-head blocks side by side: ``[P_1, …, P_M]`` with ``P_m`` a body in ``m``."""

    def __new__(cls, body: sp.Basic, index: sp.Symbol, count: sp.Expr) -> "HeadConcat":
        return MatrixExpr.__new__(cls, body, index, sp.sympify(count))

    @property
    def body(self) -> sp.Basic:
        return self.args[0]

    @property
    def index(self) -> sp.Symbol:
        return self.args[1]

    @property
    def count(self) -> sp.Expr:
        return self.args[2]

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        rows, cols = self.body.shape
        return (rows, self.count * cols)

    @property
    def free_symbols(self) -> set:
        return (self.body.free_symbols - {self.index}) | self.count.free_symbols

    def _entry(self, i, j, **kwargs):
        width = self.body.shape[1]
        head = sp.floor(j / width) + 1
        return self.body.subs(self.index, head)[i, sp.Mod(j, width)]

    def _explicit(self, explicit):
        blocks = [explicit(self.body.subs(self.index, k)) for k in range(1, int(self.count) + 1)]
        return sp.ImmutableMatrix(sp.Matrix.hstack(*blocks))

    def _latex(self, printer) -> str:
        first = printer._print(self.body.subs(self.index, 1))
        last = printer._print(self.body.subs(self.index, self.count))
        return rf"\left[{first}, \ldots, {last}\right]"

    def _torchcode(self, ctx) -> str:
        parts = ctx.fresh("parts")
        ctx.line(f"{parts} = []")
        with ctx.loop(str(self.index), self.count):
            ctx.line(f"{parts}.append({ctx.expr(self.body)})")
        return f"torch.cat({parts}, dim=-1)"


#: The operators of this module; spec.ops_nn.OPERATORS adds the network operators to them.
OPERATORS_BASE: tuple[type[SpecOp], ...] = (Softmax, Ones, CausalMask, PaddingMask, MaskFill, HeadConcat)


# --- builders that keep the tutorial's written order (SymPy would reorder and distribute) -------------
def add(*terms: sp.Basic) -> sp.MatAdd:
    """``a + b + …`` in the order written."""
    return sp.MatAdd(*terms, evaluate=False)


def mul(*factors: sp.Basic) -> sp.MatMul:
    """``a b …`` in the order written; a scalar factor may stand anywhere (``Q Kᵀ / √d_k``)."""
    return sp.MatMul(*[sp.sympify(f) for f in factors], evaluate=False)


def T(x: sp.Basic) -> sp.Transpose:
    """``xᵀ`` without pushing the transpose inside a product."""
    return sp.Transpose(x)
