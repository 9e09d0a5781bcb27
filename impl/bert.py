"""BERT in PyTorch, batch-first, to be read beside spec/bert.py.

A token is a row: the tutorial's ``H ∈ ℝ^{d_e×n}`` is ``H`` of shape ``(*batch, n, d_e)`` here. Parameters
keep the spec's orientation (``E ∈ ℝ^{d_e×v}``, ``Λ ∈ ℝ^{d_e×n_max}``, ``G ∈ ℝ^{d_e×2}``, ``W_p``
acting on columns); per-head families are stacked on an ``M`` axis, per-layer families on an ``L`` axis.
``[CLS]`` is token 1 (index 0), segments are ids ``s_i ∈ {0, 1}``, the padding mask is a boolean ``keep``
(True = a real token), as Hugging Face's ``token_type_ids`` and ``attention_mask``.

Masked-language-model masking is given twice: ``mlm_masking`` is the distribution of the spec (per token,
the probabilities of the four outcomes and of the replacing token), and ``mlm_mask`` samples from it.

Layer norm has no ε in the functions (the tutorial's form, the spec's default); ``eps`` binds the spec's
variant ``[eps]``, and the modules use BERT's 10⁻¹² by default.
"""

from typing import NamedTuple

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from . import fast as fast_path
from ._registry import checked, implements
from .activation import activation_function
from .attention import padding_mask
from .lm import check_ids
from .norm import layer_norm
from .transformer import block_post_ln

#: The parameters of one post-LN block, by their spec names (each stacked on a leading L axis).
BLOCK_PARAMS = (
    "W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V", "W_O", "b_O",
    "alpha_1", "beta_1", "W_1", "b_1", "W_2", "b_2", "alpha_2", "beta_2",
)  # fmt: skip
#: Devlin et al.: select 15% of the tokens; of those 80% → [MASK], 10% → a random token, 10% unchanged.
SELECT = 0.15
SPLIT = (0.8, 0.1, 0.1)


# --- bert.input ----------------------------------------------------------------------------------
@implements("bert.input", variants={"eps": {}})
@checked
def embed(
    k: Int[Tensor, "*batch n"],
    s: Int[Tensor, "*batch n"],
    E: Float[Tensor, "d_e v"],
    Lambda: Float[Tensor, "d_e n_max"],
    G: Float[Tensor, "d_e 2"],
    alpha_e: Float[Tensor, " d_e"],
    beta_e: Float[Tensor, " d_e"],
    eps: float = 0.0,
) -> Float[Tensor, "*batch n d_e"]:
    """``H^0 = LN(E Ω + Λ_{:,1:n} + G Σ; α_e, β_e)``: token, position and segment embeddings."""
    n, n_max = k.shape[-1], Lambda.shape[-1]
    if n > n_max:
        raise ValueError(f"embed: the sequence has n = {n} tokens, more than n_max = {n_max} positions")
    check_ids("embed", k, E.shape[-1])
    check_ids("embed", s, 2, name="segment ids s")
    X = E.T[k]  # (*batch, n, d_e): E ω_i, column k_i of E
    P = Lambda.T[:n]  # (n, d_e): Λ_{:,1:n}
    Seg = G.T[s]  # (*batch, n, d_e): G σ_i, column s_i of G
    return layer_norm(X + P + Seg, alpha_e, beta_e, eps=eps)


# --- bert.encoder --------------------------------------------------------------------------------
@implements("bert.encoder", variants={"eps": {}})
@checked
def encoder(
    X: Float[Tensor, "*batch n d_e"],
    keep: Bool[Tensor, "*batch n"],
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
    W_1: Float[Tensor, "L d_f d_e"],
    b_1: Float[Tensor, "L d_f"],
    W_2: Float[Tensor, "L d_e d_f"],
    b_2: Float[Tensor, "L d_e"],
    alpha_2: Float[Tensor, "L d_e"],
    beta_2: Float[Tensor, "L d_e"],
    eps: float = 0.0,
) -> Float[Tensor, "*batch L n d_e"]:
    """``H^l = Block^{(l)}(H^{l−1}; S)``, l = 1..L, post-LN blocks with the padding mask ``S = S^pad(κ)``;
    returns the states of every block, ``H^1, …, H^L``."""
    params = dict(
        W_Q=W_Q, b_Q=b_Q, W_K=W_K, b_K=b_K, W_V=W_V, b_V=b_V, W_O=W_O, b_O=b_O, alpha_1=alpha_1,
        beta_1=beta_1, W_1=W_1, b_1=b_1, W_2=W_2, b_2=b_2, alpha_2=alpha_2, beta_2=beta_2,
    )  # fmt: skip
    S = padding_mask(keep, dtype=X.dtype)  # (*batch, n, n): −∞ in the columns of padded keys
    H, states = X, []
    for layer in range(W_Q.shape[0]):
        H = block_post_ln(H, S, **{name: p[layer] for name, p in params.items()}, eps=eps)
        states.append(H)
    return torch.stack(states, dim=-3)  # (*batch, L, n, d_e)


