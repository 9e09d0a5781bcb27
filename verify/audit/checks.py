"""The audit's own checks beside the verifier's: shape, gradient (against autograd through the generated
code), the edge cases of a masked equation (``value=edges``) and the heat maps of a failed value check."""

import time

import numpy as np
import torch
from hypothesis import strategies as st

from ...spec import Equation, Kind
from .._errors import Mismatch, ShapeMismatch
from ..compare import Tolerance, assert_close
from ..oracle import concrete_shape
from ..runner import Check, Profile, Setting, _describe, _draw, padding_mask
from ..strategies import Example, seeded_tensor, size_tuples
from ..targets import GeneratedTarget, OracleTarget, Target
from .losses import pooled_vjp
from .report import AuditCheck, Heatmap
from .targets import BoundTarget, differentiable


# --- extra checks -------------------------------------------------------------------------------------------
def shape_check(eq: Equation, target: Target, setting: Setting, profile: Profile, seed: int) -> Check:
    pool = size_tuples(eq, 1, seed, "small", fixed=setting.sizes, derive=setting.derive)

    def run(data, record):
        ex = _draw(data, eq, pool, record, setting)
        got = target(ex.arrays, ex.sizes)
        pooled = {
            lay.name for lay in getattr(target, "binding", None).outputs if getattr(lay, "pooled", False)
        }
        want = {o.ascii: _expected_shape(eq, o, ex, o.ascii in pooled) for o in eq.outputs}
        for k, shape in want.items():
            if k not in got:
                if getattr(target, "partial_outputs", False):
                    continue
                raise ShapeMismatch(f"{target.name} returned no value for {k}", check="shape")
            if tuple(np.shape(got[k])) != shape:
                raise ShapeMismatch(
                    f"{target.name}: {k} has shape {tuple(np.shape(got[k]))} in spec layout, the spec "
                    f"expects {shape} ({eq.space(eq.declared(k))})",
                    check="shape",
                )
        return None

    return Check(eq, "shape", target.name, run)


def _expected_shape(eq: Equation, out, ex, pooled: bool = False) -> tuple[int, ...]:
    lead = ex.batch if eq.inputs and not pooled else ()  # a value pooled over the batch has no batch axes
    return (*lead, *concrete_shape(out, ex.sizes))


def gradient_check(eq: Equation, target: BoundTarget, setting: Setting) -> Check | None:
    if not any(differentiable(eq, d.ascii) for d in (*eq.inputs, *eq.params)):
        return None
    if not any(o.entry_kind in (Kind.REAL, Kind.SCORE, Kind.PROBABILITY) for o in eq.outputs):
        return None
    generated = _GeneratedVJP(eq)
    pool = size_tuples(eq, 2, 0, "small", fixed=setting.sizes, derive=setting.derive)

    def run(data, record):
        ex = _draw(data, eq, pool, record, setting)
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="cotangent seed"))
        pooling = getattr(setting.expect, "pool", None)
        returned = {lay.name for lay in target.binding.outputs if lay.name}  # a layout may return a subset
        if pooling is not None:  # one value for the batch: a scalar cotangent for each pooled output
            want_out = {k: v for k, v in setting.expected(generated.values, ex).items() if k in returned}
            cot = {k: rng.standard_normal(()) for k in want_out}
            want = pooled_vjp(eq, pooling, generated.vjp, ex, cot)
        else:
            want_out = generated.values(ex.arrays, ex.sizes)
            cot = {
                k: rng.standard_normal(np.shape(v))
                for k, v in want_out.items()
                if k in returned and eq.declared(k).entry_kind in (Kind.REAL, Kind.SCORE, Kind.PROBABILITY)
            }
            want = generated.vjp(ex.arrays, ex.sizes, cot)
        finite = all(np.isfinite(v).all() for v in (*want_out.values(), *want.values()))
        if not finite:  # masked rows: the derivative is not defined through −∞; values decide there
            return None
        got = target.vjp(ex.arrays, ex.sizes, cot)
        if not got:  # it takes no real-valued tensor the spec differentiates
            return None
        return assert_close(
            {f"∂/∂{k}": v for k, v in got.items()},
            {f"∂/∂{k}": v for k, v in want.items() if k in got},
            _grad_tol(setting.tol),
            check="gradient",
            who=target.name,
            reference="autograd through the generated code",
        )

    return Check(eq, "gradient", target.name, run)


def _grad_tol(tol: Tolerance) -> Tolerance:
    return Tolerance(tol.atol * 10, tol.rtol * 10)  # a backward pass sums once more


class _GeneratedVJP:
    """Autograd through the generated code, in float64."""

    def __init__(self, eq: Equation) -> None:
        self.eq = eq
        self.gen = GeneratedTarget(eq)

    def values(self, example, sizes):
        return self.gen(example, sizes)

    def vjp(self, example, sizes, cot):
        args, leaves = self.gen.tensors(example, grad=lambda name: differentiable(self.eq, name))
        total = 0
        for name, t in self.gen.run(args, sizes).items():
            if name in cot:
                total = total + (t * torch.as_tensor(cot[name])).sum()
        names = list(leaves)
        if not isinstance(total, torch.Tensor) or not total.requires_grad:  # nothing depends on the inputs
            return {k: np.zeros(tuple(leaves[k].shape)) for k in names}
        grads = torch.autograd.grad(total, [leaves[k] for k in names], allow_unused=True)
        return {
            k: (np.zeros(leaves[k].shape) if g is None else g.detach().numpy())
            for k, g in zip(names, grads, strict=True)
        }


