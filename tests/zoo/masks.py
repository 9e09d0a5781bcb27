"""Masks as people pass them: per key, or not at all.

Most attention code does not take the spec's n×n additive mask S. It takes one value per key — torch's
``key_padding_mask`` (True = padding), Hugging Face's ``attention_mask`` (1 = a real token, integers), an
"extended" additive mask of shape ``(batch, 1, 1, n)`` — or no mask, because it builds a causal one itself (a
registered ``tril`` buffer, as nanoGPT) or attends everywhere (a ViT block). ``--mask`` says which; the audit
then draws S as the spec's padding mask of a keep vector (``attention.padding_mask``), or pins it to the
causal mask or to 0. Audited against attention.scaled_dot_product and attention.multi_head.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import ZooCase
from .mha import FUSED, HEADS, SEPARATE, SEPARATE_INIT, CausalSelfAttention

SDPA = "attention.scaled_dot_product"
MHA = "attention.multi_head"
#: The per-head function's layout, the mask one value per key of each sequence.
BHND_KEYS = "q=b h n d_k, k=b h n d_k, v=b h n d_v, {mask}:S=b n -> b h n d_v"


# --- correct ------------------------------------------------------------------------------------------------
def attention_key_padding(q, k, v, key_padding_mask=None):
    """(batch, heads, seq, head_dim); key_padding_mask (batch, seq), True at the padding (torch's way)."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if key_padding_mask is not None:
        scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
    return torch.nan_to_num(scores.softmax(dim=-1)) @ v  # a sequence of padding only attends to nothing


def attention_extended_mask(query, key, value, attention_mask):
    """Hugging Face's eager attention: ``attention_mask`` is already "extended", (batch, 1, 1, seq), 0 for a
    real token and −∞ for padding, added to the scores."""
    attn_weights = torch.matmul(query, key.transpose(2, 3)) / math.sqrt(query.shape[-1])
    attn_weights = attn_weights + attention_mask
    attn_weights = F.softmax(attn_weights, dim=-1)
    return torch.matmul(attn_weights, value)


class BertSelfAttention(nn.Module):
    """Hugging Face's BertSelfAttention (eager), as written there: the model's ``attention_mask`` of 1s and
    0s (integers) extended to ``(1 − mask) · finfo.min`` and added to the scores."""

    def __init__(self, hidden_size, num_attention_heads):
        super().__init__()
        self.num_attention_heads = num_attention_heads
        self.attention_head_size = hidden_size // num_attention_heads
        self.all_head_size = hidden_size
        self.query = nn.Linear(hidden_size, self.all_head_size)
        self.key = nn.Linear(hidden_size, self.all_head_size)
        self.value = nn.Linear(hidden_size, self.all_head_size)
        self.dense = nn.Linear(hidden_size, hidden_size)  # BertSelfOutput's projection, without its LN

    def transpose_for_scores(self, x):
        new_x_shape = (*x.size()[:-1], self.num_attention_heads, self.attention_head_size)
        return x.view(new_x_shape).permute(0, 2, 1, 3)  # (B, nh, T, hs)

    def forward(self, hidden_states, attention_mask):
        extended = attention_mask[:, None, None, :].to(hidden_states.dtype)
        extended = (1.0 - extended) * torch.finfo(hidden_states.dtype).min
        query_layer = self.transpose_for_scores(self.query(hidden_states))
        key_layer = self.transpose_for_scores(self.key(hidden_states))
        value_layer = self.transpose_for_scores(self.value(hidden_states))
        attention_scores = torch.matmul(query_layer, key_layer.transpose(-1, -2))
        attention_scores = attention_scores / math.sqrt(self.attention_head_size) + extended
        attention_probs = nn.functional.softmax(attention_scores, dim=-1)
        context_layer = torch.matmul(attention_probs, value_layer).permute(0, 2, 1, 3).contiguous()
        context_layer = context_layer.view(*context_layer.size()[:-2], self.all_head_size)
        return self.dense(context_layer)


BERT_PARAMS = {
    "query.weight": "W_Q -> (M d_k) d_e",
    "query.bias": "b_Q -> (M d_k)",
    "key.weight": "W_K -> (M d_k) d_e",
    "key.bias": "b_K -> (M d_k)",
    "value.weight": "W_V -> (M d_v) d_e",
    "value.bias": "b_V -> (M d_v)",
    "dense.weight": "W_O -> d_e M*d_v",
    "dense.bias": "b_O",
}


class TorchStyleSelfAttention(nn.Module):
    """Batch-first self-attention with torch.nn.MultiheadAttention's names and its ``key_padding_mask``
    (True = padding), via F.scaled_dot_product_attention, which takes True = attend: the mask is inverted
    and broadcast over heads and queries."""

    def __init__(self, embed_dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x, key_padding_mask=None):
        B, T, C = x.shape
        q, k, v = (
            p(x).view(B, T, self.num_heads, -1).transpose(1, 2)
            for p in (self.q_proj, self.k_proj, self.v_proj)
        )
        attn_mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, nh, T, hs)
        y = torch.nan_to_num(y)  # SDPA gives NaN for a query with no key: the spec's zero output
        return self.out_proj(y.transpose(1, 2).reshape(B, T, C))


