"""BERT (Devlin et al. 2019): input embeddings with segments, a post-LN encoder, the pre-training heads
(masked language model, next sentence prediction), the pooler and a fine-tuning classifier.

The tutorial counts BERT's parameters; the forms below are reconstructed from Devlin et al. (2019) and the
reference implementation, written in the tutorial's notation: columns are tokens (``H ∈ ℝ^{d_e×n}``), the
token embedding ``E ∈ ℝ^{d_e×v}`` is tied to the MLM output layer, ``[CLS]`` is token 1.

Masked-language-model masking is a random procedure; the spec states it as the probability distribution it
samples from (per token: the probabilities of its four outcomes, and of the token that replaces it), and
impl/ holds both the distribution and a sampler that is tested against it statistically.

Layer norm follows the tutorial (no ε); every equation with a layer norm has the variant ``eps``, where ε is
a scalar parameter (BERT's ``layer_norm_eps`` is 10⁻¹²), as in spec/norm.py and spec/transformer.py.
"""

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr

from ._errors import SpecError
from .axes import GLOSSARY, L, M, d_e, d_f, d_k, d_v, m, n, n_max, v
from .equation import Equation, Invariant, Reference
from .lm import Ratio
from .norm import eps_symbol, normalise
from .ops import Ones, PaddingMask, Softmax, SpecOp, T, add, mul
from .ops_nn import Column, FirstColumns, Neg, OneHot, Pick, apply, call, had
from .registry import register
from .tensors import Family, Kind, tensor
from .transformer import block_id

n_c = GLOSSARY["n_c"].symbol
#: The layer index of a stack of blocks, l = 1..L.
l = sp.Symbol("l", integer=True, positive=True)

SECTION = "BERT"
DEVLIN = "Devlin et al. 2019"
EPS_TEXT = "layer norm divides by √(σ² + ε), ε > 0 a scalar parameter (BERT's layer_norm_eps = 1e-12)"


class Constant(SpecOp):
    """A constant matrix written out (a column of probabilities, a row selecting entries)."""

    def __new__(cls, rows: list) -> "Constant":
        return MatrixExpr.__new__(cls, sp.ImmutableMatrix(rows))

    @property
    def value(self) -> sp.ImmutableMatrix:
        return self.args[0]

    @property
    def matrix_args(self) -> tuple:
        return ()  # the value is data, not an operand

    @property
    def shape(self):
        return self.value.shape

    @property
    def free_symbols(self) -> set:
        return set()

    def _entry(self, i, j, **kwargs):
        return self.value[i, j]

    def _explicit(self, explicit):
        return self.value

    def _latex(self, printer) -> str:
        rows = [" & ".join(_number(x) for x in self.value.row(r)) for r in range(self.value.rows)]
        return r"\begin{bmatrix} " + r" \\ ".join(rows) + r" \end{bmatrix}"

    def _torchcode(self, ctx) -> str:
        rows = ", ".join("[" + ", ".join(repr(float(x)) for x in self.value.row(r)) + "]" for r in
                         range(self.value.rows))  # fmt: skip
        return f"torch.tensor([{rows}], dtype={ctx.dtype}, device={ctx.device})"


def _number(x: sp.Expr) -> str:
    x = sp.nsimplify(x)
    return str(int(x)) if x.is_Integer else f"{float(x):g}"


# --- bert.input ----------------------------------------------------------------------------------
def _standardised(output: str, alpha: str, beta: str, eps) -> dict:
    """Options of the columns_standardised property (with ε > 0 the variance is below 1)."""
    return {"output": output, "alpha": alpha, "beta": beta, **({"eps": "eps"} if eps is not None else {})}


