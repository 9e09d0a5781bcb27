# ruff: noqa: F722
"""Built-in audit targets from Hugging Face transformers: GPT-2, BERT and ViT modules with random weights.

Nothing is downloaded: every module is built from a small configuration whose sizes are read from the
example's tensors (``d_e`` from H, ``M`` from W_Q, ``v`` from E …), cached per sizes, device and dtype, and
called with the spec's tensors as its weights through ``torch.func.functional_call``: the module's own
forward runs, every parameter comes from the spec, and gradients reach the spec's tensors. Modules run in
eval mode, with dropout 0 and ``attn_implementation="eager"`` — except ViT, whose eager attention takes its
softmax in float32 even in a float64 model (``softmax(..., dtype=torch.float32)``): the ViT targets use
ViT's default, sdpa.

Each callable is written in the spec's glossary names, like impl/: its parameters are the equation's
symbols, batch-first, families stacked on their index axis. ``mapping`` says where each symbol goes in the
module (``Conv1D`` computes ``x @ W + b``: weights are in × out; ``nn.Linear`` computes ``x @ Wᵀ + b``: out ×
in). Leading batch axes are flattened into Hugging Face's one batch axis and restored afterwards.

Hugging Face ties the head sizes: ``d_k = d_v = d_e / M`` (GPT-2, BERT; ViT reads ``config.head_dim``, so it
only needs ``d_v = d_k``). Each built-in declares its ties (``derive``), under which the audit draws sizes;
a call that breaks them is a ValueError naming the tie.
"""

import functools
from collections.abc import Callable, Mapping

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from . import builtin, causal_pin

#: The head sizes Hugging Face's attention ties to the model width (head_dim = hidden_size // heads, q k v).
HEADS_TIED = {"d_e": "M*d_k", "d_v": "d_k"}
#: ViT's attention: its default, sdpa (its eager path takes the softmax in float32).
VIT_ATTENTION = "sdpa"


def zeros_pin(sizes: Mapping[str, int]) -> np.ndarray:
    """The spec's mask S for a target that attends everywhere (no mask): zeros, n × n."""
    n = int(sizes["n"])
    return np.zeros((n, n))


# --- building and calling modules -------------------------------------------------------------------------
@functools.cache
def _transformers():
    import transformers  # slow to import: only when a Hugging Face target is first called

    transformers.logging.set_verbosity_error()
    return transformers


@functools.lru_cache(maxsize=64)
def _module(kind: str, config: tuple, device: str, dtype: torch.dtype) -> torch.nn.Module:
    """The module ``kind`` of a config (one per sizes, device and dtype), in eval mode; its weights are
    replaced at every call. Hugging Face initialises weights randomly: that draw leaves torch's global
    random stream as it was."""
    tf = _transformers()
    family, cls = kind.split(".")
    config_cls = {"gpt2": tf.GPT2Config, "bert": tf.BertConfig, "vit": tf.ViTConfig}[family]
    extra = dict(config)
    head_dim = extra.pop("head_dim", None)
    cfg = config_cls(**extra)
    if head_dim is not None:
        cfg.head_dim = head_dim  # ViTAttention reads getattr(config, "head_dim", hidden_size // heads)
    with torch.random.fork_rng(devices=[]):
        if cls in ("GPT2Attention", "GPT2Block"):
            module = getattr(tf.models.gpt2.modeling_gpt2, cls)(cfg, layer_idx=0)
        elif cls == "GPT2MLP":
            module = tf.models.gpt2.modeling_gpt2.GPT2MLP(cfg.n_inner, cfg)
        elif cls == "GPT2LMHeadModel":
            module = tf.GPT2LMHeadModel(cfg)
        else:
            module = getattr(getattr(tf.models, family), f"modeling_{family}").__dict__[cls](cfg)
    module._lmspec_config = cfg
    return module.to(device=device, dtype=dtype).eval()


def _config(family: str, **sizes) -> tuple:
    """Hugging Face config keyword arguments (dropout 0, eager attention unless given) as a cache key."""
    base = {
        "gpt2": dict(attn_pdrop=0.0, resid_pdrop=0.0, embd_pdrop=0.0, bos_token_id=None, eos_token_id=None),
        "bert": dict(
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, type_vocab_size=2, pad_token_id=0
        ),
        "vit": dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
    }[family]
    return tuple(sorted({"attn_implementation": "eager", **base, **sizes}.items()))


