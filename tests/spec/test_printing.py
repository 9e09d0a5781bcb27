"""Printing of the spec: LaTeX, MathML and Unicode for every operator and every equation of the catalogue,
golden LaTeX for the key equations, and the Equation printing API (spaces, notebooks)."""

import re
import time
import xml.etree.ElementTree as ET

import pytest
import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr

from lmspec import spec
from lmspec.spec.ops import SpecOp
from lmspec.spec.printing.latex import SpecLatexPrinter, TexSyntaxError, parse_tex
from lmspec.spec.printing.mathml import MATHML_NS, mathml, tex_to_mathml
from lmspec.spec.printing.unicode import size_unicode, tex_to_unicode, unicode

M = f"{{{MATHML_NS}}}"


def _catalogue() -> list:
    """Every equation and every named variant."""
    out = []
    for eq in spec.all():
        out.append(eq)
        out.extend(eq.variants().values())
    return out


CATALOGUE = _catalogue()


def _defined_in_spec(cls: type) -> bool:
    return cls.__module__.startswith("lmspec.spec.")


def _subclasses(cls: type) -> set[type]:
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub} | _subclasses(sub)
    return out


def _custom_nodes() -> dict[type, list[tuple[sp.Basic, dict]]]:
    """The classes of spec/ (operators, families, custom functions) found by walking the definitions of
    every equation and variant, each with the nodes where it occurs and that equation's declared names."""
    found: dict[type, list] = {}
    for eq in CATALOGUE:
        names = eq.tex_names()
        for b in eq.bindings:
            for tree in (b.lhs, b.rhs):
                for node in sp.preorder_traversal(tree):
                    custom = isinstance(node, (MatrixExpr, sp.Function)) or isinstance(
                        getattr(node, "func", None), sp.FunctionClass
                    )
                    if custom and _defined_in_spec(type(node)):
                        found.setdefault(type(node), []).append((node, names))
    return found


def _with_bases(found: dict[type, list]) -> dict[type, list]:
    """Add the operators that equations use only through a subclass (spec.ops_nn.LayerNorm through
    norm.TutorialLayerNorm), built from the subclass's arguments."""
    for cls in sorted(_subclasses(SpecOp), key=lambda c: c.__name__):
        if cls in found or not _defined_in_spec(cls):
            continue
        for sub in [c for c in found if issubclass(c, cls)]:
            found[cls] = [(cls(*node.args), names) for node, names in found[sub]]
            break
    return found


NODES = _with_bases(_custom_nodes())


def _normalise(tex: str) -> str:
    return re.sub(r"\s+", " ", tex).strip()


def _xml(text: str) -> ET.Element:
    return ET.fromstring(text)


# --- every operator prints in the three formats --------------------------------------------------------
def test_the_walk_finds_every_operator_defined_in_spec():
    defined = {c for c in _subclasses(SpecOp) if _defined_in_spec(c)}
    found = {c for c in NODES if issubclass(c, SpecOp)}
    assert len(defined) >= 40
    missing = sorted(c.__name__ for c in defined - found)
    assert missing == [], f"operators no equation uses: {missing}"


def _class_id(cls: type) -> str:
    return f"{cls.__module__.removeprefix('lmspec.spec.')}.{cls.__name__}"


@pytest.mark.parametrize("cls", sorted(NODES, key=_class_id), ids=_class_id)
def test_every_operator_prints_in_latex_mathml_and_unicode(cls):
    for node, names in NODES[cls][:6]:
        name = cls.__name__
        tex = SpecLatexPrinter(names).doprint(node)
        assert tex and name not in tex and "Dummy" not in tex, tex
        parse_tex(tex)  # the LaTeX is in the subset the other printers read

        xml = mathml(node, names, display="block")
        root = _xml(xml)
        assert root.tag == f"{M}math" and len(root) == 1
        assert name not in xml and "\\" not in xml, xml
        texts = [e.text for e in root.iter() if e.text]
        assert texts, xml  # something is shown

        text = unicode(node, names)
        assert text and name not in text, text
        assert "**" not in text and "··" not in text and "\\" not in text, text


def test_an_operator_without_notation_is_an_error_not_a_generic_fallback():
    class Bare(SpecOp):
        @property
        def shape(self):
            return self.args[0].shape

    X = sp.MatrixSymbol("X", 2, 3)
    with pytest.raises(AttributeError):
        mathml(Bare(X))
    with pytest.raises(AttributeError):
        unicode(Bare(X))


