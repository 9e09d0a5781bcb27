"""Training: the maximum-likelihood objective, the softmax cross-entropy gradient, and the optimiser steps
(SGD, weight decay in its two forms, AdamW).

An optimiser acts entry by entry on a parameter tensor, written here as a vector ``θ ∈ ℝ^{d_θ}`` with its
gradient ``g = ∇_θ 𝓛`` (a parameter of any shape is its entries; in code the leading axes are batch axes).
Hyper-parameters are positive scalars: the learning rate ``η``, the decay ``λ``, Adam's ``ε`` and the step
count ``t`` (1 for the first step).

Adam's decay rates are **constants of the equation**, ``β₁ = 0.9`` and ``β₂ = 0.999`` (PyTorch's and the
paper's defaults), not drawn parameters: the verifier has no strategy for a number in (0, 1) yet, and a rate
of 1 or more makes the bias correction divide by zero or take the root of a negative number. ``adamw(beta1,
beta2)`` builds the equation for other rates; impl/ takes them as keyword arguments with these defaults.
"""

import sympy as sp
from sympy.core.symbol import Str
from sympy.matrices.expressions.matexpr import MatrixExpr

from .axes import GLOSSARY, v
from .equation import Equation, Invariant, Reference
from .lm import Neg, Ratio
from .ops import Ones, Softmax, SpecOp, T, add, mul
from .ops_nn import OneHot, Pick, Scaled, apply, had
from .registry import register
from .tensors import Kind, tensor

d_theta = GLOSSARY["d_theta"].symbol
n = GLOSSARY["n"].symbol

SECTION = "training"
BETA1, BETA2 = sp.Rational(9, 10), sp.Rational(999, 1000)


# --- operators of this family ---------------------------------------------------------------------
def _placeholders(count: int) -> list[sp.Symbol]:
    return [sp.Symbol(f"_a{k}", real=True) for k in range(count)]


class Formula(SpecOp):
    """A scalar formula applied entry by entry to its operands: ``θ − η g`` with θ, g vectors and η a
    scalar. Operands are matrices of one shape or 1×1 scalars (broadcast to every entry); in the formula
    operand k is the symbol ``_a{k}``. Build it with ``entrywise``."""

    prints_as_sum = True

    def __new__(cls, formula: sp.Expr, *operands: sp.Basic) -> "Formula":
        return MatrixExpr.__new__(cls, sp.sympify(formula), *operands)

    @property
    def formula(self) -> sp.Expr:
        return self.args[0]

    @property
    def operands(self) -> tuple[sp.Basic, ...]:
        return self.args[1:]

    @staticmethod
    def _scalar(X: sp.Basic) -> bool:
        return tuple(X.shape) == (1, 1)

    @property
    def shape(self):
        full = [X for X in self.operands if not self._scalar(X)]
        return full[0].shape if full else (sp.Integer(1), sp.Integer(1))

    @property
    def free_symbols(self) -> set:
        out: set = set()
        for X in self.operands:
            out |= X.free_symbols
        return out

    def _check_shapes(self, checker) -> None:
        rows, cols = self.shape
        for X in self.operands:
            if not self._scalar(X):
                checker.require("entry-wise formula", "rows", X, X.shape[0], X, rows)
                checker.require("entry-wise formula", "columns", X, X.shape[1], X, cols)

    def _entry(self, i, j, **kwargs):
        subs = {}
        for a, X in zip(_placeholders(len(self.operands)), self.operands, strict=True):
            subs[a] = X[0, 0] if self._scalar(X) else X[i, j]
        return self.formula.xreplace(subs)

    def _latex(self, printer) -> str:
        names = {}
        for a, X in zip(_placeholders(len(self.operands)), self.operands, strict=True):
            text = printer._print(X)
            names[a] = rf"\left({text}\right)" if isinstance(X, (sp.MatAdd, Neg)) else text
        return sp.latex(self.formula, symbol_names=names, order="none")

    def _latex_definition(self, printer) -> str:
        return r"\text{arithmetic, roots and powers act entry by entry; scalars multiply every entry}"

    def _torchcode(self, ctx) -> str:
        names = [ctx.emit(ctx.expr(X)) for X in self.operands]
        a = _placeholders(len(names))
        formula = self.formula.xreplace({a[k]: sp.Symbol(names[k], real=True) for k in range(1, len(names))})
        return ctx.pointwise(formula, a[0], names[0])


def entrywise(build, *operands: sp.Basic) -> Formula:
    """``entrywise(lambda θ, η, g: θ - η*g, theta, eta, g)``: the formula written on scalar stand-ins."""
    return Formula(build(*_placeholders(len(operands))), *operands)


