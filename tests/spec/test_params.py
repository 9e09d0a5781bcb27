"""The params family of the spec: closed-form parameter counts, composed from one another.

Test vectors: CATALOGUE.md ("params — closed forms", the tutorial's test values; the GPT-2 and BERT totals
are those the tutorial's authors checked against Keras counters, and Hugging Face's counts agree, see
tests/impl/test_params.py).
"""

import pytest
import sympy as sp

from lmspec import spec
from lmspec.spec import SpecError
from lmspec.spec.axes import L, M, P, axis, d_e, d_f, d_k, d_v, n_max, v
from lmspec.spec.ops_nn import Scalar
from lmspec.spec.params import Breakdown, Term, closed_form, count_latex, vit_count
from lmspec.verify.codegen import generate
from lmspec.verify.targets import GeneratedTarget, OracleTarget

PARAMS = [
    "params.embedding",
    "params.positional",
    "params.mha",
    "params.ffn",
    "params.layer_norm",
    "params.block",
    "params.stack",
    "params.segment",
    "params.pooler",
    "params.gpt2",
    "params.bert_backbone",
    "params.mlm_head",
    "params.bert",
]

# CATALOGUE.md's sizes
GPT2_SMALL = dict(v=50257, n_max=1024, d_e=768, M=12, L=12, d_k=64, d_v=64, d_f=3072)
BERT_BASE = dict(GPT2_SMALL, v=30522, n_max=512)


def formula(eq_id: str) -> sp.Expr:
    return spec.get(eq_id).formula


def test_registry_holds_the_params_family_in_order():
    assert [e.id for e in spec.families()["params"]] == PARAMS


def test_each_count_is_a_scalar_N_without_inputs():
    for eq in spec.select(["params"]):
        assert not eq.inputs and not eq.params
        (N,) = eq.outputs
        assert N.name == N.ascii == "N" and N.is_scalar
        (b,) = eq.bindings
        assert isinstance(b.rhs, Scalar) and b.rhs.args[0] == eq.formula
        assert eq.space(N) == "N ∈ ℕ"
        assert eq.reference.section and eq.notes and eq.title


@pytest.mark.parametrize(
    ("eq_id", "axes"),
    [
        ("params.embedding", ("v", "d_e")),
        ("params.positional", ("n_max", "d_e")),
        ("params.mha", ("d_e", "M", "d_k", "d_v")),
        ("params.ffn", ("d_e", "d_f")),
        ("params.layer_norm", ("d_e",)),
        ("params.block", ("d_e", "M", "d_k", "d_v", "d_f")),
        ("params.stack", ("d_e", "M", "d_k", "d_v", "d_f", "L")),
        ("params.gpt2", ("n_max", "v", "d_e", "M", "d_k", "d_v", "d_f", "L")),
        ("params.mlm_head", ("v", "d_e")),
        ("params.bert", ("n_max", "v", "d_e", "M", "d_k", "d_v", "d_f", "L")),
    ],
)
def test_the_axes_are_those_of_the_formula(eq_id, axes):
    eq = spec.get(eq_id)
    assert eq.axes == axes
    assert eq.free_axes == axes  # no constraints: every size is drawn


# Goldens written from the tutorial's closed forms (ζ = 1), not copied from the printer's output.
MHA_TEX = r"2 M d_{e} \left(d_{k} + d_{v}\right) + M \left(2 d_{k} + d_{v}\right)"
BLOCK_TEX = MHA_TEX + r" + 2 d_{e} d_{f} + 6 d_{e} + d_{f}"
STACK_TEX = r"L \left(" + BLOCK_TEX + r"\right)"


