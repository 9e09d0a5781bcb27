"""lmspec: the equations of "Anatomy of Neural Language Models" (Saleh & Paquelet, 2024) as an executable,
shape-checked specification, and a verifier that holds PyTorch code to it.

One import package with three parts, each imported on first use (``import lmspec`` itself is instant):

- ``lmspec.spec``   the math: every equation in SymPy, with typed symbolic shapes (imports SymPy only);
- ``lmspec.impl``   the code: idiomatic PyTorch, annotated with jaxtyping (imports torch only);
- ``lmspec.verify`` the bridge: oracles, generated code, properties, the audit of other people's code.

The faces most people need are re-exported here: ``lmspec.get("attention.scaled_dot_product")``,
``lmspec.audit(target, "attention.multi_head", ...)``, ``lmspec.verify_equations([...])``.
"""

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__

#: name -> (module, attribute): imported on first access (PEP 562), so that ``import lmspec`` and the
#: ``lmspec --help`` path load neither torch nor SymPy.
_LAZY: dict[str, tuple[str, str | None]] = {
    "spec": ("lmspec.spec", None),
    "impl": ("lmspec.impl", None),
    "verify": ("lmspec.verify", None),
    "get": ("lmspec.spec", "get"),
    "Equation": ("lmspec.spec", "Equation"),
    "SpecError": ("lmspec.spec", "SpecError"),
    "audit": ("lmspec.verify.audit", "audit"),
    "AuditReport": ("lmspec.verify.audit", "AuditReport"),
    "verify_equations": ("lmspec.verify", "verify"),
    "Mismatch": ("lmspec.verify", "Mismatch"),
    "ShapeMismatch": ("lmspec.verify", "ShapeMismatch"),
    "ValueMismatch": ("lmspec.verify", "ValueMismatch"),
    "PropertyViolation": ("lmspec.verify", "PropertyViolation"),
    "BindingError": ("lmspec.verify", "BindingError"),
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from . import impl as impl
    from . import spec as spec
    from . import verify as verify
    from .spec import Equation as Equation
    from .spec import SpecError as SpecError
    from .spec import get as get
    from .verify import BindingError as BindingError
    from .verify import Mismatch as Mismatch
    from .verify import PropertyViolation as PropertyViolation
    from .verify import ShapeMismatch as ShapeMismatch
    from .verify import ValueMismatch as ValueMismatch
    from .verify import verify as verify_equations  # noqa: F401 - re-exported under another name
    from .verify.audit import AuditReport as AuditReport
    from .verify.audit import audit as audit


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'lmspec' has no attribute {name!r}") from None
    value = importlib.import_module(module)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
