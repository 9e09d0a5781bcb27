"""Transformer blocks: input, residual, the position-wise FFN (37), pre- and post-LN blocks, the decoder
block and the stack of L blocks.

Hidden states are columns, ``H ∈ ℝ^{d_e×n}``. A block calls ``attention.multi_head`` (28) and
``transformer.ffn`` (37) as functions: the oracle expands them inline, the generated code calls their
generated functions. Its parameters keep the tutorial's names: the head families ``W_Q^{(m)}, b_Q^{(m)}, …``
(m = 1..M) and ``W_O, b_O`` of equation (28), the layer-norm pairs ``α_1, β_1, α_2, β_2`` and the FFN's
``W_1, b_1, W_2, b_2``; in the stack each of them gains the layer index l = 1..L.

Choices, each a documented default with named variants:

- φ of the FFN is GELU-tanh in ``transformer.ffn`` and the pre-LN block (GPT-2), exact GELU in the post-LN
  block (BERT), ReLU in the decoder block (Vaswani et al.); variants name the others.
- LN has no ε (the tutorial's form); every block and the stack have ``eps`` variants where ε is a scalar
  parameter (its value comes from the model: GPT-2 10⁻⁵, BERT 10⁻¹², ViT 10⁻⁶).
- ``transformer.stack`` is the bare stack ``H^l = Block^{(l)}(H^{l−1}; S)``, l = 1..L, of pre-LN blocks.
  GPT-2's final ``LN(H^L; α_e, β_e)`` belongs to the model, so it is the variant ``final_ln`` (also ViT's);
  ``post_ln`` stacks post-LN blocks (BERT). Variant names join their parts in a fixed order:
  ``[post_ln_][<activation>_][final_ln_][eps]``, e.g. ``final_ln_eps`` (GPT-2 with its ε), ``post_ln_eps``
  (BERT), ``gelu_final_ln_eps`` (ViT). A final norm after post-LN blocks normalises an output that is
  already normalised; no model of the tutorial does it, but ``torch.nn.TransformerEncoder(norm=…)`` allows
  it, so two such variants exist, both with ε: ``post_ln_final_ln_eps`` and ``post_ln_relu_final_ln_eps``
  (torch's default layer).
- The decoder block is post-LN as in Vaswani et al. (2017, §3.1): causal self-attention, cross-attention to
  the encoder states, FFN, each inside ``LN(x + Sublayer(x))``. Its causal mask is built in (not an input);
  cross-attention is unmasked (``attention.cross``).
"""

import sympy as sp
from sympy.core.symbol import Str

from ._errors import SpecError
from .attention import CROSS, MULTI_HEAD
from .axes import L, M, d_e, d_f, d_k, d_v, m, n, n_d, n_e, n_max, v
from .equation import Equation, Invariant, Reference
from .norm import eps_symbol, ln_params, normalise
from .ops import CausalMask, Ones, T, add, mul
from .ops_nn import POINTWISE, FirstColumns, OneHot, apply, call
from .registry import register
from .tensors import Family, FamilySlice, Kind, tensor

SECTION = "§4 Transformers"
VASWANI = "Vaswani et al. 2017, §3.1"

#: The block's default activation per normalisation order (GPT-2 pre-LN, BERT post-LN, Vaswani decoder).
DEFAULT_ACTIVATION = {"pre": "gelu_tanh", "post": "gelu", "decoder": "relu"}
#: The activations a block may use (keys of spec.ops_nn.POINTWISE).
ACTIVATIONS = ("gelu_tanh", "gelu", "relu")
#: The layer index of per-layer families, l = 1..L.
l = sp.Symbol("l", integer=True, positive=True)

_HEADS = (
    ("W_Q", (d_e, d_k), "query projection"),
    ("b_Q", (d_k,), "query bias"),
    ("W_K", (d_e, d_k), "key projection"),
    ("b_K", (d_k,), "key bias"),
    ("W_V", (d_e, d_v), "value projection"),
    ("b_V", (d_v,), "value bias"),
)
_FFN = (
    ("W_1", (d_f, d_e), "FFN first layer"),
    ("b_1", (d_f,), "FFN first bias"),
    ("W_2", (d_e, d_f), "FFN second layer"),
    ("b_2", (d_e,), "FFN second bias"),
)
#: Parameter names of the attention of attention.multi_head, in its order.
MHA_PARAMS = (*(name for name, _, _ in _HEADS), "W_O", "b_O")
FFN_PARAMS = tuple(name for name, _, _ in _FFN)


