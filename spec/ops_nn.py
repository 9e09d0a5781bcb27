"""Operators of the network equations: element-wise functions, layer norm, one-hot lookup and picking,
column selection and stacking, scalars, and ``Call`` (one equation used inside another).

The same contract as spec/ops.py: ``shape``, ``_entry`` (the meaning), ``_check_shapes``, ``_latex``,
``_latex_definition``, ``_torchcode`` and, where the default does not fit, ``_explicit``.
"""

from dataclasses import dataclass

import sympy as sp
from sympy.core.symbol import Str
from sympy.matrices.expressions.matexpr import MatrixExpr

from ._errors import SpecError
from .ops import OPERATORS_BASE, SpecOp, _str
from .registry import lookup
from .tensors import FamilySlice

_x = sp.Symbol("x", real=True)


class Rsqrt0(sp.Function):
    """``1/√x`` for x > 0 and 0 at x = 0: layer norm's reciprocal spread without ε (a constant column
    normalises to 0). A function of its own so that the oracle never evaluates ``1/√0``."""

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.S.Zero
        if x.is_Number and x.is_positive:
            return 1 / sp.sqrt(x)
        return None


@dataclass(frozen=True)
class Pointwise:
    """A scalar function applied entry by entry: its SymPy formula in ``x``, its LaTeX name and the
    element-wise definition shown under an equation."""

    name: str
    formula: sp.Expr
    tex: str
    definition: str


#: The element-wise functions of the catalogue; the formula is the meaning (oracle and generated code).
POINTWISE: dict[str, Pointwise] = {
    f.name: f
    for f in (
        Pointwise(
            "relu",
            sp.Piecewise((_x, _x > 0), (0, True)),
            r"\operatorname{ReLU}",
            r"\operatorname{ReLU}(x) = \max(0, x)",
        ),
        Pointwise(
            "gelu",
            _x / 2 * (1 + sp.erf(_x / sp.sqrt(2))),
            r"\operatorname{GELU}",
            r"\operatorname{GELU}(x) = x\,\Phi(x) = \frac{x}{2}\left(1 + \operatorname{erf}(x/\sqrt{2})\right)",
        ),
        Pointwise(
            "gelu_tanh",
            _x / 2 * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (_x + sp.Rational(44715, 10**6) * _x**3))),
            r"\operatorname{GELU}_{\tanh}",
            r"\operatorname{GELU}_{\tanh}(x) = \frac{x}{2}\left(1 + \tanh\left(\sqrt{2/\pi}\,"
            r"(x + 0.044715\,x^{3})\right)\right)",
        ),
        Pointwise("sigmoid", 1 / (1 + sp.exp(-_x)), r"\sigma", r"\sigma(x) = \frac{1}{1 + e^{-x}}"),
        Pointwise("tanh", sp.tanh(_x), r"\tanh", ""),
        Pointwise("exp", sp.exp(_x), r"\exp", ""),
        Pointwise("log", sp.log(_x), r"\log", ""),
        Pointwise("square", _x**2, r"\operatorname{sq}", r"\operatorname{sq}(x) = x^{2}"),
    )
}


class Elementwise(SpecOp):
    """``φ(X)``: the function ``φ`` (a key of POINTWISE) applied to every entry of X."""

    def __new__(cls, X: sp.Basic, function: str) -> "Elementwise":
        function = str(function)
        if function not in POINTWISE:
            raise SpecError(f"Elementwise: unknown function {function!r} (known: {', '.join(POINTWISE)})")
        return MatrixExpr.__new__(cls, X, _str(function))

    @property
    def arg(self) -> sp.Basic:
        return self.args[0]

    @property
    def function(self) -> Pointwise:
        return POINTWISE[self.args[1].name]

    @property
    def shape(self):
        return self.arg.shape

    def _entry(self, i, j, **kwargs):
        return self.function.formula.xreplace({_x: self.arg[i, j]})

    def _latex(self, printer) -> str:
        return rf"{self.function.tex}\left({printer._print(self.arg)}\right)"

    def _latex_definition(self, printer) -> str | None:
        return self.function.definition or None

    def _torchcode(self, ctx) -> str:
        x = ctx.emit(ctx.expr(self.arg))
        return ctx.pointwise(self.function.formula, _x, x)


def apply(function: str, X: sp.Basic) -> Elementwise:
    """``φ(X)`` for a named element-wise function: ``apply("tanh", W_h z_t + b_h)``."""
    return Elementwise(X, function)


