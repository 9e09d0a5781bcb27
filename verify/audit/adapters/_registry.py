"""The registry of built-in audit targets: what a built-in is (``Builtin``), the decorator that registers one
(``builtin``), and the pin most of the attention built-ins share (``causal_pin``).

The modules that register built-ins (torch_*.py, hf_*.py) import this one; the face (``__init__``) imports
them on first use. Nothing here imports torch or transformers.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np


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
    layout: str | None = None  # a layout, where the target returns a subset of the outputs (--layout)


#: Every registered built-in, by name, in the order of registration (``lmspec audit --list`` keeps it).
BUILTINS: dict[str, Builtin] = {}


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
    layout: str | None = None,
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
            layout,
        )
        return make

    return register


def causal_pin(sizes: Mapping[str, int]) -> np.ndarray:
    """The spec's causal mask S (0 on and below the diagonal, −∞ above) at the example's n."""
    n = int(sizes["n"])
    return np.where(np.triu(np.ones((n, n), dtype=bool), 1), -np.inf, 0.0)


def no_mask_pin(sizes: Mapping[str, int]) -> np.ndarray:
    """S = 0 everywhere: attention that masks nothing (unmasked self-attention, a ViT block)."""
    return np.zeros(())


__all__ = ["BUILTINS", "Builtin", "builtin", "causal_pin", "no_mask_pin"]
