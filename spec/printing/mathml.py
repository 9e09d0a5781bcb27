"""Presentation MathML of spec expressions, in the tutorial's notation (the same as the LaTeX).

``SpecMathMLPrinter`` extends SymPy's MathMLPresentationPrinter:

- matrix structure (products in the order written, sums, ``⊙``, transposes ``^⊤``) is printed here, with
  families as ``W_Q^{(m)}``, declared names (``Λ``, ``κ``, ``α``) and the glossary's axis names;
- every operator of spec/ (a ``SpecOp``) is printed from its own ``_latex`` notation, read as a template
  whose operands this printer prints (``notation`` in spec/printing/latex.py): an operator's notation is
  written once;
- scalar formulas (sizes, coefficients, counts) are the LaTeX printer's, read through the same tree, so that
  the LaTeX, the MathML and the Unicode agree to the symbol.

The output is XML: SymPy's named entities (``&InvisibleTimes;``) are replaced by character references and
text is escaped; alphabets other than upright (bold ``𝟏``, double-struck ``ℝ``, script ``ℒ``) are written as
Unicode characters, which MathML Core (Chromium) renders, rather than ``mathvariant``.
"""

import re
from functools import lru_cache
from html import escape
from xml.dom.minidom import Element

import sympy as sp
from sympy.printing.mathml import MathMLPresentationPrinter

from ..ops import SpecOp
from ..ops_nn import Neg
from ..tensors import FamilyMember
from .latex import (
    Accent,
    Fence,
    Frac,
    Group,
    Script,
    SpecLatexPrinter,
    Sqrt,
    Table,
    Tok,
    needs_parens_before_transpose,
    needs_parens_in_hadamard,
    needs_parens_in_product,
    notation,
    parse_tex,
    styled_text,
)

MATHML_NS = "http://www.w3.org/1998/Math/MathML"

#: SymPy's MathML printer writes a few HTML named entities, undefined in XML.
_ENTITIES = {
    "&InvisibleTimes;": "&#x2062;",
    "&ExponentialE;": "e",
    "&ImaginaryI;": "i",
    "&pi;": "&#x3C0;",
    "&dd;": "d",
    "&int;": "&#x222B;",
}
_ACCENTS = {"hat": "^", "widehat": "^", "tilde": "~", "widetilde": "~", "bar": "\u00af"}
_SPACES = {"thin": "0.1667em", "medium": "0.2222em", "normal": "0.25em", "quad": "1em", "qquad": "2em"}


