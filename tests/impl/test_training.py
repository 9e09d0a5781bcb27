"""impl/ training: optimiser steps against torch.optim's classes, the cross-entropy gradient against
autograd, the named AdamW variants against the libraries they describe, and wrong implementations the
verifier catches."""

import math

import pytest
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int, TypeCheckError
from torch import Tensor

from lmspec import impl, spec
from lmspec.impl._registry import checked
from lmspec.impl.training import SpecAdamW, adamw, mle, sgd, softmax_ce_grad, weight_decay
from lmspec.verify.codegen import compiled
from lmspec.verify.runner import PROFILES, checks_for, run_check, verify
from lmspec.verify.targets import ImplTarget

torch.set_default_dtype(torch.float64)
B, n, v, d = 2, 5, 7, 3  # d: the last axis of a parameter (d_theta)
Vec = Float[Tensor, "*batch d_theta"]  # parameter entries, gradients, moments


def _step_torch(optimizer: torch.optim.Optimizer, p: torch.nn.Parameter, g: Tensor) -> Tensor:
    p.grad = g.clone()
    optimizer.step()
    return p.detach().clone()


def test_sgd_and_weight_decay_equal_torch_optim_sgd():
    theta, g = torch.randn(B, 4, d), torch.randn(B, 4, d)  # any parameter shape: (B, 4) are batch axes
    p = torch.nn.Parameter(theta.clone())
    torch.testing.assert_close(sgd(theta, g, 0.3), _step_torch(torch.optim.SGD([p], lr=0.3), p, g))
    p = torch.nn.Parameter(theta.clone())
    want = _step_torch(torch.optim.SGD([p], lr=0.3, weight_decay=0.05), p, g)
    _, g_l2, theta_l2, theta_dec = weight_decay(theta, g, 0.3, 0.05)
    torch.testing.assert_close(theta_l2, want)
    torch.testing.assert_close(theta_dec, want)  # the same update for plain SGD
    torch.testing.assert_close(g_l2, g + 0.05 * theta)


def test_l2_penalty_gradient_is_autograd_of_the_penalty():
    theta = torch.randn(B, d, requires_grad=True)
    penalty, g_l2, _, _ = weight_decay(theta, torch.zeros(B, d), 0.1, 0.2)
    (grad,) = torch.autograd.grad(penalty.sum(), theta)
    torch.testing.assert_close(g_l2, grad)
    torch.testing.assert_close(penalty, 0.1 * (theta.detach() ** 2).sum(dim=-1))


def test_adamw_steps_equal_torch_optim_adamw_over_several_steps():
    torch.manual_seed(0)
    theta = torch.randn(4, d)
    hyper = dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)
    p_ref, p_spec = torch.nn.Parameter(theta.clone()), torch.nn.Parameter(theta.clone())
    ref, ours = torch.optim.AdamW([p_ref], **hyper), SpecAdamW([p_spec], **hyper)
    for _ in range(5):
        g = torch.randn(4, d)
        torch.testing.assert_close(_step_torch(ours, p_spec, g), _step_torch(ref, p_ref, g))
    torch.testing.assert_close(ours.state[p_spec]["s"], ref.state[p_ref]["exp_avg_sq"])


def test_adamw_from_a_state_equals_torch_one_step():
    theta, g, m, s = torch.randn(B, d), torch.randn(B, d), torch.randn(B, d), torch.rand(B, d)
    p = torch.nn.Parameter(theta.clone())
    opt = torch.optim.AdamW([p], lr=0.5, eps=0.25, weight_decay=0.125)
    opt.state[p] = {"step": torch.tensor(6.0), "exp_avg": m.clone(), "exp_avg_sq": s.clone()}
    want = _step_torch(opt, p, g)
    theta_next, m_next, s_next = adamw(theta, g, m, s, 0.5, 0.125, 0.25, 7.0)
    torch.testing.assert_close(theta_next, want)
    torch.testing.assert_close(m_next, opt.state[p]["exp_avg"])
    torch.testing.assert_close(s_next, opt.state[p]["exp_avg_sq"])


def test_spec_adamw_handles_scalar_parameters_and_rejects_bad_hyper_parameters():
    p = torch.nn.Parameter(torch.tensor(1.5))
    opt = SpecAdamW([p], lr=0.1, weight_decay=0.0)
    _step_torch(opt, p, torch.tensor(2.0))
    assert p.item() == pytest.approx(1.5 - 0.1 * 2 / (2 + 1e-8), rel=1e-12)  # first step: η g/(|g| + ε)
    with pytest.raises(ValueError, match=r"betas must lie in \[0, 1\), found \(0.9, 1.0\)"):
        SpecAdamW([p], betas=(0.9, 1.0))


