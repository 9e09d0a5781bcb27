"""``lmspec bench``: the verifier's and impl's speed, side by side with the issue's goals (docs/bench.md).

Exit codes: 0 measured, 1 a figure cannot be taken (impl's and transformers' outputs disagree, a timed
command does not do its job), 2 bad usage.
"""

import importlib.util
import json
from pathlib import Path

import typer
from rich.table import Table

from ..bench import PARTS, SIZES  # the bench's face and these names are light: no torch
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
    if not only:
        return list(PARTS)
    parts = [p.strip() for item in only for p in item.split(",") if p.strip()]
    for p in parts:
        if p not in PARTS:
            raise UsageError(f"--only takes {', '.join(PARTS)}, found {p!r}")
    return parts


def _check_options(size, repeat, jobs, profile, families, shards, threads) -> None:
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
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be at least 1, found {threads}")


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


def checking_table(data: dict) -> Table:
    s = data["size"]
    table = _table(
        f"2. runtime checking (jaxtyping + beartype) — {data['function']} at {s['name']}",
        [("run", "left"), ("checks on", "right"), ("checks off", "right"), ("overhead", "right"),
         ("goal", "right"), ("met", "left")],
    )  # fmt: skip
    on, off, goal = data["on"], data["off"], data["goal_pct"]
    table.add_row(
        f"d_e={s['d_e']} L={s['L']} n={s['n']}: median", _t(on["median_s"]), _t(off["median_s"]),
        f"{data['overhead_pct']:+.1f} %", f"≤ {goal:g} %", _mark(data["overhead_pct"] <= goal),
    )  # fmt: skip
    table.add_row(
        "                      min",
        _t(on["min_s"]),
        _t(off["min_s"]),
        f"{data['overhead_min_pct']:+.1f} %",
        "",
        "",
    )
    tiny = data["tiny"]
    table.add_row(
        f"d_e={tiny['d_e']} n={tiny['n']} (checking's own cost): min", _t(tiny["on"]["min_s"]),
        _t(tiny["off"]["min_s"]), _t(data["checking_cost_s"]), "", "",
    )  # fmt: skip
    table.add_row(
        "estimate: cost / unchecked forward (min)", "", "", f"{data['estimated_overhead_pct']:.1f} %",
        f"≤ {goal:g} %", _mark(data["estimated_overhead_pct"] <= goal),
    )  # fmt: skip
    return table


def hf_table(data: dict) -> Table:
    s = data["size"]
    table = _table(
        f"3. impl against transformers — same weights, float32, {data['threads']} threads, "
        f"attention '{data['attn_implementation']}', n={s['n']}",
        [("model", "left"), ("transformers", "right"), ("impl", "right"), ("impl/HF", "right"),
         ("impl, checks off", "right"), ("impl/HF", "right"), ("goal", "right"), ("met", "left"),
         ("max |Δ|", "right")],
    )  # fmt: skip
    for key in ("gpt2_model", "gpt2_lm_head", "bert_model"):
        c = data[key]
        goal = c["goal_ratio"]
        table.add_row(
            f"{c['hf_class']} vs {c['impl_function']}", _t(c["hf"]["median_s"]), _t(c["impl"]["median_s"]),
            f"{c['ratio']:.2f}", _t(c["impl_unchecked"]["median_s"]), f"{c['ratio_unchecked']:.2f}",
            f"≤ {goal:g}", _mark(c["ratio"] <= goal) + " / " + _mark(c["ratio_unchecked"] <= goal),
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


def goals_table(rows: list[dict]) -> Table:
    table = _table("goals", [("goal", "left"), ("figure", "right"), ("target", "right"), ("met", "left")])
    for g in rows:
        value = f"{g['value']:.1f} %" if g["unit"] == "%" else f"{g['value']:.2f}"
        target = f"≤ {g['target']:g}" + (" %" if g["unit"] == "%" else "")
        table.add_row(g["goal"], value, target, _mark(g["met"]))
    return table


def render(report: dict) -> None:
    """Every measured part's table, then the goals."""
    from ..bench import goals

    m, st = report["machine"], report["settings"]
    load = m["load_average"]
    console.print(
        f"lmspec bench — size {st['size']}, repeat {st['repeat']} (median and min after a warm-up), "
        f"{st['threads']} torch threads · {m['cpu']}, {m['cores']} cores, torch {m['torch']}, "
        f"transformers {m['transformers']}" + (f", load {load[0]:.1f}" if load else ""),
        highlight=False,
    )
    if "suite" in report:
        for table in suite_table(report["suite"]):
            console.print(table)
    for part, render_part in (("checking", checking_table), ("hf", hf_table), ("gflops", gflops_table),
                              ("oracle", oracle_table), ("startup", startup_table),
                              ("plugin", plugin_table)):  # fmt: skip
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
    profile: str = typer.Option("default", "--profile", "-p", help="The suite's profile: quick or default."),
    family: list[str] = typer.Option(None, "--family", "-f", help="The suite's families (default: all)."),
    shards: int = typer.Option(2, "--shards", help="Split the suite into this many shards, each timed."),
    threads: int = typer.Option(None, "--threads", help="torch threads for parts 2–4 (default: torch's)."),
) -> None:
    """Benchmark the verifier suite, runtime checking, impl against transformers, GFLOP/s, the oracle."""
    parts = _parts(only)
    families = list(family or [])
    _check_options(size, repeat, jobs, profile, families, shards, threads)
    if "hf" in parts and importlib.util.find_spec("transformers") is None:
        raise UsageError("the hf part needs transformers: pip install 'lmspec[hf]'")
    if json_path is not None:
        writable(json_path)
    from .. import bench

    def note(text: str) -> None:
        err.print(text, style="dim", highlight=False, markup=False)

    try:
        report = bench.run(parts, size, repeat, jobs, profile, families or None, shards, threads, note=note)
    except bench.BenchError as exc:  # impl and transformers disagree, a timed command misbehaves
        err.print(f"lmspec: error: {exc}", highlight=False, markup=False)
        raise typer.Exit(1) from None
    render(report)
    if json_path is not None:
        write(json_path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
