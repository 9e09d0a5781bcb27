"""The self-contained HTML audit page: well-formed, no scripts or URLs, escaped, deterministic, with one
embedded PNG (target | spec | target − spec) per heat map that survives −∞ and NaN."""

import base64
import io
import re
from html.parser import HTMLParser

import matplotlib
import numpy as np
import pytest
from PIL import Image

from lmspec.verify.audit import AuditCheck, AuditReport, Heatmap, VariantTrial, audit, to_html, write_html
from lmspec.verify.audit.html import NONFINITE_COLOURS

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
EVIL = "<script>alert(1)</script>"


class Page(HTMLParser):
    """Checks that every tag is closed in order; collects the tables' rows (cell texts) and the <img> srcs."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tables: list[list[list[str]]] = []
        self.images: list[dict] = []
        self._cell: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        if tag in VOID:
            return
        self.stack.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def masked_weights() -> tuple[np.ndarray, np.ndarray]:
    """A causal attention pattern (−∞ above the diagonal) and a spec that differs in three cells:
    a finite value, a NaN where the target has −∞, and +∞ where the target is finite."""
    rng = np.random.default_rng(7)
    target = np.tril(rng.random((5, 5)))
    target[np.triu_indices(5, 1)] = -np.inf  # 10 cells
    spec = target.copy()
    spec[0, 0] += 0.25
    spec[1, 3] = np.nan
    spec[3, 3] = np.inf
    return target, spec


def reports() -> list[AuditReport]:
    target, spec = masked_weights()
    passing = AuditReport(
        target="torch.nn.LayerNorm",
        equation="norm.layer_norm[eps]",
        verdict="pass",
        summary="torch.nn.LayerNorm computes norm.layer_norm[eps] with eps = 1e-05.",
        checks=[
            AuditCheck("shape", "pass", examples=3),
            AuditCheck(
                "value=oracle", "pass", examples=12, max_abs=2e-16, max_rel=1e-15, atol=1e-10, rtol=1e-9
            ),
            AuditCheck("gradient", "skip", message="the target is not differentiable in eps"),
        ],
    )
    variant = AuditReport(
        target="transformers GPT2MLP",
        equation="transformer.ffn",
        verdict="variant",
        summary="GPT2MLP matches the variant gelu_tanh of transformer.ffn, not the base equation.",
        checks=[
            AuditCheck("shape", "pass", examples=3),
            AuditCheck(
                "value=oracle",
                "fail",
                message="P[0, 1] = 0.51, oracle gives 0.5",
                examples=12,
                max_abs=1e-3,
                max_rel=2e-3,
                atol=1e-10,
                rtol=1e-9,
                counterexample={"sizes": {"n": 1, "d_e": 2}, "batch": [], "arrays": {"H": [[0.5, -1.0]]}},
            ),
        ],
        variants=[
            VariantTrial("gelu_tanh", "variant", "GELU by its tanh approximation", True, {}),
            VariantTrial("eps", "variant", "layer norm ε", False, {"eps": 1e-5}, "P[0, 0] differs", 0.125),
        ],
    )
    failing = AuditReport(
        target=EVIL,
        equation="attention.scaled_dot_product",
        verdict="fail",
        summary="The target's attention differs from the spec's & no variant explains it.",
        checks=[
            AuditCheck("shape", "pass", examples=3),
            AuditCheck(
                "value=oracle",
                "fail",
                message="A[1, 3] = -inf, oracle gives nan",
                examples=7,
                max_abs=0.25,
                max_rel=0.5,
                atol=1e-10,
                rtol=1e-9,
                counterexample={
                    "sizes": {"n": 2, "d_k": 3},
                    "batch": [1],
                    "arrays": {
                        "Q": [[1.0, -np.inf], [np.nan, 2.5]],
                        "K": "array of shape [1, 8, 8]",
                        "keep": [[True, False]],
                    },
                },
            ),
            AuditCheck("property:causal", "fail", message="output 0 depends on token 1", examples=2),
            AuditCheck("gradient", "skip", message="values already differ"),
        ],
        variants=[VariantTrial("mask polarity inverted", "convention", "keep ↔ ignore", False, {}, "no")],
        heatmaps=[
            Heatmap(
                "attention weights softmax(QKᵀ/√d_k + S), batch [0]",
                "value=oracle",
                target,
                spec,
                "query i",
                "key j",
            ),
            Heatmap("output P", "value=oracle", np.arange(6.0).reshape(2, 3), np.ones((2, 3)), "n", "d_v"),
            Heatmap("scores, not tied to a failure", "gradient", np.full((2, 2), -np.inf), np.zeros((2, 2))),
        ],
    )
    return [passing, variant, failing]


@pytest.fixture(scope="module")
def page_text() -> str:
    return to_html(reports())


@pytest.fixture(scope="module")
def page(page_text) -> Page:
    return Page(page_text)


def png_of(img: dict) -> Image.Image:
    src = img["src"]
    assert src.startswith("data:image/png;base64,")
    data = base64.b64decode(src.removeprefix("data:image/png;base64,"), validate=True)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(data))


def test_the_page_is_well_formed_html(page_text, page):
    assert page_text.startswith("<!DOCTYPE html>\n<html")
    assert page.errors == [] and page.stack == []


def test_self_contained_no_scripts_urls_or_external_resources(page_text, page):
    lowered = page_text.lower()
    assert "<script" not in lowered
    assert (
        "http://" not in lowered
        and "https://" not in lowered
        and "//" not in re.sub(r"base64,[^\"]+", "", lowered)
    )
    assert "<link" not in lowered and "@import" not in lowered and "url(" not in lowered
    assert all(img["src"].startswith("data:image/png;base64,") for img in page.images)


def test_summary_table_lists_every_report_with_its_counts(page_text, page):
    assert (
        "<h1>lmspec audit</h1>" in page_text
        and "3 targets held to the spec: 1 pass, 1 variant, 1 fail." in page_text
    )
    summary = page.tables[0]
    assert summary[0] == ["target", "equation", "verdict", "matched variants", "passed", "failed", "skipped"]
    assert summary[1:] == [
        ["torch.nn.LayerNorm", "norm.layer_norm[eps]", "pass", "—", "2", "0", "1"],
        ["transformers GPT2MLP", "transformer.ffn", "variant", "gelu_tanh", "1", "1", "0"],
        [EVIL, "attention.scaled_dot_product", "fail", "—", "1", "2", "1"],
    ]


def test_each_report_has_its_sentence_checks_and_variants(page_text, page):
    for r in reports():
        assert r.summary.replace("&", "&amp;").replace("'", "&#x27;") in page_text
    checks = [t for t in page.tables if t[0][0] == "check"]
    assert [[row[0] for row in t[1:]] for t in checks] == [[c.name for c in r.checks] for r in reports()]
    assert checks[0][2] == ["value=oracle", "pass", "2e-16", "1e-15", "atol 1e-10, rtol 1e-09", "12", ""]
    assert (
        checks[0][3][:2] == ["gradient", "skip"]
        and checks[0][3][-1] == "the target is not differentiable in eps"
    )
    assert checks[2][2][:5] == ["value=oracle", "fail", "0.25", "0.5", "atol 1e-10, rtol 1e-09"]
    variants = [t for t in page.tables if t[0][0] == "name"]
    assert variants[0][1:] == [
        ["gelu_tanh", "variant", "yes", "—", "—", "GELU by its tanh approximation", ""],
        ["eps", "variant", "no", "eps = 1e-05", "0.125", "layer norm ε", "P[0, 0] differs"],
    ]
    assert variants[1][1][:3] == ["mask polarity inverted", "convention", "no"]


def test_failures_show_their_shrunk_counterexample(page_text):
    assert "Sizes: <code>n = 2, d_k = 3</code>" in page_text and "Batch: <code>[1]</code>" in page_text
    pre = re.findall(r"<pre>(.*?)</pre>", page_text, re.S)
    arrays = [
        "Q    = [[ 1. , -inf],",
        "        [ nan,  2.5]]",  # continuation lines indented under the first
        "K    = array of shape [1, 8, 8]",  # the runner's summary of a large array, as it is
        "keep = [[ True, False]]",
    ]
    assert "\n".join(arrays) in pre
    assert "H = [[ 0.5, -1. ]]" in pre
    assert "property:causal" in page_text and "output 0 depends on token 1" in page_text


def test_text_is_escaped(page_text):
    assert EVIL not in page_text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page_text
    assert "spec&#x27;s &amp; no variant" in page_text


def test_one_png_per_heatmap_with_three_panels(page):
    assert len(page.images) == 3
    for img in page.images:
        png = png_of(img)
        assert png.format == "PNG" and png.size[0] > 2 * png.size[1] > 0  # three panels side by side
        assert "Software" not in png.info  # no version strings: the bytes do not depend on matplotlib's
        assert img["alt"].startswith("heat maps of ")


def test_nonfinite_cells_are_painted_in_their_own_colours_and_captioned(page, page_text):
    def colours(img):
        pixels = np.asarray(png_of(img).convert("RGB")).reshape(-1, 3)
        return {tuple(p) for p in np.unique(pixels, axis=0)}

    rgb = {k: tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for k, c in NONFINITE_COLOURS.items()}
    masked, finite, all_inf = (colours(img) for img in page.images)
    assert {rgb["−∞"], rgb["+∞"], rgb["NaN"]} <= masked
    assert rgb["+∞"] not in finite and rgb["NaN"] not in finite
    assert rgb["−∞"] in all_inf
    # target: 10 × −∞; spec: 9 × −∞, 1 × +∞, 1 × NaN; target − spec: −∞ where the spec has +∞, NaN where
    # target −∞ meets spec NaN; the 9 shared −∞ count as equal.
    assert "target: 10 × −∞; spec: 9 × −∞, 1 × +∞, 1 × NaN; difference: 1 × −∞, 1 × NaN" in page_text
    assert "scores, not tied to a failure" in page_text and "target: 4 × −∞; difference: 4 × −∞" in page_text
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page_text, re.S)
    assert "Non-finite" not in captions[1]


def test_heatmaps_sit_with_their_failure_or_apart():
    text = to_html(reports()[2:])
    failure = text.index("<h4><code>value=oracle</code></h4>")
    assert (
        failure
        < text.index("softmax(QKᵀ/√d_k + S)")
        < text.index("output P")
        < text.index("<h3>Heat maps</h3>")
    )
    assert text.index("<h3>Heat maps</h3>") < text.index("scores, not tied to a failure")


def test_odd_heatmaps_do_not_crash():
    r = reports()[2]
    r.heatmaps = [
        Heatmap("all NaN", "value=oracle", np.full((3, 3), np.nan), np.full((3, 3), np.nan)),
        Heatmap("a vector", "value=oracle", np.array([1.0, 2.0]), np.array([1.0, 2.5])),
        Heatmap("shapes differ", "value=oracle", np.zeros((2, 3)), np.zeros((3, 2))),
        Heatmap("from JSON", "value=oracle", [[1.0, "-inf"]], [[1.0, 0.0]]),
    ]
    text = to_html([r])
    page = Page(text)
    assert page.errors == [] and len(page.images) == 4
    assert all(png_of(img).size[0] > 0 for img in page.images)
    narrow = png_of(page.images[2])
    assert narrow.size[0] < png_of(page.images[0]).size[0]  # two panels: no difference of unequal shapes
    assert "no difference panel: the target's slice has shape (2, 3), the spec's (3, 2)" in text


def test_byte_identical_across_calls_and_matplotlib_settings(page_text):
    assert to_html(reports()) == page_text
    with matplotlib.rc_context({"image.cmap": "gray", "font.size": 20, "savefig.dpi": 300}):
        assert to_html(reports()) == page_text


def test_an_empty_audit_is_still_a_page():
    page = Page(to_html([]))
    assert page.errors == [] and page.tables[0][1:] == []


def test_write_html(tmp_path, page_text):
    out = tmp_path / "new" / "audit.html"
    write_html(reports(), out)
    assert out.read_text(encoding="utf-8") == page_text
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError, match=re.escape(str(blocker / "audit.html"))):
        write_html([], blocker / "audit.html")


def test_a_report_shows_itself_in_a_notebook_as_html_and_in_a_line_as_repr():
    report = audit("lmspec.impl.norm:layer_norm", profile="quick")
    html = report._repr_html_()
    assert html.startswith('<div class="lmspec-audit">') and html.endswith("</div>")
    assert "<h3>Checks</h3>" in html and "<script" not in html
    assert repr(report) == "<AuditReport lmspec.impl.norm:layer_norm as norm.layer_norm: pass>"
