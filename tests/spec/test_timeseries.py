"""The timeseries family of the spec: notation, the masked loss's empty case, PatchTST's patch count, end
padding and the variants that leave out the tail (no_padding) or the head (drop_start), by hand with the
oracle."""

import math

import numpy as np
import pytest
import sympy as sp

from lmspec import spec
from lmspec.spec import Family, Kind, SpecError
from lmspec.spec.axes import axis
from lmspec.spec.printing.latex import latex
from lmspec.spec.tensors import tensor
from lmspec.spec.timeseries import Difference, Ratio, Unfold
from lmspec.spec.timeseries import patching as patching_equation
from lmspec.verify.compare import POLICY, assert_close
from lmspec.verify.oracle import Oracle, concrete_shape
from lmspec.verify.strategies import seeded_tensor, size_tuples
from lmspec.verify.targets import GeneratedTarget

TIMESERIES = ["timeseries.input", "timeseries.masked_mse", "timeseries.patching"]
d_e, d_x, n, L_in, S_p, N_p, P = (axis(a) for a in ("d_e", "d_x", "n", "L_in", "S_p", "N_p", "P"))


def test_registry_holds_the_timeseries_family_in_order():
    assert [e.id for e in spec.families()["timeseries"]] == TIMESERIES
    assert spec.get("timeseries.input").variant_names == ("scaled",)
    assert spec.get("timeseries.masked_mse").variant_names == ("empty_nan",)
    assert spec.get("timeseries.patching").variant_names == ("no_bias", "no_padding", "drop_start")
    for eq in spec.select(["timeseries"]):
        assert eq.reference.status == "R" and eq.notes and eq.title


# Goldens written from Zerveas et al. 2021 (§3.1) and Nie et al. 2023 (§3.1) in the tutorial's notation.
def test_latex():
    assert spec.get("timeseries.input").latex() == (
        r"U = W_{p} X + b_{p} \mathbf{1}_{n}^{\top} + \Lambda_{:,1:n}"
    )
    assert spec.get("timeseries.input[scaled]").latex() == (
        r"U = \sqrt{d_{e}} \left(W_{p} X + b_{p} \mathbf{1}_{n}^{\top}\right) + \Lambda_{:,1:n}"
    )
    assert spec.get("timeseries.masked_mse").latex_lines() == [
        r"E = \mathbf{1}_{m}^{\top} \left(\mathcal{M} \odot \operatorname{sq}\left(\hat{X} - X\right)"
        r"\right) \mathbf{1}_{n}",
        r"|\mathcal{M}| = \mathbf{1}_{m}^{\top} \mathcal{M} \mathbf{1}_{n}",
        r"\mathcal{L} = \frac{E}{|\mathcal{M}|}",
    ]
    assert spec.get("timeseries.patching").latex_lines() == [
        r"\tilde{X} = \left[X, X_{:,L_{\mathrm{in}}} \mathbf{1}_{S}^{\top}\right]",
        r"X_{p}^{(i)} = \operatorname{unfold}_{P,S}\left(\tilde{X}_{i,:}\right)",
        r"U^{(i)} = W_{p} X_{p}^{(i)} + b_{p} \mathbf{1}_{N}^{\top} + W_{\mathrm{pos}}",
    ]
    assert spec.get("timeseries.patching[no_padding]").latex_lines()[0] == (
        r"X_{p}^{(i)} = \operatorname{unfold}_{P,S}\left(X_{i,:}\right)"
    )
    assert spec.get("timeseries.patching[drop_start]").latex_lines()[0] == (
        r"X_{p}^{(i)} = \operatorname{unfold}_{P,S}\left(X_{i,\left(L_{\mathrm{in}} - P\right) "
        r"\operatorname{mod} S + 1:L_{\mathrm{in}}}\right)"
    )
    assert spec.get("timeseries.patching[drop_start]").unicode_lines()[0] == (
        "X_p⁽ⁱ⁾ = unfold_(P,S)(X_(i,(L_in−P)modS+1:L_in))"
    )


def test_where_lines():
    assert spec.get("timeseries.masked_mse").where_latex()[1] == r"\frac{a}{b} := 0 \text{ if } b = 0"
    assert spec.get("timeseries.masked_mse[empty_nan]").where_latex()[1] == (
        r"\frac{a}{b} := \mathrm{NaN} \text{ if } b = 0"
    )
    assert spec.get("timeseries.patching").where_latex() == [
        r"\left[\operatorname{unfold}_{P,S}(x)\right]_{r,j} = x_{(j-1)S + r}, \quad r = 1..P"
    ]