def plus(*terms: sp.Expr) -> sp.Expr:
    """A sum in the order written (for the LaTeX; the value is the same)."""
    return sp.Add(*terms, evaluate=False)


def times(*factors: sp.Expr) -> sp.Expr:
    """A product in the order written."""
    return sp.Mul(*factors, evaluate=False)


class Constant(SpecOp):
    """A named constant, a 1×1 matrix printed by its name: ``β₁`` = 0.9."""

    def __new__(cls, value: sp.Expr, tex: str) -> "Constant":
        return MatrixExpr.__new__(cls, sp.sympify(value), tex if isinstance(tex, Str) else Str(tex))

    @property
    def value(self) -> sp.Expr:
        return self.args[0]

    @property
    def shape(self):
        return (sp.Integer(1), sp.Integer(1))

    @property
    def free_symbols(self) -> set:
        return set()

    def _entry(self, i, j, **kwargs):
        return self.value

    def _latex(self, printer) -> str:
        return self.args[1].name

    def _latex_definition(self, printer) -> str:
        return f"{self.args[1].name} = {sp.latex(self.value) if self.value.is_Integer else float(self.value)}"

    def _torchcode(self, ctx) -> str:
        return f"torch.full((1, 1), {float(self.value)!r}, dtype={ctx.dtype}, device={ctx.device})"


#: The operators of this module, for tests.
OPERATORS_TRAINING = (Formula, Constant)


# --- shared symbols -------------------------------------------------------------------------------
def _theta():
    return tensor("theta", (d_theta,), tex=r"\theta", meaning="parameter entries before the step")


def _grad():
    return tensor("g", (d_theta,), tex=r"g", meaning="gradient ∇_θ 𝓛 at θ")


def _eta():
    return tensor("eta", (), Kind.POSITIVE, tex=r"\eta", meaning="learning rate")


def _lam():
    return tensor("lambda", (), Kind.POSITIVE, tex=r"\lambda", ascii="lam", meaning="weight decay")


def _torch_step(optimizer: str, outputs: dict, hyper: dict, **more) -> Invariant:
    return Invariant(
        "torch_optimizer_step",
        {"optimizer": optimizer, "theta": "theta", "grad": "g", "hyper": hyper, "outputs": outputs, **more},
    )


# --- training.mle ---------------------------------------------------------------------------------
def mle() -> Equation:
    Y_hat = tensor(
        "Y_hat",
        (v, n),
        Kind.PROBABILITY,
        tex=r"\hat{Y}",
        meaning="model distributions; column i is P_θ(· | w_<i)",
    )
    k = tensor("k", (n,), Kind.INDEX, meaning="the corpus's tokens")
    keep = tensor("keep", (n,), Kind.MASK, tex=r"\kappa", meaning="1 for a predicted token, 0 otherwise")
    p = tensor("p", (n,), meaning="p_i = P_θ(w_i | w_<i), the probability of each observed token")
    log_lik = tensor("log_lik", (), tex=r"\log P_{\theta}(\mathcal{D})", meaning="log-likelihood")
    loss = tensor("loss", (), tex=r"\mathcal{L}(\theta)", meaning="average negative log-likelihood")
    return Equation(
        "training.mle",
        "Maximum likelihood: average negative log-likelihood",
        inputs=(Y_hat, k, keep),
        intermediates=(p, log_lik, loss),
        bindings=[
            (p, Pick(Y_hat, k)),
            (log_lik, mul(T(keep), apply("log", p))),
            (loss, Neg(Ratio(log_lik, mul(T(Ones(n)), keep)))),
        ],
        outputs=(log_lik, loss),
        reference=Reference(SECTION, source="Goodfellow, Bengio & Courville 2016, §5.5", status="R"),
        invariants=(
            Invariant(
                "mle_empirical_minimum", {"probs": "Y_hat", "tokens": "k", "keep": "keep", "output": "loss"}
            ),
            Invariant(
                "ignores_padding", {"keep": "keep", "tokens": {"Y_hat": 1, "k": 0}, "outputs": ["loss"]}
            ),
        ),
        notes="θ̂ = argmax_θ log P_θ(𝒟) = argmin_θ 𝓛(θ), 𝓛(θ) = −(1/N) Σ_{i predicted} log P_θ(w_i | w_<i), "
        "N = 1_nᵀ κ the number of predicted tokens (NaN when N = 0). The corpus is the n tokens (sequences "
        "concatenated, κ = 0 where nothing is predicted: padding, the first token of a sequence). With "
        "Ŷ = softmax_col(Z) it is lm.cross_entropy's mean; among models that predict one distribution q at "
        "every position it is minimised by the empirical frequencies of the predicted tokens.",
    )


