# ruff: noqa: F722
"""Built-in audit targets: ``nn.TransformerEncoderLayer``, ``nn.TransformerDecoderLayer`` and the
``nn.LayerNorm`` they hold (torch 2.13).

What torch 2.13 does on a fully masked row (a query whose keys are all masked), found by running it:
``nn.TransformerEncoderLayer`` gives zero weights on the path training takes (the one audited here), NaN on
its inference fast path (eval, no grad, ``batch_first``, an even head count), float or bool mask alike.

How the built-ins build and call torch's objects: _torch.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from jaxtyping import Float
from torch import Tensor, nn

from ._registry import builtin
from ._torch import MHA_MAPPING, TIED_HEADS, TORCH_EPS, build, call, mha_params, per_head, tied_heads


@contextmanager
def _training_path() -> Iterator[None]:
    """Run with torch's fused inference fast path (``torch.backends.mha``) off: the module then computes
    what it computes in training, whatever the caller's grad mode."""
    was = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(was)


def _prefixed(
    prefix: str, mapping: tuple[tuple[str, str], ...], suffix: str = ""
) -> tuple[tuple[str, str], ...]:
    return tuple((f"{k}{suffix}" if k.startswith(("W_", "b_")) else k, f"{prefix}{v}") for k, v in mapping)


# --- nn.TransformerEncoderLayer / nn.TransformerDecoderLayer ------------------------------------------------
_BLOCK_MAPPING = (
    ("alpha_1", "norm1.weight"),
    ("beta_1", "norm1.bias"),
    ("alpha_2", "norm2.weight"),
    ("beta_2", "norm2.bias"),
    ("W_1", "linear1.weight"),
    ("b_1", "linear1.bias"),
    ("W_2", "linear2.weight"),
    ("b_2", "linear2.bias"),
    ("d_f", "dim_feedforward"),
    ("eps", "layer_norm_eps"),
)


def _ln_ffn_params(norms: int, alphas, betas, W_1, b_1, W_2, b_2) -> dict[str, Tensor]:
    out = {"linear1.weight": W_1, "linear1.bias": b_1, "linear2.weight": W_2, "linear2.bias": b_2}
    for k in range(norms):
        out[f"norm{k + 1}.weight"], out[f"norm{k + 1}.bias"] = alphas[k], betas[k]
    return out


def _encoder_target(norm_first: bool, activation: str) -> Callable:
    def transformer_encoder_layer(
        H: Float[Tensor, "*batch n d_e"],
        S: Float[Tensor, "*#batch n n"],
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
        eps: float,
    ) -> Float[Tensor, "*batch n d_e"]:
        M, d_e, d_k = W_Q.shape
        tied_heads("torch.nn.TransformerEncoderLayer", d_e, M, d_k, W_V.shape[-1])
        *batch, n, _ = H.shape
        layer = build(
            nn.TransformerEncoderLayer,
            d_e,
            M,
            dim_feedforward=W_1.shape[0],
            dropout=0.0,
            activation=activation,
            layer_norm_eps=eps,
            batch_first=True,
            norm_first=norm_first,
            like=H,
        )
        params = mha_params("self_attn.", W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O)
        params.update(_ln_ffn_params(2, (alpha_1, alpha_2), (beta_1, beta_2), W_1, b_1, W_2, b_2))
        with _training_path():
            out = call(layer, params, H.reshape(-1, n, d_e), src_mask=per_head(S, tuple(batch), M))
        return out.reshape(*batch, n, d_e)

    return transformer_encoder_layer


_ENCODER_NOTE = (
    "batch_first=True, dropout=0.0, layer_norm_eps=ε (torch's default 1e-5), layer(x, src_mask=S) with the "
    "float mask (per-example masks repeated per head), run with torch.backends.mha's fast path off: the path "
    "training takes, which gives a fully masked row zero attention weights (the spec's convention). On its "
    "inference fast path (eval, no grad, batch_first, even M) the same layer gives NaN there, which no "
    "variant of the block describes. torch ties d_e = M·d_k and d_v = d_k."
)

for _norm_first, _activation, _equation in (
    (False, "relu", "transformer.block_post_ln[relu_eps]"),
    (False, "gelu", "transformer.block_post_ln[eps]"),
    (True, "relu", "transformer.block_pre_ln[relu_eps]"),
    (True, "gelu", "transformer.block_pre_ln[gelu_eps]"),
):
    _options = (["norm_first"] if _norm_first else []) + (["gelu"] if _activation == "gelu" else [])
    builtin(
        "torch.nn.TransformerEncoderLayer" + (f"[{','.join(_options)}]" if _options else ""),
        _equation,
        description=(
            f"nn.TransformerEncoderLayer(d_e, M, d_f, activation={_activation!r}, norm_first={_norm_first}): "
            + (
                "pre-LN, x + SA(norm1(x)), then x + FF(norm2(x)); "
                if _norm_first
                else "post-LN, norm1(x + SA(x)), then norm2(x + FF(x)); "
            )
            + ("exact (erf) GELU; " if _activation == "gelu" else "ReLU; ")
            + _ENCODER_NOTE
        ),
        mapping=(
            *_prefixed("self_attn.", MHA_MAPPING),
            ("S", "src_mask = S (float, additive)"),
            *_BLOCK_MAPPING,
        ),
        constants={"eps": TORCH_EPS},
        derive=TIED_HEADS,
    )((lambda nf, act: lambda: _encoder_target(nf, act))(_norm_first, _activation))


def _decoder_target(activation: str) -> Callable:
    def transformer_decoder_layer(
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
        eps: float,
    ) -> Float[Tensor, "*batch n_d d_e"]:
        M, d_e, d_k = W_Q.shape
        tied_heads("torch.nn.TransformerDecoderLayer", d_e, M, d_k, W_V.shape[-1])
        *batch, n_d, _ = H.shape
        n_e = H_enc.shape[-2]
        layer = build(
            nn.TransformerDecoderLayer,
            d_e,
            M,
            dim_feedforward=W_1.shape[0],
            dropout=0.0,
            activation=activation,
            layer_norm_eps=eps,
            batch_first=True,
            like=H,
        )
        params = mha_params("self_attn.", W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O)
        params.update(
            mha_params(
                "multihead_attn.", W_Q_cross, b_Q_cross, W_K_cross, b_K_cross, W_V_cross, b_V_cross,
                W_O_cross, b_O_cross,
            )
        )  # fmt: skip
        alphas, betas = (alpha_1, alpha_2, alpha_3), (beta_1, beta_2, beta_3)
        params.update(_ln_ffn_params(3, alphas, betas, W_1, b_1, W_2, b_2))
        tgt_mask = nn.Transformer.generate_square_subsequent_mask(n_d, device=H.device, dtype=H.dtype)
        x, memory = H.reshape(-1, n_d, d_e), H_enc.reshape(-1, n_e, d_e)
        with _training_path():
            out = call(layer, params, x, memory, tgt_mask=tgt_mask)
        return out.reshape(*batch, n_d, d_e)

    return transformer_decoder_layer


_DECODER_MAPPING = (
    _prefixed("self_attn.", MHA_MAPPING)
    + _prefixed("multihead_attn.", MHA_MAPPING[:8], suffix="_cross")
    + (("alpha_3", "norm3.weight"), ("beta_3", "norm3.bias"))
    + _BLOCK_MAPPING
    + (("H_enc", "memory"), ("causal mask", "tgt_mask = nn.Transformer.generate_square_subsequent_mask(n_d)"))
)

for _activation, _equation in (
    ("relu", "transformer.decoder_block[eps]"),
    ("gelu", "transformer.decoder_block[gelu_eps]"),
):
    builtin(
        "torch.nn.TransformerDecoderLayer" + ("[gelu]" if _activation == "gelu" else ""),
        _equation,
        description=(
            f"nn.TransformerDecoderLayer(d_e, M, d_f, activation={_activation!r}, norm_first=False, "
            "batch_first=True, dropout=0.0, layer_norm_eps=ε): post-LN, layer(x, memory, "
            "tgt_mask=nn.Transformer.generate_square_subsequent_mask(n_d)); causal self-attention, unmasked "
            "cross-attention to the memory, FFN, each as norm_k(x + sublayer(x)). "
            + ("Exact (erf) GELU. " if _activation == "gelu" else "ReLU. ")
            + "norm_first=True (pre-LN) has no built-in: the spec has no pre-LN decoder block. torch ties "
            "d_e = M·d_k and d_v = d_k."
        ),
        mapping=_DECODER_MAPPING,
        constants={"eps": TORCH_EPS},
        derive=TIED_HEADS,
    )((lambda act: lambda: _decoder_target(act))(_activation))


# --- nn.LayerNorm -------------------------------------------------------------------------------------------
@builtin(
    "torch.nn.LayerNorm",
    "norm.layer_norm[eps]",
    description=(
        "nn.LayerNorm(d_e, eps=ε) over the last axis (the token's d_e features), population variance, "
        "(h − μ)/√(σ² + ε); torch's default ε = 1e-5."
    ),
    mapping={"alpha": "weight", "beta": "bias", "eps": "eps", "d_e": "normalized_shape"},
    constants={"eps": TORCH_EPS},
)
def _layer_norm() -> Callable:
    def layer_norm(
        H: Float[Tensor, "*batch n d_e"],
        alpha: Float[Tensor, " d_e"],
        beta: Float[Tensor, " d_e"],
        eps: float,
    ) -> Float[Tensor, "*batch n d_e"]:
        ln = build(nn.LayerNorm, H.shape[-1], eps=eps, like=H)
        return call(ln, {"weight": alpha, "bias": beta}, H)

    return layer_norm
