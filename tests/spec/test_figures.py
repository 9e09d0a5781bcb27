"""Data-flow figures (spec/dataflow/; by id, spec/render/figures.py): one per equation, made from its spec
and read back from the SVG Graphviz draws: blocks labelled with the symbols and their spaces and sized by
their shapes, families as stacks, steps named by their operators, called equations as labelled boxes, one
``dot`` run per figure (or one for a document's many, the same drawings)."""

import re
import shutil
import warnings
import xml.etree.ElementTree as ET

import pytest

from lmspec import spec
from lmspec.spec import SpecError
from lmspec.spec import dataflow as F
from lmspec.spec.dataflow import blocks, graphviz
from lmspec.spec.printing import SpecUnicodePrinter
from lmspec.spec.render.figures import figure_for
from lmspec.spec.tensors import Family, tensor

SVG = "{http://www.w3.org/2000/svg}"
#: A handful drawn to SVG (Graphviz runs cost some 50 ms each): families, calls, recurrences, counts.
DRAWN = (
    "attention.multi_head",
    "transformer.block_pre_ln",
    "transformer.stack",
    "lstm.cell",
    "vit.input",
    "params.block",
)


def need_dot() -> None:
    if shutil.which("dot") is None:
        pytest.fail(f"dot not found: the figure tests draw with Graphviz; {F.INSTALL_DOT}")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Each test draws into a cache of its own, from an empty memory."""
    monkeypatch.setenv("LMSPEC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(graphviz, "_MEMORY", {})


class Drawing:
    """An SVG figure read back: the nodes by id (their texts and filled polygons), the edges, the clusters."""

    def __init__(self, svg: str) -> None:
        self.root = ET.fromstring(svg)
        self.nodes: dict[str, ET.Element] = {}
        self.titles: dict[str, str] = {}  # DOT name -> id
        self.clusters: dict[str, ET.Element] = {}
        self.edges: list[tuple[str, str]] = []
        for g in self.root.iter(f"{SVG}g"):
            cls = g.get("class", "").split()
            title = g.findtext(f"{SVG}title")
            if "node" in cls:
                self.nodes[g.get("id")] = g
                self.titles[title] = g.get("id")
            elif "cluster" in cls:
                self.clusters[g.get("id")] = g
            elif "edge" in cls:
                src, _, dst = title.partition("->")
                self.edges.append((src.removesuffix(":b"), dst.removesuffix(":b")))
        self.edges = [(self.titles[a], self.titles[b]) for a, b in self.edges]

    def texts(self, node: str) -> list[str]:
        return [t.text or "" for t in self.nodes[node].iter(f"{SVG}text")]

    def all_texts(self) -> list[str]:
        return [t.text or "" for t in self.root.iter(f"{SVG}text")]

    def boxes(self, g: ET.Element, fill: str | None = None) -> list[tuple[float, float, float, float]]:
        """(left, top, width, height) of the polygons of ``g`` (those filled with ``fill``)."""
        out = []
        for p in g.iter(f"{SVG}polygon"):
            if fill is None or p.get("fill") == fill:
                xs, ys = zip(
                    *(tuple(map(float, pt.split(","))) for pt in p.get("points").split()), strict=True
                )
                out.append((min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)))
        return out

    def outline(self, g: ET.Element) -> tuple[float, float, float, float]:
        """(left, top, width, height) of the path around ``g`` (a rounded box: a cluster's outline)."""
        numbers = [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", g.find(f"{SVG}path").get("d"))]
        xs, ys = numbers[0::2], numbers[1::2]
        return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)

    def block(self, eq, name: str) -> tuple[float, float]:
        """Width and height of the front sheet of the block of ``name`` (its largest filled polygon)."""
        fill = F.ROLE_FILLS[blocks.roles(eq)[name]]
        *_, w, h = max(self.boxes(self.nodes[f"sym:{name}"], fill), key=lambda b: b[2] * b[3])
        return w, h

    def reaches(self, src: str, dst: str) -> bool:
        seen, todo = set(), [src]
        while todo:
            node = todo.pop()
            if node == dst:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(b for a, b in self.edges if a == node)
        return False


@pytest.fixture(scope="module")
def drawings() -> dict[str, Drawing]:
    need_dot()
    return {i: Drawing(F.dataflow_svg(spec.get(i))) for i in DRAWN}


def test_every_equation_and_variant_yields_a_graph_with_a_block_per_symbol():
    equations = spec.all()
    assert len(equations) >= 84
    for eq in [*equations, *(v for e in equations for v in e.variants().values())]:
        dot = F.dataflow_dot(eq)
        assert dot.startswith(f'digraph "{eq.id}" {{') and dot.endswith("}\n"), eq.id
        for d in eq.symbols:
            assert f'"sym:{d.name}" [shape=plain' in dot, (eq.id, d.name)
            assert blocks.h(eq.space(d).partition(", ")[0]) in dot, (eq.id, d.name)
        for b in eq.bindings:  # every definition arrives at the block it defines
            assert f'-> "sym:{b.name}":b' in dot, (eq.id, b.name)


def test_svg_labels_carry_each_symbol_and_its_space(drawings):
    for eq_id, drawing in drawings.items():
        eq = spec.get(eq_id)
        p = SpecUnicodePrinter(eq.tex_names())
        for d in eq.symbols:
            symbol, *space = drawing.texts(f"sym:{d.name}")
            assert symbol == p.doprint(d[d.indices] if isinstance(d, Family) else d), (eq_id, d.name)
            assert ", ".join(space) == eq.space(d), (eq_id, d.name)  # as `lmspec show` prints it


def test_blocks_are_sized_by_their_shapes_at_the_example_sizes(drawings):
    mha, block = spec.get("attention.multi_head"), drawings["attention.multi_head"]
    # 6 pt per entry at n = 6, d_e = 8, d_k = d_v = 4, M = 2: tokens are columns, attention is in row form
    assert block.block(mha, "H") == (36, 48)  # H ∈ ℝ^(d_e×n)
    assert block.block(mha, "Q") == (24, 36)  # Q^(m) ∈ ℝ^(n×d_k)
    assert block.block(mha, "S") == (36, 36)  # S ∈ {0,−∞}^(n×n)
    assert block.block(mha, "W_O") == (48, 48)  # W_O ∈ ℝ^(M·d_v×d_e)
    assert block.block(mha, "b_O") == (6, 48)  # b_O ∈ ℝ^(d_e), a column
    texts = " ".join(block.all_texts())
    assert "blocks drawn at n = 6, d_e = 8, M = 2, d_k = 4, d_v = 4 (6 pt per entry)" in texts
    # FFN width d_f = 16 in the block: W_1 ∈ ℝ^(d_f×d_e) is twice as high as wide
    assert drawings["transformer.block_pre_ln"].block(spec.get("transformer.block_pre_ln"), "W_1") == (48, 96)


def test_sizes_follow_the_equations_constraints_and_can_be_given():
    vit = spec.get("vit.input")  # n = N_p + 1 (N_p, printed N, the number of patches)
    sizes = F.example_sizes(vit)
    assert (sizes["N_p"], sizes["n"]) == (4, 5)
    assert "n = 5" in F.dataflow_dot(vit) and "n = 10, d_e = 8, N = 9" in F.dataflow_dot(vit, {"N_p": 9})
    mha = spec.get("attention.multi_head")
    assert "n = 3, d_e = 8" in F.dataflow_dot(mha, {"n": 3})
    with pytest.raises(SpecError, match=r"figure of attention.multi_head: unknown axis 'q' in sizes"):
        F.dataflow_dot(mha, {"q": 3})
    with pytest.raises(SpecError, match=r"the size of n must be a positive integer, found 0"):
        F.dataflow_dot(mha, {"n": 0})


def test_a_wrong_shape_in_a_spec_changes_the_figure(monkeypatch):
    need_dot()
    eq = spec.get("attention.multi_head")
    before = F.dataflow_dot(eq)
    H = eq.declared("H")
    wrong = tensor("H", (H.shape[1], H.shape[0]))  # n × d_e: tokens as rows, against the tutorial
    monkeypatch.setattr(eq, "inputs", tuple(wrong if d is H else d for d in eq.inputs))
    after = F.dataflow_dot(eq)
    assert after != before
    drawing = Drawing(F.dataflow_svg(eq))
    assert drawing.texts("sym:H")[1] == "H ∈ ℝ^(n×d_e)"
    assert drawing.block(eq, "H") == (48, 36)  # was 36 wide, 48 high


def test_families_are_stacks_and_single_tensors_are_not(drawings):
    drawing = drawings["attention.multi_head"]
    fill = F.ROLE_FILLS["parameter"]
    w_q = drawing.nodes["sym:W_Q"]
    assert "family" in w_q.get("class").split()
    sheets = drawing.boxes(w_q, fill)
    assert len(sheets) > 3  # the front sheet and the rims of two behind it
    left, top = min(b[0] for b in sheets), min(b[1] for b in sheets)
    right, bottom = max(b[0] + b[2] for b in sheets), max(b[1] + b[3] for b in sheets)
    assert (right - left, bottom - top) == (24 + 8, 48 + 8)  # two sheets, 4 pt up and right each
    w_o = drawing.nodes["sym:W_O"]
    assert "family" not in w_o.get("class").split() and len(drawing.boxes(w_o, fill)) == 1
    stack = drawings["transformer.stack"]
    assert "family" in stack.nodes["sym:H"].get("class").split()  # H^(l), l = 0..L: per layer
    assert stack.texts("sym:H")[1:] == ["H^(l) ∈ ℝ^(d_e×n)", "l = 0..L"]


def test_steps_are_named_by_their_operators_and_data_flows_to_the_outputs(drawings):
    drawing = drawings["attention.multi_head"]
    steps = {drawing.texts(n)[0] for n in drawing.nodes if n.startswith("step")}
    assert {"matmul", "broadcast", "+", "softmax (rows)", "matmul × 1/√d_k", "concat heads", "ᵀ"} <= steps
    assert drawing.reaches("sym:H", "sym:A") and drawing.reaches("sym:S", "sym:P")
    assert drawing.reaches("sym:W_O", "sym:A") and not drawing.reaches("sym:A", "sym:H")
    assert not drawing.reaches("sym:V", "sym:Q")
    cell = drawings["lstm.cell"]
    assert "⊙" in {cell.texts(n)[0] for n in cell.nodes if n.startswith("step")}
    assert cell.reaches("sym:f_t", "sym:c_t") and cell.reaches("sym:c_tilde", "sym:c_t")
    assert "count" not in F.STEP_NAMES and drawings["params.block"].reaches("step1", "sym:N")


def test_a_composite_shows_the_equations_it_calls_as_labelled_boxes(drawings):
    drawing = drawings["transformer.block_pre_ln"]
    calls = {n: " ".join(drawing.texts(n)) for n in drawing.nodes if n.startswith("call:")}
    assert sorted(n.rsplit(":", 1)[0] for n in calls) == ["call:attention.multi_head", "call:transformer.ffn"]
    texts = " ".join(calls.values())
    assert "MHA(Ĥ, S)" in texts and "calls attention.multi_head: Multi-head attention → A" in texts
    assert "calls transformer.ffn: Position-wise feed-forward network → D" in texts
    mha = next(n for n in calls if "multi_head" in n)
    assert drawing.reaches("sym:H_hat", mha) and drawing.reaches(mha, "sym:X")
    # the parameters only the call reads are boxed together, the box labelled with the callee
    box = drawing.clusters["params:attention.multi_head"]
    assert "parameters of attention.multi_head" in [t.text for t in box.iter(f"{SVG}text")]
    left, top, width, height = drawing.outline(box)
    for name in ("W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V", "W_O", "b_O"):
        for x, y, w, h in drawing.boxes(drawing.nodes[f"sym:{name}"], F.ROLE_FILLS["parameter"]):
            assert left <= x and x + w <= left + width and top <= y and y + h <= top + height, name
    stack = drawings["transformer.stack"]
    (block,) = [n for n in stack.nodes if n.startswith("call:transformer.block_pre_ln")]
    assert "Block⁽ˡ⁾(Hˡ⁻¹, S)" in stack.texts(block)[0]
    assert "parameters of transformer.block_pre_ln (layer l)" in stack.all_texts()


def test_one_dot_run_per_figure_and_none_for_a_figure_drawn_before(tmp_path, monkeypatch):
    need_dot()
    eq = spec.get("lstm.cell")
    runs = graphviz.RUNS[0]
    svg = F.dataflow_svg(eq)
    assert graphviz.RUNS[0] == runs + 1 and svg.rstrip().endswith("</svg>")
    assert F.dataflow_svg(eq) == svg and graphviz.RUNS[0] == runs + 1  # from memory
    monkeypatch.setattr(graphviz, "_MEMORY", {})
    assert F.dataflow_svg(eq) == svg and graphviz.RUNS[0] == runs + 1  # from disk
    (entry,) = (tmp_path / "cache" / F.CACHE_FORMAT).glob("*.svg")
    entry.write_bytes(entry.read_bytes()[:-10])  # a truncated entry is drawn again
    monkeypatch.setattr(graphviz, "_MEMORY", {})
    assert F.dataflow_svg(eq) == svg and graphviz.RUNS[0] == runs + 2
    monkeypatch.setenv("LMSPEC_NO_CACHE", "1")
    monkeypatch.setattr(graphviz, "_MEMORY", {})
    F.dataflow_svg(eq)
    assert graphviz.RUNS[0] == runs + 3


def test_figure_for_gives_dot_and_svg_text_and_pdf_bytes(tmp_path):
    need_dot()
    dot = figure_for("gpt2.block", "dot")  # an alias: GPT-2's block is the pre-LN block with ε
    assert isinstance(dot, str) and dot.startswith('digraph "transformer.block_pre_ln[eps]"')
    svg = figure_for("norm.layer_norm", "svg")
    assert isinstance(svg, str) and ET.fromstring(svg).get("id") is None and "<svg" in svg
    pdf = figure_for("norm.layer_norm", "pdf")
    assert isinstance(pdf, bytes) and pdf.startswith(b"%PDF") and b"%%EOF" in pdf[-64:]
    assert F.dataflow_pdf(spec.get("norm.layer_norm"), tmp_path / "ln.pdf").read_bytes() == pdf
    with pytest.raises(SpecError, match=r"unknown figure format 'png'; choose one of dot, svg, pdf"):
        figure_for("norm.layer_norm", "png")
    with pytest.raises(spec.UnknownEquation, match="unknown equation 'norm.nope'"):
        figure_for("norm.nope", "dot")


def test_a_missing_graphviz_says_what_to_install(monkeypatch):
    monkeypatch.setattr(graphviz.shutil, "which", lambda name: None)
    eq = spec.get("lstm.cell")
    with pytest.raises(F.FigureError, match=r"needs Graphviz's dot program, which is not on PATH; install"):
        F.dataflow_svg(eq)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert eq._repr_svg_() is None  # a notebook still shows the other forms
    assert "lstm.cell: no figure: drawing a figure needs Graphviz" in str(caught[0].message)
    assert "<svg" not in eq._repr_html_() and eq.mathml() in eq._repr_html_()


def test_a_notebook_shows_the_figure():
    need_dot()
    svg = spec.get("lstm.cell")._repr_svg_()
    assert ET.fromstring(svg).tag == f"{SVG}svg" and "c_t ∈ ℝ^(d_h)" in svg
    # the HTML a notebook prefers shows it too, inline, ids prefixed so that two equations can share a page
    html = spec.get("lstm.cell")._repr_html_()
    inline = ET.fromstring(html).find(f".//{SVG}svg")
    assert inline is not None and "c_t ∈ ℝ^(d_h)" in html and "<?xml" not in html
    ids = [e.get("id") for e in inline.iter() if e.get("id")]
    assert ids and all(i.startswith("lmspec-lstm-cell-") for i in ids)


def test_many_figures_in_one_dot_run_are_those_of_one_run_each(monkeypatch):
    need_dot()
    ids = ("lstm.cell", "norm.layer_norm", "attention.causal_mask", "lm.top_k", "attention.multi_head")
    sources = [F.dataflow_dot(spec.get(i)) for i in ids]
    runs = graphviz.RUNS[0]
    many = F.render_many([*sources, sources[0]], "svg")  # a figure asked for twice is drawn once
    assert graphviz.RUNS[0] == runs + 1 and many[-1] == many[0]
    assert F.render_many(sources, "svg") == many[:-1] and graphviz.RUNS[0] == runs + 1  # kept: no run
    assert F.dataflow_svg(spec.get("lm.top_k")).encode() == many[3] and graphviz.RUNS[0] == runs + 1
    monkeypatch.setattr(graphviz, "_MEMORY", {})
    monkeypatch.setenv("LMSPEC_NO_CACHE", "1")
    one_each = [graphviz.render_dot(s, "svg") for s in sources]
    assert graphviz.RUNS[0] == runs + 1 + len(ids)
    assert one_each == many[:-1]  # byte for byte: no "page0,1_" prefix on the later graphs' ids
    pdfs = F.render_many(sources, "pdf")
    date = re.compile(rb"/CreationDate \(D:[0-9]+Z?\)")
    for pdf, source in zip(pdfs, sources, strict=True):  # the same but for the moment it was made
        assert date.sub(b"", pdf) == date.sub(b"", graphviz.render_dot(source, "pdf"))


def test_a_figure_dot_cannot_draw_among_many_is_drawn_alone_and_named():
    need_dot()
    good = F.dataflow_dot(spec.get("norm.layer_norm"))
    with pytest.raises(F.FigureError, match=r"Graphviz's dot .* failed on a figure \(exit 1\)"):
        F.render_many([good, "digraph broken { a -> }"], "svg")
    runs = graphviz.RUNS[0]
    assert graphviz.render_dot(good, "svg").rstrip().endswith(b"</svg>")  # the good one was drawn, and kept
    assert graphviz.RUNS[0] == runs
    with pytest.raises(SpecError, match="drawn as svg or pdf, found 'png'"):
        F.render_many([good], "png")
