"""The audit: holds anyone's implementation (a function or module, torch.nn, Hugging Face) to an equation.

    from lmspec.verify.audit import audit
    audit("torch.nn.LayerNorm")  # a built-in (lmspec audit --list), against its registered equation
    audit("mypkg.attn:attention", "attention.scaled_dot_product", layout="q=b n d_k, … -> b n d_v")

Its modules, from the bottom up: report (what an audit says, as JSON and JUnit XML) and html (as a page);
adapters (the built-in targets, one module per library and model); pattern and layout (layout strings);
targets (a function or module bound to an equation); checks (the audit's own checks beside the verifier's);
context (one target held to one equation); diagnosis (which variant it matches instead); loading (a target
by name); auditor (``audit`` itself).

The face is lazy (PEP 562): importing it loads neither torch nor SymPy. Each name is looked up in the module
that defines it whenever it is used, not copied here, so a test that patches ``auditor.audit`` patches
``audit`` too.
"""

import importlib
from typing import TYPE_CHECKING, Any

#: name -> (module relative to this package, attribute)
_LAZY: dict[str, tuple[str, str]] = {
    "audit": (".auditor", "audit"),
    "DTYPES": (".auditor", "DTYPES"),
    "AuditError": (".._errors", "AuditError"),
    "load": (".loading", "load"),
    "AuditReport": (".report", "AuditReport"),
    "AuditCheck": (".report", "AuditCheck"),
    "VariantTrial": (".report", "VariantTrial"),
    "Heatmap": (".report", "Heatmap"),
    "VERDICTS": (".report", "VERDICTS"),
    "to_json": (".report", "to_json"),
    "to_junit": (".report", "to_junit"),
    "to_html": (".html", "to_html"),
    "write_html": (".html", "write_html"),
    "Builtin": (".adapters", "Builtin"),
    "builtins": (".adapters", "builtins"),
    "causal_pin": (".adapters", "causal_pin"),
    "mapping_markdown": (".adapters", "mapping_markdown"),
}

__all__ = list(_LAZY)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .._errors import AuditError as AuditError
    from .adapters import Builtin as Builtin
    from .adapters import builtins as builtins
    from .adapters import causal_pin as causal_pin
    from .adapters import mapping_markdown as mapping_markdown
    from .auditor import DTYPES as DTYPES
    from .auditor import audit as audit
    from .html import to_html as to_html
    from .html import write_html as write_html
    from .loading import load as load
    from .report import VERDICTS as VERDICTS
    from .report import AuditCheck as AuditCheck
    from .report import AuditReport as AuditReport
    from .report import Heatmap as Heatmap
    from .report import VariantTrial as VariantTrial
    from .report import to_json as to_json
    from .report import to_junit as to_junit


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    return getattr(importlib.import_module(module, __name__), attr)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
