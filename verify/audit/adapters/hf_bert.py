# ruff: noqa: F722
"""Built-in audit targets from Hugging Face BERT (transformers 5.23): BertEmbeddings, BertSelfAttention,
BertLayer, BertOnlyMLMHead, BertPooler and BertOnlyNSPHead, with random weights (how they are built and
called: _hf).
"""

from collections.abc import Callable

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ._hf import HEADS_TIED, call, check_ties, hf_config, module_for, qkv_linear_weights, rows, run_module
from ._registry import builtin


def _bert_extended_mask(S: Tensor, batch: int, n: int, dtype: torch.dtype) -> Tensor:
    """The spec's additive S (0 / −∞) as BertModel hands it to its layers with eager attention: the boolean
    "attend" mask turned into 0 / finfo(dtype).min by masking_utils.eager_mask, shaped (batch, 1, n, n)."""
    from transformers.masking_utils import eager_mask

    attend = (S == 0).expand(batch, n, n) if S.dim() == 2 else (S == 0).reshape(batch, n, n)
    return eager_mask(
        batch_size=batch,
        q_length=n,
        kv_length=n,
        mask_function=lambda b, h, q, kv: attend[b, q, kv],
        dtype=dtype,
        device=S.device,
    )


# --- BERT ---------------------------------------------------------------------------------------------------
@builtin(
    "transformers.BertEmbeddings",
    "bert.input[eps]",
    description=(
        "Hugging Face BertEmbeddings: word + token_type + position embeddings (positions 0..n−1), then "
        "LayerNorm with ε = layer_norm_eps = 1e-12 (the spec's variant eps). Known difference: "
        "word_embeddings has padding_idx = pad_token_id = 0 (BertConfig's default), so column 0 of E (the "
        "[PAD] vector) gets no gradient: the values are the spec's, ∂/∂E[:, 0] is 0 where the spec's is not."
    ),
    mapping={
        "E": "word_embeddings.weight = Eᵀ",
        "Lambda": "position_embeddings.weight = Λᵀ (max_position_embeddings = n_max)",
        "G": "token_type_embeddings.weight = Gᵀ (type_vocab_size = 2)",
        "alpha_e, beta_e": "LayerNorm.weight, LayerNorm.bias",
        "k, s": "input_ids, token_type_ids",
        "eps": "layer_norm_eps (config)",
    },
    constants={"eps": 1e-12},
    group="hf",
)
def _bert_embeddings() -> Callable:
    def bert_embeddings(
        k: Int[Tensor, "*batch n"],
        s: Int[Tensor, "*batch n"],
        E: Float[Tensor, "d_e v"],
        Lambda: Float[Tensor, "d_e n_max"],
        G: Float[Tensor, "d_e 2"],
        alpha_e: Float[Tensor, " d_e"],
        beta_e: Float[Tensor, " d_e"],
        eps: float,
    ) -> Float[Tensor, "*batch n d_e"]:
        (d_e, v), n_max = E.shape, Lambda.shape[1]
        ids, lead = rows(k, 1)
        config = hf_config(
            "bert", hidden_size=d_e, num_attention_heads=1, intermediate_size=1, vocab_size=v,
            max_position_embeddings=n_max, layer_norm_eps=eps,
        )  # fmt: skip
        weights = {
            "word_embeddings.weight": E.T,
            "position_embeddings.weight": Lambda.T,
            "token_type_embeddings.weight": G.T,
            "LayerNorm.weight": alpha_e,
            "LayerNorm.bias": beta_e,
        }
        H = call("bert.BertEmbeddings", config, weights, input_ids=ids, token_type_ids=s.reshape(ids.shape))
        return H.reshape(*lead, *H.shape[-2:])

    return bert_embeddings


