"""``lmspec bench``: the verifier's and impl's speed, side by side with the issue's goals (docs/bench.md).

Exit codes: 0 measured, 1 a figure cannot be taken (impl's and transformers' outputs disagree, a timed
command does not do its job), 2 bad usage.
"""

import importlib.util
import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from ..bench import PARTS, SIZES, checkout_root  # the bench's face and these names are light: no torch
from ._common import FAMILIES, UsageError, console, err, writable, write

#: The verifier profiles the suite's part may run.
PROFILES = ("quick", "default")


def _t(seconds: float) -> str:
    """A duration for people: µs, ms or s."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def _mark(met: bool) -> str:
    return "[green]yes[/green]" if met else "[red]no[/red]"


def _parts(only: list[str] | None) -> list[str]:
    if not only:  # everything this installation can measure
        return [p for p in PARTS if p != "tests" or checkout_root() is not None]
    parts = [p.strip() for item in only for p in item.split(",") if p.strip()]
    for p in parts:
        if p not in PARTS:
            raise UsageError(f"--only takes {', '.join(PARTS)}, found {p!r}")
    return parts


def _check_options(size, repeat, jobs, profile, families, shards, threads, lengths) -> None:
    if size not in SIZES:
        raise UsageError(f"--size takes {' or '.join(SIZES)}, found {size!r}")
    if repeat < 1:
        raise UsageError(f"--repeat must be at least 1, found {repeat}")
    if jobs < 0:
        raise UsageError(f"--jobs must be 0 (all cores) or more, found {jobs}")
    if profile not in PROFILES:
        raise UsageError(f"--profile takes quick or default for the bench, found {profile!r}")
    for family in families:
        if family not in FAMILIES:
            raise UsageError(
                f"unknown family {family!r} for --family; the families are {', '.join(FAMILIES)}"
            )
    if shards < 1:
        raise UsageError(f"--shards must be at least 1, found {shards}")
    for t in threads:
        if t < 1:
            raise UsageError(f"--threads must be at least 1, found {t}")
    longest = min(SIZES[size].n_max, SIZES[size].n_max_bert)
    for n in lengths:
        if not 1 <= n <= longest:
            raise UsageError(f"--lengths must be in 1..{longest} at --size {size}, found {n}")


def _counts(option: str, values: list[str] | None) -> list[int]:
    """Whole numbers given as repeated options or comma-separated (``--threads 1,2``)."""
    out = []
    for item in values or []:
        for part in item.split(","):
            if part.strip():
                try:
                    out.append(int(part))
                except ValueError:
                    raise UsageError(f"{option} takes whole numbers, found {part.strip()!r}") from None
    return out


# --- tables -------------------------------------------------------------------------------------------
def _table(title: str, columns: list[tuple[str, str]]) -> Table:
    table = Table(title=title)
    for name, justify in columns:
        table.add_column(name, justify=justify)
    return table


def suite_table(data: dict) -> list[Table]:
    jobs = data["jobs"]
    table = _table(
        f"1. verifier suite — profile {data['profile']}, wall time (caches cold), serial vs {jobs} jobs",
        [("family", "left"), ("equations", "right"), ("checks", "right"), ("serial", "right"),
         (f"--jobs {jobs}", "right"), ("speed-up", "right")],
    )  # fmt: skip
    for r in data["families"]:
        table.add_row(
            r["family"], str(r["equations"]), str(r["checks"]), _t(r["serial_s"]), _t(r["parallel_s"]),
            f"{r['speedup']:.2f}×",
        )  # fmt: skip
    t = data["total"]
    table.add_row(
        "[bold]all[/bold] (serial: the sum; jobs: one run)", str(t["equations"]), str(t["checks"]),
        _t(t["serial_s"]), _t(t["parallel_s"]), f"{t['speedup']:.2f}×",
    )  # fmt: skip
    up = data["startup"]
    table.add_row(
        f"workers' start-up (first run: {' '.join(up['equations'])})", "", "", "", _t(up["seconds"]), ""
    )
    columns = [("shard", "left"), ("checks", "right"), ("wall", "right")]
    shards = _table(f"   --shard i/{len(data['shards'])}, each serial", columns)
    for r in data["shards"]:
        shards.add_row(r["shard"], str(r["checks"]), _t(r["seconds"]))
    return [table, shards]


def _checking_rows(table: Table, s: dict, d: dict, goal: float) -> None:
    on, off = d["on"], d["off"]
    table.add_row(
        d["function"], f"d_e={s['d_e']} L={s['L']} n={s['n']}: median", _t(on["median_s"]),
        _t(off["median_s"]), f"{d['overhead_pct']:+.1f} %", f"≤ {goal:g} %", _mark(d["overhead_pct"] <= goal),
    )  # fmt: skip
    table.add_row(
        "", "min (max)", f"{_t(on['min_s'])} ({_t(on['max_s'])})", f"{_t(off['min_s'])} ({_t(off['max_s'])})",
        f"{d['overhead_min_pct']:+.1f} %", "", "",
    )  # fmt: skip
    tiny = d["tiny"]
    table.add_row(
        "", f"d_e={tiny['d_e']} n={tiny['n']} (checking's own cost): min", _t(tiny["on"]["min_s"]),
        _t(tiny["off"]["min_s"]), _t(d["checking_cost_s"]), "", "",
    )  # fmt: skip
    table.add_row(
        "", "estimate: cost / unchecked forward (min)", "", "", f"{d['estimated_overhead_pct']:.1f} %",
        f"≤ {goal:g} %", _mark(d["estimated_overhead_pct"] <= goal),
    )  # fmt: skip


def checking_table(data: dict) -> Table:
    s = data["size"]
    table = _table(
        f"2. runtime checking (jaxtyping + beartype) — the GPT-2 forward at {s['name']}, readable and fast",
        [("function", "left"), ("run", "left"), ("checks on", "right"), ("checks off", "right"),
         ("overhead", "right"), ("goal", "right"), ("met", "left")],
    )  # fmt: skip
    _checking_rows(table, s, data, data["goal_pct"])
    if "fast" in data:
        _checking_rows(table, s, data["fast"], data["goal_pct"])
    return table


#: The models of part hf, in the order of its table.
HF_KEYS = ("gpt2_model", "gpt2_lm_head", "bert_model")


def _ratio(c: dict, which: str) -> str:
    """impl/HF (ratio of the medians) and the range of the rounds' ratios."""
    r = c[f"{which}_rounds"] if f"{which}_rounds" in c else None
    return f"{c[which]:.2f}" + (f" ({r['min']:.2f}–{r['max']:.2f})" if r else "")


