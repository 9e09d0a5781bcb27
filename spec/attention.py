"""Attention: projections, row softmax, masks, scaled dot-product, multi-head (28) and cross-attention.

The tutorial works in row form: ``Q_m = Hᵀ W_Q^{(m)} + 1_n b_Q^{(m)ᵀ} ∈ ℝ^{n×d_k}`` (one row per token),
``P_m = softmax(Q_m K_mᵀ / √d_k + S) V_m ∈ ℝ^{n×d_v}``, and the heads are concatenated side by side and
projected back to columns, ``A = (P W_O)ᵀ + b_O 1_nᵀ ∈ ℝ^{d_e×n}``.

A fully masked row (every score −∞) is defined to give zero weights: the query attends to nothing and its
``P`` row is the empty sum, 0 (see ``spec.ops.FULLY_MASKED``). Named variants record what real code does
instead: uniform weights (finite fills such as finfo.min) or NaN (a naive softmax).
"""

import sympy as sp

from .axes import M, d_e, d_k, d_v, m, n, n_d, n_e
from .equation import Equation, Invariant, Reference
from .ops import CausalMask, HeadConcat, MaskFill, Ones, PaddingMask, Softmax, T, add, mul
from .registry import register
from .tensors import Family, Kind, tensor

#: The fill value of ``torch.finfo(torch.float32).min``, used by Hugging Face's eager attention.
FINFO_FLOAT32_MIN = sp.Float("-3.4028234663852886e38")
#: The fill of older code (original BERT, many tutorials).
FILL_1E4 = sp.Integer(-10_000)

SECTION = "§4 Transformers: attention"
VASWANI = "Vaswani et al. 2017, eq. 1 and §3.2.2"


def _head_params(bias: bool = True):
    W_Q = Family("W_Q", m, M, (d_e, d_k), meaning="query projection of head m")
    W_K = Family("W_K", m, M, (d_e, d_k), meaning="key projection of head m")
    W_V = Family("W_V", m, M, (d_e, d_v), meaning="value projection of head m")
    if not bias:
        return (W_Q, None, W_K, None, W_V, None)
    b_Q = Family("b_Q", m, M, (d_k,), meaning="query bias of head m")
    b_K = Family("b_K", m, M, (d_k,), meaning="key bias of head m")
    b_V = Family("b_V", m, M, (d_v,), meaning="value bias of head m")
    return (W_Q, b_Q, W_K, b_K, W_V, b_V)


def _project(X, rows, W, b):
    """``Xᵀ W^{(m)} + 1 b^{(m)ᵀ}``: the row-form projection of the columns of X."""
    out = mul(T(X), W[m])
    return add(out, mul(Ones(rows), T(b[m]))) if b is not None else out


def _scores(Q, K, scale):
    return mul(Q, T(K), scale) if scale != 1 else mul(Q, T(K))


# --- attention.projections ------------------------------------------------------------------------
def projections() -> Equation:
    H = tensor("H", (d_e, n), meaning="hidden states, one column per token")
    W_Q, b_Q, W_K, b_K, W_V, b_V = _head_params()
    Q = Family("Q", m, M, (n, d_k), meaning="queries of head m, one row per token")
    K = Family("K", m, M, (n, d_k), meaning="keys of head m")
    V = Family("V", m, M, (n, d_v), meaning="values of head m")
    return Equation(
        "attention.projections",
        "Query, key and value projections",
        inputs=(H,),
        params=(W_Q, b_Q, W_K, b_K, W_V, b_V),
        intermediates=(Q, K, V),
        bindings=[
            (Q[m], _project(H, n, W_Q, b_Q)),
            (K[m], _project(H, n, W_K, b_K)),
            (V[m], _project(H, n, W_V, b_V)),
        ],
        outputs=(Q, K, V),
        reference=Reference(SECTION, source="Vaswani et al. 2017, §3.2.2"),
        invariants=(
            Invariant(
                "permutation_equivariance",
                {"tokens": {"H": 1}, "output_tokens": {"Q": 0, "K": 0, "V": 0}},
            ),
        ),
        notes="Row form: each token is a row of Q_m, K_m, V_m. The bias b_Q^{(m)} is added to every row "
        "through 1_n b_Q^{(m)ᵀ}. Phuong & Hutter write W_q and column vectors.",
    )


