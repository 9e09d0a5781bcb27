"""impl/ffnn: hand-derived values with distinct sizes, the model against the spec's composition, runtime
shape checks, the verifier on the family, and wrong implementations it catches."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from jaxtyping import Float, Int, TypeCheckError
from torch import Tensor

from lmspec import impl, spec
from lmspec.impl.ffnn import FFNNLM, context, hidden, loss, output, params, sequence_nll
from lmspec.verify.oracle import Oracle
from lmspec.verify.runner import PROFILES, checks_for, run_check, verify
from lmspec.verify.targets import ImplTarget

torch.set_default_dtype(torch.float64)
# distinct sizes per axis, so that a swapped axis cannot pass
B, n, v, d_e, d_h, c = 2, 4, 7, 6, 5, 3


def test_context_by_hand():
    # tokens (4, 0, 2, 1) embed to x_1 = (5, 10), x_2 = (1, 6), x_3 = (3, 8); with c = 3 the rows are
    # z_1 = 0, z_2 = [0; 0; x_1], z_3 = [0; x_1; x_2], z_4 = [x_1; x_2; x_3]
    E = torch.tensor([[1.0, 2, 3, 4, 5], [6, 7, 8, 9, 10]])
    k = torch.tensor([4, 0, 2, 1])
    want = [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 5, 10], [0, 0, 5, 10, 1, 6], [5, 10, 1, 6, 3, 8]]
    assert context(k, E, 3).tolist() == want
    # a start token (index 0, embedding (1, 6)) in the slots before the first token
    assert context(k, E, 3, start=0)[:2].tolist() == [[1, 6, 1, 6, 1, 6], [1, 6, 1, 6, 5, 10]]
    # a window of one token is the previous token; batch axes are kept
    assert context(k.expand(B, 3, 4), E, 1).shape == (B, 3, 4, 2)
    assert context(k, E, 1).tolist() == [[0, 0], [5, 10], [1, 6], [3, 8]]
    with pytest.raises(ValueError, match="the context window c must be at least 1, found c=0"):
        context(k, E, 0)


def test_hidden_and_output_by_hand():
    # W_h z + b_h = (1 − 3, 3) + (0.5, −3) = (−1.5, 0)
    W_h = torch.tensor([[1, 0, -1], [0.5, 0.5, 0.5]])
    h = hidden(torch.tensor([1.0, 2, 3]), W_h, torch.tensor([0.5, -3]))
    torch.testing.assert_close(h, torch.tensor([math.tanh(-1.5), 0.0]))
    # logits (ln 2, ln 3, 0) give (2, 3, 1)/6; the direct connection U z_t adds ln 4 to the third
    W_o, b_o = torch.tensor([[1.0, 0], [0, 1], [0, 0]]), torch.zeros(3)
    y = output(torch.log(torch.tensor([2.0, 3])), W_o, b_o)
    torch.testing.assert_close(y, torch.tensor([2, 3, 1]) / 6)
    U = torch.zeros(3, 4)
    U[2, 0] = math.log(4)
    y = output(torch.log(torch.tensor([2.0, 3])), W_o, b_o, torch.tensor([1.0, 0, 0, 0]), U)
    torch.testing.assert_close(y, torch.tensor([2, 3, 4]) / 9)
    with pytest.raises(ValueError, match="needs both the context z_t and its weights U"):
        output(torch.zeros(2), W_o, b_o, U=U)


def _params(direct: bool = False) -> dict[str, Tensor]:
    out = {"E": torch.randn(d_e, v), "W_h": torch.randn(d_h, c * d_e), "b_h": torch.randn(d_h),
           "W_o": torch.randn(v, d_h), "b_o": torch.randn(v)}  # fmt: skip
    return {**out, "U": torch.randn(v, c * d_e)} if direct else out


def test_loss_scores_every_token_by_hand():
    # h = 0, so every ŷ_t = softmax(b_o) = (1, 2, 3)/6; tokens (2, 1, 2, 0): 𝓛 = ln 2 + ln 3 + ln 2 + ln 6
    Y_hat, L = loss(
        torch.tensor([2, 1, 2, 0]), torch.ones(2, 3), torch.zeros(5, 2), torch.zeros(5), torch.ones(3, 5),
        torch.log(torch.tensor([1.0, 2, 3])),
    )  # fmt: skip
    torch.testing.assert_close(Y_hat, (torch.tensor([1.0, 2, 3]) / 6).expand(4, 3))
    assert L.item() == pytest.approx(math.log(72), rel=1e-14)
    assert sequence_nll(torch.log(Y_hat), torch.tensor([2, 1, 2, 0])).item() == pytest.approx(math.log(72))


def test_loss_is_the_composition_of_context_hidden_and_output():
    k = torch.randint(0, v, (B, n))
    p = _params(direct=True)
    Y_hat, L = loss(k, **p)
    Z = context(k, p["E"], c)
    y = output(hidden(Z, p["W_h"], p["b_h"]), p["W_o"], p["b_o"], Z, p["U"])
    torch.testing.assert_close(Y_hat, y)
    torch.testing.assert_close(L, -torch.log(y.gather(-1, k.unsqueeze(-1))).sum(dim=(-1, -2)))


def test_model_equals_the_spec_composition():
    """FFNNLM's forward pass equals the exact oracle of ffnn.loss (and of its direct variant)."""
    torch.manual_seed(0)
    k = torch.randint(0, v, (n,))
    sizes = {"n": n, "v": v, "d_e": d_e, "d_h": d_h, "c": c}
    for direct, eq_id in ((False, "ffnn.loss"), (True, "ffnn.loss[direct]")):
        model = FFNNLM(v, d_e, d_h, c, direct=direct, std=1.0)
        out = model(k)
        arrays = {name: p.detach().numpy() for name, p in model.spec_params().items()}
        want = Oracle(spec.get(eq_id))({"k": k.numpy(), **arrays}, sizes)
        np.testing.assert_allclose(out.probabilities.detach().numpy().T, want["Y_hat"], rtol=1e-12)
        assert out.loss.item() == pytest.approx(float(want["L"]), rel=1e-12)
        torch.testing.assert_close(out.probabilities, torch.softmax(out.logits, dim=-1))
        assert out.logits.shape == (n, v)


