"""The norm family of the spec: notation, hand values, the ε variants, the fast expansion, properties."""

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lmspec import spec
from lmspec.spec import SpecError, tensor
from lmspec.spec.axes import d_e, n
from lmspec.spec.norm import LayerNormEps, TutorialLayerNorm, layer_norm
from lmspec.spec.ops_nn import LayerNorm
from lmspec.verify._errors import PropertyViolation
from lmspec.verify.compare import POLICY, assert_close
from lmspec.verify.oracle import Oracle
from lmspec.verify.properties import PROPERTIES, properties_of
from lmspec.verify.properties.norm import reference_layer_norm
from lmspec.verify.strategies import examples, size_tuples
from lmspec.verify.targets import GeneratedTarget, OracleTarget, Target

LN = "norm.layer_norm"
VARIANTS = [f"{LN}[eps]", f"{LN}[annotated_transformer]"]


def test_registry_and_variants():
    assert [e.id for e in spec.families()["norm"]] == [LN]
    assert spec.get(LN).variant_names == ("eps", "annotated_transformer")


# Goldens written from the definitions.
def test_latex():
    assert spec.get(LN).latex() == r"\hat{H} = \operatorname{LN}\left(H; \alpha, \beta\right)"
    assert (
        spec.get(f"{LN}[eps]").latex()
        == r"\hat{H} = \operatorname{LN}_{\varepsilon}\left(H; \alpha, \beta\right)"
    )
    assert spec.get(f"{LN}[annotated_transformer]").latex() == (
        r"\hat{H} = \widetilde{\operatorname{LN}}_{\varepsilon}\left(H; \alpha, \beta\right)"
    )
    (where,) = spec.get(LN).where_latex()
    assert where.endswith(r"\sigma = \sqrt{\frac{1}{d} \sum_{i} (h_{i} - \mu)^{2}}")
    (where,) = spec.get(f"{LN}[annotated_transformer]").where_latex()
    assert r"\frac{h - \mu \mathbf{1}}{s + \varepsilon}" in where and r"\frac{1}{d - 1}" in where


def test_symbols():
    eq = spec.get(LN)
    assert [d.ascii for d in (*eq.inputs, *eq.params)] == ["H", "alpha", "beta"]
    assert eq.space(eq.declared("alpha")) == "alpha ∈ ℝ^(d_e)"
    var = spec.get(f"{LN}[eps]")
    assert var.space(var.declared("eps")) == "eps ∈ ℝ₊" and var.declared("eps").tex == r"\varepsilon"


def _ln(eq_id, H, alpha, beta, eps=None):
    arrays = {"H": np.array(H, dtype=float), "alpha": np.array(alpha, float), "beta": np.array(beta, float)}
    if eps is not None:
        arrays["eps"] = np.array(eps, dtype=float)
    d, cols = arrays["H"].shape
    return Oracle(spec.get(eq_id))(arrays, {"d_e": d, "n": cols})["H_hat"]


def test_hand_values():
    # column (1, 3): μ = 2, σ = 1 → (−1, 1); α = (2, 1), β = (0, 5). Column (4, 4) is constant → β.
    out = _ln(LN, [[1.0, 4.0], [3.0, 4.0]], [2.0, 1.0], [0.0, 5.0])
    np.testing.assert_allclose(out, [[-2.0, 0.0], [6.0, 5.0]], atol=1e-15)
    # ε = 3: σ = √(1 + 3) = 2 → (−1/2, 1/2); the constant column still gives β
    out = _ln(f"{LN}[eps]", [[1.0, 4.0], [3.0, 4.0]], [1.0, 1.0], [0.0, 0.0], eps=3.0)
    np.testing.assert_allclose(out, [[-0.5, 0.0], [0.5, 0.0]], atol=1e-15)
    # Annotated Transformer: column (1, 2, 3), s² = (1 + 0 + 1)/(3 − 1) = 1, ε = 1 → (h − 2)/(1 + 1)
    out = _ln(f"{LN}[annotated_transformer]", [[1.0], [2.0], [3.0]], [1.0] * 3, [0.0] * 3, eps=1.0)
    np.testing.assert_allclose(out, [[-0.5], [0.0], [0.5]], atol=1e-15)


@pytest.mark.parametrize(
    "op",
    [
        lambda H, a, b: TutorialLayerNorm(H, a, b),
        lambda H, a, b: LayerNormEps(H, a, b, sp.ImmutableMatrix([[sp.Rational(1, 3)]])),
        lambda H, a, b: LayerNormEps(H, a, b, sp.ImmutableMatrix([[sp.Rational(1, 3)]]), 1, "outside"),
    ],
    ids=["tutorial", "eps", "annotated"],
)
def test_the_fast_expansion_equals_the_meaning(op):
    # the oracle's per-column expansion (_explicit) against the element-wise meaning (_entry), exactly
    H = sp.ImmutableMatrix([[1, 2, 5], [3, 2, -1], [0, 2, 4]])
    alpha, beta = sp.ImmutableMatrix([2, -1, 3]), sp.ImmutableMatrix([0, 1, -2])
    node = op(H, alpha, beta)
    fast = node._explicit(lambda m: m)
    meaning = sp.ImmutableMatrix(3, 3, lambda i, j: node._entry(i, j))
    assert sp.simplify(fast - meaning) == sp.zeros(3, 3)
    if isinstance(node, TutorialLayerNorm):
        assert isinstance(node, LayerNorm)  # same meaning, printing and code as spec.ops_nn.LayerNorm
        assert list(fast[:, 1]) == [0, 1, -2]  # the constant column gives β


