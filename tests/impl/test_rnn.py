"""impl/rnn: hand-derived values, torch.nn.RNN with the same weights, the model against the spec's
composition, runtime shape checks, the verifier on the family, and wrong implementations it catches."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from jaxtyping import Float, Int, TypeCheckError
from torch import Tensor, nn

from lmspec import spec
from lmspec.impl.rnn import RNNLM, elman_sequence, elman_step, gate, loss, output, params, unroll
from lmspec.verify._errors import PropertyViolation
from lmspec.verify.compare import POLICY
from lmspec.verify.oracle import Oracle
from lmspec.verify.properties import PROPERTIES, properties_of
from lmspec.verify.runner import PROFILES, checks_for, run_check, verify
from lmspec.verify.strategies import examples, size_tuples
from lmspec.verify.targets import GeneratedTarget, ImplTarget, Target

torch.set_default_dtype(torch.float64)
# distinct sizes per axis, so that a swapped axis cannot pass
B, n, v, d_e, d_h = 2, 4, 7, 3, 5


def _cell() -> tuple[Tensor, Tensor, Tensor]:
    return torch.randn(d_h, d_e), torch.randn(d_h, d_h), torch.randn(d_h)


def test_elman_step_by_hand():
    # W_x x = (0.5, −1), W_h h_{t−1} = (0.25, 0), b_h = (0, 1): h_t = tanh((0.75, 0))
    h = elman_step(
        torch.tensor([0.5, 7, -1]), torch.tensor([3, 0.25]), torch.tensor([[1.0, 0, 0], [0, 0, 1]]),
        torch.tensor([[0.0, 1], [0, 0]]), torch.tensor([0.0, 1]),
    )  # fmt: skip
    torch.testing.assert_close(h, torch.tensor([math.tanh(0.75), 0.0]))


def test_step_equals_torch_rnn_cell_with_the_same_weights():
    # torch.nn.RNNCell: h' = tanh(W_ih x + b_ih + W_hh h + b_hh), i.e. W_x, W_h and b_h = b_ih + b_hh
    torch_cell = nn.RNNCell(d_e, d_h)
    x, h = torch.randn(B, d_e), torch.randn(B, d_h)
    mine = elman_step(
        x, h, torch_cell.weight_ih, torch_cell.weight_hh, torch_cell.bias_ih + torch_cell.bias_hh
    )
    torch.testing.assert_close(mine, torch_cell(x, h))


def test_sequence_equals_torch_rnn_and_the_unrolled_step():
    torch_rnn = nn.RNN(d_e, d_h, batch_first=True)
    X = torch.randn(B, n, d_e)
    W_x, W_h, b_h = (
        torch_rnn.weight_ih_l0,
        torch_rnn.weight_hh_l0,
        torch_rnn.bias_ih_l0 + torch_rnn.bias_hh_l0,
    )
    H = elman_sequence(X, W_x, W_h, b_h)
    torch.testing.assert_close(H, torch_rnn(X)[0])
    h, steps = torch.zeros(B, d_h), []
    for t in range(n):
        h = elman_step(X[:, t], h, W_x, W_h, b_h)
        steps.append(h)
    torch.testing.assert_close(H, torch.stack(steps, dim=1))
    # a given initial state is honoured (torch's h_0)
    h_0 = torch.randn(B, d_h)
    torch.testing.assert_close(elman_sequence(X, W_x, W_h, b_h, h_0), torch_rnn(X, h_0.unsqueeze(0))[0])


def test_sequence_equals_the_spec_unrolling():
    X, (W_x, W_h, b_h) = torch.randn(n, d_e), _cell()
    arrays = {"X": X.T.numpy(), "W_x": W_x.numpy(), "W_h": W_h.numpy(), "b_h": b_h.numpy()}
    H = Oracle(spec.get("rnn.elman_step[sequence]"))(arrays, {"d_e": d_e, "d_h": d_h, "n": n})["H"]
    np.testing.assert_allclose(elman_sequence(X, W_x, W_h, b_h).numpy().T, H, rtol=1e-12)


def test_unroll_keeps_the_requested_results():
    # a step returning (state, 2 · state) where state = state + x: the running sum and its double
    def step(x, s):
        return s + x, 2 * (s + x)

    X = torch.arange(6.0).reshape(1, 3, 2)
    S, D = unroll(step, X, (torch.zeros(1, 2),), (), keep=2)
    torch.testing.assert_close(S, X.cumsum(dim=1))
    torch.testing.assert_close(D, 2 * X.cumsum(dim=1))


def test_output_and_loss_by_hand():
    # W_o = 0: every row is softmax(b_o) = (1, 2, 3)/6; tokens 2..n are (1, 2, 0): 𝓛 = ln 3 + ln 2 + ln 6
    k = torch.tensor([2, 1, 2, 0])
    args = (torch.randn(2, 3), torch.randn(5, 2), torch.randn(5, 5), torch.randn(5), torch.zeros(3, 5),
            torch.log(torch.tensor([1.0, 2, 3])))  # fmt: skip
    torch.testing.assert_close(output(k, *args), (torch.tensor([1.0, 2, 3]) / 6).expand(4, 3))
    assert loss(k, *args).item() == pytest.approx(math.log(36), rel=1e-14)
    assert loss(k[:1], *args).item() == 0.0  # one token: nothing is predicted


def test_model_equals_the_spec_composition():
    torch.manual_seed(1)
    model = RNNLM(v, d_e, d_h, std=1.0)
    k = torch.randint(0, v, (n,))
    out = model(k)
    arrays = {name: p.detach().numpy() for name, p in model.spec_params().items()}
    sizes = {"n": n, "v": v, "d_e": d_e, "d_h": d_h}
    Y = Oracle(spec.get("rnn.output"))({"k": k.numpy(), **arrays}, sizes)["Y_hat"]
    np.testing.assert_allclose(out.probabilities.detach().numpy().T, Y, rtol=1e-12)
    L = Oracle(spec.get("rnn.loss"))({"k": k.numpy(), **arrays}, sizes)["L"]
    assert out.loss.item() == pytest.approx(float(L), rel=1e-12)
    torch.testing.assert_close(out.probabilities, torch.softmax(out.logits, dim=-1))
    # the functional core gives the same on a batch
    kb = torch.randint(0, v, (B, n))
    torch.testing.assert_close(model(kb).loss, loss(kb, **model.spec_params()))


def test_param_counts_against_torch():
    model = RNNLM(v, d_e, d_h)
    assert sum(p.numel() for p in model.parameters()) == params(v, d_e, d_h)
    assert sum(p.numel() for p in model.spec_params().values()) == params(v, d_e, d_h)
    # torch.nn.RNN has two bias vectors: d_h more, the spec's variant rnn.params[two_biases]
    parts = (nn.Embedding(v, d_e), nn.RNN(d_e, d_h), nn.Linear(d_h, v))
    torch_count = sum(p.numel() for m in parts for p in m.parameters())
    assert torch_count == params(v, d_e, d_h) + d_h
    assert (
        Oracle(spec.get("rnn.params[two_biases]"))({}, {"v": v, "d_e": d_e, "d_h": d_h})["N"] == torch_count
    )
    with pytest.raises(ValueError, match="rnn.params: sizes must be positive, found d_h=0"):
        params(v, d_e, 0)


def test_gate_by_hand():
    m, u_tilde = gate(torch.tensor([0.0, math.log(3)]), torch.tensor([2.0, -4]))
    torch.testing.assert_close(m, torch.tensor([0.5, 0.75]))
    torch.testing.assert_close(u_tilde, torch.tensor([1.0, -3.0]))


def test_runtime_checks_reject_wrong_shapes():
    W_x, W_h, b_h = _cell()
    with pytest.raises(TypeCheckError, match="W_h"):
        elman_step(torch.randn(B, d_e), torch.randn(B, d_h), W_x, torch.randn(d_h, d_h + 1), b_h)
    with pytest.raises(TypeCheckError, match="h_0"):
        elman_sequence(torch.randn(B, n, d_e), W_x, W_h, b_h, torch.randn(B + 1, d_h))


@pytest.mark.parametrize("seed", [0, 1])
def test_the_family_verifies(seed):
    results = verify(spec.select(["rnn"]), "quick", seed)
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]


# --- wrong implementations are caught ---------------------------------------------------------------------
def step_with_transposed_recurrence(
    x_t: Float[Tensor, "*batch d_e"],
    h_prev: Float[Tensor, "*batch d_h"],
    W_x: Float[Tensor, "d_h d_e"],
    W_h: Float[Tensor, "d_h d_h"],
    b_h: Float[Tensor, " d_h"],
) -> Float[Tensor, "*batch d_h"]:
    # W_h h_{t−1} computed as h_{t−1} @ W_h: the square matrix hides the transpose from shape checks
    return torch.tanh(x_t @ W_x.T + h_prev @ W_h + b_h)


def output_from_the_last_state(
    k: Int[Tensor, "*batch n"],
    E: Float[Tensor, "d_e v"],
    W_x: Float[Tensor, "d_h d_e"],
    W_h: Float[Tensor, "d_h d_h"],
    b_h: Float[Tensor, " d_h"],
    W_o: Float[Tensor, "v d_h"],
    b_o: Float[Tensor, " v"],
) -> Float[Tensor, "*batch n v"]:
    # every position reads the final state: the past sees the future
    H = elman_sequence(E.T[k], W_x, W_h, b_h)
    return torch.softmax(H[..., -1:, :].expand_as(H) @ W_o.T + b_o, dim=-1)


def loss_scoring_the_current_token(
    k: Int[Tensor, "*batch n"],
    E: Float[Tensor, "d_e v"],
    W_x: Float[Tensor, "d_h d_e"],
    W_h: Float[Tensor, "d_h d_h"],
    b_h: Float[Tensor, " d_h"],
    W_o: Float[Tensor, "v d_h"],
    b_o: Float[Tensor, " v"],
) -> Float[Tensor, "*batch"]:
    # column t scores token t, which it has read, instead of token t + 1
    Y = output(k, E, W_x, W_h, b_h, W_o, b_o)
    return -torch.log(Y.gather(-1, k.unsqueeze(-1))).sum(dim=(-1, -2))


def hard_gate(
    a: Float[Tensor, "*batch d_h"], u: Float[Tensor, "*batch d_h"]
) -> tuple[Float[Tensor, "*batch d_h"], Float[Tensor, "*batch d_h"]]:
    # a binary mask: the limit of σ, no longer semi-binary
    m = (a > 0).to(a.dtype)
    return m, u * m


WRONG = [
    ("transposed recurrent weights", "rnn.elman_step", step_with_transposed_recurrence,
     {"impl=oracle", "impl=generated", "property:unrolls_to_sequence"}),
    ("every position reads the last state", "rnn.output", output_from_the_last_state,
     {"impl=oracle", "impl=generated", "property:causal_in_tokens"}),
    ("scores the token it has read", "rnn.loss", loss_scoring_the_current_token,
     {"impl=oracle", "impl=generated"}),
    ("binary gate", "rnn.gate", hard_gate,
     {"impl=oracle", "impl=generated", "property:gates_in_unit_interval"}),
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


# --- each property of verify/properties/ catches a target that breaks it, and says so ----------------
class Broken(Target):
    """The generated code of an equation with one output changed on purpose."""

    name = "broken"

    def __init__(self, eq_id: str, output: str, change) -> None:
        super().__init__(spec.get(eq_id))
        self.inner, self.output, self.change = GeneratedTarget(self.eq), output, change

    def __call__(self, example, sizes):
        out = self.inner(example, sizes)
        out[self.output] = self.change(out[self.output], example)
        return out


BROKEN = [
    # (property, equation, output, change, words of the message)
    ("unrolls_to_sequence", "rnn.elman_step", "h_t", lambda h, ex: h + 1e-3 * ex["h_prev"] ** 2,
     "h_t over 2 token(s), each step fed the previous state, differs from H of rnn.elman_step[sequence]"),
    ("causal_in_tokens", "rnn.output", "Y_hat", lambda y, ex: y + 1e-3 * ex["k"][..., None, -1:],
     "changing the tokens after position"),
    ("context_window", "ffnn.context", "Z", lambda z, ex: z + 1e-3 * ex["k"][..., None, :1],
     "(0-based) changed column"),
    ("gates_in_unit_interval", "rnn.gate", "m", lambda m, ex: np.round(m),
     "with every real array scaled by 1/8"),
    ("lies_between", "rnn.gate", "u_tilde", lambda u, ex: 2 * ex["u"], "u_tilde entry"),
    ("convex_interpolation", "gru.step", "h_t", lambda h, ex: h + 1e-3,
     "h_t is not (1 − z_t) ⊙ h_prev + z_t ⊙ h_tilde"),
    ("count_equals_model_numel", "rnn.params", "N", lambda count, ex: count + 1, "but impl.rnn:RNNLM(v="),
]  # fmt: skip


@pytest.mark.parametrize(("name", "eq_id", "output", "change", "words"), BROKEN, ids=[b[0] for b in BROKEN])
def test_property_catches_a_broken_target(name, eq_id, output, change, words):
    target = Broken(eq_id, output, change)
    eq = target.eq
    options = next(o for p, o in properties_of(eq) if p.name == name)
    pool = size_tuples(eq, 3, 0, "small")

    @settings(max_examples=30, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(st.data())
    def run(data):
        ex = data.draw(examples(eq, data.draw(st.sampled_from(pool))))
        PROPERTIES[name].check(eq, target, ex, data, options, POLICY["float64"])

    with pytest.raises(PropertyViolation) as err:
        run()
    assert err.value.check == f"property:{name}"
    assert str(err.value).startswith(f"broken violates {name}: ")
    assert words in str(err.value)
