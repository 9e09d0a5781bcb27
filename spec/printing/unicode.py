"""One-line Unicode of spec expressions for the terminal, in the tutorial's notation:
``P⁽ᵐ⁾ = softmax(Q⁽ᵐ⁾ K⁽ᵐ⁾ᵀ / √d_k + S) V⁽ᵐ⁾``.

Conventions: superscripts in Unicode where every character has one (``ᵀ``, ``⁽ᵐ⁾``, ``²``, ``ˡ⁻¹``), else
``^x`` or ``^(…)``; subscripts of digits in Unicode (``α₁``), of one word as ``_x`` (``d_k``, ``x_cls``), else
``_(…)`` (``h_(t−1)``); fractions ``a/b`` with parentheses where the reading needs them; ``√x``; ``−`` for
minus. Like the MathML printer (spec/printing/mathml.py), operators are printed from their own ``_latex``
notation with their operands printed here, and scalars are the LaTeX printer's, read through the same tree.
"""

import re
import unicodedata
from functools import cache, lru_cache

import sympy as sp
from sympy.printing.printer import Printer
from sympy.printing.str import StrPrinter

from ..axes import GLOSSARY
from ..ops import SpecOp
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

_SUP = dict(
    zip(
        "0123456789+−=()abcdefghijklmnoprstuvwxyzABDEGHIJKLMNOPRTUVW⊤′",
        "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖʳˢᵗᵘᵛʷˣʸᶻᴬᴮᴰᴱᴳᴴᴵᴶᴷᴸᴹᴺᴼᴾᴿᵀᵁⱽᵂᵀ′",
        strict=True,
    )
)
_SUB_DIGITS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
_BINARY = set("+−=⊙×·≤≥<>→∈≠≈∪↦:∖∘±∼") | {":="}
_OPEN = "([{⌈⌊"
_CLOSE = ")]}⌉⌋"
_COMBINING = {"hat": "\u0302", "widehat": "\u0302", "tilde": "\u0303", "widetilde": "\u0303", "bar": "\u0304"}
_WORD = re.compile(r"^[^\W_]+′*$")


def _top_level(text: str, pattern: str) -> bool:
    """Whether ``pattern`` occurs in ``text`` outside every bracket."""
    depth = 0
    for k, ch in enumerate(text):
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
        elif depth == 0 and text.startswith(pattern, k):
            return True
    return False


def _atomic(text: str) -> bool:
    """A printed operand that needs no parentheses: no space, sign or operator outside brackets."""
    return not any(_top_level(text, c) for c in (" ", "/", "+", "−", "·", "⊙")) or (
        text[:1] in _OPEN and _matching_close(text) == len(text) - 1
    )


def _matching_close(text: str) -> int:
    depth = 0
    for k, ch in enumerate(text):
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
            if depth == 0:
                return k
    return -1


def superscript(text: str) -> str:
    """``x^text``'s script: Unicode superscripts where they all exist and are short, else ``^x``/``^(…)``."""
    compact = text.replace(" ", "")
    word = re.search("[A-Za-z]{2,}", compact)  # ^pad, ^causal: a word reads better on the line
    if compact and not word and all(c in _SUP for c in compact) and (len(compact) <= 3 or compact[0] == "("):
        if len(compact) <= 6:
            return "".join(_SUP[c] for c in compact)
    return "^" + (compact if _WORD.match(compact) else f"({compact})")


def subscript(text: str) -> str:
    """``x_text``'s script: digits in Unicode (``α₁``), one word as ``_x``, else ``_(…)``."""
    compact = text.replace(" ", "")
    if compact.isdigit():
        return compact.translate(_SUB_DIGITS)
    return "_" + (compact if _WORD.match(compact) else f"({compact})")


