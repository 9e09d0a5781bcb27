"""The training family of the spec: notation, the entry-wise operators, the symbolic gradient of the
cross-entropy, and values derived by hand."""

import math

import numpy as np
import pytest
import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement

from lmspec import spec
from lmspec.spec import Kind, SpecShapeError, tensor
from lmspec.spec.axes import n, v
from lmspec.spec.equation import Equation, Reference
from lmspec.spec.printing.latex import latex
from lmspec.spec.training import BETA1, BETA2, Constant, Formula, entrywise, plus, times
from lmspec.verify.oracle import Oracle
from lmspec.verify.runner import PROFILES, checks_for, run_check
from lmspec.verify.targets import GeneratedTarget, OracleTarget, Target

TRAINING = [
    "training.mle",
    "training.softmax_ce_grad",
    "training.sgd",
    "training.weight_decay",
    "training.adamw",
]
REF = Reference("test")
d_theta = spec.axes.axis("d_theta")


def test_registry_holds_the_training_family_in_order():
    assert [e.id for e in spec.families()["training"]] == TRAINING
    for eq in spec.select(["training"]):
        assert eq.title and eq.notes and eq.reference.status == "R"
    assert spec.get("training.adamw").variant_names == ("l2_coupled", "transformers_legacy")


# --- notation: goldens written from the math ----------------------------------------------------------
def test_mle_latex_is_the_average_negative_log_likelihood():
    assert spec.get("training.mle").latex_lines() == [
        r"p = \left[\hat{Y}_{k_{i}, i}\right]_{i}",
        r"\log P_{\theta}(\mathcal{D}) = \kappa^{\top} \log\left(p\right)",
        r"\mathcal{L}(\theta) = -\frac{\log P_{\theta}(\mathcal{D})}{\mathbf{1}_{n}^{\top} \kappa}",
    ]


def test_softmax_ce_grad_latex_is_y_hat_minus_omega():
    assert spec.get("training.softmax_ce_grad").latex_lines() == [
        r"\hat{Y} = \operatorname{softmax}_{\mathrm{col}}\left(Z\right)",
        r"\Omega = \operatorname{onehot}_{v}\left(k\right)",
        r"\mathcal{L} = -\mathbf{1}_{v}^{\top} \left(\Omega \odot \log\left(\hat{Y}\right)\right)"
        r" \mathbf{1}_{n}",
        r"\frac{\partial \mathcal{L}}{\partial Z} = \hat{Y} - \Omega",
    ]


def test_sgd_and_weight_decay_latex():
    assert spec.get("training.sgd").latex() == r"\theta' = \theta - \eta\, g"
    assert spec.get("training.weight_decay").latex_lines() == [
        r"R_{\lambda}(\theta) = \frac{\lambda}{2} \theta^{\top} \theta",
        r"g_{\lambda} = g + \lambda \theta",
        r"\theta'_{L_2} = \theta - \eta g_{\lambda}",
        r"\theta'_{\mathrm{dec}} = \left(1 - \eta \lambda\right) \theta - \eta g",
    ]


def test_adamw_latex_is_kingma_ba_with_decoupled_decay():
    eq = spec.get("training.adamw")
    assert eq.latex_lines() == [
        r"m_{t} = \beta_{1} m_{t-1} + \left(1 - \beta_{1}\right) g",
        r"v_{t} = \beta_{2} v_{t-1} + \left(1 - \beta_{2}\right) g^{2}",
        r"\hat{m}_{t} = \frac{m_{t}}{1 - \beta_{1}^{t}}",
        r"\hat{v}_{t} = \frac{v_{t}}{1 - \beta_{2}^{t}}",
        r"\theta_{t} = \theta - \eta \left(\frac{\hat{m}_{t}}{\sqrt{\hat{v}_{t}} + \epsilon}"
        r" + \lambda \theta\right)",
    ]
    assert eq.where_latex()[1:] == [r"\beta_{1} = 0.9", r"\beta_{2} = 0.999"]
    assert spec.get("training.adamw[l2_coupled]").latex_lines()[0] == r"g_{\lambda} = g + \lambda \theta"
    assert spec.get("training.adamw[transformers_legacy]").latex_lines()[-1] == (
        r"\theta_{t} = \left(1 - \eta \lambda\right) \left(\theta - \eta \frac{\sqrt{1 - \beta_{2}^{t}}}"
        r"{1 - \beta_{1}^{t}} \frac{m_{t}}{\sqrt{v_{t}} + \epsilon}\right)"
    )


