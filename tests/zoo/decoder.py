"""Decoder blocks of encoder–decoder transformers, as from-scratch "Attention is all you need" repositories
write them on torch's nn.MultiheadAttention: masked self-attention (the causal mask built inside with
``torch.triu``), cross-attention to the encoder's output, an FFN in an ``nn.Sequential``, each sublayer
inside ``LayerNorm(x + sublayer(x))``. Audited against transformer.decoder_block[eps] (torch's layer norm
has ε = 1e-5) with nothing written: ``enc_output`` is H_enc, ``cross_attn`` the cross-attention, the FFN's
unnamed Sequential layers mapped by their shapes.
"""

import torch
from torch import nn

from . import ZooCase


class DecoderBlock(nn.Module):
    """The post-LN decoder block, correct."""

    def __init__(self, d_model, num_heads, d_ff):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, num_heads, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d_model, num_heads, batch_first=True)
        self.feed_forward = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Linear(d_ff, d_model))
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)

    def causal(self, x):
        n = x.size(1)
        return torch.triu(torch.full((n, n), float("-inf"), dtype=x.dtype, device=x.device), diagonal=1)

    def cross(self, x, enc_output):
        return self.cross_attn(x, enc_output, enc_output, need_weights=False)[0]

    def forward(self, x, enc_output):
        attn = self.self_attn(x, x, x, attn_mask=self.causal(x), need_weights=False)[0]
        x = self.norm1(x + attn)
        x = self.norm2(x + self.cross(x, enc_output))
        return self.norm3(x + self.feed_forward(x))


class SelfAttendingCrossBlock(DecoderBlock):
    """Bug: the "cross"-attention reads its keys and values from the decoder's own states."""

    def cross(self, x, enc_output):
        return self.cross_attn(x, x, x, need_weights=False)[0]


class UnmaskedDecoderBlock(DecoderBlock):
    """Bug: the self-attention's causal mask is left out: every token sees the future."""

    def forward(self, x, enc_output):
        x = self.norm1(x + self.self_attn(x, x, x, need_weights=False)[0])
        x = self.norm2(x + self.cross(x, enc_output))
        return self.norm3(x + self.feed_forward(x))


DEC = "transformer.decoder_block[eps]"
CASES = [
    ZooCase("decoder_block", DecoderBlock, as_=DEC, verdict="pass"),
    ZooCase("decoder_cross_on_self", SelfAttendingCrossBlock, as_=DEC, verdict="fail",
            bug="cross-attention over the decoder's own states", tags=("cross_attention_source",),
            caught_by=("value=oracle",)),
    ZooCase("decoder_unmasked", UnmaskedDecoderBlock, as_=DEC, verdict="fail",
            bug="the decoder's self-attention without its causal mask", tags=("decoder_unmasked",),
            caught_by=("value=oracle", "property:decoder_causal")),
]  # fmt: skip
