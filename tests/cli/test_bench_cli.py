"""`lmspec bench`: each part runs at the small size and writes its figures to the JSON report, impl's outputs
agree with transformers' before anything is timed, the commands timed in fresh processes do what they are
timed for, and bad options exit 2 with one sentence.

Benchmarks are benchmarks: no test here asserts a timing, only that times are positive and finite.
"""

import contextlib
import io
import json
import math
import re
import statistics
import sys
from pathlib import Path

import pytest
import torch

from lmspec.verify import bench
from lmspec.verify.bench import _audit, _hf, _startup, _whole
from lmspec.verify.cli import main

ROOT = Path(__file__).resolve().parents[2]

PART_KEYS = {
    "suite": {"profile", "jobs", "startup", "families", "total", "shards", "failed"},
    "checking": {"size", "function", "on", "off", "overhead_pct", "overhead_min_pct", "tiny",
                 "checking_cost_s", "estimated_overhead_pct", "goal_pct", "fast"},
    "hf": {"size", "dtype", "attn_implementation", "threads", "lengths", "runs", "goal_ratio", "aim_ratio"},
    "gflops": {"size", "formula", "flops", "forward", "forward_gflops", "square", "ffn_gemm", "efficiency",
               "threads"},
    "oracle": {"steps", "rows"},
    "startup": {"commands", "help_s", "help_over_python_s", "goal_s"},
    "plugin": {"project", "pytest", "with", "without", "ratio", "overhead_pct", "overhead_min_pct",
               "goal_pct"},
    "audit": {"floor", "attention", "gpt_stack", "cache"},
    "verify": {"families", "profile", "cold", "warm", "goals_apply", "goal_cold_s", "goal_warm_s"},
    "render": {"families", "format", "warm", "cold", "ratio_warm", "ratio_cold", "goal_applies",
               "goal_ratio"},
    "tests": {"command", "exit_code", "max_rss_mib", "median_s", "min_s", "max_s", "runs_s", "goal_s"},
}  # fmt: skip
#: the suite's options for a run of seconds: two cheap equations (positional), the quick profile, one
#: process (worker processes take tens of seconds to start on a loaded machine; the bench passes --jobs on)
SUITE = ["--family", "positional", "--profile", "quick", "--jobs", "1", "--shards", "2"]

#: A stand-in for ``lmspec`` in the audit part's runs (a real audit takes seconds, and the part times three
#: commands in fresh processes): it prints the verdict line of the audit it is given, exits as lmspec would,
#: and writes an entry to the cache it is pointed at. VERDICT overrides the verdict.
FAKE_LMSPEC = """import os, pathlib, sys
args = sys.argv[1:]
verdict = os.environ.get("FAKE_VERDICT") or ("pass" if args[1].startswith("gpt_stack") else "variant")
assert pathlib.Path(args[1].split(":")[0]).is_file(), "the audited file is in the working folder"
cache = pathlib.Path(os.environ["LMSPEC_CACHE_DIR"]) / "oracle-v1"
cache.mkdir(parents=True, exist_ok=True)
(cache / "entry.py").write_text("# an entry")
print(f"{args[1]} as {args[args.index('--as') + 1]}: {verdict}")
sys.exit(0 if verdict == "pass" else 1)
"""


@contextlib.contextmanager
def fake_audits(folder: Path):
    """The audit part with the floor importing json and ``lmspec`` replaced by FAKE_LMSPEC."""
    script = folder / "fake_lmspec.py"
    script.write_text(FAKE_LMSPEC)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_audit, "FLOOR_IMPORTS", "json")
        mp.setattr(_audit, "lmspec_command", lambda: [sys.executable, str(script)])
        yield mp


#: A stand-in for ``lmspec verify`` in part verify's runs (a cold catalogue takes minutes): it records the
#: cache folder it was pointed at, and exits 0.
FAKE_VERIFY = """import os, pathlib, sys
assert sys.argv[1] == "verify", sys.argv
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(os.environ["LMSPEC_CACHE_DIR"] + "\\n")
print("2 passed, 0 failed")
"""