def _tex(name: str, mark: str | None) -> str:
    base, _, sub = name.partition("_")
    base = rf"\tilde{{{base}}}" if mark else base
    return f"{base}_{{{sub}}}"


def _whole(fam: Family) -> FamilySlice:
    """The whole family passed on to a called equation (no index fixed)."""
    return FamilySlice(Str(fam.name), sp.Tuple())


def _declare(name, shape, meaning, per_layer, head=False, tex=None):
    """One parameter: a tensor, a head family ``(m)``, or per layer ``(l)`` / ``(l, m)``."""
    tex = tex or _tex(name, None)
    if head:
        index, count = ((l, m), (L, M)) if per_layer else (m, M)
        return Family(name, index, count, shape, tex=tex, meaning=f"{meaning} of head m")
    if per_layer:
        return Family(name, l, L, shape, tex=tex, meaning=f"{meaning} of block l")
    return tensor(name, shape, tex=tex, meaning=meaning)


def attention_params(per_layer: bool = False, suffix: str = "") -> dict[str, object]:
    """W_Q … b_V (head families), W_O and b_O as attention.multi_head names them; ``suffix`` "_cross"
    names a second attention (the decoder's cross-attention, written with a tilde)."""
    out = {}
    for name, shape, meaning in _HEADS:
        out[name] = _declare(f"{name}{suffix}", shape, meaning, per_layer, True, _tex(name, suffix))
    out["W_O"] = _declare(
        f"W_O{suffix}", (M * d_v, d_e), "output projection", per_layer, tex=_tex("W_O", suffix)
    )
    out["b_O"] = _declare(f"b_O{suffix}", (d_e,), "output bias", per_layer, tex=_tex("b_O", suffix))
    return out


def ffn_params(per_layer: bool = False) -> dict[str, object]:
    """W_1 ∈ ℝ^{d_f×d_e}, b_1, W_2 ∈ ℝ^{d_e×d_f}, b_2 as transformer.ffn names them (per layer: in l)."""
    return {name: _declare(name, shape, meaning, per_layer) for name, shape, meaning in _FFN}


def norm_params(k: int, per_layer: bool = False) -> tuple:
    """``(α_k, β_k)`` of a block's k-th layer norm (``alpha_k``, ``beta_k``; per layer: families in l)."""
    if not per_layer:
        return ln_params(str(k), f"layer norm {k}")
    return tuple(
        Family(f"{p}_{k}", l, L, (d_e,), tex=rf"\{p}_{{{k}}}", meaning=f"layer-norm {what} {k} of block l")
        for p, what in (("alpha", "scale"), ("beta", "shift"))
    )


def _pass(declared: dict[str, object], at=None) -> dict[str, object]:
    """Arguments of a call: families whole (or at layer ``at``), tensors as they are (or member ``at``)."""
    out = {}
    for name, d in declared.items():
        if isinstance(d, Family):
            if at is None:
                out[name] = _whole(d)
            elif len(d.indices) == 2:
                out[name] = d.slice(at)
            else:
                out[name] = d[at]
        else:
            out[name] = d
    return out


def _check_choice(who: str, what: str, value, known) -> None:
    if value not in known:
        raise SpecError(f"{who}: {what} must be one of {', '.join(map(str, known))}, found {value!r}")


def _ffn_id(activation: str) -> str:
    return "transformer.ffn" if activation == "gelu_tanh" else f"transformer.ffn[{activation}]"


def _mha(H, S, attn: dict, rows=None):
    axes = {n: rows} if rows is not None else None
    return call(MULTI_HEAD.id, "A", tex=r"\operatorname{MHA}", axes=axes, H=H, S=S, **_pass(attn))


def _ffn(C, feed: dict, activation: str, rows=None):
    tex = rf"\operatorname{{FFN}}_{{{POINTWISE[activation].tex}}}"
    axes = {n: rows} if rows is not None else None
    return call(_ffn_id(activation), "D", tex=tex, axes=axes, C=C, **_pass(feed))