class ViTAttention(nn.Module):
    """timm's ViT ``Attention``: fused qkv, no mask — every patch attends to every patch."""

    def __init__(self, dim, num_heads=8, qkv_bias=True):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, nh, N, hd)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        x = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


VIT_PARAMS = {
    "qkv.weight": "W_Q, W_K, W_V -> (3 M d_k) d_e",
    "qkv.bias": "b_Q, b_K, b_V -> (3 M d_k)",
    "proj.weight": "W_O -> d_e M*d_v",
    "proj.bias": "b_O",
}


class TorchMultiheadSelfAttention(nn.Module):
    """torch.nn.MultiheadAttention as a model calls it for self-attention: the same tensor as query, key and
    value, torch's key_padding_mask, and the (output, weights) pair it returns."""

    def __init__(self, d_model, nhead):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, nhead, batch_first=True)

    def forward(self, query, key, value, key_padding_mask=None):
        return self.attn(query, key, value, key_padding_mask=key_padding_mask, need_weights=True)


TORCH_MHA_PARAMS = {
    "attn.in_proj_weight": "W_Q, W_K, W_V -> (3 M d_k) d_e",
    "attn.in_proj_bias": "b_Q, b_K, b_V -> (3 M d_k)",
    "attn.out_proj.weight": "W_O -> d_e M*d_v",
    "attn.out_proj.bias": "b_O",
}


class ProjectionListAttention(nn.Module):
    """The tutorial-transformer style: four nn.Linear in a ModuleList (q, k, v, out), a source mask shaped
    (batch, 1, n) of 1 = real token, unsqueezed over heads, and masked scores filled with −1e9 (a finite
    fill: a sequence of padding only gets uniform weights)."""

    def __init__(self, h, d_model):
        super().__init__()
        self.h, self.d_k = h, d_model // h
        self.linears = nn.ModuleList(nn.Linear(d_model, d_model) for _ in range(4))

    def forward(self, query, key, value, mask=None):
        B = query.size(0)
        q, k, v = (
            lin(t).view(B, -1, self.h, self.d_k).transpose(1, 2)  # (B, h, n, d_k)
            for lin, t in zip(self.linears, (query, key, value), strict=False)
        )
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_k)
        if mask is not None:
            scores = scores.masked_fill(mask.unsqueeze(1) == 0, -1e9)  # (B, 1, 1, n)
        x = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, -1, self.h * self.d_k)
        return self.linears[-1](x)


LIST_PARAMS = {
    "linears.0.weight": "W_Q -> (M d_k) d_e",
    "linears.0.bias": "b_Q -> (M d_k)",
    "linears.1.weight": "W_K -> (M d_k) d_e",
    "linears.1.bias": "b_K -> (M d_k)",
    "linears.2.weight": "W_V -> (M d_v) d_e",
    "linears.2.bias": "b_V -> (M d_v)",
    "linears.3.weight": "W_O -> d_e (M d_v)",
    "linears.3.bias": "b_O",
}


# --- buggy --------------------------------------------------------------------------------------------------
def attention_masks_queries(q, k, v, key_padding_mask=None):
    """Broadcasts the padding over the query axis: padded queries are hidden, padded keys still seen."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    scores = scores.masked_fill(key_padding_mask[:, None, :, None], float("-inf"))
    return torch.nan_to_num(scores.softmax(dim=-1)) @ v


def attention_keep_as_padding(q, k, v, key_padding_mask=None):
    """Reads torch's key_padding_mask (True = padding) as a keep mask: attends to the padding only."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    scores = scores.masked_fill(~key_padding_mask[:, None, None, :], float("-inf"))
    return torch.nan_to_num(scores.softmax(dim=-1)) @ v


class CausalSelfAttentionSeesNext(CausalSelfAttention):
    """nanoGPT with the causal buffer one diagonal too high: each token also sees the next one."""

    def __init__(self, n_embd, n_head, block_size=64):
        super().__init__(n_embd, n_head, block_size)
        self.bias = torch.tril(torch.ones(block_size, block_size), diagonal=1).view(
            1, 1, block_size, block_size
        )


class ViTAttentionUnscaled(ViTAttention):
    """timm-style attention that forgot the 1/√d_k (``self.scale`` left at 1)."""

    def __init__(self, dim, num_heads=8, qkv_bias=True):
        super().__init__(dim, num_heads, qkv_bias)
        self.scale = 1.0


