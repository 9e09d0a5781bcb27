"""GPT-2 in PyTorch, batch-first, to be read beside spec/gpt2.py.

A token is a row: the tutorial's ``H ∈ ℝ^{d_e×n}`` is ``H`` of shape ``(*batch, n, d_e)`` here. Parameters
keep the spec's orientation (``E ∈ ℝ^{d_e×v}``, ``Λ ∈ ℝ^{d_e×n_max}``, ``W_1 ∈ ℝ^{d_f×d_e}``); per-head
families are stacked on an ``M`` axis and, in the functional ``forward``, per-layer families on an ``L`` axis.

The blocks run with a key-value cache: keys and values of earlier tokens are kept per block, so that a
generation step computes the new token's row only. Without a cache the same code is the full forward pass
(the function registered for ``gpt2.forward``), which the verifier holds to the spec.
"""

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from . import fast as fast_path
from ._registry import checked, implements
from .attention import projections
from .lm import check_ids, temperature, top_k
from .norm import LayerNorm, layer_norm
from .transformer import BLOCK_PARAMS, TransformerBlock, ffn


class KV(NamedTuple):
    """The cached keys and values of one block, ``(*batch, M, n_past, d_k)`` and ``(…, d_v)``."""

    K: Tensor
    V: Tensor


Cache = tuple[KV, ...]


def _attention(
    Hhat: Float[Tensor, "*batch n d_e"], p: Mapping[str, Tensor], past: KV | None
) -> tuple[Float[Tensor, "*batch n d_e"], KV]:
    """Causal multi-head attention of the n new tokens over the cached and the new keys and values."""
    heads = (p[name] for name in ("W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V"))
    Q, K, V = projections(Hhat, *heads)  # (*batch, M, n, d_k | d_v)
    if past is not None:
        K = torch.cat([past.K, K], dim=-2)  # (*batch, M, n_past + n, d_k)
        V = torch.cat([past.V, V], dim=-2)  # (*batch, M, n_past + n, d_v)
    n, n_all = Q.shape[-2], K.shape[-2]
    scores = Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1])  # (*batch, M, n, n_all)
    # new token i sits at position n_past + i and sees keys j ≤ n_past + i (causal mask S)
    future = torch.ones(n, n_all, dtype=torch.bool, device=Q.device).triu(diagonal=n_all - n + 1)
    weights = torch.softmax(scores.masked_fill(future, -math.inf), dim=-1)  # no row is fully masked
    P = (weights @ V).transpose(-3, -2).flatten(-2)  # (*batch, n, M*d_v): [P_1, …, P_M]
    return P @ p["W_O"] + p["b_O"], KV(K, V)


def block(
    H: Float[Tensor, "*batch n d_e"], p: Mapping[str, Tensor], *, eps: float = 0.0, past: KV | None = None
) -> tuple[Float[Tensor, "*batch n d_e"], KV]:
    """One pre-LN block: ``Ĥ = LN(H; α_1, β_1)``, ``X = H + MHA(Ĥ; S)``, ``C = LN(X; α_2, β_2)``,
    ``H' = X + W_2 GELU_tanh(W_1 C + b_1) + b_2``; also returns the block's keys and values."""
    A, kv = _attention(layer_norm(H, p["alpha_1"], p["beta_1"], eps), p, past)
    X = H + A
    C = layer_norm(X, p["alpha_2"], p["beta_2"], eps)
    return X + ffn(C, p["W_1"], p["b_1"], p["W_2"], p["b_2"], "gelu_tanh"), kv