def test_parameters_and_kinds():
    eq = spec.get("training.adamw")
    assert [d.ascii for d in eq.inputs] == ["theta", "g", "m", "s"]
    assert [d.ascii for d in eq.params] == ["eta", "lam", "eps", "t"]
    assert all(d.entry_kind is Kind.POSITIVE and d.spec_shape == () for d in eq.params)
    assert eq.declared("s").entry_kind is Kind.POSITIVE and eq.declared("s").tex == "v_{t-1}"
    assert eq.axes == ("d_theta",)
    assert (BETA1, BETA2) == (sp.Rational(9, 10), sp.Rational(999, 1000))
    for e in spec.select(["training"]):
        for d in e.symbols:
            assert d.name not in spec.GLOSSARY and d.ascii not in spec.GLOSSARY, (e.id, d.name)


# --- the entry-wise operators ---------------------------------------------------------------------
def test_formula_broadcasts_scalars_and_prints_in_the_written_order():
    theta, g, eta = (
        tensor("theta", (d_theta,), tex=r"\theta"),
        tensor("g", (d_theta,)),
        tensor("eta", (), tex=r"\eta"),
    )
    step = entrywise(lambda th, et, gr: plus(th, -times(et, gr)), theta, eta, g)
    assert step.shape == (d_theta, 1)
    assert latex(step) == r"\theta - \eta g"
    assert step._entry(2, 0) == theta[2, 0] - eta[0, 0] * g[2, 0]
    out = tensor("out", (d_theta,))
    eq = Equation("training.t", "t", inputs=(theta, g), params=(eta,), intermediates=(out,),
                  bindings=[(out, step)], outputs=(out,), reference=REF)  # fmt: skip
    got = Oracle(eq)(
        {"theta": np.array([1.0, 2.0]), "g": np.array([4.0, -8.0]), "eta": np.array(0.25)}, {"d_theta": 2}
    )
    np.testing.assert_array_equal(got["out"], [0.0, 4.0])


def test_formula_rejects_operands_of_another_shape():
    a, b = tensor("a", (d_theta,)), tensor("b", (n,))
    out = tensor("out", (d_theta,))
    bad = entrywise(lambda x, y: x + y, a, b)
    with pytest.raises(SpecShapeError, match="entry-wise formula"):
        Equation(
            "training.t",
            "t",
            inputs=(a, b),
            intermediates=(out,),
            bindings=[(out, bad)],
            outputs=(out,),
            reference=REF,
        )


def test_constant_prints_its_name_and_holds_its_value():
    beta = Constant(sp.Rational(9, 10), r"\beta_{1}")
    assert latex(beta) == r"\beta_{1}" and beta._entry(0, 0) == sp.Rational(9, 10)
    assert beta.free_symbols == set() and isinstance(Formula(sp.Symbol("_a0", real=True), beta), Formula)


# --- the gradient: sp.diff of the spec's cross-entropy equals the spec's gradient -------------------
def _definitions(eq) -> dict:
    """Every defined symbol of ``eq`` replaced by its definition (inputs stay symbols)."""
    defs: dict = {}
    for b in eq.bindings:
        defs[eq.declared(b.name)] = b.rhs.xreplace(defs)
    return defs