class LayerNorm(SpecOp):
    """Layer norm of each column: ``LN(h; α, β) = α ⊙ (h − μ 1) / σ + β`` with the population spread.

    ``μ = (1/d) Σ_i h_i``, ``σ = √((1/d) Σ_i (h_i − μ)² + ε)``; the tutorial writes ε = 0, libraries use a
    small ε (a named variant). With ε = 0 a constant column has σ = 0: the spec defines its normalised
    value as 0, so the output is β (what every ε > 0 gives in the limit).
    """

    def __new__(cls, H: sp.Basic, alpha: sp.Basic, beta: sp.Basic, eps: sp.Expr = 0) -> "LayerNorm":
        return MatrixExpr.__new__(cls, H, alpha, beta, sp.sympify(eps))

    @property
    def eps(self) -> sp.Expr:
        return self.args[3]

    @property
    def shape(self):
        return self.args[0].shape

    def _check_shapes(self, checker) -> None:
        H, alpha, beta, _ = self.args
        for p in (alpha, beta):
            checker.require("layer norm", "features", H, H.shape[0], p, p.shape[0])
            checker.require("layer norm", "columns of a parameter", p, p.shape[1], p, sp.Integer(1))

    def _entry(self, i, j, **kwargs):
        H, alpha, beta, eps = self.args
        d = H.shape[0]
        if not sp.sympify(d).is_Integer:
            k = sp.Dummy("k", integer=True)
            mu = sp.Sum(H[k, j], (k, 0, d - 1)) / d
            var = sp.Sum((H[k, j] - mu) ** 2, (k, 0, d - 1)) / d
            return alpha[i, 0] * (H[i, j] - mu) / sp.sqrt(var + eps) + beta[i, 0]
        col = [H[k, j] for k in range(int(d))]
        mu = sp.Add(*col) / d
        var = sp.Add(*[(x - mu) ** 2 for x in col]) / d
        normed = (H[i, j] - mu) * (Rsqrt0(var) if eps == 0 else 1 / sp.sqrt(var + eps))
        return alpha[i, 0] * normed + beta[i, 0]

    def _latex(self, printer) -> str:
        H, alpha, beta, _ = (printer._print(a) for a in self.args)
        return rf"\operatorname{{LN}}\left({H}; {alpha}, {beta}\right)"

    def _latex_definition(self, printer) -> str:
        eps = "" if self.eps == 0 else rf" + {printer._print(self.eps)}"
        return (
            r"\operatorname{LN}(h; \alpha, \beta) = \alpha \odot \frac{h - \mu \mathbf{1}}{\sigma} + \beta, "
            r"\quad \mu = \frac{1}{d} \sum_{i} h_{i}, \quad "
            rf"\sigma = \sqrt{{\frac{{1}}{{d}} \sum_{{i}} (h_{{i}} - \mu)^{{2}}{eps}}}"
        )

    def _torchcode(self, ctx) -> str:
        H, alpha, beta = (ctx.emit(ctx.expr(a)) for a in self.args[:3])
        mu = ctx.emit(f"{H}.mean(dim=-2, keepdim=True)")
        var = ctx.emit(f"(({H} - {mu}) ** 2).mean(dim=-2, keepdim=True)")
        if self.eps == 0:
            normed = ctx.emit(f"torch.where({var} == 0, 0.0, ({H} - {mu}) / torch.sqrt({var}))")
        else:
            normed = ctx.emit(f"({H} - {mu}) / torch.sqrt({var} + {ctx.scalar(self.eps)})")
        return f"({alpha} * {normed} + {beta})"


class OneHot(SpecOp):
    """``Ω ∈ {0,1}^{v×n}`` from token indices ``k ∈ ℕ^n``: ``Ω_{k_i, i} = 1`` (0-based rows)."""

    shares_subexpressions = False

    def __new__(cls, k: sp.Basic, rows: sp.Expr) -> "OneHot":
        return MatrixExpr.__new__(cls, k, sp.sympify(rows))

    @property
    def shape(self):
        return (self.args[1], self.args[0].shape[0])

    def _check_shapes(self, checker) -> None:
        k = self.args[0]
        checker.require("one-hot", "index vector columns", k, k.shape[1], k, sp.Integer(1))

    def _entry(self, i, j, **kwargs):
        return sp.Piecewise((1, sp.Eq(self.args[0][j, 0], i)), (0, True))

    def _latex(self, printer) -> str:
        return rf"\operatorname{{onehot}}_{{{printer._print(self.args[1])}}}\left({printer._print(self.args[0])}\right)"

    def _latex_definition(self, printer) -> str:
        return r"\operatorname{onehot}(k)_{ji} = 1 \text{ if } j = k_{i}, \text{ else } 0"

    def _torchcode(self, ctx) -> str:
        k = ctx.emit(ctx.expr(self.args[0]))
        rows = ctx.size(self.args[1])
        return (
            f"torch.nn.functional.one_hot({k}.squeeze(-1).long(), {rows}).transpose(-1, -2).to({ctx.dtype})"
        )


