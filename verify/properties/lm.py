"""Properties of the lm equations: probability and loss laws that hold for any correct target.

Each property takes its array names from the equation's ``Invariant`` options, calls the target through the
spec-layout convention (``target(arrays, sizes) -> {output: array}``) and builds its expectation with NumPy
from first principles (counting, enumerating sequences), never from the spec.
"""

import itertools

import numpy as np
from hypothesis import strategies as st

from ..compare import Tolerance
from ..strategies import reals, tensors
from ._base import _agree, _axis, _token_mask, _violation, _with, prop

#: The most sequences ``chain_rule_normalised`` enumerates (v^n of them, n cut down to fit).
MAX_SEQUENCES = 2048


# --- lm.chain_rule --------------------------------------------------------------------------------
@prop(
    "chain_rule_normalised",
    "with conditionals from a causal model, P over all v^n sequences sums to 1 and each prefix's marginal is "
    "the product of its conditionals (the first token's marginal is its conditional)",
)
def _chain_rule(eq, target, example, data, options, tol):
    name = "chain_rule_normalised"
    v, n = example.sizes["v"], example.sizes["n"]
    length = max(j for j in range(1, n + 1) if v**j <= MAX_SEQUENCES or j == 1)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="causal model seed"))
    tables = []  # tables[i][prefix code] = P(· | prefix of length i)
    for i in range(length):
        w = rng.uniform(0.05, 1.0, size=(v**i, v))
        tables.append(w / w.sum(axis=-1, keepdims=True))
    seqs = np.array(list(itertools.product(range(v), repeat=length)), dtype=np.int64)  # lexicographic

    def code(prefix: np.ndarray) -> np.ndarray:
        """The row of a prefix in its table: the prefix read as a number in base v."""
        if prefix.shape[-1] == 0:
            return np.zeros(len(prefix), dtype=np.int64)
        return prefix @ (v ** np.arange(prefix.shape[-1] - 1, -1, -1))

    Y = np.stack([tables[i][code(seqs[:, :i])] for i in range(length)], axis=-1)  # (v^len, v, len)
    out = target({options["conditionals"]: Y, options["tokens"]: seqs}, {**example.sizes, "n": length})
    prob, log_prob = out[options["prob"]], out[options["log_prob"]]
    _agree(name, target, np.exp(log_prob), prob, "exp(log P) differs from P", tol)
    _agree(
        name,
        target,
        prob.sum(keepdims=True),
        np.ones(1),
        f"P summed over all {len(seqs)} sequences is not 1",
        tol,
    )
    joint = prob.reshape((v,) * length)
    for j in range(1, length + 1):
        prefixes = seqs[:: v ** (length - j), :j]
        want = np.ones(len(prefixes))
        for i in range(j):
            want = want * tables[i][code(prefixes[:, :i]), prefixes[:, i]]
        got = joint.sum(axis=tuple(range(j, length))).reshape(-1)
        _agree(name, target, got, want, f"the marginal of the first {j} token(s) is not Π P(w_i | w_<i)", tol)


# --- lm.ngram -------------------------------------------------------------------------------------
@prop(
    "ngram_estimate",
    "C counts the bigrams of k; each row of P̂ is C's row over c(h), or uniform 1/v when c(h) = 0",
)
def _ngram(eq, target, example, data, options, tol):
    name = "ngram_estimate"
    v = example.sizes["v"]
    k = np.asarray(example.arrays[options["tokens"]])
    out = target(example.arrays, example.sizes)
    counts = np.zeros((*k.shape[:-1], v, v))
    for idx in np.ndindex(*k.shape[:-1]):
        seq = k[idx]
        np.add.at(counts[idx], (seq[:-1], seq[1:]), 1.0)
    _agree(name, target, out[options["counts"]], counts, "C is not the bigram count c(h, w)", tol)
    c_h = counts.sum(axis=-1, keepdims=True)
    want = np.where(c_h > 0, counts / np.maximum(c_h, 1), 1.0 / v)
    _agree(name, target, out[options["estimate"]], want, "P̂(w | h) is not c(h, w)/c(h) (1/v if unseen)", tol)


# --- lm.one_hot -----------------------------------------------------------------------------------
@prop("one_hot_columns", "Ω ∈ {0,1}^{v×n}, Ω_{k_i, i} = 1 and every column sums to 1 (1_vᵀ Ω = 1_nᵀ)")
def _one_hot(eq, target, example, data, options, tol):
    name = "one_hot_columns"
    k = np.asarray(example.arrays[options["tokens"]])
    Omega = target(example.arrays, example.sizes)[options["output"]]
    if not np.isin(Omega, (0.0, 1.0)).all():
        raise _violation(name, target, "an entry of Ω is neither 0 nor 1")
    _agree(name, target, Omega.sum(axis=-2), np.ones(k.shape), "a column of Ω does not sum to 1", tol)
    hit = np.take_along_axis(Omega, k[..., None, :], axis=-2)[..., 0, :]
    _agree(name, target, hit, np.ones(k.shape), "Ω_{k_i, i} is not 1", tol)


