"""Rendering the catalogue as a document: LaTeX (and PDF), Markdown, HTML.

document.py holds the model every format shows (``document()``: sections, entries, values); tex.py and
web.py write it, each standing on document.py (and web.py on tex.py's line breaking); text.py turns the
catalogue's plain-text notes into each format. This face picks the writer for a format: ``render``.
"""

from collections.abc import Iterable, Sequence

from .._errors import SpecError
from . import document as document
from . import tex as tex
from .document import FORMATS as FORMATS
from .document import Configuration as Configuration
from .document import Document as Document
from .document import roles as roles
from .tex import INSTALL as INSTALL
from .tex import RenderError as RenderError
from .tex import pdf as pdf
from .web import html as html
from .web import markdown as markdown


def render(
    fmt: str, selection: Iterable[str] | None = None, configurations: Sequence[Configuration] = ()
) -> str:
    """The document as text in ``fmt`` (tex, md or html); a PDF is ``pdf(render("tex", …), path)``."""
    if fmt == "pdf":
        raise SpecError("a PDF is written to a file: pdf(render('tex', ...), path)")
    if fmt not in FORMATS:
        raise SpecError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    doc = document.document(selection, configurations)
    if fmt == "tex":
        return tex.tex(doc)
    return markdown(doc) if fmt == "md" else html(doc)
