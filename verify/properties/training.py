"""Properties of the training equations: the cross-entropy's gradient, optimiser steps, weight decay and the
maximum-likelihood estimate.

Each property takes its array names from the equation's ``Invariant`` options, calls the target through the
spec-layout convention (``target(arrays, sizes) -> {output: array}``) and builds its expectation from first
principles (torch.optim, autograd, counting), never from the spec.
"""

import numpy as np
import torch
from hypothesis import strategies as st
from torch.optim.adam import adam as torch_adam
from torch.optim.adamw import adamw as torch_adamw
from torch.optim.sgd import sgd as torch_sgd

from ...spec import Kind
from ..strategies import tensors
from ._base import _agree, _violation, _with, prop


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
    """One in-place step of torch.optim's functional form of ``optimizer`` (what torch.optim.SGD,
    torch.optim.AdamW and torch.optim.Adam run in ``step()``, without the optimizer object, whose first step
    imports the compiler stack, seconds of import time). ``"Adam"`` is torch.optim.Adam's default, the
    coupled (L2) weight decay: ``decoupled_weight_decay=False`` adds λθ to the gradient before the moments;
    ``"AdamW"`` is the same function with ``decoupled_weight_decay=True``."""
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
    elif optimizer == "Adam":
        beta1, beta2 = fixed["betas"]
        torch_adam(
            [p], [g], [state["exp_avg"]], [state["exp_avg_sq"]], [], [state["step"]], foreach=False,
            amsgrad=False, beta1=beta1, beta2=beta2, lr=hyper["lr"], weight_decay=hyper["weight_decay"],
            eps=hyper["eps"], maximize=False, decoupled_weight_decay=False,
        )  # fmt: skip
    else:
        raise ValueError(
            f"torch_optimizer_step: no functional form for {optimizer!r} (expected SGD, Adam or AdamW)"
        )


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
