"""The positional family of the spec: notation, hand values of the sinusoidal table, odd widths,
properties."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lmspec import spec
from lmspec.spec import SpecError
from lmspec.spec.axes import d_e, n_max
from lmspec.spec.positional import Sinusoidal
from lmspec.verify._errors import PropertyViolation
from lmspec.verify.compare import POLICY, assert_close
from lmspec.verify.oracle import Oracle
from lmspec.verify.properties import PROPERTIES, properties_of
from lmspec.verify.properties.positional import sinusoid_pairs
from lmspec.verify.strategies import examples, size_tuples
from lmspec.verify.targets import GeneratedTarget, OracleTarget, Target


def test_registry():
    assert [e.id for e in spec.families()["positional"]] == ["positional.learned", "positional.sinusoidal"]
    assert spec.get("positional.sinusoidal").variant_names == ("halves",)
    assert spec.get("positional.learned").inequalities[0] == (spec.axes.axis("n") <= spec.axes.axis("n_max"))


# Goldens written from the definitions.
def test_latex():
    assert spec.get("positional.learned").latex() == r"\Lambda^{(n)} = \Lambda_{:,1:n}"
    eq = spec.get("positional.sinusoidal")
    assert eq.latex() == r"\Lambda = \operatorname{PE}_{d_{e} \times n_{\max}}"
    assert eq.where_latex() == [
        r"\operatorname{PE}_{2i,t} = \sin\left(t / 10000^{2i/d_{e}}\right), \quad "
        r"\operatorname{PE}_{2i+1,t} = \cos\left(t / 10000^{2i/d_{e}}\right) \quad (i, t \text{ from } 0)"
    ]
    assert r"\lceil d_{e}/2 \rceil + i,t" in spec.get("positional.sinusoidal[halves]").where_latex()[0]


def _table(eq_id: str, d: int, T: int) -> np.ndarray:
    return Oracle(spec.get(eq_id))({}, {"d_e": d, "n_max": T})["Lambda"]


def test_sinusoidal_hand_values():
    # d_e = 4: ω_0 = 1, ω_1 = 10000^{−2/4} = 1/100; rows sin(t), cos(t), sin(t/100), cos(t/100)
    t = np.arange(3.0)
    want = np.stack([np.sin(t), np.cos(t), np.sin(t / 100), np.cos(t / 100)])
    np.testing.assert_allclose(_table("positional.sinusoidal", 4, 3), want, rtol=1e-15, atol=1e-16)
    np.testing.assert_array_equal(_table("positional.sinusoidal", 4, 3)[:, 0], [0.0, 1.0, 0.0, 1.0])


def test_odd_width_keeps_the_last_sine_without_its_cosine():
    # d_e = 3: rows sin(t), cos(t), sin(t / 10000^{2/3})
    t = np.arange(4.0)
    want = np.stack([np.sin(t), np.cos(t), np.sin(t / 10000 ** (2 / 3))])
    np.testing.assert_allclose(_table("positional.sinusoidal", 3, 4), want, rtol=1e-14, atol=1e-16)


def test_halves_stacks_the_sines_above_the_cosines():
    t = np.arange(3.0)
    want = np.stack([np.sin(t), np.sin(t / 100), np.cos(t), np.cos(t / 100)])
    np.testing.assert_allclose(_table("positional.sinusoidal[halves]", 4, 3), want, rtol=1e-15, atol=1e-16)
    # odd: ⌈5/2⌉ = 3 sine rows, then 2 cosine rows
    got = _table("positional.sinusoidal[halves]", 5, 2)[:, 1]
    omega = [10000 ** (-2 * i / 5) for i in range(3)]
    want = [
        math.sin(omega[0]),
        math.sin(omega[1]),
        math.sin(omega[2]),
        math.cos(omega[0]),
        math.cos(omega[1]),
    ]
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_learned_takes_the_first_columns_and_checks_n():
    Lam = np.arange(12.0).reshape(3, 4)  # d_e = 3, n_max = 4
    out = Oracle(spec.get("positional.learned"))({"Lambda": Lam}, {"n": 2, "n_max": 4, "d_e": 3})["Lambda_n"]
    np.testing.assert_array_equal(out, Lam[:, :2])
    with pytest.raises(SpecError, match=r"break the constraint n <= n_max"):
        Oracle(spec.get("positional.learned"))({"Lambda": Lam}, {"n": 5, "n_max": 4, "d_e": 3})


def test_layout_is_checked():
    with pytest.raises(SpecError, match="layout must be 'interleaved' or 'halves', found 'blocks'"):
        Sinusoidal(d_e, n_max, 10000, "blocks")


@pytest.mark.parametrize(
    "eq_id", ["positional.learned", "positional.sinusoidal", "positional.sinusoidal[halves]"]
)
def test_generated_code_matches_the_oracle(eq_id):
    eq = spec.get(eq_id)
    oracle, generated = OracleTarget(eq), GeneratedTarget(eq)

    @settings(max_examples=6, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def agree(data):
        ex = data.draw(examples(eq, data.draw(st.sampled_from(size_tuples(eq, 3, 0)))))
        assert_close(generated(ex.arrays, ex.sizes), oracle(ex.arrays, ex.sizes), POLICY["float64"],
                     check="generated=oracle", who="generated", reference="oracle")  # fmt: skip

    agree()


def test_pairs_of_rows():
    assert sinusoid_pairs(5, "interleaved") == [(0, 1, 0), (2, 3, 1)]
    assert sinusoid_pairs(5, "halves") == [(0, 3, 0), (1, 4, 1)]


# --- properties --------------------------------------------------------------------------------------
class Table(Target):
    def __init__(self, eq, fn, name="broken"):
        super().__init__(eq)
        self.fn, self.name = fn, name

    def __call__(self, example, sizes):
        out = self.eq.outputs[0].ascii
        return {out: self.fn(example, sizes)}


def _holds(eq, target, name, options, max_examples=8):
    pool = size_tuples(eq, 4, 0, "small")

    @settings(
        max_examples=max_examples, deadline=None, database=None, phases=[Phase.generate], derandomize=True
    )
    @given(st.data())
    def run(data):
        ex = data.draw(examples(eq, data.draw(st.sampled_from(pool))))
        PROPERTIES[name].check(eq, target, ex, data, options, POLICY["float64"])

    run()


@pytest.mark.parametrize(
    "eq_id", ["positional.learned", "positional.sinusoidal", "positional.sinusoidal[halves]"]
)
def test_the_spec_satisfies_its_own_invariants(eq_id):
    eq = spec.get(eq_id)
    for prop, options in properties_of(eq):
        _holds(eq, GeneratedTarget(eq), prop.name, options)
        _holds(eq, OracleTarget(eq), prop.name, options, max_examples=3)


def _sin_table(base=10000.0, offset=0.0, swap=False):
    def fn(example, sizes):
        d, T = sizes["d_e"], sizes["n_max"]
        i = np.arange(d) // 2
        angle = (np.arange(T) + offset)[None, :] * base ** (-2.0 * i / d)[:, None]
        even = (np.arange(d) % 2 == 0)[:, None]
        return np.where(even != swap, np.sin(angle), np.cos(angle))

    return fn


def _violates(eq_id, name, fn) -> str:
    eq = spec.get(eq_id)
    options = next(o for p, o in properties_of(eq) if p.name == name)
    with pytest.raises(PropertyViolation) as err:
        _holds(eq, Table(eq, fn), name, options, max_examples=30)
    assert str(err.value).startswith(f"broken violates {name}")
    return str(err.value)


def test_relative_position_holds_for_any_phase_but_not_another_base():
    eq = spec.get("positional.sinusoidal")
    options = dict(eq.invariants[1].options)
    # 1-based positions (t + 1) are still rotated by k ω_i: the property is about offsets only
    _holds(eq, Table(eq, _sin_table(offset=1.0), "one-based"), "sinusoidal_relative_position", options)
    message = _violates("positional.sinusoidal", "sinusoidal_relative_position", _sin_table(base=1000.0))
    assert "are not those at t rotated by" in message


def test_relative_position_catches_sine_and_cosine_swapped():
    _violates("positional.sinusoidal", "sinusoidal_relative_position", _sin_table(swap=True))


def test_bounded_catches_a_scaled_table():
    _violates("positional.sinusoidal", "sinusoidal_bounded", lambda ex, s: 1.5 * _sin_table()(ex, s))


def test_prefix_catches_positions_counted_from_the_end():
    _violates(
        "positional.learned", "learned_positions_prefix", lambda ex, s: ex["Lambda"][:, : s["n"]][:, ::-1]
    )