_BERT_QKV_MAPPING = {
    "W_Q^(m)": "query.weight[m·d_k:(m+1)·d_k, :] = W_Q^(m)ᵀ (nn.Linear, out × in)",
    "W_K^(m)": "key.weight[m·d_k:(m+1)·d_k, :] = W_K^(m)ᵀ",
    "W_V^(m)": "value.weight[m·d_v:(m+1)·d_v, :] = W_V^(m)ᵀ",
    "b_Q^(m), b_K^(m), b_V^(m)": "query.bias, key.bias, value.bias, the same row ranges",
}
_BERT_MASK = "the extended attention mask: S = 0 → 0, S = −∞ → finfo(dtype).min (masking_utils.eager_mask)"


@builtin(
    "transformers.BertSelfAttention",
    "attention.multi_head[fully_masked_uniform]",
    description=(
        "Hugging Face BertSelfAttention (eager) followed by the output projection of BertSelfOutput "
        "(attention.output.dense; the adapter leaves out BertSelfOutput's residual and LayerNorm, which "
        "transformers.BertLayer covers). The mask is given as BertModel gives it to its layers: an additive "
        "(batch, 1, n, n) mask with finfo(dtype).min where S = −∞. A finite fill weighs like −∞ unless a "
        "whole row is masked: then every score is finfo.min and the row's weights are uniform, the spec's "
        "variant fully_masked_uniform (the spec gives zero weights). Needs d_k = d_v = d_e/M."
    ),
    mapping={
        **{k: f"self.{v}" for k, v in _BERT_QKV_MAPPING.items()},
        "W_O": "output.dense.weight = W_Oᵀ",
        "b_O": "output.dense.bias",
        "S": _BERT_MASK,
    },
    derive=HEADS_TIED,
    group="hf",
)
def _bert_self_attention() -> Callable:
    def bert_self_attention(
        H: Float[Tensor, "*batch n d_e"],
        S: Float[Tensor, "*#batch n n"],
        W_Q: Float[Tensor, "M d_e d_k"],
        b_Q: Float[Tensor, "M d_k"],
        W_K: Float[Tensor, "M d_e d_k"],
        b_K: Float[Tensor, "M d_k"],
        W_V: Float[Tensor, "M d_e d_v"],
        b_V: Float[Tensor, "M d_v"],
        W_O: Float[Tensor, "M*d_v d_e"],
        b_O: Float[Tensor, " d_e"],
    ) -> Float[Tensor, "*batch n d_e"]:
        M, d_e, d_k = W_Q.shape
        check_ties("transformers.BertSelfAttention", d_e, M, d_k, W_V.shape[-1])
        X, lead = rows(H)
        B, n, _ = X.shape
        config = hf_config("bert", hidden_size=d_e, num_attention_heads=M, intermediate_size=1, vocab_size=1)
        qkv = qkv_linear_weights(W_Q, b_Q, W_K, b_K, W_V, b_V)
        module = module_for("bert.BertAttention", config, X)
        mask = _bert_extended_mask(S, B, n, X.dtype)
        P, _ = run_module(module.self, qkv, X, attention_mask=mask)  # (B, n, M d_v): the heads side by side
        A = run_module(module.output.dense, {"weight": W_O.T, "bias": b_O}, P)  # (B, n, d_e): P W_O + b_O
        return A.reshape(*lead, n, d_e)

    return bert_self_attention