def test_an_operator_that_prints_as_a_sum_is_parenthesised_by_declaring_it():
    """A new operator tells the printers how it reads (``prints_as_sum``); no printer imports it."""

    class Minus(SpecOp):
        prints_as_sum = True

        @property
        def shape(self):
            return self.args[0].shape

        def _latex(self, printer):
            return f"{printer._print(self.args[0])} - {printer._print(self.args[1])}"

    class Plain(Minus):
        prints_as_sum = False

    W, A, B = (sp.MatrixSymbol(k, 2, 2) for k in "WAB")
    assert SpecLatexPrinter().doprint(sp.MatMul(W, Minus(A, B), evaluate=False)) == r"W \left(A - B\right)"
    assert SpecLatexPrinter().doprint(sp.MatMul(W, Plain(A, B), evaluate=False)) == "W A - B"
    assert SpecLatexPrinter().doprint(sp.HadamardProduct(Minus(A, B), W)) == r"\left(A - B\right) \odot W"
    assert unicode(sp.MatMul(W, Minus(A, B), evaluate=False)) == "W (A − B)"
    assert unicode(sp.MatMul(W, Plain(A, B), evaluate=False)) == "W A − B"
    xml = mathml(sp.MatMul(W, Minus(A, B), evaluate=False))
    assert xml.count('fence="true"') == 2, xml


# --- golden LaTeX of the key equations -----------------------------------------------------------------
# Each golden below was written by hand from the tutorial's math (Saleh & Paquelet 2024, and the sources the
# catalogue cites: Vaswani et al. 2017 for attention, the position-wise FFN (37) and the sinusoidal table, Ba
# et al. 2016 for layer norm, Hendrycks & Gimpel 2016 for GELU, Hochreiter & Schmidhuber / torch.nn.LSTMCell
# for the LSTM step), in the notation of the tutorial: features × tokens, attention in row form, families
# W^{(m)}, ⊤ for transposes, \mathbf{1}_n for the ones vector. They are not copied from the printer's output:
# a difference is a printer bug to fix, not a golden to update.
GOLDEN = {
    "attention.scaled_dot_product": (
        r"P = \operatorname{softmax}\left(\frac{Q K^{\top}}{\sqrt{d_{k}}} + S\right) V",
        [
            r"\left[\operatorname{softmax}(Z)\right]_{ij} = \frac{e^{Z_{ij}}}{\sum_{j'} e^{Z_{ij'}}} "
            r"\quad (0 \text{ if every } Z_{ij'} = -\infty)"
        ],
    ),
    "attention.multi_head": (
        r"""\begin{aligned}
        Q^{(m)} &= H^{\top} W_{Q}^{(m)} + \mathbf{1}_{n} {b_{Q}^{(m)}}^{\top} \\
        K^{(m)} &= H^{\top} W_{K}^{(m)} + \mathbf{1}_{n} {b_{K}^{(m)}}^{\top} \\
        V^{(m)} &= H^{\top} W_{V}^{(m)} + \mathbf{1}_{n} {b_{V}^{(m)}}^{\top} \\
        P^{(m)} &= \operatorname{softmax}\left(\frac{Q^{(m)} {K^{(m)}}^{\top}}{\sqrt{d_{k}}}
            + S\right) V^{(m)} \\
        P &= \left[P^{(1)}, \ldots, P^{(M)}\right] \\
        A &= \left(P W_{O}\right)^{\top} + b_{O} \mathbf{1}_{n}^{\top}
        \end{aligned}""",
        None,
    ),
    "norm.layer_norm": (
        r"\hat{H} = \operatorname{LN}\left(H; \alpha, \beta\right)",
        [
            r"\operatorname{LN}(h; \alpha, \beta) = \alpha \odot \frac{h - \mu \mathbf{1}}{\sigma} + \beta, "
            r"\quad \mu = \frac{1}{d} \sum_{i} h_{i}, "
            r"\quad \sigma = \sqrt{\frac{1}{d} \sum_{i} (h_{i} - \mu)^{2}}"
        ],
    ),
    "transformer.ffn": (
        r"D = W_{2} \operatorname{GELU}_{\tanh}\left(W_{1} C + b_{1} \mathbf{1}_{n}^{\top}\right)"
        r" + b_{2} \mathbf{1}_{n}^{\top}",
        None,
    ),
    "activation.gelu_tanh": (
        r"Y = \operatorname{GELU}_{\tanh}\left(X\right)",
        [
            r"\operatorname{GELU}_{\tanh}(x) = \frac{x}{2}\left(1 + \tanh\left(\sqrt{2/\pi}\,"
            r"(x + 0.044715\,x^{3})\right)\right)"
        ],
    ),
    "positional.sinusoidal": (
        r"\Lambda = \operatorname{PE}_{d_{e} \times n_{\max}}",
        [
            r"\operatorname{PE}_{2i,t} = \sin\left(t / 10000^{2i/d_{e}}\right), \quad "
            r"\operatorname{PE}_{2i+1,t} = \cos\left(t / 10000^{2i/d_{e}}\right) \quad (i, t \text{ from } 0)"
        ],
    ),
    "lm.cross_entropy": (
        r"""\begin{aligned}
        \hat{Y} &= \operatorname{softmax}_{\mathrm{col}}\left(Z\right) \\
        \ell &= -\log\left(\left[\hat{Y}_{k_{i}, i}\right]_{i}\right) \\
        \mathcal{L}_{\mathrm{sum}} &= \kappa^{\top} \ell \\
        \mathcal{L} &= \frac{\mathcal{L}_{\mathrm{sum}}}{\mathbf{1}_{n}^{\top} \kappa}
        \end{aligned}""",
        None,
    ),
    "lstm.cell": (r"c_{t} = f_{t} \odot c_{t - 1} + i_{t} \odot \tilde{c}_{t}", []),
    "lstm.hidden": (
        r"""\begin{aligned}
        f_{t} &= \sigma\left(W_{f} x_{t} + U_{f} h_{t - 1} + b_{f}\right) \\
        i_{t} &= \sigma\left(W_{i} x_{t} + U_{i} h_{t - 1} + b_{i}\right) \\
        o_{t} &= \sigma\left(W_{o} x_{t} + U_{o} h_{t - 1} + b_{o}\right) \\
        \tilde{c}_{t} &= \tanh\left(W_{c} x_{t} + U_{c} h_{t - 1} + b_{c}\right) \\
        c_{t} &= f_{t} \odot c_{t - 1} + i_{t} \odot \tilde{c}_{t} \\
        h_{t} &= o_{t} \odot \tanh\left(c_{t}\right)
        \end{aligned}""",
        [r"\sigma(x) = \frac{1}{1 + e^{-x}}"],
    ),
}


