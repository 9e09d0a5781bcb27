"""Transformer blocks in PyTorch, to be read beside spec/transformer.py.

Batch-first: a token is a row, ``H`` is ``n × d_e`` (the transpose of the tutorial's ``H ∈ ℝ^{d_e×n}``).
Parameters keep the spec's names and orientation: ``W_1 ∈ ℝ^{d_f×d_e}`` (as nn.Linear stores it), head
families stacked on an ``M`` axis (impl.attention), and in the stack every per-layer parameter stacked on a
leading ``L`` axis (``W_Q: L M d_e d_k``, ``alpha_1: L d_e``). The blocks call impl.attention's
``multi_head`` / ``cross``, ``layer_norm`` and ``ffn``.

Keyword options select the spec's named variants: ``activation`` ("gelu_tanh", "gelu", "relu"), ``eps``
(ε ≥ 0 inside every layer norm; 0 is the tutorial's form) and, for the stack, ``norm_first`` and the final
layer norm ``alpha_e, beta_e``.
"""

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn
from torch.nn.functional import linear

from ._registry import checked, implements
from .activation import activation_function
from .attention import MultiHeadAttention, causal_mask, cross, multi_head
from .norm import LayerNorm, layer_norm

#: The FFN activation of each block form when none is given (GPT-2 pre-LN, BERT post-LN, Vaswani decoder).
DEFAULT_ACTIVATION = {"pre": "gelu_tanh", "post": "gelu", "decoder": "relu"}
#: The spec's parameter names of one attention (attention.multi_head) and of one FFN.
MHA_PARAMS = ("W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V", "W_O", "b_O")
FFN_PARAMS = ("W_1", "b_1", "W_2", "b_2")
BLOCK_PARAMS = (*MHA_PARAMS, "alpha_1", "beta_1", "alpha_2", "beta_2", *FFN_PARAMS)


@implements("transformer.input")
@checked
def input_(
    k: Int[Tensor, "*batch n"], E: Float[Tensor, "d_e v"], Lambda: Float[Tensor, "d_e n_max"]
) -> Float[Tensor, "*batch n d_e"]:
    """``H^0 = E Ω + Λ_{:,1:n}``: column i is ``E ω_i + λ_i`` (here row i: ``E_{:,k_i} + Λ_{:,i}``)."""
    n, n_max = k.shape[-1], Lambda.shape[-1]
    if n > n_max:
        raise ValueError(f"transformer input: n={n} tokens but only n_max={n_max} positions")
    tokens = E.transpose(0, 1)[k]  # (*batch, n, d_e): E Ω, a column lookup instead of a product
    return tokens + Lambda[:, :n].transpose(0, 1)  # (*batch, n, d_e)


@implements("transformer.residual")
@checked
def residual(
    H: Float[Tensor, "*batch n d_e"], F: Float[Tensor, "*batch n d_e"]
) -> Float[Tensor, "*batch n d_e"]:
    """``H ← H + Sublayer(·)``, the sublayer's output given as F."""
    return H + F


@implements("transformer.ffn", variants={"gelu": {"activation": "gelu"}, "relu": {"activation": "relu"}})
@checked
def ffn(
    C: Float[Tensor, "*batch n d_e"],
    W_1: Float[Tensor, "d_f d_e"],
    b_1: Float[Tensor, " d_f"],
    W_2: Float[Tensor, "d_e d_f"],
    b_2: Float[Tensor, " d_e"],
    activation: str = "gelu_tanh",
) -> Float[Tensor, "*batch n d_e"]:
    """Equation (37): ``d_i = W_2 φ(W_1 c_i + b_1) + b_2`` for every token, φ = ``activation``."""
    phi = activation_function(activation)
    hidden = phi(linear(C, W_1, b_1))  # W_1 c_i + b_1 for every token: (*batch, n, d_f)
    return linear(hidden, W_2, b_2)  # (*batch, n, d_e)


def _attention(params: dict[str, Tensor], suffix: str = "") -> dict[str, Tensor]:
    return {name: params[f"{name}{suffix}"] for name in MHA_PARAMS}


@implements("transformer.block_pre_ln", variants={"eps": {}, "gelu": {"activation": "gelu"}})
@checked
def block_pre_ln(
    H: Float[Tensor, "*batch n d_e"],
    S: Float[Tensor, "*#batch n n"] | None,
    W_Q: Float[Tensor, "M d_e d_k"],
    b_Q: Float[Tensor, "M d_k"],
    W_K: Float[Tensor, "M d_e d_k"],
    b_K: Float[Tensor, "M d_k"],
    W_V: Float[Tensor, "M d_e d_v"],
    b_V: Float[Tensor, "M d_v"],
    W_O: Float[Tensor, "M*d_v d_e"],
    b_O: Float[Tensor, " d_e"],
    alpha_1: Float[Tensor, " d_e"],
    beta_1: Float[Tensor, " d_e"],
    alpha_2: Float[Tensor, " d_e"],
    beta_2: Float[Tensor, " d_e"],
    W_1: Float[Tensor, "d_f d_e"],
    b_1: Float[Tensor, " d_f"],
    W_2: Float[Tensor, "d_e d_f"],
    b_2: Float[Tensor, " d_e"],
    *,
    eps: float = 0.0,
    activation: str = "gelu_tanh",
) -> Float[Tensor, "*batch n d_e"]:
    """GPT-2's block: ``Ĥ = LN(H; α_1, β_1)``, ``X = H + MHA(Ĥ; S)``, ``C = LN(X; α_2, β_2)``,
    ``H' = X + FFN(C)``. ``S = None`` is no mask."""
    H_hat = layer_norm(H, alpha_1, beta_1, eps)
    X = H + multi_head(H_hat, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O, S=S)
    C = layer_norm(X, alpha_2, beta_2, eps)
    return X + ffn(C, W_1, b_1, W_2, b_2, activation)


@implements("transformer.block_post_ln", variants={"eps": {}, "gelu_tanh": {"activation": "gelu_tanh"}})
@checked
def block_post_ln(
    H: Float[Tensor, "*batch n d_e"],
    S: Float[Tensor, "*#batch n n"] | None,
    W_Q: Float[Tensor, "M d_e d_k"],
    b_Q: Float[Tensor, "M d_k"],
    W_K: Float[Tensor, "M d_e d_k"],
    b_K: Float[Tensor, "M d_k"],
    W_V: Float[Tensor, "M d_e d_v"],
    b_V: Float[Tensor, "M d_v"],
    W_O: Float[Tensor, "M*d_v d_e"],
    b_O: Float[Tensor, " d_e"],
    alpha_1: Float[Tensor, " d_e"],
    beta_1: Float[Tensor, " d_e"],
    alpha_2: Float[Tensor, " d_e"],
    beta_2: Float[Tensor, " d_e"],
    W_1: Float[Tensor, "d_f d_e"],
    b_1: Float[Tensor, " d_f"],
    W_2: Float[Tensor, "d_e d_f"],
    b_2: Float[Tensor, " d_e"],
    *,
    eps: float = 0.0,
    activation: str = "gelu",
) -> Float[Tensor, "*batch n d_e"]:
    """The original transformer's and BERT's block: ``C = LN(H + MHA(H; S); α_1, β_1)``,
    ``H' = LN(C + FFN(C); α_2, β_2)``. ``S = None`` is no mask."""
    C = layer_norm(H + multi_head(H, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O, S=S), alpha_1, beta_1, eps)
    return layer_norm(C + ffn(C, W_1, b_1, W_2, b_2, activation), alpha_2, beta_2, eps)