# --- attention.softmax_rows -----------------------------------------------------------------------
def softmax_rows(fully_masked: str = "zero") -> Equation:
    Z = tensor("Z", (n, n), Kind.SCORE, meaning="attention scores, queries × keys; −∞ = masked")
    Y = tensor("Y", (n, n), Kind.PROBABILITY, meaning="attention weights; each row a distribution over keys")
    return Equation(
        "attention.softmax_rows",
        "Row-wise softmax",
        inputs=(Z,),
        intermediates=(Y,),
        bindings=[(Y, Softmax(Z, "rows", fully_masked))],
        outputs=(Y,),
        reference=Reference(SECTION, source="Vaswani et al. 2017, eq. 1"),
        invariants=(
            Invariant("softmax_rows_sum_to_one", {"input": "Z", "output": "Y"}),
            Invariant("softmax_non_negative", {"output": "Y"}),
            Invariant("softmax_shift_invariant", {"input": "Z", "output": "Y"}),
        ),
        notes="[softmax(Z)]_ij = e^{Z_ij} / Σ_j' e^{Z_ij'}: each row (one query) is normalised over the "
        "keys. A −∞ score gets weight 0; a row of −∞ only gets zero weights (the spec's convention).",
    )


# --- masks ----------------------------------------------------------------------------------------
def causal_mask(fill: sp.Expr = -sp.oo) -> Equation:
    S = tensor("S", (n, n), Kind.ADDITIVE_MASK, meaning="causal mask: token i sees tokens j ≤ i")
    return Equation(
        "attention.causal_mask",
        "Causal mask",
        intermediates=(S,),
        bindings=[(S, CausalMask(n, fill))],
        outputs=(S,),
        reference=Reference(SECTION),
        notes="S_ij = 0 if j ≤ i and −∞ if j > i, so that softmax gives future tokens weight 0.",
    )


def padding_mask(fill: sp.Expr = -sp.oo) -> Equation:
    keep = tensor("keep", (n,), Kind.MASK, tex=r"\kappa", meaning="1 for a real token, 0 for padding")
    S = tensor("S", (n, n), Kind.ADDITIVE_MASK, meaning="padding mask over keys")
    return Equation(
        "attention.padding_mask",
        "Padding mask",
        inputs=(keep,),
        intermediates=(S,),
        bindings=[(S, PaddingMask(keep, n, fill))],
        outputs=(S,),
        reference=Reference(SECTION, source="Devlin et al. 2019 (attention_mask)", status="R"),
        notes="S_ij = −∞ where key j is padding (κ_j = 0), 0 otherwise, for every query row i. A query "
        "whose keys are all padding has a fully masked row.",
    )


def _mask_variants(eq: Equation, build) -> Equation:
    eq.add_variant(
        "fill_1e4",
        lambda: build(FILL_1E4),
        "masked entries are −10⁴ instead of −∞ (original BERT, many tutorials)",
    )
    eq.add_variant(
        "fill_finfo_min",
        lambda: build(FINFO_FLOAT32_MIN),
        "masked entries are torch.finfo(float32).min (Hugging Face eager attention)",
    )
    return eq


# --- attention.scaled_dot_product -----------------------------------------------------------------
def scaled_dot_product(
    scale: sp.Expr = 1 / sp.sqrt(d_k), fully_masked: str = "zero", fill: sp.Expr | None = None
) -> Equation:
    Q = tensor("Q", (n, d_k), meaning="queries, one row per token")
    K = tensor("K", (n, d_k), meaning="keys")
    V = tensor("V", (n, d_v), meaning="values")
    S = tensor("S", (n, n), Kind.ADDITIVE_MASK, meaning="additive mask (causal, padding or 0)")
    P = tensor("P", (n, d_v), meaning="attention output, one row per token")
    mask = S if fill is None else MaskFill(S, fill)
    return Equation(
        "attention.scaled_dot_product",
        "Scaled dot-product attention",
        inputs=(Q, K, V, S),
        intermediates=(P,),
        bindings=[(P, mul(Softmax(add(_scores(Q, K, scale), mask), "rows", fully_masked), V))],
        outputs=(P,),
        reference=Reference(SECTION, source=VASWANI),
        invariants=(
            Invariant("causal", {"mask": "S", "tokens": {"Q": 0, "K": 0, "V": 0}, "output_tokens": {"P": 0}}),
            Invariant(
                "permutation_equivariance",
                {"mask": "S", "tokens": {"Q": 0, "K": 0, "V": 0}, "output_tokens": {"P": 0}},
            ),
            Invariant("kv_permutation_invariance", {"mask": "S", "tokens": {"K": 0, "V": 0}}),
        ),
        notes="One head: P = softmax(Q Kᵀ/√d_k + S) V. Scores are scaled by 1/√d_k, the per-head key "
        "width, not the model width d_e.",
    )


