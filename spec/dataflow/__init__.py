"""Data-flow figures of the equations, made from their specs and laid out by Graphviz.

Below the catalogue (spec/equation.py's ``_repr_svg_`` draws with it); the renderers reach a figure by id
through spec/render/figures.py (``figure_for``).

Every symbol an equation declares is a **block** whose width and height follow its symbolic shape at an
example size (``H ∈ ℝ^(d_e×n)`` is d_e entries high and n wide: tokens are columns; attention's
``Q^(m) ∈ ℝ^(n×d_k)`` is in row form, n high), filled by its role (input, parameter, intermediate, output)
and labelled with the symbol and its space, as ``lmspec show`` prints it. A per-head or per-layer family
(``W_Q^(m)``, m = 1..M) is a stack of sheets. Each defining line ``lhs := rhs`` becomes the **steps** of its
right-hand side (matmul, +, ⊙, softmax, LN, …) between the blocks it reads and the block it defines; an
equation that calls another (a block calls ``attention.multi_head`` and ``transformer.ffn``) shows the call
as a labelled box. The caption states the example sizes.

``dataflow_dot`` writes the DOT text (pure Python: graph.py, with the blocks and sizes of blocks.py);
``dataflow_svg`` and ``dataflow_pdf`` call the ``dot`` program (graphviz.py) once per figure
(``render_many`` draws a document's figures in one run), and keep what it made by the DOT text's digest,
in memory and on disk (``$LMSPEC_CACHE_DIR/figures-v1``, as the verifier's cache; ``LMSPEC_NO_CACHE=1``
bypasses it): a figure is drawn again only when its equation (or this drawing code) changes what the figure
says.
"""

import os
from collections.abc import Mapping
from pathlib import Path

from .blocks import EXAMPLE_SIZES as EXAMPLE_SIZES
from .blocks import ROLE_FILLS as ROLE_FILLS
from .blocks import example_sizes as example_sizes
from .graph import STEP_NAMES as STEP_NAMES
from .graph import dataflow_dot as dataflow_dot
from .graphviz import CACHE_FORMAT as CACHE_FORMAT
from .graphviz import INSTALL_DOT as INSTALL_DOT
from .graphviz import FigureError as FigureError
from .graphviz import render_dot as render_dot
from .graphviz import render_many as render_many


def dataflow_svg(eq, sizes: Mapping[str, int] | None = None) -> str:
    """The figure of ``eq`` as SVG text (one ``dot`` run, cached)."""
    return render_dot(dataflow_dot(eq, sizes), "svg").decode("utf-8")


def dataflow_pdf(eq, path: str | os.PathLike, sizes: Mapping[str, int] | None = None) -> Path:
    """Write the figure of ``eq`` as a PDF to ``path`` (one ``dot`` run, cached) and return the path."""
    out = Path(path)
    out.write_bytes(render_dot(dataflow_dot(eq, sizes), "pdf"))
    return out