def _explicit(entry: sp.Expr, sizes: dict, targets: tuple[int, ...], keep: bool = False) -> sp.Expr:
    """An entry at concrete sizes (its sums done), logits as plain symbols z_ji, targets and mask filled."""

    def leaf(x: MatrixElement) -> sp.Expr:
        name, i, j = x.parent.name, int(x.i), int(x.j)
        if name == "k":
            return sp.Integer(targets[i])
        if name == "keep":
            return sp.S.One
        return sp.Symbol(f"z_{i}{j}", real=True)

    done = entry.subs(sizes).doit()
    return done.replace(lambda x: isinstance(x, MatrixElement), leaf)


@pytest.mark.parametrize("targets", [(2, 0), (1, 1)])
def test_sympy_derivative_of_the_cross_entropy_is_the_spec_gradient(targets):
    """At v = 3, n = 2 with symbolic logits: ∂/∂z_ji of training.softmax_ce_grad's 𝓛 and of
    lm.cross_entropy's summed loss (every position kept) both equal the entry (j, i) of Ŷ − Ω."""
    sizes = {v: 3, n: 2}
    grad = _definitions(spec.get("training.softmax_ce_grad"))
    loss = _explicit(grad[spec.get("training.softmax_ce_grad").declared("loss")][0, 0], sizes, targets)
    ce_eq = spec.get("lm.cross_entropy")
    ce_sum = _explicit(_definitions(ce_eq)[ce_eq.declared("loss_sum")][0, 0], sizes, targets, keep=True)
    G = grad[spec.get("training.softmax_ce_grad").declared("G")]
    for i in range(2):
        for j in range(3):
            want = _explicit(G[j, i], sizes, targets)
            z = sp.Symbol(f"z_{j}{i}", real=True)
            assert sp.simplify(sp.diff(loss, z) - want) == 0
            assert sp.simplify(sp.diff(ce_sum, z) - want) == 0
    assert want.has(sp.exp)  # the gradient is a softmax, not a constant


# --- values derived by hand ---------------------------------------------------------------------
def test_mle_is_the_mean_negative_log_likelihood_of_kept_tokens():
    # kept tokens have probabilities 1/2 and 1/8: 𝓛 = (log 2 + log 8)/2 = 2 log 2
    Y = np.array([[0.5, 0.25, 0.9], [0.5, 0.125, 0.05], [0.0, 0.625, 0.05]])
    out = Oracle(spec.get("training.mle"))(
        {"Y_hat": Y, "k": np.array([1, 1, 0]), "keep": np.array([1.0, 1.0, 0.0])}, {"v": 3, "n": 3}
    )
    assert out["log_lik"] == pytest.approx(-4 * math.log(2), rel=1e-14)
    assert out["loss"] == pytest.approx(2 * math.log(2), rel=1e-14)


def test_mle_with_softmax_predictions_is_the_mean_cross_entropy():
    rng = np.random.default_rng(7)
    Z, k, keep = rng.normal(size=(5, 4)), np.array([4, 0, 3, 3]), np.array([1.0, 0.0, 1.0, 1.0])
    Y = np.exp(Z) / np.exp(Z).sum(axis=0)
    mle = Oracle(spec.get("training.mle"))({"Y_hat": Y, "k": k, "keep": keep}, {"v": 5, "n": 4})["loss"]
    ce = Oracle(spec.get("lm.cross_entropy"))({"Z": Z, "k": k, "keep": keep}, {"v": 5, "n": 4})["loss"]
    assert mle == pytest.approx(ce, rel=1e-13)


