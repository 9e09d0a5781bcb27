"""The lm family of the spec: registry, notation, operators, conventions, values derived by hand."""

import math

import numpy as np
import pytest
import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from lmspec import spec
from lmspec.spec import Kind, SpecError, SpecShapeError, tensor
from lmspec.spec.axes import n, v
from lmspec.spec.equation import Equation, Reference
from lmspec.spec.lm import Above, Neg, Ratio, RowNormalise, Shift, TopKFilter
from lmspec.spec.ops import Ones, Softmax, T, add, mul
from lmspec.spec.ops_nn import Pick, apply
from lmspec.spec.printing.latex import latex
from lmspec.verify.oracle import Oracle
from lmspec.verify.runner import PROFILES, checks_for, run_check
from lmspec.verify.targets import GeneratedTarget, OracleTarget, Target

REF = Reference("test")
LM = [
    "lm.chain_rule",
    "lm.ngram",
    "lm.one_hot",
    "lm.embedding",
    "lm.softmax",
    "lm.cross_entropy",
    "lm.perplexity",
    "lm.temperature",
    "lm.top_k",
]


def _oracle(eq_id: str, arrays: dict, sizes: dict) -> dict:
    return Oracle(spec.get(eq_id))(arrays, sizes)


def test_registry_holds_the_lm_family_in_order():
    assert [e.id for e in spec.families()["lm"]] == LM
    for eq in spec.select(["lm"]):
        assert eq.title and eq.notes and eq.reference.section
    assert {e.id for e in spec.select(["lm"]) if e.reference.status == "T"} == {"lm.one_hot", "lm.embedding"}


# --- notation: goldens written from the math (catalogue lm.*), not copied from the printer -------------
def test_chain_rule_latex_is_the_log_form():
    assert spec.get("lm.chain_rule").latex_lines() == [
        r"p = \left[Y_{k_{i}, i}\right]_{i}",
        r"\log P(w_{1:n}) = \mathbf{1}_{n}^{\top} \log\left(p\right)",
        r"P(w_{1:n}) = \exp\left(\log P(w_{1:n})\right)",
    ]


def test_ngram_latex_counts_with_the_shift_matrix():
    eq = spec.get("lm.ngram")
    assert eq.latex_lines() == [
        r"\Omega = \operatorname{onehot}_{v}\left(k\right)",
        r"C = \Omega J_{n} \Omega^{\top}",
        r"\hat{P} = \operatorname{normalise}_{\mathrm{row}}\left(C\right)",
    ]
    where = eq.where_latex()
    assert r"\left(J_{n}\right)_{ij} = 1 \text{ if } j = i + 1, \text{ else } 0" in where
    assert where[-1].endswith(r"(1/v \text{ if } \textstyle\sum_{w'} C_{hw'} = 0)")
    assert (
        spec.get("lm.ngram[unseen_zero]")
        .where_latex()[-1]
        .endswith(r"(0 \text{ if } \textstyle\sum_{w'} C_{hw'} = 0)")
    )


def test_one_hot_embedding_and_softmax_latex():
    assert spec.get("lm.one_hot").latex() == r"\Omega = \operatorname{onehot}_{v}\left(k\right)"
    assert spec.get("lm.embedding").latex_lines()[1] == r"X = E \Omega"
    assert spec.get("lm.softmax").latex() == r"\hat{y} = \operatorname{softmax}_{\mathrm{col}}\left(z\right)"


def test_cross_entropy_latex_sums_and_averages_over_kept_positions():
    assert spec.get("lm.cross_entropy").latex_lines() == [
        r"\hat{Y} = \operatorname{softmax}_{\mathrm{col}}\left(Z\right)",
        r"\ell = -\log\left(\left[\hat{Y}_{k_{i}, i}\right]_{i}\right)",
        r"\mathcal{L}_{\mathrm{sum}} = \kappa^{\top} \ell",
        r"\mathcal{L} = \frac{\mathcal{L}_{\mathrm{sum}}}{\mathbf{1}_{n}^{\top} \kappa}",
    ]
    assert r"\frac{a}{b} = \mathrm{NaN} \text{ if } b = 0" in spec.get("lm.cross_entropy").where_latex()[1]


