"""``lmspec verify``: hold impl/ to the spec — oracle, generated code and properties — under K seeds, in
worker processes or one shard of the run; tables for people, JSON and JUnit XML for machines.

For people: a run within one family prints a row per check; a run over several families prints a row per
family (every check with ``--table``), and every failure in full. (The whole catalogue's six hundred rows
took Rich longer to lay out than a tenth of the checks took to run, and nobody reads them: the failures
and the per-family tally are what a run over the catalogue is read for.)

Exit codes: 0 every check passed, 1 a check failed, 2 bad usage or input.
"""

import os
import time
from collections import Counter
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..shards import parse_shard
from ._common import PROFILES, UsageError, console, err, report_paths, write


def verify_command(
    selection: list[str] = typer.Argument(None, help="Equation ids or families (default: all)."),
    profile: str = typer.Option("default", "--profile", "-p", help="quick, default or thorough."),
    seed: int = typer.Option(0, "--seed", help="Hypothesis seed; the same seed gives the same report."),
    seeds: int = typer.Option(1, "--seeds", help="Run under K seeds: --seed, --seed+1, …, --seed+K−1."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Worker processes (0: one per core)."),
    shard: str = typer.Option(None, "--shard", help="i/n: run every n-th check from the i-th (CI splits)."),
    fail_fast: bool = typer.Option(False, "--fail-fast", "-x", help="Stop at the first failing check."),
    json_path: Path = typer.Option(None, "--json", help="Write a JSON report here."),
    junit_path: Path = typer.Option(None, "--junit", help="Write a JUnit XML report here."),
    no_cache: bool = typer.Option(
        False, "--no-cache", help="Neither read nor write the disk cache of compiled oracles and code."
    ),
    table: bool = typer.Option(
        False, "--table", help="A row per check even over several families (else a row per family)."
    ),
) -> None:
    """Verify impl/ against the spec: oracle, generated code and properties."""
    if no_cache:  # read by verify.cache in this process and in the workers it starts
        os.environ["LMSPEC_NO_CACHE"] = "1"
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

    from ... import spec

    names = selection or list(spec.FAMILIES)
    spec.select(names)  # an unknown id or family is a usage error before any work (and before torch)
    report_paths(json=json_path, junit=junit_path)
    from ..parallel import default_jobs, plan_units, run_units, start_workers_server
    from ..report import to_json, to_junit
    from ..runner import PROFILES as PROFILE_SETTINGS

    prof = PROFILE_SETTINGS[profile]
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
            progress.update(task, description=escape(f"{u.equation} {u.check}"))

        family_of = lambda eq_id: eq_id.split(".", 1)[0]  # noqa: E731
        left = Counter(family_of(u.equation) for u in units)
        done: dict[str, list] = {}

        def finished(r) -> None:
            progress.update(task, advance=1, description=escape(f"{r.equation} {r.check}"))
            family = family_of(r.equation)
            tally = done.setdefault(family, [0, 0, 0.0])
            tally[0], tally[1], tally[2] = tally[0] + 1, tally[1] + (not r.passed), tally[2] + r.seconds
            left[family] -= 1
            if not left[family] and not err.is_terminal:  # CI's log: a line per family as it ends
                finished_families = sum(1 for n in left.values() if n == 0)
                err.print(
                    f"verify: {family} — {tally[0]} checks, {tally[1]} failed, {tally[2]:.1f}s "
                    f"({finished_families} of {len(left)} families)",
                    highlight=False,
                    markup=False,
                )

        results = run_units(units, prof, workers, fail_fast, on_start=started, on_result=finished)
    wall = time.perf_counter() - start
    title = f"lmspec verify — profile {profile}, " + (
        f"seed {seed}" if seeds == 1 else f"seeds {seed}–{seed + seeds - 1}"
    )
    if part:
        title += f", shard {part[0]}/{part[1]}"
    several = len({r.equation.split(".", 1)[0] for r in results}) > 1
    if table or not several:
        console.print(_check_table(results, title, seeds > 1))
    if several:
        console.print(_family_table(results, None if table else title))
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
        write(json_path, to_json(results, profile=profile, seeds=seed_list, selection=names, shard=part))
    if junit_path:
        write(junit_path, to_junit(results, profile=profile, seeds=seed_list))
    if failed:
        raise typer.Exit(1)


def _check_table(results, title: str, with_seeds: bool) -> Table:
    """A row per check: its examples, verdict, largest |Δ| and time."""
    table = Table(title=title)
    columns = [("equation", "left"), ("check", "left")]
    columns += [("seed", "right")] if with_seeds else []
    columns += [("examples", "right"), ("result", "left"), ("max |Δ|", "right"), ("time", "right")]
    for col, just in columns:
        table.add_column(col, justify=just)
    for r in results:
        mark = "[green]pass[/green]" if r.passed else "[red]FAIL[/red]"
        err_ = "" if r.max_abs is None else f"{r.max_abs:.1e}"
        cells = [escape(r.equation), escape(r.check)] + ([str(r.seed)] if with_seeds else [])
        table.add_row(*cells, str(r.examples), mark, err_, f"{r.seconds:.2f}s")
    return table


def _family_table(results, title: str | None = None) -> Table:
    """Checks, failures and check time per family, in the tutorial's order (under the run's title when no
    table of the checks comes before it)."""
    per: dict[str, list] = {}
    for r in results:
        per.setdefault(r.equation.split(".", 1)[0], []).append(r)
    table = Table(title=f"{title}: per family" if title else "per family")
    for col, just in (("family", "left"), ("equations", "right"), ("checks", "right"), ("failed", "right")):
        table.add_column(col, justify=just)
    table.add_column("time", justify="right")
    for family, rs in per.items():
        eqs = len({r.equation for r in rs})
        failed = sum(not r.passed for r in rs)
        table.add_row(family, str(eqs), str(len(rs)), str(failed), f"{sum(r.seconds for r in rs):.1f}s")
    return table