def _generated(eq_id: str, **arrays) -> tuple:
    """The generated code of an equation (or variant), vectors as columns."""
    args = [torch.as_tensor(a).unsqueeze(-1) if torch.as_tensor(a).dim() else torch.as_tensor(a).reshape(1, 1)
            for a in arrays.values()]  # fmt: skip
    return tuple(t.squeeze(-1) for t in compiled(spec.get(eq_id))(*args))


def test_l2_coupled_variant_is_torch_optim_adam_with_weight_decay():
    theta, g, m, s = torch.randn(d), torch.randn(d), torch.randn(d), torch.rand(d)
    p = torch.nn.Parameter(theta.clone())
    opt = torch.optim.Adam([p], lr=0.5, eps=0.25, weight_decay=0.125)  # β = (0.9, 0.999)
    opt.state[p] = {"step": torch.tensor(2.0), "exp_avg": m.clone(), "exp_avg_sq": s.clone()}
    want = _step_torch(opt, p, g)
    hyper = dict(eta=0.5, lam=0.125, eps=0.25, t=3.0)
    theta_next, m_next, _ = _generated("training.adamw[l2_coupled]", theta=theta, g=g, m=m, s=s, **hyper)
    torch.testing.assert_close(theta_next, want)
    torch.testing.assert_close(m_next, opt.state[p]["exp_avg"])
    decoupled, _, _ = adamw(theta, g, m, s, **hyper)
    assert not torch.allclose(decoupled, want)


def test_transformers_legacy_variant_is_the_old_transformers_adamw():
    # transformers.AdamW (v4.x, removed since): moments as Adam, step size η·√(1−β₂^t)/(1−β₁^t) on
    # m/(√v + ε), then p ← p − ηλ·p on the updated p. Written out from that description:
    theta, g, m, s = torch.randn(d), torch.randn(d), torch.randn(d), torch.rand(d)
    eta, lam, eps, t, b1, b2 = 0.5, 0.125, 0.25, 3.0, 0.9, 0.999
    m_t, s_t = b1 * m + (1 - b1) * g, b2 * s + (1 - b2) * g * g
    updated = theta - eta * math.sqrt(1 - b2**t) / (1 - b1**t) * m_t / (s_t.sqrt() + eps)
    want = updated - eta * lam * updated
    got, _, _ = _generated(
        "training.adamw[transformers_legacy]", theta=theta, g=g, m=m, s=s, eta=eta, lam=lam, eps=eps, t=t
    )
    torch.testing.assert_close(got, want)


def test_softmax_ce_grad_is_autograd_of_torch_cross_entropy():
    Z = torch.randn(B, n, v, requires_grad=True)
    k = torch.randint(0, v, (B, n))
    loss, G = softmax_ce_grad(Z.detach(), k)
    ref = F.cross_entropy(Z.transpose(1, 2), k, reduction="none").sum(dim=-1)
    (grad,) = torch.autograd.grad(ref.sum(), Z)
    torch.testing.assert_close(loss, ref.detach())
    torch.testing.assert_close(G, grad)
    torch.testing.assert_close(G.sum(dim=-1), torch.zeros(B, n))


def test_mle_is_the_mean_nll_of_the_kept_tokens():
    Y = torch.softmax(torch.randn(B, n, v), dim=-1)
    k = torch.randint(0, v, (B, n))
    keep = torch.tensor([[True, False, True, True, False], [True] * n])
    log_lik, loss = mle(Y, k, keep)
    picked = Y.gather(-1, k.unsqueeze(-1)).squeeze(-1).log()
    torch.testing.assert_close(log_lik[0], picked[0, [0, 2, 3]].sum())
    torch.testing.assert_close(loss, -log_lik / keep.sum(dim=-1))
    torch.testing.assert_close(loss[1], F.nll_loss(Y[1].log(), k[1]))
    assert math.isnan(mle(Y, k, torch.zeros(B, n, dtype=torch.bool))[1][0])


def test_runtime_checks_reject_wrong_shapes():
    with pytest.raises(TypeCheckError, match="g"):
        sgd(torch.randn(B, d), torch.randn(B, d + 1), 0.1)
    with pytest.raises(TypeCheckError, match="k"):
        softmax_ce_grad(torch.randn(B, n, v), torch.randint(0, v, (B, n + 1)))


