"""Positional encodings ``Λ ∈ ℝ^{d_e×n_max}``: learned (GPT-2, BERT) or sinusoidal (Vaswani et al. 2017).

Sinusoidal, 0-based row i and position t: ``Λ_{2i,t} = sin(t ω_i)``, ``Λ_{2i+1,t} = cos(t ω_i)`` with
``ω_i = 10000^{−2i/d_e}``. Each pair of rows turns with the position: ``Λ_{:,t+k}`` is ``Λ_{:,t}`` rotated,
pair by pair, by the angle ``k ω_i`` — a map that depends on k only, which is why attention can read relative
positions from it.

Odd ``d_e`` (which the formula allows but many implementations reject): the last row is ``sin(t ω_i)`` of
the last frequency ``i = (d_e − 1)/2`` and has no cosine partner, i.e. the entry-wise formula is read as
written, row by row. The variant ``halves`` stores the same sines in rows ``0..⌈d_e/2⌉−1`` and the cosines
after them (the ``[sin, cos]`` concatenation of some implementations).
"""

import sympy as sp
from sympy.core.symbol import Str
from sympy.matrices.expressions.matexpr import MatrixExpr

from ._errors import SpecError
from .axes import d_e, n, n_max
from .equation import Equation, Invariant, Reference
from .ops import SpecOp
from .ops_nn import FirstColumns
from .registry import register
from .tensors import tensor

SECTION = "§4 Transformers: positional encoding"
#: The base of the wavelengths in Vaswani et al. (2017, §3.5).
BASE = sp.Integer(10_000)


class Sinusoidal(SpecOp):
    """The sinusoidal table ``PE ∈ ℝ^{d×T}``: ``PE_{2i,t} = sin(t/b^{2i/d})``,
    ``PE_{2i+1,t} = cos(t/b^{2i/d})`` (0-based rows and positions), or with the sines stacked above the
    cosines (``layout="halves"``)."""

    def __new__(cls, rows: sp.Expr, cols: sp.Expr, base: sp.Expr = BASE, layout: str = "interleaved"):
        layout = layout if isinstance(layout, Str) else Str(str(layout))
        if layout.name not in ("interleaved", "halves"):
            raise SpecError(f"Sinusoidal: layout must be 'interleaved' or 'halves', found {layout.name!r}")
        return MatrixExpr.__new__(cls, sp.sympify(rows), sp.sympify(cols), sp.sympify(base), layout)

    @property
    def layout(self) -> str:
        return self.args[3].name

    @property
    def shape(self):
        return (self.args[0], self.args[1])

    @property
    def free_symbols(self) -> set:
        return self.args[0].free_symbols | self.args[1].free_symbols

    def _entry(self, i, j, **kwargs):
        d, _, base = self.args[:3]
        if self.layout == "interleaved":
            pair, is_sin = sp.floor(i / 2), sp.Eq(sp.Mod(i, 2), 0)
        else:
            half = sp.ceiling(d / 2)
            pair = sp.Piecewise((i, sp.Lt(i, half)), (i - half, True))
            is_sin = sp.Lt(i, half)
        angle = j * base ** (-2 * pair / d)
        if is_sin in (sp.true, sp.false):  # a concrete row: the one function it takes, as it is written
            # (unevaluated: SymPy looks for multiples of π at every sin and cos it builds, nearly all of an
            # oracle's 960 entries' cost; the value is the same)
            return (sp.sin if is_sin is sp.true else sp.cos)(angle, evaluate=False)
        return sp.Piecewise((sp.sin(angle), is_sin), (sp.cos(angle), True))

    def _latex(self, printer) -> str:
        d, T = (printer._print(a) for a in self.args[:2])
        mark = "" if self.layout == "interleaved" else r"^{\mathrm{halves}}"
        return rf"\operatorname{{PE}}{mark}_{{{d} \times {T}}}"

    def _latex_definition(self, printer) -> str:
        d, base = printer._print(self.args[0]), printer._print(self.args[2])
        w = rf"t / {base}^{{2i/{d}}}"
        if self.layout == "interleaved":
            return (
                rf"\operatorname{{PE}}_{{2i,t}} = \sin\left({w}\right), \quad "
                rf"\operatorname{{PE}}_{{2i+1,t}} = \cos\left({w}\right) \quad (i, t \text{{ from }} 0)"
            )
        return (
            rf"\operatorname{{PE}}^{{\mathrm{{halves}}}}_{{i,t}} = \sin\left({w}\right), \quad "
            rf"\operatorname{{PE}}^{{\mathrm{{halves}}}}_{{\lceil {d}/2 \rceil + i,t}} = \cos\left({w}\right)"
            r" \quad (i, t \text{ from } 0)"
        )

    def _torchcode(self, ctx) -> str:
        d, T, base = (ctx.size(a) for a in self.args[:3])
        rows = ctx.emit(f"torch.arange({d}, device={ctx.device})")
        if self.layout == "interleaved":
            pair = ctx.emit(f"{rows} // 2")
            is_sin = ctx.emit(f"({rows} % 2 == 0)")
        else:
            half = ctx.emit(f"(({d}) + 1) // 2")
            is_sin = ctx.emit(f"({rows} < {half})")
            pair = ctx.emit(f"torch.where({is_sin}, {rows}, {rows} - {half})")
        omega = ctx.emit(f"torch.pow(float({base}), -2.0 * {pair}.to({ctx.dtype}) / ({d}))")
        t = ctx.emit(f"torch.arange({T}, dtype={ctx.dtype}, device={ctx.device})")
        angle = ctx.emit(f"{omega}.unsqueeze(-1) * {t}.unsqueeze(0)")
        return f"torch.where({is_sin}.unsqueeze(-1), torch.sin({angle}), torch.cos({angle}))"