def hf_table(data: dict) -> Table:
    goal, aim = data["goal_ratio"], data.get("aim_ratio")
    first = data["runs"][0] if data["runs"] else {}
    impls = ", ".join(f"{first[k]['hf_class']}: {first[k]['impl_function']}" for k in HF_KEYS if k in first)
    table = _table(
        f"3. impl's fast path against transformers — same weights, float32, batch {data['size']['batch']}, "
        f"attention '{data['attn_implementation']}' ({impls}); time: median (min–max); impl/HF: the ratio "
        "of the medians (its range over the interleaved rounds)",
        [("threads", "right"), ("n", "right"), ("model", "left"), ("transformers", "right"),
         ("impl", "right"), ("impl/HF", "right"), ("checks off: impl/HF", "right"),
         ("goal" + (f" (aim {aim:g})" if aim else ""), "right"), ("met", "left"), ("max |Δ|", "right")],
    )  # fmt: skip
    for run in data["runs"]:
        for key in HF_KEYS:
            c = run[key]
            hf_t, impl_t = c["hf"], c["impl"]
            met = _mark(c["ratio"] <= goal) + " / " + _mark(c["ratio_unchecked"] <= goal)
            if aim:
                met += " (aim: " + ("yes" if max(c["ratio"], c["ratio_unchecked"]) <= aim else "no") + ")"
            table.add_row(
                str(run["threads"]), str(run["n"]), c["hf_class"],
                f"{_t(hf_t['median_s'])} ({_t(hf_t['min_s'])}–{_t(hf_t['max_s'])})",
                f"{_t(impl_t['median_s'])} ({_t(impl_t['min_s'])}–{_t(impl_t['max_s'])})",
                _ratio(c, "ratio"), _ratio(c, "ratio_unchecked"), f"≤ {goal:g}", met,
                f"{max(a['max_abs_diff'] for a in c['agreement']):.1e}",
            )  # fmt: skip
    return table


