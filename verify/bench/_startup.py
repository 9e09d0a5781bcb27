"""Parts ``startup`` and ``plugin``: what lmspec costs before it does anything, each command timed in fresh
processes.

- ``startup``: the wall time of ``lmspec --help``, ``lmspec verify --help`` and a usage error, beside the
  interpreter's own start-up (``python -c pass``), the floor under every command;
- ``plugin``: pytest on a one-test project that has nothing to do with lmspec, with lmspec's pytest plugin
  loaded (as it is wherever lmspec is installed) and without it (``-p no:lmspec``).

Every run is a new process (start-up is what is measured: nothing is warm but the OS's file cache, which
one untimed warm-up round fills), timed around its whole life. The warm-up run also gives each command's
peak resident memory.
"""

import importlib.metadata
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from ._parts import GOALS, BenchError, CommandError
from ._timing import measure, no_note

#: Variables that would change which pytest plugins load or what Python imports in a timed process.
_UNSET = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTHONSTARTUP")
_ONE_TEST = "def test_one():\n    assert 6 * 7 == 42\n"


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _UNSET}


def installed_environment(tmp: Path) -> dict[str, str]:
    """The bench's environment for lmspec run as an installed package is: pip compiles every module's
    bytecode at install, so Python does not compile lmspec's sources at each start (a checkout run with
    PYTHONDONTWRITEBYTECODE=1 would, ~0.12 s); the bytecode goes to a prefix under ``tmp``, not into the
    source tree. The disk cache is on (no LMSPEC_NO_CACHE)."""
    drop = ("LMSPEC_NO_CACHE", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in _environment().items() if k not in drop}
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    return env


def lmspec_command() -> list[str]:
    """How a user starts lmspec here: the ``lmspec`` script beside this Python, else ``python -m lmspec``."""
    script = Path(sys.executable).with_name("lmspec")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "lmspec"]


def _shown(argv: Sequence[str]) -> str:
    """A command line for people: the interpreter as ``python``, a script by its name."""
    words = ["python" if a == sys.executable else a for a in argv]
    words[0] = Path(words[0]).name
    return shlex.join(words)


#: Starts a command as its own child and writes the child's peak resident memory (ru_maxrss) to a file. A
#: command started straight from the bench would report the bench's own memory as its peak: Linux carries
#: the parent's high-water mark into a child spawned from it. From this launcher (os and sys only, about
#: 10 MiB) the floor is the launcher's.
_PEAK = """import os, sys
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status) & 255)
"""


