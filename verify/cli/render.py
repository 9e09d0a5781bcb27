"""``lmspec render`` (the catalogue as a PDF, LaTeX, Markdown or HTML document) and ``lmspec show
--format`` (one equation as Unicode for the terminal, raw LaTeX or raw MathML).

The documents are spec/render.py's; parameter counts are evaluated at the presets of ``lmspec params``
(GPT-2 small to XL, BERT base and large, ViT-B/16 and ViT-L/16).
"""

import shutil
import sys
import time
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from ... import spec
from ...spec.render.document import FORMATS, Configuration, render, roles
from ...spec.render.tex import INSTALL, RenderError, pdf

SHOW_FORMATS = ("unicode", "latex", "mathml")
_EXTENSIONS = {"tex": ".tex", "pdf": ".pdf", "md": ".md", "html": ".html"}


def configurations() -> list[Configuration]:
    """The presets of ``lmspec params`` as the configurations at which counts are evaluated."""
    from .params import PRESETS

    return [Configuration(p.title, dict(p.sizes), p.count) for p in PRESETS.values()]


def render_command(app, console, err, usage_error, writable) -> None:
    """Register ``lmspec render`` on ``app``."""

    @app.command("render")
    def render_(
        format_: str = typer.Option(..., "--format", help="tex, pdf, md or html."),
        output: Path = typer.Option(
            None, "--output", "-o", help="Write here (default: stdout for tex, md, html; lmspec.pdf for pdf)."
        ),
        family: list[str] = typer.Option(None, "--family", help="Only these families (repeatable)."),
    ) -> None:
        """Render the catalogue as a document: a title, contents, one section per family, every equation
        numbered with its symbols, reference, variants, invariants and notes."""
        if format_ not in FORMATS:
            raise usage_error(f"unknown format {format_!r}; choose one of {', '.join(FORMATS)}")
        unknown = [f for f in family or [] if f not in spec.FAMILIES]
        if unknown:
            raise usage_error(f"unknown family {unknown[0]!r}; the families are {', '.join(spec.FAMILIES)}")
        if format_ == "pdf":
            output = output or Path("lmspec.pdf")
            if not (shutil.which("latexmk") and shutil.which("pdflatex")):
                raise usage_error(INSTALL)
        existed = output is not None and output.exists()
        if output is not None:
            writable(output)
        start = time.perf_counter()
        doc_families = list(family) if family else None
        by_family = spec.families()
        n = sum(len(by_family[f]) for f in doc_families or spec.FAMILIES)
        if format_ == "pdf":
            try:
                pages = pdf(render("tex", doc_families, configurations()), output)
            except RenderError as exc:
                if not existed and output.exists() and output.stat().st_size == 0:
                    output.unlink()  # the empty file the writability check left
                raise usage_error(str(exc)) from None
            what = f"{n} equations, {pages} pages"
        else:
            text = render(format_, doc_families, configurations())
            if output is None:
                sys.stdout.write(text)
                return
            try:
                output.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise usage_error(f"cannot write {output}: {exc.strerror or exc}") from exc
            what = f"{n} equations"
        seconds = time.perf_counter() - start
        err.print(f"wrote {output} ({what}) in {seconds:.1f}s", highlight=False, markup=False)


def _relation(c) -> str:
    """``d_e = M·d_k`` or ``k_top ≤ v``: a constraint with the axes' code names, as the symbols table."""
    op = {"==": "=", "<=": "≤", "<": "<", ">=": "≥", ">": ">"}[c.rel_op]
    return f"{c.lhs} {op} {c.rhs}".replace("*", "·")


def show_equation(eq, fmt: str, console, usage_error) -> None:
    """``lmspec show``: ``unicode`` for people (the equation, where-definitions, symbols, variants…),
    ``latex`` and ``mathml`` the raw forms of the equation alone."""
    if fmt not in SHOW_FORMATS:
        raise usage_error(f"unknown format {fmt!r} for show; choose one of {', '.join(SHOW_FORMATS)}")
    if fmt == "latex":
        sys.stdout.write(eq.latex() + "\n")
        return
    if fmt == "mathml":
        sys.stdout.write(eq.mathml() + "\n")
        return
    plain = {"markup": False, "highlight": False}
    console.print(f"[bold]{escape(eq.id)}[/bold] — {escape(eq.title)}", highlight=False)
    console.print(f"Reference: {eq.reference}", **plain)
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