def input_(eps: bool = False) -> Equation:
    k = tensor("k", (n,), Kind.INDEX, meaning="vocabulary index k_i of token i")
    s = tensor(
        "s",
        (n,),
        Kind.MASK,
        meaning="segment of token i: 0 for sentence A, 1 for sentence B (token_type_ids)",
    )
    E = tensor("E", (d_e, v), meaning="token embedding; column j is the vector of vocabulary entry j")
    Lam = tensor("Lambda", (d_e, n_max), tex=r"\Lambda", meaning="learned positional embedding")
    G = tensor("G", (d_e, 2), meaning="segment embedding; column 1 for sentence A, column 2 for B")
    alpha_e = tensor("alpha_e", (d_e,), tex=r"\alpha_{e}", meaning="scale of the embedding layer norm")
    beta_e = tensor("beta_e", (d_e,), tex=r"\beta_{e}", meaning="shift of the embedding layer norm")
    Omega = tensor("Omega", (v, n), Kind.ONE_HOT, tex=r"\Omega", meaning="one-hot tokens")
    Sigma = tensor("Sigma", (2, n), Kind.ONE_HOT, tex=r"\Sigma", meaning="one-hot segments")
    H0 = tensor("H_0", (d_e, n), tex="H^{0}", meaning="input of the first block, one column per token")
    e = eps_symbol() if eps else None
    return Equation(
        "bert.input",
        "BERT input embeddings",
        inputs=(k, s),
        params=(E, Lam, G, alpha_e, beta_e, *((e,) if e is not None else ())),
        intermediates=(Omega, Sigma, H0),
        bindings=[
            (Omega, OneHot(k, v)),
            (Sigma, OneHot(s, 2)),
            (H0, normalise(add(mul(E, Omega), FirstColumns(Lam, n), mul(G, Sigma)), alpha_e, beta_e, e)),
        ],
        outputs=(H0,),
        reference=Reference(SECTION, source=f"{DEVLIN}, §3.1 and Figure 2", status="R", count_status="T"),
        constraints=(sp.Le(n, n_max),),
        invariants=(Invariant("columns_standardised", _standardised("H_0", "alpha_e", "beta_e", e)),),
        notes="Token, position and segment embeddings are summed, then layer-normalised. The tutorial "
        "counts v d_e + n d_e + 2 d_e + 2 d_e parameters here. Segment ids s_i ∈ {0, 1} (Hugging Face's "
        "token_type_ids) select a column of G through Σ = onehot₂(s). Hugging Face stores Eᵀ "
        "(word_embeddings.weight), Λᵀ (position_embeddings.weight) and Gᵀ (token_type_embeddings.weight).",
    )


# --- bert.encoder --------------------------------------------------------------------------------
def _layer_params():
    """The parameters of L post-LN blocks: per-layer families, per-head families inside a layer."""
    heads = {
        "W_Q": (d_e, d_k), "b_Q": (d_k,), "W_K": (d_e, d_k), "b_K": (d_k,), "W_V": (d_e, d_v), "b_V": (d_v,),
    }  # fmt: skip
    layer = {
        "W_O": (M * d_v, d_e), "b_O": (d_e,), "alpha_1": (d_e,), "beta_1": (d_e,), "W_1": (d_f, d_e),
        "b_1": (d_f,), "W_2": (d_e, d_f), "b_2": (d_e,), "alpha_2": (d_e,), "beta_2": (d_e,),
    }  # fmt: skip
    tex = {"alpha_1": r"\alpha_{1}", "beta_1": r"\beta_{1}", "alpha_2": r"\alpha_{2}", "beta_2": r"\beta_{2}"}
    fams = {k: Family(k, (l, m), (L, M), s, meaning=f"{k} of head m in block l") for k, s in heads.items()}
    fams.update({k: Family(k, l, L, s, tex=tex.get(k), meaning=f"{k} of block l") for k, s in layer.items()})
    return fams


def _block(H_prev, S, fams, eps):
    """Block l of the encoder: ``transformer.block_post_ln`` with the parameters of layer l."""
    args = {k: (f.slice(l) if len(f.indices) == 2 else f[l]) for k, f in fams.items()}
    if eps is not None:
        args["eps"] = eps
    return call(
        block_id("post", eps=eps is not None), "H_out", tex=r"\operatorname{Block}", H=H_prev, S=S, **args
    )


