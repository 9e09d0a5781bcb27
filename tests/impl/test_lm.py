"""impl/ lm: hand-derivable values with distinct sizes, agreement with torch's own losses, corpus
perplexity against pooling, runtime shape checks, and wrong implementations the verifier catches."""

import math

import pytest
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int, TypeCheckError
from torch import Tensor

from lmspec import impl, spec
from lmspec.impl._registry import checked
from lmspec.impl.lm import (
    TokenEmbedding,
    chain_rule,
    corpus_perplexity,
    cross_entropy,
    embedding,
    ngram,
    one_hot,
    perplexity,
    softmax,
    temperature,
    top_k,
)
from lmspec.verify.runner import PROFILES, checks_for, verify
from lmspec.verify.targets import ImplTarget

torch.set_default_dtype(torch.float64)
# distinct sizes per axis, so that a swapped axis cannot pass
B, n, v, d_e = 2, 5, 7, 3


def test_chain_rule_multiplies_the_conditionals_of_the_tokens():
    Y = torch.softmax(torch.randn(B, n, v), dim=-1)
    k = torch.randint(0, v, (B, n))
    log_prob, prob = chain_rule(Y, k)
    want = torch.tensor([math.prod(Y[b, i, k[b, i]].item() for i in range(n)) for b in range(B)])
    torch.testing.assert_close(prob, want)
    torch.testing.assert_close(log_prob, want.log())


def test_ngram_counts_bigrams_and_unseen_histories_are_uniform():
    k = torch.tensor([[0, 1, 0, 2, 6], [3, 3, 3, 3, 3]])
    C, P_hat = ngram(k, v, dtype=torch.float64)
    assert C.shape == P_hat.shape == (B, v, v)
    assert C[0].nonzero().tolist() == [[0, 1], [0, 2], [1, 0], [2, 6]]
    assert C[1, 3, 3].item() == 4 and C[1].sum().item() == 4
    assert P_hat[0, 0].tolist() == [0, 0.5, 0.5, 0, 0, 0, 0]
    assert P_hat[0, 6].tolist() == [1 / v] * v  # 6 ends the sequence: never a history
    torch.testing.assert_close(P_hat.sum(dim=-1), torch.ones(B, v))


def test_one_hot_and_embedding():
    k = torch.tensor([[6, 0, 2, 2, 1], [0, 0, 0, 0, 0]])
    Omega = one_hot(k, v, dtype=torch.float64)
    assert Omega.shape == (B, n, v) and Omega.sum(dim=-1).eq(1).all() and Omega[0, 0, 6] == 1
    E = torch.randn(d_e, v)
    X = embedding(k, E)
    assert X.shape == (B, n, d_e)
    torch.testing.assert_close(X, Omega @ E.T)  # x_i = E ω_i
    torch.testing.assert_close(X[0, 0], E[:, 6])


def test_token_embedding_module_holds_E_in_the_spec_orientation():
    torch.manual_seed(0)
    module = TokenEmbedding(v, d_e)
    assert module.spec_params()["E"].shape == (d_e, v)
    k = torch.randint(0, v, (B, n))
    torch.testing.assert_close(module(k), embedding(k, module.E))
    with pytest.raises(ValueError, match="v and d_e must be positive, found v=0, d_e=3"):
        TokenEmbedding(0, d_e)


def test_softmax_and_temperature():
    z = torch.log(torch.tensor([1.0, 2.0, 5.0]))
    torch.testing.assert_close(softmax(z), torch.tensor([0.125, 0.25, 0.625]))
    torch.testing.assert_close(temperature(z, 0.5), torch.tensor([1.0, 4.0, 25.0]) / 30)
    assert temperature(torch.tensor([0.0, 1.0, 1.0]), 1e-4).tolist() == [0.0, 0.5, 0.5]  # ties share
    with pytest.raises(ValueError, match="tau must be positive, found 0.0"):
        temperature(z, 0.0)


def test_cross_entropy_agrees_with_torch_including_ignored_targets():
    Z = torch.randn(B, n, v)
    k = torch.randint(0, v, (B, n))
    keep = torch.tensor([[True, True, False, True, False], [False] * n])
    ell, loss_sum, loss = cross_entropy(Z, k, keep)
    torch.testing.assert_close(ell, F.cross_entropy(Z.transpose(1, 2), k, reduction="none"))
    target = k.masked_fill(~keep, -100)  # torch's ignore_index
    torch.testing.assert_close(loss[0], F.cross_entropy(Z[0], target[0]))
    torch.testing.assert_close(loss_sum[0], F.cross_entropy(Z[0], target[0], reduction="sum"))
    assert loss_sum[1] == 0 and math.isnan(loss[1]) and math.isnan(F.cross_entropy(Z[1], target[1]))


