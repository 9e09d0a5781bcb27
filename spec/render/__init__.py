"""Rendering the catalogue as a document: LaTeX (and PDF), Markdown, HTML.

document.py holds the model every format shows (``document()``: sections, entries, values); tex.py and
web.py write it, each standing on document.py (and web.py on tex.py's line breaking); text.py turns the
catalogue's plain-text notes into each format. This face picks the writer for a format: ``render``.
"""

from collections.abc import Iterable, Mapping, Sequence

from .._errors import SpecError
from . import document as document
from . import tex as tex
from . import web as web
from .document import FORMATS as FORMATS
from .document import Configuration as Configuration
from .document import Document as Document
from .document import figure_files as figure_files
from .document import roles as roles
from .figures import INSTALL_RSVG as INSTALL_RSVG
from .figures import Figure as Figure
from .figures import FigureError as FigureError
from .tex import INSTALL as INSTALL
from .tex import RenderError as RenderError
from .tex import pdf as pdf
from .web import html as html
from .web import markdown as markdown


def render(
    fmt: str,
    selection: Iterable[str] | None = None,
    configurations: Sequence[Configuration] = (),
    figures: bool = False,
    concepts: Mapping[str, Sequence[object]] | None = None,
) -> str:
    """The document as text in ``fmt`` (tex, md or html); a PDF is ``pdf(render("tex", …), path)``. With
    ``figures``, each equation's data-flow figure and the ``concepts`` figures of its id are shown (inline SVG
    in HTML; in Markdown and LaTeX files under figures/, which ``document.figure_files`` gives)."""
    if fmt == "pdf":
        raise SpecError("a PDF is written to a file: pdf(render('tex', ...), path)")
    if fmt not in FORMATS:
        raise SpecError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    doc = document.document(selection, configurations, figures, concepts)
    if fmt == "tex":
        return tex.tex(doc)
    return markdown(doc) if fmt == "md" else html(doc)