@pytest.mark.parametrize("eq_id", list(GOLDEN))
def test_golden_latex_of_the_key_equations(eq_id):
    eq = spec.get(eq_id)
    golden, where = GOLDEN[eq_id]
    assert _normalise(eq.latex()) == _normalise(golden)
    if where is not None:
        assert [_normalise(w) for w in eq.where_latex()] == [_normalise(w) for w in where]


def test_golden_unicode_of_multi_head_attention():
    # written from equation (28), as the terminal shows it
    assert spec.get("attention.multi_head").unicode_lines() == [
        "Q⁽ᵐ⁾ = Hᵀ W_Q⁽ᵐ⁾ + 𝟏_n b_Q⁽ᵐ⁾ᵀ",
        "K⁽ᵐ⁾ = Hᵀ W_K⁽ᵐ⁾ + 𝟏_n b_K⁽ᵐ⁾ᵀ",
        "V⁽ᵐ⁾ = Hᵀ W_V⁽ᵐ⁾ + 𝟏_n b_V⁽ᵐ⁾ᵀ",
        "P⁽ᵐ⁾ = softmax(Q⁽ᵐ⁾ K⁽ᵐ⁾ᵀ / √d_k + S) V⁽ᵐ⁾",
        "P = [P⁽¹⁾, …, P⁽ᴹ⁾]",
        "A = (P W_O)ᵀ + b_O 𝟏_nᵀ",
    ]
    assert spec.get("lstm.cell").unicode() == "c_t = f_t ⊙ c_(t−1) + i_t ⊙ c̃_t"
    assert spec.get("norm.layer_norm").where_unicode() == [
        "LN(h; α, β) = α ⊙ (h − μ 𝟏)/σ + β,  μ = 1/d ∑_i h_i,  σ = √(1/d ∑_i (h_i − μ)²)"
    ]
    assert spec.get("activation.gelu_tanh").where_unicode() == [
        "GELU_tanh(x) = x/2 (1 + tanh(√(2/π) (x + 0.044715 x³)))"
    ]


