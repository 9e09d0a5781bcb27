"""Language modelling basics in PyTorch, batch-first, to be read beside spec/lm.py.

Tokens are rows here (``Z: (*batch, n, v)``, the transpose of the tutorial's ``Z ∈ ℝ^{v×n}``); the
vocabulary is the last axis. The spec's conventions hold: a mean over no kept position is NaN (as
``F.cross_entropy`` with every target ignored), an unseen bigram history predicts the uniform distribution,
and top-k keeps every logit tied with the k-th largest.
"""

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from ._registry import checked, implements


def check_ids(who: str, k: Tensor, v: int, name: str = "token ids k") -> None:
    """Raise a ValueError naming ``who`` if a token id in ``k`` lies outside ``[0, v)``.

    Indexing would wrap a negative id round to the end of the vocabulary (a silently wrong row) and fail
    deep inside torch for an id ≥ v; this says which function, the valid range and the offending value.
    """
    if k.numel() == 0 or k.device.type == "meta":  # nothing to check, or no values to look at
        return
    low, high = int(k.min()), int(k.max())
    if low < 0 or high >= v:
        raise ValueError(f"{who}: {name} must lie in [0, {v}), found {low if low < 0 else high}")


@implements("lm.chain_rule")
@checked
def chain_rule(
    Y: Float[Tensor, "*batch n v"], k: Int[Tensor, "*batch n"]
) -> tuple[Float[Tensor, "*batch"], Float[Tensor, "*batch"]]:
    """``log P(w_1..w_n) = Σ_i log P(w_i | w_<i)``; row i of Y is ``P(· | w_1..w_{i−1})``.

    Returns the log-probability and the probability of each sequence.
    """
    check_ids("chain_rule", k, Y.shape[-1])
    p = Y.gather(-1, k.unsqueeze(-1)).squeeze(-1)  # (*batch, n): p_i = P(w_i | w_<i)
    log_prob = p.log().sum(dim=-1)
    return log_prob, log_prob.exp()


@implements("lm.ngram")
@checked
def ngram(
    k: Int[Tensor, "*batch n"], v: int, *, dtype: torch.dtype = torch.float32
) -> tuple[Float[Tensor, "*batch v v"], Float[Tensor, "*batch v v"]]:
    """Bigram counts ``C[h, w] = c(h, w)`` and the estimate ``P̂[h, w] = c(h, w) / c(h)``.

    ``c(h) = Σ_w c(h, w)`` counts h followed by a token; a history never seen (``c(h) = 0``) gets the
    uniform row ``1/v``. Row h of ``P̂`` is the distribution of the next token after h.
    """
    check_ids("ngram", k, v)
    Omega = torch.nn.functional.one_hot(k, v).to(dtype)  # (*batch, n, v)
    C = Omega[..., :-1, :].transpose(-1, -2) @ Omega[..., 1:, :]  # (*batch, v, v): histories × next tokens
    c_h = C.sum(dim=-1, keepdim=True)  # (*batch, v, 1)
    P_hat = torch.where(c_h == 0, 1.0 / v, C / c_h.clamp(min=1))
    return C, P_hat


@implements("lm.one_hot")
@checked
def one_hot(
    k: Int[Tensor, "*batch n"], v: int, *, dtype: torch.dtype = torch.float32
) -> Float[Tensor, "*batch n v"]:
    """``Ω_{k_i, i} = 1``: row i is the one-hot vector ``ω_i`` of token i (this is ``Ωᵀ``)."""
    check_ids("one_hot", k, v)
    return torch.nn.functional.one_hot(k, v).to(dtype)


@implements("lm.embedding")
@checked
def embedding(k: Int[Tensor, "*batch n"], E: Float[Tensor, "d_e v"]) -> Float[Tensor, "*batch n d_e"]:
    """``X = E Ω``: ``x_i = E ω_i`` is column ``k_i`` of E, a lookup."""
    check_ids("embedding", k, E.shape[-1])
    return E.T[k]  # (*batch, n, d_e)


