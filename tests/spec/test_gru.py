"""The gru family of the spec: the catalogue's step, the reset-after variant real code uses, the unrolled
sequence; goldens written from the math and hand values from the exact oracle."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lmspec import spec
from lmspec.spec import tensor
from lmspec.spec.axes import d_e, d_h
from lmspec.spec.gru import OneMinus
from lmspec.spec.printing.latex import latex
from lmspec.verify.compare import POLICY
from lmspec.verify.oracle import Oracle
from lmspec.verify.properties import properties_of
from lmspec.verify.strategies import examples, size_tuples
from lmspec.verify.targets import GeneratedTarget, OracleTarget

GATES = [
    r"r_{t} = \sigma\left(W_{r} x_{t} + U_{r} h_{t - 1} + b_{r}\right)",
    r"z_{t} = \sigma\left(W_{z} x_{t} + U_{z} h_{t - 1} + b_{z}\right)",
]
INTERPOLATION = r"h_{t} = \left(1 - z_{t}\right) \odot h_{t - 1} + z_{t} \odot \tilde{h}_{t}"


def test_registry_and_variants():
    assert [e.id for e in spec.families()["gru"]] == ["gru.step"]
    eq = spec.get("gru.step")
    assert eq.variant_names == ("reset_after", "sequence")
    assert eq.reference.status == "R" and "Cho" in eq.reference.source
    assert [o.name for o in eq.outputs] == ["r_t", "z_t", "h_tilde", "h_t"]
    assert eq.declared("W").shape == (d_h, d_e) and eq.declared("U").shape == (d_h, d_h)
    assert "torch" in spec.gru.__doc__ and "1 − z_t" in spec.gru.__doc__


# Goldens written from the catalogue: r_t, z_t = σ(…), h̃_t = tanh(W x_t + U(r_t ⊙ h_{t−1}) + b),
# h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ h̃_t; and torch's candidate tanh(W x_t + b + r_t ⊙ (U h_{t−1} + b_U)).
def test_step_latex():
    assert spec.get("gru.step").latex_lines() == [
        *GATES,
        r"\tilde{h}_{t} = \tanh\left(W x_{t} + U \left(r_{t} \odot h_{t - 1}\right) + b\right)",
        INTERPOLATION,
    ]
    assert spec.get("gru.step[reset_after]").latex_lines() == [
        *GATES,
        r"\tilde{h}_{t} = \tanh\left(W x_{t} + b + r_{t} \odot \left(U h_{t - 1} + b_{U}\right)\right)",
        INTERPOLATION,
    ]
    assert spec.get("gru.step[sequence]").latex_lines() == [
        r"h_{0} = \mathbf{0}",
        r"h_{t} = \operatorname{GRU}\left(X_{:,t}, h_{t - 1}\right)",
        r"H = \left[h_{1}, \ldots, h_{n}\right]",
    ]


def test_one_minus():
    z = tensor("z_t", (d_h,))
    assert latex(OneMinus(z)) == r"\left(1 - z_{t}\right)"
    assert OneMinus(z).shape == (d_h, 1)
    assert OneMinus(z)._entry(0, 0) == 1 - z[0, 0]


def _zero(d_e: int, d_h: int, reset_after: bool = False) -> dict[str, np.ndarray]:
    shapes = {"W": (d_h, d_e), "U": (d_h, d_h), "b": (d_h,)}
    out = {f"{p}{s}": np.zeros(shape) for s in ("_r", "_z", "") for p, shape in shapes.items()}
    return {**out, "b_U": np.zeros(d_h)} if reset_after else out


def test_step_by_hand():
    # every weight 0: r = z = 1/2 and h̃ = tanh(b), so h_t = (h_{t−1} + tanh(b)) / 2
    arrays = {"x_t": np.array([1.0, -2, 3]), "h_prev": np.array([0.5, -1]), **_zero(3, 2)}
    arrays["b"] = np.array([1.0, -0.5])
    out = Oracle(spec.get("gru.step"))(arrays, {"d_e": 3, "d_h": 2})
    np.testing.assert_allclose(out["r_t"], [0.5, 0.5], rtol=1e-15)
    np.testing.assert_allclose(out["h_tilde"], np.tanh([1.0, -0.5]), rtol=1e-15)
    np.testing.assert_allclose(out["h_t"], (np.array([0.5, -1]) + np.tanh([1.0, -0.5])) / 2, rtol=1e-15)


def test_reset_before_and_after_the_recurrent_product_differ_by_hand():
    # r = (1/2, 3/4), U swaps the two entries, h_{t−1} = (1, 0):
    # catalogue  U (r ⊙ h) = U (1/2, 0) = (0, 1/2);  reset-after  r ⊙ (U h) = (1/2, 3/4) ⊙ (0, 1) = (0, 3/4)
    base = {"x_t": np.array([1.0, -2, 3]), "h_prev": np.array([1.0, 0]), **_zero(3, 2, reset_after=True)}
    base["b_r"] = np.array([0.0, math.log(3)])
    base["U"] = np.array([[0.0, 1], [1, 0]])
    sizes = {"d_e": 3, "d_h": 2}
    before = Oracle(spec.get("gru.step"))({k: a for k, a in base.items() if k != "b_U"}, sizes)
    after = Oracle(spec.get("gru.step[reset_after]"))(base, sizes)
    np.testing.assert_allclose(before["h_tilde"], [0.0, math.tanh(0.5)], atol=1e-15)
    np.testing.assert_allclose(after["h_tilde"], [0.0, math.tanh(0.75)], atol=1e-15)
    np.testing.assert_allclose(after["h_t"], [0.5, math.tanh(0.75) / 2], atol=1e-15)


def test_sequence_by_hand():
    # one unit, two inputs: the step written out in Python from h_0 = 0
    w = {"r": ((0.5, 0.2), -1.0, 0.25), "z": ((-0.75, 0.5), 0.5, 0.1), "": ((1.0, -0.5), 0.5, -0.3)}
    arrays = {"X": np.array([[1.0, -2, 0.5], [0.5, 1, -1]])}
    for g, (W, U, b) in w.items():
        s = f"_{g}" if g else ""
        arrays.update({f"W{s}": np.array([W]), f"U{s}": np.array([[U]]), f"b{s}": np.array([b])})
    H = Oracle(spec.get("gru.step[sequence]"))(arrays, {"d_e": 2, "d_h": 1, "n": 3})["H"]

    def pre(g, x, h):
        (W0, W1), U, b = w[g]
        return W0 * x[0] + W1 * x[1] + U * h + b

    h, want = 0.0, []
    for x in arrays["X"].T:
        r = 1 / (1 + math.exp(-pre("r", x, h)))
        z = 1 / (1 + math.exp(-pre("z", x, h)))
        (W0, W1), U, b = w[""]
        h_tilde = math.tanh(W0 * x[0] + W1 * x[1] + U * (r * h) + b)
        h = (1 - z) * h + z * h_tilde
        want.append(h)
    np.testing.assert_allclose(H[0], want, rtol=1e-14)


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


@pytest.mark.parametrize("eq_id", ["gru.step", "gru.step[reset_after]", "gru.step[sequence]"])
def test_the_spec_satisfies_its_own_invariants(eq_id):
    holds(spec.get(eq_id))