@contextlib.contextmanager
def fake_whole(folder: Path):
    """Parts verify and tests with stand-ins: FAKE_VERIFY for lmspec (its warm-up recorded, not run), and a
    checkout of one passing test for the test suite."""
    script = folder / "fake_verify.py"
    script.write_text(FAKE_VERIFY)
    project = folder / "checkout"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    (project / "pytest.ini").write_text("[pytest]\n")
    warmed = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAKE_LOG", str(folder / "caches.log"))
        mp.setattr(_whole, "lmspec_command", lambda: [sys.executable, str(script)])
        mp.setattr(_whole, "_warm_up", lambda env, scratch: warmed.append(env))
        mp.setattr(_whole, "checkout", lambda: project)
        mp.setattr(_whole, "TEST_ARGS", ("pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"))
        yield warmed


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """Each part run on its own (``--only PART --size small --repeat 2``): its exit code, its JSON report
    (None when none was written) and its output, with what it printed to stderr after a line ``stderr:``."""
    out = {}
    for part in bench.PARTS:
        path = tmp_path_factory.mktemp("bench") / f"{part}.json"
        extra = SUITE if part == "suite" else SUITE[:4] if part == "verify" else []
        extra = ["--family", "norm"] if part == "render" else extra  # one equation: seconds, not a minute
        args = ["bench", "--only", part, "--size", "small", "--repeat", "2", *extra, "--json", str(path)]
        printed, errors = io.StringIO(), io.StringIO()
        fake = (
            fake_audits(path.parent) if part == "audit"
            else fake_whole(path.parent) if part in ("verify", "tests")
            else contextlib.nullcontext()
        )  # fmt: skip
        with fake, contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
            code = main(args)
        report = json.loads(path.read_text()) if path.exists() else None
        out[part] = (code, report, f"{printed.getvalue()}\nstderr:\n{errors.getvalue()}")
    return out


def _timing_ok(t: dict, runs: int) -> None:
    assert len(t["runs_s"]) == runs and all(x > 0 for x in t["runs_s"])
    assert t["min_s"] == min(t["runs_s"]) and t["min_s"] <= t["median_s"] <= max(t["runs_s"])
    assert t.get("max_s", max(t["runs_s"])) == max(t["runs_s"])


# --- each part --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("part", bench.PARTS)
def test_each_part_runs_alone_and_reports_only_itself(reports, part):
    code, report, out = reports[part]
    assert code == 0, out
    assert set(report) == {"machine", "settings", "wall_s", part}
    assert set(report[part]) == PART_KEYS[part]
    m = report["machine"]
    assert m["cores"] >= 1 and m["threads"] >= 1 and m["torch"] and m["cpu"]
    assert report["settings"]["parts"] == [part] and report["settings"]["size"] == "small"
    assert report["wall_s"] > 0


def test_suite_times_every_family_serial_parallel_and_each_shard(reports):
    _, report, _ = reports["suite"]
    s = report["suite"]
    assert s["profile"] == "quick" and s["jobs"] == 1 and s["failed"] == 0
    (row,) = s["families"]
    assert row["family"] == "positional" and row["equations"] == 2 and row["checks"] > 0
    assert row["serial_s"] > 0 and row["parallel_s"] > 0 and math.isfinite(row["speedup"])
    assert s["total"]["checks"] == row["checks"] and s["startup"]["seconds"] > 0
    assert [r["shard"] for r in s["shards"]] == ["1/2", "2/2"]
    assert sum(r["checks"] for r in s["shards"]) == row["checks"]  # the shards split the run
    assert all(r["seconds"] > 0 for r in s["shards"])


def test_checking_overhead_on_and_off(reports):
    _, report, out = reports["checking"]
    c = report["checking"]
    assert c["function"] == "impl.gpt2.forward" and c["fast"]["function"] == "impl.fast.gpt2_forward"
    for d in (c, c["fast"]):  # the readable forward and the fast path, each on and off
        _timing_ok(d["on"], 2)
        _timing_ok(d["off"], 2)
        assert math.isfinite(d["overhead_pct"]) and math.isfinite(d["estimated_overhead_pct"])
        assert d["checking_cost_s"] >= 0 and d["tiny"]["L"] == c["size"]["L"] == 2
    assert c["goal_pct"] == 2.0
    assert "runtime checking overhead, impl.fast.gpt2_forward (estimated)" in out and "≤ 2 %" in out


def test_impl_agrees_with_transformers_and_the_ratios_are_finite(reports):
    _, report, out = reports["hf"]
    h = report["hf"]
    assert h["dtype"] == "float32" and h["threads"] == [1, 2] and h["lengths"] == [16, 32]
    assert [(r["threads"], r["n"]) for r in h["runs"]] == [(1, 16), (1, 32), (2, 16), (2, 32)]
    assert h["goal_ratio"] == 1.0 and h["aim_ratio"] == 0.9
    assert report["settings"]["hf_threads"] == [1, 2] and report["settings"]["hf_lengths"] == [16, 32]
    for run in h["runs"]:
        for key, hf_class, function in (
            ("gpt2_model", "GPT2Model", "impl.fast.gpt2_forward"),
            ("gpt2_lm_head", "GPT2LMHeadModel", "impl.gpt2.GPT2(fast=True)"),
            ("bert_model", "BertModel", "impl.bert.BERT(fast=True)"),
        ):
            c = run[key]
            assert c["hf_class"] == hf_class and c["impl_function"] == function
            for who in ("hf", "impl", "impl_unchecked"):
                _timing_ok(c[who], 2)
            assert c["ratio"] == c["impl"]["median_s"] / c["hf"]["median_s"]
            assert (
                math.isfinite(c["ratio"]) and math.isfinite(c["ratio_unchecked"]) and c["goal_ratio"] == 1.0
            )
            for which, impl_key in (("ratio_rounds", "impl"), ("ratio_unchecked_rounds", "impl_unchecked")):
                rounds = [i / t for i, t in zip(c[impl_key]["runs_s"], c["hf"]["runs_s"], strict=True)]
                assert c[which] == {
                    "median": statistics.median(rounds),
                    "min": min(rounds),
                    "max": max(rounds),
                }
            for a in c["agreement"]:  # float32: far inside atol + rtol·max|·|
                assert a["max_abs_diff"] <= a["atol"] + a["rtol"] * a["max_abs"]
                assert a["max_abs"] > 0.1  # the outputs are not trivially zero
        assert len(run["bert_model"]["agreement"]) == 2  # H^L and the pooled state
    assert "impl / GPT2Model time (checks on), 2 threads, n = 32" in out and "≤ 1 (aim 0.9)" in out


def test_startup_times_help_and_a_usage_error_in_fresh_processes(reports):
    _, report, out = reports["startup"]
    s = report["startup"]
    assert list(s["commands"]) == ["python", "help", "command_help", "usage_error"]
    for c in s["commands"].values():
        _timing_ok(c, 2)
        assert c["max_rss_mib"] > 1  # each process's own peak, not the bench's
    commands = {name: c["command"] for name, c in s["commands"].items()}
    assert commands["python"] == "python -c pass" and commands["help"].endswith("lmspec --help")
    assert commands["usage_error"].endswith("lmspec verify --profile nope")
    assert [c["exit_code"] for c in s["commands"].values()] == [0, 0, 0, 2]
    assert s["help_s"] == s["commands"]["help"]["median_s"]
    assert s["help_over_python_s"] == pytest.approx(s["help_s"] - s["commands"]["python"]["median_s"])
    assert s["goal_s"] == 0.5 and "lmspec --help wall time" in out and "≤ 0.5" in out


def test_plugin_overhead_is_pytest_with_and_without_the_plugin(reports):
    _, report, out = reports["plugin"]
    p = report["plugin"]
    _timing_ok(p["with"], 2)
    _timing_ok(p["without"], 2)
    assert p["with"]["command"] == "python -m pytest -p no:cacheprovider test_one.py"
    assert p["without"]["command"] == p["with"]["command"] + " -p no:lmspec"
    assert p["with"]["max_rss_mib"] > 1 and p["without"]["max_rss_mib"] > 1
    assert p["ratio"] == p["with"]["median_s"] / p["without"]["median_s"]
    assert p["overhead_pct"] == pytest.approx(100 * (p["ratio"] - 1))
    assert p["pytest"] == pytest.__version__ and p["goal_pct"] == 5.0
    assert "pytest plugin overhead" in out and "≤ 5 %" in out


