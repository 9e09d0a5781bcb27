"""The audit engine: binding by annotations, layout strings and module parameter maps; pins, constants and
fixed sizes; every check; the variant diagnosis; reports; the pytest fixture."""

import json
import math
import re

import numpy as np
import pytest
import torch
from jaxtyping import Float
from torch import Tensor

from lmspec import impl, spec
from lmspec.verify._errors import BindingError
from lmspec.verify.audit import AuditError, audit, load, to_json, to_junit
from lmspec.verify.audit.layout import parse_param
from lmspec.verify.audit.pattern import parse_axes

SDPA_LAYOUT = "q=b h n d_k, k=b h n d_k, v=b h n d_v, mask=b h n n -> b h n d_v"


def sdpa_keep(q, k, v, mask):
    """(batch, heads, seq, dim) attention with a keep mask; a fully masked row gives zeros, as the spec."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return weights @ v


def statuses(report) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


# --- impl/ audits clean (dogfood) --------------------------------------------------------------------
DOGFOOD = [
    "attention.scaled_dot_product",
    "attention.multi_head",
    "norm.layer_norm",
    "transformer.ffn",
    "transformer.block_pre_ln",
    "lm.cross_entropy",
    "lstm.hidden",
    "positional.sinusoidal",
]


@pytest.mark.parametrize("eq_id", DOGFOOD)
def test_impl_audits_clean(eq_id):
    report = audit(impl.implementation(eq_id), profile="quick")  # the equation comes from @implements
    assert report.equation == eq_id
    assert report.verdict == "pass", report.summary
    assert report.variants == [] and report.failures == []


def test_impl_audit_by_name_uses_the_registered_equation():
    report = audit("lmspec.impl.attention:scaled_dot_product", profile="quick")
    assert (report.equation, report.verdict) == ("attention.scaled_dot_product", "pass")
    assert {c.name for c in report.checks} >= {"shape", "value=oracle", "value=generated", "gradient"}


# --- layout strings ----------------------------------------------------------------------------------
def test_layout_string_function_passes_every_check():
    report = audit(
        sdpa_keep, "attention.scaled_dot_product", layout=SDPA_LAYOUT, mask="bool_keep", profile="quick"
    )
    assert report.verdict == "pass", report.summary
    assert set(statuses(report).values()) == {"pass"}
    oracle = next(c for c in report.checks if c.name == "value=oracle")
    assert oracle.max_abs < 1e-12 and oracle.atol == 1e-10 and oracle.rtol == 1e-9


def test_grouped_axes_and_transposed_layout():
    """Heads side by side in one axis ((M d_k)) and the spec's d_e×n H read as (n, d_e)."""
    mha = impl.implementation("attention.multi_head")

    def fused(x, wq, bq, wk, bk, wv, bv, wo, bo, mask):
        return mha(x, wq, bq, wk, bk, wv, bv, wo, bo, mask)

    layout = (
        "x:H=b n d_e, wq:W_Q=M d_e d_k, bq:b_Q=M d_k, wk:W_K=M d_e d_k, bk:b_K=M d_k, wv:W_V=M d_e d_v, "
        "bv:b_V=M d_v, wo:W_O=(M d_v) d_e, bo:b_O=d_e, mask:S=b n n -> b n d_e"
    )
    report = audit(fused, "attention.multi_head", layout=layout, profile="quick")
    assert report.verdict == "pass", report.summary


def test_parse_axes_groups_and_errors():
    assert parse_axes("b h n (M d_k)", "t").groups == (("b",), ("h",), ("n",), ("M", "d_k"))
    with pytest.raises(BindingError, match="unclosed parenthesis"):
        parse_axes("n (M d_k", "t")
    with pytest.raises(BindingError, match="nested parentheses"):
        parse_axes("((n))", "t")


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("q=b h n d_k, k=b h n d_k, v=b h n d_v, mask=b h n n", r"no single '->'"),
        ("q=b h n d_k, k=b h n d_k, v=b h n d_v -> b h n d_v", r"no argument takes the spec's S"),
        (
            "q=b h n d_k, k=b h n d_k, v=b h n d_v, mask=b h n n -> b h n d_e",
            r"'d_e' in .* is not an axis of this symbol",
        ),
        ("q=b h n, k=b h n d_k, v=b h n d_v, mask=b h n n -> b h n d_v", r"leaves out the axes d_k"),
        ("query=b n d_k, k=b n d_k, v=b n d_v, mask=b n n -> b n d_v", r"has no parameter 'query'"),
        ("q=b n d_k, k=b n d_k, v=b n d_v, mask=b n n -> b n d_v, b n d_v", r"more results than"),
    ],
)
def test_malformed_layouts_are_clear_errors(layout, message):
    report = audit(sdpa_keep, "attention.scaled_dot_product", layout=layout, profile="quick", diagnose=False)
    assert report.verdict == "error"
    assert report.checks[0].name == "binding"
    assert __import__("re").search(message, report.checks[0].message), report.checks[0].message


