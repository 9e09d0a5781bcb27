"""The DOT text of an equation's data-flow figure: its blocks, the steps of each definition between them,
the equations it calls as labelled boxes, and a caption that states the example sizes."""

import math
import re
from collections.abc import Mapping

import sympy as sp

from .._errors import SpecError
from ..ops import SpecOp
from ..tensors import Declared, Family, FamilyMember, FamilySlice
from .blocks import (
    LONGEST,
    ROLE_FILLS,
    ROLE_WORDS,
    UNIT,
    at,
    axes_used,
    declarations,
    example_sizes,
    roles,
    stack_cells,
)
from .blocks import h as _h
from .blocks import q as _q

FONT = "DejaVu Sans"
#: Step labels of the operators (by class name); others are named by their notation (``top_k(z)`` → top_k).
STEP_NAMES = {
    "MatMul": "matmul", "MatAdd": "+", "HadamardProduct": "⊙", "Transpose": "ᵀ", "LayerNorm": "LN",
    "TutorialLayerNorm": "LN", "HeadConcat": "concat heads", "CausalMask": "causal mask",
    "PaddingMask": "padding mask", "Column": "column", "FirstColumns": "first columns", "Stacked": "stack",
    "Neg": "−", "Zeros": "0", "Ones": "𝟏", "OneHot": "one-hot",
}  # fmt: skip


def _printing():
    from .. import printing

    return printing


