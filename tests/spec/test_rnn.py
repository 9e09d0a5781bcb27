"""The rnn family of the spec: the Elman step and its unrolling, the language model, the gate; notation
goldens written from the math and hand-derivable values from the exact oracle."""

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lmspec import spec
from lmspec.spec.axes import d_e, d_h, n, v
from lmspec.verify.compare import POLICY
from lmspec.verify.oracle import Oracle
from lmspec.verify.properties import properties_of
from lmspec.verify.strategies import examples, size_tuples
from lmspec.verify.targets import GeneratedTarget, OracleTarget

RNN = ["rnn.elman_step", "rnn.output", "rnn.loss", "rnn.params", "rnn.gate"]


def test_registry_holds_the_rnn_family_in_order_with_its_variants():
    assert [e.id for e in spec.families()["rnn"]] == RNN
    assert spec.get("rnn.elman_step").variant_names == ("sequence",)
    assert spec.get("rnn.output").variant_names == ("lstm", "gru")
    assert spec.get("rnn.loss").variant_names == ("lstm", "gru")
    assert spec.get("rnn.params").variant_names == ("two_biases",)
    for eq in spec.select(["rnn"]):
        assert eq.reference.section and eq.notes and eq.title
    assert spec.get("rnn.gate").reference.status == "T"


# Goldens written from the catalogue: h_t = tanh(W_x x_t + W_h h_{t−1} + b_h), h_0 = 0,
# ŷ_{t+1} = softmax(W_o h_t + b_o), 𝓛 = −Σ_{t=1}^{n−1} log ŷ_{t+1}[k_{t+1}], m = σ(a), ũ = u ⊙ m.
def test_elman_step_and_its_unrolling():
    assert (
        spec.get("rnn.elman_step").latex()
        == r"h_{t} = \tanh\left(W_{x} x_{t} + W_{h} h_{t - 1} + b_{h}\right)"
    )
    assert spec.get("rnn.elman_step[sequence]").latex_lines() == [
        r"h_{0} = \mathbf{0}",
        r"h_{t} = \tanh\left(W_{x} X_{:,t} + W_{h} h_{t - 1} + b_{h}\right)",
        r"H = \left[h_{1}, \ldots, h_{n}\right]",
    ]


def test_language_model_latex():
    assert spec.get("rnn.output").latex_lines() == [
        r"\Omega = \operatorname{onehot}_{v}\left(k\right)",
        r"X = E \Omega",
        r"h_{0} = \mathbf{0}",
        r"h_{t} = \tanh\left(W_{x} X_{:,t} + W_{h} h_{t - 1} + b_{h}\right)",
        r"H = \left[h_{1}, \ldots, h_{n}\right]",
        r"\hat{Y} = \operatorname{softmax}_{\mathrm{col}}\left(W_{o} H + b_{o} \mathbf{1}_{n}^{\top}\right)",
    ]
    assert spec.get("rnn.loss").latex_lines() == [
        r"\hat{Y} = \operatorname{RNNLM}\left(k\right)",
        r"\mathcal{L} = -\sum_{t=1}^{n - 1} \log \hat{Y}_{k_{t + 1}, t}",
    ]
    lstm = spec.get("rnn.output[lstm]").latex_lines()
    assert lstm[2:] == [
        r"H = \operatorname{LSTM}\left(X\right)",
        r"\hat{Y} = \operatorname{softmax}_{\mathrm{col}}\left(W_{y} H + b_{y} \mathbf{1}_{n}^{\top}\right)",
    ]
    assert spec.get("rnn.output[gru]").latex_lines()[2] == r"H = \operatorname{GRU}\left(X\right)"
    assert spec.get("rnn.loss[lstm]").latex_lines()[0] == r"\hat{Y} = \operatorname{LSTMLM}\left(k\right)"


def test_params_and_gate_latex():
    eq = spec.get("rnn.params")
    assert sp.expand(eq.formula - (v * d_e + d_h * (d_e + d_h + 1) + v * (d_h + 1))) == 0
    assert sp.expand(spec.get("rnn.params[two_biases]").formula - eq.formula) == d_h
    assert spec.get("rnn.gate").latex_lines() == [r"m = \sigma\left(a\right)", r"\tilde{u} = u \odot m"]


def test_the_lstm_language_model_renames_its_output_layer():
    names = [d.name for d in spec.get("rnn.output[lstm]").params]
    assert names[0] == "E" and names[-2:] == ["W_y", "b_y"]
    assert {"W_o", "U_o", "b_o"} <= set(names)  # the output gate
    gru = [d.name for d in spec.get("rnn.loss[gru]").params]
    assert gru == ["E", "W_r", "U_r", "b_r", "W_z", "U_z", "b_z", "W", "U", "b", "W_o", "b_o"]