@pytest.mark.parametrize(
    ("eq_id", "tex"),
    [
        ("params.embedding", r"N_{E} = d_{e} v"),
        ("params.positional", r"N_{\Lambda} = d_{e} n_{\max}"),
        ("params.mha", r"N_{\mathrm{MHA}} = " + MHA_TEX + r" + d_{e}"),
        ("params.ffn", r"N_{\mathrm{FFN}} = 2 d_{e} d_{f} + d_{e} + d_{f}"),
        ("params.layer_norm", r"N_{\mathrm{LN}} = 2 d_{e}"),
        ("params.block", r"N_{\mathrm{block}} = " + BLOCK_TEX),
        ("params.stack", r"N_{\mathrm{stack}} = " + STACK_TEX),
        ("params.gpt2", r"N_{\mathrm{GPT2}} = " + STACK_TEX + r" + d_{e} \left(n_{\max} + v + 2\right)"),
        (
            "params.bert_backbone",
            r"N_{\mathrm{BERT\,backbone}} = "
            + STACK_TEX
            + r" + d_{e}^{2} + d_{e} \left(n_{\max} + v + 5\right)",
        ),
        ("params.segment", r"N_{G} = 2 d_{e}"),
        ("params.pooler", r"N_{\mathrm{pool}} = d_{e}^{2} + d_{e}"),
        ("params.mlm_head", r"N_{\mathrm{MLM}} = d_{e}^{2} + 3 d_{e} + v"),
        (
            "params.bert",
            r"N_{\mathrm{BERT}} = " + STACK_TEX + r" + 2 d_{e}^{2} + d_{e} \left(n_{\max} + v + 8\right) + v",
        ),
    ],
)
def test_latex_is_the_tutorials_closed_form(eq_id, tex):
    assert spec.get(eq_id).latex() == tex


def test_the_catalogue_formulas_as_written():
    """CATALOGUE.md's table, typed in as it reads."""
    zeta = 1
    assert formula("params.embedding") == v * d_e
    assert formula("params.positional") == n_max * d_e
    assert formula("params.mha") == 2 * M * d_e * (d_k + d_v) + zeta * (M * (2 * d_k + d_v) + d_e)
    assert formula("params.ffn") == 2 * d_f * d_e + d_e + d_f
    assert formula("params.layer_norm") == 2 * d_e
    assert formula("params.mlm_head") == (d_e**2 + d_e) + 2 * d_e + v


def test_composite_counts_are_built_from_the_smaller_ones():
    mha, ffn, ln = formula("params.mha"), formula("params.ffn"), formula("params.layer_norm")
    block = formula("params.block")
    assert block == mha + ffn + 2 * ln  # SymPy's own sum: no expansion needed
    assert formula("params.stack") == L * block
    stack, E, Lam = formula("params.stack"), formula("params.embedding"), formula("params.positional")
    assert sp.expand(formula("params.gpt2") - (stack + E + Lam + ln)) == 0
    backbone = E + Lam + 2 * d_e + ln + stack + d_e**2 + d_e
    assert sp.expand(formula("params.bert_backbone") - backbone) == 0
    G, pool = formula("params.segment"), formula("params.pooler")
    assert sp.expand(formula("params.bert_backbone") - (E + Lam + G + ln + stack + pool)) == 0
    assert (
        sp.expand(formula("params.bert") - formula("params.bert_backbone") - formula("params.mlm_head")) == 0
    )


def test_gpt2_is_the_tutorials_equivalent_closed_form():
    # the tutorial's GPT-2 total with ζ = 1: d_e (v + n + 2) + L (2 M d_e (d_k + d_v) + ζ (M (2 d_k + d_v)
    # + d_e) + 2 d_e d_f + 5 d_e + d_f)
    zeta = 1
    tutorial = d_e * (v + n_max + 2) + L * (
        2 * M * d_e * (d_k + d_v) + zeta * (M * (2 * d_k + d_v) + d_e) + 2 * d_e * d_f + 5 * d_e + d_f
    )
    assert formula("params.gpt2") == tutorial


