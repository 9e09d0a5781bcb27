"""Language modelling basics: chain rule, bigram counts, one-hot and embedding, softmax, cross-entropy,
perplexity, and the two sampling transforms (temperature, top-k).

Tokens are columns, as everywhere in the tutorial: token i has vocabulary index ``k_i`` and one-hot column
``ω_i``, ``Ω = [ω_1, …, ω_n] ∈ {0,1}^{v×n}``; logits ``Z ∈ ℝ^{v×n}`` hold in column i the scores for token i
and ``Ŷ = softmax_col(Z)`` its predicted distribution. Per-position losses form a column ``ℓ ∈ ℝ^n``.

Conventions the spec fixes (each tested):

- A keep mask ``κ ∈ {0,1}^n`` says which positions are predicted (1) and which are padding or not predicted
  (0). Sums are ``κᵀ ℓ``, means ``κᵀ ℓ / 1_nᵀ κ``. A mean over no position (``1_nᵀ κ = 0``) is **NaN**, as
  ``torch.nn.functional.cross_entropy`` gives when every target is ignored; so is a perplexity over no
  token.
- The bigram estimate ``P̂(w | h) = c(h, w) / c(h)`` counts ``c(h)`` as the occurrences of h *followed by a
  token* (positions 1..n−1), so each row of ``P̂`` is a distribution. A history never seen (``c(h) = 0``)
  predicts the **uniform** distribution ``1/v`` (the maximum-entropy guess with no data); the named variant
  ``unseen_zero`` gives a row of zeros instead (NLTK's ``ConditionalFreqDist``: ``freq`` of an empty
  distribution is 0).
- Top-k keeps the logits that have **fewer than k larger ones**: every logit tied with the k-th largest is
  kept, so more than k tokens survive when there are ties. This is what the usual
  ``scores[scores < torch.topk(scores, k)[0][..., -1, None]] = -inf`` filter (Hugging Face's
  ``TopKLogitsWarper``) does. The kept logits are renormalised by a softmax.
"""

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr

from .axes import GLOSSARY, d_e, n, v
from .equation import Equation, Invariant, Reference
from .ops import Ones, Softmax, SpecOp, T, _str, mul
from .ops_nn import Neg, OneHot, Pick, Scaled, apply, call
from .registry import register
from .tensors import Kind, tensor

k_top = GLOSSARY["k_top"].symbol

SECTION = "language modelling basics"
JURAFSKY = "Jurafsky & Martin, Speech and Language Processing (3rd ed. draft), ch. 3"
GOODFELLOW = "Goodfellow, Bengio & Courville 2016, §6.2.2.3"


# --- operators of this family ---------------------------------------------------------------------
class Ratio(SpecOp):
    """``a / b`` for 1×1 matrices a and b; NaN where ``b = 0`` (a mean over no position)."""

    def __new__(cls, a: sp.Basic, b: sp.Basic) -> "Ratio":
        return MatrixExpr.__new__(cls, a, b)

    @property
    def shape(self):
        return (sp.Integer(1), sp.Integer(1))

    def _check_shapes(self, checker) -> None:
        for x, what in zip(self.args, ("numerator", "denominator"), strict=True):
            checker.require(f"ratio {what}", "rows", x, x.shape[0], x, sp.Integer(1))
            checker.require(f"ratio {what}", "columns", x, x.shape[1], x, sp.Integer(1))

    def _entry(self, i, j, **kwargs):
        a, b = self.args[0][0, 0], self.args[1][0, 0]
        # the guarded denominator keeps 1/b finite, so that the oracle may compute it before the choice
        return sp.Piecewise((sp.nan, sp.Eq(b, 0)), (a / sp.Piecewise((1, sp.Eq(b, 0)), (b, True)), True))

    def _latex(self, printer) -> str:
        a, b = (printer._print(x) for x in self.args)
        return rf"\frac{{{a}}}{{{b}}}"

    def _latex_definition(self, printer) -> str:
        return r"\frac{a}{b} = \mathrm{NaN} \text{ if } b = 0 \text{ (a mean over no position)}"

    def _torchcode(self, ctx) -> str:
        a, b = (ctx.emit(ctx.expr(x)) for x in self.args)
        return f"torch.where({b} == 0, math.nan, {a} / {b})"