def test_model_holds_spec_oriented_parameters():
    model = FFNNLM(v, d_e, d_h, c)
    p = model.spec_params()
    assert p["E"].shape == (d_e, v) and p["W_h"].shape == (d_h, c * d_e) and p["W_o"].shape == (v, d_h)
    assert (
        sum(t.numel() for t in p.values())
        == sum(t.numel() for t in model.parameters())
        == params(v, d_e, d_h, c)
    )
    direct = FFNNLM(v, d_e, d_h, c, direct=True)
    assert sum(t.numel() for t in direct.parameters()) == params(v, d_e, d_h, c) + v * c * d_e
    with pytest.raises(ValueError, match="FFNNLM: sizes must be positive, found c=0"):
        FFNNLM(v, d_e, d_h, 0)


def test_params_by_hand():
    assert params(5, 3, 4, 2) == 68  # 15 + 4·7 + 5·5
    with pytest.raises(ValueError, match=r"ffnn.params: sizes must be positive, found v=0, d_h=-1"):
        params(0, 3, -1, 2)


def test_runtime_checks_reject_a_wrong_context_width():
    with pytest.raises(TypeCheckError, match="W_h"):
        hidden(torch.randn(B, c * d_e), torch.randn(d_h, c * d_e + 1), torch.randn(d_h))
    p = _params()
    p["W_h"] = torch.randn(d_h, c * d_e + 1)
    with pytest.raises(ValueError, match=r"W_h has 19 columns, which is not c·d_e for d_e = 6"):
        loss(torch.randint(0, v, (n,)), **p)


def test_registry_and_annotations_as_written():
    assert impl.implementation("ffnn.context") is context
    # the verifier reads the annotations as written (c*d_e), the runtime check one axis
    assert context.__annotations__["return"].dim_str == "*batch n c*d_e"
    assert context.__wrapped__.__name__ == "context"


@pytest.mark.parametrize("seed", [0, 1])
def test_the_family_verifies(seed):
    results = verify(spec.select(["ffnn"]), "quick", seed)
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]


# --- wrong implementations are caught ---------------------------------------------------------------------
def context_with_current_token(
    k: Int[Tensor, "*batch n"], E: Float[Tensor, "d_e v"], c: int
) -> Float[Tensor, "*batch n c*d_e"]:
    # the window ends at token t instead of t − 1: the model sees the token it predicts
    X = E.T[k]
    padded = torch.cat([torch.zeros_like(X[..., :1, :]).expand(*X.shape[:-2], c - 1, X.shape[-1]), X], dim=-2)
    return padded.unfold(-2, c, 1).transpose(-1, -2).flatten(-2)


def loss_with_current_token(
    k: Int[Tensor, "*batch n"],
    E: Float[Tensor, "d_e v"],
    W_h: Float[Tensor, "d_h c*d_e"],
    b_h: Float[Tensor, " d_h"],
    W_o: Float[Tensor, "v d_h"],
    b_o: Float[Tensor, " v"],
) -> tuple[Float[Tensor, "*batch n v"], Float[Tensor, "*batch"]]:
    Z = context_with_current_token(k, E, W_h.shape[-1] // E.shape[0])
    Y = torch.softmax(torch.tanh(Z @ W_h.T + b_h) @ W_o.T + b_o, dim=-1)
    return Y, -torch.log(Y.gather(-1, k.unsqueeze(-1))).sum(dim=(-1, -2))


def params_without_hidden_bias(v: int, d_e: int, d_h: int, c: int) -> int:
    return v * d_e + d_h * c * d_e + v * (d_h + 1)


WRONG = [
    ("context sees the current token", "ffnn.context", context_with_current_token,
     {"impl=oracle", "impl=generated", "property:context_window"}),
    ("predicts a token it has seen", "ffnn.loss", loss_with_current_token,
     {"impl=oracle", "impl=generated", "property:causal_in_tokens"}),
    ("hidden bias not counted", "ffnn.params", params_without_hidden_bias,
     {"impl=oracle", "impl=generated", "property:count_equals_model_numel"}),
]  # fmt: skip


#: The default profile, shrinking for 0.2 s only: these tests need the verdict, not the smallest case.
TEETH = dataclasses.replace(PROFILES["default"], name="teeth", shrink_examples=10)


@pytest.mark.parametrize(("bug", "eq_id", "fn", "catchers"), WRONG, ids=[w[0] for w in WRONG])
def test_wrong_implementation_fails_naming_the_check(bug, eq_id, fn, catchers):
    eq = spec.get(eq_id)
    target = ImplTarget(eq, fn, name=f"wrong[{bug}]")
    results = [run_check(ch, TEETH, 0) for ch in checks_for(eq, TEETH, 0, target)]
    failed = {r.check for r in results if not r.passed}
    assert catchers <= failed, f"{bug}: expected {sorted(catchers)} to fail, failed {sorted(failed)}"
    assert all(r.passed for r in results if r.check == "generated=oracle")
