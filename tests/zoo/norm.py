"""Hand-written layer norms: with their own parameter names (gamma/beta, a_2/b_2, weight/bias), with and
without ε, with Bessel's correction (The Annotated Transformer), over the wrong axis. Audited against
norm.layer_norm."""

import torch
from torch import nn

from . import ZooCase

LN = "norm.layer_norm"
ROWS = "x:H=b n d_e -> b n d_e"


class LayerNorm(nn.Module):
    """No ε: a constant token (σ = 0) is mapped to β, with a safe denominator so no 0/0 reaches autograd."""

    def __init__(self, features):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(features))
        self.beta = nn.Parameter(torch.zeros(features))

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        var = ((x - mean) ** 2).mean(-1, keepdim=True)
        flat = var == 0
        std = torch.where(flat, torch.ones_like(var), var).sqrt()
        x_hat = torch.where(flat, torch.zeros_like(x), (x - mean) / std)
        return self.gamma * x_hat + self.beta


class LayerNormEps(nn.Module):
    """The usual hand-written one: ε = 1e-5 inside the root, as torch.nn.LayerNorm."""

    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        mu = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        return self.weight * (x - mu) / torch.sqrt(var + self.eps) + self.bias


class AnnotatedLayerNorm(nn.Module):
    """The Annotated Transformer's: x.std() is Bessel-corrected, ε added to the std."""

    def __init__(self, features, eps=1e-6):
        super().__init__()
        self.a_2 = nn.Parameter(torch.ones(features))
        self.b_2 = nn.Parameter(torch.zeros(features))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True)
        return self.a_2 * (x - mean) / (std + self.eps) + self.b_2


class TokenAxisLayerNorm(nn.Module):
    """Written for (batch, features) input and used on (batch, seq, features): the statistics are taken
    over dim=1, the sequence."""

    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        mu = x.mean(1, keepdim=True)
        var = ((x - mu) ** 2).mean(1, keepdim=True)
        return self.weight * (x - mu) / torch.sqrt(var + self.eps) + self.bias


CASES = [
    ZooCase("layer_norm_no_eps", LayerNorm, as_=LN, init={"features": "d_e"},
            params={"gamma": "alpha", "beta": "beta"}, layout=ROWS, verdict="pass"),
    ZooCase("layer_norm_eps", LayerNormEps, as_=LN, init={"dim": "d_e"},
            params={"weight": "alpha", "bias": "beta"}, layout=ROWS, constants={"eps": 1e-5},
            verdict="variant", matched=("eps",), bug="ε = 1e-5 inside the root", tags=("ln_eps",),
            caught_by=("value=oracle",)),
    ZooCase("layer_norm_bessel", AnnotatedLayerNorm, as_=LN, init={"features": "d_e"},
            params={"a_2": "alpha", "b_2": "beta"}, layout=ROWS, constants={"eps": 1e-6},
            verdict="variant", matched=("annotated_transformer",),
            bug="unbiased std (divisor d_e − 1), ε added to the std", tags=("ln_bessel",),
            caught_by=("value=oracle",)),
    ZooCase("layer_norm_token_axis", TokenAxisLayerNorm, as_=LN, init={"dim": "d_e"},
            params={"weight": "alpha", "bias": "beta"}, layout=ROWS, constants={"eps": 1e-5},
            verdict="fail", bug="mean and variance over the sequence axis", tags=("ln_axis",),
            caught_by=("value=oracle",)),
]  # fmt: skip
