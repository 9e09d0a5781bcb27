"""The vit family of the spec: registry, notation, the patch order, and hand-derivable oracle values."""

import math

import numpy as np
import pytest
import sympy as sp

from lmspec import spec
from lmspec.spec import Family, Kind, SpecShapeError
from lmspec.spec.axes import P, axis
from lmspec.spec.equation import Equation, Reference
from lmspec.spec.printing.latex import latex
from lmspec.spec.tensors import tensor
from lmspec.spec.vit import HCat, Patchify
from lmspec.verify.compare import POLICY, assert_close
from lmspec.verify.oracle import Oracle, concrete_shape
from lmspec.verify.strategies import seeded_tensor, size_tuples
from lmspec.verify.targets import GeneratedTarget

VIT = ["vit.patchify", "vit.input", "vit.encoder", "vit.head"]
C_i, H_i, W_i, N_p, N_h, N_w, d_p = (axis(a) for a in ("C_i", "H_i", "W_i", "N_p", "N_h", "N_w", "d_p"))


def test_registry_holds_the_vit_family_in_order():
    assert [e.id for e in spec.families()["vit"]] == VIT
    for eq in spec.select(["vit"]):
        assert eq.reference.status == "R" and "Dosovitskiy" in eq.reference.source
        assert eq.notes and eq.title
    assert spec.get("vit.input").variant_names == ("no_bias",)
    assert spec.get("vit.encoder").variant_names == ("eps", "gelu_tanh", "gelu_tanh_eps")
    assert spec.get("vit.head").variant_names == ("eps", "no_bias", "no_bias_eps")


# Goldens written from the equations (Dosovitskiy et al. 2021, eqs. 1–4, in the tutorial's notation).
def test_latex_of_the_four_equations():
    assert spec.get("vit.patchify").latex() == r"X_{p} = \operatorname{patchify}_{P}\left(X\right)"
    assert spec.get("vit.input").latex() == (
        r"H^{0} = \left[x_{\mathrm{cls}}, E_{p} X_{p} + b_{p} \mathbf{1}_{N}^{\top}\right] + \Lambda"
    )
    assert spec.get("vit.input[no_bias]").latex() == (
        r"H^{0} = \left[x_{\mathrm{cls}}, E_{p} X_{p}\right] + \Lambda"
    )
    assert spec.get("vit.encoder").latex_lines() == [
        r"H^{0} = X",
        r"H^{l} = \operatorname{Block}^{(l)}\left(H^{l - 1}, \mathbf{0}\right)",
        r"H_{\mathrm{out}} = H^{L}",
    ]
    assert spec.get("vit.head").latex_lines() == [
        r"\hat{h} = \operatorname{LN}\left(H_{:,1}; \alpha_{e}, \beta_{e}\right)",
        r"z = W_{\mathrm{head}} \hat{h} + b_{\mathrm{head}}",
        r"\hat{y} = \operatorname{softmax}_{\mathrm{col}}\left(z\right)",
    ]
    assert spec.get("vit.head[no_bias]").latex_lines()[1] == r"z = W_{\mathrm{head}} \hat{h}"
    assert spec.get("vit.head[eps]").latex_lines()[0] == (
        r"\hat{h} = \operatorname{LN}_{\varepsilon}\left(H_{:,1}; \alpha_{e}, \beta_{e}\right)"
    )


def test_the_patch_order_is_written_under_the_equation():
    # entry (k−1)P² + (r−1)P + s of patch (a−1)N_w + b is pixel ((a−1)P + r, (b−1)P + s) of channel k
    assert spec.get("vit.patchify").where_latex() == [
        r"\left[\operatorname{patchify}_{P}\left(X\right)\right]_{(k-1)P^{2} + (r-1)P + s,\ (a-1)N_{w} + b}"
        r" = X^{(k)}_{(a-1)P + r,\ (b-1)P + s}"
    ]


