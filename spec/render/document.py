"""The rendered specification: the catalogue as a paper (LaTeX, PDF), as Markdown and as HTML.

``document()`` gathers what every format shows — one section per family in the tutorial's order, each
equation with its number (the tutorial's, (28) and (37), where it numbers the equation; otherwise
its subsection's, ``section.k``), the element-wise definitions of its operators, every symbol with its
space, the reference and its status, the named variants with the lines where they differ, the invariants, the
notation note, and for parameter counts their values at named configurations. The writers stand on this
model: spec/render/tex.py writes it as LaTeX (and a PDF through latexmk), spec/render/web.py as Markdown and
HTML, and ``render`` in the package's face (spec/render/__init__.py) picks one by format.

The documents carry no date and no timing, so the same catalogue gives the same bytes.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import sympy as sp
from sympy.printing.latex import LatexPrinter

from .._errors import SpecError
from ..axes import GLOSSARY
from ..catalogue import FAMILIES, families, family_module, get
from ..equation import STATUS_MEANINGS, STATUS_WORDS, Equation
from ..params import vit_count
from .figures import Figure, concept_figure, dataflow_figure

TITLE = "The lmspec specification"
SUBTITLE = "The equations of Anatomy of Neural Language Models, executable and shape-checked"
SOURCE = "M. Saleh and S. Paquelet, Anatomy of Neural Language Models, 2024 (arXiv 2401.03797)"

#: Section titles of the families, in the tutorial's order.
FAMILY_TITLES: dict[str, str] = {
    "lm": "Language models",
    "ffnn": "The feed-forward language model",
    "rnn": "Recurrent language models",
    "lstm": "Long short-term memory",
    "gru": "Gated recurrent units",
    "positional": "Positional encodings",
    "attention": "Attention",
    "activation": "Activation functions",
    "norm": "Layer normalisation",
    "transformer": "Transformer blocks",
    "gpt2": "GPT-2",
    "bert": "BERT",
    "vit": "The vision transformer",
    "timeseries": "Transformers for time series",
    "training": "Training",
    "params": "Parameter counts",
}


@dataclass(frozen=True)
class Configuration:
    """A named set of sizes at which parameter counts are evaluated (``GPT-2 small``: d_e = 768, ...).

    ``count`` is the count the configuration describes (``params.gpt2``); the count's parts are evaluated
    at the first configuration of each count too.
    """

    name: str
    sizes: dict[str, int]
    count: str


@dataclass
class Value:
    """A count at one or more configurations with the same sizes."""

    names: list[str]
    sizes: dict[str, int]
    number: int


@dataclass
class Entry:
    """One equation of the document."""

    eq: Equation
    number: str
    tutorial: bool
    values: list[Value] = field(default_factory=list)
    variant_values: dict[str, list[Value]] = field(default_factory=dict)
    #: its data-flow figure, then the concept figures that illustrate it (none unless asked for)
    figures: list[Figure] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return "eq-" + self.eq.id.replace(".", "-").replace("_", "-")


@dataclass
class Section:
    family: str
    number: int
    title: str
    intro: str
    entries: list[Entry]

    @property
    def anchor(self) -> str:
        return f"sec-{self.family}"


@dataclass
class Document:
    sections: list[Section]

    @property
    def entries(self) -> list[Entry]:
        return [e for s in self.sections for e in s.entries]

    @property
    def figures(self) -> list[Figure]:
        return [f for e in self.entries for f in e.figures]


# -------------------------------------------------------------------------------------- the model
def document(
    selection: Iterable[str] | None = None,
    configurations: Sequence[Configuration] = (),
    figures: bool = False,
    concepts: Mapping[str, Sequence[object]] | None = None,
) -> Document:
    """The document of the catalogue (or of the families named in ``selection``), in the tutorial's order.

    With ``figures``, each equation carries its data-flow figure (Graphviz draws it when a writer first asks
    for it) and then the figures ``concepts`` gives for its id (anything with ``name``, ``title``,
    ``caption`` and ``svg``: verify/figures' concept figures, which the command line passes in, since spec/
    cannot import verify/)."""
    chosen = list(selection or FAMILIES)
    unknown = [f for f in chosen if f not in FAMILIES]
    if unknown:
        raise SpecError(f"unknown family {unknown[0]!r}; the families are {', '.join(FAMILIES)}")
    by_family = families()
    sections = []
    for fam in FAMILIES:
        if fam not in chosen:
            continue
        number = len(sections) + 1
        entries = []
        for k, eq in enumerate(by_family[fam], 1):
            tutorial = eq.reference.number is not None
            entry = Entry(eq, eq.reference.number if tutorial else f"{number}.{k}", tutorial)
            entry.values = count_values(eq, configurations)
            for name in eq.variant_names:
                values = count_values(eq.variant(name), configurations, like=eq.id)
                if values:
                    entry.variant_values[name] = values
            if figures:
                entry.figures = [dataflow_figure(eq.id)]
            entries.append(entry)
        sections.append(Section(fam, number, FAMILY_TITLES.get(fam, fam), _intro(fam), entries))
    doc = Document(sections)
    if figures:
        add_concepts(doc, concepts or {})
    return doc


def add_concepts(doc: Document, concepts: Mapping[str, Sequence[object]]) -> None:
    """Each entry's concept figures (``concepts``: equation id -> figures, as ``document`` takes them) after
    its data-flow figure: ``lmspec render`` builds the document while the concept figures are computed, and
    adds them when they come."""
    for entry in doc.entries:
        entry.figures += [concept_figure(entry.eq.id, f) for f in concepts.get(entry.eq.id, ())]


def _intro(family: str) -> str:
    """The first paragraph of the family module's docstring, on one line."""
    doc = family_module(family).__doc__ or ""
    first = doc.strip().split("\n\n", 1)[0]
    return " ".join(first.replace("``", "").split())