def test_perplexity_of_uniform_predictions_is_v():
    k = torch.randint(0, v, (B, n))
    torch.testing.assert_close(perplexity(torch.zeros(B, n, v), k), torch.full((B,), float(v)))


def _corpus(lengths: list[int], seed: int = 0) -> tuple[Tensor, Tensor]:
    """A corpus of sequences (logits, tokens) of the given lengths, as one long sequence."""
    g = torch.Generator().manual_seed(seed)
    total = sum(lengths)
    return torch.randn(total, v, generator=g), torch.randint(0, v, (total,), generator=g)


def _batch(Z: Tensor, k: Tensor, lengths: list[int], width: int) -> tuple[Tensor, Tensor, Tensor]:
    """The sequences padded to ``width`` with junk logits and tokens, and their keep mask."""
    rows = len(lengths)
    Zb, kb = torch.randn(rows, width, v) * 9, torch.randint(0, v, (rows, width))
    keep = torch.zeros(rows, width, dtype=torch.bool)
    start = 0
    for r, length in enumerate(lengths):
        Zb[r, :length], kb[r, :length], keep[r, :length] = (
            Z[start : start + length],
            k[start : start + length],
            True,
        )
        start += length
    return Zb, kb, keep


def test_corpus_perplexity_pools_tokens_whatever_the_batching():
    lengths = [3, 1, 4, 2]
    Z, k = _corpus(lengths)
    pooled = perplexity(Z, k)  # one sequence of all the tokens
    for cut, width in (([3, 1, 4, 2], 4), ([3, 1, 4, 2], 7), ([4, 6], 6), ([10], 10)):
        batch = _batch(Z, k, cut, width)
        torch.testing.assert_close(corpus_perplexity(*batch), pooled)
    # the mean of per-sequence perplexities is not the corpus perplexity (short sequences weigh more)
    Zb, kb, keep = _batch(Z, k, lengths, 4)
    assert not torch.isclose(perplexity(Zb, kb, keep).mean(), pooled)


def test_corpus_perplexity_of_nothing_is_nan():
    assert math.isnan(
        corpus_perplexity(
            torch.randn(B, n, v), torch.zeros(B, n, dtype=torch.long), torch.zeros(B, n, dtype=torch.bool)
        )
    )


def test_top_k_keeps_ties_like_the_usual_filter():
    z = torch.tensor([[1.0, 3.0, 3.0, 0.0, 5.0, -1.0, 2.0], [0.5, 0.4, 0.3, 0.2, 0.1, 0.0, -0.1]])
    z_top, p = top_k(z, 2)
    assert (z_top[0] > -math.inf).tolist() == [False, True, True, False, True, False, False]  # 3 kept
    assert (p[1] > 0).sum() == 2  # distinct logits: exactly k
    # the filter of Hugging Face's TopKLogitsWarper, written out
    usual = z.masked_fill(z < torch.topk(z, 2)[0][..., -1, None], -math.inf)
    torch.testing.assert_close(z_top, usual)
    torch.testing.assert_close(p, torch.softmax(usual, dim=-1))
    with pytest.raises(ValueError, match=r"k_top must be in \[1, v = 7\], found 8"):
        top_k(z, 8)


def test_runtime_checks_reject_wrong_shapes():
    with pytest.raises(TypeCheckError, match="keep"):
        cross_entropy(
            torch.randn(B, n, v), torch.randint(0, v, (B, n)), torch.ones(B, n + 1, dtype=torch.bool)
        )
    with pytest.raises(TypeCheckError, match="E"):
        embedding(torch.randint(0, v, (B, n)), torch.randn(v, d_e, 2))


def test_registry():
    for eq in spec.select(["lm"]):
        assert impl.implementation(eq.id).__lmspec_id__ == eq.id


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_verify_lm_quick_passes(seed):
    results = verify(spec.select(["lm"]), "quick", seed)
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]


