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

from ._errors import SpecError


class Kind(enum.Enum):
    """What the entries of a tensor are; it decides the space it lives in and how examples are drawn."""

    REAL = "real"
    INDEX = "index"  # integer token ids in [0, v)
    ONE_HOT = "one-hot"  # columns are standard basis vectors
    MASK = "mask"  # keep mask: 1 = attend, 0 = ignore
    ADDITIVE_MASK = "additive mask"  # 0 where attention is allowed, −∞ where it is not
    SCORE = "score"  # real or −∞ (a masked score)
    PROBABILITY = "probability"  # non-negative, columns or rows sum to one
    POSITIVE = "positive"  # a positive real (a temperature, a learning rate)

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
            Kind.POSITIVE: r"\mathbb{R}_{>0}",
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
            Kind.POSITIVE: "ℝ₊",
        }[self]


def _shape(shape: Sequence[sp.Expr], who: str) -> tuple[sp.Expr, sp.Expr]:
    if len(shape) == 0:
        return (sp.Integer(1), sp.Integer(1))
    if len(shape) == 1:
        return (sp.sympify(shape[0]), sp.Integer(1))
    if len(shape) == 2:
        return (sp.sympify(shape[0]), sp.sympify(shape[1]))
    raise SpecError(f"{who}: a tensor symbol is a scalar, a vector or a matrix, found shape {tuple(shape)}")


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
    is_scalar: bool = False

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
        t.is_scalar = len(shape) == 0
        return t

    @property
    def spec_shape(self) -> tuple[sp.Expr, ...]:
        """The shape as the tutorial writes it: none for a scalar, one axis for a vector, two for a matrix."""
        if self.is_scalar:
            return ()
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
    """Declare a tensor symbol: ``tensor("H", (d_e, n))``; a one-axis shape is a column vector, an empty
    shape a scalar (a 1×1 matrix to SymPy)."""
    return TensorSymbol.make(name, shape, kind, tex=tex, ascii=ascii, meaning=meaning)


def _default_tex(name: str) -> str:
    base, _, sub = name.partition("_")
    return f"{base}_{{{sub}}}" if sub else base


class Family:
    """An indexed family of tensors of one shape, ``W_Q^{(m)} ∈ ℝ^{d_e×d_k}`` for m = 1..M.

    ``family[m]`` is the member ``W_Q^{(m)}``, a matrix expression; an index may be a symbol or an integer.
    A family may have several indices (``W_Q^{(l,m)}``, a per-layer family of per-head parameters), and a
    family of intermediates may start at 0 (``h_0, …, h_n`` of a recurrence, ``H^0, …, H^L`` of a stack):
    its member 0 is defined on its own and the others by one definition in the index.
    """

    def __init__(
        self,
        name: str,
        index: sp.Symbol | tuple[sp.Symbol, ...],
        count: sp.Expr | tuple[sp.Expr, ...],
        shape: Sequence[sp.Expr],
        kind: Kind = Kind.REAL,
        *,
        tex: str | None = None,
        ascii: str | None = None,
        meaning: str = "",
        start: int = 1,
    ) -> None:
        self.name = name
        self.indices = tuple(index) if isinstance(index, (tuple, list)) else (index,)
        counts = tuple(count) if isinstance(count, (tuple, list)) else (count,)
        self.counts = tuple(sp.sympify(c) for c in counts)
        if len(self.indices) != len(self.counts):
            raise SpecError(f"family {name}: {len(self.indices)} indices but {len(self.counts)} counts")
        if start not in (0, 1) or (start == 0 and len(self.indices) != 1):
            raise SpecError(f"family {name}: a family starts at 1, or at 0 with a single index")
        self.start = start
        self.shape = _shape(shape, name)
        self.is_vector = len(shape) == 1
        self.is_scalar = len(shape) == 0
        self.entry_kind = kind
        self.tex = tex if tex is not None else _default_tex(name)
        self.ascii = ascii or name
        self.meaning = meaning

    @property
    def index(self) -> sp.Symbol:
        """The index of a single-index family."""
        if len(self.indices) != 1:
            raise SpecError(f"family {self.name} has indices {self.indices}, not one")
        return self.indices[0]

    @property
    def count(self) -> sp.Expr:
        """The count of a single-index family."""
        if len(self.counts) != 1:
            raise SpecError(f"family {self.name} has counts {self.counts}, not one")
        return self.counts[0]

    def __getitem__(self, index) -> "FamilyMember":
        indices = tuple(index) if isinstance(index, tuple) else (index,)
        if len(indices) != len(self.indices):
            raise SpecError(f"family {self.name} takes {len(self.indices)} indices, found {len(indices)}")
        return FamilyMember(Str(self.name), sp.Tuple(*indices), *self.shape)

    def slice(self, *indices) -> "FamilySlice":
        """The sub-family at the leading ``indices``: ``W_Q^{(l,·)}`` handed to a block as ``W_Q^{(·)}``;
        with no indices, the whole family."""
        if not len(indices) < len(self.indices):
            raise SpecError(f"family {self.name}: a slice fixes some but not all of {self.indices}")
        return FamilySlice(Str(self.name), sp.Tuple(*indices))

    @property
    def spec_shape(self) -> tuple[sp.Expr, ...]:
        if self.is_scalar:
            return ()
        return (self.shape[0],) if self.is_vector else tuple(self.shape)

    def __repr__(self) -> str:
        idx = ",".join(str(i) for i in self.indices)
        rng = ", ".join(f"{i}={self.start}..{c}" for i, c in zip(self.indices, self.counts, strict=True))
        return f"Family({self.name}^({idx}), {rng})"


class FamilyMember(MatrixExpr):
    """The member of a family at one index: ``W_Q^{(m)}``. Its arguments are (name, indices, rows, cols)."""

    is_symbol = True

    def __new__(cls, name: Str, indices: sp.Tuple, rows: sp.Expr, cols: sp.Expr) -> "FamilyMember":
        if not isinstance(indices, sp.Tuple):
            indices = sp.Tuple(indices)
        return MatrixExpr.__new__(cls, name, indices, sp.sympify(rows), sp.sympify(cols))

    @property
    def name(self) -> str:
        return self.args[0].name

    @property
    def indices(self) -> tuple[sp.Expr, ...]:
        return tuple(self.args[1])

    @property
    def index(self) -> sp.Expr:
        """The index of a member of a single-index family."""
        return self.args[1][0]

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        return (self.args[2], self.args[3])

    def _entry(self, i, j, **kwargs):
        return sp.Indexed(sp.IndexedBase(self.name), *self.indices, i, j)

    @property
    def free_symbols(self) -> set:
        out = self.args[2].free_symbols | self.args[3].free_symbols
        for k in self.indices:
            out |= sp.sympify(k).free_symbols
        return out


class FamilySlice(sp.Basic):
    """A family with its leading indices fixed, passed whole to another equation (not a matrix)."""

    def __new__(cls, name: Str, indices: sp.Tuple) -> "FamilySlice":
        return sp.Basic.__new__(cls, name, indices)

    @property
    def name(self) -> str:
        return self.args[0].name

    @property
    def indices(self) -> tuple[sp.Expr, ...]:
        return tuple(self.args[1])

    @property
    def free_symbols(self) -> set:
        out: set = set()
        for k in self.indices:
            out |= sp.sympify(k).free_symbols
        return out


Declared = TensorSymbol | Family
