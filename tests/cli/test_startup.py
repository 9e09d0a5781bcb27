"""What starts at once: ``lmspec --help``, ``lmspec CMD --help``, ``--version`` and the usage errors load
none of torch, SymPy, NumPy, Hypothesis or matplotlib; neither does loading the pytest plugin. The option
choices the command line holds as light copies agree with the heavy modules they come from."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import lmspec
from lmspec.verify.cli import main

HEAVY = ("torch", "sympy", "numpy", "hypothesis", "matplotlib", "mpmath", "jaxtyping", "transformers")
COMMANDS = ("list", "show", "codegen", "params", "verify", "audit", "render", "mutate", "bench")
#: argv -> the start of its one-sentence error (exit 2), every one answered before anything heavy loads
USAGE_ERRORS = {
    ("verify", "--profile", "fast"): "unknown profile 'fast'; choose one of quick, default, thorough",
    ("verify", "--seed", "-1"): "--seed must be a non-negative integer, found -1",
    ("verify", "--seeds", "0"): "--seeds must be at least 1, found 0",
    ("verify", "--jobs", "-1"): "--jobs must be 0 (one per core) or a positive integer, found -1",
    ("verify", "--shard", "3/2"): "--shard takes i/n with 1 ≤ i ≤ n (e.g. 2/4), found '3/2'",
    ("verify", "--seed", "x"): "Invalid value for '--seed'",
    ("show", "attention.multi_head", "--format", "rtf"): "unknown format 'rtf' for show",
    ("audit",): "say what to audit: a target (lmspec audit --list shows the built-ins) or --builtins",
    ("audit", "--builtins", "jax"): "--builtins takes torch, hf or all, found 'jax'",
    ("audit", "m:f", "--dtype", "f8"): "unknown --dtype 'f8'; choose one of float64, float32, float16",
    ("audit", "m:f", "--mask", "keep"): "unknown --mask 'keep'; choose one of bool_keep, bool_ignore",
    ("audit", "m:f", "--profile", "fast"): "unknown profile 'fast'",
    ("audit", "m:f", "--seeds", "0"): "--seeds must be at least 1, found 0",
    (
        "audit",
        "m:f",
        "m:g",
        "--layout",
        "x=n",
    ): "--layout, --mask, --init, --param, --absent and the loss options apply to one target",
    ("audit", "m:f", "--constant", "eps"): "--constant expects KEY=VALUE, found 'eps'",
    ("audit", "m:f", "--size", "d_e=x"): "--size: 'x' is not a whole number",
    ("render", "--format", "doc"): "unknown format 'doc'; choose one of tex, pdf, md, html",
    ("render", "--format", "md", "--family", "nope"): "unknown family 'nope'; the families are lm, ffnn",
    ("mutate", "--profile", "fast"): "unknown profile 'fast'",
    ("mutate", "--timeout", "0"): "--timeout must be positive, found 0",
    ("bench", "--size", "huge"): "--size takes gpt2-small or small, found 'huge'",
    ("bench", "--only", "speed"): "--only takes suite, checking, hf, gflops, oracle",
    ("bench", "--family", "nope"): "unknown family 'nope' for --family",
    ("params",): "Missing argument 'model'",
    ("frobnicate",): "No such command 'frobnicate'",
}

PROBE = """
import contextlib, io, json, runpy, sys

from lmspec.verify.cli import main

def call(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # python -m lmspec exits
            code = exc.code
    return [code, out.getvalue(), err.getvalue()]

calls, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
found = {" ".join(argv): call(argv) for argv in calls}
sys.argv = ["lmspec", "--version"]
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        runpy.run_module("lmspec", run_name="__main__")
    except SystemExit as exc:
        found["python -m lmspec --version"] = [exc.code, out.getvalue(), ""]
found["heavy"] = sorted(m for m in heavy if m in sys.modules)
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def fresh() -> dict:
    """Every light call made in one fresh interpreter: argv -> [exit code, stdout, stderr]; and ``heavy``,
    the heavy modules loaded once they all answered."""
    calls = [["--help"], ["-h"], ["--version"], *([c, "--help"] for c in COMMANDS), ["audit", "-h"]]
    calls += map(list, USAGE_ERRORS)
    res = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(calls), json.dumps(HEAVY)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


def test_help_version_and_usage_errors_load_nothing_heavy(fresh):
    assert fresh["heavy"] == []


def test_help_lists_every_command_and_each_command_has_its_help(fresh):
    code, out, _ = fresh["--help"]
    assert code == 0 and "--version" in out
    for command in COMMANDS:
        assert f" {command} " in out
        code, out_cmd, _ = fresh[f"{command} --help"]
        assert code == 0 and f" {command} [OPTIONS]" in " ".join(out_cmd.split())


def test_dash_h_is_help_too(fresh):
    assert fresh["-h"] == fresh["--help"]
    assert fresh["audit -h"] == fresh["audit --help"]


def test_version_is_the_package_version(fresh, capsys):
    assert fresh["--version"][:2] == [0, f"lmspec {lmspec.__version__}\n"]
    assert fresh["python -m lmspec --version"][:2] == [0, f"lmspec {lmspec.__version__}\n"]
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"lmspec {lmspec.__version__}\n"


@pytest.mark.parametrize("argv", list(USAGE_ERRORS), ids=" ".join)
def test_usage_errors_answer_in_one_sentence_before_anything_heavy(fresh, argv):
    code, out, err = fresh[" ".join(argv)]
    assert code == 2, out + err
    assert err.startswith("lmspec: error: " + USAGE_ERRORS[argv]), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err


# --- the light copies agree with their sources -----------------------------------------------------------
def test_the_command_lines_choices_are_the_heavy_modules_own():
    from lmspec import spec
    from lmspec.spec.render import FORMATS
    from lmspec.verify.audit.auditor import DTYPES
    from lmspec.verify.audit.losses import POOLS
    from lmspec.verify.binding import MASK_CONVENTIONS
    from lmspec.verify.cli import _common, audit, bench, render
    from lmspec.verify.runner import PROFILES

    assert _common.PROFILES == tuple(PROFILES)
    assert _common.FAMILIES == tuple(spec.FAMILIES)
    assert audit.DTYPES == tuple(DTYPES)
    assert audit.MASK_CONVENTIONS == tuple(MASK_CONVENTIONS)
    assert audit.POOLS == tuple(POOLS)
    assert render.FORMATS == tuple(FORMATS)
    assert set(bench.PROFILES) <= set(PROFILES)


# --- the pytest plugin ---------------------------------------------------------------------------------
SCRATCH_TEST = """
import sys

HEAVY = {heavy!r}


def test_loading_lmspecs_plugin_imports_nothing_heavy(pytestconfig):
    assert pytestconfig.getoption("--lmspec-profile") == "default"  # the plugin is loaded
    assert "lmspec.verify.pytest_plugin" in sys.modules
    assert sorted(m for m in HEAVY if m in sys.modules) == []
"""


def test_the_pytest_plugin_loads_without_anything_heavy(tmp_path):
    """A one-test project run with lmspec's plugin, and no other (autoloading off: another installed plugin
    may import NumPy): after the plugin's options are registered, nothing heavy is loaded."""
    heavy = (*HEAVY, "lmspec.verify.audit", "lmspec.spec", "lmspec.impl")
    (tmp_path / "test_one.py").write_text(textwrap.dedent(SCRATCH_TEST.format(heavy=heavy)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "lmspec.verify.pytest_plugin"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "1 passed" in res.stdout
