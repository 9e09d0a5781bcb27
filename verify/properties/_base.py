"""The machinery of the properties: ``Property``, the registry ``PROPERTIES``, ``prop`` that fills it, and the
helpers the family modules share (axes in spec layout, agreement within a tolerance, inputs with some arrays
replaced, violations, drawn noise, bounds).

Every property is a function ``check(eq, target, example, data, options, tol)`` that draws what it needs from
Hypothesis's ``data`` and raises PropertyViolation naming itself, the target and the offending entry.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from ...spec import Equation, Family, SpecError
from .._errors import PropertyViolation
from ..compare import Tolerance, compare
from ..strategies import GRID, Example
from ..targets import Target


@dataclass(frozen=True)
class Property:
    name: str
    description: str
    check: Callable[..., None]
    #: it calls the target at other sizes than the example's (one head of the same width)
    resizes: bool = False
    #: option keys naming parameters it varies, not only reads (LN_ε(a h + b) against LN_{ε/a²}(h))
    varies: tuple[str, ...] = ()


PROPERTIES: dict[str, Property] = {}


def prop(name: str, description: str, *, resizes: bool = False, varies: tuple[str, ...] = ()) -> Callable:
    """Register a property under a name no other property has taken. ``resizes`` and ``varies`` tell an
    audit when a target that fixes its sizes or a parameter cannot take part."""

    def register(fn: Callable) -> Callable:
        if name in PROPERTIES and PROPERTIES[name].check is not fn:
            other = PROPERTIES[name].check
            raise SpecError(f"property {name!r} is registered twice ({other.__module__} and {fn.__module__})")
        PROPERTIES[name] = Property(name, description, fn, resizes, tuple(varies))
        return fn

    return register


def _axis(eq: Equation, name: str, axis: int, batch: tuple[int, ...]) -> int:
    """The array axis of spec axis ``axis`` of ``name`` in spec layout, after batch and family axes."""
    decl = eq.declared(name)
    lead = len(batch) if (decl in eq.inputs or decl in eq.outputs) else 0
    return lead + (len(decl.counts) if isinstance(decl, Family) else 0) + axis


def _agree(name: str, target: Target, got: np.ndarray, want: np.ndarray, what: str, tol: Tolerance) -> None:
    c = compare(got, want, tol)
    if not c.ok:
        raise PropertyViolation(
            f"{target.name} violates {name}: {what}; entry {list(c.where)} is {c.actual:.6g}, "
            f"expected {c.expected:.6g} (|Δ| = {c.max_abs:.3g})",
            check=f"property:{name}",
            details={"max_abs": c.max_abs, "max_rel": c.max_rel, "where": list(c.where or ())},
        )


def _with(example: Example, **arrays: np.ndarray) -> dict[str, np.ndarray]:
    out = dict(example.arrays)
    out.update(arrays)
    return out


def _no_mask(example: Example, options: Mapping) -> dict[str, np.ndarray]:
    mask = options.get("mask")
    if mask is None:
        return dict(example.arrays)
    return _with(example, **{mask: np.zeros_like(example.arrays[mask])})


def _violation(name: str, target: Target, what: str, details: dict | None = None) -> PropertyViolation:
    """``<target> violates <name>: <what>``, the check named ``property:<name>``."""
    message = f"{target.name} violates {name}: {what}"
    return PropertyViolation(message, check=f"property:{name}", details=details)


def _eps(example: Example, options: Mapping) -> float:
    """The value of the ε the options name (an input of the example), or 0 without one."""
    name = options.get("eps")
    return float(np.asarray(example.arrays[name])) if name else 0.0


def _first_bad(mask: np.ndarray) -> list[int]:
    """The index of the first true entry of ``mask``."""
    return [int(i) for i in np.argwhere(mask)[0]]


def _token_mask(mask: np.ndarray, arr: np.ndarray, axis: int, batch: int) -> np.ndarray:
    """``mask`` (*batch, n) shaped to broadcast against ``arr`` whose token axis is ``axis``."""
    shape = [1] * arr.ndim
    shape[:batch] = mask.shape[:batch]
    shape[axis] = mask.shape[-1]
    return mask.reshape(shape)


def _noise(data, shape: tuple[int, ...], label: str) -> np.ndarray:
    """New values for part of an input, from one drawn seed (a failure then shrinks quickly)."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label=label))
    return rng.integers(-3 * GRID, 3 * GRID + 1, size=shape) / GRID


def _after_position(data, n: int, label: str = "position i") -> int:
    """A position i with at least one token after it (when n > 1): at i = n − 1 a causality property has
    nothing to change and could not catch a leak."""
    return data.draw(st.integers(0, max(n - 2, 0)), label=label)


def _changed_after(
    data, eq: Equation, arrays: Mapping[str, np.ndarray], tokens: Mapping[str, int], i: int, batch
) -> dict[str, np.ndarray]:
    """``arrays`` with every real entry of the token inputs after position ``i`` replaced by a drawn value
    that differs from it: a leak from any later token then changes some output (a redrawn entry equal to the
    old one would hide it)."""
    moved = dict(arrays)
    for name, ax in tokens.items():
        arr = arrays[name]
        axis = _axis(eq, name, ax, batch)
        noise = _noise(data, arr.shape, f"new {name}")
        noise = np.where(noise == arr, np.where(arr > 0, arr - 1, arr + 1), noise)  # stays in [−3, 3]
        future = (np.arange(arr.shape[axis]) > i).reshape([-1 if k == axis else 1 for k in range(arr.ndim)])
        moved[name] = np.where(future, noise, arr)
    return moved


def _value(name_or_number, result: dict, example: Example) -> np.ndarray | float:
    """A bound given as a number, an output of ``result`` or an input of ``example``."""
    if isinstance(name_or_number, (int, float)):
        return float(name_or_number)
    return result[name_or_number] if name_or_number in result else example.arrays[name_or_number]


def _between(name: str, target: Target, value, low, high, what: str, tol: Tolerance) -> None:
    """``value`` lies entry-wise between ``low`` and ``high`` (either way round), within the tolerance."""
    lo, hi = np.minimum(low, high), np.maximum(low, high)
    slack = tol.atol + tol.rtol * np.maximum(np.abs(lo), np.abs(hi))
    bad = ~((value >= lo - slack) & (value <= hi + slack))
    if bad.any():
        where = _first_bad(bad)
        at = tuple(where)
        raise _violation(
            name,
            target,
            f"{what} entry {where} is {value[at]:.6g}, outside "
            f"[{np.broadcast_to(lo, value.shape)[at]:.6g}, {np.broadcast_to(hi, value.shape)[at]:.6g}]",
        )
