"""Layers in the styles of two widely read repositories, written here from their public designs:

- BERT-pytorch (codertimo): ``MultiHeadedAttention(h, d_model)`` with its projections in an
  ``nn.ModuleList`` named ``linear_layers`` and an ``output_linear``, masks filled with −1e9 where
  ``mask == 0``; its ``PositionwiseFeedForward`` with ``w_1``/``w_2`` and GELU;
- timm's Vision Transformer: ``Attention(dim, num_heads, qkv_bias=False)`` with one fused ``qkv`` Linear
  and ``proj``, ``Mlp(in_features, hidden_features)`` with ``fc1``/``fc2``, and the pre-LN ``Block``;
- d2l.ai's RNN from scratch: ``RNNScratch(num_inputs, num_hiddens)`` with raw ``W_xh`` (in, out), a
  square ``W_hh`` used as ``state @ W_hh``, a loop ``for X in inputs`` over sequence-first inputs, an
  initial state ``torch.zeros(…)`` made in torch's default dtype, and its outputs returned as a list; its
  ``LSTMScratch`` likewise, with a weight per gate and source (``W_xi``, ``W_hi``, ``b_i``, …); its
  ``PositionWiseFFN(ffn_num_hiddens, ffn_num_outputs)`` of two ``nn.LazyLinear`` layers, and its
  ``MultiHeadAttention(num_hiddens, num_heads, dropout)``, lazy too, whose mask is ``valid_lens``, and
  the ``TransformerEncoderBlock`` built of them with ``AddNorm`` (``addnorm1.ln``, ``addnorm2.ln``);
- the book "Build a Large Language Model (From Scratch)": ``MultiHeadAttention(d_in, d_out,
  context_length, dropout, num_heads)`` with ``W_query``/``W_key``/``W_value`` and ``out_proj``, a causal
  ``triu`` buffer named ``mask``, and its ``LayerNorm(emb_dim)`` with ``scale``/``shift``.

Each is audited with nothing written; what the audit concludes is the documented fact of the design (the
−1e9 fill's uniform weights on a fully masked row; GELU; ViT's unmasked attention without q/k/v biases).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import ZooCase
from .masks import ViTAttention


class ScaledDotProduct(nn.Module):
    def forward(self, query, key, value, mask=None):
        scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(query.size(-1))
        if mask is not None:
            scores = scores.masked_fill(mask == 0, -1e9)
        return torch.matmul(F.softmax(scores, dim=-1), value)


class MultiHeadedAttention(nn.Module):
    """BERT-pytorch's attention: three projections in a ModuleList, then the output projection."""

    def __init__(self, h, d_model, dropout=0.1):
        super().__init__()
        self.d_k, self.h = d_model // h, h
        self.linear_layers = nn.ModuleList([nn.Linear(d_model, d_model) for _ in range(3)])
        self.output_linear = nn.Linear(d_model, d_model)
        self.attention = ScaledDotProduct()
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, query, key, value, mask=None):
        batch_size = query.size(0)
        query, key, value = [
            layer(x).view(batch_size, -1, self.h, self.d_k).transpose(1, 2)
            for layer, x in zip(self.linear_layers, (query, key, value), strict=True)
        ]
        x = self.attention(query, key, value, mask=mask)
        return self.output_linear(self.merge(x, batch_size))

    def merge(self, x, batch_size):
        return x.transpose(1, 2).contiguous().view(batch_size, -1, self.h * self.d_k)


class HeadsNotMovedAttention(MultiHeadedAttention):
    """Bug: the heads merged with .view without moving the head axis back behind the tokens."""

    def merge(self, x, batch_size):
        return x.contiguous().view(batch_size, -1, self.h * self.d_k)


class Attention(ViTAttention):
    """timm's ViT attention (the forward in zoo.masks): one fused qkv Linear, heads split by reshape/permute;
    timm's own default, no q/k/v biases."""

    def __init__(self, dim, num_heads=8, qkv_bias=False):
        super().__init__(dim, num_heads, qkv_bias)