# --- modules: classes built per size, parameters mapped --------------------------------------------
class FusedSelfAttention(torch.nn.Module):
    """Karpathy-style: one Linear for q, k and v, heads split with view/transpose, its own bias names."""

    def __init__(self, d_model: int, n_head: int, bias: bool = True):
        super().__init__()
        self.n_head = n_head
        self.qkv = torch.nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = torch.nn.Linear(d_model, d_model, bias=bias)

    def forward(self, x, mask):
        b, n, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (t.view(b, n, self.n_head, d // self.n_head).transpose(1, 2) for t in (q, k, v))
        out = sdpa_keep(q, k, v, mask[:, None])
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


FUSED_PARAMS = {
    "qkv.weight": "W_Q, W_K, W_V -> (3 M d_k) d_e",
    "qkv.bias": "b_Q, b_K, b_V -> (3 M d_k)",
    "proj.weight": "W_O -> d_e (M d_v)",
    "proj.bias": "b_O",
}
FUSED = dict(
    init={"d_model": "d_e", "n_head": "M"},
    params=FUSED_PARAMS,
    layout="x:H=b n d_e, mask:S=b n n -> b n d_e",
    mask="bool_keep",
    derive={"d_e": "M*d_k", "d_v": "d_k"},
)


def test_module_class_with_fused_qkv_passes():
    report = audit(FusedSelfAttention, "attention.multi_head", profile="quick", **FUSED)
    assert report.verdict == "pass", report.summary


def test_module_without_biases_is_the_no_bias_variant():
    params = {k: v for k, v in FUSED_PARAMS.items() if "bias" not in k}
    init = {"d_model": "d_e", "n_head": "M", "bias": False}
    report = audit(
        FusedSelfAttention,
        "attention.multi_head",
        profile="quick",
        **{**FUSED, "init": init, "params": params},
    )
    assert report.verdict == "variant", report.summary
    assert report.matched == ["no_bias"]
    assert "--as attention.multi_head[no_bias]" in report.summary
    # never filled silently: the base equation cannot bind (no parameter takes the biases), the variant
    # without them can
    assert "the module runs in eval() mode (dropout off)" in report.notes
    assert report.checks[0].name == "binding"
    assert "no --param takes the spec's b_Q, b_K, b_V, b_O" in report.checks[0].message
    assert "--absent b_Q,b_K,b_V,b_O" in report.checks[0].message
    # stated absent, the reference holds them at 0: the module computes the equation with ζ = 0, and says so
    stated = audit(
        FusedSelfAttention,
        "attention.multi_head",
        profile="quick",
        absent=["b_Q", "b_K", "b_V", "b_O"],
        **{**FUSED, "init": init, "params": params},
    )
    assert stated.verdict == "pass", stated.summary
    assert "the target has no b_Q, b_K, b_V, b_O (--absent): the reference holds them at 0" in stated.notes
    with pytest.raises(AuditError, match="--absent b_X: 'b_X' is not a tensor parameter"):
        audit(
            FusedSelfAttention,
            "attention.multi_head",
            absent=["b_X"],
            **{**FUSED, "init": init, "params": params},
        )


def test_unmapped_and_misshapen_module_parameters():
    params = {k: v for k, v in FUSED_PARAMS.items() if k != "qkv.bias"}
    report = audit(
        FusedSelfAttention,
        "attention.multi_head",
        profile="quick",
        diagnose=False,
        **{**FUSED, "params": params},
    )
    # a setup problem, found before any check: an error in the user's terms, never a verdict about the code
    assert report.verdict == "error"
    assert [c.name for c in report.checks] == ["binding"]
    assert "no mapping for the module parameters qkv.bias" in report.summary
    wrong = {**FUSED_PARAMS, "proj.weight": "W_O -> (M d_v) d_e"}  # transposed: it fits, computes another map
    report = audit(
        FusedSelfAttention,
        "attention.multi_head",
        profile="quick",
        diagnose=False,
        **{**FUSED, "params": wrong},
    )
    assert report.verdict == "fail"
    assert any(c.status == "fail" for c in report.checks if c.name.startswith("value"))


def test_parse_param_errors():
    eq = spec.get("attention.multi_head")
    with pytest.raises(BindingError, match="'W_X' is not a parameter"):
        parse_param("q.weight", "W_X -> d_e d_k", eq)
    with pytest.raises(BindingError, match="W_Q and b_Q have different ranks"):
        parse_param("qkv.weight", "W_Q, b_Q -> d_e (3 M d_k)", eq)
    assert parse_param("extra.bias", "0", eq).mode == "zero"


# --- pins, constants and fixed sizes -----------------------------------------------------------------
def causal_only(
    Q: Float[Tensor, "*batch n d_k"], K: Float[Tensor, "*batch n d_k"], V: Float[Tensor, "*batch n d_v"]
) -> Float[Tensor, "*batch n d_v"]:
    return torch.nn.functional.scaled_dot_product_attention(Q, K, V, is_causal=True)


def test_pinned_mask_and_inapplicable_properties():
    from lmspec.verify.audit import causal_pin

    report = audit(causal_only, "attention.scaled_dot_product", pins={"S": causal_pin}, profile="quick")
    assert report.verdict == "pass", report.summary
    st = statuses(report)
    assert st["value=oracle"] == "pass"
    # the causal property runs with the causal mask, the value the target fixes: it applies
    assert st["property:causal"] == "pass"
    # permutation equivariance needs S = 0, which this target cannot take: skipped, with the reason
    assert st["property:permutation_equivariance"] == "skip"
    skipped = next(c for c in report.checks if c.name == "property:permutation_equivariance")
    assert "fixes S itself" in skipped.message
    # a target that ignores S altogether, pinned to no mask: the causal property does not apply
    no_mask = audit(
        lambda Q, K, V: torch.softmax(Q @ K.transpose(-1, -2) / math.sqrt(Q.shape[-1]), -1) @ V,
        "attention.scaled_dot_product",
        layout="Q=b n d_k, K=b n d_k, V=b n d_v -> b n d_v",
        pins={"S": lambda sizes: np.zeros((sizes["n"], sizes["n"]))},
        profile="quick",
    )
    assert no_mask.verdict == "pass" and statuses(no_mask)["property:causal"] == "skip"
    # without the pin it cannot be bound: the spec's S has no argument
    report = audit(causal_only, "attention.scaled_dot_product", profile="quick", diagnose=False)
    assert report.verdict == "error" and "S" in report.summary


def hand_layer_norm(x, gamma, beta):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return gamma * (x - mu) / torch.sqrt(var + 1e-5) + beta


LN_LAYOUT = "x:H=b n d_e, gamma:alpha=d_e, beta:beta=d_e -> b n d_e"


def test_layer_norm_eps_is_found_with_its_value():
    report = audit(hand_layer_norm, "norm.layer_norm", layout=LN_LAYOUT, profile="quick")
    assert report.verdict == "variant", report.summary
    matched = [v for v in report.variants if v.matched]
    assert [v.name for v in matched] == ["eps"] and matched[0].constants == {"eps": 1e-5}
    # held to the variant with the constant given, it passes
    report = audit(
        hand_layer_norm, "norm.layer_norm[eps]", layout=LN_LAYOUT, constants={"eps": 1e-5}, profile="quick"
    )
    assert report.verdict == "pass", report.summary


def test_variant_without_its_constant_is_an_error_naming_it():
    report = audit(hand_layer_norm, "norm.layer_norm[eps]", layout=LN_LAYOUT, profile="quick", diagnose=False)
    assert report.verdict == "error" and "--constant eps=" in report.summary


def test_fixed_sizes_beyond_the_oracle_use_the_generated_code():
    report = audit(impl.implementation("transformer.ffn"), sizes={"d_e": 24, "d_f": 40}, profile="quick")
    st = statuses(report)
    assert report.verdict == "pass" and st["value=oracle"] == "skip" and st["value=generated"] == "pass"


# --- diagnosis ---------------------------------------------------------------------------------------
def sdpa_ignore_polarity(q, k, v, mask):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(mask, float("-inf"))  # written for an ignore mask
    return torch.softmax(scores, dim=-1).nan_to_num(0.0) @ v


def test_mask_polarity_is_diagnosed():
    report = audit(
        sdpa_ignore_polarity,
        "attention.scaled_dot_product",
        layout=SDPA_LAYOUT,
        mask="bool_keep",
        profile="quick",
    )
    assert report.verdict == "variant", report.summary
    assert report.matched == ["mask polarity inverted"]
    # and under its own convention it passes
    report = audit(
        sdpa_ignore_polarity,
        "attention.scaled_dot_product",
        layout=SDPA_LAYOUT,
        mask="bool_ignore",
        profile="quick",
    )
    assert report.verdict == "pass"


def sdpa_query_softmax(q, k, v, mask):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]) + mask
    return torch.softmax(scores, dim=-2).nan_to_num(0.0) @ v


