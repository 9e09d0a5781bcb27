"""The diagnosis of a failed audit: which named variant, sibling equation or convention the target matches
instead of the equation as given.

When the base equation's values fail, the audit tries, in order: the equation's root (when the audit was
of a variant), the variant given combined with each other variant it combines with (``no_bias`` and
``scale_sqrt_d_e``), each named variant of the root, the sibling equations (the same parameters in another
arrangement: pre-LN ↔ post-LN) and their variants; then, if none matches and the target reads a boolean
mask, the equation and all of those forms again with the mask's polarity inverted; then, for a masked
equation, the fully-masked-row convention. A form with an ε the target does not fix is tried with the usual
values (``EPS_CANDIDATES``). A form matches when it explains the base checks' own counterexamples, passes a
value check, and every property and the gradient hold under it. When several match, an ε form whose form
without ε matches too is dropped, and more examples separate the rest.
"""

import dataclasses

import numpy as np

from ... import spec
from ...spec import Equation, Kind
from .._errors import AuditError, BindingError, Mismatch
from ..compare import assert_close
from ..oracle import concrete_shape
from ..runner import CheckResult, Setting, checks_for, run_check
from ..strategies import Example
from ..targets import GeneratedTarget, OracleTarget
from .checks import gradient_check
from .context import AuditContext, has, inapplicable, takes
from .report import VariantTrial
from .targets import BoundTarget

#: ε values tried for an ``eps`` variant when the target does not say its own (torch/GPT-2, ViT/TF, BERT).
EPS_CANDIDATES = (1e-5, 1e-6, 1e-8, 1e-12)

#: Equations with the same symbols in another arrangement: a target written as one may compute the other
#: (the pre-LN ↔ post-LN swap).
SIBLINGS = {
    "transformer.block_pre_ln": ("transformer.block_post_ln",),
    "transformer.block_post_ln": ("transformer.block_pre_ln",),
}


#: The other polarity of each boolean mask convention (a keep mask read as an ignore mask, and back).
_FLIPPED = {
    "bool_keep": "bool_ignore",
    "bool_ignore": "bool_keep",
    "key_keep": "key_padding",
    "key_padding": "key_keep",
}


