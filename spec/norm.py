"""Layer normalisation of each column (token) of ``H ∈ ℝ^{d_e×n}``.

The tutorial's form has no ε: ``μ = (1/d_e) Σ_j h_j``, ``σ = √((1/d_e) Σ_j (h_j − μ)²)`` (the population
spread) and ``LN(h; α, β) = α ⊙ (h − μ1)/σ + β``. A constant column (σ = 0) normalises to 0, so its output is
β — the limit every ε > 0 gives (``spec.ops_nn.LayerNorm``).

Libraries divide by ``√(σ² + ε)`` with ε from the model's configuration (GPT-2 10⁻⁵, BERT 10⁻¹², ViT 10⁻⁶,
torch.nn.LayerNorm 10⁻⁵). The variant ``eps`` makes ε a scalar parameter of the equation, so one variant
covers every model and an implementation's own ε is bound to it (``layer_norm(..., eps: float)``). The
variant ``annotated_transformer`` is the form of The Annotated Transformer: the Bessel-corrected spread
(divisor d_e − 1) and ε added to σ outside the square root.
"""

import sympy as sp
from sympy.core.symbol import Str
from sympy.matrices.expressions.matexpr import MatrixExpr

from ._errors import SpecError
from .axes import d_e, n
from .equation import Equation, Invariant, Reference
from .ops import SpecOp
from .ops_nn import LayerNorm, Rsqrt0
from .registry import register
from .tensors import Kind, TensorSymbol, tensor

SECTION = "§4 Transformers: layer normalisation"
SOURCE = "Ba, Kiros & Hinton 2016"


def ln_params(suffix: str = "", meaning: str = "") -> tuple:
    """The scale α and shift β ∈ ℝ^{d_e} of one layer norm (``alpha_1``, ``\\alpha_{1}``, … with a suffix)."""
    tail = f"_{suffix}" if suffix else ""
    sub = f"_{{{suffix}}}" if suffix else ""
    of = f" of {meaning}" if meaning else ""
    alpha = tensor(f"alpha{tail}", (d_e,), tex=rf"\alpha{sub}", meaning=f"layer-norm scale{of}")
    beta = tensor(f"beta{tail}", (d_e,), tex=rf"\beta{sub}", meaning=f"layer-norm shift{of}")
    return alpha, beta


def eps_symbol() -> TensorSymbol:
    """ε > 0, the scalar parameter of the ``eps`` variants (ASCII ``eps``: ``layer_norm(..., eps=1e-5)``)."""
    return tensor(
        "eps",
        (),
        Kind.POSITIVE,
        tex=r"\varepsilon",
        meaning="added to the variance under the square root (GPT-2 1e-5, BERT 1e-12, ViT 1e-6)",
    )