class Mlp(nn.Module):
    """timm's Mlp: fc1, GELU, fc2 (hidden_features given by the block as mlp_ratio · dim)."""

    def __init__(self, in_features, hidden_features=None, act_layer=nn.GELU):
        super().__init__()
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """timm's pre-LN ViT block."""

    def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=False):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CausalMultiHeadAttention(nn.Module):
    """The book's causal attention: a triu buffer of the future, filled with −inf, heads split with .view."""

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False, diagonal=1):
        super().__init__()
        self.d_out, self.num_heads, self.head_dim = d_out, num_heads, d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        future = torch.triu(torch.ones(context_length, context_length), diagonal=diagonal)
        self.register_buffer("mask", future)

    def forward(self, x):
        b, num_tokens, _ = x.shape

        def heads(t):
            return t.view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)

        queries, keys, values = heads(self.W_query(x)), heads(self.W_key(x)), heads(self.W_value(x))
        attn_scores = queries @ keys.transpose(2, 3)
        attn_scores.masked_fill_(self.mask.bool()[:num_tokens, :num_tokens], -torch.inf)
        attn_weights = self.dropout(torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1))
        context = (attn_weights @ values).transpose(1, 2).contiguous().view(b, num_tokens, self.d_out)
        return self.out_proj(context)


class DiagonalHiddenAttention(CausalMultiHeadAttention):
    """Bug: the mask's triu from the diagonal (diagonal=0): each token cannot see itself."""

    def __init__(self, d_in, d_out, context_length, dropout, num_heads):
        super().__init__(d_in, d_out, context_length, dropout, num_heads, diagonal=0)


class BookLayerNorm(nn.Module):
    """The book's layer norm: scale and shift, biased variance, ε = 1e-5 inside the root."""

    def __init__(self, emb_dim):
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        return self.scale * (x - mean) / torch.sqrt(var + self.eps) + self.shift


class RNNScratch(nn.Module):
    """d2l.ai's RNN from scratch: (num_steps, batch, num_inputs) in, a list of states out."""

    def __init__(self, num_inputs, num_hiddens, sigma=0.01):
        super().__init__()
        self.num_inputs, self.num_hiddens = num_inputs, num_hiddens
        self.W_xh = nn.Parameter(torch.randn(num_inputs, num_hiddens) * sigma)
        self.W_hh = nn.Parameter(torch.randn(num_hiddens, num_hiddens) * sigma)
        self.b_h = nn.Parameter(torch.zeros(num_hiddens))

    def forward(self, inputs, state=None):
        if state is None:
            state = torch.zeros((inputs.shape[1], self.num_hiddens), device=inputs.device)
        else:
            (state,) = state
        outputs = []
        for X in inputs:
            state = torch.tanh(torch.matmul(X, self.W_xh) + torch.matmul(state, self.W_hh) + self.b_h)
            outputs.append(state)
        return outputs, state


class RNNStateNotCarried(RNNScratch):
    """A bug: each step's state is computed from the initial one, never carried to the next step."""

    def forward(self, inputs, state=None):
        init = torch.zeros((inputs.shape[1], self.num_hiddens), device=inputs.device)
        outputs = []
        for X in inputs:
            state = torch.tanh(torch.matmul(X, self.W_xh) + torch.matmul(init, self.W_hh) + self.b_h)
            outputs.append(state)
        return outputs, state


class LSTMScratch(nn.Module):
    """d2l.ai's LSTM from scratch: a weight per gate and source, (num_steps, batch, num_inputs) in."""

    def __init__(self, num_inputs, num_hiddens, sigma=0.01):
        super().__init__()
        self.num_hiddens = num_hiddens

        def init_weight(*shape):
            return nn.Parameter(torch.randn(*shape) * sigma)

        def triple():
            return (init_weight(num_inputs, num_hiddens), init_weight(num_hiddens, num_hiddens),
                    nn.Parameter(torch.zeros(num_hiddens)))  # fmt: skip

        self.W_xi, self.W_hi, self.b_i = triple()  # input gate
        self.W_xf, self.W_hf, self.b_f = triple()  # forget gate
        self.W_xo, self.W_ho, self.b_o = triple()  # output gate
        self.W_xc, self.W_hc, self.b_c = triple()  # input node

    def forward(self, inputs, H_C=None):
        if H_C is None:
            H = torch.zeros((inputs.shape[1], self.num_hiddens), device=inputs.device)
            C = torch.zeros((inputs.shape[1], self.num_hiddens), device=inputs.device)
        else:
            H, C = H_C
        outputs = []
        for X in inputs:
            I = torch.sigmoid(torch.matmul(X, self.W_xi) + torch.matmul(H, self.W_hi) + self.b_i)
            F = torch.sigmoid(torch.matmul(X, self.W_xf) + torch.matmul(H, self.W_hf) + self.b_f)
            O = torch.sigmoid(torch.matmul(X, self.W_xo) + torch.matmul(H, self.W_ho) + self.b_o)
            C_tilde = torch.tanh(torch.matmul(X, self.W_xc) + torch.matmul(H, self.W_hc) + self.b_c)
            C = self.cell(F, C, I, C_tilde)
            H = O * torch.tanh(C)
            outputs.append(H)
        return outputs, (H, C)

    def cell(self, F, C, I, C_tilde):
        return F * C + I * C_tilde