# --- training.softmax_ce_grad ---------------------------------------------------------------------
def softmax_ce_grad() -> Equation:
    Z = tensor("Z", (v, n), meaning="logits; column i scores the vocabulary for position i")
    k = tensor("k", (n,), Kind.INDEX, meaning="target token ids")
    Y_hat = tensor("Y_hat", (v, n), Kind.PROBABILITY, tex=r"\hat{Y}", meaning="predicted distributions")
    Omega = tensor("Omega", (v, n), Kind.ONE_HOT, tex=r"\Omega", meaning="one-hot targets")
    loss = tensor("loss", (), tex=r"\mathcal{L}", meaning="summed cross-entropy Σ_i −log Ŷ_{k_i, i}")
    G = tensor("G", (v, n), tex=r"\frac{\partial \mathcal{L}}{\partial Z}", meaning="gradient of 𝓛 in Z")
    return Equation(
        "training.softmax_ce_grad",
        "Gradient of softmax cross-entropy",
        inputs=(Z, k),
        intermediates=(Y_hat, Omega, loss, G),
        bindings=[
            (Y_hat, Softmax(Z, "columns")),
            (Omega, OneHot(k, v)),
            (loss, Neg(mul(T(Ones(v)), had(Omega, apply("log", Y_hat)), Ones(n)))),
            (G, add(Y_hat, Neg(Omega))),
        ],
        outputs=(loss, G),
        reference=Reference(
            SECTION, source="Bishop 2006, §4.3.4; Goodfellow et al. 2016, §6.2.2.3", status="R"
        ),
        invariants=(
            Invariant("ce_grad_autograd", {"logits": "Z", "tokens": "k", "output": "G"}),
            Invariant("ce_grad_sums_to_zero", {"tokens": "k", "loss": "loss", "output": "G"}),
        ),
        notes="For one position 𝓛 = −ωᵀ log softmax(z) = −z_k + log Σ_j e^{z_j}, so ∂𝓛/∂z_j = "
        "softmax(z)_j − [j = k]: ∂𝓛/∂z = ŷ − ω. Summed over the positions (𝓛 = Σ_i −ω_iᵀ log ŷ_i, "
        "written 1_vᵀ(Ω ⊙ log Ŷ)1_n) column i of the gradient is ŷ_i − ω_i: ∂𝓛/∂Z = Ŷ − Ω. Each column "
        "sums to 0 and only its target entry is negative; for the mean over N positions divide by N.",
    )


# --- training.sgd ---------------------------------------------------------------------------------
def sgd() -> Equation:
    theta, g, eta = _theta(), _grad(), _eta()
    theta_next = tensor("theta_next", (d_theta,), tex=r"\theta'", meaning="parameter entries after the step")
    return Equation(
        "training.sgd",
        "Stochastic gradient descent step",
        inputs=(theta, g),
        params=(eta,),
        intermediates=(theta_next,),
        bindings=[(theta_next, add(theta, Neg(Scaled(g, eta))))],
        outputs=(theta_next,),
        reference=Reference(SECTION, source="Robbins & Monro 1951", status="R"),
        invariants=(_torch_step("SGD", {"theta_next": "param"}, {"lr": "eta"}),),
        notes="θ ← θ − η ∇_θ 𝓛, the gradient of a mini-batch's loss (torch.optim.SGD without momentum).",
    )