def test_golden_mathml_of_scaled_dot_product_attention():
    root = _xml(spec.get("attention.scaled_dot_product").mathml())
    assert root.tag == f"{M}math" and root.get("display") == "block"
    # softmax(Q Kᵀ / √d_k + S) V: a fraction over a root of d_k, a transpose as ⊤, the name upright
    frac = next(root.iter(f"{M}mfrac"))
    num, den = list(frac)
    assert [e.text for e in num.iter() if e.text] == ["Q", "\u2062", "K", "⊤"]
    assert den.tag == f"{M}msqrt" and [e.text for e in den.iter() if e.text] == ["d", "k"]
    assert [e.text for e in root.iter(f"{M}mi")][:2] == ["P", "softmax"]


# --- every equation in every format ----------------------------------------------------------------------
def _output_member(eq, d):
    return d[d.indices] if isinstance(d, spec.Family) else d


@pytest.mark.parametrize("eq", CATALOGUE, ids=lambda e: e.id)
def test_every_equation_prints_in_mathml_and_unicode(eq):
    names = eq.tex_names()
    xml = eq.mathml()
    root = _xml(xml)
    assert root.tag == f"{M}math" and root.get("display") == "block"
    assert xml.startswith(f'<math xmlns="{MATHML_NS}" display="block">')
    if len(eq.bindings) > 1:
        table = root[0]
        assert table.tag == f"{M}mtable" and len(table) == len(eq.bindings)
    for out in eq.outputs:
        assert mathml(_output_member(eq, out), names) in xml, out.name
    for item in eq.where_mathml():
        assert _xml(item).tag == f"{M}math"
    assert len(eq.where_mathml()) == len(eq.where_latex()) == len(eq.where_unicode())

    lines = eq.unicode_lines()
    assert len(lines) == len(eq.bindings) and eq.unicode() == "\n".join(lines)
    text = "\n".join([*lines, *eq.where_unicode(), *eq.constraints_unicode(), *map(eq.space, eq.symbols)])
    for bad in ("**", "··", "\\", "Dummy", "_{", "^{"):
        assert bad not in text, (bad, text)
    for out in eq.outputs:
        assert unicode(_output_member(eq, out), names) in text, out.name

    for d in eq.symbols:
        space = eq.space_latex(d)
        parse_tex(space)
        assert _xml(eq.space_mathml(d)).get("display") == "inline"


# --- spaces and the display bugs of `lmspec show` -----------------------------------------------------
def test_spaces_use_the_glossary_notation():
    eq = spec.get("attention.multi_head")
    W_Q = eq.declared("W_Q")
    assert eq.space(W_Q) == "W_Q^(m) ∈ ℝ^(d_e×d_k), m = 1..M"
    assert eq.space(eq.declared("W_O")) == "W_O ∈ ℝ^(M·d_v×d_e)"
    assert eq.space_latex(W_Q) == (r"W_{Q}^{(m)} \in \mathbb{R}^{d_{e} \times d_{k}}, \quad m = 1, \ldots, M")
    assert eq.space_latex(eq.declared("S")) == r"S \in {\{0,-\infty\}}^{n \times n}"
    vit = spec.get("vit.patchify")
    assert vit.space(vit.declared("X")) == "X^(k) ∈ ℝ^(H_img×W_img), k = 1..C"  # not H_i, C_i
    assert "d_p = C·P²" in vit.constraints_unicode()  # not C_i·P··2
    ts = spec.get("timeseries.patching")
    assert ts.space(ts.declared("X_pad")) == "X_pad ∈ ℝ^(m×(L_in + S))"
    assert ts.space_latex(ts.declared("X_pad")) == (
        r"\tilde{X} \in \mathbb{R}^{m \times \left(L_{\mathrm{in}} + S\right)}"
    )
    pos = spec.get("positional.sinusoidal")
    assert pos.space(pos.declared("Lambda")) == "Lambda ∈ ℝ^(d_e×n_max)"
    adam = spec.get("training.adamw")
    assert adam.space(adam.declared("eta")) == "eta ∈ ℝ₊"
    assert adam.space_latex(adam.declared("eta")) == r"\eta \in \mathbb{R}_{>0}"
    lstm = spec.get("lstm.hidden[sequence]")
    assert lstm.space_latex(lstm.declared("s")) == (
        r"\begin{bmatrix} h_{t} \\ c_{t} \end{bmatrix} \in \mathbb{R}^{2 d_{h}}, \quad t = 0, \ldots, n"
    )