NANOGPT = {"init": {"n_embd": "d_e", "n_head": "M", "block_size": 64}, "params": FUSED, "derive": HEADS}
VIT = {"init": {"dim": "d_e", "num_heads": "M"}, "params": VIT_PARAMS, "derive": HEADS}

CASES = [
    ZooCase("key_padding_mask_function", attention_key_padding, as_=SDPA, verdict="pass", mask="key_padding",
            layout=BHND_KEYS.format(mask="key_padding_mask")),
    ZooCase("hf_extended_attention_mask", attention_extended_mask, as_=SDPA, mask="key_additive",
            not_inferred="attention_mask is read as Hugging Face's 1/0 input; the extended additive form is "
            "--mask key_additive",
            layout="query:Q=b h n d_k, key:K=b h n d_k, value:V=b h n d_v, attention_mask:S=b 1 1 n "
                   "-> b h n d_v",
            verdict="variant", matched=("fully_masked_nan",), bug="all padding: softmax of −∞ gives NaN",
            tags=("fully_masked_row",), caught_by=("value=edges",)),
    ZooCase("hf_bert_self_attention_int_mask", BertSelfAttention, as_=MHA, mask="key_keep_int",
            init={"hidden_size": "d_e", "num_attention_heads": "M"}, params=BERT_PARAMS, derive=HEADS,
            layout="hidden_states:H=b n d_e, attention_mask:S=b n -> b n d_e",
            verdict="variant", matched=("fully_masked_uniform",),
            bug="finfo.min, not −∞: a sequence of padding only gets uniform weights",
            tags=("fully_masked_row",), caught_by=("value=edges",)),
    ZooCase("torch_style_key_padding_module", TorchStyleSelfAttention, as_=MHA, verdict="pass",
            mask="key_padding", init=SEPARATE_INIT, params=SEPARATE, derive=HEADS,
            layout="x:H=b n d_e, key_padding_mask:S=b n -> b n d_e"),
    ZooCase("nanogpt_tril_buffer", CausalSelfAttention, as_=MHA, verdict="pass", mask="causal",
            layout="x:H=b n d_e -> b n d_e", **NANOGPT),
    ZooCase("vit_attention_unmasked", ViTAttention, as_=MHA, verdict="pass", mask="none",
            layout="x:H=b n d_e -> b n d_e", **VIT),
    ZooCase("padding_masks_queries", attention_masks_queries, as_=SDPA, verdict="fail", mask="key_padding",
            layout=BHND_KEYS.format(mask="key_padding_mask"), bug="padding broadcast over queries, not keys",
            tags=("mask_axis",), caught_by=("value=oracle",)),
    ZooCase("key_padding_read_as_keep", attention_keep_as_padding, as_=SDPA, mask="key_padding",
            layout=BHND_KEYS.format(mask="key_padding_mask"), verdict="variant",
            matched=("mask polarity inverted",), bug="key_padding_mask (True = pad) used as a keep mask",
            tags=("mask_polarity",), caught_by=("value=oracle",)),
    ZooCase("nanogpt_tril_sees_next_token", CausalSelfAttentionSeesNext, as_=MHA, verdict="fail",
            mask="causal",
            layout="x:H=b n d_e -> b n d_e", **NANOGPT, bug="tril(diagonal=1): each token sees the next",
            tags=("causal_off_by_one",), caught_by=("value=oracle", "property:causal")),
    ZooCase("vit_attention_unscaled", ViTAttentionUnscaled, as_=MHA, mask="none",
            layout="x:H=b n d_e -> b n d_e",
            **VIT, verdict="variant", matched=("unscaled",), bug="scores not scaled by 1/√d_k",
            tags=("wrong_scale",), caught_by=("value=oracle",)),
    ZooCase("torch_mha_called_x_x_x", TorchMultiheadSelfAttention, as_=MHA, mask="key_padding",
            init={"d_model": "d_e", "nhead": "M"}, params=TORCH_MHA_PARAMS, derive=HEADS,
            layout="query:H=b n d_e, key:H=b n d_e, value:H=b n d_e, key_padding_mask:S=b n -> b n d_e, _",
            verdict="variant", matched=("fully_masked_nan",), bug="a sequence of padding only: NaN",
            tags=("fully_masked_row",), caught_by=("value=edges",)),
    ZooCase("projection_list_source_mask", ProjectionListAttention, as_=MHA, mask="key_keep",
            init={"h": "M", "d_model": "d_e"}, params=LIST_PARAMS, derive=HEADS,
            layout="query:H=b n d_e, key:H=b n d_e, value:H=b n d_e, mask:S=b 1 n -> b n d_e",
            verdict="variant", matched=("fully_masked_uniform",), bug="−1e9 fill: uniform weights on padding",
            tags=("fully_masked_row",), caught_by=("value=edges",)),
]  # fmt: skip
