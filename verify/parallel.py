"""The verifier suite across seeds, processes and machines.

A run is a list of *units*, one check of one equation under one seed, in plan order: seed by seed, then the
catalogue's order of equations, then each equation's checks. Every unit is independent of every other (each
check seeds Hypothesis itself), so the same unit gives the same result whichever process runs it, and

- ``seeds``  repeats the plan under several seeds (false-alarm hunting: ``lmspec verify --seeds 20``);
- ``shard``  keeps every n-th unit from the i-th, so n CI machines split one run between them and the union
  of their reports is the unsharded report;
- ``jobs``   runs units in that many worker processes, one equation under one seed at a time, and the
  results come back in plan order, so the report does not depend on ``jobs``.
"""

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import forkserver

import torch

from .. import spec
from ..spec import Equation
from .runner import (
    PROFILES,
    Check,
    CheckResult,
    Profile,
    checks_for,
    long_lived_frozen,
    one_thread,
    run_check,
)
from .shards import parse_shard as parse_shard


@dataclass(frozen=True)
class Unit:
    """One check of one equation under one seed."""

    seed: int
    equation: str
    check: str


def planned_equations(names: Sequence[str]) -> list[Equation]:
    """The equations ``names`` select (ids, variant ids or families), each base equation followed by the
    variants its implementation declares it implements (``@implements(id, variants=…)`` in impl/)."""
    from ..impl._registry import implemented_variants

    declared = implemented_variants()
    out: dict[str, Equation] = {}
    for eq in spec.select(list(names)):
        out.setdefault(eq.id, eq)
        if eq.variant_of is None:
            for name in declared.get(eq.id, ()):
                variant = eq.variant(name)
                out.setdefault(variant.id, variant)
    return list(out.values())


def plan_units(
    equations: Sequence[str],
    profile: Profile,
    seeds: Sequence[int],
    shard: tuple[int, int] | None = None,
) -> list[Unit]:
    """The units of a run over ``equations`` (ids, variant ids or families, with the variants impl/ declares:
    ``planned_equations``), in plan order, keeping only this shard's when ``shard = (i, n)``."""
    if not seeds:
        raise ValueError("plan_units: at least one seed is needed")
    names = [(eq.id, c.name) for eq in planned_equations(equations) for c in checks_for(eq, profile, 0)]
    units = [Unit(seed, eq_id, check) for seed in seeds for eq_id, check in names]
    if shard is not None:
        i, n = shard
        units = units[i - 1 :: n]
    return units


class _Checks:
    """The planned checks of the equation being run, planned again when the (equation, seed) changes."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.key: tuple[str, int] | None = None
        self.checks: dict[str, Check] = {}

    def run(self, unit: Unit) -> CheckResult:
        key = (unit.equation, unit.seed)
        if key != self.key:
            eq = spec.get(unit.equation)
            self.checks = {c.name: c for c in checks_for(eq, self.profile, unit.seed)}
            self.key = key
        return run_check(self.checks[unit.check], self.profile, unit.seed)


_WORKER: _Checks | None = None


def _init_worker(profile: Profile) -> None:
    global _WORKER
    torch.set_num_threads(1)
    _WORKER = _Checks(profile)


def _work(units: list[Unit], fail_fast: bool) -> list[CheckResult]:
    """A worker's task: the checks of one equation under one seed (its oracle and generated code are
    compiled once, in the process that runs them)."""
    assert _WORKER is not None, "worker used before its initializer ran"
    results = []
    with long_lived_frozen():
        for unit in units:
            results.append(_WORKER.run(unit))
            if fail_fast and not results[-1].passed:
                break
    return results


def start_workers_server() -> multiprocessing.context.BaseContext:
    """Start (once) the server that worker processes fork from, and return its context. The server imports
    torch, the verifier, the catalogue and impl/ once, so each worker starts in milliseconds; called before
    planning a parallel run, the server's start-up overlaps the planning."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([f"{__package__}.parallel", f"{__package__}._preload"])
    forkserver.ensure_running()
    return context


def default_jobs() -> int:
    """``--jobs 0``: one worker per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_units(
    units: Sequence[Unit],
    profile: Profile,
    jobs: int = 1,
    fail_fast: bool = False,
    on_start: Callable[[Unit], None] | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
) -> list[CheckResult]:
    """Run ``units`` (in ``jobs`` processes when > 1); results in plan order. With ``fail_fast`` the run
    stops at the first failure, and the results are those that finished. ``on_start`` is called in
    serial runs only."""
    if jobs < 1:
        raise ValueError(f"run_units: jobs must be ≥ 1, found {jobs}")
    groups: list[list[tuple[int, Unit]]] = []
    for index, unit in enumerate(units):
        if groups and (groups[-1][-1][1].equation, groups[-1][-1][1].seed) == (unit.equation, unit.seed):
            groups[-1].append((index, unit))
        else:
            groups.append([(index, unit)])
    if jobs == 1 or len(groups) <= 1:
        return _run_serial(units, profile, fail_fast, on_start, on_result)
    context = start_workers_server()
    results: dict[int, CheckResult] = {}
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(profile,)) as pool:
        pending: dict[Future, list[int]] = {
            pool.submit(_work, [u for _, u in group], fail_fast): [i for i, _ in group] for group in groups
        }
        failed = False
        while pending and not failed:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                for index, result in zip(pending.pop(future), future.result(), strict=False):
                    results[index] = result
                    if on_result:
                        on_result(result)
                    failed = failed or (fail_fast and not result.passed)
        if failed:
            for future in pending:
                future.cancel()
    return [results[i] for i in sorted(results)]


def _run_serial(units, profile, fail_fast, on_start, on_result) -> list[CheckResult]:
    """In this process, on one torch thread."""
    checks = _Checks(profile)
    results: list[CheckResult] = []
    with one_thread(), long_lived_frozen():
        for unit in units:
            if on_start:
                on_start(unit)
            results.append(checks.run(unit))
            if on_result:
                on_result(results[-1])
            if fail_fast and not results[-1].passed:
                break
    return results


def run_suite(
    equations: Sequence[str],
    profile: str | Profile = "default",
    seeds: Sequence[int] = (0,),
    jobs: int = 1,
    shard: tuple[int, int] | None = None,
    fail_fast: bool = False,
    on_result: Callable[[CheckResult], None] | None = None,
) -> list[CheckResult]:
    """Plan and run the checks of ``equations`` (ids or variant ids) under ``seeds``: see the module
    docstring for ``shard`` and ``jobs``."""
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    units = plan_units(equations, prof, seeds, shard)
    return run_units(units, prof, jobs, fail_fast, on_result=on_result)
