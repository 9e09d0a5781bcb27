"""Properties of the lm and training equations: probability and loss laws that hold for any correct target.

Each property takes its array names from the equation's ``Invariant`` options, calls the target through the
spec-layout convention (``target(arrays, sizes) -> {output: array}``) and builds its expectation with NumPy
from first principles (counting, enumerating sequences, torch.optim, autograd), never from the spec.
"""

import itertools

import numpy as np
import torch
from hypothesis import strategies as st
from torch.optim.adamw import adamw as torch_adamw
from torch.optim.sgd import sgd as torch_sgd

from ...spec import Kind
from .._errors import PropertyViolation
from ..compare import Tolerance
from ..strategies import reals, tensors
from . import _agree, _axis, _with, prop

#: The most sequences ``chain_rule_normalised`` enumerates (v^n of them, n cut down to fit).
MAX_SEQUENCES = 2048


def _violation(name: str, target, what: str) -> PropertyViolation:
    return PropertyViolation(f"{target.name} violates {name}: {what}", check=f"property:{name}")


def _token_mask(mask: np.ndarray, arr: np.ndarray, axis: int, batch: int) -> np.ndarray:
    """``mask`` (*batch, n) shaped to broadcast against ``arr`` whose token axis is ``axis``."""
    shape = [1] * arr.ndim
    shape[:batch] = mask.shape[:batch]
    shape[axis] = mask.shape[-1]
    return mask.reshape(shape)


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


# --- training.softmax_ce_grad ---------------------------------------------------------------------
@prop(
    "ce_grad_autograd", "the gradient equals autograd of impl's lm.cross_entropy (summed) at the same logits"
)
def _ce_grad_autograd(eq, target, example, data, options, tol):
    from ... import impl

    name = "ce_grad_autograd"
    Z = torch.tensor(np.asarray(example.arrays[options["logits"]]), dtype=torch.float64, requires_grad=True)
    k = torch.tensor(np.asarray(example.arrays[options["tokens"]]), dtype=torch.int64)
    _, loss_sum, _ = impl.implementation("lm.cross_entropy")(Z.transpose(-1, -2), k)  # tokens as rows
    (grad,) = torch.autograd.grad(loss_sum.sum(), Z)
    got = target(example.arrays, example.sizes)[options["output"]]
    _agree(name, target, got, grad.numpy(), "the gradient differs from autograd of the cross-entropy", tol)


@prop(
    "ce_grad_sums_to_zero",
    "each column of ∂𝓛/∂Z sums to 0, only its target entry is negative (ŷ_k − 1), and "
    "𝓛 = −Σ_i log(1 + G_{k_i, i})",
)
def _ce_grad_sum(eq, target, example, data, options, tol):
    name = "ce_grad_sums_to_zero"
    k = np.asarray(example.arrays[options["tokens"]])
    out = target(example.arrays, example.sizes)
    G = out[options["output"]]  # (*batch, v, n)
    _agree(name, target, G.sum(axis=-2), np.zeros(k.shape), "a column of the gradient does not sum to 0", tol)
    g_k = np.take_along_axis(G, k[..., None, :], axis=-2)[..., 0, :]
    others = np.where(np.moveaxis(np.eye(G.shape[-2])[k], -1, -2) > 0, 0.0, G)
    if not ((g_k < 0) & (g_k > -1)).all() or (others < 0).any():
        raise _violation(name, target, "a target entry is not in (−1, 0) or another entry is negative")
    want = -np.log1p(g_k).sum(axis=-1)
    _agree(
        name, target, out[options["loss"]], want, "𝓛 is not Σ_i −log ŷ_{k_i} = −Σ_i log(1 + G_{k_i, i})", tol
    )


# --- optimiser steps ------------------------------------------------------------------------------
def _torch_functional_step(optimizer: str, p, g, state: dict, hyper: dict, fixed: dict) -> None:
    """One in-place step of torch.optim's functional form of ``optimizer`` (what torch.optim.SGD and
    torch.optim.AdamW run in ``step()``, without the optimizer object, whose first step imports the
    compiler stack, seconds of import time)."""
    if optimizer == "SGD":
        torch_sgd(
            [p], [g], [None], weight_decay=hyper.get("weight_decay", 0.0), momentum=0.0, lr=hyper["lr"],
            dampening=0.0, nesterov=False, maximize=False, foreach=False,
        )  # fmt: skip
    elif optimizer == "AdamW":
        beta1, beta2 = fixed["betas"]
        torch_adamw(
            [p], [g], [state["exp_avg"]], [state["exp_avg_sq"]], [], [state["step"]], foreach=False,
            amsgrad=False, beta1=beta1, beta2=beta2, lr=hyper["lr"], weight_decay=hyper["weight_decay"],
            eps=hyper["eps"], maximize=False,
        )  # fmt: skip
    else:
        raise ValueError(f"torch_optimizer_step: no functional form for {optimizer!r}")


