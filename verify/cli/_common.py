"""What every command of the ``lmspec`` command line shares: the consoles, the usage error, the report
writers, the exit codes, and the choices its options offer.

Light by design: ``lmspec --help``, ``lmspec CMD --help``, ``lmspec --version`` and the usage errors of the
options answer from this module and Typer alone, without torch, SymPy, NumPy or Hypothesis. So the choices
below are plain copies of the heavy modules' own (tests/cli/test_startup.py holds each to its source), and a
command imports what it needs inside its function.

Exit codes: 0 everything passed, 1 a check failed, 2 bad usage or input (one sentence, no traceback).
"""

import sys
from pathlib import Path

import typer
from rich.console import Console

# Piped output (CI logs, files) is not cut at 80 columns.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)

#: The verifier's profiles (verify.runner.PROFILES), in order of effort.
PROFILES = ("quick", "default", "thorough")
#: The equation families, in the tutorial's order (spec.FAMILIES).
FAMILIES = (
    "lm",
    "ffnn",
    "rnn",
    "lstm",
    "gru",
    "positional",
    "attention",
    "activation",
    "norm",
    "transformer",
    "gpt2",
    "bert",
    "vit",
    "timeseries",
    "training",
    "params",
)


class UsageError(Exception):
    """A user error: printed as one sentence, exit code 2."""


def version() -> str:
    """``lmspec.__version__``, from the one module that holds it (the face re-exports it)."""
    from ..._version import __version__

    return __version__


def report_paths(**paths: Path | None) -> None:
    """Check the report options before the run (``--json out.json``, ``--junit -``): each writable, no two
    the same file, at most one ``-`` (standard output). A report written to ``-`` takes stdout for itself,
    and the human-readable output goes to stderr."""
    given = {option: p for option, p in paths.items() if p is not None}
    seen: dict[str, str] = {}
    for option, path in given.items():
        key = "-" if str(path) == "-" else str(path.resolve())
        if key in seen:
            where = "standard output" if key == "-" else str(path)
            raise UsageError(f"--{seen[key]} and --{option} would both write {where}: give each its own")
        seen[key] = option
        writable(path)
    if "-" in seen:
        console.file = sys.stderr


def writable(path: Path) -> None:
    """Fail before the run, not after it, when a report cannot be written (``-`` is standard output)."""
    if str(path) == "-":
        return
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc


def write(path: Path, text: str) -> None:
    """Write a report, its folder created (``-``: to standard output); a failure is a usage error."""
    if str(path) == "-":
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _is_spec_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a spec.SpecError (a BindingError is one). Only a loaded spec can raise one, so the
    check imports nothing: a command that never reached SymPy leaves it unloaded."""
    spec = sys.modules.get("lmspec.spec")
    spec_error = getattr(spec, "SpecError", None)
    return spec_error is not None and isinstance(exc, spec_error)


_SETTLED: list[bool] = []


def settle() -> None:
    """Call once a command has imported what it needs (torch, SymPy, Hypothesis, the spec): every object
    alive now moves to the garbage collector's permanent generation (``gc.freeze``), where no collection
    scans it again. Nothing imported is garbage, and with some 220,000 objects tracked after those imports
    a full collection costs 0.1–0.2 s: Hypothesis makes one at its first test (``register_random``), and
    SymPy's allocations trigger more. ``run`` unfreezes them when the command returns (a command run
    in-process, as the tests do, leaves the collector as it found it)."""
    import gc

    if not _SETTLED:
        gc.freeze()
        _SETTLED.append(True)


def run(app: typer.Typer, argv: list[str] | None) -> int:
    """Run ``app`` on ``argv`` (default: the process's arguments) and return its exit code; user errors exit
    2 with one sentence."""
    try:
        return _run(app, argv)
    finally:
        console.file = None  # back to whatever sys.stdout is (a report to "-" had sent it to stderr)
        if _SETTLED:
            import gc

            gc.unfreeze()
            _SETTLED.clear()


def _run(app: typer.Typer, argv: list[str] | None) -> int:
    try:
        code = app(args=argv, standalone_mode=False)  # click returns Exit codes in this mode
    except UsageError as exc:
        err.print(f"lmspec: error: {exc}", highlight=False, markup=False)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except SystemExit as exc:
        return int(exc.code or 0)
    except Exception as exc:  # a spec error, click's usage errors (typer vendors click) and aborts
        if _is_spec_error(exc):
            err.print(f"lmspec: error: {exc}", highlight=False, markup=False)
            return 2
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            err.print(f"lmspec: error: {exc.format_message()}", highlight=False, markup=False)
            return exc.exit_code or 2
        if type(exc).__name__ == "Abort":
            return 130
        raise
    return code if isinstance(code, int) else 0
