"""The rendered specification as a paper: LaTeX (amsmath, texlive-latex-base only) and a PDF through latexmk.

Displayed lines wider than the text block are broken at their top-level sums into ``aligned`` rows (inside
the outer parentheses of a product when that is what is too wide); Markdown and HTML use the same rows.
"""

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..axes import GLOSSARY
from ..equation import SECTION_NOTE, Equation
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
from .figures import Figure, pdf_size

#: The width of the text block in points (A4 less 3 cm margins: 15 cm): a figure is never drawn wider than its
#: own PDF (``figure_width``), nor wider than the line, nor higher than ``FIGURE_HEIGHT`` of the text block's
#: height (the preamble's ``\lmfigure``, which writes 0.80: a data-flow figure runs top to bottom and may take
#: most of a page, so that its labels stay legible).
LINEWIDTH_PT = 426.79
FIGURE_HEIGHT = 0.80
#: The widest a displayed line may be before it is broken, in the units of ``tex_width`` (about one
#: math italic letter at 11 pt); the text block is 15 cm.
LINE_LIMIT = 54.0


class RenderError(Exception):
    """A document could not be written (TeX missing or failing); the CLI turns it into exit 2."""


# ------------------------------------------------------------------------------- breaking lines
def _groups(tex: str) -> list[tuple[str, int]]:
    """Characters of ``tex`` with their nesting depth (braces, \\left…\\right, \\begin…\\end)."""
    out, depth, i = [], 0, 0
    while i < len(tex):
        for opener in (r"\left", r"\begin"):
            if tex.startswith(opener, i) and not tex[i + len(opener) : i + len(opener) + 1].isalpha():
                depth += 1
        for closer in (r"\right", r"\end"):
            if tex.startswith(closer, i) and not tex[i + len(closer) : i + len(closer) + 1].isalpha():
                depth -= 1
        ch = tex[i]
        if ch == "\\" and i + 1 < len(tex) and tex[i + 1] in "{}":
            out.extend([(ch, depth), (tex[i + 1], depth)])
            i += 2
            continue
        if ch == "{":
            depth += 1
        out.append((ch, depth))
        if ch == "}":
            depth -= 1
        i += 1
    return out


def split_top(tex: str, seps: Sequence[str] = (" + ", " - ")) -> list[str]:
    """``tex`` cut before each top-level separator (the separator starts the next piece)."""
    marks = _groups(tex)
    cuts = [0]
    for i in range(1, len(tex)):
        if marks[i][1] == 0 and any(tex.startswith(s, i) for s in seps):
            cuts.append(i)
    return [tex[a:b].strip() for a, b in zip(cuts, [*cuts[1:], len(tex)], strict=True)]


_SCALE = {r"\frac": 0.0, r"\left": 0.4, r"\right": 0.4, r"\quad": 1.6, r"\qquad": 3.2, r"\,": 0.3}
_WRAPPERS = (r"\operatorname", r"\mathrm", r"\mathbf", r"\mathbb", r"\mathcal", r"\hat", r"\tilde", r"\bar")


def tex_width(tex: str) -> float:
    """A rough display width of LaTeX math, in letters: enough to decide where a line must break."""
    width, i = 0.0, 0
    while i < len(tex):
        ch = tex[i]
        if ch == "\\":
            m = re.match(r"\\([A-Za-z]+|.)", tex[i:])
            cmd = m.group(0)
            i += len(cmd)
            if cmd == r"\frac":
                a, i = _group_at(tex, i)
                b, i = _group_at(tex, i)
                width += max(tex_width(a), tex_width(b)) + 0.4
            elif cmd == r"\sqrt":
                a, i = _group_at(tex, i)
                width += tex_width(a) + 1.0
            elif cmd in (r"\text", r"\texttt"):
                a, i = _group_at(tex, i)
                width += 0.85 * len(a)
            elif cmd in _WRAPPERS:
                a, i = _group_at(tex, i)
                width += tex_width(a) * (1.0 if cmd != r"\operatorname" else 0.9)
            elif cmd in (r"\begin", r"\end"):
                env, i = _group_at(tex, i)
                if cmd == r"\begin":
                    end = tex.find(rf"\end{{{env}}}", i)
                    body = tex[i:end]
                    rows = [r for r in body.split(r"\\")]
                    width += max(sum(tex_width(c) + 1.0 for c in r.split("&")) for r in rows) + 1.0
                    i = end + len(rf"\end{{{env}}}")
            elif cmd in (r"\left", r"\right"):
                width += 0.4
                if tex[i : i + 1] == "\\":
                    i += len(re.match(r"\\([A-Za-z]+|.)", tex[i:]).group(0))
                else:
                    i += 1
            else:
                width += _SCALE.get(cmd, 1.0)
        elif ch in "_^":
            a, i = _group_at(tex, i + 1)
            width += 0.7 * tex_width(a)
        elif ch == "{":
            a, i = _group_at(tex, i)
            width += tex_width(a)
        elif ch in "+-=<>":
            width += 1.8
            i += 1
        elif ch in " &}":
            i += 1
        else:
            width += 1.0
            i += 1
    return width


