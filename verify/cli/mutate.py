"""``lmspec mutate``: mutation testing of the verifier with operators written for tensor code.

Exit codes: 0 every non-equivalent mutant is killed (or ``--list``), 1 a mutant survived that is not listed as
equivalent, 2 bad usage (one sentence, no traceback).
"""

import time
from pathlib import Path

import typer
from rich.table import Table

from ._common import PROFILES, UsageError, console, err, writable, write


def _selection(paths: list[str] | None) -> tuple[Path, list[str] | None]:
    """impl/'s directory and the files (names relative to it) that PATHs select; None is all of impl/."""
    from ..mutate.reach import impl_dir

    root = impl_dir().resolve()
    if not paths:
        return root, None
    files: list[str] = []
    for raw in paths:
        path = Path(raw).resolve()
        if path == root:
            return root, None
        if not path.is_relative_to(root):
            raise UsageError(f"{raw} is not inside impl/ ({root})")
        if path.suffix != ".py":
            raise UsageError(f"{raw} is not a .py file of impl/")
        if not path.is_file():
            raise UsageError(f"{raw} does not exist")
        if path.parent != root:
            raise UsageError(f"{raw} is not a module of impl/ (impl/ has no sub-packages)")
        if path.name not in files:
            files.append(path.name)
    return root, files


def _operators(names: list[str] | None):
    from ..mutate.operators import OPERATOR_NAMES, OPERATORS, operator

    if not names:
        return OPERATORS
    out = []
    for name in names:
        try:
            op = operator(name)
        except KeyError:
            raise UsageError(f"unknown operator {name!r}; choose from {', '.join(OPERATOR_NAMES)}") from None
        if op not in out:
            out.append(op)
    return tuple(out)


def mutate_command(
    paths: list[str] = typer.Argument(None, help="Modules of impl/ to mutate (default: impl/, all)."),
    operator_names: list[str] = typer.Option(
        None, "--operator", "-o", help="Only this operator (repeatable); see --list."
    ),
    list_: bool = typer.Option(False, "--list", help="Print the mutants without running them."),
    profile: str = typer.Option(
        "default", "--profile", "-p", help="lmspec verify's profile: quick or default."
    ),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Mutants run at once (each its own process)."),
    json_path: Path = typer.Option(
        None, "--json", help="Write the JSON report here (no times: reproducible)."
    ),
    limit: int = typer.Option(None, "--limit", help="Run only the first K mutants (in --list order)."),
    mutant_ids: list[str] = typer.Option(
        None, "--mutant", "-m", help="Only the mutant with this id (repeatable), e.g. gpt2/fill-value/1."
    ),
    seed: int = typer.Option(0, "--seed", help="lmspec verify's seed."),
    timeout: float = typer.Option(600.0, "--timeout", help="Seconds per mutant; past it, killed by timeout."),
) -> None:
    """Mutation testing: mutate impl/ with tensor-code operators and run lmspec verify on each mutant."""
    if profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if jobs < 1:
        raise UsageError(f"--jobs must be a positive integer, found {jobs}")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be a positive integer, found {limit}")
    if seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, found {seed}")
    if not timeout > 0:
        raise UsageError(f"--timeout must be positive, found {timeout:g}")
    root, files = _selection(paths)
    ops = _operators(operator_names)
    if json_path is not None:
        writable(json_path)
    from ..mutate.operators import OPERATORS, discover, sites
    from ..mutate.reach import module_sources
    from ..mutate.run import per_operator, run_mutants, summary, to_json

    sources = module_sources(root)  # one snapshot of impl/ for the whole run
    mutants = discover(files, ops, root, sources)
    if mutant_ids:
        known = {m.id for m in mutants}
        unknown = [i for i in mutant_ids if i not in known]
        if unknown:
            raise UsageError(
                f"no mutant {unknown[0]!r} in this selection; lmspec mutate --list shows the ids"
            )
        mutants = [m for m in mutants if m.id in mutant_ids]
    if limit is not None:
        mutants = mutants[:limit]
    selection = [f"impl/{f}" for f in files] if files else ["impl/"]

    if list_:
        table = Table(title=f"lmspec mutate --list — {len(mutants)} mutants")
        for col in ("id", "where", "function", "original", "mutated"):
            table.add_column(col, overflow="fold")
        for m in mutants:
            table.add_row(m.id, f"impl/{m.file}:{m.line}", m.function, m.original, m.mutated)
        console.print(table, highlight=False, markup=False)
        counts = sites(mutants)
        per = ", ".join(
            f"{op.name} {sum(m.operator == op.name for m in mutants)}/{counts[op.name]}"
            for op in ops
            if counts[op.name]
        )
        console.print(f"{len(mutants)} mutants; per operator (mutants/sites): {per}", highlight=False)
        return

    done = [0]

    def progress(o) -> None:
        done[0] += 1
        what = o.killed_by if o.status in ("killed", "error") else o.status
        err.print(
            f"[{done[0]}/{len(mutants)}] {o.mutant.id} {o.status}: {what}", highlight=False, markup=False
        )

    start = time.perf_counter()
    outcomes = run_mutants(
        mutants, sources, profile=profile, seed=seed, jobs=jobs, timeout=timeout, on_result=progress
    )
    wall = time.perf_counter() - start

    table = Table(title=f"lmspec mutate — profile {profile}, seed {seed}")
    table.add_column("operator")
    for col in ("mutants", "killed", "survived", "equivalent"):
        table.add_column(col, justify="right")
    rows = per_operator(outcomes)
    for name, row in rows.items():
        table.add_row(name, *(str(row[k]) for k in ("mutants", "killed", "survived", "equivalent")))
    s = summary(outcomes)
    table.add_row(
        "total", *(str(s[k]) for k in ("mutants", "killed", "survived", "equivalent")), style="bold"
    )
    console.print(table)
    for o in outcomes:
        if o.killed:
            continue
        m = o.mutant
        console.print(
            f"\nSURVIVED {m.id} (impl/{m.file}:{m.line}, {m.function}): {m.description}\n  {o.reason}",
            highlight=False,
            markup=False,
        )
        console.print(m.diff(sources[m.module]).rstrip("\n"), highlight=False, markup=False)
    for o in outcomes:
        if o.killed and o.equivalent:
            console.print(
                f"stale entry in verify/mutate/equivalent.py: {o.mutant.id} is listed as equivalent "
                f"but was killed by {o.killed_by}",
                highlight=False,
                markup=False,
            )
    scored = s["mutants"] - s["equivalent"]
    console.print(
        f"kill rate {s['killed']}/{scored} = {100 * s['kill_rate']:.1f}% "
        f"({s['killed_by_check']} by a check, {s['killed_by_error']} by an error, "
        f"{s['killed_by_timeout']} by timeout; {s['equivalent']} equivalent, {s['survived']} not caught) "
        f"in {wall:.0f}s with {jobs} job{'s' if jobs > 1 else ''}",
        highlight=False,
    )
    if json_path is not None:
        names = [op.name for op in ops] if ops != OPERATORS else ["all"]
        write(
            json_path,
            to_json(outcomes, sources, profile=profile, seed=seed, selection=selection, operators=names),
        )
    if s["survived"]:
        raise typer.Exit(1)