def gflops_table(data: dict) -> Table:
    table = _table(
        f"4. achieved GFLOP/s — {data['threads']} threads; FLOPs = {data['formula']}",
        [("what", "left"), ("GFLOP", "right"), ("time (median)", "right"), ("GFLOP/s", "right"),
         ("of the square matmuls", "right")],
    )  # fmt: skip
    ref = data["square"]["gflops"]
    table.add_row(
        "impl.gpt2.forward, checks off", f"{data['flops'] / 1e9:.2f}", _t(data["forward"]["median_s"]),
        f"{data['forward_gflops']:.1f}", f"{100 * data['efficiency']:.0f} %",
    )  # fmt: skip
    sq = data["square"]
    table.add_row(
        f"{sq['count']} × square matmul {sq['side']}²", f"{sq['flops'] / 1e9:.2f}", _t(sq["median_s"]),
        f"{sq['gflops']:.1f}", "100 %",
    )  # fmt: skip
    g = data["ffn_gemm"]
    m, k, n = g["shape"]
    table.add_row(
        f"one GEMM ({m}×{k})·({k}×{n})", f"{g['flops'] / 1e9:.3f}", _t(g["median_s"]), f"{g['gflops']:.1f}",
        f"{100 * g['gflops'] / ref:.0f} %",
    )  # fmt: skip
    return table


def oracle_table(data: dict) -> Table:
    table = _table(
        "5. the oracle — compile (cold) and per-example evaluation",
        [("equation", "left"), ("sizes", "left"), ("lines", "right"), ("compile f64", "right"),
         ("eval f64", "right"), ("compile mpmath", "right"), ("eval mpmath", "right")],
    )  # fmt: skip
    for r in data["rows"]:
        sizes = " ".join(f"{a}={v}" for a, v in r["sizes"].items())
        table.add_row(
            r["equation"], sizes, str(r["lines"]), _t(r["compile_float64_s"]),
            _t(r["eval_float64"]["median_s"]), _t(r["compile_mpmath_s"]), _t(r["eval_mpmath"]["median_s"]),
        )  # fmt: skip
    return table


def startup_table(data: dict) -> Table:
    table = _table(
        "6. start-up — each command in fresh processes (median and min), beside python's own",
        [("command", "left"), ("exit", "right"), ("median", "right"), ("min", "right"), ("peak", "right")],
    )
    for c in data["commands"].values():
        table.add_row(
            c["command"],
            str(c["exit_code"]),
            _t(c["median_s"]),
            _t(c["min_s"]),
            f"{c['max_rss_mib']:.0f} MiB",
        )
    table.add_row("lmspec --help over python -c pass", "", _t(data["help_over_python_s"]), "", "")
    return table


def plugin_table(data: dict) -> Table:
    table = _table(
        f"7. pytest plugin — pytest {data['pytest']} on a project of {data['project']}",
        [("run", "left"), ("median", "right"), ("min", "right"), ("peak", "right")],
    )
    for key in ("with", "without"):
        c = data[key]
        table.add_row(c["command"], _t(c["median_s"]), _t(c["min_s"]), f"{c['max_rss_mib']:.0f} MiB")
    table.add_row(
        "overhead (median; min)", f"{data['overhead_pct']:+.1f} %", f"{data['overhead_min_pct']:+.1f} %", ""
    )
    return table


def _cpu_ratio(row: dict) -> str:
    return "" if row.get("cpu_ratio") is None else f", CPU {row['cpu_ratio']:.2f}×"


