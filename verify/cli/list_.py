"""``lmspec list``: the equations of the catalogue, one row each."""

import typer
from rich.markup import escape
from rich.table import Table

from ._common import console


def list_command(
    family: list[str] = typer.Option(None, "--family", "-f", help="Only these families."),
) -> None:
    """List the equations of the catalogue."""
    from ... import spec

    eqs = spec.select(family) if family else spec.all()
    table = Table(title="lmspec catalogue", show_lines=False)
    table.add_column("id", no_wrap=True)
    for col in ("title", "reference", "variants"):
        table.add_column(col)
    for eq in eqs:
        ref = eq.reference
        num = f"({ref.number}) " if ref.number else ""
        table.add_row(eq.id, eq.title, f"{num}[{ref.tag}] {ref.source}", ", ".join(eq.variant_names) or "—")
    console.print(table)
    console.print(f"{len(eqs)} equations in {len({e.family for e in eqs})} families")
    from ...spec.aliases import ALIASES

    families = {e.family for e in eqs}
    aliases = Table(title="aliases: names people look for (lmspec show, audit --as and the API take them)")
    for col in ("alias", "id", "what"):
        aliases.add_column(col, no_wrap=col != "what")
    for alias, (target, what) in ALIASES.items():
        if target.partition(".")[0] in families:
            aliases.add_row(escape(alias), escape(target), escape(what))
    if aliases.row_count:
        console.print(aliases)