class Shift(SpecOp):
    """``J_n ∈ {0,1}^{n×n}`` with ones on the superdiagonal: ``(J_n)_{ij} = 1`` iff ``j = i + 1``, so that
    ``(Ω J_n Ωᵀ)_{hw}`` counts the positions i with ``k_i = h`` and ``k_{i+1} = w``."""

    def __new__(cls, size: sp.Expr) -> "Shift":
        return MatrixExpr.__new__(cls, sp.sympify(size))

    @property
    def shape(self):
        return (self.args[0], self.args[0])

    def _entry(self, i, j, **kwargs):
        return sp.Piecewise((sp.S.One, sp.Eq(j, i + 1)), (sp.S.Zero, True))

    def _latex(self, printer) -> str:
        return rf"J_{{{printer._print(self.args[0])}}}"

    def _latex_definition(self, printer) -> str:
        return rf"\left({self._latex(printer)}\right)_{{ij}} = 1 \text{{ if }} j = i + 1, \text{{ else }} 0"

    def _torchcode(self, ctx) -> str:
        size = ctx.size(self.args[0])
        return f"torch.ones({size} - 1, dtype={ctx.dtype}, device={ctx.device}).diag(1)"


#: What a row of counts that sums to 0 (a history never seen) becomes.
UNSEEN = ("uniform", "zero")


class RowNormalise(SpecOp):
    """Each row divided by its sum, ``C_{hw} / Σ_{w'} C_{hw'}``; a row summing to 0 becomes ``1/cols``
    (``unseen="uniform"``) or 0 (``unseen="zero"``)."""

    def __new__(cls, C: sp.Basic, unseen: str = "uniform") -> "RowNormalise":
        if str(unseen) not in UNSEEN:
            from ._errors import SpecError

            raise SpecError(f"RowNormalise: unseen must be one of {UNSEEN}, found {str(unseen)!r}")
        return MatrixExpr.__new__(cls, C, _str(str(unseen)))

    @property
    def unseen(self) -> str:
        return self.args[1].name

    @property
    def shape(self):
        return self.args[0].shape

    def _entry(self, i, j, **kwargs):
        C = self.args[0]
        cols = C.shape[1]
        if not sp.sympify(cols).is_Integer:
            w = sp.Dummy("w", integer=True)
            total = sp.Sum(C[i, w], (w, 0, cols - 1))
        else:
            total = sp.Add(*[C[i, w] for w in range(int(cols))])
        empty = sp.S.One / cols if self.unseen == "uniform" else sp.S.Zero
        safe = sp.Piecewise((1, sp.Eq(total, 0)), (total, True))  # never 0: see Ratio
        return sp.Piecewise((empty, sp.Eq(total, 0)), (C[i, j] / safe, True))

    def _latex(self, printer) -> str:
        return rf"\operatorname{{normalise}}_{{\mathrm{{row}}}}\left({printer._print(self.args[0])}\right)"

    def _latex_definition(self, printer) -> str:
        empty = "1/v" if self.unseen == "uniform" else "0"
        return (
            r"\operatorname{normalise}_{\mathrm{row}}(C)_{hw} = \frac{C_{hw}}{\sum_{w'} C_{hw'}}"
            rf" \quad ({empty} \text{{ if }} \textstyle\sum_{{w'}} C_{{hw'}} = 0)"
        )

    def _torchcode(self, ctx) -> str:
        C = ctx.emit(ctx.expr(self.args[0]))
        total = ctx.emit(f"{C}.sum(dim=-1, keepdim=True)")
        empty = f"1.0 / {C}.shape[-1]" if self.unseen == "uniform" else "0.0"
        return f"torch.where({total} == 0, {empty}, {C} / torch.where({total} == 0, 1.0, {total}))"


class Above(sp.Function):
    """``[a > b]``, the Iverson bracket: 1 if a > b, else 0. A function of its own so that a count of
    comparisons stays a sum (a sum of Piecewise inside a condition makes SymPy expand it into logic)."""

    @classmethod
    def eval(cls, a, b):
        diff = a - b
        if diff.is_number and diff.is_extended_real:
            return sp.S.One if diff > 0 else sp.S.Zero
        if diff.is_zero:
            return sp.S.Zero
        return None

    def _latex(self, printer) -> str:
        a, b = (printer._print(x) for x in self.args)
        return rf"\left[{a} > {b}\right]"

    def _pythoncode(self, printer) -> str:
        a, b = (printer._print(x) for x in self.args)
        return f"(1 if ({a}) > ({b}) else 0)"

    _mpmathcode = _pythoncode


