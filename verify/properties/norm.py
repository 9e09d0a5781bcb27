"""Properties of the norm equations: layer norm's column statistics and its invariance to an affine change
of a column; ``reference_layer_norm``, LN in NumPy, which the transformer's properties build on.

Each applies to any target through ``target(arrays, sizes)`` in spec layout (``H`` is ``d_e × n`` after any
batch axes).
"""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..strategies import GRID, reals
from ._base import _agree, _eps, _with, prop

#: Positive factors for scaling properties: multiples of 1/64 in [1/8, 4], so that a·h + b stays exact.
_POSITIVE = st.integers(8, 256).map(lambda k: k / GRID)


def _positive(shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(np.float64, shape, elements=_POSITIVE, fill=st.nothing())


# --- layer norm ------------------------------------------------------------------------------------
def reference_layer_norm(H: np.ndarray, alpha: np.ndarray, beta: np.ndarray, eps: float = 0.0) -> np.ndarray:
    """LN of every column of ``H`` (spec layout ``…, d_e, n``), population variance; 0 for σ = 0, ε = 0."""
    mu = H.mean(axis=-2, keepdims=True)
    var = ((H - mu) ** 2).mean(axis=-2, keepdims=True)
    if eps > 0:
        normed = (H - mu) / np.sqrt(var + eps)
    else:
        normed = np.where(var > 0, (H - mu) / np.sqrt(np.where(var > 0, var, 1.0)), 0.0)
    return alpha[:, None] * normed + beta[:, None]


@prop(
    "layer_norm_statistics",
    "with α = 1, β = 0 every column has mean 0 and population spread 1 (σ/√(σ² + ε) with ε; 0 for a "
    "constant column); with α, β the output is α ⊙ that + β",
)
def _ln_statistics(eq, target, example, data, options, tol):
    H = example.arrays[options["input"]]
    alpha, beta = example.arrays["alpha"], example.arrays["beta"]
    unit = _with(example, alpha=np.ones_like(alpha), beta=np.zeros_like(beta))
    Y = target(unit, example.sizes)[options["output"]]
    eps = _eps(example, options)
    var = H.var(axis=-2)
    spread = np.sqrt(var / (var + eps)) if eps > 0 else (var > 0).astype(np.float64)
    _agree(
        "layer_norm_statistics", target, Y.mean(axis=-2), np.zeros_like(var), "a column's mean is not 0", tol
    )
    _agree(
        "layer_norm_statistics",
        target,
        Y.std(axis=-2),
        spread,
        "a column's population spread is not "
        + ("σ/√(σ² + ε)" if eps > 0 else "1 (0 for a constant column)"),
        tol,
    )
    full = target(example.arrays, example.sizes)[options["output"]]
    _agree(
        "layer_norm_statistics",
        target,
        full,
        alpha[:, None] * Y + beta[:, None],
        "the output is not α ⊙ LN(h; 1, 0) + β",
        tol,
    )


@prop(
    "layer_norm_affine_invariance",
    "LN(a h + b) = LN(h) for every column h, a > 0 and b; with ε, LN_ε(a h + b) = LN_{ε/a²}(h)",
    varies=("eps",),
)
def _ln_affine(eq, target, example, data, options, tol):
    name, out = options["input"], options["output"]
    H = example.arrays[name]
    cols = (*example.batch, 1, H.shape[-1])
    b = data.draw(reals(cols), label="shift b per column")
    if options.get("eps"):
        a = np.full(cols, data.draw(_POSITIVE, label="scale a"))
        eps = _eps(example, options)
        moved = _with(example, **{name: a * H + b})
        want = target(_with(example, **{options["eps"]: np.asarray(eps / a.flat[0] ** 2)}), example.sizes)[
            out
        ]
        what = f"LN_ε(a h + b) differs from LN_(ε/a²)(h) for a = {a.flat[0]:g}"
    else:
        a = data.draw(_positive(cols), label="scale a per column")
        moved = _with(example, **{name: a * H + b})
        want = target(example.arrays, example.sizes)[out]
        what = "LN(a h + b) differs from LN(h) for a column scaled by a > 0 and shifted by b"
    _agree("layer_norm_affine_invariance", target, target(moved, example.sizes)[out], want, what, tol)


__all__ = ["reference_layer_norm"]
