"""Part ``suite``: the verifier suite's wall time per family, serial and in ``jobs`` processes, and its
shards (through ``verify.parallel.run_suite``, what ``lmspec verify`` runs)."""

import time
from collections.abc import Callable, Sequence

from ._timing import no_note


def _cold_caches() -> None:
    """Forget compiled oracles and generated code: every timed run starts as ``lmspec verify`` does."""
    from ..codegen import compiled
    from ..oracle import _compile

    _compile.cache_clear()
    compiled.cache_clear()


def _suite(
    families: Sequence[str] | None = None,
    profile: str = "default",
    jobs: int = 0,
    shards: int = 2,
    note: Callable[[str], None] = no_note,
) -> dict:
    """Wall time of the verifier suite (``verify.parallel.run_suite``, one seed): each family serially (in
    this process, caches cold) and in ``jobs`` worker processes, the selected families together in ``jobs``
    processes (one run), and each of ``shards`` shards serially.

    The first parallel run of a process also starts the workers' machinery (a forkserver that imports torch
    and the verifier): that run is a warm-up, timed on its own (``startup``), so that each family's
    parallel time is the time of its checks, as in one ``lmspec verify --jobs N`` over many families."""
    from ... import spec
    from ..parallel import default_jobs, run_suite

    jobs = jobs or default_jobs()
    names = list(families) if families else list(spec.FAMILIES)
    ids_of = {family: [eq.id for eq in spec.select([family])] for family in names}
    all_ids = [eq_id for family in names for eq_id in ids_of[family]]
    rows, failed = [], 0

    def timed(ids: list[str], **kwargs) -> tuple[float, list]:
        _cold_caches()
        start = time.perf_counter()
        results = run_suite(ids, profile=profile, seeds=[0], **kwargs)
        return time.perf_counter() - start, results

    note(f"suite: start-up of {jobs} worker processes (a warm-up run of {', '.join(all_ids[:2])})")
    startup, _ = timed(all_ids[:2], jobs=jobs)
    for family in names:
        ids = ids_of[family]
        note(f"suite: {family}, serial")
        serial, results = timed(ids, jobs=1)
        note(f"suite: {family}, {jobs} jobs")
        parallel, presults = timed(ids, jobs=jobs)
        bad = sum(not r.passed for r in results) + sum(not r.passed for r in presults)
        failed += bad
        rows.append(
            {"family": family, "equations": len(ids), "checks": len(results), "failed": bad,
             "serial_s": serial, "parallel_s": parallel, "speedup": serial / parallel,
             "check_seconds": sum(r.seconds for r in results)}
        )  # fmt: skip
    serial_total = sum(r["serial_s"] for r in rows)
    if len(rows) > 1:
        note(f"suite: all {len(rows)} families, {jobs} jobs")
        parallel_total, presults = timed(all_ids, jobs=jobs)
        failed += sum(not r.passed for r in presults)
    else:
        parallel_total = rows[0]["parallel_s"]
    shard_rows = []
    for i in range(1, shards + 1):
        note(f"suite: shard {i}/{shards}, serial")
        seconds, results = timed(all_ids, jobs=1, shard=(i, shards))
        failed += sum(not r.passed for r in results)
        shard_rows.append({"shard": f"{i}/{shards}", "checks": len(results), "seconds": seconds})
    return {
        "profile": profile,
        "jobs": jobs,
        "startup": {"equations": all_ids[:2], "seconds": startup},
        "families": rows,
        "total": {
            "equations": len(all_ids),
            "checks": sum(r["checks"] for r in rows),
            "serial_s": serial_total,
            "parallel_s": parallel_total,
            "speedup": serial_total / parallel_total,
        },
        "shards": shard_rows,
        "failed": failed,
    }


def suite(*args, **kwargs) -> dict:
    """:func:`_suite` with the disk cache of compiled oracles bypassed (verify.cache): cold, as a first
    ``lmspec verify`` on a machine is, and as the figures have always been taken."""
    from .. import cache

    with cache.disabled():
        return _suite(*args, **kwargs)