def _get(kind: str, config: tuple, like: Tensor) -> torch.nn.Module:
    return _module(kind, config, str(like.device), like.dtype)


def _run(module: torch.nn.Module, weights: Mapping[str, Tensor], *args, **kwargs):
    """``module(*args, **kwargs)`` with every parameter taken from ``weights`` (parameter path → tensor;
    buffers such as position ids stay the module's), so gradients reach the spec's tensors."""
    own = {name for name, _ in module.named_parameters()}  # a tied parameter is listed once
    if set(weights) != own:
        raise RuntimeError(
            f"{type(module).__name__}: the weights given ({', '.join(sorted(set(weights) - own)) or 'none'} "
            f"unknown, {', '.join(sorted(own - set(weights))) or 'none'} missing) are not its parameters"
        )
    return torch.func.functional_call(module, dict(weights), args, kwargs, strict=False)


def _call(kind: str, config: tuple, weights: dict[str, Tensor], *args, **kwargs):
    """Run the cached module ``kind`` with ``weights`` (its parameter paths → tensors) substituted."""
    return _run(_get(kind, config, next(iter(weights.values()))), weights, *args, **kwargs)


def _rows(X: Tensor, feature_axes: int = 2) -> tuple[Tensor, tuple[int, ...]]:
    """``X`` with its leading batch axes flattened into one (Hugging Face takes exactly one)."""
    lead = tuple(X.shape[: X.dim() - feature_axes])
    return X.reshape(-1, *X.shape[X.dim() - feature_axes :]), lead


def _ties(what: str, d_e: int, M: int, d_k: int, d_v: int, tied: bool = True) -> None:
    if d_v != d_k or (tied and d_e != M * d_k):
        need = "d_v = d_k" if not tied else "d_k = d_v = d_e / M"
        raise ValueError(f"{what} needs {need}, found d_e={d_e}, M={M}, d_k={d_k}, d_v={d_v}")


# --- weight layouts (module-level, so a test can swap one for a wrong one) --------------------------------
def _heads_conv1d(W: Tensor) -> Tensor:
    """``W^{(m)} ∈ ℝ^{d_e×d}`` stacked on m → Conv1D's in × out block, head m in columns m d … (m+1) d."""
    return W.permute(1, 0, 2).reshape(W.shape[1], -1)


def _heads_linear(W: Tensor) -> Tensor:
    """``W^{(m)} ∈ ℝ^{d_e×d}`` stacked on m → nn.Linear's out × in weight, head m in rows m d … (m+1) d."""
    return W.permute(0, 2, 1).reshape(-1, W.shape[1])


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


def _qkv_linear_weights(W_Q, b_Q, W_K, b_K, W_V, b_V, names=("query", "key", "value")) -> dict[str, Tensor]:
    out = {}
    for name, W, b in zip(names, (W_Q, W_K, W_V), (b_Q, b_K, b_V), strict=True):
        out[f"{name}.weight"], out[f"{name}.bias"] = _heads_linear(W), b.reshape(-1)
    return out


def _gpt2_causal_mask(config, H: Tensor) -> Tensor:
    """The mask GPT2Model builds for every block (masking_utils.create_causal_mask): 0 on and below the
    diagonal, finfo(dtype).min above, shaped (batch, 1, n, n) for eager attention."""
    from transformers.masking_utils import create_causal_mask

    position_ids = torch.arange(H.shape[-2], device=H.device).unsqueeze(0)
    return create_causal_mask(
        config=config, inputs_embeds=H, attention_mask=None, past_key_values=None, position_ids=position_ids
    )


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