class TopKFilter(SpecOp):
    """Top-k filtering of each column: ``z_i`` where fewer than k entries of its column are larger,
    ``−∞`` elsewhere (ties with the k-th largest are kept)."""

    def __new__(cls, Z: sp.Basic, k: sp.Expr) -> "TopKFilter":
        return MatrixExpr.__new__(cls, Z, sp.sympify(k))

    @property
    def shape(self):
        return self.args[0].shape

    def _entry(self, i, j, **kwargs):
        Z, k = self.args
        rows = Z.shape[0]
        if not sp.sympify(rows).is_Integer:
            r = sp.Dummy("r", integer=True)
            larger = sp.Sum(Above(Z[r, j], Z[i, j]), (r, 0, rows - 1))
        else:
            larger = sp.Add(*[Above(Z[r, j], Z[i, j]) for r in range(int(rows)) if r != i])
        return sp.Piecewise((Z[i, j], sp.Lt(larger, k)), (-sp.oo, True))

    def _latex(self, printer) -> str:
        Z, k = self.args
        kk = GLOSSARY["k_top"].latex if k == k_top else printer._print(k)
        return rf"\operatorname{{top}}_{{{kk}}}\left({printer._print(Z)}\right)"

    def _latex_definition(self, printer) -> str:
        return (
            r"\operatorname{top}_{k}(z)_{i} = \begin{cases} z_{i} & \left|\{j : z_{j} > z_{i}\}\right| < k \\"
            r" -\infty & \text{otherwise} \end{cases}"
        )

    def _torchcode(self, ctx) -> str:
        Z = ctx.emit(ctx.expr(self.args[0]))
        kth = ctx.emit(f"torch.topk({Z}, {ctx.size(self.args[1])}, dim=-2).values[..., -1:, :]")
        return f"torch.where({Z} < {kth}, -math.inf, {Z})"


#: The operators of this module, for tests.
OPERATORS_LM = (Ratio, Shift, RowNormalise, TopKFilter)
FUNCTIONS_LM = (Above,)


# --- shared symbols -------------------------------------------------------------------------------
def _tokens() -> sp.MatrixSymbol:
    return tensor("k", (n,), Kind.INDEX, meaning="token ids k_1..k_n in [0, v)")


def _keep() -> sp.MatrixSymbol:
    return tensor(
        "keep", (n,), Kind.MASK, tex=r"\kappa", meaning="1 for a predicted position, 0 for padding / ignored"
    )


def _logits() -> sp.MatrixSymbol:
    return tensor("Z", (v, n), meaning="logits; column i scores the vocabulary for token i")


# --- lm.chain_rule --------------------------------------------------------------------------------
def chain_rule() -> Equation:
    Y = tensor(
        "Y",
        (v, n),
        Kind.PROBABILITY,
        meaning="conditionals; column i is P(· | w_1..w_{i−1}) (column 1: P(w_1))",
    )
    k = _tokens()
    p = tensor("p", (n,), tex=r"p", meaning="p_i = P(w_i | w_1..w_{i−1}), the conditional of each token")
    log_prob = tensor("log_prob", (), tex=r"\log P(w_{1:n})", meaning="log-probability of the sequence")
    prob = tensor("prob", (), tex=r"P(w_{1:n})", meaning="probability of the sequence")
    return Equation(
        "lm.chain_rule",
        "Chain rule of probability",
        inputs=(Y, k),
        intermediates=(p, log_prob, prob),
        bindings=[
            (p, Pick(Y, k)),
            (log_prob, mul(T(Ones(n)), apply("log", p))),
            (prob, apply("exp", log_prob)),
        ],
        outputs=(log_prob, prob),
        reference=Reference(SECTION, source=JURAFSKY + " (chain rule of probability)", status="R"),
        invariants=(
            Invariant(
                "chain_rule_normalised",
                {"conditionals": "Y", "tokens": "k", "log_prob": "log_prob", "prob": "prob"},
            ),
        ),
        notes="P(w_1..w_n) = Π_i P(w_i | w_1..w_{i−1}); in log form log P = Σ_i log p_i = 1_nᵀ log p with "
        "p_i = Y_{k_i, i}. Column i of Y is the distribution of token i given the tokens before it (column "
        "1 the distribution of the first token). A causal model's output Ŷ is shifted by one: its column i "
        "predicts token i+1 (see gpt2.lm_head).",
    )


