"""Parameter counts: the tutorial's closed forms for the transformer's parts, GPT-2 and BERT.

Each count is an equation without inputs whose output ``N`` is a scalar formula in the glossary's axes
(``n_max`` for the learned positions). The composite counts are built from the smaller ones in Python
(``N_block = N_MHA + N_FFN + 2 N_LN``, ``N_stack = L N_block``, ...), so that SymPy's own simplification
yields the tutorial's closed forms, e.g. for GPT-2

    N = d_e (v + n_max + 2) + L (2 M d_e (d_k + d_v) + ζ (M (2 d_k + d_v) + d_e) + 2 d_e d_f + 5 d_e + d_f)

with ζ = 1 (biases on). Each count also lists its terms (one per tensor or per part) for the
``lmspec params`` table; the terms must add up to the formula, which is checked when the count is built.

Tied tensors are counted once: GPT-2's output layer and BERT's MLM decoder reuse E and add nothing (BERT's
MLM head adds only its output bias b_out ∈ ℝ^v).
"""

from dataclasses import dataclass

import sympy as sp
from sympy.printing.latex import LatexPrinter

from ._errors import SpecError
from .axes import GLOSSARY, L, M, P, axis, axis_names, d_e, d_f, d_k, d_v, n_max, v
from .equation import Equation, Invariant, Reference
from .ops_nn import Scalar
from .registry import register
from .tensors import Kind, tensor

SECTION = "§4 Transformers: number of trainable parameters"
COMPANION = "the tutorial's parameter calculator, checked against Keras counters"

C_i, H_i, W_i, n_c = (axis(a) for a in ("C_i", "H_i", "W_i", "n_c"))


class Count(Scalar):
    """A parameter count ``N`` as a 1×1 scalar; printed with the glossary's LaTeX axis names (n_{\\max})."""

    def _latex(self, printer) -> str:
        return count_latex(self.args[0])


def count_latex(formula: sp.Expr) -> str:
    """LaTeX of a count formula, axes written as the glossary writes them."""
    names = {s: GLOSSARY[s.name].latex for s in formula.free_symbols if s.name in GLOSSARY}
    return LatexPrinter({"symbol_names": names}).doprint(formula)


@dataclass(frozen=True)
class Term:
    """One line of a count: what it counts, its formula, and the catalogue count it is (if any)."""

    label: str
    formula: sp.Expr
    part: str = ""


@dataclass(frozen=True)
class Breakdown:
    """A count: its closed-form formula and the terms that add up to it."""

    name: str
    title: str
    tex: str
    formula: sp.Expr
    terms: tuple[Term, ...]

    def __post_init__(self) -> None:
        total = sp.Add(*(t.formula for t in self.terms))
        if sp.expand(total - self.formula) != 0:
            raise SpecError(
                f"{self.name}: the terms add up to {sp.expand(total)}, not to the formula "
                f"{sp.expand(self.formula)}"
            )

    @property
    def axes(self) -> tuple[str, ...]:
        """The glossary axes of the formula, in glossary order."""
        return tuple(axis_names(self.formula))

    def count(self, **sizes: int) -> int:
        """The number at concrete sizes; a SpecError names a missing axis or a non-integer result."""
        missing = [a for a in self.axes if a not in sizes]
        if missing:
            raise SpecError(f"{self.name} needs a size for {', '.join(missing)}")
        value = self.formula.subs({axis(a): sp.Integer(sizes[a]) for a in self.axes})
        if not value.is_Integer:
            raise SpecError(f"{self.name}: the sizes give a count of {value}, not an integer")
        return int(value)


def closed_form(expr: sp.Expr) -> sp.Expr:
    """The tutorial's grouping: the stack term ``L (…)`` as it is, the rest collected over ``d_e``."""
    terms = sp.Add.make_args(expr)
    stack = sp.Add(*(t for t in terms if L in t.free_symbols))
    rest = sp.Add(*(t for t in terms if L not in t.free_symbols))
    return stack + sp.collect(sp.expand(rest), d_e)


