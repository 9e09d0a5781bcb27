"""impl/ activations: against torch.nn.functional, hand values, errors, and the verifier."""

import math

import pytest
import torch
import torch.nn.functional as F
from jaxtyping import TypeCheckError

from lmspec import impl, spec
from lmspec.impl.activation import ACTIVATIONS, activation_function, gelu, gelu_tanh, relu, sigmoid, tanh
from lmspec.verify.runner import verify

torch.set_default_dtype(torch.float64)
B, n, d_e = 2, 5, 7  # distinct sizes per axis


@pytest.mark.parametrize(
    ("fn", "reference"),
    [
        (relu, F.relu),
        (gelu, F.gelu),
        (gelu_tanh, lambda x: F.gelu(x, approximate="tanh")),
        (sigmoid, torch.sigmoid),
        (tanh, torch.tanh),
    ],
    ids=["relu", "gelu", "gelu_tanh", "sigmoid", "tanh"],
)
def test_against_torch_functional(fn, reference):
    X = torch.linspace(-6, 6, B * n * d_e).reshape(B, n, d_e)
    torch.testing.assert_close(fn(X), reference(X), rtol=1e-15, atol=1e-15)


def test_hand_values():
    x = torch.tensor([[-1.0, 0.0, 1.0]])
    phi1 = 0.5 * (1 + math.erf(1 / math.sqrt(2)))  # Φ(1)
    torch.testing.assert_close(gelu(x), torch.tensor([[-(1 - phi1), 0.0, phi1]]), rtol=1e-15, atol=0)
    assert relu(x).tolist() == [[0.0, 0.0, 1.0]]
    assert sigmoid(torch.tensor([[0.0, math.log(3.0)]]))[0].tolist() == pytest.approx([0.5, 0.75], rel=1e-15)


def test_the_gelu_forms_differ_by_at_most_5e_4():
    x = torch.linspace(-10, 10, 20001).reshape(1, -1)
    gap = (gelu(x) - gelu_tanh(x)).abs().max().item()
    assert 4.5e-4 < gap < 4.8e-4


def test_activation_table_and_errors():
    assert set(ACTIVATIONS) == {"relu", "gelu", "gelu_tanh", "sigmoid", "tanh"}
    assert activation_function("relu") is torch.relu
    with pytest.raises(
        ValueError, match=r"unknown activation 'swish' \(known: relu, gelu, gelu_tanh, sigmoid, tanh\)"
    ):
        activation_function("swish")


def test_runtime_checks_reject_an_integer_tensor():
    with pytest.raises(TypeCheckError, match="X"):
        relu(torch.ones(n, d_e, dtype=torch.int64))


def test_the_runtime_checker_is_built_on_the_first_call_and_checks_every_call(monkeypatch):
    """impl/'s checking wrapper is built when a function is first called (beartype compiles one per
    function: most of impl/'s import time), and from then on checks each call."""
    from jaxtyping import Float
    from torch import Tensor

    from lmspec.impl import _registry

    built, real = [], _registry.jaxtyped

    def counting(**kwargs):
        built.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(_registry, "jaxtyped", counting)

    def double(X: Float[Tensor, "n d_e"]) -> Float[Tensor, "n d_e"]:
        return 2 * X

    checked = _registry.checked(double)
    assert built == [] and checked.__name__ == "double"
    assert torch.equal(checked(torch.ones(2, 3)), torch.full((2, 3), 2.0))
    assert len(built) == 1
    with pytest.raises(TypeCheckError, match="X"):
        checked(torch.ones(2, 3, dtype=torch.int64))
    assert len(built) == 1


def test_registry():
    for name in ("relu", "gelu", "gelu_tanh", "sigmoid", "tanh"):
        assert impl.implementation(f"activation.{name}").__lmspec_id__ == f"activation.{name}"


@pytest.mark.parametrize("seed", [0, 1])
def test_the_verifier_passes(seed):
    results = verify(spec.select(["activation"]), "quick", seed)
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]


def test_the_verifier_catches_the_other_gelu_form():
    from lmspec.verify.runner import PROFILES, checks_for, run_check
    from lmspec.verify.targets import ImplTarget

    eq = spec.get("activation.gelu")
    target = ImplTarget(eq, gelu_tanh, name="wrong[tanh form]")
    results = [run_check(c, PROFILES["quick"], 0) for c in checks_for(eq, PROFILES["quick"], 0, target)]
    failed = {r.check for r in results if not r.passed}
    assert {"impl=oracle", "impl=generated"} <= failed
    # and the variant that names the tanh form accepts it
    var = spec.get("activation.gelu[tanh_approximation]")
    target = ImplTarget(var, gelu_tanh)
    assert all(
        run_check(c, PROFILES["quick"], 0).passed for c in checks_for(var, PROFILES["quick"], 0, target)
    )