# --- positional.learned ---------------------------------------------------------------------------
def learned() -> Equation:
    Lambda = tensor(
        "Lambda", (d_e, n_max), tex=r"\Lambda", meaning="learned positional encoding, column t for position t"
    )
    out = tensor("Lambda_n", (d_e, n), tex=r"\Lambda^{(n)}", meaning="the encodings of positions 1..n")
    return Equation(
        "positional.learned",
        "Learned positional encoding",
        params=(Lambda,),
        intermediates=(out,),
        bindings=[(out, FirstColumns(Lambda, n))],
        outputs=(out,),
        constraints=(sp.Le(n, n_max),),
        reference=Reference(SECTION, source="Radford et al. 2018, 2019; Devlin et al. 2019"),
        invariants=(Invariant("learned_positions_prefix", {"output": "Lambda_n"}),),
        notes="Λ is a parameter like E; a sequence of n ≤ n_max tokens uses its first n columns Λ_{:,1:n}. "
        "Hugging Face GPT-2's wpe.weight (nn.Embedding) holds Λᵀ (n_max × d_e); Phuong & Hutter call Λ "
        "'W_p'.",
    )


# --- positional.sinusoidal ------------------------------------------------------------------------
def sinusoidal(layout: str = "interleaved") -> Equation:
    Lambda = tensor(
        "Lambda", (d_e, n_max), tex=r"\Lambda", meaning="sinusoidal encoding of positions 0..n_max−1"
    )
    return Equation(
        "positional.sinusoidal",
        "Sinusoidal positional encoding",
        intermediates=(Lambda,),
        bindings=[(Lambda, Sinusoidal(d_e, n_max, BASE, layout))],
        outputs=(Lambda,),
        reference=Reference(SECTION, source="Vaswani et al. 2017, §3.5", status="R"),
        invariants=(
            Invariant("sinusoidal_bounded", {"output": "Lambda"}),
            Invariant("sinusoidal_relative_position", {"output": "Lambda", "layout": layout}),
        ),
        notes="Λ_{2i,t} = sin(t/10000^{2i/d_e}), Λ_{2i+1,t} = cos(t/10000^{2i/d_e}), rows i and positions t "
        "counted from 0: 0-based column t of Λ is position t, the tutorial's (1-based) column t + 1. "
        "For odd d_e the last row is a sine without its cosine. Fixed, not learned: no parameters.",
    )


register(learned())
register(sinusoidal()).add_variant(
    "halves",
    lambda: sinusoidal("halves"),
    "the sines of every frequency in the first ⌈d_e/2⌉ rows and the cosines after them ([sin, cos] "
    "concatenated instead of interleaved)",
)
