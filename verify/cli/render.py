"""``lmspec render``: the catalogue as a PDF, LaTeX, Markdown or HTML document.

The documents are spec.render's; parameter counts are evaluated at the model presets of spec/presets.py
(GPT-2 small to XL, BERT base and large, ViT-B/16 and ViT-L/16), the ones ``lmspec params`` counts.
"""

import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ._common import FAMILIES, UsageError, err, writable

if TYPE_CHECKING:  # pragma: no cover
    from ...spec.render import Configuration

#: The document formats (spec.render.FORMATS).
FORMATS = ("tex", "pdf", "md", "html")


def configurations() -> "list[Configuration]":
    """The presets of ``lmspec params`` as the configurations at which counts are evaluated."""
    from ...spec.presets import PRESETS
    from ...spec.render import Configuration

    return [Configuration(p.title, dict(p.sizes), p.count) for p in PRESETS.values()]


def render_command(
    format_: str = typer.Option(..., "--format", help="tex, pdf, md or html."),
    output: Path = typer.Option(
        None, "--output", "-o", help="Write here (default: stdout for tex, md, html; lmspec.pdf for pdf)."
    ),
    family: list[str] = typer.Option(None, "--family", help="Only these families (repeatable)."),
) -> None:
    """Render the catalogue as a document: a title, contents, one section per family, every equation
    numbered with its symbols, reference, variants, invariants and notes."""
    if format_ not in FORMATS:
        raise UsageError(f"unknown format {format_!r}; choose one of {', '.join(FORMATS)}")
    unknown = [f for f in family or [] if f not in FAMILIES]
    if unknown:
        raise UsageError(f"unknown family {unknown[0]!r}; the families are {', '.join(FAMILIES)}")
    from ...spec.render import INSTALL, RenderError, pdf, render

    if format_ == "pdf":
        output = output or Path("lmspec.pdf")
        if not (shutil.which("latexmk") and shutil.which("pdflatex")):
            raise UsageError(INSTALL)
    existed = output is not None and output.exists()
    if output is not None:
        writable(output)
    from ... import spec

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
            raise UsageError(str(exc)) from None
        what = f"{n} equations, {pages} pages"
    else:
        text = render(format_, doc_families, configurations())
        if output is None:
            sys.stdout.write(text)
            return
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from exc
        what = f"{n} equations"
    seconds = time.perf_counter() - start
    err.print(f"wrote {output} ({what}) in {seconds:.1f}s", highlight=False, markup=False)