def test_perplexity_temperature_and_top_k_latex():
    assert spec.get("lm.perplexity").latex() == (
        r"\mathrm{PPL} = \exp\left(\mathcal{L}_{\mathrm{CE}}\left(Z, k, \kappa\right)\right)"
    )
    assert spec.get("lm.temperature").latex() == (
        r"p_{\tau} = \operatorname{softmax}_{\mathrm{col}}\left(z / \tau\right)"
    )
    eq = spec.get("lm.top_k")
    assert eq.latex_lines() == [
        r"\tilde{z} = \operatorname{top}_{k}\left(z\right)",
        r"p_{k} = \operatorname{softmax}_{\mathrm{col}}\left(\tilde{z}\right)",
    ]
    assert eq.where_latex()[0] == (
        r"\operatorname{top}_{k}(z)_{i} = \begin{cases} z_{i} & \left|\{j : z_{j} > z_{i}\}\right| < k \\"
        r" -\infty & \text{otherwise} \end{cases}"
    )


def test_shapes_kinds_and_constraints():
    ce = spec.get("lm.cross_entropy")
    assert ce.declared("Z").shape == (v, n)
    assert ce.declared("k").entry_kind is Kind.INDEX and ce.declared("k").spec_shape == (n,)
    assert ce.declared("keep").entry_kind is Kind.MASK and ce.declared("keep").tex == r"\kappa"
    assert [o.name for o in ce.outputs] == ["ell", "loss_sum", "loss"]
    assert ce.declared("loss").spec_shape == ()
    assert spec.get("lm.embedding").space(spec.get("lm.embedding").declared("E")) == "E ∈ ℝ^(d_e×v)"
    top_k = spec.get("lm.top_k")
    k_top = spec.axes.axis("k_top")
    assert top_k.constraints == (sp.Le(k_top, v),) and top_k.axes == ("v", "k_top")
    assert spec.get("lm.temperature").declared("tau").entry_kind is Kind.POSITIVE
    assert spec.get("lm.temperature").params == (spec.get("lm.temperature").declared("tau"),)


def test_no_tensor_is_named_like_an_axis():
    for eq in spec.select(["lm"]):
        for d in eq.symbols:
            assert d.name not in spec.GLOSSARY and d.ascii not in spec.GLOSSARY, (eq.id, d.name)


# --- operators ----------------------------------------------------------------------------------
def test_neg_prints_a_plain_minus_and_negates():
    X, Y = tensor("X", (v, n)), tensor("Y", (v, n))
    assert latex(Neg(X)) == "-X"
    assert latex(add(X, Neg(Y))) == "X - Y"
    assert latex(Neg(add(X, Y))) == r"-\left(X + Y\right)"
    assert Neg(X)._entry(1, 2) == -X[1, 2]


def test_ratio_is_nan_over_zero_and_checks_scalars():
    a, b, r = tensor("a", ()), tensor("b", ()), tensor("r", ())
    eq = Equation(
        "lm.t",
        "t",
        inputs=(a, b),
        intermediates=(r,),
        bindings=[(r, Ratio(a, b))],
        outputs=(r,),
        reference=REF,
    )
    assert Oracle(eq)({"a": np.array(3.0), "b": np.array(4.0)}, {})["r"] == 0.75
    assert math.isnan(Oracle(eq)({"a": np.array(3.0), "b": np.array(0.0)}, {})["r"])
    assert latex(Ratio(a, b)) == r"\frac{a}{b}"
    x = tensor("x", (n,))
    with pytest.raises(SpecShapeError, match="ratio numerator"):
        Equation(
            "lm.t",
            "t",
            inputs=(x, b),
            intermediates=(r,),
            bindings=[(r, Ratio(x, b))],
            outputs=(r,),
            reference=REF,
        )


