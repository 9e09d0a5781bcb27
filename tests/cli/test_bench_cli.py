"""`lmspec bench`: each part runs at the small size and writes its figures to the JSON report, impl's outputs
agree with transformers' before anything is timed, the commands timed in fresh processes do what they are
timed for, and bad options exit 2 with one sentence.

Benchmarks are benchmarks: no test here asserts a timing, only that times are positive and finite.
"""

import contextlib
import io
import json
import math
import sys

import pytest
import torch

from lmspec.verify import bench
from lmspec.verify.bench import _hf, _startup
from lmspec.verify.cli import main

PART_KEYS = {
    "suite": {"profile", "jobs", "startup", "families", "total", "shards", "failed"},
    "checking": {"size", "function", "on", "off", "overhead_pct", "overhead_min_pct", "tiny",
                 "checking_cost_s", "estimated_overhead_pct", "goal_pct"},
    "hf": {"size", "dtype", "threads", "attn_implementation", "gpt2_model", "gpt2_lm_head", "bert_model"},
    "gflops": {"size", "formula", "flops", "forward", "forward_gflops", "square", "ffn_gemm", "efficiency",
               "threads"},
    "oracle": {"steps", "rows"},
    "startup": {"commands", "help_s", "help_over_python_s", "goal_s"},
    "plugin": {"project", "pytest", "with", "without", "ratio", "overhead_pct", "overhead_min_pct",
               "goal_pct"},
}  # fmt: skip
#: the suite's options for a run of seconds: two cheap equations (positional), the quick profile, one
#: process (worker processes take tens of seconds to start on a loaded machine; the bench passes --jobs on)
SUITE = ["--family", "positional", "--profile", "quick", "--jobs", "1", "--shards", "2"]


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """Each part run on its own (``--only PART --size small --repeat 2``): its exit code, its JSON report
    (None when none was written) and its output, with what it printed to stderr after a line ``stderr:``."""
    out = {}
    for part in bench.PARTS:
        path = tmp_path_factory.mktemp("bench") / f"{part}.json"
        extra = SUITE if part == "suite" else []
        args = ["bench", "--only", part, "--size", "small", "--repeat", "2", *extra, "--json", str(path)]
        printed, errors = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
            code = main(args)
        report = json.loads(path.read_text()) if path.exists() else None
        out[part] = (code, report, f"{printed.getvalue()}\nstderr:\n{errors.getvalue()}")
    return out


def _timing_ok(t: dict, runs: int) -> None:
    assert len(t["runs_s"]) == runs and all(x > 0 for x in t["runs_s"])
    assert t["min_s"] == min(t["runs_s"]) and t["min_s"] <= t["median_s"] <= max(t["runs_s"])


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
    _timing_ok(c["on"], 2)
    _timing_ok(c["off"], 2)
    assert math.isfinite(c["overhead_pct"]) and math.isfinite(c["estimated_overhead_pct"])
    assert c["checking_cost_s"] >= 0 and c["tiny"]["L"] == c["size"]["L"] == 2
    assert c["goal_pct"] == 5.0
    assert "runtime checking overhead" in out and "≤ 5 %" in out


def test_impl_agrees_with_transformers_and_the_ratios_are_finite(reports):
    _, report, out = reports["hf"]
    h = report["hf"]
    assert h["dtype"] == "float32" and h["threads"] >= 1
    for key, hf_class in (("gpt2_model", "GPT2Model"), ("gpt2_lm_head", "GPT2LMHeadModel"),
                          ("bert_model", "BertModel")):  # fmt: skip
        c = h[key]
        assert c["hf_class"] == hf_class
        for who in ("hf", "impl", "impl_unchecked"):
            _timing_ok(c[who], 2)
        assert c["ratio"] == c["impl"]["median_s"] / c["hf"]["median_s"]
        assert math.isfinite(c["ratio"]) and math.isfinite(c["ratio_unchecked"]) and c["goal_ratio"] == 1.0
        for a in c["agreement"]:  # float32: far inside atol + rtol·max|·|
            assert a["max_abs_diff"] <= a["atol"] + a["rtol"] * a["max_abs"]
            assert a["max_abs"] > 0.1  # the outputs are not trivially zero
    assert len(h["bert_model"]["agreement"]) == 2  # H^L and the pooled state
    assert "impl / GPT2Model" in out and "≤ 1" in out


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
        "checking": {"overhead_pct": 7.0, "estimated_overhead_pct": 2.0, "goal_pct": 5.0},
        "hf": {key: {"ratio": 1.2, "ratio_unchecked": 0.8, "goal_ratio": 1.0}
               for key in ("gpt2_model", "gpt2_lm_head", "bert_model")},
        "startup": {"help_s": 0.3, "goal_s": 0.5},
        "plugin": {"overhead_pct": 7.5, "goal_pct": 5.0},
    }  # fmt: skip
    rows = bench.goals(report)
    assert [r["met"] for r in rows] == [False, True] + [False, True] * 3 + [True, False]
    assert rows[2]["goal"] == "impl / GPT2Model time (checks on)"
    assert rows[-2] == {"goal": "lmspec --help wall time (median)", "value": 0.3, "unit": "s", "target": 0.5,
                        "met": True}  # fmt: skip
    assert rows[-1]["goal"] == "pytest plugin overhead, one-test project" and rows[-1]["unit"] == "%"
    assert bench.goals({}) == []


def test_a_weight_copied_wrongly_is_caught_before_timing(monkeypatch, capsys):
    copy = _hf.gpt2_from_hf

    def wrong(hf):
        ours = copy(hf)
        with torch.no_grad():
            ours.blocks[0].ffn.b_2[0] += 0.01  # one entry (a shift of all of b_2, layer norm would undo)
        return ours

    monkeypatch.setattr(_hf, "gpt2_from_hf", wrong)
    assert main(["bench", "--only", "hf", "--size", "small", "--repeat", "1"]) == 1
    err = capsys.readouterr().err
    assert "lmspec: error: GPT-2 H^L: impl and transformers disagree on the same weights (max |Δ| =" in err


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