class LayerNormEps(SpecOp):
    """``LN_ε(h; α, β) = α ⊙ (h − μ1)/√(s² + ε) + β`` with ε a scalar (1×1) operand.

    ``correction`` 0 is the population variance ``s² = (1/d) Σ (h_i − μ)²``, 1 the Bessel-corrected one
    (divisor d − 1); ``root`` "inside" divides by ``√(s² + ε)``, "outside" by ``√(s²) + ε`` (The Annotated
    Transformer). The tutorial's LN without ε is ``spec.ops_nn.LayerNorm``.
    """

    shares_subexpressions = False  # _explicit names the columns' statistics

    def __new__(
        cls, H: sp.Basic, alpha: sp.Basic, beta: sp.Basic, eps: sp.Basic, correction: int = 0, root="inside"
    ) -> "LayerNormEps":
        root = root if isinstance(root, Str) else Str(str(root))
        if root.name not in ("inside", "outside"):
            raise SpecError(f"LayerNormEps: root must be 'inside' or 'outside', found {root.name!r}")
        return MatrixExpr.__new__(cls, H, alpha, beta, eps, sp.Integer(correction), root)

    @property
    def matrix_args(self) -> tuple[sp.Basic, ...]:
        return self.args[:4]

    @property
    def correction(self) -> int:
        return int(self.args[4])

    @property
    def root(self) -> str:
        return self.args[5].name

    @property
    def shape(self):
        return self.args[0].shape

    @property
    def free_symbols(self) -> set:
        out: set = set()
        for a in self.args[:4]:
            out |= a.free_symbols
        return out

    def _check_shapes(self, checker) -> None:
        H, alpha, beta, eps = self.args[:4]
        for p in (alpha, beta):
            checker.require("layer norm", "features", H, H.shape[0], p, p.shape[0])
            checker.require("layer norm", "columns of a parameter", p, p.shape[1], p, sp.Integer(1))
        checker.require("layer norm", "rows of ε", eps, eps.shape[0], eps, sp.Integer(1))
        checker.require("layer norm", "columns of ε", eps, eps.shape[1], eps, sp.Integer(1))

    def _entry(self, i, j, **kwargs):
        H, alpha, beta, eps = self.args[:4]
        d = H.shape[0]
        if sp.sympify(d).is_Integer:
            col = [H[k, j] for k in range(int(d))]
            mu = sp.Add(*col) / d
            ss = sp.Add(*[(x - mu) ** 2 for x in col])
        else:
            k = sp.Dummy("k", integer=True)
            mu = sp.Sum(H[k, j], (k, 0, d - 1)) / d
            ss = sp.Sum((H[k, j] - mu) ** 2, (k, 0, d - 1))
        var = ss / (d - self.correction)
        spread = sp.sqrt(var + eps[0, 0]) if self.root == "inside" else sp.sqrt(var) + eps[0, 0]
        return alpha[i, 0] * (H[i, j] - mu) / spread + beta[i, 0]

    def _explicit(self, explicit):
        H, alpha, beta, eps = (explicit(a) for a in self.args[:4])
        mu, var = _column_statistics(H, explicit, self.correction)
        e = eps[0, 0]
        spread = [sp.sqrt(x + e) if self.root == "inside" else sp.sqrt(x) + e for x in var]
        inv = explicit(sp.ImmutableMatrix(1, var.cols, [1 / s for s in spread]))
        d, cols = H.shape
        return sp.ImmutableMatrix(
            d, cols, lambda i, j: alpha[i, 0] * (H[i, j] - mu[0, j]) * inv[0, j] + beta[i, 0]
        )

    def _latex(self, printer) -> str:
        H, alpha, beta, eps = (printer._print(a) for a in self.args[:4])
        name = (
            r"\operatorname{LN}"
            if self.correction == 0 and self.root == "inside"
            else r"\widetilde{\operatorname{LN}}"
        )
        return rf"{name}_{{{eps}}}\left({H}; {alpha}, {beta}\right)"

    def _latex_definition(self, printer) -> str:
        eps = printer._print(self.args[3])
        divisor = "d" if self.correction == 0 else "d - 1"
        var = rf"\frac{{1}}{{{divisor}}} \sum_{{i}} (h_{{i}} - \mu)^{{2}}"
        if self.root == "inside":
            return (
                rf"\operatorname{{LN}}_{{{eps}}}(h; \alpha, \beta) = \alpha \odot "
                rf"\frac{{h - \mu \mathbf{{1}}}}{{\sqrt{{s^{{2}} + {eps}}}}} + \beta, "
                rf"\quad \mu = \frac{{1}}{{d}} \sum_{{i}} h_{{i}}, \quad s^{{2}} = {var}"
            )
        return (
            rf"\widetilde{{\operatorname{{LN}}}}_{{{eps}}}(h; \alpha, \beta) = \alpha \odot "
            rf"\frac{{h - \mu \mathbf{{1}}}}{{s + {eps}}} + \beta, "
            rf"\quad \mu = \frac{{1}}{{d}} \sum_{{i}} h_{{i}}, \quad s^{{2}} = {var}"
        )

    def _torchcode(self, ctx) -> str:
        H, alpha, beta, eps = (ctx.emit(ctx.expr(a)) for a in self.args[:4])
        mu = ctx.emit(f"{H}.mean(dim=-2, keepdim=True)")
        ss = ctx.emit(f"(({H} - {mu}) ** 2).sum(dim=-2, keepdim=True)")
        var = ctx.emit(f"{ss} / ({H}.shape[-2] - {self.correction})")
        spread = f"torch.sqrt({var} + {eps})" if self.root == "inside" else f"(torch.sqrt({var}) + {eps})"
        return f"({alpha} * (({H} - {mu}) / {spread}) + {beta})"


def _column_statistics(H: sp.ImmutableMatrix, explicit, correction: int = 0):
    """Per column: the mean and the variance (divisor d − correction), each a 1 × n matrix named once by
    the oracle (``explicit`` materialises), so that the entries below refer to them instead of repeating
    the sums in every entry."""
    d, cols = H.shape
    mu = explicit(sp.ImmutableMatrix(1, cols, [sp.Add(*H[:, j]) / d for j in range(cols)]))
    var = explicit(
        sp.ImmutableMatrix(
            1,
            cols,
            [sp.Add(*[(H[k, j] - mu[0, j]) ** 2 for k in range(d)]) / (d - correction) for j in range(cols)],
        )
    )
    return mu, var


