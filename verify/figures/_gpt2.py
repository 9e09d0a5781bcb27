"""The attention weights of impl's GPT-2, per block and per head, on a small seeded example.

impl/gpt2.py keeps the weights inside its blocks; here they are recomputed with impl's own functional core,
step by step as its block takes them: ``Ĥ = LN(H; α_1, β_1)``, ``Q_m, K_m`` by ``attention.projections``,
``softmax_rows(Q_m K_mᵀ / √d_k + S)`` with S impl's ``causal_mask``, then ``H ← block(H)`` for the next one.
tests/verify/test_figures.py holds these weights to impl's block output.
"""

import math

import torch

from ...impl.attention import causal_mask, projections, softmax_rows
from ...impl.gpt2 import GPT2, block
from ...impl.lm import embedding
from ...impl.norm import layer_norm
from ...impl.positional import learned

#: The example: a six-token sentence over an eleven-word vocabulary, and the model's sizes.
VOCABULARY = ("the", "cat", "sat", "on", "mat", "a", "dog", "ran", "to", "it", ".")
SENTENCE = ("the", "cat", "sat", "on", "the", "mat")
SIZES = {"v": len(VOCABULARY), "n": len(SENTENCE), "n_max": 8, "d_e": 16, "M": 4, "d_k": 4, "L": 2, "d_f": 32}
#: Weights drawn N(0, STD²): larger than GPT-2's 0.02, so that the heads differ visibly.
STD = 0.4
SEED = 17


def model() -> tuple[GPT2, torch.Tensor]:
    """impl's GPT-2 at SIZES, seeded (torch's global generator is left as it was), in float64, and the
    sentence's token ids k."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        s = SIZES
        gpt = GPT2(s["v"], s["n_max"], s["d_e"], s["M"], s["L"], s["d_f"], std=STD).double()
    k = torch.tensor([VOCABULARY.index(w) for w in SENTENCE])
    return gpt, k


@torch.no_grad()
def attention_weights(gpt: GPT2, k: torch.Tensor) -> list[torch.Tensor]:
    """Per block l, the weights ``softmax(Q_m K_mᵀ / √d_k + S)`` of every head, ``(M, n, n)``: row i the
    query token, column j the key token."""
    p_all = gpt.spec_params()
    n = k.shape[-1]
    H = embedding(k, p_all["E"]) + learned(p_all["Lambda"], n)  # H^0ᵀ: (n, d_e)
    S = causal_mask(n, dtype=H.dtype)  # (n, n)
    weights = []
    for b in gpt.blocks:
        p = b.spec_params()
        Hhat = layer_norm(H, p["alpha_1"], p["beta_1"], gpt.eps)  # (n, d_e)
        Q, K, _ = projections(Hhat, p["W_Q"], p["b_Q"], p["W_K"], p["b_K"], p["W_V"], p["b_V"])  # (M, n, d_k)
        weights.append(softmax_rows(Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1]) + S))  # (M, n, n)
        H, _ = block(H, p, eps=gpt.eps)  # H^l: (n, d_e)
    return weights
