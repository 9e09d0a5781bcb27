# ruff: noqa: F722
"""Built-in audit targets: torch.nn and torch.nn.functional (torch 2.13), in the spec's glossary names.

Every factory returns a callable annotated like impl/ (``H: Float[Tensor, "*batch n d_e"]`` …) that builds the
torch object on the inputs' device and dtype (uninitialised, as ``torch.nn.utils.skip_init``: the global
random stream is left alone), in eval mode with dropout 0, hands it the spec's weights through
``torch.func.functional_call`` (strict: every parameter of the module comes from the spec, and gradients
flow back to the spec's tensors) and calls it the way its users do. Leading batch axes are flattened into
torch's one batch axis (a single sequence gets a batch of one) and restored afterwards.

What torch 2.13 does on a fully masked row (a query whose keys are all masked), found by running it:

- ``F.scaled_dot_product_attention`` (bool or float mask): zero weights, the spec's own convention;
- ``nn.MultiheadAttention`` called as users do (``need_weights=True``, the default): NaN, with every mask
  form (float or bool ``attn_mask``, ``key_padding_mask``) and on every path; with ``need_weights=False``
  it gives zero weights on the autograd path and NaN on the inference fast path (eval, no grad,
  ``batch_first``, an even head count, bool masks);
- ``nn.TransformerEncoderLayer``: zero weights on the path training takes (the one audited here), NaN on its
  inference fast path (eval, no grad, ``batch_first``, an even head count), float or bool mask alike.

torch's attention modules tie the head widths to the model width (``head_dim = embed_dim // num_heads`` for
queries, keys and values): their built-ins declare ``derive={"d_e": "M*d_k", "d_v": "d_k"}``.
"""

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn
from torch.func import functional_call

from . import builtin, causal_pin

#: LayerNorm's default ε in torch (nn.LayerNorm, layer_norm_eps of the transformer layers).
TORCH_EPS = 1e-5
#: The size relations of torch's multi-head attention: head_dim = embed_dim // num_heads, for q, k and v.
TIED_HEADS = {"d_e": "M*d_k", "d_v": "d_k"}


# --- helpers ----------------------------------------------------------------------------------------------
def _build(cls: type[nn.Module], *args, like: Tensor, **kwargs) -> nn.Module:
    """``cls(*args, **kwargs)`` on ``like``'s device and dtype, in eval mode, uninitialised (as
    ``torch.nn.utils.skip_init``, which nn.RNN's ``*args`` signature defeats): built on the meta device,
    then given empty storage; its weights come from the spec through functional_call."""
    module = cls(*args, device="meta", dtype=like.dtype, **kwargs)
    return module.to_empty(device=like.device).eval()


def _call(module: nn.Module, params: Mapping[str, Tensor], *args, **kwargs):
    """``module(*args, **kwargs)`` with every parameter taken from ``params`` (strict: none left out)."""
    return functional_call(module, dict(params), args, kwargs, strict=True)


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


def _tied_heads(who: str, d_e: int, M: int, d_k: int, d_v: int) -> None:
    if d_e != M * d_k or d_v != d_k:
        raise ValueError(
            f"{who} needs d_e = M·d_k and d_v = d_k (head_dim = embed_dim // num_heads for queries, keys "
            f"and values); found d_e={d_e}, M={M}, d_k={d_k}, d_v={d_v}"
        )


def _heads(W: Tensor) -> Tensor:
    """A head family ``(M, d_e, d)`` as torch's rows ``(M·d, d_e)``: head m's are rows m·d..(m+1)·d."""
    return W.transpose(-1, -2).reshape(-1, W.shape[-2])


def _mha_params(prefix: str, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O) -> dict[str, Tensor]:
    """The spec's attention parameters as nn.MultiheadAttention's packed ones."""
    return {
        f"{prefix}in_proj_weight": torch.cat([_heads(W_Q), _heads(W_K), _heads(W_V)]),  # (3 d_e, d_e)
        f"{prefix}in_proj_bias": torch.cat([b_Q.reshape(-1), b_K.reshape(-1), b_V.reshape(-1)]),
        f"{prefix}out_proj.weight": W_O.transpose(0, 1),  # (d_e, M d_v): A = P W_O + b_O
        f"{prefix}out_proj.bias": b_O,
    }