def test_shapes_constraints_and_kinds():
    eq = spec.get("timeseries.patching")
    assert eq.declared("W_p").shape == (d_e, P)
    U = eq.declared("U")
    assert isinstance(U, Family) and U.count == d_x and U.shape == (d_e, N_p)
    assert sp.Eq(N_p, sp.floor((L_in - P) / S_p) + 2) in eq.constraints
    assert sp.Le(P, L_in) in eq.constraints
    for variant in ("no_padding", "drop_start"):
        assert (
            sp.Eq(N_p, sp.floor((L_in - P) / S_p) + 1)
            in spec.get(f"timeseries.patching[{variant}]").constraints
        )
    assert spec.get("timeseries.masked_mse").declared("mask").entry_kind is Kind.MASK
    assert spec.get("timeseries.masked_mse").outputs[0].is_scalar
    assert sp.Le(n, axis("n_max")) in spec.get("timeseries.input").constraints


def test_input_by_hand():
    # m = 2 variables, n = 3 steps, d_e = 1: W_p = (1, −1), b_p = 10, Λ = (0.5, 0.25, 0.125, 9)
    arrays = {
        "X": np.array([[1.0, 2.0, 3.0], [0.0, 5.0, 1.0]]),
        "W_p": np.array([[1.0, -1.0]]),
        "b_p": np.array([10.0]),
        "Lambda": np.array([[0.5, 0.25, 0.125, 9.0]]),
    }
    sizes = {"d_x": 2, "n": 3, "d_e": 1, "n_max": 4}
    U = Oracle(spec.get("timeseries.input"))(arrays, sizes)["U"]
    np.testing.assert_array_equal(U, [[11.5, 7.25, 12.125]])
    scaled = Oracle(spec.get("timeseries.input[scaled]"))(arrays, sizes)["U"]  # √d_e = 1
    np.testing.assert_array_equal(scaled, U)


def _mse(mask, variant=""):
    X = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    X_hat = np.array([[2.0, 2.0, 0.0], [4.0, 9.0, 6.0]])  # errors 1, 0, −3 / 0, 4, 0
    eq = spec.get(f"timeseries.masked_mse{variant}")
    return float(
        Oracle(eq)({"X": X, "X_hat": X_hat, "mask": np.array(mask, float)}, {"d_x": 2, "n": 3})["loss"]
    )


def test_masked_mse_by_hand():
    assert _mse([[1, 0, 1], [0, 1, 0]]) == (1 + 9 + 16) / 3
    assert _mse([[0, 1, 0], [1, 0, 1]]) == 0.0  # masked entries are exact; the errors elsewhere do not count
    assert _mse([[1, 1, 1], [1, 1, 1]]) == 26 / 6


def test_masked_mse_with_nothing_masked_is_zero_and_nan_in_the_variant():
    assert _mse([[0, 0, 0], [0, 0, 0]]) == 0.0
    assert math.isnan(_mse([[0, 0, 0], [0, 0, 0]], "[empty_nan]"))
    assert _mse([[1, 0, 0], [0, 0, 0]], "[empty_nan]") == 1.0


def _patching(variant="", L=5, P_=2, S=3, X=None):
    eq = spec.get(f"timeseries.patching{variant}")
    N = (L - P_) // S + (1 if "no_padding" in variant or "drop_start" in variant else 2)
    d_e = 4
    W_p = np.zeros((d_e, P_))
    W_p[0, 0] = W_p[1, 1] = 1.0  # rows 1 and 2 of U read the patch itself
    arrays = {"X": X, "W_p": W_p, "W_pos": np.zeros((d_e, N))}
    if "no_bias" not in variant:
        arrays["b_p"] = np.zeros(d_e)
    sizes = {"d_x": X.shape[0], "L_in": L, "P": P_, "S_p": S, "d_e": d_e, "N_p": N}
    return Oracle(eq)(arrays, sizes)["U"]


