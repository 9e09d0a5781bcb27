"""A strict symbolic shape checker.

SymPy raises ShapeError only for integer sizes; with symbols it lets ``Q(n×d_k)·V(n×d_v)`` through. Every
product, sum, transpose and operator of an equation is checked here, under the equation's declared
constraints, and a disagreement names the equation, the operation, the axis and both sides.
"""

import itertools
from collections.abc import Sequence

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr

from ._errors import SpecError, SpecShapeError


def fmt_shape(shape: Sequence[sp.Expr]) -> str:
    return "×".join(_fmt(s) for s in shape)


def _fmt(e: sp.Expr) -> str:
    return str(e).replace("*", "·")


def describe(expr: sp.Basic) -> str:
    """A short description of a matrix expression for error messages: ``Q (n×d_k)``."""
    text = str(expr)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({fmt_shape(expr.shape)})"


class ShapeChecker:
    """Checks matrix expressions of one equation against its constraints ``axis = expression``."""

    def __init__(self, equation: str, constraints: Sequence[sp.Eq] = ()) -> None:
        self.equation = equation
        self.subs = {c.lhs: c.rhs for c in constraints}

    def same(self, a: sp.Expr, b: sp.Expr) -> bool:
        a, b = sp.sympify(a), sp.sympify(b)
        return sp.simplify(a.subs(self.subs) - b.subs(self.subs)) == 0

    def require(
        self, operation: str, axis: str, left: sp.Basic, lsize: sp.Expr, right: sp.Basic, rsize: sp.Expr
    ) -> None:
        if not self.same(lsize, rsize):
            raise SpecShapeError(
                self.equation,
                operation,
                axis,
                f"{describe(left)} has {_fmt(lsize)}",
                f"{describe(right)} has {_fmt(rsize)}",
            )

    def check(self, expr: sp.Basic) -> tuple[sp.Expr, sp.Expr]:
        """Check every node of ``expr``; return its shape."""
        if not isinstance(expr, MatrixExpr) and not getattr(expr, "is_Matrix", False):
            raise SpecError(f"{self.equation}: expected a matrix expression, found {expr!r}")
        if isinstance(expr, sp.MatMul):
            mats = [a for a in expr.args if getattr(a, "is_Matrix", False)]
            for a in mats:
                self.check(a)
            for left, right in itertools.pairwise(mats):
                self.require(
                    "product", "inner axis (columns × rows)", left, left.shape[1], right, right.shape[0]
                )
            return expr.shape
        if isinstance(expr, sp.MatAdd):
            first, *rest = expr.args
            self.check(first)
            for other in rest:
                self.check(other)
                self.require("sum", "rows", first, first.shape[0], other, other.shape[0])
                self.require("sum", "columns", first, first.shape[1], other, other.shape[1])
            return expr.shape
        if isinstance(expr, (sp.Transpose, sp.HadamardProduct)):
            for a in expr.args:
                self.check(a)
            if isinstance(expr, sp.HadamardProduct):
                first, *rest = expr.args
                for other in rest:
                    self.require("element-wise product", "rows", first, first.shape[0], other, other.shape[0])
                    self.require(
                        "element-wise product", "columns", first, first.shape[1], other, other.shape[1]
                    )
            return expr.shape
        op_check = getattr(expr, "_check_shapes", None)
        if op_check is not None:
            for a in expr.args:
                if getattr(a, "is_Matrix", False):
                    self.check(a)
            op_check(self)
            return expr.shape
        return expr.shape