def encoder(eps: bool = False) -> Equation:
    X = tensor("X", (d_e, n), meaning="input embeddings H^0 (the output of bert.input)")
    keep = tensor("keep", (n,), Kind.MASK, tex=r"\kappa", meaning="1 for a real token, 0 for padding")
    fams = _layer_params()
    e = eps_symbol() if eps else None
    S = tensor("S", (n, n), Kind.ADDITIVE_MASK, meaning="padding mask over keys, the same in every block")
    H = Family("H", l, L, (d_e, n), start=0, tex="H^{{index}}", meaning="output of block l, H^0 = X")
    return Equation(
        "bert.encoder",
        "BERT encoder",
        inputs=(X, keep),
        params=(*fams.values(), *((e,) if e is not None else ())),
        intermediates=(S, H),
        bindings=[(S, PaddingMask(keep, n)), (H[0], X), (H[l], _block(H[l - 1], S, fams, e))],
        outputs=(H,),
        reference=Reference(SECTION, source=f"{DEVLIN}, §3; Vaswani et al. 2017, §3.1", status="R"),
        constraints=(sp.Eq(d_v, d_k),),
        invariants=(
            Invariant("padding_invariance", {"keep": "keep", "tokens": {"X": 1}, "output_tokens": {"H": 1}}),
            Invariant("permutation_equivariance", {"tokens": {"X": 1, "keep": 0}, "output_tokens": {"H": 1}}),
        ),
        notes="L post-LN blocks (transformer.block_post_ln), bidirectional: no causal mask, only the padding "
        "mask S = S^pad(κ), −∞ in the columns of padded keys. The outputs are the states H^1, …, H^L of "
        "every block (Hugging Face's hidden_states[1:]); the heads read H^L. A padded token attends to the "
        "real tokens like any other, and no real token attends to it. BERT has d_k = d_v = d_e/M; the "
        "spec only needs d_v = d_k. Hugging Face fills masked scores with finfo.min instead of −∞ (the "
        "same weights unless every key of a sequence is padding).",
    )


# --- bert.mlm_head -------------------------------------------------------------------------------
def mlm_head(eps: bool = False, activation: str = "gelu") -> Equation:
    H = tensor("H", (d_e, n), tex="H^{L}", meaning="output of the encoder")
    W_m = tensor("W_m", (d_e, d_e), meaning="transform of the MLM head")
    b_m = tensor("b_m", (d_e,), meaning="bias of the transform")
    alpha_m = tensor("alpha_m", (d_e,), tex=r"\alpha_{m}", meaning="scale of the head's layer norm")
    beta_m = tensor("beta_m", (d_e,), tex=r"\beta_{m}", meaning="shift of the head's layer norm")
    E = tensor("E", (d_e, v), meaning="token embedding, tied: the output layer is Eᵀ")
    b_out = tensor("b_out", (v,), tex=r"b_{\mathrm{out}}", meaning="output bias, one per vocabulary entry")
    Tm = tensor("T", (d_e, n), meaning="transformed states")
    e = eps_symbol() if eps else None
    Z = tensor("Z", (v, n), meaning="logits, one column per token")
    Y = tensor(
        "Y_hat", (v, n), Kind.PROBABILITY, tex=r"\hat{Y}", meaning="column i: P(token i = · | context)"
    )
    return Equation(
        "bert.mlm_head",
        "Masked language model head",
        inputs=(H,),
        params=(W_m, b_m, alpha_m, beta_m, E, b_out, *((e,) if e is not None else ())),
        intermediates=(Tm, Z, Y),
        bindings=[
            (Tm, normalise(apply(activation, add(mul(W_m, H), mul(b_m, T(Ones(n))))), alpha_m, beta_m, e)),
            (Z, add(mul(T(E), Tm), mul(b_out, T(Ones(n))))),
            (Y, Softmax(Z, "columns")),
        ],
        outputs=(Y,),
        reference=Reference(
            SECTION, source=f"{DEVLIN}, §3.1 (Task #1); BERT's cls/predictions", status="R", count_status="T"
        ),
        invariants=(
            Invariant("columns_are_distributions", {"outputs": ["Y_hat"]}),
            Invariant("permutation_equivariance", {"tokens": {"H": 1}, "output_tokens": {"Y_hat": 1}}),
        ),
        notes="A dense transform with GELU (erf) and a layer norm, then the tied output layer Eᵀ with its "
        "own bias b_out: (d_e² + d_e) + 2 d_e + v parameters besides E. Column i of Ŷ is the predicted "
        "distribution of token i; the loss reads it at the masked positions only (bert.mlm_loss). "
        "Hugging Face: cls.predictions.transform.dense = W_m, .LayerNorm = (α_m, β_m), "
        "cls.predictions.decoder.weight = Eᵀ, cls.predictions.bias = b_out.",
    )


