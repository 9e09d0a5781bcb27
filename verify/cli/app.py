"""The ``lmspec`` command line: list, show, verify, codegen, params, audit, render, mutate, bench.

Exit codes: 0 everything passed, 1 a check failed, 2 bad usage or input (one sentence, no traceback).
"""

import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ... import spec
from ...spec import SpecError
from .audit import audit_command
from .bench import bench_command
from .mutate import mutate_command
from .params import params_command
from .render import render_command, show_equation

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="lmspec: the equations of 'Anatomy of Neural Language Models' as an executable spec, and a "
    "verifier that holds PyTorch code to it.",
)
# Piped output (CI logs, files) is not cut at 80 columns.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)


class UsageError(Exception):
    """A user error: printed as one sentence, exit code 2."""


@app.command("list")
def list_(
    family: list[str] = typer.Option(None, "--family", "-f", help="Only these families."),
) -> None:
    """List the equations of the catalogue."""
    eqs = spec.select(family) if family else spec.all()
    table = Table(title="lmspec catalogue", show_lines=False)
    table.add_column("id", no_wrap=True)
    for col in ("title", "reference", "variants"):
        table.add_column(col)
    for eq in eqs:
        ref = eq.reference
        num = f"({ref.number}) " if ref.number else ""
        table.add_row(
            eq.id, eq.title, f"{num}[{ref.status}] {ref.source}", ", ".join(eq.variant_names) or "—"
        )
    console.print(table)
    console.print(f"{len(eqs)} equations in {len({e.family for e in eqs})} families")


@app.command()
def show(
    equation: str = typer.Argument(..., help="An equation id, e.g. attention.multi_head."),
    format_: str = typer.Option(
        "unicode", "--format", help="unicode (the equation, symbols, variants…), latex or mathml (raw)."
    ),
) -> None:
    """Show one equation: the formula, symbols with their spaces, reference, variants, invariants."""
    show_equation(spec.get(equation), format_, console, UsageError)


@app.command()
def codegen(equation: str = typer.Argument(..., help="An equation id.")) -> None:
    """Print the batched PyTorch function generated from an equation's SymPy definition."""
    from ..codegen import generate

    sys.stdout.write(generate(spec.get(equation)))


app.command("params")(params_command)


