"""``lmspec audit``: hold an implementation to the spec from the command line.

Exit codes: 0 every target passes, 1 a target fails or matches only a variant, 2 bad usage or a target
that cannot be loaded or bound (one sentence, no traceback).

``--seeds K`` audits every target under the seeds S, S+1, …, S+K−1 (S = ``--seed``) and reports, per target,
the verdict of every seed and whether they agree. The exit code is that of the worst single-seed audit (0
only when every seed passes), and 1 when the seeds disagree, whatever the verdicts: a verdict that depends
on the seed is a flaky check or a finding that only some inputs reach, and either needs a look.
"""

import time
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from ._common import PROFILES, UsageError, console, err, report_paths, settle, write

VERDICT_STYLE = {"pass": "green", "variant": "yellow", "fail": "red", "error": "magenta"}
VERDICT_STYLE_ORDER = list(VERDICT_STYLE)  # best to worst
#: The dtypes an audit runs in (verify.audit.auditor.DTYPES).
DTYPES = ("float64", "float32", "float16", "bfloat16")
#: How a target may take masks (verify.binding.MASK_CONVENTIONS).
MASK_CONVENTIONS = (
    "bool_keep",
    "bool_ignore",
    "additive",
    "key_padding",
    "key_keep",
    "key_keep_int",
    "key_keep_float",
    "key_additive",
    "key_lengths",
    "causal",
    "none",
)
#: ``--builtins GROUP``: the groups of built-in targets each choice audits.
GROUPS = {"torch": ("torch",), "hf": ("hf",), "all": ("torch", "hf")}


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(f"{option} expects KEY=VALUE, found {item!r}")
        out[key.strip()] = value.strip()
    return out


def _literal(value: str):
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value  # an axis name or expression: evaluated per size tuple


def _number(value: str, option: str, cast=float):
    try:
        return cast(value)
    except ValueError:
        raise UsageError(
            f"{option}: {value!r} is not a {'number' if cast is float else 'whole number'}"
        ) from None


