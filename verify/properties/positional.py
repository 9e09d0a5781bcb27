"""Properties of the positional equations: the sinusoidal table's bounds and its rotation with the position,
learned positions as a prefix.

Each applies to any target through ``target(arrays, sizes)`` in spec layout (verify.targets).
"""

import math

import numpy as np
from hypothesis import strategies as st

from .._errors import PropertyViolation
from ._base import _agree, prop


# --- positions -------------------------------------------------------------------------------------
@prop("sinusoidal_bounded", "every entry of the sinusoidal table lies in [−1, 1]")
def _bounded(eq, target, example, data, options, tol):
    table = target(example.arrays, example.sizes)[options["output"]]
    bad = ~(np.abs(table) <= 1.0)
    if bad.any():
        where = [int(i) for i in np.argwhere(bad)[0]]
        raise PropertyViolation(
            f"{target.name} violates sinusoidal_bounded: entry {where} is {table[tuple(where)]:.6g}",
            check="property:sinusoidal_bounded",
        )


def sinusoid_pairs(d: int, layout: str) -> list[tuple[int, int, int]]:
    """(sine row, cosine row, frequency index i) of every complete pair of rows."""
    if layout == "interleaved":
        return [(2 * i, 2 * i + 1, i) for i in range(d // 2)]
    half = (d + 1) // 2
    return [(i, half + i, i) for i in range(d - half)]


@prop(
    "sinusoidal_relative_position",
    "Λ_{:,t+k} is Λ_{:,t} rotated, pair by pair, by the angle k ω_i (the same rotation for every t)",
)
def _relative_position(eq, target, example, data, options, tol):
    table = target(example.arrays, example.sizes)[options["output"]]
    d, T = table.shape[-2:]
    if T < 2:
        return
    k = data.draw(st.integers(1, T - 1), label="offset k")
    for r_sin, r_cos, i in sinusoid_pairs(d, options.get("layout", "interleaved")):
        theta = k * math.pow(10_000.0, -2.0 * i / d)
        s, c = table[r_sin, : T - k], table[r_cos, : T - k]
        rotated = np.stack(
            [s * math.cos(theta) + c * math.sin(theta), c * math.cos(theta) - s * math.sin(theta)]
        )
        _agree(
            "sinusoidal_relative_position",
            target,
            np.stack([table[r_sin, k:], table[r_cos, k:]]),
            rotated,
            f"rows ({r_sin}, {r_cos}) at t + {k} are not those at t rotated by {k}·ω_{i}",
            tol,
        )


@prop("learned_positions_prefix", "the encodings of n' ≤ n positions are the first n' of those of n")
def _positions_prefix(eq, target, example, data, options, tol):
    n = example.sizes["n"]
    shorter = data.draw(st.integers(1, n), label="n'")
    whole = target(example.arrays, example.sizes)[options["output"]]
    part = target(example.arrays, {**example.sizes, "n": shorter})[options["output"]]
    _agree(
        "learned_positions_prefix",
        target,
        part,
        whole[..., :shorter],
        f"the first {shorter} positions differ between n = {shorter} and n = {n}",
        tol,
    )


__all__ = ["sinusoid_pairs"]
