"""Properties of the positional, activation, norm and transformer equations.

Each applies to any target (impl/, the oracle, generated code, a third-party implementation) through the
``target(arrays, sizes)`` convention of verify.targets, arrays in spec layout (``H`` is ``d_e × n`` after any
batch axes). Options come from the equation's ``Invariant`` declarations in spec/.
"""

import math

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ...spec import Family
from .._errors import PropertyViolation
from ..strategies import GRID, reals, tensors
from . import _agree, _axis, _with, prop

#: Positive factors for scaling properties: multiples of 1/64 in [1/8, 4], so that a·h + b stays exact.
_POSITIVE = st.integers(8, 256).map(lambda k: k / GRID)


def _positive(shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(np.float64, shape, elements=_POSITIVE, fill=st.nothing())


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


# --- layer norm ------------------------------------------------------------------------------------
def _eps(example, options) -> float:
    name = options.get("eps")
    return float(np.asarray(example.arrays[name])) if name else 0.0


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


# --- tokens ----------------------------------------------------------------------------------------
@prop("ffn_position_wise", "each output column is the network applied to that input column alone")
def _position_wise(eq, target, example, data, options, tol):
    name, out = options["input"], options["output"]
    whole = target(example.arrays, example.sizes)[out]
    C = example.arrays[name]
    for i in range(C.shape[-1]):
        alone = target(_with(example, **{name: C[..., i : i + 1]}), {**example.sizes, "n": 1})[out]
        _agree(
            "ffn_position_wise",
            target,
            alone,
            whole[..., i : i + 1],
            f"column {i} computed alone differs from column {i} of the whole",
            tol,
        )


@prop("input_token_locality", "changing token j changes output column j only")
def _token_locality(eq, target, example, data, options, tol):
    name, out = options["input"], options["output"]
    axis = _axis(eq, name, options["input_axis"], example.batch)
    out_axis = _axis(eq, out, options["output_axis"], example.batch)
    arr = example.arrays[name]
    n = arr.shape[axis]
    j = data.draw(st.integers(0, n - 1), label="token j")
    fresh = data.draw(tensors(eq.declared(name).entry_kind, arr.shape, example.sizes), label=f"new {name}")
    at_j = (np.arange(n) == j).reshape([-1 if k == axis else 1 for k in range(arr.ndim)])
    before = target(example.arrays, example.sizes)[out]
    after = target(_with(example, **{name: np.where(at_j, fresh, arr)}), example.sizes)[out]
    others = [i for i in range(before.shape[out_axis]) if i != j]
    _agree(
        "input_token_locality",
        target,
        np.take(after, others, axis=out_axis),
        np.take(before, others, axis=out_axis),
        f"changing token {j} changed another column of {out}",
        tol,
    )


@prop("decoder_causal", "(a built-in causal mask) changing tokens after i leaves outputs up to i unchanged")
def _causal_prefix(eq, target, example, data, options, tol):
    tokens: dict[str, int] = options["tokens"]
    first = next(iter(tokens))
    n = example.arrays[first].shape[_axis(eq, first, tokens[first], example.batch)]
    i = data.draw(st.integers(0, n - 1), label="position i")
    moved = dict(example.arrays)
    for name, ax in tokens.items():
        arr = example.arrays[name]
        axis = _axis(eq, name, ax, example.batch)
        noise = data.draw(reals(arr.shape), label=f"new {name}")
        future = (np.arange(arr.shape[axis]) > i).reshape([-1 if k == axis else 1 for k in range(arr.ndim)])
        moved[name] = np.where(future, noise, arr)
    before = target(example.arrays, example.sizes)
    after = target(moved, example.sizes)
    for out, ax in options["output_tokens"].items():
        axis = _axis(eq, out, ax, example.batch)
        _agree(
            "decoder_causal",
            target,
            np.take(after[out], range(i + 1), axis=axis),
            np.take(before[out], range(i + 1), axis=axis),
            f"changing tokens after position {i} changed {out} at a position ≤ {i}",
            tol,
        )


# --- blocks ----------------------------------------------------------------------------------------
@prop(
    "block_zero_sublayers",
    "with the sublayers' output projections zero, a pre-LN block (stack) is the identity (then the final "
    "LN) and a post-LN block applies its layer norms only",
)
def _zero_sublayers(eq, target, example, data, options, tol):
    zeroed = {k: np.zeros_like(example.arrays[k]) for k in options["zero"]}
    got = target(_with(example, **zeroed), example.sizes)[options["output"]]
    want = example.arrays[options["input"]]
    eps = _eps(example, options)
    per_layer = isinstance(eq.declared(options["norms"][0][0]), Family)
    layers = example.sizes["L"] if per_layer else 1
    if options["form"] == "post":
        for layer in range(layers):
            for a, b in options["norms"]:
                alpha, beta = example.arrays[a], example.arrays[b]
                if per_layer:
                    alpha, beta = alpha[layer], beta[layer]
                want = reference_layer_norm(want, alpha, beta, eps)
    if "final" in options:
        a, b = options["final"]
        want = reference_layer_norm(want, example.arrays[a], example.arrays[b], eps)
    what = {"pre": "the input (then the final LN)", "post": "the input through the block's layer norms"}
    _agree(
        "block_zero_sublayers",
        target,
        got,
        want,
        f"with {', '.join(options['zero'])} = 0 the output is not {what[options['form']]}",
        tol,
    )


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


__all__ = ["reference_layer_norm", "sinusoid_pairs"]