def test_sgd_weight_decay_and_the_first_adamw_step_by_hand():
    theta, g = np.array([1.0, -2.0]), np.array([0.5, 4.0])
    assert Oracle(spec.get("training.sgd"))({"theta": theta, "g": g, "eta": np.array(0.5)}, {"d_theta": 2})[
        "theta_next"
    ].tolist() == [0.75, -4.0]
    wd = Oracle(spec.get("training.weight_decay"))(
        {"theta": theta, "g": g, "eta": np.array(0.5), "lam": np.array(0.25)}, {"d_theta": 2}
    )
    assert wd["penalty"] == 0.625  # (1/4)/2 · (1 + 4)
    assert wd["g_l2"].tolist() == [0.75, 3.5]
    assert wd["theta_l2"].tolist() == wd["theta_dec"].tolist() == [0.625, -3.75]
    # first step (t = 1) from zero moments: m̂ = g and v̂ = g², so the step is η(g/(|g| + ε) + λθ)
    zeros = np.zeros(2)
    out = Oracle(spec.get("training.adamw"))(
        {"theta": theta, "g": g, "m": zeros, "s": zeros, "eta": np.array(0.5), "lam": np.array(0.25),
         "eps": np.array(0.5), "t": np.array(1.0)},
        {"d_theta": 2},
    )  # fmt: skip
    np.testing.assert_allclose(
        out["theta_next"], theta - 0.5 * (g / (np.abs(g) + 0.5) + 0.25 * theta), rtol=1e-14
    )
    np.testing.assert_allclose(out["m_next"], 0.1 * g, rtol=1e-14)
    np.testing.assert_allclose(out["s_next"], 0.001 * g**2, rtol=1e-14)


def test_adamw_variants_differ_where_they_should():
    zeros = np.zeros(2)
    hyper = {"eta": np.array(0.5), "lam": np.array(0.25), "eps": np.array(0.5), "t": np.array(3.0)}
    arrays = {"theta": np.array([1.0, -2.0]), "g": zeros, "m": zeros, "s": zeros, **hyper}
    decay_only = Oracle(spec.get("training.adamw"))(arrays, {"d_theta": 2})["theta_next"]
    np.testing.assert_allclose(decay_only, (1 - 0.125) * arrays["theta"], rtol=1e-14)
    coupled = Oracle(spec.get("training.adamw[l2_coupled]"))(arrays, {"d_theta": 2})["theta_next"]
    assert not np.allclose(coupled, decay_only)  # λθ went through the adaptive scaling


# --- the spec satisfies its own invariants ------------------------------------------------------
@pytest.mark.parametrize("eq_id", TRAINING)
def test_the_spec_satisfies_every_declared_property(eq_id):
    # on the exact oracle and on the generated code: the properties are true statements about the math
    eq = spec.get(eq_id)
    for target in (OracleTarget(eq), GeneratedTarget(eq)):
        for check in checks_for(eq, PROFILES["quick"], 0, target):
            if check.name.startswith("property:"):
                result = run_check(check, PROFILES["quick"], 0)
                assert result.passed, f"{target.name}: {result.message}"


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
        (
            "training.weight_decay",
            "l2_equals_decoupled_for_sgd",
            lambda out: {**out, "theta_dec": out["theta_dec"] * 1.5},
        ),
        ("training.mle", "mle_empirical_minimum", lambda out: {**out, "loss": out["loss"] ** 2}),
        ("training.adamw", "decoupled_decay", lambda out: {**out, "theta_next": out["theta_next"] * 0.5}),
        ("training.sgd", "torch_optimizer_step", lambda out: {"theta_next": out["theta_next"] + 1e-6}),
    ],
)
def test_each_property_catches_a_target_that_breaks_it(eq_id, prop, change):
    eq = spec.get(eq_id)
    target = Broken(GeneratedTarget(eq), change)
    checks = [c for c in checks_for(eq, PROFILES["quick"], 0, target) if c.name == f"property:{prop}"]
    result = run_check(checks[0], PROFILES["quick"], 0)
    assert not result.passed and result.message.startswith(f"broken violates {prop}")


@pytest.mark.parametrize("variant", ["training.adamw[l2_coupled]", "training.adamw[transformers_legacy]"])
def test_generated_code_of_every_variant_matches_its_oracle(variant):
    eq = spec.get(variant)
    assert set(spec.get("training.adamw").variant_names) == {"l2_coupled", "transformers_legacy"}
    (check,) = [
        c for c in checks_for(eq, PROFILES["quick"], 0, OracleTarget(eq)) if c.name == "generated=oracle"
    ]
    assert run_check(check, PROFILES["quick"], 0).passed