def test_errors_name_the_bad_choice():
    with pytest.raises(
        SpecError, match="form must be 'tutorial', 'eps' or 'annotated_transformer', found 'x'"
    ):
        layer_norm("x")
    H, a = tensor("H", (d_e, n)), tensor("alpha", (d_e,))
    with pytest.raises(SpecError, match="root must be 'inside' or 'outside', found 'under'"):
        LayerNormEps(H, a, a, tensor("eps", ()), 0, "under")


@pytest.mark.parametrize("eq_id", [LN, *VARIANTS])
def test_generated_code_matches_the_oracle(eq_id):
    eq = spec.get(eq_id)
    oracle, generated = OracleTarget(eq), GeneratedTarget(eq)

    @settings(max_examples=8, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def agree(data):
        ex = data.draw(examples(eq, data.draw(st.sampled_from(size_tuples(eq, 3, 0)))))
        assert_close(generated(ex.arrays, ex.sizes), oracle(ex.arrays, ex.sizes), POLICY["float64"],
                     check="generated=oracle", who="generated", reference="oracle")  # fmt: skip

    agree()


# --- properties --------------------------------------------------------------------------------------
class Fn(Target):
    """A layer norm written in NumPy (spec layout), to break a property on purpose."""

    def __init__(self, eq, fn, name="broken"):
        super().__init__(eq)
        self.fn, self.name = fn, name

    def __call__(self, example, sizes):
        return {"H_hat": self.fn(example)}


def _holds(eq, target, name, options, max_examples=8):
    pool = size_tuples(eq, 3, 0, "small")

    @settings(
        max_examples=max_examples, deadline=None, database=None, phases=[Phase.generate], derandomize=True
    )
    @given(st.data())
    def run(data):
        ex = data.draw(examples(eq, data.draw(st.sampled_from(pool))))
        PROPERTIES[name].check(eq, target, ex, data, options, POLICY["float64"])

    run()


@pytest.mark.parametrize("eq_id", [LN, f"{LN}[eps]"])
def test_the_spec_satisfies_its_own_invariants(eq_id):
    eq = spec.get(eq_id)
    for prop, options in properties_of(eq):
        _holds(eq, GeneratedTarget(eq), prop.name, options)
        _holds(eq, OracleTarget(eq), prop.name, options, max_examples=3)
    # and numpy's reference LN satisfies them too
    ref = Fn(eq, lambda ex: reference_layer_norm(ex["H"], ex["alpha"], ex["beta"], float(ex.get("eps", 0.0))))
    for prop, options in properties_of(eq):
        _holds(eq, ref, prop.name, options)


def _violates(eq_id, name, fn) -> str:
    eq = spec.get(eq_id)
    options = next(o for p, o in properties_of(eq) if p.name == name)
    with pytest.raises(PropertyViolation) as err:
        _holds(eq, Fn(eq, fn), name, options, max_examples=40)
    assert str(err.value).startswith(f"broken violates {name}")
    return str(err.value)


def _bessel(ex):
    H = ex["H"]
    normed = (H - H.mean(axis=-2, keepdims=True)) / np.maximum(H.std(axis=-2, ddof=1, keepdims=True), 1e-300)
    return ex["alpha"][:, None] * normed + ex["beta"][:, None]


def test_statistics_catch_the_bessel_corrected_spread():
    assert "population spread is not 1" in _violates(LN, "layer_norm_statistics", _bessel)


def test_statistics_catch_a_swapped_scale_and_shift():
    swapped = lambda ex: reference_layer_norm(ex["H"], ex["beta"], ex["alpha"])  # noqa: E731
    # with α = 1, β = 0 the swapped LN returns the constant 1: the mean check fails first
    assert "a column's mean is not 0" in _violates(LN, "layer_norm_statistics", swapped)


def test_affine_invariance_catches_an_absolute_eps():
    # ε = 0.5 inside the root where the spec has none: no longer invariant to scaling a column
    with_eps = lambda ex: reference_layer_norm(ex["H"], ex["alpha"], ex["beta"], 0.5)  # noqa: E731
    assert "LN(a h + b) differs from LN(h)" in _violates(LN, "layer_norm_affine_invariance", with_eps)


def test_eps_scaling_law_catches_eps_outside_the_root():
    def outside(ex):
        H = ex["H"]
        normed = (H - H.mean(axis=-2, keepdims=True)) / (H.std(axis=-2, keepdims=True) + ex["eps"])
        return ex["alpha"][:, None] * normed + ex["beta"][:, None]

    message = _violates(f"{LN}[eps]", "layer_norm_affine_invariance", outside)
    assert "LN_ε(a h + b) differs from LN_(ε/a²)(h)" in message
