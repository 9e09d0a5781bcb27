"""Multi-head attention as people write it: nanoGPT's fused ``c_attn``, an einsum function with per-head
weights, a sequence-first module with separate projections (torch's own layout), and their bugs.

Audited against attention.multi_head (equation (28)). nn.Linear stores ``weight`` as (out, in): the spec's
``W_Q^{(m)} ∈ ℝ^{d_e×d_k}`` of every head, transposed and stacked, is ``q_proj.weight`` of shape
``(M d_k) × d_e``.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from lmspec.verify.audit import causal_pin

from . import ZooCase

MHA = "attention.multi_head"

#: nanoGPT's fused projection: rows [q; k; v], each split into heads.
FUSED = {
    "c_attn.weight": "W_Q, W_K, W_V -> (3 M d_k) d_e",
    "c_attn.bias": "b_Q, b_K, b_V -> (3 M d_k)",
    "c_proj.weight": "W_O -> d_e M*d_v",
    "c_proj.bias": "b_O",
}
#: Separate q, k, v and output projections (torch.nn.MultiheadAttention's names).
SEPARATE = {
    "q_proj.weight": "W_Q -> (M d_k) d_e",
    "q_proj.bias": "b_Q -> (M d_k)",
    "k_proj.weight": "W_K -> (M d_k) d_e",
    "k_proj.bias": "b_K -> (M d_k)",
    "v_proj.weight": "W_V -> (M d_v) d_e",
    "v_proj.bias": "b_V -> (M d_v)",
    "out_proj.weight": "W_O -> d_e M*d_v",
    "out_proj.bias": "b_O",
}
SEPARATE_INIT = {"embed_dim": "d_e", "num_heads": "M"}
#: Modules that split d_e into M heads: d_e = M d_k and d_v = d_k.
HEADS = {"d_e": "M*d_k", "d_v": "d_k"}


# --- correct -----------------------------------------------------------------------------------------
class CausalSelfAttention(nn.Module):
    """nanoGPT's attention: one Linear for q, k and v, heads split with .view and .transpose."""

    def __init__(self, n_embd, n_head, block_size=64):
        super().__init__()
        assert n_embd % n_head == 0
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.n_head, self.n_embd = n_head, n_embd
        causal = torch.tril(torch.ones(block_size, block_size))
        self.register_buffer("bias", causal.view(1, 1, block_size, block_size))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = att @ v  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


def mha_einsum(x, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o, mask=None):
    """x: (batch, seq, d_model); w_q, w_k: (d_model, heads, d_head); w_v: (d_model, heads, d_value);
    w_o: (heads, d_value, d_model); mask: additive (seq, seq), 0 or −inf."""
    q = torch.einsum("bnd,dhk->bhnk", x, w_q) + b_q[:, None, :]
    k = torch.einsum("bnd,dhk->bhnk", x, w_k) + b_k[:, None, :]
    v = torch.einsum("bnd,dhk->bhnk", x, w_v) + b_v[:, None, :]
    logits = torch.einsum("bhqk,bhsk->bhqs", q, k) / math.sqrt(q.shape[-1])
    if mask is not None:
        logits = logits + mask
    dead = torch.isinf(logits).all(-1, keepdim=True)  # queries that may attend to nothing
    probs = torch.where(dead, 0.0, torch.softmax(logits.masked_fill(dead, 0.0), dim=-1))
    out = torch.einsum("bhqs,bhsv->bhqv", probs, v)
    return torch.einsum("bhqv,hvd->bqd", out, w_o) + b_o


class SeqFirstAttention(nn.Module):
    """Sequence-first like torch.nn.MultiheadAttention: x (seq, batch, embed), an additive float mask,
    heads folded into the batch with .view(T, B * H, hd).transpose(0, 1)."""

    def __init__(self, embed_dim, num_heads):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, embed_dim // num_heads
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x, attn_mask=None):
        T, B, E = x.shape
        H, hd = self.num_heads, self.head_dim
        q = self.q_proj(x).view(T, B * H, hd).transpose(0, 1)  # (B*H, T, hd)
        k = self.k_proj(x).view(T, B * H, hd).transpose(0, 1)
        v = self.v_proj(x).view(T, B * H, hd).transpose(0, 1)
        scores = torch.bmm(q, k.transpose(1, 2)) / math.sqrt(hd)
        if attn_mask is not None:
            scores = scores + attn_mask
        weights = torch.softmax(scores, dim=-1)
        weights = torch.where(torch.isnan(weights), torch.zeros_like(weights), weights)
        out = torch.bmm(weights, v)  # (B*H, T, hd)
        out = out.transpose(0, 1).contiguous().view(T, B, E)
        return self.out_proj(out)


# --- buggy -------------------------------------------------------------------------------------------
class BatchFirstAttention(nn.Module):
    """Batch-first with separate projections and a bool mask (True = attend); the bugs below override one
    step each."""

    def __init__(self, embed_dim, num_heads, bias=True, out_bias=True):
        super().__init__()
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=out_bias)

    def split(self, t):
        B, T, _ = t.shape
        return t.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, hd)

    def scale(self):
        return self.head_dim**-0.5

    def weights(self, scores, mask):
        if mask is not None:
            scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        return torch.softmax(scores, dim=-1).nan_to_num(0.0)

    def merge(self, out):
        B, H, T, hd = out.shape
        return out.transpose(1, 2).reshape(B, T, H * hd)

    def forward(self, x, mask=None):
        q, k, v = self.split(self.q_proj(x)), self.split(self.k_proj(x)), self.split(self.v_proj(x))
        scores = (q @ k.transpose(-2, -1)) * self.scale()
        return self.out_proj(self.merge(self.weights(scores, mask) @ v))


