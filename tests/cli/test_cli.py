"""The lmspec command line: output, reports, exit codes 0 / 1 / 2, and no tracebacks for user errors."""

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lmspec import spec
from lmspec.verify.cli import main


def run(*args):
    """Run the console entry point in a fresh interpreter, as a user would."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; from lmspec.verify.cli import main; sys.exit(main())", *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_list_shows_the_catalogue(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for eq_id in ("attention.scaled_dot_product", "attention.multi_head", "gpt2.forward", "params.bert"):
        assert eq_id in out
    assert f"{len(spec.all())} equations in {len(spec.FAMILIES)} families" in out


def test_list_of_one_family(capsys):
    assert main(["list", "--family", "attention"]) == 0
    assert "7 equations in 1 families" in capsys.readouterr().out


def test_show_prints_latex_symbols_reference_and_variants(capsys):
    assert main(["show", "attention.multi_head", "--format", "latex"]) == 0
    assert r"A &= \left(P W_{O}\right)^{\top} + b_{O} \mathbf{1}_{n}^{\top}" in capsys.readouterr().out
    assert main(["show", "attention.multi_head"]) == 0
    out = capsys.readouterr().out
    assert "W_Q^(m) ∈ ℝ^(d_e×d_k), m = 1..M" in out
    assert "equation (28)" in out
    assert "attention.multi_head[scale_sqrt_d_e]: scores scaled by 1/√d_e" in out
    assert "Invariants: causal, permutation_equivariance, heads_concat, single_head" in out
    # the section number is a reconstruction, the equation number is known (issue 16 §4)
    assert "Transformers: attention (§4, numbering reconstructed), equation (28)" in out
    assert "Status: confirmed: notation and computation confirmed from the tutorial's companion" in out


def test_show_and_list_print_each_tag_as_its_evidence_has_it(capsys):
    assert main(["show", "gpt2.loss"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert (
        "[reconstructed]" in out and "Status: reconstructed: reconstructed from the canonical source" in out
    )
    assert main(["show", "bert.pooler"]) == 0
    assert "Status: count confirmed, form reconstructed: the parameter count is confirmed" in " ".join(
        capsys.readouterr().out.split()
    )
    assert main(["show", "params.pooler"]) == 0
    assert "N_pool = d_e² + d_e" in capsys.readouterr().out
    assert main(["list", "--family", "bert"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert out.count("[T count, R form]") == 3 and "[T]" not in out


def test_codegen_prints_source_that_runs(capsys):
    assert main(["codegen", "attention.scaled_dot_product"]) == 0
    src = capsys.readouterr().out
    namespace: dict = {}
    exec(src, namespace)
    import torch

    Q = torch.zeros(2, 3, 4, dtype=torch.float64)
    V = torch.arange(15.0, dtype=torch.float64).reshape(3, 5).expand(2, 3, 5)
    (P,) = namespace["attention_scaled_dot_product"](Q, Q, V, torch.zeros(3, 3, dtype=torch.float64))
    assert torch.allclose(P, V.mean(dim=-2, keepdim=True).expand(2, 3, 5))


def test_verify_passes_prints_a_table_and_writes_reports(tmp_path, junit10):
    js, xml = tmp_path / "r.json", tmp_path / "r.xml"
    res = run("verify", "attention.scaled_dot_product", "--profile", "quick", "--seed", "7",
              "--json", str(js), "--junit", str(xml))  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert "lmspec verify — profile quick, seed 7" in res.stdout
    assert "11 passed, 0 failed" in res.stdout  # 6 checks, and 5 of impl's fast path
    assert "impl[fast]=oracle" in res.stdout  # the check's name, not taken for markup
    doc = json.loads(js.read_text())
    assert doc["summary"] == {"checks": 11, "passed": 11, "failed": 0}
    checks = {r["check"] for r in doc["results"]}
    assert checks >= {
        "impl=oracle",
        "generated=oracle",
        "impl=generated",
        "impl[fast]=oracle",
        "impl[fast]=generated",
    }
    suite = ET.parse(xml).getroot().find("testsuite")
    assert suite.get("name") == "attention" and suite.get("tests") == "11" and suite.get("failures") == "0"
    assert junit10(xml.read_text()) == [] and suite.get("errors") == "0"


def test_a_run_over_several_families_prints_a_row_per_family_and_every_check_with_table(capsys):
    """Within one family a row per check; over several, a row per family (the whole catalogue's six hundred
    rows cost Rich seconds), and a row per check too with --table."""
    args = ["verify", "attention.softmax_rows", "activation.relu", "-p", "quick"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "lmspec verify — profile quick, seed 0: per family" in out
    for family in ("attention", "activation"):  # family, equations, checks, failed
        assert re.search(rf"^│ {family} +│ +1 │ +\d+ │ +0 │", out, re.M), out
    assert "impl=oracle" not in out and re.search(r"^\d+ passed, 0 failed in ", out, re.M)
    assert main([*args, "--table"]) == 0
    out = capsys.readouterr().out
    assert "lmspec verify — profile quick, seed 0\n" in out and "per family" in out
    assert "attention.softmax_rows" in out and "activation.relu" in out and "impl=oracle" in out


def test_an_implementation_that_cannot_be_bound_is_a_junit_error(monkeypatch, tmp_path, junit10):
    """lmspec could not run the checks: <error>, not <failure> (a verdict on the code)."""
    from lmspec.impl import _registry

    def unannotated(n, *, dtype=None):  # nothing says how it lays out the spec's tensors
        return None

    monkeypatch.setitem(_registry._IMPLEMENTATIONS, "attention.causal_mask", unannotated)
    xml = tmp_path / "r.xml"
    assert main(["verify", "attention.causal_mask", "-p", "quick", "--junit", str(xml)]) == 1
    text = xml.read_text()
    assert junit10(text) == [] and "<error " in text and "<failure" not in text
    suite = ET.fromstring(text).find("testsuite")
    assert suite.get("errors") == "2" and suite.get("failures") == "0"  # impl=oracle, impl=generated


def test_same_seed_gives_a_byte_identical_json_report(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for path in (a, b):
        assert (
            main(["verify", "attention.softmax_rows", "-p", "quick", "--seed", "3", "--json", str(path)]) == 0
        )
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (["show", "attention.nope"], "lmspec: error: unknown equation 'attention.nope'"),
        (["verify", "nope"], "lmspec: error: unknown equation 'nope'"),
        (["verify", "--profile", "fast"], "lmspec: error: unknown profile 'fast'"),
        (["verify", "--seed", "-1"], "lmspec: error: --seed must be a non-negative integer"),
        (["codegen", "attention.multi_head[nope]"], "lmspec: error: attention.multi_head has no variant"),
        (["frobnicate"], "lmspec: error: No such command 'frobnicate'"),
        (["verify", "--seed", "x"], "lmspec: error:"),
    ],
)
def test_user_errors_exit_2_with_one_sentence(args, sentence):
    res = run(*args)
    assert res.returncode == 2
    assert res.stderr.startswith(sentence)
    assert "Traceback" not in res.stderr + res.stdout
    assert len(res.stderr.strip().splitlines()) == 1


def test_unwritable_report_path_is_a_usage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    res = run("verify", "attention.causal_mask", "-p", "quick", "--json", str(blocker / "r.json"))
    assert res.returncode == 2 and res.stderr.startswith("lmspec: error: cannot write")


def test_a_failing_check_exits_1(monkeypatch, capsys):
    # swap impl/'s causal mask for one that is off by one: the verifier must fail and say so
    import math

    import torch
    from jaxtyping import Float
    from torch import Tensor

    from lmspec.impl import _registry
    from lmspec.impl._registry import checked

    @checked
    def off_by_one(n: int, *, dtype: torch.dtype = torch.float32) -> Float[Tensor, "n n"]:
        return torch.zeros(n, n, dtype=dtype).masked_fill(torch.ones(n, n).triu(0).bool(), -math.inf)

    monkeypatch.setitem(_registry._IMPLEMENTATIONS, "attention.causal_mask", off_by_one)
    assert main(["verify", "attention.causal_mask", "-p", "quick"]) == 1
    out, err = capsys.readouterr()
    assert "FAIL attention.causal_mask impl=oracle: impl: S[0, 0] = -inf, oracle gives 0" in out
    # not a terminal (CI): a progress line per family as it ends, on stderr
    assert re.search(r"^verify: attention — 3 checks, 2 failed, [\d.]+s \(1 of 1 families\)$", err, re.M)
    assert "FAIL attention.causal_mask impl=generated" in out and "1 passed, 2 failed" in out


def test_failure_reports_are_valid_json_with_the_counterexample(tmp_path, monkeypatch):
    import math

    import torch
    from jaxtyping import Float
    from torch import Tensor

    from lmspec.impl import _registry
    from lmspec.impl._registry import checked

    @checked
    def off_by_one(n: int, *, dtype: torch.dtype = torch.float32) -> Float[Tensor, "n n"]:
        return torch.zeros(n, n, dtype=dtype).masked_fill(torch.ones(n, n).triu(0).bool(), -math.inf)

    monkeypatch.setitem(_registry._IMPLEMENTATIONS, "attention.causal_mask", off_by_one)
    path = tmp_path / "r.json"
    assert main(["verify", "attention.causal_mask", "-p", "quick", "--json", str(path)]) == 1
    doc = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    failed = [r for r in doc["results"] if r["status"] == "fail"]
    assert {r["check"] for r in failed} == {"impl=oracle", "impl=generated"}
    assert failed[0]["counterexample"]["sizes"] == {"n": 1}
    assert failed[0]["max_abs"] == "inf"


def test_show_prints_inequality_constraints_and_keeps_brackets(capsys):
    assert main(["show", "gpt2.forward"]) == 0
    out = capsys.readouterr().out
    assert "Constraints: n ≤ n_max" in out
    assert main(["show", "lm.top_k"]) == 0
    assert "k_top ≤ v" in capsys.readouterr().out


def test_settle_freezes_the_heap_for_the_command_and_run_unfreezes_it():
    """A command that calls settle() after its imports runs with the heap frozen (gc.freeze); run() leaves
    the collector as it found it, so a command run in-process (as here) freezes nothing for good."""
    import gc

    import typer

    from lmspec.verify.cli import _common

    seen = []
    app = typer.Typer()

    @app.command()
    def heavy() -> None:
        _common.settle()
        _common.settle()  # once is enough: a second call changes nothing
        seen.append(gc.get_freeze_count())

    assert gc.get_freeze_count() == 0
    assert _common.run(app, []) == 0
    assert seen and seen[0] > 0 and gc.get_freeze_count() == 0


def test_every_command_shows_an_example_and_the_quick_ones_run(capsys):
    import shlex

    from lmspec.verify.cli.app import EXAMPLES, app

    commands = {c.name for c in app.registered_commands}
    assert set(EXAMPLES) == commands
    for name, example in EXAMPLES.items():
        assert main([name, "--help"]) == 0
        assert f"Example: {example}" in " ".join(capsys.readouterr().out.split())
    for name in ("list", "show", "codegen", "params"):  # seconds; the others are run by their own tests
        assert main(shlex.split(EXAMPLES[name])[1:]) == 0, name
    capsys.readouterr()


def test_shell_completion_scripts_and_answers(capsys):
    """lmspec completion SHELL prints the script; the shell then asks lmspec (``_LMSPEC_COMPLETE``) and gets
    commands and options back."""
    assert main(["completion", "bash"]) == 0
    assert "_LMSPEC_COMPLETE=complete_bash" in capsys.readouterr().out
    assert main(["completion", "zsh"]) == 0 and "#compdef lmspec" in capsys.readouterr().out
    assert main(["completion", "tcsh"]) == 2
    assert "completion is for bash, zsh, fish, powershell, pwsh, found 'tcsh'" in capsys.readouterr().err
    script = Path(sys.executable).with_name("lmspec")  # as the shell runs it: the console script
    answers = {}
    for words, cword in (("lmspec ver", "1"), ("lmspec verify --pro", "2")):
        env = {**os.environ, "COMP_WORDS": words, "COMP_CWORD": cword, "_LMSPEC_COMPLETE": "complete_bash"}
        done = subprocess.run([str(script)], env=env, capture_output=True, text=True, check=False)
        answers[words] = done.stdout.split()
    assert answers == {"lmspec ver": ["verify"], "lmspec verify --pro": ["--profile"]}
