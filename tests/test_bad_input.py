"""Bad input: every case gets a clear error whose message is tested, or a documented, correct result.

docs/robustness.md lists each case with what lmspec does and why. Groups, in order: impl/ given wrong shapes,
dtypes and devices; NaN and ±∞; n = 0 and n = 1; fully masked rows; token ids outside [0, v); logits of
±1e4 against the mpmath oracle; float16 and bfloat16; non-contiguous tensors; the CLI (unknown ids, malformed
layouts, audit targets that do not import, are not callable or raise, bad option values); reproducibility of
the JSON reports. Expected values come from the spec's exact oracle (verify.oracle) or from the arithmetic
written next to them.
"""

import json
import math
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from jaxtyping import TypeCheckError

from lmspec import spec
from lmspec.impl import attention, bert, ffnn, gpt2, lm, norm, training
from lmspec.impl.activation import gelu
from lmspec.verify.cli.app import main
from lmspec.verify.compare import POLICY, compare
from lmspec.verify.oracle import Oracle

INF, NAN = math.inf, math.nan
f64 = torch.float64


def oracle(eq_id: str, arrays: dict, sizes: dict, **kw) -> dict:
    """The spec's exact result for one example (float64 NumPy, or mpmath objects with precision="mpmath")."""
    return Oracle(spec.get(eq_id))({k: np.asarray(a) for k, a in arrays.items()}, sizes, **kw)


def as_float(a) -> np.ndarray:
    return np.asarray(a, dtype=object).astype(float) if np.asarray(a).dtype == object else np.asarray(a)


def same(actual: torch.Tensor, expected, dtype: str = "float64") -> None:
    """``actual`` equals the spec's ``expected`` under verify/compare.py's policy for ``dtype``."""
    got = actual.detach().double().numpy()
    c = compare(got, as_float(expected).reshape(got.shape), POLICY[dtype])
    assert c.ok, f"{c.bad} entries off, worst {c.actual} vs {c.expected} at {c.where}"


