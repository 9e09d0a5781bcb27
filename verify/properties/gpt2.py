"""Properties of the gpt2 equations: causality over token ids, prefix consistency (what a key-value cache
relies on), the tied head's distribution, the shifted loss, and the generation step.

Each applies to any target of its equation through ``target(arrays, sizes)`` in spec layout.
"""

import numpy as np
from hypothesis import strategies as st

from .._errors import PropertyViolation
from ..strategies import Example, tensors
from ._base import PROPERTIES, _agree, _axis, _with, prop


def _gpt2_prop(name: str, description: str):
    """``prop``, refusing a name that is already registered (an override would drop the other check)."""
    if name in PROPERTIES:
        raise RuntimeError(f"property {name!r} is registered twice")
    return prop(name, description)


def _token_axis(eq, example, options) -> tuple[str, int, str, int]:
    tokens, output = options["tokens"], options["output"]
    return tokens, _axis(eq, tokens, 0, example.batch), output, _axis(eq, output, 1, example.batch)


# --- gpt2.forward ------------------------------------------------------------------------------------
@_gpt2_prop(
    "causal_tokens", "changing the tokens after position i leaves the outputs at positions ≤ i unchanged"
)
def _causal_tokens(eq, target, example, data, options, tol):
    _causality("causal_tokens", eq, target, example, data, options, tol)


def _causality(prop_name, eq, target, example, data, options, tol):
    name, axis, out, out_axis = _token_axis(eq, example, options)
    k = example.arrays[name]
    n, v = k.shape[axis], example.sizes["v"]
    if v < 2:
        return
    i = data.draw(st.integers(0, n - 1), label="position i")
    shift = data.draw(st.integers(1, v - 1), label="token shift")
    future = (np.arange(n) > i).reshape([-1 if a == axis else 1 for a in range(k.ndim)])
    moved = np.where(future, (k + shift) % v, k)  # every later token changes
    before = target(example.arrays, example.sizes)[out]
    after = target(_with(example, **{name: moved}), example.sizes)[out]
    _agree(
        prop_name,
        target,
        np.take(after, range(i + 1), axis=out_axis),
        np.take(before, range(i + 1), axis=out_axis),
        f"changing the tokens after position {i} changed {out} at a position ≤ {i}",
        tol,
    )


@_gpt2_prop(
    "causal_large_scores",
    "with the queries and keys scaled up (scores of order 10⁸), changing the tokens after position i still "
    "leaves the outputs at positions ≤ i unchanged: the causal mask is −∞, not a finite fill such as −10⁴",
)
def _causal_large_scores(eq, target, example, data, options, tol):
    # A finite fill f leaks a future key once its score exceeds the largest allowed one by about |f| + 745
    # (exp underflows below −745 in float64); the drawn reals (|x| ≤ 3) keep scores far below 10⁴.
    factor = float(options.get("factor", 1e4))
    arrays = {k: (a * factor if k in options["scale"] else a) for k, a in example.arrays.items()}
    scaled = Example(example.sizes, example.batch, arrays)
    _causality("causal_large_scores", eq, target, scaled, data, options, tol)


@_gpt2_prop(
    "prefix_consistency",
    "the forward pass of the first i tokens equals the first i columns of the full pass (the premise of a "
    "key-value cache)",
)
def _prefix_consistency(eq, target, example, data, options, tol):
    name, axis, out, out_axis = _token_axis(eq, example, options)
    k = example.arrays[name]
    n = k.shape[axis]
    i = data.draw(st.integers(1, n), label="prefix length i")
    full = target(example.arrays, example.sizes)[out]
    prefix = target(_with(example, **{name: np.take(k, range(i), axis=axis)}), {**example.sizes, "n": i})[out]
    _agree(
        "prefix_consistency",
        target,
        prefix,
        np.take(full, range(i), axis=out_axis),
        f"the forward pass of the first {i} tokens differs from the full pass at those positions",
        tol,
    )


# --- gpt2.lm_head ------------------------------------------------------------------------------------
@_gpt2_prop(
    "lm_head_distribution",
    "each column of Ŷ is a distribution whose log-odds are the tied logits: log Ŷ_ji − log Ŷ_j'i = "
    "(e_j − e_j')ᵀ h_i",
)
def _lm_head_distribution(eq, target, example, data, options, tol):
    H, E = example.arrays[options["input"]], example.arrays["E"]
    Y = target(example.arrays, example.sizes)[options["output"]]  # (*batch, v, n)
    sums = Y.sum(axis=-2)
    _agree("lm_head_distribution", target, sums, np.ones_like(sums), "a column of Ŷ does not sum to 1", tol)
    Z = np.swapaxes(E, 0, 1) @ H  # (*batch, v, n): the tied logits Eᵀ H
    top = np.argmax(Y, axis=-2)[..., None, :]
    with np.errstate(divide="ignore"):
        log_odds = np.log(Y) - np.take_along_axis(np.log(Y), top, axis=-2)
    want = Z - np.take_along_axis(Z, top, axis=-2)
    live = Y > 1e-300
    _agree(
        "lm_head_distribution",
        target,
        np.where(live, log_odds, 0.0),
        np.where(live, want, 0.0),
        "the log-odds of Ŷ are not the differences of the logits Eᵀ H",
        tol,
    )