# --- edge cases ---------------------------------------------------------------------------------------------
def edge_check(
    eq: Equation, target: BoundTarget, setting: Setting, seed: int, oracle: bool
) -> AuditCheck | None:
    """``value=edges``: the inputs random examples rarely reach, built on purpose — a fully masked row,
    and scores of ±10⁵ (which beat a −10⁴ mask fill). Only for equations that take an additive mask.
    The reference is the exact oracle when ``oracle`` (the target's sizes are within its reach), else the
    generated code. None when the equation takes no additive mask the target does not fix."""
    masks = [d for d in eq.inputs if d.entry_kind == Kind.ADDITIVE_MASK and d.ascii not in setting.pins]
    if not masks:
        return None
    pool = size_tuples(eq, 4, seed, "small", fixed=setting.sizes, derive=setting.derive)
    sizes = max(pool, key=lambda z: (min(z.get("n", 1), 4), z.get("M", 1)))
    rng = np.random.default_rng(seed)
    batch = setting.batches[-1]
    base = {}
    for d in (*eq.inputs, *eq.params):
        shape = concrete_shape(d, sizes)
        base[d.ascii] = seeded_tensor(rng, d.entry_kind, (*batch, *shape) if d in eq.inputs else shape, sizes)
    reference = OracleTarget(eq) if oracle else GeneratedTarget(eq)
    cases = []
    masked_row = dict(base)
    for m in masks:
        arr = np.where(rng.random(masked_row[m.ascii].shape) < 0.3, -np.inf, 0.0)
        arr[..., 0, :] = -np.inf
        if m.ascii in setting.padding:  # a per-key mask: the first sequence all padding, the others not
            *lead, n_q, n_k = arr.shape
            keep = (rng.random((*lead, n_k)) >= 0.3).astype(np.float64)
            keep[..., 0] = 1.0
            keep[(0,) * len(lead)] = 0.0
            arr = padding_mask(keep, n_q)
        masked_row[m.ascii] = arr
    cases.append(("a fully masked row" if not setting.padding else "a fully padded sequence", masked_row))
    large = {
        k: (v * 100.0 if eq.declared(k).entry_kind == Kind.REAL and k not in setting.pins else v)
        for k, v in base.items()
    }
    for m in masks:
        arr = np.where(rng.random(large[m.ascii].shape) < 0.3, -np.inf, 0.0)
        arr[..., :, 0] = 0.0  # no fully masked row here
        if m.ascii in setting.padding:
            arr = padding_mask(np.isfinite(arr[..., 0, :]).astype(np.float64), arr.shape[-2])
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
                str(exc) if isinstance(exc, Mismatch) else f"{target.name} raised {type(exc).__name__}: {exc}"
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


# --- heat maps ----------------------------------------------------------------------------------------------
def _slice2d(arr: np.ndarray, where: list[int]) -> np.ndarray:
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 0:
        return arr.reshape(1, 1)
    if arr.ndim == 1:
        return arr.reshape(1, -1)
    lead = tuple(where[: arr.ndim - 2]) if len(where) >= arr.ndim - 2 else (0,) * (arr.ndim - 2)
    return arr[lead]


def value_maps(eq: Equation, target: BoundTarget, check: AuditCheck, ex) -> list[Heatmap]:
    """Heat maps of a failed value check's example: the output's slice with the largest difference and,
    for attention, the weights (read by feeding V = I)."""
    reference = OracleTarget(eq) if check.name == "value=oracle" else GeneratedTarget(eq)
    got = target(ex.arrays, ex.sizes)
    want = reference(ex.arrays, ex.sizes)
    details_out = next((k for k in want if k in got), None)
    where = list(np.unravel_index(0, (1,)))
    maps = []
    if details_out is not None:
        g, w = np.asarray(got[details_out]), np.asarray(want[details_out])
        if g.shape == w.shape:
            with np.errstate(invalid="ignore"):  # ∞ − ∞ where both sides are masked
                diff = np.abs(np.nan_to_num(g - w, nan=np.inf))
            where = [int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape)] if diff.size else []
        decl = eq.declared(details_out)
        maps.append(
            Heatmap(
                f"output {details_out} (spec layout {eq.space(decl)}), the slice with the largest difference",
                check.name,
                _slice2d(g, where),
                _slice2d(w, where),
                "row",
                "column",
            )
        )
    names = {d.ascii for d in eq.inputs}
    if {"Q", "K", "V"} <= names and "d_v" in eq.free_axes:
        weights = _attention_weights(eq, target, reference, ex)
        if weights is not None:
            tw, sw = weights
            maps.insert(
                0,
                Heatmap(
                    "attention weights (read by feeding V = I: P = softmax(QKᵀ/√d_k + S) V)",
                    check.name,
                    _slice2d(tw, where),
                    _slice2d(sw, where),
                    "query i",
                    "key j",
                ),
            )
    return maps


def _attention_weights(eq, target, reference, ex):
    n = int(ex.sizes["n"])
    sizes = {**ex.sizes, "d_v": n}
    arrays = dict(ex.arrays)
    arrays["V"] = np.broadcast_to(np.eye(n), (*ex.batch, n, n)).copy()
    out = eq.outputs[0].ascii
    try:
        return target(arrays, sizes)[out], reference(arrays, sizes)[out]
    except Exception:  # noqa: BLE001 - a target bound to fixed sizes may refuse d_v = n
        return None