def test_audit_times_the_documents_audits_beside_the_import_floor(reports):
    """The part's plumbing, with a stand-in for lmspec (no timing is asserted, nor a real audit run)."""
    _, report, out = reports["audit"]
    a = report["audit"]
    assert a["floor"]["command"] == "python -c 'import json'"  # the stand-in floor (torch, sympy, hypothesis)
    _timing_ok(a["floor"], 2)
    for key, verdict, goal in (("attention", "variant", 1.5), ("gpt_stack", "pass", 3.0)):
        c = a[key]
        _timing_ok(c, 2)
        assert c["verdict"] == verdict and c["exit_code"] == (0 if verdict == "pass" else 1)
        assert c["max_s"] == max(c["runs_s"]) and c["cold_s"] > 0 and c["max_rss_mib"] > 1
        assert c["ratio"] == c["median_s"] / a["floor"]["median_s"] and c["goal_ratio"] == goal
        assert c["ratio_min"] == c["min_s"] / a["floor"]["min_s"]
        assert c["cold_ratio"] == c["cold_s"] / a["floor"]["median_s"]
        assert c["cpu_median_s"] >= 0 and c["cpu_ratio"] == c["cpu_median_s"] / a["floor"]["cpu_median_s"]
    attention = " audit my_attention.py:attention --as attention.scaled_dot_product --layout "
    assert attention in a["attention"]["command"]
    assert " audit gpt_stack.py:GPT --as 'transformer.stack[eps]' -p quick " in a["gpt_stack"]["command"]
    assert a["cache"]["warm"] and a["cache"]["entries"] == 1
    assert "README's attention audit / import floor" in out and "≤ 1.5" in out and "≤ 3" in out


def test_verify_times_cold_runs_each_on_an_empty_cache_then_warm_runs_on_a_filled_one(reports):
    """The part's plumbing, with a stand-in for lmspec verify: which cache each run is pointed at."""
    _, report, out = reports["verify"]
    v = report["verify"]
    assert v["families"] == ["positional"] and v["profile"] == "quick" and not v["goals_apply"]
    _timing_ok(v["cold"], 2)
    _timing_ok(v["warm"], 2)
    assert v["cold"]["command"].endswith("verify positional --profile quick")
    assert (v["goal_cold_s"], v["goal_warm_s"]) == (30.0, 10.0)
    assert "lmspec verify, whole catalogue" not in out  # no goal on a selection


def test_verify_points_each_cold_run_at_an_empty_cache_and_the_warm_runs_at_a_filled_one(tmp_path):
    with fake_whole(tmp_path) as warmed:
        v = _whole.verify(repeat=2, families=["positional"], profile="quick")
    cold_0, cold_1, warm_a, warm_b = (tmp_path / "caches.log").read_text().splitlines()
    assert cold_0 != cold_1 and warm_a == warm_b == cold_1  # the warm runs find the last cold run's cache
    assert len(warmed) == 1 and warmed[0]["PYTHONPYCACHEPREFIX"]  # bytecode as an installed package's
    assert "PYTHONDONTWRITEBYTECODE" not in warmed[0] and "LMSPEC_NO_CACHE" not in warmed[0]
    assert len(v["cold"]["runs_s"]) == 2 and len(v["warm"]["runs_s"]) == 2


def test_verify_goals_apply_to_the_whole_catalogue_at_the_default_profile(tmp_path):
    with fake_whole(tmp_path):
        v = _whole.verify(repeat=1)
    assert v["goals_apply"] and v["profile"] == "default" and len(v["cold"]["runs_s"]) == 1
    rows = {g["goal"]: g for g in bench.goals({"verify": v})}
    cold = rows["lmspec verify, whole catalogue, default profile, serial, cold cache (median, s)"]
    assert cold["target"] == 30.0 and cold["value"] == v["cold"]["median_s"]