def test_sizes_and_relations_in_unicode():
    P, C_i, d_e, M, d_k = (spec.GLOSSARY[a].symbol for a in ("P", "C_i", "d_e", "M", "d_k"))
    assert size_unicode(P**2 * C_i) == "C·P²"
    assert size_unicode(M * d_k) == "M·d_k"
    assert spec.get("attention.multi_head").constraints_unicode() == []
    assert size_unicode(sp.Eq(d_e, M * d_k).rhs) == "M·d_k"


def test_latex_uses_the_glossary_names_of_the_axes():
    assert r"n_{\max}" in spec.get("positional.sinusoidal").latex()
    ts = spec.get("timeseries.patching").latex()
    assert r"\mathbf{1}_{S}^{\top}" in ts and r"L_{\mathrm{in}}" in ts and "S_{p}" not in ts
    assert r"\mathbf{1}_{m}^{\top}" in spec.get("timeseries.masked_mse").latex()


# --- notebooks -----------------------------------------------------------------------------------------
def test_jupyter_representations():
    eq = spec.get("attention.scaled_dot_product")
    assert eq._repr_latex_() == f"$${eq.latex()}$$"
    html = eq._repr_html_()
    root = _xml(html)
    assert eq.title in html and eq.mathml() in html
    maths = list(root.iter(f"{M}math"))
    assert len(maths) == 1 + len(eq.where_latex()) + len(eq.symbols)
    md = eq._repr_markdown_()
    assert md.startswith(f"**{eq.title}** (`{eq.id}`)")
    assert f"$$\n{eq.latex()}\n$$" in md
    assert r"- $Q \in \mathbb{R}^{n \times d_{k}}$ (input) — queries" in md


# --- the LaTeX subset ------------------------------------------------------------------------------------
def test_tex_outside_the_subset_is_an_error():
    with pytest.raises(TexSyntaxError, match="unknown command"):
        parse_tex(r"\unknowncommand{x}")
    with pytest.raises(TexSyntaxError):
        parse_tex(r"\frac{a}{b")


def test_tex_to_unicode_and_mathml_of_the_notation():
    assert tex_to_unicode(r"W_{Q}^{(m)}") == "W_Q⁽ᵐ⁾"
    assert tex_to_unicode(r"\hat{y}_{t}") == "ŷ_t"
    assert tex_to_unicode(r"\mathcal{L}_{\mathrm{CE}}") == "ℒ_CE"
    assert tex_to_unicode(r"H^{l - 1}") == "Hˡ⁻¹"
    assert tex_to_unicode(r"S^{\mathrm{causal}}_{n}") == "S_n^causal"
    assert tex_to_unicode(r"\frac{\partial \mathcal{L}}{\partial Z}") == "∂ℒ/∂Z"
    assert tex_to_unicode(r"\begin{cases} 0 & j \le i \\ -\infty & j > i \end{cases}") == (
        "{0 if j ≤ i; −∞ if j > i}"
    )
    root = _xml(tex_to_mathml(r"x < y \text{ if } \mathbb{R}", "inline"))  # escaped, spaces kept, ℝ
    assert [e.text for e in root.iter() if e.text] == ["x", "<", "y", "\u00a0if\u00a0", "ℝ"]
    assert "<mo>&lt;</mo>" in tex_to_mathml("x < y")


# --- speed -----------------------------------------------------------------------------------------------
def test_the_whole_catalogue_prints_in_a_few_seconds():
    start = time.process_time()  # CPU time, not wall time: the verdict must not depend on the machine's load
    for eq in CATALOGUE:
        eq.latex(), eq.where_latex(), eq.mathml(), eq.where_mathml(), eq.unicode(), eq.where_unicode()
        for d in eq.symbols:
            eq.space(d), eq.space_latex(d), eq.space_mathml(d)
    elapsed = time.process_time() - start
    assert len(CATALOGUE) > 150
    assert elapsed < 15, f"printing the catalogue took {elapsed:.1f} s of CPU time"


def test_print_of_an_equation_shows_the_equation_not_its_repr():
    eq = spec.get("attention.scaled_dot_product")
    text = str(eq)
    assert text.splitlines()[0] == "attention.scaled_dot_product — Scaled dot-product attention"
    assert "  P = softmax(Q Kᵀ / √d_k + S) V" in text.splitlines()
    assert "Q ∈ ℝ^(n×d_k)" in text and "P ∈ ℝ^(n×d_v)" in text
    assert repr(eq) == "Equation('attention.scaled_dot_product')"
