"""The blocks of a figure: the example sizes a figure is drawn at, the roles of the symbols, and a block
drawn as a sheet, or a stack of sheets for a family (an HTML-like table of Graphviz)."""

import html
from collections.abc import Mapping

import sympy as sp

from .._errors import SpecError
from ..tensors import Declared, Family

#: The example size of each glossary axis the figures are drawn at (dependent axes follow from the
#: equation's constraints: ``d_p = P²·C``); the caption states the ones a figure uses.
EXAMPLE_SIZES: dict[str, int] = {
    "n": 6, "n_max": 8, "n_d": 5, "n_e": 7, "v": 12, "d_e": 8, "M": 2, "d_k": 4, "d_v": 4, "d_f": 16,
    "L": 2, "d_h": 6, "c": 3, "P": 2, "k_top": 3, "n_c": 3, "d_x": 3, "L_in": 10, "S_p": 2, "N_p": 4,
    "C_i": 3, "H_i": 4, "W_i": 4, "N_h": 2, "N_w": 2, "d_p": 12, "d_theta": 5,
}  # fmt: skip
#: Points per entry, and the longest side of a block: a figure with a longer block is drawn at a smaller
#: unit (every block of a figure at the same scale, so proportions hold across it).
UNIT, LONGEST = 6.0, 150.0
#: The fill of a block by its role, and its name in the caption.
ROLE_FILLS = {"input": "#cfe2f3", "parameter": "#fce5cd", "intermediate": "#eeeeee", "output": "#d9ead3"}
ROLE_WORDS = {"input": "blue", "parameter": "orange", "intermediate": "grey", "output": "green"}


def example_sizes(eq, sizes: Mapping[str, int] | None = None) -> dict[str, int]:
    """The size of every axis the figure of ``eq`` uses: ``EXAMPLE_SIZES`` with ``sizes`` over it, and the
    axes the equation's constraints define computed from the others (``n = N_p + 1``)."""
    given = dict(sizes or {})
    for name, value in given.items():
        if name not in EXAMPLE_SIZES:
            raise SpecError(
                f"figure of {eq.id}: unknown axis {name!r} in sizes (axes: {', '.join(EXAMPLE_SIZES)})"
            )
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SpecError(
                f"figure of {eq.id}: the size of {name} must be a positive integer, found {value!r}"
            )
    values = {**EXAMPLE_SIZES, **given}
    for _ in range(len(eq.equalities) + 1):  # dependent axes may depend on each other
        for c in eq.equalities:
            if c.lhs.name not in given:
                rhs = at(c.rhs, values)
                if rhs.is_Integer:
                    values[c.lhs.name] = int(rhs)
    return values


def at(expr, values: Mapping[str, int]) -> sp.Expr:
    """A size expression at the sizes ``values`` (``xreplace`` of its own symbols: ``subs`` with every axis
    costs a hundred times more)."""
    expr = sp.sympify(expr)
    return expr.xreplace({s: sp.Integer(values[s.name]) for s in expr.free_symbols if s.name in values})


def axes_used(eq) -> list[str]:
    names: set[str] = set()
    for d in declarations(eq):
        for s in d.spec_shape:
            names |= {x.name for x in sp.sympify(s).free_symbols}
        if isinstance(d, Family):
            for count in d.counts:
                names |= {x.name for x in count.free_symbols}
    return [k for k in EXAMPLE_SIZES if k in names]


def declarations(eq) -> tuple[Declared, ...]:
    seen = {d.name for d in eq.symbols}
    return (*eq.symbols, *(o for o in eq.outputs if o.name not in seen))


def roles(eq) -> dict[str, str]:
    outputs = {o.name for o in eq.outputs}
    roles = {**{d.name: "input" for d in eq.inputs}, **{d.name: "parameter" for d in eq.params}}
    return {
        d.name: roles.get(d.name, "output" if d.name in outputs else "intermediate") for d in declarations(eq)
    }


def q(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def h(text: str) -> str:
    """Text inside an HTML-like label."""
    return html.escape(text, quote=True)


def stack_cells(w: int, h: int, fill: str, sheets: int, offset: int = 4) -> str:
    """A block drawn as ``sheets`` sheets of w×h points, each behind and up-right of the one before: the
    back sheets show as L-shaped rims (table cells with their outer sides drawn)."""
    xs = sorted({0, w, *(k * offset for k in range(sheets)), *(w + k * offset for k in range(sheets))})
    ys = sorted({0, h, *(k * offset for k in range(sheets)), *(h + k * offset for k in range(sheets))})

    def owner(x: float, y: float) -> int | None:  # the front-most sheet covering the point (0 = front)
        for k in range(sheets):
            left, top = k * offset, (sheets - 1 - k) * offset
            if left <= x < left + w and top <= y < top + h:
                return k
        return None

    rows = []
    front_top = (sheets - 1) * offset
    for r in range(len(ys) - 1):
        cells = []
        for col in range(len(xs) - 1):
            cx, cy = (xs[col] + xs[col + 1]) / 2, (ys[r] + ys[r + 1]) / 2
            k = owner(cx, cy)
            cw, ch = xs[col + 1] - xs[col], ys[r + 1] - ys[r]
            if k == 0:
                if xs[col] == 0 and ys[r] == front_top:  # the whole front sheet, one cell
                    span_c = sum(1 for x in xs[:-1] if x < w)
                    span_r = sum(1 for y in ys[:-1] if front_top <= y < front_top + h)
                    cells.append(
                        f'<TD COLSPAN="{span_c}" ROWSPAN="{span_r}" FIXEDSIZE="TRUE" WIDTH="{w}" '
                        f'HEIGHT="{h}" BGCOLOR="{fill}" BORDER="1" PORT="b"></TD>'
                    )
                continue
            sides = ""
            if k is not None:
                for side, (dx, dy) in zip("LRTB", ((-1, 0), (1, 0), (0, -1), (0, 1)), strict=True):
                    nb = owner(cx + dx * (cw / 2 + 0.5), cy + dy * (ch / 2 + 0.5))
                    if nb is None or nb > k:
                        sides += side
            attrs = f'FIXEDSIZE="TRUE" WIDTH="{cw}" HEIGHT="{ch}"'
            if k is not None:
                attrs += f' BGCOLOR="{fill}"' + (f' BORDER="1" SIDES="{sides}"' if sides else "")
            cells.append(f"<TD {attrs}></TD>")
        rows.append("<TR>" + "".join(cells) + "</TR>")
    size = f'WIDTH="{w + (sheets - 1) * offset}" HEIGHT="{h + (sheets - 1) * offset}"'
    return (  # fixed, or the cell around it would stretch the sheets apart
        f'<TABLE FIXEDSIZE="TRUE" {size} BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="0">'
        + "".join(rows)
        + "</TABLE>"
    )
