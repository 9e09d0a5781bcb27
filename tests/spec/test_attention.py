"""The attention family of the spec: registry, notation, variants, goldens written from the math."""

import pytest
import sympy as sp

from lmspec import spec
from lmspec.spec import Family, Kind, UnknownEquation
from lmspec.spec.printing.latex import latex

ATTENTION = [
    "attention.projections",
    "attention.softmax_rows",
    "attention.causal_mask",
    "attention.padding_mask",
    "attention.scaled_dot_product",
    "attention.multi_head",
    "attention.cross",
]


def test_registry_holds_the_attention_family_in_order():
    assert [e.id for e in spec.families()["attention"]] == ATTENTION
    assert [e.id for e in spec.select(["attention"])] == ATTENTION
    assert spec.get("attention.multi_head").reference.number == "28"


def test_unknown_ids_and_variants_are_clear_errors():
    with pytest.raises(UnknownEquation, match="unknown equation 'attention.nope'"):
        spec.get("attention.nope")
    with pytest.raises(UnknownEquation, match=r"has no variant 'x' \(variants: unscaled, "):
        spec.get("attention.scaled_dot_product[x]")
    with pytest.raises(UnknownEquation, match="malformed equation id"):
        spec.get("attention.multi_head[unscaled")


# Goldens written from the tutorial's equations, not copied from the printer's output.
def test_scaled_dot_product_latex_is_the_tutorials():
    eq = spec.get("attention.scaled_dot_product")
    assert eq.latex() == (r"P = \operatorname{softmax}\left(\frac{Q K^{\top}}{\sqrt{d_{k}}} + S\right) V")


def test_multi_head_latex_is_equation_28():
    lines = spec.get("attention.multi_head").latex_lines()
    assert lines == [
        r"Q^{(m)} = H^{\top} W_{Q}^{(m)} + \mathbf{1}_{n} {b_{Q}^{(m)}}^{\top}",
        r"K^{(m)} = H^{\top} W_{K}^{(m)} + \mathbf{1}_{n} {b_{K}^{(m)}}^{\top}",
        r"V^{(m)} = H^{\top} W_{V}^{(m)} + \mathbf{1}_{n} {b_{V}^{(m)}}^{\top}",
        r"P^{(m)} = \operatorname{softmax}\left(\frac{Q^{(m)} {K^{(m)}}^{\top}}{\sqrt{d_{k}}}"
        r" + S\right) V^{(m)}",
        r"P = \left[P^{(1)}, \ldots, P^{(M)}\right]",
        r"A = \left(P W_{O}\right)^{\top} + b_{O} \mathbf{1}_{n}^{\top}",
    ]


def test_shapes_and_kinds_follow_the_tutorial():
    eq = spec.get("attention.multi_head")
    d_e, n, M, d_v, d_k = (spec.axes.axis(a) for a in ("d_e", "n", "M", "d_v", "d_k"))
    H = eq.declared("H")
    assert H.shape == (d_e, n) and H.entry_kind is Kind.REAL
    assert eq.declared("S").entry_kind is Kind.ADDITIVE_MASK
    W_Q = eq.declared("W_Q")
    assert isinstance(W_Q, Family) and W_Q.count == M and W_Q.shape == (d_e, d_k)
    assert eq.declared("W_O").shape == (M * d_v, d_e)
    assert eq.declared("b_O").spec_shape == (d_e,)
    assert eq.space(W_Q) == "W_Q^(m) ∈ ℝ^(d_e×d_k), m = 1..M"
    assert eq.space(eq.declared("W_O")) == "W_O ∈ ℝ^(M·d_v×d_e)"
    assert eq.outputs[0].shape == (d_e, n)


@pytest.mark.parametrize(
    ("variant", "needle"),
    [
        ("scale_sqrt_d_e", r"\sqrt{d_{e}}"),
        ("unscaled", r"\operatorname{softmax}\left(Q^{(m)} {K^{(m)}}^{\top} + S\right)"),
    ],
)
def test_multi_head_variants_change_the_scale(variant, needle):
    var = spec.get(f"attention.multi_head[{variant}]")
    assert var.id == f"attention.multi_head[{variant}]"
    assert var.variant_of == "attention.multi_head"
    assert needle in var.latex()
    assert needle not in spec.get("attention.multi_head").latex()


