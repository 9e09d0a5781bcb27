# ruff: noqa: F722
"""Built-in audit targets from Hugging Face GPT-2 (transformers 5.23): GPT2Attention, GPT2MLP, GPT2Block,
GPT2LMHeadModel and its tied output layer, with random weights (how they are built and called: _hf).
"""

from collections.abc import Callable, Mapping

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ._hf import HEADS_TIED, call, check_ties, hf_config, module_for, rows
from ._registry import builtin, causal_pin


# --- weight layouts (module-level, so a test can swap one for a wrong one) ----------------------------------
def _heads_conv1d(W: Tensor) -> Tensor:
    """``W^{(m)} ∈ ℝ^{d_e×d}`` stacked on m → Conv1D's in × out block, head m in columns m d … (m+1) d."""
    return W.permute(1, 0, 2).reshape(W.shape[1], -1)


def _gpt2_attention_weights(W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O) -> dict[str, Tensor]:
    c_attn = torch.cat([_heads_conv1d(W_Q), _heads_conv1d(W_K), _heads_conv1d(W_V)], dim=1)
    bias = torch.cat([b_Q.reshape(-1), b_K.reshape(-1), b_V.reshape(-1)])
    return {"c_attn.weight": c_attn, "c_attn.bias": bias, "c_proj.weight": W_O, "c_proj.bias": b_O}


def _gpt2_mlp_weights(W_1, b_1, W_2, b_2) -> dict[str, Tensor]:
    return {"c_fc.weight": W_1.T, "c_fc.bias": b_1, "c_proj.weight": W_2.T, "c_proj.bias": b_2}


def _gpt2_block_weights(p: Mapping[str, Tensor]) -> dict[str, Tensor]:
    attn = _gpt2_attention_weights(*(p[k] for k in ("W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V", "W_O", "b_O")))
    mlp = _gpt2_mlp_weights(p["W_1"], p["b_1"], p["W_2"], p["b_2"])
    return {
        "ln_1.weight": p["alpha_1"],
        "ln_1.bias": p["beta_1"],
        **{f"attn.{k}": t for k, t in attn.items()},
        "ln_2.weight": p["alpha_2"],
        "ln_2.bias": p["beta_2"],
        **{f"mlp.{k}": t for k, t in mlp.items()},
    }


def _gpt2_causal_mask(config, H: Tensor) -> Tensor:
    """The mask GPT2Model builds for every block (masking_utils.create_causal_mask): 0 on and below the
    diagonal, finfo(dtype).min above, shaped (batch, 1, n, n) for eager attention."""
    from transformers.masking_utils import create_causal_mask

    position_ids = torch.arange(H.shape[-2], device=H.device).unsqueeze(0)
    return create_causal_mask(
        config=config, inputs_embeds=H, attention_mask=None, past_key_values=None, position_ids=position_ids
    )


# --- GPT-2 --------------------------------------------------------------------------------------------------
_GPT2_ATTN_MAPPING = {
    "W_Q^(m)": "c_attn.weight[:, m·d_k:(m+1)·d_k] (Conv1D, in × out: x @ W)",
    "W_K^(m)": "c_attn.weight[:, d_e + m·d_k:d_e + (m+1)·d_k]",
    "W_V^(m)": "c_attn.weight[:, 2·d_e + m·d_v:2·d_e + (m+1)·d_v]",
    "b_Q^(m), b_K^(m), b_V^(m)": "c_attn.bias, the same column ranges",
    "W_O": "c_proj.weight (Conv1D, in × out, as is)",
    "b_O": "c_proj.bias",
    "S": "fixed: the causal mask GPT2Model builds (create_causal_mask: 0 / finfo(dtype).min)",
}


