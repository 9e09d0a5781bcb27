"""The rendered specification for the web: GitHub Markdown and one self-contained HTML page.

Markdown: display math in ``$$`` blocks, each row of an ``aligned`` block on its own line (GitHub keeps
``\\\\`` only at the end of a line), no ``\\tag`` (the number is written beside the equation's id), and no
backslash before punctuation that Markdown would eat (``\\{`` is written ``\\lbrace``); inline math in
GitHub's ``$`…`$`` form, headings whose anchors GitHub derives (``github_slug``) and a table of contents
that links to them.

HTML: presentation MathML from the equations (``Equation.mathml``, ``space_mathml``, ``where_mathml``),
inline CSS, no script, no network, no external font: one file that any current browser lays out.
"""

import html as _html
import re

from ..axes import GLOSSARY
from ..dataflow.inline import inline_svg
from ..equation import SECTION_NOTE
from ..printing import tex_to_mathml
from . import text as rt
from .document import (
    SOURCE,
    SUBTITLE,
    TITLE,
    Document,
    Entry,
    Value,
    figure_path,
    group,
    relation_latex,
    roles,
    split_reference,
    status_legend,
    substituted_latex,
    variant_lines,
)
from .tex import aligned, definition_rows


# ---------------------------------------------------------------------------------------- Markdown
def github_slug(text: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, each space a hyphen."""
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def md_safe(tex: str) -> str:
    """LaTeX that GitHub's Markdown leaves as it is: each ``\\\\`` ends a line, and no backslash stands
    before punctuation (``\\{`` → ``\\lbrace``, ``\\,`` → ``\\thinspace``, ``\\ `` → ``~``)."""
    tex = re.sub(r"\\\\[ \t]*(?!\n|$)", "\\\\\\\\\n", tex)
    tex = tex.replace(r"\{", r"\lbrace ").replace(r"\}", r"\rbrace ").replace(r"\,", r"\thinspace ")
    return re.sub(r"(?<!\\)\\ ", "~", tex)


def md_math_block(tex: str) -> str:
    """A ``$$`` block that GitHub renders as written (``md_safe``), the delimiters on their own lines."""
    return "$$\n" + md_safe(tex).strip() + "\n$$"


def md_inline(tex: str) -> str:
    return rt.md_math(tex)


class _Headings:
    """Headings with their GitHub anchors (a repeated slug gets ``-1``, ``-2`` as on GitHub)."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def anchor(self, text: str) -> str:
        slug = github_slug(text)
        n = self.seen.get(slug, 0)
        self.seen[slug] = n + 1
        return slug if n == 0 else f"{slug}-{n}"


def markdown(doc: Document) -> str:
    heads = _Headings()
    heads.anchor(TITLE)
    toc, body = [], []
    title_contents = "Contents"
    heads.anchor(title_contents)
    notation = "Notation"
    toc.append(f"- [{notation}](#{heads.anchor(notation)})")
    body.append(_md_notation(notation))
    for section in doc.sections:
        text = f"{section.number} {section.title}"
        toc.append(f"- [{rt.md_text(text)}](#{heads.anchor(text)})")
        body.append(f"## {rt.md_text(text)}\n\n{rt.to_md(section.intro)}\n")
        for entry in section.entries:
            sub = f"{section.number}.{section.entries.index(entry) + 1} {entry.eq.title}"
            toc.append(f"  - [{rt.md_text(sub)}](#{heads.anchor(sub)})")
            body.append(_md_entry(entry, sub))
    head = [
        f"# {TITLE}\n",
        f"*{rt.md_text(SUBTITLE)}.* Rendered by `lmspec render` from the executable spec.\n",
        _md_abstract(doc) + "\n",
        f"## {title_contents}\n",
        "\n".join(toc) + "\n",
    ]
    return "\n".join(head) + "\n" + "\n".join(body)


def _md_abstract(doc: Document) -> str:
    h = md_inline(r"H \in \mathbb{R}^{d_{e} \times n}")
    return (
        f"{len(doc.entries)} equations of the lmspec catalogue in {len(doc.sections)} "
        f"{'family' if len(doc.sections) == 1 else 'families'}, in the order of {rt.md_text(SOURCE)}, in the "
        f"tutorial's notation ({h} holds one token per "
        "column; attention is written in row form). Each equation is followed by the element-wise "
        "definitions of its operators, every symbol with its space, its reference with a status (*confirmed* "
        "from the tutorial's companion material, or *reconstructed* from the original source; the Notation "
        "section says what each means), the named variants found in real code, "
        "the invariants the verifier checks and a note on notation. Equations keep the tutorial's numbers "
        "where it numbers them, such as (28) and (37); the others are numbered by their section."
    )


def _md_notation(title: str) -> str:
    rows = "\n".join(f"| {md_inline(a.latex)} | {rt.md_text(a.meaning)} |" for a in GLOSSARY.values())
    legend = "\n".join(f"| *{word}* | {rt.to_md(meaning)} |" for word, meaning in status_legend())
    return (
        f"## {title}\n\nDimensions are positive integers:\n\n| axis | meaning |\n|---|---|\n{rows}\n\n"
        "**Status tags.** Each equation's reference carries one:\n\n"
        f"| status | meaning |\n|---|---|\n{legend}\n\n{rt.to_md(SECTION_NOTE)}\n"
    )


def _md_entry(entry: Entry, heading: str) -> str:
    eq = entry.eq
    body, status = split_reference(eq)
    out = [f"### {rt.md_text(heading)}\n", f"**({entry.number})** `{eq.id}` · *{status}*\n"]
    out.append(md_math_block(aligned(eq.latex_lines())) + "\n")
    defs = definition_rows(eq.where_latex())
    if defs:
        out.append("where, entry by entry,\n")
        out.extend(md_math_block(d) + "\n" for d in defs)
    for f in entry.figures:
        title = rt.md_text(f.title)
        out.append(f"![{title}]({figure_path(f, 'svg')})\n\n*{title}.* {rt.to_md(f.caption)}\n")
    role = roles(eq)
    items = []
    for d in eq.symbols:
        meaning = f": {rt.to_md(d.meaning)}" if d.meaning else ""
        items.append(f"- {md_inline(eq.space_latex(d))}{meaning} *({role[d.name]})*")
    out.append("\n".join(items) + "\n")
    if eq.constraints:
        out.append(
            "**Dimensions:** " + ", ".join(md_inline(relation_latex(c)) for c in eq.constraints) + "\n"
        )
    out.append(f"**Reference:** {rt.to_md(body)} (*{status}*)\n")
    if entry.values:
        out.append(_md_values(eq, entry.values))
    if eq.variant_names:
        out.append("**Variants:**\n")
        for name, var in eq.variants().items():
            out.append(f"- `{name}`: {rt.to_md(var.description)}")
            lines, where = variant_lines(eq, var)
            for block in ([aligned(lines)] if lines else []) + definition_rows(where):
                out.append("\n" + "\n".join("  " + x for x in md_math_block(block).split("\n")))
            for v in entry.variant_values.get(name, []):
                out.append(f"  at {rt.md_text(', '.join(v.names))}: {group(v.number)} parameters")
        out.append("")
    if eq.invariants:
        out.append("**Invariants:** " + ", ".join(f"`{i.name}`" for i in eq.invariants) + "\n")
    if eq.notes:
        out.append(f"**Notes:** {rt.to_md(eq.notes)}\n")
    return "\n".join(out)


def _md_values(eq, values: list[Value]) -> str:
    first = values[0]
    lhs = eq.latex_lines()[0].partition(" = ")[0]
    line = f"{lhs} = {substituted_latex(eq, first.sizes)} = {group(first.number, '{,}')}"
    rows = "\n".join(
        f"| {rt.md_text(', '.join(v.names))} | "
        + ", ".join(md_inline(f"{GLOSSARY[a].latex} = {n}") for a, n in v.sizes.items())
        + f" | {group(v.number)} |"
        for v in values
    )
    return (
        f"**Values:** at {rt.md_text(', '.join(first.names))},\n\n{md_math_block(aligned([line]))}\n\n"
        f"| configuration | sizes | parameters |\n|---|---|---:|\n{rows}\n"
    )


# -------------------------------------------------------------------------------------------- HTML
_CSS = """
:root { --ink: #1b1b1b; --muted: #5f6368; --rule: #d8d8d8; --accent: #1f4e79; --paper: #fffffe; }
html { background: #f4f3ef; }
body { font-family: "Latin Modern Roman", "CMU Serif", "STIX Two Text", Georgia, "Times New Roman", serif;
  color: var(--ink); background: var(--paper); max-width: 50em; margin: 2em auto; padding: 3em 4em;
  line-height: 1.5; font-size: 17px; box-shadow: 0 0 0.6em rgba(0,0,0,0.08); }
h1 { font-size: 2em; font-weight: normal; text-align: center; margin: 0.5em 0 0.2em 0; }
.subtitle { text-align: center; font-size: 1.15em; color: var(--muted); margin: 0 0 0.3em 0; }
.byline { text-align: center; color: var(--muted); margin-bottom: 2em; }
.abstract { margin: 0 3em 2em 3em; font-size: 0.95em; text-align: justify; hyphens: auto; }
.abstract::before { content: "Abstract"; display: block; text-align: center; font-weight: bold; }
h2 { font-size: 1.45em; margin: 2.2em 0 0.6em 0; padding-top: 0.4em; border-top: 1px solid var(--rule); }
h3 { font-size: 1.15em; margin: 2em 0 0.3em 0; }
.secno { display: inline-block; min-width: 2.6em; color: var(--accent); }
p { margin: 0.5em 0; text-align: justify; hyphens: auto; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
code { font-family: "Latin Modern Mono", "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.88em; }
nav.toc ol { list-style: none; padding-left: 0; margin: 0; }
nav.toc ol ol { padding-left: 2.6em; font-size: 0.95em; }
nav.toc li { margin: 0.15em 0; }
.meta { display: flex; justify-content: space-between; margin: 0 0 0.4em 0; }
.status { font-variant: small-caps; letter-spacing: 0.04em; color: var(--muted); }
.display { display: flex; align-items: center; gap: 1em; margin: 0.9em 0; }
.display .math { flex: 1 1 auto; overflow-x: auto; overflow-y: hidden; padding: 0.2em 0; }
.eqno { flex: 0 0 auto; color: var(--ink); }
math { font-family: "Latin Modern Math", "STIX Two Math", "DejaVu Math TeX Gyre", "Cambria Math", math;
  font-size: 1.08em; }
math[display="block"] { margin: 0; }
.defs { margin: 0.4em 0 0.8em 0; }
.defs .math { overflow-x: auto; overflow-y: hidden; margin: 0.35em 0; }
table { border-collapse: collapse; width: 100%; margin: 0.6em 0 0.9em 0; font-size: 0.95em; }
td, th { padding: 0.25em 0.6em 0.25em 0; vertical-align: baseline; text-align: left; }
th { font-weight: normal; color: var(--muted); border-bottom: 1px solid var(--rule); }
table.symbols td:first-child { width: 38%; }
table.symbols td.role, td.num { text-align: right; white-space: nowrap; }
td.role { font-style: italic; color: var(--muted); font-size: 0.9em; }
td.num { font-variant-numeric: tabular-nums; }
.label { font-weight: bold; margin-right: 0.6em; }
dl.variants { margin: 0.3em 0 0.6em 0; }
dl.variants dt { margin-top: 0.4em; }
dl.variants dd { margin: 0.1em 0 0.3em 2em; }
.m { white-space: nowrap; }
figure.figure { margin: 1em 0; text-align: center; }
figure.figure svg { display: block; margin: 0 auto; max-width: 100%; height: auto; }
figure.figure figcaption { font-size: 0.9em; color: var(--muted); text-align: left; margin-top: 0.4em; }
.m i { font-style: italic; }
"""


def _e(text: object) -> str:
    return _html.escape(str(text), quote=True)


def _mathml(tex: str, display: str) -> str:
    return tex_to_mathml(tex, display=display)


def html(doc: Document) -> str:
    toc, body = [], []
    toc.append('<li><a href="#notation">Notation</a></li>')
    body.append(_html_notation())
    for section in doc.sections:
        subs = []
        parts = [
            f'<section id="{section.anchor}">',
            f'<h2><span class="secno">{section.number}</span>{rt.to_html(section.title)}</h2>',
            f"<p>{rt.to_html(section.intro)}</p>",
        ]
        for i, entry in enumerate(section.entries, 1):
            number = f"{section.number}.{i}"
            subs.append(
                f'<li><a href="#{entry.anchor}"><span class="secno">{number}</span>'
                f"{rt.to_html(entry.eq.title)}</a></li>"
            )
            parts.append(_html_entry(entry, number))
        parts.append("</section>")
        toc.append(
            f'<li><a href="#{section.anchor}"><span class="secno">{section.number}</span>'
            f"{rt.to_html(section.title)}</a><ol>{''.join(subs)}</ol></li>"
        )
        body.append("\n".join(parts))
    n = len(doc.entries)
    h = _mathml(r"H \in \mathbb{R}^{d_{e} \times n}", "inline")
    families = "family" if len(doc.sections) == 1 else "families"
    abstract = (
        f"{n} equations of the lmspec catalogue in {len(doc.sections)} {families}, in the order of "
        f"{_e(SOURCE)}. Each equation is written in the tutorial's notation and orientation "
        f"({h} holds one token per column; attention "
        "is written in row form) and followed by the element-wise definitions of its operators, every symbol "
        'with its space, its reference with a status (<span class="status">confirmed</span> from the '
        'tutorial\'s companion material, or <span class="status">reconstructed</span> from the original '
        "source; the Notation section says what each means), the named variants found in real code, the "
        "invariants the verifier checks and a note on notation. Equations keep the "
        "tutorial's numbers where it numbers them, such as (28) and (37); the others are numbered by their "
        "section."
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(TITLE)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f'<header><h1>{_e(TITLE)}</h1>\n<p class="subtitle">{_e(SUBTITLE)}</p>\n'
        '<p class="byline">Rendered by <code>lmspec render</code> from the executable spec</p></header>\n'
        f'<p class="abstract">{abstract}</p>\n'
        f'<nav class="toc"><h2>Contents</h2><ol>{"".join(toc)}</ol></nav>\n'
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _html_notation() -> str:
    rows = "".join(
        f"<tr><td>{_mathml(a.latex, 'inline')}</td><td>{rt.to_html(a.meaning)}</td></tr>"
        for a in GLOSSARY.values()
    )
    legend = "".join(
        f'<tr><td><span class="status">{_e(word)}</span></td><td>{rt.to_html(meaning)}</td></tr>'
        for word, meaning in status_legend()
    )
    return (
        '<section id="notation"><h2>Notation</h2><p>Dimensions are positive integers, named as in the '
        f'tutorial:</p><table class="glossary"><tbody>{rows}</tbody></table>'
        "<p><strong>Status tags.</strong> Each equation's reference carries one:</p>"
        f'<table class="statuses"><tbody>{legend}</tbody></table>'
        f"<p>{rt.to_html(SECTION_NOTE)}</p></section>"
    )


def _html_entry(entry: Entry, number: str) -> str:
    eq = entry.eq
    body, status = split_reference(eq)
    out = [
        f'<article class="equation" id="{entry.anchor}">',
        f'<h3><span class="secno">{number}</span>{rt.to_html(eq.title)}</h3>',
        f'<p class="meta"><code>{_e(eq.id)}</code><span class="status">{_e(status)}</span></p>',
        f'<div class="display"><div class="math">{eq.mathml()}</div>'
        f'<span class="eqno">({_e(entry.number)})</span></div>',
    ]
    where = eq.where_mathml()
    if where:
        out.append('<p>where, entry by entry,</p><div class="defs">')
        out.extend(f'<div class="math">{m}</div>' for m in where)
        out.append("</div>")
    out.extend(figure_html(f) for f in entry.figures)
    role = roles(eq)
    rows = "".join(
        f"<tr><td>{eq.space_mathml(d)}</td><td>{rt.to_html(d.meaning)}</td>"
        f'<td class="role">{role[d.name]}</td></tr>'
        for d in eq.symbols
    )
    out.append(f'<table class="symbols"><tbody>{rows}</tbody></table>')
    if eq.constraints:
        rel = ", ".join(_mathml(relation_latex(c), "inline") for c in eq.constraints)
        out.append(f'<p><span class="label">Dimensions</span>{rel}</p>')
    tag = f'<span class="status">{_e(status)}</span>'
    out.append(f'<p><span class="label">Reference</span>{rt.to_html(body)} ({tag})</p>')
    if entry.values:
        out.append(_html_values(eq, entry.values))
    if eq.variant_names:
        out.append('<p><span class="label">Variants</span></p><dl class="variants">')
        for name, var in eq.variants().items():
            out.append(f"<dt><code>{_e(name)}</code></dt><dd>{rt.to_html(var.description)}")
            lines, where_v = variant_lines(eq, var)
            for block in ([aligned(lines)] if lines else []) + definition_rows(where_v):
                out.append(f'<div class="math">{_mathml(block, "block")}</div>')
            for v in entry.variant_values.get(name, []):
                out.append(f"<p>At {_e(', '.join(v.names))}: {group(v.number)} parameters.</p>")
            out.append("</dd>")
        out.append("</dl>")
    if eq.invariants:
        names = ", ".join(f"<code>{_e(i.name)}</code>" for i in eq.invariants)
        out.append(f'<p><span class="label">Invariants</span>{names}</p>')
    if eq.notes:
        out.append(f'<p><span class="label">Notes</span>{rt.to_html(eq.notes)}</p>')
    out.append("</article>")
    return "\n".join(out)


def figure_html(figure) -> str:
    """A figure as inline SVG (ids prefixed with its name, so that figures cannot share one) in a
    ``<figure>`` with its caption: the page stays one file, and the figure shrinks with the column."""
    svg = inline_svg(figure.svg, f"fig-{figure.name}")
    caption = f"<strong>{rt.to_html(figure.title)}.</strong> {rt.to_html(figure.caption)}"
    return f'<figure class="figure" id="fig-{figure.name}">{svg}<figcaption>{caption}</figcaption></figure>'


def _html_values(eq, values: list[Value]) -> str:
    first = values[0]
    lhs = eq.latex_lines()[0].partition(" = ")[0]
    line = rf"{lhs} = {substituted_latex(eq, first.sizes)} = \text{{{group(first.number)}}}"
    rows = "".join(
        f"<tr><td>{_e(', '.join(v.names))}</td><td>"
        + ", ".join(_mathml(f"{GLOSSARY[a].latex} = {n}", "inline") for a, n in v.sizes.items())
        + f'</td><td class="num">{group(v.number)}</td></tr>'
        for v in values
    )
    return (
        f'<p><span class="label">Values</span>At {_e(", ".join(first.names))}:</p>'
        f'<div class="defs"><div class="math">{_mathml(aligned([line]), "block")}</div></div>'
        "<table><thead><tr><th>configuration</th><th>sizes</th><th>parameters</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )
