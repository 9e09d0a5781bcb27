"""Training in PyTorch, to be read beside spec/training.py: the MLE objective, the softmax cross-entropy
gradient, and optimiser steps as pure functions of (parameters, gradient, state, hyper-parameters).

The optimiser steps act entry by entry; the annotations name the last axis ``d_theta`` and treat any
leading axes as batch axes, so a parameter of any shape can be passed as it is. ``SpecAdamW`` wraps the
functional step as a ``torch.optim.Optimizer``.
"""

from collections.abc import Iterable

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ._registry import checked, implements
from .lm import check_ids


@implements("training.mle")
@checked
def mle(
    Y_hat: Float[Tensor, "*batch n v"],
    k: Int[Tensor, "*batch n"],
    keep: Bool[Tensor, "*batch n"] | None = None,
) -> tuple[Float[Tensor, "*batch"], Float[Tensor, "*batch"]]:
    """``𝓛(θ) = −(1/N) Σ_{i kept} log P_θ(w_i | w_<i)``; row i of ``Y_hat`` is ``P_θ(· | w_<i)``.

    Returns the log-likelihood of the kept tokens and their average negative log-likelihood (NaN when no
    token is kept).
    """
    check_ids("mle", k, Y_hat.shape[-1])
    if keep is None:
        keep = torch.ones_like(k, dtype=torch.bool)
    p = Y_hat.gather(-1, k.unsqueeze(-1)).squeeze(-1)  # (*batch, n): P_θ(w_i | w_<i)
    log_lik = torch.where(keep, p.log(), 0.0).sum(dim=-1)
    return log_lik, -log_lik / keep.sum(dim=-1)


@implements("training.softmax_ce_grad")
@checked
def softmax_ce_grad(
    Z: Float[Tensor, "*batch n v"], k: Int[Tensor, "*batch n"]
) -> tuple[Float[Tensor, "*batch"], Float[Tensor, "*batch n v"]]:
    """``𝓛 = Σ_i −log softmax(z_i)_{k_i}`` and its gradient ``∂𝓛/∂Z = Ŷ − Ω`` (row i: ``ŷ_i − ω_i``)."""
    check_ids("softmax_ce_grad", k, Z.shape[-1])
    log_Y = torch.log_softmax(Z, dim=-1)  # (*batch, n, v)
    loss = -log_Y.gather(-1, k.unsqueeze(-1)).sum(dim=(-2, -1))
    Omega = torch.nn.functional.one_hot(k, Z.shape[-1]).to(Z.dtype)  # (*batch, n, v)
    return loss, log_Y.exp() - Omega


@implements("training.sgd")
@checked
def sgd(
    theta: Float[Tensor, "*batch d_theta"], g: Float[Tensor, "*batch d_theta"], eta: float
) -> Float[Tensor, "*batch d_theta"]:
    """``θ ← θ − η g``."""
    return theta - eta * g


@implements("training.weight_decay")
@checked
def weight_decay(
    theta: Float[Tensor, "*batch d_theta"], g: Float[Tensor, "*batch d_theta"], eta: float, lam: float
) -> tuple[
    Float[Tensor, "*batch"],
    Float[Tensor, "*batch d_theta"],
    Float[Tensor, "*batch d_theta"],
    Float[Tensor, "*batch d_theta"],
]:
    """The two forms of weight decay.

    L2 penalty: ``R_λ(θ) = (λ/2)‖θ‖²`` is added to the loss, so the gradient becomes ``g + λθ`` and the SGD
    step ``θ − η(g + λθ)``; decoupled decay: ``(1 − ηλ)θ − ηg``. Returns ``(R_λ(θ), g + λθ, L2 step,
    decoupled step)``.
    """
    penalty = lam / 2 * (theta * theta).sum(dim=-1)
    g_l2 = g + lam * theta
    return penalty, g_l2, theta - eta * g_l2, (1 - eta * lam) * theta - eta * g


@implements("training.adamw")
@checked
def adamw(
    theta: Float[Tensor, "*batch d_theta"],
    g: Float[Tensor, "*batch d_theta"],
    m: Float[Tensor, "*batch d_theta"],
    s: Float[Tensor, "*batch d_theta"],
    eta: float,
    lam: float,
    eps: float,
    t: float,
    *,
    beta1: float = 0.9,
    beta2: float = 0.999,
) -> tuple[Float[Tensor, "*batch d_theta"], Float[Tensor, "*batch d_theta"], Float[Tensor, "*batch d_theta"]]:
    """One AdamW step (step count t, 1 at the first step) from the moments ``m = m_{t−1}``, ``s = v_{t−1}``.

    ``m_t = β₁ m + (1 − β₁) g``, ``v_t = β₂ s + (1 − β₂) g²``, ``m̂ = m_t / (1 − β₁^t)``,
    ``v̂ = v_t / (1 − β₂^t)``, ``θ_t = θ − η (m̂ / (√v̂ + ε) + λ θ)``. Returns ``(θ_t, m_t, v_t)``.
    """
    m_next = beta1 * m + (1 - beta1) * g
    s_next = beta2 * s + (1 - beta2) * g * g
    m_hat = m_next / (1 - beta1**t)
    s_hat = s_next / (1 - beta2**t)
    theta_next = theta - eta * (m_hat / (s_hat.sqrt() + eps) + lam * theta)
    return theta_next, m_next, s_next


class SpecAdamW(torch.optim.Optimizer):
    """AdamW as a ``torch.optim.Optimizer`` whose step is ``adamw`` above (the spec's update, entry by
    entry). Same hyper-parameters and defaults as ``torch.optim.AdamW``."""

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        if not lr >= 0 or not eps >= 0 or not weight_decay >= 0:
            raise ValueError(
                f"SpecAdamW: lr, eps and weight_decay must be ≥ 0, found {lr}, {eps}, {weight_decay}"
            )
        if not all(0 <= b < 1 for b in betas):
            raise ValueError(f"SpecAdamW: betas must lie in [0, 1), found {betas}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(step=0, m=torch.zeros_like(p), s=torch.zeros_like(p))
                state["step"] += 1
                theta, m, s = adamw(
                    _entries(p),
                    _entries(p.grad),
                    _entries(state["m"]),
                    _entries(state["s"]),
                    group["lr"],
                    group["weight_decay"],
                    group["eps"],
                    float(state["step"]),
                    beta1=beta1,
                    beta2=beta2,
                )
                p.copy_(theta.reshape(p.shape))
                state["m"].copy_(m.reshape(p.shape))
                state["s"].copy_(s.reshape(p.shape))
        return loss


def _entries(x: Tensor) -> Tensor:
    """A tensor as it is, or a 0-d one as one entry: the steps want a last axis (``d_theta``)."""
    return x if x.dim() else x.reshape(1)
