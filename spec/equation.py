"""Equations: the tutorial's math as data, checked when built, printed in the tutorial's notation.

The store of registered equations is spec/registry.py; the catalogue (the families in the tutorial's order,
``get``, ``all``) is spec/catalogue.py.
"""

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape

import sympy as sp

from ._errors import SpecError, UnknownEquation
from .axes import GLOSSARY, axis_names
from .ops import SpecOp
from .ops_nn import Scalar
from .shapes import ShapeChecker, fmt_shape
from .tensors import Declared, Family, FamilyMember, FamilySlice, Kind, TensorSymbol


def _printing():
    """spec/printing, imported on first use: building, checking and evaluating equations print nothing (an
    audit never imports the printers)."""
    from . import printing

    return printing


#: What each status tag means (CATALOGUE.md): the words the renderers print, and what they stand for.
STATUS_WORDS: dict[str, str] = {
    "T": "confirmed",
    "R": "reconstructed",
    "T count, R form": "count confirmed, form reconstructed",
}
STATUS_MEANINGS: dict[str, str] = {
    "T": "notation and computation confirmed from the tutorial's companion material (the authors' GPT-2 "
    "inference code and parameter formulas)",
    "R": "reconstructed from the canonical source named, written in the tutorial's notation",
    "T count, R form": "the parameter count is confirmed by the tutorial's parameter formulas; the "
    "computation is reconstructed from the canonical source named",
}
#: Section numbers are reconstructions; only these equation numbers are known for certain.
SECTION_NOTE = (
    "Section numbers (§4, §5) are reconstructions of the tutorial's numbering, not quotations. The only "
    "equation numbers known for certain are (28), multi-head attention, and (37), the position-wise FFN step."
)


@dataclass(frozen=True)
class Reference:
    """Where an equation comes from: the tutorial's section and number, and the original source.

    ``status`` is "T" (notation and computation confirmed from the tutorial's companion material: the
    authors' GPT-2 inference code and parameter formulas) or "R" (reconstructed from ``source``).
    ``count_status`` is the status of the equation's parameter count where it differs from its form's:
    BERT's input, MLM head and pooler have counts confirmed by the tutorial's formulas (``count_status="T"``)
    and forms reconstructed from Devlin et al. (``status="R"``); their ``tag`` is ``"T count, R form"``.

    ``section`` is the tutorial's section as lmspec reconstructs it: a section number in it (``§4``) is
    printed as reconstructed. ``number`` is an equation number of the tutorial known for certain.
    """

    section: str
    number: str | None = None
    source: str = ""
    status: str = "T"
    count_status: str | None = None

    def __post_init__(self) -> None:
        if self.status not in ("T", "R"):
            raise SpecError(
                f"a reference's status is 'T' (confirmed) or 'R' (reconstructed), found {self.status!r}"
            )
        if self.count_status not in (None, "T") or self.count_status == self.status:
            raise SpecError(
                "a reference's count_status is None, or 'T' for a parameter count confirmed where the form "
                f"is reconstructed (status 'R'), found count_status={self.count_status!r} with status "
                f"{self.status!r}"
            )

    @property
    def tag(self) -> str:
        """The catalogue's tag: ``T``, ``R`` or ``T count, R form``."""
        return "T count, R form" if self.count_status == "T" else self.status

    @property
    def word(self) -> str:
        """The tag in words: confirmed, reconstructed, or count confirmed, form reconstructed."""
        return STATUS_WORDS[self.tag]

    @property
    def meaning(self) -> str:
        """What the tag says about the equation's evidence (STATUS_MEANINGS)."""
        return STATUS_MEANINGS[self.tag]

    @property
    def section_text(self) -> str:
        """The section, its number marked as reconstructed: ``Transformers: attention (§4, numbering
        reconstructed)`` for ``§4 Transformers: attention``; a section without a number as it is."""
        match = re.match(r"§(\d+)\s*", self.section)
        if match is None:
            return self.section
        return f"{self.section[match.end() :]} (§{match.group(1)}, numbering reconstructed)".lstrip()

    def __str__(self) -> str:
        num = f", equation ({self.number})" if self.number else ""
        src = f"; {self.source}" if self.source else ""
        return f"Saleh & Paquelet 2024, {self.section_text}{num}{src} [{self.word}]"


