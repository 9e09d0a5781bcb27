"""Running mutants through ``lmspec verify``, and the mutation report.

Each mutant runs in a fresh temporary directory holding a copy of impl/ (as it was when the run started) with
the one file mutated; that directory is the subprocess's working directory and comes first on PYTHONPATH, so
its ``impl`` shadows the repository's (the editable install's finder comes after the path finder), while
``spec`` and ``verify`` are the repository's. The subprocess is ``lmspec verify FAMILIES --fail-fast --json``,
FAMILIES being the mutated module's family and every family whose impl module imports it, transitively.

Outcomes: ``killed`` (a check failed: verify exits 1; the first failing check is recorded), ``error`` (the
mutant does not compile or import, or verify crashed: killed by error), ``timeout`` (killed by timeout),
``survived`` (verify exits 0), and ``equivalent`` (survived, and listed in verify/mutate_equivalent.py).
"""

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from verify.mutate import OPERATOR_NAMES, Mutant, equations_reaching, families_for
from verify.mutate_equivalent import reason_for

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


def _first_failure(report: Path) -> tuple[str, str] | None:
    try:
        doc = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for r in doc.get("results", []):
        if r.get("status") == "fail":
            return f"{r['equation']} {r['check']}", str(r.get("message", ""))
    return None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


#: Modules the fork server imports once, so that each mutant's process starts with torch, SymPy, the spec
#: and the verifier loaded (none of them imports impl/, which each mutant imports fresh from its copy).
PRELOAD = (
    "verify.cli",
    "verify.parallel",
    "verify.runner",
    "verify.report",
    "verify.properties",
    "verify.mutate",
    "verify.mutate_run",
    *(f"verify.properties_{g}" for g in ("lm", "rnn", "transformer", "gpt2", "bert", "vit", "params")),
)


class _Timeout(BaseException):
    """Raised by the alarm in a mutant's process; a BaseException passes through Hypothesis and the runner."""


def _verify_argvs(
    mutant: Mutant, sources: dict[str, str], profile: str, seed: int, report: Path, fail_fast: bool
) -> list[list[str]]:
    """Two ``lmspec verify`` runs: first the equations whose registered function reaches the mutated one
    (its own family's first), where a kill is likeliest and cheapest; then, if they all pass, the mutated
    module's family and every family that imports it, in full."""
    tail = ["--profile", profile, "--seed", str(seed), "--json", str(report)]
    tail += ["--fail-fast"] if fail_fast else []
    first = equations_reaching(mutant.module, mutant.function, sources)
    families = families_for(mutant.module, sources)
    return ([["verify", *first, *tail]] if first else []) + [["verify", *families, *tail]]


def _verify_forked(tmp: str, argvs: list[list[str]], timeout: float) -> tuple[int | None, str]:
    """In a process forked from the fork server: ``lmspec verify`` with the mutant's impl/ first on the path,
    once per argument list until one fails. Returns the exit code (None past the timeout) and the last line
    of its output."""
    import contextlib
    import importlib
    import io
    import signal

    sys.path.insert(0, tmp)
    for name in [m for m in sys.modules if m == "impl" or m.startswith("impl.")]:
        del sys.modules[name]
    importlib.invalidate_caches()
    os.chdir(tmp)

    def alarm(signum, frame):
        raise _Timeout()

    signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    out, err = io.StringIO(), io.StringIO()
    try:
        from verify.cli import main

        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            for argv in argvs:
                code = main(argv)
                if code != 0:
                    break
    except _Timeout:
        return None, ""
    except Exception as exc:  # noqa: BLE001 - the mutant crashed the verifier: killed by error
        return 1, f"{type(exc).__name__}: {exc}".splitlines()[0]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return code, _last_line(err.getvalue()) or _last_line(out.getvalue())


def _verify_subprocess(tmp: str, argvs: list[list[str]], timeout: float) -> tuple[int | None, str]:
    """``python -m verify verify …`` in a fresh interpreter, the mutant's directory as working directory and
    first on PYTHONPATH (slower: every mutant imports torch, SymPy and the spec again)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([tmp, *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    for argv in argvs:
        cmd = [sys.executable, "-m", "verify", *argv]
        try:
            proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, ""
        if proc.returncode != 0:
            break
    return proc.returncode, _last_line(proc.stderr) or _last_line(proc.stdout)


def _prepare(mutant: Mutant, sources: dict[str, str], tmp: str) -> None:
    (Path(tmp) / "impl").mkdir()
    mutated = mutant.apply(sources[mutant.module])
    for name, text in sources.items():
        (Path(tmp) / "impl" / f"{name}.py").write_text(mutated if name == mutant.module else text, "utf-8")


def _outcome(mutant: Mutant, families: tuple[str, ...], result, report: Path, timeout: float) -> Outcome:
    equivalent = reason_for(mutant) or ""

    def outcome(status: str, killed_by: str = "", message: str = "") -> Outcome:
        if status == "survived" and equivalent:
            status = "equivalent"
        return Outcome(mutant, status, families, killed_by, message, equivalent)

    code, tail = result
    if code is None:
        return outcome("timeout", "timeout", f"lmspec verify ran past {timeout:g} s")
    if code == 0:
        return outcome("survived")
    failure = _first_failure(report) if code == 1 else None
    if failure is None:
        return outcome("error", "crash", f"lmspec verify exited {code}: {tail}")
    check, message = failure
    if "cannot bind the implementation" in message:
        return outcome("error", check, message)
    return outcome("killed", check, message)


def _compile_error(mutant: Mutant, sources: dict[str, str]) -> str | None:
    try:
        compile(mutant.apply(sources[mutant.module]), f"impl/{mutant.file}", "exec")
    except SyntaxError as exc:
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    return None


def run_mutant(
    mutant: Mutant,
    sources: dict[str, str],
    *,
    profile: str = "default",
    seed: int = 0,
    timeout: float = 600.0,
    fail_fast: bool = True,
) -> Outcome:
    """Run one mutant through ``lmspec verify`` in a fresh interpreter (a subprocess)."""
    families = tuple(families_for(mutant.module, sources))
    error = _compile_error(mutant, sources)
    if error:
        return Outcome(mutant, "error", families, "compile", error, reason_for(mutant) or "")
    with tempfile.TemporaryDirectory(prefix="lmspec-mutant-") as tmp:
        _prepare(mutant, sources, tmp)
        report = Path(tmp) / "report.json"
        result = _verify_subprocess(
            tmp, _verify_argvs(mutant, sources, profile, seed, report, fail_fast), timeout
        )
        return _outcome(mutant, families, result, report, timeout)


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
            _prepare(m, sources, dirs[i].name)
            argvs = _verify_argvs(m, sources, profile, seed, Path(dirs[i].name) / "report.json", fail_fast)
            futures[pool.submit(_verify_forked, dirs[i].name, argvs, timeout)] = (i, families)
        for future in as_completed(futures):
            i, families = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - the worker died (e.g. killed by the OS)
                result = (1, f"{type(exc).__name__}: {exc}")
            report = Path(dirs[i].name) / "report.json"
            outcomes[i] = _outcome(mutants[i], families, result, report, timeout)
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
