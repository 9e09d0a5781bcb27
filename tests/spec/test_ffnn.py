"""The ffnn family of the spec: notation, padding convention, the operators it defines, hand values."""

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lmspec import spec
from lmspec.spec import Kind, SpecShapeError, tensor
from lmspec.spec.axes import c, d_e, d_h, n, v
from lmspec.spec.equation import Equation, Reference
from lmspec.spec.ffnn import CountEquation, PaddedColumn, SequenceNLL
from lmspec.spec.printing.latex import SpecLatexPrinter, latex
from lmspec.verify.compare import POLICY
from lmspec.verify.oracle import Oracle
from lmspec.verify.properties import properties_of
from lmspec.verify.strategies import examples, size_tuples
from lmspec.verify.targets import GeneratedTarget, OracleTarget

FFNN = ["ffnn.context", "ffnn.hidden", "ffnn.output", "ffnn.loss", "ffnn.params"]


def test_registry_holds_the_ffnn_family_in_order():
    assert [e.id for e in spec.families()["ffnn"]] == FFNN
    for eq in spec.select(["ffnn"]):
        assert eq.reference.status == "R" and "Bengio" in eq.reference.source and eq.notes


# Goldens written from the catalogue's equations (z_t = [E ω_{t−c}; …; E ω_{t−1}], h_t = tanh(W_h z_t + b_h),
# ŷ_t = softmax(W_o h_t + b_o [+ U z_t]), 𝓛 = −Σ_t log ŷ_t[k_t]), not copied from the printer's output.
def test_context_latex_stacks_the_c_previous_embeddings_oldest_first():
    assert spec.get("ffnn.context").latex_lines() == [
        r"\Omega = \operatorname{onehot}_{v}\left(k\right)",
        r"X = E \Omega",
        r"z_{t} = \begin{bmatrix} X_{:,t - c} \\ \vdots \\ X_{:,t - 1} \end{bmatrix}",
        r"Z = \left[z_{1}, \ldots, z_{n}\right]",
    ]


def test_padding_convention_is_shown_and_named():
    where = spec.get("ffnn.context").where_latex()
    assert r"X_{:,s} = \mathbf{0} \text{ for } s < 1 \text{ (before the first token)}" in where
    start = spec.get("ffnn.context[start_token]").where_latex()
    assert r"X_{:,s} = E_{:,1} \text{ for } s < 1 \text{ (before the first token)}" in start
    assert "zero vector" in spec.ffnn.__doc__


def test_hidden_output_and_loss_latex():
    assert spec.get("ffnn.hidden").latex() == r"h_{t} = \tanh\left(W_{h} z_{t} + b_{h}\right)"
    assert spec.get("ffnn.output").latex() == (
        r"\hat{y}_{t} = \operatorname{softmax}_{\mathrm{col}}\left(W_{o} h_{t} + b_{o}\right)"
    )
    assert spec.get("ffnn.output[direct]").latex() == (
        r"\hat{y}_{t} = \operatorname{softmax}_{\mathrm{col}}\left(W_{o} h_{t} + b_{o} + U z_{t}\right)"
    )
    assert spec.get("ffnn.loss").latex_lines() == [
        r"Z = \operatorname{context}\left(k\right)",
        r"h_{t} = \operatorname{hidden}\left(Z_{:,t}\right)",
        r"\hat{y}_{t} = \operatorname{output}\left(h_{t}\right)",
        r"\hat{Y} = \left[\hat{y}_{1}, \ldots, \hat{y}_{n}\right]",
        r"\mathcal{L} = -\sum_{t=1}^{n} \log \hat{Y}_{k_{t}, t}",
    ]


def test_shapes_follow_the_catalogue():
    assert spec.get("ffnn.context").declared("Z").shape == (c * d_e, n)
    hidden = spec.get("ffnn.hidden")
    assert hidden.declared("W_h").shape == (d_h, c * d_e)
    assert hidden.space(hidden.declared("W_h")) == "W_h ∈ ℝ^(d_h×c·d_e)"
    direct = spec.get("ffnn.output[direct]")
    assert direct.declared("U").shape == (v, c * d_e)
    assert direct.declared("y_t").entry_kind is Kind.PROBABILITY
    assert {d.name for d in direct.params} == {"W_o", "b_o", "U"}
    loss = spec.get("ffnn.loss")
    assert [o.name for o in loss.outputs] == ["Y_hat", "L"] and loss.declared("L").is_scalar