def test_render_times_the_document_with_and_without_figures_warm_and_cold(reports):
    """Real ``lmspec render`` runs of one family: each wrote its document, the ratios are the medians', and
    the goal (whole catalogue) is reported as not applying to a selection."""
    _, report, out = reports["render"]
    r = report["render"]
    assert r["families"] == ["norm"] and r["format"] == "html" and r["goal_applies"] is False
    for key, runs in (("warm", 2), ("cold", 2)):
        for name in ("figures", "no_figures"):
            _timing_ok(r[key][name], runs)
        assert r[f"ratio_{key}"] == r[key]["figures"]["median_s"] / r[key]["no_figures"]["median_s"]
    assert r["warm"]["no_figures"]["command"].endswith("--family norm --no-figures")
    assert r["goal_ratio"] == bench.GOALS["render_figures_ratio"] == 2.0
    assert "10. lmspec render --format html — norm" in out and "(warm, whole catalogue)" in out
    assert bench.goals(report) == []  # a selection meets no goal of the whole document
    whole = {"render": {**r, "goal_applies": True, "ratio_warm": 1.4}}
    assert bench.goals(whole)[0] | {"value": 1.4} == {
        "goal": "lmspec render, whole document, with figures / without (warm cache, medians)",
        "value": 1.4, "unit": "×", "target": 2.0, "met": True,
    }  # fmt: skip


def test_tests_times_the_test_suite_in_the_checkout(reports):
    _, report, out = reports["tests"]
    t = report["tests"]
    _timing_ok(t, 2)
    assert t["command"] == "python -m pytest -q -p no:cacheprovider -p no:randomly" and t["goal_s"] == 360.0
    assert "the test suite as make test runs it" in out and "≤ 360" in out


def test_tests_needs_a_checkout(monkeypatch, tmp_path, capsys):
    from lmspec.verify.bench import _parts

    monkeypatch.setattr(_parts, "__file__", str(tmp_path / "lmspec" / "verify" / "bench" / "_parts.py"))
    assert main(["bench", "--only", "tests", "--repeat", "1"]) == 2
    assert "the tests part times the test suite of a checkout" in capsys.readouterr().err
    with pytest.raises(bench.BenchError, match="holds no tests/"):
        _whole.checkout()