def audit_table(data: dict) -> Table:
    table = _table(
        "8. audits from the command line — fresh processes, start-up included (median, min–max), beside the "
        "import floor",
        [("command", "left"), ("verdict", "left"), ("median", "right"), ("min–max", "right"),
         ("× floor", "right"), ("goal", "right"), ("met", "left"), ("cold cache", "right"),
         ("peak", "right")],
    )  # fmt: skip
    floor = data["floor"]
    table.add_row(
        escape(f"floor: {floor['command']}"), "", _t(floor["median_s"]),
        f"{_t(floor['min_s'])} – {_t(floor['max_s'])}", "1.00×", "", "", "",
        f"{floor['max_rss_mib']:.0f} MiB",
    )  # fmt: skip
    for key in ("attention", "gpt_stack"):
        c = data[key]
        table.add_row(
            escape(c["what"]), c["verdict"],
            _t(c["median_s"]), f"{_t(c['min_s'])} – {_t(c['max_s'])}",
            f"{c['ratio']:.2f}× (min {c['ratio_min']:.2f}×" + _cpu_ratio(c) + ")", f"≤ {c['goal_ratio']:g}×",
            _mark(c["ratio"] <= c["goal_ratio"]), f"{_t(c['cold_s'])} ({c['cold_ratio']:.2f}×)",
            f"{c['max_rss_mib']:.0f} MiB",
        )  # fmt: skip
    return table


def verify_table(data: dict) -> Table:
    families = (
        "the whole catalogue"
        if data["goals_apply"] or len(data["families"]) > 3
        else ", ".join(data["families"])
    )
    table = _table(
        f"9. lmspec verify — {families}, profile {data['profile']}, serial, fresh processes (median, min–max)"
        "",
        [("cache", "left"), ("runs", "right"), ("median", "right"), ("min–max", "right"), ("goal", "right"),
         ("met", "left")],
    )  # fmt: skip
    for key, label in (("cold", "cold (an empty cache each run)"), ("warm", "warm")):
        row, goal = data[key], data[f"goal_{key}_s"]
        table.add_row(
            label, str(len(row["runs_s"])), _t(row["median_s"]), f"{_t(row['min_s'])} – {_t(row['max_s'])}",
            f"≤ {goal:g} s" if data["goals_apply"] else "(whole catalogue, default profile)",
            _mark(row["median_s"] <= goal) if data["goals_apply"] else "",
        )  # fmt: skip
    return table


def render_table(data: dict) -> Table:
    families = "the whole catalogue" if data["goal_applies"] else ", ".join(data["families"])
    table = _table(
        f"10. lmspec render --format {data['format']} — {families}, fresh processes (median, min–max)",
        [("cache", "left"), ("figures", "right"), ("--no-figures", "right"), ("ratio", "right"),
         ("goal", "right"), ("met", "left")],
    )  # fmt: skip
    for key, label in (("warm", "warm"), ("cold", "cold (an empty cache each run)")):
        w, wo = data[key]["figures"], data[key]["no_figures"]
        ratio = data[f"ratio_{key}"]
        goal = key == "warm" and data["goal_applies"]
        table.add_row(
            label, f"{_t(w['median_s'])} ({_t(w['min_s'])} – {_t(w['max_s'])})",
            f"{_t(wo['median_s'])} ({_t(wo['min_s'])} – {_t(wo['max_s'])})", f"{ratio:.2f}×",
            f"≤ {data['goal_ratio']:g}×" if goal else "(warm, whole catalogue)" if key == "warm" else "—",
            _mark(ratio <= data["goal_ratio"]) if goal else "",
        )  # fmt: skip
    return table


def tests_table(data: dict) -> Table:
    table = _table(
        "11. the test suite as make test runs it — median, min–max",
        [("command", "left"), ("runs", "right"), ("median", "right"), ("min–max", "right"), ("goal", "right"),
         ("met", "left")],
    )  # fmt: skip
    table.add_row(
        escape(data["command"]), str(len(data["runs_s"])), _t(data["median_s"]),
        f"{_t(data['min_s'])} – {_t(data['max_s'])}", f"≤ {data['goal_s']:g} s",
        _mark(data["median_s"] <= data["goal_s"]),
    )  # fmt: skip
    return table


def goals_table(rows: list[dict]) -> Table:
    table = _table("goals", [("goal", "left"), ("figure", "right"), ("target", "right"), ("met", "left")])
    for g in rows:
        value = f"{g['value']:.1f} %" if g["unit"] == "%" else f"{g['value']:.2f}"
        target = f"≤ {g['target']:g}" + (" %" if g["unit"] == "%" else "")
        met = _mark(g["met"])
        if "aim" in g:
            target += f" (aim {g['aim']:g})"
            met += " (aim: " + ("yes" if g["aim_met"] else "no") + ")"
        table.add_row(g["goal"], value, target, met)
    return table


