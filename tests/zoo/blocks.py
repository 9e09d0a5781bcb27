"""Transformer blocks as people write them: a GPT-2 block (pre-LN, fused c_attn, GELU-tanh, nn.LayerNorm
with its default ε), a Vaswani post-LN block with torch's parameter names and ReLU, and the slips: a
'GPT-2' block that normalises after the residual sum (post-LN), one that takes the residual from the
normalised input, and a GPT-2-style stack whose blocks are post-LN. Audited against
transformer.block_pre_ln, transformer.block_post_ln and transformer.stack.

Every block takes an additive float mask (0 / −inf), like ``attn_mask`` in torch.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import ZooCase


class GPT2Attention(nn.Module):
    """Fused c_attn, heads by .view/.transpose, additive mask; a query with every key masked gets 0."""

    def __init__(self, d_model, n_head):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(d_model, 3 * d_model)
        self.c_proj = nn.Linear(d_model, d_model)

    def forward(self, x, attn_mask=None):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        att = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
        if attn_mask is not None:
            att = att + attn_mask.unsqueeze(1)
        att = torch.softmax(att, dim=-1).nan_to_num(0.0)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, d_model, d_ff):
        super().__init__()
        self.c_fc = nn.Linear(d_model, d_ff)
        self.c_proj = nn.Linear(d_ff, d_model)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class GPT2Block(nn.Module):
    def __init__(self, d_model, n_head, d_ff):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.attn = GPT2Attention(d_model, n_head)
        self.ln_2 = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model, d_ff)

    def forward(self, x, attn_mask=None):
        x = x + self.attn(self.ln_1(x), attn_mask)
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT2BlockPostLN(GPT2Block):
    """Same parameters, but each residual sum is normalised (the original transformer's order)."""

    def forward(self, x, attn_mask=None):
        x = self.ln_1(x + self.attn(x, attn_mask))
        x = self.ln_2(x + self.mlp(x))
        return x


class WidthScaledAttention(GPT2Attention):
    """Scores divided by √d_model, as in code that reuses the model width for the head width."""

    def forward(self, x, attn_mask=None):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        att = q @ k.transpose(-2, -1) / math.sqrt(C)
        if attn_mask is not None:
            att = att + attn_mask.unsqueeze(1)
        att = torch.softmax(att, dim=-1).nan_to_num(0.0)
        return self.c_proj((att @ v).transpose(1, 2).reshape(B, T, C))


class GPT2BlockWidthScaled(GPT2Block):
    """A GPT-2 block whose attention scales its scores by 1/√d_e: the block fails, its attention is named."""

    def __init__(self, d_model, n_head, d_ff):
        super().__init__(d_model, n_head, d_ff)
        self.attn = WidthScaledAttention(d_model, n_head)


class GPT2BlockNormedResidual(GPT2Block):
    """Overwrites x with its normalised version, so the residual carries LN(x) instead of x."""

    def forward(self, x, attn_mask=None):
        x = self.ln_1(x)
        x = x + self.attn(x, attn_mask)
        x = x + self.mlp(self.ln_2(x))
        return x


class EncoderLayer(nn.Module):
    """Vaswani's post-LN layer with torch.nn.TransformerEncoderLayer's names: ReLU, LayerNorm ε = 1e-5,
    separate q/k/v projections inside self_attn."""

    def __init__(self, d_model, nhead, dim_feedforward):
        super().__init__()
        self.nhead, self.head_dim = nhead, d_model // nhead
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def _sa_block(self, x, attn_mask):
        B, T, E = x.shape
        q, k, v = (
            p(x).reshape(B, T, self.nhead, self.head_dim).permute(0, 2, 1, 3)
            for p in (self.q_proj, self.k_proj, self.v_proj)
        )
        scores = torch.einsum("bhid,bhjd->bhij", q, k) / math.sqrt(self.head_dim)
        if attn_mask is not None:
            scores = scores + attn_mask[:, None]
        dead = torch.isneginf(scores).all(dim=-1, keepdim=True)
        weights = torch.softmax(scores.masked_fill(dead, 0.0), dim=-1).masked_fill(dead, 0.0)
        out = torch.einsum("bhij,bhjd->bihd", weights, v).reshape(B, T, E)
        return self.out_proj(out)

    def forward(self, src, src_mask=None):
        x = self.norm1(src + self._sa_block(src, src_mask))
        x = self.norm2(x + self.linear2(F.relu(self.linear1(x))))
        return x


class GPT2StylePostLNStack(nn.Module):
    """A stack of n_layer blocks meant to be GPT-2's, built from the post-LN block by mistake."""

    def __init__(self, n_layer, d_model, n_head, d_ff):
        super().__init__()
        self.h = nn.ModuleList(GPT2BlockPostLN(d_model, n_head, d_ff) for _ in range(n_layer))

    def forward(self, x, attn_mask=None):
        for block in self.h:
            x = block(x, attn_mask)
        return x


GPT2_PARAMS = {
    "attn.c_attn.weight": "W_Q, W_K, W_V -> (3 M d_k) d_e",
    "attn.c_attn.bias": "b_Q, b_K, b_V -> (3 M d_k)",
    "attn.c_proj.weight": "W_O -> d_e M*d_v",
    "attn.c_proj.bias": "b_O",
    "ln_1.weight": "alpha_1",
    "ln_1.bias": "beta_1",
    "ln_2.weight": "alpha_2",
    "ln_2.bias": "beta_2",
    "mlp.c_fc.weight": "W_1",
    "mlp.c_fc.bias": "b_1",
    "mlp.c_proj.weight": "W_2",
    "mlp.c_proj.bias": "b_2",
}
GPT2_INIT = {"d_model": "d_e", "n_head": "M", "d_ff": "d_f"}
BLOCK = "x:H=b n d_e, attn_mask:S=b n n -> b n d_e"
TORCH_PARAMS = {
    "q_proj.weight": "W_Q -> (M d_k) d_e",
    "q_proj.bias": "b_Q -> (M d_k)",
    "k_proj.weight": "W_K -> (M d_k) d_e",
    "k_proj.bias": "b_K -> (M d_k)",
    "v_proj.weight": "W_V -> (M d_v) d_e",
    "v_proj.bias": "b_V -> (M d_v)",
    "out_proj.weight": "W_O -> d_e M*d_v",
    "out_proj.bias": "b_O",
    "norm1.weight": "alpha_1",
    "norm1.bias": "beta_1",
    "norm2.weight": "alpha_2",
    "norm2.bias": "beta_2",
    "linear1.weight": "W_1",
    "linear1.bias": "b_1",
    "linear2.weight": "W_2",
    "linear2.bias": "b_2",
}
#: The stack's parameters: block l's tensors are layer l of the spec's L-stacked families.
STACK_PARAMS = {f"h.{{l}}.{path}": pattern for path, pattern in GPT2_PARAMS.items()}
EPS = {"eps": 1e-5}
HEADS = {"d_e": "M*d_k", "d_v": "d_k"}  # the modules split d_e into M heads

#: How every GPT2Block subclass is audited.
AUDIT = {"init": GPT2_INIT, "params": GPT2_PARAMS, "layout": BLOCK, "mask": "additive", "constants": EPS,
         "derive": HEADS}  # fmt: skip
PRE_LN = "transformer.block_pre_ln"

CASES = [
    ZooCase("gpt2_block", GPT2Block, as_=PRE_LN, **AUDIT, verdict="variant", matched=("eps",),
            bug="nn.LayerNorm's ε = 1e-5 (GPT-2's own)", tags=("ln_eps",), caught_by=("value=oracle",)),
    ZooCase("encoder_layer_post_ln_relu", EncoderLayer, as_="transformer.block_post_ln",
            init={"d_model": "d_e", "nhead": "M", "dim_feedforward": "d_f"}, params=TORCH_PARAMS,
            layout="src:H=b n d_e, src_mask:S=b n n -> b n d_e", mask="additive", constants=EPS,
            derive=HEADS, verdict="variant", matched=("relu_eps",), bug="ReLU and ε = 1e-5, Vaswani's form",
            tags=("ln_eps",), caught_by=("value=oracle",)),
    ZooCase("gpt2_block_post_ln", GPT2BlockPostLN, as_=PRE_LN, **AUDIT, verdict="variant",
            matched=("transformer.block_post_ln[gelu_tanh_eps]",),
            bug="LN(x + Sublayer(x)) in a block meant to be pre-LN", tags=("pre_post_ln_swap",),
            caught_by=("value=oracle",)),
    ZooCase("gpt2_block_normed_residual", GPT2BlockNormedResidual, as_=PRE_LN, **AUDIT, verdict="fail",
            bug="x = ln_1(x) before the residual: the stream carries LN(x)", tags=("residual_normed",),
            caught_by=("value=oracle", "property:block_zero_sublayers"),
            parts={"attn": "pass", "mlp": "pass", "ln_1": "pass", "ln_2": "pass"}),
    ZooCase("gpt2_block_width_scaled_attention", GPT2BlockWidthScaled, as_=PRE_LN, **AUDIT, verdict="fail",
            bug="the attention inside scales by 1/√d_e", tags=("wrong_scale",), caught_by=("value=oracle",),
            parts={"attn": "variant scale_sqrt_d_e", "mlp": "pass", "ln_1": "pass", "ln_2": "pass"}),
    ZooCase("gpt2_stack_post_ln", GPT2StylePostLNStack, as_="transformer.stack",
            **{**AUDIT, "init": {"n_layer": "L", **GPT2_INIT}, "params": STACK_PARAMS,
               "layout": "x:X=b n d_e, attn_mask:S=b n n -> b n d_e"},
            verdict="variant", matched=("post_ln_gelu_tanh_eps",), bug="a 'GPT-2' stack of post-LN blocks",
            tags=("pre_post_ln_swap",), caught_by=("value=oracle",)),
]  # fmt: skip
