"""The "transformer from scratch" tutorial style (the widely copied PyTorch walk-through: a
``MultiHeadAttention`` with ``W_q``/``W_k``/``W_v``/``W_o``, ``split_heads``/``combine_heads``, masks filled
with −1e9; a ``PositionWiseFeedForward`` with ReLU; a post-LN ``EncoderLayer`` with ``nn.LayerNorm``).
Every class here is audited with nothing written: inference binds it, and the audit names what differs from
the tutorial's equations — the ReLU, torch's ε, and the −1e9 fill that averages a fully masked row."""

import math

import torch
from torch import nn

from . import ZooCase


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads):
        super().__init__()
        assert d_model % num_heads == 0, "d_model must be divisible by num_heads"
        self.d_model = d_model
        self.num_heads = num_heads
        self.d_k = d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)

    def scaled_dot_product_attention(self, Q, K, V, mask=None):
        attn_scores = torch.matmul(Q, K.transpose(-2, -1)) / math.sqrt(self.d_k)
        if mask is not None:
            attn_scores = attn_scores.masked_fill(mask == 0, -1e9)
        attn_probs = torch.softmax(attn_scores, dim=-1)
        return torch.matmul(attn_probs, V)

    def split_heads(self, x):
        batch_size, seq_length, _ = x.size()
        return x.view(batch_size, seq_length, self.num_heads, self.d_k).transpose(1, 2)

    def combine_heads(self, x):
        batch_size, _, seq_length, _ = x.size()
        return x.transpose(1, 2).contiguous().view(batch_size, seq_length, self.d_model)

    def forward(self, Q, K, V, mask=None):
        Q = self.split_heads(self.W_q(Q))
        K = self.split_heads(self.W_k(K))
        V = self.split_heads(self.W_v(V))
        attn_output = self.scaled_dot_product_attention(Q, K, V, mask)
        return self.W_o(self.combine_heads(attn_output))


class PositionWiseFeedForward(nn.Module):
    def __init__(self, d_model, d_ff):
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))


class EncoderLayer(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.feed_forward = PositionWiseFeedForward(d_model, d_ff)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask):
        attn_output = self.self_attn(x, x, x, mask)
        x = self.norm1(x + self.dropout(attn_output))
        ff_output = self.feed_forward(x)
        return self.norm2(x + self.dropout(ff_output))


class EncoderLayerResidualAfterNorm(EncoderLayer):
    """Bug: the FFN's residual is taken from before the first norm (the stream skips norm1)."""

    def forward(self, x, mask):
        attn_output = self.self_attn(x, x, x, mask)
        h = self.norm1(x + self.dropout(attn_output))
        return self.norm2(x + attn_output + self.dropout(self.feed_forward(h)))


FILLED = "masked scores filled with −1e9: a fully masked row averages its values where the spec gives 0"

CASES = [
    ZooCase("tutorial_mha", MultiHeadAttention, as_="attention.multi_head", verdict="variant",
            matched=("fully_masked_uniform",), bug=FILLED, tags=("fully_masked_row",),
            caught_by=("value=edges",)),
    ZooCase("tutorial_ffn", PositionWiseFeedForward, as_="transformer.ffn", verdict="variant",
            matched=("relu",), bug="ReLU where the tutorial's FFN has GELU", tags=("gelu_mixup",),
            caught_by=("value=oracle",)),
    ZooCase("tutorial_encoder_layer", EncoderLayer, as_="transformer.block_post_ln", verdict="variant",
            matched=("relu_eps + fully masked rows differ",), bug=f"ReLU, torch's ε, and {FILLED}",
            tags=("fully_masked_row", "ln_eps"), caught_by=("value=oracle", "value=edges")),
    ZooCase("tutorial_encoder_layer_residual_skips_norm", EncoderLayerResidualAfterNorm,
            as_="transformer.block_post_ln", verdict="fail", bug="the FFN's residual skips the first norm",
            tags=("residual_normed",), caught_by=("value=oracle",),
            parts={"self_attn": "variant fully_masked_uniform", "feed_forward": "variant relu",
                   "norm1": "pass", "norm2": "pass"}),
]  # fmt: skip
