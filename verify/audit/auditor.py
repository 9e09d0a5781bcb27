"""Audit: hold anyone's implementation to the spec, and say how it differs.

``audit(target, as_=ID, ...)`` takes impl/ itself, a built-in target (torch.nn, Hugging Face transformers:
audit.adapters), a function or an nn.Module (class or instance), or a string naming one
(``package.module:name`` or ``path/to/file.py:Name``: audit.loading), binds it to the equation (jaxtyping
annotations in glossary names, or a layout string: audit.layout), and runs every applicable check:

- ``shape``            the results have the spec's shapes;
- ``value=oracle``     values against the exact oracle, at small sizes;
- ``value=generated``  values against the PyTorch generated from the SymPy, at larger sizes;
- ``property:<name>``  each invariant the equation declares;
- ``value=edges``      values on inputs random examples rarely reach (a fully masked row, scores of 10⁵);
- ``gradient``         the vector-Jacobian product against autograd through the generated code.

It checks everything and reports every failure with its shrunk counterexample. When values differ it tries
the equation's named variants and the other mask polarity, and says which the target matches instead
(audit.diagnosis). A plain function with no annotations and no layout has its layout inferred from its
argument names and the shapes it accepts (audit.infer), printed in the report.
A built-in may declare that its library computes in float32 whatever its inputs' dtype (compared at
float32's tolerance, said in a note) or gives no gradient by design (the gradient check skipped with the
reason); a user's own target cannot (audit.adapters._registry).
Verdicts: ``pass`` (the equation as given), ``variant`` (values fail, a named variant or convention
matches), ``fail`` (nothing matches, or a property or the gradient fails), ``error`` (the target cannot be
loaded or bound).
"""

import contextlib
import dataclasses
import functools
import importlib.util
import inspect
import shlex
import time
from collections.abc import Iterator, Mapping

import numpy as np
import torch

from ... import spec
from ...spec import Equation, Kind, SpecError
from .._errors import AuditError, BindingError
from ..binding import BUILT_IN_MASKS, is_key_mask
from ..compare import POLICY
from ..runner import PROFILES, CheckResult, Profile, Setting, checks_for, one_thread, run_check
from ..strategies import is_composite, size_tuples
from .adapters import Builtin, causal_pin, no_mask_pin
from .checks import edge_check, gradient_check, shape_check, value_maps
from .context import AuditContext, inapplicable, takes
from .diagnosis import Diagnosis
from .infer import Inferred, InferredModule, infer_function, infer_module
from .loading import callable_form, display_name, load
from .losses import Labels, check_labels
from .parts import audit_parts, verdict_sentence
from .report import AuditCheck, AuditReport, Heatmap, VariantTrial
from .targets import BoundTarget, ModuleTarget, differentiable, make_target

DTYPES = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


