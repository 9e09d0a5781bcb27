"""``lmspec render`` and ``lmspec show --format``: outputs, exit codes, one-sentence errors.

The PDF test needs latexmk and pdflatex (`make test` installs them, through `make os-deps`): without them it
fails, it is not skipped.
"""

import re
import shutil
import stat

import pytest

from lmspec import spec
from lmspec.verify.cli import main

INSTALL = (
    "lmspec: error: rendering a PDF needs latexmk and pdflatex; install texlive-latex-base and latexmk\n"
)


def one_sentence(err: str) -> str:
    assert err.startswith("lmspec: error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_render_markdown_of_a_family_to_a_file(tmp_path, capsys):
    out = tmp_path / "docs" / "attention.md"
    assert main(["render", "--format", "md", "--family", "attention", "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "## 1 Attention" in text and "**(28)** `attention.multi_head`" in text
    assert "Language models" not in text
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"wrote {out} (7 equations, 10 figures) in ") and captured.err.endswith(
        "s\n"
    )
    # every image the Markdown refers to is a file beside it: the data-flow figures and the concept figures
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(images) == 10 and "figures/attention-multi-head.svg" in images
    assert "figures/attention-causal-mask--causal-mask.svg" in images
    for image in images:
        assert (out.parent / image).read_text(encoding="utf-8").lstrip().startswith(("<?xml", "<svg"))


def test_no_figures_leaves_them_out_and_needs_no_graphviz(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda name: None if name in ("dot", "rsvg-convert") else "/bin/x")
    out = tmp_path / "n.md"
    assert main(["render", "--format", "md", "--family", "norm", "-o", str(out), "--no-figures"]) == 0
    assert "![" not in out.read_text(encoding="utf-8") and not (tmp_path / "figures").exists()
    assert "(1 equations) in " in capsys.readouterr().err
    # without --no-figures, a missing Graphviz is one sentence and exit 2, before anything is written
    assert main(["render", "--format", "html", "--family", "norm", "-o", str(tmp_path / "n.html")]) == 2
    message = one_sentence(capsys.readouterr().err)
    assert message.startswith("lmspec: error: drawing a figure needs Graphviz's dot program, which is not on")
    assert message.endswith(", or leave the figures out with --no-figures\n")
    assert not (tmp_path / "n.html").exists()


def test_a_pdf_with_figures_without_rsvg_convert_says_what_to_install(tmp_path, monkeypatch, capsys):
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "rsvg-convert" else real(name))
    assert main(["render", "--format", "pdf", "--family", "norm", "-o", str(tmp_path / "x.pdf")]) == 2
    message = one_sentence(capsys.readouterr().err)
    assert "needs rsvg-convert" in message and "librsvg2-bin" in message and "--no-figures" in message


def test_markdown_on_stdout_leaves_the_figures_out_and_says_so(capsys):
    assert main(["render", "--format", "md", "--family", "norm"]) == 0
    captured = capsys.readouterr()
    assert "![" not in captured.out and "## 1 Layer normalisation" in captured.out
    assert captured.err == (
        "figures left out: md on standard output has no folder for its image files; write it to a file "
        "with -o to have them\n"
    )


def test_render_tex_to_stdout(capsys):
    assert main(["render", "--format", "tex", "--family", "norm", "--family", "lm"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(r"\documentclass") and out.rstrip().endswith(r"\end{document}")
    assert out.index(r"\section{Language models}") < out.index(r"\section{Layer normalisation}")
    assert out.count(r"\subsection{") == len(spec.families()["lm"]) + len(spec.families()["norm"])


def test_render_html(tmp_path, capsys):
    out = tmp_path / "spec.html"
    assert main(["render", "--format", "html", "--family", "activation", "-o", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert page.count('<math xmlns="http://www.w3.org/1998/Math/MathML" display="block">') >= 5
    assert page.count('<figure class="figure"') == 5 and page.count("<svg ") == 5  # inline: one file
    assert "(5 equations, 5 figures)" in capsys.readouterr().err


def test_render_pdf(tmp_path, capsys):
    if not (shutil.which("latexmk") and shutil.which("pdflatex")):
        pytest.fail(
            "latexmk and pdflatex are needed: apt-get install texlive-latex-base latexmk (make os-deps)"
        )
    out = tmp_path / "attention.pdf"
    assert main(["render", "--format", "pdf", "--family", "attention", "-o", str(out)]) == 0
    assert out.read_bytes().startswith(b"%PDF-")
    err = capsys.readouterr().err
    assert err.startswith(f"wrote {out} (7 equations, 10 figures, ") and " pages) in " in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "docx"], "unknown format 'docx'; choose one of tex, pdf, md, html"),
        (["--format", "md", "--family", "nope"], "unknown family 'nope'; the families are lm, ffnn, rnn"),
        ([], "Missing option '--format'"),
    ],
)
def test_bad_usage_exits_2_with_one_sentence(args, message, capsys):
    assert main(["render", *args]) == 2
    assert message in one_sentence(capsys.readouterr().err)


def test_an_unwritable_output_exits_2_before_rendering(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert main(["render", "--format", "md", "-o", str(blocker / "spec.md")]) == 2
    assert one_sentence(capsys.readouterr().err).startswith(
        f"lmspec: error: cannot write {blocker / 'spec.md'}"
    )
    assert main(["render", "--format", "html", "-o", str(tmp_path)]) == 2
    assert f"cannot write {tmp_path}: it is a directory" in one_sentence(capsys.readouterr().err)


def test_a_pdf_without_tex_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no latexmk, no pdflatex
    assert main(["render", "--format", "pdf", "-o", str(tmp_path / "x.pdf")]) == 2
    assert one_sentence(capsys.readouterr().err) == INSTALL
    assert not (tmp_path / "x.pdf").exists()


def test_a_latex_failure_gives_the_error_line(tmp_path, monkeypatch, capsys):
    """A stand-in latexmk that fails the way pdflatex does: the message quotes the log's error line."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    fake = bin_ / "latexmk"
    log = r"This is pdfTeX\n./lmspec.tex:12: Undefined control sequence.\n"
    fake.write_text(f"#!/bin/sh\nprintf '{log}' > lmspec.log\nexit 12\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    (bin_ / "pdflatex").symlink_to(fake)
    monkeypatch.setenv("PATH", str(bin_))
    args = ["render", "--format", "pdf", "--family", "norm", "-o", str(tmp_path / "x.pdf"), "--no-figures"]
    assert main(args) == 2
    assert one_sentence(capsys.readouterr().err) == (
        "lmspec: error: pdflatex could not compile the document: "
        "./lmspec.tex:12: Undefined control sequence.\n"
    )
    assert not (tmp_path / "x.pdf").exists()


# ------------------------------------------------------------------------------------------- show
def test_show_is_unicode_by_default(capsys):
    assert main(["show", "attention.multi_head"]) == 0
    out = capsys.readouterr().out
    eq = spec.get("attention.multi_head")
    for line in eq.unicode_lines():
        assert line in out
    assert r"\begin{aligned}" not in out and r"\left" not in out
    assert "W_Q^(m) ∈ ℝ^(d_e×d_k), m = 1..M" in out and "equation (28)" in out
    assert "attention.multi_head[scale_sqrt_d_e]: scores scaled by 1/√d_e" in out
    assert "Invariants: causal, permutation_equivariance, heads_concat, single_head" in out
    scaled = spec.get("attention.multi_head[scale_sqrt_d_e]").unicode_lines()[3]
    assert f"    {scaled}" in out  # the line where the variant differs, in Unicode


def test_show_latex_and_mathml_print_the_raw_forms(capsys):
    eq = spec.get("attention.multi_head")
    assert main(["show", "attention.multi_head", "--format", "latex"]) == 0
    out = capsys.readouterr().out
    assert out == eq.latex() + "\n"
    assert r"A &= \left(P W_{O}\right)^{\top} + b_{O} \mathbf{1}_{n}^{\top}" in out
    assert main(["show", "attention.multi_head", "--format", "mathml"]) == 0
    out = capsys.readouterr().out
    assert out == eq.mathml() + "\n" and out.startswith("<math ") and 'display="block"' in out


def test_show_keeps_constraints_with_code_names(capsys):
    assert main(["show", "lm.top_k"]) == 0
    assert "Constraints: k_top ≤ v" in capsys.readouterr().out


def test_show_with_an_unknown_format_exits_2(capsys):
    assert main(["show", "attention.multi_head", "--format", "pdf"]) == 2
    assert one_sentence(capsys.readouterr().err) == (
        "lmspec: error: unknown format 'pdf' for show; choose one of unicode, latex, mathml\n"
    )