def test_a_bug_with_no_variant_fails_with_every_check_reported_and_heat_maps():
    report = audit(sdpa_query_softmax, "attention.scaled_dot_product", layout=SDPA_LAYOUT, profile="quick")
    assert report.verdict == "fail"
    assert not report.matched and report.variants  # every variant tried, none fits
    failed = {c.name for c in report.failures}
    assert {"value=oracle", "value=generated"} <= failed
    oracle = next(c for c in report.checks if c.name == "value=oracle")
    assert oracle.counterexample["sizes"] and oracle.max_abs > 1e-3
    titles = [h.title for h in report.heatmaps]
    assert any(t.startswith("attention weights") for t in titles)
    weights = next(h for h in report.heatmaps if h.title.startswith("attention weights"))
    assert weights.target.shape == weights.spec.shape and weights.target.ndim == 2
    # the spec's weights are rows that sum to one (or zero rows where fully masked); the target's are not
    row_sums = np.nansum(weights.spec, axis=-1)
    assert np.all(np.isclose(row_sums, 1.0) | np.isclose(row_sums, 0.0))


def test_a_target_that_raises_is_a_failure_with_its_message():
    def broken(q, k, v, mask):
        raise RuntimeError("CUDA kernel not found")

    report = audit(
        broken, "attention.scaled_dot_product", layout=SDPA_LAYOUT, profile="quick", diagnose=False
    )
    assert report.verdict == "fail"
    assert "RuntimeError: CUDA kernel not found" in report.checks[0].message


