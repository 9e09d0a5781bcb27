"""Audit: hold anyone's implementation to the spec, and say how it differs.

``audit(target, as_=ID, ...)`` takes impl/ itself, a built-in target (torch.nn, Hugging Face transformers:
verify.adapters), a function or an nn.Module (class or instance), or a string naming one
(``package.module:name`` or ``path/to/file.py:Name``), binds it to the equation (jaxtyping annotations in
glossary names, or a layout string: verify.layout), and runs every applicable check:

- ``shape``            the results have the spec's shapes;
- ``value=oracle``     values against the exact oracle, at small sizes;
- ``value=generated``  values against the PyTorch generated from the SymPy, at larger sizes;
- ``property:<name>``  each invariant the equation declares;
- ``gradient``         the vector-Jacobian product against autograd through the generated code.

It checks everything and reports every failure with its shrunk counterexample. When values differ it tries
the equation's named variants and the other mask polarity, and says which the target matches instead.
Verdicts: ``pass`` (the equation as given), ``variant`` (values fail, a named variant or convention
matches), ``fail`` (nothing matches, or a property or the gradient fails), ``error`` (the target cannot be
loaded or bound).
"""

import dataclasses
import importlib
import importlib.util
import sys
import time
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ... import spec
from ...spec import Equation, Kind, SpecError
from .._errors import AuditError, BindingError, Mismatch
from ..binding import who
from ..compare import POLICY, Tolerance, assert_close
from ..runner import (
    PROFILES,
    CheckResult,
    Profile,
    Setting,
    _describe,
    checks_for,
    run_check,
)
from ..strategies import COMPOSITE, SMALL, Example, is_composite, size_tuples
from ..targets import GeneratedTarget, OracleTarget
from .checks import gradient_check, shape_check, value_maps
from .report import AuditCheck, AuditReport, Heatmap, VariantTrial
from .targets import BoundTarget, ModuleTarget, make_target, target_batches

#: ε values tried for an ``eps`` variant when the target does not say its own (torch/GPT-2, ViT/TF, BERT).
EPS_CANDIDATES = (1e-5, 1e-6, 1e-8, 1e-12)

DTYPES = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}

#: Sizes above this are beyond the exact oracle (its straight-line program grows with the sizes).
ORACLE_LIMIT = max(SMALL[1], COMPOSITE[1])


