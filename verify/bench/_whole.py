"""Parts ``verify`` and ``tests``: the two commands a developer waits for, timed whole, in fresh processes
(issue 14, "Fast").

- ``verify``: ``lmspec verify`` over the selected families (the whole catalogue by default), serial, at the
  bench's ``--profile``. **Cold**: each run with an empty disk cache of its own (``LMSPEC_CACHE_DIR``,
  verify.cache), as a first run on a machine or after a change to spec/ is; **warm**: runs that find the
  cache the cold runs filled, as every run after that does. Bytecode as an installed package's (see
  ``_startup.installed_environment``). The goals (≤ 30 s cold, ≤ 10 s warm) are set
  for the whole catalogue at the default profile; on a selection they are reported as not applying.
- ``tests``: the test suite as ``make test`` runs it (pytest, one xdist worker per core, random order), from
  a checkout (the folder holding lmspec's pyproject.toml and tests/); goal ≤ 6 min. The oracle cache of
  the tests (build/test-cache) is left as it is: warm after a first run, as a developer's is.

A cold ``lmspec verify`` takes minutes and the test suite several, so each is timed ``min(repeat, 3)``
times (the warm verify ``repeat`` times); each run must exit 0 (a failing check or test is no timing).
"""

import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ._parts import BenchError, checkout_root
from ._startup import _Command, _environment, installed_environment, lmspec_command
from ._timing import no_note, timing

#: issue 14: the whole catalogue at the default profile, serial (seconds); ``make test`` (seconds)
GOALS_S = {"verify_cold": 30.0, "verify_warm": 10.0, "tests": 360.0}
#: the slow figures are timed at most this many times
SLOW_REPEAT = 3
#: ``make test``'s pytest run (after ``python -m``), without ruff and the OS-package check
TEST_ARGS: tuple[str, ...] = ("pytest", "-q", "-n", "auto", "-p", "randomly")


def _timed(command: _Command, runs: int, before: Callable[[int], None] | None = None) -> dict:
    seconds = []
    for k in range(runs):
        if before is not None:
            before(k)
        start = time.perf_counter()
        command()
        seconds.append(time.perf_counter() - start)
    return {**command.checked(), **timing(seconds)}


def verify(
    repeat: int = 5,
    note: Callable[[str], None] = no_note,
    families: Sequence[str] | None = None,
    profile: str = "default",
) -> dict:
    """``lmspec verify`` in fresh processes: ``min(repeat, 3)`` cold runs, each with an empty cache, then
    ``repeat`` warm ones."""
    from ... import spec

    selection = list(families or [])
    whole = not selection or set(selection) == set(spec.FAMILIES)
    args = ["verify", *selection, "--profile", profile]
    with tempfile.TemporaryDirectory(prefix="lmspec-bench-verify-") as tmp:
        env = installed_environment(Path(tmp))  # bytecode as an installed package's
        cold_command = _Command([*lmspec_command(), *args], env=env)

        def empty(k: int) -> None:
            env["LMSPEC_CACHE_DIR"] = str(Path(tmp) / f"cold-{k}")

        runs = max(1, min(repeat, SLOW_REPEAT))
        note(f"verify: `{cold_command.shown}`, {runs} cold runs (an empty cache each), then {repeat} warm")
        _warm_up(env, Path(tmp) / "warm-up")
        cold = _timed(cold_command, runs, empty)
        env["LMSPEC_CACHE_DIR"] = str(Path(tmp) / f"cold-{runs - 1}")  # filled by the last cold run
        warm = _timed(_Command([*lmspec_command(), *args], env=env), repeat)
    return {
        "families": selection or list(spec.FAMILIES),
        "profile": profile,
        "cold": cold,
        "warm": warm,
        "goals_apply": whole and profile == "default",
        "goal_cold_s": GOALS_S["verify_cold"],
        "goal_warm_s": GOALS_S["verify_warm"],
    }


def _warm_up(env: dict[str, str], scratch: Path) -> None:
    """Untimed, as an installation has it before its first run: lmspec's bytecode and that of what it
    imports written where ``env`` has Python look (its pycache prefix holds all of it), through a compile
    of lmspec and a quick verify of one family with a cache of its own; the first timed run would
    otherwise compile torch, SymPy and lmspec."""
    from ... import impl, spec

    folders = [str(Path(m.__file__).resolve().parent) for m in (spec, impl)]
    folders.append(str(Path(__file__).resolve().parents[1]))  # verify/
    _Command([sys.executable, "-m", "compileall", "-q", *folders], env=env)()
    quick = _Command([*lmspec_command(), "verify", "positional", "--profile", "quick"],
                     env={**env, "LMSPEC_CACHE_DIR": str(scratch)})  # fmt: skip
    quick()
    quick.checked()


def checkout() -> Path:
    """The checkout lmspec runs from, or a BenchError."""
    root = checkout_root()
    if root is None:
        raise BenchError(
            "part tests times the test suite of a checkout, and this lmspec is installed without one "
            "(holds no tests/): run the bench from a clone, pip install -e '.[dev]'"
        )
    return root


def tests(repeat: int = 5, note: Callable[[str], None] = no_note) -> dict:
    """The test suite as ``make test`` runs it, ``min(repeat, 3)`` times, in the checkout."""
    root = checkout()
    command = _Command([sys.executable, "-m", *TEST_ARGS], root, env=_environment())
    runs = max(1, min(repeat, SLOW_REPEAT))
    note(f"tests: `{command.shown}` in {root}, {runs} runs")
    row = _timed(command, runs)
    return {**row, "goal_s": GOALS_S["tests"]}