def test_patching_pads_with_the_last_value():
    # L_in = 5, P = 2, S = 3: N = ⌊3/3⌋ + 2 = 3 patches of x̃ = (x1..x5, x5, x5, x5): (x1,x2), (x4,x5), (x5,x5)
    X = np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [10.0, 20.0, 30.0, 40.0, 50.0], [7.0, 7.0, 7.0, 7.0, 8.0]])
    U = _patching(X=X)
    assert U.shape == (3, 4, 3)  # variables, d_e, patches
    np.testing.assert_array_equal(U[0, :2], [[1, 4, 5], [2, 5, 5]])
    np.testing.assert_array_equal(U[1, :2], [[10, 40, 50], [20, 50, 50]])
    np.testing.assert_array_equal(U[2, :2], [[7, 7, 8], [7, 8, 8]])
    np.testing.assert_array_equal(U[:, 2:], 0)


def test_patching_without_padding_drops_the_tail():
    X = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    U = _patching("[no_padding]", X=X)  # N = ⌊3/3⌋ + 1 = 2: (x1,x2), (x4,x5)
    np.testing.assert_array_equal(U[0, :2], [[1, 4], [2, 5]])


def test_patching_with_drop_start_drops_the_head():
    # L_in = 6, P = 2, S = 3: N = ⌊4/3⌋ + 1 = 2, r = 4 mod 3 = 1: x1 left out, (x2,x3), (x5,x6) end at x6
    X = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]])
    U = _patching("[drop_start]", L=6, X=X)
    np.testing.assert_array_equal(U[:, :2], [[[2, 5], [3, 6]], [[20, 50], [30, 60]]])
    np.testing.assert_array_equal(_patching("[no_padding]", L=6, X=X)[0, :2], [[1, 4], [2, 5]])  # x6 left out
    # with S | L_in − P (L_in = 5: r = 0) nothing is left out and the two variants agree
    np.testing.assert_array_equal(
        _patching("[drop_start]", X=X[:, :5]), _patching("[no_padding]", X=X[:, :5])
    )


def test_patching_bias_and_positions():
    eq = spec.get("timeseries.patching")
    X = np.array([[1.0, 2.0, 3.0]])  # L_in = 3, P = 3, S = 2: N = 0 + 2 = 2 patches (1,2,3), (3,3,3)
    arrays = {
        "X": X,
        "W_p": np.array([[1.0, 1.0, 1.0]]),
        "b_p": np.array([100.0]),
        "W_pos": np.array([[0.5, 0.25]]),
    }
    U = Oracle(eq)(arrays, {"d_x": 1, "L_in": 3, "P": 3, "S_p": 2, "d_e": 1, "N_p": 2})["U"]
    np.testing.assert_array_equal(U, [[[106.5, 109.25]]])


def test_operators_print_and_check():
    a, b = tensor("a", ()), tensor("b", ())
    assert latex(Ratio(a, b)) == r"\frac{a}{b}"
    A, B = tensor("A", (d_x, n)), tensor("B", (d_x, n))
    assert latex(Difference(A, B)) == "A - B"
    assert Unfold(A, 2, P, S_p, N_p).shape == (P, N_p)
    assert Unfold(A, 2, P, S_p, N_p, start=sp.Mod(n - P, S_p)).shape == (P, N_p)
    assert latex(Unfold(A, 1, P, S_p, N_p, start=2)) == r"\operatorname{unfold}_{P,S}\left(A_{1,3:n}\right)"
    with pytest.raises(
        SpecError, match=r"padding must be one of \('end', 'none', 'drop_start'\), found 'start'"
    ):
        patching_equation(padding="start")
    with pytest.raises(SpecError, match=r"Ratio: empty must be one of \('zero', 'nan'\), found 'inf'"):
        Ratio(a, b, "inf")


VARIANTS = [f"{eq.id}[{name}]" for eq in spec.select(["timeseries"]) for name in eq.variant_names]


@pytest.mark.parametrize("variant", VARIANTS)
def test_generated_code_of_every_variant_matches_its_oracle(variant):
    eq = spec.get(variant)
    sizes = size_tuples(eq, 1, 0)[0]  # the first tuple pins the smallest case (n = 1 where there is an n)
    rng = np.random.default_rng(7)
    arrays = {}
    for d in (*eq.inputs, *eq.params):
        shape = ((2,) if d in eq.inputs else ()) + concrete_shape(d, sizes)
        arrays[d.ascii] = seeded_tensor(rng, d.entry_kind, shape, sizes)
    want = Oracle(eq)(arrays, sizes)
    got = GeneratedTarget(eq)(arrays, sizes)
    assert_close(got, want, POLICY["float64"], check="generated=oracle", who="generated", reference="oracle")
