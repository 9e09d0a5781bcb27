"""Printing of spec expressions in the tutorial's notation: LaTeX here, MathML in spec/printing/mathml.py
and Unicode (the terminal) in spec/printing/unicode.py.

LaTeX is the notation's reference form: declared names (``\\Lambda``, ``W_{Q}``), the glossary's axis names
(``n_{\\max}``) and the operators' ``_latex`` methods are written in it. The two other printers read the small
LaTeX subset those strings use through ``parse_tex``, a parser into a notation tree (tokens, groups, scripts,
fractions, roots, fences, environments, accents, styles), so that a name or an element-wise definition is
written once and shown the same way in all three formats.
"""

from dataclasses import dataclass, field
from functools import lru_cache

import sympy as sp
from sympy.printing.latex import LatexPrinter

from ..axes import GLOSSARY
from ..ops import Ones, SpecOp
from ..tensors import FamilyMember, TensorSymbol


# --- which operands a product or a power must wrap in parentheses ---------------------------------------
def is_sum_like(expr: sp.Basic) -> bool:
    """An expression printed with a top-level ``+`` or ``−`` (a sum, or an operator that says so: a
    negation, a difference, an entry-wise formula): wrapped in parentheses inside a product."""
    return isinstance(expr, sp.MatAdd) or (isinstance(expr, SpecOp) and expr.prints_as_sum)


def needs_parens_in_product(expr: sp.Basic) -> bool:
    """Whether a factor of a matrix product needs parentheses (``W (x + y)``, ``A (B ⊙ C)``)."""
    return is_sum_like(expr) or isinstance(expr, sp.HadamardProduct)


def needs_parens_in_hadamard(expr: sp.Basic) -> bool:
    """Whether an operand of ``⊙`` needs parentheses (``(A + B) ⊙ C``, ``Ω ⊙ (1 r)``)."""
    return is_sum_like(expr) or isinstance(expr, sp.MatMul)


def needs_parens_before_transpose(expr: sp.Basic) -> bool:
    """Whether ``xᵀ`` needs ``(x)ᵀ``: anything but a symbol, a family member or the ones vector."""
    return not isinstance(expr, (sp.MatrixSymbol, FamilyMember, Ones))


def axis_latex(name: str) -> str | None:
    """The glossary's LaTeX for an axis symbol's name (``n_max`` → ``n_{\\max}``), None if not an axis."""
    a = GLOSSARY.get(name)
    return a.latex if a is not None else None


# --- LaTeX ---------------------------------------------------------------------------------------------
class SpecLatexPrinter(LatexPrinter):
    """SymPy's LaTeX printer with the tutorial's conventions: ``^{\\top}``, declared names, ``W^{(m)}``,
    axes under the glossary's names (``n_{\\max}``, ``m`` for d_x)."""

    def __init__(self, names: dict[str, str] | None = None) -> None:
        super().__init__({"mat_symbol_style": "plain"})
        self.names = names or {}

    def _tex_name(self, name: str, fallback: str) -> str:
        return self.names.get(name, fallback)

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        tex = axis_latex(expr.name)
        if tex is not None and expr not in self._settings["symbol_names"]:
            return tex
        return super()._print_Symbol(expr, style)

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
            if needs_parens_in_hadamard(a):
                text = rf"\left({text}\right)"
            parts.append(text)
        return r" \odot ".join(parts)

    def _print_Transpose(self, expr: sp.Transpose) -> str:
        inner = expr.arg
        text = self._print(inner)
        if isinstance(inner, FamilyMember):
            text = f"{{{text}}}"
        elif needs_parens_before_transpose(inner):
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
            if needs_parens_in_product(a):
                text = rf"\left({text}\right)"
            parts.append(text)
        body = " ".join(parts)
        if coeff == 1:
            return body
        if coeff == -1:
            return f"-{body}"
        num, den = sp.fraction(coeff)
        if den != 1:
            top = body if num == 1 else f"{self._print(num)} {body}"
            return rf"\frac{{{top}}}{{{self._print(den)}}}"
        return f"{self._print(coeff)} {body}"


def latex(expr: sp.Basic, names: dict[str, str] | None = None) -> str:
    """LaTeX of a spec expression; ``names`` maps symbol names to their declared LaTeX."""
    return SpecLatexPrinter(names).doprint(expr)


# --- the LaTeX subset, as a notation tree --------------------------------------------------------------
@dataclass
class Tok:
    """A token: ``kind`` is ``mi`` (identifier), ``mn`` (number), ``mo`` (operator), ``op`` (a large
    operator: ∑, ∏), ``fn`` (a function name: log, softmax), ``text``, ``space`` (``text`` holds the
    width: ``quad``, ``thin``, ``normal``) or ``slot`` (an operand of an operator's template, ``text`` its
    number); ``style`` is a math alphabet (bold, double-struck, script)."""

    kind: str
    text: str
    style: str = ""
    spaced: bool = False  # whitespace (or a LaTeX space) stood before it in the source