# --- transformer.input ----------------------------------------------------------------------------
def input_() -> Equation:
    k = tensor("k", (n,), Kind.INDEX, meaning="vocabulary index k_i of token i (0-based)")
    E = tensor("E", (d_e, v), meaning="token embedding; column j is the vector of vocabulary item j")
    Lambda = tensor(
        "Lambda", (d_e, n_max), tex=r"\Lambda", meaning="positional encoding, one column per position"
    )
    Omega = tensor("Omega", (v, n), Kind.ONE_HOT, tex=r"\Omega", meaning="one-hot tokens [ω_1 … ω_n]")
    H0 = tensor("H0", (d_e, n), tex="H^{0}", meaning="input of the first block")
    return Equation(
        "transformer.input",
        "Transformer input: token plus position",
        inputs=(k,),
        params=(E, Lambda),
        intermediates=(Omega, H0),
        bindings=[(Omega, OneHot(k, v)), (H0, add(mul(E, Omega), FirstColumns(Lambda, n)))],
        outputs=(H0,),
        reference=Reference(SECTION, source="Radford et al. 2019; Devlin et al. 2019"),
        constraints=(sp.Le(n, n_max),),
        invariants=(
            Invariant(
                "input_token_locality", {"input": "k", "input_axis": 0, "output": "H0", "output_axis": 1}
            ),
        ),
        notes="H^0 = E Ω + Λ_{:,1:n}: column i is E ω_i + λ_i, the embedding of token k_i plus the encoding "
        "of position i. Requires n ≤ n_max. nn.Embedding.weight (and Hugging Face's wte/wpe) hold Eᵀ and Λᵀ; "
        "Phuong & Hutter call E 'W_e' and Λ 'W_p'.",
    )


# --- transformer.residual -------------------------------------------------------------------------
def residual() -> Equation:
    H = tensor("H", (d_e, n), meaning="the residual stream, one column per token")
    F = tensor("F", (d_e, n), meaning="the sublayer's output Sublayer(·) (attention or FFN)")
    H_out = tensor("H_out", (d_e, n), tex="H'", meaning="the updated residual stream")
    return Equation(
        "transformer.residual",
        "Residual connection",
        inputs=(H, F),
        intermediates=(H_out,),
        bindings=[(H_out, add(H, F))],
        outputs=(H_out,),
        reference=Reference(SECTION, source="He et al. 2016; Vaswani et al. 2017, §3.1"),
        invariants=(
            Invariant(
                "permutation_equivariance", {"tokens": {"H": 1, "F": 1}, "output_tokens": {"H_out": 1}}
            ),
        ),
        notes="H ← H + Sublayer(·). The sublayer's output is the input F here, so that the equation holds "
        "for any sublayer; the blocks below write it with MHA and FFN in place of F.",
    )


# --- transformer.ffn (37) -------------------------------------------------------------------------
def ffn(activation: str = "gelu_tanh") -> Equation:
    _check_choice("transformer.ffn", "the activation", activation, ACTIVATIONS)
    C = tensor("C", (d_e, n), meaning="FFN input, one column c_i per token")
    p = ffn_params()
    D = tensor("D", (d_e, n), meaning="FFN output, one column d_i per token")
    W_1, b_1, W_2, b_2 = (p[k] for k in FFN_PARAMS)
    hidden = apply(activation, add(mul(W_1, C), mul(b_1, T(Ones(n)))))
    return Equation(
        "transformer.ffn",
        "Position-wise feed-forward network",
        inputs=(C,),
        params=(W_1, b_1, W_2, b_2),
        intermediates=(D,),
        bindings=[(D, add(mul(W_2, hidden), mul(b_2, T(Ones(n)))))],
        outputs=(D,),
        reference=Reference(SECTION, number="37", source="Vaswani et al. 2017, eq. 2"),
        invariants=(
            Invariant("ffn_position_wise", {"input": "C", "output": "D"}),
            Invariant("permutation_equivariance", {"tokens": {"C": 1}, "output_tokens": {"D": 1}}),
        ),
        notes="Equation (37): d_i = W_2 φ(W_1 c_i + b_1) + b_2, the same network for every column; in matrix "
        "form D = W_2 φ(W_1 C + b_1 1ᵀ) + b_2 1ᵀ. φ is GELU-tanh (GPT-2) here; the variants gelu (BERT) and "
        "relu (Vaswani et al.). nn.Linear stores W_1 as it is (out × in); Hugging Face's Conv1D stores W_1ᵀ. "
        "Phuong & Hutter call d_f 'd_mlp'.",
    )


