"""The catalogue: the families of the tutorial in its order, each a module of spec/ that registers its
equations when imported, and the ways to read them (``get``, ``all``, ``families``, ``select``).

The catalogue stands above the family modules: it imports them by name on first use (so that importing
``lmspec.spec`` builds no equation), and none of them imports it back.
"""

import difflib
import importlib
from collections.abc import Iterable
from types import ModuleType

from ._errors import UnknownEquation
from .aliases import ALIASES, resolve
from .equation import Equation
from .registry import lookup, registered

#: The families of the catalogue in the tutorial's order; each is a module of spec/.
FAMILIES: tuple[str, ...] = (
    "lm",
    "ffnn",
    "rnn",
    "lstm",
    "gru",
    "positional",
    "attention",
    "activation",
    "norm",
    "transformer",
    "gpt2",
    "bert",
    "vit",
    "timeseries",
    "training",
    "params",
)

_LOADED = False


def family_module(family: str) -> ModuleType:
    """The module of spec/ that holds ``family`` (importing it registers the family's equations)."""
    if family not in FAMILIES:
        raise UnknownEquation(f"unknown equation family {family!r}; the families are {', '.join(FAMILIES)}")
    return importlib.import_module(f".{family}", __package__)


def load() -> None:
    """Import every family module once, so that every equation of the catalogue is registered."""
    global _LOADED
    if not _LOADED:
        for family in FAMILIES:
            family_module(family)
        _LOADED = True


def get(id: str) -> Equation:  # noqa: A002
    """The equation ``family.name``, or ``family.name[variant]`` for a named variant, or an alias of either
    (spec.aliases: ``gpt2.block``).

    Only its family's module is imported (with the families it builds on), not the whole catalogue: an
    audit of one attention function builds the attention family's equations, not all sixteen families'.
    An id outside the catalogue's families loads them all, so that the error is the catalogue's."""
    id = resolve(id)  # noqa: A001 - an alias ("gpt2.block") names a catalogue id (spec.aliases)
    family = id.partition(".")[0]
    if _LOADED or family not in FAMILIES:
        load()
    else:
        family_module(family)
    try:
        return lookup(id)
    except UnknownEquation as exc:
        if "[" in id or not str(exc).startswith("unknown equation"):
            raise
        load()  # the names to suggest are the whole catalogue's
        if id in FAMILIES:
            names = ", ".join(e.id for e in registered() if e.family == id)
            raise UnknownEquation(f"unknown equation {id!r}; {id} is a family, of {names}") from None
        names = [e.id for e in registered()] + list(FAMILIES) + list(ALIASES)
        near = difflib.get_close_matches(id, names, n=3, cutoff=0.6)
        if not near:
            raise
        raise UnknownEquation(
            f"unknown equation {id!r}; did you mean {' or '.join(near)}? (`lmspec list` shows the catalogue)"
        ) from None


def all() -> list[Equation]:  # noqa: A001
    """Every equation of the catalogue, in the tutorial's order."""
    load()
    order = {f: i for i, f in enumerate(FAMILIES)}
    return sorted(registered(), key=lambda e: order[e.family])


def families() -> dict[str, list[Equation]]:
    """The equations of each family, the families in the tutorial's order."""
    out: dict[str, list[Equation]] = {f: [] for f in FAMILIES}
    for eq in all():
        out[eq.family].append(eq)
    return out


def select(names: Iterable[str]) -> list[Equation]:
    """Equations named by ids or family names; an unknown name is an UnknownEquation."""
    load()
    chosen: list[Equation] = []
    for name in names:
        if name in FAMILIES:
            chosen.extend(families()[name])
        else:
            chosen.append(get(name))
    return chosen