# --- bert.mlm_head -------------------------------------------------------------------------------
def mlm_logits(
    H: Float[Tensor, "*batch n d_e"],
    W_m: Float[Tensor, "d_e d_e"],
    b_m: Float[Tensor, " d_e"],
    alpha_m: Float[Tensor, " d_e"],
    beta_m: Float[Tensor, " d_e"],
    E: Float[Tensor, "d_e v"],
    b_out: Float[Tensor, " v"],
    eps: float = 0.0,
    activation: str = "gelu",
) -> Float[Tensor, "*batch n v"]:
    """The logits ``Z = Eᵀ T + b_out 1ᵀ`` of the MLM head, ``T = LN(GELU(W_m H + b_m 1ᵀ); α_m, β_m)``."""
    phi = activation_function(activation)  # exact GELU (BERT); "gelu_tanh" is the spec's variant
    T = layer_norm(phi(H @ W_m.T + b_m), alpha_m, beta_m, eps=eps)  # (*batch, n, d_e)
    return T @ E + b_out  # (*batch, n, v): row i is column i of Eᵀ T + b_out 1ᵀ


@implements("bert.mlm_head", variants={"eps": {}})
@checked
def mlm_head(
    H: Float[Tensor, "*batch n d_e"],
    W_m: Float[Tensor, "d_e d_e"],
    b_m: Float[Tensor, " d_e"],
    alpha_m: Float[Tensor, " d_e"],
    beta_m: Float[Tensor, " d_e"],
    E: Float[Tensor, "d_e v"],
    b_out: Float[Tensor, " v"],
    eps: float = 0.0,
    activation: str = "gelu",
) -> Float[Tensor, "*batch n v"]:
    """``Ŷ = softmax_col(Eᵀ T + b_out 1ᵀ)``: for each token a distribution over the vocabulary."""
    Z = mlm_logits(H, W_m, b_m, alpha_m, beta_m, E, b_out, eps=eps, activation=activation)
    return torch.softmax(Z, dim=-1)


# --- bert.mlm_masking ----------------------------------------------------------------------------
def _outcome_rates(special: Tensor, select: float, split: tuple[float, float, float], dtype) -> Tensor:
    """``Π`` batch-first: (1 − ρ, ρ·split) for a maskable token, (1, 0, 0, 0) for a special one."""
    maskable = torch.tensor([1 - select, *(select * f for f in split)], dtype=dtype, device=special.device)
    untouched = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=dtype, device=special.device)
    return torch.where(special.unsqueeze(-1), untouched, maskable)  # (*batch, n, 4)


@implements("bert.mlm_masking")
@checked
def mlm_masking(
    k: Int[Tensor, "*batch n"],
    special: Bool[Tensor, "*batch n"],
    mask_id: int,
    v: int,
    *,
    select: float = SELECT,
    split: tuple[float, float, float] = SPLIT,
    dtype: torch.dtype = torch.float32,
) -> tuple[Float[Tensor, "*batch n 4"], Float[Tensor, "*batch n v"]]:
    """The distribution of MLM masking, per token: ``Π`` (not selected, [MASK], random token, selected
    but unchanged) and ``Q̃``, the distribution of the token that replaces it (uniform random over all v)."""
    check_ids("mlm_masking", k, v)
    if not 0 <= mask_id < v:
        raise ValueError(f"mlm_masking: mask_id must be a vocabulary index in [0, {v}), found {mask_id}")
    Pi = _outcome_rates(special, select, split, dtype)  # (*batch, n, 4)
    Omega = nn.functional.one_hot(k, v).to(dtype)  # (*batch, n, v)
    mu = nn.functional.one_hot(torch.tensor(mask_id, device=k.device), v).to(dtype)  # (v,)
    Q = (Pi[..., 0:1] + Pi[..., 3:4]) * Omega + Pi[..., 1:2] * mu + Pi[..., 2:3] / v  # (*batch, n, v)
    return Pi, Q