# --- dtypes and devices -----------------------------------------------------------------------------
def test_float32_uses_the_float32_tolerance():
    report = audit(impl.implementation("attention.multi_head"), dtype="float32", profile="quick")
    assert report.verdict == "pass", report.summary
    oracle = next(c for c in report.checks if c.name == "value=oracle")
    assert (oracle.atol, oracle.rtol) == (1e-5, 1e-4)
    assert oracle.max_abs > 1e-9  # float32 rounding is visible (and within the float32 tolerance: it passed)
    strict = audit(
        impl.implementation("attention.multi_head"), dtype="float32", profile="quick", diagnose=False
    )
    assert strict.verdict == "pass"


def test_unknown_device_and_dtype_are_clear_errors():
    with pytest.raises(AuditError, match="device 'cuda:7' is not available here"):
        audit(sdpa_keep, "attention.scaled_dot_product", layout=SDPA_LAYOUT, device="cuda:7")
    with pytest.raises(AuditError, match="unknown dtype 'float8'"):
        audit(sdpa_keep, "attention.scaled_dot_product", layout=SDPA_LAYOUT, dtype="float8")


# --- loading -----------------------------------------------------------------------------------------
def test_load_errors(tmp_path):
    with pytest.raises(AuditError, match="no file"):
        load(str(tmp_path / "missing.py") + ":f")
    bad = tmp_path / "bad.py"
    bad.write_text("import not_a_module_anywhere\n")
    with pytest.raises(AuditError, match="importing .*bad.py raised ModuleNotFoundError"):
        load(f"{bad}:f")
    ok = tmp_path / "ok.py"
    ok.write_text("x = 3\ndef f():\n    pass\n")
    with pytest.raises(AuditError, match="x is a int, not callable"):
        load(f"{ok}:x")
    with pytest.raises(AuditError, match="has no attribute 'g'"):
        load(f"{ok}:g")
    with pytest.raises(AuditError, match="expected a built-in name"):
        load("no_such_target")
    assert callable(load(f"{ok}:f"))


def test_unknown_equation_is_an_audit_error():
    with pytest.raises(AuditError, match="attention.nope"):
        audit(sdpa_keep, "attention.nope", layout=SDPA_LAYOUT)