# --- lm.ngram -------------------------------------------------------------------------------------
def ngram(unseen: str = "uniform") -> Equation:
    k = _tokens()
    Omega = tensor("Omega", (v, n), Kind.ONE_HOT, tex=r"\Omega", meaning="one-hot tokens")
    C = tensor("C", (v, v), meaning="bigram counts; C_{hw} = c(h, w), the times h is followed by w")
    P_hat = tensor(
        "P_hat",
        (v, v),
        Kind.PROBABILITY,
        tex=r"\hat{P}",
        meaning="P̂_{hw} = P̂(w | h); each row a distribution",
    )
    return Equation(
        "lm.ngram",
        "Bigram (N = 2) count estimate",
        inputs=(k,),
        intermediates=(Omega, C, P_hat),
        bindings=[
            (Omega, OneHot(k, v)),
            (C, mul(Omega, Shift(n), T(Omega))),
            (P_hat, RowNormalise(C, unseen)),
        ],
        outputs=(C, P_hat),
        reference=Reference(SECTION, source=JURAFSKY + " (the Markov assumption, bigram MLE)", status="R"),
        invariants=(Invariant("ngram_estimate", {"tokens": "k", "counts": "C", "estimate": "P_hat"}),),
        notes="Markov assumption P(w_i | w_<i) ≈ P(w_i | w_{i−N+1..i−1}), here N = 2: the history h is the "
        "previous token. C = Ω J_n Ωᵀ counts the bigrams (C_{hw} = c(h, w)); c(h) = Σ_w C_{hw} counts h "
        "followed by a token, and P̂(w | h) = c(h, w) / c(h), the maximum-likelihood estimate. P̂ is "
        "row-stochastic (row h is P̂(· | h)), a Markov transition matrix. A history never seen (c(h) = 0) "
        "gets the uniform row 1/v; the variant unseen_zero gives a row of zeros.",
    )


# --- lm.one_hot -----------------------------------------------------------------------------------
def one_hot() -> Equation:
    k = _tokens()
    Omega = tensor("Omega", (v, n), Kind.ONE_HOT, tex=r"\Omega", meaning="one-hot columns ω_i")
    return Equation(
        "lm.one_hot",
        "One-hot encoding of the tokens",
        inputs=(k,),
        intermediates=(Omega,),
        bindings=[(Omega, OneHot(k, v))],
        outputs=(Omega,),
        reference=Reference(SECTION),
        invariants=(
            Invariant("one_hot_columns", {"tokens": "k", "output": "Omega"}),
            Invariant("permutation_equivariance", {"tokens": {"k": 0}, "output_tokens": {"Omega": 1}}),
        ),
        notes="Ω_{k_i, i} = 1 and every other entry of column i is 0, so 1_vᵀ Ω = 1_nᵀ. Rows are 0-based "
        "vocabulary ids (k_i ∈ [0, v)); torch.nn.functional.one_hot gives Ωᵀ.",
    )


# --- lm.embedding ---------------------------------------------------------------------------------
def embedding() -> Equation:
    k = _tokens()
    E = tensor("E", (d_e, v), meaning="token embedding; column w is the vector of token w")
    Omega = tensor("Omega", (v, n), Kind.ONE_HOT, tex=r"\Omega", meaning="one-hot tokens")
    X = tensor("X", (d_e, n), meaning="token vectors, one column per token")
    return Equation(
        "lm.embedding",
        "Token embedding",
        inputs=(k,),
        params=(E,),
        intermediates=(Omega, X),
        bindings=[(Omega, OneHot(k, v)), (X, mul(E, Omega))],
        outputs=(X,),
        reference=Reference(SECTION),
        invariants=(Invariant("permutation_equivariance", {"tokens": {"k": 0}, "output_tokens": {"X": 1}}),),
        notes="X = E Ω, x_i = E ω_i: the product with a one-hot column selects column k_i of E (a lookup). "
        "nn.Embedding.weight and Hugging Face's wte.weight hold Eᵀ (v × d_e).",
    )


