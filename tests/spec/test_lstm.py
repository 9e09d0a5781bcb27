"""The lstm family of the spec: the step equations, the whole step and its unrolling, the two operators
that stack the states, the parameter count; goldens written from the math, hand values from the oracle."""

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lmspec import spec
from lmspec.spec import SpecShapeError, tensor
from lmspec.spec.axes import d_e, d_h, n
from lmspec.spec.equation import Equation, Reference
from lmspec.spec.lstm import Part, VStack
from lmspec.spec.printing.latex import latex
from lmspec.spec.tensors import Family
from lmspec.verify.compare import POLICY
from lmspec.verify.oracle import Oracle
from lmspec.verify.properties import properties_of
from lmspec.verify.strategies import examples, size_tuples
from lmspec.verify.targets import GeneratedTarget, OracleTarget


def _zero_params(blocks: str, d_e: int, d_h: int) -> dict[str, np.ndarray]:
    shapes = {"W": (d_h, d_e), "U": (d_h, d_h), "b": (d_h,)}
    return {f"{p}_{g}": np.zeros(shape) for g in blocks for p, shape in shapes.items()}


LSTM = ["lstm.gates", "lstm.candidate", "lstm.cell", "lstm.hidden", "lstm.params"]
GATES = [
    r"f_{t} = \sigma\left(W_{f} x_{t} + U_{f} h_{t - 1} + b_{f}\right)",
    r"i_{t} = \sigma\left(W_{i} x_{t} + U_{i} h_{t - 1} + b_{i}\right)",
    r"o_{t} = \sigma\left(W_{o} x_{t} + U_{o} h_{t - 1} + b_{o}\right)",
]
CANDIDATE = r"\tilde{c}_{t} = \tanh\left(W_{c} x_{t} + U_{c} h_{t - 1} + b_{c}\right)"
CELL = r"c_{t} = f_{t} \odot c_{t - 1} + i_{t} \odot \tilde{c}_{t}"


def test_registry_holds_the_lstm_family_in_order():
    assert [e.id for e in spec.families()["lstm"]] == LSTM
    assert spec.get("lstm.hidden").variant_names == ("sequence",)
    assert spec.get("lstm.params").variant_names == ("two_biases",)
    for eq in spec.select(["lstm"]):
        assert eq.reference.status == "R" and "Hochreiter" in eq.reference.source and eq.notes


# Goldens written from the catalogue: f_t, i_t, o_t = σ(W_• x_t + U_• h_{t−1} + b_•),
# c̃_t = tanh(W_c x_t + U_c h_{t−1} + b_c), c_t = f_t ⊙ c_{t−1} + i_t ⊙ c̃_t, h_t = o_t ⊙ tanh(c_t).
def test_step_equations_latex():
    assert spec.get("lstm.gates").latex_lines() == GATES
    assert spec.get("lstm.candidate").latex() == CANDIDATE
    assert spec.get("lstm.cell").latex() == CELL
    assert spec.get("lstm.hidden").latex_lines() == [
        *GATES,
        CANDIDATE,
        CELL,
        r"h_{t} = o_{t} \odot \tanh\left(c_{t}\right)",
    ]
    assert [o.name for o in spec.get("lstm.hidden").outputs] == ["h_t", "c_t"]


def test_unrolled_lstm_latex():
    assert spec.get("lstm.hidden[sequence]").latex_lines() == [
        r"\begin{bmatrix} h_{0} \\ c_{0} \end{bmatrix} = \mathbf{0}",
        r"\begin{bmatrix} h_{t} \\ c_{t} \end{bmatrix} = \begin{bmatrix} "
        r"\operatorname{LSTM}_{h}\left(X_{:,t}, h_{t - 1}, c_{t - 1}\right) \\ "
        r"\operatorname{LSTM}_{c}\left(X_{:,t}, h_{t - 1}, c_{t - 1}\right) \end{bmatrix}",
        r"H = \left[h_{1}, \ldots, h_{n}\right]",
        r"C = \left[c_{1}, \ldots, c_{n}\right]",
    ]


def test_params_closed_form():
    eq = spec.get("lstm.params")
    assert eq.axes == ("d_e", "d_h")
    assert sp.expand(eq.formula - 4 * d_h * (d_e + d_h + 1)) == 0
    assert sp.expand(spec.get("lstm.params[two_biases]").formula - eq.formula) == 4 * d_h
    assert Oracle(eq)({}, {"d_e": 3, "d_h": 5})["N"] == 4 * 5 * 9


def test_shapes():
    eq = spec.get("lstm.hidden")
    assert len(eq.params) == 12
    assert eq.declared("W_f").shape == (d_h, d_e) and eq.declared("U_c").shape == (d_h, d_h)
    assert eq.declared("c_prev").tex == "c_{t - 1}"


def test_gates_candidate_and_cell_by_hand():
    zeros = {"x_t": np.array([1.0, -2]), "h_prev": np.array([0.5, 1, -1])}
    params = {
        f"{p}_{g}": np.zeros((3, 2) if p == "W" else (3, 3) if p == "U" else 3) for g in "fio" for p in "WUb"
    }
    params["b_f"] = np.array([0.0, math.log(3), -math.log(3)])
    out = Oracle(spec.get("lstm.gates"))({**zeros, **params}, {"d_e": 2, "d_h": 3})
    np.testing.assert_allclose(out["f_t"], [0.5, 0.75, 0.25], rtol=1e-15)
    np.testing.assert_allclose(out["i_t"], [0.5] * 3, rtol=1e-15)
    # c̃ = tanh(W_c x + U_c h + b_c) with only W_c = [[1, 0], [0, 0.5], [0, 0]] non-zero: tanh((1, −1, 0))
    cand = {"W_c": np.array([[1.0, 0], [0, 0.5], [0, 0]]), "U_c": np.zeros((3, 3)), "b_c": np.zeros(3)}
    c_tilde = Oracle(spec.get("lstm.candidate"))({**zeros, **cand}, {"d_e": 2, "d_h": 3})["c_tilde"]
    np.testing.assert_allclose(c_tilde, np.tanh([1.0, -1, 0]), rtol=1e-15)
    cell = {"f_t": np.array([0.5, 1]), "i_t": np.array([0.25, 0]), "c_prev": np.array([2.0, 3]),
            "c_tilde": np.array([4.0, 5])}  # fmt: skip
    np.testing.assert_allclose(Oracle(spec.get("lstm.cell"))(cell, {"d_h": 2})["c_t"], [2.0, 3.0])


