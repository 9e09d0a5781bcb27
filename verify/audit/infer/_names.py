"""The names real code gives the equation's tensors, sizes, masks, constructor arguments, parameters and
outputs: the tables inference reads a target by (the face, infer/__init__, says how).
"""

#: The names real code gives the equation's tensors, by the kind of the symbol they can take. A name matching
#: the symbol itself (any case) wins over these.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "Q": ("query", "queries", "xq", "q_states", "query_states", "q"),
    "K": ("key", "keys", "xk", "k_states", "key_states", "k"),
    "V": ("value", "values", "xv", "v_states", "value_states", "v"),
    "Y_hat": ("probs", "probabilities", "y_hat", "p", "predictions", "preds"),
    "f_t": ("f", "forget", "forget_gate", "f_gate"),
    "i_t": ("i", "input_gate", "i_gate", "in_gate"),
    "o_t": ("o", "output_gate", "o_gate", "out_gate"),
    "c_tilde": ("g", "candidate", "c_hat", "cell_input", "g_t", "cell_gate", "c_candidate"),
    "c_prev": ("c", "cx", "c_0", "prev_c", "c_t_1", "cell", "cell_state", "c_tm1"),
    "h_prev": ("hx", "h_0", "prev_h", "h_t_1", "hidden", "h_tm1", "state", "h", "h_prev", "hidden_state"),
    "x_t": ("x", "input", "inputs", "xt", "x_i"),
    "alpha": ("weight", "gamma", "g", "scale", "ln_weight", "w", "gain"),
    "beta": ("bias", "b", "shift", "ln_bias", "offset"),
    "H_enc": ("memory", "encoder_hidden_states", "enc_output", "encoder_output", "encoder_out", "enc_out",
              "enc_outputs", "encoder_outputs", "mem", "enc", "enc_hidden"),
}  # fmt: skip


#: The names code gives the equation's scalar parameters, where a function takes them as arguments.
SCALAR_NAMES: dict[str, tuple[str, ...]] = {
    "tau": ("temperature", "temp", "t", "tau"),
    "eps": ("eps", "epsilon", "layer_norm_eps", "layer_norm_epsilon", "variance_epsilon"),
}


#: Names of a recurrent model's initial state, which an equation that fixes h_0 = 0 takes no input for:
#: passed None, which torch's recurrent layers read as zeros (their documented default).
INITIAL_STATES = ("hidden", "hx", "h0", "h_0", "state", "states", "init_state", "initial_state", "hc",
                  "hidden_state", "prev_state")  # fmt: skip


#: Inputs beside the token stream (a decoder's encoder states): named by SYNONYMS, never the stream.
SECONDARY = ("H_enc",)


#: Names of the one real token input of an equation that has one (H, X, C …), and of logits (Z).
STREAM_NAMES = ("x", "hidden_states", "hidden", "h", "inputs", "input", "src", "tgt", "embeddings", "seq",
                "features", "inputs_embeds", "z", "logits", "scores", "pooled_output", "pooled",
                "pooler_output", "sequence_output")  # fmt: skip


#: Names of label ids (an INDEX input) and of a loss's keep mask (a MASK input).
INDEX_NAMES = ("labels", "targets", "target", "y", "ids", "input_ids", "tokens", "token_ids", "k", "idx",
               "indices", "token_idx", "x_ids", "src_ids")  # fmt: skip


KEEP_NAMES = ("mask", "attention_mask", "padding_mask", "loss_mask", "keep", "valid", "keep_mask")


