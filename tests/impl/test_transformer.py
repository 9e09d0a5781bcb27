"""impl/ transformer: hand values, equivalence with torch.nn's transformer layers, the modules, parameter
counts, runtime shape errors, and the verifier on the equations and their variants."""

import inspect
import typing

import pytest
import torch
import torch.nn.functional as F
from jaxtyping import TypeCheckError
from torch import nn

from lmspec import spec
from lmspec.impl.attention import causal_mask
from lmspec.impl.transformer import (
    BLOCK_PARAMS,
    FFN,
    DecoderBlock,
    TransformerBlock,
    TransformerInput,
    TransformerStack,
    block_post_ln,
    block_pre_ln,
    decoder_block,
    ffn,
    input_,
    residual,
    stack,
)
from lmspec.verify.runner import PROFILES, Profile, checks_for, run_check, verify
from lmspec.verify.targets import ImplTarget

torch.set_default_dtype(torch.float64)
# distinct sizes per axis, so that a swapped axis cannot pass
B, n, d_e, M, d_f, L = 2, 5, 12, 3, 7, 2
d_k = d_v = d_e // M  # torch.nn's attention splits d_e evenly
EPS = 1e-5


def test_input_by_hand():
    E = torch.tensor([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]])  # d_e = 2, v = 3
    Lam = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]])  # n_max = 4
    out = input_(torch.tensor([[2, 0]]), E, Lam)
    torch.testing.assert_close(out, torch.tensor([[[3.1, 30.5], [1.2, 10.6]]]))
    with pytest.raises(ValueError, match="n=5 tokens but only n_max=4 positions"):
        input_(torch.zeros(5, dtype=torch.int64), E, Lam)


def test_residual_and_ffn_by_hand():
    H = torch.randn(B, n, d_e)
    torch.testing.assert_close(residual(H, 2 * H), 3 * H)
    # ReLU network with W_1 = [I; −I]: φ(W_1 c) = (c⁺, c⁻); W_2 = [I, −I] puts c back together
    eye = torch.eye(d_e)
    W_1, W_2 = torch.cat([eye, -eye]), torch.cat([eye, -eye], dim=1)
    zeros = torch.zeros(2 * d_e)
    torch.testing.assert_close(ffn(H, W_1, zeros, W_2, torch.ones(d_e), activation="relu"), H + 1)


def test_ffn_matches_two_linear_layers():
    C = torch.randn(B, n, d_e)
    lin1, lin2 = nn.Linear(d_e, d_f), nn.Linear(d_f, d_e)
    p = dict(W_1=lin1.weight, b_1=lin1.bias, W_2=lin2.weight, b_2=lin2.bias)
    torch.testing.assert_close(ffn(C, **p), lin2(F.gelu(lin1(C), approximate="tanh")))
    torch.testing.assert_close(ffn(C, **p, activation="gelu"), lin2(F.gelu(lin1(C))))


# --- against torch.nn's own layers ----------------------------------------------------------------------
def _randomise(module: nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, 0.5)


def _from_torch_attention(mha: nn.MultiheadAttention, suffix: str = "") -> dict[str, torch.Tensor]:
    """torch's packed in_proj (3 d_e × d_e, rows = outputs) as the spec's head families."""
    W, b = mha.in_proj_weight, mha.in_proj_bias
    out = {}
    for k, name in enumerate("QKV"):
        rows = W[k * d_e : (k + 1) * d_e]  # (M*d_k, d_e): head m's outputs are rows m*d_k:(m+1)*d_k
        out[f"W_{name}{suffix}"] = rows.reshape(M, d_k, d_e).transpose(1, 2)  # (M, d_e, d_k)
        out[f"b_{name}{suffix}"] = b[k * d_e : (k + 1) * d_e].reshape(M, d_k)
    out[f"W_O{suffix}"] = mha.out_proj.weight.T  # (M*d_v, d_e): A = P W_O + b_O
    out[f"b_O{suffix}"] = mha.out_proj.bias
    return out


def _from_torch_layer(layer) -> dict[str, torch.Tensor]:
    p = _from_torch_attention(layer.self_attn)
    for k, norm in enumerate((layer.norm1, layer.norm2), start=1):
        p[f"alpha_{k}"], p[f"beta_{k}"] = norm.weight, norm.bias
    p.update(
        W_1=layer.linear1.weight, b_1=layer.linear1.bias, W_2=layer.linear2.weight, b_2=layer.linear2.bias
    )
    return p


def _gelu_tanh(x):
    return F.gelu(x, approximate="tanh")