# --- reports -----------------------------------------------------------------------------------------
def test_json_is_byte_identical_for_a_seed_and_junit_lists_every_check():
    runs = [
        audit(sdpa_query_softmax, "attention.scaled_dot_product", layout=SDPA_LAYOUT, profile="quick", seed=3)
        for _ in range(2)
    ]
    first, second = (to_json([r]) for r in runs)
    assert first == second
    doc = json.loads(first)["reports"][0]
    assert doc["verdict"] == "fail" and doc["checks"][1]["name"] == "value=oracle"
    xml = to_junit(runs[:1])
    assert xml.count("<testcase") == len(runs[0].checks) and "<failure" in xml


# --- the pytest fixture (the plugin is loaded through its entry point) ---------------------------------
def test_fixture_passes_a_correct_target(lmspec_audit):
    report = lmspec_audit(
        sdpa_keep, "attention.scaled_dot_product", layout=SDPA_LAYOUT, mask="bool_keep", profile="quick"
    )
    assert report.verdict == "pass"


def test_fixture_fails_a_wrong_target_with_the_findings(lmspec_audit):
    with pytest.raises(AssertionError, match=r"FAIL value=oracle: .*sdpa_query_softmax") as failed:
        lmspec_audit(sdpa_query_softmax, "attention.scaled_dot_product", layout=SDPA_LAYOUT, profile="quick")
    message = str(failed.value)
    # short counterexamples: rounded values or a large tensor's shape, never thousands of characters
    assert "counterexample: sizes {" in message and max(len(line) for line in message.splitlines()) < 600
    # the command that reproduces it, runnable as printed
    repro = message.split("reproduce: ", 1)[1].splitlines()[0]
    assert repro.startswith(f"lmspec audit {__name__}:sdpa_query_softmax --as attention.scaled_dot_product")
    assert "--layout" in repro and "--profile quick --seed 0" in repro
    # lmspec's frames are hidden from pytest's traceback
    hidden = [e for e in failed.traceback if e.frame.f_locals.get("__tracebackhide__")]
    assert hidden and all("lmspec" in str(e.path) or "verify" in str(e.path) for e in hidden)


def test_fixture_prints_a_large_tensor_as_its_shape_and_range():
    from lmspec.verify.pytest_plugin import _counterexample

    arrays = {"Q": np.ones((2, 9, 7)), "k": [1.23456]}
    text = _counterexample({"sizes": {"n": 9}, "batch": [2], "arrays": arrays})
    assert text == "sizes {'n': 9}, batch [2]; Q shape (2, 9, 7), values 1 … 1, k [1.2346]"


def test_fixture_accepts_a_named_variant_only_when_asked(lmspec_audit):
    with pytest.raises(AssertionError, match="matches eps"):
        lmspec_audit(hand_layer_norm, "norm.layer_norm", layout=LN_LAYOUT, profile="quick")
    report = lmspec_audit(
        hand_layer_norm, "norm.layer_norm", layout=LN_LAYOUT, profile="quick", accept=["eps"]
    )
    assert report.matched == ["eps"]


def test_pre_ln_block_held_to_post_ln_is_diagnosed_as_the_other_block():
    """Pre- vs post-LN are two equations, not variants of one: the audit tries the sibling and its forms,
    and an ε form is dropped when the form without ε matches as well."""
    report = audit(
        impl.implementation("transformer.block_pre_ln"), "transformer.block_post_ln", profile="quick"
    )
    assert report.verdict == "variant", report.summary
    assert report.matched == ["transformer.block_pre_ln"]
    assert "--as transformer.block_pre_ln " in report.summary
    assert next(v for v in report.variants if v.name == "transformer.block_pre_ln").kind == "equation"


# --- layouts real code uses ------------------------------------------------------------------------------
def mha_einsum(x, wq, wk, wv, wo, mask):
    """Per-head weights as (heads, d_model, d_head) and W_O as (heads, d_head, d_model), einsum everywhere."""
    q = torch.einsum("bnd,hdk->bhnk", x, wq)
    k = torch.einsum("bnd,hdk->bhnk", x, wk)
    v = torch.einsum("bnd,hdk->bhnk", x, wv)
    att = sdpa_keep(q, k, v, mask[:, None])
    return torch.einsum("bhnk,hkd->bnd", att, wo)