def audit_command(
    targets: list[str] = typer.Argument(
        None,
        help="What to audit: a built-in (see --list), 'package.module:name' or 'path/to/file.py:Name'.",
    ),
    as_: str = typer.Option(None, "--as", help="The equation id to hold it to (variants allowed: ID[name])."),
    layout: str = typer.Option(
        None,
        "--layout",
        help="Its arguments' layouts: 'q=b h n d_k, k=b h n d_k, v=b h n d_v -> b h n d_v'.",
    ),
    mask: str = typer.Option(
        None, "--mask", help=f"How it takes the mask: {', '.join(MASK_CONVENTIONS)} (docs/audit.md, Masks)."
    ),
    init: list[str] = typer.Option(
        None, "--init", help="nn.Module class: constructor argument, e.g. d_model=d_e."
    ),
    param: list[str] = typer.Option(
        None,
        "--param",
        help=(
            "nn.Module: 'path=SPEC -> axes', e.g. 'q.weight=W_Q -> (M d_k) d_e'; path=0; -W_z negated, "
            "W_h.T transposed."
        ),
    ),
    absent: list[str] = typer.Option(
        None, "--absent", help="nn.Module: spec parameters it does not have, e.g. b_Q,b_K,b_V (held at 0)."
    ),
    labels: str = typer.Option(
        None, "--labels", help="A loss that shifts its labels inside (logits[:, :-1] vs ids[:, 1:]): shift."
    ),
    ignore_index: int = typer.Option(
        None, "--ignore-index", help="A loss whose labels mark padding with this id, e.g. -100 or a pad id."
    ),
    pool: str = typer.Option(
        None, "--pool", help="A loss that returns one value per batch: tokens, sum or mean (docs/audit.md)."
    ),
    logits: bool = typer.Option(
        False, "--logits", help="It returns logits where the equation's output is a distribution (softmax)."
    ),
    constant: list[str] = typer.Option(None, "--constant", help="A scalar it fixes, e.g. eps=1e-5."),
    size: list[str] = typer.Option(None, "--size", help="An axis size it fixes, e.g. d_e=64."),
    derive: list[str] = typer.Option(None, "--derive", help="An axis it ties to others, e.g. d_e=M*d_k."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1 …"),
    dtype: str = typer.Option("float64", "--dtype", help="float64, float32, float16 or bfloat16."),
    profile: str = typer.Option("default", "--profile", "-p", help="quick, default or thorough."),
    seed: int = typer.Option(0, "--seed", help="Hypothesis seed; the same seed gives the same JSON."),
    seeds: int = typer.Option(
        1, "--seeds", help="Audit under K seeds (S … S+K−1) and say whether their verdicts agree."
    ),
    json_path: Path = typer.Option(None, "--json", help="Write a JSON report here."),
    junit_path: Path = typer.Option(None, "--junit", help="Write a JUnit XML report here."),
    html_path: Path = typer.Option(None, "--html", help="Write a self-contained HTML report here."),
    list_: bool = typer.Option(False, "--list", help="List the built-in targets and exit."),
    markdown: bool = typer.Option(False, "--markdown", help="With --list: each one's parameter mapping."),
    builtins_: str = typer.Option(
        None, "--builtins", help="Audit every built-in of a group: torch, hf or all."
    ),
    impl_: bool = typer.Option(False, "--impl", help="Audit impl/ itself, every equation (dogfood)."),
    explain: bool = typer.Option(
        False, "--explain", help="Print the binding lmspec infers (no --layout, --init, --param) and exit."
    ),
) -> None:
    """Audit an implementation (yours, torch.nn's, transformers') against the spec."""
    if list_:
        from ..audit.adapters import builtins, mapping_markdown

        if markdown:
            print(mapping_markdown(), end="")
        else:
            _list(builtins())
        return
    # every option is checked before anything heavy is imported: a usage error answers at once
    if builtins_ and builtins_ not in GROUPS:
        raise UsageError(f"--builtins takes torch, hf or all, found {builtins_!r}")
    if not (targets or builtins_ or impl_):
        raise UsageError(
            "say what to audit: a target (lmspec audit --list shows the built-ins) or --builtins"
        )
    if profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if dtype not in DTYPES:
        raise UsageError(f"unknown --dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    if mask is not None and mask not in MASK_CONVENTIONS:
        raise UsageError(f"unknown --mask {mask!r}; choose one of {', '.join(MASK_CONVENTIONS)}")
    if seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, found {seed}")
    if seeds < 1:
        raise UsageError(f"--seeds must be at least 1, found {seeds}")
    one_target_only = layout or init or param or mask or absent or labels or pool or ignore_index is not None
    if labels is not None and labels != "shift":
        raise UsageError(f"--labels takes shift (labels shifted inside the target), found {labels!r}")
    if pool is not None and pool not in POOLS:
        raise UsageError(f"unknown --pool {pool!r}; choose one of {', '.join(POOLS)}")
    if one_target_only and len(targets or []) > 1:
        raise UsageError(_ONE_AT_A_TIME)
    if explain and (len(targets or []) != 1 or builtins_ or impl_ or layout or init or param):
        raise UsageError("--explain takes one function or module class, without --layout, --init or --param")
    constants = {k: _number(v, "--constant") for k, v in _pairs(constant, "--constant").items()}
    sizes = {k: _number(v, "--size", int) for k, v in _pairs(size, "--size").items()}
    inits = {k: _literal(v) for k, v in _pairs(init, "--init").items()} or None
    params = _pairs(param, "--param") or None
    absent_names = [a.strip() for item in absent or [] for a in item.split(",") if a.strip()]
    derived = _pairs(derive, "--derive") or None

    if explain:
        _explain(targets[0], as_, mask, sizes or None, derived)
        return

    from ..audit.auditor import audit

    settle()  # what is imported now stays: the garbage collector need not scan it again

    names = _names(list(targets or []), builtins_, impl_)
    if one_target_only and len(names) > 1:
        raise UsageError(_ONE_AT_A_TIME)
    report_paths(json=json_path, junit=junit_path, html=html_path)
    reports = []
    start = time.perf_counter()
    for name in names:
        for s in range(seed, seed + seeds):
            label = escape(name) + (f" (seed {s})" if seeds > 1 else "")
            with err.status(f"auditing {label}"):
                reports.append(
                    audit(
                        name,
                        as_,
                        layout=layout,
                        mask=mask,
                        init=inits,
                        params=params,
                        absent=absent_names,
                        labels=labels,
                        ignore_index=ignore_index,
                        pool=pool,
                        logits=logits,
                        constants=constants or None,
                        sizes=sizes or None,
                        derive=derived,
                        device=device,
                        dtype=dtype,
                        profile=profile,
                        seed=s,
                    )
                )
    wall = time.perf_counter() - start
    if seeds > 1:
        _print_seeds(reports, seed, seeds, wall)
    else:
        for r in reports:
            _print_report(r)
        if len(reports) > 1:
            console.print(_summary_table(reports))
        console.print(
            f"{len(reports)} audited in {wall:.1f}s: "
            + ", ".join(
                f"{sum(r.verdict == v for r in reports)} {v}"
                for v in VERDICT_STYLE
                if any(r.verdict == v for r in reports)
            )
        )
    if json_path:
        from ..audit.report import to_json

        write(json_path, to_json(reports))
    if junit_path:
        from ..audit.report import to_junit

        write(junit_path, to_junit(reports))
    if html_path:
        from ..audit.html import to_html

        write(html_path, to_html(reports))
    errors = [r for r in reports if r.verdict == "error"]
    if errors and len(errors) == len(reports) and len(names) == 1:
        raise UsageError(errors[0].summary)
    if any(r.verdict != "pass" for r in reports) or _disagreeing(reports, seeds):
        raise typer.Exit(2 if errors else 1)


def _explain(target: str, as_: str | None, mask: str | None, sizes, derived) -> None:
    """Print the command that pins the binding lmspec infers for ``target``, and why."""
    import shlex

    from ..audit.auditor import explain

    inferred = explain(target, as_, mask=mask, sizes=sizes, derive=derived)
    print(shlex.join(["lmspec", "audit", target, "--as", as_, *inferred.options()]))
    described = inferred.as_json()
    for note in described["notes"]:
        err.print(f"note: {note}", highlight=False, markup=False)
    for other in described["alternatives"]:
        err.print(f"also fits the shapes: {other}", highlight=False, markup=False)


_ONE_AT_A_TIME = "--layout, --mask, --init, --param, --absent and the loss options apply to one target"

#: --pool's choices (a light copy of audit.losses.POOLS: this module loads no torch; a test holds them equal)
POOLS = ("tokens", "sum", "mean")


def _names(targets: list[str], builtins_: str | None, impl_: bool) -> list[str]:
    """The targets named, then the built-ins of ``--builtins``' group, then impl/'s functions (``--impl``)."""
    names = list(targets)
    if builtins_:
        from ..audit.adapters import builtins

        names += [n for n, b in builtins().items() if b.group in GROUPS[builtins_]]
    if impl_:
        from ... import impl, spec

        names += [f"{f.__module__}:{f.__name__}" for f in (impl.implementation(e.id) for e in spec.all())]
    return names


def _list(found) -> None:
    table = Table(title="built-in audit targets")
    for col in ("name", "equation", "what it is"):
        table.add_column(col)
    for name, b in found.items():
        table.add_row(escape(name), b.equation, escape(b.description))
    console.print(table)
    console.print(
        f"{len(found)} built-ins; `lmspec audit NAME` audits one, `--builtins torch|hf|all` a group"
    )


def _fmt(x) -> str:
    return "" if x is None else f"{x:.1e}"


def _print_report(r) -> None:
    style = VERDICT_STYLE[r.verdict]
    console.print(
        f"[bold]{escape(r.target)}[/bold] as [bold]{escape(r.equation)}[/bold]: "
        f"[{style}]{r.verdict}[/{style}]",
        highlight=False,
    )
    console.print(escape(r.summary), highlight=False)
    for note in r.notes:
        console.print(f"  note: {escape(note)}", highlight=False)
    table = Table(show_header=True)
    for col, just in (
        ("check", "left"),
        ("result", "left"),
        ("examples", "right"),
        ("max |Δ|", "right"),
        ("max rel", "right"),
        ("tolerance", "left"),
    ):
        table.add_column(col, justify=just)
    for c in r.checks:
        mark = {"pass": "[green]pass[/green]", "fail": "[red]FAIL[/red]", "skip": "[dim]skip[/dim]"}[c.status]
        tol = "" if c.atol is None else f"{c.atol:g} + {c.rtol:g}·|x|"
        table.add_row(escape(c.name), mark, str(c.examples), _fmt(c.max_abs), _fmt(c.max_rel), tol)
    console.print(table)
    for c in r.checks:
        if c.status == "fail":
            console.print(f"  [red]FAIL[/red] {escape(c.name)}: {escape(c.message)}", highlight=False)
            if c.counterexample:
                console.print(
                    f"    counterexample: sizes {c.counterexample['sizes']}, "
                    f"batch {c.counterexample['batch']}",
                    highlight=False,
                    markup=False,
                )
        elif c.status == "skip":
            console.print(f"  skip {escape(c.name)}: {escape(c.message)}", highlight=False)
    if r.variants:
        console.print("  variants tried:", highlight=False)
        unbound = _cannot_bind(r)
        for v in r.variants:
            if unbound and v.message == unbound:
                continue
            consts = f" ({', '.join(f'{k} = {x:g}' for k, x in v.constants.items())})" if v.constants else ""
            mark = "[green]matches[/green]" if v.matched else "no"
            why = "" if v.matched else f": {escape(v.message[:160])}"
            console.print(f"    {escape(v.name)}{consts} — {mark}{why}", highlight=False)
        same = [v.name for v in r.variants if unbound and v.message == unbound]
        if same:
            console.print(f"    {escape(', '.join(same))} — no: {escape(unbound[:240])}", highlight=False)
    console.print()


def _cannot_bind(r) -> str:
    """The reason shared by variants that cannot be bound for the same reason (printed once), or ''."""
    reasons = [v.message for v in r.variants if not v.matched and v.message.startswith("cannot bind")]
    common = max(set(reasons), key=reasons.count, default="")
    return common if reasons.count(common) > 1 else ""


def _by_target(reports, seeds: int) -> list[list]:
    """The reports grouped per target, in seed order (the audit loop runs every seed of a target in turn)."""
    return [reports[k : k + seeds] for k in range(0, len(reports), seeds)]


def _disagreeing(reports, seeds: int) -> list[list]:
    return [group for group in _by_target(reports, seeds) if len({r.verdict for r in group}) > 1]


def seed_verdicts(group) -> str:
    """A target's verdicts over its seeds, e.g. 'pass ×19, fail ×1 (seed 7)'; seeds named for a minority."""
    counts: dict[str, list[int]] = {}
    for r in group:
        counts.setdefault(r.verdict, []).append(r.seed)
    if len(counts) == 1:
        ((verdict, found),) = counts.items()
        return f"{verdict} ×{len(found)}"
    top = max(counts, key=lambda v: len(counts[v]))
    parts = []
    for verdict, found in sorted(counts.items(), key=lambda kv: VERDICT_STYLE_ORDER.index(kv[0])):
        named = "" if verdict == top else f" ({'seed' if len(found) == 1 else 'seeds'} {_ranges(found)})"
        parts.append(f"{verdict} ×{len(found)}{named}")
    return ", ".join(parts)


def _ranges(values: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] → '0–2, 5, 7–8'."""
    out, start, prev = [], values[0], values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        out.append(str(start) if start == prev else f"{start}–{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(out)


def _print_seeds(reports, seed: int, seeds: int, wall: float) -> None:
    """--seeds K: one row per target (its verdict under each seed, agreement), then what the odd seeds
    found — the full report of every seed whose verdict differs from the target's most common one."""
    last = seed + seeds - 1
    groups = _by_target(reports, seeds)
    table = Table(title=f"audit over seeds {seed}–{last}")
    for col in ("target", "equation", "verdicts", "agree", "checks failed"):
        table.add_column(col)
    for group in groups:
        verdicts = [r.verdict for r in group]
        agree = len(set(verdicts)) == 1
        failed = sorted({c.name for r in group for c in r.failures})
        worst = max(verdicts, key=VERDICT_STYLE_ORDER.index)
        style = VERDICT_STYLE[worst]
        table.add_row(
            escape(group[0].target),
            escape(group[0].equation),
            f"[{style}]{escape(seed_verdicts(group))}[/{style}]",
            "[green]yes[/green]" if agree else "[red]NO[/red]",
            escape(", ".join(failed)) or "—",
        )
    for group in groups:
        verdicts = [r.verdict for r in group]
        if len(set(verdicts)) == 1:
            continue
        common = max(set(verdicts), key=verdicts.count)
        console.print(
            f"[red]seeds disagree[/red] on [bold]{escape(group[0].target)}[/bold]: "
            f"{escape(seed_verdicts(group))}",
            highlight=False,
        )
        for r in group:
            if r.verdict != common:
                console.print(f"[bold]seed {r.seed}[/bold]:", highlight=False)
                _print_report(r)
    for group in groups:  # every seed agrees, on something other than pass: seed S's report says why
        if len({r.verdict for r in group}) == 1 and group[0].verdict != "pass":
            console.print(f"[bold]seed {group[0].seed}[/bold] (every seed agrees):", highlight=False)
            _print_report(group[0])
    console.print(table)
    agreeing = sum(len({r.verdict for r in g}) == 1 for g in groups)
    console.print(
        f"{len(groups)} audited under {seeds} seeds ({seed}–{last}) in {wall:.1f}s: "
        f"{agreeing} of {len(groups)} agree across seeds; verdicts: "
        + ", ".join(
            f"{sum(r.verdict == v for r in reports)} {v}"
            for v in VERDICT_STYLE
            if any(r.verdict == v for r in reports)
        )
    )


def _summary_table(reports) -> Table:
    table = Table(title="audit summary")
    for col in ("target", "equation", "verdict", "matches instead", "checks failed"):
        table.add_column(col)
    for r in reports:
        style = VERDICT_STYLE[r.verdict]
        table.add_row(
            escape(r.target),
            escape(r.equation),
            f"[{style}]{r.verdict}[/{style}]",
            escape(", ".join(r.matched)) or "—",
            escape(", ".join(c.name for c in r.failures)) or "—",
        )
    return table
