"""impl/ GPT-2: hand-derived values, the model (key-value cache, causality, generation, parameter count),
a cross-check against Hugging Face's GPT2LMHeadModel, and wrong implementations the verifier catches."""

import math

import numpy as np
import pytest
import torch
from jaxtyping import Float, Int, TypeCheckError
from torch import Tensor

from lmspec import impl, spec
from lmspec.impl._registry import checked
from lmspec.impl.attention import causal_mask
from lmspec.impl.gpt2 import GPT2, block, decode, forward, lm_head, loss, next_token
from lmspec.impl.transformer import BLOCK_PARAMS, block_pre_ln, input_, stack
from lmspec.verify.oracle import concrete_shape
from lmspec.verify.runner import Profile, checks_for, run_check, verify
from lmspec.verify.strategies import seeded_tensor
from lmspec.verify.targets import GeneratedTarget, ImplTarget

torch.set_default_dtype(torch.float64)
# distinct sizes per axis, so that a swapped axis cannot pass (d_k = d_e / M = 4 in the model)
B, n, v, n_max, d_e, M, L, d_f = 2, 5, 11, 13, 12, 3, 2, 7


@pytest.fixture
def model() -> GPT2:
    torch.manual_seed(0)
    gpt = GPT2(v, n_max, d_e, M, L, d_f, std=0.5)  # a large init: outputs far from uniform
    with torch.no_grad():
        for p in gpt.parameters():
            p.add_(torch.randn_like(p) * 0.3)  # no LN is the identity, no bias is zero
    return gpt


def _tokens(seed: int = 1, length: int = n) -> Tensor:
    return torch.randint(0, v, (B, length), generator=torch.Generator().manual_seed(seed))


# --- hand-derived values --------------------------------------------------------------------------------
def test_lm_head_hand_values():
    # E = [[1, 0, 0], [0, 1, 1]] (d_e = 2, v = 3), h = (0, ln 2): logits (0, ln 2, ln 2) → (1/5, 2/5, 2/5)
    E = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    Y = lm_head(torch.tensor([[0.0, math.log(2)], [0.0, 0.0]]), E)
    torch.testing.assert_close(Y, torch.tensor([[0.2, 0.4, 0.4], [1 / 3, 1 / 3, 1 / 3]]), rtol=0, atol=1e-15)


def test_loss_scores_each_position_on_the_next_token():
    # rows are positions: 𝓛 = −log Ŷ[0, k_2] − log Ŷ[1, k_3]; the last row and k_1 are never used
    Y = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [0.0, 0.0, 1.0]])
    k = torch.tensor([2, 0, 1])
    assert loss(Y, k).item() == pytest.approx(-math.log(0.5) - math.log(0.8), abs=1e-15)
    assert loss(Y[:1], k[:1]).item() == 0.0  # n = 1: nothing to predict
    assert loss(Y.expand(B, 3, 3), k.expand(B, 3)).shape == (B,)


def test_next_token_ties_go_to_the_lowest_index_and_top_k_keeps_ties():
    E = torch.tensor([[1.0, 3.0, 3.0, 0.0, 2.0]])  # d_e = 1: logits z = E_{0,:} h
    H = torch.tensor([[[9.0], [1.0]]])  # the last token's state is h = 1
    k_hat, p = next_token(H, E, 0.5, 2)
    assert k_hat.tolist() == [1]
    torch.testing.assert_close(p, torch.tensor([[0.0, 0.5, 0.5, 0.0, 0.0]]))
    _, p = next_token(H, E, 1 / math.log(2), 3)  # weights ∝ (2, 2, 1) on the three largest
    torch.testing.assert_close(p, torch.tensor([[0.0, 0.4, 0.4, 0.0, 0.2]]))