@dataclass
class Group:
    items: list = field(default_factory=list)
    spaced: bool = False


@dataclass
class Script:
    base: object
    sub: object = None
    sup: object = None
    spaced: bool = False


@dataclass
class Frac:
    num: object
    den: object
    spaced: bool = False


@dataclass
class Sqrt:
    body: object
    spaced: bool = False


@dataclass
class Fence:
    open: str
    body: Group
    close: str
    spaced: bool = False


@dataclass
class Table:
    """``cases``, ``bmatrix``, ``aligned``: rows of cells (each a Group)."""

    env: str
    rows: list
    spaced: bool = False


@dataclass
class Accent:
    mark: str  # "hat", "tilde", "widetilde", "bar"
    body: object
    spaced: bool = False


GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ϵ", "varepsilon": "ε", "zeta": "ζ",
    "eta": "η", "theta": "θ", "vartheta": "ϑ", "iota": "ι", "kappa": "κ", "lambda": "λ", "mu": "μ",
    "nu": "ν", "xi": "ξ", "pi": "π", "rho": "ρ", "sigma": "σ", "varsigma": "ς", "tau": "τ",
    "upsilon": "υ", "phi": "ϕ", "varphi": "φ", "chi": "χ", "psi": "ψ", "omega": "ω",
    "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Xi": "Ξ", "Pi": "Π", "Sigma": "Σ",
    "Upsilon": "Υ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω",
}  # fmt: skip
SYMBOLS_MI = {"infty": "∞", "partial": "∂", "ell": "ℓ", "nabla": "∇"}
SYMBOLS_MO = {
    "top": "⊤", "odot": "⊙", "cdot": "·", "times": "×", "le": "≤", "leq": "≤", "ge": "≥", "geq": "≥",
    "to": "→", "in": "∈", "ldots": "…", "cdots": "⋯", "vdots": "⋮", "lceil": "⌈", "rceil": "⌉",
    "lfloor": "⌊", "rfloor": "⌋", "mid": "|", "neq": "≠", "approx": "≈", "cup": "∪", "mapsto": "↦",
    "{": "{", "}": "}", "|": "‖", "setminus": "∖", "circ": "∘", "pm": "±", "sim": "∼",
}  # fmt: skip
FUNCTIONS = ("log", "exp", "sin", "cos", "tan", "tanh", "max", "min", "arg", "det", "ln", "erf")
LARGE_OPS = {"sum": "∑", "prod": "∏"}
SPACES = {",": "thin", ":": "medium", ";": "medium", " ": "normal", "quad": "quad", "qquad": "qquad"}
STYLES = {"mathbf": "bold", "mathbb": "double-struck", "mathcal": "script", "mathrm": "normal"}
ACCENTS = ("hat", "tilde", "widetilde", "bar", "widehat")
IGNORED = ("textstyle", "displaystyle", "scriptstyle", "limits", "nolimits")
OPERATOR_CHARS = "+-=<>,;:()[]|/!*."


class TexSyntaxError(ValueError):
    """A LaTeX string outside the subset the spec's notation uses."""


@lru_cache(maxsize=8192)
def parse_tex(text: str) -> Group:
    """The notation tree of a LaTeX string of the spec's subset; a TexSyntaxError names what it cannot
    read. Trees are cached: the printers read them and never change them."""
    parser = _TexParser(text)
    group = parser.sequence(stop=())
    if parser.pos < len(text):
        raise TexSyntaxError(f"unexpected {text[parser.pos :]!r} in {text!r}")
    return group