def mlm_mask(
    k: Int[Tensor, "*batch n"],
    special: Bool[Tensor, "*batch n"],
    mask_id: int,
    v: int,
    generator: torch.Generator | None = None,
    *,
    select: float = SELECT,
    split: tuple[float, float, float] = SPLIT,
) -> tuple[Int[Tensor, "*batch n"], Bool[Tensor, "*batch n"]]:
    """A sample of MLM masking: the corrupted ids and the selected set 𝓜 (where the loss is taken).

    Each token draws its outcome from its column of ``Π`` (``mlm_masking``) by inverting the cumulative
    probabilities; a random replacement is uniform over the whole vocabulary (it may be the original
    token, [MASK] or another special token), as in Devlin et al.'s code and Hugging Face's collator.
    """
    if not 0 <= mask_id < v:
        raise ValueError(f"mlm_mask: mask_id must be a vocabulary index in [0, {v}), found {mask_id}")
    Pi = _outcome_rates(special, select, split, torch.float64)  # (*batch, n, 4)
    u = torch.rand(k.shape, generator=generator, dtype=torch.float64, device=k.device)
    outcome = (u.unsqueeze(-1) >= Pi.cumsum(dim=-1)).sum(dim=-1).clamp(max=3)  # (*batch, n) in 0..3
    random = torch.randint(v, k.shape, generator=generator, device=k.device)
    masked = torch.where(outcome == 1, mask_id, torch.where(outcome == 2, random, k))
    return masked, outcome > 0


# --- bert.mlm_loss -------------------------------------------------------------------------------
@implements("bert.mlm_loss", variants={"mean": {"mean": True}})
@checked
def mlm_loss(
    Y_hat: Float[Tensor, "*batch n v"],
    k: Int[Tensor, "*batch n"],
    sel: Bool[Tensor, "*batch n"],
    *,
    mean: bool = False,
) -> Float[Tensor, "*batch"]:
    """``𝓛 = −Σ_{i∈𝓜} log Ŷ_{k_i, i}``: the original tokens' log-probability at the selected positions.
    ``mean=True`` (the spec's variant mean, Hugging Face's loss): 𝓛 / |𝓜|, NaN when 𝓜 is empty."""
    check_ids("mlm_loss", k, Y_hat.shape[-1])
    picked = Y_hat.gather(-1, k.unsqueeze(-1)).squeeze(-1)  # (*batch, n): Ŷ_{k_i, i}
    total = -torch.where(sel, picked.log(), 0.0).sum(dim=-1)
    return total / sel.sum(dim=-1) if mean else total  # 0 / 0 = NaN when 𝓜 is empty


# --- bert.pooler, bert.nsp_head, bert.classifier -------------------------------------------------
@implements("bert.pooler")
@checked
def pooler(
    H: Float[Tensor, "*batch n d_e"], W_p: Float[Tensor, "d_e d_e"], b_p: Float[Tensor, " d_e"]
) -> Float[Tensor, "*batch d_e"]:
    """``p = tanh(W_p h^L_[CLS] + b_p)``, [CLS] the first token."""
    if H.shape[-2] == 0:
        raise ValueError("pooler: the sequence is empty (n = 0), expected at least its first token, [CLS]")
    return torch.tanh(H[..., 0, :] @ W_p.T + b_p)


@implements("bert.nsp_head")
@checked
def nsp_head(
    p: Float[Tensor, "*batch d_e"], W_nsp: Float[Tensor, "2 d_e"], b_nsp: Float[Tensor, " 2"]
) -> Float[Tensor, "*batch 2"]:
    """``ŷ = softmax(W_nsp p + b_nsp)``: P(B follows A), P(B is random)."""
    return torch.softmax(p @ W_nsp.T + b_nsp, dim=-1)


@implements("bert.classifier")
@checked
def classifier(
    p: Float[Tensor, "*batch d_e"],
    y: Float[Tensor, "*batch n_c 1"],
    W_c: Float[Tensor, "n_c d_e"],
    b_c: Float[Tensor, " n_c"],
) -> tuple[Float[Tensor, "*batch n_c"], Float[Tensor, "*batch"]]:
    """``ŷ = softmax(W_c p + b_c)`` and ``𝓛 = −yᵀ log ŷ`` for the one-hot label y (an n_c × 1 column)."""
    log_y_hat = torch.log_softmax(p @ W_c.T + b_c, dim=-1)  # (*batch, n_c)
    return log_y_hat.exp(), -(y.squeeze(-1) * log_y_hat).sum(dim=-1)


