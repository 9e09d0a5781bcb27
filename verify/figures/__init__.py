"""Concept figures of the tutorial, computed by lmspec itself (so that they cannot disagree with the spec).

    from lmspec.verify.figures import concept_figures
    figs = concept_figures()                        # {equation id: [Figure, …]}
    svg = figs["attention.causal_mask"][0].svg      # a standalone SVG document
    concept_figures(["lm.top_k"])                   # only the figures of some ids
    cached_concept_figures()                        # the same, kept on disk until lmspec's code changes
    wait = cached_concept_figures_ahead(jobs=2)     # … computed in 2 forked processes; wait() gives them

A ``Figure`` has ``name``, ``title``, ``svg`` (text), ``caption`` and ``sizes`` (the example's). Every number
drawn sits in a ``data-value`` attribute; ``read_values(svg, panel)`` reads a panel back as an array.

The modules: ``_svg`` (colour scales, heat maps, bars, legends; no plotting library), ``_unrolled`` (a
recurrence over time as a data-flow picture), ``_gpt2`` (impl's GPT-2 attention weights, in NumPy),
``concepts`` (the figures, from the equations' exact oracles), ``_cache`` (kept on disk). The face is lazy
(PEP 562): importing it loads nothing heavy.
"""

import importlib
from typing import TYPE_CHECKING, Any

_LAZY: dict[str, tuple[str, str]] = {
    "concept_figures": (".concepts", "concept_figures"),
    "cached_concept_figures": ("._cache", "cached_concept_figures"),
    "cached_concept_figures_ahead": ("._cache", "cached_concept_figures_ahead"),
    "CONCEPTS": (".concepts", "CONCEPTS"),
    "Figure": ("._svg", "Figure"),
    "read_values": ("._svg", "read_values"),
    "panels": ("._svg", "panels"),
}

__all__ = list(_LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from ._cache import cached_concept_figures as cached_concept_figures
    from ._cache import cached_concept_figures_ahead as cached_concept_figures_ahead
    from ._svg import Figure as Figure
    from ._svg import panels as panels
    from ._svg import read_values as read_values
    from .concepts import CONCEPTS as CONCEPTS
    from .concepts import concept_figures as concept_figures


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, __name__), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