def test_no_bias_variant_drops_every_bias():
    var = spec.get("attention.multi_head[no_bias]")
    names = {d.name for d in (*var.inputs, *var.params)}
    assert names == {"H", "S", "W_Q", "W_K", "W_V", "W_O"}


def test_no_output_projection_variant_is_the_heads_side_by_side():
    """Hugging Face's BertSelfAttention returns P; its W_O is BertSelfOutput's dense."""
    mha = spec.get("attention.multi_head")
    var = mha.variant("no_output_projection")
    assert {d.name for d in var.params} == {"W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V"}
    assert [str(c) for c in var.constraints] == ["Eq(d_e, M*d_v)"] and "d_e" not in var.free_axes
    assert {i.name for i in var.invariants} == {"causal", "permutation_equivariance"}  # no W_O to split
    assert mha.variant_without(["W_O", "b_O"]) == "no_output_projection"
    assert mha.variant_without(["b_Q", "b_K", "b_V", "b_O"]) == "no_bias"
    assert mha.variant_without(["W_O"]) is None  # only exactly a variant's parameters name it


def test_mask_fill_variants_hold_the_documented_values():
    causal = spec.get("attention.causal_mask[fill_1e4]")
    assert causal.bindings[0].rhs.fill == -10_000
    hf = spec.get("attention.padding_mask[fill_finfo_min]")
    assert float(hf.bindings[0].rhs.fill) == -3.4028234663852886e38  # torch.finfo(torch.float32).min


def test_fully_masked_convention_is_documented_and_named():
    sdp = spec.get("attention.scaled_dot_product")
    assert sdp.bindings[0].rhs.args[0].fully_masked == "zero"
    assert set(sdp.variant_names) >= {"fully_masked_uniform", "fully_masked_nan"}
    assert "fully masked row" in spec.attention.__doc__


def test_every_equation_declares_reference_and_notes():
    for eq in spec.select(["attention"]):
        assert eq.reference.section and eq.notes and eq.title
        assert eq.reference.status in ("T", "R")


def test_cross_attention_scores_are_decoder_by_encoder():
    eq = spec.get("attention.cross")
    n_d, n_e = spec.axes.n_d, spec.axes.n_e
    scores = eq.bindings[3].rhs.args[0].arg
    assert scores.shape == (n_d, n_e)
    assert latex(scores, eq.tex_names()) == r"\frac{Q^{(m)} {K^{(m)}}^{\top}}{\sqrt{d_{k}}}"
    assert sp.Symbol("n", integer=True, positive=True).name not in eq.axes


def test_where_lines_define_the_operators_element_by_element():
    assert spec.get("attention.causal_mask").where_latex() == [
        r"\left(S^{\mathrm{causal}}_{n}\right)_{ij} = "
        r"\begin{cases} 0 & j \le i \\ -\infty & j > i \end{cases}"
    ]
    assert (
        spec.get("attention.causal_mask[fill_1e4]").where_latex()[0].endswith(r"-10000 & j > i \end{cases}")
    )
    assert spec.get("attention.padding_mask").where_latex() == [
        r"\left(S^{\mathrm{pad}}\left(\kappa\right)\right)_{ij} = "
        r"\begin{cases} 0 & \kappa_{j} = 1 \\ -\infty & \kappa_{j} = 0 \end{cases}"
    ]
    (softmax,) = spec.get("attention.multi_head").where_latex()  # once, though used per head
    assert softmax.startswith(
        r"\left[\operatorname{softmax}(Z)\right]_{ij} = \frac{e^{Z_{ij}}}{\sum_{j'} e^{Z_{ij'}}}"
    )
    assert softmax.endswith(r"(0 \text{ if every } Z_{ij'} = -\infty)")