def _parts(count: str) -> set[str]:
    """The catalogue counts a count is built from, recursively (``params.gpt2`` → stack, block, mha, ...)."""
    breakdown = vit_count() if count == "vit" else getattr(get(count), "breakdown", None)
    out: set[str] = set()
    for term in breakdown.terms if breakdown else ():
        if term.part and term.part not in out:
            out |= {term.part} | _parts(term.part)
    return out


def count_values(
    eq: Equation, configurations: Sequence[Configuration], like: str | None = None
) -> list[Value]:
    """A parameter count's values at the configurations that describe it (every preset of the model it
    counts, the first preset of each model it is a part of); configurations with equal sizes merge."""
    breakdown = getattr(eq, "breakdown", None)
    if breakdown is None:
        return []
    target = like or eq.id
    seen_counts: set[str] = set()
    values: list[Value] = []
    for config in configurations:
        first = config.count not in seen_counts
        seen_counts.add(config.count)
        if not (config.count == target or (first and target in _parts(config.count))):
            continue
        if any(a not in config.sizes for a in breakdown.axes):
            continue
        sizes = {a: config.sizes[a] for a in breakdown.axes}
        for v in values:
            if v.sizes == sizes:
                v.names.append(config.name)
                break
        else:
            values.append(Value([config.name], sizes, breakdown.count(**sizes)))
    return values


def substituted_latex(eq: Equation, sizes: dict[str, int]) -> str:
    """The count's formula with the sizes written in: ``12 \\cdot (…) + 768 \\cdot (1024 + 50257 + 2)``."""
    formula = eq.breakdown.formula
    names = {s: str(sizes[s.name]) for s in formula.free_symbols if s.name in sizes}
    return LatexPrinter({"symbol_names": names, "mul_symbol": "dot"}).doprint(formula)


def group(n: int, sep: str = ",") -> str:
    return f"{n:,}".replace(",", sep)


def roles(eq: Equation) -> dict[str, str]:
    """Each symbol's role: input, parameter, output or intermediate."""
    out = {d.name: "input" for d in eq.inputs} | {d.name: "parameter" for d in eq.params}
    outputs = {o.name for o in eq.outputs}
    for d in eq.intermediates:
        out[d.name] = "output" if d.name in outputs else "intermediate"
    return out


def relation_latex(c: sp.Rel) -> str:
    """A dimension constraint in LaTeX with the glossary's names: ``n \\le n_{\\max}``."""
    names = {s: GLOSSARY[s.name].latex for s in c.free_symbols if s.name in GLOSSARY}
    printer = LatexPrinter({"symbol_names": names})
    op = {"==": "=", "<=": r"\le", "<": "<", ">=": r"\ge", ">": ">"}[c.rel_op]
    return f"{printer.doprint(c.lhs)} {op} {printer.doprint(c.rhs)}"


def variant_lines(base: Equation, var: Equation) -> tuple[list[str], list[str]]:
    """The LaTeX lines of a variant that differ from the base, and its operator definitions that do."""
    lines = [x for x in var.latex_lines() if x not in set(base.latex_lines())]
    where = [x for x in var.where_latex() if x not in set(base.where_latex())]
    return lines, where


def split_reference(eq: Equation) -> tuple[str, str]:
    """``str(eq.reference)`` without its status tag, and the status in words (confirmed, reconstructed, or
    count confirmed, form reconstructed)."""
    word = eq.reference.word
    return str(eq.reference).removesuffix(f" [{word}]"), word


def status_legend() -> list[tuple[str, str]]:
    """What each status word means, in the order of STATUS_WORDS: ``[("confirmed", "notation and …"), …]``;
    every format prints it with the notation, with ``SECTION_NOTE`` on section and equation numbers."""
    return [(STATUS_WORDS[tag], STATUS_MEANINGS[tag]) for tag in STATUS_WORDS]


#: The folder, beside a document, of the image files its figures are written to (Markdown, LaTeX).
FIGURES_DIR = "figures"


def figure_path(figure: Figure, ext: str) -> str:
    """Where a document refers to a figure's file: ``figures/attention-multi-head.svg``."""
    return f"{FIGURES_DIR}/{figure.name}.{ext}"


def figure_files(doc: Document, ext: str) -> dict[str, bytes]:
    """The image files of the document's figures (``svg`` for Markdown, ``pdf`` for LaTeX), by the path the
    document refers to them by."""
    if ext not in ("svg", "pdf"):
        raise SpecError(f"figure files are svg or pdf, found {ext!r}")
    return {figure_path(f, ext): f.svg.encode("utf-8") if ext == "svg" else f.pdf for f in doc.figures}


#: The formats the document is written in (a PDF from the LaTeX).
FORMATS = ("tex", "pdf", "md", "html")