class CountEquation(Equation):
    """A ``params.*`` equation: no inputs, one scalar output ``N`` bound to the count's formula.

    Its axes are those of the formula (an equation's axes otherwise come from the shapes of its inputs,
    parameters and outputs, and a scalar without inputs has none).
    """

    def __init__(
        self, breakdown: Breakdown, *, invariants: tuple[Invariant, ...] = (), notes: str = ""
    ) -> None:
        N = tensor("N", (), Kind.INDEX, tex=breakdown.tex, meaning="number of trainable parameters")
        super().__init__(
            breakdown.name,
            breakdown.title,
            intermediates=(N,),
            bindings=[(N, Count(breakdown.formula))],
            outputs=(N,),
            reference=Reference(SECTION, source=COMPANION),
            invariants=invariants,
            notes=notes,
        )
        self.breakdown = breakdown

    @property
    def formula(self) -> sp.Expr:
        return self.breakdown.formula

    @property
    def terms(self) -> tuple[Term, ...]:
        return self.breakdown.terms

    def count(self, **sizes: int) -> int:
        return self.breakdown.count(**sizes)


# --- the parts -------------------------------------------------------------------------------------
def embedding_count() -> Breakdown:
    return Breakdown(
        "params.embedding",
        "Parameters of the token embedding",
        r"N_{E}",
        v * d_e,
        (Term("token embedding E ∈ ℝ^(d_e×v)", v * d_e),),
    )


def positional_count() -> Breakdown:
    return Breakdown(
        "params.positional",
        "Parameters of the learned positional encoding",
        r"N_{\Lambda}",
        n_max * d_e,
        (Term("positions Λ ∈ ℝ^(d_e×n_max)", n_max * d_e),),
    )


def mha_count(zeta: int = 1) -> Breakdown:
    """``2 M d_e (d_k + d_v) + ζ (M (2 d_k + d_v) + d_e)``; ζ = 0 drops every bias."""
    weights = (
        Term("W_Q^(m), W_K^(m) ∈ ℝ^(d_e×d_k), m = 1..M", 2 * M * d_e * d_k),
        Term("W_V^(m) ∈ ℝ^(d_e×d_v), m = 1..M", M * d_e * d_v),
        Term("W_O ∈ ℝ^(M·d_v×d_e)", M * d_v * d_e),
    )
    biases = (
        Term("b_Q^(m), b_K^(m) ∈ ℝ^(d_k), m = 1..M", 2 * M * d_k),
        Term("b_V^(m) ∈ ℝ^(d_v), m = 1..M", M * d_v),
        Term("b_O ∈ ℝ^(d_e)", d_e),
    )
    return Breakdown(
        "params.mha" if zeta else "params.mha[no_bias]",
        "Parameters of multi-head attention" + ("" if zeta else " without biases"),
        r"N_{\mathrm{MHA}}",
        2 * M * d_e * (d_k + d_v) + zeta * (M * (2 * d_k + d_v) + d_e),
        weights + (biases if zeta else ()),
    )


def ffn_count() -> Breakdown:
    return Breakdown(
        "params.ffn",
        "Parameters of the position-wise FFN",
        r"N_{\mathrm{FFN}}",
        2 * d_f * d_e + d_e + d_f,
        (
            Term("W_1 ∈ ℝ^(d_f×d_e)", d_f * d_e),
            Term("b_1 ∈ ℝ^(d_f)", d_f),
            Term("W_2 ∈ ℝ^(d_e×d_f)", d_e * d_f),
            Term("b_2 ∈ ℝ^(d_e)", d_e),
        ),
    )


def layer_norm_count() -> Breakdown:
    return Breakdown(
        "params.layer_norm",
        "Parameters of a layer norm",
        r"N_{\mathrm{LN}}",
        2 * d_e,
        (Term("scale α ∈ ℝ^(d_e)", d_e), Term("shift β ∈ ℝ^(d_e)", d_e)),
    )


def block_count() -> Breakdown:
    mha, ffn, ln = mha_count().formula, ffn_count().formula, layer_norm_count().formula
    return Breakdown(
        "params.block",
        "Parameters of a transformer block",
        r"N_{\mathrm{block}}",
        mha + ffn + 2 * ln,
        (
            Term("multi-head attention", mha, "params.mha"),
            Term("position-wise FFN", ffn, "params.ffn"),
            Term("layer norm 1 (α_1, β_1)", ln, "params.layer_norm"),
            Term("layer norm 2 (α_2, β_2)", ln, "params.layer_norm"),
        ),
    )


def stack_count() -> Breakdown:
    block = block_count().formula
    return Breakdown(
        "params.stack",
        "Parameters of a stack of L blocks",
        r"N_{\mathrm{stack}}",
        L * block,
        (Term("L blocks of N_block each", L * block, "params.block"),),
    )