# --- lm.cross_entropy -----------------------------------------------------------------------------
#: A logit margin after which a softmax is one-hot to within e^{−40} ≈ 4e−18.
MARGIN = 40.0


@prop(
    "cross_entropy_bounds",
    "ℓ > 0 for finite logits; ℓ → 0 as the prediction becomes one-hot at the target and grows without bound "
    "when it becomes one-hot elsewhere; the sum and the mean are ≥ 0",
)
def _ce_bounds(eq, target, example, data, options, tol):
    name = "cross_entropy_bounds"
    v = example.sizes["v"]
    Zn, kn = options["logits"], options["tokens"]
    k = np.asarray(example.arrays[kn])
    out = target(example.arrays, example.sizes)
    ell = out[options["output"]]
    if not (ell > 0).all():
        raise _violation(name, target, f"a per-position loss is {ell.min():.6g}, not > 0, for finite logits")
    for total in options.get("totals", ()):
        value = out[total]
        if (value < 0).any():
            raise _violation(name, target, f"{total} is negative ({value.min():.6g})")
    onehot = np.moveaxis(np.eye(v)[k], -1, -2)  # (*batch, v, n)
    right = target(_with(example, **{Zn: MARGIN * onehot}), example.sizes)[options["output"]]
    _agree(
        name, target, right, np.zeros_like(right), "ℓ is not 0 for a one-hot prediction at the target", tol
    )
    wrong_hot = np.moveaxis(np.eye(v)[(k + 1) % v], -1, -2)
    wrong = target(_with(example, **{Zn: MARGIN * wrong_hot}), example.sizes)[options["output"]]
    what = "ℓ is not the margin for a confident wrong guess"
    _agree(name, target, wrong, np.full_like(wrong, MARGIN), what, tol)


@prop("ignores_padding", "changing the tokens at positions with κ = 0 changes none of the pooled outputs")
def _ignores_padding(eq, target, example, data, options, tol):
    name = "ignores_padding"
    keep_name = options["keep"]
    batch = len(example.batch)
    keep = np.asarray(example.arrays[keep_name]).copy()
    n = keep.shape[-1]
    keep[..., data.draw(st.integers(0, n - 1), label="padded position")] = 0.0  # at least one padded
    base = _with(example, **{keep_name: keep})
    moved = dict(base)
    for tname, ax in options["tokens"].items():
        arr = np.asarray(base[tname])
        axis = _axis(eq, tname, ax, example.batch)
        new = data.draw(
            tensors(eq.declared(tname).entry_kind, arr.shape, example.sizes), label=f"new {tname}"
        )
        moved[tname] = np.where(_token_mask(keep, arr, axis, batch) > 0, arr, new)
    before = target(base, example.sizes)
    after = target(moved, example.sizes)
    for out in options["outputs"]:
        _agree(name, target, after[out], before[out], f"changing padded positions changed {out}", tol)


# --- lm.perplexity --------------------------------------------------------------------------------
@prop("perplexity_uniform", "uniform predictions have perplexity v; any prediction has perplexity ≥ 1")
def _ppl_uniform(eq, target, example, data, options, tol):
    name = "perplexity_uniform"
    v = example.sizes["v"]
    Zn, keep_name, out = options["logits"], options["keep"], options["output"]
    keep = np.asarray(example.arrays[keep_name])
    ppl = target(example.arrays, example.sizes)[out]
    defined = keep.sum(axis=-1) > 0
    if (np.isnan(ppl) != ~defined).any() or (ppl[defined] < 1 - tol.atol).any():
        raise _violation(name, target, f"perplexity {ppl} is not ≥ 1 (NaN exactly when nothing is kept)")
    Z = np.asarray(example.arrays[Zn])
    level = data.draw(reals((*Z.shape[:-2], 1, Z.shape[-1])), label="constant logit of each column")
    keep1 = keep.copy()
    keep1[..., 0] = 1.0
    uniform = target(
        _with(example, **{Zn: np.broadcast_to(level, Z.shape).copy(), keep_name: keep1}), example.sizes
    )
    _agree(
        name,
        target,
        uniform[out],
        np.full(keep.shape[:-1], float(v)),
        "uniform predictions do not give v",
        tol,
    )


def _cut(eq, example, options, positions) -> dict[str, np.ndarray]:
    arrays = dict(example.arrays)
    for tname, ax in options["tokens"].items():
        arrays[tname] = np.take(arrays[tname], positions, axis=_axis(eq, tname, ax, example.batch))
    return arrays


