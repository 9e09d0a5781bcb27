"""The network operators: notation goldens and hand-derivable values of their element-wise meaning."""

import math

import numpy as np
import pytest
import sympy as sp

from lmspec import spec
from lmspec.spec import Kind, SpecError, tensor
from lmspec.spec.axes import L, M, d_e, d_h, d_k, d_v, m, n, v
from lmspec.spec.equation import Equation, Reference
from lmspec.spec.ops import CausalMask, HeadConcat, add
from lmspec.spec.ops_nn import POINTWISE, Column, LayerNorm, OneHot, Pick, Stacked, Zeros, apply, call, had
from lmspec.spec.printing.latex import latex
from lmspec.spec.tensors import Family
from lmspec.verify.oracle import Oracle

REF = Reference("test")
H = tensor("H", (d_e, n))
alpha = tensor("alpha", (d_e,), tex=r"\alpha")
beta = tensor("beta", (d_e,), tex=r"\beta")


def _ln_equation(eps=0) -> Equation:
    Y = tensor("Y", (d_e, n))
    return Equation(
        "norm.t", "t", inputs=(H,), params=(alpha, beta), intermediates=(Y,),
        bindings=[(Y, LayerNorm(H, alpha, beta, eps))], outputs=(Y,), reference=REF,
    )  # fmt: skip


def test_layer_norm_latex():
    assert latex(LayerNorm(H, alpha, beta)) == r"\operatorname{LN}\left(H; \alpha, \beta\right)"


def test_layer_norm_of_a_column_by_hand():
    # column (1, 3): μ = 2, σ = 1 (population), so the normalised column is (−1, 1); α = (2, 1), β = (0, 5)
    out = Oracle(_ln_equation())(
        {"H": np.array([[1.0], [3.0]]), "alpha": np.array([2.0, 1.0]), "beta": np.array([0.0, 5.0])},
        {"d_e": 2, "n": 1},
    )["Y"]
    np.testing.assert_allclose(out, [[-2.0], [6.0]], atol=1e-15)


def test_layer_norm_of_a_constant_column_is_beta_without_eps():
    out = Oracle(_ln_equation())(
        {"H": np.full((3, 1), 0.7), "alpha": np.ones(3), "beta": np.array([1.0, 2.0, 3.0])},
        {"d_e": 3, "n": 1},
    )["Y"]
    np.testing.assert_array_equal(out, [[1.0], [2.0], [3.0]])


def test_layer_norm_eps_enters_under_the_root():
    # column (1, 3), ε = 3: σ = √(1 + 3) = 2, so the normalised column is (−1/2, 1/2)
    out = Oracle(_ln_equation(3))(
        {"H": np.array([[1.0], [3.0]]), "alpha": np.ones(2), "beta": np.zeros(2)}, {"d_e": 2, "n": 1}
    )["Y"]
    np.testing.assert_allclose(out, [[-0.5], [0.5]], atol=1e-15)


@pytest.mark.parametrize(
    ("name", "x", "want"),
    [
        ("relu", -2.0, 0.0),
        ("relu", 1.5, 1.5),
        ("gelu", 1.0, 0.5 * (1 + math.erf(1 / math.sqrt(2)))),  # x Φ(x) at x = 1
        ("gelu_tanh", 1.0, 0.5 * (1 + math.tanh(math.sqrt(2 / math.pi) * 1.044715))),
        ("sigmoid", 0.0, 0.5),
        ("tanh", 0.5, math.tanh(0.5)),
    ],
)
def test_pointwise_formulas_by_hand(name, x, want):
    f = POINTWISE[name].formula
    assert float(f.subs(sp.Symbol("x", real=True), x)) == pytest.approx(want, rel=1e-15)


def test_unknown_pointwise_function_is_named():
    with pytest.raises(SpecError, match=r"unknown function 'swish' \(known: relu, gelu"):
        apply("swish", H)


def test_one_hot_and_pick():
    k = tensor("k", (n,), Kind.INDEX)
    Y = tensor("Y", (v, n))
    Omega, picked = tensor("Omega", (v, n)), tensor("y", (n,))
    eq = Equation(
        "lm.t", "t", inputs=(k, Y), intermediates=(Omega, picked),
        bindings=[(Omega, OneHot(k, v)), (picked, Pick(Y, k))], outputs=(Omega, picked), reference=REF,
    )  # fmt: skip
    Yv = np.arange(8.0).reshape(4, 2)
    out = Oracle(eq)({"k": np.array([3, 0]), "Y": Yv}, {"n": 2, "v": 4})
    np.testing.assert_array_equal(out["Omega"], [[0, 1], [0, 0], [0, 0], [1, 0]])
    np.testing.assert_array_equal(out["y"], [Yv[3, 0], Yv[0, 1]])