@builtin(
    "transformers.BertLayer",
    "transformer.block_post_ln[eps]",
    description=(
        "Hugging Face BertLayer (eager): BertAttention (self-attention, dense, LayerNorm(x + H)), "
        "BertIntermediate (dense, exact GELU: hidden_act 'gelu'), BertOutput (dense, LayerNorm(x + C)). "
        "Post-LN with ε = layer_norm_eps = 1e-12 (variant eps). The mask is BertModel's extended attention "
        "mask (finfo(dtype).min where S = −∞): on a fully masked row the weights are uniform where the spec "
        "gives zero weights (the fully-masked-row convention; BERT's padding masks only make such rows when "
        "a whole sequence is padding). Needs d_k = d_v = d_e/M."
    ),
    mapping={
        **{k: f"attention.self.{v}" for k, v in _BERT_QKV_MAPPING.items()},
        "W_O, b_O": "attention.output.dense.weight = W_Oᵀ, attention.output.dense.bias",
        "alpha_1, beta_1": "attention.output.LayerNorm.weight, .bias",
        "W_1, b_1": "intermediate.dense.weight = W_1 (nn.Linear, out × in), intermediate.dense.bias",
        "W_2, b_2": "output.dense.weight = W_2, output.dense.bias",
        "alpha_2, beta_2": "output.LayerNorm.weight, .bias",
        "eps": "layer_norm_eps (config)",
        "S": _BERT_MASK,
    },
    constants={"eps": 1e-12},
    derive=HEADS_TIED,
    group="hf",
)
def _bert_layer() -> Callable:
    def bert_layer(
        H: Float[Tensor, "*batch n d_e"],
        S: Float[Tensor, "*#batch n n"],
        W_Q: Float[Tensor, "M d_e d_k"],
        b_Q: Float[Tensor, "M d_k"],
        W_K: Float[Tensor, "M d_e d_k"],
        b_K: Float[Tensor, "M d_k"],
        W_V: Float[Tensor, "M d_e d_v"],
        b_V: Float[Tensor, "M d_v"],
        W_O: Float[Tensor, "M*d_v d_e"],
        b_O: Float[Tensor, " d_e"],
        alpha_1: Float[Tensor, " d_e"],
        beta_1: Float[Tensor, " d_e"],
        alpha_2: Float[Tensor, " d_e"],
        beta_2: Float[Tensor, " d_e"],
        W_1: Float[Tensor, "d_f d_e"],
        b_1: Float[Tensor, " d_f"],
        W_2: Float[Tensor, "d_e d_f"],
        b_2: Float[Tensor, " d_e"],
        eps: float,
    ) -> Float[Tensor, "*batch n d_e"]:
        M, d_e, d_k = W_Q.shape
        check_ties("transformers.BertLayer", d_e, M, d_k, W_V.shape[-1])
        X, lead = rows(H)
        B, n, _ = X.shape
        config = hf_config(
            "bert", hidden_size=d_e, num_attention_heads=M, intermediate_size=W_1.shape[0], vocab_size=1,
            layer_norm_eps=eps,
        )  # fmt: skip
        qkv = qkv_linear_weights(W_Q, b_Q, W_K, b_K, W_V, b_V)
        weights = {f"attention.self.{k}": t for k, t in qkv.items()}
        weights.update({
            "attention.output.dense.weight": W_O.T, "attention.output.dense.bias": b_O,
            "attention.output.LayerNorm.weight": alpha_1, "attention.output.LayerNorm.bias": beta_1,
            "intermediate.dense.weight": W_1, "intermediate.dense.bias": b_1,
            "output.dense.weight": W_2, "output.dense.bias": b_2,
            "output.LayerNorm.weight": alpha_2, "output.LayerNorm.bias": beta_2,
        })  # fmt: skip
        mask = _bert_extended_mask(S, B, n, X.dtype)
        out = call("bert.BertLayer", config, weights, X, attention_mask=mask)
        return out.reshape(*lead, n, d_e)

    return bert_layer