class ScaledByModelDim(BatchFirstAttention):
    def scale(self):
        return 1.0 / math.sqrt(self.embed_dim)  # the model width, not the head width


class MergedWithoutTranspose(BatchFirstAttention):
    def merge(self, out):
        B, H, T, hd = out.shape
        return out.contiguous().view(B, T, H * hd)  # (B, H, T, hd) read as (B, T, H*hd)


class NaNOnFullyMasked(BatchFirstAttention):
    def weights(self, scores, mask):
        if mask is not None:
            scores = scores.masked_fill(mask.unsqueeze(1) == 0, float("-inf"))
        return torch.softmax(scores, dim=-1)  # 0/0 on a row with every key masked


class NoOutputBias(BatchFirstAttention):
    def __init__(self, embed_dim, num_heads):
        super().__init__(embed_dim, num_heads, out_bias=False)  # q, k, v keep their biases


class BiasFree(BatchFirstAttention):
    def __init__(self, embed_dim, num_heads):
        super().__init__(embed_dim, num_heads, bias=False, out_bias=False)  # as LLaMA


class BiasFreeWidthScaled(BiasFree):
    """Two departures at once: no biases, and scores scaled by the model width."""

    def scale(self):
        return 1.0 / math.sqrt(self.embed_dim)


BATCH_FIRST = "x:H=b n d_e, mask:S=b n n -> b n d_e"
#: How every BatchFirstAttention subclass is audited.
AUDIT = {
    "init": SEPARATE_INIT,
    "derive": HEADS,
    "params": SEPARATE,
    "layout": BATCH_FIRST,
    "mask": "bool_keep",
}
NO_BIASES = {k: v for k, v in SEPARATE.items() if k.endswith("weight")}
NO_OUT_BIAS = {k: v for k, v in SEPARATE.items() if k != "out_proj.bias"}

CASES = [
    ZooCase("nanogpt_causal_self_attention", CausalSelfAttention, as_=MHA, verdict="pass",
            init={"n_embd": "d_e", "n_head": "M", "block_size": 64}, params=FUSED, derive=HEADS,
            layout="x:H=b n d_e -> b n d_e", pins={"S": causal_pin}),
    ZooCase("mha_einsum", mha_einsum, as_=MHA, verdict="pass", mask="additive",
            not_inferred="weights passed as arguments: their head layouts are not inferred",
            layout="x:H=b n d_e, w_q:W_Q=d_e M d_k, b_q:b_Q=M d_k, w_k:W_K=d_e M d_k, b_k:b_K=M d_k, "
                   "w_v:W_V=d_e M d_v, b_v:b_V=M d_v, w_o:W_O=M d_v d_e, b_o:b_O=d_e, mask:S=n n -> b n d_e"),
    ZooCase("mha_seq_first", SeqFirstAttention, as_=MHA, verdict="pass", init=SEPARATE_INIT, derive=HEADS,
            params=SEPARATE, layout="x:H=n b d_e, attn_mask:S=n n -> n b d_e", mask="additive"),
    ZooCase("mha_batch_first", BatchFirstAttention, as_=MHA, verdict="pass", **AUDIT),
    ZooCase("mha_scale_sqrt_d_e", ScaledByModelDim, as_=MHA, **AUDIT, verdict="variant",
            matched=("scale_sqrt_d_e",), bug="scores scaled by 1/√embed_dim", tags=("wrong_scale",),
            caught_by=("value=oracle",)),
    ZooCase("mha_merge_without_transpose", MergedWithoutTranspose, as_=MHA, **AUDIT, verdict="fail",
            bug="(B, H, T, hd).view(B, T, H*hd)", tags=("heads_merge",),
            caught_by=("value=oracle",)),
    ZooCase("mha_fully_masked_nan", NaNOnFullyMasked, as_=MHA, **AUDIT, verdict="variant",
            matched=("fully_masked_nan",), bug="softmax of a row of −inf: NaN", tags=("fully_masked_row",),
            caught_by=("value=edges",)),
    # a bias the module lacks is stated (--absent), never drawn: with b_O held at 0 it computes the equation
    ZooCase("mha_no_out_bias", NoOutputBias, as_=MHA, **{**AUDIT, "params": NO_OUT_BIAS}, verdict="pass",
            extra={"absent": ("b_O",)}),
    # unstated, the equation cannot bind; the variant without biases binds and matches
    ZooCase("mha_bias_free", BiasFree, as_=MHA, **{**AUDIT, "params": NO_BIASES}, verdict="variant",
            matched=("no_bias",), bug="every projection built with bias=False (as LLaMA)",
            tags=("missing_bias",), caught_by=("binding",)),
    # held to the variant it states (no biases), the other departure is found combined with it
    ZooCase("mha_bias_free_width_scaled", BiasFreeWidthScaled, as_=MHA + "[no_bias]",
            **{**AUDIT, "params": NO_BIASES}, verdict="variant", matched=("no_bias+scale_sqrt_d_e",),
            bug="no biases and scores scaled by 1/√embed_dim", tags=("wrong_scale",),
            caught_by=("value=oracle",)),
]  # fmt: skip