@builtin(
    "transformers.GPT2Attention",
    "attention.multi_head",
    description=(
        "Hugging Face GPT2Attention (eager), called with the causal mask GPT2Model builds for its blocks "
        "(masking_utils.create_causal_mask: finfo(dtype).min above the diagonal, which weighs exactly like "
        "−∞ since a causal row always keeps its diagonal). Heads are fused in one Conv1D c_attn = "
        "[W_Q | W_K | W_V]; scale 1/√d_k (scale_attn_weights=True). Known difference: on its own, with "
        "eager attention and no mask, GPT2Attention is NOT causal (only sdpa's is_causal makes it so when "
        "no mask is given). Needs d_k = d_v = d_e/M."
    ),
    mapping=_GPT2_ATTN_MAPPING,
    pins={"S": causal_pin},
    derive=HEADS_TIED,
    group="hf",
)
def _gpt2_attention() -> Callable:
    def gpt2_attention(
        H: Float[Tensor, "*batch n d_e"],
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
        check_ties("transformers.GPT2Attention", d_e, M, d_k, W_V.shape[-1])
        X, lead = rows(H)
        config = hf_config("gpt2", n_embd=d_e, n_head=M, n_layer=1, n_positions=X.shape[-2], vocab_size=1)
        weights = _gpt2_attention_weights(W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O)
        mask = _gpt2_causal_mask(module_for("gpt2.GPT2Attention", config, X)._lmspec_config, X)
        A, _ = call("gpt2.GPT2Attention", config, weights, X, attention_mask=mask)
        return A.reshape(*lead, *A.shape[-2:])

    return gpt2_attention


@builtin(
    "transformers.GPT2MLP",
    "transformer.ffn",
    description=(
        "Hugging Face GPT2MLP: c_fc, activation_function 'gelu_new' (the tanh approximation of GELU, "
        "NewGELUActivation), c_proj; weights are Conv1D (in × out), the transposes of the spec's W_1, W_2."
    ),
    mapping={
        "W_1": "c_fc.weight = W_1ᵀ (Conv1D, in × out)",
        "b_1": "c_fc.bias",
        "W_2": "c_proj.weight = W_2ᵀ",
        "b_2": "c_proj.bias",
        "φ": "ACT2FN['gelu_new'] = GELU-tanh",
    },
    group="hf",
)
def _gpt2_mlp() -> Callable:
    def gpt2_mlp(
        C: Float[Tensor, "*batch n d_e"],
        W_1: Float[Tensor, "d_f d_e"],
        b_1: Float[Tensor, " d_f"],
        W_2: Float[Tensor, "d_e d_f"],
        b_2: Float[Tensor, " d_e"],
    ) -> Float[Tensor, "*batch n d_e"]:
        d_f, d_e = W_1.shape
        X, lead = rows(C)
        config = hf_config("gpt2", n_embd=d_e, n_head=1, n_inner=d_f, n_layer=1, vocab_size=1)
        D = call("gpt2.GPT2MLP", config, _gpt2_mlp_weights(W_1, b_1, W_2, b_2), X)
        return D.reshape(*lead, *D.shape[-2:])

    return gpt2_mlp


@builtin(
    "transformers.GPT2Block",
    "transformer.block_pre_ln[eps]",
    description=(
        "Hugging Face GPT2Block (eager): ln_1, causal attention (the mask GPT2Model builds), residual, "
        "ln_2, GPT2MLP (gelu_new = GELU-tanh), residual. Pre-LN with ε = layer_norm_epsilon = 1e-5 in both "
        "layer norms (the spec's variant eps). Needs d_k = d_v = d_e/M."
    ),
    mapping={
        "alpha_1, beta_1": "ln_1.weight, ln_1.bias",
        **{k: "attn." + v.split(" (")[0] for k, v in _GPT2_ATTN_MAPPING.items() if k != "S"},
        "alpha_2, beta_2": "ln_2.weight, ln_2.bias",
        "W_1, b_1": "mlp.c_fc.weight = W_1ᵀ, mlp.c_fc.bias",
        "W_2, b_2": "mlp.c_proj.weight = W_2ᵀ, mlp.c_proj.bias",
        "eps": "layer_norm_epsilon (config)",
        "S": "fixed: the causal mask GPT2Model builds",
    },
    pins={"S": causal_pin},
    constants={"eps": 1e-5},
    derive=HEADS_TIED,
    group="hf",
)
def _gpt2_block() -> Callable:
    def gpt2_block(
        H: Float[Tensor, "*batch n d_e"],
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
        check_ties("transformers.GPT2Block", d_e, M, d_k, W_V.shape[-1])
        X, lead = rows(H)
        config = hf_config(
            "gpt2", n_embd=d_e, n_head=M, n_inner=W_1.shape[0], n_layer=1, n_positions=X.shape[-2],
            vocab_size=1, layer_norm_epsilon=eps,
        )  # fmt: skip
        p = dict(W_Q=W_Q, b_Q=b_Q, W_K=W_K, b_K=b_K, W_V=W_V, b_V=b_V, W_O=W_O, b_O=b_O, alpha_1=alpha_1)
        p.update(beta_1=beta_1, alpha_2=alpha_2, beta_2=beta_2, W_1=W_1, b_1=b_1, W_2=W_2, b_2=b_2)
        mask = _gpt2_causal_mask(module_for("gpt2.GPT2Block", config, X)._lmspec_config, X)
        out = call("gpt2.GPT2Block", config, _gpt2_block_weights(p), X, attention_mask=mask)
        return out.reshape(*lead, *out.shape[-2:])

    return gpt2_block


_GPT2_LAYER_NAMES = (
    "W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V", "W_O", "b_O",
    "alpha_1", "beta_1", "alpha_2", "beta_2", "W_1", "b_1", "W_2", "b_2",
)  # fmt: skip


@builtin(
    "transformers.GPT2LMHeadModel",
    "gpt2.forward[eps]",
    description=(
        "Hugging Face GPT2LMHeadModel (eager) on token ids: the last entry of hidden_states "
        "(output_hidden_states=True), which is after the final layer norm ln_f — the spec's LN(H^L; α_e, "
        "β_e). Positions 0..n−1 of wpe, the causal mask GPT2Model builds, ε = layer_norm_epsilon = 1e-5 in "
        "every layer norm (variant eps). The logits are lm_head(H̃^L) = wte.weight H̃^L, audited separately "
        "(transformers.GPT2LMHeadModel.lm_head). Needs d_k = d_v = d_e/M."
    ),
    mapping={
        "E": "transformer.wte.weight = Eᵀ (tied to lm_head.weight)",
        "Lambda": "transformer.wpe.weight = Λᵀ (n_positions = n_max)",
        "W_Q … b_2 (layer l)": "transformer.h.l.* as in transformers.GPT2Block",
        "alpha_e, beta_e": "transformer.ln_f.weight, transformer.ln_f.bias",
        "eps": "layer_norm_epsilon (config)",
        "H_out": "output.hidden_states[-1] (after ln_f)",
    },
    constants={"eps": 1e-5},
    derive=HEADS_TIED,
    group="hf",
)
def _gpt2_lm_head_model() -> Callable:
    def gpt2_lm_head_model(
        k: Int[Tensor, "*batch n"],
        E: Float[Tensor, "d_e v"],
        Lambda: Float[Tensor, "d_e n_max"],
        W_Q: Float[Tensor, "L M d_e d_k"],
        b_Q: Float[Tensor, "L M d_k"],
        W_K: Float[Tensor, "L M d_e d_k"],
        b_K: Float[Tensor, "L M d_k"],
        W_V: Float[Tensor, "L M d_e d_v"],
        b_V: Float[Tensor, "L M d_v"],
        W_O: Float[Tensor, "L M*d_v d_e"],
        b_O: Float[Tensor, "L d_e"],
        alpha_1: Float[Tensor, "L d_e"],
        beta_1: Float[Tensor, "L d_e"],
        alpha_2: Float[Tensor, "L d_e"],
        beta_2: Float[Tensor, "L d_e"],
        W_1: Float[Tensor, "L d_f d_e"],
        b_1: Float[Tensor, "L d_f"],
        W_2: Float[Tensor, "L d_e d_f"],
        b_2: Float[Tensor, "L d_e"],
        alpha_e: Float[Tensor, " d_e"],
        beta_e: Float[Tensor, " d_e"],
        eps: float,
    ) -> Float[Tensor, "*batch n d_e"]:
        L, M, d_e, d_k = W_Q.shape
        check_ties("transformers.GPT2LMHeadModel", d_e, M, d_k, W_V.shape[-1])
        ids, lead = rows(k, 1)
        config = hf_config(
            "gpt2", n_embd=d_e, n_head=M, n_inner=W_1.shape[1], n_layer=L, n_positions=Lambda.shape[1],
            vocab_size=E.shape[1], layer_norm_epsilon=eps,
        )  # fmt: skip
        stacked = dict(W_Q=W_Q, b_Q=b_Q, W_K=W_K, b_K=b_K, W_V=W_V, b_V=b_V, W_O=W_O, b_O=b_O)
        stacked.update(alpha_1=alpha_1, beta_1=beta_1, alpha_2=alpha_2, beta_2=beta_2)
        stacked.update(W_1=W_1, b_1=b_1, W_2=W_2, b_2=b_2)
        weights = {"transformer.wte.weight": E.T, "transformer.wpe.weight": Lambda.T}
        for l in range(L):
            block = _gpt2_block_weights({name: stacked[name][l] for name in _GPT2_LAYER_NAMES})
            weights.update({f"transformer.h.{l}.{path}": t for path, t in block.items()})
        weights.update({"transformer.ln_f.weight": alpha_e, "transformer.ln_f.bias": beta_e})
        out = call("gpt2.GPT2LMHeadModel", config, weights, input_ids=ids, output_hidden_states=True)
        H = out.hidden_states[-1]
        return H.reshape(*lead, *H.shape[-2:])

    return gpt2_lm_head_model


class _OutputLayer(torch.nn.Module):
    """A model's output layer (``get_output_embeddings()``, GPT-2's lm_head) on given final states, the model
    inside so that its parameters keep their paths and ties: setting transformer.wte.weight sets lm_head."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, H: Tensor) -> Tensor:
        return self.model.get_output_embeddings()(H)


@builtin(
    "transformers.GPT2LMHeadModel.lm_head",
    "gpt2.lm_head",
    description=(
        "The tied output layer of Hugging Face GPT2LMHeadModel: lm_head (nn.Linear without bias, its weight "
        "tied to transformer.wte.weight = Eᵀ) applied to given final states H. Hugging Face returns logits "
        "Eᵀ H; the adapter takes their softmax over the vocabulary (the spec's Ŷ), as generation and the "
        "loss do. Only wte is set: the logits come through the tie."
    ),
    mapping={"E": "transformer.wte.weight = Eᵀ = lm_head.weight (tied)", "Y_hat": "softmax(lm_head(H), -1)"},
    group="hf",
)
def _gpt2_lm_head() -> Callable:
    def gpt2_lm_head(
        H: Float[Tensor, "*batch n d_e"], E: Float[Tensor, "d_e v"]
    ) -> Float[Tensor, "*batch n v"]:
        d_e, v = E.shape
        X, lead = rows(H)
        config = hf_config("gpt2", n_embd=d_e, n_head=1, n_layer=1, n_positions=1, vocab_size=v)
        head = _OutputLayer(module_for("gpt2.GPT2LMHeadModel", config, X))
        weights = {"model.transformer.wte.weight": E.T}  # lm_head.weight follows through the tie
        logits = torch.func.functional_call(head, weights, (X,), tie_weights=True, strict=False)
        return torch.softmax(logits, dim=-1).reshape(*lead, *logits.shape[-2:])

    return gpt2_lm_head
