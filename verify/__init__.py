"""lmspec's verifier: holds implementations to the spec.

Two error families: ``SpecError`` (a malformed spec, annotation or request; ``BindingError`` is one) and
``Mismatch`` (an implementation disagrees with the spec: ``ShapeMismatch``, ``ValueMismatch``,
``PropertyViolation``).

The face is lazy (PEP 562): importing ``lmspec.verify`` or one of its wings (the command line, the pytest
plugin) costs nothing until a name below is used.
"""

import importlib
from typing import TYPE_CHECKING, Any

_LAZY: dict[str, tuple[str, str]] = {
    "SpecError": ("..spec._errors", "SpecError"),
    "BindingError": ("._errors", "BindingError"),
    "Mismatch": ("._errors", "Mismatch"),
    "PropertyViolation": ("._errors", "PropertyViolation"),
    "ShapeMismatch": ("._errors", "ShapeMismatch"),
    "ValueMismatch": ("._errors", "ValueMismatch"),
    "PROFILES": (".runner", "PROFILES"),
    "CheckResult": (".runner", "CheckResult"),
    "verify": (".runner", "verify"),
}

__all__ = list(_LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from ..spec._errors import SpecError as SpecError
    from ._errors import BindingError as BindingError
    from ._errors import Mismatch as Mismatch
    from ._errors import PropertyViolation as PropertyViolation
    from ._errors import ShapeMismatch as ShapeMismatch
    from ._errors import ValueMismatch as ValueMismatch
    from .runner import PROFILES as PROFILES
    from .runner import CheckResult as CheckResult
    from .runner import verify as verify


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, __name__), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