def _per_head(S: Tensor, batch: tuple[int, ...], M: int) -> Tensor:
    """A mask as torch's attention modules take it: one (n, n) mask for everything as it is, per-example
    masks repeated for every head, ``(batch·M, n, n)`` (example b, head m at b·M + m)."""
    if S.dim() == 2:
        return S
    n_q, n_k = S.shape[-2:]
    return S.broadcast_to((*batch, n_q, n_k)).reshape(-1, n_q, n_k).repeat_interleave(M, dim=0)


def _padded_keys(n: int) -> np.ndarray:
    """The padding the key_padding_mask built-ins fix: the last ⌈n/2⌉ keys (all of them when n = 1)."""
    return np.arange(n) >= n // 2


def padding_pin(sizes: Mapping[str, int]) -> np.ndarray:
    """The spec's S of that padding: −∞ in the columns of the padded keys, for every query."""
    n = int(sizes["n"])
    return np.where(np.broadcast_to(_padded_keys(n), (n, n)), -np.inf, 0.0)


MHA_MAPPING = (
    ("W_Q", "in_proj_weight[m·d_k:(m+1)·d_k, :]ᵀ for head m (query rows 0:d_e)"),
    ("b_Q", "in_proj_bias[m·d_k:(m+1)·d_k]"),
    ("W_K", "in_proj_weight[d_e + m·d_k : d_e + (m+1)·d_k, :]ᵀ (key rows d_e:2·d_e)"),
    ("b_K", "in_proj_bias[d_e + m·d_k : d_e + (m+1)·d_k]"),
    ("W_V", "in_proj_weight[2·d_e + m·d_v : 2·d_e + (m+1)·d_v, :]ᵀ (value rows 2·d_e:3·d_e)"),
    ("b_V", "in_proj_bias[2·d_e + m·d_v : 2·d_e + (m+1)·d_v]"),
    ("W_O", "out_proj.weightᵀ (P = [P_1, …, P_M] in head order)"),
    ("b_O", "out_proj.bias"),
    ("d_e", "embed_dim"),
    ("M", "num_heads"),
    ("d_k = d_v", "embed_dim // num_heads (head_dim)"),
)


def _prefixed(
    prefix: str, mapping: tuple[tuple[str, str], ...], suffix: str = ""
) -> tuple[tuple[str, str], ...]:
    return tuple((f"{k}{suffix}" if k.startswith(("W_", "b_")) else k, f"{prefix}{v}") for k, v in mapping)


# --- F.scaled_dot_product_attention -------------------------------------------------------------------------
_SDPA = "torch.nn.functional.scaled_dot_product_attention"
_SDPA_MAPPING = (("Q", "query (…, n, d_k)"), ("K", "key (…, n, d_k)"), ("V", "value (…, n, d_v)"))


@builtin(
    f"{_SDPA}[bool_mask]",
    "attention.scaled_dot_product",
    description=(
        "F.scaled_dot_product_attention(Q, K, V, attn_mask=S == 0): a boolean mask, True where the key takes "
        "part (SDPA's polarity, the opposite of nn.MultiheadAttention's). Scale 1/√d_k. A fully masked row "
        "gets zero weights (output 0), the spec's convention."
    ),
    mapping=(*_SDPA_MAPPING, ("S", "attn_mask = (S == 0), True = take part")),
)
def _sdpa_bool() -> Callable:
    def scaled_dot_product_attention(
        Q: Float[Tensor, "*batch n d_k"],
        K: Float[Tensor, "*batch n d_k"],
        V: Float[Tensor, "*batch n d_v"],
        S: Float[Tensor, "*#batch n n"],
    ) -> Float[Tensor, "*batch n d_v"]:
        return F.scaled_dot_product_attention(Q, K, V, attn_mask=S == 0)

    return scaled_dot_product_attention


