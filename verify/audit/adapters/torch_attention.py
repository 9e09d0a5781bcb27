# ruff: noqa: F722
"""Built-in audit targets: ``F.scaled_dot_product_attention`` and ``nn.MultiheadAttention`` (torch 2.13).

What torch 2.13 does on a fully masked row (a query whose keys are all masked), found by running it:

- ``F.scaled_dot_product_attention`` (bool or float mask): zero weights, the spec's own convention;
- ``nn.MultiheadAttention`` called as users do (``need_weights=True``, the default): NaN, with every mask
  form (float or bool ``attn_mask``, ``key_padding_mask``) and on every path; with ``need_weights=False``
  it gives zero weights on the autograd path and NaN on the inference fast path (eval, no grad,
  ``batch_first``, an even head count, bool masks).

How the built-ins build and call torch's objects: _torch.
"""

from collections.abc import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from jaxtyping import Float
from torch import Tensor, nn

from ._registry import builtin, causal_pin
from ._torch import MHA_MAPPING, TIED_HEADS, build, call, mha_params, per_head, tied_heads


# --- the padding the key_padding_mask built-ins fix ---------------------------------------------------------
def _padded_keys(n: int) -> np.ndarray:
    """The padding the key_padding_mask built-ins fix: the last ⌈n/2⌉ keys (all of them when n = 1)."""
    return np.arange(n) >= n // 2


def padding_pin(sizes: Mapping[str, int]) -> np.ndarray:
    """The spec's S of that padding: −∞ in the columns of the padded keys, for every query."""
    n = int(sizes["n"])
    return np.where(np.broadcast_to(_padded_keys(n), (n, n)), -np.inf, 0.0)


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
        tied_heads(_MHA, d_e, M, d_k, W_V.shape[-1])
        *batch, n, _ = H.shape
        mha = build(nn.MultiheadAttention, d_e, M, dropout=0.0, batch_first=batch_first, like=H)
        x = H.reshape(-1, n, d_e)  # (B, n, d_e)
        B = x.shape[0]
        if mask == "float":
            kwargs = {"attn_mask": per_head(S, tuple(batch), M)}
        elif mask == "bool":
            kwargs = {"attn_mask": per_head(S != 0, tuple(batch), M)}  # True = NOT allowed
        else:
            padded = torch.as_tensor(_padded_keys(n), device=H.device)
            kwargs = {"key_padding_mask": padded.expand(B, n)}  # True = padding (ignored)
        x = x if batch_first else x.transpose(0, 1)  # (n, B, d_e)
        out, _ = call(mha, mha_params("", W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O), x, x, x, **kwargs)
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


__all__ = ["padding_pin"]