class TokenEmbedding(nn.Module):
    """The token embedding ``E ∈ ℝ^{d_e×v}`` held in the spec's orientation (``nn.Embedding`` holds Eᵀ)."""

    def __init__(self, v: int, d_e: int, *, std: float = 0.02) -> None:
        super().__init__()
        if v <= 0 or d_e <= 0:
            raise ValueError(f"TokenEmbedding: v and d_e must be positive, found v={v}, d_e={d_e}")
        self.E = nn.Parameter(torch.randn(d_e, v) * std)

    def forward(self, k: Int[Tensor, "*batch n"]) -> Float[Tensor, "*batch n d_e"]:
        return embedding(k, self.E)

    def spec_params(self) -> dict[str, Tensor]:
        """``E`` named and oriented as in the spec (d_e × v)."""
        return {"E": self.E}


@implements("lm.softmax")
@checked
def softmax(z: Float[Tensor, "*batch v"]) -> Float[Tensor, "*batch v"]:
    """``softmax(z)_k = e^{z_k} / Σ_j e^{z_j}`` over the vocabulary."""
    return torch.softmax(z, dim=-1)


@implements("lm.cross_entropy")
@checked
def cross_entropy(
    Z: Float[Tensor, "*batch n v"], k: Int[Tensor, "*batch n"], keep: Bool[Tensor, "*batch n"] | None = None
) -> tuple[Float[Tensor, "*batch n"], Float[Tensor, "*batch"], Float[Tensor, "*batch"]]:
    """``ℓ_i = −log softmax(z_i)_{k_i}``, summed (``κᵀ ℓ``) and averaged (``κᵀ ℓ / Σ κ``) over the kept
    positions; the mean over no kept position is NaN.
    """
    check_ids("cross_entropy", k, Z.shape[-1])
    if keep is None:
        keep = torch.ones_like(k, dtype=torch.bool)
    log_probs = torch.log_softmax(Z, dim=-1)  # (*batch, n, v)
    ell = -log_probs.gather(-1, k.unsqueeze(-1)).squeeze(-1)  # (*batch, n)
    loss_sum = torch.where(keep, ell, 0.0).sum(dim=-1)
    return ell, loss_sum, loss_sum / keep.sum(dim=-1)  # 0 / 0 = NaN when nothing is kept


@implements("lm.perplexity")
@checked
def perplexity(
    Z: Float[Tensor, "*batch n v"], k: Int[Tensor, "*batch n"], keep: Bool[Tensor, "*batch n"] | None = None
) -> Float[Tensor, "*batch"]:
    """``PPL = exp(mean NLL of the kept tokens)`` of each sequence."""
    _, _, loss = cross_entropy(Z, k, keep)
    return loss.exp()


@checked
def corpus_perplexity(
    Z: Float[Tensor, "*batch n v"], k: Int[Tensor, "*batch n"], keep: Bool[Tensor, "*batch n"] | None = None
) -> Float[Tensor, ""]:
    """Perplexity of a corpus given as a padded batch: one mean over the kept tokens of every sequence.

    ``exp(Σ_b κ_bᵀ ℓ_b / Σ_b 1ᵀ κ_b)``: the tokens are pooled, so the value depends neither on how the
    corpus is cut into sequences and batches nor on padding (it is not the mean of per-sequence
    perplexities, which weights a short sequence like a long one).
    """
    if keep is None:
        keep = torch.ones_like(k, dtype=torch.bool)
    _, loss_sum, _ = cross_entropy(Z, k, keep)
    return (loss_sum.sum() / keep.sum()).exp()


@implements("lm.temperature")
@checked
def temperature(z: Float[Tensor, "*batch v"], tau: float) -> Float[Tensor, "*batch v"]:
    """``p_τ = softmax(z / τ)``; τ → 0 is greedy (argmax), τ → ∞ uniform."""
    if not tau > 0:
        raise ValueError(f"temperature: tau must be positive, found {tau}")
    return torch.softmax(z / tau, dim=-1)


@implements("lm.top_k")
@checked
def top_k(
    z: Float[Tensor, "*batch v"], k_top: int
) -> tuple[Float[Tensor, "*batch v"], Float[Tensor, "*batch v"]]:
    """Keep the logits with fewer than k larger ones (ties with the k-th largest are kept), set the others
    to −∞ and renormalise: returns the filtered logits and ``softmax`` of them."""
    v = z.shape[-1]
    if not 1 <= k_top <= v:
        raise ValueError(f"top_k: k_top must be in [1, v = {v}], found {k_top}")
    kth = torch.topk(z, k_top, dim=-1).values[..., -1:]  # (*batch, 1): the k-th largest logit
    z_top = z.masked_fill(z < kth, -torch.inf)
    return z_top, torch.softmax(z_top, dim=-1)