# --- the functional forward pass ---------------------------------------------------------------------------
def test_forward_is_the_transformer_stack_with_a_final_norm(model):
    """gpt2.forward (with its key-value cache code) against impl.transformer's own input and stack."""
    p = model.spec_params()
    blocks = {name: p[name] for name in BLOCK_PARAMS}
    k = _tokens()
    for eps in (0.0, 1e-5):
        H = forward(k, **p, eps=eps)
        S = causal_mask(n, dtype=H.dtype)
        want = stack(
            input_(k, p["E"], p["Lambda"]), S, **blocks, eps=eps, alpha_e=p["alpha_e"], beta_e=p["beta_e"]
        )
        torch.testing.assert_close(H, want, rtol=1e-12, atol=1e-12)


def test_block_without_cache_is_the_pre_ln_block(model):
    p = model.blocks[0].spec_params()
    H = torch.randn(B, n, d_e)
    got, kv = block(H, p, eps=1e-5)
    torch.testing.assert_close(got, block_pre_ln(H, causal_mask(n, dtype=H.dtype), **p, eps=1e-5))
    assert kv.K.shape == (B, M, n, d_e // M) and kv.V.shape == (B, M, n, d_e // M)


def test_runtime_checks_name_the_wrong_argument(model):
    p = model.spec_params()
    p["Lambda"] = torch.randn(d_e + 1, n_max)
    with pytest.raises(TypeCheckError, match="Lambda"):
        forward(_tokens(), **p)


def test_too_many_tokens_for_the_positions_is_an_error(model):
    with pytest.raises(ValueError, match=r"gpt2: 0 cached \+ 14 new tokens exceed n_max = 13 positions"):
        model(_tokens(length=n_max + 1))
    _, cache = model(_tokens(length=n_max))
    with pytest.raises(ValueError, match=r"gpt2: 13 cached \+ 1 new tokens exceed n_max = 13"):
        model(_tokens(length=1), past=cache)


# --- the model -------------------------------------------------------------------------------------------
def test_model_forward_is_the_tied_head_on_the_functional_forward(model):
    k = _tokens()
    logits, cache = model(k)
    H = forward(k, **model.spec_params(), eps=model.eps)
    torch.testing.assert_close(logits, H @ model.E)
    torch.testing.assert_close(torch.softmax(logits, -1), lm_head(H, model.E))
    assert len(cache) == L and cache[0].K.shape == (B, M, n, d_e // M)


def test_cached_incremental_decoding_equals_the_full_forward_pass(model):
    k = _tokens(length=7)
    full, _ = model(k)
    logits, cache = model(k[:, :3])  # a prompt of three tokens, then one token at a time
    steps = [logits]
    for i in range(3, 7):
        logits, cache = model(k[:, i : i + 1], past=cache)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-12, atol=1e-12)
    assert cache[1].K.shape == (B, M, 7, d_e // M)
    _, cache = model(k[:, :4])  # a chunk of several new tokens after a cache
    chunk, _ = model(k[:, 4:], past=cache)
    torch.testing.assert_close(chunk, full[:, 4:], rtol=1e-12, atol=1e-12)


def test_logits_are_causal(model):
    k = _tokens()
    before, _ = model(k)
    for i in range(n):
        changed = k.clone()
        changed[:, i + 1 :] = (changed[:, i + 1 :] + 1) % v
        after, _ = model(changed)
        torch.testing.assert_close(after[:, : i + 1], before[:, : i + 1], rtol=0, atol=0)
        if i + 1 < n:
            assert not torch.allclose(after[:, i + 1 :], before[:, i + 1 :])


def test_loss_is_the_functional_loss_of_the_tied_head(model):
    k = _tokens()
    logits, _ = model(k)
    want = loss(torch.softmax(logits, dim=-1), k)
    torch.testing.assert_close(model.loss(k), want, rtol=1e-12, atol=1e-12)
    assert model.loss(k[:, :1]).tolist() == [0.0, 0.0]


def test_greedy_generation_is_deterministic_and_repeats_the_argmax(model):
    k = _tokens(length=3)
    out = model.generate(k, 6)
    assert out.shape == (B, 9) and torch.equal(out[:, :3], k)
    assert torch.equal(model.generate(k, 6), out)
    seq = k
    for _ in range(6):  # no cache: the full forward pass on the whole sequence each step
        logits, _ = model(seq)
        seq = torch.cat([seq, logits[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
    assert torch.equal(out, seq)
    assert torch.equal(model.generate(k, 0), k)


def test_sampling_is_reproducible_and_stays_in_the_top_k(model):
    k = _tokens(length=2)

    def draw(seed: int) -> Tensor:
        return model.generate(k, 8, temperature=1.3, top_k=3, generator=torch.Generator().manual_seed(seed))

    out = draw(5)
    assert torch.equal(out, draw(5))
    assert not all(torch.equal(out, draw(s)) for s in range(6, 12))
    for i in range(2, 10):
        logits, _ = model(out[:, :i])
        top3 = logits[:, -1].topk(3, dim=-1).indices
        assert (top3 == out[:, i : i + 1]).any(dim=-1).all()
    greedy = model.generate(k, 8)
    assert torch.equal(model.generate(k, 8, temperature=2.0, top_k=1, generator=torch.Generator()), greedy)


def test_sampling_distribution_is_the_spec_next_token_step(model):
    k = _tokens()
    logits, _ = model(k)
    H = forward(k, **model.spec_params(), eps=model.eps)
    k_hat, p = next_token(H, model.E, 0.7, 4)
    assert torch.equal(k_hat, logits[:, -1].argmax(dim=-1))
    top = torch.topk(logits[:, -1], 4).values[:, -1:]
    want = torch.softmax(logits[:, -1].masked_fill(logits[:, -1] < top, -math.inf) / 0.7, dim=-1)
    torch.testing.assert_close(p, want)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 12}, "2 tokens \\+ 12 steps exceed n_max = 13"),
        ({"steps": -1}, "steps must be non-negative, found -1"),
        ({"steps": 2, "temperature": 0.0}, "temperature must be positive, found 0.0"),
        ({"steps": 2, "temperature": 1.0, "top_k": 12}, "top_k must be in 1..v = 11, found 12"),
        ({"steps": 2, "top_k": 3}, "top_k needs a temperature"),
    ],
)
def test_generate_rejects_bad_arguments(model, kwargs, message):
    kwargs = dict(kwargs)
    steps = kwargs.pop("steps")
    with pytest.raises(ValueError, match=f"GPT2.generate: {message}"):
        model.generate(_tokens(length=2), steps, **kwargs)


def test_model_rejects_bad_sizes():
    with pytest.raises(ValueError, match="d_e must be a multiple of M .*found d_e=10, M=3"):
        GPT2(v, n_max, 10, 3, L)
    with pytest.raises(ValueError, match="L must be positive, found L=0"):
        GPT2(v, n_max, d_e, M, 0)


# --- parameter count ---------------------------------------------------------------------------------
def _formula(v: int, n_max: int, d_e: int, L: int, d_f: int) -> int:
    """params.gpt2 = L·block + v d_e + n_max d_e + 2 d_e, block = MHA + FFN + 2 LN (d_k = d_e / M)."""
    mha = 4 * d_e * d_e + 4 * d_e
    ffn = 2 * d_e * d_f + d_f + d_e
    return L * (mha + ffn + 2 * 2 * d_e) + v * d_e + n_max * d_e + 2 * d_e


def test_parameter_count_is_the_catalogue_formula(model):
    count = sum(p.numel() for p in model.parameters())
    assert count == _formula(v, n_max, d_e, L, d_f) == 2_030
    assert sum(p.numel() for p in model.spec_params().values()) == count  # the head adds nothing (tied)


def test_gpt2_small_has_124_439_808_parameters():
    with torch.device("meta"):  # shapes only: nothing is allocated
        small = GPT2(50257, 1024, 768, 12, 12)
    assert small.d_f == 3072
    assert sum(p.numel() for p in small.parameters()) == _formula(50257, 1024, 768, 12, 3072) == 124_439_808


# --- Hugging Face -------------------------------------------------------------------------------------
def _hugging_face(dtype: torch.dtype):
    import transformers  # the [hf] extra: a missing install fails these tests, it does not skip them

    transformers.logging.set_verbosity_error()
    config = transformers.GPT2Config(
        vocab_size=v, n_positions=n_max, n_embd=d_e, n_layer=L, n_head=M, n_inner=d_f,
        bos_token_id=None, eos_token_id=None, attn_implementation="eager",
    )  # fmt: skip
    torch.manual_seed(3)
    hf = transformers.GPT2LMHeadModel(config).to(dtype).eval()
    with torch.no_grad():
        for p in hf.parameters():  # random LN scales and biases too
            p.normal_(0.0, 0.5)
    return hf


def _from_hugging_face(hf) -> GPT2:
    """Copy a Hugging Face GPT-2 into GPT2: wte = Eᵀ, wpe = Λᵀ, Conv1D weights are in × out."""
    sd, cfg = hf.state_dict(), hf.config
    d_k = d_e // M
    ours = GPT2(cfg.vocab_size, cfg.n_positions, cfg.n_embd, cfg.n_head, cfg.n_layer, cfg.n_inner,
                eps=cfg.layer_norm_epsilon).to(hf.dtype)  # fmt: skip
    with torch.no_grad():
        ours.E.copy_(sd["transformer.wte.weight"].T)
        ours.Lambda.copy_(sd["transformer.wpe.weight"].T)
        for l, blk in enumerate(ours.blocks):
            at = f"transformer.h.{l}."
            W, b = sd[at + "attn.c_attn.weight"], sd[at + "attn.c_attn.bias"]  # [W_Q | W_K | W_V]
            for part, name in enumerate("QKV"):
                cols = slice(part * d_e, (part + 1) * d_e)  # heads side by side within each part
                getattr(blk.attn, f"W_{name}").copy_(W[:, cols].reshape(d_e, M, d_k).transpose(0, 1))
                getattr(blk.attn, f"b_{name}").copy_(b[cols].reshape(M, d_k))
            blk.attn.W_O.copy_(sd[at + "attn.c_proj.weight"])
            blk.attn.b_O.copy_(sd[at + "attn.c_proj.bias"])
            blk.ln_1.alpha.copy_(sd[at + "ln_1.weight"])
            blk.ln_1.beta.copy_(sd[at + "ln_1.bias"])
            blk.ln_2.alpha.copy_(sd[at + "ln_2.weight"])
            blk.ln_2.beta.copy_(sd[at + "ln_2.bias"])
            blk.ffn.W_1.copy_(sd[at + "mlp.c_fc.weight"].T)
            blk.ffn.b_1.copy_(sd[at + "mlp.c_fc.bias"])
            blk.ffn.W_2.copy_(sd[at + "mlp.c_proj.weight"].T)
            blk.ffn.b_2.copy_(sd[at + "mlp.c_proj.bias"])
        ours.ln_e.alpha.copy_(sd["transformer.ln_f.weight"])
        ours.ln_e.beta.copy_(sd["transformer.ln_f.bias"])
    return ours


@pytest.mark.parametrize(("dtype", "atol"), [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_logits_equal_hugging_face_gpt2(dtype, atol):
    hf = _hugging_face(dtype)
    ours = _from_hugging_face(hf)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in hf.parameters())
    k = _tokens(length=9)
    with torch.no_grad():
        want = hf(k).logits
        got, _ = ours(k)
    assert got.dtype == dtype
    torch.testing.assert_close(got, want, rtol=0, atol=atol)


def test_loss_and_greedy_generation_equal_hugging_face():
    hf = _hugging_face(torch.float64)
    ours = _from_hugging_face(hf)
    k = _tokens(length=4)
    with torch.no_grad():
        hf_loss = hf(k, labels=k).loss  # the mean over the n − 1 shifted predictions and the batch,
        # computed from logits cast to float32 (transformers' ForCausalLMLoss)
        mask = torch.ones_like(k)  # else generate takes the pad id's tokens for padding
        hf_out = hf.generate(k, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert ours.loss(k).mean().item() / 3 == pytest.approx(hf_loss.item(), rel=1e-6)
    assert torch.equal(ours.generate(k, 6), hf_out)


# --- the verifier ------------------------------------------------------------------------------------
def test_registry():
    assert impl.implementation("gpt2.forward") is forward
    assert impl.implementation("gpt2.generate") is next_token
    assert decode.__module__ == "lmspec.impl.gpt2"


def test_verifier_passes_on_the_gpt2_family():
    results = verify(spec.select(["gpt2"]), "quick", 0)
    failures = [f"{r.equation} {r.check}: {r.message}" for r in results if not r.passed]
    assert not failures
    # 4 equations: 12 comparisons and 7 properties (causal_large_scores among them), and the fast path of
    # gpt2.forward: 2 comparisons and its 3 properties
    assert len(results) == 24
    assert sum("[fast]" in r.check for r in results) == 5


def test_forward_binds_eps_to_the_eps_variant():
    """The keyword ``eps`` of impl.gpt2.forward is the scalar parameter ε of gpt2.forward[eps]."""
    eq = spec.get("gpt2.forward[eps]")
    target = ImplTarget(eq, forward)
    assert [a.dtype for a in target.binding.args if a.name == "eps"] == ["python float"]
    sizes = {"n": 4, "n_max": 6, "v": 7, "d_e": 5, "M": 2, "d_k": 3, "d_v": 2, "d_f": 8, "L": 2}
    rng = np.random.default_rng(0)
    arrays = {
        d.ascii: seeded_tensor(rng, d.entry_kind, (B, *concrete_shape(d, sizes)) if d in eq.inputs else
                               concrete_shape(d, sizes), sizes)
        for d in (*eq.inputs, *eq.params)
    }  # fmt: skip
    got = target(arrays, sizes)["H_out"]
    want = GeneratedTarget(eq)(arrays, sizes)["H_out"]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    without = ImplTarget(spec.get("gpt2.forward"), forward)(
        {k: a for k, a in arrays.items() if k != "eps"}, sizes
    )
    assert not np.allclose(without["H_out"], got)  # ε (≥ 1/8 here) matters


@checked
def unshifted_loss(Y_hat: Float[Tensor, "*batch n v"], k: Int[Tensor, "*batch n"]) -> Float[Tensor, "*batch"]:
    # scores column i on its own token k_i: the label shift is missing
    return -torch.log(Y_hat.gather(-1, k.unsqueeze(-1))).squeeze(-1).sum(-1)


@checked
def mean_loss(Y_hat: Float[Tensor, "*batch n v"], k: Int[Tensor, "*batch n"]) -> Float[Tensor, "*batch"]:
    # the mean over the predictions instead of the tutorial's sum
    return loss(Y_hat, k) / max(k.shape[-1] - 1, 1)


@checked
def head_softmax_over_tokens(
    H: Float[Tensor, "*batch n d_e"], E: Float[Tensor, "d_e v"]
) -> Float[Tensor, "*batch n v"]:
    return torch.softmax(H @ E, dim=-2)


@checked
def last_index_on_ties(
    H: Float[Tensor, "*batch n d_e"], E: Float[Tensor, "d_e v"], tau: float, k_top: int
) -> tuple[Int[Tensor, "*batch"], Float[Tensor, "*batch v"]]:
    _, p = next_token(H, E, tau, k_top)
    z = H[..., -1, :] @ E
    return z.shape[-1] - 1 - z.flip(-1).argmax(dim=-1), p  # numpy's and torch's rule reversed


@checked
def temperature_multiplies(
    H: Float[Tensor, "*batch n d_e"], E: Float[Tensor, "d_e v"], tau: float, k_top: int
) -> tuple[Int[Tensor, "*batch"], Float[Tensor, "*batch v"]]:
    return next_token(H, E, 1 / tau, k_top)


def _forward_bug(bug: str):
    @checked
    def wrong(
        k: Int[Tensor, "*batch n"], E: Float[Tensor, "d_e v"], Lambda: Float[Tensor, "d_e n_max"],
        W_Q: Float[Tensor, "L M d_e d_k"], b_Q: Float[Tensor, "L M d_k"], W_K: Float[Tensor, "L M d_e d_k"],
        b_K: Float[Tensor, "L M d_k"], W_V: Float[Tensor, "L M d_e d_v"], b_V: Float[Tensor, "L M d_v"],
        W_O: Float[Tensor, "L M*d_v d_e"], b_O: Float[Tensor, "L d_e"], alpha_1: Float[Tensor, "L d_e"],
        beta_1: Float[Tensor, "L d_e"], alpha_2: Float[Tensor, "L d_e"], beta_2: Float[Tensor, "L d_e"],
        W_1: Float[Tensor, "L d_f d_e"], b_1: Float[Tensor, "L d_f"], W_2: Float[Tensor, "L d_e d_f"],
        b_2: Float[Tensor, "L d_e"], alpha_e: Float[Tensor, " d_e"], beta_e: Float[Tensor, " d_e"],
    ) -> Float[Tensor, "*batch n d_e"]:  # fmt: skip
        blocks = dict(W_Q=W_Q, b_Q=b_Q, W_K=W_K, b_K=b_K, W_V=W_V, b_V=b_V, W_O=W_O, b_O=b_O)
        blocks.update(alpha_1=alpha_1, beta_1=beta_1, alpha_2=alpha_2, beta_2=beta_2)
        blocks.update(W_1=W_1, b_1=b_1, W_2=W_2, b_2=b_2)
        X = input_(k, E, Lambda)
        S = causal_mask(k.shape[-1], dtype=X.dtype)
        if bug == "no causal mask":
            return stack(X, None, **blocks, alpha_e=alpha_e, beta_e=beta_e)
        if bug == "no final layer norm":
            return stack(X, S, **blocks)
        return stack(X, S, **blocks, norm_first=False, activation="gelu_tanh", alpha_e=alpha_e, beta_e=beta_e)

    return wrong


WRONG = [
    # (name, equation, implementation, checks that must catch it)
    ("loss without the label shift", "gpt2.loss", unshifted_loss,
     {"impl=oracle", "impl=generated", "property:shifted_loss"}),
    ("mean instead of sum", "gpt2.loss", mean_loss,
     {"impl=oracle", "impl=generated", "property:shifted_loss"}),
    ("head softmax over tokens", "gpt2.lm_head", head_softmax_over_tokens,
     {"impl=oracle", "impl=generated", "property:lm_head_distribution"}),
    ("argmax ties to the last index", "gpt2.generate", last_index_on_ties,
     {"impl=oracle", "property:next_token_distribution"}),
    ("temperature multiplies", "gpt2.generate", temperature_multiplies,
     {"impl=oracle", "impl=generated", "property:next_token_distribution",
      "property:next_token_scale_invariance"}),
    ("no causal mask", "gpt2.forward", _forward_bug("no causal mask"),
     {"impl=generated", "property:causal_tokens", "property:prefix_consistency"}),
    ("no final layer norm", "gpt2.forward", _forward_bug("no final layer norm"), {"impl=generated"}),
    ("post-LN blocks", "gpt2.forward", _forward_bug("post-LN"), {"impl=generated"}),
]  # fmt: skip


#: The default profile's examples with little shrinking: a caught bug need not be shrunk far here.
TEETH = Profile("teeth", oracle_sizes=3, large_sizes=2, examples=12, property_examples=8, shrink_examples=10)


@pytest.mark.parametrize(("bug", "eq_id", "fn", "catchers"), WRONG, ids=[w[0] for w in WRONG])
def test_wrong_implementation_fails_naming_the_check(bug, eq_id, fn, catchers):
    eq = spec.get(eq_id)
    target = ImplTarget(eq, fn, name=f"wrong[{bug}]")
    checks = checks_for(eq, TEETH, 0, target)
    if eq_id == "gpt2.forward":  # the oracle of the whole model is slow: the cheaper checks suffice
        checks = [c for c in checks if c.name not in ("impl=oracle", "generated=oracle")]
    results = [run_check(c, TEETH, 0) for c in checks]
    failed = {r.check for r in results if not r.passed}
    assert catchers <= failed, f"{bug}: expected {sorted(catchers)} to fail, failed {sorted(failed)}"
    for r in results:
        if not r.passed:
            assert r.message and r.counterexample["sizes"], r
