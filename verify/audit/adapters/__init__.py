"""Built-in audit targets: torch.nn / torch.nn.functional and Hugging Face transformers.

Each built-in is a factory for a callable written in the spec's glossary names and annotated with jaxtyping,
exactly like impl/: it takes spec-layout tensors (``H: Float[Tensor, "*batch n d_e"]``, ``W_Q: Float[Tensor,
"M d_e d_k"]`` …), builds the third-party module with those weights (on the inputs' device and dtype), calls
it the way its users do, and returns the result. The audit binds it like any other implementation, so
everything the verifier checks applies to it.

``mapping`` writes down how the spec's symbols reach the third-party object (the docs' table is made from
it); ``derive`` ties axes the third-party code cannot keep apart (HF attention has d_e = M·d_k:
``{"d_e": "M*d_k"}``); ``sizes`` fixes axes; ``pins`` are inputs the target fixes itself
(``is_causal=True`` fixes S to the causal mask); ``constants`` are scalar parameters it fixes (``eps``),
used when the audit tries the ``eps`` variants.
"""

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

#: Modules that register built-ins, imported on first use (transformers is slow to import).
MODULES = (".torch_nn", ".hf")


@dataclass(frozen=True)
class Builtin:
    name: str  # what `lmspec audit NAME` takes, e.g. "torch.nn.MultiheadAttention[batch_first]"
    equation: str  # the equation id it is audited against when no --as is given
    make: Callable[[], Callable]  # returns the annotated callable (imports lazily)
    description: str
    mapping: tuple[tuple[str, str], ...]  # (spec symbol, where it goes in the target)
    pins: Mapping[str, Callable[[Mapping[str, int]], np.ndarray]] = field(default_factory=dict)
    constants: Mapping[str, float] = field(default_factory=dict)
    group: str = "torch"  # "torch" or "hf"
    derive: Mapping[str, str] = field(default_factory=dict)  # axes the target ties, e.g. {"d_e": "M*d_k"}
    sizes: Mapping[str, int] = field(default_factory=dict)  # axes the target fixes


BUILTINS: dict[str, Builtin] = {}
_LOADED = False


def builtin(
    name: str,
    equation: str,
    *,
    description: str,
    mapping: Mapping[str, str] | tuple[tuple[str, str], ...],
    pins: Mapping[str, Callable[[Mapping[str, int]], np.ndarray]] | None = None,
    constants: Mapping[str, float] | None = None,
    group: str = "torch",
    derive: Mapping[str, str] | None = None,
    sizes: Mapping[str, int] | None = None,
) -> Callable[[Callable[[], Callable]], Callable[[], Callable]]:
    """Register the decorated zero-argument factory as the built-in target ``name``."""

    def register(make: Callable[[], Callable]) -> Callable[[], Callable]:
        if name in BUILTINS:
            raise ValueError(f"built-in audit target {name!r} is registered twice")
        items = tuple(mapping.items()) if isinstance(mapping, Mapping) else tuple(mapping)
        BUILTINS[name] = Builtin(
            name,
            equation,
            make,
            description,
            items,
            dict(pins or {}),
            dict(constants or {}),
            group,
            dict(derive or {}),
            dict(sizes or {}),
        )
        return make

    return register


def builtins() -> dict[str, Builtin]:
    """Every built-in target, by name (importing the registering modules on first use)."""
    global _LOADED
    if not _LOADED:
        for module in MODULES:
            importlib.import_module(module, __package__)
        _LOADED = True
    return dict(BUILTINS)


def causal_pin(sizes: Mapping[str, int]) -> np.ndarray:
    """The spec's causal mask S (0 on and below the diagonal, −∞ above) at the example's n."""
    n = int(sizes["n"])
    return np.where(np.triu(np.ones((n, n), dtype=bool), 1), -np.inf, 0.0)


__all__ = ["BUILTINS", "Builtin", "builtin", "builtins", "causal_pin"]


def mapping_markdown() -> str:
    """The built-ins' parameter mappings as Markdown (docs/audit.md holds this text; a test keeps it so)."""
    lines = []
    for group, title in (("torch", "torch"), ("hf", "Hugging Face transformers")):
        lines.append(f"### {title}\n")
        for b in builtins().values():
            if b.group != group:
                continue
            lines.append(f"#### `{b.name}` → `{b.equation}`\n")
            lines.append(b.description.strip() + "\n")
            extras = []
            if b.constants:
                extras.append("constants: " + ", ".join(f"{k} = {v:g}" for k, v in b.constants.items()))
            if b.pins:
                extras.append("fixes: " + ", ".join(b.pins))
            if b.derive:
                extras.append("ties sizes: " + ", ".join(f"{k} = {v}" for k, v in b.derive.items()))
            if b.sizes:
                extras.append("fixes sizes: " + ", ".join(f"{k} = {v}" for k, v in b.sizes.items()))
            if extras:
                lines.append("; ".join(extras) + ".\n")
            lines.append("| spec | target |\n|---|---|")
            for spec_name, where in b.mapping:
                lines.append(f"| `{spec_name}` | {where.replace('|', '∣')} |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