def test_audit_stops_when_an_audit_does_not_reach_its_documented_verdict(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_VERDICT", "fail")
    with fake_audits(tmp_path):
        assert main(["bench", "--only", "audit", "--repeat", "1"]) == 1
    err = capsys.readouterr().err
    assert "lmspec: error: `" in err and "my_attention.py:attention" in err
    assert "did not print 'my_attention.py:attention as attention.scaled_dot_product: variant'" in err


def test_the_audit_part_runs_the_documents_files_and_commands_verbatim():
    """README.md's walkthrough and docs/audit.md's GPT-2-style stack, as the part embeds them."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    source = re.search(r"```python\n# my_attention\.py\n(.*?)```", readme, re.S).group(1)
    command = re.search(r"^lmspec (audit my_attention\.py:attention .*)$", readme, re.M).group(1)
    assert source == _audit.ATTENTION_SOURCE
    assert [a.strip('"') for a in re.findall(r'"[^"]*"|\S+', command)] == list(_audit.ATTENTION_ARGS)
    assert re.search(r"^lmspec audit my_attention\.py:attention .*\n# → variant$", readme, re.M)
    doc = (ROOT / "docs" / "audit.md").read_text(encoding="utf-8")
    block = r"```python\n# gpt_stack\.py\n(.*?)```\s*```sh\nlmspec (audit .*?)\n# → (\w+)\n```"
    m = re.search(block, doc, re.S)
    assert m.group(2).startswith("audit gpt_stack.py:GPT") and m.group(3) == "pass"
    assert m.group(1) == _audit.STACK_SOURCE
    args = [a.strip('"') for a in re.findall(r'"[^"]*"|\S+', m.group(2).replace("\\\n", " "))]
    assert args == list(_audit.STACK_ARGS)


def test_a_command_that_does_not_do_its_job_is_not_timed():
    """A wrong exit code, a failed test or a plugin (not) loaded stops the part: its time is no figure."""
    ok = _startup._Command([sys.executable, "-c", "print('usage'); raise SystemExit(2)"], exit_code=2)
    ok()
    assert ok.checked()["exit_code"] == 2 and ok.peak_mib > 1
    wrong = _startup._Command([sys.executable, "-c", "pass"], exit_code=2)
    wrong()
    with pytest.raises(bench.CommandError, match=r"^`python -c pass` exited 0, not 2: no output$"):
        wrong.checked()
    header = "plugins: hypothesis-6.170.15, lmspec-0.2.0\n"
    with_plugin, without_plugin = _startup._pytest_complaint(True), _startup._pytest_complaint(False)
    assert with_plugin(header + "=== 1 passed in 0.01s ===") is None
    assert (
        with_plugin("plugins: hypothesis-6.170.15\n=== 1 passed in 0.01s ===")
        == "did not load the lmspec plugin"
    )
    assert without_plugin(header + "=== 1 passed in 0.01s ===") == "loaded the lmspec plugin"
    assert without_plugin("=== 1 failed in 0.01s ===") == "did not pass its one test"


def test_flop_count_is_the_formula(reports):
    _, report, _ = reports["gflops"]
    g = report["gflops"]
    s = g["size"]
    n, d_e, d_f, L, batch = s["n"], s["d_e"], s["d_f"], s["L"], s["batch"]
    assert s["M"] * s["d_k"] == d_e
    # per block: Q, K, V and W_O are d_e × d_e matmuls over n tokens, the FFN two d_e × d_f ones, and
    # QKᵀ, PV two n × n × d_e products over the heads; 2 FLOPs per multiply-add
    per_block = 4 * 2 * n * d_e * d_e + 2 * 2 * n * d_e * d_f + 2 * 2 * n * n * d_e
    assert g["flops"] == batch * L * per_block == 6_815_744
    assert g["square"]["flops"] == g["square"]["count"] * 2 * g["square"]["side"] ** 3
    assert g["ffn_gemm"]["flops"] == 2 * n * d_e * d_f
    _timing_ok(g["forward"], 2)
    assert g["forward_gflops"] == pytest.approx(g["flops"] / g["forward"]["median_s"] / 1e9)
    assert g["forward_gflops"] > 0 and 0 < g["efficiency"] and math.isfinite(g["efficiency"])


def test_flop_formula_at_gpt2_small():
    # 12 · (8·256·768² + 4·256·768·3072 + 4·256²·768), the same count written out for GPT-2 small
    want = 12 * (8 * 256 * 768**2 + 4 * 256 * 768 * 3072 + 4 * 256**2 * 768)
    got = bench.gpt2_forward_flops(n=256, d_e=768, M=12, d_k=64, d_v=64, d_f=3072, L=12)
    assert got == want == 45_902_462_976
    assert bench.gpt2_forward_flops(n=256, d_e=768, M=12, d_k=64, d_v=64, d_f=3072, L=12, batch=3) == 3 * want


def test_oracle_times_grow_with_the_sizes(reports):
    _, report, out = reports["oracle"]
    rows = report["oracle"]["rows"]
    assert [(r["equation"], r["step"]) for r in rows] == [
        ("attention.softmax_rows", 2), ("attention.softmax_rows", 3),
        ("attention.scaled_dot_product", 2), ("attention.scaled_dot_product", 3),
    ]  # fmt: skip
    assert rows[2]["sizes"] == {"n": 2, "d_k": 2, "d_v": 2}
    for r in rows:
        assert r["compile_float64_s"] > 0 and r["compile_mpmath_s"] > 0 and r["lines"] > 0
        _timing_ok(r["eval_float64"], 2)
        _timing_ok(r["eval_mpmath"], 2)
    assert rows[1]["lines"] > rows[0]["lines"] and rows[1]["entries"] > rows[0]["entries"]
    assert "the oracle" in out


def test_oracle_sizes_keep_the_small_axes_small_and_the_constraints():
    from lmspec import spec

    sizes = bench.oracle_sizes(spec.get("attention.multi_head"), 4)
    assert sizes == {"n": 4, "d_e": 4, "M": 2, "d_k": 4, "d_v": 4}
    sizes = bench.oracle_sizes(spec.get("gpt2.forward"), 3)
    assert sizes["L"] == 2 and sizes["n"] <= sizes["n_max"]


# --- the parts' helpers -----------------------------------------------------------------------------------
def test_measure_warms_up_then_interleaves_in_alternating_order():
    calls: list[str] = []
    fns = {name: (lambda name=name: calls.append(name)) for name in ("a", "b", "c")}
    times = bench.measure(fns, repeat=3, warmup=1)
    assert calls == list("abc") + list("abc") + list("cba") + list("abc")
    for t in times.values():
        _timing_ok(t, 3)
    with pytest.raises(ValueError, match="repeat must be at least 1"):
        bench.measure(fns, repeat=0)


def test_goals_say_which_are_met():
    report = {
        "checking": {"function": "impl.gpt2.forward", "overhead_pct": 7.0, "estimated_overhead_pct": 2.0,
                     "goal_pct": 5.0,
                     "fast": {"function": "impl.fast.gpt2_forward", "overhead_pct": 0.5,
                              "estimated_overhead_pct": 0.1}},
        "hf": {"runs": [{"threads": 2, "n": 1024,
                         **{key: {"ratio": 0.95, "ratio_unchecked": 0.8, "goal_ratio": 1.0, "aim_ratio": 0.9}
                            for key in ("gpt2_model", "gpt2_lm_head", "bert_model")}}]},
        "startup": {"help_s": 0.3, "goal_s": 0.5},
        "plugin": {"overhead_pct": 7.5, "goal_pct": 5.0},
    }  # fmt: skip
    rows = bench.goals(report)
    assert [r["met"] for r in rows] == [False, True, True, True] + [True, True] * 3 + [True, False]
    assert rows[0]["goal"] == "runtime checking overhead, impl.gpt2.forward (measured)"
    assert rows[3]["goal"] == "runtime checking overhead, impl.fast.gpt2_forward (estimated)"
    assert rows[4] == {"goal": "impl / GPT2Model time (checks on), 2 threads, n = 1024", "value": 0.95,
                       "unit": "×", "target": 1.0, "met": True, "aim": 0.9, "aim_met": False}  # fmt: skip
    assert [r["aim_met"] for r in rows[4:10]] == [False, True] * 3
    assert rows[-2] == {"goal": "lmspec --help wall time (median)", "value": 0.3, "unit": "s", "target": 0.5,
                        "met": True}  # fmt: skip
    assert rows[-1]["goal"] == "pytest plugin overhead, one-test project" and rows[-1]["unit"] == "%"
    assert bench.goals({}) == []


def test_a_weight_copied_wrongly_is_caught_before_timing(monkeypatch, capsys):
    copy = _hf.gpt2_from_hf

    def wrong(hf, **options):
        ours = copy(hf, **options)
        with torch.no_grad():
            ours.blocks[0].ffn.b_2[0] += 0.01  # one entry (a shift of all of b_2, layer norm would undo)
        return ours

    monkeypatch.setattr(_hf, "gpt2_from_hf", wrong)
    assert main(["bench", "--only", "hf", "--size", "small", "--repeat", "1"]) == 1
    err = capsys.readouterr().err
    assert (
        "lmspec: error: GPT-2 H̃^L = LN(H^L) (n = 16): impl and transformers disagree on the same weights "
        "(max |Δ| =" in err
    )


# --- bad options ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--only", "speed"], f"--only takes {', '.join(bench.PARTS)}, found 'speed'"),
        (["--only", "oracle,nope"], f"--only takes {', '.join(bench.PARTS)}, found 'nope'"),
        (["--repeat", "0"], "--repeat must be at least 1, found 0"),
        (["--jobs", "-1"], "--jobs must be 0 (all cores) or more, found -1"),
        (["--size", "huge"], "--size takes gpt2-small or small, found 'huge'"),
        (["--profile", "thorough"], "--profile takes quick or default for the bench, found 'thorough'"),
        (["--family", "cnn"], "unknown family 'cnn' for --family; the families are lm, ffnn,"),
        (["--shards", "0"], "--shards must be at least 1, found 0"),
        (["--threads", "0"], "--threads must be at least 1, found 0"),
        (["--threads", "1,two"], "--threads takes whole numbers, found 'two'"),
        (["--size", "small", "--lengths", "16,65"], "--lengths must be in 1..64 at --size small, found 65"),
        (["--repeat", "many"], "Invalid value for '--repeat': Input should be a valid integer"),
    ],
)
def test_bad_options_exit_2_with_one_sentence(capsys, args, message):
    assert main(["bench", *args]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lmspec: error: ") and message in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""


def test_an_unwritable_json_path_fails_before_measuring(capsys, tmp_path):
    assert main(["bench", "--only", "oracle", "--size", "small", "--json", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"lmspec: error: cannot write {tmp_path}: it is a directory"
