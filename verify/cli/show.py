"""``lmspec show ID``: one equation, as Unicode for the terminal (the formula, where-definitions, symbols
with their spaces, reference, variants, invariants) or as raw LaTeX or MathML."""

import sys

import typer
from rich.markup import escape
from rich.table import Table

from ._common import UsageError, console

SHOW_FORMATS = ("unicode", "latex", "mathml")


def show_command(
    equation: str = typer.Argument(..., help="An equation id, e.g. attention.multi_head."),
    format_: str = typer.Option(
        "unicode", "--format", help="unicode (the equation, symbols, variants…), latex or mathml (raw)."
    ),
) -> None:
    """Show one equation: the formula, symbols with their spaces, reference, variants, invariants."""
    if format_ not in SHOW_FORMATS:
        raise UsageError(f"unknown format {format_!r} for show; choose one of {', '.join(SHOW_FORMATS)}")
    from ... import spec

    show_equation(spec.get(equation), format_)


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