def _group_at(tex: str, i: int) -> tuple[str, int]:
    """The braced group (or single token) at ``tex[i]`` and the index after it."""
    while i < len(tex) and tex[i] == " ":
        i += 1
    if i >= len(tex):
        return "", i
    if tex[i] != "{":
        if tex[i] == "\\":
            tok = re.match(r"\\([A-Za-z]+|.)", tex[i:]).group(0)
            return tok, i + len(tok)
        return tex[i], i + 1
    depth = 0
    for j in range(i, len(tex)):
        if tex[j] == "{" and tex[j - 1 : j] != "\\":
            depth += 1
        elif tex[j] == "}" and tex[j - 1 : j] != "\\":
            depth -= 1
            if depth == 0:
                return tex[i + 1 : j], j + 1
    return tex[i + 1 :], len(tex)


def _split_paren(piece: str) -> list[str] | None:
    """A piece ``L \\left(a + b + c\\right)`` cut inside its outer parentheses at their top-level sums:
    ``["L \\left(a", "+ b", "+ c\\right)"]``, or None when it has no such parentheses."""
    marks = _groups(piece)
    start = next(
        (i for i in range(len(piece)) if piece.startswith(r"\left(", i) and (i == 0 or marks[i - 1][1] == 0)),
        None,
    )
    if start is None:
        return None
    depth_at = marks[start][1] - 1
    end = next(
        (
            i
            for i in range(start + 6, len(piece))
            if piece.startswith(r"\right)", i) and marks[i][1] == depth_at
        ),
        None,
    )
    if end is None:
        return None
    inner = split_top(piece[start + 6 : end])
    if len(inner) < 2:
        return None
    inner[0] = piece[: start + 6] + inner[0]
    inner[-1] = inner[-1] + piece[end:]
    return inner


def break_line(line: str, limit: float = LINE_LIMIT) -> list[str]:
    """An ``lhs = rhs`` line as aligned rows ``lhs &= a + b`` / ``&\\quad + c`` no wider than ``limit``;
    a product too wide on its own is cut inside its parentheses (``\\right.`` / ``\\left.`` close and
    reopen them across rows)."""
    lhs, eq, rhs = line.partition(" = ")
    if not eq:
        lhs, rhs = "", line
    head = f"{lhs} &= " if eq else "&"
    if tex_width(line) <= limit:
        return [head + rhs]
    indent = tex_width(lhs) + 2.0
    pieces: list[tuple[str, bool]] = []  # (piece, the parentheses are still open after it)
    for piece in split_top(rhs):
        sub = _split_paren(piece) if tex_width(piece) > limit - indent else None
        if sub:
            pieces.extend((p, i < len(sub) - 1) for i, p in enumerate(sub))
        else:
            pieces.append((piece, False))
    rows: list[str] = []
    current, width, still_open = head, 0.0, False
    for piece, open_after in pieces:
        w = tex_width(piece) + 0.5
        if width > 0 and indent + width + w > limit:
            rows.append(current + (r" \right." if still_open else ""))
            current, width = r"&\quad " + (r"\left. " if still_open else ""), 0.0
        current = current + (" " if width > 0 else "") + piece
        width += w
        still_open = open_after
    rows.append(current)
    return rows


def aligned(lines: Sequence[str], limit: float = LINE_LIMIT) -> str:
    """Lines ``lhs = rhs`` as the body of one display: a single line as it is, several (or a long one)
    in an ``aligned`` environment, broken at top-level sums where a line is too wide."""
    rows = [row for line in lines for row in break_line(line, limit)]
    if len(rows) == 1:
        return rows[0].replace(" &= ", " = ", 1).lstrip("&")
    return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"


def definition_rows(defs: Sequence[str], limit: float = LINE_LIMIT) -> list[str]:
    """Operator definitions, one per row; a long one split at its ``\\quad`` clauses."""
    rows = []
    for d in defs:
        if tex_width(d) <= limit:
            rows.append(d)
            continue
        parts = split_top(d, (r", \quad ", r" \quad "))
        rows.extend(p.removeprefix(",").strip().removeprefix(r"\quad").strip() for p in parts)
    return rows


