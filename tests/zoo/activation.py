"""GELU as people write it: the erf form, nanoGPT's NewGELU (tanh approximation), BERT-era "fast" GELU,
the sigmoid approximation. Audited against activation.gelu (erf) and activation.gelu_tanh."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import ZooCase

ELEMENTWISE = "x:X=b n d_e -> b n d_e"


def gelu(x):
    """The exact GELU, x Φ(x), written out."""
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


class NewGELU(nn.Module):
    """nanoGPT's GELU, the tanh approximation GPT-2 uses."""

    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def gelu_fast(x):
    """The tanh approximation with the constants inlined, shipped as a model's 'gelu'."""
    return 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608028654 * (1.0 + 0.044715 * x * x)))


def gpt2_mlp_activation(x):
    """A GPT-2 port that used nn.GELU()'s default, the exact erf form."""
    return F.gelu(x)


def quick_gelu(x):
    """The sigmoid approximation x σ(1.702 x) (CLIP's QuickGELU), used where GELU is specified."""
    return x * torch.sigmoid(1.702 * x)


CASES = [
    ZooCase("gelu_erf", gelu, as_="activation.gelu", layout=ELEMENTWISE, verdict="pass"),
    ZooCase("new_gelu", NewGELU, as_="activation.gelu_tanh", init={}, layout=ELEMENTWISE, verdict="pass"),
    ZooCase("gelu_fast_as_exact", gelu_fast, as_="activation.gelu", layout=ELEMENTWISE, verdict="variant",
            matched=("tanh_approximation",), bug="tanh approximation where the erf GELU is specified",
            tags=("gelu_mixup",), caught_by=("value=oracle",)),
    ZooCase("gelu_exact_as_tanh", gpt2_mlp_activation, as_="activation.gelu_tanh", layout=ELEMENTWISE,
            verdict="variant", matched=("erf",), bug="exact GELU where GPT-2's tanh form is specified",
            tags=("gelu_mixup",), caught_by=("value=oracle",)),
    ZooCase("quick_gelu_as_exact", quick_gelu, as_="activation.gelu", layout=ELEMENTWISE, verdict="fail",
            bug="x σ(1.702 x) where the erf GELU is specified", tags=("gelu_mixup",),
            caught_by=("value=oracle",)),
]  # fmt: skip