# --- loading ----------------------------------------------------------------------------------------
def load(target: str) -> object:
    """The object named by ``package.module:name`` or ``path/to/file.py:Name`` (or a built-in's name)."""
    from .adapters import builtins

    found = builtins()
    if target in found:
        return found[target]
    if ":" not in target:
        near = [n for n in found if target.lower() in n.lower()]
        hint = f" (built-ins like it: {', '.join(near[:6])})" if near else ""
        raise AuditError(
            f"cannot audit {target!r}: expected a built-in name (lmspec audit --list), 'module:name' or "
            f"'path/to/file.py:Name'{hint}"
        )
    where, _, attr = target.rpartition(":")
    if not attr:
        raise AuditError(f"cannot audit {target!r}: nothing after ':' names the callable")
    try:
        if where.endswith(".py") or "/" in where or "\\" in where:
            path = Path(where)
            if not path.is_file():
                raise AuditError(f"cannot audit {target!r}: there is no file {where}")
            # the same name in every process (hash() of a str is salted per process), since it appears in
            # messages and reports: the file's stem and a checksum of its absolute path
            name = f"lmspec_audit_{path.stem}_{zlib.crc32(str(path.resolve()).encode()):08x}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except AuditError:
        raise
    except Exception as exc:
        raise AuditError(
            f"cannot audit {target!r}: importing {where} raised {type(exc).__name__}: {exc}"
        ) from exc
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise AuditError(f"cannot audit {target!r}: {where} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise AuditError(f"cannot audit {target!r}: {attr} is a {type(obj).__name__}, not callable")
    return obj


# --- the audit --------------------------------------------------------------------------------------
def audit(
    target: object,
    as_: str | None = None,
    *,
    layout: str | None = None,
    mask: str | None = None,
    init: Mapping | None = None,
    params: Mapping[str, str] | None = None,
    constants: Mapping[str, float] | None = None,
    sizes: Mapping[str, int] | None = None,
    derive: Mapping[str, str] | None = None,
    pins: Mapping[str, object] | None = None,
    device: str = "cpu",
    dtype: str = "float64",
    profile: str | Profile = "default",
    seed: int = 0,
    name: str | None = None,
    diagnose: bool = True,
) -> AuditReport:
    """Audit ``target`` against the equation ``as_`` (see the module docstring and README)."""
    start = time.perf_counter()
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    if dtype not in DTYPES:
        raise AuditError(f"unknown dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    if device != "cpu" and not _device_ok(device):
        raise AuditError(f"device {device!r} is not available here (torch sees: {_devices()})")
    from .adapters import Builtin

    obj = load(target) if isinstance(target, str) else target
    label = name or (target if isinstance(target, str) else _display(obj))
    setting_pins: dict[str, object] = {}
    fixed_sizes, tied = dict(sizes or {}), dict(derive or {})
    consts = dict(constants or {})
    if isinstance(obj, Builtin):
        as_ = as_ or obj.equation
        setting_pins.update(obj.pins)
        consts = {**obj.constants, **consts}
        fixed_sizes = {**obj.sizes, **fixed_sizes}
        tied = {**obj.derive, **tied}
        label = name or obj.name
        obj = obj.make()
    if as_ is None:
        as_ = getattr(obj, "__lmspec_id__", None)
        if as_ is None:
            raise AuditError(f"say which equation {label} implements: --as ID (lmspec list)")
    try:
        eq = spec.get(as_)
    except SpecError as exc:
        raise AuditError(str(exc)) from exc
    setting_pins.update(pins or {})
    auditor = _Auditor(
        eq,
        obj,
        label,
        layout,
        mask,
        init,
        params,
        consts,
        fixed_sizes,
        tied,
        setting_pins,
        DTYPES[dtype],
        device,
        dtype,
        prof,
        seed,
    )
    report = auditor.run(diagnose)
    report.seconds = time.perf_counter() - start
    return report


def _display(obj: object) -> str:
    if isinstance(obj, torch.nn.Module):
        return type(obj).__qualname__
    return who(obj) if callable(obj) else repr(obj)


def _device_ok(device: str) -> bool:
    try:
        torch.empty(1, device=device)
        return True
    except (RuntimeError, AssertionError):
        return False


def _devices() -> str:
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{k}" for k in range(torch.cuda.device_count())]
    return ", ".join(found)


class _Auditor:
    def __init__(
        self,
        eq,
        obj,
        label,
        layout,
        mask,
        init,
        params,
        constants,
        sizes,
        derive,
        pins,
        torch_dtype,
        device,
        dtype,
        profile,
        seed,
    ) -> None:
        self.eq, self.obj, self.label = eq, obj, label
        self.layout, self.mask, self.init, self.params = layout, mask, init, params
        self.constants, self.sizes, self.derive, self.pins = constants, sizes, derive, pins
        self.torch_dtype, self.device, self.dtype = torch_dtype, device, dtype
        self.profile, self.seed = profile, seed
        self.tol: Tolerance = POLICY[dtype]
        # at least three size tuples: past the n = 1 and M = 1 edge cases, one where heads and tokens interact
        self.wide = dataclasses.replace(profile, oracle_sizes=max(3, profile.oracle_sizes))

    # -- binding -------------------------------------------------------------------------------------
    def _missing_ok(self, eq: Equation) -> set[str]:
        """Spec symbols the target may leave out: those it fixes itself (pins, constants)."""
        scalars = {d.ascii for d in eq.params if d.is_scalar and d.ascii in self.constants}
        return set(self.pins) | scalars | ({d.ascii for d in eq.params if d.ascii == "eps"})

    def target_for(self, eq: Equation, mask: str | None) -> BoundTarget:
        return make_target(
            self.obj,
            eq,
            name=self.label,
            layout=self.layout,
            mask=mask,
            init=self.init,
            params=self.params,
            missing_ok=self._missing_ok(eq),
            dtype=self.torch_dtype,
            device=self.device,
        )

    def setting_for(self, eq: Equation, target: BoundTarget, extra: Mapping[str, object] = ()) -> Setting:
        pins = {k: v for k, v in self.pins.items() if _has(eq, k)}
        pins.update({k: v for k, v in self.constants.items() if _has(eq, k)})
        pins.update(dict(extra))
        sizes = {k: v for k, v in self.sizes.items()}
        return Setting(pins, sizes, dict(self.derive), target_batches(target), self.tol)

    def oracle_reachable(self) -> bool:
        limit = ORACLE_LIMIT if not is_composite(self.eq) else COMPOSITE[1]
        return all(v <= max(limit, 7) for v in self.sizes.values())

    # -- running -------------------------------------------------------------------------------------
    def run(self, diagnose: bool) -> AuditReport:
        eq = self.eq
        try:
            target = self.target_for(eq, self.mask)
        except (BindingError, AuditError) as exc:
            return self._unbound(exc, diagnose)
        missing_eps = [
            d.ascii
            for d in eq.params
            if d.ascii == "eps" and "eps" not in self.constants and not _takes(target, "eps")
        ]
        if missing_eps:
            return self._unbound(
                BindingError(
                    f"{self.label} fixes ε itself: give its value (constants={{'eps': …}}, "
                    "--constant eps=1e-5)"
                ),
                diagnose,
            )
        setting = self.setting_for(eq, target)
        checks = self._checks(eq, target, setting)
        variants: list[VariantTrial] = []
        self.witnesses = [
            (c.name, c._example)
            for c in checks
            if c.status == "fail" and c.name.startswith("value") and getattr(c, "_example", None) is not None
        ]
        value_failed = any(c.status == "fail" and c.name.startswith(("value", "shape")) for c in checks)
        if diagnose and value_failed and not any(c.name == "shape" and c.status == "fail" for c in checks):
            variants = self._diagnose(target)
        heatmaps = self._heatmaps(eq, target, checks)
        return self._report(checks, variants, heatmaps)

    def _unbound(self, exc: Exception, diagnose: bool) -> AuditReport:
        checks = [AuditCheck("binding", "fail", str(exc))]
        self.witnesses = []
        variants = self._diagnose(None) if diagnose else []
        if any(v.matched for v in variants):
            return self._report(checks, variants, [])
        report = self._report(checks, variants, [])
        report.verdict = "error"
        report.summary = f"{self.label} cannot be held to {self.eq.id}: {exc}"
        return report

    def _checks(self, eq: Equation, target: BoundTarget, setting: Setting) -> list[AuditCheck]:
        out: list[AuditCheck] = []
        planned = checks_for(eq, self.wide, self.seed, target, setting)
        shape = shape_check(eq, target, setting, self.profile, self.seed)
        out.append(self._result(run_check(shape, self.profile, self.seed)))
        for check in planned:
            if check.name == "generated=oracle":
                continue  # the spec's own check (lmspec verify), not the target's
            renamed = {"impl=oracle": "value=oracle", "impl=generated": "value=generated"}.get(
                check.name, check.name
            )
            if renamed == "value=oracle" and not self.oracle_reachable():
                out.append(
                    AuditCheck(
                        renamed,
                        "skip",
                        "the target's fixed sizes are beyond the exact oracle; "
                        "values are checked against the generated code, which lmspec verify "
                        "checks against the oracle",
                    )
                )
                continue
            if check.name.startswith("property:"):
                why = _inapplicable(eq, check.name.split(":", 1)[1], setting)
                if why:
                    out.append(AuditCheck(check.name, "skip", why))
                    continue
            # target_name only labels messages: "<target> raised …", not "impl raised …"
            named = dataclasses.replace(check, name=renamed, target_name=target.name)
            result = run_check(named, self.profile, self.seed)
            out.append(self._result(result))
        edges = self._edges(eq, target, setting)
        if edges is not None:
            out.append(edges)
        gradient = gradient_check(eq, target, setting)
        if gradient is None:
            out.append(
                AuditCheck("gradient", "skip", "the equation has no real-valued inputs to differentiate")
            )
        else:
            out.append(self._result(run_check(gradient, self.profile, self.seed)))
        return out

    def _edges(self, eq: Equation, target: BoundTarget, setting: Setting) -> AuditCheck | None:
        """``value=edges``: the inputs random examples rarely reach, built on purpose — a fully masked row,
        and scores of ±10⁵ (which beat a −10⁴ mask fill). Only for equations that take an additive mask."""
        from ..oracle import concrete_shape
        from ..strategies import seeded_tensor

        masks = [d for d in eq.inputs if d.entry_kind == Kind.ADDITIVE_MASK and d.ascii not in setting.pins]
        if not masks:
            return None
        pool = size_tuples(eq, 4, self.seed, "small", fixed=setting.sizes, derive=setting.derive)
        sizes = max(pool, key=lambda z: (min(z.get("n", 1), 4), z.get("M", 1)))
        rng = np.random.default_rng(self.seed)
        batch = setting.batches[-1]
        base = {}
        for d in (*eq.inputs, *eq.params):
            shape = concrete_shape(d, sizes)
            base[d.ascii] = seeded_tensor(
                rng, d.entry_kind, (*batch, *shape) if d in eq.inputs else shape, sizes
            )
        reference = OracleTarget(eq) if self.oracle_reachable() else GeneratedTarget(eq)
        cases = []
        masked_row = dict(base)
        for m in masks:
            arr = np.where(rng.random(masked_row[m.ascii].shape) < 0.3, -np.inf, 0.0)
            arr[..., 0, :] = -np.inf
            masked_row[m.ascii] = arr
        cases.append(("a fully masked row", masked_row))
        large = {
            k: (v * 100.0 if eq.declared(k).entry_kind == Kind.REAL and k not in setting.pins else v)
            for k, v in base.items()
        }
        for m in masks:
            arr = np.where(rng.random(large[m.ascii].shape) < 0.3, -np.inf, 0.0)
            arr[..., :, 0] = 0.0  # no fully masked row here
            large[m.ascii] = arr
        cases.append(("scores of order 10⁵", large))
        start = time.perf_counter()
        worst = None
        for label, arrays in cases:
            ex = setting.pinned(eq, Example(dict(sizes), tuple(batch), arrays))
            try:
                got = target(ex.arrays, ex.sizes)
                want = {k: v for k, v in reference(ex.arrays, ex.sizes).items() if k in got}
                c = assert_close(
                    got, want, setting.tol, check="value=edges", who=target.name, reference=reference.name
                )
            except Exception as exc:  # noqa: BLE001 - a mismatch or a crash: the check fails on this input
                message = (
                    str(exc)
                    if isinstance(exc, Mismatch)
                    else f"{target.name} raised {type(exc).__name__}: {exc}"
                )
                details = getattr(exc, "details", {}) or {}
                check = AuditCheck(
                    "value=edges",
                    "fail",
                    f"with {label}: {message}",
                    len(cases),
                    details.get("max_abs"),
                    details.get("max_rel"),
                    setting.tol.atol,
                    setting.tol.rtol,
                    _describe(ex),
                    time.perf_counter() - start,
                )
                check._example = ex
                return check
            worst = c if worst is None or c.max_abs > worst.max_abs else worst
        return AuditCheck(
            "value=edges",
            "pass",
            "",
            len(cases),
            worst.max_abs,
            worst.max_rel,
            setting.tol.atol,
            setting.tol.rtol,
            {},
            time.perf_counter() - start,
        )

    def _result(self, r: CheckResult) -> AuditCheck:
        check = AuditCheck(
            r.check,
            r.status,
            r.message,
            r.examples,
            r.max_abs,
            r.max_rel,
            self.tol.atol,
            self.tol.rtol,
            r.counterexample,
            r.seconds,
        )
        check._example = r.example  # for heat maps; not part of the report
        return check

    # -- diagnosis -----------------------------------------------------------------------------------
    def _candidates(self) -> list[tuple[str, str, Equation]]:
        root = spec.get(self.eq.variant_of) if self.eq.variant_of else self.eq
        out = []
        if root is not self.eq:
            out.append((f"base {root.id}", "variant", root))
        for vname in root.variant_names:
            v = root.variant(vname)
            if v.id != self.eq.id:
                out.append((vname, "variant", v))
        for other in SIBLINGS.get(root.id, ()):  # the same parameters in the other arrangement
            sibling = spec.get(other)
            out.append((other, "equation", sibling))
            out.extend((f"{other}[{v}]", "equation", sibling.variant(v)) for v in sibling.variant_names)
        return out

    def _diagnose(self, target: BoundTarget | None) -> list[VariantTrial]:
        trials: list[VariantTrial] = []
        self._tried: list[tuple] = []
        polarity = self._flipped_mask(target)
        conventions = [(None, "")] + ([(polarity, "mask polarity inverted")] if polarity else [])
        for conv, conv_name in conventions:
            cands = self._candidates()
            if conv is not None:
                cands = [(conv_name, "convention", self.eq)] + [
                    (f"{n} + {conv_name}", k, e) for n, k, e in cands
                ]
            for cname, kind, veq in cands:
                mask = conv if conv is not None else self.mask
                self._tried.append((cname, kind, veq, mask))
                trials.append(self._try(cname, kind, veq, mask))
            if any(t.matched for t in trials):
                break
        if not any(t.matched for t in trials) and self._masks():
            trials.append(self._fully_masked_trial(target))
        return self._separate(trials)

    def _masks(self) -> list[str]:
        return [d.ascii for d in self.eq.inputs if d.entry_kind in (Kind.ADDITIVE_MASK, Kind.MASK)]

    def _fully_masked_trial(self, target: BoundTarget | None) -> VariantTrial:
        """The fully-masked-row convention: does the target compute the equation everywhere else?"""
        name = "fully masked rows differ"
        description = (
            "the target agrees with the equation except where a query may attend to nothing (a fully masked "
            "row), to which the spec gives zero weights"
        )
        if target is None:
            return VariantTrial(name, "convention", description, False, {}, "the target cannot be bound")
        masks = [(m, self.eq.declared(m).entry_kind == Kind.ADDITIVE_MASK) for m in self._masks()]

        def fully_masked(ex) -> bool:
            for m, additive in masks:
                arr = np.asarray(ex.arrays[m])
                blocked = np.isneginf(arr) if additive else arr <= 0
                if arr.ndim and blocked.all(axis=-1).any():
                    return True
            return False

        setting = dataclasses.replace(self.setting_for(self.eq, target), exclude=fully_masked)
        result = self._value_check(self.eq, target, setting)
        if not result.passed:
            return VariantTrial(name, "convention", description, False, {}, result.message, result.max_abs)
        seen = [ex for _, ex in self.witnesses if fully_masked(ex)]
        if seen:
            got = target(seen[0].arrays, seen[0].sizes)
            values = np.concatenate([np.ravel(v) for v in got.values()])
            what = "NaN" if np.isnan(values).any() else "finite values, not the spec's zeros"
            description += f"; on them it gives {what}"
        return self._confirm(name, "convention", description, self.eq, target, setting, {}, result)

    def _separate(self, trials: list[VariantTrial]) -> list[VariantTrial]:
        """Several forms matched: drop an ε form whose form without ε matches too (a tried ε of 10⁻¹² is
        invisible), then look harder (more examples) and keep those that still match."""
        names = {t.name for t in trials if t.matched}
        trials = [
            dataclasses.replace(t, matched=False, message=f"{_without_eps(t.name)} matches without an ε")
            if t.matched and "eps" not in self.constants and _without_eps(t.name) in names - {t.name}
            else t
            for t in trials
        ]
        matched = [t for t in trials if t.matched]
        if len(matched) < 2:
            return trials
        harder = dataclasses.replace(
            self.wide, examples=max(40, 4 * self.profile.examples), shrink_examples=0
        )
        by_name = {name: (kind, veq, conv) for name, kind, veq, conv in self._tried}
        out = []
        for t in trials:
            if t.matched and t.name in by_name:
                _, veq, conv = by_name[t.name]
                target = self.target_for(veq, conv)
                setting = self.setting_for(veq, target, t.constants)
                result = self._value_check(veq, target, setting, harder)
                if not result.passed:
                    t = dataclasses.replace(t, matched=False, message=f"with more examples: {result.message}")
            out.append(t)
        return out

    def _flipped_mask(self, target: BoundTarget | None) -> str | None:
        conv = self.mask
        if target is not None:
            convs = [lay.convention for lay in target.binding.args if getattr(lay, "convention", None)]
            conv = convs[0] if convs else None
            if conv is None and any(getattr(lay, "dtype", "") == "bool" for lay in target.binding.args):
                conv = "bool_keep"
        return {"bool_keep": "bool_ignore", "bool_ignore": "bool_keep"}.get(conv or "")

    def _try(self, cname: str, kind: str, veq: Equation, mask: str | None) -> VariantTrial:
        description = veq.description or veq.title
        try:
            target = self.target_for(veq, mask)
        except (BindingError, AuditError) as exc:
            return VariantTrial(cname, kind, description, False, {}, f"cannot bind: {exc}")
        eps_free = (
            any(d.ascii == "eps" for d in veq.params)
            and "eps" not in self.constants
            and not _takes(target, "eps")
        )
        options = [{"eps": e} for e in EPS_CANDIDATES] if eps_free else [{}]
        last = None
        for extra in options:
            setting = self.setting_for(veq, target, extra)
            consts = {**{k: v for k, v in self.constants.items() if _has(veq, k)}, **extra}
            miss = self._witness_mismatch(veq, target, setting)
            if miss is not None:
                last = (consts, miss, None)
                continue
            result = self._value_check(veq, target, setting)
            if result.passed:
                return self._confirm(cname, kind, description, veq, target, setting, consts, result)
            last = (consts, result.message, result.max_abs)
        consts, message, max_abs = last
        return VariantTrial(cname, kind, description, False, consts, message, max_abs)

    def _witness_mismatch(self, veq: Equation, target: BoundTarget, setting: Setting) -> str | None:
        """Why the variant does not explain the base checks' own counterexamples, or None if it does."""
        from ..targets import OracleTarget

        needed = [d.ascii for d in (*veq.inputs, *veq.params)]
        for check, ex in self.witnesses:
            arrays = {k: v for k, v in ex.arrays.items() if k in needed}
            for k in needed:
                if k not in arrays and k in setting.pins:
                    arrays[k] = np.zeros(())  # replaced by its pinned value just below
            if len(arrays) != len(needed):
                continue  # the variant takes other symbols: its own examples decide
            arrays = setting.pinned(veq, ex._replace(arrays=arrays)).arrays
            reference = OracleTarget(veq) if check == "value=oracle" else GeneratedTarget(veq)
            try:
                got = target(arrays, ex.sizes)
                want = {k: v for k, v in reference(arrays, ex.sizes).items() if k in got}
                assert_close(got, want, setting.tol, check=check, who=target.name, reference=reference.name)
            except Mismatch as exc:
                return f"on the base check's counterexample: {exc}"
            except Exception as exc:  # noqa: BLE001 - the target failed on it: no match
                return f"on the base check's counterexample the target raised {type(exc).__name__}: {exc}"
        return None

    def _confirm(self, cname, kind, description, veq, target, setting, consts, result) -> VariantTrial:
        """The values match: every property and the gradient must hold under the variant too."""
        failed = []
        fast = dataclasses.replace(self.wide, shrink_examples=0)
        for check in checks_for(veq, self.wide, self.seed, target, setting):
            if not check.name.startswith("property:") or _inapplicable(veq, check.name[9:], setting):
                continue
            r = run_check(check, fast, self.seed)
            if not r.passed:
                failed.append(f"{r.check}: {r.message}")
        gradient = gradient_check(veq, target, setting)
        if gradient is not None:
            r = run_check(gradient, fast, self.seed)
            if not r.passed:
                failed.append(f"gradient: {r.message}")
        if failed:
            message = "the values match, but under this form " + "; ".join(failed)
            return VariantTrial(cname, kind, description, False, consts, message, result.max_abs)
        return VariantTrial(cname, kind, description, True, consts, "", result.max_abs)

    def _value_check(self, veq: Equation, target: BoundTarget, setting: Setting, profile=None) -> CheckResult:
        fast = profile or dataclasses.replace(self.wide, shrink_examples=0)
        planned = checks_for(veq, fast, self.seed, target, setting)
        name = "impl=oracle" if self.oracle_reachable() else "impl=generated"
        check = next(c for c in planned if c.name == name)
        return run_check(check, fast, self.seed)

    # -- heat maps -----------------------------------------------------------------------------------
    def _heatmaps(self, eq: Equation, target: BoundTarget, checks: list[AuditCheck]) -> list[Heatmap]:
        maps: list[Heatmap] = []
        for c in checks:
            ex = getattr(c, "_example", None)
            if c.status != "fail" or ex is None or not c.name.startswith("value"):
                continue
            try:
                maps.extend(value_maps(eq, target, c, ex))
            except Exception:  # noqa: BLE001 - a heat map is a courtesy: never fail the audit for it
                continue
        return maps

    # -- the report ----------------------------------------------------------------------------------
    def _report(self, checks, variants, heatmaps) -> AuditReport:
        failed = [c for c in checks if c.status == "fail"]
        matched = [v for v in variants if v.matched]
        if not failed:
            verdict = "pass"
            summary = (
                f"{self.label} computes {self.eq.id}: {len(checks)} checks, all passed or not applicable."
            )
        elif matched:  # confirmed: under that form every property and the gradient hold too
            verdict = "variant"
            names = ", ".join(_with_constants(v) for v in matched)
            consts = " ".join(f"--constant {k}={v:g}" for k, v in matched[0].constants.items())
            if matched[0].name == "fully masked rows differ":
                on = matched[0].description.rpartition("; on them it gives ")[2]
                summary = (
                    f"{self.label} computes {self.eq.id} except on fully masked rows (a query that may "
                    "attend to nothing), where the spec gives zero weights"
                    + (f" and it gives {on}." if "; on them" in matched[0].description else ".")
                )
            else:
                summary = (
                    f"{self.label} does not compute {self.eq.id} as given; it matches {names} instead "
                    f"(audit it --as {_suggest(self.eq, matched[0])}{' ' + consts if consts else ''} to hold "
                    "it to that form)."
                )
        else:
            verdict = "fail"
            what = ", ".join(c.name for c in failed)
            tail = ""
            if matched:
                tail = f"; its values match {', '.join(_with_constants(v) for v in matched)}"
            elif variants:
                tail = "; no named variant matches either"
            summary = f"{self.label} does not compute {self.eq.id}: {what} failed{tail}."
        return AuditReport(
            self.label,
            self.eq.id,
            verdict,
            summary,
            checks,
            variants,
            heatmaps,
            self.device,
            self.dtype,
            self.profile.name,
            self.seed,
        )


def _without_eps(name: str) -> str:
    """The name of the same form without its ε: gelu_eps → gelu, X[eps] → X."""
    return name.replace("[eps]", "").replace("_eps", "")


def _with_constants(v: VariantTrial) -> str:
    if not v.constants:
        return v.name
    return f"{v.name} ({', '.join(f'{k} = {val:g}' for k, val in v.constants.items())})"


def _suggest(eq: Equation, trial: VariantTrial) -> str:
    root = eq.variant_of or eq.id
    if trial.kind == "convention":
        return f"{eq.id} with the other --mask polarity"
    name = trial.name.split(" + ")[0]
    if name.startswith("base "):
        return root
    if trial.kind == "equation":
        return name
    return f"{root}[{name}]"


def _has(eq: Equation, name: str) -> bool:
    return any(d.ascii == name for d in (*eq.inputs, *eq.params))


def _takes(target: BoundTarget, name: str) -> bool:
    return any(lay.name == name for lay in target.binding.args)


#: Equations with the same symbols in another arrangement: a target written as one may compute the other
#: (the pre-LN ↔ post-LN swap).
SIBLINGS = {
    "transformer.block_pre_ln": ("transformer.block_post_ln",),
    "transformer.block_post_ln": ("transformer.block_pre_ln",),
}


def _inapplicable(eq: Equation, prop: str, setting: Setting) -> str:
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
    return ""


def _sets_as_pinned(prop: str, options, name: str, pin) -> bool:
    """Whether the property sets the pinned input to the very value the target fixes (the causal property
    runs with the causal mask, which is what an ``is_causal=True`` target uses)."""
    from .adapters import causal_pin

    return prop == "causal" and options.get("mask") == name and pin is causal_pin


__all__ = ["AuditError", "ModuleTarget", "audit", "load", "make_target"]