class Pick(SpecOp):
    """``[Y_{k_i, i}]_i ∈ ℝ^n``: from each column i of Y the entry in row ``k_i`` (a column vector)."""

    shares_subexpressions = False

    def __new__(cls, Y: sp.Basic, k: sp.Basic) -> "Pick":
        return MatrixExpr.__new__(cls, Y, k)

    @property
    def shape(self):
        return (self.args[0].shape[1], sp.Integer(1))

    def _check_shapes(self, checker) -> None:
        Y, k = self.args
        checker.require("pick", "tokens (columns of Y, rows of k)", Y, Y.shape[1], k, k.shape[0])
        checker.require("pick", "index vector columns", k, k.shape[1], k, sp.Integer(1))

    def _entry(self, i, j, **kwargs):
        Y, k = self.args
        rows = Y.shape[0]
        if not sp.sympify(rows).is_Integer:
            return Y[k[i, 0], i]
        return sp.Add(*[sp.Piecewise((Y[r, i], sp.Eq(k[i, 0], r)), (0, True)) for r in range(int(rows))])

    def _latex(self, printer) -> str:
        Y, k = (printer._print(a) for a in self.args)
        return rf"\left[{Y}_{{{k}_{{i}}, i}}\right]_{{i}}"

    def _torchcode(self, ctx) -> str:
        Y, k = (ctx.emit(ctx.expr(a)) for a in self.args)
        return f"torch.gather({Y}, -2, {k}.long().transpose(-1, -2)).transpose(-1, -2)"


class Column(SpecOp):
    """Column ``t`` (1-based, as the tutorial counts tokens) of X: ``x_t = X_{:,t}``."""

    def __new__(cls, X: sp.Basic, t: sp.Expr) -> "Column":
        return MatrixExpr.__new__(cls, X, sp.sympify(t))

    @property
    def shape(self):
        return (self.args[0].shape[0], sp.Integer(1))

    def _entry(self, i, j, **kwargs):
        return self.args[0][i, self.args[1] - 1]

    def _latex(self, printer) -> str:
        X, t = (printer._print(a) for a in self.args)
        return rf"{X}_{{:,{t}}}"

    def _torchcode(self, ctx) -> str:
        X = ctx.emit(ctx.expr(self.args[0]))
        return f"{X}[..., :, {ctx.size(self.args[1])} - 1 : {ctx.size(self.args[1])}]"


class FirstColumns(SpecOp):
    """The first ``n`` columns of X: ``Λ_{:,1:n}``."""

    def __new__(cls, X: sp.Basic, count: sp.Expr) -> "FirstColumns":
        return MatrixExpr.__new__(cls, X, sp.sympify(count))

    @property
    def shape(self):
        return (self.args[0].shape[0], self.args[1])

    def _entry(self, i, j, **kwargs):
        return self.args[0][i, j]

    def _latex(self, printer) -> str:
        X, count = (printer._print(a) for a in self.args)
        return rf"{X}_{{:,1:{count}}}"

    def _torchcode(self, ctx) -> str:
        X = ctx.emit(ctx.expr(self.args[0]))
        return f"{X}[..., :, :{ctx.size(self.args[1])}]"


class Stacked(SpecOp):
    """Blocks stacked on top of one another, ``[B_1; …; B_K]`` with ``B_k`` a body in the index k."""

    def __new__(cls, body: sp.Basic, index: sp.Symbol, count: sp.Expr) -> "Stacked":
        return MatrixExpr.__new__(cls, body, index, sp.sympify(count))

    @property
    def shape(self):
        rows, cols = self.args[0].shape
        return (self.args[2] * rows, cols)

    @property
    def free_symbols(self) -> set:
        body, index, count = self.args
        return (body.free_symbols - {index}) | count.free_symbols

    def _entry(self, i, j, **kwargs):
        body, index, _ = self.args
        height = body.shape[0]
        return body.subs(index, sp.floor(i / height) + 1)[sp.Mod(i, height), j]

    def _explicit(self, explicit):
        body, index, count = self.args
        blocks = [explicit(body.subs(index, k)) for k in range(1, int(count) + 1)]
        return sp.ImmutableMatrix(sp.Matrix.vstack(*blocks))

    def _latex(self, printer) -> str:
        body, index, count = self.args
        first = printer._print(body.subs(index, 1))
        last = printer._print(body.subs(index, count))
        return rf"\begin{{bmatrix}} {first} \\ \vdots \\ {last} \end{{bmatrix}}"

    def _torchcode(self, ctx) -> str:
        body, index, count = self.args
        parts = ctx.fresh("parts")
        ctx.line(f"{parts} = []")
        with ctx.loop(str(index), count):
            ctx.line(f"{parts}.append({ctx.expr(body)})")
        return f"torch.cat({parts}, dim=-2)"