@pytest.mark.parametrize(
    ("norm_first", "activation", "torch_activation"),
    [(True, "gelu_tanh", _gelu_tanh), (False, "gelu", "gelu"), (False, "relu", "relu")],
)
def test_blocks_match_torch_transformer_encoder_layer(norm_first, activation, torch_activation):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(
        d_e, M, d_f, dropout=0.0, activation=torch_activation, layer_norm_eps=EPS, batch_first=True,
        norm_first=norm_first,
    )  # fmt: skip
    _randomise(layer)
    H = torch.randn(B, n, d_e)
    S = causal_mask(n, dtype=torch.float64)
    block = block_pre_ln if norm_first else block_post_ln
    ours = block(H, S, **_from_torch_layer(layer), eps=EPS, activation=activation)
    torch.testing.assert_close(ours, layer(H, src_mask=S))


def test_decoder_block_matches_torch_transformer_decoder_layer():
    torch.manual_seed(1)
    layer = nn.TransformerDecoderLayer(d_e, M, d_f, dropout=0.0, layer_norm_eps=EPS, batch_first=True)
    _randomise(layer)
    H, H_enc = torch.randn(B, n, d_e), torch.randn(B, n + 2, d_e)  # n_d = 5, n_e = 7
    p = _from_torch_layer(layer)
    p.update(_from_torch_attention(layer.multihead_attn, "_cross"))
    p["alpha_3"], p["beta_3"] = layer.norm3.weight, layer.norm3.bias
    want = layer(H, H_enc, tgt_mask=causal_mask(n, dtype=torch.float64))
    torch.testing.assert_close(decoder_block(H, H_enc, **p, eps=EPS), want)


def test_stack_with_final_ln_matches_torch_transformer_encoder():
    torch.manual_seed(2)
    layer = nn.TransformerEncoderLayer(
        d_e, M, d_f, dropout=0.0, activation=_gelu_tanh, layer_norm_eps=EPS, batch_first=True, norm_first=True
    )
    encoder = nn.TransformerEncoder(layer, L, norm=nn.LayerNorm(d_e, eps=EPS), enable_nested_tensor=False)
    _randomise(encoder)
    per_layer = [_from_torch_layer(lay) for lay in encoder.layers]
    params = {k: torch.stack([p[k] for p in per_layer]) for k in BLOCK_PARAMS}
    X, S = torch.randn(B, n, d_e), causal_mask(n, dtype=torch.float64)
    ours = stack(X, S, **params, eps=EPS, alpha_e=encoder.norm.weight, beta_e=encoder.norm.bias)
    torch.testing.assert_close(ours, encoder(X, mask=S))


# --- modules ---------------------------------------------------------------------------------------------
def test_block_module_holds_the_spec_parameters():
    torch.manual_seed(3)
    blk = TransformerBlock(d_e, M, d_f, norm_first=True, eps=EPS)
    params = blk.spec_params()
    assert list(params) == list(BLOCK_PARAMS)
    assert params["W_Q"].shape == (M, d_e, d_k) and params["W_1"].shape == (d_f, d_e)
    assert sum(p.numel() for p in params.values()) == sum(p.numel() for p in blk.parameters())
    H = torch.randn(B, n, d_e)
    torch.testing.assert_close(blk(H), block_pre_ln(H, None, **params, eps=EPS, activation="gelu_tanh"))
    post = TransformerBlock(d_e, M, d_f, norm_first=False)
    assert post.activation == "gelu" and blk.activation == "gelu_tanh"
    torch.testing.assert_close(post(H), block_post_ln(H, None, **post.spec_params()))


def test_stack_module_stacks_each_blocks_parameters():
    torch.manual_seed(4)
    st = TransformerStack(L, d_e, M, d_f, final_ln=True, eps=EPS)
    params = st.spec_params()
    assert list(params) == [*BLOCK_PARAMS, "alpha_e", "beta_e"]
    assert params["W_Q"].shape == (L, M, d_e, d_k) and params["alpha_1"].shape == (L, d_e)
    assert sum(p.numel() for p in params.values()) == sum(p.numel() for p in st.parameters())
    X = torch.randn(B, n, d_e)
    H = X
    for blk in st.blocks:
        H = blk(H)
    torch.testing.assert_close(st(X), st.ln_e(H))
    params["W_Q"].sum().backward()  # the stacked view is differentiable back to each block
    assert st.blocks[1].attn.W_Q.grad is not None