def test_shapes():
    eq = spec.get("rnn.output")
    assert eq.declared("W_x").shape == (d_h, d_e) and eq.declared("W_h").shape == (d_h, d_h)
    assert eq.outputs[0].shape == (v, n)
    assert spec.get("rnn.loss").outputs[0].is_scalar
    assert spec.get("rnn.elman_step").declared("h_prev").tex == "h_{t - 1}"


def test_elman_step_by_hand():
    # W_x x = (0.5, −1), W_h h_{t−1} = (0.25, 0), b_h = (0, 1): h_t = tanh((0.75, 0))
    arrays = {
        "x_t": np.array([0.5, 7, -1]),
        "h_prev": np.array([3, 0.25]),
        "W_x": np.array([[1.0, 0, 0], [0, 0, 1]]),
        "W_h": np.array([[0.0, 1], [0, 0]]),
        "b_h": np.array([0.0, 1]),
    }
    h = Oracle(spec.get("rnn.elman_step"))(arrays, {"d_e": 3, "d_h": 2})["h_t"]
    np.testing.assert_allclose(h, [math.tanh(0.75), 0.0], rtol=1e-15)


def test_sequence_by_hand():
    # one unit, two inputs: h_t = tanh(0.5 x_t[0] − 0.25 x_t[1] − 0.75 h_{t−1} + 0.25) from h_0 = 0, by hand
    X = np.array([[1.0, -2, 0.5], [0.5, 1, -1]])
    arrays = {"X": X, "W_x": np.array([[0.5, -0.25]]), "W_h": np.array([[-0.75]]), "b_h": np.array([0.25])}
    H = Oracle(spec.get("rnn.elman_step[sequence]"))(arrays, {"d_e": 2, "d_h": 1, "n": 3})["H"]
    h, want = 0.0, []
    for x0, x1 in X.T:
        h = math.tanh(0.5 * x0 - 0.25 * x1 - 0.75 * h + 0.25)
        want.append(h)
    np.testing.assert_allclose(H[0], want, rtol=1e-14)


def _lm_arrays(W_o: np.ndarray, b_o: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "k": np.array([2, 1, 2, 0]),
        "E": rng.normal(size=(2, 3)),
        "W_x": rng.normal(size=(5, 2)),
        "W_h": rng.normal(size=(5, 5)),
        "b_h": rng.normal(size=5),
        "W_o": W_o,
        "b_o": b_o,
    }


def test_output_and_loss_by_hand():
    # W_o = 0: every column is softmax(b_o) = (1, 2, 3)/6; tokens 2..n are (1, 2, 0): 𝓛 = ln 3 + ln 2 + ln 6
    sizes = {"n": 4, "v": 3, "d_e": 2, "d_h": 5}
    arrays = _lm_arrays(np.zeros((3, 5)), np.log([1.0, 2, 3]))
    Y = Oracle(spec.get("rnn.output"))(arrays, sizes)["Y_hat"]
    np.testing.assert_allclose(Y, np.tile([[1 / 6], [2 / 6], [3 / 6]], 4), rtol=1e-14)
    assert Oracle(spec.get("rnn.loss"))(arrays, sizes)["L"] == pytest.approx(math.log(36), rel=1e-14)
    # one token: nothing is predicted
    one = {**arrays, "k": np.array([2])}
    assert Oracle(spec.get("rnn.loss"))(one, {**sizes, "n": 1})["L"] == 0


def test_params_and_gate_by_hand():
    sizes = {"v": 5, "d_e": 3, "d_h": 4}
    assert Oracle(spec.get("rnn.params"))({}, sizes)["N"] == 15 + 4 * 8 + 25
    assert Oracle(spec.get("rnn.params[two_biases]"))({}, sizes)["N"] == 76
    out = Oracle(spec.get("rnn.gate"))(
        {"a": np.array([0.0, math.log(3)]), "u": np.array([2.0, -4])}, {"d_h": 2}
    )
    np.testing.assert_allclose(out["m"], [0.5, 0.75], rtol=1e-15)
    np.testing.assert_allclose(out["u_tilde"], [1.0, -3.0], rtol=1e-15)


def _check(eq, target, prop, options, pool, max_examples: int) -> None:
    @settings(max_examples=max_examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(st.data())
    def run(data):
        ex = data.draw(examples(eq, data.draw(st.sampled_from(pool))))
        prop.check(eq, target, ex, data, options, POLICY["float64"])

    run()


def holds(eq, max_examples: int = 3) -> None:
    """Every declared property holds on the generated code and on the exact oracle."""
    pool = size_tuples(eq, 2, 0, "small")
    for target in (GeneratedTarget(eq), OracleTarget(eq)):
        for prop, options in properties_of(eq):
            _check(eq, target, prop, options, pool, max_examples)


@pytest.mark.parametrize("eq_id", [*RNN, "rnn.elman_step[sequence]"])
def test_the_spec_satisfies_its_own_invariants(eq_id):
    holds(spec.get(eq_id))