@prop(
    "torch_optimizer_step",
    "one step equals torch.optim's optimiser (its functional form) with the same hyper-parameters",
)
def _torch_step(eq, target, example, data, options, tol):
    name = "torch_optimizer_step"
    arrays = dict(example.arrays)
    step, t = options.get("step"), 1
    if step is not None:  # an integer step count, as torch keeps it
        t = data.draw(st.integers(1, 12), label="step count t")
        arrays[step] = np.asarray(float(t))

    def tensor(key: str) -> torch.Tensor:
        return torch.tensor(np.asarray(arrays[key]), dtype=torch.float64)

    p, g = tensor(options["theta"]), tensor(options["grad"])
    hyper = {key: float(arrays[spec_name]) for key, spec_name in options["hyper"].items()}
    state = {key: tensor(spec_name) for key, spec_name in options.get("state", {}).items()}
    state["step"] = torch.tensor(float(t - 1), dtype=torch.float64)  # torch counts the step it takes
    _torch_functional_step(options["optimizer"], p, g, state, hyper, options.get("fixed", {}))
    got = target(arrays, example.sizes)
    for out, key in options["outputs"].items():
        want = p if key == "param" else state[key]
        _agree(
            name,
            target,
            got[out],
            want.numpy(),
            f"{out} differs from torch.optim.{options['optimizer']}",
            tol,
        )


@prop("l2_equals_decoupled_for_sgd", "for plain SGD the L2-penalty step and the decoupled step coincide")
def _l2_decoupled(eq, target, example, data, options, tol):
    out = target(example.arrays, example.sizes)
    _agree(
        "l2_equals_decoupled_for_sgd",
        target,
        out[options["l2"]],
        out[options["decoupled"]],
        "θ − η(g + λθ) differs from (1 − ηλ)θ − ηg",
        tol,
    )


#: The step of the central differences: a multiple of the grid, exact for a quadratic penalty.
H = 1 / 64


@prop(
    "l2_penalty_gradient",
    "the penalised gradient is g plus the central difference of the penalty in θ (exact for a quadratic)",
)
def _l2_gradient(eq, target, example, data, options, tol):
    theta_name = options["theta"]
    theta = np.asarray(example.arrays[theta_name])
    base = target(example.arrays, example.sizes)
    diff = np.zeros_like(theta)
    for j in range(theta.shape[-1]):
        e = np.zeros(theta.shape[-1])
        e[j] = H
        up = target(_with(example, **{theta_name: theta + e}), example.sizes)[options["penalty"]]
        down = target(_with(example, **{theta_name: theta - e}), example.sizes)[options["penalty"]]
        diff[..., j] = (up - down) / (2 * H)
    want = np.asarray(example.arrays[options["grad"]]) + diff
    _agree("l2_penalty_gradient", target, base[options["output"]], want, "g_λ is not g + ∇_θ R_λ(θ)", tol)


@prop(
    "decoupled_decay",
    "with zero gradient and zero moments the step only decays: θ ← (1 − ηλ)θ, whatever ε and t (an L2 term "
    "would pass through the adaptive scaling instead)",
)
def _decoupled(eq, target, example, data, options, tol):
    theta = np.asarray(example.arrays[options["theta"]])
    zeros = {key: np.zeros_like(theta) for key in [options["grad"], *options["moments"]]}
    out = target(_with(example, **zeros), example.sizes)[options["output"]]
    shrink = 1 - float(example.arrays[options["lr"]]) * float(example.arrays[options["decay"]])
    _agree("decoupled_decay", target, out, shrink * theta, "the decay is not (1 − ηλ)θ", tol)


# --- training.mle ---------------------------------------------------------------------------------
@prop(
    "mle_empirical_minimum",
    "among models predicting one distribution q at every predicted position, the average NLL is minimised "
    "by the empirical frequencies q̂ of the predicted tokens, where it equals their entropy H(q̂)",
)
def _mle(eq, target, example, data, options, tol):
    name = "mle_empirical_minimum"
    v = example.sizes["v"]
    k = np.asarray(example.arrays[options["tokens"]])
    keep = np.asarray(example.arrays[options["keep"]]).copy()
    keep[..., 0] = 1.0  # at least one predicted token
    counts = (np.eye(v)[k] * keep[..., None]).sum(axis=-2)  # (*batch, v)
    q_hat = counts / counts.sum(axis=-1, keepdims=True)
    q = data.draw(tensors(Kind.PROBABILITY, (*k.shape[:-1], v, 1), example.sizes), label="another q")[..., 0]

    def model(dist: np.ndarray) -> np.ndarray:  # (*batch, v, n): dist where kept, uniform elsewhere
        return np.where(keep[..., None, :] > 0, dist[..., :, None], 1.0 / v)

    probs, out = options["probs"], options["output"]
    best = target(_with(example, **{probs: model(q_hat), options["keep"]: keep}), example.sizes)[out]
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(q_hat > 0, q_hat * np.log(q_hat), 0.0).sum(axis=-1)
    _agree(name, target, best, entropy, "at the empirical frequencies the loss is not their entropy", tol)
    other = target(_with(example, **{probs: model(q), options["keep"]: keep}), example.sizes)[out]
    if (other < best - tol.atol).any():
        raise _violation(name, target, f"q = {q.tolist()} scores {other.tolist()} < {best.tolist()} at q̂")