def test_registry():
    for eq in spec.select(["training"]):
        assert impl.implementation(eq.id).__lmspec_id__ == eq.id


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_verify_training_quick_passes(seed):
    results = verify(spec.select(["training"]), "quick", seed)
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]


# --- teeth ------------------------------------------------------------------------------------------
@checked
def adam_without_bias_correction(
    theta: Vec, g: Vec, m: Vec, s: Vec, eta: float, lam: float, eps: float, t: float
) -> tuple[Vec, Vec, Vec]:
    m_next, s_next = 0.9 * m + 0.1 * g, 0.999 * s + 0.001 * g * g
    return theta - eta * (m_next / (s_next.sqrt() + eps) + lam * theta), m_next, s_next


@checked
def adam_with_l2_in_the_gradient(
    theta: Vec, g: Vec, m: Vec, s: Vec, eta: float, lam: float, eps: float, t: float
) -> tuple[Vec, Vec, Vec]:
    g = g + lam * theta  # torch.optim.Adam(weight_decay=λ), not AdamW
    m_next, s_next = 0.9 * m + 0.1 * g, 0.999 * s + 0.001 * g * g
    m_hat, s_hat = m_next / (1 - 0.9**t), s_next / (1 - 0.999**t)
    return theta - eta * m_hat / (s_hat.sqrt() + eps), m_next, s_next


@checked
def gradient_sign_flipped(
    Z: Float[Tensor, "*batch n v"], k: Int[Tensor, "*batch n"]
) -> tuple[Float[Tensor, "*batch"], Float[Tensor, "*batch n v"]]:
    loss, G = softmax_ce_grad(Z, k)
    return loss, -G  # ω − ŷ


@checked
def penalty_without_the_half(
    theta: Vec, g: Vec, eta: float, lam: float
) -> tuple[Float[Tensor, "*batch"], Vec, Vec, Vec]:
    _, g_l2, theta_l2, theta_dec = weight_decay(theta, g, eta, lam)
    return lam * (theta * theta).sum(dim=-1), g_l2, theta_l2, theta_dec


WRONG = [
    ("no bias correction", "training.adamw", adam_without_bias_correction,
     {"impl=oracle", "impl=generated", "property:torch_optimizer_step"}),
    ("L2 term in Adam's gradient", "training.adamw", adam_with_l2_in_the_gradient,
     {"impl=oracle", "property:torch_optimizer_step", "property:decoupled_decay"}),
    ("gradient sign flipped", "training.softmax_ce_grad", gradient_sign_flipped,
     {"impl=oracle", "property:ce_grad_autograd", "property:ce_grad_sums_to_zero"}),
    ("penalty without the 1/2", "training.weight_decay", penalty_without_the_half,
     {"impl=oracle", "property:l2_penalty_gradient"}),
]  # fmt: skip


@pytest.mark.parametrize(("bug", "eq_id", "fn", "catchers"), WRONG, ids=[w[0] for w in WRONG])
def test_wrong_implementation_fails_naming_the_check(bug, eq_id, fn, catchers, caught):
    eq = spec.get(eq_id)
    target = ImplTarget(eq, fn, name=f"wrong[{bug}]")
    checks = [c for c in checks_for(eq, PROFILES["default"], 0, target) if c.name in catchers]
    assert {c.name for c in checks} == catchers
    for check in checks:
        mismatch = caught(check)
        assert mismatch is not None, f"{bug}: {check.name} did not catch it"
        assert mismatch.check == check.name
        assert f"wrong[{bug}]" in str(mismatch)


def test_the_same_properties_hold_for_torch_optim_itself():
    """The torch_optimizer_step property holds for a target built from torch.optim.AdamW's class."""

    @checked
    def torch_adamw(
        theta: Vec, g: Vec, m: Vec, s: Vec, eta: float, lam: float, eps: float, t: float
    ) -> tuple[Vec, Vec, Vec]:
        p = torch.nn.Parameter(theta.clone())
        opt = torch.optim.AdamW([p], lr=eta, eps=eps, weight_decay=lam)
        opt.state[p] = {"step": torch.tensor(t - 1), "exp_avg": m.clone(), "exp_avg_sq": s.clone()}
        new = _step_torch(opt, p, g)
        return new, opt.state[p]["exp_avg"], opt.state[p]["exp_avg_sq"]

    eq = spec.get("training.adamw")
    for check in checks_for(eq, PROFILES["quick"], 0, ImplTarget(eq, torch_adamw, name="torch.optim.AdamW")):
        assert run_check(check, PROFILES["quick"], 0).passed, check.name
