"""Named invariants: reusable checks that apply to any target of the equation that declares them.

Each property draws what it needs (a position, a permutation, a perturbation) from Hypothesis, so that a
failure shrinks, and raises PropertyViolation naming itself, the target and the offending entry. Options
come from the equation's ``Invariant`` declaration: which inputs carry tokens on which axis, which input is
the mask, which outputs to compare.

The machinery is ``_base``; each property lives in the module of the family that owns its concept, named
like the family's modules in spec/ and impl/ (an equation of another family may declare it by name).
"""

import importlib

from ...spec import Equation, SpecError
from ._base import PROPERTIES as PROPERTIES
from ._base import Property as Property
from ._base import prop as prop

#: The families whose modules in this package register properties (each with ``@prop``), in the
#: catalogue's order.
PROPERTY_FAMILIES: tuple[str, ...] = (
    "lm",
    "ffnn",
    "rnn",
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


def _load() -> None:
    for family in PROPERTY_FAMILIES:
        importlib.import_module(f".{family}", __package__)


def properties_of(eq: Equation) -> list[tuple[Property, dict]]:
    """The properties ``eq`` declares, each with the options of its declaration (every family module is
    loaded first, so that every property is registered)."""
    _load()
    missing = [inv.name for inv in eq.invariants if inv.name not in PROPERTIES]
    if missing:
        raise SpecError(f"{eq.id} declares unknown properties: {', '.join(missing)}")
    return [(PROPERTIES[inv.name], inv.options) for inv in eq.invariants]