# --- the audit ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def default_dtype(dtype: torch.dtype | None) -> Iterator[None]:
    """torch's default dtype set to the audit's float dtype while the target is built, probed and called:
    code that makes a tensor without a dtype (``torch.zeros(batch, hidden)`` for an initial state,
    ``torch.tensor(2.0)``) makes it in the audit's dtype, as it does in a program run at that dtype
    (``torch.set_default_dtype``). Before, a float64 audit of d2l's RNN from scratch, whose state is
    ``torch.zeros(…)``, raised a dtype error on every layout: an error about the audit, not the code.
    float16 and bfloat16 leave the default as it is (torch's factories and layers assume a float default)."""
    if dtype not in (torch.float32, torch.float64):
        yield
        return
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def _in_audit_dtype(fn):
    """Run ``audit``/``explain`` under ``default_dtype`` of their ``dtype`` (float64 for explain)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        with default_dtype(DTYPES.get(kwargs.get("dtype", "float64"))):
            return fn(*args, **kwargs)

    return run


@_in_audit_dtype
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
    absent: tuple[str, ...] | list[str] = (),
    labels: str | None = None,
    ignore_index: int | None = None,
    pool: str | None = None,
    logits: bool = False,
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
    obj = load(target) if isinstance(target, str) else callable_form(target)
    label = name or (target if isinstance(target, str) else display_name(obj))
    setting_pins: dict[str, object] = {}
    fixed_sizes, tied = dict(sizes or {}), dict(derive or {})
    consts = dict(constants or {})
    declared: dict[str, str | None] = {}  # a built-in's precision and no_gradient (never a user's)
    if isinstance(obj, Builtin):
        if obj.group == "hf" and not _installed("transformers"):
            raise AuditError(
                f"{obj.name} is built with Hugging Face transformers, which is not installed here: "
                "pip install 'lmspec[hf]'"
            )
        as_ = as_ or obj.equation
        setting_pins.update(obj.pins)
        consts = {**obj.constants, **consts}
        fixed_sizes = {**obj.sizes, **fixed_sizes}
        tied = {**obj.derive, **tied}
        layout = layout or obj.layout
        label = name or obj.name
        declared = {
            "precision": obj.precision,
            "precision_reason": obj.precision_reason,
            "no_gradient": obj.no_gradient,
        }
        obj = obj.make()
    eq = _equation(as_ or getattr(obj, "__lmspec_id__", None), label)
    _check_sizes(eq, fixed_sizes)
    _check_absent(eq, absent)
    if labels not in (None, "shift"):
        raise AuditError(f"--labels {labels}: expected shift (the target shifts its labels inside)")
    how = Labels(labels == "shift", ignore_index, pool)
    check_labels(eq, how)
    if logits and not any(o.entry_kind == Kind.PROBABILITY for o in eq.outputs):
        raise AuditError(
            f"--logits: the target returns logits where the equation's output is a distribution; {eq.id}'s "
            f"outputs ({', '.join(eq.space(o) for o in eq.outputs)}) are not distributions"
        )
    inferred = None
    factory = layout is None and params is None and _a_module_factory(obj, eq, init)
    if factory:  # a function that builds the module (the Annotated Transformer's make_model): as a class
        inferred = _infer(obj, eq, mask, fixed_sizes, tied, label, module=True, init=init)
        layout, mask = inferred.forward.layout, mask or inferred.forward.mask
        init, params = inferred.init, inferred.params
        tied = {**inferred.derive, **tied}
        consts = {**inferred.constants, **consts}
        absent = tuple(dict.fromkeys([*absent, *inferred.absent]))
    elif layout is None and params is None and init is None and needs_inference(obj):
        inferred = _infer(obj, eq, mask, fixed_sizes, tied, label)
        layout, mask = inferred.layout, mask or inferred.mask
        consts = {**inferred.constants, **consts}
        if inferred.labels or inferred.ignore_index is not None or inferred.pool:  # what its code says
            how = Labels(
                how.shift or inferred.labels == "shift",
                how.ignore_index if how.ignore_index is not None else inferred.ignore_index,
                how.pool or inferred.pool,
            )
            check_labels(eq, how)
    elif layout is None and params is None and _a_module_class(obj):  # --init may say how to build it
        inferred = _infer(obj, eq, mask, fixed_sizes, tied, label, module=True, init=init)
        layout, mask = inferred.forward.layout, mask or inferred.forward.mask
        init, params = inferred.init, inferred.params
        tied = {**inferred.derive, **tied}
        consts = {**inferred.constants, **consts}
        absent = tuple(dict.fromkeys([*absent, *inferred.absent]))
    built_in = mask if mask in BUILT_IN_MASKS else None  # the parts of a composite build it as it does
    if mask in BUILT_IN_MASKS:  # the target takes no mask: S is what it builds itself
        setting_pins[_the_mask(eq, mask)] = causal_pin if mask == "causal" else no_mask_pin
        mask = None
    setting_pins.update(pins or {})
    ctx = AuditContext(
        eq=eq,
        obj=obj,
        label=label,
        layout=layout,
        mask=mask,
        init=init,
        params=params,
        constants=consts,
        sizes=fixed_sizes,
        derive=tied,
        pins=setting_pins,
        torch_dtype=DTYPES[dtype],
        device=device,
        dtype=dtype,
        profile=prof,
        seed=seed,
        absent=tuple(absent),
        labels=how,
        logits=logits,
        **declared,
    )
    with one_thread():  # tiny tensors: waking torch's worker threads costs more than they save
        report = _run(ctx, diagnose)
    if isinstance(inferred, InferredModule) and report.verdict == "fail" and is_composite(eq) and diagnose:
        parts, said = audit_parts(obj, eq, inferred, mask=built_in, audit=audit, seed=seed)
        report.parts = [p.as_json() for p in parts]
        report.notes += [*said, *([verdict_sentence(parts)] if parts else [])]
    if inferred is not None:
        report.inferred = inferred.as_json()
        report.notes[:0] = [f"binding inferred (docs/audit.md, Inference): {shlex.join(inferred.options())}"]
        report.notes[1:1] = inferred.as_json()["notes"]
    report.seconds = time.perf_counter() - start
    return report


def needs_inference(obj: object) -> bool:
    """Whether ``obj`` is a plain function whose binding nothing states: no shape annotation on its arguments
    (one annotated with jaxtyping binds through its annotations; ``torch.Tensor``, ``Optional[Tensor]`` or
    ``float`` say nothing about axes), not a module."""
    if isinstance(obj, Builtin | torch.nn.Module) or inspect.isclass(obj) or not callable(obj):
        return False
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return False
    return not any(_shape_annotation(p.annotation) for p in params)


def _shape_annotation(annotation: object) -> bool:
    """Whether an argument's annotation states axes: a jaxtyping array type (``Float[Tensor, "n d_k"]``),
    inside ``Optional``/``Union`` too, or a string naming one (``from __future__ import annotations``)."""
    import typing

    from jaxtyping import AbstractArray

    if isinstance(annotation, str):
        kinds = ("Float", "Int", "Bool", "Shaped", "Num", "Real", "Integer", "Inexact", "Complex", "UInt")
        return any(f"{kind}[" in annotation for kind in kinds)
    if isinstance(annotation, type) and issubclass(annotation, AbstractArray):
        return True
    return any(_shape_annotation(a) for a in typing.get_args(annotation))


def _a_module_class(obj: object) -> bool:
    return inspect.isclass(obj) and issubclass(obj, torch.nn.Module)


def _a_module_factory(obj: object, eq: Equation, init) -> bool:
    """Whether ``obj`` is a plain function that builds an nn.Module: --init says how to call it, or every
    argument it requires is a size by its name (``make_layer(d_model, h, d_ff)``) and, called at the probe's
    sizes, it returns a module."""
    if inspect.isclass(obj) or not inspect.isfunction(obj):
        return False
    if init is not None:
        return True
    from .infer import InferenceError, init_args, probe_sizes
    from .targets import _home, init_value

    try:
        args = init_args(obj, eq)
    except InferenceError:
        return False
    if not args or any(a not in eq.axes and not a.replace(".", "").isdigit() for a in args.values()):
        return False  # an argument that is no size: a tensor, so a function to audit as it is
    sizes = probe_sizes(eq, None, {"d_e": "M*d_k", "d_v": "d_k"} if {"M", "d_k"} <= set(eq.axes) else {})[0]
    try:
        with one_thread():
            built = obj(**{k: init_value(k, v, sizes, _home(obj)) for k, v in args.items()})
    except Exception:  # noqa: BLE001 - it is no factory we can call: audited as a function, which says why
        return False
    return isinstance(built, torch.nn.Module)


def _infer(obj, eq: Equation, mask: str | None, sizes, derive, label: str, module: bool = False, init=None):
    try:
        with one_thread():
            if module:
                return infer_module(obj, eq, fixed=sizes, derive=derive, label=label, mask=mask, init=init)
            return infer_function(obj, eq, fixed=sizes, derive=derive, label=label, mask=mask)
    except BindingError as exc:
        raise AuditError(str(exc)) from None


@_in_audit_dtype
def explain(
    target: object,
    as_: str | None = None,
    *,
    mask: str | None = None,
    sizes: Mapping[str, int] | None = None,
    derive: Mapping[str, str] | None = None,
) -> Inferred | InferredModule:
    """The binding ``audit`` would infer for ``target`` (``lmspec audit … --explain``), without auditing;
    AuditError when the target needs none (it is annotated, a module or a built-in) or none fits."""
    obj = load(target) if isinstance(target, str) else callable_form(target)
    label = target if isinstance(target, str) else display_name(obj)
    eq = _equation(as_, label)
    module = _a_module_class(obj) or _a_module_factory(obj, eq, None)
    if not module and not needs_inference(obj):
        raise AuditError(
            f"{label}: nothing to infer: lmspec infers the binding of a plain function with no annotations "
            "or of an nn.Module class (an instance or an annotated function binds as docs/audit.md says)"
        )
    return _infer(obj, eq, mask, dict(sizes or {}), dict(derive or {}), label, module=module)


def _equation(as_: str | None, label: str) -> Equation:
    """The equation ``as_`` names, or an AuditError that says what to write."""
    if as_ is None:
        raise AuditError(f"say which equation {label} implements: --as ID (lmspec list)")
    try:
        return spec.get(as_)
    except SpecError as exc:
        raise AuditError(str(exc)) from exc


def _installed(package: str) -> bool:
    """Whether ``package`` can be imported (found without importing it)."""
    return importlib.util.find_spec(package) is not None


#: The largest size an audit fixes: every entry of every tensor is drawn on its own, so the cost grows with
#: the tensors (d_k = 1024 takes seconds, 2048 minutes). The math does not depend on the size.
MAX_SIZE = 1024


def _check_sizes(eq: Equation, sizes: Mapping[str, int]) -> None:
    """Fixed sizes are axes of the equation, whole numbers from 1 to MAX_SIZE: an error before any check."""
    for axis, value in sizes.items():
        if axis not in eq.axes:
            axes = ", ".join(eq.axes)
            raise AuditError(f"--size {axis}={value}: {axis!r} is not an axis of {eq.id} ({axes})")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise AuditError(f"--size {axis}={value}: a size is a whole number from 1")
        if value > MAX_SIZE:
            raise AuditError(
                f"--size {axis}={value}: the audit fixes sizes up to {MAX_SIZE} (it draws every entry); "
                "fix a smaller one, the equation's math does not depend on it"
            )


def _check_absent(eq: Equation, absent) -> None:
    """What --absent names are tensor parameters of the equation, or of one of its variants (reset_after's
    b_U: held at 0 in every form that has it, which the diagnosis tries)."""
    root = spec.get(eq.variant_of) if eq.variant_of else eq
    forms = [eq, root, *(root.variant(v) for v in root.variant_names)]
    params = list(dict.fromkeys(d.ascii for form in forms for d in form.params if not d.is_scalar))
    for name in absent:
        if name not in params:
            raise AuditError(
                f"--absent {name}: {name!r} is not a tensor parameter of {eq.id} "
                f"({', '.join(params) or 'none'})"
            )


def _the_mask(eq: Equation, mask: str) -> str:
    """The one additive mask of ``eq`` that ``--mask causal`` or ``--mask none`` fixes."""
    masks = [d.ascii for d in eq.inputs if d.entry_kind == Kind.ADDITIVE_MASK]
    if len(masks) != 1:
        found = ", ".join(masks) if masks else "none"
        raise AuditError(f"--mask {mask} fixes the mask of an equation with one; {eq.id} takes {found}")
    return masks[0]


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


# --- running ------------------------------------------------------------------------------------------------
def _run(ctx: AuditContext, diagnose: bool) -> AuditReport:
    """Bind, check, diagnose a failure, report."""
    eq = ctx.eq
    try:
        target = ctx.target_for(eq, ctx.mask)
    except (BindingError, AuditError) as exc:
        return _unbound(ctx, exc, diagnose)
    missing_eps = [
        d.ascii
        for d in eq.params
        if d.ascii == "eps" and "eps" not in ctx.constants and not takes(target, "eps")
    ]
    if missing_eps:
        return _unbound(
            ctx,
            BindingError(
                f"{ctx.label} fixes ε itself: give its value (constants={{'eps': …}}, --constant eps=1e-5)"
            ),
            diagnose,
        )
    setting = ctx.setting_for(eq, target)
    try:  # a module is built at every size tuple the checks use, and its parameters mapped, before them
        target.probe(
            size_tuples(
                eq, ctx.wide.oracle_sizes, ctx.seed, "small", fixed=setting.sizes, derive=setting.derive
            )
        )
    except BindingError as exc:
        return _unbound(ctx, exc, diagnose)
    checks = _checks(ctx, eq, target, setting)
    variants: list[VariantTrial] = []
    witnesses = [
        (c.name, c._example)
        for c in checks
        if c.status == "fail" and c.name.startswith("value") and getattr(c, "_example", None) is not None
    ]
    value_failed = any(c.status == "fail" and c.name.startswith(("value", "shape")) for c in checks)
    if diagnose and value_failed and not any(c.name == "shape" and c.status == "fail" for c in checks):
        options = {inv.name: repr(inv.options) for inv in eq.invariants}
        passed = frozenset(
            (c.name[9:], options.get(c.name[9:]))
            for c in checks
            if c.status == "pass" and c.name.startswith("property:")
        )
        variants = Diagnosis(ctx, witnesses, passed).run(target)
    heatmaps = _heatmaps(eq, target, checks)
    report = _report(ctx, checks, variants, heatmaps)
    if report.verdict == "fail" and _within_float32(ctx, checks):
        report.notes.append(
            "every difference is within float32's tolerance (|Δ| ≤ 1e-5 or relative ≤ 1e-4): the "
            "target computes part of it in float32 — a .float() cast, a constant or buffer made with "
            "dtype=torch.float32. Audit it with --dtype float32 to hold it at that precision, or make the "
            "value in its input's dtype"
        )
    return report


def _within_float32(ctx: AuditContext, checks) -> bool:
    """Whether a float64 audit failed only on values (and gradients) by differences float32's tolerance
    allows: the mark of a float32 value inside the target, which the note names."""
    tol = POLICY["float32"]
    failed = [c for c in checks if c.status == "fail"]
    return (
        ctx.dtype == "float64"
        and bool(failed)
        and all(c.name.startswith(("value", "gradient")) and c.max_abs is not None for c in failed)
        and all(c.max_abs <= tol.atol or (c.max_rel is not None and c.max_rel <= tol.rtol) for c in failed)
    )


def _unbound(ctx: AuditContext, exc: Exception, diagnose: bool) -> AuditReport:
    """The target cannot be bound to the equation as given: an error, unless another form binds and
    matches."""
    checks = [AuditCheck("binding", "fail", str(exc))]
    variants = Diagnosis(ctx, []).run(None) if diagnose else []
    if any(v.matched for v in variants):
        return _report(ctx, checks, variants, [])
    report = _report(ctx, checks, variants, [])
    report.verdict = "error"
    report.summary = f"{ctx.label} cannot be held to {ctx.eq.id}: {exc}"
    return report


def _checks(ctx: AuditContext, eq: Equation, target: BoundTarget, setting: Setting) -> list[AuditCheck]:
    """Every check of the target, in order: shape, the verifier's value checks and properties, the edge
    cases, the gradient."""
    out: list[AuditCheck] = []
    planned = checks_for(eq, ctx.wide, ctx.seed, target, setting)
    shape = shape_check(eq, target, setting, ctx.profile, ctx.seed)
    out.append(_result(ctx, run_check(shape, ctx.profile, ctx.seed)))
    for check in planned:
        if check.name == "generated=oracle":
            continue  # the spec's own check (lmspec verify), not the target's
        renamed = {"impl=oracle": "value=oracle", "impl=generated": "value=generated"}.get(
            check.name, check.name
        )
        if renamed == "value=oracle" and not ctx.oracle_reachable():
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
            why = inapplicable(eq, check.name.split(":", 1)[1], setting, target)
            if why:
                out.append(AuditCheck(check.name, "skip", why))
                continue
        # target_name only labels messages: "<target> raised …", not "impl raised …"
        named = dataclasses.replace(check, name=renamed, target_name=target.name)
        result = run_check(named, ctx.profile, ctx.seed)
        out.append(_result(ctx, result))
    edges = edge_check(eq, target, setting, ctx.seed, ctx.oracle_reachable())
    if edges is not None:
        out.append(edges)
    gradient = gradient_check(eq, target, setting)
    takes_real = any(differentiable(eq, lay.name) for lay in target.binding.args if lay.name)
    maps_weights = isinstance(target, ModuleTarget) and any(m.mode == "map" for m in target.params)
    if gradient is None:
        out.append(AuditCheck("gradient", "skip", "the equation has no real-valued inputs to differentiate"))
    elif ctx.no_gradient is not None:  # a built-in's, tested on the library; never inferred from a result
        out.append(AuditCheck("gradient", "skip", f"declared by the built-in: {ctx.no_gradient}"))
    elif ctx.logits:
        why = "the target returns logits, read through a softmax the reference's gradient does not go through"
        out.append(AuditCheck("gradient", "skip", why))
    elif not takes_real and not maps_weights:
        why = "the target takes no real-valued argument and no module parameter is filled from the spec's"
        out.append(AuditCheck("gradient", "skip", why))
    else:  # with respect to its real inputs and the module parameters filled from the spec's
        out.append(_result(ctx, run_check(gradient, ctx.profile, ctx.seed)))
    return out


def _result(ctx: AuditContext, r: CheckResult) -> AuditCheck:
    """A verifier's check result as the audit reports it (with the dtype's tolerance)."""
    check = AuditCheck(
        r.check,
        r.status,
        r.message,
        r.examples,
        r.max_abs,
        r.max_rel,
        ctx.tol.atol,
        ctx.tol.rtol,
        r.counterexample,
        r.seconds,
    )
    check._example = r.example  # for heat maps; not part of the report
    return check


def _heatmaps(eq: Equation, target: BoundTarget, checks: list[AuditCheck]) -> list[Heatmap]:
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


# --- the report ---------------------------------------------------------------------------------------------
def _report(ctx: AuditContext, checks, variants, heatmaps) -> AuditReport:
    """The verdict and its one-sentence summary."""
    failed = [c for c in checks if c.status == "fail"]
    matched = [v for v in variants if v.matched]
    if not failed:
        verdict = "pass"
        summary = f"{ctx.label} computes {ctx.eq.id}: {len(checks)} checks, all passed or not applicable."
    elif matched:  # confirmed: under that form every property and the gradient hold too
        verdict = "variant"
        names = ", ".join(_with_constants(v) for v in matched)
        consts = " ".join(f"--constant {k}={v:g}" for k, v in matched[0].constants.items())
        if matched[0].name == "fully masked rows differ":
            on = matched[0].description.rpartition("; on them it gives ")[2]
            summary = (
                f"{ctx.label} computes {ctx.eq.id} except on fully masked rows (a query that may "
                "attend to nothing), where the spec gives zero weights"
                + (f" and it gives {on}." if "; on them" in matched[0].description else ".")
            )
        else:
            summary = (
                f"{ctx.label} does not compute {ctx.eq.id} as given; it matches {names} instead "
                f"(audit it --as {_suggest(ctx.eq, matched[0])}{' ' + consts if consts else ''} to hold "
                "it to that form)."
            )
    else:
        verdict = "fail"
        what = ", ".join(c.name for c in failed)
        tail = ""
        if matched:
            tail = f"; its values match {', '.join(_with_constants(v) for v in matched)}"
        elif variants:
            tail = "; no named variant matches either" + _closest(variants)
        summary = f"{ctx.label} does not compute {ctx.eq.id}: {what} failed{tail}."
    return AuditReport(
        ctx.label,
        ctx.eq.id,
        verdict,
        summary,
        checks,
        variants,
        heatmaps,
        ctx.device,
        ctx.dtype,
        ctx.profile.name,
        ctx.seed,
        notes=_notes(ctx),
    )


def _notes(ctx: AuditContext) -> list[str]:
    """How the target was held to the spec, in a sentence each, where that is not the plain case."""
    notes = []
    masks = [d.ascii for d in ctx.eq.inputs if d.entry_kind == Kind.ADDITIVE_MASK]
    for name in masks:
        pin = ctx.pins.get(name)
        if pin is causal_pin:
            notes.append(
                f"{name} is fixed to the causal mask (attention.causal_mask): the target masks the future "
                "itself"
            )
        elif pin is no_mask_pin:
            notes.append(f"{name} is fixed to 0: the target takes no mask and attends everywhere")
    if ctx.mask == "key_lengths":
        notes.append(
            "the mask is taken as lengths (key_lengths): S is the padding mask (attention.padding_mask) of a "
            "right-padded keep vector drawn per sequence, passed as its count of real keys"
        )
    elif ctx.mask is not None and is_key_mask(ctx.mask):
        notes.append(
            f"the mask is taken per key ({ctx.mask}): S is the padding mask (attention.padding_mask) of "
            "a keep vector drawn per sequence"
        )
    module = ctx.obj if isinstance(ctx.obj, type) else type(ctx.obj)
    if issubclass(module, torch.nn.Module) or ctx.init is not None:  # a class, an instance, a factory
        notes.append("the module runs in eval() mode (dropout off)")
    notes.extend(ctx.labels.describe())
    precision = ctx.compared_at()
    if precision is not None:
        notes.append(
            f"compared at {precision}'s tolerance: {ctx.label} computes in {precision} whatever its inputs' "
            f"dtype ({ctx.precision_reason})"
        )
    if ctx.logits:
        notes.append(
            "the target returns logits: the audit applies the softmax the equation's output includes"
        )
    if ctx.absent:
        notes.append(
            f"the target has no {', '.join(ctx.absent)} (--absent): the reference holds "
            f"{'it' if len(ctx.absent) == 1 else 'them'} at 0"
        )
    return notes


def _closest(variants: list[VariantTrial]) -> str:
    """The candidate whose values came nearest (the largest difference smallest), for a target nothing
    matches: where to look first."""
    near = [v for v in variants if v.max_abs is not None and np.isfinite(v.max_abs)]
    if not near:
        return ""
    best = min(near, key=lambda v: v.max_abs)
    return f" (the closest is {_with_constants(best)}, max |Δ| = {best.max_abs:.3g})"


def _with_constants(v: VariantTrial) -> str:
    if not v.constants:
        return v.name
    return f"{v.name} ({', '.join(f'{k} = {val:g}' for k, val in v.constants.items())})"


def _suggest(eq: Equation, trial: VariantTrial) -> str:
    root = eq.variant_of or eq.id
    if trial.name == "returns logits":
        return f"{eq.id} --logits"
    if trial.name.startswith("pooled as "):
        return f"{eq.id} --pool {trial.name.removeprefix('pooled as ')}"
    if trial.kind == "convention":
        return f"{eq.id} with the other --mask polarity"
    name = trial.name.split(" + ")[0]
    if name.startswith("base "):
        return root
    if trial.kind == "equation":
        return name
    return f"{root}[{name}]"


#: load, make_target, ModuleTarget and AuditError are re-exported from where they live (audit.loading,
#: audit.targets, verify._errors) for callers that import them from here.
__all__ = ["DTYPES", "AuditError", "ModuleTarget", "audit", "load", "make_target"]