# --- training.weight_decay ------------------------------------------------------------------------
def weight_decay() -> Equation:
    theta, g, eta, lam = _theta(), _grad(), _eta(), _lam()
    penalty = tensor(
        "penalty", (), tex=r"R_{\lambda}(\theta)", meaning="L2 penalty (λ/2)‖θ‖² added to the loss"
    )
    g_l2 = tensor("g_l2", (d_theta,), tex=r"g_{\lambda}", meaning="gradient of the penalised loss")
    theta_l2 = tensor("theta_l2", (d_theta,), tex=r"\theta'_{L_2}", meaning="SGD step on the penalised loss")
    theta_dec = tensor(
        "theta_dec", (d_theta,), tex=r"\theta'_{\mathrm{dec}}", meaning="SGD with decoupled decay"
    )
    return Equation(
        "training.weight_decay",
        "Weight decay: L2 penalty and decoupled decay",
        inputs=(theta, g),
        params=(eta, lam),
        intermediates=(penalty, g_l2, theta_l2, theta_dec),
        bindings=[
            (penalty, entrywise(lambda lm, sq: times(lm / 2, sq), lam, mul(T(theta), theta))),
            (g_l2, entrywise(lambda gr, lm, th: plus(gr, times(lm, th)), g, lam, theta)),
            (theta_l2, entrywise(lambda th, et, gl: plus(th, -times(et, gl)), theta, eta, g_l2)),
            (
                theta_dec,
                entrywise(
                    lambda th, et, lm, gr: plus(times(plus(1, -times(et, lm)), th), -times(et, gr)),
                    theta,
                    eta,
                    lam,
                    g,
                ),
            ),
        ],
        outputs=(penalty, g_l2, theta_l2, theta_dec),
        reference=Reference(SECTION, source="Krogh & Hertz 1992; Loshchilov & Hutter 2019", status="R"),
        invariants=(
            _torch_step("SGD", {"theta_l2": "param"}, {"lr": "eta", "weight_decay": "lam"}),
            Invariant("l2_equals_decoupled_for_sgd", {"l2": "theta_l2", "decoupled": "theta_dec"}),
            Invariant(
                "l2_penalty_gradient", {"theta": "theta", "grad": "g", "penalty": "penalty", "output": "g_l2"}
            ),
        ),
        notes="Two forms. L2 penalty: 𝓛_λ = 𝓛 + R_λ(θ), R_λ(θ) = (λ/2)‖θ‖² = (λ/2)θᵀθ, whose gradient is "
        "g + λθ, and an SGD step on it: θ − η(g + λθ) (torch.optim.SGD(weight_decay=λ)). Decoupled decay: "
        "shrink θ apart from the gradient step, θ ← (1 − ηλ)θ − ηg (Loshchilov & Hutter; AdamW). For plain "
        "SGD the two are the same update; with an adaptive method (Adam) they differ: training.adamw and "
        "its variant l2_coupled. The penalty's factor is λ/2 so that its gradient is λθ.",
    )


# --- training.adamw -------------------------------------------------------------------------------
#: The forms ``adamw`` builds: the tutorial's (torch.optim.AdamW) and its variants.
ADAMW_FORMS = ("decoupled", "l2_coupled", "transformers_legacy")