def _ffn_variants(eq: Equation) -> Equation:
    eq.add_variant("gelu", lambda: ffn("gelu"), "φ = exact GELU x Φ(x) (BERT, ViT)")
    eq.add_variant("relu", lambda: ffn("relu"), "φ = ReLU (Vaswani et al. 2017)")
    return eq


# --- blocks ---------------------------------------------------------------------------------------
def _block_symbols(eps: bool):
    H = tensor("H", (d_e, n), meaning="block input, one column per token")
    S = tensor("S", (n, n), Kind.ADDITIVE_MASK, meaning="additive attention mask (causal, padding or 0)")
    attn, feed = attention_params(), ffn_params()
    a1, b1 = norm_params(1)
    a2, b2 = norm_params(2)
    e = eps_symbol() if eps else None
    params = (*attn.values(), a1, b1, a2, b2, *feed.values(), *((e,) if e is not None else ()))
    return H, S, attn, feed, (a1, b1, a2, b2), e, params


def _block_invariants(form: str, eps: bool) -> tuple[Invariant, ...]:
    zero = {
        "input": "H",
        "output": "H_out",
        "zero": ["W_O", "b_O", "W_2", "b_2"],
        "form": form,
        "norms": [["alpha_1", "beta_1"], ["alpha_2", "beta_2"]],
    }
    if eps:
        zero["eps"] = "eps"
    return (
        Invariant("causal", {"mask": "S", "tokens": {"H": 1}, "output_tokens": {"H_out": 1}}),
        Invariant(
            "permutation_equivariance", {"mask": "S", "tokens": {"H": 1}, "output_tokens": {"H_out": 1}}
        ),
        Invariant("block_zero_sublayers", zero),
    )


def block_pre_ln(activation: str = "gelu_tanh", eps: bool = False) -> Equation:
    _check_choice("transformer.block_pre_ln", "the activation", activation, ACTIVATIONS)
    H, S, attn, feed, (a1, b1, a2, b2), e, params = _block_symbols(eps)
    H_hat = tensor("H_hat", (d_e, n), tex=r"\hat{H}", meaning="normalised input of the attention")
    X = tensor("X", (d_e, n), meaning="residual stream after attention")
    C = tensor("C", (d_e, n), meaning="normalised input of the FFN")
    H_out = tensor("H_out", (d_e, n), tex="H'", meaning="block output")
    return Equation(
        "transformer.block_pre_ln",
        "Pre-LN transformer block (GPT-2)",
        inputs=(H, S),
        params=params,
        intermediates=(H_hat, X, C, H_out),
        bindings=[
            (H_hat, normalise(H, a1, b1, e)),
            (X, add(H, _mha(H_hat, S, attn))),
            (C, normalise(X, a2, b2, e)),
            (H_out, add(X, _ffn(C, feed, activation))),
        ],
        outputs=(H_out,),
        reference=Reference(SECTION, source="Radford et al. 2019; Xiong et al. 2020"),
        invariants=_block_invariants("pre", eps),
        notes="GPT-2's block: Ĥ = LN(H; α_1, β_1), X = H + MHA(Ĥ; S), C = LN(X; α_2, β_2), H' = X + FFN(C). "
        "The residual stream is never normalised inside the block (a final LN follows the stack). "
        "φ = GELU-tanh; variants gelu, relu, and eps (ε a scalar parameter, GPT-2 10⁻⁵). Hugging Face "
        "GPT-2 names α_1, β_1 'ln_1', α_2, β_2 'ln_2'.",
    )