@implements("transformer.decoder_block", variants={"eps": {}, "gelu": {"activation": "gelu"}})
@checked
def decoder_block(
    H: Float[Tensor, "*batch n_d d_e"],
    H_enc: Float[Tensor, "*batch n_e d_e"],
    W_Q: Float[Tensor, "M d_e d_k"],
    b_Q: Float[Tensor, "M d_k"],
    W_K: Float[Tensor, "M d_e d_k"],
    b_K: Float[Tensor, "M d_k"],
    W_V: Float[Tensor, "M d_e d_v"],
    b_V: Float[Tensor, "M d_v"],
    W_O: Float[Tensor, "M*d_v d_e"],
    b_O: Float[Tensor, " d_e"],
    W_Q_cross: Float[Tensor, "M d_e d_k"],
    b_Q_cross: Float[Tensor, "M d_k"],
    W_K_cross: Float[Tensor, "M d_e d_k"],
    b_K_cross: Float[Tensor, "M d_k"],
    W_V_cross: Float[Tensor, "M d_e d_v"],
    b_V_cross: Float[Tensor, "M d_v"],
    W_O_cross: Float[Tensor, "M*d_v d_e"],
    b_O_cross: Float[Tensor, " d_e"],
    alpha_1: Float[Tensor, " d_e"],
    beta_1: Float[Tensor, " d_e"],
    alpha_2: Float[Tensor, " d_e"],
    beta_2: Float[Tensor, " d_e"],
    alpha_3: Float[Tensor, " d_e"],
    beta_3: Float[Tensor, " d_e"],
    W_1: Float[Tensor, "d_f d_e"],
    b_1: Float[Tensor, " d_f"],
    W_2: Float[Tensor, "d_e d_f"],
    b_2: Float[Tensor, " d_e"],
    *,
    eps: float = 0.0,
    activation: str = "relu",
) -> Float[Tensor, "*batch n_d d_e"]:
    """Vaswani et al.'s decoder block (post-LN): causal self-attention, cross-attention to ``H_enc``, FFN,
    each as ``LN(x + Sublayer(x))``."""
    S = causal_mask(H.shape[-2], dtype=H.dtype, device=H.device)  # (n_d, n_d)
    C_1 = layer_norm(H + multi_head(H, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O, S=S), alpha_1, beta_1, eps)
    A = cross(
        C_1, H_enc, W_Q_cross, b_Q_cross, W_K_cross, b_K_cross, W_V_cross, b_V_cross, W_O_cross, b_O_cross
    )
    C_2 = layer_norm(C_1 + A, alpha_2, beta_2, eps)
    return layer_norm(C_2 + ffn(C_2, W_1, b_1, W_2, b_2, activation), alpha_3, beta_3, eps)


@implements(
    "transformer.stack",
    variants={
        "eps": {},
        "final_ln": {},
        "final_ln_eps": {},
        "post_ln": {"norm_first": False},
        "post_ln_final_ln_eps": {"norm_first": False},
    },
)
@checked
def stack(
    X: Float[Tensor, "*batch n d_e"],
    S: Float[Tensor, "*#batch n n"] | None,
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
    *,
    norm_first: bool = True,
    activation: str | None = None,
    eps: float = 0.0,
    alpha_e: Float[Tensor, " d_e"] | None = None,
    beta_e: Float[Tensor, " d_e"] | None = None,
) -> Float[Tensor, "*batch n d_e"]:
    """``H^0 = X``, ``H^l = Block^{(l)}(H^{l−1}; S)`` for l = 1..L (pre-LN blocks, or post-LN with
    ``norm_first=False``), then ``LN(H^L; α_e, β_e)`` when ``alpha_e`` and ``beta_e`` are given (GPT-2; after
    post-LN blocks it normalises once more, as torch.nn.TransformerEncoder(norm=…) does)."""
    if (alpha_e is None) != (beta_e is None):
        raise ValueError("transformer stack: give both alpha_e and beta_e (the final layer norm) or neither")
    block = block_pre_ln if norm_first else block_post_ln
    phi = activation or DEFAULT_ACTIVATION["pre" if norm_first else "post"]
    per_layer = dict(W_Q=W_Q, b_Q=b_Q, W_K=W_K, b_K=b_K, W_V=W_V, b_V=b_V, W_O=W_O, b_O=b_O)
    per_layer.update(alpha_1=alpha_1, beta_1=beta_1, alpha_2=alpha_2, beta_2=beta_2)
    per_layer.update(W_1=W_1, b_1=b_1, W_2=W_2, b_2=b_2)
    H = X
    for layer in range(W_Q.shape[0]):
        H = block(H, S, **{name: p[layer] for name, p in per_layer.items()}, eps=eps, activation=phi)
    if alpha_e is not None:
        H = layer_norm(H, alpha_e, beta_e, eps)
    return H


