"""The transformer family of the spec: notation, the blocks' contract, composition of the called equations'
oracles, variants, and the properties (true of the spec, and each catching a broken target)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lmspec import spec
from lmspec.spec import Family, Kind, SpecError
from lmspec.spec.ops_nn import Call
from lmspec.spec.transformer import block_id, decoder_block, ffn, stack, stack_variant_name
from lmspec.verify._errors import PropertyViolation
from lmspec.verify.codegen import generate
from lmspec.verify.compare import POLICY, assert_close
from lmspec.verify.oracle import Oracle, concrete_shape
from lmspec.verify.properties import PROPERTIES, properties_of
from lmspec.verify.strategies import examples, seeded_tensor, size_tuples
from lmspec.verify.targets import GeneratedTarget, OracleTarget, Target

IDS = [
    "transformer.input",
    "transformer.residual",
    "transformer.ffn",
    "transformer.block_post_ln",
    "transformer.block_pre_ln",
    "transformer.decoder_block",
    "transformer.stack",
]
BLOCK_PARAMS = [
    *("W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V", "W_O", "b_O"),
    *("alpha_1", "beta_1", "alpha_2", "beta_2"),
    *("W_1", "b_1", "W_2", "b_2"),
]
# distinct sizes per axis, so that a swapped axis cannot pass
SIZES = {"n": 3, "d_e": 4, "M": 2, "d_k": 5, "d_v": 7, "d_f": 6, "L": 2, "n_d": 3, "n_e": 5}


def test_registry_holds_the_family_in_order():
    assert [e.id for e in spec.families()["transformer"]] == IDS
    assert spec.get("transformer.ffn").reference.number == "37"


# --- notation: goldens written from the tutorial's equations --------------------------------------------
def test_input_and_residual_latex():
    assert spec.get("transformer.input").latex_lines() == [
        r"\Omega = \operatorname{onehot}_{v}\left(k\right)",
        r"H^{0} = E \Omega + \Lambda_{:,1:n}",
    ]
    assert spec.get("transformer.residual").latex() == "H' = H + F"


def test_ffn_latex_is_equation_37():
    assert spec.get("transformer.ffn").latex() == (
        r"D = W_{2} \operatorname{GELU}_{\tanh}\left(W_{1} C + b_{1} \mathbf{1}_{n}^{\top}\right)"
        r" + b_{2} \mathbf{1}_{n}^{\top}"
    )
    assert r"\operatorname{ReLU}\left(W_{1} C" in spec.get("transformer.ffn[relu]").latex()


def test_block_latex():
    assert spec.get("transformer.block_pre_ln").latex_lines() == [
        r"\hat{H} = \operatorname{LN}\left(H; \alpha_{1}, \beta_{1}\right)",
        r"X = H + \operatorname{MHA}\left(\hat{H}, S\right)",
        r"C = \operatorname{LN}\left(X; \alpha_{2}, \beta_{2}\right)",
        r"H' = X + \operatorname{FFN}_{\operatorname{GELU}_{\tanh}}\left(C\right)",
    ]
    assert spec.get("transformer.block_post_ln").latex_lines() == [
        r"C = \operatorname{LN}\left(H + \operatorname{MHA}\left(H, S\right); \alpha_{1}, \beta_{1}\right)",
        r"H' = \operatorname{LN}\left(C + \operatorname{FFN}_{\operatorname{GELU}}\left(C\right); "
        r"\alpha_{2}, \beta_{2}\right)",
    ]
    assert spec.get("transformer.block_pre_ln[eps]").latex_lines()[0] == (
        r"\hat{H} = \operatorname{LN}_{\varepsilon}\left(H; \alpha_{1}, \beta_{1}\right)"
    )


def test_decoder_and_stack_latex():
    lines = spec.get("transformer.decoder_block").latex_lines()
    assert lines[0] == (
        r"C_{1} = \operatorname{LN}\left(H + \operatorname{MHA}\left(H, S^{\mathrm{causal}}_{n_{d}}\right); "
        r"\alpha_{1}, \beta_{1}\right)"
    )
    assert lines[1] == (
        r"C_{2} = \operatorname{LN}\left(C_{1} + \operatorname{CrossMHA}\left(C_{1}, "
        r"H_{\mathrm{enc}}\right); \alpha_{2}, \beta_{2}\right)"
    )
    assert spec.get("transformer.stack").latex_lines() == [
        r"H^{0} = X",
        r"H^{l} = \operatorname{Block}^{(l)}\left(H^{l - 1}, S\right)",
        r"H_{\mathrm{out}} = H^{L}",
    ]
    assert spec.get("transformer.stack[final_ln]").latex_lines()[-1] == (
        r"H_{\mathrm{out}} = \operatorname{LN}\left(H^{L}; \alpha_{e}, \beta_{e}\right)"
    )
    post = spec.get("transformer.stack[post_ln_relu_final_ln_eps]")
    assert post.latex_lines()[-1] == (
        r"H_{\mathrm{out}} = \operatorname{LN}_{\varepsilon}\left(H^{L}; \alpha_{e}, \beta_{e}\right)"
    )
    assert "H_out = LN(H^L; α_e, β_e)" in post.notes and "post-LN blocks" in post.notes
    assert post.reference.status == "R" and "torch.nn.TransformerEncoder" in post.reference.source
    assert "H_out = H^L" in spec.get("transformer.stack[post_ln]").notes


# --- the blocks' contract (GPT-2, BERT and ViT build on it) ---------------------------------------------
@pytest.mark.parametrize("eq_id", ["transformer.block_pre_ln", "transformer.block_post_ln"])
def test_block_contract(eq_id):
    eq = spec.get(eq_id)
    assert [d.ascii for d in eq.inputs] == ["H", "S"]
    assert eq.declared("S").entry_kind is Kind.ADDITIVE_MASK
    assert [d.ascii for d in eq.params] == BLOCK_PARAMS
    assert [(o.ascii, o.tex) for o in eq.outputs] == [("H_out", "H'")]
    assert eq.space(eq.declared("W_Q")) == "W_Q^(m) ∈ ℝ^(d_e×d_k), m = 1..M"
    assert eq.space(eq.declared("W_1")) == "W_1 ∈ ℝ^(d_f×d_e)"
    assert eq.declared("alpha_1").tex == r"\alpha_{1}"
    assert [d.ascii for d in spec.get(f"{eq_id}[eps]").params] == [*BLOCK_PARAMS, "eps"]
    calls = {c.args[0].name for b in eq.bindings for c in b.rhs.atoms(Call)}
    assert calls == {"attention.multi_head", "transformer.ffn" if "pre" in eq_id else "transformer.ffn[gelu]"}


def test_stack_contract():
    eq = spec.get("transformer.stack")
    W_Q, alpha_1, H = eq.declared("W_Q"), eq.declared("alpha_1"), eq.declared("H")
    assert isinstance(W_Q, Family) and W_Q.indices == (spec.transformer.l, spec.axes.m)
    assert eq.space(W_Q) == "W_Q^(l,m) ∈ ℝ^(d_e×d_k), l = 1..L, m = 1..M"
    assert eq.space(alpha_1) == "alpha_1^(l) ∈ ℝ^(d_e), l = 1..L"
    assert H.start == 0 and [d.ascii for d in eq.params] == BLOCK_PARAMS
    assert [d.ascii for d in spec.get("transformer.stack[final_ln_eps]").params] == [
        *BLOCK_PARAMS, "alpha_e", "beta_e", "eps"
    ]  # fmt: skip


def test_decoder_contract():
    eq = spec.get("transformer.decoder_block")
    assert [d.ascii for d in eq.inputs] == ["H", "H_enc"]
    names = [d.ascii for d in eq.params]
    assert names[8:16] == [f"{p}_cross" for p in BLOCK_PARAMS[:8]]
    assert eq.declared("W_Q_cross").tex == r"\tilde{W}_{Q}" and eq.axes == (
        "n_d",
        "n_e",
        "d_e",
        "M",
        "d_k",
        "d_v",
        "d_f",
    )


def test_variant_names():
    assert spec.get("transformer.ffn").variant_names == ("gelu", "relu")
    assert spec.get("transformer.block_pre_ln").variant_names == (
        "eps",
        "gelu",
        "gelu_eps",
        "relu",
        "relu_eps",
    )
    assert spec.get("transformer.block_post_ln").variant_names == (
        "gelu_tanh", "gelu_tanh_eps", "eps", "relu", "relu_eps"
    )  # fmt: skip
    names = spec.get("transformer.stack").variant_names
    # 11 pre-LN, 6 post-LN, and the 2 post-LN stacks with a final norm a library builds (torch, with ε)
    assert len(names) == 19 and {
        "final_ln",
        "final_ln_eps",
        "post_ln",
        "post_ln_eps",
        "gelu_final_ln_eps",
        "post_ln_final_ln_eps",
        "post_ln_relu_final_ln_eps",
    } <= set(names)
    assert [v for v in names if v.startswith("post_ln") and "final_ln" in v] == [
        "post_ln_final_ln_eps",
        "post_ln_relu_final_ln_eps",
    ]
    for name in names:  # every name builds the equation its parts say
        var = spec.get(f"transformer.stack[{name}]")
        assert ("alpha_e" in [d.ascii for d in var.params]) == ("final_ln" in name)
        assert ("eps" in [d.ascii for d in var.params]) == name.endswith("eps")
    assert stack_variant_name("pre", "gelu", True, True) == "gelu_final_ln_eps"
    assert stack_variant_name() == "" and stack_variant_name("post", "gelu") == "post_ln"
    assert block_id("pre", "gelu_tanh") == "transformer.block_pre_ln"
    assert block_id("post", "relu", eps=True) == "transformer.block_post_ln[relu_eps]"


def test_bad_choices_are_named():
    with pytest.raises(SpecError, match="the activation must be one of gelu_tanh, gelu, relu, found 'swish'"):
        ffn("swish")
    with pytest.raises(SpecError, match="the block form must be one of pre, post, found 'sandwich'"):
        stack("sandwich")
    with pytest.raises(SpecError, match="found 'tanh'"):
        decoder_block("tanh")


def test_generated_code_calls_the_called_equations():
    src = generate(spec.get("transformer.stack"))
    for name in ("attention_multi_head", "transformer_ffn", "transformer_block_pre_ln"):
        assert f"def {name}(" in src
    assert "W_Q[..., l - 1, :, :, :]" in src and "b_O[..., l - 1, :, :]" in src
    assert "transformer_ffn__relu(" in generate(spec.get("transformer.decoder_block"))


# --- values: hand-derivable input, and each block equals its called equations composed -----------------
def test_input_by_hand():
    E = np.array([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]])  # d_e = 2, v = 3
    Lam = np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]])  # n_max = 4
    out = Oracle(spec.get("transformer.input"))(
        {"k": np.array([2, 0]), "E": E, "Lambda": Lam}, {"n": 2, "n_max": 4, "v": 3, "d_e": 2}
    )["H0"]
    np.testing.assert_allclose(out, [[3.1, 1.2], [30.5, 10.6]], rtol=1e-15)


def _arrays(eq, sizes, seed=0):
    rng = np.random.default_rng(seed)
    return {
        d.ascii: seeded_tensor(rng, d.entry_kind, concrete_shape(d, sizes), sizes)
        for d in (*eq.inputs, *eq.params)
    }


def _run(eq_id, arrays, **kw):
    eq = spec.get(eq_id)
    sizes = {a: SIZES[a] for a in eq.axes}
    sizes.update({k: v for k, v in kw.items() if k in eq.axes})
    return Oracle(eq)({d.ascii: arrays[d.ascii] for d in (*eq.inputs, *eq.params)}, sizes)


def _mha(H, S, p, suffix=""):
    mha = {k: p[f"{k}{suffix}"] for k in BLOCK_PARAMS[:8]}
    return _run("attention.multi_head", {"H": H, "S": S, **mha}, n=H.shape[-1])["A"]


def _ln(H, p, k, eps=None):
    extra = {} if eps is None else {"eps": eps}
    eq_id = "norm.layer_norm" if eps is None else "norm.layer_norm[eps]"
    return _run(eq_id, {"H": H, "alpha": p[f"alpha_{k}"], "beta": p[f"beta_{k}"], **extra}, n=H.shape[-1])[
        "H_hat"
    ]


def _ffn(C, p, variant=""):
    return _run(f"transformer.ffn{variant}", {"C": C, **p}, n=C.shape[-1])["D"]


def test_pre_ln_block_is_ln_mha_ln_ffn_composed():
    eq = spec.get("transformer.block_pre_ln[eps]")
    p = _arrays(eq, SIZES)
    H, S = p["H"], np.where(np.triu(np.ones((3, 3)), 1) > 0, -np.inf, 0.0)
    X = H + _mha(_ln(H, p, 1, p["eps"]), S, p)
    want = X + _ffn(_ln(X, p, 2, p["eps"]), p)
    got = _run(eq.id, {**p, "S": S})["H_out"]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_post_ln_block_is_mha_ln_ffn_ln_composed():
    eq = spec.get("transformer.block_post_ln")
    p = _arrays(eq, SIZES, seed=1)
    C = _ln(p["H"] + _mha(p["H"], p["S"], p), p, 1)
    want = _ln(C + _ffn(C, p, "[gelu]"), p, 2)
    np.testing.assert_allclose(_run(eq.id, p)["H_out"], want, rtol=1e-12, atol=1e-12)


def test_decoder_block_is_causal_self_attention_cross_attention_ffn_composed():
    eq = spec.get("transformer.decoder_block")
    p = _arrays(eq, SIZES, seed=2)
    causal = np.where(np.triu(np.ones((3, 3)), 1) > 0, -np.inf, 0.0)
    C_1 = _ln(p["H"] + _mha(p["H"], causal, p), p, 1)
    cross = {k: p[f"{k}_cross"] for k in BLOCK_PARAMS[:8]}
    A = _run("attention.cross", {"H_dec": C_1, "H_enc": p["H_enc"], **cross})["A"]
    C_2 = _ln(C_1 + A, p, 2)
    want = _ln(C_2 + _ffn(C_2, p, "[relu]"), p, 3)
    np.testing.assert_allclose(_run(eq.id, p)["H_out"], want, rtol=1e-12, atol=1e-12)


def test_stack_applies_each_layers_block_in_order_then_the_final_ln():
    eq = spec.get("transformer.stack[final_ln]")
    p = _arrays(eq, SIZES, seed=3)
    H = p["X"]
    for layer in range(SIZES["L"]):
        H = _run("transformer.block_pre_ln", {"H": H, "S": p["S"], **{k: p[k][layer] for k in BLOCK_PARAMS}})[
            "H_out"
        ]
    want = _run("norm.layer_norm", {"H": H, "alpha": p["alpha_e"], "beta": p["beta_e"]})["H_hat"]
    np.testing.assert_allclose(_run(eq.id, p)["H_out"], want, rtol=1e-11, atol=1e-11)


def test_a_post_ln_stack_with_a_final_ln_normalises_the_last_block_once_more():
    """torch.nn.TransformerEncoder(norm=…) with post-LN layers: LN_ε(H^L; α_e, β_e) after the last block's
    own norm, which is not H^L once the block's α_2, β_2 are not 1, 0."""
    eq = spec.get("transformer.stack[post_ln_relu_final_ln_eps]")
    p = {**_arrays(eq, SIZES, seed=4), "eps": np.asarray(1e-5)}
    H = p["X"]
    for layer in range(SIZES["L"]):
        block = {k: p[k][layer] for k in BLOCK_PARAMS}
        args = {"H": H, "S": p["S"], **block, "eps": p["eps"]}
        H = _run("transformer.block_post_ln[relu_eps]", args)["H_out"]
    ln = {"H": H, "alpha": p["alpha_e"], "beta": p["beta_e"], "eps": p["eps"]}
    want = _run("norm.layer_norm[eps]", ln)["H_hat"]
    got = _run(eq.id, p)["H_out"]
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)
    assert np.abs(got - H).max() > 1e-3