class _TexParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> TexSyntaxError:
        return TexSyntaxError(f"{what} at position {self.pos} of {self.text!r}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def command(self) -> str:
        """The name of the command at ``\\`` (letters, or one other character)."""
        start = self.pos + 1
        end = start
        while end < len(self.text) and self.text[end].isalpha():
            end += 1
        if end == start:
            end = start + 1
        self.pos = end
        return self.text[start:end]

    def braced_raw(self) -> str:
        """The raw text of a ``{…}`` argument (for ``\\text``, ``\\operatorname``, environment names)."""
        self.skip_space()
        if self.peek() != "{":
            raise self.fail("expected '{'")
        depth, start = 0, self.pos
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "\\":
                self.pos += 2
                continue
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    self.pos += 1
                    return self.text[start + 1 : self.pos - 1]
            self.pos += 1
        raise self.fail("unbalanced '{'")

    def skip_space(self) -> bool:
        seen = False
        while self.peek().isspace() and self.peek():
            self.pos += 1
            seen = True
        return seen

    def argument(self):
        """One argument: a braced group, a command or a single character."""
        self.skip_space()
        ch = self.peek()
        if ch == "{":
            self.pos += 1
            g = self.sequence(stop=("}",))
            if self.peek() != "}":
                raise self.fail("unbalanced '{'")
            self.pos += 1
            return g
        if not ch:
            raise self.fail("missing argument")
        items = self.atom()
        if not items:
            raise self.fail("missing argument")
        return items[0] if len(items) == 1 else Group(items)

    def delimiter(self) -> str:
        """The delimiter after ``\\left`` or ``\\right`` (``.`` is none)."""
        self.skip_space()
        ch = self.peek()
        if ch == "\\":
            name = self.command()
            if name in SYMBOLS_MO:
                return SYMBOLS_MO[name]
            raise self.fail(f"unknown delimiter \\{name}")
        self.pos += 1
        return "" if ch == "." else ch

    def sequence(self, stop: tuple[str, ...]) -> Group:
        """Items up to one of ``stop`` (``}``, ``&``, ``\\\\``, ``\\right``, ``\\end``), not consumed."""
        items: list = []
        spaced = False
        while self.pos < len(self.text):
            if self.skip_space():
                spaced = True
                continue
            ch = self.peek()
            if ch in stop or (ch == "\\" and self._at_stop(stop)):
                break
            if ch == "}":
                raise self.fail("unbalanced '}'")
            if ch in "^_":
                self.pos += 1
                arg = self.argument()
                if not items:
                    items.append(Tok("mi", ""))
                last = items[-1]
                slot = "sup" if ch == "^" else "sub"
                if not isinstance(last, Script) or getattr(last, slot) is not None:
                    last = Script(last, spaced=getattr(last, "spaced", False))
                    last.base.spaced = False
                    items[-1] = last
                setattr(last, slot, arg)
                continue
            if ch == "'":
                self.pos += 1
                items.append(Tok("mo", "′"))
                continue
            new = self.atom()
            for k, node in enumerate(new):
                if k == 0 and spaced:
                    node.spaced = True
            items.extend(new)
            spaced = any(isinstance(n, Tok) and n.kind == "space" for n in new)
        return Group(items)

    def _at_stop(self, stop: tuple[str, ...]) -> bool:
        rest = self.text[self.pos :]
        for s in stop:
            if s.startswith("\\") and rest.startswith(s) and not rest[len(s) : len(s) + 1].isalpha():
                return True
        return False

    def atom(self) -> list:
        """The next item(s) of a sequence."""
        ch = self.peek()
        if ch == "{":
            self.pos += 1
            g = self.sequence(stop=("}",))
            if self.peek() != "}":
                raise self.fail("unbalanced '{'")
            self.pos += 1
            return [g]
        if ch.isdigit():
            start = self.pos
            while self.peek().isdigit():
                self.pos += 1
            if self.peek() == "." and self.pos + 1 < len(self.text) and self.text[self.pos + 1].isdigit():
                self.pos += 1
                while self.peek().isdigit():
                    self.pos += 1
            return [Tok("mn", self.text[start : self.pos])]
        if ch.isalpha():
            self.pos += 1
            return [Tok("mi", ch)]
        if ch == "@":  # a slot of an operator's template (see notation)
            end = self.text.find("@", self.pos + 1)
            if end < 0 or not self.text[self.pos + 1 : end].isdigit():
                raise self.fail("malformed slot")
            index, self.pos = self.text[self.pos + 1 : end], end + 1
            return [Tok("slot", index)]
        if ch in OPERATOR_CHARS:
            self.pos += 1
            return [Tok("mo", {"-": "−", "*": "∗"}.get(ch, ch))]
        if ch == "\\":
            return self.control()
        raise self.fail(f"unexpected character {ch!r}")

    def control(self) -> list:
        name = self.command()
        if name in GREEK:
            return [Tok("mi", GREEK[name], "normal" if name[0].isupper() else "")]
        if name in SYMBOLS_MI:
            return [Tok("mi", SYMBOLS_MI[name])]
        if name in SYMBOLS_MO:
            return [Tok("mo", SYMBOLS_MO[name])]
        if name in SPACES:
            return [Tok("space", SPACES[name])]
        if name in FUNCTIONS:
            return [Tok("fn", name)]
        if name in LARGE_OPS:
            return [Tok("op", LARGE_OPS[name])]
        if name in IGNORED:
            return []
        if name == "operatorname":
            return [Tok("fn", self.braced_raw())]
        if name == "text":
            return [Tok("text", self.braced_raw())]
        if name in STYLES:
            return [_styled(self.argument(), STYLES[name])]
        if name == "frac":
            return [Frac(self.argument(), self.argument())]
        if name == "sqrt":
            return [Sqrt(self.argument())]
        if name in ACCENTS:
            return [Accent(name, self.argument())]
        if name == "left":
            open_ = self.delimiter()
            body = self.sequence(stop=("\\right",))
            if not self.text.startswith("\\right", self.pos):
                raise self.fail("\\left without \\right")
            self.command()
            return [Fence(open_, body, self.delimiter())]
        if name == "begin":
            env = self.braced_raw()
            rows: list = [[]]
            while True:
                cell = self.sequence(stop=("&", "\\\\", "\\end"))
                rows[-1].append(cell)
                if self.peek() == "&":
                    self.pos += 1
                elif self.text.startswith("\\\\", self.pos):
                    self.pos += 2
                    rows.append([])
                elif self.text.startswith("\\end", self.pos):
                    self.command()
                    if self.braced_raw() != env:
                        raise self.fail(f"\\begin{{{env}}} closed by another environment")
                    break
                else:
                    raise self.fail(f"\\begin{{{env}}} without \\end")
            return [Table(env, [r for r in rows if r and any(c.items for c in r)])]
        raise self.fail(f"unknown command \\{name}")


def _styled(node, style: str):
    """Apply a math alphabet to the tokens of a node (``\\mathbf{1}``, ``\\mathrm{causal}``)."""
    if isinstance(node, Tok):
        if node.kind in ("mi", "mn"):
            node.style = style
        return node
    if isinstance(node, Group):
        if style == "normal" and all(isinstance(t, Tok) for t in node.items):
            # \mathrm{causal}: one upright word, not six variables (words separated by spaces stay apart)
            merged: list = []
            for t in node.items:
                word = t.kind in ("mi", "mn")
                if word and merged and merged[-1].kind == "mi" and merged[-1].style == "normal":
                    merged[-1].text += t.text
                elif word:
                    merged.append(Tok("mi", t.text, "normal", t.spaced))
                else:
                    merged.append(t)
            return merged[0] if len(merged) == 1 else Group(merged, node.spaced)
        for k, item in enumerate(node.items):
            node.items[k] = _styled(item, style)
        return node
    if isinstance(node, Script):
        node.base = _styled(node.base, style)
    return node


# --- math alphabets (bold 1, double-struck ℝ, script ℒ) as characters -----------------------------------
_DOUBLE_STRUCK = {"C": "ℂ", "H": "ℍ", "N": "ℕ", "P": "ℙ", "Q": "ℚ", "R": "ℝ", "Z": "ℤ"}
_SCRIPT = {"B": "ℬ", "E": "ℰ", "F": "ℱ", "H": "ℋ", "I": "ℐ", "L": "ℒ", "M": "ℳ", "R": "ℛ",
           "e": "ℯ", "g": "ℊ", "o": "ℴ"}  # fmt: skip


def styled_text(text: str, style: str) -> str:
    """``text`` in a math alphabet, as Unicode characters (MathML Core and terminals know no
    ``mathvariant`` but ``normal``): bold ``𝟏``, double-struck ``ℝ``/``𝟙``, script ``ℒ``."""
    if style not in ("bold", "double-struck", "script"):
        return text
    out = []
    for ch in text:
        if style == "double-struck" and ch in _DOUBLE_STRUCK:
            out.append(_DOUBLE_STRUCK[ch])
        elif style == "script" and ch in _SCRIPT:
            out.append(_SCRIPT[ch])
        elif ch.isdigit() and style in ("bold", "double-struck"):
            out.append(chr((0x1D7CE if style == "bold" else 0x1D7D8) + int(ch)))
        elif "A" <= ch <= "Z" or "a" <= ch <= "z":
            upper = ch <= "Z"
            offset = (ord(ch) - ord("A")) if upper else (ord(ch) - ord("a") + 26)
            base = {"bold": 0x1D400, "double-struck": 0x1D538, "script": 0x1D49C}[style]
            out.append(chr(base + offset))
        else:
            out.append(ch)
    return "".join(out)


# --- an operator's notation as a template: its _latex with the operands left as slots --------------------
class SlotLatexPrinter(SpecLatexPrinter):
    """Prints an operator through its own ``_latex`` but leaves every matrix operand as a slot ``@k@``: the
    MathML and Unicode printers then read the operator's notation from its LaTeX (written once, in the
    operator) and print the operands themselves."""

    def __init__(self, names: dict[str, str] | None = None) -> None:
        super().__init__(names)
        self.slots: list[sp.Basic] = []

    def _print(self, expr, **kwargs) -> str:
        if getattr(expr, "is_Matrix", False):
            self.slots.append(expr)
            return f"@{len(self.slots) - 1}@"
        return super()._print(expr, **kwargs)


def notation(op: sp.Basic, names: dict[str, str] | None = None) -> tuple[Group, list[sp.Basic]]:
    """The notation tree of an operator (from its ``_latex``) and the operands its slots stand for."""
    printer = SlotLatexPrinter(names)
    text = op._latex(printer)
    return parse_tex(text), printer.slots