# ------------------------------------------------------------------------------------------- LaTeX
_PREAMBLE = r"""\documentclass[11pt,a4paper]{article}
\usepackage[utf8]{inputenc}
\usepackage{amsmath,amssymb}
\usepackage[a4paper,hmargin=3cm,vmargin=2.8cm]{geometry}
\usepackage{array,longtable}
\usepackage[hidelinks,bookmarksnumbered,pdftitle={%(title)s},pdfauthor={lmspec}]{hyperref}
\setlength{\parindent}{0pt}
\setlength{\parskip}{0.55\baselineskip plus 2pt}
\setlength{\LTpre}{0.3\baselineskip}
\setlength{\LTpost}{0.2\baselineskip}
\renewcommand{\arraystretch}{1.25}
\setcounter{tocdepth}{2}
\allowdisplaybreaks[1]
\newcommand{\eqid}[1]{\texttt{#1}}
\newcommand{\lbl}[1]{\textbf{#1}\quad}
\newcommand{\status}[1]{\textsc{#1}}
\newcommand{\role}[1]{\textit{\small #1}}
\usepackage{graphicx}
\newsavebox{\lmfigbox}
\newcommand{\lmfigure}[3]{\par\begin{center}%%
\sbox{\lmfigbox}{\includegraphics[width=#1\linewidth,height=0.80\textheight,keepaspectratio]{#2}}%%
\typeout{lmspec-figure #2: \the\wd\lmfigbox\space x \the\ht\lmfigbox\space%%
 in \the\linewidth\space x \the\textheight}%%
\usebox{\lmfigbox}\\[0.2em]
\begin{minipage}{0.92\linewidth}\small #3\end{minipage}\end{center}}
"""


def tex(doc: Document) -> str:
    """The document as a standalone LaTeX file (amsmath, amssymb, hyperref: texlive-latex-base only)."""
    out = [_PREAMBLE % {"title": TITLE}]
    byline = r"Rendered by \texttt{lmspec render} from the executable spec"
    out.append(
        f"\\title{{{TITLE}\\\\[0.4em]\\large {rt.text_latex(SUBTITLE)}}}\n\\author{{{byline}}}\n\\date{{}}\n"
    )
    out.append("\\begin{document}\n\\maketitle\n")
    out.append("\\begin{abstract}\n" + _abstract_latex(doc) + "\n\\end{abstract}\n")
    out.append("\\tableofcontents\n\\clearpage\n")
    out.append(_notation_latex())
    for section in doc.sections:
        title = rt.latex(section.title)
        out.append(f"\n\\section{{{title}}}\\label{{{section.anchor}}}\n{rt.latex(section.intro)}\n")
        for entry in section.entries:
            out.append(_entry_latex(entry))
    out.append("\n\\end{document}\n")
    return "".join(out)


def _abstract_latex(doc: Document) -> str:
    n = len(doc.entries)
    return (
        f"This document renders {n} equations of the lmspec catalogue in {len(doc.sections)} "
        f"{'family' if len(doc.sections) == 1 else 'families'}, in the order of {rt.latex(SOURCE)}. "
        "Each equation is written in the tutorial's notation and orientation "
        r"($H \in \mathbb{R}^{d_{e}\times n}$ holds one token per column; attention is written in row form) "
        "and is followed by the element-wise definitions of its operators, every symbol with its space, "
        "its reference with a status (\\status{confirmed} from the tutorial's companion material, or "
        "\\status{reconstructed} from the original source; the Notation section says what each means), the "
        "named variants found in real code, the invariants the verifier checks and a note "
        "on notation. Equations keep the tutorial's numbers where it numbers them, such as (28) and (37); "
        "the others are numbered within their section. Every line is generated from the same SymPy objects "
        "that the verifier evaluates."
    )


def _notation_latex() -> str:
    rows = "\n".join(f"${a.latex}$ & {rt.latex(a.meaning)} \\\\" for a in GLOSSARY.values())
    return (
        "\\section*{Notation}\\addcontentsline{toc}{section}{Notation}\n"
        "Dimensions are positive integers, named as in the tutorial:\n"
        "\\begin{longtable}{@{}>{\\centering\\arraybackslash}p{0.14\\linewidth}p{\\dimexpr0.86\\linewidth-2\\tabcolsep}@{}}\n"
        f"{rows}\n\\end{{longtable}}\n"
        "A vector is a column. $\\mathbf{1}_{n}$ is the vector of $n$ ones, $\\odot$ the entry-wise product, "
        "$W^{(m)}$ the member $m$ of an indexed family of parameters (a head, a layer). Operators act on "
        "matrices as the definitions under each equation state, entry by entry.\n\n"
        "\\textbf{Status tags.} Each equation's reference carries one:\n"
        "\\begin{description}\\setlength{\\itemsep}{1pt}\n"
        + "".join(f"\\item[\\status{{{word}}}] {rt.latex(meaning)}.\n" for word, meaning in status_legend())
        + "\\end{description}\n"
        + rt.latex(SECTION_NOTE)
        + "\n"
    )


def _entry_latex(entry: Entry) -> str:
    eq = entry.eq
    title = rt.latex(eq.title)
    out = [
        f"\n\\subsection{{\\texorpdfstring{{{title}}}{{{rt.plain(eq.title)}}}}}\\label{{{entry.anchor}}}\n"
    ]
    body, status = split_reference(eq)
    out.append(f"\\eqid{{{rt.id_latex(eq.id)}}}\\hfill\\status{{{status}}}\n")
    out.append(
        f"\\begin{{equation}}\\tag{{{entry.number}}}\n{aligned(eq.latex_lines())}\n\\end{{equation}}\n"
    )
    defs = definition_rows(eq.where_latex())
    if defs:
        out.append("where, entry by entry,\n\\begin{gather*}\n" + " \\\\\n".join(defs) + "\n\\end{gather*}\n")
    out.extend(figure_latex(f) for f in entry.figures)
    out.append(_symbols_latex(eq))
    if eq.constraints:
        out.append(
            "\\lbl{Dimensions} " + ", ".join(f"${relation_latex(c)}$" for c in eq.constraints) + ".\n\n"
        )
    out.append(f"{{\\raggedright\\lbl{{Reference}} {rt.latex(body)} (\\status{{{status}}}).\\par}}\n")
    if entry.values:
        out.append(_values_latex(eq, entry.values))
    if eq.variant_names:
        out.append(_variants_latex(entry))
    if eq.invariants:
        names = ", ".join(rt.code_latex(i.name) for i in eq.invariants)
        out.append(f"{{\\raggedright\\lbl{{Invariants}} {names}.\\par}}\n")
    if eq.notes:
        out.append(f"\\lbl{{Notes}} {rt.latex(eq.notes)}\n")
    return "".join(out)


def figure_width(figure: Figure) -> float:
    """The figure's width as a fraction of the line: its PDF's own width, at most the whole line."""
    size = pdf_size(figure.pdf)
    return 1.0 if size is None else min(1.0, size[0] / LINEWIDTH_PT)


def figure_latex(figure: Figure) -> str:
    """A figure under its equation, not floating: the PDF fitted to the text block, then its caption."""
    caption = f"\\textbf{{{rt.latex(figure.title)}.}} {rt.latex(figure.caption)}"
    return f"\\lmfigure{{{figure_width(figure):.3f}}}{{{figure_path(figure, 'pdf')}}}{{{caption}}}\n"


def space_cell(space: str) -> str:
    """A symbol's space for a table cell: a family's index range on a second, smaller line."""
    parts = split_top(space, (r", \quad ",))
    if len(parts) == 1:
        return f"${space}$"
    rng = parts[1].removeprefix(",").strip().removeprefix(r"\quad").strip()
    return f"${parts[0]}$\\newline\\hspace*{{1em}}{{\\small ${rng}$}}"


def _symbols_latex(eq: Equation) -> str:
    role = roles(eq)
    rows = [
        f"{space_cell(eq.space_latex(d))} & {rt.latex(d.meaning)} & \\role{{{role[d.name]}}} \\\\"
        for d in eq.symbols
    ]
    return (
        "\\begin{longtable}{@{}>{\\raggedright\\arraybackslash}p{0.34\\linewidth}"
        ">{\\raggedright\\arraybackslash}p{0.44\\linewidth}"
        ">{\\raggedleft\\arraybackslash}p{\\dimexpr0.22\\linewidth-4\\tabcolsep}@{}}\n"
        + "\n".join(rows)
        + "\n\\end{longtable}\n"
    )


def _sizes_latex(sizes: dict[str, int]) -> str:
    return ", ".join(f"${GLOSSARY[a].latex} = {n}$" for a, n in sizes.items())