def test_image_is_a_family_of_channel_planes_and_the_grid_is_constrained():
    eq = spec.get("vit.patchify")
    X = eq.declared("X")
    assert isinstance(X, Family) and X.count == C_i and X.shape == (H_i, W_i)
    assert eq.space(X) == "X^(k) ∈ ℝ^(H_img×W_img), k = 1..C"
    assert eq.declared("X_p").shape == (d_p, N_p)
    assert {str(c) for c in eq.constraints} == {
        "Eq(H_i, N_h*P)",
        "Eq(W_i, N_w*P)",
        "Eq(N_p, N_h*N_w)",
        "Eq(d_p, C_i*P**2)",
    }
    assert eq.free_axes == ("P", "C_i", "N_h", "N_w")


def test_input_shapes_and_the_token_count():
    eq = spec.get("vit.input")
    n, d_e = axis("n"), axis("d_e")
    assert eq.declared("E_p").shape == (d_e, d_p)
    assert eq.declared("x_cls").spec_shape == (d_e,)
    assert eq.declared("Lambda").shape == (d_e, n)
    assert sp.Eq(n, N_p + 1) in eq.constraints
    assert "d_p = P²C" in eq.notes and "no_bias" in eq.notes


def test_encoder_is_per_layer_pre_ln_blocks_with_exact_gelu_and_no_mask():
    eq = spec.get("vit.encoder")
    block = eq.bindings[1].rhs
    assert block.equation.id == "transformer.block_pre_ln[gelu]"
    assert spec.get("vit.encoder[eps]").bindings[1].rhs.equation.id == "transformer.block_pre_ln[gelu_eps]"
    assert spec.get("vit.encoder[gelu_tanh]").bindings[1].rhs.equation.id == "transformer.block_pre_ln"
    assert block.arguments["S"].shape == (axis("n"), axis("n"))  # the zero mask
    W_Q = eq.declared("W_Q")
    assert W_Q.indices[0].name == "l" and W_Q.counts == (axis("L"), axis("M"))
    assert "eps" in {d.name for d in spec.get("vit.encoder[eps]").params}
    assert sp.Eq(axis("d_v"), axis("d_k")) in eq.constraints


def test_head_output_is_a_probability_vector():
    eq = spec.get("vit.head")
    assert eq.outputs[0].entry_kind is Kind.PROBABILITY
    assert eq.outputs[0].spec_shape == (axis("n_c"),)


def _grid_sizes(P_, C, rows, cols):
    return {"P": P_, "C_i": C, "N_h": rows, "N_w": cols, "H_i": P_ * rows, "W_i": P_ * cols}


def test_patchify_by_hand():
    # P = 2, C = 3, a 1 × 4 grid: image 3 × 2 × 8 holding 0..47 (channel, row, column)
    sizes = {**_grid_sizes(2, 3, 1, 4), "N_p": 4, "d_p": 12}
    X = np.arange(48.0).reshape(3, 2, 8)
    X_p = Oracle(spec.get("vit.patchify"))({"X": X}, sizes)["X_p"]
    assert X_p.shape == (12, 4)
    # patch b (0-based) covers columns 2b, 2b + 1; entry (k, r, s) is X[k, r, 2b + s]
    for b in range(4):
        want = [X[k, r, 2 * b + s] for k in range(3) for r in range(2) for s in range(2)]
        np.testing.assert_array_equal(X_p[:, b], want)
    np.testing.assert_array_equal(X_p[:, 1], [2, 3, 10, 11, 18, 19, 26, 27, 34, 35, 42, 43])


def test_patchify_grid_is_row_major():
    # P = 1, C = 2, a 2 × 3 grid: patch i is pixel (i // 3, i % 3), its two channels stacked
    sizes = {**_grid_sizes(1, 2, 2, 3), "N_p": 6, "d_p": 2}
    X = np.arange(12.0).reshape(2, 2, 3)
    X_p = Oracle(spec.get("vit.patchify"))({"X": X}, sizes)["X_p"]
    np.testing.assert_array_equal(X_p, [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]])