# --- models --------------------------------------------------------------------------------------
class BERTOutput(NamedTuple):
    """The states of every block ``(*batch, L, n, d_e)`` (``H^L`` is ``states[..., -1, :, :]``) and the
    pooled ``p`` ``(*batch, d_e)``."""

    states: Tensor
    p: Tensor


class BERT(nn.Module):
    """The BERT backbone: embeddings with segments and layer norm, L post-LN blocks with the padding mask,
    and the pooler. ``d_k = d_v = d_e / M``, ``d_f = 4 d_e`` unless given; parameters in the spec's names
    and orientation (``spec_params()``). ``fast=True`` runs the embeddings and the encoder through impl.fast
    (batched projections, torch's fused attention, layer norm and GELU kernels): the same equations,
    registered as ``bert.input``'s and ``bert.encoder``'s implementations ``fast`` and held to the spec by
    ``lmspec verify`` as the readable ones are."""

    def __init__(
        self,
        v: int,
        n_max: int,
        d_e: int,
        M: int,
        L: int,
        d_f: int | None = None,
        *,
        eps: float = 1e-12,
        std: float = 0.02,
        fast: bool = False,
    ) -> None:
        super().__init__()
        if min(v, n_max, d_e, M, L) <= 0 or d_e % M:
            raise ValueError(
                f"BERT: v, n_max, d_e, M, L must be positive and M must divide d_e, found v={v}, "
                f"n_max={n_max}, d_e={d_e}, M={M}, L={L}"
            )
        d_f = d_f if d_f is not None else 4 * d_e
        d_k = d_e // M
        self.v, self.n_max, self.d_e, self.M, self.L, self.d_f, self.eps = v, n_max, d_e, M, L, d_f, eps
        self.fast = fast

        def normal(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.randn(*shape) * std)

        def const(value: float, *shape: int) -> nn.Parameter:
            return nn.Parameter(torch.full(shape, value))

        # embeddings: v d_e + n_max d_e + 2 d_e + 2 d_e
        self.E, self.Lambda, self.G = normal(d_e, v), normal(d_e, n_max), normal(d_e, 2)
        self.alpha_e, self.beta_e = const(1.0, d_e), const(0.0, d_e)
        # L post-LN blocks
        self.W_Q, self.b_Q = normal(L, M, d_e, d_k), const(0.0, L, M, d_k)
        self.W_K, self.b_K = normal(L, M, d_e, d_k), const(0.0, L, M, d_k)
        self.W_V, self.b_V = normal(L, M, d_e, d_k), const(0.0, L, M, d_k)
        self.W_O, self.b_O = normal(L, M * d_k, d_e), const(0.0, L, d_e)
        self.alpha_1, self.beta_1 = const(1.0, L, d_e), const(0.0, L, d_e)
        self.W_1, self.b_1 = normal(L, d_f, d_e), const(0.0, L, d_f)
        self.W_2, self.b_2 = normal(L, d_e, d_f), const(0.0, L, d_e)
        self.alpha_2, self.beta_2 = const(1.0, L, d_e), const(0.0, L, d_e)
        # pooler: d_e² + d_e
        self.W_p, self.b_p = normal(d_e, d_e), const(0.0, d_e)

    def spec_params(self) -> dict[str, Tensor]:
        """Every parameter named and oriented as in the spec (bert.input, bert.encoder, bert.pooler)."""
        names = ("E", "Lambda", "G", "alpha_e", "beta_e", *BLOCK_PARAMS, "W_p", "b_p")
        return {name: getattr(self, name) for name in names}

    def forward(
        self,
        k: Int[Tensor, "*batch n"],
        s: Int[Tensor, "*batch n"] | None = None,
        keep: Bool[Tensor, "*batch n"] | None = None,
    ) -> BERTOutput:
        """Token ids ``k``, segment ids ``s`` (default 0: one sentence), ``keep`` (default: no padding)."""
        s = torch.zeros_like(k) if s is None else s
        keep = torch.ones_like(k, dtype=torch.bool) if keep is None else keep
        P = self.spec_params()
        inputs, encode = (fast_path.bert_input, fast_path.bert_encoder) if self.fast else (embed, encoder)
        H0 = inputs(k, s, P["E"], P["Lambda"], P["G"], P["alpha_e"], P["beta_e"], eps=self.eps)
        states = encode(H0, keep, **{name: P[name] for name in BLOCK_PARAMS}, eps=self.eps)
        return BERTOutput(states, pooler(states[..., -1, :, :], P["W_p"], P["b_p"]))


