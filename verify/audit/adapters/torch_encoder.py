# ruff: noqa: F722
"""Built-in audit targets of a stack of blocks: ``nn.TransformerEncoder`` with and without its final norm,
post-LN and pre-LN (``norm_first``) (torch 2.13).

``nn.TransformerEncoder(layer, num_layers=L, norm=None, enable_nested_tensor=False)`` deep-copies the
``nn.TransformerEncoderLayer`` it is given L times (``layers.0`` … ``layers.{L−1}``) and runs them in order
with the same ``mask``; with ``norm=nn.LayerNorm(d_e)`` it applies that norm to the last layer's output. The
spec's ``transformer.stack`` is the same recurrence, ``H^l = Block^{(l)}(H^{l−1}; S)``, its per-layer
families stacked on their index axis (``W_Q: (L, M, d_e, d_k)``, ``alpha_1: (L, d_e)`` …, as
transformers.GPT2LMHeadModel takes them); layer l gets slice l of every family, mapped as
torch.nn.TransformerEncoderLayer maps one block (torch_transformer's helpers, reused here).

Which form each built-in is held to: torch's layer is post-LN by default (``transformer.stack[post_ln_*]``)
and pre-LN with ``norm_first=True`` (the stack's default form); ReLU is its default activation and
LN ε = 1e-5 (the ``eps`` variants, ε fixed to torch's value). ``norm=nn.LayerNorm(d_e)`` is the spec's final
``LN(H^L; α_e, β_e)`` (``final_ln``, GPT-2's ``ln_f``), its weight α_e and bias β_e. After pre-LN layers that
is GPT-2's form; after post-LN layers, which already end in their norm2, torch normalises once more, and the
spec has that form too (``transformer.stack[post_ln_relu_final_ln_eps]``): normalising twice is not the
identity, LN(α ⊙ x̂ + β) ≠ α ⊙ x̂ + β once the last layer's norm2 has other weights than its initial 1 and 0.

``enable_nested_tensor=False`` keeps padded batches as they are (its nested-tensor path only applies with a
key padding mask, which these built-ins do not take), and, as torch_transformer does, the layers run with
torch.backends.mha's inference fast path off: the path training takes, which gives a fully masked row zero
attention weights (the spec's convention) under the audit's ``no_grad`` too. A 2-D mask equal to the causal
mask is detected by torch (``is_causal``) and handed to attention as a hint; the result is the same.
"""

from collections.abc import Callable

from jaxtyping import Float
from torch import Tensor, nn

from ._registry import builtin
from ._torch import MHA_MAPPING, TIED_HEADS, TORCH_EPS, build, call, mha_params, per_head, tied_heads
from .torch_transformer import _BLOCK_MAPPING, _ln_ffn_params, _prefixed, _training_path

#: The spec's per-layer families, in the order the targets take them.
LAYER_NAMES = (
    "W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V", "W_O", "b_O",
    "alpha_1", "beta_1", "alpha_2", "beta_2", "W_1", "b_1", "W_2", "b_2",
)  # fmt: skip


def layer_params(p: dict[str, Tensor], l: int) -> dict[str, Tensor]:
    """Block l's slice of the stacked families as nn.TransformerEncoderLayer's parameters, under
    ``layers.{l}.``."""
    q = {name: p[name][l] for name in LAYER_NAMES}
    block = mha_params(
        "self_attn.", q["W_Q"], q["b_Q"], q["W_K"], q["b_K"], q["W_V"], q["b_V"], q["W_O"], q["b_O"]
    )
    alphas, betas = (q["alpha_1"], q["alpha_2"]), (q["beta_1"], q["beta_2"])
    block.update(_ln_ffn_params(2, alphas, betas, q["W_1"], q["b_1"], q["W_2"], q["b_2"]))
    return {f"layers.{l}.{path}": t for path, t in block.items()}


def _encoder(
    who: str, H: Tensor, S: Tensor, p: dict[str, Tensor], eps: float, norm_first: bool, final: tuple | None
) -> Tensor:
    """``nn.TransformerEncoder`` of L copies of one nn.TransformerEncoderLayer (ReLU), with the final
    ``nn.LayerNorm(d_e, eps=ε)`` whose (weight, bias) is ``final`` when given, called on ``H`` with the
    float mask ``S`` (per-example masks repeated per head)."""
    L, M, d_e, d_k = p["W_Q"].shape
    tied_heads(who, d_e, M, d_k, p["W_V"].shape[-1])
    for name in LAYER_NAMES:
        if p[name].shape[0] != L:
            raise ValueError(
                f"{who}: every per-layer family is stacked on its layer axis L; W_Q has L={L}, "
                f"{name} has {p[name].shape[0]} (shape {tuple(p[name].shape)})"
            )
    *batch, n, _ = H.shape
    layer = build(
        nn.TransformerEncoderLayer,
        d_e,
        M,
        dim_feedforward=p["W_1"].shape[1],
        dropout=0.0,
        activation="relu",
        layer_norm_eps=eps,
        batch_first=True,
        norm_first=norm_first,
        like=H,
    )
    norm = build(nn.LayerNorm, d_e, eps=eps, like=H) if final is not None else None
    # the encoder deep-copies the layer L times (layers.0 … layers.{L−1}); it takes no device or dtype of its
    # own: the copies and the norm already have H's, with empty storage that the spec's weights replace
    encoder = nn.TransformerEncoder(layer, L, norm=norm, enable_nested_tensor=False).eval()
    params = {}
    for l in range(L):
        params.update(layer_params(p, l))
    if final is not None:
        params["norm.weight"], params["norm.bias"] = final
    with _training_path():
        out = call(encoder, params, H.reshape(-1, n, d_e), mask=per_head(S, tuple(batch), M))
    return out.reshape(*batch, n, d_e)


