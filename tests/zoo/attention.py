"""Scaled dot-product attention and causal masks, written the way people write them.

Functional attention on ``(batch, heads, seq, head_dim)`` tensors with masks of every convention (bool
keep, bool ignore, additive, 1/0 floats), and the causal-mask helpers found in tutorials and in
``nn.Transformer.generate_square_subsequent_mask``. Audited against attention.scaled_dot_product and
attention.causal_mask.
"""

import math

import torch
import torch.nn.functional as F

from lmspec.verify.audit import causal_pin

from . import ZooCase

SDPA = "attention.scaled_dot_product"
BHND = "q=b h n d_k, k=b h n d_k, v=b h n d_v, mask:S=b h n n -> b h n d_v"


# --- correct -----------------------------------------------------------------------------------------
def sdpa_bhnd(q, k, v, mask=None):
    """q, k, v: (batch, heads, seq, head_dim); mask: bool, True where the query may attend."""
    d_k = q.size(-1)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(d_k)
    if mask is not None:
        att = att.masked_fill(~mask, float("-inf"))
    att = F.softmax(att, dim=-1)
    att = torch.nan_to_num(att, nan=0.0)  # a query with nothing to attend to gets no weight
    return att @ v


def attend_ignore_mask(query, key, value, mask=None):
    """Same layout; ``mask`` is True for the keys to IGNORE (the key_padding_mask convention)."""
    scores = torch.matmul(query, key.transpose(-1, -2)) * query.shape[-1] ** -0.5
    if mask is not None:
        scores = scores.masked_fill(mask, -math.inf)
    weights = scores.softmax(-1)
    if mask is not None:
        weights = weights.masked_fill(mask.all(-1, keepdim=True), 0.0)
    return torch.matmul(weights, value)


# --- buggy -------------------------------------------------------------------------------------------
def sdpa_scale_by_d_v(q, k, v, mask=None):
    """Scales by the width of the values (``v.size(-1)``), not of the keys."""
    att = (q @ k.transpose(-2, -1)) / math.sqrt(v.size(-1))
    if mask is not None:
        att = att.masked_fill(~mask, float("-inf"))
    return torch.nan_to_num(F.softmax(att, dim=-1)) @ v


def sdpa_unscaled(q, k, v, mask=None):
    """Forgets the 1/√d_k (plain dot-product attention)."""
    att = q @ k.transpose(-2, -1)
    if mask is not None:
        att = att.masked_fill(~mask, float("-inf"))
    return torch.nan_to_num(F.softmax(att, dim=-1)) @ v


def sdpa_softmax_over_queries(q, k, v, mask=None):
    """Softmax over dim=-2: each key's column is normalised over the queries."""
    att = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(q.shape[-1])
    if mask is not None:
        att = att.masked_fill(~mask, float("-inf"))
    att = torch.nan_to_num(att.softmax(dim=-2))
    return torch.einsum("bhqk,bhkd->bhqd", att, v)


def sdpa_mask_fill_1e4(q, k, v, attention_mask=None):
    """BERT's original extended attention mask: 1.0 keep / 0.0 pad turned into (1 − m) · −10000."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.size(-1))
    if attention_mask is not None:
        scores = scores + (1.0 - attention_mask.to(scores.dtype)) * -10000.0
    return scores.softmax(dim=-1) @ v


def sdpa_fully_masked_nan(q, k, v, mask=None):
    """The textbook version: masked_fill(−inf) then softmax, so a fully masked row is 0/0 = NaN."""
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    if mask is not None:
        att = att.masked_fill(mask == 0, float("-inf"))
    return F.softmax(att, dim=-1) @ v


def sdpa_finfo_min(q, k, v, mask=None):
    """Hugging Face's eager attention: masked scores set to finfo.min, so a fully masked row is uniform."""
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    if mask is not None:
        att = att.masked_fill(~mask, torch.finfo(att.dtype).min)
    return F.softmax(att, dim=-1) @ v