# --- lm.softmax -----------------------------------------------------------------------------------
def softmax() -> Equation:
    z = tensor("z", (v,), meaning="logits over the vocabulary")
    y_hat = tensor("y_hat", (v,), Kind.PROBABILITY, tex=r"\hat{y}", meaning="predicted distribution")
    return Equation(
        "lm.softmax",
        "Softmax over the vocabulary",
        inputs=(z,),
        intermediates=(y_hat,),
        bindings=[(y_hat, Softmax(z, "columns"))],
        outputs=(y_hat,),
        reference=Reference(SECTION, source=GOODFELLOW, status="R"),
        invariants=(
            Invariant("softmax_rows_sum_to_one", {"input": "z", "output": "y_hat"}),
            Invariant("softmax_non_negative", {"output": "y_hat"}),
            Invariant("softmax_shift_invariant", {"input": "z", "output": "y_hat"}),
        ),
        notes="softmax(z)_k = e^{z_k} / Σ_j e^{z_j} for z ∈ ℝ^v; applied to every column of Z ∈ ℝ^{v×n} it "
        "is softmax_col(Z), the LM head's normalisation.",
    )


# --- lm.cross_entropy -----------------------------------------------------------------------------
def cross_entropy(denominator: str = "kept") -> Equation:
    """``denominator="all"``: the mean divides by every position n, padding included (a bug class)."""
    Z, k, keep = _logits(), _tokens(), _keep()
    count = mul(T(Ones(n)), keep) if denominator == "kept" else mul(T(Ones(n)), Ones(n))
    Y_hat = tensor("Y_hat", (v, n), Kind.PROBABILITY, tex=r"\hat{Y}", meaning="predicted distributions")
    ell = tensor("ell", (n,), tex=r"\ell", meaning="per-position loss ℓ_i = −log Ŷ_{k_i, i}")
    loss_sum = tensor("loss_sum", (), tex=r"\mathcal{L}_{\mathrm{sum}}", meaning="summed over kept positions")
    loss = tensor("loss", (), tex=r"\mathcal{L}", meaning="mean over kept positions (NaN if none)")
    return Equation(
        "lm.cross_entropy",
        "Cross-entropy loss",
        inputs=(Z, k, keep),
        intermediates=(Y_hat, ell, loss_sum, loss),
        bindings=[
            (Y_hat, Softmax(Z, "columns")),
            (ell, Neg(apply("log", Pick(Y_hat, k)))),
            (loss_sum, mul(T(keep), ell)),
            (loss, Ratio(loss_sum, count)),
        ],
        outputs=(ell, loss_sum, loss),
        reference=Reference(SECTION, source=GOODFELLOW, status="R"),
        invariants=(
            Invariant(
                "cross_entropy_bounds", {"logits": "Z", "tokens": "k", "keep": "keep", "output": "ell"}
            ),
            Invariant(
                "ignores_padding",
                {"keep": "keep", "tokens": {"Z": 1, "k": 0}, "outputs": ["loss_sum", "loss"]},
            ),
            Invariant(
                "permutation_equivariance",
                {"tokens": {"Z": 1, "k": 0, "keep": 0}, "output_tokens": {"ell": 0}},
            ),
        ),
        notes="ℓ_i = −ω_iᵀ log ŷ_i = −log Ŷ_{k_i, i} with Ŷ = softmax_col(Z); summed over the kept "
        "positions (κᵀ ℓ) or averaged (κᵀ ℓ / 1_nᵀ κ, NaN when no position is kept, as torch's "
        "cross_entropy with every target ignored). For a causal LM column i of Z predicts token i+1: pass "
        "the shifted targets and κ_n = 0.",
    )