#: Integer arguments and the axis whose size they take.
SIZE_NAMES: dict[str, tuple[str, ...]] = {
    "n_max": ("n_max", "max_len", "num_positions", "n_positions", "max_position_embeddings", "max_seq_len",
              "n_ctx", "block_size", "seq_len", "length", "n"),
    "n": ("n", "size", "seq_len", "seq_length", "length", "sz", "t", "n_positions", "max_len", "block_size",
          "n_ctx", "num_positions", "seqlen"),
    "d_e": ("d_e", "d_model", "dim", "hidden_size", "embed_dim", "n_embd", "d_embed", "emb_dim", "d_hid",
            "ninp", "emsize", "embed_size", "embedding_size", "emb_size", "word_dim", "in_features",
            "d_in", "d_out", "num_inputs", "ffn_num_outputs"),
    "d_k": ("d_k", "head_dim", "d_head", "dim_head", "head_size"),
    "M": ("m", "n_head", "n_heads", "nhead", "num_heads", "heads", "num_attention_heads"),
    "v": ("v", "vocab_size", "n_vocab", "num_classes", "vocab", "ntoken", "ntokens", "n_tokens",
          "num_tokens"),
    "k_top": ("k_top", "top_k", "topk", "k"),
    "d_h": ("d_h", "nhid", "n_hidden", "hidden_dim", "rnn_size", "hid_dim", "num_hidden", "num_hiddens",
            "h_dim"),
    "d_f": ("d_f", "d_ff", "dim_feedforward", "intermediate_size", "ffn_dim", "d_inner", "hidden_dim",
            "hidden_features", "mlp_dim", "ffn_hidden", "dim_ff", "ff_dim", "inner_dim", "ffn_num_hiddens"),
}  # fmt: skip


#: Names of a mask given as the number of real keys in each sequence (right padding: d2l.ai's valid_lens).
_LENGTHS = ("valid_lens", "valid_len", "lengths", "lens", "seq_lens", "seq_lengths", "src_lengths",
            "key_lengths")  # fmt: skip


#: A mask argument's name -> the conventions (``--mask``) it may mean, in order of preference; every
#: convention here agrees with the name's documented meaning, so shapes alone choose among them.
MASK_NAMES: dict[str, tuple[str, ...]] = {
    "key_padding_mask": ("key_padding",),
    "src_key_padding_mask": ("key_padding",),
    "tgt_key_padding_mask": ("key_padding",),
    "padding_mask": ("key_padding",),
    **dict.fromkeys(_LENGTHS, ("key_lengths",)),
    "attention_mask": ("key_keep_int",),
    "extended_attention_mask": ("key_additive",),
    "attn_mask": ("additive",),
    "src_mask": ("additive",),
    "tgt_mask": ("additive",),
    "memory_mask": ("additive",),
    "attn_bias": ("additive",),
    "bias": ("additive",),
}


#: What each named convention means, for the report's note.
NAMED_MEANING = {
    "key_padding_mask": "torch's key_padding_mask: True = padding",
    "src_key_padding_mask": "torch's key_padding_mask: True = padding",
    "tgt_key_padding_mask": "torch's key_padding_mask: True = padding",
    "padding_mask": "a padding mask: True = padding",
    "attention_mask": "Hugging Face's attention_mask: (batch, n) 1 = attend, 0 = padding, as its models take "
    "it; 4-D, the additive mask (0 / −∞) its layers take (batch, 1, n, n) or, per key, (batch, 1, 1, n)",
    "attn_mask": "torch's float attn_mask: added to the scores",
    "src_mask": "torch's float src_mask (nn.Transformer's name): added to the scores",
    "tgt_mask": "torch's float tgt_mask (nn.Transformer's name): added to the scores",
    "attn_bias": "a bias added to the scores",
    "bias": "a bias added to the scores",
    "extended_attention_mask": "Hugging Face's extended mask: added to the scores",
    **dict.fromkeys(_LENGTHS, "the number of real keys per sequence (d2l.ai's valid_lens): right padding"),
}


#: Any other argument whose name contains "mask": a keep mask (True / 1 = attend), whole or per key.
DEFAULT_MASK = ("bool_keep", "key_keep")


#: Flags that say a function builds the causal mask itself.
CAUSAL_FLAGS = ("is_causal", "causal")


#: Mask arguments that take the causal mask an equation builds in (the decoder block's): nn.Transformer's
#: ``tgt_mask``, which torch's documentation says to give ``generate_square_subsequent_mask(n)``. Passed
#: ``causal(AXIS)``; any other optional mask keeps its default.
CAUSAL_INPUTS = ("tgt_mask",)


#: The names code returns an equation's outputs under (``return h_next, c_next``), by output symbol.
OUTPUT_NAMES: dict[str, tuple[str, ...]] = {
    "h_t": ("h", "h_t", "h_next", "h_new", "new_h", "next_h", "hy", "h_1", "hidden"),
    "c_t": ("c", "c_t", "c_next", "c_new", "new_c", "next_c", "cy", "c_1", "cell"),
}