def block_post_ln(activation: str = "gelu", eps: bool = False) -> Equation:
    _check_choice("transformer.block_post_ln", "the activation", activation, ACTIVATIONS)
    H, S, attn, feed, (a1, b1, a2, b2), e, params = _block_symbols(eps)
    C = tensor("C", (d_e, n), meaning="normalised output of the attention sublayer")
    H_out = tensor("H_out", (d_e, n), tex="H'", meaning="block output")
    return Equation(
        "transformer.block_post_ln",
        "Post-LN transformer block (original transformer, BERT)",
        inputs=(H, S),
        params=params,
        intermediates=(C, H_out),
        bindings=[
            (C, normalise(add(H, _mha(H, S, attn)), a1, b1, e)),
            (H_out, normalise(add(C, _ffn(C, feed, activation)), a2, b2, e)),
        ],
        outputs=(H_out,),
        reference=Reference(SECTION, source=f"{VASWANI}; Devlin et al. 2019", status="R"),
        invariants=_block_invariants("post", eps),
        notes="C = LN(H + MHA(H; S); α_1, β_1), H' = LN(C + FFN(C); α_2, β_2): each sublayer's residual sum "
        "is normalised. φ = exact GELU (BERT); variants gelu_tanh, relu (Vaswani et al.), and eps (ε a "
        "scalar parameter, BERT 10⁻¹²). Hugging Face BERT names α_1, β_1 'attention.output.LayerNorm' and "
        "α_2, β_2 'output.LayerNorm'.",
    )


def _variant_name(parts: list[str]) -> str:
    return "_".join(parts)


#: How variant descriptions name the activations.
_ACTIVATION_NAMES = {
    "gelu_tanh": "GELU-tanh (GPT-2)",
    "gelu": "exact GELU (BERT, ViT)",
    "relu": "ReLU (Vaswani)",
}


def _block_variants(eq: Equation, build, default: str) -> Equation:
    for act in ACTIVATIONS:
        for eps in (False, True):
            parts = ([act] if act != default else []) + (["eps"] if eps else [])
            if parts:
                what = [f"φ = {_ACTIVATION_NAMES[act]}"] if act != default else []
                what += ["ε > 0 a scalar parameter in every layer norm"] if eps else []
                eq.add_variant(_variant_name(parts), lambda a=act, e=eps: build(a, e), ", ".join(what))
    return eq


def block_id(form: str, activation: str | None = None, eps: bool = False) -> str:
    """The id of the block (or its variant) with this normalisation order, activation and ε."""
    _check_choice("block_id", "the block form", form, ("pre", "post"))
    default = DEFAULT_ACTIVATION[form]
    parts = ([activation] if activation and activation != default else []) + (["eps"] if eps else [])
    base = {"pre": "transformer.block_pre_ln", "post": "transformer.block_post_ln"}[form]
    return f"{base}[{_variant_name(parts)}]" if parts else base