@app.command("verify")
def verify_(
    selection: list[str] = typer.Argument(None, help="Equation ids or families (default: all)."),
    profile: str = typer.Option("default", "--profile", "-p", help="quick, default or thorough."),
    seed: int = typer.Option(0, "--seed", help="Hypothesis seed; the same seed gives the same report."),
    seeds: int = typer.Option(1, "--seeds", help="Run under K seeds: --seed, --seed+1, …, --seed+K−1."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Worker processes (0: one per core)."),
    shard: str = typer.Option(None, "--shard", help="i/n: run every n-th check from the i-th (CI splits)."),
    fail_fast: bool = typer.Option(False, "--fail-fast", "-x", help="Stop at the first failing check."),
    json_path: Path = typer.Option(None, "--json", help="Write a JSON report here."),
    junit_path: Path = typer.Option(None, "--junit", help="Write a JUnit XML report here."),
) -> None:
    """Verify impl/ against the spec: oracle, generated code and properties."""
    from ..parallel import default_jobs, parse_shard, plan_units, run_units, start_workers_server
    from ..report import to_json, to_junit
    from ..runner import PROFILES

    if profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, found {seed}")
    if seeds < 1:
        raise UsageError(f"--seeds must be at least 1, found {seeds}")
    if jobs < 0:
        raise UsageError(f"--jobs must be 0 (one per core) or a positive integer, found {jobs}")
    try:
        part = parse_shard(shard) if shard is not None else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    names = selection or list(spec.FAMILIES)
    spec.select(names)  # an unknown id or family is a usage error before any work
    for path in (json_path, junit_path):
        if path is not None:
            _writable(path)
    prof = PROFILES[profile]
    seed_list = list(range(seed, seed + seeds))
    workers = jobs or default_jobs()
    if workers > 1:
        start_workers_server()  # its start-up overlaps the planning
    units = plan_units(names, prof, seed_list, part)
    start = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("verifying", total=len(units))

        def started(u) -> None:
            progress.update(task, description=f"{u.equation} {u.check}")

        def finished(r) -> None:
            progress.update(task, advance=1, description=f"{r.equation} {r.check}")

        results = run_units(units, prof, workers, fail_fast, on_start=started, on_result=finished)
    wall = time.perf_counter() - start
    title = f"lmspec verify — profile {profile}, " + (
        f"seed {seed}" if seeds == 1 else f"seeds {seed}–{seed + seeds - 1}"
    )
    if part:
        title += f", shard {part[0]}/{part[1]}"
    table = Table(title=title)
    columns = [("equation", "left"), ("check", "left")]
    columns += [("seed", "right")] if seeds > 1 else []
    columns += [("examples", "right"), ("result", "left"), ("max |Δ|", "right"), ("time", "right")]
    for col, just in columns:
        table.add_column(col, justify=just)
    for r in results:
        mark = "[green]pass[/green]" if r.passed else "[red]FAIL[/red]"
        err_ = "" if r.max_abs is None else f"{r.max_abs:.1e}"
        cells = [escape(r.equation), r.check] + ([str(r.seed)] if seeds > 1 else [])
        table.add_row(*cells, str(r.examples), mark, err_, f"{r.seconds:.2f}s")
    console.print(table)
    if len({r.equation.split(".", 1)[0] for r in results}) > 1:
        console.print(_family_table(results))
    failed = [r for r in results if not r.passed]
    for r in failed:
        where = f" (seed {r.seed})" if seeds > 1 else ""
        line = escape(f"{r.equation} {r.check}{where}: {r.message}")
        console.print(f"[red]FAIL[/red] {line}", highlight=False)
        if r.counterexample:
            console.print(
                f"  counterexample: sizes {r.counterexample['sizes']}, batch {r.counterexample['batch']}",
                highlight=False,
            )
    skipped = len(units) - len(results)
    tail = f", {skipped} not run (--fail-fast)" if skipped else ""
    jobs_note = f" with {workers} jobs" if workers > 1 else ""
    passed = len(results) - len(failed)
    console.print(f"{passed} passed, {len(failed)} failed{tail} in {wall:.1f}s{jobs_note}")
    if json_path:
        _write(json_path, to_json(results, profile=profile, seeds=seed_list, selection=names, shard=part))
    if junit_path:
        _write(junit_path, to_junit(results, profile=profile, seeds=seed_list))
    if failed:
        raise typer.Exit(1)


def _family_table(results) -> Table:
    """Checks, failures and check time per family, in the tutorial's order."""
    per: dict[str, list] = {}
    for r in results:
        per.setdefault(r.equation.split(".", 1)[0], []).append(r)
    table = Table(title="per family")
    for col, just in (("family", "left"), ("equations", "right"), ("checks", "right"), ("failed", "right")):
        table.add_column(col, justify=just)
    table.add_column("time", justify="right")
    for family, rs in per.items():
        eqs = len({r.equation for r in rs})
        failed = sum(not r.passed for r in rs)
        table.add_row(family, str(eqs), str(len(rs)), str(failed), f"{sum(r.seconds for r in rs):.1f}s")
    return table


def _writable(path: Path) -> None:
    """Fail before the run, not after it, when a report cannot be written."""
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc


audit_command(app, console, err, UsageError, _writable, _write)
render_command(app, console, err, UsageError, _writable)
mutate_command(app, console, err, UsageError, _writable, _write)
bench_command(app, console, err, UsageError, _writable, _write)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: user errors exit 2 with one sentence."""
    try:
        code = app(args=argv, standalone_mode=False)  # click returns Exit codes in this mode
    except (SpecError, UsageError) as exc:
        err.print(f"lmspec: error: {exc}", highlight=False, markup=False)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except SystemExit as exc:
        return int(exc.code or 0)
    except Exception as exc:  # click's usage errors (typer vendors click) and aborts
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            err.print(f"lmspec: error: {exc.format_message()}", highlight=False, markup=False)
            return exc.exit_code or 2
        if type(exc).__name__ == "Abort":
            return 130
        raise
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