# --- bert.mlm_masking ----------------------------------------------------------------------------
#: Devlin et al.: select 15% of the tokens; of those, 80% → [MASK], 10% → a random token, 10% unchanged.
SELECT = sp.Rational(15, 100)
SPLIT = (sp.Rational(8, 10), sp.Rational(1, 10), sp.Rational(1, 10))
OUTCOMES = ("not selected", "[MASK]", "random token", "selected, unchanged")


def mlm_masking(select: sp.Expr = SELECT, split: tuple = SPLIT) -> Equation:
    if sum(split) != 1 or not 0 < select < 1:
        raise SpecError(f"bert.mlm_masking: the split {split} must sum to 1 and 0 < {select} < 1")
    k = tensor("k", (n,), Kind.INDEX, meaning="vocabulary index k_i of token i")
    special = tensor(
        "special", (n,), Kind.MASK, tex=r"\varsigma", meaning="1 for a special token, never masked"
    )
    mask_id = tensor("mask_id", (), Kind.INDEX, tex=r"\mu", meaning="vocabulary index of [MASK]")
    Omega = tensor("Omega", (v, n), Kind.ONE_HOT, tex=r"\Omega", meaning="one-hot tokens")
    Pi = tensor("Pi", (4, n), Kind.PROBABILITY, tex=r"\Pi", meaning="column i: P(outcome of token i); rows: "
                + ", ".join(OUTCOMES))  # fmt: skip
    Q = tensor("Q", (v, n), Kind.PROBABILITY, tex=r"\tilde{Q}", meaning="column i: P(token i becomes ·)")
    # column 1: a maskable token (ς_i = 0); column 2: a special token (ς_i = 1)
    rates = Constant([[1 - select, 1], *[[select * f, 0] for f in split]])
    pick = {r: Constant([[1 if c in r else 0 for c in range(4)]]) for r in ((0, 3), (1,), (2,))}
    return Equation(
        "bert.mlm_masking",
        "Masked-language-model masking (a distribution)",
        inputs=(k, special),
        params=(mask_id,),
        intermediates=(Omega, Pi, Q),
        bindings=[
            (Omega, OneHot(k, v)),
            (Pi, mul(rates, OneHot(special, 2))),
            (
                Q,
                add(
                    had(Omega, mul(Ones(v), pick[(0, 3)], Pi)),
                    mul(OneHot(mask_id, v), pick[(1,)], Pi),
                    mul(1 / v, Ones(v), pick[(2,)], Pi),
                ),
            ),
        ],
        outputs=(Pi, Q),
        reference=Reference(SECTION, source=f"{DEVLIN}, §3.1 (Task #1) and Appendix A.1", status="R"),
        invariants=(
            Invariant("columns_are_distributions", {"outputs": ["Pi", "Q"]}),
            Invariant(
                "mlm_masking_rates",
                {
                    "special": "special",
                    "output": "Pi",
                    "select": float(select),
                    "split": [float(f) for f in split],
                },
            ),
        ),
        notes="A random procedure stated as the distribution it samples from, independently per token. "
        f"Row r of Π is the probability of outcome r: {'; '.join(OUTCOMES)}. A token is selected with "
        "probability 15%, then becomes [MASK] (80%), a random token (10%) or stays (10%): (0.85, 0.12, "
        "0.015, 0.015); a special token ([CLS], [SEP], [PAD]) is never selected: (1, 0, 0, 0). The random "
        "token is uniform over the whole vocabulary, as in Devlin et al.'s code and Hugging Face's "
        "DataCollatorForLanguageModeling: it may be the original token, [MASK] or another special token. "
        "Q̃ is the resulting distribution of the corrupted token: column i puts Π₀ + Π₃ on k_i, Π₁ on μ "
        "and Π₂/v on every entry. The loss is taken at the selected tokens (outcomes 1–3).",
    )