# --- the models ------------------------------------------------------------------------------------
def gpt2_count() -> Breakdown:
    terms = (
        Term("token embedding E (also the tied output layer)", embedding_count().formula, "params.embedding"),
        Term("positions Λ", positional_count().formula, "params.positional"),
        Term("L pre-LN blocks", stack_count().formula, "params.stack"),
        Term("final layer norm (α_e, β_e)", layer_norm_count().formula, "params.layer_norm"),
    )
    return Breakdown(
        "params.gpt2",
        "Parameters of GPT-2",
        r"N_{\mathrm{GPT2}}",
        closed_form(sp.Add(*(t.formula for t in terms))),
        terms,
    )


def segment_count() -> Breakdown:
    """BERT's segment embedding ``G ∈ ℝ^{d_e×2}``: one column per segment (sentence A, sentence B)."""
    return Breakdown(
        "params.segment",
        "Parameters of BERT's segment embedding",
        r"N_{G}",
        2 * d_e,
        (Term("segment embedding G ∈ ℝ^(d_e×2)", 2 * d_e),),
    )


def dense_count() -> sp.Expr:
    """A dense layer ``d_e → d_e`` with bias: BERT's pooler (W_p, b_p) and the MLM head's (W_m, b_m)."""
    return d_e**2 + d_e


def pooler_count() -> Breakdown:
    """BERT's pooler ``p = tanh(W_p h^L_[CLS] + b_p)``: ``W_p ∈ ℝ^{d_e×d_e}`` and ``b_p ∈ ℝ^{d_e}``."""
    return Breakdown(
        "params.pooler",
        "Parameters of BERT's pooler",
        r"N_{\mathrm{pool}}",
        dense_count(),
        (Term("W_p ∈ ℝ^(d_e×d_e)", d_e**2), Term("b_p ∈ ℝ^(d_e)", d_e)),
    )


def bert_backbone_count() -> Breakdown:
    ln = layer_norm_count().formula
    terms = (
        Term("token embedding E", embedding_count().formula, "params.embedding"),
        Term("positions Λ", positional_count().formula, "params.positional"),
        Term("segment embedding G ∈ ℝ^(d_e×2)", segment_count().formula, "params.segment"),
        Term("embedding layer norm (α_e, β_e)", ln, "params.layer_norm"),
        Term("L post-LN blocks", stack_count().formula, "params.stack"),
        Term("pooler W_p ∈ ℝ^(d_e×d_e), b_p ∈ ℝ^(d_e)", pooler_count().formula, "params.pooler"),
    )
    return Breakdown(
        "params.bert_backbone",
        "Parameters of the BERT backbone",
        r"N_{\mathrm{BERT\,backbone}}",
        closed_form(sp.Add(*(t.formula for t in terms))),
        terms,
    )


def mlm_head_count() -> Breakdown:
    terms = (
        Term("dense W_m ∈ ℝ^(d_e×d_e), b_m ∈ ℝ^(d_e)", dense_count()),
        Term("layer norm (α_m, β_m)", layer_norm_count().formula, "params.layer_norm"),
        Term("output bias b_out ∈ ℝ^(v) (the decoder is Eᵀ, tied)", v),
    )
    return Breakdown(
        "params.mlm_head",
        "Parameters of BERT's MLM head",
        r"N_{\mathrm{MLM}}",
        sp.Add(*(t.formula for t in terms)),
        terms,
    )


def bert_count() -> Breakdown:
    terms = (
        Term("BERT backbone", bert_backbone_count().formula, "params.bert_backbone"),
        Term("MLM head", mlm_head_count().formula, "params.mlm_head"),
    )
    return Breakdown(
        "params.bert",
        "Parameters of BERT (backbone and MLM head)",
        r"N_{\mathrm{BERT}}",
        closed_form(sp.Add(*(t.formula for t in terms))),
        terms,
    )


