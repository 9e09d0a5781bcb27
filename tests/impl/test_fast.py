"""impl/fast.py: the fast path computes what the readable functions compute (random inputs at distinct sizes,
masks with fully masked rows, every declared variant), is registered beside them, and ``lmspec verify`` holds
it to the spec: its checks run with every verify, and a broken fast implementation fails them."""

import gc
import math

import pytest
import torch
from jaxtyping import Float
from torch import Tensor

from lmspec import impl, spec
from lmspec.impl import _registry, attention, bert, fast, gpt2, norm, transformer
from lmspec.verify.runner import PROFILES, checks_for, run_check, verify
from lmspec.verify.targets import ImplTarget

F64 = torch.float64
# distinct sizes per axis, so that a swapped axis cannot pass
B, n, d_e, M, d_k, d_v, d_f, L = 2, 5, 7, 3, 11, 13, 17, 2
FAST = {
    "attention.scaled_dot_product": fast.scaled_dot_product,
    "attention.multi_head": fast.multi_head,
    "norm.layer_norm": fast.layer_norm,
    "transformer.block_pre_ln": fast.block_pre_ln,
    "transformer.block_post_ln": fast.block_post_ln,
    "gpt2.forward": fast.gpt2_forward,
    "bert.input": fast.bert_input,
    "bert.encoder": fast.bert_encoder,
}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(gen: torch.Generator, *shape: int, dtype=F64) -> Tensor:
    return torch.randn(*shape, generator=gen, dtype=dtype)


def _mha(gen: torch.Generator, dtype=F64) -> dict[str, Tensor]:
    return {
        "W_Q": _randn(gen, M, d_e, d_k, dtype=dtype), "b_Q": _randn(gen, M, d_k, dtype=dtype),
        "W_K": _randn(gen, M, d_e, d_k, dtype=dtype), "b_K": _randn(gen, M, d_k, dtype=dtype),
        "W_V": _randn(gen, M, d_e, d_v, dtype=dtype), "b_V": _randn(gen, M, d_v, dtype=dtype),
        "W_O": _randn(gen, M * d_v, d_e, dtype=dtype), "b_O": _randn(gen, d_e, dtype=dtype),
    }  # fmt: skip


def _block(gen: torch.Generator, *lead: int) -> dict[str, Tensor]:
    """One block's parameters (or L blocks', stacked on a leading axis: ``lead = (L,)``)."""
    shapes = {
        "W_Q": (M, d_e, d_k), "b_Q": (M, d_k), "W_K": (M, d_e, d_k), "b_K": (M, d_k), "W_V": (M, d_e, d_v),
        "b_V": (M, d_v), "W_O": (M * d_v, d_e), "b_O": (d_e,), "alpha_1": (d_e,), "beta_1": (d_e,),
        "alpha_2": (d_e,), "beta_2": (d_e,), "W_1": (d_f, d_e), "b_1": (d_f,), "W_2": (d_e, d_f),
        "b_2": (d_e,),
    }  # fmt: skip
    return {name: _randn(gen, *lead, *shape) for name, shape in shapes.items()}


def _mask(*lead: int) -> Tensor:
    """Causal, with row 1 fully masked and one more −∞ below the diagonal: (*lead, n, n)."""
    S = attention.causal_mask(n, dtype=F64).clone()
    S[1, :] = -math.inf
    S[3, 0] = -math.inf
    return S.expand(*lead, n, n)


# --- the registry --------------------------------------------------------------------------------------
def test_every_fast_function_is_registered_beside_the_readable_one():
    for eq_id, fn in FAST.items():
        named = impl.implementations_of(eq_id)
        assert list(named) == ["readable", "fast"]
        assert named["fast"] is fn and impl.implementation(eq_id, "fast") is fn
        assert impl.implementation(eq_id) is named["readable"] is impl.implementations()[eq_id]
        assert fn.__lmspec_id__ == eq_id and fn.__lmspec_name__ == "fast"
        assert named["readable"].__lmspec_name__ == "readable"
        # the fast path declares the readable one's variants, with the same options
        assert fn.__lmspec_variants__ == named["readable"].__lmspec_variants__
    assert list(impl.implementations_of("lm.softmax")) == ["readable"]
    assert impl.implementations_of("nothing.here") == {}


