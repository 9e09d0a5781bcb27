"""The vision transformer in PyTorch, batch-first, to be read beside spec/vit.py.

Images are channel first, ``(*batch, C, H_img, W_img)`` as torch's NCHW. A patch is a row here (a token),
``X_p`` is ``(*batch, N, d_p)``, the transpose of the spec's ``X_p ∈ ℝ^{d_p×N}``. The order is the spec's:
patches row-major over the N_h × N_w grid, each flattened (channel, row, column) — the order of
``nn.Conv2d(C, d_e, P, stride=P)``, whose weight reshaped to ``(d_e, C P²)`` is ``E_p``.

The encoder is impl.transformer's stack of pre-LN blocks with exact GELU and no mask; the head reads the
class token (row 0) only.
"""

from collections.abc import Mapping

import torch
from jaxtyping import Float
from torch import Tensor, nn

from ._registry import checked, implements
from .norm import LayerNorm, layer_norm
from .transformer import TransformerStack, stack


@implements("vit.patchify")
@checked
def patchify(X: Float[Tensor, "*batch C_i H_i W_i"], P: int) -> Float[Tensor, "*batch N_p d_p"]:
    """``x_p^i``, i = (a − 1) N_w + b: the P × P patch at grid row a, column b, flattened (channel, row,
    column), one patch per row."""
    H, W = X.shape[-2:]
    if P <= 0 or H % P or W % P:
        raise ValueError(f"patchify: the patch size P={P} must divide the image height {H} and width {W}")
    N_h, N_w = H // P, W // P
    grid = X.unflatten(-1, (N_w, P)).unflatten(-3, (N_h, P))  # (*batch, C, N_h, P, N_w, P)
    grid = torch.einsum("...karbs->...abkrs", grid)  # (*batch, N_h, N_w, C, P, P)
    return grid.flatten(-3).flatten(-3, -2)  # (*batch, N_h N_w, C P P)


def unpatchify(
    X_p: Float[Tensor, "*batch N_p d_p"], P: int, C: int, N_h: int, N_w: int
) -> Float[Tensor, "*batch C_i H_i W_i"]:
    """The image whose patches are ``X_p``: the inverse of ``patchify`` (a permutation of the entries)."""
    grid = X_p.unflatten(-1, (C, P, P)).unflatten(-4, (N_h, N_w))  # (*batch, N_h, N_w, C, P, P)
    grid = torch.einsum("...abkrs->...karbs", grid)  # (*batch, C, N_h, P, N_w, P)
    return grid.flatten(-2).flatten(-3, -2)  # (*batch, C, N_h P, N_w P)


@implements("vit.input", variants={"no_bias": {}})
@checked
def input_(
    X_p: Float[Tensor, "*batch N_p d_p"],
    x_cls: Float[Tensor, " d_e"],
    E_p: Float[Tensor, "d_e d_p"],
    Lambda: Float[Tensor, "d_e n"],
    b_p: Float[Tensor, " d_e"] | None = None,
) -> Float[Tensor, "*batch n d_e"]:
    """``H^0 = [x_cls, E_p x_p^1 + b_p, …, E_p x_p^N + b_p] + Λ``, the class token first (n = N + 1);
    without ``b_p`` it is the variant no_bias (the paper's eq. 1)."""
    N, n = X_p.shape[-2], Lambda.shape[-1]
    if n != N + 1:
        raise ValueError(f"vit input: Λ has n={n} positions, but N={N} patches need N + 1 = {N + 1}")
    patches = X_p @ E_p.transpose(0, 1)  # (*batch, N, d_e)
    if b_p is not None:
        patches = patches + b_p
    cls = x_cls.expand(*patches.shape[:-2], 1, x_cls.shape[-1])  # (*batch, 1, d_e)
    return torch.cat([cls, patches], dim=-2) + Lambda.transpose(0, 1)  # (*batch, N + 1, d_e)


