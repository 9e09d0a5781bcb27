"""The attention weights of a small seeded GPT-2, per block and per head, computed in NumPy.

The model is impl/gpt2.py's (pre-LN blocks, tanh GELU, ε = 1e-5, biases 0, α = 1, β = 0, every matrix drawn
N(0, STD²)), its weights drawn by NumPy so that drawing the figure imports no torch (about 3 s of a first
``lmspec render``). The weights are computed step by step as impl's block takes them: ``Ĥ = LN(H; α_1, β_1)``,
``Q_m = Ĥ W_Q^{(m)} + b_Q^{(m)}`` and ``K_m`` alike, ``softmax_rows(Q_m K_mᵀ / √d_k + S)`` with S the causal
mask, then ``H ← block(H)`` for the next one. tests/verify/test_figures.py loads these weights into impl's
GPT2 and holds every drawn weight to impl's own computation and impl's block output.
"""

import math

import numpy as np

#: The example: a six-token sentence over an eleven-word vocabulary, and the model's sizes.
VOCABULARY = ("the", "cat", "sat", "on", "mat", "a", "dog", "ran", "to", "it", ".")
SENTENCE = ("the", "cat", "sat", "on", "the", "mat")
SIZES = {"v": len(VOCABULARY), "n": len(SENTENCE), "n_max": 8, "d_e": 16, "M": 4, "d_k": 4, "L": 2, "d_f": 32}
#: Weights drawn N(0, STD²): larger than GPT-2's 0.02, so that the heads differ visibly.
STD = 0.4
SEED = 17
#: impl.gpt2.GPT2's default ε of its layer norms.
EPS = 1e-5


def tokens() -> np.ndarray:
    """The sentence's token ids k."""
    return np.array([VOCABULARY.index(w) for w in SENTENCE])


def parameters() -> dict:
    """The seeded weights in the spec's layout, as impl's ``GPT2.spec_params()`` names them: ``E``
    (d_e × v), ``Lambda`` (d_e × n_max), ``alpha_e``, ``beta_e``, and ``blocks``, a dict per block (``W_Q``
    M × d_e × d_k, ``W_O`` M d_v × d_e, ``W_1`` d_f × d_e, ``W_2`` d_e × d_f, …). NumPy's global generator
    is left alone."""
    s = SIZES
    d_e, M, d_k, d_f = s["d_e"], s["M"], s["d_k"], s["d_f"]
    rng = np.random.default_rng(SEED)

    def normal(*shape: int) -> np.ndarray:
        return rng.normal(0.0, STD, size=shape)

    params: dict = {"E": normal(d_e, s["v"]), "Lambda": normal(d_e, s["n_max"]), "blocks": []}
    for _ in range(s["L"]):
        params["blocks"].append(
            {
                "W_Q": normal(M, d_e, d_k),
                "b_Q": np.zeros((M, d_k)),
                "W_K": normal(M, d_e, d_k),
                "b_K": np.zeros((M, d_k)),
                "W_V": normal(M, d_e, d_k),
                "b_V": np.zeros((M, d_k)),
                "W_O": normal(M * d_k, d_e),
                "b_O": np.zeros(d_e),
                "alpha_1": np.ones(d_e),
                "beta_1": np.zeros(d_e),
                "alpha_2": np.ones(d_e),
                "beta_2": np.zeros(d_e),
                "W_1": normal(d_f, d_e),
                "b_1": np.zeros(d_f),
                "W_2": normal(d_e, d_f),
                "b_2": np.zeros(d_e),
            }
        )
    params["alpha_e"], params["beta_e"] = np.ones(d_e), np.zeros(d_e)
    return params


def _layer_norm(H: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    mu = H.mean(axis=-1, keepdims=True)
    sigma = np.sqrt(((H - mu) ** 2).mean(axis=-1, keepdims=True) + EPS)
    return alpha * (H - mu) / sigma + beta


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def _softmax_rows(Z: np.ndarray) -> np.ndarray:
    e = np.exp(Z - Z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def attention_weights(params: dict, k: np.ndarray) -> list[np.ndarray]:
    """Per block l, the weights ``softmax(Q_m K_mᵀ / √d_k + S)`` of every head, ``(M, n, n)``: row i the
    query token, column j the key token."""
    n = k.shape[-1]
    H = params["E"].T[k] + params["Lambda"][:, :n].T  # H^0ᵀ: (n, d_e)
    S = np.where(np.triu(np.ones((n, n), dtype=bool), 1), -math.inf, 0.0)  # (n, n)
    weights = []
    for p in params["blocks"]:
        Hhat = _layer_norm(H, p["alpha_1"], p["beta_1"])  # (n, d_e)
        Q = Hhat @ p["W_Q"] + p["b_Q"][:, None, :]  # (M, n, d_k)
        K = Hhat @ p["W_K"] + p["b_K"][:, None, :]  # (M, n, d_k)
        V = Hhat @ p["W_V"] + p["b_V"][:, None, :]  # (M, n, d_v)
        W = _softmax_rows(Q @ K.transpose(0, 2, 1) / math.sqrt(Q.shape[-1]) + S)  # (M, n, n)
        weights.append(W)
        P = (W @ V).transpose(1, 0, 2).reshape(n, -1)  # (n, M*d_v): [P_1, …, P_M]
        X = H + P @ p["W_O"] + p["b_O"]  # (n, d_e)
        C = _layer_norm(X, p["alpha_2"], p["beta_2"])
        H = X + _gelu_tanh(C @ p["W_1"].T + p["b_1"]) @ p["W_2"].T + p["b_2"]  # H^l: (n, d_e)
    return weights