# CATALOGUE.md's test vectors
@pytest.mark.parametrize(
    ("eq_id", "sizes", "expected"),
    [
        ("params.mha", dict(M=8, d_k=64, d_v=64, d_e=512), 1_050_624),
        ("params.block", dict(M=8, d_k=16, d_v=16, d_e=128, d_f=2048), 593_024),
        ("params.stack", dict(M=8, d_k=16, d_v=16, d_e=128, d_f=2048, L=3), 1_779_072),
        ("params.mha", {k: GPT2_SMALL[k] for k in ("d_e", "M", "d_k", "d_v")}, 2_362_368),
        ("params.ffn", {k: GPT2_SMALL[k] for k in ("d_e", "d_f")}, 4_722_432),
        ("params.block", {k: GPT2_SMALL[k] for k in ("d_e", "M", "d_k", "d_v", "d_f")}, 7_087_872),
        ("params.gpt2", GPT2_SMALL, 124_439_808),
        ("params.bert_backbone", BERT_BASE, 109_482_240),
        ("params.mlm_head", {k: BERT_BASE[k] for k in ("v", "d_e")}, 622_650),
        ("params.bert", BERT_BASE, 110_104_890),
    ],
)
def test_catalogue_test_vectors(eq_id, sizes, expected):
    assert spec.get(eq_id).count(**sizes) == expected


def test_segment_and_pooler_counts_are_the_tutorials_terms_of_the_bert_count():
    """Issue 16 §4: the tutorial's BERT formula has a segment term ``2 d_e`` and a pooler term ``d_e² + d_e``
    (CATALOGUE.md's params.bert_backbone row); each is now a count of its own, and the backbone's rows name
    them as their parts (what ``lmspec params bert_backbone`` and the rendered document show)."""
    segment, pooler = spec.get("params.segment"), spec.get("params.pooler")
    assert (segment.formula, pooler.formula) == (2 * d_e, d_e**2 + d_e)
    # hand-derivable at d_e = 768 (BERT-base): G is 768·2 = 1,536; W_p 768² = 589,824 plus b_p 768
    assert (segment.count(d_e=768), pooler.count(d_e=768)) == (1_536, 590_592)
    assert [t.label for t in pooler.terms] == ["W_p ∈ ℝ^(d_e×d_e)", "b_p ∈ ℝ^(d_e)"]
    parts = {t.label: t.part for t in spec.get("params.bert_backbone").terms}
    assert parts["segment embedding G ∈ ℝ^(d_e×2)"] == "params.segment"
    assert parts["pooler W_p ∈ ℝ^(d_e×d_e), b_p ∈ ℝ^(d_e)"] == "params.pooler"
    assert segment.invariants[0].options == {"model": "segment"}
    assert pooler.invariants[0].options == {"model": "pooler"}
    assert segment.reference.tag == pooler.reference.tag == "T"


def test_embedding_and_positions_test_vector():
    E = spec.get("params.embedding").count(v=5000, d_e=128)
    Lam = spec.get("params.positional").count(n_max=50, d_e=128)
    assert (E, Lam, E + Lam) == (640_000, 6_400, 646_400)


def test_the_oracle_and_the_generated_code_give_the_count():
    eq = spec.get("params.gpt2")
    assert float(OracleTarget(eq)({}, GPT2_SMALL)["N"]) == 124_439_808
    assert float(GeneratedTarget(eq)({}, GPT2_SMALL)["N"]) == 124_439_808  # float64 holds it exactly
    src = generate(spec.get("params.layer_norm"))
    assert "def params_layer_norm(d_e, dtype=torch.float64, device=None):" in src
    assert "N = torch.full((1, 1), 2*d_e, dtype=dtype, device=device)" in src


def test_hand_derivable_counts_at_distinct_small_sizes():
    # d_e=2, M=3, d_k=5, d_v=7: W_Q, W_K 2·3·2·5 = 60, W_V 3·2·7 = 42, W_O 3·7·2 = 42;
    # b_Q, b_K 2·3·5 = 30, b_V 3·7 = 21, b_O 2
    assert spec.get("params.mha").count(d_e=2, M=3, d_k=5, d_v=7) == 60 + 42 + 42 + 30 + 21 + 2
    assert spec.get("params.mha[no_bias]").count(d_e=2, M=3, d_k=5, d_v=7) == 60 + 42 + 42
    # d_e=2, d_f=11: W_1 22 + b_1 11 + W_2 22 + b_2 2
    assert spec.get("params.ffn").count(d_e=2, d_f=11) == 57


