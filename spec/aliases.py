"""Names people look for, as aliases of catalogue ids: "a GPT-2 block" is ``transformer.block_pre_ln[eps]``.

The tutorial's ids stay the catalogue's; an alias is resolved by ``spec.get`` (so ``lmspec show``,
``lmspec audit --as`` and the Python API take it) and listed by ``lmspec list``. Each says what it names, in
the words of the code it stands for.
"""

#: alias -> (the catalogue id or variant id, what it names)
ALIASES: dict[str, tuple[str, str]] = {
    "gpt2.block": ("transformer.block_pre_ln[eps]", "a GPT-2 block: pre-LN, GELU (tanh), ε in the norms"),
    "bert.layer": ("transformer.block_post_ln[eps]", "a BERT layer: post-LN, exact GELU, ε in the norms"),
    "vit.block": ("transformer.block_pre_ln[gelu_eps]", "a ViT block: pre-LN, exact GELU, ε in the norms"),
    "transformer.encoder_layer": (
        "transformer.block_post_ln[relu_eps]",
        "torch's nn.TransformerEncoderLayer: post-LN, ReLU, ε",
    ),
    "transformer.encoder_layer_norm_first": (
        "transformer.block_pre_ln[relu_eps]",
        "nn.TransformerEncoderLayer(norm_first=True): pre-LN, ReLU, ε",
    ),
    "transformer.decoder_layer": ("transformer.decoder_block[eps]", "torch's nn.TransformerDecoderLayer"),
    "transformer.mlp": ("transformer.ffn", "the position-wise feed-forward network (an MLP block)"),
    "attention.sdpa": ("attention.scaled_dot_product", "F.scaled_dot_product_attention"),
    "attention.mha": ("attention.multi_head", "multi-head attention (nn.MultiheadAttention, GPT2Attention)"),
    "norm.layernorm": ("norm.layer_norm[eps]", "nn.LayerNorm: layer normalisation with ε inside the root"),
    "rnn.cell": ("rnn.elman_step", "an RNN cell step (nn.RNNCell)"),
    "lstm.step": ("lstm.hidden", "an LSTM cell step: gates, cell state, hidden state (nn.LSTMCell)"),
    "gru.cell": ("gru.step", "a GRU cell step (nn.GRUCell)"),
}


def resolve(name: str) -> str:
    """The catalogue id an alias names; any other name as it is."""
    return ALIASES[name][0] if name in ALIASES else name