def test_the_registry_refuses_a_second_fast_path_and_a_bad_name():
    with pytest.raises(ValueError, match=r"^@implements\('attention.multi_head'\) \(name='fast'\) on "):
        _registry.implements("attention.multi_head", name="fast")(fast.multi_head)
    with pytest.raises(ValueError, match="a name is an identifier, as 'fast'"):
        _registry.implements("attention.multi_head", name="not one")
    unknown = (
        r"no implementation named 'slow' registered for 'attention.multi_head' \(named: readable, fast\)"
    )
    with pytest.raises(KeyError, match=unknown):
        impl.implementation("attention.multi_head", "slow")
    with pytest.raises(KeyError, match=r"no implementation registered for 'attention.none' \(known: "):
        impl.implementation("attention.none")


# --- the same values as the readable functions ---------------------------------------------------------
@pytest.mark.parametrize("masked", [False, True])
def test_attention_equals_the_readable_one(masked):
    gen = _gen(1)
    S = _mask(B) if masked else None
    Q, K, V = _randn(gen, B, n, d_k), _randn(gen, B, n, d_k), _randn(gen, B, n, d_v)
    torch.testing.assert_close(
        fast.scaled_dot_product(Q, K, V, S), attention.scaled_dot_product(Q, K, V, S), rtol=1e-12, atol=1e-12
    )
    H, p = _randn(gen, B, n, d_e), _mha(gen)
    torch.testing.assert_close(
        fast.multi_head(H, **p, S=S), attention.multi_head(H, **p, S=S), rtol=1e-12, atol=1e-12
    )


def test_a_fully_masked_row_attends_to_nothing():
    """The spec's convention: zero weights, so the row of P is 0 and the row of A is b_O."""
    gen = _gen(2)
    Q, K, V = _randn(gen, n, d_k), _randn(gen, n, d_k), _randn(gen, n, d_v)
    P = fast.scaled_dot_product(Q, K, V, _mask())
    assert torch.equal(P[1], torch.zeros(d_v, dtype=F64))
    H, p = _randn(gen, B, n, d_e), _mha(gen)
    A = fast.multi_head(H, **p, S=_mask())  # one mask for both sequences
    assert torch.equal(A[:, 1], p["b_O"].expand(B, d_e))


def test_fully_masked_rows_are_zero_whatever_kernel_sdpa_picks(monkeypatch):
    """_attend zeroes a fully masked row itself: an SDPA that gives NaN there (a plain softmax of −∞, as
    some kernels do) changes nothing."""

    def plain(Q, K, V, attn_mask=None, is_causal=False):
        scores = Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1])
        if attn_mask is not None:
            scores = scores + attn_mask
        return torch.softmax(scores, dim=-1) @ V  # NaN on a row of −∞

    gen = _gen(3)
    H, p = _randn(gen, B, n, d_e), _mha(gen)
    want = attention.multi_head(H, **p, S=_mask())
    monkeypatch.setattr(fast.functional, "scaled_dot_product_attention", plain)
    got = fast.multi_head(H, **p, S=_mask())
    assert not got.isnan().any()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_float32_fully_masked_rows_are_zero_not_nan():
    gen = _gen(4)
    H, p = _randn(gen, B, n, d_e, dtype=torch.float32), _mha(gen, torch.float32)
    A = fast.multi_head(H, **p, S=_mask().float())
    assert not A.isnan().any() and torch.equal(A[:, 1], p["b_O"].expand(B, d_e))


@pytest.mark.parametrize("eps", [0.0, 1e-5])
def test_layer_norm_equals_the_readable_one_constant_token_included(eps):
    gen = _gen(5)
    H = _randn(gen, B, n, d_e)
    H[0, 2] = 3.0  # a constant token: β at ε = 0 (the spec), not torch's 0/0
    alpha, beta = _randn(gen, d_e), _randn(gen, d_e)
    got = fast.layer_norm(H, alpha, beta, eps)
    assert not got.isnan().any()
    torch.testing.assert_close(got, norm.layer_norm(H, alpha, beta, eps), rtol=1e-12, atol=1e-12)
    if eps == 0:
        assert torch.equal(got[0, 2], beta)
    with pytest.raises(ValueError, match="layer_norm: eps must be ≥ 0, found -1.0"):
        fast.layer_norm(H, alpha, beta, -1.0)


@pytest.mark.parametrize("form", ["block_pre_ln", "block_post_ln"])
@pytest.mark.parametrize("eps", [0.0, 1e-5])
@pytest.mark.parametrize("activation", [None, "gelu", "gelu_tanh", "relu"])
@pytest.mark.parametrize("masked", [False, True])
def test_blocks_equal_the_readable_ones(form, eps, activation, masked):
    gen = _gen(6)
    H, p = _randn(gen, B, n, d_e), _block(gen)
    S = _mask() if masked else None
    options = {"eps": eps} | ({"activation": activation} if activation else {})
    got = getattr(fast, form)(H, S, **p, **options)
    want = getattr(transformer, form)(H, S, **p, **options)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh", "relu"])
def test_the_ffn_activation_is_in_place_only_where_autograd_records_nothing(activation):
    from lmspec.impl.activation import activation_function

    x = _randn(_gen(7), 5, 11)
    want = activation_function(activation)(x)
    y = x.clone()
    assert fast._activate(y, activation) is y and torch.equal(y, want)  # in place: no second tensor
    leaf = x.clone().requires_grad_(True)
    z = leaf * 1.0  # a product autograd records, as the FFN's addmm is under training
    out = fast._activate(z, activation)
    assert out is not z and torch.equal(out, want) and torch.equal(z, leaf)  # its input kept for backward
    (grad,) = torch.autograd.grad(out.sum(), leaf)
    (ref,) = torch.autograd.grad(activation_function(activation)(leaf).sum(), leaf)
    torch.testing.assert_close(grad, ref, rtol=0, atol=0)
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        fast._activate(x.clone(), "swish")


@pytest.mark.parametrize("eps", [0.0, 1e-5])
def test_gpt2_forward_equals_the_readable_one(eps):
    gen = _gen(7)
    v, n_max = 19, 8
    k = torch.randint(0, v, (B, n), generator=gen)
    params = {"E": _randn(gen, d_e, v), "Lambda": _randn(gen, d_e, n_max), **_block(gen, L)}
    params |= {"alpha_e": _randn(gen, d_e), "beta_e": _randn(gen, d_e)}
    torch.testing.assert_close(
        fast.gpt2_forward(k, **params, eps=eps), gpt2.forward(k, **params, eps=eps), rtol=1e-12, atol=1e-12
    )
    with pytest.raises(ValueError, match="gpt2: 0 cached \\+ 9 new tokens exceed n_max = 8"):
        fast.gpt2_forward(torch.zeros(B, 9, dtype=torch.long), **params)
    with pytest.raises(ValueError, match="gpt2"):
        fast.gpt2_forward(torch.full((B, n), v), **params)  # an id outside the vocabulary


@pytest.mark.parametrize("padding", ["none", "some", "a whole sequence"])
@pytest.mark.parametrize("eps", [0.0, 1e-12])
def test_bert_encoder_equals_the_readable_one(padding, eps):
    gen = _gen(8)
    X = _randn(gen, B, n, d_e)
    keep = torch.ones(B, n, dtype=torch.bool)
    if padding == "some":
        keep[0, 3:] = False
        keep[1, 1] = False
    elif padding == "a whole sequence":
        keep[1] = False  # every query of sequence 1 is fully masked
    p = _block(gen, L)
    got = fast.bert_encoder(X, keep, **p, eps=eps)
    torch.testing.assert_close(got, bert.encoder(X, keep, **p, eps=eps), rtol=1e-12, atol=1e-12)
    assert got.shape == (B, L, n, d_e)


@pytest.mark.parametrize("eps", [0.0, 1e-12])
def test_bert_input_equals_the_readable_one(eps):
    gen = _gen(13)
    v, n_max = 19, 8
    k, s = torch.randint(0, v, (B, n), generator=gen), torch.randint(0, 2, (B, n), generator=gen)
    params = {"E": _randn(gen, d_e, v), "Lambda": _randn(gen, d_e, n_max), "G": _randn(gen, d_e, 2)}
    params |= {"alpha_e": _randn(gen, d_e), "beta_e": _randn(gen, d_e)}
    got = fast.bert_input(k, s, **params, eps=eps)
    torch.testing.assert_close(got, bert.embed(k, s, **params, eps=eps), rtol=1e-12, atol=1e-12)
    assert got.shape == (B, n, d_e)
    with pytest.raises(ValueError, match="embed: the sequence has n = 9 tokens, more than n_max = 8"):
        fast.bert_input(torch.zeros(B, 9, dtype=torch.long), torch.zeros(B, 9, dtype=torch.long), **params)
    with pytest.raises(ValueError, match="embed"):
        fast.bert_input(torch.full((B, n), v), s, **params)  # an id outside the vocabulary
    with pytest.raises(ValueError, match="segment ids s"):
        fast.bert_input(k, torch.full((B, n), 2), **params)


@pytest.mark.parametrize("eps", [0.0, 1e-12])
def test_bert_encoder_under_autograd_gives_the_readable_ones_values_and_gradients(eps):
    """Without autograd the blocks write into the states' slots (an op with no derivative); with it they
    are stacked, and the gradients are the readable encoder's."""
    gen = _gen(14)
    keep = torch.ones(B, n, dtype=torch.bool)
    keep[0, 3:] = False
    X, p = _randn(gen, B, n, d_e), _block(gen, L)
    grads = []
    for encode in (fast.bert_encoder, bert.encoder):
        leaves = {name: t.clone().requires_grad_() for name, t in {"X": X, **p}.items()}
        states = encode(leaves["X"], keep, **{name: leaves[name] for name in p}, eps=eps)
        (states * torch.arange(states.numel(), dtype=F64).reshape(states.shape).sin()).sum().backward()
        grads.append((states.detach(), {name: t.grad for name, t in leaves.items()}))
    (got, got_grad), (want, want_grad) = grads
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert got_grad.keys() == want_grad.keys()
    for name, g in got_grad.items():
        torch.testing.assert_close(g, want_grad[name], rtol=1e-10, atol=1e-10, msg=name)
    with torch.no_grad():  # the same inputs, no autograd: the slots
        torch.testing.assert_close(fast.bert_encoder(X, keep, **p, eps=eps), want, rtol=1e-12, atol=1e-12)


def test_the_models_fast_path_gives_the_readable_models_values():
    torch.manual_seed(9)
    readable = gpt2.GPT2(v=23, n_max=16, d_e=12, M=3, L=2).double()
    quick = gpt2.GPT2(v=23, n_max=16, d_e=12, M=3, L=2, fast=True).double()
    quick.load_state_dict(readable.state_dict())
    k = torch.randint(0, 23, (B, 6), generator=_gen(10))
    (want, want_cache), (got, got_cache) = readable(k), quick(k)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for a, b in zip(got_cache, want_cache, strict=True):  # the key-value cache of every block
        torch.testing.assert_close(a.K, b.K), torch.testing.assert_close(a.V, b.V)
    # generation: one token at a time and a chunk of three, after the cache
    assert torch.equal(quick.generate(k, 5), readable.generate(k, 5))
    more = torch.randint(0, 23, (B, 3), generator=_gen(11))
    torch.testing.assert_close(quick(more, past=got_cache)[0], readable(more, past=want_cache)[0])
    bert_readable = bert.BERT(v=29, n_max=16, d_e=12, M=3, L=2).double()
    bert_quick = bert.BERT(v=29, n_max=16, d_e=12, M=3, L=2, fast=True).double()
    bert_quick.load_state_dict(bert_readable.state_dict())
    keep = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    k = torch.randint(0, 29, (B, 6), generator=_gen(12))
    for got_t, want_t in zip(bert_quick(k, keep=keep), bert_readable(k, keep=keep), strict=True):
        torch.testing.assert_close(got_t, want_t, rtol=1e-12, atol=1e-12)


# --- the wide projections and their cache ---------------------------------------------------------------
def _projection_params(gen: torch.Generator, *lead: int) -> tuple[Tensor, ...]:
    p = _block(gen, *lead)
    return tuple(p[name] for name in ("W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V"))


def test_the_wide_projection_is_the_heads_side_by_side():
    """Column block m of W_Q's part is W_Q^{(m)}, then W_K's heads, then W_V's: hand-indexed."""
    W_Q, b_Q, W_K, b_K, W_V, b_V = _projection_params(_gen(20), L)
    W, b = fast.projections(W_Q, b_Q, W_K, b_K, W_V, b_V)
    assert W.shape == (L, d_e, 2 * M * d_k + M * d_v) and b.shape == (L, 2 * M * d_k + M * d_v)
    for l in range(L):
        for m in range(M):
            assert torch.equal(W[l, :, m * d_k : (m + 1) * d_k], W_Q[l, m])
            assert torch.equal(W[l, :, (M + m) * d_k : (M + m + 1) * d_k], W_K[l, m])
            assert torch.equal(W[l, :, 2 * M * d_k + m * d_v : 2 * M * d_k + (m + 1) * d_v], W_V[l, m])
            assert torch.equal(b[l, 2 * M * d_k + m * d_v : 2 * M * d_k + (m + 1) * d_v], b_V[l, m])
        assert torch.equal(b[l, : M * d_k], b_Q[l].flatten())


def test_the_projection_cache_is_reused_and_never_stale():
    params = _projection_params(_gen(21), L)
    W, b = fast.projections(*params)
    again = fast.projections(*params)
    assert again[0] is W and again[1] is b  # the same parameters, unchanged: the cached copy
    W_Q, b_Q, W_K, b_K, W_V, b_V = params
    writes = [
        lambda: W_Q.add_(1),  # in place, the whole tensor
        lambda: W_K[1, 2].mul_(-2),  # through a view
        lambda: b_V.copy_(torch.ones_like(b_V)),
        lambda: b_Q[0].zero_(),
    ]
    for write in writes:
        with torch.no_grad():
            write()
        fresh = fast.projections(*params)
        assert fresh[0] is not W
        torch.testing.assert_close(fresh, fast._widen(*params), rtol=0, atol=0)
        W, b = fresh
    # a clone, equal in value, is another tensor: another key
    other = (W_Q, b_Q, W_K.clone(), b_K, W_V, b_V)
    assert fast.projections(*other)[0] is not W
    # a tensor whose storage is replaced (as Module.to and .double() do) is a miss, not a stale hit
    before = fast.projections(*params)[0]
    W_V.data = W_V.data.clone()
    assert fast.projections(*params)[0] is not before


def test_the_projection_cache_forgets_the_parameters_that_are_gone():
    params = _projection_params(_gen(22))
    slot = id(params[0])
    fast.projections(*params)
    assert slot in fast.projections._entries
    del params
    gc.collect()
    assert slot not in fast.projections._entries


def test_the_projection_cache_keeps_no_inference_tensor_and_can_be_cleared():
    """Inference tensors have no version counter to key on: built afresh each call, and right."""
    with torch.inference_mode():
        params = _projection_params(_gen(26))
        first = fast.projections(*params)
        params[0].add_(1)
        second = fast.projections(*params)
        torch.testing.assert_close(second, fast._widen(*params), rtol=0, atol=0)
    assert first[0] is not second[0] and id(params[0]) not in fast.projections._entries
    kept = _projection_params(_gen(27))
    fast.projections(*kept)
    fast.projections.clear()
    assert fast.projections._entries == {}


def test_the_projection_cache_is_bypassed_where_autograd_records():
    params = tuple(t.requires_grad_() for t in _projection_params(_gen(23), L))
    with torch.no_grad():
        cached, _ = fast.projections(*params)
    assert not cached.requires_grad
    W, b = fast.projections(*params)  # grad mode: in the graph, not the cached copy
    assert W is not cached and W.requires_grad and b.requires_grad
    W.sum().backward()
    assert all(t.grad is not None for t in params[0::2])  # every weight gets its gradient


def test_the_fast_bert_gives_fresh_values_and_right_gradients_after_its_parameters_change():
    """The model's forward uses the cache; an in-place change of a parameter (under no_grad, or an
    optimizer's step) shows in the next forward; a forward under autograd trains the per-head parameters
    exactly as the readable model does."""
    torch.manual_seed(24)
    readable = bert.BERT(v=29, n_max=16, d_e=12, M=3, L=2).double()
    quick = bert.BERT(v=29, n_max=16, d_e=12, M=3, L=2, fast=True).double()
    quick.load_state_dict(readable.state_dict())
    # the model stores the spec's per-head parameters, and nothing else
    assert quick.state_dict().keys() == readable.state_dict().keys()
    k = torch.randint(0, 29, (B, 6), generator=_gen(25))

    def agree() -> None:
        with torch.no_grad():
            for got, want in zip(quick(k), readable(k), strict=True):
                torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)

    agree()
    for model in (quick, readable):
        with torch.no_grad():
            model.W_Q.add_(1), model.W_V[1, 0].mul_(3), model.b_K.add_(0.5)
    agree()
    readable.load_state_dict(bert.BERT(v=29, n_max=16, d_e=12, M=3, L=2).double().state_dict())
    quick.load_state_dict(readable.state_dict())
    agree()
    for model in (quick, readable):  # one step of training, the gradients through the autograd path
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        model(k).states.sin().sum().backward()
        optimizer.step()
    for name in ("W_Q", "W_K", "W_V", "b_Q", "b_K", "b_V"):
        torch.testing.assert_close(getattr(quick, name).grad, getattr(readable, name).grad, msg=name)
    agree()  # after the optimizer's in-place step