class Zeros(SpecOp):
    """The zero matrix (or vector) ``0``: the initial state of a recurrence."""

    def __new__(cls, rows: sp.Expr, cols: sp.Expr = 1) -> "Zeros":
        return MatrixExpr.__new__(cls, sp.sympify(rows), sp.sympify(cols))

    @property
    def shape(self):
        return (self.args[0], self.args[1])

    def _entry(self, i, j, **kwargs):
        return sp.S.Zero

    def _latex(self, printer) -> str:
        return r"\mathbf{0}"

    def _torchcode(self, ctx) -> str:
        rows, cols = (ctx.size(a) for a in self.args)
        return f"torch.zeros({rows}, {cols}, dtype={ctx.dtype}, device={ctx.device})"


class Scalar(SpecOp):
    """A scalar expression as a 1×1 matrix (a parameter count, a constant)."""

    def __new__(cls, value: sp.Expr) -> "Scalar":
        return MatrixExpr.__new__(cls, sp.sympify(value))

    @property
    def shape(self):
        return (sp.Integer(1), sp.Integer(1))

    @property
    def free_symbols(self) -> set:
        return self.args[0].free_symbols

    def _entry(self, i, j, **kwargs):
        return self.args[0]

    def _latex(self, printer) -> str:
        return printer._print(self.args[0])

    def _torchcode(self, ctx) -> str:
        return f"torch.full((1, 1), {ctx.scalar(self.args[0])}, dtype={ctx.dtype}, device={ctx.device})"


class Scaled(SpecOp):
    """``X · s^p`` for a scalar (1×1) expression s: ``z / τ`` is ``Scaled(z, τ, -1)``."""

    def __new__(cls, X: sp.Basic, s: sp.Basic, power: int = 1) -> "Scaled":
        return MatrixExpr.__new__(cls, X, s, sp.Integer(power))

    @property
    def shape(self):
        return self.args[0].shape

    def _check_shapes(self, checker) -> None:
        s = self.args[1]
        checker.require("scalar factor", "rows", s, s.shape[0], s, sp.Integer(1))
        checker.require("scalar factor", "columns", s, s.shape[1], s, sp.Integer(1))

    def _entry(self, i, j, **kwargs):
        X, s, p = self.args
        return X[i, j] * s[0, 0] ** p

    def _latex(self, printer) -> str:
        X, s, p = self.args
        x = printer._print(X)
        if isinstance(X, (sp.MatAdd, sp.MatMul)):
            x = rf"\left({x}\right)"
        if p == -1:
            return rf"{x} / {printer._print(s)}"
        if p == 1:
            return rf"{printer._print(s)}\, {x}"
        return rf"{printer._print(s)}^{{{p}}}\, {x}"

    def _torchcode(self, ctx) -> str:
        X, s, p = self.args
        x, sv = ctx.emit(ctx.expr(X)), ctx.emit(ctx.expr(s))
        return f"({x} * {sv} ** ({int(p)}))"