# --- GPT-2 ------------------------------------------------------------------------------------------------
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
        _ties("transformers.GPT2Attention", d_e, M, d_k, W_V.shape[-1])
        X, lead = _rows(H)
        config = _config("gpt2", n_embd=d_e, n_head=M, n_layer=1, n_positions=X.shape[-2], vocab_size=1)
        weights = _gpt2_attention_weights(W_Q, b_Q, W_K, b_K, W_V, b_V, W_O, b_O)
        mask = _gpt2_causal_mask(_get("gpt2.GPT2Attention", config, X)._lmspec_config, X)
        A, _ = _call("gpt2.GPT2Attention", config, weights, X, attention_mask=mask)
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
        X, lead = _rows(C)
        config = _config("gpt2", n_embd=d_e, n_head=1, n_inner=d_f, n_layer=1, vocab_size=1)
        D = _call("gpt2.GPT2MLP", config, _gpt2_mlp_weights(W_1, b_1, W_2, b_2), X)
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
        _ties("transformers.GPT2Block", d_e, M, d_k, W_V.shape[-1])
        X, lead = _rows(H)
        config = _config(
            "gpt2", n_embd=d_e, n_head=M, n_inner=W_1.shape[0], n_layer=1, n_positions=X.shape[-2],
            vocab_size=1, layer_norm_epsilon=eps,
        )  # fmt: skip
        p = dict(W_Q=W_Q, b_Q=b_Q, W_K=W_K, b_K=b_K, W_V=W_V, b_V=b_V, W_O=W_O, b_O=b_O, alpha_1=alpha_1)
        p.update(beta_1=beta_1, alpha_2=alpha_2, beta_2=beta_2, W_1=W_1, b_1=b_1, W_2=W_2, b_2=b_2)
        mask = _gpt2_causal_mask(_get("gpt2.GPT2Block", config, X)._lmspec_config, X)
        out = _call("gpt2.GPT2Block", config, _gpt2_block_weights(p), X, attention_mask=mask)
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
        _ties("transformers.GPT2LMHeadModel", d_e, M, d_k, W_V.shape[-1])
        ids, lead = _rows(k, 1)
        config = _config(
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
        out = _call("gpt2.GPT2LMHeadModel", config, weights, input_ids=ids, output_hidden_states=True)
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
        X, lead = _rows(H)
        config = _config("gpt2", n_embd=d_e, n_head=1, n_layer=1, n_positions=1, vocab_size=v)
        head = _OutputLayer(_get("gpt2.GPT2LMHeadModel", config, X))
        weights = {"model.transformer.wte.weight": E.T}  # lm_head.weight follows through the tie
        logits = torch.func.functional_call(head, weights, (X,), tie_weights=True, strict=False)
        return torch.softmax(logits, dim=-1).reshape(*lead, *logits.shape[-2:])

    return gpt2_lm_head


# --- BERT -------------------------------------------------------------------------------------------------
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
        ids, lead = _rows(k, 1)
        config = _config(
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
        H = _call("bert.BertEmbeddings", config, weights, input_ids=ids, token_type_ids=s.reshape(ids.shape))
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
        _ties("transformers.BertSelfAttention", d_e, M, d_k, W_V.shape[-1])
        X, lead = _rows(H)
        B, n, _ = X.shape
        config = _config("bert", hidden_size=d_e, num_attention_heads=M, intermediate_size=1, vocab_size=1)
        qkv = _qkv_linear_weights(W_Q, b_Q, W_K, b_K, W_V, b_V)
        module = _get("bert.BertAttention", config, X)
        mask = _bert_extended_mask(S, B, n, X.dtype)
        P, _ = _run(module.self, qkv, X, attention_mask=mask)  # (B, n, M d_v): the heads side by side
        A = _run(module.output.dense, {"weight": W_O.T, "bias": b_O}, P)  # (B, n, d_e): P W_O + b_O
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
        _ties("transformers.BertLayer", d_e, M, d_k, W_V.shape[-1])
        X, lead = _rows(H)
        B, n, _ = X.shape
        config = _config(
            "bert", hidden_size=d_e, num_attention_heads=M, intermediate_size=W_1.shape[0], vocab_size=1,
            layer_norm_eps=eps,
        )  # fmt: skip
        qkv = _qkv_linear_weights(W_Q, b_Q, W_K, b_K, W_V, b_V)
        weights = {f"attention.self.{k}": t for k, t in qkv.items()}
        weights.update({
            "attention.output.dense.weight": W_O.T, "attention.output.dense.bias": b_O,
            "attention.output.LayerNorm.weight": alpha_1, "attention.output.LayerNorm.bias": beta_1,
            "intermediate.dense.weight": W_1, "intermediate.dense.bias": b_1,
            "output.dense.weight": W_2, "output.dense.bias": b_2,
            "output.LayerNorm.weight": alpha_2, "output.LayerNorm.bias": beta_2,
        })  # fmt: skip
        mask = _bert_extended_mask(S, B, n, X.dtype)
        out = _call("bert.BertLayer", config, weights, X, attention_mask=mask)
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
        X, lead = _rows(H)
        config = _config(
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
        Z = _call("bert.BertOnlyMLMHead", config, weights, X)
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
        X, lead = _rows(H)
        config = _config("bert", hidden_size=d_e, num_attention_heads=1, intermediate_size=1, vocab_size=1)
        p = _call("bert.BertPooler", config, {"dense.weight": W_p, "dense.bias": b_p}, X)
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
        X, lead = _rows(p, 1)
        d_e = W_nsp.shape[1]
        config = _config("bert", hidden_size=d_e, num_attention_heads=1, intermediate_size=1, vocab_size=1)
        weights = {"seq_relationship.weight": W_nsp, "seq_relationship.bias": b_nsp}
        z = _call("bert.BertOnlyNSPHead", config, weights, X)
        return torch.softmax(z, dim=-1).reshape(*lead, 2)

    return bert_nsp_head


# --- ViT --------------------------------------------------------------------------------------------------
def patch_geometry(d_p: int, N_p: int) -> tuple[int, int, int, int]:
    """An image geometry ``(C, P, N_h, N_w)`` with ``d_p = C P²`` and ``N_p = N_h N_w``: the largest patch
    size P whose square divides d_p, and the grid closest to square."""
    P = max(p for p in range(1, d_p + 1) if d_p % (p * p) == 0)
    N_h = max(a for a in range(1, N_p + 1) if N_p % a == 0 and a * a <= N_p)
    return d_p // (P * P), P, N_h, N_p // N_h


def _image(X_p: Tensor, C: int, P: int, N_h: int, N_w: int) -> Tensor:
    """The images ``(B, C, N_h P, N_w P)`` whose patches (row-major grid, each flattened channel, row,
    column — the spec's vit.patchify) are the rows of ``X_p`` ``(B, N_p, d_p)``."""
    grid = X_p.reshape(X_p.shape[0], N_h, N_w, C, P, P)  # (B, a, b, k, r, s)
    return grid.permute(0, 3, 1, 4, 2, 5).reshape(X_p.shape[0], C, N_h * P, N_w * P)  # (B, k, a r, b s)


@builtin(
    "transformers.ViTEmbeddings",
    "vit.input",
    description=(
        "Hugging Face ViTEmbeddings: patch_embeddings.projection = Conv2d(C, d_e, P, stride=P) on "
        "pixel_values, the class token first, plus position_embeddings. The spec's input is the patches X_p "
        "(vit.patchify's output), so the adapter builds the image whose patches they are, with C, P and the "
        "grid read from d_p = C P² and N_p = N_h N_w (the largest P with P² | d_p, the squarest grid), and "
        "passes it as pixel_values: the check covers the Conv2d's patch order whenever P > 1. Hugging "
        "Face's Conv2d has a bias: the spec's b_p (vit.input; its variant no_bias is the paper's form)."
    ),
    mapping={
        "E_p": "patch_embeddings.projection.weight = E_p reshaped to (d_e, C, P, P)",
        "b_p": "patch_embeddings.projection.bias",
        "x_cls": "cls_token[0, 0]",
        "Lambda": "position_embeddings[0] = Λᵀ (num_patches + 1 rows)",
        "X_p": "pixel_values: the image whose P × P patches are the columns of X_p",
    },
    group="hf",
)
def _vit_embeddings() -> Callable:
    def vit_embeddings(
        X_p: Float[Tensor, "*batch N_p d_p"],
        x_cls: Float[Tensor, " d_e"],
        E_p: Float[Tensor, "d_e d_p"],
        Lambda: Float[Tensor, "d_e n"],
        b_p: Float[Tensor, " d_e"],
    ) -> Float[Tensor, "*batch n d_e"]:
        X, lead = _rows(X_p)
        (_, N_p, d_p), d_e = X.shape, E_p.shape[0]
        C, P, N_h, N_w = patch_geometry(d_p, N_p)
        config = _config(
            "vit", hidden_size=d_e, num_attention_heads=1, intermediate_size=1, num_channels=C, patch_size=P,
            image_size=(N_h * P, N_w * P), attn_implementation=VIT_ATTENTION,
        )  # fmt: skip
        weights = {
            "patch_embeddings.projection.weight": E_p.reshape(d_e, C, P, P),
            "patch_embeddings.projection.bias": b_p,
            "cls_token": x_cls.reshape(1, 1, d_e),
            "position_embeddings": Lambda.T.unsqueeze(0),
        }
        H0 = _call("vit.ViTEmbeddings", config, weights, _image(X, C, P, N_h, N_w))
        return H0.reshape(*lead, N_p + 1, d_e)

    return vit_embeddings


@builtin(
    "transformers.ViTLayer",
    "transformer.block_pre_ln[gelu_eps]",
    description=(
        "Hugging Face ViTLayer with ViT's default attention (sdpa; the eager path takes its softmax in "
        "float32 even in float64, so it agrees to float32 precision only): layernorm_before, attention "
        "(no mask: S = 0), residual, layernorm_after, ViTMLP (exact GELU), residual. Pre-LN with exact "
        "GELU and ε = layer_norm_eps = 1e-12 (the spec's variant gelu_eps). head_dim is set to d_k "
        "(ViTAttention reads config.head_dim), so only d_v = d_k is needed."
    ),
    mapping={
        "W_Q^(m), W_K^(m), W_V^(m)": "attention.{q,k,v}_proj.weight[m·d_k:(m+1)·d_k, :] (out × in)",
        "b_Q^(m), b_K^(m), b_V^(m)": "attention.{q,k,v}_proj.bias, the same rows",
        "W_O, b_O": "attention.o_proj.weight = W_Oᵀ, attention.o_proj.bias",
        "alpha_1, beta_1": "layernorm_before.weight, .bias",
        "alpha_2, beta_2": "layernorm_after.weight, .bias",
        "W_1, b_1": "mlp.fc1.weight = W_1 (out × in), mlp.fc1.bias",
        "W_2, b_2": "mlp.fc2.weight = W_2, mlp.fc2.bias",
        "eps": "layer_norm_eps (config)",
        "S": "fixed: zeros (ViT attends everywhere; attention_mask=None)",
    },
    pins={"S": zeros_pin},
    constants={"eps": 1e-12},
    derive={"d_v": "d_k"},
    group="hf",
)
def _vit_layer() -> Callable:
    def vit_layer(
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
        _ties("transformers.ViTLayer", d_e, M, d_k, W_V.shape[-1], tied=False)
        X, lead = _rows(H)
        config = _config(
            "vit", hidden_size=d_e, num_attention_heads=M, head_dim=d_k, intermediate_size=W_1.shape[0],
            layer_norm_eps=eps, attn_implementation=VIT_ATTENTION,
        )  # fmt: skip
        qkv = _qkv_linear_weights(W_Q, b_Q, W_K, b_K, W_V, b_V, names=("q_proj", "k_proj", "v_proj"))
        weights = {f"attention.{k}": t for k, t in qkv.items()}
        weights.update({
            "attention.o_proj.weight": W_O.T, "attention.o_proj.bias": b_O,
            "layernorm_before.weight": alpha_1, "layernorm_before.bias": beta_1,
            "layernorm_after.weight": alpha_2, "layernorm_after.bias": beta_2,
            "mlp.fc1.weight": W_1, "mlp.fc1.bias": b_1, "mlp.fc2.weight": W_2, "mlp.fc2.bias": b_2,
        })  # fmt: skip
        out = _call("vit.ViTLayer", config, weights, X)
        return out.reshape(*lead, *out.shape[-2:])

    return vit_layer


__all__ = ["HEADS_TIED", "VIT_ATTENTION", "patch_geometry", "zeros_pin"]