@builtin(
    f"{_SDPA}[float_mask]",
    "attention.scaled_dot_product",
    description=(
        "F.scaled_dot_product_attention(Q, K, V, attn_mask=S): a float mask added to the scores, the spec's "
        "S (0 / −∞) as it is. Scale 1/√d_k. A fully masked row gets zero weights (output 0), the spec's "
        "convention."
    ),
    mapping=(*_SDPA_MAPPING, ("S", "attn_mask = S (additive)")),
)
def _sdpa_float() -> Callable:
    def scaled_dot_product_attention(
        Q: Float[Tensor, "*batch n d_k"],
        K: Float[Tensor, "*batch n d_k"],
        V: Float[Tensor, "*batch n d_v"],
        S: Float[Tensor, "*#batch n n"],
    ) -> Float[Tensor, "*batch n d_v"]:
        return F.scaled_dot_product_attention(Q, K, V, attn_mask=S)

    return scaled_dot_product_attention


@builtin(
    f"{_SDPA}[is_causal]",
    "attention.scaled_dot_product",
    description=(
        "F.scaled_dot_product_attention(Q, K, V, is_causal=True): no mask argument; torch builds the causal "
        "mask itself, so S is pinned to the spec's causal mask (no row is ever fully masked)."
    ),
    mapping=(*_SDPA_MAPPING, ("S", "is_causal=True (S pinned to the causal mask)")),
    pins={"S": causal_pin},
)
def _sdpa_causal() -> Callable:
    def scaled_dot_product_attention(
        Q: Float[Tensor, "*batch n d_k"],
        K: Float[Tensor, "*batch n d_k"],
        V: Float[Tensor, "*batch n d_v"],
    ) -> Float[Tensor, "*batch n d_v"]:
        return F.scaled_dot_product_attention(Q, K, V, is_causal=True)

    return scaled_dot_product_attention


# --- nn.MultiheadAttention ----------------------------------------------------------------------------------
_MHA = "torch.nn.MultiheadAttention"
_MHA_NAN = (
    "Called as users call it, mha(x, x, x, …) with need_weights=True (the default): a fully masked row gives "
    "NaN (torch's softmax of −∞ scores), the variant fully_masked_nan; with need_weights=False it gives zero "
    "weights on the autograd path but NaN on the inference fast path (eval, no grad, batch_first, even M, "
    "bool masks)."
)
_LAYOUT = {
    True: "batch_first=True: x is (batch, n, d_e)",
    False: "batch_first=False (torch's default): x is (n, batch, d_e), leading batch axes flattened and "
    "moved behind the tokens",
}


def _mha_target(batch_first: bool, mask: str) -> Callable:
    """nn.MultiheadAttention(d_e, M, batch_first=…) called on self-attention with the spec's mask as a
    float attn_mask ("float"), a bool attn_mask ("bool", True = not allowed) or a key_padding_mask fixed
    to the padding of ``padding_pin`` ("padding")."""

    def run(H: Tensor, params: list[Tensor], S: Tensor | None) -> Tensor:
        W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O = params
        M, d_e, d_k = W_Q.shape
        _tied_heads(_MHA, d_e, M, d_k, W_V.shape[-1])
        *batch, n, _ = H.shape
        mha = _build(nn.MultiheadAttention, d_e, M, dropout=0.0, batch_first=batch_first, like=H)
        x = H.reshape(-1, n, d_e)  # (B, n, d_e)
        B = x.shape[0]
        if mask == "float":
            kwargs = {"attn_mask": _per_head(S, tuple(batch), M)}
        elif mask == "bool":
            kwargs = {"attn_mask": _per_head(S != 0, tuple(batch), M)}  # True = NOT allowed
        else:
            padded = torch.as_tensor(_padded_keys(n), device=H.device)
            kwargs = {"key_padding_mask": padded.expand(B, n)}  # True = padding (ignored)
        x = x if batch_first else x.transpose(0, 1)  # (n, B, d_e)
        out, _ = _call(mha, _mha_params("", W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O), x, x, x, **kwargs)
        out = out if batch_first else out.transpose(0, 1)
        return out.reshape(*batch, n, d_e)

    if mask == "padding":

        def multihead_attention(
            H: Float[Tensor, "*batch n d_e"],
            W_Q: Float[Tensor, "M d_e d_k"],
            b_Q: Float[Tensor, "M d_k"],
            W_K: Float[Tensor, "M d_e d_k"],
            b_K: Float[Tensor, "M d_k"],
            W_V: Float[Tensor, "M d_e d_v"],
            b_V: Float[Tensor, "M d_v"],
            W_O: Float[Tensor, "M*d_v d_e"],
            b_O: Float[Tensor, " d_e"],
        ) -> Float[Tensor, "*batch n d_e"]:
            return run(H, [W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O], None)

        return multihead_attention

    def multihead_attention(
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
    ) -> Float[Tensor, "*batch n d_e"]:
        return run(H, [W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O], S)

    return multihead_attention