# --- lmspec verify holds it to the spec ----------------------------------------------------------------
def test_verify_plans_the_fast_paths_checks_beside_the_readable_ones():
    names = [c.name for c in checks_for(spec.get("attention.multi_head"), PROFILES["quick"], 0)]
    assert names[:3] == ["impl=oracle", "generated=oracle", "impl=generated"]
    assert {"impl[fast]=oracle", "impl[fast]=generated", "property[fast]:causal",
            "property[fast]:heads_concat"} <= set(names)  # fmt: skip
    assert names.count("generated=oracle") == 1  # no implementation in it: it runs once
    # a variant is checked on the fast path where it declares the variant
    variant = [c.name for c in checks_for(spec.get("gpt2.forward[eps]"), PROFILES["quick"], 0)]
    assert "impl[fast]=oracle" in variant
    assert not any("fast" in c.name for c in checks_for(spec.get("lm.softmax"), PROFILES["quick"], 0))
    # an audit (a target given) checks that target only
    eq = spec.get("attention.multi_head")
    audited = checks_for(eq, PROFILES["quick"], 0, ImplTarget(eq, fast.multi_head, name="mine"))
    assert [c.name for c in audited] == [name for name in names if "[fast]" not in name]


@pytest.mark.parametrize("eq_id", ["attention.multi_head", "bert.input[eps]", "bert.encoder[eps]"])
def test_the_fast_path_passes_the_verifier(eq_id):
    eq = spec.get(eq_id)
    fast_checks = [c for c in checks_for(eq, PROFILES["quick"], 0) if "[fast]" in c.name]
    results = [run_check(c, PROFILES["quick"], 0) for c in fast_checks]
    assert results and all(r.passed for r in results), [r.message for r in results if not r.passed]
    assert all(r.target == "impl[fast]" for r in results)


def _ignores_the_mask(
    H: Float[Tensor, "*batch n d_e"],
    W_Q: Float[Tensor, "M d_e d_k"],
    b_Q: Float[Tensor, "M d_k"],
    W_K: Float[Tensor, "M d_e d_k"],
    b_K: Float[Tensor, "M d_k"],
    W_V: Float[Tensor, "M d_e d_v"],
    b_V: Float[Tensor, "M d_v"],
    W_O: Float[Tensor, "M*d_v d_e"],
    b_O: Float[Tensor, " d_e"],
    S: Float[Tensor, "*#batch n n"] | None = None,
) -> Float[Tensor, "*batch n d_e"]:
    """A broken fast path: multi-head attention that never applies S."""
    return fast.multi_head(H, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O, S=None)


def test_a_broken_fast_path_fails_verify_while_the_readable_one_passes(monkeypatch):
    monkeypatch.setitem(_registry._NAMED["attention.multi_head"], "fast", _ignores_the_mask)
    results = verify([spec.get("attention.multi_head")], "quick", 0)
    failed = {r.check for r in results if not r.passed}
    assert {"impl[fast]=oracle", "impl[fast]=generated", "property[fast]:causal"} <= failed
    assert not any("fast" not in check for check in failed)  # the readable one still passes
    message = next(r.message for r in results if r.check == "impl[fast]=oracle")
    assert message.startswith("impl[fast]: ")


def test_a_fast_path_that_cannot_bind_is_a_failed_check(monkeypatch):
    def unannotated(H, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O, S=None):
        return fast.multi_head(H, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O, S=S)

    monkeypatch.setitem(_registry._NAMED["attention.multi_head"], "fast", unannotated)
    checks = [
        c for c in checks_for(spec.get("attention.multi_head"), PROFILES["quick"], 0) if "fast" in c.name
    ]
    assert [c.name for c in checks] == ["impl[fast]=oracle"]
    r = run_check(checks[0], PROFILES["quick"], 0)
    assert not r.passed and "cannot bind the implementation impl[fast]" in r.message