# --- bert.mlm_loss -------------------------------------------------------------------------------
def mlm_loss(mean: bool = False) -> Equation:
    """``mean=True``: the mean over 𝓜, 𝓛 / |𝓜|, NaN when 𝓜 is empty (Hugging Face)."""
    Y = tensor("Y_hat", (v, n), Kind.PROBABILITY, tex=r"\hat{Y}", meaning="MLM head output (bert.mlm_head)")
    k = tensor("k", (n,), Kind.INDEX, meaning="original vocabulary index of token i")
    sel = tensor("sel", (n,), Kind.MASK, tex=r"\mathbb{1}_{\mathcal{M}}", meaning="1 if token i is in 𝓜")
    nll = Neg(mul(T(sel), apply("log", Pick(Y, k))))
    invariants = (
        Invariant("mlm_loss_masked_only", {"select": "sel", "probabilities": "Y_hat", "index": "k"}),
    )
    if not mean:
        loss = tensor("loss", (), tex=r"\mathcal{L}", meaning="negative log-likelihood of the masked tokens")
        return Equation(
            "bert.mlm_loss",
            "Masked language model loss",
            inputs=(Y, k, sel),
            intermediates=(loss,),
            bindings=[(loss, nll)],
            outputs=(loss,),
            reference=Reference(SECTION, source=f"{DEVLIN}, §3.1 (Task #1)", status="R"),
            invariants=invariants,
            notes="𝓛 = −Σ_{i∈𝓜} log Ŷ_{k_i, i}: the original token is predicted at the selected positions "
            "𝓜 only (written with the indicator 𝟙_𝓜 of 𝓜). Hugging Face averages over 𝓜 (CrossEntropyLoss "
            "with labels −100 outside 𝓜), i.e. 𝓛/|𝓜|: the variant mean.",
        )
    total = tensor("loss_sum", (), tex=r"\mathcal{L}_{\mathrm{sum}}", meaning="summed over the masked tokens")
    loss = tensor("loss", (), tex=r"\mathcal{L}", meaning="mean negative log-likelihood of the masked tokens")
    return Equation(
        "bert.mlm_loss",
        "Masked language model loss",
        inputs=(Y, k, sel),
        intermediates=(total, loss),
        bindings=[(total, nll), (loss, Ratio(total, mul(T(Ones(n)), sel)))],
        outputs=(loss,),
        reference=Reference(SECTION, source=f"{DEVLIN}, §3.1 (Task #1)", status="R"),
        invariants=invariants,
        notes="𝓛 = −(1/|𝓜|) Σ_{i∈𝓜} log Ŷ_{k_i, i}, |𝓜| = 1_nᵀ 𝟙_𝓜: the mean over the selected positions, "
        "the tutorial's sum divided by |𝓜|. This is what Hugging Face computes: BertForMaskedLM(input_ids, "
        "labels=…).loss is CrossEntropyLoss() (reduction='mean') with the labels −100 outside 𝓜 (a batch "
        "pools all its selected tokens into one mean). When 𝓜 is empty the mean is 0/0 = NaN, as "
        "CrossEntropyLoss gives when every label is ignored (the convention of lm.cross_entropy).",
    )


# --- bert.pooler ---------------------------------------------------------------------------------
def pooler() -> Equation:
    H = tensor("H", (d_e, n), tex="H^{L}", meaning="output of the encoder")
    W_p = tensor("W_p", (d_e, d_e), meaning="pooler weight")
    b_p = tensor("b_p", (d_e,), meaning="pooler bias")
    p = tensor("p", (d_e,), meaning="pooled representation of the sequence")
    return Equation(
        "bert.pooler",
        "BERT pooler",
        inputs=(H,),
        params=(W_p, b_p),
        intermediates=(p,),
        bindings=[(p, apply("tanh", add(mul(W_p, Column(H, 1)), b_p)))],
        outputs=(p,),
        reference=Reference(
            SECTION, source=f"{DEVLIN}, §3 (the [CLS] representation C)", status="R", count_status="T"
        ),
        invariants=(Invariant("first_token_only", {"tokens": {"H": 1}}),),
        notes="p = tanh(W_p h^L_[CLS] + b_p) with [CLS] the first token: d_e² + d_e parameters. Devlin et "
        "al. call the final [CLS] state C. Hugging Face: pooler.dense (weight = W_p).",
    )


