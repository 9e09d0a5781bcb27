"""The registry of built-in audit targets: what a built-in is (``Builtin``), the decorator that registers one
(``builtin``), and the pin most of the attention built-ins share (``causal_pin``).

Two declarations are open to built-ins only, because a built-in's reason is documented in its description
and tested on the library itself (a user's own target cannot make them: ``audit`` takes no such option):

- ``precision="float32"`` with ``precision_reason``: the library computes in that dtype whatever its inputs'
  dtype (transformers' ``ForCausalLMLoss`` takes ``logits.float()``). The audit still draws float64 inputs
  and passes them, but compares at that dtype's tolerance (``verify.compare.POLICY``) and says so in a note;
- ``no_gradient="why"``: the library gives no gradient by design (``GenerationMixin.generate`` runs under
  ``@torch.no_grad()``). The gradient check is reported as skipped with that reason. A target that merely
  returns no gradient without declaring it still fails the check.

The modules that register built-ins (torch_*.py, hf_*.py) import this one; the face (``__init__``) imports
them on first use. Nothing here imports torch or transformers.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

#: The dtypes a built-in may declare it computes in (``verify.compare.POLICY``'s keys; kept here so that the
#: registry imports nothing of the verifier).
PRECISIONS = ("float32", "float16", "bfloat16")


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
    #: the dtype the target computes in whatever its inputs' dtype: compared at that dtype's tolerance
    precision: str | None = None
    precision_reason: str | None = None  # why (what in the library casts), for the report's note
    #: why the target gives no gradient by design: the gradient check is skipped with this reason
    no_gradient: str | None = None

    def __post_init__(self) -> None:
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ValueError(
                f"built-in {self.name!r}: precision={self.precision!r}, expected one of "
                f"{', '.join(PRECISIONS)}"
            )
        if (self.precision is None) != (not self.precision_reason):
            raise ValueError(
                f"built-in {self.name!r}: precision and precision_reason go together (the report says "
                f"why the target computes in {self.precision or 'that dtype'}); found "
                f"precision={self.precision!r}, precision_reason={self.precision_reason!r}"
            )
        if self.no_gradient is not None and not self.no_gradient.strip():
            raise ValueError(f"built-in {self.name!r}: no_gradient must say why the target gives none")


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
    precision: str | None = None,
    precision_reason: str | None = None,
    no_gradient: str | None = None,
) -> Callable[[Callable[[], Callable]], Callable[[], Callable]]:
    """Register the decorated zero-argument factory as the built-in target ``name`` (``precision`` and
    ``no_gradient``: the module docstring)."""

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
            precision,
            precision_reason,
            no_gradient,
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


__all__ = ["BUILTINS", "PRECISIONS", "Builtin", "builtin", "causal_pin", "no_mask_pin"]