def decode(
    k: Int[Tensor, "*batch n"],
    E: Float[Tensor, "d_e v"],
    Lambda: Float[Tensor, "d_e n_max"],
    layers: Sequence[Mapping[str, Tensor]],
    alpha_e: Float[Tensor, " d_e"],
    beta_e: Float[Tensor, " d_e"],
    *,
    eps: float = 0.0,
    past: Cache | None = None,
) -> tuple[Float[Tensor, "*batch n d_e"], Cache]:
    """The forward pass of the tokens ``k`` after the cached ones (if any): final states and the new cache.

    ``H^0 = E Ω + Λ_{:,p+1:p+n}`` for p cached tokens, the blocks, ``LN(H^L; α_e, β_e)``.
    """
    start = 0 if not past else past[0].K.shape[-2]
    n, n_max = k.shape[-1], Lambda.shape[-1]
    if start + n > n_max:
        raise ValueError(f"gpt2: {start} cached + {n} new tokens exceed n_max = {n_max} positions of Lambda")
    check_ids("gpt2", k, E.shape[-1])
    H = E.T[k] + Lambda[:, start : start + n].T  # (*batch, n, d_e): columns k_i of E plus positions
    cache = []
    for l, p in enumerate(layers):
        H, kv = block(H, p, eps=eps, past=past[l] if past else None)
        cache.append(kv)
    return layer_norm(H, alpha_e, beta_e, eps), tuple(cache)


@implements("gpt2.forward", variants={"eps": {}})
@checked
def forward(
    k: Int[Tensor, "*batch n"],
    E: Float[Tensor, "d_e v"],
    Lambda: Float[Tensor, "d_e n_max"],
    W_Q: Float[Tensor, "L M d_e d_k"],
    b_Q: Float[Tensor, "L M d_k"],
    W_K: Float[Tensor, "L M d_e d_k"],
    b_K: Float[Tensor, "L M d_k"],
    W_V: Float[Tensor, "L M d_e d_v"],
    b_V: Float[Tensor, "L M d_v"],
    W_O: Float[Tensor, "L M*d_v d_e"],
    b_O: Float[Tensor, "L d_e"],
    alpha_1: Float[Tensor, "L d_e"],
    beta_1: Float[Tensor, "L d_e"],
    alpha_2: Float[Tensor, "L d_e"],
    beta_2: Float[Tensor, "L d_e"],
    W_1: Float[Tensor, "L d_f d_e"],
    b_1: Float[Tensor, "L d_f"],
    W_2: Float[Tensor, "L d_e d_f"],
    b_2: Float[Tensor, "L d_e"],
    alpha_e: Float[Tensor, " d_e"],
    beta_e: Float[Tensor, " d_e"],
    *,
    eps: float = 0.0,
) -> Float[Tensor, "*batch n d_e"]:
    """``H^0 = E Ω + Λ_{:,1:n}``, ``H^l = Block^{(l)}(H^{l−1}; S)`` (pre-LN), ``LN(H^L; α_e, β_e)``."""
    stacked = dict(
        W_Q=W_Q, b_Q=b_Q, W_K=W_K, b_K=b_K, W_V=W_V, b_V=b_V, W_O=W_O, b_O=b_O, alpha_1=alpha_1,
        beta_1=beta_1, alpha_2=alpha_2, beta_2=beta_2, W_1=W_1, b_1=b_1, W_2=W_2, b_2=b_2,
    )  # fmt: skip
    layers = [{name: t[l] for name, t in stacked.items()} for l in range(W_Q.shape[0])]
    return decode(k, E, Lambda, layers, alpha_e, beta_e, eps=eps)[0]


@implements("gpt2.lm_head")
@checked
def lm_head(H: Float[Tensor, "*batch n d_e"], E: Float[Tensor, "d_e v"]) -> Float[Tensor, "*batch n v"]:
    """``Ŷ = softmax_col(Eᵀ H̃^L)``, ``H̃^L = LN(H^L; α_e, β_e)`` the final states: row i (column i in the
    tutorial) is ``P(w_{i+1} | w_{≤i})``."""
    return torch.softmax(H @ E, dim=-1)  # (*batch, n, v): logits e_jᵀ h_i