# --- modules ----------------------------------------------------------------------------------------------
#: A constructor argument's name -> the axis it takes (SIZE_NAMES, and the layer count).
INIT_NAMES: dict[str, tuple[str, ...]] = {
    **{axis: names for axis, names in SIZE_NAMES.items() if axis not in ("n", "n_max")},
    "L": ("l", "n_layer", "n_layers", "num_layers", "num_hidden_layers", "depth", "layers", "n_blocks"),
}


#: Constructor arguments that size a table longer than any sequence the audit draws: given this number.
LENGTH_NAMES = ("block_size", "max_len", "max_seq_len", "n_positions", "max_position_embeddings", "n_ctx",
                "seq_len", "max_length", "context_length", "max_seq_length", "max_sequence_length",
                "max_positions", "maxlen", "context_size")  # fmt: skip


#: A module path's segment -> what it holds. Attention projections, the FFN's two linears, the norms.
ROLE_NAMES: dict[str, tuple[str, ...]] = {
    "q": ("q", "q_proj", "query", "wq", "w_q", "to_q", "q_lin", "q_linear", "linear_q", "q_net", "w_query",
          "query_proj", "toqueries", "to_queries"),
    "k": ("k", "k_proj", "key", "wk", "w_k", "to_k", "k_lin", "k_linear", "linear_k", "k_net", "w_key",
          "key_proj", "tokeys", "to_keys"),
    "v": ("v", "v_proj", "value", "wv", "w_v", "to_v", "v_lin", "v_linear", "linear_v", "v_net", "w_value",
          "value_proj", "tovalues", "to_values"),
    "qkv": ("c_attn", "qkv", "in_proj", "wqkv", "w_qkv", "query_key_value", "to_qkv", "qkv_proj", "qkv_net"),
    "o": ("o", "o_proj", "out_proj", "wo", "w_o", "to_out", "out", "out_lin", "fc_out", "proj", "c_proj",
          "dense", "linear_out", "o_net", "output", "output_linear", "out_linear", "proj_out", "unifyheads",
          "unify_heads"),
    "ffn1": ("c_fc", "fc1", "w_1", "w1", "linear1", "lin1", "up_proj", "fc", "dense_h_to_4h", "fc_in",
             "intermediate"),
    "ffn2": ("c_proj", "fc2", "w_2", "w2", "linear2", "lin2", "down_proj", "dense_4h_to_h", "fc_out", "proj",
             "output", "dense"),
    "ln1": ("ln_1", "ln1", "norm1", "layernorm_before", "attention_norm", "ln_attn", "input_layernorm",
            "norm_1", "attn_norm", "sa_norm"),
    "ln2": ("ln_2", "ln2", "norm2", "layernorm_after", "ffn_norm", "ln_mlp", "post_attention_layernorm",
            "norm_2", "mlp_norm", "ff_norm"),
    "ln3": ("ln_3", "ln3", "norm3", "norm_3", "ln_ffn"),
    "ln": ("ln", "norm", "layer_norm", "layernorm", "norm_layer", "ln_f"),
    "tok": ("wte", "tok_emb", "tok_embeddings", "token_embedding", "token_embeddings", "embed_tokens",
            "word_embeddings", "token_emb", "tok_embedding", "embed", "embedding", "emb",
            "token_embedding_table"),
    "pos": ("wpe", "pos_emb", "pos_embedding", "pos_embeddings", "position_embedding", "position_embeddings",
            "positional_embedding", "embed_positions", "pos_embed", "position_embedding_table"),
    "lnf": ("ln_f", "norm_f", "final_norm", "final_layer_norm", "final_layernorm", "ln_final", "norm_out"),
}  # fmt: skip


#: Segments that place what follows in the attention or in the FFN (c_proj and dense are in both).
ATTENTION_SCOPES = (
    "attn",
    "attention",
    "self_attn",
    "self_attention",
    "mha",
    "sa",
    "att",
    "self",
    "attn_layer",
)