def test_one_spec_axis_held_as_two_target_axes():
    """W_O ∈ ℝ^{(M·d_v)×d_e} held as (M, d_v, d_e): the layout splits the spec's axis."""
    layout = (
        "x:H=b n d_e, wq:W_Q=M d_e d_k, wk:W_K=M d_e d_k, wv:W_V=M d_e d_v, wo:W_O=M d_v d_e, mask:S=b n n "
        "-> b n d_e"
    )
    report = audit(
        mha_einsum, "attention.multi_head[no_bias]", layout=layout, mask="bool_keep", profile="quick"
    )
    assert report.verdict == "pass", report.summary


def test_a_batch_axis_in_the_middle():
    """Sequence-first code: x is (n, batch, d_e)."""
    ln = impl.implementation("norm.layer_norm")

    def seq_first(x, a, b):
        return ln(x.transpose(0, 1), a, b).transpose(0, 1)

    report = audit(
        seq_first,
        "norm.layer_norm",
        layout="x:H=n b d_e, a:alpha=d_e, b:beta=d_e -> n b d_e",
        profile="quick",
    )
    assert report.verdict == "pass", report.summary


def test_size_arguments_in_a_layout():
    def square_subsequent_mask(sz):
        return torch.triu(torch.full((sz, sz), float("-inf"), dtype=torch.float64), diagonal=1)

    report = audit(square_subsequent_mask, "attention.causal_mask", layout="sz:n -> n n", profile="quick")
    assert report.verdict == "pass", report.summary

    def diagonal_masked(sz):  # the diagonal masked too: a token cannot see itself
        return torch.triu(torch.full((sz, sz), float("-inf"), dtype=torch.float64), diagonal=0)

    report = audit(diagonal_masked, "attention.causal_mask", layout="sz:n -> n n", profile="quick")
    assert report.verdict == "fail" and "value=oracle" in {c.name for c in report.failures}


def test_per_layer_parameter_paths_expand_over_the_family():
    eq = spec.get("transformer.stack")
    mapping = parse_param("h.{l}.weight", "W_1 -> d_f d_e", eq)
    assert mapping.loop[0] == "l"
    with pytest.raises(BindingError, match="must name an index of the family W_1"):
        parse_param("h.{m}.weight", "W_1 -> d_f d_e", eq)


def test_a_module_that_cannot_be_built_is_an_error_before_any_check():
    """Its constructor raises at the audit's sizes (a user forgot --derive): once a `fail` of every check."""

    class Strict(torch.nn.Module):
        def __init__(self, d_model, n_head):
            super().__init__()
            assert d_model % n_head == 0, "d_model must be divisible by n_head"
            self.qkv = torch.nn.Linear(d_model, 3 * d_model)

        def forward(self, x):
            return x

    report = audit(
        Strict,
        "attention.multi_head",
        profile="quick",
        init={"d_model": "d_e", "n_head": "M"},
        params={"qkv.weight": "keep", "qkv.bias": "keep"},
        layout="x:H=b n d_e -> b n d_e",
        mask="none",
    )
    assert report.verdict == "error"
    assert "raised AssertionError: d_model must be divisible by n_head" in report.summary
    assert "--derive" in report.summary


def test_an_argument_that_names_no_symbol_is_told_every_way_to_bind_it():
    def table(max_len, width):
        return torch.zeros(max_len, width)

    report = audit(table, "positional.sinusoidal", layout="max_len:n_max, width=n_max d_e -> n_max d_e")
    assert report.verdict == "error"
    assert (
        "argument 'width' does not name a symbol of positional.sinusoidal (it takes none); "
        "write width:SYMBOL=axes for a tensor, or width:AXIS for a size it takes (n_max, d_e), "
        "width:dtype or width:device"
    ) in report.summary


def test_a_target_without_a_mask_argument_is_told_which_mask_to_name():
    def attend(q, k, v):  # a causal or an unmasked attention: it takes no mask
        return v

    layout = "q=b n d_k, k=b n d_k, v=b n d_v -> b n d_v"
    report = audit(attend, "attention.scaled_dot_product", layout=layout)
    assert report.verdict == "error"
    assert "no argument takes the spec's S ∈ {0,−∞}^(n×n)" in report.summary
    hint = "--mask causal (it masks the future itself) or --mask none (it attends everywhere)"
    assert hint in report.summary


# --- constructors, tuples, combined variants (issue 13) -------------------------------------------------
class _Cfg:
    def __init__(self, width):
        self.width = width


