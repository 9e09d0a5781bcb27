"""Properties of the attention equations: softmax rows (also lm's softmax and temperature), causal masking,
permutation equivariance (declared by every family whose equations treat tokens alike), key-value permutation
invariance, and multi-head attention against its single heads.

Each applies to any target through ``target(arrays, sizes)`` in spec layout (verify.targets).
"""

from collections.abc import Mapping

import numpy as np
from hypothesis import strategies as st

from ... import spec
from .._errors import PropertyViolation
from ..strategies import Example, reals
from ..targets import OracleTarget
from ._base import _after_position, _agree, _axis, _changed_after, _no_mask, _with, prop


# --- softmax ---------------------------------------------------------------------------------------
@prop("softmax_rows_sum_to_one", "every row with a finite score sums to 1")
def _sum_to_one(eq, target, example, data, options, tol):
    Z = example.arrays[options["input"]]
    Y = target(example.arrays, example.sizes)[options["output"]]
    live = ~np.isneginf(Z).all(axis=-1)
    sums = Y.sum(axis=-1)
    _agree(
        "softmax_rows_sum_to_one",
        target,
        np.where(live, sums, 1.0),
        np.ones_like(sums),
        "a row of weights does not sum to 1",
        tol,
    )


@prop("softmax_non_negative", "weights are never negative (nor NaN)")
def _non_negative(eq, target, example, data, options, tol):
    Y = target(example.arrays, example.sizes)[options["output"]]
    bad = ~(Y >= 0)
    if bad.any():
        where = [int(i) for i in np.argwhere(bad)[0]]
        raise PropertyViolation(
            f"{target.name} violates softmax_non_negative: weight {where} is {Y[tuple(where)]:.6g}",
            check="property:softmax_non_negative",
        )


@prop("softmax_shift_invariant", "adding a constant to a row of scores leaves its weights unchanged")
def _shift(eq, target, example, data, options, tol):
    Z = example.arrays[options["input"]]
    shift = data.draw(reals(Z.shape[:-1]), label="shift per row")
    before = target(example.arrays, example.sizes)[options["output"]]
    after = target(_with(example, **{options["input"]: Z + shift[..., None]}), example.sizes)
    _agree(
        "softmax_shift_invariant",
        target,
        after[options["output"]],
        before,
        "shifting a row of scores changed its weights",
        tol,
    )


# --- attention -------------------------------------------------------------------------------------
def _causal_mask_like(S: np.ndarray) -> np.ndarray:
    rows, cols = S.shape[-2:]
    return np.broadcast_to(np.where(np.triu(np.ones((rows, cols)), 1) > 0, -np.inf, 0.0), S.shape).copy()


@prop("causal", "with the causal mask, perturbing tokens after i leaves outputs up to i unchanged")
def _causal(eq, target, example, data, options, tol):
    tokens: dict[str, int] = options["tokens"]
    first = next(iter(tokens))
    n = example.arrays[first].shape[_axis(eq, first, tokens[first], example.batch)]
    i = _after_position(data, n)
    base = _with(example, **{options["mask"]: _causal_mask_like(example.arrays[options["mask"]])})
    moved = _changed_after(data, eq, base, tokens, i, example.batch)
    before = target(base, example.sizes)
    after = target(moved, example.sizes)
    for out, ax in options["output_tokens"].items():
        axis = _axis(eq, out, ax, example.batch)
        past = np.take(before[out], range(i + 1), axis=axis)
        _agree(
            "causal",
            target,
            np.take(after[out], range(i + 1), axis=axis),
            past,
            f"changing tokens after position {i} changed {out} at a position ≤ {i}",
            tol,
        )


def _permuted(eq, example, data, options, label):
    """The unmasked example, and a copy with its token inputs permuted by a drawn permutation."""
    tokens: dict[str, int] = options["tokens"]
    first = next(iter(tokens))
    base = _no_mask(example, options)
    n = base[first].shape[_axis(eq, first, tokens[first], example.batch)]
    perm = np.array(data.draw(st.permutations(range(n)), label=label))
    moved = dict(base)
    for name, ax in tokens.items():
        moved[name] = np.take(base[name], perm, axis=_axis(eq, name, ax, example.batch))
    return base, moved, perm


