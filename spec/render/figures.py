"""Figures for the renderers: the data-flow figure of a catalogue equation by id, in the format a document
needs (SVG for HTML and notebooks, PDF for LaTeX, DOT for people who lay it out themselves).

The drawing is spec/dataflow/ (below the catalogue, so that an Equation can draw itself in a notebook);
this module adds the lookup by id, which stands on the catalogue.
"""

from collections.abc import Mapping

from .._errors import SpecError
from ..dataflow import INSTALL_DOT as INSTALL_DOT
from ..dataflow import FigureError as FigureError
from ..dataflow import dataflow_dot, render_dot

#: The formats of ``figure_for``.
FORMATS = ("dot", "svg", "pdf")


def figure_for(eq_id: str, fmt: str, sizes: Mapping[str, int] | None = None) -> str | bytes:
    """The figure of the equation ``eq_id`` (an id, variant or alias ``spec.get`` takes) in ``fmt``: ``dot``
    and ``svg`` as text, ``pdf`` as bytes. An unknown id is an UnknownEquation, a missing or failing
    Graphviz a FigureError; a figure drawn before (same DOT text) costs no ``dot`` run."""
    if fmt not in FORMATS:
        raise SpecError(f"unknown figure format {fmt!r}; choose one of {', '.join(FORMATS)}")
    from ..catalogue import get

    source = dataflow_dot(get(eq_id), sizes)
    if fmt == "dot":
        return source
    data = render_dot(source, fmt)
    return data.decode("utf-8") if fmt == "svg" else data