@prop(
    "perplexity_pools_tokens",
    "the perplexity of a sequence pools its tokens: cut in two, exp of the token-weighted mean of the parts' "
    "log-perplexities gives it back; reordering the positions leaves it unchanged",
)
def _ppl_pools(eq, target, example, data, options, tol):
    name = "perplexity_pools_tokens"
    n = example.sizes["n"]
    out = options["output"]
    keep = np.asarray(example.arrays[options["keep"]])
    whole = target(example.arrays, example.sizes)[out]
    perm = np.array(data.draw(st.permutations(range(n)), label="order of positions"))
    shuffled = target(_cut(eq, example, options, perm), example.sizes)[out]
    _agree(
        name,
        target,
        shuffled,
        whole,
        f"reordering the positions by {perm.tolist()} changed the perplexity",
        tol,
    )
    if n < 2:
        return
    j = data.draw(st.integers(1, n - 1), label="cut point")
    total = np.zeros(keep.shape[:-1])
    count = np.zeros(keep.shape[:-1])
    for part in (np.arange(j), np.arange(j, n)):
        ppl = target(_cut(eq, example, options, part), {**example.sizes, "n": len(part)})[out]
        kept = keep[..., part].sum(axis=-1)
        total = total + np.where(kept > 0, kept * np.log(np.where(kept > 0, ppl, 1.0)), 0.0)
        count = count + kept
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = np.where(count > 0, np.exp(total / np.maximum(count, 1)), np.nan)
    _agree(name, target, whole, pooled, f"cut at {j}, the pooled perplexity of the parts differs", tol)


# --- lm.temperature -------------------------------------------------------------------------------
#: Temperatures for the limits: logits are multiples of 1/64, so a gap over τ = 1e−4 is ≥ 156.
TAU_COLD, TAU_HOT = 1e-4, 1e6


@prop(
    "temperature_limits",
    "τ → 0 gives the argmax (one-hot at a unique maximum, equal shares among tied maxima); τ → ∞ the "
    "uniform distribution",
)
def _temperature(eq, target, example, data, options, tol):
    name = "temperature_limits"
    z = np.asarray(example.arrays[options["logits"]])
    tau, out = options["temperature"], options["output"]
    cold = target(_with(example, **{tau: np.asarray(TAU_COLD)}), example.sizes)[out]
    top = (z == z.max(axis=-1, keepdims=True)).astype(np.float64)
    _agree(
        name,
        target,
        cold,
        top / top.sum(axis=-1, keepdims=True),
        f"at τ = {TAU_COLD:g} p is not the argmax",
        tol,
    )
    hot = target(_with(example, **{tau: np.asarray(TAU_HOT)}), example.sizes)[out]
    # |z/τ| ≤ 3e−6, so p is within ~1e−5 of 1/v
    _agree(name, target, hot, np.full_like(z, 1 / z.shape[-1]), f"at τ = {TAU_HOT:g} p is not uniform",
           Tolerance(atol=1e-5, rtol=0.0))  # fmt: skip


# --- lm.top_k -------------------------------------------------------------------------------------
@prop(
    "top_k_keeps_k",
    "top-k keeps the tokens with fewer than k larger logits (at least k, exactly k when the logits are "
    "distinct), sets the others to −∞ and renormalises the kept ones as softmax does",
)
def _top_k(eq, target, example, data, options, tol):
    name = "top_k_keeps_k"
    k = example.sizes["k_top"]
    zn = options["logits"]
    z = np.asarray(example.arrays[zn]).copy()
    if data.draw(st.booleans(), label="tie the k-th largest logit"):
        order = np.argsort(-z, axis=-1)
        kth = np.take_along_axis(z, order[..., k - 1 : k], axis=-1)
        other = data.draw(st.integers(0, z.shape[-1] - 1), label="tied position")
        z[..., other] = kth[..., 0]
    out = target(_with(example, **{zn: z}), example.sizes)
    larger = (z[..., None, :] > z[..., :, None]).sum(axis=-1)  # larger[i] = #{j : z_j > z_i}
    kept = larger < k
    distinct = np.array([len(set(row)) == len(row) for row in z.reshape(-1, z.shape[-1])]).reshape(
        z.shape[:-1]
    )
    count = (out[options["filtered"]] > -np.inf).sum(axis=-1)
    if (count < k).any() or (count[distinct] != k).any():
        raise _violation(
            name, target, f"it keeps {count.tolist()} tokens for k = {k} (distinct: {distinct.tolist()})"
        )
    _agree(
        name, target, out[options["filtered"]], np.where(kept, z, -np.inf), "the filtered logits differ", tol
    )
    w = np.where(kept, np.exp(z - z.max(axis=-1, keepdims=True)), 0.0)
    p = out[options["output"]]
    if ((p > 0) != kept).any():
        raise _violation(
            name, target, "a token outside the top k has non-zero probability (or one inside zero)"
        )
    _agree(name, target, p, w / w.sum(axis=-1, keepdims=True), "the kept tokens are not renormalised", tol)