_MASK_DOC = {
    "float": (
        "attn_mask = S, float and added to the scores; one (n, n) mask as it is, per-example masks "
        "repeated per head to (batch·M, n, n)"
    ),
    "bool": (
        "attn_mask = (S != 0), bool with True = NOT allowed (nn.MultiheadAttention's polarity, the opposite "
        "of scaled_dot_product_attention's); per-example masks repeated per head to (batch·M, n, n)"
    ),
    "padding": (
        "key_padding_mask (batch, n), True = padding: the last ⌈n/2⌉ keys of every sequence (all of them "
        "when n = 1), so S is pinned to that padding mask"
    ),
}


def _register_mha(batch_first: bool, mask: str) -> None:
    options = (["batch_first"] if batch_first else []) + [
        {"float": "attn_mask", "bool": "bool_attn_mask", "padding": "key_padding_mask"}[mask]
    ]
    extra = (
        " The key_padding_mask cannot express a general S (only which keys are padding, per sequence): the "
        "audit fixes S to one padding pattern, so a target that reads the mask with the wrong polarity, or "
        "ignores it, fails."
        if mask == "padding"
        else ""
    )
    builtin(
        f"{_MHA}[{','.join(options)}]",
        "attention.multi_head[fully_masked_nan]",
        description=(
            f"nn.MultiheadAttention(d_e, M, dropout=0.0, batch_first={batch_first}) on self-attention, "
            "mha(x, x, x, …)[0]; "
            f"{_LAYOUT[batch_first]}; {_MASK_DOC[mask]}.{extra} {_MHA_NAN} torch ties d_e = M·d_k and "
            "d_v = d_k, so the heads_concat and single_head properties (one head at the same d_e) cannot be "
            "run on it."
        ),
        mapping=(*MHA_MAPPING, ("S", _MASK_DOC[mask])),
        pins={"S": padding_pin} if mask == "padding" else None,
        derive=TIED_HEADS,
    )(lambda: _mha_target(batch_first, mask))