class Call(SpecOp):
    """Output ``output`` of equation ``equation`` applied to arguments: ``MHA(Ĥ; S)`` inside a block.

    ``arguments`` maps the called equation's input and parameter names to expressions of the caller (a
    family is passed as a FamilySlice); ``axes`` renames the called equation's axes (``n → n_d``). The
    oracle expands the called equation once per sizes, as a function it calls; generated code calls its
    generated function.
    """

    def __new__(cls, equation: Str, output: Str, pairs: sp.Tuple, renames: sp.Tuple, tex: Str) -> "Call":
        # Raw arguments, so that SymPy can rebuild a call (subs); ``call()`` validates and builds one.
        return MatrixExpr.__new__(cls, equation, output, pairs, renames, tex)

    @property
    def equation(self):
        return lookup(self.args[0].name)

    @property
    def output(self) -> str:
        return self.args[1].name

    @property
    def arguments(self) -> dict[str, sp.Basic]:
        return {k.name: v for k, v in self.args[2]}

    @property
    def renames(self) -> dict[sp.Symbol, sp.Expr]:
        return dict(tuple(p) for p in self.args[3])

    @property
    def matrix_args(self) -> tuple[sp.Basic, ...]:
        return tuple(v for v in self.arguments.values() if getattr(v, "is_Matrix", False))

    @property
    def shape(self):
        decl = self.equation.declared(self.output)
        return tuple(sp.sympify(s).subs(self.renames) for s in decl.shape)

    @property
    def free_symbols(self) -> set:
        out: set = set()
        for v in self.arguments.values():
            out |= v.free_symbols
        return out

    def _check_shapes(self, checker) -> None:
        sub = self.equation
        for name, value in self.arguments.items():
            decl = sub.declared(name)
            if isinstance(value, FamilySlice):
                continue
            want = tuple(sp.sympify(s).subs(self.renames) for s in decl.shape)
            for axis, w, g in zip(("rows", "columns"), want, value.shape, strict=True):
                checker.require(f"argument {name} of {sub.id}", axis, value, g, decl, w)

    def _entry(self, i, j, **kwargs):
        raise SpecError(f"{self.args[0].name} is expanded by the oracle, not entry by entry")

    def _latex(self, printer) -> str:
        """``MHA^{(l)}(Ĥ, S)``: the called equation's inputs; the layer of sliced parameters on top."""
        tex = self.args[4].name or rf"\operatorname{{{self.args[0].name.split('.')[-1]}}}"
        sub = self.equation
        args = self.arguments
        shown = [printer._print(args[d.name]) for d in sub.inputs]
        layers = {tuple(v.indices) for v in args.values() if isinstance(v, FamilySlice) and v.indices}
        if len(layers) == 1:
            tex += "^{(" + ",".join(printer._print(k) for k in next(iter(layers))) + ")}"
        return rf"{tex}\left({', '.join(shown)}\right)"

    def _sympystr(self, printer) -> str:
        inner = ", ".join(f"{k}={printer._print(v)}" for k, v in self.arguments.items())
        return f"{self.args[0].name}({inner})"

    def _torchcode(self, ctx) -> str:
        return ctx.call(self)


def call(
    equation: str, output: str, tex: str | None = None, axes: dict | None = None, **arguments: sp.Basic
) -> Call:
    """``call("attention.multi_head", "A", H=H_hat, S=S, W_Q=W_Q.slice(l), ...)``: the output ``output`` of
    equation ``equation`` on these arguments (exactly its inputs and parameters). The equation must be
    registered: a family module that calls another family's equation imports that family's module."""
    sub = lookup(str(equation))
    names = {d.name for d in (*sub.inputs, *sub.params)}
    unknown = sorted(set(arguments) - names)
    missing = sorted(names - set(arguments))
    if unknown or missing:
        raise SpecError(
            f"call of {equation}: arguments must be exactly its inputs and parameters "
            f"({', '.join(sorted(names))}); unknown {unknown or 'none'}, missing {missing or 'none'}"
        )
    sub.declared(str(output))
    pairs = sp.Tuple(*[sp.Tuple(Str(k), arguments[k]) for k in sorted(arguments)])
    renames = sp.Tuple(*[sp.Tuple(a, sp.sympify(b)) for a, b in sorted((axes or {}).items(), key=str)])
    return Call(Str(str(equation)), Str(str(output)), pairs, renames, Str(tex or ""))


class Neg(SpecOp):
    """``−X``, printed with a plain minus sign (``mul(-1, X)`` would print as ``-1 X``): losses ``−log …``."""

    prints_as_sum = True

    def __new__(cls, X: sp.Basic) -> "Neg":
        return MatrixExpr.__new__(cls, X)

    @property
    def shape(self):
        return self.args[0].shape

    def _entry(self, i, j, **kwargs):
        return -self.args[0][i, j]

    def _latex(self, printer) -> str:
        X = self.args[0]
        text = printer._print(X)
        return rf"-\left({text}\right)" if isinstance(X, (sp.MatAdd, Neg)) else f"-{text}"

    def _torchcode(self, ctx) -> str:
        return f"(-{ctx.emit(ctx.expr(self.args[0]))})"


def had(*factors: sp.Basic) -> sp.HadamardProduct:
    """``a ⊙ b ⊙ …`` in the order written."""
    return sp.HadamardProduct(*factors, evaluate=False)


#: The operators of this module, for registry-wide tests.
OPERATORS_NN = (
    Neg,
    Elementwise,
    LayerNorm,
    OneHot,
    Pick,
    Column,
    FirstColumns,
    Stacked,
    Zeros,
    Scalar,
    Scaled,
    Call,
)

#: Every operator of spec/ops.py and of this module, for registry-wide tests (printing, code generation).
OPERATORS: tuple[type[SpecOp], ...] = (*OPERATORS_BASE, *OPERATORS_NN)
