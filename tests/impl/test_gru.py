"""impl/gru: hand-derived values; torch.nn.GRU with the same weights, which follows the spec's variant
reset_after (not the catalogue's form); the model against the spec's composition; the verifier; wrong
implementations it catches."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from jaxtyping import Float, TypeCheckError
from torch import Tensor, nn

from lmspec import spec
from lmspec.impl.gru import GRULM, PARAMS, GRUCell, gru_sequence, step, step_reset_after
from lmspec.verify.oracle import Oracle
from lmspec.verify.runner import PROFILES, checks_for, run_check, verify
from lmspec.verify.targets import ImplTarget

torch.set_default_dtype(torch.float64)
# distinct sizes per axis, so that a swapped axis cannot pass
B, n, v, d_e, d_h = 2, 4, 7, 3, 5


def _random() -> dict[str, Tensor]:
    shapes = {"W": (d_h, d_e), "U": (d_h, d_h), "b": (d_h,)}
    return {name: torch.randn(shapes[name[0]]) for name in PARAMS}


def _zero(d_e: int, d_h: int) -> dict[str, Tensor]:
    shapes = {"W": (d_h, d_e), "U": (d_h, d_h), "b": (d_h,)}
    return {name: torch.zeros(shapes[name[0]]) for name in PARAMS}


def test_step_by_hand():
    # every weight 0: r = z = 1/2 and h̃ = tanh(b), so h_t = (h_{t−1} + tanh(b)) / 2
    p = _zero(3, 2)
    p["b"] = torch.tensor([1.0, -0.5])
    r, z, h_tilde, h = step(torch.tensor([1.0, -2, 3]), torch.tensor([0.5, -1]), **p)
    torch.testing.assert_close(r, torch.full((2,), 0.5))
    torch.testing.assert_close(z, torch.full((2,), 0.5))
    torch.testing.assert_close(h_tilde, torch.tanh(p["b"]))
    torch.testing.assert_close(h, (torch.tensor([0.5, -1]) + torch.tanh(p["b"])) / 2)


def test_reset_before_and_after_the_product_by_hand():
    # r = (1/2, 3/4), U swaps the entries, h_{t−1} = (1, 0): U (r ⊙ h) = (0, 1/2), r ⊙ (U h) = (0, 3/4)
    p = _zero(3, 2)
    p["b_r"], p["U"] = torch.tensor([0.0, math.log(3)]), torch.tensor([[0.0, 1], [1, 0]])
    x, h = torch.tensor([1.0, -2, 3]), torch.tensor([1.0, 0])
    torch.testing.assert_close(step(x, h, **p)[2], torch.tensor([0.0, math.tanh(0.5)]))
    torch.testing.assert_close(
        step_reset_after(x, h, **p, b_U=torch.zeros(2))[2], torch.tensor([0.0, math.tanh(0.75)])
    )


def test_torch_gru_cell_follows_the_reset_after_variant_not_the_catalogue():
    """torch.nn.GRUCell, its weights mapped (blocks r, z, n; update gate negated, as torch's z is our 1 − z),
    equals the spec's gru.step[reset_after] and differs from the catalogue's gru.step."""
    torch_cell = nn.GRUCell(d_e, d_h)
    mapped = GRUCell.from_torch(torch_cell)
    x, h = torch.randn(B, d_e), torch.randn(B, d_h)
    want = torch_cell(x, h)
    torch.testing.assert_close(step_reset_after(x, h, **mapped)[-1], want)
    catalogue = step(x, h, **{k: t for k, t in mapped.items() if k != "b_U"})[-1]
    assert (catalogue - want).abs().max() > 1e-3
    # the same on the exact oracle of the variant
    arrays = {k: t.detach().numpy() for k, t in mapped.items()}
    out = Oracle(spec.get("gru.step[reset_after]"))(
        {"x_t": x[0].numpy(), "h_prev": h[0].numpy(), **arrays}, {"d_e": d_e, "d_h": d_h}
    )
    np.testing.assert_allclose(out["h_t"], want[0].detach().numpy(), rtol=1e-12)


def test_torch_gru_is_the_reset_after_step_unrolled():
    torch_gru = nn.GRU(d_e, d_h, batch_first=True)
    mapped = GRUCell.from_torch(torch_gru)
    X = torch.randn(B, n, d_e)
    h, steps = torch.zeros(B, d_h), []
    for t in range(n):
        h = step_reset_after(X[:, t], h, **mapped)[-1]
        steps.append(h)
    torch.testing.assert_close(torch.stack(steps, dim=1), torch_gru(X)[0])


def test_sequence_equals_the_unrolled_step_and_the_spec():
    p = _random()
    X = torch.randn(B, n, d_e)
    H = gru_sequence(X, *p.values())
    h, steps = torch.zeros(B, d_h), []
    for t in range(n):
        h = step(X[:, t], h, **p)[-1]
        steps.append(h)
    torch.testing.assert_close(H, torch.stack(steps, dim=1))
    arrays = {k: t.numpy() for k, t in p.items()}
    want = Oracle(spec.get("gru.step[sequence]"))(
        {"X": X[1].T.numpy(), **arrays}, {"d_e": d_e, "d_h": d_h, "n": n}
    )
    np.testing.assert_allclose(H[1].numpy().T, want["H"], rtol=1e-12)
    h_0 = torch.randn(B, d_h)
    torch.testing.assert_close(gru_sequence(X, *p.values(), h_0=h_0)[:, 0], step(X[:, 0], h_0, **p)[-1])


def test_model_equals_the_spec_composition():
    torch.manual_seed(3)
    model = GRULM(v, d_e, d_h, std=1.0)
    assert list(model.spec_params()) == ["E", *PARAMS, "W_o", "b_o"]
    k = torch.randint(0, v, (n,))
    out = model(k)
    arrays = {name: t.detach().numpy() for name, t in model.spec_params().items()}
    sizes = {"n": n, "v": v, "d_e": d_e, "d_h": d_h}
    Y = Oracle(spec.get("rnn.output[gru]"))({"k": k.numpy(), **arrays}, sizes)["Y_hat"]
    np.testing.assert_allclose(out.probabilities.detach().numpy().T, Y, rtol=1e-12)
    L = Oracle(spec.get("rnn.loss[gru]"))({"k": k.numpy(), **arrays}, sizes)["L"]
    assert out.loss.item() == pytest.approx(float(L), rel=1e-12)
    # 3 d_h (d_e + d_h + 1) in the recurrence; torch.nn.GRU holds 3 d_h more (two biases per block)
    cell = sum(t.numel() for t in model.cell.parameters())
    assert (
        cell == 3 * d_h * (d_e + d_h + 1) == sum(t.numel() for t in nn.GRU(d_e, d_h).parameters()) - 3 * d_h
    )
    with pytest.raises(ValueError, match="GRULM: sizes must be positive, found v=0"):
        GRULM(0, d_e, d_h)


def test_runtime_checks_reject_wrong_shapes():
    p = _random()
    p["U_z"] = torch.randn(d_h + 1, d_h)
    with pytest.raises(TypeCheckError, match="U_z"):
        step(torch.randn(B, d_e), torch.randn(B, d_h), **p)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_family_verifies(seed):
    results = verify(spec.select(["gru"]), "quick", seed)
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]


# --- wrong implementations are caught ---------------------------------------------------------------------
_V = Float[Tensor, "*batch d_h"]


def update_gate_on_the_old_state(
    x_t: Float[Tensor, "*batch d_e"], h_prev: _V,
    W_r: Float[Tensor, "d_h d_e"], U_r: Float[Tensor, "d_h d_h"], b_r: Float[Tensor, " d_h"],
    W_z: Float[Tensor, "d_h d_e"], U_z: Float[Tensor, "d_h d_h"], b_z: Float[Tensor, " d_h"],
    W: Float[Tensor, "d_h d_e"], U: Float[Tensor, "d_h d_h"], b: Float[Tensor, " d_h"],
) -> tuple[_V, _V, _V, _V]:  # fmt: skip
    # torch's and Cho et al.'s convention read as the catalogue's: z weighs the old state
    r_t, z_t, h_tilde, _ = step(x_t, h_prev, W_r, U_r, b_r, W_z, U_z, b_z, W, U, b)
    return r_t, z_t, h_tilde, z_t * h_prev + (1 - z_t) * h_tilde


def reset_after_the_product(
    x_t: Float[Tensor, "*batch d_e"], h_prev: _V,
    W_r: Float[Tensor, "d_h d_e"], U_r: Float[Tensor, "d_h d_h"], b_r: Float[Tensor, " d_h"],
    W_z: Float[Tensor, "d_h d_e"], U_z: Float[Tensor, "d_h d_h"], b_z: Float[Tensor, " d_h"],
    W: Float[Tensor, "d_h d_e"], U: Float[Tensor, "d_h d_h"], b: Float[Tensor, " d_h"],
) -> tuple[_V, _V, _V, _V]:  # fmt: skip
    # torch's candidate r ⊙ (U h) passed off as the catalogue's U (r ⊙ h)
    return step_reset_after(x_t, h_prev, W_r, U_r, b_r, W_z, U_z, b_z, W, U, b, torch.zeros_like(b))


WRONG = [
    ("update gate on the old state", "gru.step", update_gate_on_the_old_state,
     {"impl=oracle", "impl=generated", "property:convex_interpolation", "property:unrolls_to_sequence"}),
    ("reset after the recurrent product", "gru.step", reset_after_the_product,
     {"impl=oracle", "impl=generated", "property:unrolls_to_sequence"}),
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