class _TexToUnicode:
    """Reads the notation tree; ``slot(k)`` prints an operator's operand k."""

    def __init__(self, slot=None) -> None:
        self.slot = slot

    def render(self, node, script: bool = False) -> str:
        if isinstance(node, Group):
            return self.sequence(node.items, script)
        if isinstance(node, Tok):
            return self.tok(node, script)
        if isinstance(node, Script):
            base = self.render(node.base, script)
            if isinstance(node.base, Frac) or (isinstance(node.base, Tok) and node.base.kind == "slot"):
                base = base if _atomic(base) else f"({base})"
            out = base
            if node.sub is not None:
                out += subscript(self.render(node.sub, True))
            if node.sup is not None:
                out += superscript(self.render(node.sup, True))
            return out
        if isinstance(node, Frac):
            num, den = self.render(node.num, script), self.render(node.den, script)
            if _top_level(num, "+") or (_top_level(num, "−") and not num.startswith("−")):
                num = f"({num})"
            if not _atomic(den):
                den = f"({den})"
            spaced = not script and (_top_level(num, " ") or _top_level(den, " "))
            return f"{num} / {den}" if spaced else f"{num}/{den}"
        if isinstance(node, Sqrt):
            body = self.render(node.body, script)
            return "√" + (body if _atomic(body) else f"({body})")
        if isinstance(node, Fence):
            return f"{node.open}{self.render(node.body, script)}{node.close}"
        if isinstance(node, Accent):
            body = self.render(node.body, script)
            mark = _COMBINING[node.mark]
            if len(body) == 1 or not node.mark.startswith("wide"):
                return body[0] + mark + body[1:]
            return "".join(ch + mark for ch in body)
        if isinstance(node, Table):
            return self.table(node, script)
        raise TypeError(f"no Unicode for {node!r}")

    def tok(self, tok: Tok, script: bool) -> str:
        if tok.kind == "slot":
            return self.slot(int(tok.text))
        if tok.kind in ("mi", "mn"):
            return styled_text(tok.text, tok.style)
        if tok.kind == "space":
            return "  " if tok.text in ("quad", "qquad") else " "
        return tok.text

    def sequence(self, items: list, script: bool) -> str:
        out = ""
        prev = None
        k = 0
        while k < len(items):
            item = items[k]
            text = self.render(item, script)
            if isinstance(item, Tok) and item.kind == "mo" and item.text == ":" and k + 1 < len(items):
                nxt = items[k + 1]
                if isinstance(nxt, Tok) and nxt.kind == "mo" and nxt.text == "=":
                    text, k = ":=", k + 1
            if isinstance(item, Tok) and item.kind == "mo":
                unary = text in ("−", "+") and (
                    prev is None
                    or (
                        isinstance(prev, Tok)
                        and prev.kind in ("mo", "space", "text")
                        and prev.text not in _CLOSE
                    )
                )
                if text in _BINARY and not unary and not script:
                    out = out.rstrip() + f" {text} "
                elif text == "/" and item.spaced and not script:
                    out = out.rstrip() + " / "
                elif text in (",", ";") and not script:
                    out = out.rstrip() + text + " "
                elif (
                    (unary or text in _OPEN)
                    and not script
                    and item.spaced
                    and out
                    and not out.endswith((" ", *_OPEN))
                ):
                    out += " " + text
                else:
                    out += text
            elif isinstance(item, Tok) and item.kind == "space":
                out = (out.rstrip() + text) if not script else out + " "
            elif isinstance(item, Tok) and item.kind == "text":
                out += text.lstrip() if out.endswith(" ") else text
            else:
                after_frac = isinstance(prev, Frac)
                after_partial = isinstance(prev, Tok) and prev.text == "∂"  # ∂ℒ, not ∂ ℒ
                if (
                    out
                    and not script
                    and not after_partial
                    and (item.spaced or after_frac)
                    and not out.endswith((" ", *_OPEN, "|"))
                    and not (isinstance(prev, Tok) and prev.kind == "mo" and prev.text == "|")
                ):
                    out += " "
                out += text
            prev = item
            k += 1
        return out

    def table(self, node: Table, script: bool) -> str:
        rows = [[self.render(c, script).strip() for c in r] for r in node.rows]
        if node.env == "cases":
            parts = []
            for r in rows:
                value, cond = [*r, ""][:2]
                if cond and not cond.startswith(("otherwise", "else", "if ")):
                    cond = "if " + cond
                parts.append(f"{value} {cond}".strip())
            return "{" + "; ".join(parts) + "}"
        if node.env == "aligned":
            return "\n".join(" ".join(r) for r in rows)
        return "[" + "; ".join(", ".join(r) for r in rows) + "]"


def tex_to_unicode(text: str, slot=None) -> str:
    """One-line Unicode of a LaTeX string of the spec's subset (a name, a definition, a template)."""
    if slot is None:
        return _tex_to_unicode(text)
    return _tidy(_TexToUnicode(slot).render(parse_tex(text)))


@lru_cache(maxsize=8192)
def _tex_to_unicode(text: str) -> str:
    return _tidy(_TexToUnicode().render(parse_tex(text)))


def _tidy(text: str) -> str:
    """At most two spaces in a row; accents composed where Unicode has the letter (ŷ, not y + ̂)."""
    return unicodedata.normalize("NFC", re.sub(r" {3,}", "  ", text).strip())


@cache
def axis_unicode(name: str) -> str:
    """An axis under the glossary's name: ``n_max``, ``m`` for d_x, ``H_img`` for H_i."""
    a = GLOSSARY.get(name)
    return tex_to_unicode(a.latex) if a is not None else name


