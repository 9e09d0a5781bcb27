"""Comparison of results under one written tolerance policy per dtype.

An entry passes when ``|actual − expected| ≤ atol + rtol·|expected|``; NaN matches NaN and ±∞ matches the
same infinity, and nothing else matches a non-finite value.

Why these numbers (float64): inputs are O(1) (drawn from [−3, 3]), sizes are at most a few dozen, and the
deepest computation of a check is a few hundred multiply-adds followed by a softmax. Summation in a different
order (the oracle's straight-line program, torch's matmul kernels) then differs by at most a few hundred
ulps, ~1e-13 relative to the largest partial sum. ``rtol = 1e-9, atol = 1e-10`` leave a 1000× margin over
that, while every bug class we test for (a wrong scale, a softmax over the wrong axis, an off-by-one mask, a
missing bias) moves some output by more than 1e-3.

Lower precisions (``lmspec audit --dtype``; the references stay float64, on the unrounded inputs) are set
in units of the unit roundoff u: float32 (u = 2⁻²⁴ ≈ 6.0e-8) ``rtol = 1e-4, atol = 1e-5``, about 1700 u and
170 u, a 10–100× margin over one dot product, softmax or normalisation of O(1) values (the worst correct entry
measured uses 12 % of it); bfloat16 (u = 2⁻⁸ ≈ 3.9e-3) ``rtol = 5e-2, atol = 3e-2``, about 13 u and 8 u, which
covers bfloat16 storage with float32 accumulation (torch's kernels; worst measured: 83 %) and nothing more —
code that takes softmax or statistics in bfloat16 itself exceeds it at some seeds. Neither holds for
composite equations (projections into attention, blocks, models), whose O(1) random weights make intermediate
values O(10³): audit those in float64. docs/tolerances.md gives the reasoning, the measurements, and which bug
classes each precision can and cannot see (bfloat16 cannot tell GELU's tanh form from erf, nor LN's ε).
"""

from dataclasses import dataclass

import numpy as np

from ._errors import ShapeMismatch, ValueMismatch


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float


POLICY: dict[str, Tolerance] = {
    "float64": Tolerance(atol=1e-10, rtol=1e-9),
    "float32": Tolerance(atol=1e-5, rtol=1e-4),
    "float16": Tolerance(atol=5e-3, rtol=1e-2),
    "bfloat16": Tolerance(atol=3e-2, rtol=5e-2),
}


@dataclass(frozen=True)
class Comparison:
    ok: bool
    max_abs: float
    max_rel: float
    where: tuple[int, ...] | None  # index of the worst entry
    actual: float | None
    expected: float | None
    bad: int  # number of entries out of tolerance


def compare(actual: np.ndarray, expected: np.ndarray, tol: Tolerance) -> Comparison:
    """Compare two arrays of one shape entry by entry (see the module docstring for the rule)."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        raise ValueError(f"compare: shapes differ, {a.shape} vs {e.shape}")
    if a.size == 0:
        return Comparison(True, 0.0, 0.0, None, None, None, 0)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a - e)
        if np.isfinite(diff).all():  # no NaN or ±∞ on either side (a checker's usual case): fewer passes
            abs_e = np.abs(e)
            rel = np.divide(diff, abs_e, out=np.zeros_like(diff), where=e != 0)
            bad = diff > tol.atol + tol.rtol * abs_e
        else:
            same_special = (np.isnan(a) & np.isnan(e)) | (np.isinf(a) & np.isinf(e) & (a == e))
            diff = np.where(same_special, 0.0, diff)
            diff = np.where(np.isnan(diff), np.inf, diff)  # one side NaN or ∞: never within tolerance
            # relative to a reference of 0 is undefined (not 1e+304): those entries count in |Δ| only
            rel = np.where(same_special | (e == 0), 0.0, diff / np.where(e == 0, 1.0, np.abs(e)))
            rel = np.where(np.isnan(rel), np.inf, rel)
            bad = diff > tol.atol + tol.rtol * np.where(np.isfinite(e), np.abs(e), 0.0)
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
    n_bad = int(np.count_nonzero(bad))
    return Comparison(
        ok=n_bad == 0,
        max_abs=float(diff[worst]),
        max_rel=float(rel.max()),
        where=tuple(int(i) for i in worst),
        actual=float(a[worst]),
        expected=float(e[worst]),
        bad=n_bad,
    )


def assert_close(
    actual: dict[str, np.ndarray],
    expected: dict[str, np.ndarray],
    tol: Tolerance,
    *,
    check: str,
    who: str,
    reference: str,
) -> Comparison:
    """Compare every output; raise ShapeMismatch or ValueMismatch naming the output and the worst entry."""
    worst: Comparison | None = None
    for name, want in expected.items():
        if name not in actual:
            raise ShapeMismatch(f"{who} returned no value for {name}", check=check)
        got = np.asarray(actual[name])
        if got.shape != np.shape(want):
            raise ShapeMismatch(
                f"{who}: {name} has shape {got.shape}, the spec expects {np.shape(want)}", check=check
            )
        c = compare(got, want, tol)
        if not c.ok:
            relative = f"relative {c.max_rel:.3g}" if c.expected != 0 else "the reference is 0 there"
            raise ValueMismatch(
                f"{who}: {name}{list(c.where)} = {c.actual:.6g}, {reference} gives {c.expected:.6g} "
                f"(|Δ| = {c.max_abs:.3g}, {relative}; {c.bad} of {got.size} entries "
                f"beyond atol {tol.atol:g} + rtol {tol.rtol:g})",
                check=check,
                details={
                    "output": name,
                    "max_abs": c.max_abs,
                    "max_rel": c.max_rel,
                    "where": list(c.where or ()),
                },
            )
        if worst is None or c.max_abs > worst.max_abs:
            worst = c
    return worst or Comparison(True, 0.0, 0.0, None, None, None, 0)