# --- transformer.decoder_block --------------------------------------------------------------------
def decoder_block(activation: str = "relu", eps: bool = False) -> Equation:
    _check_choice("transformer.decoder_block", "the activation", activation, ACTIVATIONS)
    H = tensor("H", (d_e, n_d), meaning="decoder states, one column per target token")
    H_enc = tensor("H_enc", (d_e, n_e), tex=r"H_{\mathrm{enc}}", meaning="encoder output (memory)")
    self_attn, cross_attn, feed = attention_params(), attention_params(suffix="_cross"), ffn_params()
    a1, b1 = norm_params(1)
    a2, b2 = norm_params(2)
    a3, b3 = norm_params(3)
    e = eps_symbol() if eps else None
    C1 = tensor("C_1", (d_e, n_d), meaning="after masked self-attention")
    C2 = tensor("C_2", (d_e, n_d), meaning="after cross-attention")
    H_out = tensor("H_out", (d_e, n_d), tex="H'", meaning="block output")
    cross = call(
        CROSS.id, "A", tex=r"\operatorname{CrossMHA}", H_dec=C1, H_enc=H_enc,
        **_pass(cross_attn),
    )  # fmt: skip
    zero = {
        "input": "H",
        "output": "H_out",
        "zero": ["W_O", "b_O", "W_O_cross", "b_O_cross", "W_2", "b_2"],
        "form": "post",
        "norms": [["alpha_1", "beta_1"], ["alpha_2", "beta_2"], ["alpha_3", "beta_3"]],
    }
    if eps:
        zero["eps"] = "eps"
    return Equation(
        "transformer.decoder_block",
        "Decoder block (encoder–decoder transformer)",
        inputs=(H, H_enc),
        params=(*self_attn.values(), *cross_attn.values(), a1, b1, a2, b2, a3, b3, *feed.values())
        + ((e,) if e is not None else ()),
        intermediates=(C1, C2, H_out),
        bindings=[
            (C1, normalise(add(H, _mha(H, CausalMask(n_d), self_attn, rows=n_d)), a1, b1, e)),
            (C2, normalise(add(C1, cross), a2, b2, e)),
            (H_out, normalise(add(C2, _ffn(C2, feed, activation, rows=n_d)), a3, b3, e)),
        ],
        outputs=(H_out,),
        reference=Reference(SECTION, source=f"{VASWANI} and §3.2.3", status="R"),
        invariants=(
            Invariant("decoder_causal", {"tokens": {"H": 1}, "output_tokens": {"H_out": 1}}),
            Invariant("kv_permutation_invariance", {"tokens": {"H_enc": 1}}),
            Invariant("block_zero_sublayers", zero),
        ),
        notes="Post-LN as in Vaswani et al.: C_1 = LN(H + MHA(H; S_causal)), C_2 = LN(C_1 + CrossMHA(C_1, "
        "H_enc)), H' = LN(C_2 + FFN(C_2)). The causal mask over the n_d decoder tokens is built in; the "
        "cross-attention (queries from the decoder, keys and values from the n_e encoder columns) is "
        "unmasked. The cross-attention parameters carry a tilde (ASCII suffix _cross). φ = ReLU.",
    )


# --- transformer.stack ----------------------------------------------------------------------------
def stack(
    form: str = "pre", activation: str | None = None, eps: bool = False, final_ln: bool = False
) -> Equation:
    _check_choice("transformer.stack", "the block form", form, ("pre", "post"))
    _check_choice("transformer.stack", "the activation", activation or DEFAULT_ACTIVATION[form], ACTIVATIONS)
    activation = activation or DEFAULT_ACTIVATION[form]
    X = tensor("X", (d_e, n), meaning="H^0, the input states (e.g. transformer.input)")
    S = tensor("S", (n, n), Kind.ADDITIVE_MASK, meaning="additive attention mask shared by every block")
    attn, feed = attention_params(per_layer=True), ffn_params(per_layer=True)
    a1, b1 = norm_params(1, per_layer=True)
    a2, b2 = norm_params(2, per_layer=True)
    e = eps_symbol() if eps else None
    Hs = Family("H", l, L, (d_e, n), start=0, tex="H^{{index}}", meaning="output of block l (H^0 = X)")
    H_out = tensor("H_out", (d_e, n), tex=r"H_{\mathrm{out}}", meaning="output of the stack")
    layer = dict(attn)
    layer.update(alpha_1=a1, beta_1=b1, alpha_2=a2, beta_2=b2, **feed)
    args = _pass(layer, at=l)
    if e is not None:
        args["eps"] = e
    block = call(
        block_id(form, activation, eps), "H_out", tex=r"\operatorname{Block}", H=Hs[l - 1], S=S, **args
    )
    params = [*attn.values(), a1, b1, a2, b2, *feed.values()]
    last = Hs[L]
    norms = [["alpha_1", "beta_1"], ["alpha_2", "beta_2"]]
    zero = {
        "input": "X",
        "output": "H_out",
        "zero": ["W_O", "b_O", "W_2", "b_2"],
        "form": form,
        "norms": norms,
    }
    if final_ln:
        ae, be = ln_params("e", "the final layer norm")
        params += [ae, be]
        last = normalise(last, ae, be, e)
        zero["final"] = ["alpha_e", "beta_e"]
    if e is not None:
        params.append(e)
        zero["eps"] = "eps"
    kind = {"pre": "pre-LN", "post": "post-LN"}[form]
    return Equation(
        "transformer.stack",
        "Stack of L transformer blocks",
        inputs=(X, S),
        params=tuple(params),
        intermediates=(Hs, H_out),
        bindings=[(Hs[0], X), (Hs[l], block), (H_out, last)],
        outputs=(H_out,),
        reference=_stack_reference(form, final_ln),
        invariants=(
            Invariant("causal", {"mask": "S", "tokens": {"X": 1}, "output_tokens": {"H_out": 1}}),
            Invariant(
                "permutation_equivariance", {"mask": "S", "tokens": {"X": 1}, "output_tokens": {"H_out": 1}}
            ),
            Invariant("block_zero_sublayers", zero),
        ),
        notes="H^0 = X, H^l = Block^{(l)}(H^{l−1}; S) for l = 1..L, "
        f"{kind} blocks with φ = {activation}, "
        "each with its own parameters (families indexed by the layer l, and by the head m within it). "
        + _stack_output_note(form, final_ln)
        + " Variant names: [post_ln_][<activation>_][final_ln_][eps].",
    )