class SpecUnicodePrinter(Printer):
    """One-line Unicode in the tutorial's notation; ``names`` maps symbol names to their LaTeX."""

    printmethod = "_unicode"

    def __init__(self, names: dict[str, str] | None = None) -> None:
        super().__init__()
        self.names = names or {}
        self.latex_printer = SpecLatexPrinter(self.names)

    def tex(self, text: str, slots: list | None = None) -> str:
        if not slots:
            return tex_to_unicode(text)
        return tex_to_unicode(text, lambda k: self._print(slots[k]))

    def _print(self, expr, **kwargs) -> str:
        if isinstance(expr, sp.Expr) and not getattr(expr, "is_Matrix", False):
            return self.tex(self.latex_printer.doprint(expr))
        return super()._print(expr, **kwargs)

    def emptyPrinter(self, expr) -> str:
        # anything without a method of its own: its LaTeX, read through the tree
        return self.tex(self.latex_printer.doprint(expr))

    def _print_SpecOp(self, expr: SpecOp) -> str:
        tree, slots = notation(expr, self.names)
        return _tidy(_TexToUnicode(lambda k: self._print(slots[k])).render(tree))

    def _print_MatrixSymbol(self, expr) -> str:
        return self.tex(self.latex_printer.doprint(expr))

    def _print_FamilyMember(self, expr: FamilyMember) -> str:
        return self.tex(self.latex_printer.doprint(expr))

    def _print_Transpose(self, expr: sp.Transpose) -> str:
        inner = expr.arg
        text = self._print(inner)
        if needs_parens_before_transpose(inner) and not isinstance(inner, FamilyMember):
            text = f"({text})"
        return text + "ᵀ"

    def _print_MatAdd(self, expr: sp.MatAdd) -> str:
        out = self._print(expr.args[0])
        for term in expr.args[1:]:
            text = self._print(term)
            out += f" − {text[1:].lstrip()}" if text.startswith("−") else f" + {text}"
        return out

    def _print_MatMul(self, expr: sp.MatMul) -> str:
        coeff = sp.Mul(*[a for a in expr.args if not getattr(a, "is_Matrix", False)])
        mats = [a for a in expr.args if getattr(a, "is_Matrix", False)]
        parts = []
        for a in mats:
            text = self._print(a)
            parts.append(f"({text})" if needs_parens_in_product(a) else text)
        body = " ".join(parts)
        if coeff == 1:
            return body
        if coeff == -1:
            return f"−{body}"
        num, den = sp.fraction(coeff)
        if den != 1:
            top = body if num == 1 else f"{self._print(num)} {body}"
            bottom = self._print(den)
            return f"{top} / {bottom if _atomic(bottom) else f'({bottom})'}"
        return f"{self._print(coeff)} {body}"

    def _print_HadamardProduct(self, expr: sp.HadamardProduct) -> str:
        parts = []
        for a in expr.args:
            text = self._print(a)
            parts.append(f"({text})" if needs_parens_in_hadamard(a) else text)
        return " ⊙ ".join(parts)


def unicode(expr: sp.Basic, names: dict[str, str] | None = None) -> str:
    """One-line Unicode of a spec expression; ``names`` maps symbol names to their declared LaTeX."""
    return SpecUnicodePrinter(names).doprint(expr)


# --- sizes and constraints (``ℝ^(n×d_k)``, ``d_p = P²·C``) -------------------------------------------
class _SizePrinter(StrPrinter):
    """A size expression with the glossary's axis names, ``·`` for products and Unicode powers."""

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return axis_unicode(expr.name)

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        if expr.exp.is_Integer and expr.exp > 1:
            return self.parenthesize(expr.base, 60) + superscript(str(expr.exp))
        return super()._print_Pow(expr, rational)

    def _print_Mul(self, expr: sp.Mul) -> str:
        return super()._print_Mul(expr).replace("*", "·")

    def _print_Add(self, expr: sp.Add, order=None) -> str:
        return super()._print_Add(expr, order).replace(" - ", " − ")


def size_unicode(expr: sp.Expr) -> str:
    """``M·d_v``, ``P²·C``, ``L_in + S``: a size in the glossary's names."""
    return _SizePrinter().doprint(sp.sympify(expr))


def relation_unicode(rel: sp.Rel) -> str:
    """``d_e = M·d_k``, ``n ≤ n_max``: a constraint between sizes."""
    op = {"==": "=", "<=": "≤", "<": "<", ">=": "≥", ">": ">", "!=": "≠"}[rel.rel_op]
    return f"{size_unicode(rel.lhs)} {op} {size_unicode(rel.rhs)}"