class _NoArgs(torch.nn.Module):
    def forward(self, X):
        return torch.relu(X)


def test_init_expressions_see_the_sizes_the_targets_module_and_importable_modules():
    from lmspec.verify.audit.targets import init_value

    sizes = {"d_e": 6, "M": 2}
    assert init_value("d_ff", "4*d_e", sizes) == 24
    assert init_value("act", "'gelu'", sizes) == "gelu"
    assert init_value("cfg", "Cfg(d_e // M)", sizes, {"Cfg": _Cfg}).width == 3
    assert init_value("pi", "math.pi", sizes) == math.pi  # an importable module, imported by name
    assert init_value("flag", True, sizes) is True  # not a string: passed as it is
    with pytest.raises(BindingError, match=r"--init act=gelu: 'gelu' is not an axis here \(d_e, M\).*"
                       r"""--init "act='gelu'\""""):  # fmt: skip
        init_value("act", "gelu", sizes)
    with pytest.raises(BindingError, match="not a Python expression"):
        init_value("x", "4 *", sizes)
    with pytest.raises(BindingError, match=r"--init x=1/0 raised ZeroDivisionError"):
        init_value("x", "1/0", sizes)


def test_a_class_without_constructor_arguments_needs_no_init_and_a_factory_must_build_a_module():
    report = audit(_NoArgs, "activation.relu", profile="quick", layout="X=b n d_e -> b n d_e")
    assert report.verdict == "pass", report.summary
    report = audit(
        lambda width: width, "activation.relu", init={"width": "d_e"}, layout="X=b n d_e -> b n d_e"
    )
    assert report.verdict == "error"
    assert "returned a int, not an nn.Module" in report.summary


def test_tuple_members_are_symbol_axes_and_results_are_read_by_their_path():
    def step(x, state):
        return state

    layout = "x:x_t=b d_e, state=(b d_h, c_prev=b d_h) -> (h_t=b d_h, c_t=b d_h)"
    report = audit(step, "lstm.hidden", layout=layout, diagnose=False)
    assert report.verdict == "error"
    assert "each member of a tuple is SYMBOL=axes, found 'b d_h'" in report.summary

    class FlatState(torch.nn.Module):  # an LSTM cell returning (h, c) where the layout reads out, (h, c)
        def __init__(self, d_in, d_h):
            super().__init__()
            self.x2h, self.h2h = torch.nn.Linear(d_in, 4 * d_h), torch.nn.Linear(d_h, 4 * d_h, bias=False)

        def forward(self, x, state):
            i, f, g, o = (self.x2h(x) + self.h2h(state[0])).chunk(4, dim=-1)
            c = f.sigmoid() * state[1] + i.sigmoid() * g.tanh()
            return o.sigmoid() * c.tanh(), c

    LSTM = {
        "layout": "x:x_t=b d_e, state=(h_prev=b d_h, c_prev=b d_h) -> _, (h_t=b d_h, c_t=b d_h)",
        "init": {"d_in": "d_e", "d_h": "d_h"},
        "params": {
            "x2h.weight": "W_i, W_f, W_c, W_o -> (4 d_h) d_e",
            "x2h.bias": "b_i, b_f, b_c, b_o -> (4 d_h)",
            "h2h.weight": "U_i, U_f, U_c, U_o -> (4 d_h) d_h",
        },
    }
    report = audit(FlatState, "lstm.hidden", profile="quick", diagnose=False, **LSTM)
    assert report.verdict == "fail"
    shape = next(c for c in report.checks if c.name == "shape")
    assert "returned (tensor, tensor), its binding reads return[1][0] at [1, 0]" in shape.message


def test_dots_in_the_results_skip_values_and_a_keyword_reaches_kwargs():
    """``-> _, (..., Y=…)`` reads the last of a tuple whose length varies (transformers' hidden_states, one
    per layer); ``flag:True`` reaches a target that takes it through ``**kwargs`` (output_hidden_states)."""

    def stages(X, **kwargs):  # the input, then each stage's output: the last is ReLU(X) only when asked
        assert kwargs == {"output_hidden_states": True}
        return X, [X * 0] * X.shape[-1] + [X.relu()]

    layout = "X=b n d_e, output_hidden_states:True -> _, (..., Y=b n d_e)"
    assert audit(stages, "activation.relu", layout=layout, profile="quick").verdict == "pass"
    first = audit(stages, "activation.relu", layout=layout.replace("(..., Y", "(Y"), profile="quick")
    assert first.verdict == "fail"  # the first stage is not ReLU(X): what the dots skip is what they say
    report = audit(stages, "activation.relu", layout=layout.replace("_, (", "..., ..., ("))
    assert report.verdict == "error" and "'...' may stand once in a tuple" in report.summary
    report = audit(lambda X: X, "activation.relu", layout="X=b n d_e, flag:True -> Y=b n d_e")
    assert report.verdict == "error" and "has no parameter 'flag'" in report.summary


