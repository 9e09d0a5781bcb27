# ruff: noqa: F722
"""Built-in audit targets from Hugging Face ViT (transformers 5.23): ViTEmbeddings and ViTLayer, with random
weights (how they are built and called: _hf). They run ViT's default attention, sdpa: ViT's eager attention
takes its softmax in float32 even in a float64 model (``softmax(..., dtype=torch.float32)``).
"""

from collections.abc import Callable

from jaxtyping import Float
from torch import Tensor

from ._hf import call, check_ties, hf_config, qkv_linear_weights, rows, zeros_pin
from ._registry import builtin

#: ViT's attention: its default, sdpa (its eager path takes the softmax in float32).
VIT_ATTENTION = "sdpa"


# --- the patches as an image --------------------------------------------------------------------------------
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
        X, lead = rows(X_p)
        (_, N_p, d_p), d_e = X.shape, E_p.shape[0]
        C, P, N_h, N_w = patch_geometry(d_p, N_p)
        config = hf_config(
            "vit", hidden_size=d_e, num_attention_heads=1, intermediate_size=1, num_channels=C, patch_size=P,
            image_size=(N_h * P, N_w * P), attn_implementation=VIT_ATTENTION,
        )  # fmt: skip
        weights = {
            "patch_embeddings.projection.weight": E_p.reshape(d_e, C, P, P),
            "patch_embeddings.projection.bias": b_p,
            "cls_token": x_cls.reshape(1, 1, d_e),
            "position_embeddings": Lambda.T.unsqueeze(0),
        }
        H0 = call("vit.ViTEmbeddings", config, weights, _image(X, C, P, N_h, N_w))
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
        check_ties("transformers.ViTLayer", d_e, M, d_k, W_V.shape[-1], tied=False)
        X, lead = rows(H)
        config = hf_config(
            "vit", hidden_size=d_e, num_attention_heads=M, head_dim=d_k, intermediate_size=W_1.shape[0],
            layer_norm_eps=eps, attn_implementation=VIT_ATTENTION,
        )  # fmt: skip
        qkv = qkv_linear_weights(W_Q, b_Q, W_K, b_K, W_V, b_V, names=("q_proj", "k_proj", "v_proj"))
        weights = {f"attention.{k}": t for k, t in qkv.items()}
        weights.update({
            "attention.o_proj.weight": W_O.T, "attention.o_proj.bias": b_O,
            "layernorm_before.weight": alpha_1, "layernorm_before.bias": beta_1,
            "layernorm_after.weight": alpha_2, "layernorm_after.bias": beta_2,
            "mlp.fc1.weight": W_1, "mlp.fc1.bias": b_1, "mlp.fc2.weight": W_2, "mlp.fc2.bias": b_2,
        })  # fmt: skip
        out = call("vit.ViTLayer", config, weights, X)
        return out.reshape(*lead, *out.shape[-2:])

    return vit_layer


__all__ = ["VIT_ATTENTION", "patch_geometry"]