def _children_cpu() -> float | None:
    """User + system CPU seconds of the waited-for children of this process so far (None without
    ``resource``, as on Windows)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class _Command:
    """A command line run in a new process at each call (in ``cwd``, with ``env`` or the bench's environment
    less _UNSET); it keeps each run's exit code and output and the CPU time (user + system) of the process
    and its children, and the command's peak resident memory (MiB), measured on its first run (the untimed
    warm-up) through a launcher; None where the OS cannot tell."""

    def __init__(
        self, argv: Sequence[str], cwd: Path | None = None, exit_code: int = 0, env: dict | None = None
    ) -> None:
        self.argv, self.cwd, self.exit_code, self.env = list(argv), cwd, exit_code, env
        self.runs: list[tuple[int, str]] = []
        self.cpu_s: list[float | None] = []
        self.peak_mib: float | None = None

    def __call__(self) -> None:
        argv, peak = self.argv, None
        if not self.runs and hasattr(os, "wait4") and hasattr(os, "posix_spawn"):
            fd, peak = tempfile.mkstemp(prefix="lmspec-bench-peak-")
            os.close(fd)
            argv = [sys.executable, "-c", _PEAK, peak, *self.argv]
        before = _children_cpu()
        proc = subprocess.run(
            argv, cwd=self.cwd, env=self.env or _environment(), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False,
        )  # fmt: skip
        after = _children_cpu()
        self.runs.append((proc.returncode, proc.stdout.decode(errors="replace")))
        self.cpu_s.append(None if before is None or after is None else after - before)
        if peak is not None:
            text = Path(peak).read_text().strip()
            Path(peak).unlink()
            if text:  # ru_maxrss is in KiB on Linux, in bytes on macOS
                self.peak_mib = int(text) / (1024 * 1024 if sys.platform == "darwin" else 1024)

    @property
    def shown(self) -> str:
        """The command line for people."""
        return _shown(self.argv)

    def checked(self, accept: Callable[[str], str | None] = lambda _: None) -> dict:
        """The command, its exit code and peak memory, once each run is seen to have done its job: the
        expected exit code, and ``accept(output)`` returning no complaint."""
        for code, output in self.runs:
            complaint = f"exited {code}, not {self.exit_code}" if code != self.exit_code else accept(output)
            if complaint:
                last = output.strip().splitlines()[-3:]
                raise CommandError(f"`{_shown(self.argv)}` {complaint}: {' | '.join(last) or 'no output'}")
        return {"command": _shown(self.argv), "exit_code": self.exit_code, "max_rss_mib": self.peak_mib}


def startup(repeat: int = 5, note: Callable[[str], None] = no_note) -> dict:
    """Wall time of ``lmspec --help``, ``lmspec verify --help`` and a usage error (exit 2), each in fresh
    processes, interleaved with ``python -c pass``; median and min of ``repeat`` runs after one warm-up."""
    lmspec = lmspec_command()
    commands = {
        "python": _Command([sys.executable, "-c", "pass"]),
        "help": _Command([*lmspec, "--help"]),
        "command_help": _Command([*lmspec, "verify", "--help"]),
        "usage_error": _Command([*lmspec, "verify", "--profile", "nope"], exit_code=2),
    }
    note(f"startup: {', '.join(_shown(c.argv) for c in commands.values())}, each in fresh processes")
    times = measure(commands, repeat)
    rows = {name: {**c.checked(), **times[name]} for name, c in commands.items()}
    floor = rows["python"]["median_s"]
    return {
        "commands": rows,
        "help_s": rows["help"]["median_s"],
        "help_over_python_s": rows["help"]["median_s"] - floor,
        "goal_s": GOALS["help_s"],
    }


def _plugins_line(output: str) -> str:
    """The ``plugins:`` line of pytest's header: the third-party plugins it loaded."""
    return next((line for line in output.splitlines() if line.startswith("plugins:")), "plugins: none")


def _pytest_complaint(with_plugin: bool) -> Callable[[str], str | None]:
    """What is wrong with a run of the one-test project, if anything: its test must pass, and lmspec must be
    among the plugins pytest lists exactly when it is meant to be loaded."""

    def complaint(output: str) -> str | None:
        if " 1 passed" not in output:
            return "did not pass its one test"
        if (" lmspec-" in _plugins_line(output)) != with_plugin:
            return "did not load the lmspec plugin" if with_plugin else "loaded the lmspec plugin"
        return None

    return complaint


def plugin(repeat: int = 5, note: Callable[[str], None] = no_note) -> dict:
    """pytest on a project of one test that has nothing to do with lmspec, with lmspec's plugin (loaded from
    its entry point) and with ``-p no:lmspec``, interleaved; the ratio of the medians, and each run's peak
    memory. Each run must pass its test, and only the first must list lmspec among its plugins."""
    try:
        version = importlib.metadata.version("pytest")
    except importlib.metadata.PackageNotFoundError:
        raise BenchError("the plugin part runs pytest: pip install pytest") from None
    with tempfile.TemporaryDirectory(prefix="lmspec-bench-") as tmp:
        project = Path(tmp)
        (project / "pytest.ini").write_text("[pytest]\n")  # its own rootdir: no configuration around it
        (project / "test_one.py").write_text(_ONE_TEST)
        base = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_one.py"]
        commands = {"with": _Command(base, project), "without": _Command([*base, "-p", "no:lmspec"], project)}
        note(f"plugin: `{_shown(base)}` on a one-test project, with and without `-p no:lmspec`")
        times = measure(commands, repeat)

    with_, without = (
        {**commands[name].checked(_pytest_complaint(name == "with")), **times[name]}
        for name in ("with", "without")
    )
    return {
        "project": "one test: assert 6 * 7 == 42",
        "pytest": version,
        "with": with_,
        "without": without,
        "ratio": with_["median_s"] / without["median_s"],
        "overhead_pct": 100.0 * (with_["median_s"] / without["median_s"] - 1.0),
        "overhead_min_pct": 100.0 * (with_["min_s"] / without["min_s"] - 1.0),
        "goal_pct": GOALS["plugin_overhead_pct"],
    }