class Diagnosis:
    """The forms a target is tried against once its values fail, in the context of its audit.

    ``witnesses`` are the failed value checks' counterexamples, ``(check name, example)``: a form must
    explain them before its own examples are drawn.
    """

    def __init__(
        self, ctx: AuditContext, witnesses: list[tuple[str, Example]], passed: frozenset = frozenset()
    ) -> None:
        self.ctx = ctx
        self.witnesses = witnesses
        #: (property, its options) that passed on the target in the audit itself: a property is a statement
        #: about the target alone, so under a form with the same options, mask convention and constants its
        #: run would repeat the same examples to the same end, and is not run again
        self.passed = passed
        self._tried: list[tuple] = []
        self._gap: float | None = None

    def run(self, target: BoundTarget | None) -> list[VariantTrial]:
        """Every form tried, in order, each with whether it matches (``target`` is None when the target
        cannot be bound to the equation as given: only the other forms are tried)."""
        trials: list[VariantTrial] = []
        self._tried = []
        polarity = self._flipped_mask(target)
        conventions = [(None, "")] + ([(polarity, "mask polarity inverted")] if polarity else [])
        for conv, conv_name in conventions:
            cands = self._candidates()
            if conv is not None:
                cands = [(conv_name, "convention", self.ctx.eq)] + [
                    (f"{n} + {conv_name}", k, e) for n, k, e in cands
                ]
            for cname, kind, veq in cands:
                mask = conv if conv is not None else self.ctx.mask
                self._tried.append((cname, kind, veq, mask))
                trials.append(self._try(cname, kind, veq, mask))
            if any(t.matched for t in trials):
                break
        if not any(t.matched for t in trials) and self._masks() and not self.ctx.labels:
            trials.append(self._fully_masked_trial(target))
            for cname, kind, veq in self._candidates():  # a variant that differs on fully masked rows too
                if trials[-1].matched or kind != "variant" or cname.startswith("base "):
                    break
                trials.append(self._fully_masked_trial(None, veq, cname))
        if not any(t.matched for t in trials) and self.ctx.labels.pool is not None:
            trials.extend(self._pool_trials())
        distributions = any(o.entry_kind == Kind.PROBABILITY for o in self.ctx.eq.outputs)
        if not any(t.matched for t in trials) and distributions and not self.ctx.logits:
            ctx = dataclasses.replace(self.ctx, logits=True)
            trial = Diagnosis(ctx, self.witnesses)._try(
                "returns logits", "convention", self.ctx.eq, self.ctx.mask
            )
            trials.append(dataclasses.replace(trial, description="the target returns logits (--logits)"))
        return self._separate(trials)

    def _pool_trials(self) -> list[VariantTrial]:
        """The target pools its batch otherwise than stated: each other pooling (audit.losses.POOLS)."""
        from .losses import POOLS

        out = []
        for pool in POOLS:
            if pool == self.ctx.labels.pool:
                continue
            ctx = dataclasses.replace(self.ctx, labels=dataclasses.replace(self.ctx.labels, pool=pool))
            other = Diagnosis(ctx, self.witnesses)
            trial = other._try(f"pooled as {pool}", "convention", self.ctx.eq, self.ctx.mask)
            out.append(dataclasses.replace(trial, description=f"--pool {pool}: {POOLS[pool]}"))
        return out

    def _candidates(self) -> list[tuple[str, str, Equation]]:
        root = spec.get(self.ctx.eq.variant_of) if self.ctx.eq.variant_of else self.ctx.eq
        out = []
        if root is not self.ctx.eq:
            out.append((f"base {root.id}", "variant", root))
            given = self.ctx.eq.variant_name  # audited --as root[given]: its departures combined with others
            for vname in root.variant_names:
                if vname != given and root.combinable(given, vname):
                    out.append((f"{given}+{vname}", "variant", root.variant(f"{given}+{vname}")))
        for vname in root.variant_names:
            v = root.variant(vname)
            if v.id != self.ctx.eq.id:
                out.append((vname, "variant", v))
        for other in SIBLINGS.get(root.id, ()):  # the same parameters in the other arrangement
            sibling = spec.get(other)
            out.append((other, "equation", sibling))
            out.extend((f"{other}[{v}]", "equation", sibling.variant(v)) for v in sibling.variant_names)
        return out

    def _masks(self) -> list[str]:
        return [d.ascii for d in self.ctx.eq.inputs if d.entry_kind in (Kind.ADDITIVE_MASK, Kind.MASK)]

    def _fully_masked_trial(
        self, target: BoundTarget | None, veq: Equation | None = None, variant: str = ""
    ) -> VariantTrial:
        """The fully-masked-row convention: does the target compute the equation (or its ``variant``,
        ``veq``: a ReLU block whose attention also fills masks with −10⁹) everywhere else?"""
        name = f"{variant} + fully masked rows differ" if variant else "fully masked rows differ"
        description = (
            "the target agrees with the equation"
            + (f"'s variant {variant}" if variant else "")
            + " except where a query may attend to nothing (a fully masked row), to which the spec gives "
            "zero weights"
        )
        kind = "variant" if variant else "convention"
        veq = veq or self.ctx.eq
        if variant:
            try:
                target = self.ctx.target_for(veq, self.ctx.mask)
            except (BindingError, AuditError) as exc:
                return VariantTrial(name, kind, description, False, {}, f"cannot bind: {exc}")
        if target is None:
            return VariantTrial(name, kind, description, False, {}, "the target cannot be bound")
        masks = [(m, self.ctx.eq.declared(m).entry_kind == Kind.ADDITIVE_MASK) for m in self._masks()]

        def fully_masked(ex) -> bool:
            for m, additive in masks:
                arr = np.asarray(ex.arrays[m])
                blocked = np.isneginf(arr) if additive else arr <= 0
                if arr.ndim and blocked.all(axis=-1).any():
                    return True
            return False

        consts = {k: v for k, v in self.ctx.constants.items() if has(veq, k)}
        setting = dataclasses.replace(self.ctx.setting_for(veq, target), exclude=fully_masked)
        if variant:  # the base checks' counterexamples without a fully masked row must agree first (cheap)
            saved, self.witnesses = self.witnesses, [w for w in self.witnesses if not fully_masked(w[1])]
            try:
                miss = self._witness_mismatch(veq, target, setting)
            finally:
                self.witnesses = saved
            if miss is not None:
                return VariantTrial(name, kind, description, False, consts, miss, self._gap)
        result = self._value_check(veq, target, setting)
        if not result.passed:
            return VariantTrial(name, kind, description, False, consts, result.message, result.max_abs)
        seen = [ex for _, ex in self.witnesses if fully_masked(ex)]
        if seen:  # the base check's counterexample, with the variant's constants (its ε) pinned
            arrays = {**{k: np.zeros(()) for k in setting.pins}, **seen[0].arrays}
            arrays = setting.pinned(veq, seen[0]._replace(arrays=arrays)).arrays
            got = target(arrays, seen[0].sizes)
            values = np.concatenate([np.ravel(v) for v in got.values()])
            what = "NaN" if np.isnan(values).any() else "finite values, not the spec's zeros"
            description += f"; on them it gives {what}"
        return self._confirm(name, kind, description, veq, target, setting, consts, result)

    def _separate(self, trials: list[VariantTrial]) -> list[VariantTrial]:
        """Several forms matched: drop an ε form whose form without ε matches too (a tried ε of 10⁻¹² is
        invisible), then look harder (more examples) and keep those that still match."""
        names = {t.name for t in trials if t.matched}
        trials = [
            dataclasses.replace(t, matched=False, message=f"{_without_eps(t.name)} matches without an ε")
            if t.matched and "eps" not in self.ctx.constants and _without_eps(t.name) in names - {t.name}
            else t
            for t in trials
        ]
        matched = [t for t in trials if t.matched]
        if len(matched) < 2:
            return trials
        harder = dataclasses.replace(
            self.ctx.wide, examples=max(40, 4 * self.ctx.profile.examples), shrink_examples=0
        )
        by_name = {name: (kind, veq, conv) for name, kind, veq, conv in self._tried}
        out = []
        for t in trials:
            if t.matched and t.name in by_name:
                _, veq, conv = by_name[t.name]
                target = self.ctx.target_for(veq, conv)
                setting = self.ctx.setting_for(veq, target, t.constants)
                result = self._value_check(veq, target, setting, harder)
                if not result.passed:
                    t = dataclasses.replace(t, matched=False, message=f"with more examples: {result.message}")
            out.append(t)
        return out

    def _flipped_mask(self, target: BoundTarget | None) -> str | None:
        conv = self.ctx.mask
        if target is not None:
            laid = (*target.binding.args, *target.binding.outputs)  # a mask taken, or a mask returned
            convs = [lay.convention for lay in laid if getattr(lay, "convention", None)]
            conv = convs[0] if convs else None
            if conv is None and any(getattr(lay, "dtype", "") == "bool" for lay in target.binding.args):
                conv = "bool_keep"
        return _FLIPPED.get(conv or "")

    def _try(self, cname: str, kind: str, veq: Equation, mask: str | None) -> VariantTrial:
        description = veq.description or veq.title
        try:
            target = self.ctx.target_for(veq, mask)
        except (BindingError, AuditError) as exc:
            return VariantTrial(cname, kind, description, False, {}, f"cannot bind: {exc}")
        eps_free = (
            any(d.ascii == "eps" for d in veq.params)
            and "eps" not in self.ctx.constants
            and not takes(target, "eps")
        )
        options = [{"eps": e} for e in EPS_CANDIDATES] if eps_free else [{}]
        last = None
        for extra in options:
            setting = self.ctx.setting_for(veq, target, extra)
            consts = {**{k: v for k, v in self.ctx.constants.items() if has(veq, k)}, **extra}
            miss = self._witness_mismatch(veq, target, setting)
            if miss is not None:
                last = (consts, miss, self._gap)
                continue
            result = self._value_check(veq, target, setting)
            if result.passed:
                same = mask == self.ctx.mask and not extra  # the audit's own setting: its passes stand
                return self._confirm(cname, kind, description, veq, target, setting, consts, result, same)
            last = (consts, result.message, result.max_abs)
        consts, message, max_abs = last
        return VariantTrial(cname, kind, description, False, consts, message, max_abs)

    def _witness_mismatch(self, veq: Equation, target: BoundTarget, setting: Setting) -> str | None:
        """Why the variant does not explain the base checks' own counterexamples, or None if it does."""
        needed = [d.ascii for d in (*veq.inputs, *veq.params)]
        for check, ex in self.witnesses:
            arrays = {k: v for k, v in ex.arrays.items() if k in needed}
            for k in needed:
                if k not in arrays and k in setting.pins:  # replaced by its pinned value just below
                    decl = veq.declared(k)
                    arrays[k] = np.zeros(() if decl.is_scalar else concrete_shape(decl, ex.sizes))
            if len(arrays) != len(needed):
                continue  # the variant takes other symbols: its own examples decide
            arrays = setting.pinned(veq, ex._replace(arrays=arrays)).arrays
            reference = OracleTarget(veq) if check == "value=oracle" else GeneratedTarget(veq)
            try:
                got = target(arrays, ex.sizes)
                want = {
                    k: v
                    for k, v in setting.expected(reference, ex._replace(arrays=arrays)).items()
                    if k in got
                }
                assert_close(got, want, setting.tol, check=check, who=target.name, reference=reference.name)
            except Mismatch as exc:
                self._gap = exc.details.get("max_abs")  # how far off: the closest candidate is named
                return f"on the base check's counterexample: {exc}"
            except Exception as exc:  # noqa: BLE001 - the target failed on it: no match
                return f"on the base check's counterexample the target raised {type(exc).__name__}: {exc}"
        return None

    def _confirm(
        self, cname, kind, description, veq, target, setting, consts, result, same=False
    ) -> VariantTrial:
        """The values match: every property and the gradient must hold under the variant too."""
        failed = []
        fast = dataclasses.replace(self.ctx.wide, shrink_examples=0)
        options = {inv.name: repr(inv.options) for inv in veq.invariants}
        for check in checks_for(veq, self.ctx.wide, self.ctx.seed, target, setting):
            if not check.name.startswith("property:") or inapplicable(veq, check.name[9:], setting, target):
                continue
            if same and (check.name[9:], options.get(check.name[9:])) in self.passed:
                continue  # it held on this target under these options in the audit itself
            r = run_check(check, fast, self.ctx.seed)
            if not r.passed:
                failed.append(f"{r.check}: {r.message}")
        skip_gradient = self.ctx.logits or self.ctx.no_gradient is not None  # declared by a built-in
        gradient = gradient_check(veq, target, setting) if not skip_gradient else None
        if gradient is not None:  # (a target returning logits: its gradient is not checked, audit.auditor)
            r = run_check(gradient, fast, self.ctx.seed)
            if not r.passed:
                failed.append(f"gradient: {r.message}")
        if failed:
            message = "the values match, but under this form " + "; ".join(failed)
            return VariantTrial(cname, kind, description, False, consts, message, result.max_abs)
        return VariantTrial(cname, kind, description, True, consts, "", result.max_abs)

    def _value_check(self, veq: Equation, target: BoundTarget, setting: Setting, profile=None) -> CheckResult:
        fast = profile or dataclasses.replace(self.ctx.wide, shrink_examples=0)
        planned = checks_for(veq, fast, self.ctx.seed, target, setting)
        name = "impl=oracle" if self.ctx.oracle_reachable() else "impl=generated"
        check = next(c for c in planned if c.name == name)
        return run_check(check, fast, self.ctx.seed)


def _without_eps(name: str) -> str:
    """The name of the same form without its ε: gelu_eps → gelu, X[eps] → X."""
    return name.replace("[eps]", "").replace("_eps", "")


__all__ = ["EPS_CANDIDATES", "SIBLINGS", "Diagnosis"]