@implements("vit.encoder", variants={"eps": {}})
@checked
def encoder(
    X: Float[Tensor, "*batch n d_e"],
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
    *,
    eps: float = 0.0,
    activation: str = "gelu",
) -> Float[Tensor, "*batch n d_e"]:
    """``H^l = Block^{(l)}(H^{l−1}; 0)``, l = 1..L: pre-LN blocks with exact GELU, no mask; returns ``H^L``
    (the final layer norm is the head's). ``eps`` is the layer norms' ε (the variant eps), ``activation``
    "gelu_tanh" the variant gelu_tanh (the JAX original)."""
    params = dict(W_Q=W_Q, b_Q=b_Q, W_K=W_K, b_K=b_K, W_V=W_V, b_V=b_V, W_O=W_O, b_O=b_O)
    params.update(alpha_1=alpha_1, beta_1=beta_1, alpha_2=alpha_2, beta_2=beta_2)
    params.update(W_1=W_1, b_1=b_1, W_2=W_2, b_2=b_2)
    return stack(X, None, **params, norm_first=True, activation=activation, eps=eps)


@implements("vit.head", variants={"eps": {}, "no_bias": {}, "no_bias_eps": {}})
@checked
def head(
    H: Float[Tensor, "*batch n d_e"],
    alpha_e: Float[Tensor, " d_e"],
    beta_e: Float[Tensor, " d_e"],
    W_head: Float[Tensor, "n_c d_e"],
    b_head: Float[Tensor, " n_c"] | None = None,
    eps: float = 0.0,
) -> Float[Tensor, "*batch n_c"]:
    """``ŷ = softmax(W_head LN(h^L_cls; α_e, β_e) + b_head)``, the class token being row 0; without
    ``b_head`` it is the variant no_bias."""
    h = layer_norm(H[..., 0:1, :], alpha_e, beta_e, eps)[..., 0, :]  # (*batch, d_e)
    z = h @ W_head.transpose(0, 1)  # (*batch, n_c)
    if b_head is not None:
        z = z + b_head
    return torch.softmax(z, dim=-1)


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