def _values_latex(eq: Equation, values: list[Value]) -> str:
    first = values[0]
    lhs = eq.latex_lines()[0].partition(" = ")[0]
    line = f"{lhs} = {substituted_latex(eq, first.sizes)} = {group(first.number, '{,}')}"
    out = [f"\\lbl{{Values}} At {rt.latex(', '.join(first.names))}:\n"]
    out.append(f"\\begin{{equation*}}\n{aligned([line])}\n\\end{{equation*}}\n")
    if len(values) > 1 or len(first.sizes) > 0:
        rows = [
            f"{rt.latex(', '.join(v.names))} & {_sizes_latex(v.sizes)} & ${group(v.number, '{,}')}$ \\\\"
            for v in values
        ]
        out.append(
            "\\begin{longtable}{@{}>{\\raggedright\\arraybackslash}p{0.24\\linewidth}"
            ">{\\raggedright\\arraybackslash}p{0.54\\linewidth}"
            ">{\\raggedleft\\arraybackslash}p{\\dimexpr0.22\\linewidth-4\\tabcolsep}@{}}\n"
            + "\n".join(rows)
            + "\n\\end{longtable}\n"
        )
    return "".join(out)


def _variants_latex(entry: Entry) -> str:
    eq = entry.eq
    out = ["\\lbl{Variants}\n\\begin{description}\\setlength{\\itemsep}{2pt}\n"]
    for name, var in eq.variants().items():
        out.append(f"\\item[{rt.code_latex(name)}] {rt.latex(var.description)}\n")
        lines, where = variant_lines(eq, var)
        if lines:
            out.append(f"\\begin{{equation*}}\n{aligned(lines)}\n\\end{{equation*}}\n")
        if where:
            rows = definition_rows(where)
            out.append("\\begin{gather*}\n" + " \\\\\n".join(rows) + "\n\\end{gather*}\n")
        for v in entry.variant_values.get(name, []):
            out.append(f"At {rt.latex(', '.join(v.names))}: ${group(v.number, '{,}')}$ parameters.\n")
    out.append("\\end{description}\n")
    return "".join(out)


# --------------------------------------------------------------------------------------------- PDF
INSTALL = "rendering a PDF needs latexmk and pdflatex; install texlive-latex-base and latexmk"


def pdf(
    source: str,
    path: Path,
    *,
    timeout: float = 300,
    log: Path | None = None,
    files: Mapping[str, bytes] | None = None,
) -> int:
    """Compile ``source`` with latexmk (pdflatex) in a temporary directory, beside ``files`` (relative path
    -> bytes: the figures' PDFs, ``figure_files(doc, "pdf")``), and write the PDF to ``path`` (and
    pdflatex's log to ``log``, if given); returns the number of pages. A RenderError says what is missing
    or the first LaTeX error."""
    if not (shutil.which("latexmk") and shutil.which("pdflatex")):
        raise RenderError(INSTALL)
    with tempfile.TemporaryDirectory(prefix="lmspec-render-") as tmp:
        (Path(tmp) / "lmspec.tex").write_text(source, encoding="utf-8")
        for name, data in (files or {}).items():
            target = Path(tmp) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        cmd = [
            "latexmk",
            "-pdf",
            "-interaction=nonstopmode",
            "-halt-on-error",
            "-file-line-error",
            "lmspec.tex",
        ]
        env = {**os.environ, "max_print_line": "10000"}
        try:
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise RenderError(f"latexmk did not finish within {timeout:.0f} s") from None
        log_file = Path(tmp) / "lmspec.log"
        made = Path(tmp) / "lmspec.pdf"
        if proc.returncode != 0 or not made.exists():
            exists = log_file.exists()
            text = log_file.read_text(encoding="utf-8", errors="replace") if exists else proc.stdout
            raise RenderError(f"pdflatex could not compile the document: {latex_error(text)}")
        data = made.read_bytes()
        text = log_file.read_text(encoding="utf-8", errors="replace")
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise RenderError(f"cannot write {path}: {exc.strerror or exc}") from exc
    if log is not None:
        log.write_text(text, encoding="utf-8")
    return page_count(text)


def latex_error(log: str) -> str:
    """The first error of a LaTeX log (``./lmspec.tex:12: Undefined control sequence``), on one line."""
    for line in log.splitlines():
        if re.match(r"^(\./)?[^:\s]+\.tex:\d+: ", line) or line.startswith("! "):
            return line.strip().removeprefix("! ")
    tail = [x for x in log.splitlines() if x.strip()]
    return tail[-1].strip() if tail else "no log was written"


def page_count(log: str) -> int:
    """The page count pdflatex reports (``Output written on lmspec.pdf (61 pages, …)``)."""
    m = re.findall(r"Output written on \S+ \((\d+) pages?", log)
    return int(m[-1]) if m else 0