class SpecMathMLPrinter(MathMLPresentationPrinter):
    """Presentation MathML in the tutorial's notation; ``names`` maps symbol names to their LaTeX."""

    def __init__(self, names: dict[str, str] | None = None) -> None:
        super().__init__({"mat_symbol_style": "plain", "mul_symbol": "&#x2062;"})
        self.names = names or {}
        self.latex_printer = SpecLatexPrinter(self.names)

    # -- building blocks -------------------------------------------------------------------------------
    def el(self, tag: str, *children, **attrs) -> Element:
        node = self.dom.createElement(tag)
        for key, value in attrs.items():
            node.setAttribute(key, value)
        for child in children:
            node.appendChild(child)
        return node

    def token(self, tag: str, text: str, **attrs) -> Element:
        node = self.el(tag, **attrs)
        node.appendChild(self.dom.createTextNode(escape(text, quote=False)))  # SymPy's are not escaped
        return node

    def mo(self, text: str, **attrs) -> Element:
        return self.token("mo", text, **attrs)

    def row(self, *children) -> Element:
        return children[0] if len(children) == 1 else self.el("mrow", *children)

    def fenced(self, child: Element, open_: str = "(", close: str = ")") -> Element:
        """``(child)``: brackets that stretch around tall content (a fraction, a table, a sum with limits)
        and keep their text size otherwise (a stretchy bracket around one letter renders loose)."""
        stretchy = "true" if _tall(child) else "false"
        parts = []
        if open_:
            parts.append(self.mo(open_, fence="true", stretchy=stretchy))
        parts.append(child)
        if close:
            parts.append(self.mo(close, fence="true", stretchy=stretchy))
        return self.el("mrow", *parts)

    def tex(self, text: str, slots: list | None = None) -> Element:
        """MathML of a LaTeX string of the spec's subset (a declared name, a definition, a template)."""
        return self._tree(parse_tex(text), slots or [])

    # -- the notation tree ---------------------------------------------------------------------------
    def _tree(self, node, slots: list) -> Element:
        if isinstance(node, Group):
            items = []
            unary = None
            for k, n in enumerate(node.items):
                if unary is not None:  # −∞, −x: a sign and its operand in one row (prefix form, no spacing)
                    items.append(self.el("mrow", unary, self._tree(n, slots)))
                    unary = None
                    continue
                if _is_sign(n) and k + 1 < len(node.items) and (k == 0 or _is_operator(node.items[k - 1])):
                    unary = self._tree(n, slots)
                    continue
                items.append(self._tree(n, slots))
                if _is_function(n) and k + 1 < len(node.items) and not _opens(node.items[k + 1]):
                    # log y: the thin space TeX puts after an operator name (none before a parenthesis)
                    items.append(self.el("mspace", width=_SPACES["thin"]))
            if not items:
                return self.el("mrow")
            return self.row(*items)
        if isinstance(node, Tok):
            return self._tok(node, slots)
        if isinstance(node, Script):
            return self._script(node, slots)
        if isinstance(node, Frac):
            return self.el("mfrac", self._tree(node.num, slots), self._tree(node.den, slots))
        if isinstance(node, Sqrt):
            return self.el("msqrt", self._tree(node.body, slots))
        if isinstance(node, Fence):
            return self.fenced(self._tree(node.body, slots), node.open, node.close)
        if isinstance(node, Accent):
            mark = self.mo(_ACCENTS[node.mark], stretchy="true" if node.mark.startswith("wide") else "false")
            return self.el("mover", self._tree(node.body, slots), mark, accent="true")
        if isinstance(node, Table):
            return self._table(node, slots)
        raise TypeError(f"no MathML for {node!r}")

    def _tok(self, tok: Tok, slots: list) -> Element:
        if tok.kind == "slot":
            return self._print(slots[int(tok.text)])
        if tok.kind == "mi":
            text = styled_text(tok.text, tok.style)
            if tok.style == "normal" and len(text) == 1:
                return self.token("mi", text, mathvariant="normal")
            return self.token("mi", text)
        if tok.kind == "mn":
            text = styled_text(tok.text, tok.style)
            return self.token("mn" if text.isascii() else "mi", text)
        if tok.kind == "fn":
            if len(tok.text) == 1:
                return self.token("mi", tok.text, mathvariant="normal")
            return self.token("mi", tok.text)
        if tok.kind == "op":
            return self.mo(tok.text, largeop="true", movablelimits="true")
        if tok.kind == "mo":
            if tok.text in "()[]{}|":
                return self.mo(tok.text, stretchy="false")
            return self.mo(tok.text)
        if tok.kind == "text":
            # token elements trim their spaces: keep them as no-break spaces
            text = re.sub(r"^ +| +$", lambda m: "\u00a0" * len(m.group()), tok.text)
            return self.token("mtext", text)
        if tok.kind == "space":
            return self.el("mspace", width=_SPACES[tok.text])
        raise TypeError(f"no MathML for token {tok!r}")

    def _script(self, node: Script, slots: list) -> Element:
        base = self._tree(node.base, slots)
        big = isinstance(node.base, Tok) and node.base.kind == "op"
        parts = [base]
        if node.sub is not None:
            parts.append(self._tree(node.sub, slots))
        if node.sup is not None:
            parts.append(self._tree(node.sup, slots))
        if node.sub is not None and node.sup is not None:
            tag = "munderover" if big else "msubsup"
        elif node.sub is not None:
            tag = "munder" if big else "msub"
        else:
            tag = "mover" if big else "msup"
        return self.el(tag, *parts)

    def _table(self, node: Table, slots: list) -> Element:
        rows = []
        for r in node.rows:
            cells = []
            for k, cell in enumerate(r):
                style = "text-align: left"
                if node.env == "aligned":
                    style = "text-align: right" if k % 2 == 0 else "text-align: left"
                elif node.env == "bmatrix":
                    style = "text-align: center"
                cells.append(self.el("mtd", self._tree(cell, slots), style=style))
            rows.append(self.el("mtr", *cells))
        align = {"cases": "left left", "aligned": "right left"}.get(node.env, "center")
        table = self.el("mtable", *rows, columnalign=align)
        if node.env == "cases":
            return self.el("mrow", self.mo("{", fence="true", stretchy="true"), table)
        if node.env in ("bmatrix", "pmatrix"):
            return self.fenced(table, *("[]" if node.env == "bmatrix" else "()"))
        return table

    # -- SymPy expressions -----------------------------------------------------------------------------
    def _print(self, expr, **kwargs) -> Element:
        if isinstance(expr, sp.Expr) and not getattr(expr, "is_Matrix", False):
            # scalars (sizes, coefficients, counts): the LaTeX printer's form
            return self.tex(self.latex_printer.doprint(expr))
        return super()._print(expr, **kwargs)

    def _print_SpecOp(self, expr: SpecOp) -> Element:
        tree, slots = notation(expr, self.names)
        return self._tree(tree, slots)

    def _print_MatrixSymbol(self, expr: sp.MatrixSymbol) -> Element:
        return self.tex(self.latex_printer.doprint(expr))

    def _print_FamilyMember(self, expr: FamilyMember) -> Element:
        return self.tex(self.latex_printer.doprint(expr))

    def _print_MatrixExpr(self, expr) -> Element:
        # any other matrix expression: its LaTeX, read through the tree
        return self.tex(self.latex_printer.doprint(expr))

    def _print_Transpose(self, expr: sp.Transpose) -> Element:
        inner = expr.arg
        if isinstance(inner, FamilyMember):
            text = self.latex_printer.doprint(inner)
            if text.endswith(")}") and "^{(" in text:  # W_{Q}^{(m)} → W_{Q}^{(m)\top}
                return self.tex(text[:-1] + r"\top}")
            return self.tex(rf"{{{text}}}^{{\top}}")
        base = self._print(inner)
        if needs_parens_before_transpose(inner):
            base = self.fenced(base)
        return self.el("msup", base, self.mo("\u22a4"))

    def _signed(self, term: sp.Basic) -> tuple[bool, sp.Basic]:
        """(negative, |term|): ``-X`` (Neg) and ``(−c) X`` print as a subtraction inside a sum."""
        if isinstance(term, Neg):
            return True, term.args[0]
        if isinstance(term, sp.MatMul):
            coeff = sp.Mul(*[a for a in term.args if not getattr(a, "is_Matrix", False)])
            if coeff.could_extract_minus_sign():
                mats = [a for a in term.args if getattr(a, "is_Matrix", False)]
                factors = mats if -coeff == 1 else [-coeff, *mats]
                return True, factors[0] if len(factors) == 1 else sp.MatMul(*factors, evaluate=False)
        return False, term

    def _print_MatAdd(self, expr: sp.MatAdd) -> Element:
        parts = [self._print(expr.args[0])]
        for term in expr.args[1:]:
            negative, body = self._signed(term)
            parts.append(self.mo("\u2212" if negative else "+"))
            text = self._print(body)
            if negative and isinstance(body, sp.MatAdd):
                text = self.fenced(text)
            parts.append(text)
        return self.el("mrow", *parts)

    def _print_MatMul(self, expr: sp.MatMul) -> Element:
        coeff = sp.Mul(*[a for a in expr.args if not getattr(a, "is_Matrix", False)])
        mats = [a for a in expr.args if getattr(a, "is_Matrix", False)]
        parts = []
        for k, a in enumerate(mats):
            if k:
                parts.append(self.mo("\u2062"))
            text = self._print(a)
            parts.append(self.fenced(text) if needs_parens_in_product(a) else text)
        body = self.row(*parts)
        if coeff == 1:
            return body
        if coeff == -1:
            return self.el("mrow", self.mo("\u2212"), body)
        num, den = sp.fraction(coeff)
        if den != 1:
            top = body if num == 1 else self.el("mrow", self._print(num), self.mo("\u2062"), body)
            return self.el("mfrac", top, self._print(den))
        return self.el("mrow", self._print(coeff), self.mo("\u2062"), body)

    def _print_HadamardProduct(self, expr: sp.HadamardProduct) -> Element:
        parts = []
        for k, a in enumerate(expr.args):
            if k:
                parts.append(self.mo("\u2299"))
            text = self._print(a)
            parts.append(self.fenced(text) if needs_parens_in_hadamard(a) else text)
        return self.el("mrow", *parts)

    # -- output -----------------------------------------------------------------------------------------
    def to_xml(self, node: Element) -> str:
        text = node.toxml()
        for entity, ref in _ENTITIES.items():
            text = text.replace(entity, ref)
        return text

    def math(self, node: Element, display: str = "block") -> str:
        """A whole ``<math>`` element around a node."""
        outer = self.el("math", node, xmlns=MATHML_NS, display=display)
        return self.to_xml(outer)

    def doprint(self, expr) -> str:
        return self.to_xml(self._print(expr))