def _sdp_variants(eq: Equation) -> Equation:
    """Each variant is scaled_dot_product with one option changed: variants of different options combine
    (``attention.scaled_dot_product[unscaled+fully_masked_nan]``)."""
    build = scaled_dot_product
    eq.add_variant("unscaled", build, "scores are not scaled", {"scale": 1})
    eq.add_variant(
        "fully_masked_uniform",
        build,
        "a fully masked row gets uniform weights (finite fills such as finfo.min)",
        {"fully_masked": "uniform"},
    )
    eq.add_variant(
        "fully_masked_nan",
        build,
        "a fully masked row gives NaN (a plain softmax of −∞ scores)",
        {"fully_masked": "nan"},
    )
    eq.add_variant(
        "fill_1e4", build, "the mask's −∞ entries are −10⁴, which large scores can beat", {"fill": FILL_1E4}
    )
    return eq


# --- attention.multi_head (28) and attention.cross share every step but their inputs ---------------
def _heads(Hq, n_q, Hkv, n_kv, mask, scale, fully_masked, bias, output=True):
    """Parameters, intermediates and definitions of multi-head attention: queries from the columns of
    ``Hq`` (n_q tokens), keys and values from those of ``Hkv`` (n_kv tokens). Without ``output`` there is no
    W_O and no b_O: A is the heads side by side, ``Pᵀ`` (its width M·d_v is then d_e)."""
    W_Q, b_Q, W_K, b_K, W_V, b_V = _head_params(bias)
    W_O = tensor("W_O", (M * d_v, d_e), meaning="output projection")
    b_O = tensor("b_O", (d_e,), meaning="output bias")
    Q = Family("Q", m, M, (n_q, d_k))
    K = Family("K", m, M, (n_kv, d_k))
    V = Family("V", m, M, (n_kv, d_v))
    P_m = Family("P", m, M, (n_q, d_v), tex="P", meaning="output of head m")
    P = tensor("P_cat", (n_q, M * d_v), tex="P", meaning="heads side by side")
    A = tensor("A", (d_e, n_q), meaning="attention output, one column per (query) token")
    scores = _scores(Q[m], K[m], scale)
    out = T(mul(P, W_O)) if output else T(P)
    params = [p for p in (W_Q, b_Q, W_K, b_K, W_V, b_V, W_O if output else None) if p is not None]
    bindings = [
        (Q[m], _project(Hq, n_q, W_Q, b_Q)),
        (K[m], _project(Hkv, n_kv, W_K, b_K)),
        (V[m], _project(Hkv, n_kv, W_V, b_V)),
        (P_m[m], mul(Softmax(add(scores, mask) if mask is not None else scores, "rows", fully_masked), V[m])),
        (P, HeadConcat(P_m[m], m, M)),
        (A, add(out, mul(b_O, T(Ones(n_q)))) if bias and output else out),
    ]
    return (*params, *((b_O,) if bias and output else ())), (Q, K, V, P_m, P, A), bindings, A