class PreTrainingOutput(NamedTuple):
    """MLM logits ``Z`` (``(*batch, n, v)``, Ŷ = softmax over the last axis), NSP logits ``(*batch, 2)``,
    the states of every block and the pooled ``p``."""

    Z: Tensor
    z_nsp: Tensor
    states: Tensor
    p: Tensor


class BERTForPreTraining(nn.Module):
    """BERT with its pre-training heads: the MLM head (transform, layer norm, output tied to E with its own
    bias b_out) and the NSP head on the pooled [CLS] state."""

    def __init__(
        self,
        v: int,
        n_max: int,
        d_e: int,
        M: int,
        L: int,
        d_f: int | None = None,
        *,
        eps: float = 1e-12,
        std: float = 0.02,
    ) -> None:
        super().__init__()
        self.bert = BERT(v, n_max, d_e, M, L, d_f, eps=eps, std=std)
        # MLM head: (d_e² + d_e) + 2 d_e + v (E is shared)
        self.W_m = nn.Parameter(torch.randn(d_e, d_e) * std)
        self.b_m = nn.Parameter(torch.zeros(d_e))
        self.alpha_m, self.beta_m = nn.Parameter(torch.ones(d_e)), nn.Parameter(torch.zeros(d_e))
        self.b_out = nn.Parameter(torch.zeros(v))
        # NSP head: 2 d_e + 2
        self.W_nsp, self.b_nsp = nn.Parameter(torch.randn(2, d_e) * std), nn.Parameter(torch.zeros(2))

    def spec_params(self) -> dict[str, Tensor]:
        """The backbone's parameters and the heads' (bert.mlm_head, bert.nsp_head), as the spec names them."""
        heads = ("W_m", "b_m", "alpha_m", "beta_m", "b_out", "W_nsp", "b_nsp")
        return {**self.bert.spec_params(), **{name: getattr(self, name) for name in heads}}

    def forward(
        self,
        k: Int[Tensor, "*batch n"],
        s: Int[Tensor, "*batch n"] | None = None,
        keep: Bool[Tensor, "*batch n"] | None = None,
    ) -> PreTrainingOutput:
        states, p = self.bert(k, s, keep)
        Z = mlm_logits(
            states[..., -1, :, :], self.W_m, self.b_m, self.alpha_m, self.beta_m, self.bert.E, self.b_out,
            eps=self.bert.eps,
        )  # fmt: skip
        return PreTrainingOutput(Z, p @ self.W_nsp.T + self.b_nsp, states, p)


class ClassifierOutput(NamedTuple):
    """Class probabilities ``ŷ`` ``(*batch, n_c)`` and, given labels, the cross-entropy ``(*batch)``."""

    y_hat: Tensor
    loss: Tensor | None


class BERTClassifier(nn.Module):
    """BERT fine-tuned for sequence classification: a linear layer and softmax on the pooled state."""

    def __init__(
        self,
        n_c: int,
        v: int,
        n_max: int,
        d_e: int,
        M: int,
        L: int,
        d_f: int | None = None,
        *,
        eps: float = 1e-12,
        std: float = 0.02,
    ) -> None:
        super().__init__()
        if n_c < 2:
            raise ValueError(f"BERTClassifier: n_c must be at least 2 classes, found {n_c}")
        self.bert = BERT(v, n_max, d_e, M, L, d_f, eps=eps, std=std)
        self.n_c = n_c
        self.W_c = nn.Parameter(torch.randn(n_c, d_e) * std)
        self.b_c = nn.Parameter(torch.zeros(n_c))

    def spec_params(self) -> dict[str, Tensor]:
        return {**self.bert.spec_params(), "W_c": self.W_c, "b_c": self.b_c}

    def forward(
        self,
        k: Int[Tensor, "*batch n"],
        s: Int[Tensor, "*batch n"] | None = None,
        keep: Bool[Tensor, "*batch n"] | None = None,
        c: Int[Tensor, "*batch"] | None = None,
    ) -> ClassifierOutput:
        """Token ids, segments, padding, and optionally the class labels ``c`` (0-based) for the loss."""
        if c is not None:
            check_ids("BERTClassifier", c, self.n_c, name="class labels c")
        p = self.bert(k, s, keep).p
        labels = c if c is not None else torch.zeros(p.shape[:-1], dtype=torch.long, device=p.device)
        y = nn.functional.one_hot(labels, self.n_c).to(p.dtype).unsqueeze(-1)  # (*batch, n_c, 1)
        y_hat, loss = classifier(p, y, self.W_c, self.b_c)
        return ClassifierOutput(y_hat, loss if c is not None else None)