def mathml(expr: sp.Basic, names: dict[str, str] | None = None, display: str | None = None) -> str:
    """MathML of a spec expression: the bare element, or a ``<math>`` element when ``display`` is given
    (``"block"`` or ``"inline"``)."""
    printer = SpecMathMLPrinter(names)
    node = printer._print(expr)
    return printer.math(node, display) if display else printer.to_xml(node)


@lru_cache(maxsize=8192)
def tex_to_mathml(text: str, display: str | None = None) -> str:
    """MathML of a LaTeX string of the spec's subset (a definition, a name, a space)."""
    printer = SpecMathMLPrinter()
    node = printer.tex(text)
    return printer.math(node, display) if display else printer.to_xml(node)


def _is_function(node) -> bool:
    """A function name (``log``, ``softmax``), alone or with scripts (``max_i``)."""
    if isinstance(node, Script):
        node = node.base
    return isinstance(node, Tok) and node.kind == "fn"


def _opens(node) -> bool:
    """Whether a node starts with a bracket (a function applied to a parenthesised argument)."""
    if isinstance(node, Fence):
        return True
    return (
        isinstance(node, Tok)
        and node.kind in ("mo", "space")
        and (node.kind == "space" or node.text in "([{")
    )


def _is_sign(node) -> bool:
    return isinstance(node, Tok) and node.kind == "mo" and node.text in ("\u2212", "+")


def _is_operator(node) -> bool:
    """An item after which a sign is unary: an operator other than a closing bracket, a space, text."""
    if isinstance(node, Tok):
        return node.kind in ("space", "text") or (node.kind == "mo" and node.text not in ")]}|\u2032")
    return False


_TALL = {"mfrac", "mtable", "munderover", "munder"}


def _tall(node: Element) -> bool:
    """Whether a MathML element holds something taller than a line of text."""
    if getattr(node, "tagName", None) in _TALL:
        return True
    return any(_tall(child) for child in node.childNodes if child.nodeType == child.ELEMENT_NODE)
