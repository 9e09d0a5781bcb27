"""What the audit and its diagnosis share: one target held to one equation under fixed options.

``AuditContext`` keeps what the user asked for (layout, mask convention, parameter paths, the constants,
sizes, ties and pins the target fixes, dtype, device, profile, seed) and binds the target to the equation or
to one of its variants (``target_for``), with the setting its checks run in (``setting_for``).
``inapplicable`` says why a property cannot be run on a target that fixes some of its inputs.

A built-in may declare the dtype it computes in whatever its inputs' (``precision``, with its reason) and
that it gives no gradient by design (``no_gradient``): audit.adapters._registry. The context carries both;
``tolerance`` says which dtype's tolerance the checks then use.
"""

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from ...spec import Equation, Kind, SpecError
from .._errors import BindingError
from ..binding import is_key_mask
from ..compare import POLICY, Tolerance
from ..runner import Profile, Setting
from ..strategies import COMPOSITE, SMALL, is_composite, size_tuples
from . import losses
from .adapters import causal_pin, no_mask_pin
from .losses import Labels
from .pattern import PatternLayout
from .targets import BoundTarget, ModuleTarget, all_spec_params_taken, make_target, target_batches

#: Sizes above this are beyond the exact oracle (its straight-line program grows with the sizes).
ORACLE_LIMIT = max(SMALL[1], COMPOSITE[1])


#: The batches a pooled target is checked on: a pooling bug (a mean of means) shows only across sequences.
POOLED_BATCHES = ((2,), (3,))


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
    #: spec parameters the module does not have, stated by the user (--absent): held at 0 in the reference
    absent: tuple[str, ...] = ()
    #: how a loss takes its labels and pools its batch (--labels shift, --ignore-index, --pool)
    labels: Labels = field(default_factory=Labels)
    #: the target returns logits where the equation's output is a distribution (--logits)
    logits: bool = False
    #: a built-in's declared precision (the dtype it computes in whatever its inputs') and why
    precision: str | None = None
    precision_reason: str | None = None
    #: a built-in's declared reason for giving no gradient (the gradient check is skipped with it)
    no_gradient: str | None = None
    tol: Tolerance = field(init=False)
    #: the profile with at least three size tuples: past the n = 1 and M = 1 edge cases, one where heads
    #: and tokens interact
    wide: Profile = field(init=False)

    def __post_init__(self) -> None:
        self.tol = POLICY[tolerance(self.dtype, self.precision)]
        self.wide = dataclasses.replace(self.profile, oracle_sizes=max(3, self.profile.oracle_sizes))

    def compared_at(self) -> str | None:
        """The declared precision whose tolerance the checks use instead of the audit's dtype's, or None
        where the audit's own dtype decides (no declaration, or a dtype as coarse as the declared one)."""
        chosen = tolerance(self.dtype, self.precision)
        return chosen if chosen != self.dtype else None

    def missing_ok(self, eq: Equation) -> set[str]:
        """Spec symbols the target may leave out: those it fixes itself (pins, constants)."""
        scalars = {d.ascii for d in eq.params if d.is_scalar and d.ascii in self.constants}
        eps = {d.ascii for d in eq.params if d.ascii == "eps"}
        absent = {a for a in self.absent if has(eq, a)}
        return set(self.pins) | scalars | eps | absent | losses.missing_ok(eq, self.labels)

    def target_for(self, eq: Equation, mask: str | None) -> BoundTarget:
        """The target bound to ``eq`` (the equation or a variant), with the mask convention ``mask``. A
        variant whose own constraints cannot meet the audit's ties (``[no_output_projection]``'s
        d_e = M·d_v beside heads as wide as the model) cannot be bound: a BindingError."""
        try:
            target = self._make(eq, mask)
        except SpecError as exc:
            if eq.variant_of is None:
                raise
            raise BindingError(str(exc)) from None
        if isinstance(target, ModuleTarget):  # built, its parameters mapped, then the spec's all taken
            sizes = self.first_sizes(eq)
            target._check_params(target._instance(sizes), sizes)
            all_spec_params_taken(target, self.missing_ok(eq))
        source = losses.label_source(eq, self.labels)
        if source is not None:  # the label argument gets ids built from k and κ
            _mark(target, "args", {losses.tokens_of(eq)}, source=source)
        if self.logits:  # read back through the softmax the equation's distribution includes
            _mark(
                target,
                "outputs",
                {o.ascii for o in eq.outputs if o.entry_kind == Kind.PROBABILITY},
                logits=True,
            )
        if self.labels.pool is not None:  # one value for the batch: its results carry no batch axes
            _mark(target, "outputs", {o.ascii for o in eq.outputs}, pooled=True)
        return target

    def _make(self, eq: Equation, mask: str | None) -> BoundTarget:
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
            first_sizes=self.first_sizes(eq) if self.init is not None else None,  # (a factory's)
        )

    def first_sizes(self, eq: Equation) -> dict[str, int]:
        """The first size tuple the checks of ``eq`` use (where a factory is first called)."""
        pool = size_tuples(
            eq, self.wide.oracle_sizes, self.seed, "small", fixed=self.sizes, derive=self.derive
        )
        return dict(pool[0])

    def setting_for(self, eq: Equation, target: BoundTarget, extra: Mapping[str, object] = ()) -> Setting:
        """What the checks of ``eq`` hold fixed for this target: its pins and constants (and ``extra``), its
        sizes and ties, its batch shapes, the dtype's tolerance."""
        pins = {k: v for k, v in self.pins.items() if has(eq, k)}
        pins.update({k: v for k, v in self.constants.items() if has(eq, k)})
        pins.update({k: 0.0 for k in self.absent if has(eq, k)})
        pins.update(dict(extra))
        sizes = {k: v for k, v in self.sizes.items()}
        padding = tuple(
            lay.name for lay in target.binding.args if is_key_mask(getattr(lay, "convention", None))
        )
        lengths = tuple(
            lay.name for lay in target.binding.args if getattr(lay, "convention", None) == "key_lengths"
        )
        return Setting(
            pins,
            sizes,
            dict(self.derive),
            target_batches(target) if self.labels.pool is None else POOLED_BATCHES,
            self.tol,
            padding=padding,
            lengths=lengths,
            transform=losses.transform(eq, self.labels),
            expect=losses.expect(eq, self.labels.pool),
        )

    def oracle_reachable(self) -> bool:
        """Whether the target's fixed sizes are within the exact oracle's reach."""
        limit = ORACLE_LIMIT if not is_composite(self.eq) else COMPOSITE[1]
        return all(v <= max(limit, 7) for v in self.sizes.values())


