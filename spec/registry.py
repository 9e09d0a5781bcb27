"""The registry of equations: the store every family module registers its equations into, and lookup by id.

It stands below everything that holds equations: it imports no family module and not even spec/equation.py
(``Registered`` names the little it uses of an Equation), so that an operator that refers to another
equation (``Call`` in spec/ops_nn.py) and the family modules that register can all import it. A family that
builds on another family's equation imports that family's module, which registers it; loading the whole
catalogue in the tutorial's order is spec/catalogue.py's work.
"""

from typing import Any, Protocol, TypeVar

from ._errors import SpecError, UnknownEquation


class Registered(Protocol):
    """What the registry uses of an equation (spec/equation.py's Equation): its id and its variants."""

    id: str

    def variant(self, name: str) -> Any: ...


R = TypeVar("R", bound=Registered)

_EQUATIONS: dict[str, Any] = {}


def register(eq: R) -> R:
    """Add ``eq`` under its id (once) and return it, so that a module can write ``register(build())``."""
    if eq.id in _EQUATIONS:
        raise SpecError(f"equation {eq.id} is registered twice")
    _EQUATIONS[eq.id] = eq
    return eq


def lookup(id: str) -> Any:  # noqa: A002
    """The registered equation ``family.name``, or ``family.name[variant]`` for a named variant."""
    base, _, rest = id.partition("[")
    try:
        eq = _EQUATIONS[base]
    except KeyError:
        raise UnknownEquation(f"unknown equation {base!r}; `lmspec list` shows the catalogue") from None
    if rest:
        if not rest.endswith("]"):
            raise UnknownEquation(f"malformed equation id {id!r}: expected 'family.name[variant]'")
        return eq.variant(rest[:-1])
    return eq


def registered() -> list[Any]:
    """Every equation registered so far, in the order of registration."""
    return list(_EQUATIONS.values())