@dataclass(frozen=True)
class Invariant:
    """A named property the equation must satisfy, with the options the property needs."""

    name: str
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Binding:
    """One defining line ``lhs := rhs``; when ``lhs`` is a family member it holds for every index."""

    lhs: sp.Basic
    rhs: sp.Basic

    @property
    def name(self) -> str:
        return self.lhs.name


def _fixed(indices) -> bool:
    """Whether every index is an integer (one member defined on its own)."""
    return not any(not sp.sympify(k).is_Integer for k in indices)


class Equation:
    """An equation of the catalogue.

    ``inputs`` are per-example data (they carry leading batch axes in code), ``params`` are shared
    parameters; ``bindings`` define intermediates and outputs in order; ``outputs`` name the results.
    """

    def __init__(
        self,
        id: str,
        title: str,
        *,
        inputs: Sequence[Declared] = (),
        params: Sequence[Declared] = (),
        intermediates: Sequence[Declared] = (),
        bindings: Sequence[tuple[sp.Basic, sp.Basic]],
        outputs: Sequence[Declared],
        reference: Reference,
        constraints: Sequence[sp.Eq] = (),
        invariants: Sequence[Invariant] = (),
        notes: str = "",
        variant_of: str | None = None,
        description: str = "",
    ) -> None:
        self.id = id
        self.title = title
        self.inputs = tuple(inputs)
        self.params = tuple(params)
        self.intermediates = tuple(intermediates)
        self.bindings = tuple(Binding(lhs, rhs) for lhs, rhs in bindings)
        self.outputs = tuple(outputs)
        self.reference = reference
        self.constraints = tuple(constraints)
        self.invariants = tuple(invariants)
        self.notes = notes
        self.variant_of = variant_of
        self.variant_name: str | None = None
        self.description = description
        self._variants: dict[str, tuple[Callable[[], Equation], str]] = {}
        self._built: dict[str, Equation] = {}
        self._options: dict[str, tuple[Callable[..., Equation], dict[str, object]]] = {}
        self._check()

    # -- construction-time checks -------------------------------------------------------------------
    def _check(self) -> None:
        if "." not in self.id:
            raise SpecError(f"equation id {self.id!r} must be 'family.name'")
        declared = {d.name: d for d in (*self.inputs, *self.params)}
        for d in self.intermediates:
            if d.name in declared:
                raise SpecError(f"{self.id}: {d.name} is declared twice")
            declared[d.name] = d
        checker = ShapeChecker(self.id, [c for c in self.constraints if isinstance(c, sp.Eq)])
        known = {d.name for d in (*self.inputs, *self.params)}
        for b in self.bindings:
            if b.name not in declared:
                raise SpecError(f"{self.id}: {b.name} is defined but not declared")
            if isinstance(b.lhs, FamilyMember) and _fixed(b.lhs.indices):
                known.add(b.name)  # a member defined on its own (h_0): the recurrence may use it
            used = {s.name for s in b.rhs.atoms(sp.MatrixSymbol, FamilyMember, FamilySlice)}
            missing = sorted(used - known)
            if missing:
                raise SpecError(
                    f"{self.id}: the definition of {b.name} uses {', '.join(missing)} before it is "
                    "declared as an input, a parameter or an earlier definition"
                )
            shape = checker.check(b.rhs)
            decl = declared[b.name]
            if isinstance(b.lhs, FamilyMember) and not isinstance(decl, Family):
                raise SpecError(f"{self.id}: {b.name} is defined by members but is not declared a family")
            for axis, want, got in zip(("rows", "columns"), decl.shape, shape, strict=True):
                if not checker.same(want, got):
                    raise SpecError(
                        f"{self.id}: {b.name} is declared {fmt_shape(decl.shape)} but its definition "
                        f"has {axis} {got} (shape {fmt_shape(shape)})"
                    )
            known.add(b.name)
        for out in self.outputs:
            if out.name not in known:
                raise SpecError(f"{self.id}: output {out.name} is never defined")
        for c in self.constraints:
            if isinstance(c, sp.Eq) and isinstance(c.lhs, sp.Symbol):
                continue
            if isinstance(c, (sp.Le, sp.Lt, sp.Ge, sp.Gt)):
                continue
            raise SpecError(f"{self.id}: a constraint is 'axis = expression' or an inequality, found {c}")

    # -- the data the CLI, the verifier and the renderer read ----------------------------------------
    @property
    def family(self) -> str:
        return self.id.split(".", 1)[0].split("[", 1)[0]

    @property
    def symbols(self) -> tuple[Declared, ...]:
        return (*self.inputs, *self.params, *self.intermediates)

    def declared(self, name: str) -> Declared:
        for d in self.symbols:
            if d.name == name or d.ascii == name:
                return d
        raise SpecError(f"{self.id} has no symbol {name!r}")

    @property
    def axes(self) -> tuple[str, ...]:
        """The glossary axes that size this equation's inputs and parameters, in glossary order (computed
        once: an equation does not change after it is built, and the verifier asks for every example)."""
        cached = self.__dict__.get("_axes")
        if cached is None:
            cached = self.__dict__["_axes"] = self._find_axes()
        return cached

    def _find_axes(self) -> tuple[str, ...]:
        names: set[str] = set()
        for d in (*self.inputs, *self.params, *self.outputs):
            for s in d.shape:
                names.update(axis_names(s))
            if isinstance(d, Family):
                for count in d.counts:
                    names.update(axis_names(count))
        for c in self.constraints:
            names.update(axis_names(c.lhs))
            names.update(axis_names(c.rhs))
        for b in self.bindings:  # a scalar formula in the sizes (a parameter count) uses its axes too
            for node in sp.preorder_traversal(b.rhs):
                if isinstance(node, Scalar):
                    names.update(axis_names(node.args[0]))
        return tuple(k for k in GLOSSARY if k in names)

    @property
    def equalities(self) -> tuple[sp.Eq, ...]:
        """The constraints ``axis = expression`` (dependent axes)."""
        return tuple(c for c in self.constraints if isinstance(c, sp.Eq))

    @property
    def inequalities(self) -> tuple[sp.Rel, ...]:
        """The constraints between axes that are inequalities (``k ≤ v``)."""
        return tuple(c for c in self.constraints if not isinstance(c, sp.Eq))

    @property
    def free_axes(self) -> tuple[str, ...]:
        dependent = {c.lhs.name for c in self.equalities}
        return tuple(a for a in self.axes if a not in dependent)

    def tex_names(self) -> dict[str, str]:
        return {d.name: d.tex for d in self.symbols}

    def latex_lines(self) -> list[str]:
        """One LaTeX line per definition, ``lhs = rhs``, in the tutorial's notation."""
        names, latex = self.tex_names(), _printing().latex
        return [f"{latex(b.lhs, names)} = {latex(b.rhs, names)}" for b in self.bindings]

    def where_latex(self) -> list[str]:
        """Element-wise definitions of the operators the equation uses (each once, in order)."""
        printer = _printing().SpecLatexPrinter(self.tex_names())
        out: list[str] = []
        for b in self.bindings:
            for node in sp.preorder_traversal(b.rhs):
                if isinstance(node, SpecOp):
                    text = node._latex_definition(printer)
                    if text and text not in out:
                        out.append(text)
        return out

    def latex(self) -> str:
        lines = self.latex_lines()
        if len(lines) == 1:
            return lines[0]
        return (
            "\\begin{aligned}\n"
            + " \\\\\n".join(line.replace(" = ", " &= ", 1) for line in lines)
            + "\n\\end{aligned}"
        )

    def space(self, d: Declared) -> str:
        """``Q ∈ ℝ^(n×d_k)`` in Unicode, with the family index if any; axes under the glossary's names
        (``ℝ^(H_img×W_img)``, ``P²·C``), the symbol under its code name (what an implementation calls it)."""
        size_unicode = _printing().size_unicode
        dims = "×".join(_paren_sum(s, size_unicode(s), len(d.spec_shape)) for s in d.spec_shape)
        space = d.entry_kind.space_unicode + (f"^({dims})" if dims else "")
        if not isinstance(d, Family):
            return f"{d.name} ∈ {space}"
        idx = ",".join(str(i) for i in d.indices)
        rng = ", ".join(
            f"{i} = {d.start}..{size_unicode(c)}" for i, c in zip(d.indices, d.counts, strict=True)
        )
        return f"{d.name}^({idx}) ∈ {space}, {rng}"

    # -- printing: LaTeX (above), MathML, Unicode, spaces, notebooks ---------------------------------
    def space_latex(self, d: Declared) -> str:
        r"""``Q \in \mathbb{R}^{n \times d_{k}}``: the declared name, the glossary's axes, and for a family
        its index and range (``W_{Q}^{(m)} \in \mathbb{R}^{d_{e} \times d_{k}}, \quad m = 1, \ldots, M``)."""
        printer = _printing().SpecLatexPrinter(self.tex_names())
        shape = d.spec_shape
        dims = r" \times ".join(
            rf"\left({printer.doprint(s)}\right)"
            if len(shape) > 1 and isinstance(s, sp.Add)
            else printer.doprint(s)
            for s in (sp.sympify(x) for x in shape)
        )
        base = d.entry_kind.space
        if base not in (r"\mathbb{R}", r"\mathbb{N}"):  # {0,1}, [0,1]: one base for the exponent
            base = f"{{{base}}}"
        space = f"{base}^{{{dims}}}" if dims else d.entry_kind.space
        if not isinstance(d, Family):
            return rf"{printer.doprint(d)} \in {space}"
        member = printer.doprint(d[d.indices])
        ranges = r",\ ".join(
            rf"{printer.doprint(i)} = {d.start}, \ldots, {printer.doprint(c)}"
            for i, c in zip(d.indices, d.counts, strict=True)
        )
        return rf"{member} \in {space}, \quad {ranges}"

    def space_mathml(self, d: Declared) -> str:
        """The space of a symbol as an inline ``<math>`` element (the MathML of ``space_latex``)."""
        return _printing().tex_to_mathml(self.space_latex(d), display="inline")

    def mathml(self) -> str:
        """One ``<math display="block">`` element: the definitions, several aligned on ``=`` in an
        ``<mtable>`` (``columnalign`` for MathML 3, ``text-align`` styles for MathML Core)."""
        p = _printing().SpecMathMLPrinter(self.tex_names())
        rows = [(p._print(b.lhs), p._print(b.rhs)) for b in self.bindings]
        if len(rows) == 1:
            lhs, rhs = rows[0]
            return p.math(p.el("mrow", lhs, p.mo("="), rhs))
        trs = [
            p.el(
                "mtr",
                p.el("mtd", lhs, style="text-align: right", displaystyle="true"),
                p.el("mtd", p.el("mrow", p.mo("="), rhs), style="text-align: left", displaystyle="true"),
            )
            for lhs, rhs in rows
        ]
        return p.math(p.el("mtable", *trs, columnalign="right left", displaystyle="true"))

    def unicode_lines(self) -> list[str]:
        """One Unicode line per definition: ``P⁽ᵐ⁾ = softmax(Q⁽ᵐ⁾ K⁽ᵐ⁾ᵀ / √d_k + S) V⁽ᵐ⁾``."""
        p = _printing().SpecUnicodePrinter(self.tex_names())
        return [f"{p.doprint(b.lhs)} = {p.doprint(b.rhs)}" for b in self.bindings]

    def unicode(self) -> str:
        """The definitions in Unicode for the terminal, one line each."""
        return "\n".join(self.unicode_lines())

    def where_mathml(self) -> list[str]:
        """The element-wise definitions (``where_latex``), each a ``<math display="block">`` element."""
        return [_printing().tex_to_mathml(text, display="block") for text in self.where_latex()]

    def where_unicode(self) -> list[str]:
        """The element-wise definitions (``where_latex``) in Unicode, one line each."""
        return [_printing().tex_to_unicode(text) for text in self.where_latex()]

    def constraints_latex(self) -> list[str]:
        r"""The constraints between axes in LaTeX: ``d_{e} = M d_{k}``, ``n \le n_{\max}``."""
        printer = _printing().SpecLatexPrinter()
        return [printer.doprint(c) for c in self.constraints]

    def constraints_unicode(self) -> list[str]:
        """The constraints between axes in Unicode: ``d_e = M·d_k``, ``d_p = P²·C``, ``n ≤ n_max``."""
        return [_printing().relation_unicode(c) for c in self.constraints]

    def _roles(self) -> dict[str, str]:
        outputs = {o.name for o in self.outputs}
        roles = {**{d.name: "input" for d in self.inputs}, **{d.name: "parameter" for d in self.params}}
        return {
            d.name: roles.get(d.name, "output" if d.name in outputs else "intermediate") for d in self.symbols
        }

    def _repr_latex_(self) -> str:
        return f"$${self.latex()}$$"

    def _repr_html_(self) -> str:
        roles = self._roles()
        where = "".join(f"<li>{m}</li>" for m in self.where_mathml())
        symbols = "".join(
            f"<li>{self.space_mathml(d)} <small>({roles[d.name]})</small>"
            + (f" — {escape(d.meaning)}" if d.meaning else "")
            + "</li>"
            for d in self.symbols
        )
        return (
            f'<div class="lmspec-equation"><p><strong>{escape(self.title)}</strong> '
            f"<code>{escape(self.id)}</code></p>{self.mathml()}"
            + (f"<p>where</p><ul>{where}</ul>" if where else "")
            + self._figure_html()
            + f"<ul>{symbols}</ul></div>"
        )

    def _figure_html(self) -> str:
        """The data-flow figure as inline SVG for ``_repr_html_`` (a notebook shows the HTML, not the SVG,
        when an object has both); nothing where Graphviz is missing (``_repr_svg_`` warns then)."""
        from .dataflow import FigureError, dataflow_svg
        from .dataflow.inline import inline_svg

        try:
            svg = dataflow_svg(self)
        except FigureError:
            return ""
        prefix = "lmspec-" + "".join(c if c.isalnum() else "-" for c in self.id)
        return f'<div class="lmspec-figure">{inline_svg(svg, prefix)}</div>'

    def _repr_svg_(self) -> str | None:
        """The data-flow figure (spec/dataflow/) for notebooks; None where Graphviz is missing (the other
        forms still show), with a warning that says how to install it."""
        from . import dataflow

        try:
            return dataflow.dataflow_svg(self)
        except dataflow.FigureError as exc:
            import warnings

            warnings.warn(f"{self.id}: no figure: {exc}", stacklevel=2)
            return None

    def _repr_markdown_(self) -> str:
        roles = self._roles()
        out = [f"**{self.title}** (`{self.id}`)", "", "$$", self.latex(), "$$", ""]
        where = self.where_latex()
        if where:
            out += ["where", ""] + [f"$$ {w} $$" for w in where] + [""]
        for d in self.symbols:
            meaning = f" — {d.meaning}" if d.meaning else ""
            out.append(f"- ${self.space_latex(d)}$ ({roles[d.name]}){meaning}")
        return "\n".join(out) + "\n"

    # -- variants ------------------------------------------------------------------------------------
    def add_variant(
        self,
        name: str,
        build: Callable[..., "Equation"],
        description: str,
        options: Mapping[str, object] | None = None,
    ) -> None:
        """Record a named variant: an alternative form found in real code, built on demand.

        With ``options``, ``build`` is the equation's builder and the variant is ``build(**options)``: such
        variants of one builder combine when their options do not overlap (``variant("no_bias+unscaled")``
        is the builder with both), so that a target with two departures from the tutorial can be named."""
        self._variants[name] = (build, description)
        if options is not None:
            self._options[name] = (build, dict(options))

    @property
    def variant_names(self) -> tuple[str, ...]:
        return tuple(self._variants)

    def combinable(self, first: str, second: str) -> bool:
        """Whether the variants ``first`` and ``second`` (each a name or a ``+``-joined combination) combine:
        every part built by the same builder from options that do not overlap."""
        parts = [*first.split("+"), *second.split("+")]
        if len(set(parts)) != len(parts) or any(p not in self._options for p in parts):
            return False
        builders = {id(self._options[p][0]) for p in parts}
        keys = [k for p in parts for k in self._options[p][1]]
        return len(builders) == 1 and len(set(keys)) == len(keys)

    def variant(self, name: str) -> "Equation":
        """The named variant, built once (its oracle and generated code are cached with it); ``a+b`` is the
        combination of two variants that combine (``combinable``)."""
        if name in self._built:
            return self._built[name]
        if name not in self._variants and "+" in name:
            first, _, rest = name.partition("+")
            if not self.combinable(first, rest):
                raise UnknownEquation(
                    f"{self.id}[{name}]: the variants {', '.join(name.split('+'))} do not combine (each "
                    f"must be a variant of {self.id} changing a different option; variants: "
                    f"{', '.join(self._variants) or 'none'})"
                )
            parts = name.split("+")
            build = self._options[parts[0]][0]
            options = {k: v for p in parts for k, v in self._options[p][1].items()}
            description = "; ".join(self._variants[p][1] for p in parts)
            return self._finish(name, build(**options), description)
        try:
            build, description = self._variants[name]
        except KeyError:
            known = ", ".join(self._variants) or "none"
            raise UnknownEquation(f"{self.id} has no variant {name!r} (variants: {known})") from None
        options = self._options.get(name, (None, {}))[1]
        return self._finish(name, build(**options) if name in self._options else build(), description)

    def _finish(self, name: str, eq: "Equation", description: str) -> "Equation":
        eq.variant_of = self.id
        eq.variant_name = name
        eq.description = description
        eq.id = f"{self.id}[{name}]"
        self._built[name] = eq
        return eq

    def variants(self) -> dict[str, "Equation"]:
        return {k: self.variant(k) for k in self._variants}

    def variant_without(self, params: Iterable[str]) -> str | None:
        """The name of the variant that is this equation without exactly the parameters ``params`` (ascii
        names: ``W_O, b_O`` → ``no_output_projection``), or None: code that lacks them computes that
        variant, never the equation with them held at 0."""
        lacking, own = set(params), {d.ascii for d in self.params}
        return next(
            (k for k, v in self.variants().items() if own - {d.ascii for d in v.params} == lacking), None
        )

    def __repr__(self) -> str:
        return f"Equation({self.id!r})"

    def __str__(self) -> str:
        """The equation as ``print`` shows it: its id and title, its lines and where-definitions, each
        symbol with its space (what ``lmspec show ID`` prints, without the tables)."""
        out = [f"{self.id} — {self.title}", *(f"  {line}" for line in self.unicode_lines())]
        where = self.where_unicode()
        if where:
            out += ["where", *(f"  {line}" for line in where)]
        out += ["symbols: " + ", ".join(self.space(d) for d in self.symbols)]
        return "\n".join(out)


def _paren_sum(size: sp.Expr, text: str, count: int) -> str:
    """``(L_in + S)`` when a sum is one of several axes of a space (``ℝ^(m×(L_in + S))``)."""
    return f"({text})" if count > 1 and isinstance(sp.sympify(size), sp.Add) else text


__all__ = [
    "SECTION_NOTE",
    "STATUS_MEANINGS",
    "STATUS_WORDS",
    "Binding",
    "Equation",
    "Invariant",
    "Kind",
    "Reference",
    "TensorSymbol",
]