# --- gpt2.loss ---------------------------------------------------------------------------------------
@_gpt2_prop(
    "shifted_loss",
    "the loss scores column i on token i + 1: it ignores the first token and the last column, and is "
    "(n − 1) log v for uniform predictions (log v for the mean over the n − 1 predictions: option mean, "
    "NaN at n = 1)",
)
def _shifted_loss(eq, target, example, data, options, tol):
    Yname, kname, out = options["probabilities"], options["tokens"], options["output"]
    mean = bool(options.get("mean", False))
    Y, k = example.arrays[Yname], example.arrays[kname]
    sizes = example.sizes
    n, v = sizes["n"], sizes["v"]
    base = target(example.arrays, sizes)[out]
    if np.any(base < -tol.atol):
        raise PropertyViolation(
            f"{target.name} violates shifted_loss: the loss {np.min(base):.6g} is negative, although "
            "every probability is at most 1",
            check="property:shifted_loss",
        )
    new_last = data.draw(
        tensors(eq.declared(Yname).entry_kind, (*Y.shape[:-1], 1), sizes), label="last column"
    )
    new_first = data.draw(st.integers(0, v - 1), label="first token")
    moved = _with(example, **{Yname: np.concatenate([Y[..., :-1], new_last], axis=-1)})
    moved[kname] = k.copy()
    moved[kname][..., 0] = new_first
    _agree(
        "shifted_loss",
        target,
        target(moved, sizes)[out],
        base,
        "changing the first token or the last column of Ŷ changed the loss (labels are not shifted by one)",
        tol,
    )
    uniform = target(_with(example, **{Yname: np.full_like(Y, 1.0 / v)}), sizes)[out]
    if not mean:
        want = (n - 1) * np.log(v)
        what = f"(n − 1) log v = {want:.6g} (a sum over the n − 1 predicted tokens)"
    elif n > 1:
        want = np.log(v)
        what = f"log v = {want:.6g} (the mean over the n − 1 predicted tokens)"
    else:  # nothing is predicted: the mean is 0/0
        want, what = np.nan, "NaN (the mean over no predicted token at n = 1)"
    message = f"uniform predictions do not give {what}"
    _agree("shifted_loss", target, uniform, np.full_like(uniform, want), message, tol)


# --- gpt2.generate -----------------------------------------------------------------------------------
def _last_logits(example) -> np.ndarray:
    """``z = Eᵀ h_n`` per example, shaped (*batch, v)."""
    H, E = example.arrays["H"], example.arrays["E"]
    return H[..., :, -1] @ E


@_gpt2_prop(
    "next_token_distribution",
    "p is a distribution on the top-k logits (ties kept) with log-odds (z_j − z_j')/τ, and the greedy "
    "token is the first largest logit",
)
def _next_token_distribution(eq, target, example, data, options, tol):
    out = target(example.arrays, example.sizes)
    p, greedy = out["p"], out["k_next"]
    z = _last_logits(example)
    tau = float(example.arrays["tau"])
    sums = p.sum(axis=-1)
    _agree("next_token_distribution", target, sums, np.ones_like(sums), "p does not sum to 1", tol)
    first_max = np.argmax(z, axis=-1)  # numpy's argmax also takes the first largest entry
    _agree(
        "next_token_distribution", target, greedy, first_max.astype(np.float64),
        "the greedy token is not the first largest logit", tol,
    )  # fmt: skip
    if options.get("top_k"):
        larger = (z[..., None, :] > z[..., :, None]).sum(axis=-1)  # per entry: how many logits are larger
        kept = larger < example.sizes["k_top"]
    else:
        kept = np.ones_like(z, dtype=bool)
    _agree(
        "next_token_distribution", target, np.where(kept, 0.0, p), np.zeros_like(p),
        f"p gives weight to a logit outside the top k = {example.sizes.get('k_top')}", tol,
    )  # fmt: skip
    top = first_max[..., None]
    with np.errstate(divide="ignore"):
        log_odds = np.log(p) - np.take_along_axis(np.log(p), top, axis=-1)
    want = (z - np.take_along_axis(z, top, axis=-1)) / tau
    live = kept & (p > 1e-300)
    _agree(
        "next_token_distribution", target, np.where(live, log_odds, 0.0), np.where(live, want, 0.0),
        "the log-odds of p are not the logit differences divided by τ", tol,
    )  # fmt: skip


@_gpt2_prop(
    "next_token_scale_invariance",
    "scaling the logits and the temperature by the same c > 0 (E → cE, τ → cτ) changes neither p nor k̂",
)
def _next_token_scale_invariance(eq, target, example, data, options, tol):
    c = data.draw(st.sampled_from([0.25, 0.5, 2.0, 4.0]), label="scale c")  # powers of 2: exact in floats
    before = target(example.arrays, example.sizes)
    after = target(
        _with(example, E=example.arrays["E"] * c, tau=np.asarray(example.arrays["tau"]) * c), example.sizes
    )
    for name in before:
        _agree(
            "next_token_scale_invariance", target, after[name], before[name],
            f"scaling E and τ by {c} changed {name}", tol,
        )  # fmt: skip