def sdpa_polarity_inverted(q, k, v, mask=None):
    """Documented as 'mask: True = attend' but written as if True meant 'padding'."""
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    if mask is not None:
        att = att.masked_fill(mask, float("-inf"))
    return torch.nan_to_num(F.softmax(att, dim=-1)) @ v


def causal_attention_peek(q, k, v):
    """Causal attention that builds its own mask with triu(diagonal=2): token i also sees token i + 1."""
    n = q.size(-2)
    future = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(diagonal=2)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    att = att.masked_fill(future, float("-inf"))
    return F.softmax(att, dim=-1) @ v


def causal_attention(q, k, v):
    """Causal attention that builds its own mask: a lower-triangular keep matrix (correct)."""
    n = q.size(-2)
    keep = torch.tril(torch.ones(n, n, dtype=torch.bool, device=q.device))
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    return F.softmax(att.masked_fill(~keep, float("-inf")), dim=-1) @ v


# --- causal masks --------------------------------------------------------------------------------------
def square_subsequent_mask(sz):
    """nn.Transformer.generate_square_subsequent_mask: −inf above the diagonal, 0 on and below it."""
    return torch.triu(torch.full((sz, sz), float("-inf")), diagonal=1)


def subsequent_mask_diagonal(sz):
    """triu(diagonal=0): the diagonal is masked too, so token i cannot see itself."""
    return torch.triu(torch.full((sz, sz), float("-inf")), diagonal=0)


def subsequent_mask_peek(sz):
    """triu(diagonal=2): token i sees token i + 1."""
    return torch.triu(torch.full((sz, sz), float("-inf")), diagonal=2)


def causal_mask_1e4(seq_len):
    """(1 − tril) · −10000, as in many tutorials."""
    return (1.0 - torch.tril(torch.ones(seq_len, seq_len))) * -10000.0


def annotated_subsequent_mask(size):
    """The Annotated Transformer's subsequent_mask: a boolean keep mask of shape (1, size, size)."""
    attn_shape = (1, size, size)
    subsequent_mask = torch.triu(torch.ones(attn_shape), diagonal=1).type(torch.uint8)
    return subsequent_mask == 0


def future_mask_bool(size):
    """True above the diagonal: the positions to hide (an ignore mask, nn.MultiheadAttention's attn_mask)."""
    return torch.triu(torch.ones(size, size, dtype=torch.bool), diagonal=1)


CAUSAL = {"S": causal_pin}  # the spec's S these targets fix themselves (as is_causal=True does)