for _batch_first in (True, False):
    for _mask in ("float", "bool", "padding"):
        _register_mha(_batch_first, _mask)


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
        _tied_heads("torch.nn.TransformerEncoderLayer", d_e, M, d_k, W_V.shape[-1])
        *batch, n, _ = H.shape
        layer = _build(
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
        params = _mha_params("self_attn.", W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O)
        params.update(_ln_ffn_params(2, (alpha_1, alpha_2), (beta_1, beta_2), W_1, b_1, W_2, b_2))
        with _training_path():
            out = _call(layer, params, H.reshape(-1, n, d_e), src_mask=_per_head(S, tuple(batch), M))
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
        _tied_heads("torch.nn.TransformerDecoderLayer", d_e, M, d_k, W_V.shape[-1])
        *batch, n_d, _ = H.shape
        n_e = H_enc.shape[-2]
        layer = _build(
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
        params = _mha_params("self_attn.", W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O)
        params.update(
            _mha_params(
                "multihead_attn.", W_Q_cross, b_Q_cross, W_K_cross, b_K_cross, W_V_cross, b_V_cross,
                W_O_cross, b_O_cross,
            )
        )  # fmt: skip
        alphas, betas = (alpha_1, alpha_2, alpha_3), (beta_1, beta_2, beta_3)
        params.update(_ln_ffn_params(3, alphas, betas, W_1, b_1, W_2, b_2))
        tgt_mask = nn.Transformer.generate_square_subsequent_mask(n_d, device=H.device, dtype=H.dtype)
        x, memory = H.reshape(-1, n_d, d_e), H_enc.reshape(-1, n_e, d_e)
        with _training_path():
            out = _call(layer, params, x, memory, tgt_mask=tgt_mask)
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
        ln = _build(nn.LayerNorm, H.shape[-1], eps=eps, like=H)
        return _call(ln, {"weight": alpha, "bias": beta}, H)

    return layer_norm


# --- nn.RNN / nn.LSTM / nn.GRU ------------------------------------------------------------------------------
_TWO_BIASES = (
    "torch holds two bias vectors whose sum is the spec's bias: all of it in bias_ih_l0, bias_hh_l0 = 0"
)


def _zeros(b: Tensor) -> Tensor:
    return torch.zeros_like(b)


def _rnn_params(W_x: Tensor, W_h: Tensor, b_h: Tensor) -> dict[str, Tensor]:
    return {"weight_ih_l0": W_x, "weight_hh_l0": W_h, "bias_ih_l0": b_h, "bias_hh_l0": _zeros(b_h)}


_RNN_MAPPING = {
    "W_x": "weight_ih_l0",
    "W_h": "weight_hh_l0",
    "b_h": "bias_ih_l0 + bias_hh_l0 (bias_ih_l0 = b_h, bias_hh_l0 = 0)",
    "d_e": "input_size",
    "d_h": "hidden_size",
}


@builtin(
    "torch.nn.RNN",
    "rnn.elman_step[sequence]",
    description=(
        "nn.RNN(d_e, d_h, nonlinearity='tanh', batch_first=True) over the whole sequence from h_0 = 0: "
        f"output, h_n = rnn(X); H = output. {_TWO_BIASES}."
    ),
    mapping={"X": "input (batch, n, d_e)", "H": "output (batch, n, d_h)", **_RNN_MAPPING},
)
def _rnn_sequence() -> Callable:
    def rnn(
        X: Float[Tensor, "*batch n d_e"],
        W_x: Float[Tensor, "d_h d_e"],
        W_h: Float[Tensor, "d_h d_h"],
        b_h: Float[Tensor, " d_h"],
    ) -> Float[Tensor, "*batch n d_h"]:
        *batch, n, d_e = X.shape
        module = _build(nn.RNN, d_e, W_h.shape[0], nonlinearity="tanh", batch_first=True, like=X)
        output, _ = _call(module, _rnn_params(W_x, W_h, b_h), X.reshape(-1, n, d_e))
        return output.reshape(*batch, n, -1)

    return rnn


@builtin(
    "torch.nn.RNN[h_0]",
    "rnn.elman_step",
    description=(
        "One step of nn.RNN(d_e, d_h, nonlinearity='tanh', batch_first=True): "
        f"output, h_n = rnn(x_t[:, None], h_0) with h_0 = h_{{t−1}}; h_t = h_n. {_TWO_BIASES}."
    ),
    mapping={
        "x_t": "input (batch, 1, d_e)",
        "h_prev": "h_0 (1, batch, d_h)",
        "h_t": "h_n[0]",
        **_RNN_MAPPING,
    },
)
def _rnn_step() -> Callable:
    def rnn(
        x_t: Float[Tensor, "*batch d_e"],
        h_prev: Float[Tensor, "*batch d_h"],
        W_x: Float[Tensor, "d_h d_e"],
        W_h: Float[Tensor, "d_h d_h"],
        b_h: Float[Tensor, " d_h"],
    ) -> Float[Tensor, "*batch d_h"]:
        *batch, d_e = x_t.shape
        d_h = W_h.shape[0]
        module = _build(nn.RNN, d_e, d_h, nonlinearity="tanh", batch_first=True, like=x_t)
        x, h_0 = x_t.reshape(-1, 1, d_e), h_prev.reshape(1, -1, d_h)
        _, h_n = _call(module, _rnn_params(W_x, W_h, b_h), x, h_0)
        return h_n[0].reshape(*batch, d_h)

    return rnn


def _lstm_params(p: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """torch's gate order i, f, g (= c̃), o."""
    b = torch.cat([p["b_i"], p["b_f"], p["b_c"], p["b_o"]])
    return {
        "weight_ih_l0": torch.cat([p["W_i"], p["W_f"], p["W_c"], p["W_o"]]),
        "weight_hh_l0": torch.cat([p["U_i"], p["U_f"], p["U_c"], p["U_o"]]),
        "bias_ih_l0": b,
        "bias_hh_l0": _zeros(b),
    }


_LSTM_MAPPING = {
    "W_i, W_f, W_c, W_o": "weight_ih_l0 row blocks 0, 1, 2, 3 (torch's gate order i, f, g = c̃, o)",
    "U_i, U_f, U_c, U_o": "weight_hh_l0 row blocks 0, 1, 2, 3",
    "b_i, b_f, b_c, b_o": "bias_ih_l0 blocks 0, 1, 2, 3 (+ bias_hh_l0 = 0)",
    "d_e": "input_size",
    "d_h": "hidden_size",
}
_LSTM_NOTE = f"{_TWO_BIASES} (each in torch's gate order i, f, g, o)"


def _lstm_step_signature(run: Callable) -> Callable:
    def lstm(
        x_t: Float[Tensor, "*batch d_e"],
        h_prev: Float[Tensor, "*batch d_h"],
        c_prev: Float[Tensor, "*batch d_h"],
        W_f: Float[Tensor, "d_h d_e"],
        U_f: Float[Tensor, "d_h d_h"],
        b_f: Float[Tensor, " d_h"],
        W_i: Float[Tensor, "d_h d_e"],
        U_i: Float[Tensor, "d_h d_h"],
        b_i: Float[Tensor, " d_h"],
        W_o: Float[Tensor, "d_h d_e"],
        U_o: Float[Tensor, "d_h d_h"],
        b_o: Float[Tensor, " d_h"],
        W_c: Float[Tensor, "d_h d_e"],
        U_c: Float[Tensor, "d_h d_h"],
        b_c: Float[Tensor, " d_h"],
    ) -> tuple[Float[Tensor, "*batch d_h"], Float[Tensor, "*batch d_h"]]:
        params = dict(W_f=W_f, U_f=U_f, b_f=b_f, W_i=W_i, U_i=U_i, b_i=b_i)
        params.update(W_o=W_o, U_o=U_o, b_o=b_o, W_c=W_c, U_c=U_c, b_c=b_c)
        return run(x_t, h_prev, c_prev, params)

    return lstm


@builtin(
    "torch.nn.LSTM[h_0,c_0]",
    "lstm.hidden",
    description=(
        "One step of nn.LSTM(d_e, d_h, batch_first=True): "
        "output, (h_n, c_n) = lstm(x_t[:, None], (h_0, c_0)) "
        f"with h_0 = h_{{t−1}}, c_0 = c_{{t−1}}; h_t = h_n, c_t = c_n. {_LSTM_NOTE}."
    ),
    mapping={"x_t": "input (batch, 1, d_e)", "h_prev, c_prev": "(h_0, c_0)", "h_t, c_t": "(h_n[0], c_n[0])"}
    | _LSTM_MAPPING,
)
def _lstm_step() -> Callable:
    def run(x_t: Tensor, h_prev: Tensor, c_prev: Tensor, p: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        *batch, d_e = x_t.shape
        d_h = p["W_f"].shape[0]
        module = _build(nn.LSTM, d_e, d_h, batch_first=True, like=x_t)
        state = (h_prev.reshape(1, -1, d_h), c_prev.reshape(1, -1, d_h))
        _, (h_n, c_n) = _call(module, _lstm_params(p), x_t.reshape(-1, 1, d_e), state)
        return h_n[0].reshape(*batch, d_h), c_n[0].reshape(*batch, d_h)

    return _lstm_step_signature(run)


@builtin(
    "torch.nn.LSTM",
    "lstm.hidden[sequence]",
    description=(
        "nn.LSTM(d_e, d_h, batch_first=True) from h_0 = c_0 = 0. H is the output of one call over the whole "
        "sequence, output, _ = lstm(X); torch returns only the last cell state, so C = [c_1, …, c_n] is read "
        "from the same module stepped token by token, _, (h, c) = lstm(X[:, t:t+1], (h, c)), as a decoding "
        f"loop calls it. {_LSTM_NOTE}."
    ),
    mapping={"X": "input (batch, n, d_e)", "H": "output", "C": "c_n of each step, stacked"} | _LSTM_MAPPING,
)
def _lstm_sequence() -> Callable:
    def lstm(
        X: Float[Tensor, "*batch n d_e"],
        W_f: Float[Tensor, "d_h d_e"],
        U_f: Float[Tensor, "d_h d_h"],
        b_f: Float[Tensor, " d_h"],
        W_i: Float[Tensor, "d_h d_e"],
        U_i: Float[Tensor, "d_h d_h"],
        b_i: Float[Tensor, " d_h"],
        W_o: Float[Tensor, "d_h d_e"],
        U_o: Float[Tensor, "d_h d_h"],
        b_o: Float[Tensor, " d_h"],
        W_c: Float[Tensor, "d_h d_e"],
        U_c: Float[Tensor, "d_h d_h"],
        b_c: Float[Tensor, " d_h"],
    ) -> tuple[Float[Tensor, "*batch n d_h"], Float[Tensor, "*batch n d_h"]]:
        *batch, n, d_e = X.shape
        d_h = W_f.shape[0]
        params = _lstm_params(dict(W_f=W_f, U_f=U_f, b_f=b_f, W_i=W_i, U_i=U_i, b_i=b_i, W_o=W_o, U_o=U_o,
                                   b_o=b_o, W_c=W_c, U_c=U_c, b_c=b_c))  # fmt: skip
        module = _build(nn.LSTM, d_e, d_h, batch_first=True, like=X)
        x = X.reshape(-1, n, d_e)
        output, _ = _call(module, params, x)
        cells, state = [], None
        for t in range(n):
            _, state = _call(module, params, x[:, t : t + 1], state)
            cells.append(state[1][0])  # c_t: (B, d_h)
        C = torch.stack(cells, dim=-2)
        return output.reshape(*batch, n, d_h), C.reshape(*batch, n, d_h)

    return lstm


@builtin(
    "torch.nn.GRU",
    "gru.step[sequence]",
    description=(
        "nn.GRU(d_e, d_h, batch_first=True) over the whole sequence from h_0 = 0: output, h_n = gru(X); "
        "H = output. KNOWN DIFFERENCE: torch's GRU applies the reset gate after the recurrent product, "
        "h̃ = tanh(W x + b + r ⊙ (U h + b_U)) (the spec's one-step variant gru.step[reset_after]), while "
        "gru.step[sequence] unrolls the catalogue's h̃ = tanh(W x + U (r ⊙ h) + b): the audit fails on the "
        "values from the second token on. The spec has no unrolled reset_after form, and torch returns none "
        "of r_t, z_t, h̃_t, so gru.step[reset_after] itself cannot be audited on nn.GRU. torch's update gate "
        f"is the spec's 1 − z: its z-blocks are −W_z, −U_z, −b_z. {_TWO_BIASES} (b_U = 0)."
    ),
    mapping={
        "X": "input (batch, n, d_e)",
        "H": "output",
        "W_r, W_z, W": "weight_ih_l0 row blocks r, z, n: W_r, −W_z, W (torch's z is the spec's 1 − z)",
        "U_r, U_z, U": "weight_hh_l0 row blocks r, z, n: U_r, −U_z, U",
        "b_r, b_z, b": "bias_ih_l0 blocks r, z, n: b_r, −b_z, b (+ bias_hh_l0 = 0)",
        "d_e": "input_size",
        "d_h": "hidden_size",
    },
)
def _gru_sequence() -> Callable:
    def gru(
        X: Float[Tensor, "*batch n d_e"],
        W_r: Float[Tensor, "d_h d_e"],
        U_r: Float[Tensor, "d_h d_h"],
        b_r: Float[Tensor, " d_h"],
        W_z: Float[Tensor, "d_h d_e"],
        U_z: Float[Tensor, "d_h d_h"],
        b_z: Float[Tensor, " d_h"],
        W: Float[Tensor, "d_h d_e"],
        U: Float[Tensor, "d_h d_h"],
        b: Float[Tensor, " d_h"],
    ) -> Float[Tensor, "*batch n d_h"]:
        *batch, n, d_e = X.shape
        d_h = W.shape[0]
        bias = torch.cat([b_r, -b_z, b])
        params = {
            "weight_ih_l0": torch.cat([W_r, -W_z, W]),
            "weight_hh_l0": torch.cat([U_r, -U_z, U]),
            "bias_ih_l0": bias,
            "bias_hh_l0": _zeros(bias),
        }
        module = _build(nn.GRU, d_e, d_h, batch_first=True, like=X)
        output, _ = _call(module, params, X.reshape(-1, n, d_e))
        return output.reshape(*batch, n, d_h)

    return gru


# --- nn.Embedding / F.cross_entropy -------------------------------------------------------------------------
@builtin(
    "torch.nn.Embedding",
    "lm.embedding",
    description="nn.Embedding(v, d_e)(k): row k_i of weight, which holds Eᵀ (v × d_e).",
    mapping={
        "E": "weightᵀ (weight is v × d_e)",
        "k": "input (token ids)",
        "v": "num_embeddings",
        "d_e": "embedding_dim",
    },
)
def _embedding() -> Callable:
    def embedding(k: Int[Tensor, "*batch n"], E: Float[Tensor, "d_e v"]) -> Float[Tensor, "*batch n d_e"]:
        d_e, v = E.shape
        module = _build(nn.Embedding, v, d_e, like=E)
        return _call(module, {"weight": E.transpose(0, 1)}, k)

    return embedding


@builtin(
    "torch.nn.functional.cross_entropy",
    "lm.cross_entropy",
    description=(
        "F.cross_entropy on the logits of each sequence (n × v, classes last). "
        "ℓ = F.cross_entropy(Z, k, reduction='none') at every position (torch gives 0 at an ignored target, "
        "where the spec's ℓ is still defined, so ℓ is taken without ignore_index); the spec's keep is "
        "torch's ignore_index: the targets of dropped positions are set to ignore_index, then loss_sum = "
        "reduction='sum' and loss = reduction='mean' (the mean over kept positions; NaN when none is kept, "
        "as the spec says)."
    ),
    mapping={
        "Z": "input (n, v) per sequence: Zᵀ",
        "k": "target",
        "keep": "target = ignore_index (−100) where keep = 0",
        "ell": "reduction='none' (no position ignored)",
        "loss_sum": "reduction='sum' (ignored positions left out)",
        "loss": "reduction='mean' (ignored positions left out)",
    },
)
def _cross_entropy() -> Callable:
    def cross_entropy(
        Z: Float[Tensor, "*batch n v"], k: Int[Tensor, "*batch n"], keep: Bool[Tensor, "*batch n"]
    ) -> tuple[Float[Tensor, "*batch n"], Float[Tensor, "*batch"], Float[Tensor, "*batch"]]:
        *batch, n, v = Z.shape
        logits, targets = Z.reshape(-1, n, v), k.reshape(-1, n)
        ignored = targets.masked_fill(~keep.reshape(-1, n), -100)  # F.cross_entropy's default ignore_index
        ell = torch.stack(
            [F.cross_entropy(z, t, reduction="none") for z, t in zip(logits, targets, strict=True)]
        )
        loss_sum = torch.stack(
            [F.cross_entropy(z, t, reduction="sum") for z, t in zip(logits, ignored, strict=True)]
        )
        loss = torch.stack([F.cross_entropy(z, t) for z, t in zip(logits, ignored, strict=True)])
        return ell.reshape(*batch, n), loss_sum.reshape(batch), loss.reshape(batch)

    return cross_entropy


__all__ = ["MHA_MAPPING", "TIED_HEADS", "TORCH_EPS", "padding_pin"]