@builtin(
    "transformers.BertOnlyMLMHead",
    "bert.mlm_head[eps]",
    description=(
        "Hugging Face BertOnlyMLMHead (= BertLMPredictionHead): transform (dense, exact GELU, LayerNorm with "
        "ε = 1e-12, variant eps), then decoder = nn.Linear(d_e, v) with weight Eᵀ (tied to the word "
        "embeddings in BertForMaskedLM) and bias b_out. It returns logits; the adapter takes their softmax "
        "over the vocabulary (the spec's Ŷ)."
    ),
    mapping={
        "W_m, b_m": "predictions.transform.dense.weight = W_m (out × in), .bias",
        "alpha_m, beta_m": "predictions.transform.LayerNorm.weight, .bias",
        "E": "predictions.decoder.weight = Eᵀ (tied to bert.embeddings.word_embeddings.weight)",
        "b_out": "predictions.decoder.bias = predictions.bias (tied)",
        "eps": "layer_norm_eps (config)",
        "Y_hat": "softmax(prediction_scores, -1)",
    },
    constants={"eps": 1e-12},
    group="hf",
)
def _bert_mlm_head() -> Callable:
    def bert_mlm_head(
        H: Float[Tensor, "*batch n d_e"],
        W_m: Float[Tensor, "d_e d_e"],
        b_m: Float[Tensor, " d_e"],
        alpha_m: Float[Tensor, " d_e"],
        beta_m: Float[Tensor, " d_e"],
        E: Float[Tensor, "d_e v"],
        b_out: Float[Tensor, " v"],
        eps: float,
    ) -> Float[Tensor, "*batch n v"]:
        d_e, v = E.shape
        X, lead = rows(H)
        config = hf_config(
            "bert", hidden_size=d_e, num_attention_heads=1, intermediate_size=1, vocab_size=v,
            layer_norm_eps=eps,
        )  # fmt: skip
        weights = {
            "predictions.transform.dense.weight": W_m,
            "predictions.transform.dense.bias": b_m,
            "predictions.transform.LayerNorm.weight": alpha_m,
            "predictions.transform.LayerNorm.bias": beta_m,
            "predictions.decoder.weight": E.T,
            "predictions.decoder.bias": b_out,
            "predictions.bias": b_out,
        }
        Z = call("bert.BertOnlyMLMHead", config, weights, X)
        return torch.softmax(Z, dim=-1).reshape(*lead, *Z.shape[-2:])

    return bert_mlm_head


@builtin(
    "transformers.BertPooler",
    "bert.pooler",
    description="Hugging Face BertPooler: tanh(dense(h_[CLS])), [CLS] the first token (hidden_states[:, 0]).",
    mapping={"W_p": "dense.weight = W_p (out × in)", "b_p": "dense.bias"},
    group="hf",
)
def _bert_pooler() -> Callable:
    def bert_pooler(
        H: Float[Tensor, "*batch n d_e"], W_p: Float[Tensor, "d_e d_e"], b_p: Float[Tensor, " d_e"]
    ) -> Float[Tensor, "*batch d_e"]:
        d_e = W_p.shape[0]
        X, lead = rows(H)
        config = hf_config("bert", hidden_size=d_e, num_attention_heads=1, intermediate_size=1, vocab_size=1)
        p = call("bert.BertPooler", config, {"dense.weight": W_p, "dense.bias": b_p}, X)
        return p.reshape(*lead, d_e)

    return bert_pooler


@builtin(
    "transformers.BertOnlyNSPHead",
    "bert.nsp_head",
    description=(
        "Hugging Face BertOnlyNSPHead: seq_relationship = nn.Linear(d_e, 2) on the pooled output; it returns "
        "logits, the adapter takes their softmax (label 0 = IsNext = the spec's ŷ_1)."
    ),
    mapping={"W_nsp": "seq_relationship.weight (out × in)", "b_nsp": "seq_relationship.bias"},
    group="hf",
)
def _bert_nsp_head() -> Callable:
    def bert_nsp_head(
        p: Float[Tensor, "*batch d_e"], W_nsp: Float[Tensor, "2 d_e"], b_nsp: Float[Tensor, " 2"]
    ) -> Float[Tensor, "*batch 2"]:
        X, lead = rows(p, 1)
        d_e = W_nsp.shape[1]
        config = hf_config("bert", hidden_size=d_e, num_attention_heads=1, intermediate_size=1, vocab_size=1)
        weights = {"seq_relationship.weight": W_nsp, "seq_relationship.bias": b_nsp}
        z = call("bert.BertOnlyNSPHead", config, weights, X)
        return torch.softmax(z, dim=-1).reshape(*lead, 2)

    return bert_nsp_head
