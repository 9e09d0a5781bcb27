"""Sinusoidal position tables as tutorials write them, returned (max_len, d_model): row t is position t.
Audited against positional.sinusoidal (Λ ∈ ℝ^{d_e×n_max}, so the layout transposes)."""

import math

import torch

from . import ZooCase

PE = "positional.sinusoidal"
TABLE = "max_len:n_max, d_model:d_e -> n_max d_e"


def _positions_and_frequencies(max_len, d_model):
    position = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)  # (max_len, 1)
    div_term = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float64) * (-math.log(10000.0) / d_model))
    return position, div_term  # div_term[i] = 10000^(−2i/d_model)


def sinusoid_table(max_len, d_model):
    """The Annotated Transformer's table, with an odd d_model handled (the last column is a sine)."""
    position, div_term = _positions_and_frequencies(max_len, d_model)
    pe = torch.zeros(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term[: d_model // 2])
    return pe


def sinusoid_table_column_index(max_len, d_model):
    """pos / 10000^(2j/d) with j the column, not the pair index j // 2."""
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]
    j = torch.arange(d_model, dtype=torch.float64)[None, :]
    angles = pos / torch.pow(10000.0, 2 * j / d_model)
    pe = angles.clone()
    pe[:, 0::2] = torch.sin(angles[:, 0::2])
    pe[:, 1::2] = torch.cos(angles[:, 1::2])
    return pe


def sinusoid_table_swapped(max_len, d_model):
    """cos in the even columns and sin in the odd ones."""
    position, div_term = _positions_and_frequencies(max_len, d_model)
    pe = torch.zeros(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.cos(position * div_term)
    pe[:, 1::2] = torch.sin(position * div_term[: d_model // 2])
    return pe


def sinusoid_table_concat(max_len, d_model):
    """tensor2tensor's layout: every sine first, then every cosine, [sin, cos] concatenated."""
    position, div_term = _positions_and_frequencies(max_len, d_model)
    angles = position * div_term  # (max_len, ⌈d/2⌉)
    return torch.cat([torch.sin(angles), torch.cos(angles[:, : d_model // 2])], dim=1)


def sinusoid_embedding(num_positions, dim, dtype, device):
    """The table as model code builds it on the fly, in the model's dtype and on its device (arguments with
    no default): exponents from torch.arange, sines and cosines interleaved through stack and flatten."""
    half = torch.arange(0, dim, 2, dtype=torch.float64, device=device)
    inv_freq = torch.exp(-math.log(10000.0) * half / dim)  # 1 / 10000^(2i/d)
    angles = torch.arange(num_positions, dtype=torch.float64, device=device)[:, None] * inv_freq[None, :]
    table = torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2)[:, :dim]  # sin, cos, sin, cos …
    return table.to(dtype)


CASES = [
    ZooCase("sinusoid_table", sinusoid_table, as_=PE, layout=TABLE, verdict="pass"),
    ZooCase("sinusoid_embedding_dtype_device", sinusoid_embedding, as_=PE, verdict="pass",
            layout="num_positions:n_max, dim:d_e, dtype:dtype, device:device -> n_max d_e"),
    ZooCase("sinusoid_column_index", sinusoid_table_column_index, as_=PE, layout=TABLE, verdict="fail",
            bug="exponent 2j/d with j the column (2i+1 for the cosines, and 4i/d overall) instead of 2i/d",
            tags=("sinusoid_indices",), caught_by=("value=oracle",)),
    ZooCase("sinusoid_swapped", sinusoid_table_swapped, as_=PE, layout=TABLE, verdict="fail",
            bug="sin and cos swapped", tags=("sinusoid_indices",),
            caught_by=("value=oracle",)),
    ZooCase("sinusoid_concat", sinusoid_table_concat, as_=PE, layout=TABLE, verdict="variant",
            matched=("halves",), bug="[sin, cos] concatenated instead of interleaved",
            tags=("sinusoid_indices",), caught_by=("value=oracle",)),
]  # fmt: skip
