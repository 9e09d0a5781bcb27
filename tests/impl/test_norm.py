"""impl/ layer norm: hand values, torch.nn.functional.layer_norm, the ε = 0 convention, the module, the
verifier on the equation and its ε variant."""

import pytest
import torch
import torch.nn.functional as F
from jaxtyping import TypeCheckError

from lmspec import spec
from lmspec.impl.norm import LayerNorm, layer_norm
from lmspec.verify.runner import PROFILES, checks_for, run_check, verify
from lmspec.verify.targets import ImplTarget

torch.set_default_dtype(torch.float64)
B, n, d_e = 2, 5, 7  # distinct sizes per axis


def test_hand_values():
    # token (1, 3): μ = 2, σ = 1 → (−1, 1); α = (2, 1), β = (0, 5). Token (4, 4) is constant → β.
    H = torch.tensor([[1.0, 3.0], [4.0, 4.0]])
    out = layer_norm(H, torch.tensor([2.0, 1.0]), torch.tensor([0.0, 5.0]))
    assert out.tolist() == [[-2.0, 6.0], [0.0, 5.0]]
    # ε = 3: σ = √(1 + 3) = 2
    out = layer_norm(H[:1], torch.ones(2), torch.zeros(2), eps=3.0)
    assert out.tolist() == [[-0.5, 0.5]]


def test_matches_torch_layer_norm_with_eps():
    H, alpha, beta = torch.randn(B, n, d_e), torch.randn(d_e), torch.randn(d_e)
    torch.testing.assert_close(
        layer_norm(H, alpha, beta, eps=1e-5), F.layer_norm(H, (d_e,), alpha, beta, 1e-5)
    )


def test_constant_token_gives_beta_and_a_finite_gradient():
    H = torch.full((n, d_e), 0.25, requires_grad=True)
    beta = torch.randn(d_e)
    out = layer_norm(H, torch.randn(d_e), beta)
    torch.testing.assert_close(out, beta.expand(n, d_e))
    out.sum().backward()
    assert torch.isfinite(H.grad).all()


def test_errors():
    with pytest.raises(ValueError, match="eps must be ≥ 0, found -1e-05"):
        layer_norm(torch.randn(n, d_e), torch.ones(d_e), torch.zeros(d_e), eps=-1e-5)
    with pytest.raises(TypeCheckError, match="alpha"):
        layer_norm(torch.randn(n, d_e), torch.ones(d_e + 1), torch.zeros(d_e))
    with pytest.raises(ValueError, match="d_e must be positive and eps ≥ 0, found d_e=0, eps=0.0"):
        LayerNorm(0)


def test_module():
    ln = LayerNorm(d_e, eps=1e-5)
    assert set(ln.spec_params()) == {"alpha", "beta"} and ln.alpha.tolist() == [1.0] * d_e
    H = torch.randn(B, n, d_e)
    torch.testing.assert_close(ln(H), torch.nn.LayerNorm(d_e, eps=1e-5)(H))
    assert repr(ln) == "LayerNorm(d_e=7, eps=1e-05)"


@pytest.mark.parametrize("seed", [0, 1])
def test_the_verifier_passes(seed):
    results = verify(spec.select(["norm"]), "quick", seed)
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]


def test_the_eps_variant_binds_eps_and_passes():
    # the same function implements norm.layer_norm[eps]: its `eps: float` binds to the spec's ε
    var = spec.get("norm.layer_norm[eps]")
    target = ImplTarget(var)
    assert ("eps", "python float") in {(lay.name, lay.dtype) for lay in target.binding.args}
    results = [run_check(c, PROFILES["quick"], 0) for c in checks_for(var, PROFILES["quick"], 0)]
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]


def test_the_verifier_catches_torch_layer_norm_against_the_tutorials_form():
    # F.layer_norm always adds its ε: against ε = 0 the difference is visible at float64
    from jaxtyping import Float
    from torch import Tensor

    from lmspec.impl._registry import checked

    @checked
    def torch_ln(
        H: Float[Tensor, "*batch n d_e"], alpha: Float[Tensor, " d_e"], beta: Float[Tensor, " d_e"]
    ) -> Float[Tensor, "*batch n d_e"]:
        return F.layer_norm(H, (H.shape[-1],), alpha, beta, 1e-5)

    eq = spec.get("norm.layer_norm")
    results = [
        run_check(c, PROFILES["quick"], 0)
        for c in checks_for(eq, PROFILES["quick"], 0, ImplTarget(eq, torch_ln))
    ]
    assert not next(r for r in results if r.check == "impl=oracle").passed