class _Figure:
    """The DOT text of one equation's figure, built statement by statement."""

    def __init__(self, eq, sizes: Mapping[str, int] | None) -> None:
        self.eq = eq
        self.sizes = example_sizes(eq, sizes)
        self.printer = _printing().SpecUnicodePrinter(eq.tex_names())
        self.decls = {d.name: d for d in declarations(eq)}
        self.roles = roles(eq)
        self.lines: list[str] = []
        self.steps = 0
        self.groups = self._groups()
        extents = [self._size(s) for d in self.decls.values() for s in d.spec_shape]
        self.unit = min(UNIT, LONGEST / max(extents, default=1))

    def _groups(self) -> dict[sp.Basic, list[str]]:
        """The parameters that feed one call and nothing else, by call (two or more): drawn in a box of
        their own with one edge into the call, not one edge each (a block's dozen parameters)."""
        users: dict[str, set] = {}

        def visit(expr, user) -> None:
            found = self.leaf(expr) if isinstance(expr, sp.Basic) else None
            if found is not None:
                plain = not found[1] or isinstance(expr, FamilySlice)  # W_Q^(l,·): the layer's heads
                users.setdefault(found[0][4:], set()).add(user if plain else None)
            elif type(expr).__name__ == "Call":
                for arg in expr.arguments.values():
                    visit(arg, expr)
            elif isinstance(expr, sp.Basic):
                for arg in expr.args:
                    visit(arg, None)

        for b in self.eq.bindings:
            visit(b.rhs, None)
        groups: dict[sp.Basic, list[str]] = {}
        for name, who in users.items():
            (call,) = who if len(who) == 1 else (None,)
            if call is not None and self.roles[name] == "parameter":
                groups.setdefault(call, []).append(name)
        order = list(self.decls)
        return {c: sorted(v, key=order.index) for c, v in groups.items() if len(v) > 1}

    def _size(self, expr) -> int:
        value = at(expr, self.sizes)
        if not value.is_Integer:
            raise SpecError(f"figure of {self.eq.id}: the size {expr} has no example value (found {value})")
        return int(value)

    # -- blocks
    def block(self, d: Declared) -> None:
        rows, cols = (self._size(s) for s in d.shape)
        w, h = (max(2, round(x * self.unit)) for x in (cols, rows))
        role = self.roles[d.name]
        family = isinstance(d, Family)
        symbol = self.printer.doprint(d[d.indices] if family else d)
        space, _, ranges = self.eq.space(d).partition(", ")
        shape = stack_cells(w, h, ROLE_FILLS[role], 3) if family else stack_cells(w, h, ROLE_FILLS[role], 1)
        text = [f"<B>{_h(symbol)}</B>", _h(space)] + ([_h(ranges)] if ranges else [])
        label = (
            '<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">'
            f"<TR><TD>{shape}</TD></TR>"
            + "".join(
                f'<TR><TD><FONT POINT-SIZE="{9 if i else 10}">{t}</FONT></TD></TR>'
                for i, t in enumerate(text)
            )
            + "</TABLE>>"
        )
        classes = f"block {role}" + (" family" if family else "")
        tip = f"{self.eq.space(d)} ({role})" + (f": {d.meaning}" if d.meaning else "")
        self.lines.append(
            f"  {_q('sym:' + d.name)} [shape=plain label={label} class={_q(classes)} "
            f"id={_q('sym:' + d.name)} tooltip={_q(tip)}]"
        )

    # -- steps
    def step(self, label: str, inputs: list[tuple[str, str]], kind: str = "step") -> str:
        self.steps += 1
        node = f"step{self.steps}"
        shape = "ellipse" if len(label) > 2 else "circle"
        self.lines.append(f"  {node} [shape={shape} label={_q(label)} class={_q(kind)} id={_q(node)}]")
        for src, text in inputs:
            self.edge(src, node, text)
        return node

    def edge(self, src: str, dst: str, text: str = "", attrs: str = "") -> None:
        """An edge; a block is left and entered at its front sheet (port ``b``), not at its label."""
        ends = [f"{_q(x)}:b" if x.startswith("sym:") else _q(x) for x in (src, dst)]
        label = " ".join(a for a in (f"label={_q(text)}" if text else "", attrs) if a)
        self.lines.append(f"  {ends[0]} -> {ends[1]} [{label}]")

    def leaf(self, expr) -> tuple[str, str] | None:
        """The block a symbol reads (and the member or slice, where not the family's own index)."""
        if isinstance(expr, (FamilyMember, FamilySlice)):
            decl = self.decls.get(expr.name)
            own = isinstance(decl, Family) and tuple(expr.indices) == decl.indices
            if isinstance(expr, FamilySlice):
                text = "" if not expr.indices else f"{expr.name}^({','.join(map(str, expr.indices))},·)"
            else:
                text = "" if own else self.printer.doprint(expr)
            return f"sym:{expr.name}", text
        if isinstance(expr, sp.MatrixSymbol) and str(expr.name) in self.decls:
            return f"sym:{expr.name}", ""
        return None

    def value(self, expr) -> tuple[str, str]:
        """The node that holds ``expr``'s value, drawing the steps that compute it."""
        found = self.leaf(expr)
        if found is not None:
            return found
        name = type(expr).__name__
        if isinstance(expr, sp.Transpose):
            src, text = self.value(expr.arg)
            if src.startswith("sym:"):
                return src, (text or "") + "ᵀ"
            return self.step("ᵀ", [(src, text)]), ""
        if type(expr).__name__ == "Call":
            return self.call(expr), ""
        if isinstance(expr, sp.MatMul):
            scalars = [a for a in expr.args if not getattr(a, "is_Matrix", False)]
            mats = [a for a in expr.args if getattr(a, "is_Matrix", False)]
            ones = [a for a in mats if type(a.arg if isinstance(a, sp.Transpose) else a).__name__ == "Ones"]
            mats = [a for a in mats if a not in ones]
            coeff = f" × {self.printer.doprint(sp.Mul(*scalars))}" if scalars else ""
            label = ("broadcast" if ones else "matmul" if len(mats) > 1 else "") + coeff
            return self.step(label.strip(), [self.value(a) for a in mats]), ""
        if isinstance(expr, (sp.MatAdd, sp.HadamardProduct)):
            return self.step(STEP_NAMES[name], [self.value(a) for a in expr.args]), ""
        if isinstance(expr, SpecOp):
            operands = list(expr.matrix_args)
            return self.step(self.op_label(expr, bool(operands)), [self.value(a) for a in operands]), ""
        return self.step(self.short(expr), []), ""  # anything else: its notation

    def short(self, expr, limit: int = 40) -> str:
        text = self.printer.doprint(expr)
        return text if len(text) <= limit else text[: limit - 1] + "…"

    def op_label(self, op: SpecOp, has_operands: bool) -> str:
        name = type(op).__name__
        if name == "Softmax":
            return "softmax (rows)" if op.axis == "rows" else "softmax (columns)"
        if name == "Elementwise":
            return self.printer.tex(op.function.tex)
        if name == "Scaled":
            power = int(op.args[2])
            return {1: "scale ×", -1: "scale ÷"}.get(power, f"scale ^{power}")
        if name in STEP_NAMES:
            return STEP_NAMES[name]
        if not has_operands:
            return self.short(op)
        head = re.match(r"^([^\W\d][^\s(]*)\(", self.printer.doprint(op))
        if head:
            return head.group(1)
        return re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()

    def call(self, call) -> str:
        """A call of another equation: a box labelled with its notation, the equation's id and title."""
        sub = call.equation
        self.steps += 1
        node = f"call{self.steps}"
        head = self.short(call, 60)
        label = (
            '<<TABLE BORDER="0" CELLSPACING="0" CELLPADDING="2">'
            f'<TR><TD><B>{_h(head)}</B></TD></TR><TR><TD><FONT POINT-SIZE="9">calls {_h(sub.id)}: '
            f"{_h(sub.title)} → {_h(call.output)}</FONT></TD></TR></TABLE>>"
        )
        self.lines.append(
            f'  {node} [shape=box style="rounded,filled,bold" fillcolor="#fff2cc" label={label} '
            f"class={_q('call')} id={_q('call:' + sub.id + ':' + str(self.steps))} tooltip={_q(sub.id)}]"
        )
        grouped = self.groups.get(call, [])
        for param, arg in call.arguments.items():
            src, text = self.value(arg)
            if src[4:] in grouped:
                continue
            shown = [param] if not (src == f"sym:{param}") else []
            self.edge(src, node, " = ".join([*shown, text] if text else shown))
        if grouped:
            box = f"cluster_{node}"
            slices = {
                tuple(a.indices) for a in call.arguments.values() if isinstance(a, FamilySlice) and a.indices
            }
            layer = f" (layer {', '.join(map(str, slices.pop()))})" if len(slices) == 1 else ""
            self.lines.append(
                f"  subgraph {_q(box)} {{ label={_q(f'parameters of {sub.id}{layer}')} "
                f'style="rounded,dashed" color="#999999" fontsize=9 id={_q("params:" + sub.id)}'
            )
            for name in grouped:
                self.block(self.decls[name])
            per = math.ceil(math.sqrt(len(grouped)))  # a grid of columns, not one tall column
            for first, second in zip(grouped, grouped[per:], strict=False):
                self.edge(f"sym:{first}", f"sym:{second}", "", "style=invis")
            self.lines.append("  }")
            self.edge(f"sym:{grouped[len(grouped) // 2]}", node, "", f"ltail={_q(box)}")
        return node

    def binding(self, b) -> None:
        src, text = self.value(b.rhs)
        lhs = b.lhs
        decl = self.decls[b.name]
        own = not isinstance(lhs, FamilyMember) or tuple(lhs.indices) == getattr(decl, "indices", ())
        into = "" if own else self.printer.doprint(lhs)
        self.edge(src, f"sym:{b.name}", " → ".join(t for t in (text, into) if t))

    def caption(self) -> str:
        axes = axes_used(self.eq)
        sizes = ", ".join(f"{self.printer.tex(_axis_tex(a))} = {self.sizes[a]}" for a in axes)
        parts = [
            f'<FONT POINT-SIZE="12">{_h(self.eq.title)}</FONT>',
            f'<FONT POINT-SIZE="10">{_h(self.eq.id)}</FONT>',
        ]
        note = f"blocks drawn at {sizes}" if sizes else "blocks drawn as scalars"
        note += f" ({self.unit:g} pt per entry); stacks are families"
        parts.append(f'<FONT POINT-SIZE="9">{_h(note)}</FONT>')
        key = "; ".join(f"{role}s {colour}" for role, colour in ROLE_WORDS.items())
        parts.append(f'<FONT POINT-SIZE="9">{_h(key)}; ellipses are steps, boxes are called equations</FONT>')
        return "<" + "<BR/>".join(parts) + ">"

    def dot(self) -> str:
        grouped = {name for names in self.groups.values() for name in names}
        for d in self.decls.values():
            if d.name not in grouped:
                self.block(d)
        for b in self.eq.bindings:
            self.binding(b)
        head = [
            f"digraph {_q(self.eq.id)} {{",
            "  graph [rankdir=TB compound=true nodesep=0.25 ranksep=0.35 labelloc=b labeljust=l "
            f"fontname={_q(FONT)} label={self.caption()} id={_q('figure:' + self.eq.id)}]",
            f"  node [fontname={_q(FONT)} fontsize=10 margin=0.04]",
            f'  edge [fontname={_q(FONT)} fontsize=9 arrowsize=0.6 color="#555555"]',
        ]
        return "\n".join([*head, *self.lines, "}"]) + "\n"


def _axis_tex(name: str) -> str:
    from ..axes import GLOSSARY

    return GLOSSARY[name].latex


def dataflow_dot(eq, sizes: Mapping[str, int] | None = None) -> str:
    """The Graphviz DOT text of the data-flow figure of ``eq`` (an Equation), its blocks sized at the
    example sizes (``EXAMPLE_SIZES``, with ``sizes`` over them). Needs no Graphviz."""
    return _Figure(eq, sizes).dot()