def _next_token_nll(logY: Float[Tensor, "*batch n v"], k: Int[Tensor, "*batch n"]) -> Float[Tensor, "*batch"]:
    """``−Σ_{i=1}^{n−1} log Ŷ_{k_{i+1}, i}`` from log-probabilities: row i is scored on the next token."""
    targets = k[..., 1:].unsqueeze(-1)  # (*batch, n−1, 1): k_2..k_n
    picked = logY[..., :-1, :].gather(-1, targets).squeeze(-1)  # (*batch, n−1)
    return -picked.sum(dim=-1)


@implements("gpt2.loss", variants={"mean": {"mean": True}})
@checked
def loss(
    Y_hat: Float[Tensor, "*batch n v"], k: Int[Tensor, "*batch n"], *, mean: bool = False
) -> Float[Tensor, "*batch"]:
    """``𝓛 = −Σ_{i=1}^{n−1} log Ŷ_{k_{i+1}, i}`` (labels shifted by one; 0 when n = 1). ``mean=True`` (the
    spec's variant mean, Hugging Face's loss): 𝓛 / (n − 1), NaN when n = 1 (nothing is predicted)."""
    check_ids("gpt2.loss", k, Y_hat.shape[-1])
    total = _next_token_nll(torch.log(Y_hat), k)
    return total / (k.shape[-1] - 1) if mean else total  # 0 / 0 = NaN when n = 1


def _sampling_distribution(
    z: Float[Tensor, "*batch v"], tau: float, k_top: int | None
) -> Float[Tensor, "*batch v"]:
    """``softmax(top_k(z)/τ)`` (lm.top_k, then lm.temperature); logits tied with the k-th largest are kept."""
    if k_top is not None:
        z, _ = top_k(z, k_top)  # −∞ outside the top k
    return temperature(z, tau)


@implements("gpt2.generate")
@checked
def next_token(
    H: Float[Tensor, "*batch n d_e"], E: Float[Tensor, "d_e v"], tau: float, k_top: int
) -> tuple[Int[Tensor, "*batch"], Float[Tensor, "*batch v"]]:
    """One generation step from the last token's final state (after the final layer norm):
    ``z = Eᵀ H̃^L_{:,n}``, the greedy token
    ``argmax z`` (ties to the lowest index) and the sampling distribution ``softmax(top_k(z)/τ)``."""
    z = H[..., -1, :] @ E  # (*batch, v)
    return z.argmax(dim=-1), _sampling_distribution(z, tau, k_top)