def multi_head(
    scale: sp.Expr = 1 / sp.sqrt(d_k), fully_masked: str = "zero", bias: bool = True, output: bool = True
) -> Equation:
    H = tensor("H", (d_e, n), meaning="hidden states, one column per token")
    S = tensor("S", (n, n), Kind.ADDITIVE_MASK, meaning="additive mask (causal, padding or 0)")
    params, intermediates, bindings, A = _heads(H, n, H, n, S, scale, fully_masked, bias, output)
    projected = (Invariant("heads_concat", {}), Invariant("single_head", {})) if output else ()
    return Equation(
        "attention.multi_head",
        "Multi-head attention",
        inputs=(H, S),
        params=params,
        intermediates=intermediates,
        bindings=bindings,
        outputs=(A,),
        reference=Reference(SECTION, number="28", source="Vaswani et al. 2017, §3.2.2"),
        invariants=(
            Invariant("causal", {"mask": "S", "tokens": {"H": 1}, "output_tokens": {"A": 1}}),
            Invariant(
                "permutation_equivariance", {"mask": "S", "tokens": {"H": 1}, "output_tokens": {"A": 1}}
            ),
            *projected,
        ),
        constraints=() if output else (sp.Eq(d_e, M * d_v),),
        notes="Equation (28). P = [P_1, …, P_M] ∈ ℝ^{n×M d_v} puts the heads side by side; "
        "A = (P W_O)ᵀ + b_O 1_nᵀ returns to columns. Phuong & Hutter call M 'H' and d_k 'd_attn'.",
    )


def _mha_variants(eq: Equation) -> Equation:
    """Each variant is multi_head with one option changed: variants of different options combine
    (``attention.multi_head[no_bias+scale_sqrt_d_e]``)."""
    build = multi_head
    eq.add_variant(
        "scale_sqrt_d_e",
        build,
        "scores scaled by 1/√d_e (the model width) instead of 1/√d_k",
        {"scale": 1 / sp.sqrt(d_e)},
    )
    eq.add_variant("unscaled", build, "scores are not scaled", {"scale": 1})
    eq.add_variant(
        "fully_masked_uniform",
        build,
        "a fully masked row gets uniform weights (finite fills such as finfo.min)",
        {"fully_masked": "uniform"},
    )
    eq.add_variant(
        "fully_masked_nan",
        build,
        "a fully masked row gives NaN (a plain softmax of −∞ scores)",
        {"fully_masked": "nan"},
    )
    eq.add_variant("no_bias", build, "ζ = 0: no biases in the projections or the output", {"bias": False})
    eq.add_variant(
        "no_output_projection",
        build,
        "no W_O and no b_O: the heads side by side, A = Pᵀ, with d_e = M·d_v (Hugging Face's "
        "BertSelfAttention, whose projection is BertSelfOutput's dense)",
        {"output": False},
    )
    return eq


# --- attention.cross ------------------------------------------------------------------------------
def cross() -> Equation:
    H_dec = tensor("H_dec", (d_e, n_d), tex=r"H_{\mathrm{dec}}", meaning="decoder states (queries)")
    H_enc = tensor("H_enc", (d_e, n_e), tex=r"H_{\mathrm{enc}}", meaning="encoder states (keys, values)")
    params, intermediates, bindings, A = _heads(H_dec, n_d, H_enc, n_e, None, 1 / sp.sqrt(d_k), "zero", True)
    return Equation(
        "attention.cross",
        "Cross-attention",
        inputs=(H_dec, H_enc),
        params=params,
        intermediates=intermediates,
        bindings=bindings,
        outputs=(A,),
        reference=Reference(SECTION, source="Vaswani et al. 2017, §3.2.3", status="R"),
        invariants=(
            Invariant("permutation_equivariance", {"tokens": {"H_dec": 1}, "output_tokens": {"A": 1}}),
            Invariant("kv_permutation_invariance", {"tokens": {"H_enc": 1}}),
            Invariant("heads_concat", {}),
        ),
        notes="Queries come from the decoder, keys and values from the encoder; the scores are "
        "n_d × n_e and no causal mask applies.",
    )


register(projections())
register(softmax_rows()).add_variant(
    "fully_masked_uniform",
    lambda: softmax_rows("uniform"),
    "a row of −∞ only gets uniform weights (finite fills such as finfo.min)",
)
register(_mask_variants(causal_mask(), causal_mask))
register(_mask_variants(padding_mask(), padding_mask))
register(_sdp_variants(scaled_dot_product()))
#: The equations spec/transformer.py builds its blocks on.
MULTI_HEAD = register(_mha_variants(multi_head()))
CROSS = register(cross())