#: Segments that hold a decoder's cross-attention (to the encoder's states): its projections are the
#: equation's ``…_cross`` parameters (torch's multihead_attn, BART's and T5's encoder_attn, …).
CROSS_SCOPES = ("multihead_attn", "cross_attn", "cross_attention", "crossattention", "encoder_attn",
                "src_attn", "enc_dec_attn", "encdec_attn", "enc_attn")  # fmt: skip


FFN_SCOPES = (
    "mlp",
    "ffn",
    "feed_forward",
    "ff",
    "feedforward",
    "ffwd",
    "intermediate",
    "output",
    "mlp_layer",
)


#: The spec symbols a projection's weight and bias fill, and the axes its output stacks.
_ROLE_SYMBOLS = {
    "q": (("W_Q",), ("b_Q",), "M d_k"),
    "k": (("W_K",), ("b_K",), "M d_k"),
    "v": (("W_V",), ("b_V",), "M d_v"),
    "qkv": (("W_Q", "W_K", "W_V"), ("b_Q", "b_K", "b_V"), "3 M d_k"),
}


#: More constructor names, by the equation's axes: an LSTM's hidden_size is d_h, a transformer's d_e.
_RECURRENT_INIT = {"input_size": "d_e", "hidden_size": "d_h", "embedding_dim": "d_e", "num_embeddings": "v"}


#: Constructor names read as an axis only where the equation has it and INIT_NAMES gave the name no other
#: axis: d2l's ``num_hiddens`` is d_h in a recurrence (INIT_NAMES), d_e in its attention and blocks.
_EXTRA_INIT = {"h": "M", "features": "d_e", "normalized_shape": "d_e", "num_features": "d_e", "size": "d_e",
               "d": "d_e", "embedding_dim": "d_e", "num_embeddings": "v", "n_embed": "d_e",
               "num_hiddens": "d_e"}  # fmt: skip


#: A configuration object's class: a name that says so, or a base class that does (transformers' configs).
_CONFIG_NAMES = ("config", "cfg", "args", "model_args", "params", "hparams", "conf", "configs")


_CONFIG_BASES = ("PreTrainedConfig", "PretrainedConfig")


#: A norm's own parameters: the scale (weight, gamma, a_2 in the Annotated Transformer) and the shift.
_NORM_LEAVES = ("weight", "gamma", "a_2", "scale", "g", "alpha", "bias", "beta", "b_2", "shift", "b")


_NORM_SHIFTS = ("bias", "beta", "b_2", "shift", "b")


#: Names of a layer that take their role from the module holding them (BERT's attention.output.dense).
_GENERIC_OWNERS = ("dense", "linear", "lin", "fc", "layer")


_ATTENTION_ROLES = ("q", "k", "v", "qkv", "o")


_ALL_ROLE_NAMES = {name for names in ROLE_NAMES.values() for name in names}


_LAYER_CONTAINERS = ("h", "layers", "blocks", "layer", "block", "encoder_layers", "decoder_layers")


#: What torch documents for its own classes, whose code is C++ and says nothing readable: the order of the
#: gates its LSTM stacks in weight_ih / weight_hh (W_ii | W_if | W_ig | W_io), the tuple nn.LSTMCell's ``hx``
#: is, and the meaning of nn.TransformerEncoder's ``mask`` (the attention mask added to the scores).
TORCH_GATE_ORDER = {"LSTMCell": ["i", "f", "c", "o"], "LSTM": ["i", "f", "c", "o"]}
TORCH_TUPLES = {"LSTMCell": {"hx": ["h_0", "c_0"]}, "LSTM": {"hx": ["h_0", "c_0"]}}
TORCH_MASKS = {"TransformerEncoder": "additive", "TransformerDecoder": "additive"}


#: The LSTM's gates: the spec's letter of each, and the names code unpacks the stacked gates into.
_GATE_NAMES = {
    "i": ("i", "i_t", "ig", "in_gate", "input_gate", "ingate", "i_gate", "input"),
    "f": ("f", "f_t", "fg", "forget_gate", "forgetgate", "f_gate", "forget"),
    "c": ("g", "g_t", "c", "c_tilde", "c_hat", "cell_gate", "cellgate", "candidate", "cell", "c_in", "z"),
    "o": ("o", "o_t", "og", "out_gate", "output_gate", "outgate", "o_gate", "output", "out"),
}