def tolerance(dtype: str, precision: str | None) -> str:
    """The dtype whose tolerance (``POLICY``) an audit at ``dtype`` of a target that computes in
    ``precision`` whatever its inputs' dtype uses: the coarser of the two. The references stay float64 and
    the inputs stay ``dtype``; only the comparison widens, never beyond what the declared dtype's rounding
    needs, and never narrows (a float32 precision does not tighten a bfloat16 audit)."""
    if precision is None:
        return dtype
    if precision not in POLICY:
        raise ValueError(f"declared precision {precision!r}: expected one of {', '.join(POLICY)}")
    coarser = POLICY[precision].rtol > POLICY[dtype].rtol
    return precision if coarser else dtype


def _mark(target: BoundTarget, side: str, names: set, **changes) -> None:
    """Set ``changes`` on the layouts of ``side`` (``args`` or ``outputs``) of the target's binding that lay
    out one of ``names`` (layout strings' layouts: audit.pattern)."""
    laid = getattr(target.binding, side)
    changed = tuple(
        dataclasses.replace(lay, **changes) if isinstance(lay, PatternLayout) and lay.name in names else lay
        for lay in laid
    )
    target.binding = dataclasses.replace(target.binding, **{side: changed})


def has(eq: Equation, name: str) -> bool:
    """Whether ``name`` is one of the equation's inputs or parameters."""
    return any(d.ascii == name for d in (*eq.inputs, *eq.params))


def takes(target: BoundTarget, name: str) -> bool:
    """Whether the bound target takes the spec symbol ``name`` as an argument."""
    return any(lay.name == name for lay in target.binding.args)


def inapplicable(eq: Equation, prop: str, setting: Setting, target: BoundTarget | None = None) -> str:
    """Why a property does not apply to a target that fixes some inputs (it would vary them), or that does
    not return an output the property reads."""
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
    if target is not None and getattr(target, "partial_outputs", False):
        returned = {lay.name for lay in target.binding.outputs if lay.name}
        unread = [o.ascii for o in eq.outputs if f"'{o.ascii}'" in text and o.ascii not in returned]
        if unread:
            return f"it reads {', '.join(unread)}, which the target does not return"
    if getattr(setting.transform, "shifts", False) and prop in _REORDERS:
        return (
            "the target shifts its labels inside: its last position is never predicted, and reordering the "
            "positions would move it"
        )
    pooled = target is not None and any(getattr(o, "pooled", False) for o in target.binding.outputs)
    if pooled and prop not in _POOLED_OK:
        return "it reads one value per sequence; the target pools the batch into one"
    per_key = [k for k in setting.padding if prop == "causal" and options.get("mask") == k]
    if per_key:
        return (
            f"the target takes {', '.join(per_key)} as a per-key (padding) mask, which cannot hold the "
            "causal mask this property sets"
        )
    return ""


#: Properties that reorder the positions of a sequence (they cannot hold a shift's unpredicted last one).
_REORDERS = ("permutation_equivariance", "perplexity_pools_tokens")

#: Properties that compare a target's outputs on two examples as they are: they hold for a pooled value too.
_POOLED_OK = ("ignores_padding",)

#: Properties that set the mask to none (S = 0) themselves: they apply to a target that attends everywhere.
_UNMASKED = ("permutation_equivariance", "kv_permutation_invariance")


def _sets_as_pinned(prop: str, options, name: str, pin) -> bool:
    """Whether the property sets the pinned input to the very value the target fixes (the causal property
    runs with the causal mask, which is what an ``is_causal=True`` target uses; the permutation properties
    run unmasked, which is what a target without a mask does)."""
    if options.get("mask") != name:
        return False
    return (prop == "causal" and pin is causal_pin) or (prop in _UNMASKED and pin is no_mask_pin)


__all__ = ["ORACLE_LIMIT", "AuditContext", "has", "inapplicable", "takes", "tolerance"]