VARIANTS = [
    "transformer.ffn[gelu]",
    "transformer.ffn[relu]",
    "transformer.block_pre_ln[gelu_eps]",
    "transformer.block_post_ln[relu]",
    "transformer.block_post_ln[eps]",
    "transformer.decoder_block[eps]",
    "transformer.stack[final_ln_eps]",
    "transformer.stack[post_ln]",
]


@pytest.mark.parametrize("eq_id", IDS[:3] + VARIANTS)
def test_generated_code_matches_the_oracle(eq_id):
    eq = spec.get(eq_id)
    oracle, generated = OracleTarget(eq), GeneratedTarget(eq)
    pool = size_tuples(eq, 1, 0)  # n = 1 pinned: the blocks' oracle is costly at larger n

    @settings(max_examples=3, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def agree(data):
        ex = data.draw(examples(eq, data.draw(st.sampled_from(pool))))
        assert_close(generated(ex.arrays, ex.sizes), oracle(ex.arrays, ex.sizes), POLICY["float64"],
                     check="generated=oracle", who="generated", reference="oracle")  # fmt: skip

    agree()


# --- properties --------------------------------------------------------------------------------------
class Changed(Target):
    def __init__(self, eq, inner, change, name="broken"):
        super().__init__(eq)
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


@pytest.mark.parametrize(
    "eq_id",
    [*IDS, "transformer.block_pre_ln[eps]", "transformer.block_post_ln[eps]",
     "transformer.stack[post_ln_eps]", "transformer.stack[final_ln]",
     "transformer.stack[post_ln_final_ln_eps]", "transformer.decoder_block[eps]"],
)  # fmt: skip
def test_the_spec_satisfies_its_own_invariants(eq_id):
    eq = spec.get(eq_id)
    for prop, options in properties_of(eq):
        _holds(eq, GeneratedTarget(eq), prop.name, options)
    if eq_id in IDS[:3]:  # the exact oracle too, where it is cheap
        for prop, options in properties_of(eq):
            _holds(eq, OracleTarget(eq), prop.name, options, max_examples=3)


def _violates(eq_id, name, target) -> str:
    eq = spec.get(eq_id)
    options = next(o for p, o in properties_of(eq) if p.name == name)
    with pytest.raises(PropertyViolation) as err:
        _holds(eq, target, name, options, max_examples=30)
    assert str(err.value).startswith(f"{target.name} violates {name}")
    return str(err.value)


class Other(Target):
    """Another equation's generated code run as a target of this one (same inputs and outputs)."""

    def __init__(self, eq, other_id):
        super().__init__(eq)
        self.inner, self.name = GeneratedTarget(spec.get(other_id)), "broken"

    def __call__(self, example, sizes):
        return self.inner(example, sizes)


def test_zero_sublayers_tells_pre_ln_from_post_ln():
    message = _violates(
        "transformer.block_pre_ln",
        "block_zero_sublayers",
        Other(spec.get("transformer.block_pre_ln"), "transformer.block_post_ln"),
    )
    assert "with W_O, b_O, W_2, b_2 = 0 the output is not the input" in message
    _violates(
        "transformer.block_post_ln",
        "block_zero_sublayers",
        Other(spec.get("transformer.block_post_ln"), "transformer.block_pre_ln"),
    )


def test_zero_sublayers_catches_a_stack_without_its_final_ln():
    eq = spec.get("transformer.stack[final_ln]")

    class Bare(Target):
        name = "broken"

        def __call__(self, example, sizes):
            return GeneratedTarget(spec.get("transformer.stack"))(
                {k: v for k, v in example.items() if k not in ("alpha_e", "beta_e")}, sizes
            )

    _violates(eq.id, "block_zero_sublayers", Bare(eq))


def test_decoder_causality_catches_a_leak_from_the_future():
    eq = spec.get("transformer.decoder_block")
    leak = Changed(eq, GeneratedTarget(eq), lambda y, ex: y + ex["H"][..., -1:])
    assert "changing tokens after position" in _violates(eq.id, "decoder_causal", leak)


def test_position_wise_catches_an_ffn_that_mixes_tokens():
    eq = spec.get("transformer.ffn")
    mixing = Changed(eq, GeneratedTarget(eq), lambda d, ex: d + ex["C"].mean(axis=-1, keepdims=True))
    assert "computed alone differs" in _violates(eq.id, "ffn_position_wise", mixing)


def test_token_locality_catches_positions_from_the_next_token():
    eq = spec.get("transformer.input")

    # adds token j + 1's embedding to column j
    def next_token(h, ex):
        embedded = np.moveaxis(ex["E"][:, ex["k"]], 0, -2)  # (*batch, d_e, n): E Ω
        return h + np.roll(embedded, -1, axis=-1)

    shifted = Changed(eq, GeneratedTarget(eq), next_token)
    assert "changed another column of H0" in _violates(eq.id, "input_token_locality", shifted)