def _stack_reference(form: str, final_ln: bool) -> Reference:
    """The stack's reference: the tutorial's (GPT-2's code) for its forms, reconstructed from torch for a
    final norm after post-LN blocks, which no model of the tutorial has."""
    if form == "post" and final_ln:
        source = "Devlin et al. 2019; torch.nn.TransformerEncoder (a final norm after post-LN layers)"
        return Reference(SECTION, source=source, status="R")
    return Reference(SECTION, source="Radford et al. 2019; Devlin et al. 2019")


def _stack_output_note(form: str, final_ln: bool) -> str:
    """What the stack returns, for its notes."""
    if not final_ln:
        return (
            "H_out = H^L: the bare stack. GPT-2 and ViT end with LN(H^L; α_e, β_e) (variant final_ln; "
            "Hugging Face 'ln_f')."
        )
    if form == "pre":
        return "H_out = LN(H^L; α_e, β_e), the final layer norm (GPT-2's and ViT's; Hugging Face 'ln_f')."
    return (
        "H_out = LN(H^L; α_e, β_e), a final layer norm after post-LN blocks, whose output H^L already ends "
        "in their second norm: it normalises once more (torch.nn.TransformerEncoder(norm=nn.LayerNorm(d_e)) "
        "with post-LN layers; no model of the tutorial does this)."
    )


def stack_variant_name(
    form: str = "pre", activation: str | None = None, eps: bool = False, final_ln: bool = False
) -> str:
    """The name of the stack variant with these choices ('' for the default)."""
    parts = (["post_ln"] if form == "post" else []) + (
        [activation] if activation and activation != DEFAULT_ACTIVATION[form] else []
    )
    return _variant_name(parts + (["final_ln"] if final_ln else []) + (["eps"] if eps else []))


#: The post-LN stacks with a final layer norm that are variants (form, activation, ε): only those a library
#: builds, with ε, to keep the catalogue and the verifier small (torch.nn.TransformerEncoder(norm=…) with its
#: default ReLU layer, and with BERT's GELU).
POST_LN_FINAL_LN = (("post", "relu", True), ("post", "gelu", True))


def _stack_variants(eq: Equation) -> Equation:
    for form in ("pre", "post"):
        for act in ACTIVATIONS:
            for final_ln in (False, True):
                for eps in (False, True):
                    name = stack_variant_name(form, act, eps, final_ln)
                    if not name or (form == "post" and final_ln and (form, act, eps) not in POST_LN_FINAL_LN):
                        continue
                    what = [f"{form}-LN blocks", f"φ = {_ACTIVATION_NAMES[act]}"]
                    what += ["final LN(H^L; α_e, β_e)"] if final_ln else []
                    what += ["ε > 0 a scalar parameter in every layer norm"] if eps else []
                    eq.add_variant(
                        name, lambda f=form, a=act, e=eps, fl=final_ln: stack(f, a, e, fl), ", ".join(what)
                    )
    return eq


register(input_())
register(residual())
register(_ffn_variants(ffn()))
register(_block_variants(block_post_ln(), block_post_ln, "gelu"))
register(_block_variants(block_pre_ln(), block_pre_ln, "gelu_tanh"))
register(_block_variants(decoder_block(), decoder_block, "relu"))
register(_stack_variants(stack()))