class TutorialLayerNorm(LayerNorm):
    """``spec.ops_nn.LayerNorm`` (the tutorial's LN, ε = 0, a constant column gives β) with the same meaning
    (its ``_entry``) and a cheaper expansion for the oracle: μ, σ² and 1/σ once per column rather than in
    every entry (5× faster at d_e = n = 7; the blocks use it twice each)."""

    shares_subexpressions = False  # _explicit names the columns' statistics

    def _explicit(self, explicit):
        H, alpha, beta = (explicit(a) for a in self.args[:3])
        mu, var = _column_statistics(H, explicit)
        if self.eps == 0:
            inv = explicit(sp.ImmutableMatrix(1, var.cols, [Rsqrt0(x) for x in var]))
        else:
            inv = explicit(sp.ImmutableMatrix(1, var.cols, [1 / sp.sqrt(x + self.eps) for x in var]))
        d, cols = H.shape
        return sp.ImmutableMatrix(
            d, cols, lambda i, j: alpha[i, 0] * (H[i, j] - mu[0, j]) * inv[0, j] + beta[i, 0]
        )


def normalise(H: sp.Basic, alpha: sp.Basic, beta: sp.Basic, eps: sp.Basic | None = None) -> sp.Basic:
    """``LN(H; α, β)``, the tutorial's (ε = 0) or with a scalar ε parameter: what the blocks use."""
    return TutorialLayerNorm(H, alpha, beta) if eps is None else LayerNormEps(H, alpha, beta, eps)


def layer_norm(form: str = "tutorial") -> Equation:
    """``Ĥ = LN(H; α, β)``; ``form`` is "tutorial" (ε = 0), "eps" or "annotated_transformer"."""
    if form not in ("tutorial", "eps", "annotated_transformer"):
        raise SpecError(
            f"norm.layer_norm: form must be 'tutorial', 'eps' or 'annotated_transformer', found {form!r}"
        )
    H = tensor("H", (d_e, n), meaning="hidden states, one column per token")
    alpha, beta = ln_params()
    H_hat = tensor("H_hat", (d_e, n), tex=r"\hat{H}", meaning="normalised states")
    params = [alpha, beta]
    if form == "tutorial":
        rhs = TutorialLayerNorm(H, alpha, beta)
        stats = {"input": "H", "output": "H_hat"}
    else:
        eps = eps_symbol()
        params.append(eps)
        if form == "eps":
            rhs = LayerNormEps(H, alpha, beta, eps)
        else:
            rhs = LayerNormEps(H, alpha, beta, eps, correction=1, root="outside")
        stats = {"input": "H", "output": "H_hat", "eps": "eps"}
    invariants = [Invariant("permutation_equivariance", {"tokens": {"H": 1}, "output_tokens": {"H_hat": 1}})]
    if form != "annotated_transformer":  # its statistics and scaling law differ: an audit tells them apart
        invariants += [
            Invariant("layer_norm_statistics", stats),
            Invariant("layer_norm_affine_invariance", stats),
        ]
    return Equation(
        "norm.layer_norm",
        "Layer normalisation",
        inputs=(H,),
        params=tuple(params),
        intermediates=(H_hat,),
        bindings=[(H_hat, rhs)],
        outputs=(H_hat,),
        reference=Reference(SECTION, source=SOURCE, status="T"),
        invariants=tuple(invariants),
        notes="Per column h (one token): μ = (1/d_e) Σ_j h_j, σ = √((1/d_e) Σ_j (h_j − μ)²) (population, no "
        "Bessel correction), LN(h) = α ⊙ (h − μ1)/σ + β. The tutorial writes no ε; a constant column "
        "gives β. "
        "Phuong & Hutter call α, β 'γ, β'; torch.nn.LayerNorm calls them weight and bias.",
    )


_LN = register(layer_norm())
_LN.add_variant(
    "eps",
    lambda: layer_norm("eps"),
    "divides by √(σ² + ε), ε > 0 a scalar parameter from the model's config (GPT-2 1e-5, BERT 1e-12, "
    "torch.nn.LayerNorm 1e-5)",
)
_LN.add_variant(
    "annotated_transformer",
    lambda: layer_norm("annotated_transformer"),
    "Bessel-corrected spread (divisor d_e − 1) and ε added outside the root, α ⊙ (h − μ)/(s + ε) + β "
    "(The Annotated Transformer's LayerNorm)",
)