def test_params_is_the_closed_form():
    eq = spec.get("ffnn.params")
    assert isinstance(eq, CountEquation) and eq.axes == ("v", "d_e", "d_h", "c")
    assert sp.expand(eq.formula - (v * d_e + d_h * (c * d_e + 1) + v * (d_h + 1))) == 0
    sizes = {"v": 5, "d_e": 3, "d_h": 4, "c": 2}
    # 5·3 + 4·(2·3 + 1) + 5·(4 + 1) = 15 + 28 + 25; the direct connection adds U: 5·2·3 = 30
    assert Oracle(eq)({}, sizes)["N"] == 68
    assert Oracle(spec.get("ffnn.params[direct]"))({}, sizes)["N"] == 98


def test_context_by_hand():
    # E's column r embeds token r; tokens k = (4, 0, 2, 1) embed to x_1 = (5, 10), x_2 = (1, 6), x_3 = (3, 8).
    # With c = 3: z_1 = 0, z_2 = [0; 0; x_1], z_3 = [0; x_1; x_2], z_4 = [x_1; x_2; x_3].
    E = np.array([[1.0, 2, 3, 4, 5], [6, 7, 8, 9, 10]])
    k = np.array([4, 0, 2, 1])
    sizes = {"n": 4, "v": 5, "d_e": 2, "c": 3}
    Z = Oracle(spec.get("ffnn.context"))({"k": k, "E": E}, sizes)["Z"]
    want = np.array([[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 5, 10], [0, 0, 5, 10, 1, 6], [5, 10, 1, 6, 3, 8]]).T
    np.testing.assert_array_equal(Z, want)
    # with a start token (index 0, embedding (1, 6)) in the slots before the first token
    Z = Oracle(spec.get("ffnn.context[start_token]"))({"k": k, "E": E}, sizes)["Z"]
    want[:4, 1], want[:2, 2], want[:, 0] = [1, 6, 1, 6], [1, 6], [1, 6, 1, 6, 1, 6]
    np.testing.assert_array_equal(Z, want)


def test_hidden_and_output_by_hand():
    # W_h z + b_h = (1 − 3, 3) + (0.5, −3) = (−1.5, 0)
    h = Oracle(spec.get("ffnn.hidden"))(
        {
            "z_t": np.array([1.0, 2, 3]),
            "W_h": np.array([[1, 0, -1], [0.5, 0.5, 0.5]]),
            "b_h": np.array([0.5, -3]),
        },
        {"c": 1, "d_e": 3, "d_h": 2},
    )["h_t"]
    np.testing.assert_allclose(h, [math.tanh(-1.5), 0.0], rtol=1e-15)
    # logits (ln 2, ln 3, 0): probabilities (2, 3, 1)/6; the direct connection adds ln 4 to the third
    arrays = {"h_t": np.log([2.0, 3]), "W_o": np.array([[1.0, 0], [0, 1], [0, 0]]), "b_o": np.zeros(3)}
    y = Oracle(spec.get("ffnn.output"))(arrays, {"v": 3, "d_h": 2})["y_t"]
    np.testing.assert_allclose(y, [2 / 6, 3 / 6, 1 / 6], rtol=1e-14)
    U = np.zeros((3, 4))
    U[2, 0] = math.log(4)
    direct = {**arrays, "z_t": np.array([1.0, 0, 0, 0]), "U": U}
    y = Oracle(spec.get("ffnn.output[direct]"))(direct, {"v": 3, "d_h": 2, "c": 1, "d_e": 4})["y_t"]
    np.testing.assert_allclose(y, [2 / 9, 3 / 9, 4 / 9], rtol=1e-14)