# --- modules --------------------------------------------------------------------------------------
class FFN(nn.Module):
    """The position-wise FFN (37) with ``W_1 ∈ ℝ^{d_f×d_e}``, ``W_2 ∈ ℝ^{d_e×d_f}`` and biases."""

    def __init__(self, d_e: int, d_f: int, activation: str = "gelu_tanh", *, std: float = 0.02) -> None:
        super().__init__()
        if d_e <= 0 or d_f <= 0:
            raise ValueError(f"FFN: d_e and d_f must be positive, found d_e={d_e}, d_f={d_f}")
        activation_function(activation)  # a ValueError names the known ones
        self.activation = activation
        self.W_1 = nn.Parameter(torch.randn(d_f, d_e) * std)
        self.b_1 = nn.Parameter(torch.zeros(d_f))
        self.W_2 = nn.Parameter(torch.randn(d_e, d_f) * std)
        self.b_2 = nn.Parameter(torch.zeros(d_e))

    def forward(self, C: Float[Tensor, "*batch n d_e"]) -> Float[Tensor, "*batch n d_e"]:
        return ffn(C, **self.spec_params(), activation=self.activation)

    def spec_params(self) -> dict[str, Tensor]:
        return {"W_1": self.W_1, "b_1": self.b_1, "W_2": self.W_2, "b_2": self.b_2}


class TransformerBlock(nn.Module):
    """A pre-LN (``norm_first=True``, GPT-2) or post-LN (BERT) block holding the spec's parameters.

    ``activation`` defaults to GELU-tanh (pre-LN) or exact GELU (post-LN); ``eps`` is the layer norms' ε.
    """

    def __init__(
        self,
        d_e: int,
        M: int,
        d_f: int,
        *,
        norm_first: bool,
        activation: str | None = None,
        eps: float = 0.0,
        d_k: int | None = None,
        d_v: int | None = None,
        std: float = 0.02,
    ) -> None:
        super().__init__()
        self.norm_first, self.eps = norm_first, eps
        self.activation = activation or DEFAULT_ACTIVATION["pre" if norm_first else "post"]
        self.attn = MultiHeadAttention(d_e, M, d_k, d_v, std=std)
        self.ln_1 = LayerNorm(d_e, eps)
        self.ffn = FFN(d_e, d_f, self.activation, std=std)
        self.ln_2 = LayerNorm(d_e, eps)

    def forward(
        self, H: Float[Tensor, "*batch n d_e"], S: Float[Tensor, "*#batch n n"] | None = None
    ) -> Float[Tensor, "*batch n d_e"]:
        block = block_pre_ln if self.norm_first else block_post_ln
        return block(H, S, **self.spec_params(), eps=self.eps, activation=self.activation)

    def spec_params(self) -> dict[str, Tensor]:
        """W_Q … b_O, α_1, β_1, α_2, β_2, W_1 … b_2 as the spec names and orients them."""
        return {
            **self.attn.spec_params(),
            "alpha_1": self.ln_1.alpha,
            "beta_1": self.ln_1.beta,
            "alpha_2": self.ln_2.alpha,
            "beta_2": self.ln_2.beta,
            **self.ffn.spec_params(),
        }


