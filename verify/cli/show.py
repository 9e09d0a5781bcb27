"""``lmspec show ID``: one equation, as Unicode for the terminal (the formula, where-definitions, symbols
with their spaces, reference, variants, invariants) or as raw LaTeX or MathML."""

import sys
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from ._common import UsageError, console, err, writable

SHOW_FORMATS = ("unicode", "latex", "mathml")
#: The figure formats by file suffix (spec.render.figures.FORMATS).
FIGURE_SUFFIXES = (".svg", ".pdf", ".dot")


def show_command(
    equation: str = typer.Argument(..., help="An equation id, e.g. attention.multi_head."),
    format_: str = typer.Option(
        "unicode", "--format", help="unicode (the equation, symbols, variants…), latex or mathml (raw)."
    ),
    figure: Path = typer.Option(
        None,
        "--figure",
        help="Also write the equation's data-flow figure here: .svg, .pdf (Graphviz) or .dot (the DOT text).",
    ),
) -> None:
    """Show one equation: the formula, symbols with their spaces, reference, variants, invariants."""
    if format_ not in SHOW_FORMATS:
        raise UsageError(f"unknown format {format_!r} for show; choose one of {', '.join(SHOW_FORMATS)}")
    if figure is not None and figure.suffix.lower() not in FIGURE_SUFFIXES:
        raise UsageError(
            f"cannot write a figure to {figure}: its name must end in {', '.join(FIGURE_SUFFIXES)} "
            f"(found {figure.suffix or 'no suffix'})"
        )
    from ... import spec

    eq = spec.get(equation)
    if figure is not None:
        write_figure(eq, figure)
    show_equation(eq, format_)


def write_figure(eq, path: Path) -> None:
    """Write the data-flow figure of ``eq`` to ``path`` in the format its suffix names; Graphviz missing or
    failing, or a path that cannot be written, is a usage error (exit 2)."""
    from ...spec.render.figures import FigureError, figure_for

    existed = path.exists()
    writable(path)
    try:
        data = figure_for(eq.id, path.suffix.lower().lstrip("."))
        path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    except FigureError as exc:
        if not existed and path.exists() and path.stat().st_size == 0:
            path.unlink()  # the empty file the writability check left
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    err.print(f"wrote {path} (the data-flow figure of {eq.id})", highlight=False, markup=False)


def _relation(c) -> str:
    """``d_e = M·d_k`` or ``k_top ≤ v``: a constraint with the axes' code names, as the symbols table."""
    op = {"==": "=", "<=": "≤", "<": "<", ">=": "≥", ">": ">"}[c.rel_op]
    return f"{c.lhs} {op} {c.rhs}".replace("*", "·")


def show_equation(eq, fmt: str) -> None:
    """``unicode`` for people (the equation, where-definitions, symbols, variants…), ``latex`` and
    ``mathml`` the raw forms of the equation alone."""
    if fmt == "latex":
        sys.stdout.write(eq.latex() + "\n")
        return
    if fmt == "mathml":
        sys.stdout.write(eq.mathml() + "\n")
        return
    from ...spec.render import roles

    plain = {"markup": False, "highlight": False}
    console.print(f"[bold]{escape(eq.id)}[/bold] — {escape(eq.title)}", highlight=False)
    console.print(f"Reference: {eq.reference}", **plain)
    console.print(f"Status: {eq.reference.word}: {eq.reference.meaning}", **plain)
    if eq.description:
        console.print(eq.description, **plain)
    console.print()
    for line in eq.unicode_lines():
        console.print(f"  {line}", **plain)
    where = eq.where_unicode()
    if where:
        console.print("where")
        for line in where:
            console.print(f"  {line}", **plain)
    table = Table(title="Symbols")
    table.add_column("symbol", no_wrap=True)
    table.add_column("space", no_wrap=True)
    for col in ("role", "meaning"):
        table.add_column(col)
    role = roles(eq)
    for d in eq.symbols:
        table.add_row(escape(d.ascii), escape(eq.space(d)), role[d.name], escape(d.meaning))
    console.print(table)
    if eq.constraints:
        console.print("Constraints: " + ", ".join(_relation(c) for c in eq.constraints), **plain)
    if eq.variant_names:
        console.print("\n[bold]Variants[/bold]")
        base, base_where = set(eq.unicode_lines()), set(where)
        for name, var in eq.variants().items():
            console.print(f"  {eq.id}[{name}]: {var.description}", **plain)
            for line in [x for x in var.unicode_lines() if x not in base]:
                console.print(f"    {line}", **plain)
            for line in [x for x in var.where_unicode() if x not in base_where]:
                console.print(f"    {line}", **plain)
    if eq.invariants:
        console.print("\n[bold]Invariants[/bold]: " + ", ".join(i.name for i in eq.invariants))
    if eq.notes:
        console.print(f"\n[bold]Notes[/bold]: {escape(eq.notes)}", highlight=False)