def test_no_bias_variant_is_zeta_zero():
    var = spec.get("params.mha[no_bias]")
    assert var.variant_of == "params.mha" and var.id == "params.mha[no_bias]"
    assert var.formula == 2 * M * d_e * (d_k + d_v)
    assert var.latex() == r"N_{\mathrm{MHA}} = 2 M d_{e} \left(d_{k} + d_{v}\right)"
    assert var.description == "ζ = 0: no biases, N = 2 M d_e (d_k + d_v)"
    assert [t.label for t in var.terms] == [t.label for t in spec.get("params.mha").terms][:3]
    assert var.invariants[0].options == {"model": "mha_no_bias"}


def test_terms_add_up_and_name_their_parts():
    for eq in [*spec.select(["params"]), spec.get("params.mha[no_bias]")]:
        assert sp.expand(sp.Add(*(t.formula for t in eq.terms)) - eq.formula) == 0
        for t in eq.terms:
            if t.part:
                spec.get(t.part)  # a catalogue id
    gpt2 = spec.get("params.gpt2").terms
    assert [t.part for t in gpt2] == [
        "params.embedding",
        "params.positional",
        "params.stack",
        "params.layer_norm",
    ]
    assert [t.formula for t in spec.get("params.mlm_head").terms] == [d_e**2 + d_e, 2 * d_e, v]


def test_every_count_declares_the_param_count_property():
    models = {eq.id: eq.invariants[0].options["model"] for eq in spec.select(["params"])}
    assert models == {eq_id: eq_id.split(".")[1] for eq_id in PARAMS}
    assert all([i.name for i in eq.invariants] == ["param_count"] for eq in spec.select(["params"]))


def test_terms_that_do_not_add_up_are_a_spec_error():
    with pytest.raises(
        SpecError, match=r"^params\.x: the terms add up to 2\*d_e, not to the formula d_e\*v$"
    ):
        Breakdown("params.x", "x", "N", v * d_e, (Term("twice d_e", 2 * d_e),))


def test_count_names_a_missing_size_and_a_non_integer_count():
    with pytest.raises(SpecError, match=r"^params\.mha needs a size for d_k, d_v$"):
        spec.get("params.mha").count(d_e=4, M=2)
    with pytest.raises(SpecError, match=r"^vit: the sizes give a count of .*, not an integer$"):
        vit_count().count(P=16, C_i=3, H_i=10, W_i=10, n_c=1, d_e=1, M=1, d_k=1, d_v=1, d_f=1, L=1)


def test_closed_form_keeps_the_stack_and_collects_the_rest_over_d_e():
    assert closed_form(L * (d_e + 1) + v * d_e + 2 * d_e + v) == L * (d_e + 1) + d_e * (v + 2) + v


def test_count_latex_writes_axes_as_the_glossary_does():
    H_i, W_i, C_i = axis("H_i"), axis("W_i"), axis("C_i")
    assert count_latex(n_max * C_i) == r"C n_{\max}"
    assert count_latex(H_i * W_i / P**2) == r"\frac{H_{\mathrm{img}} W_{\mathrm{img}}}{P^{2}}"


def test_vit_b16_classifier_count():
    # ViT-B/16, 224×224 images, ImageNet-1k head: 86,567,656 (= Hugging Face ViTForImageClassification,
    # tests/impl/test_params.py); the patches: 224·224/16² = 196, positions 197 d_e
    vit = vit_count()
    sizes = dict(P=16, C_i=3, H_i=224, W_i=224, n_c=1000, d_e=768, M=12, d_k=64, d_v=64, d_f=3072, L=12)
    assert vit.count(**sizes) == 86_567_656
    values = [int(t.formula.subs({axis(a): s for a, s in sizes.items()})) for t in vit.terms]
    assert values == [590_592, 768, 151_296, 85_054_464, 1_536, 769_000]
    assert "vit" not in {e.id for e in spec.all()}  # a preset of `lmspec params`, not a catalogue id
