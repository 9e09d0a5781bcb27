"""The activation family of the spec: notation goldens, hand values from the oracle, variants, properties."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lmspec import spec
from lmspec.spec import SpecError
from lmspec.spec.activation import activation
from lmspec.verify.compare import POLICY, assert_close
from lmspec.verify.oracle import Oracle
from lmspec.verify.properties import PROPERTIES, properties_of
from lmspec.verify.strategies import examples, size_tuples
from lmspec.verify.targets import GeneratedTarget, OracleTarget, Target

IDS = ["activation.relu", "activation.gelu", "activation.gelu_tanh", "activation.sigmoid", "activation.tanh"]


def test_registry_holds_the_family_in_order():
    assert [e.id for e in spec.families()["activation"]] == IDS


# Goldens written from the definitions (Y = φ(X)), not copied from the printer.
@pytest.mark.parametrize(
    ("eq_id", "tex"),
    [
        ("activation.relu", r"Y = \operatorname{ReLU}\left(X\right)"),
        ("activation.gelu", r"Y = \operatorname{GELU}\left(X\right)"),
        ("activation.gelu_tanh", r"Y = \operatorname{GELU}_{\tanh}\left(X\right)"),
        ("activation.sigmoid", r"Y = \sigma\left(X\right)"),
        ("activation.tanh", r"Y = \tanh\left(X\right)"),
    ],
)
def test_latex(eq_id, tex):
    assert spec.get(eq_id).latex() == tex


def test_where_lines_define_gelu_both_ways():
    assert spec.get("activation.gelu").where_latex() == [
        r"\operatorname{GELU}(x) = x\,\Phi(x) = \frac{x}{2}\left(1 + \operatorname{erf}(x/\sqrt{2})\right)"
    ]
    assert spec.get("activation.gelu_tanh").where_latex()[0].startswith(r"\operatorname{GELU}_{\tanh}(x) = ")


def _at(eq_id: str, x: list[float]) -> np.ndarray:
    X = np.array([x])  # d_e = 1, n = len(x)
    return Oracle(spec.get(eq_id))({"X": X}, {"d_e": 1, "n": len(x)})["Y"][0]


def test_hand_values():
    np.testing.assert_array_equal(_at("activation.relu", [-2.0, 0.0, 1.5]), [0.0, 0.0, 1.5])
    # GELU(1) = Φ(1) = (1 + erf(1/√2))/2; GELU(−1) = −Φ(−1)
    phi1 = 0.5 * (1 + math.erf(1 / math.sqrt(2)))
    np.testing.assert_allclose(_at("activation.gelu", [1.0, -1.0]), [phi1, -(1 - phi1)], rtol=1e-15)
    # GELU_tanh(1) = (1 + tanh(√(2/π)·1.044715))/2
    want = 0.5 * (1 + math.tanh(math.sqrt(2 / math.pi) * 1.044715))
    np.testing.assert_allclose(_at("activation.gelu_tanh", [1.0]), [want], rtol=1e-15)
    np.testing.assert_allclose(_at("activation.sigmoid", [0.0, math.log(3.0)]), [0.5, 0.75], rtol=1e-15)
    np.testing.assert_allclose(_at("activation.tanh", [math.log(2.0)]), [0.6], rtol=1e-15)  # (4−1)/(4+1)


def test_gelu_variants_are_each_other_and_differ_by_at_most_5e_4():
    assert spec.get("activation.gelu[tanh_approximation]").latex() == spec.get("activation.gelu_tanh").latex()
    assert spec.get("activation.gelu_tanh[erf]").latex() == spec.get("activation.gelu").latex()
    xs = [*np.linspace(-4, 4, 33), -2.7]
    gap = np.abs(_at("activation.gelu", xs) - _at("activation.gelu[tanh_approximation]", xs))
    assert gap.max() < 4.8e-4 and gap[-1] > 4.5e-4  # the largest gap is near x ≈ −2.7


def test_unknown_activation_is_named():
    with pytest.raises(SpecError, match=r"unknown activation 'swish' \(known: relu, gelu, gelu_tanh"):
        activation("swish")


def test_every_equation_declares_reference_and_notes():
    for eq in spec.select(["activation"]):
        assert eq.reference.section and eq.notes and eq.reference.status in ("T", "R")
        assert [inv.name for inv in eq.invariants] == [
            "activation_elementwise",
            "activation_identity",
            "activation_range",
        ]


VARIANTS = ["activation.gelu[tanh_approximation]", "activation.gelu_tanh[erf]"]


@pytest.mark.parametrize("eq_id", IDS + VARIANTS)
def test_generated_code_matches_the_oracle(eq_id):
    eq = spec.get(eq_id)
    oracle, generated = OracleTarget(eq), GeneratedTarget(eq)

    @settings(max_examples=5, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def agree(data):
        ex = data.draw(examples(eq, data.draw(st.sampled_from(size_tuples(eq, 2, 0)))))
        assert_close(generated(ex.arrays, ex.sizes), oracle(ex.arrays, ex.sizes), POLICY["float64"],
                     check="generated=oracle", who="generated", reference="oracle")  # fmt: skip

    agree()


# --- properties: true of the spec, and each catches a target that breaks it ----------------------------
class Changed(Target):
    def __init__(self, inner: Target, change, name: str = "broken") -> None:
        super().__init__(inner.eq)
        self.inner, self.change, self.name = inner, change, name

    def __call__(self, example, sizes):
        return {k: self.change(v, example) for k, v in self.inner(example, sizes).items()}


def _holds(eq, target, name, options, max_examples=6):
    pool = size_tuples(eq, 3, 0, "small")

    @settings(
        max_examples=max_examples, deadline=None, database=None, phases=[Phase.generate], derandomize=True
    )
    @given(st.data())
    def run(data):
        ex = data.draw(examples(eq, data.draw(st.sampled_from(pool))))
        PROPERTIES[name].check(eq, target, ex, data, options, POLICY["float64"])

    run()


@pytest.mark.parametrize("eq_id", IDS + VARIANTS)
def test_the_spec_satisfies_its_own_invariants(eq_id):
    eq = spec.get(eq_id)
    for prop, options in properties_of(eq):
        _holds(eq, GeneratedTarget(eq), prop.name, options)
        _holds(eq, OracleTarget(eq), prop.name, options, max_examples=2)


def _violates(eq_id, name, change):
    from lmspec.verify._errors import PropertyViolation

    eq = spec.get(eq_id)
    options = next(o for p, o in properties_of(eq) if p.name == name)
    with pytest.raises(PropertyViolation) as err:
        _holds(eq, Changed(GeneratedTarget(eq), change), name, options, max_examples=30)
    assert str(err.value).startswith(f"broken violates {name}")
    return str(err.value)


def test_elementwise_catches_an_output_that_mixes_entries():
    # (a function of the whole input such as y + sum(X) is permutation-invariant, so it passes: rightly)
    _violates(
        "activation.tanh", "activation_elementwise", lambda y, ex: y + 0.1 * np.roll(ex["X"], 1, axis=-1)
    )


def test_identity_catches_a_leaky_relu():
    # (a constant shift cancels in φ(x) − φ(−x): the identity is a symmetry, not a value check)
    leaky = lambda y, ex: y + 0.1 * np.minimum(ex["X"], 0.0)  # noqa: E731
    message = _violates("activation.relu", "activation_identity", leaky)
    assert "φ(x) − φ(−x) = x does not hold" in message


def test_identity_catches_sigmoid_that_is_not_complementary():
    _violates("activation.sigmoid", "activation_identity", lambda y, ex: y**2)


def test_range_catches_a_sigmoid_above_one():
    message = _violates("activation.sigmoid", "activation_range", lambda y, ex: y * 1.5)
    assert "outside [0.0, 1.0]" in message