def _stack_target(norm_first: bool, norm: bool) -> Callable:
    """The callable of one built-in: with a final norm (``norm``), the spec's α_e, β_e fill it (the
    ``final_ln`` stacks)."""
    who = "torch.nn.TransformerEncoder"

    if norm:

        def transformer_encoder_final_ln(
            X: Float[Tensor, "*batch n d_e"],
            S: Float[Tensor, "*#batch n n"],
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
            p = dict(W_Q=W_Q, b_Q=b_Q, W_K=W_K, b_K=b_K, W_V=W_V, b_V=b_V, W_O=W_O, b_O=b_O,
                     alpha_1=alpha_1, beta_1=beta_1, alpha_2=alpha_2, beta_2=beta_2,
                     W_1=W_1, b_1=b_1, W_2=W_2, b_2=b_2)  # fmt: skip
            return _encoder(who, X, S, p, eps, norm_first, (alpha_e, beta_e))

        return transformer_encoder_final_ln

    def transformer_encoder(
        X: Float[Tensor, "*batch n d_e"],
        S: Float[Tensor, "*#batch n n"],
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
        eps: float,
    ) -> Float[Tensor, "*batch n d_e"]:
        p = dict(W_Q=W_Q, b_Q=b_Q, W_K=W_K, b_K=b_K, W_V=W_V, b_V=b_V, W_O=W_O, b_O=b_O,
                 alpha_1=alpha_1, beta_1=beta_1, alpha_2=alpha_2, beta_2=beta_2,
                 W_1=W_1, b_1=b_1, W_2=W_2, b_2=b_2)  # fmt: skip
        return _encoder(who, X, S, p, eps, norm_first, None)

    return transformer_encoder


def _indexed(symbol: str) -> str:
    """A spec symbol with its family indices as the stack writes them: W_Q^(l,m), W_O^(l), d_e."""
    if symbol in ("W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V"):
        return f"{symbol}^(l,m)"
    return f"{symbol}^(l)" if symbol in LAYER_NAMES else symbol


_LAYER_MAPPING = (
    ("X", "src (batch, n, d_e)"),
    ("S", "mask = S (float, additive; per-example masks repeated per head), the same for every layer"),
    ("H_out", "the returned output (batch, n, d_e)"),
    ("L", "num_layers (layers.0 … layers.{L−1}, deep copies of one layer)"),
    *((_indexed(k), v) for k, v in _prefixed("layers.l.self_attn.", MHA_MAPPING)),
    *((_indexed(k), v) for k, v in _prefixed("layers.l.", _BLOCK_MAPPING)),
)
_NOTE = (
    "batch_first=True, dropout=0.0, activation='relu', layer_norm_eps=ε (torch's default 1e-5), "
    "enable_nested_tensor=False; encoder(x, mask=S), run with torch.backends.mha's fast path off (the path "
    "training takes: a fully masked row gets zero attention weights, the spec's convention). Layer l takes "
    "slice l of every per-layer family (W_Q: (L, M, d_e, d_k) …), mapped as torch.nn.TransformerEncoderLayer "
    "maps one block. torch ties d_e = M·d_k and d_v = d_k."
)
_FINAL = (("alpha_e", "norm.weight (norm = nn.LayerNorm(d_e, eps=ε))"), ("beta_e", "norm.bias"))

for _name, _equation, _norm_first, _norm, _what in (
    (
        "torch.nn.TransformerEncoder",
        "transformer.stack[post_ln_relu_eps]",
        False,
        False,
        "L post-LN layers, each norm1(x + SA(x)) then norm2(x + FF(x)), no final norm (norm=None).",
    ),
    (
        "torch.nn.TransformerEncoder[norm_first]",
        "transformer.stack[relu_eps]",
        True,
        False,
        "L pre-LN layers (norm_first=True), each x + SA(norm1(x)) then x + FF(norm2(x)), no final norm.",
    ),
    (
        "torch.nn.TransformerEncoder[norm_first,norm]",
        "transformer.stack[relu_final_ln_eps]",
        True,
        True,
        "L pre-LN layers (norm_first=True) and the final norm=nn.LayerNorm(d_e, eps=ε): the spec's final "
        "LN(H^L; α_e, β_e) (final_ln, GPT-2's ln_f).",
    ),
    (
        "torch.nn.TransformerEncoder[norm]",
        "transformer.stack[post_ln_relu_final_ln_eps]",
        False,
        True,
        "L post-LN layers and the final norm=nn.LayerNorm(d_e, eps=ε): the spec's LN(H^L; α_e, β_e) after "
        "post-LN blocks (final_ln with post_ln). The last layer already ends in its norm2, so the output is "
        "normalised twice: LN(α_2 ⊙ x̂ + β_2; α_e, β_e), which is not α_2 ⊙ x̂ + β_2 (nearly so only while "
        "norm2 and norm keep torch's initial weight 1, bias 0).",
    ),
):
    builtin(
        _name,
        _equation,
        description=f"nn.TransformerEncoder(nn.TransformerEncoderLayer(d_e, M, d_f, …), L): {_what} {_NOTE}",
        mapping=(*_LAYER_MAPPING, *(_FINAL if _norm else ())),
        constants={"eps": TORCH_EPS},
        derive=TIED_HEADS,
    )((lambda nf, nm: lambda: _stack_target(nf, nm))(_norm_first, _norm))
