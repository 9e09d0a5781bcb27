"""Mutation operators written for tensor code, applied to the AST of impl/.

Each operator is a class with a ``name``, a one-line ``description`` and ``mutations(ctx)``, which walks the
module's AST and yields, per site, the mutated variants of that site. A mutant replaces only the source
segment of the node(s) it changes (``lineno``/``col_offset``/``end_lineno``/``end_col_offset``, byte offsets
of the UTF-8 source), so its diff is a line or two, never a re-unparsed file.

Sites are looked for only in the code the verifier reaches: the functions registered with ``@implements``
and every impl function they reference, transitively (``reachable``). Module classes and helpers outside
that graph (``GPT2.generate``, ``LSTMCell.from_torch``, ``mlm_mask``) are held by tests/impl, not by
``lmspec verify``, so a mutant there says nothing about the verifier.
"""

from collections.abc import Sequence
from pathlib import Path

from ._base import Context, Edit, Mutant, Operator
from .ops_attention import (
    CausalDiagonal,
    FillValue,
    MaskPolarity,
    Scale,
    SoftmaxAxis,
    TransposeAdd,
    TransposeDrop,
)
from .ops_layers import Bessel, Epsilon, GeluForm, LNPlacement, NormAxis, ResidualSource
from .ops_loss import GateProduct, LabelShift, PaddingCounted, SinCos, SliceOffByOne
from .reach import impl_dir, module_sources, reachable

OPERATORS: tuple[Operator, ...] = (
    SoftmaxAxis(),
    TransposeDrop(),
    TransposeAdd(),
    Scale(),
    CausalDiagonal(),
    MaskPolarity(),
    FillValue(),
    NormAxis(),
    Bessel(),
    Epsilon(),
    GeluForm(),
    ResidualSource(),
    LNPlacement(),
    LabelShift(),
    PaddingCounted(),
    GateProduct(),
    SinCos(),
    SliceOffByOne(),
)
OPERATOR_NAMES = tuple(op.name for op in OPERATORS)


def operator(name: str) -> Operator:
    for op in OPERATORS:
        if op.name == name:
            return op
    raise KeyError(name)


# --- mutants of impl/ -----------------------------------------------------------------------------


def mutants_of(
    file: str,
    source: str,
    operators: Sequence[Operator] = OPERATORS,
    reached: set[str] | None = None,
) -> list[Mutant]:
    """Every mutant of one module by the given operators, in operator then source order."""
    ctx = Context(file, source, reached)
    module = file.removesuffix(".py")
    out: list[Mutant] = []
    for op in operators:
        seen: set[tuple] = set()
        rank = 0
        for p in op.mutations(ctx):
            edits = tuple(Edit(*ctx.span(node), text) for node, text in p.edits)
            key = tuple((e.start, e.end, e.text) for e in edits)
            if key in seen or all(ctx.data[e.start : e.end].decode() == e.text for e in edits):
                continue
            seen.add(key)
            rank += 1
            fn = ctx.function(p.site)
            out.append(
                Mutant(
                    id=f"{module}/{op.name}/{rank}",
                    file=file,
                    operator=op.name,
                    function=fn.name if fn else "",
                    line=p.site.lineno,
                    column=p.site.col_offset,
                    description=p.description,
                    original=" … ".join(ctx.text(node) for node, _ in p.edits),
                    mutated=" … ".join(text for _, text in p.edits),
                    edits=edits,
                )
            )
    return out


def discover(
    files: Sequence[str] | None = None,
    operators: Sequence[Operator] = OPERATORS,
    root: Path | None = None,
    sources: dict[str, str] | None = None,
) -> list[Mutant]:
    """The mutants of impl/ (or of ``files``, names relative to impl/), in reached code only."""
    root = root or impl_dir()
    sources = sources if sources is not None else module_sources(root)
    reached = reachable(sources)
    names = files if files is not None else [f"{m}.py" for m in sources if not m.startswith("_")]
    out: list[Mutant] = []
    for file in names:
        mod = file.removesuffix(".py")
        out += mutants_of(file, sources[mod], operators, reached.get(mod, set()))
    return out


def sites(mutants: Sequence[Mutant]) -> dict[str, int]:
    """Sites per operator: the distinct nodes its mutants change (several mutants may share one)."""
    per: dict[str, set] = {op.name: set() for op in OPERATORS}
    for m in mutants:
        per[m.operator].add((m.file, m.line, m.column))
    return {k: len(v) for k, v in per.items()}