def test_decoder_and_input_modules():
    torch.manual_seed(5)
    dec = DecoderBlock(d_e, M, d_f)
    params = dec.spec_params()
    assert "W_Q_cross" in params and "alpha_3" in params and len(params) == 8 + 8 + 6 + 4
    assert sum(p.numel() for p in params.values()) == sum(p.numel() for p in dec.parameters())
    H, H_enc = torch.randn(B, n, d_e), torch.randn(B, n + 2, d_e)
    torch.testing.assert_close(dec(H, H_enc), decoder_block(H, H_enc, **params, activation="relu"))
    emb = TransformerInput(v=11, d_e=d_e, n_max=9)
    k = torch.tensor([[3, 1, 4, 1, 5]])
    torch.testing.assert_close(emb(k), emb.E.T[k] + emb.Lambda.T[:5])


# Test vectors of the catalogue (CATALOGUE.md, "params"): a block with M = 8, d_k = d_v = 16, d_e = 128,
# d_f = 2048 has 593,024 parameters, a stack of 3 has 1,779,072; GPT-2 small's block has 7,087,872.
@pytest.mark.parametrize(
    ("L_", "d_e_", "M_", "d_f_", "count"),
    [(1, 128, 8, 2048, 593_024), (3, 128, 8, 2048, 1_779_072), (1, 768, 12, 3072, 7_087_872)],
)
def test_parameter_counts_of_the_catalogue(L_, d_e_, M_, d_f_, count):
    st = TransformerStack(L_, d_e_, M_, d_f_)
    assert sum(p.numel() for p in st.parameters()) == count


def test_constructor_errors():
    with pytest.raises(ValueError, match=r"unknown activation 'swish'"):
        FFN(d_e, d_f, "swish")
    with pytest.raises(ValueError, match="L must be positive, found L=0"):
        TransformerStack(0, d_e, M, d_f)
    with pytest.raises(ValueError, match="give both alpha_e and beta_e"):
        stack(
            torch.randn(n, d_e),
            None,
            **TransformerStack(L, d_e, M, d_f).spec_params(),
            alpha_e=torch.ones(d_e),
        )


def test_runtime_checks_name_the_bad_parameter():
    params = TransformerBlock(d_e, M, d_f, norm_first=True).spec_params()
    params["W_1"] = torch.randn(d_f, d_e + 1)
    with pytest.raises(TypeCheckError, match="W_1"):
        block_pre_ln(torch.randn(n, d_e), None, **params)


# --- the verifier --------------------------------------------------------------------------------------
def test_the_verifier_passes_on_the_cheap_equations():
    results = verify(
        spec.select(["transformer.input", "transformer.residual", "transformer.ffn"]), "quick", 1
    )
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]


@pytest.mark.parametrize(
    "eq_id",
    [
        "transformer.block_pre_ln",
        "transformer.block_post_ln",
        "transformer.decoder_block",
        "transformer.stack",
    ],
)
def test_the_verifier_passes_on_the_blocks(eq_id):
    results = verify([spec.get(eq_id)], "quick", 0)
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]


#: One size tuple (n = 1 pinned) and few examples: the variants' oracles are as costly as the blocks'.
SMALL = Profile("small", 1, 2, 4, 3, 2.0)


def with_options(fn, **options):
    """``fn`` with keyword options fixed, keeping its signature and annotations for the binding."""

    def wrapper(**kwargs):
        return fn(**kwargs, **options)

    sig = inspect.signature(fn)
    wrapper.__signature__ = sig.replace(
        parameters=[p for p in sig.parameters.values() if p.name not in options]
    )
    wrapper.__annotations__ = {k: v for k, v in typing.get_type_hints(fn).items() if k not in options}
    wrapper.__qualname__ = f"{fn.__qualname__}{options}"
    return wrapper


@pytest.mark.parametrize(
    ("variant", "fn", "options"),
    [
        ("transformer.block_pre_ln[eps]", block_pre_ln, {}),  # eps binds by name
        ("transformer.block_post_ln[relu_eps]", block_post_ln, {"activation": "relu"}),
        ("transformer.stack[final_ln_eps]", stack, {}),  # alpha_e, beta_e, eps bind by name
        ("transformer.stack[post_ln]", stack, {"norm_first": False}),
    ],
)
def test_the_variants_pass_with_their_options(variant, fn, options):
    eq = spec.get(variant)
    target = ImplTarget(eq, with_options(fn, **options) if options else fn)
    results = [run_check(c, SMALL, 0) for c in checks_for(eq, SMALL, 0, target)]
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]


def test_the_verifier_catches_a_post_ln_block_posing_as_pre_ln():
    eq = spec.get("transformer.block_pre_ln")
    target = ImplTarget(eq, with_options(block_post_ln, activation="gelu_tanh"), name="wrong[post-LN]")
    results = [run_check(c, PROFILES["quick"], 0) for c in checks_for(eq, PROFILES["quick"], 0, target)]
    failed = {r.check for r in results if not r.passed}
    assert {"impl=oracle", "impl=generated", "property:block_zero_sublayers"} <= failed