def test_loss_scores_every_token_by_hand():
    # h = 0, so every ŷ_t = softmax(b_o) = (1, 2, 3)/6; tokens (2, 1, 2, 0): 𝓛 = ln 2 + ln 3 + ln 2 + ln 6
    sizes = {"n": 4, "v": 3, "d_e": 2, "d_h": 5, "c": 1}
    arrays = {
        "k": np.array([2, 1, 2, 0]),
        "E": np.ones((2, 3)),
        "W_h": np.zeros((5, 2)),
        "b_h": np.zeros(5),
        "W_o": np.ones((3, 5)),
        "b_o": np.log([1.0, 2, 3]),
    }
    out = Oracle(spec.get("ffnn.loss"))(arrays, sizes)
    np.testing.assert_allclose(out["Y_hat"], np.tile([[1 / 6], [2 / 6], [3 / 6]], 4), rtol=1e-14)
    assert out["L"] == pytest.approx(math.log(72), rel=1e-14)


# --- the operators ----------------------------------------------------------------------------------------
X = tensor("X", (d_e, n))


def test_padded_column_prints_like_a_column_and_reads_zero_outside():
    s = sp.Symbol("s", integer=True)
    t = sp.Symbol("t", integer=True, positive=True)
    printer = SpecLatexPrinter()
    assert latex(PaddedColumn(X, t - c)) == r"X_{:,t - c}"
    assert PaddedColumn(X, s).shape == (d_e, 1)
    entry = PaddedColumn(X, s)._entry(0, 0)
    assert entry.subs(s, 0) == 0 and entry.subs({s: 2, n: 3}) == X.subs(n, 3)[0, 1]
    assert PaddedColumn(X, s)._latex_definition(printer).startswith(r"X_{:,s} = \mathbf{0}")


def test_padded_column_fill_must_be_a_column_of_the_same_height():
    fill = tensor("f", (d_h,))
    Y = tensor("Y", (d_e, 1))
    with pytest.raises(SpecShapeError, match=r"padded column: rows of the fill disagrees"):
        Equation("ffnn.t", "t", inputs=(X, fill), intermediates=(Y,), outputs=(Y,),
                 bindings=[(Y, PaddedColumn(X, 1, fill))], reference=Reference("t"))  # fmt: skip


def _nll_equation(shift: int) -> Equation:
    Y, k = tensor("Y", (v, n), Kind.PROBABILITY), tensor("k", (n,), Kind.INDEX)
    L = tensor("L", ())
    return Equation("lm.t", "t", inputs=(Y, k), intermediates=(L,), bindings=[(L, SequenceNLL(Y, k, shift))],
                    outputs=(L,), reference=Reference("t"))  # fmt: skip


def test_sequence_nll_by_hand():
    Y = np.array([[0.5, 0.25], [0.25, 0.5], [0.25, 0.25]])
    k = np.array([0, 1])
    # shift 0: −ln Y[0, 0] − ln Y[1, 1] = 2 ln 2; shift 1: column 1 predicts token 2, −ln Y[1, 0] = ln 4
    assert Oracle(_nll_equation(0))({"Y": Y, "k": k}, {"v": 3, "n": 2})["L"] == pytest.approx(2 * math.log(2))
    assert Oracle(_nll_equation(1))({"Y": Y, "k": k}, {"v": 3, "n": 2})["L"] == pytest.approx(math.log(4))
    assert _nll_equation(1).latex() == r"L = -\sum_{t=1}^{n - 1} \log Y_{k_{t + 1}, t}"


def test_sequence_nll_checks_the_token_count():
    Y, k = tensor("Y", (v, n)), tensor("k", (d_h,), Kind.INDEX)
    L = tensor("L", ())
    with pytest.raises(SpecShapeError, match=r"negative log-likelihood: tokens \(columns of Y, rows of k\)"):
        Equation("lm.t", "t", inputs=(Y, k), intermediates=(L,), bindings=[(L, SequenceNLL(Y, k))],
                 outputs=(L,), reference=Reference("t"))  # fmt: skip


# --- the spec satisfies its own invariants -----------------------------------------------------------------
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


@pytest.mark.parametrize("eq_id", FFNN)
def test_the_spec_satisfies_its_own_invariants(eq_id):
    holds(spec.get(eq_id))
