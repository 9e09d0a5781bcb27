"""What the Hugging Face built-ins share (transformers 5.23): modules with random weights built from small
configurations, called with the spec's tensors as their weights.

Nothing is downloaded: every module is built from a small configuration whose sizes are read from the
example's tensors (``d_e`` from H, ``M`` from W_Q, ``v`` from E …), cached per sizes, device and dtype, and
called with the spec's tensors as its weights through ``torch.func.functional_call``: the module's own
forward runs, every parameter comes from the spec, and gradients reach the spec's tensors. Modules run in
eval mode, with dropout 0 and ``attn_implementation="eager"`` — except ViT, whose eager attention takes its
softmax in float32 even in a float64 model (``softmax(..., dtype=torch.float32)``): the ViT targets use
ViT's default, sdpa (hf_vit).

Each callable is written in the spec's glossary names, like impl/: its parameters are the equation's
symbols, batch-first, families stacked on their index axis. ``mapping`` says where each symbol goes in the
module (``Conv1D`` computes ``x @ W + b``: weights are in × out; ``nn.Linear`` computes ``x @ Wᵀ + b``: out ×
in). Leading batch axes are flattened into Hugging Face's one batch axis and restored afterwards.

Hugging Face ties the head sizes: ``d_k = d_v = d_e / M`` (GPT-2, BERT; ViT reads ``config.head_dim``, so it
only needs ``d_v = d_k``). Each built-in declares its ties (``derive``), under which the audit draws sizes;
a call that breaks them is a ValueError naming the tie.
"""

import functools
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

#: The head sizes Hugging Face's attention ties to the model width (head_dim = hidden_size // heads, q k v).
HEADS_TIED = {"d_e": "M*d_k", "d_v": "d_k"}


def zeros_pin(sizes: Mapping[str, int]) -> np.ndarray:
    """The spec's mask S for a target that attends everywhere (no mask): zeros, n × n."""
    n = int(sizes["n"])
    return np.zeros((n, n))


# --- building and calling modules ---------------------------------------------------------------------------
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


def hf_config(family: str, **sizes) -> tuple:
    """Hugging Face config keyword arguments (dropout 0, eager attention unless given) as a cache key."""
    base = {
        "gpt2": dict(attn_pdrop=0.0, resid_pdrop=0.0, embd_pdrop=0.0, bos_token_id=None, eos_token_id=None),
        "bert": dict(
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, type_vocab_size=2, pad_token_id=0
        ),
        "vit": dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
    }[family]
    return tuple(sorted({"attn_implementation": "eager", **base, **sizes}.items()))


def module_for(kind: str, config: tuple, like: Tensor) -> torch.nn.Module:
    """The cached module ``kind`` of ``config`` on ``like``'s device and dtype."""
    return _module(kind, config, str(like.device), like.dtype)


def run_module(module: torch.nn.Module, weights: Mapping[str, Tensor], *args, **kwargs):
    """``module(*args, **kwargs)`` with every parameter taken from ``weights`` (parameter path → tensor;
    buffers such as position ids stay the module's), so gradients reach the spec's tensors."""
    own = {name for name, _ in module.named_parameters()}  # a tied parameter is listed once
    if set(weights) != own:
        raise RuntimeError(
            f"{type(module).__name__}: the weights given ({', '.join(sorted(set(weights) - own)) or 'none'} "
            f"unknown, {', '.join(sorted(own - set(weights))) or 'none'} missing) are not its parameters"
        )
    return torch.func.functional_call(module, dict(weights), args, kwargs, strict=False)


def call(kind: str, config: tuple, weights: dict[str, Tensor], *args, **kwargs):
    """Run the cached module ``kind`` with ``weights`` (its parameter paths → tensors) substituted."""
    return run_module(module_for(kind, config, next(iter(weights.values()))), weights, *args, **kwargs)


def rows(X: Tensor, feature_axes: int = 2) -> tuple[Tensor, tuple[int, ...]]:
    """``X`` with its leading batch axes flattened into one (Hugging Face takes exactly one)."""
    lead = tuple(X.shape[: X.dim() - feature_axes])
    return X.reshape(-1, *X.shape[X.dim() - feature_axes :]), lead


def check_ties(what: str, d_e: int, M: int, d_k: int, d_v: int, tied: bool = True) -> None:
    if d_v != d_k or (tied and d_e != M * d_k):
        need = "d_v = d_k" if not tied else "d_k = d_v = d_e / M"
        raise ValueError(f"{what} needs {need}, found d_e={d_e}, M={M}, d_k={d_k}, d_v={d_v}")


# --- nn.Linear head layout (module-level, so a test can swap it for a wrong one) ----------------------------
def heads_linear(W: Tensor) -> Tensor:
    """``W^{(m)} ∈ ℝ^{d_e×d}`` stacked on m → nn.Linear's out × in weight, head m in rows m d … (m+1) d."""
    return W.permute(0, 2, 1).reshape(-1, W.shape[1])


def qkv_linear_weights(W_Q, b_Q, W_K, b_K, W_V, b_V, names=("query", "key", "value")) -> dict[str, Tensor]:
    out = {}
    for name, W, b in zip(names, (W_Q, W_K, W_V), (b_Q, b_K, b_V), strict=True):
        out[f"{name}.weight"], out[f"{name}.bias"] = heads_linear(W), b.reshape(-1)
    return out


__all__ = [
    "HEADS_TIED",
    "call",
    "check_ties",
    "heads_linear",
    "hf_config",
    "module_for",
    "qkv_linear_weights",
    "rows",
    "run_module",
    "zeros_pin",
]
