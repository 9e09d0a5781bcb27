"""Properties of the activation equations: applied entry by entry, their symmetry, their range.

Each applies to any target through ``target(arrays, sizes)`` in spec layout (verify.targets).
"""

import numpy as np
from hypothesis import strategies as st

from .._errors import PropertyViolation
from ._base import _agree, _with, prop


# --- activations -----------------------------------------------------------------------------------
@prop("activation_elementwise", "each output entry is the function of the input entry at the same place")
def _elementwise(eq, target, example, data, options, tol):
    X = example.arrays[options["input"]]
    lead = len(example.batch)
    core = X.shape[lead:]
    perm = np.array(data.draw(st.permutations(range(int(np.prod(core)))), label="entry permutation"))

    def shuffle(a: np.ndarray) -> np.ndarray:
        return a.reshape(*a.shape[:lead], -1)[..., perm].reshape(a.shape)

    before = target(example.arrays, example.sizes)[options["output"]]
    after = target(_with(example, **{options["input"]: shuffle(X)}), example.sizes)[options["output"]]
    _agree(
        "activation_elementwise",
        target,
        after,
        shuffle(before),
        "moving the input entries did not move the output entries alike",
        tol,
    )


_IDENTITIES = {
    "difference_is_identity": ("φ(x) − φ(−x) = x", lambda y, y_neg, x: (y - y_neg, x)),
    "sum_is_one": ("φ(x) + φ(−x) = 1", lambda y, y_neg, x: (y + y_neg, np.ones_like(x))),
    "odd": ("φ(−x) = −φ(x)", lambda y, y_neg, x: (y_neg, -y)),
}


@prop("activation_identity", "the activation's symmetry: φ(x) − φ(−x) = x, σ(x) + σ(−x) = 1 or φ odd")
def _identity(eq, target, example, data, options, tol):
    name, how = _IDENTITIES[options["identity"]]
    X = example.arrays[options["input"]]
    y = target(example.arrays, example.sizes)[options["output"]]
    y_neg = target(_with(example, **{options["input"]: -X}), example.sizes)[options["output"]]
    got, want = how(y, y_neg, X)
    _agree("activation_identity", target, got, want, f"{name} does not hold", tol)


@prop("activation_range", "every output lies in the activation's range, also for inputs 10× larger")
def _range(eq, target, example, data, options, tol):
    low, high = options.get("low"), options.get("high")
    X = example.arrays[options["input"]]
    for scale in (1.0, 10.0):
        Y = target(_with(example, **{options["input"]: X * scale}), example.sizes)[options["output"]]
        bad = np.isnan(Y)
        if low is not None:
            bad |= Y < low
        if high is not None:
            bad |= Y > high
        if bad.any():
            where = [int(i) for i in np.argwhere(bad)[0]]
            bounds = f"[{'−∞' if low is None else low}, {'∞' if high is None else high}]"
            raise PropertyViolation(
                f"{target.name} violates activation_range: entry {where} is {Y[tuple(where)]:.6g}, outside "
                f"{bounds} (inputs scaled by {scale:g})",
                check="property:activation_range",
            )