def vit_count() -> Breakdown:
    """ViT (Dosovitskiy et al. 2021) for classification: not a catalogue id, a preset of ``lmspec params``.

    ``N = H W / P²`` patches of ``P² C`` values; the patch projection ``E_p`` has a bias (a convolution with
    stride P in real code), the class token and ``N + 1`` positions are learned, L pre-LN blocks, a final
    layer norm and a linear head over ``n_c`` classes.
    """
    patches = H_i * W_i / P**2
    terms = (
        Term("patch projection E_p ∈ ℝ^(d_e×P²C), b_p ∈ ℝ^(d_e)", d_e * P**2 * C_i + d_e),
        Term("class token x_cls ∈ ℝ^(d_e)", d_e),
        Term("positions Λ ∈ ℝ^(d_e×(N+1)), N = HW/P²", (patches + 1) * d_e),
        Term("L pre-LN blocks", stack_count().formula, "params.stack"),
        Term("final layer norm", layer_norm_count().formula, "params.layer_norm"),
        Term("head W_head ∈ ℝ^(n_c×d_e), b_head ∈ ℝ^(n_c)", n_c * (d_e + 1)),
    )
    return Breakdown(
        "vit",
        "Parameters of a ViT classifier",
        r"N_{\mathrm{ViT}}",
        closed_form(sp.Add(*(t.formula for t in terms))),
        terms,
    )


# --- the equations ---------------------------------------------------------------------------------
def _count(breakdown: Breakdown, model: str, notes: str) -> CountEquation:
    return CountEquation(breakdown, invariants=(Invariant("param_count", {"model": model}),), notes=notes)


def mha(zeta: int = 1) -> CountEquation:
    notes = (
        "ζ ∈ {0, 1} switches the biases: N = 2 M d_e (d_k + d_v) + ζ (M (2 d_k + d_v) + d_e). The base "
        "equation has ζ = 1 (GPT-2, BERT, ViT); the variant no_bias has ζ = 0."
    )
    return _count(mha_count(zeta), "mha" if zeta else "mha_no_bias", notes)


def _mha_variants(eq: CountEquation) -> CountEquation:
    eq.add_variant("no_bias", lambda: mha(zeta=0), "ζ = 0: no biases, N = 2 M d_e (d_k + d_v)")
    return eq


register(_count(embedding_count(), "embedding", "E ∈ ℝ^{d_e×v}: one column of d_e numbers per token."))
register(
    _count(
        positional_count(),
        "positional",
        "Λ ∈ ℝ^{d_e×n_max}, learned (GPT-2, BERT); the tutorial writes n for the maximum length n_max. "
        "Sinusoidal positions have no parameters.",
    )
)
register(_mha_variants(mha()))
register(_count(ffn_count(), "ffn", "W_1 ∈ ℝ^{d_f×d_e}, W_2 ∈ ℝ^{d_e×d_f} and their biases."))
register(_count(layer_norm_count(), "layer_norm", "The scale α and the shift β, d_e numbers each."))
register(
    _count(
        block_count(),
        "block",
        "N_block = N_MHA + N_FFN + 2 N_LN, the same for pre-LN (GPT-2) and post-LN (BERT) blocks.",
    )
)
register(_count(stack_count(), "stack", "N_stack = L N_block; the blocks share no parameters."))
register(
    _count(
        segment_count(),
        "segment",
        "G ∈ ℝ^{d_e×2}: BERT's segment embedding, one column per segment (the tutorial's 2 d_e in the BERT "
        "count).",
    )
)
register(
    _count(
        pooler_count(),
        "pooler",
        "W_p ∈ ℝ^{d_e×d_e}, b_p ∈ ℝ^{d_e}: BERT's pooler p = tanh(W_p h^L_[CLS] + b_p) (the tutorial's "
        "d_e² + d_e in the BERT count).",
    )
)
register(
    _count(
        gpt2_count(),
        "gpt2",
        "N_GPT2 = N_E + N_Λ + N_stack + N_LN: the output layer reuses E (tied) and adds nothing.",
    )
)
register(
    _count(
        bert_backbone_count(),
        "bert_backbone",
        "Embeddings E, Λ and the segment embedding G, the embedding layer norm, L post-LN blocks and the "
        "pooler on the [CLS] state (Hugging Face BertModel with its pooler).",
    )
)
register(
    _count(
        mlm_head_count(),
        "mlm_head",
        "T = LN(GELU(W_m H + b_m 1ᵀ)), Ŷ = softmax(Eᵀ T + b_out 1ᵀ): the decoder reuses E (tied).",
    )
)
register(
    _count(
        bert_count(),
        "bert",
        "N_BERT = N_backbone + N_MLM (the tutorial's BERT; the NSP head, 2 d_e + 2, is not counted).",
    )
)