class LSTMGatePlus(LSTMScratch):
    """A bug: the input gate added to the candidate where it multiplies it."""

    def cell(self, F, C, I, C_tilde):
        return F * C + I + C_tilde


class PositionWiseFFN(nn.Module):
    """d2l.ai's position-wise FFN: two ``nn.LazyLinear`` layers, whose input widths their first call sets,
    with a ReLU between."""

    def __init__(self, ffn_num_hiddens, ffn_num_outputs):
        super().__init__()
        self.dense1 = nn.LazyLinear(ffn_num_hiddens)
        self.relu = nn.ReLU()
        self.dense2 = nn.LazyLinear(ffn_num_outputs)

    def forward(self, X):
        return self.dense2(self.relu(self.dense1(X)))


class ReluOnOutputFFN(PositionWiseFFN):
    """A bug: the activation applied to the output as well."""

    def forward(self, X):
        return self.relu(super().forward(X))


def _masked_softmax(X, valid_lens, visible):
    """d2l.ai's masked softmax: each query's scores beyond its sequence's valid length filled with −1e6
    (``visible(positions, valid_lens)`` says which keys are real)."""
    shape = X.shape
    lens = torch.repeat_interleave(valid_lens, shape[1]) if valid_lens.dim() == 1 else valid_lens.reshape(-1)
    flat = X.reshape(-1, shape[-1])
    keep = visible(torch.arange(shape[-1], device=X.device)[None, :], lens[:, None])
    return F.softmax(flat.masked_fill(~keep, -1e6).reshape(shape), dim=-1)


class D2LMultiHeadAttention(nn.Module):
    """d2l.ai's multi-head attention: ``nn.LazyLinear`` projections without biases (its default), heads
    folded into the batch (``transpose_qkv``), ``torch.bmm`` scores scaled by √d, and the mask given as
    ``valid_lens``, the number of real keys per sequence, repeated per head."""

    def __init__(self, num_hiddens, num_heads, dropout, bias=False):
        super().__init__()
        self.num_heads = num_heads
        self.dropout = nn.Dropout(dropout)
        self.W_q = nn.LazyLinear(num_hiddens, bias=bias)
        self.W_k = nn.LazyLinear(num_hiddens, bias=bias)
        self.W_v = nn.LazyLinear(num_hiddens, bias=bias)
        self.W_o = nn.LazyLinear(num_hiddens, bias=bias)

    def visible(self, positions, lens):
        return positions < lens

    def forward(self, queries, keys, values, valid_lens):
        queries = self.transpose_qkv(self.W_q(queries))
        keys = self.transpose_qkv(self.W_k(keys))
        values = self.transpose_qkv(self.W_v(values))
        if valid_lens is not None:
            valid_lens = torch.repeat_interleave(valid_lens, repeats=self.num_heads, dim=0)
        scores = torch.bmm(queries, keys.transpose(1, 2)) / math.sqrt(queries.shape[-1])
        weights = _masked_softmax(scores, valid_lens, self.visible)
        output = torch.bmm(self.dropout(weights), values)
        return self.W_o(self.transpose_output(output))

    def transpose_qkv(self, X):
        X = X.reshape(X.shape[0], X.shape[1], self.num_heads, -1).permute(0, 2, 1, 3)
        return X.reshape(-1, X.shape[2], X.shape[3])

    def transpose_output(self, X):
        X = X.reshape(-1, self.num_heads, X.shape[1], X.shape[2]).permute(0, 2, 1, 3)
        return X.reshape(X.shape[0], X.shape[1], -1)


class D2LLengthOffByOne(D2LMultiHeadAttention):
    """A bug: ``<=`` for ``<``, so each query also sees the first padded key."""

    def visible(self, positions, lens):
        return positions <= lens


class AddNorm(nn.Module):
    """d2l.ai's residual connection followed by layer normalization: ``ln(dropout(Y) + X)``."""

    def __init__(self, norm_shape, dropout):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.ln = nn.LayerNorm(norm_shape)

    def forward(self, X, Y):
        return self.ln(self.dropout(Y) + X)


