"""What the audit and its diagnosis share: one target held to one equation under fixed options.

``AuditContext`` keeps what the user asked for (layout, mask convention, parameter paths, the constants,
sizes, ties and pins the target fixes, dtype, device, profile, seed) and binds the target to the equation or
to one of its variants (``target_for``), with the setting its checks run in (``setting_for``).
``inapplicable`` says why a property cannot be run on a target that fixes some of its inputs.
"""

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from ...spec import Equation
from ..binding import is_key_mask
from ..compare import POLICY, Tolerance
from ..runner import Profile, Setting
from ..strategies import COMPOSITE, SMALL, is_composite
from .adapters import causal_pin, no_mask_pin
from .targets import BoundTarget, make_target, target_batches

#: Sizes above this are beyond the exact oracle (its straight-line program grows with the sizes).
ORACLE_LIMIT = max(SMALL[1], COMPOSITE[1])


@dataclass(eq=False)
class AuditContext:
    """One audit's fixed options, and the binding of its target to the equation or a variant of it."""

    eq: Equation  # the equation the target is held to
    obj: object  # the function or module audited (a built-in already made)
    label: str  # the target as reports name it
    layout: str | None
    mask: str | None
    init: Mapping | None
    params: Mapping[str, str] | None
    constants: dict[str, float]  # scalar parameters the target fixes (eps)
    sizes: dict[str, int]  # axes the target fixes
    derive: dict[str, str]  # axes the target ties ({"d_e": "M*d_k"})
    pins: dict[str, object]  # inputs the target fixes (the causal mask of is_causal=True)
    torch_dtype: torch.dtype
    device: str
    dtype: str
    profile: Profile
    seed: int
    tol: Tolerance = field(init=False)
    #: the profile with at least three size tuples: past the n = 1 and M = 1 edge cases, one where heads
    #: and tokens interact
    wide: Profile = field(init=False)

    def __post_init__(self) -> None:
        self.tol = POLICY[self.dtype]
        self.wide = dataclasses.replace(self.profile, oracle_sizes=max(3, self.profile.oracle_sizes))

    def missing_ok(self, eq: Equation) -> set[str]:
        """Spec symbols the target may leave out: those it fixes itself (pins, constants)."""
        scalars = {d.ascii for d in eq.params if d.is_scalar and d.ascii in self.constants}
        return set(self.pins) | scalars | ({d.ascii for d in eq.params if d.ascii == "eps"})

    def target_for(self, eq: Equation, mask: str | None) -> BoundTarget:
        """The target bound to ``eq`` (the equation or a variant), with the mask convention ``mask``."""
        return make_target(
            self.obj,
            eq,
            name=self.label,
            layout=self.layout,
            mask=mask,
            init=self.init,
            params=self.params,
            missing_ok=self.missing_ok(eq),
            dtype=self.torch_dtype,
            device=self.device,
        )

    def setting_for(self, eq: Equation, target: BoundTarget, extra: Mapping[str, object] = ()) -> Setting:
        """What the checks of ``eq`` hold fixed for this target: its pins and constants (and ``extra``), its
        sizes and ties, its batch shapes, the dtype's tolerance."""
        pins = {k: v for k, v in self.pins.items() if has(eq, k)}
        pins.update({k: v for k, v in self.constants.items() if has(eq, k)})
        pins.update(dict(extra))
        sizes = {k: v for k, v in self.sizes.items()}
        padding = tuple(
            lay.name for lay in target.binding.args if is_key_mask(getattr(lay, "convention", None))
        )
        return Setting(pins, sizes, dict(self.derive), target_batches(target), self.tol, padding=padding)

    def oracle_reachable(self) -> bool:
        """Whether the target's fixed sizes are within the exact oracle's reach."""
        limit = ORACLE_LIMIT if not is_composite(self.eq) else COMPOSITE[1]
        return all(v <= max(limit, 7) for v in self.sizes.values())


def has(eq: Equation, name: str) -> bool:
    """Whether ``name`` is one of the equation's inputs or parameters."""
    return any(d.ascii == name for d in (*eq.inputs, *eq.params))


def takes(target: BoundTarget, name: str) -> bool:
    """Whether the bound target takes the spec symbol ``name`` as an argument."""
    return any(lay.name == name for lay in target.binding.args)


def inapplicable(eq: Equation, prop: str, setting: Setting) -> str:
    """Why a property does not apply to a target that fixes some inputs (it would vary them)."""
    from ..properties import PROPERTIES, properties_of

    properties_of(eq)  # registers every property module
    options = next((inv.options for inv in eq.invariants if inv.name == prop), {})
    text = repr(options)
    declared = PROPERTIES[prop]
    if declared.resizes and (setting.derive or setting.sizes):
        return "it calls the target at other sizes (one head, the same d_e); the target ties its sizes"
    varied = {options.get(key) for key in declared.varies}
    fixed = [
        k
        for k in setting.pins
        if f"'{k}'" in text
        and (eq.declared(k) in eq.inputs or k in varied)
        and not _sets_as_pinned(prop, options, k, setting.pins[k])
    ]
    if fixed:
        return f"the target fixes {', '.join(fixed)} itself, and this property varies it"
    per_key = [k for k in setting.padding if prop == "causal" and options.get("mask") == k]
    if per_key:
        return (
            f"the target takes {', '.join(per_key)} as a per-key (padding) mask, which cannot hold the "
            "causal mask this property sets"
        )
    return ""


#: Properties that set the mask to none (S = 0) themselves: they apply to a target that attends everywhere.
_UNMASKED = ("permutation_equivariance", "kv_permutation_invariance")


def _sets_as_pinned(prop: str, options, name: str, pin) -> bool:
    """Whether the property sets the pinned input to the very value the target fixes (the causal property
    runs with the causal mask, which is what an ``is_causal=True`` target uses; the permutation properties
    run unmasked, which is what a target without a mask does)."""
    if options.get("mask") != name:
        return False
    return (prop == "causal" and pin is causal_pin) or (prop in _UNMASKED and pin is no_mask_pin)


__all__ = ["ORACLE_LIMIT", "AuditContext", "has", "inapplicable", "takes"]
