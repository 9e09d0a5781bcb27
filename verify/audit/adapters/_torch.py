"""What the torch built-ins share (torch 2.13): building a torch object without touching the random stream,
calling it with the spec's weights, and the layout of multi-head attention's packed weights.

Every torch factory returns a callable annotated like impl/ (``H: Float[Tensor, "*batch n d_e"]`` …) that
builds the torch object on the inputs' device and dtype (uninitialised, as ``torch.nn.utils.skip_init``: the
global random stream is left alone), in eval mode with dropout 0, hands it the spec's weights through
``torch.func.functional_call`` (strict: every parameter of the module comes from the spec, and gradients
flow back to the spec's tensors) and calls it the way its users do. Leading batch axes are flattened into
torch's one batch axis (a single sequence gets a batch of one) and restored afterwards.

torch's attention modules tie the head widths to the model width (``head_dim = embed_dim // num_heads`` for
queries, keys and values): their built-ins declare ``derive=TIED_HEADS``.
"""

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.func import functional_call

#: LayerNorm's default ε in torch (nn.LayerNorm, layer_norm_eps of the transformer layers).
TORCH_EPS = 1e-5
#: The size relations of torch's multi-head attention: head_dim = embed_dim // num_heads, for q, k and v.
TIED_HEADS = {"d_e": "M*d_k", "d_v": "d_k"}


# --- building and calling torch objects ---------------------------------------------------------------------
def build(cls: type[nn.Module], *args, like: Tensor, **kwargs) -> nn.Module:
    """``cls(*args, **kwargs)`` on ``like``'s device and dtype, in eval mode, uninitialised (as
    ``torch.nn.utils.skip_init``, which nn.RNN's ``*args`` signature defeats): built on the meta device,
    then given empty storage; its weights come from the spec through functional_call."""
    module = cls(*args, device="meta", dtype=like.dtype, **kwargs)
    return module.to_empty(device=like.device).eval()


def call(module: nn.Module, params: Mapping[str, Tensor], *args, **kwargs):
    """``module(*args, **kwargs)`` with every parameter taken from ``params`` (strict: none left out)."""
    return functional_call(module, dict(params), args, kwargs, strict=True)


# --- multi-head attention's weights and masks ---------------------------------------------------------------
def tied_heads(who: str, d_e: int, M: int, d_k: int, d_v: int) -> None:
    if d_e != M * d_k or d_v != d_k:
        raise ValueError(
            f"{who} needs d_e = M·d_k and d_v = d_k (head_dim = embed_dim // num_heads for queries, keys "
            f"and values); found d_e={d_e}, M={M}, d_k={d_k}, d_v={d_v}"
        )


def head_rows(W: Tensor) -> Tensor:
    """A head family ``(M, d_e, d)`` as torch's rows ``(M·d, d_e)``: head m's are rows m·d..(m+1)·d."""
    return W.transpose(-1, -2).reshape(-1, W.shape[-2])


def mha_params(prefix: str, W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O) -> dict[str, Tensor]:
    """The spec's attention parameters as nn.MultiheadAttention's packed ones."""
    return {
        f"{prefix}in_proj_weight": torch.cat([head_rows(W) for W in (W_Q, W_K, W_V)]),  # (3 d_e, d_e)
        f"{prefix}in_proj_bias": torch.cat([b_Q.reshape(-1), b_K.reshape(-1), b_V.reshape(-1)]),
        f"{prefix}out_proj.weight": W_O.transpose(0, 1),  # (d_e, M d_v): A = P W_O + b_O
        f"{prefix}out_proj.bias": b_O,
    }


def per_head(S: Tensor, batch: tuple[int, ...], M: int) -> Tensor:
    """A mask as torch's attention modules take it: one (n, n) mask for everything as it is, per-example
    masks repeated for every head, ``(batch·M, n, n)`` (example b, head m at b·M + m)."""
    if S.dim() == 2:
        return S
    n_q, n_k = S.shape[-2:]
    return S.broadcast_to((*batch, n_q, n_k)).reshape(-1, n_q, n_k).repeat_interleave(M, dim=0)


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


__all__ = [
    "MHA_MAPPING",
    "TIED_HEADS",
    "TORCH_EPS",
    "build",
    "call",
    "head_rows",
    "mha_params",
    "per_head",
    "tied_heads",
]
