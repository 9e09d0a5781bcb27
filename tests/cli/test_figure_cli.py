"""``lmspec show ID --figure PATH``: the data-flow figure as SVG, PDF or DOT by the path's suffix; a bad
suffix, an unwritable path or a missing Graphviz is one sentence and exit 2."""

import shutil
import xml.etree.ElementTree as ET

import pytest

from lmspec import spec
from lmspec.spec import dataflow as F
from lmspec.spec.dataflow import graphviz
from lmspec.verify.cli import main


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LMSPEC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(graphviz, "_MEMORY", {})


def test_show_writes_the_figure_in_the_format_of_its_suffix(tmp_path, capsys):
    if shutil.which("dot") is None:
        pytest.fail(f"dot not found: the figure tests draw with Graphviz; {F.INSTALL_DOT}")
    svg, pdf, dot = tmp_path / "mha.svg", tmp_path / "out" / "mha.pdf", tmp_path / "mha.DOT"
    assert main(["show", "attention.multi_head", "--figure", str(svg)]) == 0
    out, err = capsys.readouterr()
    assert "W_Q^(m) ∈ ℝ^(d_e×d_k), m = 1..M" in out  # the equation is shown as before
    assert f"wrote {svg} (the data-flow figure of attention.multi_head)" in err
    root = ET.parse(svg).getroot()
    assert root.find(".//{http://www.w3.org/2000/svg}g[@id='figure:attention.multi_head']") is not None
    assert main(["show", "attention.multi_head", "--figure", str(pdf)]) == 0  # its folder is made
    assert pdf.read_bytes().startswith(b"%PDF")
    assert main(["show", "lstm.cell", "--format", "latex", "--figure", str(dot)]) == 0
    assert dot.read_text(encoding="utf-8") == F.dataflow_dot(spec.get("lstm.cell"))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("mha.png", "cannot write a figure to {path}: its name must end in .svg, .pdf, .dot (found .png)"),
        ("mha", "cannot write a figure to {path}: its name must end in .svg, .pdf, .dot (found no suffix)"),
    ],
)
def test_a_bad_suffix_is_one_sentence_and_exit_2(tmp_path, capsys, name, message):
    path = tmp_path / name
    assert main(["show", "attention.multi_head", "--figure", str(path)]) == 2
    out, err = capsys.readouterr()
    assert err.strip() == "lmspec: error: " + message.format(path=path) and out == ""
    assert not path.exists()


def test_an_unwritable_path_is_one_sentence_and_exit_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    assert main(["show", "lstm.cell", "--figure", str(blocker / "cell.svg")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"lmspec: error: cannot write {blocker / 'cell.svg'}: ") and "\n" not in err
    (tmp_path / "dir.svg").mkdir()
    assert main(["show", "lstm.cell", "--figure", str(tmp_path / "dir.svg")]) == 2
    assert capsys.readouterr().err.strip().endswith(f"cannot write {tmp_path / 'dir.svg'}: it is a directory")


def test_a_missing_graphviz_is_one_sentence_exit_2_and_leaves_no_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(graphviz.shutil, "which", lambda name: None)
    path = tmp_path / "cell.svg"
    assert main(["show", "lstm.cell", "--figure", str(path)]) == 2
    out, err = capsys.readouterr()
    assert err.strip() == f"lmspec: error: {F.INSTALL_DOT}" and out == ""
    assert not path.exists()
    dot = tmp_path / "cell.dot"  # the DOT text needs no Graphviz
    assert main(["show", "lstm.cell", "--figure", str(dot)]) == 0 and dot.read_text().startswith("digraph")