def adamw(beta1: sp.Expr = BETA1, beta2: sp.Expr = BETA2, form: str = "decoupled") -> Equation:
    if form not in ADAMW_FORMS:
        raise ValueError(f"training.adamw: unknown form {form!r} (expected one of {', '.join(ADAMW_FORMS)})")
    theta, g, eta, lam = _theta(), _grad(), _eta(), _lam()
    m = tensor("m", (d_theta,), tex=r"m_{t-1}", meaning="first moment before the step")
    s = tensor("s", (d_theta,), Kind.POSITIVE, tex=r"v_{t-1}", meaning="second moment before the step")
    eps = tensor("epsilon", (), Kind.POSITIVE, tex=r"\epsilon", ascii="eps", meaning="added to √v̂")
    t = tensor("t", (), Kind.POSITIVE, tex=r"t", meaning="step count, 1 at the first step")
    g_used = tensor("g_l2", (d_theta,), tex=r"g_{\lambda}", meaning="gradient with the L2 term λθ")
    m_next = tensor("m_next", (d_theta,), tex=r"m_{t}", meaning="first moment after the step")
    s_next = tensor("s_next", (d_theta,), tex=r"v_{t}", meaning="second moment after the step")
    m_hat = tensor("m_hat", (d_theta,), tex=r"\hat{m}_{t}", meaning="bias-corrected first moment")
    s_hat = tensor("s_hat", (d_theta,), tex=r"\hat{v}_{t}", meaning="bias-corrected second moment")
    theta_next = tensor(
        "theta_next", (d_theta,), tex=r"\theta_{t}", meaning="parameter entries after the step"
    )
    b1, b2 = Constant(beta1, r"\beta_{1}"), Constant(beta2, r"\beta_{2}")

    bindings = []
    grad = g
    if form == "l2_coupled":
        bindings.append((g_used, entrywise(lambda gr, lm, th: plus(gr, times(lm, th)), g, lam, theta)))
        grad = g_used
    bindings += [
        (m_next, entrywise(lambda b, mm, gr: plus(times(b, mm), times(plus(1, -b), gr)), b1, m, grad)),
        (s_next, entrywise(lambda b, ss, gr: plus(times(b, ss), times(plus(1, -b), gr**2)), b2, s, grad)),
        (m_hat, entrywise(lambda mm, b, tt: mm / plus(1, -(b**tt)), m_next, b1, t)),
        (s_hat, entrywise(lambda ss, b, tt: ss / plus(1, -(b**tt)), s_next, b2, t)),
    ]
    if form == "decoupled":
        update = entrywise(
            lambda th, et, mh, sh, ep, lm: plus(
                th, -times(et, plus(mh / plus(sp.sqrt(sh), ep), times(lm, th)))
            ),
            theta,
            eta,
            m_hat,
            s_hat,
            eps,
            lam,
        )
    elif form == "l2_coupled":
        update = entrywise(
            lambda th, et, mh, sh, ep: plus(th, -times(et, mh / plus(sp.sqrt(sh), ep))),
            theta,
            eta,
            m_hat,
            s_hat,
            eps,
        )
    else:  # transformers_legacy: ε outside the bias correction, decay applied to the updated entries
        update = entrywise(
            lambda th, et, mm, ss, ep, lm, b_1, b_2, tt: times(
                plus(1, -times(et, lm)),
                plus(
                    th,
                    -times(
                        et, sp.sqrt(plus(1, -(b_2**tt))) / plus(1, -(b_1**tt)), mm / plus(sp.sqrt(ss), ep)
                    ),
                ),
            ),
            theta,
            eta,
            m_next,
            s_next,
            eps,
            lam,
            b1,
            b2,
            t,
        )
    bindings.append((theta_next, update))
    intermediates = [m_next, s_next, m_hat, s_hat, theta_next]
    if form == "l2_coupled":
        intermediates.insert(0, g_used)
    if form == "transformers_legacy":
        bindings = [b for b in bindings if b[0] not in (m_hat, s_hat)]
        intermediates = [m_next, s_next, theta_next]
    # The invariants of each form: torch's own step where torch has the form (AdamW decoupled, Adam's
    # weight_decay coupled), the decay alone at zero gradient and moments where the decay is decoupled
    # (transformers_legacy too: with m_t = v_t = 0 its update is (1 − ηλ)θ).
    torch_step = _torch_step(
        "Adam" if form == "l2_coupled" else "AdamW",
        {"theta_next": "param", "m_next": "exp_avg", "s_next": "exp_avg_sq"},
        {"lr": "eta", "weight_decay": "lam", "eps": "eps"},
        fixed={"betas": [float(beta1), float(beta2)]},
        state={"exp_avg": "m", "exp_avg_sq": "s"},
        step="t",
    )
    decoupled = Invariant(
        "decoupled_decay",
        {
            "theta": "theta",
            "grad": "g",
            "moments": ["m", "s"],
            "lr": "eta",
            "decay": "lam",
            "output": "theta_next",
        },
    )
    invariants = {
        "decoupled": (torch_step, decoupled),
        "l2_coupled": (torch_step,),
        "transformers_legacy": (decoupled,),
    }[form]
    return Equation(
        "training.adamw",
        "AdamW step",
        inputs=(theta, g, m, s),
        params=(eta, lam, eps, t),
        intermediates=intermediates,
        bindings=bindings,
        outputs=(theta_next, m_next, s_next),
        reference=Reference(
            SECTION, source="Kingma & Ba 2015, Algorithm 1; Loshchilov & Hutter 2019, Algorithm 2", status="R"
        ),
        invariants=invariants,
        notes="m_t = β₁ m_{t−1} + (1 − β₁) g, v_t = β₂ v_{t−1} + (1 − β₂) g² (entry by entry), bias "
        "correction m̂ = m_t/(1 − β₁^t), v̂ = v_t/(1 − β₂^t), and θ_t = θ_{t−1} − η(m̂/(√v̂ + ε) + λθ_{t−1}): "
        "the decay is decoupled from the adaptive scaling (torch.optim.AdamW). β₁ = 0.9, β₂ = 0.999 are "
        "constants of the equation (see the module docstring); the second moment is called s in code (v "
        "is the vocabulary axis). Moments start at 0 with t = 1 at the first step.",
    )


register(mle())
register(softmax_ce_grad())
register(sgd())
register(weight_decay())
_adamw = register(adamw())
_adamw.add_variant(
    "l2_coupled",
    lambda: adamw(form="l2_coupled"),
    "Adam with an L2 penalty: λθ is added to the gradient before the moments "
    "(torch.optim.Adam(weight_decay=λ))",
)
_adamw.add_variant(
    "transformers_legacy",
    lambda: adamw(form="transformers_legacy"),
    "transformers.AdamW (removed in v4.x): ε added to √v_t before the bias correction, and the decay "
    "applied after the update, to the updated entries",
)