class GPT2(nn.Module):
    """GPT-2: learned token and position embeddings, L pre-LN blocks, a final layer norm, a tied head.

    Parameters are held in the spec's orientation (``E ∈ ℝ^{d_e×v}``, ``Λ ∈ ℝ^{d_e×n_max}``); the head
    reuses E (weight tying), so the parameter count is ``L·block + v d_e + n_max d_e + 2 d_e``.

    ``fast=True`` runs the blocks through impl.fast (batched projections, torch's fused attention, layer norm
    and GELU kernels): the same equations, registered as ``gpt2.forward``'s implementation ``fast`` and held
    to the spec by ``lmspec verify`` as the readable one is.
    """

    def __init__(
        self,
        v: int,
        n_max: int,
        d_e: int,
        M: int,
        L: int,
        d_f: int | None = None,
        *,
        eps: float = 1e-5,
        std: float = 0.02,
        fast: bool = False,
    ) -> None:
        super().__init__()
        for name, size in (("v", v), ("n_max", n_max), ("d_e", d_e), ("M", M), ("L", L)):
            if size <= 0:
                raise ValueError(f"GPT2: {name} must be positive, found {name}={size}")
        if d_e % M:
            raise ValueError(f"GPT2: d_e must be a multiple of M (d_k = d_e / M), found d_e={d_e}, M={M}")
        d_f = 4 * d_e if d_f is None else d_f
        self.v, self.n_max, self.d_e, self.M, self.L, self.d_f, self.eps = v, n_max, d_e, M, L, d_f, eps
        self.fast = fast
        self.E = nn.Parameter(torch.randn(d_e, v) * std)  # wte.weight = Eᵀ
        self.Lambda = nn.Parameter(torch.randn(d_e, n_max) * std)  # wpe.weight = Λᵀ
        self.blocks = nn.ModuleList(
            TransformerBlock(d_e, M, d_f, norm_first=True, activation="gelu_tanh", eps=eps, std=std)
            for _ in range(L)
        )
        self.ln_e = LayerNorm(d_e, eps)  # the final layer norm, α_e and β_e

    def spec_params(self) -> dict[str, Tensor]:
        """E, Λ, the per-layer families stacked on a leading L axis (``L M d_e d_k`` ...), α_e, β_e."""
        layers = [b.spec_params() for b in self.blocks]
        stacked = {name: torch.stack([p[name] for p in layers]) for name in BLOCK_PARAMS}
        return {
            "E": self.E,
            "Lambda": self.Lambda,
            **stacked,
            "alpha_e": self.ln_e.alpha,
            "beta_e": self.ln_e.beta,
        }

    def forward(
        self, k: Int[Tensor, "*batch n"], past: Cache | None = None
    ) -> tuple[Float[Tensor, "*batch n v"], Cache]:
        """Logits ``(Eᵀ H̃^L)ᵀ`` (``H̃^L = LN(H^L; α_e, β_e)``) of the tokens k (after the ``past`` ones, if
        cached) and the updated cache."""
        layers = [b.spec_params() for b in self.blocks]
        alpha_e, beta_e = self.ln_e.alpha, self.ln_e.beta
        run = fast_path.decode if self.fast else decode
        H, cache = run(k, self.E, self.Lambda, layers, alpha_e, beta_e, eps=self.eps, past=past)
        return H @ self.E, tuple(KV(*kv) for kv in cache)  # (*batch, n, v): the tied head

    def loss(self, k: Int[Tensor, "*batch n"]) -> Float[Tensor, "*batch"]:
        """``𝓛 = −Σ_{i=1}^{n−1} log Ŷ_{k_{i+1}, i}`` per sequence (a sum over the n − 1 predictions)."""
        logits, _ = self(k)
        return _next_token_nll(torch.log_softmax(logits, dim=-1), k)

    @torch.no_grad()
    def generate(
        self,
        k: Int[Tensor, "*batch n"],
        steps: int,
        *,
        temperature: float | None = None,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Int[Tensor, "*batch n+steps"]:
        """Append ``steps`` tokens: the argmax of the last logits (greedy, ``temperature=None``) or a sample
        from ``softmax(top_k(z)/τ)``; each step runs the blocks on the new token only (key-value cache)."""
        if steps < 0:
            raise ValueError(f"GPT2.generate: steps must be non-negative, found {steps}")
        if k.shape[-1] + steps > self.n_max:
            raise ValueError(
                f"GPT2.generate: {k.shape[-1]} tokens + {steps} steps exceed n_max = {self.n_max}"
            )
        if temperature is not None and not temperature > 0:
            raise ValueError(f"GPT2.generate: temperature must be positive, found {temperature}")
        if top_k is not None and not 1 <= top_k <= self.v:
            raise ValueError(f"GPT2.generate: top_k must be in 1..v = {self.v}, found {top_k}")
        if temperature is None and top_k is not None:
            raise ValueError("GPT2.generate: top_k needs a temperature (greedy decoding takes the argmax)")
        out = k
        if steps == 0:
            return out
        logits, cache = self(k)
        for step in range(steps):
            z = logits[..., -1, :]  # (*batch, v): the next token's logits
            if temperature is None:
                new = z.argmax(dim=-1)  # ties to the lowest index
            else:
                p = _sampling_distribution(z, temperature, top_k)
                new = torch.multinomial(p.reshape(-1, self.v), 1, generator=generator).reshape(z.shape[:-1])
            out = torch.cat([out, new.unsqueeze(-1)], dim=-1)
            if step + 1 < steps:
                logits, cache = self(new.unsqueeze(-1), past=cache)
        return out