CASES = [
    ZooCase("sdpa_bhnd", sdpa_bhnd, as_=SDPA, layout=BHND, mask="bool_keep", verdict="pass"),
    ZooCase("sdpa_ignore_mask", attend_ignore_mask, as_=SDPA, verdict="pass",
            not_inferred="a mask named mask is read as a keep mask: True = masked says --mask bool_ignore",
            layout="query:Q=b h n d_k, key:K=b h n d_k, value:V=b h n d_v, mask:S=b h n n -> b h n d_v",
            mask="bool_ignore"),
    ZooCase("causal_attention_tril", causal_attention, as_=SDPA, verdict="pass",
            layout="q=b n d_k, k=b n d_k, v=b n d_v -> b n d_v", pins=CAUSAL),
    ZooCase("sdpa_scale_sqrt_d_v", sdpa_scale_by_d_v, as_=SDPA, layout=BHND, mask="bool_keep",
            verdict="fail", bug="scores divided by √d_v instead of √d_k", tags=("wrong_scale",),
            caught_by=("value=oracle",)),
    ZooCase("sdpa_unscaled", sdpa_unscaled, as_=SDPA, layout=BHND, mask="bool_keep",
            verdict="variant", matched=("unscaled",), bug="no 1/√d_k", tags=("wrong_scale",),
            caught_by=("value=oracle",)),
    ZooCase("sdpa_softmax_over_queries", sdpa_softmax_over_queries, as_=SDPA, layout=BHND,
            mask="bool_keep", verdict="fail", bug="softmax over dim=-2 (the queries)",
            tags=("softmax_axis",), caught_by=("value=oracle",)),
    ZooCase("sdpa_mask_fill_1e4", sdpa_mask_fill_1e4, as_=SDPA, mask="bool_keep",
            layout="q=b h n d_k, k=b h n d_k, v=b h n d_v, attention_mask:S=b h n n -> b h n d_v",
            verdict="variant", matched=("fill_1e4",), bug="masked scores get −10⁴, not −∞",
            tags=("mask_fill_1e4",), caught_by=("value=edges",)),
    ZooCase("sdpa_fully_masked_nan", sdpa_fully_masked_nan, as_=SDPA, layout=BHND, mask="bool_keep",
            verdict="variant", matched=("fully_masked_nan",), bug="a fully masked row gives NaN",
            tags=("fully_masked_row",), caught_by=("value=edges",)),
    ZooCase("sdpa_finfo_min", sdpa_finfo_min, as_=SDPA, layout=BHND, mask="bool_keep",
            verdict="variant", matched=("fully_masked_uniform",),
            bug="masked scores get finfo.min: a fully masked row gets uniform weights",
            tags=("fully_masked_row",), caught_by=("value=edges",)),
    ZooCase("sdpa_polarity_inverted", sdpa_polarity_inverted, as_=SDPA, layout=BHND, mask="bool_keep",
            verdict="variant", matched=("mask polarity inverted",),
            bug="a keep mask used as an ignore mask", tags=("mask_polarity",), caught_by=("value=oracle",)),
    ZooCase("causal_attention_peek", causal_attention_peek, as_=SDPA, verdict="fail",
            layout="q=b n d_k, k=b n d_k, v=b n d_v -> b n d_v", pins=CAUSAL,
            bug="causal mask built with triu(diagonal=2): one future token visible",
            tags=("causal_off_by_one",), caught_by=("value=oracle",)),
    ZooCase("square_subsequent_mask", square_subsequent_mask, as_="attention.causal_mask",
            layout="sz:n -> n n", verdict="pass"),
    ZooCase("subsequent_mask_diagonal", subsequent_mask_diagonal, as_="attention.causal_mask",
            layout="sz:n -> n n", verdict="fail", bug="triu(diagonal=0): the diagonal is masked",
            tags=("causal_off_by_one",), caught_by=("value=oracle",)),
    ZooCase("subsequent_mask_peek", subsequent_mask_peek, as_="attention.causal_mask",
            layout="sz:n -> n n", verdict="fail", bug="triu(diagonal=2): one future token visible",
            tags=("causal_off_by_one",), caught_by=("value=oracle",)),
    ZooCase("causal_mask_1e4", causal_mask_1e4, as_="attention.causal_mask", layout="seq_len:n -> n n",
            verdict="variant", matched=("fill_1e4",), bug="(1 − tril) · −10⁴ instead of −∞",
            tags=("mask_fill_1e4",), caught_by=("value=oracle",)),
    ZooCase("annotated_subsequent_mask", annotated_subsequent_mask, as_="attention.causal_mask",
            layout="size:n -> 1 n n", mask="bool_keep", verdict="pass"),
    ZooCase("future_mask_bool_ignore", future_mask_bool, as_="attention.causal_mask", layout="size:n -> n n",
            not_inferred="a returned boolean mask is read as a keep mask (--mask bool_ignore: True = masked)",
            mask="bool_ignore", verdict="pass"),
    ZooCase("future_mask_read_as_keep", future_mask_bool, as_="attention.causal_mask", layout="size:n -> n n",
            mask="bool_keep", verdict="variant", matched=("mask polarity inverted",),
            bug="an ignore mask returned where a keep mask is stated", tags=("mask_polarity",),
            caught_by=("value=oracle",)),
]  # fmt: skip