# --- lm.perplexity --------------------------------------------------------------------------------
def perplexity() -> Equation:
    Z, k, keep = _logits(), _tokens(), _keep()
    PPL = tensor("PPL", (), tex=r"\mathrm{PPL}", meaning="perplexity of the kept tokens")
    ce = call("lm.cross_entropy", "loss", tex=r"\mathcal{L}_{\mathrm{CE}}", Z=Z, k=k, keep=keep)
    return Equation(
        "lm.perplexity",
        "Perplexity",
        inputs=(Z, k, keep),
        intermediates=(PPL,),
        bindings=[(PPL, apply("exp", ce))],
        outputs=(PPL,),
        reference=Reference(SECTION, source=JURAFSKY + " (perplexity)", status="R"),
        invariants=(
            Invariant("perplexity_uniform", {"logits": "Z", "keep": "keep", "output": "PPL"}),
            Invariant("ignores_padding", {"keep": "keep", "tokens": {"Z": 1, "k": 0}, "outputs": ["PPL"]}),
            Invariant(
                "perplexity_pools_tokens",
                {"tokens": {"Z": 1, "k": 0, "keep": 0}, "keep": "keep", "output": "PPL"},
            ),
        ),
        notes="PPL = exp(mean NLL over the predicted, non-padding tokens) = exp(κᵀ ℓ / 1_nᵀ κ). A corpus "
        "perplexity pools the tokens of every sequence (one mean over all kept tokens), it is not a mean "
        "of per-sequence perplexities: impl.lm.corpus_perplexity. Uniform predictions give PPL = v.",
    )


# --- lm.temperature -------------------------------------------------------------------------------
def temperature() -> Equation:
    z = tensor("z", (v,), meaning="logits of the next token")
    tau = tensor("tau", (), Kind.POSITIVE, tex=r"\tau", meaning="temperature τ > 0")
    p = tensor("p_tau", (v,), Kind.PROBABILITY, tex=r"p_{\tau}", meaning="sampling distribution")
    return Equation(
        "lm.temperature",
        "Softmax with temperature",
        inputs=(z,),
        params=(tau,),
        intermediates=(p,),
        bindings=[(p, Softmax(Scaled(z, tau, -1), "columns"))],
        outputs=(p,),
        reference=Reference(
            SECTION, source="Ackley, Hinton & Sejnowski 1985; Holtzman et al. 2020", status="R"
        ),
        invariants=(
            Invariant("softmax_rows_sum_to_one", {"input": "z", "output": "p_tau"}),
            Invariant("temperature_limits", {"logits": "z", "temperature": "tau", "output": "p_tau"}),
        ),
        notes="p_τ = softmax(z / τ). τ = 1 is the model's distribution, τ < 1 sharpens it, τ > 1 flattens "
        "it; τ → 0 gives the argmax (greedy decoding: one-hot at a unique maximum, ties share equally) and "
        "τ → ∞ the uniform distribution.",
    )


# --- lm.top_k -------------------------------------------------------------------------------------
def top_k() -> Equation:
    z = tensor("z", (v,), meaning="logits of the next token")
    z_top = tensor(
        "z_top", (v,), Kind.SCORE, tex=r"\tilde{z}", meaning="filtered logits; −∞ outside the top k"
    )
    p = tensor("p_top", (v,), Kind.PROBABILITY, tex=r"p_{k}", meaning="renormalised sampling distribution")
    return Equation(
        "lm.top_k",
        "Top-k filtering",
        inputs=(z,),
        intermediates=(z_top, p),
        bindings=[(z_top, TopKFilter(z, k_top)), (p, Softmax(z_top, "columns"))],
        outputs=(z_top, p),
        reference=Reference(SECTION, source="Fan, Lewis & Dauphin 2018; Radford et al. 2019", status="R"),
        constraints=(sp.Le(k_top, v),),
        invariants=(Invariant("top_k_keeps_k", {"logits": "z", "filtered": "z_top", "output": "p_top"}),),
        notes="Keep the k largest logits and renormalise: z̃_i = z_i if fewer than k logits are larger than "
        "z_i, else −∞, and p = softmax(z̃). Ties with the k-th largest logit are all kept (more than k "
        "tokens then survive), as the `scores < topk(scores, k)[..., -1]` filter does; with distinct "
        "logits exactly k survive. GPT-2 samples with k = 40.",
    )


register(chain_rule())
register(ngram()).add_variant(
    "unseen_zero",
    lambda: ngram("zero"),
    "a history never seen (c(h) = 0) gets a row of zeros instead of the uniform distribution (NLTK)",
)
register(one_hot())
register(embedding())
register(softmax())
register(cross_entropy()).add_variant(
    "mean_over_all",
    cross_entropy,
    "the mean divides by every position n, padding included (κᵀ ℓ / n): padding counted in the denominator",
    {"denominator": "all"},
)
register(perplexity())
register(temperature())
register(top_k())