@prop("permutation_equivariance", "without a mask, permuting the tokens permutes the outputs")
def _equivariance(eq, target, example, data, options, tol):
    base, moved, perm = _permuted(eq, example, data, options, "permutation")
    before = target(base, example.sizes)
    after = target(moved, example.sizes)
    for out, ax in options["output_tokens"].items():
        axis = _axis(eq, out, ax, example.batch)
        _agree(
            "permutation_equivariance",
            target,
            after[out],
            np.take(before[out], perm, axis=axis),
            f"permuting the tokens by {perm.tolist()} did not permute {out} alike",
            tol,
        )


@prop("kv_permutation_invariance", "permuting keys and values together leaves the output unchanged")
def _kv_invariance(eq, target, example, data, options, tol):
    base, moved, perm = _permuted(eq, example, data, options, "key permutation")
    before = target(base, example.sizes)
    after = target(moved, example.sizes)
    for out in before:
        _agree(
            "kv_permutation_invariance",
            target,
            after[out],
            before[out],
            f"permuting keys and values by {perm.tolist()} changed {out}",
            tol,
        )


_HEAD_FAMILIES = ("W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V")


def _one_head(example: Example, m: int, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    d_v = example.sizes["d_v"]
    out = dict(arrays)
    for name in _HEAD_FAMILIES:
        if name in arrays:  # (the no_bias variant has no biases)
            out[name] = arrays[name][m : m + 1]
    out["W_O"] = arrays["W_O"][m * d_v : (m + 1) * d_v]
    return out


@prop(
    "heads_concat", "multi-head attention is the sum of its heads, each with its block of W_O", resizes=True
)
def _heads_concat(eq, target, example, data, options, tol):
    sizes = example.sizes
    whole = target(example.arrays, sizes)["A"]
    one = {**sizes, "M": 1}
    total = np.zeros_like(whole)
    for m in range(sizes["M"]):
        arrays = _one_head(example, m, example.arrays)
        if "b_O" in arrays:  # (the no_bias variant has none)
            arrays["b_O"] = np.zeros_like(arrays["b_O"])
        total = total + target(arrays, one)["A"]
    if "b_O" in example.arrays:
        total = total + example.arrays["b_O"][:, None]
    _agree(
        "heads_concat",
        target,
        whole,
        total,
        "the output differs from the concatenated single heads [P_1, …, P_M] W_O",
        tol,
    )


@prop(
    "single_head", "with M = 1, multi-head attention is scaled dot-product attention, projected", resizes=True
)
def _single_head(eq, target, example, data, options, tol):
    sizes = {**example.sizes, "M": 1}
    arrays = _one_head(
        example, data.draw(st.integers(0, example.sizes["M"] - 1), label="head"), example.arrays
    )
    got = target(arrays, sizes)["A"]
    H = arrays["H"]
    Ht = np.swapaxes(H, -1, -2)  # (*batch, n, d_e)

    def bias(name: str) -> np.ndarray | float:  # the no_bias variant has none
        return arrays[name][0] if name in arrays else 0.0

    Q = Ht @ arrays["W_Q"][0] + bias("b_Q")
    K = Ht @ arrays["W_K"][0] + bias("b_K")
    V = Ht @ arrays["W_V"][0] + bias("b_V")
    # the same form of attention as the variant under test (its scale, its fully-masked-row convention)
    variant = getattr(eq, "variant_name", None)
    base = spec.get("attention.scaled_dot_product")
    sdp_eq = base.variant(variant) if variant in base.variant_names else base
    if variant == "scale_sqrt_d_e":  # QKᵀ/√d_e = (Q √d_k/√d_e) Kᵀ/√d_k
        Q = Q * np.sqrt(sizes["d_k"] / sizes["d_e"])
    P = OracleTarget(sdp_eq)(
        {"Q": Q, "K": K, "V": V, "S": arrays["S"]}, {k: sizes[k] for k in ("n", "d_k", "d_v")}
    )["P"]
    want = np.swapaxes(P @ arrays["W_O"], -1, -2)
    if "b_O" in arrays:
        want = want + arrays["b_O"][:, None]
    _agree(
        "single_head",
        target,
        got,
        want,
        "with one head the output is not (softmax(Q Kᵀ/√d_k + S) V W_O)ᵀ + b_O 1ᵀ",
        tol,
    )
