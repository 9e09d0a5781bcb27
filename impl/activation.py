"""Element-wise activations in PyTorch, to be read beside spec/activation.py.

Each is applied entry by entry, so the layout does not matter; the annotations name the spec's axes
(``X ∈ ℝ^{d_e×n}``, batch-first ``n × d_e``) so that the verifier can bind them. ``ACTIVATIONS`` maps the
spec's names to plain tensor functions for the FFN and the blocks.
"""

import math
from collections.abc import Callable

import torch
from jaxtyping import Float
from torch import Tensor

from ._registry import checked, implements

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _gelu(x: Tensor) -> Tensor:
    """``x Φ(x) = (x/2)(1 + erf(x/√2))`` (torch: ``F.gelu(x)``)."""
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _gelu_tanh(x: Tensor) -> Tensor:
    """``(x/2)(1 + tanh(√(2/π)(x + 0.044715 x³)))`` (torch: ``F.gelu(x, approximate="tanh")``)."""
    return 0.5 * x * (1.0 + torch.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3)))


def _gelu_kernel(x: Tensor) -> Tensor:
    """torch's fused exact GELU, the same function as ``_gelu`` in one pass over x."""
    return torch.nn.functional.gelu(x)


def _gelu_tanh_kernel(x: Tensor) -> Tensor:
    """torch's fused tanh GELU, the same function as ``_gelu_tanh`` in one pass over x."""
    return torch.nn.functional.gelu(x, approximate="tanh")


#: The spec's activation names (spec.ops_nn.POINTWISE) and their tensor functions, as the FFN and the
#: blocks apply them: torch's fused kernels. The registered ``activation.*`` functions below write each
#: formula out; the verifier holds both to the spec.
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": torch.relu,
    "gelu": _gelu_kernel,
    "gelu_tanh": _gelu_tanh_kernel,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
}


def activation_function(name: str) -> Callable[[Tensor], Tensor]:
    """The tensor function of the activation ``name``; a ValueError names the known ones."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r} (known: {', '.join(ACTIVATIONS)})") from None


@implements("activation.relu")
@checked
def relu(X: Float[Tensor, "*batch n d_e"]) -> Float[Tensor, "*batch n d_e"]:
    """``ReLU(x) = max(0, x)``."""
    return torch.relu(X)


@implements("activation.gelu")
@checked
def gelu(X: Float[Tensor, "*batch n d_e"]) -> Float[Tensor, "*batch n d_e"]:
    """``GELU(x) = x Φ(x) = (x/2)(1 + erf(x/√2))``, the exact form (BERT)."""
    return _gelu(X)


@implements("activation.gelu_tanh")
@checked
def gelu_tanh(X: Float[Tensor, "*batch n d_e"]) -> Float[Tensor, "*batch n d_e"]:
    """``(x/2)(1 + tanh(√(2/π)(x + 0.044715 x³)))``, GPT-2's approximation of GELU."""
    return _gelu_tanh(X)


@implements("activation.sigmoid")
@checked
def sigmoid(X: Float[Tensor, "*batch n d_e"]) -> Float[Tensor, "*batch n d_e"]:
    """``σ(x) = 1/(1 + e^{−x})``."""
    return torch.sigmoid(X)


@implements("activation.tanh")
@checked
def tanh(X: Float[Tensor, "*batch n d_e"]) -> Float[Tensor, "*batch n d_e"]:
    """``tanh(x)``."""
    return torch.tanh(X)
