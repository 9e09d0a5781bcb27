# ruff: noqa: F722
"""Built-in audit targets of a language model's ends: ``nn.Embedding`` (the input) and ``F.cross_entropy``
(the loss), torch 2.13. How the built-ins build and call torch's objects: _torch.
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F  # noqa: N812
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from ._registry import builtin
from ._torch import build, call


# --- nn.Embedding / F.cross_entropy -------------------------------------------------------------------------
@builtin(
    "torch.nn.Embedding",
    "lm.embedding",
    description="nn.Embedding(v, d_e)(k): row k_i of weight, which holds Eᵀ (v × d_e).",
    mapping={
        "E": "weightᵀ (weight is v × d_e)",
        "k": "input (token ids)",
        "v": "num_embeddings",
        "d_e": "embedding_dim",
    },
)
def _embedding() -> Callable:
    def embedding(k: Int[Tensor, "*batch n"], E: Float[Tensor, "d_e v"]) -> Float[Tensor, "*batch n d_e"]:
        d_e, v = E.shape
        module = build(nn.Embedding, v, d_e, like=E)
        return call(module, {"weight": E.transpose(0, 1)}, k)

    return embedding


@builtin(
    "torch.nn.functional.cross_entropy",
    "lm.cross_entropy",
    description=(
        "F.cross_entropy on the logits of each sequence (n × v, classes last). "
        "ℓ = F.cross_entropy(Z, k, reduction='none') at every position (torch gives 0 at an ignored target, "
        "where the spec's ℓ is still defined, so ℓ is taken without ignore_index); the spec's keep is "
        "torch's ignore_index: the targets of dropped positions are set to ignore_index, then loss_sum = "
        "reduction='sum' and loss = reduction='mean' (the mean over kept positions; NaN when none is kept, "
        "as the spec says)."
    ),
    mapping={
        "Z": "input (n, v) per sequence: Zᵀ",
        "k": "target",
        "keep": "target = ignore_index (−100) where keep = 0",
        "ell": "reduction='none' (no position ignored)",
        "loss_sum": "reduction='sum' (ignored positions left out)",
        "loss": "reduction='mean' (ignored positions left out)",
    },
)
def _cross_entropy() -> Callable:
    def cross_entropy(
        Z: Float[Tensor, "*batch n v"], k: Int[Tensor, "*batch n"], keep: Bool[Tensor, "*batch n"]
    ) -> tuple[Float[Tensor, "*batch n"], Float[Tensor, "*batch"], Float[Tensor, "*batch"]]:
        *batch, n, v = Z.shape
        logits, targets = Z.reshape(-1, n, v), k.reshape(-1, n)
        ignored = targets.masked_fill(~keep.reshape(-1, n), -100)  # F.cross_entropy's default ignore_index
        ell = torch.stack(
            [F.cross_entropy(z, t, reduction="none") for z, t in zip(logits, targets, strict=True)]
        )
        loss_sum = torch.stack(
            [F.cross_entropy(z, t, reduction="sum") for z, t in zip(logits, ignored, strict=True)]
        )
        loss = torch.stack([F.cross_entropy(z, t) for z, t in zip(logits, ignored, strict=True)])
        return ell.reshape(*batch, n), loss_sum.reshape(batch), loss.reshape(batch)

    return cross_entropy