class DecoderBlock(nn.Module):
    """Vaswani et al.'s decoder block; the cross-attention's parameters carry the suffix ``_cross``."""

    def __init__(
        self,
        d_e: int,
        M: int,
        d_f: int,
        *,
        activation: str = "relu",
        eps: float = 0.0,
        d_k: int | None = None,
        d_v: int | None = None,
        std: float = 0.02,
    ) -> None:
        super().__init__()
        self.activation, self.eps = activation, eps
        self.self_attn = MultiHeadAttention(d_e, M, d_k, d_v, std=std)
        self.cross_attn = MultiHeadAttention(d_e, M, d_k, d_v, std=std)
        self.ln_1, self.ln_2, self.ln_3 = (LayerNorm(d_e, eps) for _ in range(3))
        self.ffn = FFN(d_e, d_f, activation, std=std)

    def forward(
        self, H: Float[Tensor, "*batch n_d d_e"], H_enc: Float[Tensor, "*batch n_e d_e"]
    ) -> Float[Tensor, "*batch n_d d_e"]:
        return decoder_block(H, H_enc, **self.spec_params(), eps=self.eps, activation=self.activation)

    def spec_params(self) -> dict[str, Tensor]:
        out = dict(self.self_attn.spec_params())
        out.update({f"{k}_cross": p for k, p in self.cross_attn.spec_params().items()})
        for k, ln in enumerate((self.ln_1, self.ln_2, self.ln_3), start=1):
            out[f"alpha_{k}"], out[f"beta_{k}"] = ln.alpha, ln.beta
        out.update(self.ffn.spec_params())
        return out


class TransformerStack(nn.Module):
    """L blocks of one form, and optionally GPT-2's final layer norm ``LN(H^L; α_e, β_e)``.

    ``spec_params()`` stacks each block's parameters on a leading L axis, as ``stack`` takes them.
    """

    def __init__(
        self,
        L: int,
        d_e: int,
        M: int,
        d_f: int,
        *,
        norm_first: bool = True,
        activation: str | None = None,
        eps: float = 0.0,
        final_ln: bool = False,
        d_k: int | None = None,
        d_v: int | None = None,
        std: float = 0.02,
    ) -> None:
        super().__init__()
        if L <= 0:
            raise ValueError(f"TransformerStack: L must be positive, found L={L}")
        self.norm_first, self.eps = norm_first, eps
        self.activation = activation or DEFAULT_ACTIVATION["pre" if norm_first else "post"]
        self.blocks = nn.ModuleList(
            TransformerBlock(
                d_e,
                M,
                d_f,
                norm_first=norm_first,
                activation=self.activation,
                eps=eps,
                d_k=d_k,
                d_v=d_v,
                std=std,
            )
            for _ in range(L)
        )
        self.ln_e = LayerNorm(d_e, eps) if final_ln else None

    def forward(
        self, X: Float[Tensor, "*batch n d_e"], S: Float[Tensor, "*#batch n n"] | None = None
    ) -> Float[Tensor, "*batch n d_e"]:
        return stack(
            X, S, **self.spec_params(), norm_first=self.norm_first, activation=self.activation, eps=self.eps
        )

    def spec_params(self) -> dict[str, Tensor]:
        per_block = [b.spec_params() for b in self.blocks]
        out = {name: torch.stack([p[name] for p in per_block]) for name in BLOCK_PARAMS}
        if self.ln_e is not None:
            out["alpha_e"], out["beta_e"] = self.ln_e.alpha, self.ln_e.beta
        return out


class TransformerInput(nn.Module):
    """Token embedding ``E ∈ ℝ^{d_e×v}`` and learned positions ``Λ ∈ ℝ^{d_e×n_max}``:
    ``H^0 = E Ω + Λ_{:,1:n}``."""

    def __init__(
        self, v: int, d_e: int, n_max: int, *, std: float = 0.02, std_positions: float = 0.01
    ) -> None:
        super().__init__()
        if v <= 0 or d_e <= 0 or n_max <= 0:
            raise ValueError(
                f"TransformerInput: sizes must be positive, found v={v}, d_e={d_e}, n_max={n_max}"
            )
        self.E = nn.Parameter(torch.randn(d_e, v) * std)
        self.Lambda = nn.Parameter(torch.randn(d_e, n_max) * std_positions)

    def forward(self, k: Int[Tensor, "*batch n"]) -> Float[Tensor, "*batch n d_e"]:
        return input_(k, self.E, self.Lambda)

    def spec_params(self) -> dict[str, Tensor]:
        return {"E": self.E, "Lambda": self.Lambda}