def test_whole_step_by_hand():
    # every weight 0: the gates are 1/2; b_c = atanh(1/2) makes c̃ = 1/2, so c_t = c_{t−1}/2 + 1/4 and
    # h_t = tanh(c_t)/2
    params = {
        f"{p}_{g}": np.zeros((3, 2) if p == "W" else (3, 3) if p == "U" else 3) for g in "fioc" for p in "WUb"
    }
    params["b_c"] = np.full(3, math.atanh(0.5))
    arrays = {
        "x_t": np.array([1.0, -2]),
        "h_prev": np.array([0.5, 1, -1]),
        "c_prev": np.array([1.0, 2, -2]),
        **params,
    }
    out = Oracle(spec.get("lstm.hidden"))(arrays, {"d_e": 2, "d_h": 3})
    np.testing.assert_allclose(out["c_t"], [0.75, 1.25, -0.75], rtol=1e-15)
    np.testing.assert_allclose(out["h_t"], np.tanh([0.75, 1.25, -0.75]) / 2, rtol=1e-15)


def test_unrolled_lstm_by_hand():
    # one unit, two inputs: the step written out in Python, from h_0 = c_0 = 0
    w = {"f": ((0.5, 0.2), -0.25, 0.1), "i": ((-0.5, 0.0), 0.75, 0.0), "o": ((1.0, -1.0), 0.5, -0.2),
         "c": ((0.25, 0.5), -1.0, 0.3)}  # fmt: skip
    arrays = {"X": np.array([[1.0, -2, 0.5], [0.5, 1, -1]])}
    for g, (W, U, b) in w.items():
        arrays.update({f"W_{g}": np.array([W]), f"U_{g}": np.array([[U]]), f"b_{g}": np.array([b])})
    out = Oracle(spec.get("lstm.hidden[sequence]"))(arrays, {"d_e": 2, "d_h": 1, "n": 3})

    def sigma(a):
        return 1 / (1 + math.exp(-a))

    h = c = 0.0
    H, C = [], []
    for x in arrays["X"].T:
        pre = {g: W[0] * x[0] + W[1] * x[1] + U * h + b for g, (W, U, b) in w.items()}
        c = sigma(pre["f"]) * c + sigma(pre["i"]) * math.tanh(pre["c"])
        h = sigma(pre["o"]) * math.tanh(c)
        H.append(h)
        C.append(c)
    np.testing.assert_allclose(out["H"][0], H, rtol=1e-14)
    np.testing.assert_allclose(out["C"][0], C, rtol=1e-14)


# --- the operators that stack the two states --------------------------------------------------------------
def test_vstack_and_part():
    t = sp.Symbol("t", integer=True, positive=True)
    a, b = tensor("a", (d_h,)), tensor("b", (d_e,))
    assert VStack(a, b).shape == (d_h + d_e, 1)
    assert latex(VStack(a, b)) == r"\begin{bmatrix} a \\ b \end{bmatrix}"
    s = Family("s", t, n, (2 * d_h,), start=0)
    assert latex(Part(s[t - 1], d_h, d_h, "c_{{index}}")) == "c_{t - 1}"
    assert latex(Part(a, 1, 2, "unused")) == "a_{2:3}"
    assert Part(s[t], 0, d_h, "h_{{index}}").shape == (d_h, 1)
    with pytest.raises(SpecShapeError, match="vertical stack: columns disagrees"):
        A, B = tensor("A", (d_h, n)), tensor("B", (d_h, d_e))
        Y = tensor("Y", (2 * d_h, n))
        Equation("lstm.t", "t", inputs=(A, B), intermediates=(Y,), bindings=[(Y, VStack(A, B))], outputs=(Y,),
                 reference=Reference("t"))  # fmt: skip


def test_vstack_and_part_evaluate_by_hand():
    a, b = tensor("a", (d_h,)), tensor("b", (d_e,))
    top, bottom = tensor("top", (d_h,)), tensor("bottom", (d_e,))
    both = tensor("both", (d_h + d_e,))
    eq = Equation("lstm.t", "t", inputs=(a, b), intermediates=(both, top, bottom),
                  bindings=[(both, VStack(a, b)), (top, Part(both, 0, d_h, "a")),
                            (bottom, Part(both, d_h, d_e, "b"))],
                  outputs=(both, top, bottom), reference=Reference("t"))  # fmt: skip
    arrays = {"a": np.array([1.0, 2]), "b": np.array([3.0, 4, 5])}
    for target in (OracleTarget(eq), GeneratedTarget(eq)):
        out = target(arrays, {"d_h": 2, "d_e": 3})
        assert out["both"].tolist() == [1, 2, 3, 4, 5]
        assert out["top"].tolist() == [1, 2] and out["bottom"].tolist() == [3, 4, 5]


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


@pytest.mark.parametrize("eq_id", [*LSTM, "lstm.hidden[sequence]"])
def test_the_spec_satisfies_its_own_invariants(eq_id):
    holds(spec.get(eq_id))
