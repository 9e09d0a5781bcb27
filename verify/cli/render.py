"""``lmspec render``: the catalogue as a PDF, LaTeX, Markdown or HTML document.

The documents are spec.render's; parameter counts are evaluated at the model presets of spec/presets.py
(GPT-2 small to XL, BERT base and large, ViT-B/16 and ViT-L/16), the ones ``lmspec params`` counts.

Figures (unless ``--no-figures``): each equation's data-flow figure (spec/dataflow/, drawn by Graphviz) and
the concept figures of verify/figures/ in the sections of the equations they illustrate. spec/ cannot import
verify/, so this command computes the concept figures and hands them to the document builder. HTML carries
them inline; Markdown and LaTeX refer to files written to figures/ beside the document (on standard output
they are left out: there is no folder to write them to); a PDF embeds them (SVG turned into PDF by
rsvg-convert).
"""

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ._common import FAMILIES, UsageError, err, writable

if TYPE_CHECKING:  # pragma: no cover
    from ...spec.render import Configuration

#: The document formats (spec.render.FORMATS).
FORMATS = ("tex", "pdf", "md", "html")
#: The tools figures need: Graphviz always, rsvg-convert for a PDF (concept figures are SVG).
NO_FIGURES = "or leave the figures out with --no-figures"


def configurations() -> "list[Configuration]":
    """The presets of ``lmspec params`` as the configurations at which counts are evaluated."""
    from ...spec.presets import PRESETS
    from ...spec.render import Configuration

    return [Configuration(p.title, dict(p.sizes), p.count) for p in PRESETS.values()]


def concepts_of(families: list[str] | None) -> dict[str, list]:
    """The concept figures (verify/figures/, kept on disk between runs) of the equations of ``families``
    (all when None)."""
    return _concepts_ahead(families, jobs=1)()


def _concepts_ahead(families: list[str] | None, jobs: int) -> Callable[[], dict[str, list]]:
    """The function that gives ``concepts_of(families)``: kept on disk, or being computed (the equations'
    oracles compiled) in ``jobs`` processes forked now, beside what this one does meanwhile."""
    from ..figures import cached_concept_figures_ahead

    waiting = cached_concept_figures_ahead(jobs=jobs)

    def result() -> dict[str, list]:
        every = waiting()
        return {i: figs for i, figs in every.items() if not families or i.split(".", 1)[0] in families}

    return result


def _check_figure_tools(format_: str) -> None:
    from ...spec.dataflow import INSTALL_DOT
    from ...spec.render import INSTALL_RSVG

    if shutil.which("dot") is None:
        raise UsageError(f"{INSTALL_DOT}, {NO_FIGURES}")
    if format_ == "pdf" and shutil.which("rsvg-convert") is None:
        raise UsageError(INSTALL_RSVG)


def _draw_ahead(ids: list[str], fmt: str) -> Future:
    """Graphviz draws the data-flow figures of ``ids`` not kept yet, all in one ``dot`` run
    (``draw_figures``), in a thread of this process while the concept figures are computed: a first render
    (an empty figure cache) waits for the two side by side, not in turn. A figure that fails here is drawn
    again, and its error said, when the document asks for it."""
    from ...spec.render.figures import draw_figures

    pool = ThreadPoolExecutor(max_workers=1)
    drawing = pool.submit(draw_figures, ids, fmt)
    pool.shutdown(wait=False)
    return drawing


def _write_figures(files: dict[str, bytes], folder: Path) -> None:
    for name, data in files.items():
        target = folder / name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        except OSError as exc:
            raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from exc


def render_command(
    format_: str = typer.Option(..., "--format", help="tex, pdf, md or html."),
    output: Path = typer.Option(
        None, "--output", "-o", help="Write here (default: stdout for tex, md, html; lmspec.pdf for pdf)."
    ),
    family: list[str] = typer.Option(None, "--family", help="Only these families (repeatable)."),
    no_figures: bool = typer.Option(
        False, "--no-figures", help="Leave out the figures (no Graphviz needed; faster)."
    ),
) -> None:
    """Render the catalogue as a document: a title, contents, one section per family, every equation
    numbered with its symbols, reference, variants, invariants and notes, and its figures."""
    if format_ not in FORMATS:
        raise UsageError(f"unknown format {format_!r}; choose one of {', '.join(FORMATS)}")
    unknown = [f for f in family or [] if f not in FAMILIES]
    if unknown:
        raise UsageError(f"unknown family {unknown[0]!r}; the families are {', '.join(FAMILIES)}")
    from ...spec.render import INSTALL, FigureError, RenderError, document, figure_files, pdf, tex, web

    if format_ == "pdf":
        output = output or Path("lmspec.pdf")
        if not (shutil.which("latexmk") and shutil.which("pdflatex")):
            raise UsageError(INSTALL)
    figures = not no_figures
    left_out = figures and output is None and format_ in ("md", "tex")
    if left_out:  # Markdown and LaTeX refer to image files, and standard output has no folder for them
        figures = False
    if figures:
        _check_figure_tools(format_)
    existed = output is not None and output.exists()
    if output is not None:
        writable(output)

    start = time.perf_counter()
    doc_families = list(family) if family else None
    try:
        if figures:
            from ... import spec

            # the catalogue first (the processes forked next inherit it, instead of each loading it), then
            # the processes that compute the concept figures (fork copies only the calling thread), then
            # the thread that runs Graphviz; the document is built meanwhile, and the concept figures
            # join it when they come
            ids = [eq.id for eq in spec.all() if doc_families is None or eq.family in doc_families]
            waiting = _concepts_ahead(doc_families, jobs=os.cpu_count() or 1)
            drawing = _draw_ahead(ids, "pdf" if format_ in ("pdf", "tex") else "svg")
            doc = document.document(doc_families, configurations(), figures)
            document.add_concepts(doc, waiting())
            with contextlib.suppress(FigureError, OSError):  # said again when the document asks for it
                drawing.result()
        else:
            doc = document.document(doc_families, configurations(), figures)
        n, k = len(doc.entries), len(doc.figures)
        if format_ == "pdf":
            try:
                pages = pdf(tex.tex(doc), output, files=figure_files(doc, "pdf"))
            except RenderError as exc:
                if not existed and output.exists() and output.stat().st_size == 0:
                    output.unlink()  # the empty file the writability check left
                raise UsageError(str(exc)) from None
            what = (
                f"{n} equations, {k} figures, {pages} pages" if figures else f"{n} equations, {pages} pages"
            )
        else:
            text = (
                tex.tex(doc) if format_ == "tex" else web.markdown(doc) if format_ == "md" else web.html(doc)
            )
            if output is None:
                sys.stdout.write(text)
                if left_out:
                    err.print(
                        f"figures left out: {format_} on standard output has no folder for its image files; "
                        "write it to a file with -o to have them",
                        highlight=False,
                        markup=False,
                    )
                return
            if figures and format_ in ("md", "tex"):
                _write_figures(figure_files(doc, "svg" if format_ == "md" else "pdf"), output.parent)
            try:
                output.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from exc
            what = f"{n} equations, {k} figures" if figures else f"{n} equations"
    except FigureError as exc:
        if not existed and output is not None and output.exists() and output.stat().st_size == 0:
            output.unlink()
        raise UsageError(str(exc)) from None
    seconds = time.perf_counter() - start
    err.print(f"wrote {output} ({what}) in {seconds:.1f}s", highlight=False, markup=False)
