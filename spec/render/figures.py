"""Figures for the renderers: the data-flow figure of a catalogue equation by id, in the format a document
needs (SVG for HTML and notebooks, PDF for LaTeX, DOT for people who lay it out themselves).

The drawing is spec/dataflow/ (below the catalogue, so that an Equation can draw itself in a notebook);
this module adds the lookup by id, which stands on the catalogue.
"""

import functools
import re
from collections.abc import Callable, Iterable, Mapping

from .._errors import SpecError
from ..dataflow import INSTALL_DOT as INSTALL_DOT
from ..dataflow import FigureError as FigureError
from ..dataflow import dataflow_dot, render_dot, render_many

#: The formats of ``figure_for``.
FORMATS = ("dot", "svg", "pdf")


def figure_for(eq_id: str, fmt: str, sizes: Mapping[str, int] | None = None) -> str | bytes:
    """The figure of the equation ``eq_id`` (an id, variant or alias ``spec.get`` takes) in ``fmt``: ``dot``
    and ``svg`` as text, ``pdf`` as bytes. An unknown id is an UnknownEquation, a missing or failing
    Graphviz a FigureError; a figure drawn before (same DOT text) costs no ``dot`` run."""
    if fmt not in FORMATS:
        raise SpecError(f"unknown figure format {fmt!r}; choose one of {', '.join(FORMATS)}")
    from ..catalogue import get

    source = _catalogue_dot(eq_id) if sizes is None else dataflow_dot(get(eq_id), sizes)
    if fmt == "dot":
        return source
    data = render_dot(source, fmt)
    return data.decode("utf-8") if fmt == "svg" else data


@functools.cache
def _catalogue_dot(eq_id: str) -> str:
    """The DOT text of a catalogue equation at its example sizes, written once per process: a document
    asks for it twice, to draw its figures ahead (``draw_figures``) and to take each (``figure_for``)."""
    from ..catalogue import get

    return dataflow_dot(get(eq_id))


def draw_figures(eq_ids: Iterable[str], fmt: str) -> None:
    """Draw the figures of ``eq_ids`` in ``fmt`` (``svg`` or ``pdf``) that are not kept yet, all in one
    ``dot`` run, so that ``figure_for`` then finds each of them kept (a document's ~90 figures: one start-up
    of Graphviz instead of ~90). A FigureError where Graphviz is missing or fails."""
    render_many([_catalogue_dot(i) for i in eq_ids], fmt)


# ------------------------------------------------------------------------- figures in the documents
INSTALL_RSVG = (
    "a PDF with figures needs rsvg-convert to turn the SVG figures into PDF, which is not on PATH; install "
    "librsvg (Debian/Ubuntu: apt-get install librsvg2-bin; macOS: brew install librsvg; `make os-deps` does "
    "it here), or leave the figures out with --no-figures"
)
_PDF_MEMORY: dict[str, bytes] = {}


def svg_to_pdf(svg: str, *, timeout: float = 60) -> bytes:
    """An SVG figure as PDF bytes (``rsvg-convert -f pdf``), kept by the digest of the SVG as Graphviz's
    figures are (in memory and in the figure cache on disk). A FigureError says what is missing or failed."""
    import contextlib
    import hashlib
    import os
    import shutil
    import subprocess

    from ..dataflow.graphviz import CACHE_FORMAT, _cache_dir, _store

    program = shutil.which("rsvg-convert")
    if program is None:
        raise FigureError(INSTALL_RSVG)
    stat = os.stat(program)
    key = hashlib.sha256(
        "\0".join([CACHE_FORMAT, "rsvg-pdf", program, str(stat.st_size), str(stat.st_mtime_ns), svg]).encode()
    ).hexdigest()
    if key in _PDF_MEMORY:
        return _PDF_MEMORY[key]
    folder = _cache_dir()
    path = folder / f"{key}.pdf" if folder is not None else None
    if path is not None:
        with contextlib.suppress(OSError):
            data = path.read_bytes()
            if data[:32] == hashlib.sha256(data[32:]).digest():
                _PDF_MEMORY[key] = data[32:]
                return data[32:]
    try:
        proc = subprocess.run(
            [program, "-f", "pdf"], input=svg.encode(), capture_output=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise FigureError(f"rsvg-convert did not finish a figure within {timeout:.0f} s") from None
    if proc.returncode != 0 or not proc.stdout.startswith(b"%PDF"):
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        first = message[0] if message else "no message"
        raise FigureError(f"rsvg-convert failed on a figure (exit {proc.returncode}): {first}")
    _PDF_MEMORY[key] = proc.stdout
    if path is not None:
        _store(path, hashlib.sha256(proc.stdout).digest() + proc.stdout)
    return proc.stdout


def pdf_size(data: bytes) -> tuple[float, float] | None:
    """The page size of a one-page PDF in points (its first ``/MediaBox``), or None where none is found."""
    m = re.search(rb"/MediaBox\s*\[\s*([-0-9.]+)\s+([-0-9.]+)\s+([-0-9.]+)\s+([-0-9.]+)\s*\]", data)
    if m is None:
        return None
    x0, y0, x1, y1 = (float(v) for v in m.groups())
    return x1 - x0, y1 - y0


class Figure:
    """A figure of the document: a file ``name`` (letters, digits and hyphens), a title, a caption, and its
    SVG and PDF, each made on first use (a PDF from the SVG through rsvg-convert unless ``pdf`` makes it)."""

    def __init__(
        self,
        name: str,
        title: str,
        caption: str,
        svg: str | Callable[[], str],
        pdf: Callable[[], bytes] | None = None,
    ) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
            raise SpecError(f"a figure's name is letters, digits and hyphens, found {name!r}")
        self.name, self.title, self.caption = name, title, caption
        self._svg, self._pdf = svg, pdf

    @functools.cached_property
    def svg(self) -> str:
        return self._svg if isinstance(self._svg, str) else self._svg()

    @functools.cached_property
    def pdf(self) -> bytes:
        return self._pdf() if self._pdf is not None else svg_to_pdf(self.svg)

    def __repr__(self) -> str:
        return f"Figure({self.name!r}, {self.title!r})"


def slug(text: str) -> str:
    """A figure's file name from an id: ``attention.multi_head`` → ``attention-multi-head``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def dataflow_figure(eq_id: str) -> Figure:
    """The data-flow figure of a catalogue equation, drawn by Graphviz when first asked for."""
    return Figure(
        slug(eq_id),
        "Data flow",
        f"Data flow of {eq_id}: each symbol a block shaped by its space at the example sizes stated in the "
        "figure, filled by its role (input, parameter, intermediate, output).",
        lambda: figure_for(eq_id, "svg"),
        lambda: figure_for(eq_id, "pdf"),
    )


def concept_figure(eq_id: str, figure: object) -> Figure:
    """A concept figure (anything with ``name``, ``title``, ``caption`` and ``svg``, as verify/figures'
    Figure) as a figure of the document, named after its equation."""
    return Figure(f"{slug(eq_id)}--{slug(figure.name)}", figure.title, figure.caption, figure.svg)
