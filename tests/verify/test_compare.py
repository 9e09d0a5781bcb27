"""The tolerance policy and its error messages."""

import numpy as np
import pytest

from lmspec.verify._errors import ShapeMismatch, ValueMismatch
from lmspec.verify.compare import POLICY, Tolerance, assert_close, compare

TOL = POLICY["float64"]


def test_within_and_beyond_tolerance():
    assert compare(np.array([1.0 + 5e-10]), np.array([1.0]), TOL).ok  # 5e-10 < 1e-10 + 1e-9
    c = compare(np.array([1.0, 2.0 + 1e-6]), np.array([1.0, 2.0]), TOL)
    assert not c.ok and c.where == (1,) and c.bad == 1
    assert c.max_abs == pytest.approx(1e-6) and c.max_rel == pytest.approx(5e-7)


def test_special_values_match_only_themselves():
    inf, nan = np.inf, np.nan
    assert compare(np.array([inf, -inf, nan]), np.array([inf, -inf, nan]), TOL).ok
    assert not compare(np.array([inf]), np.array([-inf]), TOL).ok
    assert not compare(np.array([nan]), np.array([0.0]), TOL).ok
    assert not compare(np.array([0.0]), np.array([-inf]), TOL).ok
    assert not compare(np.array([1e300]), np.array([inf]), TOL).ok


def test_policy_is_written_per_dtype():
    assert set(POLICY) == {"float64", "float32", "float16", "bfloat16"}
    assert POLICY["float64"] == Tolerance(atol=1e-10, rtol=1e-9)
    assert POLICY["float32"].rtol > POLICY["float64"].rtol


def test_assert_close_names_output_entry_and_reference():
    with pytest.raises(ValueMismatch) as err:
        assert_close({"P": np.array([[0.0, 0.5]])}, {"P": np.array([[0.0, 0.25]])}, TOL,
                     check="impl=oracle", who="impl", reference="oracle")  # fmt: skip
    assert str(err.value).startswith("impl: P[0, 1] = 0.5, oracle gives 0.25 (|Δ| = 0.25")
    assert err.value.check == "impl=oracle" and err.value.details["where"] == [0, 1]
    with pytest.raises(ShapeMismatch, match=r"impl: P has shape \(2,\), the spec expects \(3,\)"):
        assert_close({"P": np.zeros(2)}, {"P": np.zeros(3)}, TOL, check="c", who="impl",
                     reference="oracle")  # fmt: skip


def test_a_difference_against_a_zero_reference_has_no_relative_figure():
    c = compare(np.array([0.5, 2.0]), np.array([0.0, 2.0]), POLICY["float64"])
    assert not c.ok and c.max_abs == 0.5 and c.max_rel == 0.0  # undefined at 0: not 1e+304
    with pytest.raises(ValueMismatch, match=r"\(\|Δ\| = 0\.5, the reference is 0 there; 1 of 2 entries"):
        assert_close({"y": np.array([0.5, 2.0])}, {"y": np.array([0.0, 2.0])}, POLICY["float64"],
                     check="value", who="f", reference="oracle")  # fmt: skip


def test_the_finite_case_and_the_special_case_agree():
    """compare takes a shorter path when neither side holds NaN or ±∞; an infinity both sides share must not
    change any figure of the others."""
    actual, expected = np.array([0.5, 2.0 + 1e-6, -3.0]), np.array([0.0, 2.0, -3.0])
    finite = compare(actual, expected, TOL)
    special = compare(np.append(actual, np.inf), np.append(expected, np.inf), TOL)
    assert not finite.ok and finite.bad == special.bad == 2
    assert (finite.max_abs, finite.max_rel, finite.where) == (special.max_abs, special.max_rel, special.where)
    assert finite.max_abs == 0.5 and finite.max_rel == pytest.approx(5e-7)  # nothing relative to the 0
