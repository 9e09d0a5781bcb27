"""impl/ attention: hand-derivable values with distinct sizes, runtime shape checks, the module."""

import math

import pytest
import torch
from jaxtyping import TypeCheckError

from lmspec import impl
from lmspec.impl.attention import (
    MultiHeadAttention,
    causal_mask,
    cross,
    multi_head,
    padding_mask,
    projections,
    scaled_dot_product,
    softmax_rows,
)

torch.set_default_dtype(torch.float64)
# distinct sizes per axis, so that a swapped axis cannot pass
B, n, d_e, M, d_k, d_v = 2, 5, 7, 3, 11, 13


def test_softmax_rows_hand_values():
    Z = torch.log(torch.tensor([[1.0, 2.0, 3.0], [1.0, 1.0, 2.0], [4.0, 0.0, 0.0]]))
    Y = softmax_rows(Z)
    expected = torch.tensor([[1 / 6, 2 / 6, 3 / 6], [1 / 4, 1 / 4, 2 / 4], [1.0, 0.0, 0.0]])
    torch.testing.assert_close(Y, expected, rtol=0, atol=1e-15)


def test_fully_masked_row_gets_zero_weights():
    Z = torch.tensor([[-math.inf, -math.inf], [0.0, -math.inf]])
    assert softmax_rows(Z).tolist() == [[0.0, 0.0], [1.0, 0.0]]


def test_causal_mask_values():
    assert causal_mask(3).tolist() == [[0, -math.inf, -math.inf], [0, 0, -math.inf], [0, 0, 0]]
    assert causal_mask(1).tolist() == [[0.0]]


def test_padding_mask_masks_padded_key_columns_for_every_query():
    keep = torch.tensor([[True, False, True], [True, True, False]])
    S = padding_mask(keep, dtype=torch.float64)
    assert S.shape == (2, 3, 3)
    assert S[0].tolist() == [[0, -math.inf, 0]] * 3
    assert S[1].tolist() == [[0, 0, -math.inf]] * 3


def test_uniform_attention_averages_the_values():
    # Q = K = 0: every weight is 1/n, so each output row is the mean of V's rows ...
    V = torch.randn(B, n, d_v)
    zeros = torch.zeros(B, n, d_k)
    P = scaled_dot_product(zeros, zeros, V)
    torch.testing.assert_close(P, V.mean(dim=-2, keepdim=True).expand(B, n, d_v))
    # ... and with the causal mask, row i is the mean of rows 0..i
    P = scaled_dot_product(zeros, zeros, V, causal_mask(n, dtype=torch.float64))
    running = V.cumsum(dim=-2) / torch.arange(1, n + 1).unsqueeze(-1)
    torch.testing.assert_close(P, running)


def test_scaled_dot_product_is_scaled_by_root_d_k():
    # one key of score s against a key of score 0: weight e^{s/√d_k} / (1 + e^{s/√d_k})
    Q = torch.zeros(1, 2, 4)
    Q[0, 0, 0] = 2.0
    K = torch.zeros(1, 2, 4)
    K[0, 0, 0] = 3.0  # Q_0 · K_0 = 6, Q_0 · K_1 = 0
    V = torch.tensor([[[1.0], [0.0]]])
    P = scaled_dot_product(Q, K, V)
    w = math.exp(6 / 2) / (1 + math.exp(6 / 2))  # √d_k = 2
    assert P[0, 0, 0].item() == pytest.approx(w, abs=1e-15)


def test_projections_per_head():
    H = torch.randn(B, n, d_e)
    W_Q, W_K, W_V = torch.randn(M, d_e, d_k), torch.randn(M, d_e, d_k), torch.randn(M, d_e, d_v)
    b_Q, b_K, b_V = torch.randn(M, d_k), torch.randn(M, d_k), torch.randn(M, d_v)
    Q, K, V = projections(H, W_Q, b_Q, W_K, b_K, W_V, b_V)
    assert Q.shape == K.shape == (B, M, n, d_k) and V.shape == (B, M, n, d_v)
    torch.testing.assert_close(Q[1, 2], H[1] @ W_Q[2] + b_Q[2])
    torch.testing.assert_close(K[0, 1], H[0] @ W_K[1] + b_K[1])
    torch.testing.assert_close(V[1, 0], H[1] @ W_V[0] + b_V[0])


def _params():
    return dict(
        W_Q=torch.randn(M, d_e, d_k), b_Q=torch.randn(M, d_k),
        W_K=torch.randn(M, d_e, d_k), b_K=torch.randn(M, d_k),
        W_V=torch.randn(M, d_e, d_v), b_V=torch.randn(M, d_v),
        W_O=torch.randn(M * d_v, d_e), b_O=torch.randn(d_e),
    )  # fmt: skip


def test_multi_head_equals_heads_written_out():
    H = torch.randn(B, n, d_e)
    p = _params()
    S = causal_mask(n, dtype=torch.float64)
    A = multi_head(H, **p, S=S)
    heads = []
    for m in range(M):
        Q = H @ p["W_Q"][m] + p["b_Q"][m]
        K = H @ p["W_K"][m] + p["b_K"][m]
        V = H @ p["W_V"][m] + p["b_V"][m]
        w = torch.softmax(Q @ K.transpose(-1, -2) / math.sqrt(d_k) + S, dim=-1)
        heads.append(w @ V)
    expected = torch.cat(heads, dim=-1) @ p["W_O"] + p["b_O"]
    torch.testing.assert_close(A, expected)


def test_cross_attention_queries_from_decoder():
    n_d, n_e = 3, 6
    A = cross(torch.randn(B, n_d, d_e), torch.randn(B, n_e, d_e), **_params())
    assert A.shape == (B, n_d, d_e)


def test_runtime_checks_reject_a_wrong_shape():
    H = torch.randn(B, n, d_e)
    p = _params()
    p["W_O"] = torch.randn(M * d_v + 1, d_e)
    with pytest.raises(TypeCheckError, match="W_O"):
        multi_head(H, **p)


def test_runtime_checks_can_be_switched_off():
    Q = torch.randn(n, d_k)
    V = torch.randn(n + 1, d_v)  # n mismatched: caught when checking is on
    with pytest.raises(TypeCheckError):
        scaled_dot_product(Q, Q, V)
    with impl.runtime_checks(False):
        assert not impl.runtime_checks_enabled()
        with pytest.raises(RuntimeError):  # torch's own matmul error, not jaxtyping's
            scaled_dot_product(Q, Q, V)
    assert impl.runtime_checks_enabled()


def test_module_holds_spec_oriented_parameters_and_calls_the_functional_core():
    torch.manual_seed(0)
    mha = MultiHeadAttention(d_e=12, M=3)
    params = mha.spec_params()
    assert params["W_Q"].shape == (3, 12, 4) and params["W_O"].shape == (12, 12)
    assert sum(p.numel() for p in params.values()) == sum(p.numel() for p in mha.parameters())
    H = torch.randn(B, n, 12)
    torch.testing.assert_close(mha(H), multi_head(H, **params))


def test_module_rejects_bad_sizes():
    with pytest.raises(ValueError, match="d_k = d_e // M must be positive, found d_e=2, M=3"):
        MultiHeadAttention(d_e=2, M=3)


def test_registry():
    assert impl.implementation("attention.multi_head") is multi_head
    assert multi_head.__lmspec_id__ == "attention.multi_head"
    with pytest.raises(KeyError, match="no implementation registered for 'attention.none'"):
        impl.implementation("attention.none")
    with pytest.raises(ValueError, match="already implemented by lmspec.impl.attention.multi_head"):
        impl.implements("attention.multi_head")(lambda H: H)