def rand(*shape, dtype=f64, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def small_gpt2() -> gpt2.GPT2:
    torch.manual_seed(0)
    return gpt2.GPT2(v=7, n_max=6, d_e=8, M=2, L=1).double()


def small_bert() -> bert.BERT:
    torch.manual_seed(0)
    return bert.BERT(v=7, n_max=6, d_e=8, M=2, L=1).double()


# --- impl/: wrong shapes, dtypes, devices ------------------------------------------------------------
# jaxtyping + beartype reject them on entry; the message names the function, the argument, the expected
# annotation and the sizes bound so far (e.g. ``d_e=4``).
WRONG_ARGUMENTS = {
    "layer_norm alpha of length 5, d_e = 4": (
        lambda: norm.layer_norm(rand(2, 3, 4), rand(5), rand(4)),
        ["impl.norm.layer_norm", "parameter 'alpha'", "Float[Tensor, 'd_e']", "d_e=4"],
    ),
    "scaled_dot_product K with d_k = 5, Q with 4": (
        lambda: attention.scaled_dot_product(rand(3, 4), rand(3, 5), rand(3, 2)),
        ["impl.attention.scaled_dot_product", "parameter 'K'", "'*batch n d_k'", "d_k=4"],
    ),
    "cross_entropy k of n = 4, Z of n = 3": (
        lambda: lm.cross_entropy(rand(3, 5), torch.zeros(4, dtype=torch.long)),
        ["impl.lm.cross_entropy", "parameter 'k'", "'*batch n'", "n=3"],
    ),
    "embedding E of rank 1": (
        lambda: lm.embedding(torch.tensor([1]), rand(5)),
        ["impl.lm.embedding", "parameter 'E'", "'d_e v'"],
    ),
    "dtype: softmax of an int tensor": (
        lambda: lm.softmax(torch.tensor([1, 2, 3])),
        ["impl.lm.softmax", "parameter 'z'", "Actual value: i64[3]", "Float[Tensor, '*batch v']"],
    ),
    "dtype: embedding with float token ids": (
        lambda: lm.embedding(torch.tensor([1.0], dtype=torch.float32), rand(4, 5)),
        ["impl.lm.embedding", "parameter 'k'", "Actual value: f32[1]", "Int[Tensor, '*batch n']"],
    ),
    "dtype: a boolean mask where S is additive": (
        lambda: attention.scaled_dot_product(
            rand(3, 4), rand(3, 4), rand(3, 2), torch.ones(3, 3, dtype=bool)
        ),
        ["impl.attention.scaled_dot_product", "parameter 'S'", "bool[3,3]", "Float[Tensor, '*#batch n n']"],
    ),
}


@pytest.mark.parametrize("case", list(WRONG_ARGUMENTS))
def test_wrong_shape_or_dtype_is_a_type_check_error_naming_function_argument_and_axis(case):
    call, fragments = WRONG_ARGUMENTS[case]
    with pytest.raises(TypeCheckError) as info:
        call()
    for fragment in fragments:
        assert fragment in str(info.value), fragment


def test_mixed_float_dtypes_promote_to_the_wider_one():
    # documented: jaxtyping's Float accepts any floating dtype; torch promotes float32 α, β to float64
    H = rand(2, 3, 4)
    out = norm.layer_norm(H, torch.ones(4, dtype=torch.float32), torch.zeros(4, dtype=torch.float32))
    assert out.dtype == f64
    torch.testing.assert_close(out, norm.layer_norm(H, torch.ones(4, dtype=f64), torch.zeros(4, dtype=f64)))


def test_mixed_devices_are_torchs_error_naming_both_devices():
    # no second device here: a meta tensor stands in for one (jaxtyping does not check devices)
    with pytest.raises(RuntimeError, match="Tensor on device cpu is not on the expected device meta"):
        norm.layer_norm(rand(2, 3, 4), torch.ones(4, device="meta"), torch.zeros(4))


def test_meta_tensors_propagate_shapes_without_values():
    # documented: on the meta device impl/ computes shapes only (the token-id range check is skipped)
    X = lm.embedding(torch.zeros(2, 3, dtype=torch.long, device="meta"), torch.empty(4, 5, device="meta"))
    assert X.device.type == "meta" and X.shape == (2, 3, 4)


# --- NaN and ±∞ --------------------------------------------------------------------------------------
def test_softmax_of_a_nan_row_is_nan_and_other_rows_are_untouched():
    z = torch.tensor([[0.0, NAN, 1.0], [0.0, 1.0, 2.0]], dtype=f64)
    y = lm.softmax(z)
    assert y[0].isnan().all()
    same(y[1], oracle("lm.softmax", {"z": z[1].numpy()}, {"v": 3})["y_hat"])


@pytest.mark.parametrize(
    "z",
    [[-INF, -INF, -INF], [0.0, INF, 1.0], [-INF, 0.0, 1.0]],
    ids=["all -inf: nan (lm.softmax has no masking convention)", "+inf: nan", "one -inf: weight 0"],
)
def test_softmax_of_infinities_is_the_specs(z):
    z = torch.tensor(z, dtype=f64)
    same(lm.softmax(z), oracle("lm.softmax", {"z": z.numpy()}, {"v": 3})["y_hat"])


def test_attention_softmax_rows_gives_a_fully_negative_infinite_row_zero_weights():
    Z = torch.tensor([[-INF, -INF, -INF], [0.0, -INF, 1.0], [0.0, 0.0, 0.0]], dtype=f64)
    Y = attention.softmax_rows(Z)
    assert Y[0].tolist() == [0.0, 0.0, 0.0]
    same(Y, oracle("attention.softmax_rows", {"Z": Z.numpy()}, {"n": 3})["Y"])


@pytest.mark.parametrize("bad", [NAN, INF, -INF], ids=["nan", "+inf", "-inf"])
def test_layer_norm_of_a_token_holding_nan_or_inf_is_nan_like_the_spec(bad):
    # fixed: the ε = 0 form used to return 0 (var > 0 is False for a NaN variance)
    H = torch.tensor([[0.0, bad, 1.0], [1.0, 2.0, 4.0]], dtype=f64)  # (n, d_e): token 0 is bad
    out = norm.layer_norm(H, torch.ones(3, dtype=f64), torch.zeros(3, dtype=f64))
    assert out[0].isnan().all()
    expected = oracle(
        "norm.layer_norm", {"H": H.T.numpy(), "alpha": np.ones(3), "beta": np.zeros(3)}, {"d_e": 3, "n": 2}
    )["H_hat"]
    same(out, expected.T)


@pytest.mark.parametrize(
    ("logits", "target", "ell"),
    [
        ([0.0, INF, 1.0], 1, NAN),
        ([0.0, -INF, 1.0], 1, INF),
        ([0.0, NAN, 1.0], 0, NAN),
        ([0.0, -INF, 1.0], 0, None),
    ],
    ids=["+inf logit: nan", "-inf at the target: +inf loss", "nan logit: nan", "-inf elsewhere: finite"],
)
def test_cross_entropy_of_non_finite_logits(logits, target, ell):
    Z = torch.tensor([logits], dtype=f64)
    loss, _, _ = lm.cross_entropy(Z, torch.tensor([target]))
    if ell is None:
        assert loss.item() == pytest.approx(math.log1p(math.e))  # −log(e⁰/(e⁰ + e¹))
    elif math.isnan(ell):
        assert loss.isnan().all()
    else:
        assert loss.item() == ell
    expected = oracle("lm.cross_entropy", {"Z": Z.T.numpy(), "k": [target], "keep": [1]}, {"v": 3, "n": 1})[
        "ell"
    ]
    same(loss, expected)


# --- n = 0 and n = 1 ---------------------------------------------------------------------------------
def test_attention_of_one_token_returns_its_value():
    Q, K, V = rand(1, 4, seed=1), rand(1, 4, seed=2), rand(1, 3, seed=3)
    torch.testing.assert_close(attention.scaled_dot_product(Q, K, V), V, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("call", "shape"),
    [
        (lambda: attention.scaled_dot_product(rand(0, 4), rand(0, 4), rand(0, 3)), (0, 3)),
        (lambda: attention.multi_head(rand(2, 0, 4), **_mha_params()), (2, 0, 4)),
        (lambda: norm.layer_norm(rand(0, 4), torch.ones(4, dtype=f64), torch.zeros(4, dtype=f64)), (0, 4)),
        (lambda: small_gpt2()(torch.zeros(0, dtype=torch.long))[0], (0, 7)),
    ],
    ids=["scaled_dot_product", "multi_head", "layer_norm", "GPT2"],
)
def test_no_tokens_give_an_empty_result(call, shape):
    assert call().shape == shape


def test_layer_norm_of_one_feature_is_beta():
    # d_e = 1: every token is constant, normalises to 0 (the spec's ε = 0 convention), the output is β
    out = norm.layer_norm(rand(5, 1), torch.full((1,), 3.0, dtype=f64), torch.full((1,), -2.0, dtype=f64))
    assert out.flatten().tolist() == [-2.0] * 5


def test_gpt2_on_one_token_is_the_first_position_of_a_longer_sequence():
    model = small_gpt2()
    k = torch.tensor([3, 1, 4, 1])
    one, _ = model(k[:1])
    full, _ = model(k)
    torch.testing.assert_close(one, full[:1], rtol=1e-12, atol=1e-12)  # causal: token 1 sees itself only


def test_gpt2_loss_of_one_token_is_zero_there_is_nothing_to_predict():
    assert small_gpt2().loss(torch.tensor([3])).item() == 0.0
    assert gpt2.loss(torch.full((1, 7), 1 / 7, dtype=f64), torch.tensor([3])).item() == 0.0


def test_perplexity_of_an_empty_sequence_is_nan():
    # the mean over no token is 0/0: NaN, as F.cross_entropy with every target ignored
    assert lm.perplexity(torch.zeros(0, 5, dtype=f64), torch.zeros(0, dtype=torch.long)).isnan()


def test_bert_on_an_empty_sequence_is_an_error_naming_the_pooler():
    with pytest.raises(
        ValueError, match=r"^pooler: the sequence is empty \(n = 0\), expected at least .*\[CLS\]"
    ):
        small_bert()(torch.zeros(0, dtype=torch.long))


# --- fully masked rows -------------------------------------------------------------------------------
def _mha_params(d_e=4, M=2, d_k=3, d_v=2):
    g = torch.Generator().manual_seed(5)

    def r(*s):
        return torch.randn(*s, generator=g, dtype=f64)

    return dict(
        W_Q=r(M, d_e, d_k), b_Q=r(M, d_k), W_K=r(M, d_e, d_k), b_K=r(M, d_k),
        W_V=r(M, d_e, d_v), b_V=r(M, d_v), W_O=r(M * d_v, d_e), b_O=r(d_e),
    )  # fmt: skip


def _mask_row0(n: int) -> torch.Tensor:
    S = torch.zeros(n, n, dtype=f64)
    S[0] = -INF
    return S


def test_scaled_dot_product_gives_a_fully_masked_query_zero_output():
    Q, K, V = rand(3, 4, seed=1), rand(3, 4, seed=2), rand(3, 2, seed=3)
    P = attention.scaled_dot_product(Q, K, V, _mask_row0(3))
    assert P[0].tolist() == [0.0, 0.0]
    ex = {"Q": Q.numpy(), "K": K.numpy(), "V": V.numpy(), "S": _mask_row0(3).numpy()}
    same(P, oracle("attention.scaled_dot_product", ex, {"n": 3, "d_k": 4, "d_v": 2})["P"])


def test_multi_head_gives_a_fully_masked_query_the_output_bias():
    p = _mha_params()
    A = attention.multi_head(rand(3, 4), **p, S=_mask_row0(3))
    torch.testing.assert_close(A[0], p["b_O"], rtol=0, atol=0)  # every head attends to nothing: 0 W_O + b_O
    assert A[1:].isfinite().all()


def test_bert_with_every_token_padded_stays_finite():
    out = small_bert()(torch.tensor([[1, 2, 3]]), keep=torch.zeros(1, 3, dtype=torch.bool))
    assert out.states.isfinite().all() and out.p.isfinite().all()


# --- token ids outside [0, v) ------------------------------------------------------------------------
# Indexing wraps a negative id round to the end of the vocabulary (a silently wrong row) and fails inside
# torch for an id ≥ v; impl/ checks the range on entry and names the function, the range and the value.
V_ = 5  # the vocabulary of the functional cases; the small GPT-2 and BERT have v = 7
TOKEN_IDS = {
    "embedding, id = v": (
        lambda: lm.embedding(torch.tensor([0, 5]), rand(4, V_)),
        "embedding: token ids k must lie in [0, 5), found 5",
    ),
    "embedding, id = -1": (
        lambda: lm.embedding(torch.tensor([-1]), rand(4, V_)),
        "embedding: token ids k must lie in [0, 5), found -1",
    ),
    "one_hot, id = v": (
        lambda: lm.one_hot(torch.tensor([5]), V_),
        "one_hot: token ids k must lie in [0, 5), found 5",
    ),
    "one_hot, id = -3": (
        lambda: lm.one_hot(torch.tensor([[0, -3]]), V_),
        "one_hot: token ids k must lie in [0, 5), found -3",
    ),
    "cross_entropy, id = v": (
        lambda: lm.cross_entropy(rand(2, V_), torch.tensor([0, 5])),
        "cross_entropy: token ids k must lie in [0, 5), found 5",
    ),
    "cross_entropy, id = -1": (
        lambda: lm.cross_entropy(rand(2, V_), torch.tensor([-1, 0])),
        "cross_entropy: token ids k must lie in [0, 5), found -1",
    ),
    "perplexity, id = 9": (
        lambda: lm.perplexity(rand(2, V_), torch.tensor([9, 0])),
        "cross_entropy: token ids k must lie in [0, 5), found 9",
    ),
    "ngram, id = v": (
        lambda: lm.ngram(torch.tensor([0, 5]), V_),
        "ngram: token ids k must lie in [0, 5), found 5",
    ),
    "GPT2 model, id = v": (
        lambda: small_gpt2()(torch.tensor([7])),
        "gpt2: token ids k must lie in [0, 7), found 7",
    ),
    "GPT2 model, id = -1": (
        lambda: small_gpt2()(torch.tensor([2, -1])),
        "gpt2: token ids k must lie in [0, 7), found -1",
    ),
    "gpt2.forward, id = v": (
        lambda: gpt2.forward(torch.tensor([1, 8]), **small_gpt2().spec_params()),
        "gpt2: token ids k must lie in [0, 7), found 8",
    ),
    "BERT, id = v": (
        lambda: small_bert()(torch.tensor([7])),
        "embed: token ids k must lie in [0, 7), found 7",
    ),
    "BERT, id = -1": (
        lambda: small_bert()(torch.tensor([-1])),
        "embed: token ids k must lie in [0, 7), found -1",
    ),
    "BERT, segment id 2": (
        lambda: small_bert()(torch.tensor([1]), s=torch.tensor([2])),
        "embed: segment ids s must lie in [0, 2), found 2",
    ),
    "BERT mlm_loss, id = v": (
        lambda: bert.mlm_loss(torch.full((1, 7), 1 / 7), torch.tensor([7]), torch.tensor([True])),
        "mlm_loss: token ids k must lie in [0, 7), found 7",
    ),
    "BERT mlm_masking, mask_id = v": (
        lambda: bert.mlm_masking(torch.tensor([1]), torch.tensor([False]), 7, 7),
        "mlm_masking: mask_id must be a vocabulary index in [0, 7), found 7",
    ),
    "BERTClassifier, label = n_c": (
        lambda: bert.BERTClassifier(3, v=7, n_max=6, d_e=8, M=2, L=1)(
            torch.tensor([[1, 2]]), c=torch.tensor([3])
        ),
        "BERTClassifier: class labels c must lie in [0, 3), found 3",
    ),
    "training.mle, id = v": (
        lambda: training.mle(torch.full((2, V_), 1 / V_), torch.tensor([0, 5])),
        "mle: token ids k must lie in [0, 5), found 5",
    ),
    "training.softmax_ce_grad, id = -1": (
        lambda: training.softmax_ce_grad(rand(2, V_), torch.tensor([-1, 0])),
        "softmax_ce_grad: token ids k must lie in [0, 5), found -1",
    ),
    "FFNN LM, id = v": (
        lambda: ffnn.FFNNLM(v=V_, d_e=3, d_h=4, c=2)(torch.tensor([0, 6])),
        "ffnn.embed: token ids k must lie in [0, 5), found 6",
    ),
}


@pytest.mark.parametrize("case", list(TOKEN_IDS))
def test_token_ids_outside_the_vocabulary_are_a_value_error(case):
    call, message = TOKEN_IDS[case]
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value) == message


# --- logits of ±1e4 against the mpmath oracle --------------------------------------------------------
# A naive exp overflows (e^{1e4} = ∞ even in float64); the stable forms must give the exact finite numbers.
BIG = [1e4, -1e4, 0.0, 1e4 - 1.0, -3.0]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_softmax_of_huge_logits_matches_mpmath(dtype):
    z = torch.tensor(BIG, dtype=getattr(torch, dtype))
    exact = oracle("lm.softmax", {"z": z.double().numpy()}, {"v": 5}, precision="mpmath")["y_hat"]
    y = lm.softmax(z)
    assert y.isfinite().all()
    same(y, exact, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cross_entropy_of_huge_logits_matches_mpmath(dtype):
    Z = torch.tensor([BIG, BIG[::-1]], dtype=getattr(torch, dtype))  # (n, v)
    k = torch.tensor([1, 1])  # the −1e4 logit and the 1e4 − 1 one
    exact = oracle(
        "lm.cross_entropy", {"Z": Z.double().T.numpy(), "k": k.numpy(), "keep": [1, 1]}, {"v": 5, "n": 2},
        precision="mpmath",
    )  # fmt: skip
    ell, loss_sum, loss = lm.cross_entropy(Z, k)
    softplus = math.log1p(math.exp(-1))  # log(e^{1e4} + e^{1e4 − 1}) = 1e4 + log(1 + e^{−1})
    assert ell.tolist() == pytest.approx([2e4 + softplus, 1.0 + softplus], rel=1e-6)
    same(ell, exact["ell"], dtype)
    same(loss_sum, exact["loss_sum"], dtype)
    same(loss, exact["loss"], dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_layer_norm_of_huge_features_matches_mpmath(dtype):
    H = torch.tensor([BIG, [1e4, 1e4 + 1.0, 1e4 - 1.0, 1e4, 1e4]], dtype=getattr(torch, dtype))  # (n, d_e)
    alpha, beta = torch.linspace(0.5, 2.0, 5, dtype=H.dtype), torch.linspace(-1.0, 1.0, 5, dtype=H.dtype)
    arrays = {"H": H.double().T.numpy(), "alpha": alpha.double().numpy(), "beta": beta.double().numpy()}
    exact = oracle("norm.layer_norm", arrays, {"d_e": 5, "n": 2}, precision="mpmath")["H_hat"]
    out = norm.layer_norm(H, alpha, beta)
    assert out.isfinite().all()
    same(out, as_float(exact).T, dtype)


# --- float16 and bfloat16 ----------------------------------------------------------------------------
# impl/ runs in either; against the oracle on the same (rounded) inputs, results are within the policy's
# tolerance for that dtype (verify/compare.py POLICY).
def _low(eq_id, dtype):
    lp = getattr(torch, dtype)
    if eq_id == "lm.softmax":
        z = rand(3, 6).to(lp)
        return lm.softmax(z), oracle(eq_id, {"z": z.double().numpy()}, {"v": 6})["y_hat"]  # batched rows
    if eq_id == "norm.layer_norm":
        H, a, b = rand(4, 6).to(lp), rand(6, seed=1).to(lp), rand(6, seed=2).to(lp)
        arrays = {"H": H.double().T.numpy(), "alpha": a.double().numpy(), "beta": b.double().numpy()}
        return norm.layer_norm(H, a, b), oracle(eq_id, arrays, {"d_e": 6, "n": 4})["H_hat"].T
    if eq_id == "attention.scaled_dot_product":
        Q, K, V = rand(4, 3, seed=1).to(lp), rand(4, 3, seed=2).to(lp), rand(4, 2, seed=3).to(lp)
        S = attention.causal_mask(4, dtype=lp)
        ex = {
            "Q": Q.double().numpy(),
            "K": K.double().numpy(),
            "V": V.double().numpy(),
            "S": S.double().numpy(),
        }
        return attention.scaled_dot_product(Q, K, V, S), oracle(eq_id, ex, {"n": 4, "d_k": 3, "d_v": 2})["P"]
    if eq_id == "activation.gelu":
        X = (3 * rand(4, 5)).to(lp)
        return gelu(X), oracle(eq_id, {"X": X.double().T.numpy()}, {"d_e": 5, "n": 4})["Y"].T
    Z, k = rand(4, 6).to(lp), torch.tensor([0, 5, 2, 2])
    ex = {"Z": Z.double().T.numpy(), "k": k.numpy(), "keep": np.ones(4)}
    return lm.cross_entropy(Z, k)[0], oracle(eq_id, ex, {"v": 6, "n": 4})["ell"]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize(
    "eq_id",
    ["lm.softmax", "norm.layer_norm", "attention.scaled_dot_product", "activation.gelu", "lm.cross_entropy"],
)
def test_half_precision_is_within_the_policys_tolerance(eq_id, dtype):
    got, expected = _low(eq_id, dtype)
    assert got.dtype == getattr(torch, dtype)
    same(got, expected, dtype)


# --- non-contiguous tensors --------------------------------------------------------------------------
def test_non_contiguous_inputs_give_the_contiguous_result():
    base = rand(4, 6, 5)
    Z = base.transpose(-1, -2)[..., :5]  # (4, 5, 5), a transposed and sliced view
    assert not Z.is_contiguous()
    torch.testing.assert_close(
        attention.softmax_rows(Z), attention.softmax_rows(Z.contiguous()), rtol=0, atol=0
    )
    H = rand(3, 8, 4)[:, ::2, :]  # every other token: stride 2
    a, b = rand(4, seed=1), rand(4, seed=2)
    torch.testing.assert_close(
        norm.layer_norm(H, a, b), norm.layer_norm(H.contiguous(), a, b), rtol=0, atol=0
    )


def test_non_contiguous_attention_and_cross_entropy_inputs():
    H = rand(4, 2, 3).permute(1, 2, 0)  # (2, 3, 4) = (batch, n, d_e), permuted
    p = _mha_params()
    torch.testing.assert_close(
        attention.multi_head(H, **p), attention.multi_head(H.contiguous(), **p), rtol=1e-12, atol=1e-12
    )
    Z = rand(5, 3).T  # (n = 3, v = 5), transposed
    k = torch.tensor([[0, 4, 4, 1, 2, 3]])[:, ::2]  # strided ids (0, 4, 2)
    for got, want in zip(lm.cross_entropy(Z, k[0]), lm.cross_entropy(Z.contiguous(), k[0].contiguous())):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    E = rand(5, 4).T  # E ∈ ℝ^{d_e×v} (d_e = 4, v = 5) as a transposed view
    torch.testing.assert_close(lm.embedding(k[0], E), lm.embedding(k[0].contiguous(), E.contiguous()))


# --- the command line --------------------------------------------------------------------------------
USER = """
import math

import torch

calls = 0


def attention(q, k, v, mask):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1).nan_to_num(0.0) @ v


def flaky(q, k, v, mask):
    # raises in the middle of the audit, after its first calls succeeded
    global calls
    calls += 1
    if calls > 3:
        raise RuntimeError("device lost (simulated)")
    return attention(q, k, v, mask)


def chain(y, k):
    log_prob = y.gather(-1, k.unsqueeze(-1)).squeeze(-1).log().sum(-1)
    return log_prob, log_prob.exp()
"""
SDP_LAYOUT = "q=b h n d_k, k=b h n d_k, v=b h n d_v, mask=b h n n -> b h n d_v"
CHAIN_LAYOUT = "y=b n v, k=b n -> log_prob=b, prob=b"


@pytest.fixture
def user(tmp_path):
    (tmp_path / "user.py").write_text(textwrap.dedent(USER))
    (tmp_path / "syntax.py").write_text("def f(:\n    pass\n")
    return tmp_path


def cli(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_usage_error(code, out, err, sentence):
    assert code == 2, out + err
    assert err.startswith("lmspec: error: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in out + err
    assert re.search(sentence, err), err


UNKNOWN_IDS = {
    "codegen of an unknown id": ["codegen", "attention.nope"],
    "show of a family, not an id": ["show", "lm"],
    "verify with one unknown family among known": ["verify", "attention", "nofamily", "-p", "quick"],
    "audit --as an unknown id": ["audit", "torch.nn.LayerNorm", "--as", "nope.nope"],
}


@pytest.mark.parametrize("case", list(UNKNOWN_IDS))
def test_unknown_equation_ids(capsys, case):
    args = UNKNOWN_IDS[case]
    bad = next(a for a in args[1:] if a in {"attention.nope", "lm", "nofamily", "nope.nope"})
    code, out, err = cli(capsys, *args)
    # the catalogue's list, or the names nearest to the one given, or the equations of a family
    tail = r"(`lmspec list`|did you mean .+\(`lmspec list` shows the catalogue\)|.+ is a family, of )"
    assert_usage_error(code, out, err, rf"^lmspec: error: unknown equation '{re.escape(bad)}'; {tail}")


BAD_LAYOUTS = {
    "unclosed parenthesis": (
        "y=b (n v, k=b n -> log_prob=b",
        r"argument 'y': an unclosed parenthesis in 'b \(n v, k=b n'",
    ),
    "unopened parenthesis": ("y=b n v), k=b n -> log_prob=b", r"argument 'y': an empty or unopened group in"),
    "nested parentheses": (
        "y=b ((n v)), k=b n -> log_prob=b",
        r"argument 'y': nested parentheses in 'b \(\(n v\)\)'",
    ),
    "'...' not first (was a traceback)": (
        "y=b ... n v, k=b n -> log_prob=b",
        r"'\.\.\.' must come first in 'b \.\.\. n v'",
    ),
    "an axis misspelt (w for v)": (
        "y=b n w, k=b n -> log_prob=b",
        r"'b n w' leaves out the axes v \(read b, w as batch axes\)",
    ),
    "an axis of another symbol": (
        "y=b n v d_e, k=b n -> log_prob=b",
        r"'d_e' in 'b n v d_e' is not an axis of this symbol \(its axes: v, n\)",
    ),
    "duplicate argument": ("y=b n v, y=b n v, k=b n -> log_prob=b", r"argument 'y' is laid out twice"),
    "two arrows": (
        "y=b n v -> k=b n -> log_prob=b",
        r"found 'y=b n v -> k=b n -> log_prob=b' \(no single '->'\)",
    ),
    "entry without '='": ("y, k=b n -> log_prob=b", r"entry 'y' is not 'argument=axes' or 'argument:axis'"),
    "argument the target lacks": ("y=b n v, k=b n, z=n -> log_prob=b", r"has no parameter 'z' \(y, k\)"),
    "symbol the equation lacks": (
        "y=b n v, k:Q=b n -> log_prob=b",
        r"'Q' is not a symbol of lm.chain_rule \(Y, k\)",
    ),
    "output the equation lacks": (
        "y=b n v, k=b n -> loss=b",
        r"'loss' is not an output of lm.chain_rule \(log_prob, prob\)",
    ),
}


@pytest.mark.parametrize("case", list(BAD_LAYOUTS))
def test_malformed_layout_strings(user, capsys, case):
    layout, sentence = BAD_LAYOUTS[case]
    code, out, err = cli(
        capsys,
        "audit",
        f"{user / 'user.py'}:chain",
        "--as",
        "lm.chain_rule",
        "--layout",
        layout,
        "-p",
        "quick",
    )
    assert_usage_error(
        code, out, err, r"^lmspec: error: .*user\.py:chain cannot be held to lm\.chain_rule: layout of "
    )
    assert re.search(sentence, err), err


def test_the_correct_layout_passes(user, capsys):
    code, out, err = cli(
        capsys,
        "audit",
        f"{user / 'user.py'}:chain",
        "--as",
        "lm.chain_rule",
        "--layout",
        CHAIN_LAYOUT,
        "-p",
        "quick",
    )
    assert code == 0, out + err


TARGETS = {
    "a module that does not import": (
        "no_such_module:f",
        r"cannot audit 'no_such_module:f': importing no_such_module raised ModuleNotFoundError: "
        r"No module named 'no_such_module'",
    ),
    "a file with a syntax error": (
        "{dir}/syntax.py:f",
        r"cannot audit '.*syntax\.py:f': importing .*syntax\.py raised SyntaxError: "
        r"invalid syntax \(syntax\.py, line 1\)",
    ),
    "a module attribute that is not callable": (
        "math:pi",
        r"cannot audit 'math:pi': pi is a float, not callable",
    ),
    "nothing after ':'": ("math:", r"cannot audit 'math:': nothing after ':' names the callable"),
}


@pytest.mark.parametrize("case", list(TARGETS))
def test_audit_targets_that_cannot_be_loaded(user, capsys, case):
    target, sentence = TARGETS[case]
    code, out, err = cli(capsys, "audit", target.format(dir=user), "--as", "lm.softmax")
    assert_usage_error(code, out, err, "^lmspec: error: " + sentence)


def test_a_target_that_raises_in_the_middle_of_the_audit_fails_with_its_message(user, capsys, tmp_path):
    # not a usage error: the target loaded and bound, then raised; the check it raised in fails (exit 1)
    report = tmp_path / "r.json"
    code, out, err = cli(
        capsys, "audit", f"{user / 'user.py'}:flaky", "--as", "attention.scaled_dot_product",
        "--layout", SDP_LAYOUT, "--mask", "bool_keep", "-p", "quick", "--json", str(report),
    )  # fmt: skip
    assert code == 1, out + err
    assert "Traceback" not in out + err
    assert "raised RuntimeError: device lost (simulated)" in out
    doc = json.loads(report.read_text())["reports"][0]
    assert doc["verdict"] == "fail"
    failed = [c for c in doc["checks"] if c["status"] == "fail"]
    # every failing check names the target (fixed: the value checks said "impl raised …")
    assert failed and all(
        "flaky raised RuntimeError: device lost (simulated)" in c["message"] for c in failed
    )
    assert doc["checks"][0]["name"] == "shape" and doc["checks"][0]["examples"] >= 1  # first calls succeeded


BAD_OPTIONS = {
    "verify --jobs -1": (
        ["verify", "lm.softmax", "--jobs", "-1"],
        r"--jobs must be 0 \(one per core\) or a positive integer, found -1",
    ),
    "verify --seeds 0": (["verify", "lm.softmax", "--seeds", "0"], r"--seeds must be at least 1, found 0"),
    "verify --shard 3/2": (
        ["verify", "lm.softmax", "--shard", "3/2"],
        r"--shard takes i/n with 1 ≤ i ≤ n \(e\.g\. 2/4\), found '3/2'",
    ),
    "verify --shard 0/2": (["verify", "lm.softmax", "--shard", "0/2"], r"--shard takes i/n .* found '0/2'"),
    "verify --shard x": (["verify", "lm.softmax", "--shard", "x"], r"--shard takes i/n .* found 'x'"),
    "verify --jobs two": (
        ["verify", "lm.softmax", "--jobs", "two"],
        r"Invalid value for '--jobs' / '-j': .*valid integer",
    ),
    "audit --seed -1": (
        ["audit", "torch.nn.LayerNorm", "--seed", "-1"],
        r"--seed must be a non-negative integer, found -1",
    ),
}


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_bad_option_values(capsys, case):
    args, sentence = BAD_OPTIONS[case]
    assert_usage_error(*cli(capsys, *args), "^lmspec: error: .*" + sentence)


def run(*args, cwd=None):
    """The console entry point in a fresh interpreter (a fresh hash seed), as a user runs it."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; from lmspec.verify.cli import main; sys.exit(main())", *args],
        capture_output=True, text=True, timeout=300, cwd=cwd,
    )  # fmt: skip


def test_in_a_fresh_process_a_bad_layout_is_one_sentence_and_no_traceback(user):
    res = run(
        "audit",
        "user.py:chain",
        "--as",
        "lm.chain_rule",
        "--layout",
        "y=b ... n v, k=b n -> log_prob=b",
        cwd=user,
    )
    assert res.returncode == 2
    assert "Traceback" not in res.stdout + res.stderr
    assert res.stderr.startswith("lmspec: error: user.py:chain cannot be held to lm.chain_rule: layout of ")
    assert len(res.stderr.strip().splitlines()) == 1


# --- the same seed, the same bytes -------------------------------------------------------------------
def test_verify_json_is_byte_identical_for_a_seed_over_a_family(tmp_path, capsys):
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    for path in paths:
        assert main(["verify", "norm", "-p", "quick", "--seed", "11", "--json", str(path)]) == 0
    capsys.readouterr()
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert json.loads(paths[0].read_text())["summary"]["failed"] == 0


def test_audit_json_is_byte_identical_across_processes_for_a_file_target(user):
    # fixed: the module of a file target was named by hash(), salted per process, and the name appears in
    # the report's binding messages; it is now the file's stem and a checksum of its path
    reports = []
    for name in ("a.json", "b.json"):
        res = run(
            "audit", "user.py:chain", "--as", "lm.chain_rule", "--layout", "y=b n w, k=b n -> log_prob=b",
            "--seed", "2", "-p", "quick", "--json", name, cwd=user,
        )  # fmt: skip
        assert res.returncode == 2, res.stderr
        reports.append((user / name).read_bytes())
    assert reports[0] == reports[1]
    assert "layout of user.py:chain" in reports[0].decode()  # the user's own name, not the module's
    assert "lmspec_audit_" not in reports[0].decode()


def test_audit_json_of_a_builtin_is_byte_identical_for_a_seed(tmp_path, capsys):
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    for path in paths:
        assert main(["audit", "torch.nn.LayerNorm", "-p", "quick", "--seed", "9", "--json", str(path)]) == 0
    capsys.readouterr()
    assert paths[0].read_bytes() == paths[1].read_bytes()
