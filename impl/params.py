"""Parameter counts: the tutorial's closed forms as integer functions of the sizes.

One function per ``params.*`` equation, composed the way the spec composes them (a block is an MHA, an FFN
and two layer norms; GPT-2 is embeddings, a stack and a final layer norm ...). Tied tensors count once:
GPT-2's output layer and BERT's MLM decoder are ``Eᵀ`` and add nothing.
"""

from ._registry import checked, implements


def _positive(who: str, **sizes: int) -> None:
    bad = [f"{name}={size}" for name, size in sizes.items() if size <= 0]
    if bad:
        raise ValueError(f"{who}: sizes must be positive, found {', '.join(bad)}")


@implements("params.embedding")
@checked
def embedding(v: int, d_e: int) -> int:
    """``N_E = v d_e``: the token embedding ``E ∈ ℝ^{d_e×v}``."""
    _positive("params.embedding", v=v, d_e=d_e)
    return v * d_e


@implements("params.positional")
@checked
def positional(n_max: int, d_e: int) -> int:
    """``N_Λ = n_max d_e``: the learned positions ``Λ ∈ ℝ^{d_e×n_max}``."""
    _positive("params.positional", n_max=n_max, d_e=d_e)
    return n_max * d_e


@implements("params.mha")
@checked
def mha(d_e: int, M: int, d_k: int, d_v: int, zeta: int = 1) -> int:
    """``N_MHA = 2 M d_e (d_k + d_v) + ζ (M (2 d_k + d_v) + d_e)``; ``zeta = 0`` counts no biases."""
    _positive("params.mha", d_e=d_e, M=M, d_k=d_k, d_v=d_v)
    if zeta not in (0, 1):
        raise ValueError(f"params.mha: zeta switches the biases off (0) or on (1), found zeta={zeta}")
    weights = M * d_e * d_k * 2 + M * d_e * d_v + M * d_v * d_e  # W_Q, W_K; W_V; W_O
    biases = M * d_k * 2 + M * d_v + d_e  # b_Q, b_K; b_V; b_O
    return weights + zeta * biases


@implements("params.ffn")
@checked
def ffn(d_e: int, d_f: int) -> int:
    """``N_FFN = 2 d_f d_e + d_e + d_f``: W_1, W_2 and their biases."""
    _positive("params.ffn", d_e=d_e, d_f=d_f)
    return d_f * d_e + d_f + d_e * d_f + d_e


@implements("params.layer_norm")
@checked
def layer_norm(d_e: int) -> int:
    """``N_LN = 2 d_e``: the scale α and the shift β."""
    _positive("params.layer_norm", d_e=d_e)
    return 2 * d_e


@implements("params.block")
@checked
def block(d_e: int, M: int, d_k: int, d_v: int, d_f: int) -> int:
    """``N_block = N_MHA + N_FFN + 2 N_LN`` (pre-LN and post-LN blocks alike)."""
    return mha(d_e, M, d_k, d_v) + ffn(d_e, d_f) + 2 * layer_norm(d_e)


@implements("params.stack")
@checked
def stack(d_e: int, M: int, d_k: int, d_v: int, d_f: int, L: int) -> int:
    """``N_stack = L N_block``."""
    _positive("params.stack", L=L)
    return L * block(d_e, M, d_k, d_v, d_f)


@implements("params.gpt2")
@checked
def gpt2(v: int, n_max: int, d_e: int, M: int, d_k: int, d_v: int, d_f: int, L: int) -> int:
    """``N_GPT2 = N_E + N_Λ + N_stack + N_LN``: the final layer norm; the tied head adds nothing."""
    return embedding(v, d_e) + positional(n_max, d_e) + stack(d_e, M, d_k, d_v, d_f, L) + layer_norm(d_e)


@implements("params.segment")
@checked
def segment(d_e: int) -> int:
    """``N_G = 2 d_e``: BERT's segment embedding ``G ∈ ℝ^{d_e×2}``."""
    _positive("params.segment", d_e=d_e)
    return 2 * d_e


def _dense(d_e: int) -> int:
    """A dense layer ``d_e → d_e`` with bias (BERT's pooler, the MLM head's transform)."""
    return d_e * d_e + d_e


@implements("params.pooler")
@checked
def pooler(d_e: int) -> int:
    """``N_pool = d_e² + d_e``: BERT's pooler ``W_p ∈ ℝ^{d_e×d_e}``, ``b_p ∈ ℝ^{d_e}``."""
    _positive("params.pooler", d_e=d_e)
    return _dense(d_e)


@implements("params.bert_backbone")
@checked
def bert_backbone(v: int, n_max: int, d_e: int, M: int, d_k: int, d_v: int, d_f: int, L: int) -> int:
    """``N_E + N_Λ + N_G`` (segments) ``+ N_LN`` (embedding LN) ``+ N_stack + N_pool`` (pooler)."""
    embeddings = embedding(v, d_e) + positional(n_max, d_e) + segment(d_e) + layer_norm(d_e)
    return embeddings + stack(d_e, M, d_k, d_v, d_f, L) + pooler(d_e)


@implements("params.mlm_head")
@checked
def mlm_head(v: int, d_e: int) -> int:
    """``(d_e² + d_e) + 2 d_e + v``: the dense transform, its layer norm and the output bias b_out."""
    _positive("params.mlm_head", v=v, d_e=d_e)
    return _dense(d_e) + layer_norm(d_e) + v


@implements("params.bert")
@checked
def bert(v: int, n_max: int, d_e: int, M: int, d_k: int, d_v: int, d_f: int, L: int) -> int:
    """``N_BERT = N_backbone + N_MLM``."""
    return bert_backbone(v, n_max, d_e, M, d_k, d_v, d_f, L) + mlm_head(v, d_e)
