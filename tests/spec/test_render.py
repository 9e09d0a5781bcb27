"""The rendered spec: its content, the LaTeX compiled by latexmk into a PDF with every title, Markdown that
GitHub renders, and HTML laid out by a real headless Chromium.

The PDF and browser tests need TeX, poppler-utils and Chromium, which `make test` installs (`make os-deps`);
without them they fail with the command that installs them: they are never skipped. Artefacts a person can
look at are kept in build/artefacts/: render.pdf, render-page1.png (page 1 of the PDF), render-figure.png (a
page with figures) and render-html.png (a screenshot). The PDF and the HTML page are those of the whole
catalogue with its figures (issue 17): each equation's data-flow figure and the concept figures.
"""

import html
import json
import os
import re
import shutil
import subprocess
import sys
import unicodedata
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lmspec import spec
from lmspec.spec import SpecError
from lmspec.spec.presets import PRESETS
from lmspec.spec.render import document as R
from lmspec.spec.render import tex as T
from lmspec.spec.render import text as rt
from lmspec.spec.render.web import github_slug, markdown, md_safe

ARTEFACTS = Path(__file__).resolve().parents[2] / "build" / "artefacts"
INSTALL = (
    "apt-get install texlive-latex-base latexmk poppler-utils chromium graphviz librsvg2-bin "
    "(make os-deps does)"
)


def configurations() -> list[R.Configuration]:
    """The model presets (what ``lmspec render`` evaluates the parameter counts at)."""
    return [R.Configuration(p.title, dict(p.sizes), p.count) for p in PRESETS.values()]


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: the rendering tests need them; {INSTALL}")


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(f"no Chromium found: the HTML test lays the page out in a real browser; {INSTALL}")


@pytest.fixture(scope="module")
def doc():
    return R.document(None, configurations())


@pytest.fixture(scope="module")
def tex(doc):
    return T.tex(doc)


@pytest.fixture(scope="module")
def md(doc):
    return markdown(doc)


@pytest.fixture(scope="module")
def figured():
    """The document with its figures: data flow for every equation, and the concept figures (verify/figures,
    what ``lmspec render`` passes in)."""
    need("dot")
    from lmspec.verify.figures import cached_concept_figures

    return R.document(None, configurations(), figures=True, concepts=cached_concept_figures())


@pytest.fixture(scope="module")
def page(figured):
    from lmspec.spec.render.web import html as to_html

    return to_html(figured)


# ------------------------------------------------------------------------------------ the document
def test_one_section_per_family_in_the_tutorials_order(doc):
    assert [s.family for s in doc.sections] == list(spec.FAMILIES)
    assert [s.number for s in doc.sections] == list(range(1, len(spec.FAMILIES) + 1))
    assert [e.eq.id for e in doc.entries] == [e.id for e in spec.all()]
    assert doc.sections[6].title == "Attention" and doc.sections[15].title == "Parameter counts"


def test_numbers_are_the_tutorials_where_known_else_the_subsections(doc):
    numbers = {e.eq.id: e.number for e in doc.entries}
    assert numbers["attention.multi_head"] == "28" and numbers["transformer.ffn"] == "37"
    for section in doc.sections:
        for k, entry in enumerate(section.entries, 1):
            if entry.eq.reference.number is None:
                assert entry.number == f"{section.number}.{k}" and not entry.tutorial
    assert numbers["lm.chain_rule"] == "1.1" and numbers["attention.cross"] == "7.7"
    assert len(set(numbers.values())) == len(numbers)


def test_a_selection_keeps_the_tutorials_order_and_renumbers():
    doc = R.document(["attention", "lm"])
    assert [(s.number, s.family) for s in doc.sections] == [(1, "lm"), (2, "attention")]
    assert {e.eq.id: e.number for e in doc.entries}["attention.scaled_dot_product"] == "2.5"
    with pytest.raises(SpecError, match="unknown family 'nope'; the families are lm, ffnn"):
        R.document(["nope"])


def test_counts_are_evaluated_at_the_presets(doc):
    """Totals from CATALOGUE.md and tests/spec/test_params.py (GPT-2 small, BERT-base, the parts at
    GPT-2 small); GPT-2 medium, large and XL are Hugging Face's published counts of those checkpoints."""
    values = {e.eq.id: [(v.names, v.number) for v in e.values] for e in doc.entries}
    assert values["params.gpt2"] == [
        (["GPT-2 small"], 124_439_808),
        (["GPT-2 medium"], 354_823_168),
        (["GPT-2 large"], 774_030_080),
        (["GPT-2 XL"], 1_557_611_200),
    ]
    assert values["params.bert"][0] == (["BERT-base, uncased"], 110_104_890)
    assert values["params.bert_backbone"] == [(["BERT-base, uncased"], 109_482_240)]
    assert values["params.mlm_head"] == [(["BERT-base, uncased"], 622_650)]
    same = ["GPT-2 small", "BERT-base, uncased", "ViT-B/16 classifier"]  # equal widths merge
    assert values["params.mha"] == [(same, 2_362_368)]
    assert values["params.block"] == [(same, 7_087_872)]
    assert values["params.ffn"] == [(same, 4_722_432)]
    mha = next(e for e in doc.entries if e.eq.id == "params.mha")
    assert [(v.names, v.number) for v in mha.variant_values["no_bias"]] == [(same, 2_359_296)]
    assert values["attention.multi_head"] == [] and values["ffnn.params"] == []


def test_the_formula_at_a_configuration_is_the_count():
    eq = spec.get("params.gpt2")
    sizes = dict(v=50257, n_max=1024, d_e=768, M=12, L=12, d_k=64, d_v=64, d_f=3072)
    text = R.substituted_latex(eq, sizes)
    assert "d_" not in text and r"\cdot" in text
    python = text.replace(r"\cdot", "*").replace(r"\left(", "(").replace(r"\right)", ")")
    assert re.fullmatch(r"[0-9 *+()^{}]+", python)
    assert eval(python.replace("^", "**").replace("{", "(").replace("}", ")")) == 124_439_808


# --------------------------------------------------------------------------------- breaking lines
def _displayed_lines(doc) -> list[str]:
    lines = []
    for entry in doc.entries:
        lines += entry.eq.latex_lines()
        for var in entry.eq.variants().values():
            lines += R.variant_lines(entry.eq, var)[0]
        if entry.values:
            lhs = entry.eq.latex_lines()[0].partition(" = ")[0]
            lines.append(f"{lhs} = {R.substituted_latex(entry.eq, entry.values[0].sizes)} = 1")
    return lines


def test_long_lines_break_at_sums_and_rejoin_to_the_line(doc):
    broken = 0
    for line in _displayed_lines(doc):
        rows = T.break_line(line)
        for row in rows:
            assert row.count(r"\left") == row.count(r"\right"), row
        if len(rows) > 1:
            broken += 1
            for row in rows:
                assert T.tex_width(row.replace("&", "")) <= T.LINE_LIMIT + 4, row
        joined = " ".join(rows).replace(" &= ", " = ").replace(r"&\quad ", "")
        joined = joined.replace(r" \right. \left. ", " ").replace(r"\right. \left. ", "")
        assert re.sub(r"\s+", "", joined.lstrip("&")) == re.sub(r"\s+", "", line)
    assert broken >= 5  # GPT-2's and BERT's counts, the MLM masking distribution, the values lines


def test_a_product_too_wide_is_cut_inside_its_parentheses():
    line = (
        r"N = L \left("
        + " + ".join(f"a_{{{i}}} b_{{{i}}} c_{{{i}}} d_{{{i}}}" for i in range(12))
        + r"\right)"
    )
    rows = T.break_line(line, limit=40)
    assert rows[0].startswith(r"N &= L \left(a_{0}") and rows[0].endswith(r"\right.")
    assert all(r.startswith(r"&\quad \left. + ") for r in rows[1:])
    assert rows[-1].endswith(r"\right)") and not rows[-1].endswith(r"\right.")


# --------------------------------------------------------------------------------------- prose
def test_notes_become_math_text_and_code():
    assert rt.latex("c_t = f_t ⊙ c_{t−1} + i_t ⊙ c̃_t: the cell") == (
        r"$c_{t} = f_{t} \odot c_{t-1} + i_{t} \odot \tilde{c}_{t}$: the cell"
    )
    assert rt.latex("E ∈ ℝ^{d_e×v}; nn.Embedding.weight holds Eᵀ") == (
        r"$E \in \mathbb{R}^{d_{e}\times v}$; \texttt{nn.\allowbreak{}Embedding.\allowbreak{}weight} "
        r"holds $E^{\top}$"
    )
    assert rt.latex("the variant unseen_zero of lm.ngram, i.e. a row") == (
        r"the variant \texttt{unseen\char95\relax{}\allowbreak{}zero} of \texttt{lm.\allowbreak{}ngram}, "
        r"i.e. a row"
    )
    assert rt.latex("scaled by 1/√d_k") == r"scaled by $1/\sqrt{d_{k}}$"
    assert rt.to_html("h_{t−1} & <script>") == (
        '<span class="m"><i>h</i><sub><i>t</i>−1</sub></span> &amp; &lt;script&gt;'
    )
    assert (
        rt.to_md("see *this* and _that_ [link](url) for $5")
        == r"see \*this\* and \_that\_ \[link\](url) for \$5"
    )
    assert rt.to_md("k_i ∈ [0, v)") == r"$`k_{i} \in`$ \[0, $`v`$)"


SPECIALS = r"50% of a_b & c # {x} ~y ^z \w $5 <a> |b| 'quoted' — and –"


def test_latex_special_characters_are_escaped_and_typeset(tmp_path):
    need("pdflatex", "pdftotext")
    body = rt.latex(SPECIALS)
    assert r"\%" in body and r"\&" in body and r"\#" in body and r"\$" in body and r"\{" in body
    src = "\\documentclass{article}\n\\begin{document}\n" + body + "\n\\end{document}\n"
    (tmp_path / "t.tex").write_text(src, encoding="utf-8")
    proc = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:]
    text = subprocess.run(["pdftotext", "t.pdf", "-"], cwd=tmp_path, capture_output=True, text=True).stdout
    flat = " ".join(text.split())
    for piece in ("50% of", "& c #", "{x}", "$5", "<a>", "|b|", "— and –"):
        assert piece in flat, (piece, flat)


def test_ids_copied_from_the_pdf_keep_their_underscores(tmp_path):
    """Issue 16 §2: LaTeX's ``\\_`` in OT1 is a drawn rule that pdftotext (and a PDF viewer's copy) gives
    back as a space; the renderer writes cmtt's own underscore glyph instead."""
    need("pdflatex", "pdftotext")
    ids = ["attention.scaled_dot_product", "params.bert_backbone", "lm.top_k", "W_1"]
    eqids = "".join(f"\\eqid{{{rt.id_latex(i)}}}\n\n" for i in ids)
    code = rt.latex("the variant unseen_zero of lm.ngram and transformer.block_pre_ln[eps]")
    preamble = T._PREAMBLE % {"title": "t"}
    src = preamble + "\\begin{document}\n" + eqids + code + "\n\\end{document}\n"
    (tmp_path / "t.tex").write_text(src, encoding="utf-8")
    proc = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:]
    text = subprocess.run(["pdftotext", "t.pdf", "-"], cwd=tmp_path, capture_output=True, text=True).stdout
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert lines[:4] == ids  # W_1: the underscore does not swallow the digit after it
    flat = " ".join(text.split())
    assert "unseen_zero of lm.ngram and transformer.block_pre_ln[eps]" in flat
    # the escape LaTeX offers loses them: what the renderer wrote before
    plain = preamble + "\\begin{document}\n\\eqid{" + rt.text_latex(ids[0]) + "}\n\\end{document}\n"
    (tmp_path / "t.tex").write_text(plain, encoding="utf-8")
    subprocess.run(["pdflatex", "-interaction=nonstopmode", "t.tex"], cwd=tmp_path, capture_output=True)
    lost = subprocess.run(["pdftotext", "t.pdf", "-"], cwd=tmp_path, capture_output=True, text=True).stdout
    assert ids[0] not in lost and "attention.scaled" in lost


def test_every_character_of_the_catalogue_has_a_form(doc, tex, md, page, figured):
    T.tex(figured)  # the figures' captions too (the gate's "a ≪ 0" once came out as "?")
    assert rt.UNKNOWN == set()
    assert not re.search(r"\$[^$]*\?[^$]*\$", tex)  # no character written as "?" in math


def test_every_format_says_what_each_tag_means_and_that_section_numbers_are_reconstructed(doc, tex, md, page):
    """Issue 16 §4: the document explains its status tags, and prints a section number as reconstructed."""
    legend = R.status_legend()
    assert [word for word, _ in legend] == [
        "confirmed",
        "reconstructed",
        "count confirmed, form reconstructed",
    ]
    flat = {
        fmt: " ".join(text.split()) for fmt, text in (("tex", tex), ("md", md), ("html", html.unescape(page)))
    }
    for word, meaning in legend:
        assert f"\\item[\\status{{{word}}}] {rt.latex(meaning)}." in tex
        assert f"| *{word}* | {rt.to_md(meaning)} |" in md
        assert f'<tr><td><span class="status">{word}</span></td><td>{rt.to_html(meaning)}</td></tr>' in page
    for fmt, text in flat.items():
        assert "are reconstructions of the tutorial's numbering" in text, fmt
        assert "(28), multi-head attention, and (37), the position-wise FFN step" in text, fmt
        assert "from the tutorial or" not in text, fmt  # "confirmed from the tutorial": what it overclaimed
    # each entry: its status word beside its id, and its reference's section number marked
    assert "\\eqid{gpt2.lm\\char95\\relax{}head}\\hfill\\status{reconstructed}" in tex
    assert "`bert.pooler` · *count confirmed, form reconstructed*" in md
    assert '<code>activation.gelu</code><span class="status">reconstructed</span>' in page
    assert '<code>gpt2.forward</code><span class="status">confirmed</span>' in page
    assert "Transformers: attention (§4, numbering reconstructed), equation (28)" in flat["html"]
    assert "(\\ensuremath{\\S}4, numbering reconstructed)" in tex
    assert not re.search(r"Saleh & Paquelet 2024, §\d", flat["html"] + flat["md"])


def test_a_mask_prints_like_the_other_inputs_in_the_html_page(page):
    """Issue 16 §2: S (an additive mask) has the row every input has — its space as MathML, its meaning,
    its role — and its space is written like theirs: the set of its entries to the power of its shape."""
    article = re.search(
        r'<article class="equation" id="eq-attention-scaled-dot-product">.*?</article>', page, re.S
    )
    rows = re.findall(
        r"<tr><td>(<math .*?</math>)</td><td>(.*?)</td><td class=\"role\">(\w+)</td></tr>", article.group(0)
    )
    by_name = {re.search(r"<mi>(\w+)</mi>", m).group(1): (m, meaning, role) for m, meaning, role in rows}
    assert list(by_name) == ["Q", "K", "V", "S", "P"]
    spaces = {}
    for name, (math, meaning, role) in by_name.items():
        head = '<math xmlns="http://www.w3.org/1998/Math/MathML" display="inline">'
        assert math.startswith(f"{head}<mrow><mi>{name}</mi><mo>∈</mo><msup>")
        spaces[name] = re.search(r"<mo>∈</mo><msup>(.*)</msup></mrow></math>$", math).group(1)
        assert meaning and role == ("output" if name == "P" else "input")
    assert spaces["Q"].startswith("<mi>ℝ</mi><mrow><mi>n</mi><mo>×</mo>")
    assert spaces["S"] == (
        '<mrow><mo stretchy="false">{</mo><mn>0</mn><mo>,</mo><mrow><mo>−</mo><mi>∞</mi></mrow>'
        '<mo stretchy="false">}</mo></mrow><mrow><mi>n</mi><mo>×</mo><mi>n</mi></mrow>'
    )


# --------------------------------------------------------------------------------------------- TeX
LATEX_BASE = {"inputenc", "amsmath", "amssymb", "geometry", "array", "longtable", "hyperref", "graphicx"}


def test_tex_is_a_standalone_document_on_texlive_latex_base(tex, doc):
    assert tex.startswith(r"\documentclass[11pt,a4paper]{article}") and tex.rstrip().endswith(
        r"\end{document}"
    )
    packages = set()
    for names in re.findall(r"\\usepackage(?:\[[^\]]*\])?\{([^}]*)\}", tex):
        packages |= {p.strip() for p in names.split(",")}
    assert packages <= LATEX_BASE, packages - LATEX_BASE
    assert r"\tableofcontents" in tex and tex.count(r"\section{") == len(doc.sections)
    assert tex.count(r"\subsection{") == len(doc.entries)
    assert r"\begin{equation}\tag{28}" in tex and r"\begin{equation}\tag{37}" in tex
    assert r"\begin{equation}\tag{1.1}" in tex
    assert r"\begin{equation}\tag{16.10}" + "\n" + r"N_{\mathrm{GPT2}} =" in tex  # after segment, pooler
    assert r"124{,}439{,}808" in tex
    mha = spec.get("attention.multi_head")
    cell = T.space_cell(mha.space_latex(mha.declared("W_Q")))
    assert f"{cell} & query projection of head $m$ & \\role{{parameter}} \\\\" in tex
    assert T.space_cell(r"W \in X, \quad m = 1, \ldots, M") == (
        r"$W \in X$\newline\hspace*{1em}{\small $m = 1, \ldots, M$}"
    )


def _keep(path: Path) -> None:
    """A copy of ``path`` in build/artefacts/ for people to look at, put in place whole (os.replace): pytest's
    workers build their own, and none reads another's half-written file."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    partial = ARTEFACTS / f".{path.name}.{os.getpid()}"
    shutil.copyfile(path, partial)
    os.replace(partial, ARTEFACTS / path.name)


@pytest.fixture(scope="module")
def built(figured, tmp_path_factory):
    """The whole catalogue with its figures, compiled once for every PDF test (in this worker's own folder;
    the PDF and its log are also kept in build/artefacts/)."""
    need("latexmk", "pdflatex", "pdfinfo", "pdftotext", "pdftoppm", "pdffonts", "rsvg-convert")
    where = tmp_path_factory.mktemp("render")
    pdf, log = where / "render.pdf", where / "render.log"
    pages = T.pdf(T.tex(figured), pdf, log=log, files=R.figure_files(figured, "pdf"))
    _keep(pdf)
    _keep(log)
    return pdf, pages, log.read_text(encoding="utf-8")


def _norm(text: str) -> str:
    """Letters and digits only, lower case: typeset subscripts, ligatures and hyphens compare equal."""
    return re.sub(r"[^a-z0-9]", "", unicodedata.normalize("NFKC", text).lower())


def test_the_pdf_has_a_plausible_page_count_and_every_title(built, figured):
    doc = figured
    pdf, pages, _ = built
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1)) == pages
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert text.count("\f") == pages
    # a title page with the contents, then at most a page per equation on average
    assert len(doc.sections) + 3 < pages < len(doc.entries) * 2
    flat = _norm(text)
    missing = [e.eq.title for e in doc.entries if _norm(e.eq.title) not in flat]
    assert not missing
    for word in ("The lmspec specification", "Contents", "Notation", "(28)", "(37)", "124,439,808"):
        assert word in text
    assert text.count("confirmed") + text.count("CONFIRMED") > 0
    # every id, as the PDF gives it back when copied: underscores and all (issue 16 §2)
    words = set(text.split())
    assert [e.eq.id for e in doc.entries if e.eq.id not in words] == []


def test_no_line_sticks_out_of_the_text_block_and_every_font_is_type1(built):
    pdf, _, log = built
    widths = [float(w) for w in re.findall(r"Overfull \\hbox \(([0-9.]+)pt too wide\)", log)]
    assert max(widths, default=0.0) < 3.0, sorted(widths)[-5:]
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert "Type 1" in fonts and "Type 3" not in fonts  # no bitmap fallback (TS1 symbols need none)


FIGURE_LOG = re.compile(
    r"^lmspec-figure (\S+): ([0-9.]+)pt x ([0-9.]+)pt in ([0-9.]+)pt x ([0-9.]+)pt$", re.M
)


def test_every_figure_is_in_the_pdf_and_fits_the_text_block(built, figured):
    """Each figure's box as LaTeX set it (the preamble's \\lmfigure writes it to the log): as wide as the line
    at most, at most FIGURE_HEIGHT of the text block high, never wider than its own PDF (no upscaling)."""
    _, _, log = built
    boxes = {m[0]: tuple(map(float, m[1:])) for m in FIGURE_LOG.findall(log)}
    kinds = {f.name for f in figured.figures}
    assert len(figured.figures) > len(figured.entries)  # every equation's, and the concept figures
    assert {"attention-causal-mask--causal-mask", "gpt2-forward--gpt2-attention-block1"} <= kinds
    assert sorted(boxes) == sorted(R.figure_path(f, "pdf") for f in figured.figures)
    for f in figured.figures:
        width, height, line, text_height = boxes[R.figure_path(f, "pdf")]
        natural = T.pdf_size(f.pdf)
        # within TeX's \\hfuzz (0.1 pt): width=1.000\\linewidth with keepaspectratio rounds to 0.012 pt over
        assert 20 < width <= line + 0.1 and 20 < height <= T.FIGURE_HEIGHT * text_height + 0.1, f.name
        assert width <= natural[0] + 0.5, f"{f.name} is drawn larger than it is"


def test_a_page_with_figures_as_a_png_a_person_can_look_at(built, figured):
    pdf, _, _ = built
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    number = next(i for i, p in enumerate(text.split("\f"), 1) if "Sinusoidal positional encoding." in p)
    out = pdf.parent / "render-figure"
    subprocess.run(
        [
            "pdftoppm",
            "-f",
            str(number),
            "-l",
            str(number),
            "-r",
            "80",
            "-png",
            "-singlefile",
            str(pdf),
            str(out),
        ],
        check=True,
    )
    _keep(out.with_suffix(".png"))
    with Image.open(out.with_suffix(".png")) as im:
        rgb = np.asarray(im.convert("RGB")).astype(int)
    coloured = (np.abs(rgb[..., 0] - rgb[..., 2]) > 40).mean()  # the heat map and the role fills
    assert coloured > 0.01, coloured


def test_page_one_as_a_png_a_person_can_look_at(built):
    pdf, _, _ = built
    out = pdf.parent / "render-page1"
    subprocess.run(
        ["pdftoppm", "-f", "1", "-l", "1", "-r", "80", "-png", "-singlefile", str(pdf), str(out)], check=True
    )
    png = out.with_suffix(".png")
    _keep(png)
    with Image.open(png) as im:
        assert im.format == "PNG" and 600 < im.width < 700 and 900 < im.height < 1000  # A4 at 80 dpi
        grey = np.asarray(im.convert("L"))
    ink = float((grey < 128).mean())
    assert 0.003 < ink < 0.2, ink  # text on a white page: neither blank nor a black block
    assert grey.min() < 50 and grey.max() > 250


def test_a_latex_error_is_reported_with_its_line(tmp_path):
    need("latexmk", "pdflatex")
    src = "\\documentclass{article}\n\\begin{document}\nfine\n\\undefinedmacro\n\\end{document}\n"
    with pytest.raises(T.RenderError) as info:
        T.pdf(src, tmp_path / "x.pdf")
    assert (
        str(info.value)
        == "pdflatex could not compile the document: ./lmspec.tex:4: Undefined control sequence."
    )
    assert not (tmp_path / "x.pdf").exists()


# ---------------------------------------------------------------------------------------- Markdown
def _math_blocks(md: str) -> list[tuple[int, str]]:
    lines = md.split("\n")
    blocks, start = [], None
    for i, line in enumerate(lines):
        if line.strip() == "$$":
            if start is None:
                start = i
            else:
                blocks.append((start, "\n".join(x.strip() for x in lines[start + 1 : i])))
                start = None
        else:
            assert "$$" not in line, f"line {i + 1}: $$ must stand on its own line: {line}"
    assert start is None, "a $$ block is not closed"
    return blocks


def test_markdown_shows_every_equation_in_a_display_block(md, doc):
    blocks = _math_blocks(md)
    lines = md.split("\n")
    for entry in doc.entries:
        marker = f"**({entry.number})** `{entry.eq.id}`"
        at = lines.index(next(x for x in lines if x.startswith(marker)))
        first = next(b for start, b in blocks if start > at)
        for line in entry.eq.latex_lines():
            lhs = md_safe(line.partition(" = ")[0])
            assert lhs in first, (entry.eq.id, lhs)
    assert md.count("**(28)** `attention.multi_head`") == 1 and "**(37)** `transformer.ffn`" in md


def test_markdown_math_is_safe_from_githubs_markdown(md):
    for _, block in _math_blocks(md):
        assert r"\tag" not in block
        for row in block.split("\n"):
            body = row[:-2] if row.endswith("\\\\") else row
            assert not re.search(r"\\[^A-Za-z]", body), row  # no \{ \, \\ mid-line: Markdown would eat them
    inline = re.findall(r"\$`([^`]*)`\$", md)
    assert inline and all("$" not in x for x in inline)


def test_markdown_contents_link_to_the_headings(md, doc):
    body = md.split("## Contents", 1)[1]
    links = re.findall(r"^\s*- \[[^\]]*(?:\\\][^\]]*)*\]\(#([^)]+)\)", body, re.M)
    assert len(links) == 1 + len(doc.sections) + len(doc.entries)
    anchors: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6} (.+)$", md, re.M):
        text = re.sub(r"\\(.)", r"\1", heading)  # what GitHub shows: the escapes removed
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        n = anchors.get(slug, 0)
        anchors[slug] = n + 1
        anchors.setdefault(slug if n == 0 else f"{slug}-{n}", 1)
    unresolved = [a for a in links if a not in anchors]
    assert not unresolved
    assert github_slug("4.4 LSTM step: hidden state h_t = o_t ⊙ tanh(c_t)") == (
        "44-lstm-step-hidden-state-h_t--o_t--tanhc_t"
    )


# -------------------------------------------------------------------------------------------- HTML
class _Tags(HTMLParser):
    VOID = frozenset({"meta", "br", "img", "hr", "link", "input", "mspace", "none", "mprescripts"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.ids += [v for k, v in attrs if k == "id"]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.ids += [v for k, v in attrs if k == "id"]

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()


def test_html_is_one_self_contained_file(page, doc):
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    for banned in ("<script", "<link", "@import", "<img", "<iframe"):
        assert banned not in page
    assert not re.search(
        r"url\((?!#fig-)", page
    )  # the figures' url(#…) point inside the page, at their own ids
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {
        "http://www.w3.org/1998/Math/MathML",
        "http://www.w3.org/2000/svg",  # the inline figures' namespaces, no address to fetch
        "http://www.w3.org/1999/xlink",
    }
    tags = _Tags()
    tags.feed(page)
    assert not tags.errors and tags.stack == []
    assert len(tags.ids) == len(set(tags.ids))
    for href in re.findall(r'href="#([^"]+)"', page):
        assert href in tags.ids
    assert page.count('<article class="equation"') == len(doc.entries)
    assert '<span class="eqno">(28)</span>' in page and '<span class="eqno">(37)</span>' in page
    assert html.escape("Saleh & Paquelet") in page


MEASURE = """<script>
(function () {
  function box(el) { const r = el.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; }
  const out = {equations: [], fractions: [], display: []};
  document.querySelectorAll('article.equation').forEach(function (a) {
    const m = a.querySelector('.display math');
    out.equations.push({id: a.id, box: box(m)});
    out.display.push(getComputedStyle(m).display);
  });
  out.figures = [];
  out.width = document.documentElement.clientWidth;
  document.querySelectorAll('figure.figure').forEach(function (f) {
    const s = f.querySelector('svg');
    const r = s.getBoundingClientRect();
    const shown = getComputedStyle(s).visibility === 'visible' && getComputedStyle(s).display !== 'none';
    out.figures.push({id: f.id, box: box(s), column: box(f.closest('article')), shown: shown});
  });
  document.querySelectorAll('mfrac').forEach(function (f) {
    if (f.children.length === 2) { out.fractions.push([box(f.children[0]), box(f.children[1])]); }
  });
  const pre = document.createElement('pre');
  pre.id = 'lmspec-measure';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""


def test_html_lays_out_in_headless_chromium(page, figured, tmp_path):
    doc = figured
    """A copy of the page with a measuring script (the shipped page has none): every equation's <math>
    has a size, fractions stack (numerator above denominator: MathML laid out, not inline text)."""
    browser = chromium()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", MEASURE + "\n</body>"), encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1100,1400"]
    dom = subprocess.run(
        [browser, *flags, "--virtual-time-budget=20000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=300,
    ).stdout  # fmt: skip
    found = re.search(r'<pre id="lmspec-measure">(.*?)</pre>', dom, re.S)
    assert found, "Chromium did not run the measuring script"
    data = json.loads(html.unescape(found.group(1)))
    assert [e["id"] for e in data["equations"]] == [e.anchor for e in doc.entries]
    flat = [e["id"] for e in data["equations"] if not (e["box"][2] > 20 and e["box"][3] > 8)]
    assert not flat, f"equations without a size: {flat}"
    assert set(data["display"]) == {"block math"}
    assert len(data["fractions"]) > 20
    # every figure has a size, shows, and stays within its column and the page (issue 17)
    assert [f["id"] for f in data["figures"]] == [f"fig-{f.name}" for e in doc.entries for f in e.figures]
    assert len(data["figures"]) > len(doc.entries)
    for f in data["figures"]:
        left, _, width, height = f["box"]
        c_left, _, c_width, _ = f["column"]
        assert f["shown"] and width > 50 and height > 30, f
        assert c_left - 0.5 <= left and left + width <= c_left + c_width + 0.5 <= data["width"], f
    for num, den in data["fractions"]:
        assert num[1] + num[3] <= den[1] + 1.0  # the numerator ends above the denominator
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTEFACTS / "render-html.png"
    shot.unlink(missing_ok=True)
    (tmp_path / "page.html").write_text(page, encoding="utf-8")
    subprocess.run(
        [browser, *flags, f"--screenshot={shot}", (tmp_path / "page.html").as_uri()],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    with Image.open(shot) as im:
        assert im.size == (1100, 1400)
        grey = np.asarray(im.convert("L"))
    assert 0.003 < float((grey < 128).mean()) < 0.3


def test_the_face_renders_each_format_through_its_writer():
    import lmspec.spec.render as face
    from lmspec.spec.render.web import html as to_html

    d = R.document(["norm"])
    assert face.render("tex", ["norm"]) == T.tex(d)
    assert face.render("md", ["norm"]) == markdown(d)
    assert face.render("html", ["norm"]) == to_html(d)
    with pytest.raises(
        SpecError, match=r"^a PDF is written to a file: pdf\(render\('tex', \.\.\.\), path\)$"
    ):
        face.render("pdf")
    with pytest.raises(SpecError, match="^unknown format 'docx'; choose one of tex, pdf, md, html$"):
        face.render("docx")
    # what the command line uses, from the face (and from the modules that define it)
    assert face.FORMATS == R.FORMATS == ("tex", "pdf", "md", "html")
    assert (face.Configuration, face.roles) == (R.Configuration, R.roles)
    assert (face.pdf, face.RenderError, face.INSTALL) == (T.pdf, T.RenderError, T.INSTALL)
    assert face.document is R and face.tex is T


def test_rendering_imports_no_torch_and_no_numpy():
    code = (
        "import sys; import lmspec.spec.render as R; R.render('md', ['attention']); "
        "R.render('html', ['norm']); R.tex.tex(R.document.document(['lm'])); "
        "print(sorted(m for m in ('torch', 'numpy', 'lmspec.verify', 'lmspec.impl') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


# -------------------------------------------------------------------------------------- determinism
def test_the_same_catalogue_gives_the_same_bytes(tex, md):
    again = R.document(None, configurations())
    assert T.tex(again) == tex and markdown(again) == md
