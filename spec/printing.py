"""LaTeX printing of spec expressions in the tutorial's notation."""

import sympy as sp
from sympy.printing.latex import LatexPrinter

from spec.ops import Ones
from spec.tensors import FamilyMember, TensorSymbol


class SpecLatexPrinter(LatexPrinter):
    """SymPy's LaTeX printer with the tutorial's conventions: ``^{\\top}``, declared names, ``W^{(m)}``."""

    def __init__(self, names: dict[str, str] | None = None) -> None:
        super().__init__({"mat_symbol_style": "plain"})
        self.names = names or {}

    def _tex_name(self, name: str, fallback: str) -> str:
        return self.names.get(name, fallback)

    def _print_MatrixSymbol(self, expr: sp.MatrixSymbol) -> str:
        fallback = (
            expr.tex if isinstance(expr, TensorSymbol) and expr.tex else super()._print_MatrixSymbol(expr)
        )
        return self._tex_name(expr.name, fallback)

    def _print_FamilyMember(self, expr: FamilyMember) -> str:
        base = self._tex_name(expr.name, expr.name)
        idx = ",".join(self._print(k) for k in expr.indices)
        if "{index}" in base:  # a family written with a subscript: h_{t}
            return base.replace("{index}", idx)
        return rf"{base}^{{({idx})}}"

    def _print_HadamardProduct(self, expr: sp.HadamardProduct) -> str:
        parts = []
        for a in expr.args:
            text = self._print(a)
            if isinstance(a, (sp.MatAdd, sp.MatMul)):
                text = rf"\left({text}\right)"
            parts.append(text)
        return r" \odot ".join(parts)

    def _print_Transpose(self, expr: sp.Transpose) -> str:
        inner = expr.arg
        text = self._print(inner)
        if isinstance(inner, FamilyMember):
            text = f"{{{text}}}"
        elif not isinstance(inner, (sp.MatrixSymbol, Ones)):
            text = rf"\left({text}\right)"
        return rf"{text}^{{\top}}"

    def _print_MatAdd(self, expr: sp.MatAdd) -> str:
        # In the order written (SymPy's printer sorts the terms).
        out = self._print(expr.args[0])
        for term in expr.args[1:]:
            text = self._print(term)
            out += f" - {text[1:].lstrip()}" if text.startswith("-") else f" + {text}"
        return out

    def _print_MatMul(self, expr: sp.MatMul) -> str:
        # Matrices in the order written; a scalar coefficient 1/x becomes a fraction over x.
        coeff = sp.Mul(*[a for a in expr.args if not getattr(a, "is_Matrix", False)])
        mats = [a for a in expr.args if getattr(a, "is_Matrix", False)]
        parts = []
        for a in mats:
            text = self._print(a)
            if isinstance(a, (sp.MatAdd, sp.HadamardProduct)):
                text = rf"\left({text}\right)"
            parts.append(text)
        body = " ".join(parts)
        if coeff == 1:
            return body
        num, den = sp.fraction(coeff)
        if den != 1:
            top = body if num == 1 else f"{self._print(num)} {body}"
            return rf"\frac{{{top}}}{{{self._print(den)}}}"
        return f"{self._print(coeff)} {body}"


def latex(expr: sp.Basic, names: dict[str, str] | None = None) -> str:
    """LaTeX of a spec expression; ``names`` maps symbol names to their declared LaTeX."""
    return SpecLatexPrinter(names).doprint(expr)