def test_recurrence_unrolls_in_order():
    # h_t = h_{t−1} + x_t from h_0 = 0 is the running sum of the columns
    t = sp.Symbol("t", integer=True, positive=True)
    X = tensor("X", (d_h, n))
    h = Family("h", t, n, (d_h,), start=0, tex="h_{{index}}")
    out = tensor("S_x", (d_h, n))
    eq = Equation(
        "rnn.t", "t", inputs=(X,), intermediates=(h, out),
        bindings=[(h[0], Zeros(d_h)), (h[t], add(h[t - 1], Column(X, t))), (out, HeadConcat(h[t], t, n))],
        outputs=(out,), reference=REF,
    )  # fmt: skip
    assert eq.latex().splitlines()[2] == r"h_{t} &= h_{t - 1} + X_{:,t} \\"
    X0 = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(Oracle(eq)({"X": X0}, {"d_h": 2, "n": 3})["S_x"], np.cumsum(X0, axis=1))


def test_a_recurrence_must_start_before_it_is_used():
    t = sp.Symbol("t", integer=True, positive=True)
    X = tensor("X", (d_h, n))
    h = Family("h", t, n, (d_h,), start=0)
    with pytest.raises(SpecError, match="uses h before it is declared"):
        Equation(
            "rnn.t", "t", inputs=(X,), intermediates=(h,),
            bindings=[(h[t], add(h[t - 1], Column(X, t)))], outputs=(), reference=REF,
        )  # fmt: skip


def test_stacked_and_hadamard():
    x = Family("x", m, 2, (d_e,))
    assert Stacked(x[m], m, 2).shape == (2 * d_e, 1)
    a, b = tensor("a", (d_e,)), tensor("b", (d_e,))
    assert latex(had(a, b)) == r"a \odot b"


def test_call_checks_its_arguments():
    spec.get("attention.softmax_rows")  # call() takes a registered equation: load the catalogue
    with pytest.raises(SpecError, match=r"unknown \['X'\], missing \['Z'\]"):
        call("attention.softmax_rows", "Y", X=tensor("X", (n, n)))


def test_call_of_multi_head_per_layer_equals_composed_oracles():
    """A residual stack of causal multi-head attention, expanded inline, equals the composition of
    attention.multi_head's own oracle layer by layer."""
    one = Oracle(spec.get("attention.multi_head"))  # loads the catalogue: call() takes registered equations
    l = sp.Symbol("l", integer=True, positive=True)
    X = tensor("X", (d_e, n))
    Hs = Family("H", l, L, (d_e, n), start=0)
    names = ("W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V")
    shapes = ((d_e, d_k), (d_k,), (d_e, d_k), (d_k,), (d_e, d_v), (d_v,))
    fams = {k: Family(k, (l, m), (L, M), s) for k, s in zip(names, shapes, strict=True)}
    W_O, b_O = Family("W_O", l, L, (M * d_v, d_e)), Family("b_O", l, L, (d_e,))
    out = tensor("Y", (d_e, n))
    mha = call(
        "attention.multi_head", "A", H=Hs[l - 1], S=CausalMask(n), W_O=W_O[l], b_O=b_O[l],
        **{k: f.slice(l) for k, f in fams.items()},
    )  # fmt: skip
    eq = Equation(
        "transformer.t", "t", inputs=(X,), params=(*fams.values(), W_O, b_O), intermediates=(Hs, out),
        bindings=[(Hs[0], X), (Hs[l], add(Hs[l - 1], mha)), (out, Hs[L])], outputs=(out,), reference=REF,
    )  # fmt: skip
    sizes = {"n": 3, "d_e": 4, "M": 2, "d_k": 2, "d_v": 3, "L": 2}
    rng = np.random.default_rng(1)
    arrays = {"X": rng.normal(size=(4, 3))}
    for k, s in zip(names, shapes, strict=True):
        arrays[k] = rng.normal(size=(2, 2, *[int(sp.sympify(x).subs({d_e: 4, d_k: 2, d_v: 3})) for x in s]))
    arrays["W_O"], arrays["b_O"] = rng.normal(size=(2, 6, 4)), rng.normal(size=(2, 4))
    got = Oracle(eq)(arrays, sizes)["Y"]
    S = np.where(np.triu(np.ones((3, 3)), 1) > 0, -np.inf, 0.0)
    Hl = arrays["X"]
    for layer in range(2):
        layer_arrays = {k: arrays[k][layer] for k in (*names, "W_O", "b_O")}
        Hl = (
            Hl
            + one({"H": Hl, "S": S, **layer_arrays}, {k: sizes[k] for k in ("n", "d_e", "M", "d_k", "d_v")})[
                "A"
            ]
        )
    np.testing.assert_allclose(got, Hl, rtol=1e-12, atol=1e-12)