def test_input_by_hand():
    # d_e = 2, N = 3 patches of d_p = 1: E_p = (1, 2)ᵀ, b_p = (0, 1), x_cls = (5, 7), Λ = 0
    sizes = {"d_e": 2, "N_p": 3, "d_p": 1, "n": 4}
    arrays = {
        "X_p": np.array([[1.0, 2.0, 3.0]]),
        "x_cls": np.array([5.0, 7.0]),
        "E_p": np.array([[1.0], [2.0]]),
        "b_p": np.array([0.0, 1.0]),
        "Lambda": np.array([[0.0, 0.0, 0.0, 0.5], [0.0, 0.0, 0.0, 0.25]]),
    }
    H0 = Oracle(spec.get("vit.input"))(arrays, sizes)["H0"]
    np.testing.assert_array_equal(H0, [[5, 1, 2, 3.5], [7, 3, 5, 7.25]])


def test_encoder_with_zero_sublayers_is_the_identity():
    # W_O = b_O = W_2 = b_2 = 0: every block adds nothing to the residual stream
    eq = spec.get("vit.encoder")
    sizes = {"n": 2, "d_e": 3, "M": 1, "d_k": 2, "d_v": 2, "d_f": 4, "L": 2}
    rng = np.random.default_rng(0)
    arrays = {d.ascii: rng.normal(size=concrete_shape(d, sizes)) for d in (*eq.inputs, *eq.params)}
    for name in ("W_O", "b_O", "W_2", "b_2"):
        arrays[name] = np.zeros_like(arrays[name])
    out = Oracle(eq)(arrays, sizes)["H_out"]
    np.testing.assert_allclose(out, arrays["X"], atol=1e-15)


def test_head_by_hand():
    # class token (1, 3): μ = 2, σ = 1, so LN = (−1, 1); W_head = I, b_head = 0 → softmax(−1, 1)
    sizes = {"n": 2, "d_e": 2, "n_c": 2}
    arrays = {
        "H": np.array([[1.0, 100.0], [3.0, -100.0]]),  # the second token must not matter
        "alpha_e": np.ones(2),
        "beta_e": np.zeros(2),
        "W_head": np.eye(2),
        "b_head": np.zeros(2),
    }
    y = Oracle(spec.get("vit.head"))(arrays, sizes)["y_hat"]
    e = math.exp(2.0)
    np.testing.assert_allclose(y, [1 / (1 + e), e / (1 + e)], rtol=1e-15)


def test_hcat_side_by_side():
    d_e, n = axis("d_e"), axis("n")
    a, B = tensor("a", (d_e,)), tensor("B", (d_e, n))
    cat = HCat(a, B)
    assert cat.shape == (d_e, n + 1)
    assert latex(cat) == r"\left[a, B\right]"
    with pytest.raises(SpecShapeError, match="side-by-side concatenation: rows disagree"):
        Equation(
            "vit.t", "t", inputs=(tensor("c", (n,)), B), intermediates=(tensor("Y", (d_e, n + 1)),),
            bindings=[(tensor("Y", (d_e, n + 1)), HCat(tensor("c", (n,)), B))],
            outputs=(tensor("Y", (d_e, n + 1)),), reference=Reference("t"),
        )  # fmt: skip


def test_patchify_checks_the_image_against_the_grid():
    k = sp.Symbol("k", integer=True, positive=True)
    X = Family("X", k, C_i, (H_i, W_i))
    Y = tensor("Y", (P**2 * C_i, N_h * N_w))
    with pytest.raises(SpecShapeError, match=r"patchify: image rows \(P N_h\) disagrees"):
        Equation(
            "vit.t", "t", inputs=(X,), intermediates=(Y,),
            bindings=[(Y, Patchify(X[k], k, C_i, P, N_h, N_w))], outputs=(Y,), reference=Reference("t"),
        )  # fmt: skip


VARIANTS = [f"{eq.id}[{name}]" for eq in spec.select(["vit"]) for name in eq.variant_names]


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