def test_variants_of_one_builder_combine_and_others_do_not():
    mha = spec.get("attention.multi_head")
    assert mha.combinable("no_bias", "scale_sqrt_d_e")
    assert not mha.combinable("unscaled", "scale_sqrt_d_e")  # both change the scale
    both = spec.get("attention.multi_head[no_bias+scale_sqrt_d_e]")
    assert {d.ascii for d in both.params} == {"W_Q", "W_K", "W_V", "W_O"}
    assert both.variant_of == "attention.multi_head"
    with pytest.raises(spec.SpecError, match="do not combine"):
        spec.get("attention.multi_head[unscaled+scale_sqrt_d_e]")


def test_a_constant_argument_is_an_expression_over_the_sizes():
    def attention(q, k, v, scale):
        return torch.softmax(q @ k.transpose(-2, -1) * scale, dim=-1) @ v

    layout = "q=b n d_k, k=b n d_k, v=b n d_v, scale:{} -> b n d_v"
    report = audit(
        attention,
        "attention.scaled_dot_product",
        layout=layout.format("1/sqrt(d_k)"),
        mask="none",
        profile="quick",
    )
    assert report.verdict == "pass", report.summary
    report = audit(
        attention,
        "attention.scaled_dot_product",
        layout=layout.format("1/sqrt(d_e)"),
        mask="none",
        diagnose=False,
    )
    assert report.verdict == "error"
    assert "nor a constant over the axes" in report.summary


def test_a_failing_check_counts_the_example_that_failed():
    def broken(X):
        raise RuntimeError("not today")

    report = audit(broken, "activation.relu", layout="X=b n d_e -> b n d_e", profile="quick", diagnose=False)
    failed = [c for c in report.checks if c.status == "fail"]
    assert failed and all(c.examples >= 1 for c in failed), [(c.name, c.examples) for c in failed]


def test_a_target_nothing_matches_names_the_closest_candidate():
    import torch.nn.functional as F

    def reversed_shift(logits, labels):  # column i + 1 scored on id i
        v = logits.size(-1)
        return F.cross_entropy(logits[:, 1:].reshape(-1, v), labels[:, :-1].reshape(-1), ignore_index=-100)

    report = audit(reversed_shift, "lm.cross_entropy", layout="logits:Z=b n v, labels:k=b n -> loss=()",
                   labels="shift", ignore_index=-100, pool="tokens", profile="quick")  # fmt: skip
    assert report.verdict == "fail"
    assert re.search(r"no named variant matches either \(the closest is .+, max \|Δ\| = [0-9.e+-]+\)\.$",
                     report.summary), report.summary  # fmt: skip


def gelu_float32_constant(x):
    """A hand-written tanh GELU whose √(2/π) is made with torch.tensor in float32 (torch's default dtype,
    written out here so that no other test's default can change it), whatever x's dtype."""
    c = torch.sqrt(torch.tensor(2.0 / torch.pi, dtype=torch.float32))
    return 0.5 * x * (1 + torch.tanh(c * (x + 0.044715 * torch.pow(x, 3))))


def test_a_failure_within_float32s_tolerance_names_a_float32_value_inside():
    """At float64 the float32 constant shows (about 1e-8 relative): the audit fails, as it must, and says what
    such a difference means; at --dtype float32 the same function passes."""
    report = audit(gelu_float32_constant, "activation.gelu_tanh", profile="quick")
    assert report.verdict == "fail"
    assert any("within float32's tolerance" in note for note in report.notes)
    assert (
        audit(gelu_float32_constant, "activation.gelu_tanh", profile="quick", dtype="float32").verdict
        == "pass"
    )
    wrong = audit(lambda x: 0.5 * x * (1 + torch.tanh(x)), "activation.gelu_tanh", profile="quick",
                  layout="x=b n d_e -> b n d_e")  # fmt: skip
    assert wrong.verdict == "fail" and not any("float32" in note for note in wrong.notes)
