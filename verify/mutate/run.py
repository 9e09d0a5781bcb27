"""Running mutants through the verifier suite, and the mutation report.

Each mutant gets a fresh temporary directory holding a copy of impl/ (as it was when the run started) with
the one file mutated. A worker forked from a fork server that has loaded torch, SymPy, the spec and the
verifier puts that copy in front as ``lmspec.impl`` (verify.mutate.sandbox) and runs the suite through its
API (``plan_units``, ``run_units``: what ``lmspec verify -x`` runs): first the equations whose function
reaches the mutated one, then the mutated module's family and every family whose impl module imports it.

Outcomes: ``killed`` (a check failed; the first failing check is recorded), ``error`` (the mutant does not
compile or import, or the verifier crashed: killed by error), ``timeout`` (killed by timeout), ``survived``
(every check passed), and ``equivalent`` (survived, and listed in verify/mutate/equivalent.py).
"""

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..properties import PROPERTY_FAMILIES
from ._base import Mutant
from .equivalent import reason_for
from .operators import OPERATOR_NAMES
from .reach import equations_reaching, families_for
from .sandbox import shadow_tree, use_impl, write_impl

KILLED = ("killed", "error", "timeout")


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant
    status: str  # killed | error | timeout | survived | equivalent
    families: tuple[str, ...]
    killed_by: str = ""  # "equation check" of the first failing check
    message: str = ""
    equivalent: str = ""  # the curated reason, when the mutant is listed (even if it was killed: stale)

    @property
    def killed(self) -> bool:
        return self.status in KILLED

    @property
    def reason(self) -> str:
        """Why a survivor survived."""
        if self.status == "equivalent":
            return f"equivalent: {self.equivalent}"
        if self.status == "survived":
            return "not caught: no check fails"
        return ""

    def as_json(self, source: str) -> dict:
        out = self.mutant.as_json()
        out.update(
            status=self.status,
            families=list(self.families),
            killed_by=self.killed_by,
            message=self.message,
        )
        if self.equivalent:
            out["equivalent"] = self.equivalent
        if not self.killed:
            out["diff"] = self.mutant.diff(source)
            out["reason"] = self.reason
        elif self.equivalent:
            out["stale_equivalent_entry"] = True
        return out


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


#: Modules the fork server imports once, so that each mutant's process starts with torch, SymPy, the spec
#: and the verifier loaded (none of them imports impl/, which each mutant imports fresh from its copy).
PRELOAD = (
    "lmspec.verify.parallel",
    "lmspec.verify.runner",
    "lmspec.verify.properties",
    *(f"lmspec.verify.properties.{g}" for g in PROPERTY_FAMILIES),
    "lmspec.verify.mutate.operators",
    "lmspec.verify.mutate.run",
)


class _Timeout(BaseException):
    """Raised by the alarm in a mutant's process; a BaseException passes through Hypothesis and the runner."""


#: A verdict on a mutant from the suite: (0 all checks passed | 1 a check failed, "equation check" of the
#: first failing check, its message); None past the timeout.
Verdict = tuple[int, str, str] | None


def _plans(mutant: Mutant, sources: dict[str, str]) -> list[list[str]]:
    """Two selections for the verifier: first the equations whose registered function reaches the mutated
    one (its own family's first), where a kill is likeliest and cheapest; then, if they all pass, the
    mutated module's family and every family that imports it, in full."""
    first = equations_reaching(mutant.module, mutant.function, sources)
    families = families_for(mutant.module, sources)
    return ([first] if first else []) + [families]


def judge(plans: Sequence[Sequence[str]], profile: str, seed: int, fail_fast: bool) -> tuple[int, str, str]:
    """Run the verifier suite (its API, as ``lmspec verify`` does) over each selection in turn, until a
    check fails; ``lmspec.impl`` is whatever this process imports under that name."""
    from ..parallel import plan_units, run_units
    from ..runner import PROFILES

    prof = PROFILES[profile]
    for names in plans:
        results = run_units(plan_units(list(names), prof, [seed]), prof, 1, fail_fast)
        for r in results:
            if not r.passed:
                return 1, f"{r.equation} {r.check}", r.message
    return 0, "", ""


