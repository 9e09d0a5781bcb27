"""Tensor symbols with kinds, and indexed families of per-head (or per-layer) parameters.

A tensor keeps the tutorial's name and orientation: ``H ∈ ℝ^{d_e×n}`` is features × tokens, a vector is a
column (``b_Q ∈ ℝ^{d_k}`` has shape ``d_k × 1``). A family such as ``W_Q^{(m)}``, m = 1..M, is one object
indexed by ``m``, not M separate symbols.
"""

import enum
from collections.abc import Sequence

import sympy as sp
from sympy.core.symbol import Str
from sympy.matrices.expressions.matexpr import MatrixExpr

from spec._errors import SpecError


class Kind(enum.Enum):
    """What the entries of a tensor are; it decides the space it lives in and how examples are drawn."""

    REAL = "real"
    INDEX = "index"  # integer token ids in [0, v)
    ONE_HOT = "one-hot"  # columns are standard basis vectors
    MASK = "mask"  # keep mask: 1 = attend, 0 = ignore
    ADDITIVE_MASK = "additive mask"  # 0 where attention is allowed, −∞ where it is not
    SCORE = "score"  # real or −∞ (a masked score)
    PROBABILITY = "probability"  # non-negative, columns or rows sum to one

    @property
    def space(self) -> str:
        return {
            Kind.REAL: r"\mathbb{R}",
            Kind.INDEX: r"\mathbb{N}",
            Kind.ONE_HOT: r"\{0,1\}",
            Kind.MASK: r"\{0,1\}",
            Kind.ADDITIVE_MASK: r"\{0,-\infty\}",
            Kind.SCORE: r"(\mathbb{R}\cup\{-\infty\})",
            Kind.PROBABILITY: r"[0,1]",
        }[self]

    @property
    def space_unicode(self) -> str:
        return {
            Kind.REAL: "ℝ",
            Kind.INDEX: "ℕ",
            Kind.ONE_HOT: "{0,1}",
            Kind.MASK: "{0,1}",
            Kind.ADDITIVE_MASK: "{0,−∞}",
            Kind.SCORE: "(ℝ∪{−∞})",
            Kind.PROBABILITY: "[0,1]",
        }[self]


def _shape(shape: Sequence[sp.Expr], who: str) -> tuple[sp.Expr, sp.Expr]:
    if len(shape) == 1:
        return (sp.sympify(shape[0]), sp.Integer(1))
    if len(shape) == 2:
        return (sp.sympify(shape[0]), sp.sympify(shape[1]))
    raise SpecError(f"{who}: a tensor symbol is a vector or a matrix, found shape {tuple(shape)}")


class TensorSymbol(sp.MatrixSymbol):
    """A named matrix (or column vector) of the spec, with its entry kind, LaTeX and ASCII names.

    (``entry_kind``, not ``kind``: SymPy reserves ``kind`` for MatrixKind.)

    The ASCII name is the argument name impl/ uses (``Lambda`` for ``Λ``).
    """

    entry_kind: Kind = Kind.REAL
    tex: str = ""
    ascii: str = ""
    meaning: str = ""
    is_vector: bool = False

    @classmethod
    def make(
        cls,
        name: str,
        shape: Sequence[sp.Expr],
        kind: Kind = Kind.REAL,
        *,
        tex: str | None = None,
        ascii: str | None = None,
        meaning: str = "",
    ) -> "TensorSymbol":
        rows, cols = _shape(shape, name)
        t = cls(name, rows, cols)
        t.entry_kind = kind
        t.tex = tex if tex is not None else _default_tex(name)
        t.ascii = ascii or name
        t.meaning = meaning
        t.is_vector = len(shape) == 1
        return t

    @property
    def spec_shape(self) -> tuple[sp.Expr, ...]:
        """The shape as the tutorial writes it: one axis for a vector, two for a matrix."""
        return (self.shape[0],) if self.is_vector else tuple(self.shape)


def tensor(
    name: str,
    shape: Sequence[sp.Expr],
    kind: Kind = Kind.REAL,
    *,
    tex: str | None = None,
    ascii: str | None = None,
    meaning: str = "",
) -> TensorSymbol:
    """Declare a tensor symbol: ``tensor("H", (d_e, n))``; a one-axis shape is a column vector."""
    return TensorSymbol.make(name, shape, kind, tex=tex, ascii=ascii, meaning=meaning)


def _default_tex(name: str) -> str:
    base, _, sub = name.partition("_")
    return f"{base}_{{{sub}}}" if sub else base


class Family:
    """An indexed family of tensors of one shape, ``W_Q^{(m)} ∈ ℝ^{d_e×d_k}`` for m = 1..M.

    ``family[m]`` is the member ``W_Q^{(m)}``, a matrix expression; the index may be a symbol or an integer.
    """

    def __init__(
        self,
        name: str,
        index: sp.Symbol,
        count: sp.Expr,
        shape: Sequence[sp.Expr],
        kind: Kind = Kind.REAL,
        *,
        tex: str | None = None,
        ascii: str | None = None,
        meaning: str = "",
    ) -> None:
        self.name = name
        self.index = index
        self.count = sp.sympify(count)
        self.shape = _shape(shape, name)
        self.is_vector = len(shape) == 1
        self.entry_kind = kind
        self.tex = tex if tex is not None else _default_tex(name)
        self.ascii = ascii or name
        self.meaning = meaning

    def __getitem__(self, index: sp.Expr | int) -> "FamilyMember":
        return FamilyMember(Str(self.name), sp.sympify(index), *self.shape)

    @property
    def spec_shape(self) -> tuple[sp.Expr, ...]:
        return (self.shape[0],) if self.is_vector else tuple(self.shape)

    def __repr__(self) -> str:
        return f"Family({self.name}^({self.index}), {self.index}=1..{self.count})"


class FamilyMember(MatrixExpr):
    """The member of a family at one index: ``W_Q^{(m)}``. Its arguments are (name, index, rows, cols)."""

    is_symbol = True

    def __new__(cls, name: Str, index: sp.Expr, rows: sp.Expr, cols: sp.Expr) -> "FamilyMember":
        return MatrixExpr.__new__(cls, name, sp.sympify(index), sp.sympify(rows), sp.sympify(cols))

    @property
    def name(self) -> str:
        return self.args[0].name

    @property
    def index(self) -> sp.Expr:
        return self.args[1]

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        return (self.args[2], self.args[3])

    def _entry(self, i, j, **kwargs):
        return sp.Indexed(sp.IndexedBase(self.name), self.index, i, j)

    @property
    def free_symbols(self) -> set:
        return self.index.free_symbols | self.args[2].free_symbols | self.args[3].free_symbols


Declared = TensorSymbol | Family