class ViT(nn.Module):
    """ViT for classification (Dosovitskiy et al. 2021): patch embedding, class token, learned positions,
    L pre-LN blocks with exact GELU, final layer norm and a linear head on the class token.

    ``image_size`` is an int (square) or (height, width), each a multiple of the patch size P. ``eps`` is
    every layer norm's ε (Hugging Face's ViTConfig default 10⁻¹²; the JAX original and timm use 10⁻⁶);
    ``activation`` "gelu_tanh" is the JAX original's FFN (the variant vit.encoder[gelu_tanh_eps]).
    ``spec_params()`` returns the spec's tensors: ``E_p ∈ ℝ^{d_e×P²C}`` (Conv2d's weight reshaped), ``b_p``,
    ``x_cls``, ``Λ ∈ ℝ^{d_e×(N+1)}``, the blocks' parameters stacked on L, ``α_e, β_e``, ``W_head``,
    ``b_head``.
    """

    def __init__(
        self,
        image_size: int | tuple[int, int],
        P: int,
        C: int,
        d_e: int,
        M: int,
        L: int,
        d_f: int,
        n_c: int,
        *,
        eps: float = 1e-12,
        activation: str = "gelu",
        std: float = 0.02,
    ) -> None:
        super().__init__()
        height, width = _pair(image_size)
        if min(P, C, d_e, M, L, d_f, n_c, height, width) <= 0:
            raise ValueError(
                f"ViT: sizes must be positive, found image_size={image_size}, P={P}, C={C}, d_e={d_e}, "
                f"M={M}, L={L}, d_f={d_f}, n_c={n_c}"
            )
        if height % P or width % P:
            raise ValueError(f"ViT: the patch size P={P} must divide the image size {height}×{width}")
        if d_e % M:
            raise ValueError(f"ViT: d_e={d_e} must be a multiple of the number of heads M={M}")
        self.P, self.C, self.eps, self.activation = P, C, eps, activation
        self.N_h, self.N_w = height // P, width // P
        N = self.N_h * self.N_w
        self.E_p = nn.Parameter(torch.randn(d_e, C * P * P) * std)
        self.b_p = nn.Parameter(torch.zeros(d_e))
        self.x_cls = nn.Parameter(torch.randn(d_e) * std)
        self.Lambda = nn.Parameter(torch.randn(d_e, N + 1) * std)
        self.blocks = TransformerStack(
            L, d_e, M, d_f, norm_first=True, activation=activation, eps=eps, std=std
        )
        self.ln_e = LayerNorm(d_e, eps)
        self.W_head = nn.Parameter(torch.randn(n_c, d_e) * std)
        self.b_head = nn.Parameter(torch.zeros(n_c))

    def embed(self, X: Float[Tensor, "*batch C_i H_i W_i"]) -> Float[Tensor, "*batch n d_e"]:
        """``H^0`` of an image batch (vit.patchify then vit.input)."""
        return input_(patchify(X, self.P), self.x_cls, self.E_p, self.Lambda, self.b_p)

    def hidden_states(self, X: Float[Tensor, "*batch C_i H_i W_i"]) -> Float[Tensor, "*batch n d_e"]:
        """``H^L``, the output of the last block (before the final layer norm)."""
        return encoder(self.embed(X), **self.blocks.spec_params(), eps=self.eps, activation=self.activation)

    def last_hidden_state(self, X: Float[Tensor, "*batch C_i H_i W_i"]) -> Float[Tensor, "*batch n d_e"]:
        """``LN(H^L; α_e, β_e)`` for every token: Hugging Face ViTModel's last_hidden_state."""
        return self.ln_e(self.hidden_states(X))

    def forward(self, X: Float[Tensor, "*batch C_i H_i W_i"]) -> Float[Tensor, "*batch n_c"]:
        """Class probabilities ``ŷ`` (vit.head on the class token)."""
        H = self.hidden_states(X)
        return head(H, self.ln_e.alpha, self.ln_e.beta, self.W_head, self.b_head, self.eps)

    def spec_params(self) -> dict[str, Tensor]:
        return {
            "E_p": self.E_p,
            "b_p": self.b_p,
            "x_cls": self.x_cls,
            "Lambda": self.Lambda,
            **self.blocks.spec_params(),
            "alpha_e": self.ln_e.alpha,
            "beta_e": self.ln_e.beta,
            "W_head": self.W_head,
            "b_head": self.b_head,
        }

    @torch.no_grad()
    def load_spec_params(self, params: Mapping[str, Tensor]) -> None:
        """Copy tensors named and oriented as ``spec_params()`` returns them into the module (blocks'
        parameters stacked on L); a ValueError names a missing or misshapen one."""
        missing = sorted(set(self.spec_params()) - set(params))
        if missing:
            raise ValueError(f"ViT.load_spec_params: missing {', '.join(missing)}")
        own = {
            "E_p": self.E_p,
            "b_p": self.b_p,
            "x_cls": self.x_cls,
            "Lambda": self.Lambda,
            "alpha_e": self.ln_e.alpha,
            "beta_e": self.ln_e.beta,
            "W_head": self.W_head,
            "b_head": self.b_head,
        }
        pairs = [(name, p, params[name]) for name, p in own.items()]
        for layer, block in enumerate(self.blocks.blocks):
            pairs += [(f"{name}[{layer}]", p, params[name][layer]) for name, p in block.spec_params().items()]
        for name, p, value in pairs:
            if p.shape != value.shape:
                raise ValueError(
                    f"ViT.load_spec_params: {name} has shape {tuple(value.shape)}, expected {tuple(p.shape)}"
                )
            p.copy_(value)

    def patch_embedding_weight(self) -> Tensor:
        """``E_p`` as the weight ``(d_e, C, P, P)`` of the equivalent ``nn.Conv2d(C, d_e, P, stride=P)``."""
        return self.E_p.unflatten(-1, (self.C, self.P, self.P))

    @property
    def num_patches(self) -> int:
        return self.N_h * self.N_w

    def extra_repr(self) -> str:
        return f"P={self.P}, C={self.C}, grid={self.N_h}×{self.N_w}, eps={self.eps}"


__all__ = ["ViT", "encoder", "head", "input_", "patchify", "unpatchify"]