# --- bert.nsp_head -------------------------------------------------------------------------------
def nsp_head() -> Equation:
    p = tensor("p", (d_e,), meaning="pooled representation (bert.pooler)")
    W = tensor("W_nsp", (2, d_e), tex=r"W_{\mathrm{nsp}}", meaning="next-sentence classifier")
    b = tensor("b_nsp", (2,), tex=r"b_{\mathrm{nsp}}", meaning="its bias")
    y = tensor("y_hat", (2,), Kind.PROBABILITY, tex=r"\hat{y}", meaning="P(B follows A), P(B is random)")
    return Equation(
        "bert.nsp_head",
        "Next sentence prediction head",
        inputs=(p,),
        params=(W, b),
        intermediates=(y,),
        bindings=[(y, Softmax(add(mul(W, p), b), "columns"))],
        outputs=(y,),
        reference=Reference(SECTION, source=f"{DEVLIN}, §3.1 (Task #2)", status="R"),
        invariants=(Invariant("columns_are_distributions", {"outputs": ["y_hat"]}),),
        notes="ŷ_1 is the probability that sentence B follows A (IsNext, label 0 in Hugging Face), ŷ_2 that "
        "B is a random sentence (NotNext). Hugging Face: cls.seq_relationship (weight = W_nsp).",
    )


# --- bert.classifier -----------------------------------------------------------------------------
def classifier() -> Equation:
    p = tensor("p", (d_e,), meaning="pooled representation (bert.pooler)")
    y = tensor("y", (n_c, 1), Kind.ONE_HOT, meaning="the label, one-hot")
    W = tensor("W_c", (n_c, d_e), meaning="classifier weight")
    b = tensor("b_c", (n_c,), meaning="classifier bias")
    y_hat = tensor("y_hat", (n_c,), Kind.PROBABILITY, tex=r"\hat{y}", meaning="predicted class distribution")
    loss = tensor("loss", (), tex=r"\mathcal{L}", meaning="cross-entropy of the label")
    return Equation(
        "bert.classifier",
        "Sequence classification head",
        inputs=(p, y),
        params=(W, b),
        intermediates=(y_hat, loss),
        bindings=[
            (y_hat, Softmax(add(mul(W, p), b), "columns")),
            (loss, Neg(mul(T(y), apply("log", y_hat)))),
        ],
        outputs=(y_hat, loss),
        reference=Reference(SECTION, source=f"{DEVLIN}, §4.1 (GLUE fine-tuning)", status="R"),
        invariants=(
            Invariant("columns_are_distributions", {"outputs": ["y_hat"]}),
            Invariant("classifier_cross_entropy", {}),
        ),
        notes="Fine-tuning: a linear layer on the pooled [CLS] state, softmax over n_c classes, and the "
        "cross-entropy 𝓛 = −yᵀ log ŷ = −log ŷ_c of the label c (y its one-hot column). Hugging Face: "
        "BertForSequenceClassification.classifier (weight = W_c), dropout off.",
    )


def _eps_variant(eq: Equation, build) -> Equation:
    eq.add_variant("eps", lambda: build(eps=True), EPS_TEXT)
    return eq


register(_eps_variant(input_(), input_))
register(_eps_variant(encoder(), encoder))
register(_eps_variant(mlm_head(), mlm_head)).add_variant(
    "gelu_tanh",
    lambda: mlm_head(activation="gelu_tanh"),
    "the transform's GELU is the tanh approximation (hidden_act='gelu_new' in Hugging Face configurations)",
)
register(mlm_masking()).add_variant(
    "mask_only",
    lambda: mlm_masking(split=(sp.Integer(1), sp.Integer(0), sp.Integer(0))),
    "every selected token becomes [MASK] (Hugging Face's collator with mask_replace_prob = 1)",
)
register(mlm_loss()).add_variant(
    "mean", mlm_loss, "the mean over 𝓜 (𝓛/|𝓜|; NaN when 𝓜 is empty), as Hugging Face", {"mean": True}
)
register(pooler())
register(nsp_head())
register(classifier())
