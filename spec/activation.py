"""Element-wise activation functions: ReLU, GELU (exact and tanh form), sigmoid and tanh.

Each equation applies one scalar function φ to every entry of ``X ∈ ℝ^{d_e×n}``: ``Y = φ(X)``. The formulas
are those of ``spec.ops_nn.POINTWISE`` (one source for the oracle, the generated code and the LaTeX):

- ``ReLU(x) = max(0, x)``;
- ``GELU(x) = x Φ(x) = (x/2)(1 + erf(x/√2))`` (Hendrycks & Gimpel 2016), BERT's φ;
- ``GELU_tanh(x) = (x/2)(1 + tanh(√(2/π)(x + 0.044715 x³)))``, the approximation GPT-2 uses;
- ``σ(x) = 1/(1 + e^{−x})`` (the tutorial's gates, ``m = σ(a)``) and ``tanh``.

The two GELU forms differ by up to about 4.8·10⁻⁴ (near |x| ≈ 2.7): each names the other as a variant, so that
an audit can say which one an implementation computes (``F.gelu(x)`` or ``F.gelu(x, approximate="tanh")``).
"""

from ._errors import SpecError
from .axes import d_e, n
from .equation import Equation, Invariant, Reference
from .ops_nn import POINTWISE, apply
from .registry import register
from .tensors import tensor

SECTION = "§4 Transformers: position-wise feed-forward network"

#: For each activation: title, reference, the identity it satisfies (see verify/properties/activation.py),
#: its range, and a notation note.
_FACTS = {
    "relu": (
        "ReLU",
        Reference(SECTION, source="Nair & Hinton 2010; Vaswani et al. 2017, eq. 2", status="R"),
        "difference_is_identity",
        (0.0, None),
        "ReLU(x) = max(0, x); the FFN activation of the original transformer. ReLU(x) − ReLU(−x) = x.",
    ),
    "gelu": (
        "GELU (exact, erf form)",
        Reference(SECTION, source="Hendrycks & Gimpel 2016; Devlin et al. 2019 (BERT)", status="R"),
        "difference_is_identity",
        (-0.171, None),
        "GELU(x) = x Φ(x) with Φ the standard normal CDF; BERT's activation (torch: F.gelu(x)). "
        "GELU(x) − GELU(−x) = x, and GELU(x) > −0.171 (its minimum is ≈ −0.16997 at x ≈ −0.752).",
    ),
    "gelu_tanh": (
        "GELU (tanh approximation)",
        Reference(SECTION, source="Hendrycks & Gimpel 2016; Radford et al. 2019 (GPT-2)", status="T"),
        "difference_is_identity",
        (-0.171, None),
        "0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³))); GPT-2's activation (torch: F.gelu(x, "
        "approximate='tanh'); Hugging Face 'gelu_new'). It is within 4.8·10⁻⁴ of the exact GELU (the "
        "largest gap is near x ≈ −2.7); its minimum is ≈ −0.17004.",
    ),
    "sigmoid": (
        "Logistic sigmoid",
        Reference("§3 Recurrent networks: gating", source="the tutorial's semi-binary mask m = σ(a)"),
        "sum_is_one",
        (0.0, 1.0),
        "σ(x) = 1/(1 + e^{−x}) ∈ (0, 1), and σ(x) + σ(−x) = 1.",
    ),
    "tanh": (
        "Hyperbolic tangent",
        Reference("§3 Recurrent networks", source="Elman 1990; Bengio et al. 2003", status="R"),
        "odd",
        (-1.0, 1.0),
        "tanh(x) = (e^x − e^{−x})/(e^x + e^{−x}) ∈ (−1, 1), odd; tanh(x) = 2σ(2x) − 1.",
    ),
}


def activation(name: str, form: str | None = None) -> Equation:
    """``Y = φ(X)`` for the activation ``name``, computed with the formula of ``form`` (default: itself)."""
    if name not in _FACTS or (form is not None and form not in _FACTS):
        known = ", ".join(_FACTS)
        raise SpecError(
            f"activation: unknown activation {form if name in _FACTS else name!r} (known: {known})"
        )
    title, reference, identity, (low, high), notes = _FACTS[name]
    form = form or name
    X = tensor("X", (d_e, n), meaning="pre-activations (any matrix; one column per token)")
    Y = tensor("Y", (d_e, n), meaning=f"{title} of every entry")
    return Equation(
        f"activation.{name}",
        title,
        inputs=(X,),
        intermediates=(Y,),
        bindings=[(Y, apply(form, X))],
        outputs=(Y,),
        reference=reference,
        invariants=(
            Invariant("activation_elementwise", {"input": "X", "output": "Y"}),
            Invariant("activation_identity", {"input": "X", "output": "Y", "identity": identity}),
            Invariant("activation_range", {"input": "X", "output": "Y", "low": low, "high": high}),
        ),
        notes=notes + f" Element-wise: {POINTWISE[form].definition or POINTWISE[form].tex}.",
    )


_EQUATIONS = {name: register(activation(name)) for name in _FACTS}
_EQUATIONS["gelu"].add_variant(
    "tanh_approximation",
    lambda: activation("gelu", "gelu_tanh"),
    "the tanh approximation 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))) in place of x Φ(x) (GPT-2, "
    "F.gelu(approximate='tanh'))",
)
_EQUATIONS["gelu_tanh"].add_variant(
    "erf",
    lambda: activation("gelu_tanh", "gelu"),
    "the exact x Φ(x) = (x/2)(1 + erf(x/√2)) in place of the tanh approximation (BERT, F.gelu)",
)