def test_shift_has_ones_on_the_superdiagonal():
    J = Shift(n)
    assert J.shape == (n, n)
    assert sp.ImmutableMatrix(3, 3, lambda i, j: J._entry(i, j)) == sp.ImmutableMatrix(
        [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
    )
    assert latex(J) == "J_{n}"


def test_row_normalise_rejects_an_unknown_convention():
    with pytest.raises(
        SpecError, match=r"RowNormalise: unseen must be one of \('uniform', 'zero'\), found 'nan'"
    ):
        RowNormalise(tensor("C", (v, v)), "nan")


def test_above_is_an_iverson_bracket_that_stays_a_sum():
    a, b = sp.symbols("a b", real=True)
    assert Above(2, 1) == 1 and Above(1, 1) == 0 and Above(1, 2) == 0 and Above(a, a) == 0
    assert latex(Above(a, b)) == r"\left[a > b\right]"
    assert PythonCodePrinter().doprint(Above(a, b)) == "(1 if (a) > (b) else 0)"
    count = Above(a, b) + Above(b, a)
    assert sp.Lt(count, 1).func is sp.StrictLessThan  # no expansion into logic
    assert latex(TopKFilter(tensor("z", (v,)), 3)) == r"\operatorname{top}_{3}\left(z\right)"


# --- values derived by hand ---------------------------------------------------------------------
def test_chain_rule_by_hand():
    # P(w_1 = 1) = 0.5, P(w_2 = 0 | w_1) = 0.2, P(w_3 = 2 | w_1, w_2) = 0.4 → P = 0.04
    Y = np.array([[0.3, 0.2, 0.1], [0.5, 0.5, 0.5], [0.2, 0.3, 0.4]])
    out = _oracle("lm.chain_rule", {"Y": Y, "k": np.array([1, 0, 2])}, {"v": 3, "n": 3})
    assert out["prob"] == pytest.approx(0.04, rel=1e-14)
    assert out["log_prob"] == pytest.approx(math.log(0.04), rel=1e-14)


def test_ngram_counts_and_estimates_by_hand():
    # tokens 0 1 0 2 (v = 4): bigrams (0,1), (1,0), (0,2); c(0) = 2, c(1) = 1, c(2) = c(3) = 0
    out = _oracle("lm.ngram", {"k": np.array([0, 1, 0, 2])}, {"v": 4, "n": 4})
    C = np.zeros((4, 4))
    C[0, 1] = C[1, 0] = C[0, 2] = 1
    np.testing.assert_array_equal(out["C"], C)
    np.testing.assert_array_equal(
        out["P_hat"], [[0, 0.5, 0.5, 0], [1, 0, 0, 0], [0.25] * 4, [0.25] * 4]
    )  # unseen histories 2 and 3 (2 ends the sequence) are uniform
    zero = Oracle(spec.get("lm.ngram[unseen_zero]"))({"k": np.array([0, 1, 0, 2])}, {"v": 4, "n": 4})
    np.testing.assert_array_equal(zero["P_hat"][2:], np.zeros((2, 4)))


def test_ngram_of_a_single_token_has_no_bigram():
    out = _oracle("lm.ngram", {"k": np.array([2])}, {"v": 3, "n": 1})
    np.testing.assert_array_equal(out["C"], np.zeros((3, 3)))
    np.testing.assert_array_equal(out["P_hat"], np.full((3, 3), 1 / 3))


def test_one_hot_and_embedding_select_columns():
    k = np.array([2, 0, 2])
    Omega = _oracle("lm.one_hot", {"k": k}, {"v": 3, "n": 3})["Omega"]
    np.testing.assert_array_equal(Omega, [[0, 1, 0], [0, 0, 0], [1, 0, 1]])
    E = np.arange(6.0).reshape(2, 3)  # d_e = 2, v = 3
    X = _oracle("lm.embedding", {"k": k, "E": E}, {"v": 3, "n": 3, "d_e": 2})["X"]
    np.testing.assert_array_equal(X, E[:, k])


def test_softmax_and_temperature_by_hand():
    z = np.log([1.0, 2.0, 5.0])
    np.testing.assert_allclose(
        _oracle("lm.softmax", {"z": z}, {"v": 3})["y_hat"], [0.125, 0.25, 0.625], rtol=1e-14
    )
    # τ = 1/2 squares the odds: weights 1, 4, 25
    p = _oracle("lm.temperature", {"z": z, "tau": np.array(0.5)}, {"v": 3})["p_tau"]
    np.testing.assert_allclose(p, np.array([1, 4, 25]) / 30, rtol=1e-14)


def test_cross_entropy_by_hand_with_padding_and_nothing_kept():
    # column 0: probabilities 1/4, 1/4, 1/2 (target 2); column 1 uniform (target 0); column 2 padding
    Z = np.log(np.array([[1.0, 1.0, 7.0], [1.0, 1.0, 1.0], [2.0, 1.0, 3.0]]))
    arrays = {"Z": Z, "k": np.array([2, 0, 1]), "keep": np.array([1.0, 1.0, 0.0])}
    out = _oracle("lm.cross_entropy", arrays, {"v": 3, "n": 3})
    np.testing.assert_allclose(out["ell"], [math.log(2), math.log(3), math.log(11)], rtol=1e-14)
    assert out["loss_sum"] == pytest.approx(math.log(6), rel=1e-14)
    assert out["loss"] == pytest.approx(math.log(6) / 2, rel=1e-14)
    none = _oracle("lm.cross_entropy", {**arrays, "keep": np.zeros(3)}, {"v": 3, "n": 3})
    assert none["loss_sum"] == 0 and math.isnan(none["loss"])


def test_perplexity_by_hand():
    Z = np.log(np.array([[1.0, 1.0, 7.0], [1.0, 1.0, 1.0], [2.0, 1.0, 3.0]]))
    arrays = {"Z": Z, "k": np.array([2, 0, 1]), "keep": np.array([1.0, 1.0, 0.0])}
    assert _oracle("lm.perplexity", arrays, {"v": 3, "n": 3})["PPL"] == pytest.approx(math.sqrt(6), rel=1e-14)
    uniform = {"Z": np.zeros((5, 2)), "k": np.array([4, 1]), "keep": np.ones(2)}
    assert _oracle("lm.perplexity", uniform, {"v": 5, "n": 2})["PPL"] == pytest.approx(5.0, rel=1e-14)
    assert math.isnan(_oracle("lm.perplexity", {**uniform, "keep": np.zeros(2)}, {"v": 5, "n": 2})["PPL"])


@pytest.mark.parametrize(
    ("k_top", "kept"),
    [
        (1, [0, 0, 0, 0, 1]),  # only 5
        (2, [0, 1, 1, 0, 1]),  # 5, then both 3s: each has one larger logit
        (3, [0, 1, 1, 0, 1]),  # the 3s have one larger, 1 has three: still three kept
        (4, [1, 1, 1, 0, 1]),
        (5, [1, 1, 1, 1, 1]),  # k = v keeps everything
    ],
)
def test_top_k_keeps_ties_with_the_kth_largest(k_top, kept):
    z = np.array([1.0, 3.0, 3.0, 0.0, 5.0])
    out = _oracle("lm.top_k", {"z": z}, {"v": 5, "k_top": k_top})
    mask = np.array(kept, dtype=bool)
    np.testing.assert_array_equal(out["z_top"], np.where(mask, z, -np.inf))
    w = np.where(mask, np.exp(z), 0.0)
    np.testing.assert_allclose(out["p_top"], w / w.sum(), rtol=1e-14)


def test_top_k_sizes_must_meet_the_constraint():
    with pytest.raises(SpecError, match=r"break the constraint k_top <= v"):
        _oracle("lm.top_k", {"z": np.zeros(3)}, {"v": 3, "k_top": 4})


# --- the spec satisfies its own invariants ------------------------------------------------------
@pytest.mark.parametrize("eq_id", LM)
def test_the_spec_satisfies_every_declared_property(eq_id):
    # on the exact oracle and on the generated code: the properties are true statements about the math
    eq = spec.get(eq_id)
    for target in (OracleTarget(eq), GeneratedTarget(eq)):
        for check in checks_for(eq, PROFILES["quick"], 0, target):
            if check.name.startswith("property:"):
                result = run_check(check, PROFILES["quick"], 0)
                assert result.passed, f"{target.name}: {result.message}"


def test_ignores_padding_catches_a_sum_over_every_position_on_an_oracle_too():
    """A (wrong) spec that sums every position, padding included, breaks ignores_padding: the property is
    not vacuous whatever the target."""
    Z, k, keep = tensor("Z", (v, n)), tensor("k", (n,), Kind.INDEX), tensor("keep", (n,), Kind.MASK)
    ell, loss = tensor("ell", (n,)), tensor("loss", ())
    options = {"keep": "keep", "tokens": {"Z": 1, "k": 0}, "outputs": ["loss"]}
    wrong = Equation(
        "lm.wrong_sum", "wrong", inputs=(Z, k, keep), intermediates=(ell, loss),
        bindings=[(ell, Neg(apply("log", Pick(Softmax(Z, "columns"), k)))), (loss, mul(T(Ones(n)), ell))],
        outputs=(loss,), reference=REF, invariants=(spec.Invariant("ignores_padding", options),),
    )  # fmt: skip
    checks = checks_for(wrong, PROFILES["quick"], 0, OracleTarget(wrong))
    (check,) = [c for c in checks if c.name == "property:ignores_padding"]
    assert not run_check(check, PROFILES["quick"], 0).passed


class Broken(Target):
    """A target whose outputs are post-processed, to break one property on purpose."""

    def __init__(self, inner: Target, change) -> None:
        super().__init__(inner.eq)
        self.inner, self.change, self.name = inner, change, "broken"

    def __call__(self, example, sizes):
        return self.change(dict(self.inner(example, sizes)))


@pytest.mark.parametrize(
    ("eq_id", "prop", "change"),
    [
        ("lm.one_hot", "one_hot_columns", lambda out: {"Omega": out["Omega"] * 0.5}),
        ("lm.cross_entropy", "cross_entropy_bounds", lambda out: {**out, "ell": out["ell"] - 0.5}),
        ("lm.ngram", "ngram_estimate", lambda out: {**out, "P_hat": np.sqrt(out["P_hat"])}),
        ("lm.top_k", "top_k_keeps_k", lambda out: {**out, "p_top": np.exp(out["z_top"])}),
    ],
)
def test_each_property_catches_a_target_that_breaks_it(eq_id, prop, change):
    eq = spec.get(eq_id)
    target = Broken(GeneratedTarget(eq), change)
    checks = [c for c in checks_for(eq, PROFILES["quick"], 0, target) if c.name == f"property:{prop}"]
    result = run_check(checks[0], PROFILES["quick"], 0)
    assert not result.passed and result.message.startswith(f"broken violates {prop}")


VARIANTS = [f"{eq.id}[{name}]" for eq in spec.select(["lm"]) for name in eq.variant_names]


@pytest.mark.parametrize("variant", VARIANTS)
def test_generated_code_of_every_variant_matches_its_oracle(variant):
    eq = spec.get(variant)
    (check,) = [
        c for c in checks_for(eq, PROFILES["quick"], 0, OracleTarget(eq)) if c.name == "generated=oracle"
    ]
    assert run_check(check, PROFILES["quick"], 0).passed