def _judge_forked(directory: str, plans, profile: str, seed: int, fail_fast: bool, timeout: float) -> Verdict:
    """In a process forked from the fork server: the suite with the mutant's impl/ in front."""
    import signal

    use_impl(Path(directory))

    def alarm(signum, frame):
        raise _Timeout()

    signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return judge(plans, profile, seed, fail_fast)
    except _Timeout:
        return None
    except Exception as exc:  # noqa: BLE001 - the mutant crashed the verifier: killed by error
        return 2, "crash", f"{type(exc).__name__}: {exc}".splitlines()[0]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _judge_subprocess(root: str, plans, profile: str, seed: int, fail_fast: bool, timeout: float) -> Verdict:
    """The suite in a fresh interpreter whose ``lmspec`` is the shadow tree in ``root`` (slower: every
    mutant imports torch, SymPy and the spec again)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    request = json.dumps({"plans": plans, "profile": profile, "seed": seed, "fail_fast": fail_fast})
    cmd = [sys.executable, "-m", "lmspec.verify.mutate.run", request]
    try:
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    try:
        code, killed_by, message = json.loads(_last_line(proc.stdout))
    except ValueError:
        return 2, "crash", f"the verifier exited {proc.returncode}: {_last_line(proc.stderr)}"
    return code, killed_by, message


def _outcome(mutant: Mutant, families: tuple[str, ...], verdict: Verdict, timeout: float) -> Outcome:
    equivalent = reason_for(mutant) or ""

    def outcome(status: str, killed_by: str = "", message: str = "") -> Outcome:
        if status == "survived" and equivalent:
            status = "equivalent"
        return Outcome(mutant, status, families, killed_by, message, equivalent)

    if verdict is None:
        return outcome("timeout", "timeout", f"lmspec verify ran past {timeout:g} s")
    code, check, message = verdict
    if code == 0:
        return outcome("survived")
    if code != 1 or "cannot bind the implementation" in message:
        return outcome("error", check, message)
    return outcome("killed", check, message)


def _compile_error(mutant: Mutant, sources: dict[str, str]) -> str | None:
    try:
        compile(mutant.apply(sources[mutant.module]), f"impl/{mutant.file}", "exec")
    except SyntaxError as exc:
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    return None


def _mutated_sources(mutant: Mutant, sources: dict[str, str]) -> dict[str, str]:
    return {**sources, mutant.module: mutant.apply(sources[mutant.module])}


def run_mutant(
    mutant: Mutant,
    sources: dict[str, str],
    *,
    profile: str = "default",
    seed: int = 0,
    timeout: float = 600.0,
    fail_fast: bool = True,
) -> Outcome:
    """Run one mutant through the verifier in a fresh interpreter (a subprocess)."""
    families = tuple(families_for(mutant.module, sources))
    error = _compile_error(mutant, sources)
    if error:
        return Outcome(mutant, "error", families, "compile", error, reason_for(mutant) or "")
    with tempfile.TemporaryDirectory(prefix="lmspec-mutant-") as tmp:
        shadow_tree(Path(tmp), _mutated_sources(mutant, sources))
        verdict = _judge_subprocess(tmp, _plans(mutant, sources), profile, seed, fail_fast, timeout)
        return _outcome(mutant, families, verdict, timeout)


def run_mutants(
    mutants: Sequence[Mutant],
    sources: dict[str, str],
    *,
    profile: str = "default",
    seed: int = 0,
    jobs: int = 1,
    timeout: float = 600.0,
    fail_fast: bool = True,
    on_result: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Run the mutants, ``jobs`` at a time, each in its own process forked from a fork server that has
    imported the verifier once; outcomes in the mutants' order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOAD))
    outcomes: dict[int, Outcome] = {}
    dirs: dict[int, tempfile.TemporaryDirectory] = {}
    with ProcessPoolExecutor(jobs, mp_context=context, max_tasks_per_child=1) as pool:
        futures = {}
        for i, m in enumerate(mutants):
            families = tuple(families_for(m.module, sources))
            error = _compile_error(m, sources)
            if error:
                outcomes[i] = Outcome(m, "error", families, "compile", error, reason_for(m) or "")
                if on_result:
                    on_result(outcomes[i])
                continue
            dirs[i] = tempfile.TemporaryDirectory(prefix="lmspec-mutant-")
            impl = write_impl(Path(dirs[i].name), _mutated_sources(m, sources))
            task = (str(impl), _plans(m, sources), profile, seed, fail_fast, timeout)
            futures[pool.submit(_judge_forked, *task)] = (i, families)
        for future in as_completed(futures):
            i, families = futures[future]
            try:
                verdict = future.result()
            except Exception as exc:  # noqa: BLE001 - the worker died (e.g. killed by the OS)
                verdict = (2, "crash", f"{type(exc).__name__}: {exc}")
            outcomes[i] = _outcome(mutants[i], families, verdict, timeout)
            dirs.pop(i).cleanup()
            if on_result:
                on_result(outcomes[i])
    return [outcomes[i] for i in range(len(mutants))]


# --- the report ------------------------------------------------------------------------------------


def per_operator(outcomes: Sequence[Outcome]) -> dict[str, dict[str, int]]:
    """mutants, killed, survived (not caught) and equivalent per operator, in the operators' order."""
    rows = {name: {"mutants": 0, "killed": 0, "survived": 0, "equivalent": 0} for name in OPERATOR_NAMES}
    for o in outcomes:
        row = rows[o.mutant.operator]
        row["mutants"] += 1
        key = "killed" if o.killed else ("equivalent" if o.status == "equivalent" else "survived")
        row[key] += 1
    return {k: v for k, v in rows.items() if v["mutants"]}


def summary(outcomes: Sequence[Outcome]) -> dict:
    total = len(outcomes)
    killed = sum(o.killed for o in outcomes)
    equivalent = sum(o.status == "equivalent" for o in outcomes)
    survived = total - killed - equivalent
    scored = total - equivalent
    return {
        "mutants": total,
        "killed": killed,
        "killed_by_check": sum(o.status == "killed" for o in outcomes),
        "killed_by_error": sum(o.status == "error" for o in outcomes),
        "killed_by_timeout": sum(o.status == "timeout" for o in outcomes),
        "equivalent": equivalent,
        "survived": survived,
        "kill_rate": round(killed / scored, 4) if scored else 1.0,
        "stale_equivalent_entries": sum(o.killed and bool(o.equivalent) for o in outcomes),
    }


def to_json(
    outcomes: Sequence[Outcome],
    sources: dict[str, str],
    *,
    profile: str,
    seed: int,
    selection: Sequence[str],
    operators: Sequence[str],
) -> str:
    """The JSON report: no times in it, so that the same seed gives the same bytes."""
    doc = {
        "tool": "lmspec mutate",
        "profile": profile,
        "seed": seed,
        "selection": list(selection),
        "operators": list(operators),
        "summary": summary(outcomes),
        "per_operator": per_operator(outcomes),
        "mutants": [o.as_json(sources[o.mutant.module]) for o in outcomes],
    }
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # the subprocess of run_mutant: one JSON request in, one JSON verdict out
    _request = json.loads(sys.argv[1])
    print(json.dumps(judge(_request["plans"], _request["profile"], _request["seed"], _request["fail_fast"])))
