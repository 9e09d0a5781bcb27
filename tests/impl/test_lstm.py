"""impl/lstm: hand-derived values, torch.nn.LSTM with the same weights (gate order i, f, g, o; two biases),
the model against the spec's composition, parameter counts, the verifier, wrong implementations caught."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from jaxtyping import Float, TypeCheckError
from torch import Tensor, nn

from lmspec import spec
from lmspec.impl.lstm import LSTMLM, PARAMS, LSTMCell, candidate, cell, gates, hidden, lstm_sequence, params
from lmspec.verify.oracle import Oracle
from lmspec.verify.runner import PROFILES, checks_for, run_check, verify
from lmspec.verify.targets import ImplTarget

torch.set_default_dtype(torch.float64)
# distinct sizes per axis, so that a swapped axis cannot pass
B, n, v, d_e, d_h = 2, 4, 7, 3, 5


def _random_cell() -> dict[str, Tensor]:
    shapes = {"W": (d_h, d_e), "U": (d_h, d_h), "b": (d_h,)}
    return {name: torch.randn(shapes[name[0]]) for name in PARAMS}


def test_step_equations_by_hand():
    shapes = {"W": (3, 2), "U": (3, 3), "b": (3,)}
    zero = {name: torch.zeros(shapes[name[0]]) for name in PARAMS}
    x, h = torch.tensor([1.0, -2]), torch.tensor([0.5, 1, -1])
    zero["b_f"] = torch.tensor([0.0, math.log(3), -math.log(3)])
    f, i, _ = gates(x, h, *(zero[k] for k in PARAMS[:9]))
    torch.testing.assert_close(f, torch.tensor([0.5, 0.75, 0.25]))
    torch.testing.assert_close(i, torch.full((3,), 0.5))
    W_c = torch.tensor([[1.0, 0], [0, 0.5], [0, 0]])
    torch.testing.assert_close(
        candidate(x, h, W_c, zero["U_c"], zero["b_c"]), torch.tanh(torch.tensor([1.0, -1, 0]))
    )
    c = cell(torch.tensor([0.5, 1]), torch.tensor([0.25, 0]), torch.tensor([2.0, 3]), torch.tensor([4.0, 5]))
    torch.testing.assert_close(c, torch.tensor([2.0, 3.0]))
    # the whole step: gates 1/2 and c̃ = 1/2, so c_t = c_{t−1}/2 + 1/4 and h_t = tanh(c_t)/2
    zero["b_f"] = torch.zeros(3)
    zero["b_c"] = torch.full((3,), math.atanh(0.5))
    h_t, c_t = hidden(x, h, torch.tensor([1.0, 2, -2]), **zero)
    torch.testing.assert_close(c_t, torch.tensor([0.75, 1.25, -0.75]))
    torch.testing.assert_close(h_t, torch.tanh(c_t) / 2)


def test_cell_equals_torch_lstm_cell_with_the_same_weights():
    torch_cell = nn.LSTMCell(d_e, d_h)
    mine = LSTMCell.from_torch(torch_cell)
    x, h, c = torch.randn(B, d_e), torch.randn(B, d_h), torch.randn(B, d_h)
    want_h, want_c = torch_cell(x, (h, c))
    got_h, got_c = mine(x, h, c)
    torch.testing.assert_close(got_h, want_h)
    torch.testing.assert_close(got_c, want_c)
    # torch's first block is the input gate, its third the candidate (g)
    torch.testing.assert_close(mine.W_i, torch_cell.weight_ih[:d_h])
    torch.testing.assert_close(mine.W_c, torch_cell.weight_ih[2 * d_h : 3 * d_h])


def test_sequence_equals_torch_lstm_and_the_spec_unrolling():
    torch_lstm = nn.LSTM(d_e, d_h, batch_first=True)
    p = LSTMCell.from_torch(torch_lstm).spec_params()
    X = torch.randn(B, n, d_e)
    H, C = lstm_sequence(X, *p.values())
    want_H, (_, c_n) = torch_lstm(X)
    torch.testing.assert_close(H, want_H)
    torch.testing.assert_close(C[:, -1], c_n[0])
    arrays = {k: t.detach().numpy() for k, t in p.items()}
    out = Oracle(spec.get("lstm.hidden[sequence]"))(
        {"X": X[0].T.numpy(), **arrays}, {"d_e": d_e, "d_h": d_h, "n": n}
    )
    np.testing.assert_allclose(H[0].detach().numpy().T, out["H"], rtol=1e-12)
    np.testing.assert_allclose(C[0].detach().numpy().T, out["C"], rtol=1e-12)


def test_sequence_honours_initial_states():
    p = _random_cell()
    X, h_0, c_0 = torch.randn(B, n, d_e), torch.randn(B, d_h), torch.randn(B, d_h)
    H, C = lstm_sequence(X, *p.values(), h_0=h_0, c_0=c_0)
    h_1, c_1 = hidden(X[:, 0], h_0, c_0, **p)
    torch.testing.assert_close(H[:, 0], h_1)
    torch.testing.assert_close(C[:, 0], c_1)


def test_param_counts_against_torch():
    assert params(d_e, d_h) == 4 * d_h * (d_e + d_h + 1)
    assert sum(t.numel() for t in LSTMCell(d_e, d_h).parameters()) == params(d_e, d_h)
    # torch.nn.LSTM and LSTMCell hold two bias vectors per block: 4 d_h more (lstm.params[two_biases])
    two_biases = Oracle(spec.get("lstm.params[two_biases]"))({}, {"d_e": d_e, "d_h": d_h})["N"]
    for module in (nn.LSTM(d_e, d_h), nn.LSTMCell(d_e, d_h)):
        assert sum(t.numel() for t in module.parameters()) == params(d_e, d_h) + 4 * d_h == two_biases
    model = LSTMLM(v, d_e, d_h)
    assert sum(t.numel() for t in model.parameters()) == v * d_e + params(d_e, d_h) + v * (d_h + 1)
    with pytest.raises(ValueError, match="lstm.params: sizes must be positive, found d_e=0"):
        params(0, d_h)


def test_model_equals_the_spec_composition():
    torch.manual_seed(2)
    model = LSTMLM(v, d_e, d_h, std=1.0)
    assert list(model.spec_params()) == ["E", *PARAMS, "W_y", "b_y"]
    k = torch.randint(0, v, (n,))
    out = model(k)
    arrays = {name: t.detach().numpy() for name, t in model.spec_params().items()}
    sizes = {"n": n, "v": v, "d_e": d_e, "d_h": d_h}
    Y = Oracle(spec.get("rnn.output[lstm]"))({"k": k.numpy(), **arrays}, sizes)["Y_hat"]
    np.testing.assert_allclose(out.probabilities.detach().numpy().T, Y, rtol=1e-12)
    L = Oracle(spec.get("rnn.loss[lstm]"))({"k": k.numpy(), **arrays}, sizes)["L"]
    assert out.loss.item() == pytest.approx(float(L), rel=1e-12)
    assert model(torch.randint(0, v, (B, n))).logits.shape == (B, n, v)


def test_runtime_checks_reject_wrong_shapes():
    p = _random_cell()
    p["U_o"] = torch.randn(d_h, d_h + 1)
    with pytest.raises(TypeCheckError, match="U_o"):
        hidden(torch.randn(B, d_e), torch.randn(B, d_h), torch.randn(B, d_h), **p)
    with pytest.raises(TypeCheckError, match="c_prev"):
        cell(torch.randn(d_h), torch.randn(d_h), torch.randn(d_h + 1), torch.randn(d_h))


@pytest.mark.parametrize("seed", [0, 1])
def test_the_family_verifies(seed):
    results = verify(spec.select(["lstm"]), "quick", seed)
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]


# --- wrong implementations are caught ---------------------------------------------------------------------
_V = Float[Tensor, "*batch d_h"]


def relu_gates(
    x_t: Float[Tensor, "*batch d_e"], h_prev: _V,
    W_f: Float[Tensor, "d_h d_e"], U_f: Float[Tensor, "d_h d_h"], b_f: Float[Tensor, " d_h"],
    W_i: Float[Tensor, "d_h d_e"], U_i: Float[Tensor, "d_h d_h"], b_i: Float[Tensor, " d_h"],
    W_o: Float[Tensor, "d_h d_e"], U_o: Float[Tensor, "d_h d_h"], b_o: Float[Tensor, " d_h"],
) -> tuple[_V, _V, _V]:  # fmt: skip
    # gates that are not squashed into (0, 1)
    return tuple(torch.relu(x_t @ W.T + h_prev @ U.T + b) for W, U, b in ((W_f, U_f, b_f), (W_i, U_i, b_i),
                                                                          (W_o, U_o, b_o)))  # fmt: skip


def forget_and_input_swapped(
    x_t: Float[Tensor, "*batch d_e"], h_prev: _V, c_prev: _V,
    W_f: Float[Tensor, "d_h d_e"], U_f: Float[Tensor, "d_h d_h"], b_f: Float[Tensor, " d_h"],
    W_i: Float[Tensor, "d_h d_e"], U_i: Float[Tensor, "d_h d_h"], b_i: Float[Tensor, " d_h"],
    W_o: Float[Tensor, "d_h d_e"], U_o: Float[Tensor, "d_h d_h"], b_o: Float[Tensor, " d_h"],
    W_c: Float[Tensor, "d_h d_e"], U_c: Float[Tensor, "d_h d_h"], b_c: Float[Tensor, " d_h"],
) -> tuple[_V, _V]:  # fmt: skip
    # the input gate keeps the old cell state and the forget gate lets in the candidate
    f_t, i_t, o_t = gates(x_t, h_prev, W_f, U_f, b_f, W_i, U_i, b_i, W_o, U_o, b_o)
    c_t = i_t * c_prev + f_t * candidate(x_t, h_prev, W_c, U_c, b_c)
    return o_t * torch.tanh(c_t), c_t


def params_without_biases(d_e: int, d_h: int) -> int:
    return 4 * d_h * (d_e + d_h)


WRONG = [
    ("gates not squashed", "lstm.gates", relu_gates,
     {"impl=oracle", "impl=generated", "property:gates_in_unit_interval"}),
    ("forget and input gates swapped", "lstm.hidden", forget_and_input_swapped,
     {"impl=oracle", "impl=generated", "property:unrolls_to_sequence"}),
    ("biases not counted", "lstm.params", params_without_biases,
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