class D2LEncoderBlock(nn.Module):
    """d2l.ai's Transformer encoder block: its multi-head attention, then ``addnorm1``, its FFN, then
    ``addnorm2`` (post-LN, ReLU), the mask given as ``valid_lens``."""

    def __init__(self, num_hiddens, ffn_num_hiddens, num_heads, dropout, use_bias=False):
        super().__init__()
        self.attention = D2LMultiHeadAttention(num_hiddens, num_heads, dropout, use_bias)
        self.addnorm1 = AddNorm(num_hiddens, dropout)
        self.ffn = PositionWiseFFN(ffn_num_hiddens, num_hiddens)
        self.addnorm2 = AddNorm(num_hiddens, dropout)

    def forward(self, X, valid_lens):
        Y = self.addnorm1(X, self.attention(X, X, X, valid_lens))
        return self.addnorm2(Y, self.ffn(Y))


FILLED = "masked scores filled with −1e9: a fully masked row averages its values uniformly"
CASES = [
    ZooCase("bert_pytorch_mha", MultiHeadedAttention, as_="attention.multi_head", verdict="variant",
            matched=("fully_masked_uniform",), bug=FILLED, tags=("fully_masked_row",),
            caught_by=("value=edges",)),
    ZooCase("bert_pytorch_heads_not_moved", HeadsNotMovedAttention, as_="attention.multi_head",
            verdict="fail", bug="heads merged without moving the head axis back", tags=("heads_merge",),
            caught_by=("value=oracle",)),
    ZooCase("timm_attention", Attention, as_="attention.multi_head", verdict="pass"),
    ZooCase("timm_mlp", Mlp, as_="transformer.ffn[gelu]", verdict="pass"),
    ZooCase("timm_block", Block, as_="transformer.block_pre_ln[gelu_eps]", verdict="pass"),
    ZooCase("book_causal_mha", CausalMultiHeadAttention, as_="attention.multi_head", verdict="pass"),
    ZooCase("book_causal_hides_diagonal", DiagonalHiddenAttention, as_="attention.multi_head", verdict="fail",
            bug="the causal mask hides the diagonal", tags=("causal_off_by_one",),
            caught_by=("value=oracle",)),
    ZooCase("book_layer_norm", BookLayerNorm, as_="norm.layer_norm[eps]", verdict="pass"),
    ZooCase("d2l_rnn_scratch", RNNScratch, as_="rnn.elman_step[sequence]", verdict="pass"),
    ZooCase("d2l_rnn_state_not_carried", RNNStateNotCarried, as_="rnn.elman_step[sequence]", verdict="fail",
            bug="the state is not carried from step to step", tags=("state_not_carried",),
            caught_by=("value=oracle",)),
    ZooCase("d2l_lstm_scratch", LSTMScratch, as_="lstm.hidden[sequence]", verdict="pass"),
    ZooCase("d2l_lstm_gate_plus", LSTMGatePlus, as_="lstm.hidden[sequence]", verdict="fail",
            bug="the input gate added to the candidate", tags=("lstm_gate_plus",),
            caught_by=("value=oracle",)),
    ZooCase("d2l_multi_head_attention", D2LMultiHeadAttention, as_="attention.multi_head", verdict="variant",
            matched=("no_bias + fully masked rows differ",),
            bug="no biases (d2l's default); a fully padded sequence's −1e6 fill averages its values",
            tags=("missing_bias", "fully_masked_row"), caught_by=("binding",)),
    ZooCase("d2l_lengths_off_by_one", D2LLengthOffByOne, as_="attention.multi_head[no_bias]", verdict="fail",
            bug="each query sees one padded key too", tags=("lengths_off_by_one",),
            caught_by=("value=oracle",)),
    ZooCase("d2l_position_wise_ffn", PositionWiseFFN, as_="transformer.ffn[relu]", verdict="pass"),
    ZooCase("d2l_encoder_block", D2LEncoderBlock, as_="transformer.encoder_layer", verdict="variant",
            matched=("fully masked rows differ",),
            bug="the −1e6 fill: a fully padded sequence averages its values", tags=("fully_masked_row",),
            caught_by=("value=edges",)),
    ZooCase("d2l_ffn_relu_on_output", ReluOnOutputFFN, as_="transformer.ffn[relu]", verdict="fail",
            bug="the activation applied to the FFN's output too", tags=("extra_activation",),
            caught_by=("value=oracle",)),
]  # fmt: skip