# --- teeth: wrong implementations, written the way people write them, are caught -------------------
@checked
def ce_mean_over_every_position(
    Z: Float[Tensor, "*batch n v"], k: Int[Tensor, "*batch n"], keep: Bool[Tensor, "*batch n"] | None = None
) -> tuple[Float[Tensor, "*batch n"], Float[Tensor, "*batch"], Float[Tensor, "*batch"]]:
    ell = -torch.log_softmax(Z, dim=-1).gather(-1, k.unsqueeze(-1)).squeeze(-1)
    return ell, ell.sum(dim=-1), ell.mean(dim=-1)  # padding counted


@checked
def perplexity_of_the_sum(
    Z: Float[Tensor, "*batch n v"], k: Int[Tensor, "*batch n"], keep: Bool[Tensor, "*batch n"] | None = None
) -> Float[Tensor, "*batch"]:
    return cross_entropy(Z, k, keep)[1].exp()  # exp of the summed NLL


@checked
def top_k_breaks_ties(
    z: Float[Tensor, "*batch v"], k_top: int
) -> tuple[Float[Tensor, "*batch v"], Float[Tensor, "*batch v"]]:
    idx = torch.topk(z, k_top, dim=-1).indices  # exactly k, ties broken by position
    z_top = torch.full_like(z, -math.inf).scatter(-1, idx, z.gather(-1, idx))
    return z_top, torch.softmax(z_top, dim=-1)


@checked
def temperature_multiplies(z: Float[Tensor, "*batch v"], tau: float) -> Float[Tensor, "*batch v"]:
    return torch.softmax(z * tau, dim=-1)


@checked
def chain_rule_shifted(
    Y: Float[Tensor, "*batch n v"], k: Int[Tensor, "*batch n"]
) -> tuple[Float[Tensor, "*batch"], Float[Tensor, "*batch"]]:
    # the causal-LM shift applied to conditionals that are already aligned: P(w_{i+1} | w_<i)
    p = torch.cat(
        [Y[..., :1, :].gather(-1, k[..., :1, None]), Y[..., :-1, :].gather(-1, k[..., 1:, None])], -2
    )
    log_prob = p.squeeze(-1).log().sum(dim=-1)
    return log_prob, log_prob.exp()


@checked
def ngram_counts_every_position(
    k: Int[Tensor, "*batch n"], v: int, *, dtype: torch.dtype = torch.float32
) -> tuple[Float[Tensor, "*batch v v"], Float[Tensor, "*batch v v"]]:
    C = ngram(k, v, dtype=dtype)[0]
    c_h = F.one_hot(k, v).to(dtype).sum(dim=-2).unsqueeze(-1)  # counts the last token as a history too
    return C, torch.where(c_h == 0, 1.0 / v, C / c_h.clamp(min=1))


WRONG = [
    ("mean over padding", "lm.cross_entropy", ce_mean_over_every_position,
     {"impl=oracle", "impl=generated", "property:ignores_padding"}),
    ("perplexity of the summed NLL", "lm.perplexity", perplexity_of_the_sum,
     {"impl=oracle", "property:perplexity_uniform", "property:perplexity_pools_tokens"}),
    ("top-k breaks ties", "lm.top_k", top_k_breaks_ties, {"property:top_k_keeps_k"}),
    ("temperature multiplies", "lm.temperature", temperature_multiplies,
     {"impl=oracle", "impl=generated", "property:temperature_limits"}),
    ("chain rule shifted", "lm.chain_rule", chain_rule_shifted,
     {"impl=oracle", "property:chain_rule_normalised"}),
    ("c(h) counts the last token", "lm.ngram", ngram_counts_every_position,
     {"impl=oracle", "property:ngram_estimate"}),
]  # fmt: skip


@pytest.mark.parametrize(("bug", "eq_id", "fn", "catchers"), WRONG, ids=[w[0] for w in WRONG])
def test_wrong_implementation_fails_naming_the_check(bug, eq_id, fn, catchers, caught):
    eq = spec.get(eq_id)
    target = ImplTarget(eq, fn, name=f"wrong[{bug}]")
    checks = [c for c in checks_for(eq, PROFILES["default"], 0, target) if c.name in catchers]
    assert {c.name for c in checks} == catchers
    for check in checks:
        mismatch = caught(check)
        assert mismatch is not None, f"{bug}: {check.name} did not catch it"
        assert mismatch.check == check.name
        assert f"wrong[{bug}]" in str(mismatch)