def render(report: dict) -> None:
    """Every measured part's table, then the goals."""
    from ..bench import goals

    m, st = report["machine"], report["settings"]
    load = m["load_average"]
    hf_threads = ", ".join(map(str, st.get("hf_threads", [])))
    console.print(
        f"lmspec bench — size {st['size']}, repeat {st['repeat']} (median, min and max after a warm-up), "
        f"{st['threads']} torch threads (hf: {hf_threads}) · {m['cpu']}, {m['cores']} cores, "
        f"torch {m['torch']}, transformers {m['transformers']}" + (f", load {load[0]:.1f}" if load else ""),
        highlight=False,
    )
    if "suite" in report:
        for table in suite_table(report["suite"]):
            console.print(table)
    for part, render_part in (("checking", checking_table), ("hf", hf_table), ("gflops", gflops_table),
                              ("oracle", oracle_table), ("startup", startup_table),
                              ("plugin", plugin_table), ("audit", audit_table), ("verify", verify_table),
                              ("render", render_table), ("tests", tests_table)):  # fmt: skip
        if part in report:
            console.print(render_part(report[part]))
    rows = goals(report)
    if rows:
        console.print(goals_table(rows))
    console.print(f"measured in {report['wall_s']:.1f}s", highlight=False)


# --- the command ----------------------------------------------------------------------------------------
def bench_command(
    json_path: Path = typer.Option(None, "--json", help="Write every figure and the machine's facts here."),
    only: list[str] = typer.Option(
        None, "--only", help=f"Only these parts (repeat or comma-separate): {', '.join(PARTS)}."
    ),
    repeat: int = typer.Option(5, "--repeat", help="Timed runs per figure (after a warm-up): median, min."),
    jobs: int = typer.Option(
        0, "--jobs", help="Worker processes for the suite's parallel runs (0: all cores)."
    ),
    size: str = typer.Option(
        "gpt2-small", "--size", help="gpt2-small (d_e=768, L=12, n=256) or small (a tiny GPT-2, quick)."
    ),
    profile: str = typer.Option(
        "default", "--profile", "-p", help="The profile of parts suite and verify: quick or default."
    ),
    family: list[str] = typer.Option(
        None, "--family", "-f", help="The families of parts suite, verify and render (default: all)."
    ),
    shards: int = typer.Option(2, "--shards", help="Split the suite into this many shards, each timed."),
    threads: list[str] = typer.Option(
        None,
        "--threads",
        help="torch threads (repeat or comma-separate): hf runs at each (default 1,2), checking and gflops "
        "at the first (default: torch's).",
    ),
    lengths: list[str] = typer.Option(
        None, "--lengths", help="hf's sequence lengths (repeat or comma-separate; default: 256,1024)."
    ),
) -> None:
    """Benchmark the verifier suite, runtime checking, impl against transformers, GFLOP/s, the oracle,
    start-up, the documents' audits, lmspec verify cold and warm, and the test suite."""
    parts = _parts(only)
    families = list(family or [])
    thread_counts, seq_lengths = _counts("--threads", threads), _counts("--lengths", lengths)
    _check_options(size, repeat, jobs, profile, families, shards, thread_counts, seq_lengths)
    if "hf" in parts and importlib.util.find_spec("transformers") is None:
        raise UsageError("the hf part needs transformers: pip install 'lmspec[hf]'")
    if "tests" in parts and checkout_root() is None:
        raise UsageError("the tests part times the test suite of a checkout; this lmspec holds no tests/")
    if json_path is not None:
        writable(json_path)
    from .. import bench

    def note(text: str) -> None:
        err.print(text, style="dim", highlight=False, markup=False)

    try:
        report = bench.run(
            parts, size, repeat, jobs, profile, families or None, shards, thread_counts or None, note=note,
            lengths=seq_lengths or None,
        )  # fmt: skip
    except bench.BenchError as exc:  # impl and transformers disagree, a timed command misbehaves
        err.print(f"lmspec: error: {exc}", highlight=False, markup=False)
        raise typer.Exit(1) from None
    render(report)
    if json_path is not None:
        write(json_path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
