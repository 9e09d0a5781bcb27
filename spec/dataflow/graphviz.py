"""Running Graphviz's ``dot``: once per figure, what it made kept by the digest of the DOT text (in memory
and on disk, ``$LMSPEC_CACHE_DIR/figures-v1`` as the verifier's cache; ``LMSPEC_NO_CACHE=1`` bypasses it)."""

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .._errors import SpecError

INSTALL_DOT = (
    "drawing a figure needs Graphviz's dot program, which is not on PATH; install Graphviz "
    "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; `make os-deps` does it here)"
)
#: Bump when the figures' look changes in a way the DOT text does not carry.
CACHE_FORMAT = "figures-v1"


class FigureError(Exception):
    """A figure could not be drawn (Graphviz missing or failing): a problem of the machine, not of the spec;
    the CLI turns it into exit 2, as a RenderError."""


def _dot_program() -> str:
    found = shutil.which("dot")
    if found is None:
        raise FigureError(INSTALL_DOT)
    return found


def _cache_dir() -> Path | None:
    if os.environ.get("LMSPEC_NO_CACHE", "") not in ("", "0"):
        return None
    root = os.environ.get("LMSPEC_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "lmspec")
    return Path(root) / CACHE_FORMAT


_MEMORY: dict[str, bytes] = {}
#: How many times this process ran ``dot`` (the tests hold the cache to one run per figure).
RUNS = [0]


def render_dot(source: str, fmt: str, *, timeout: float = 60) -> bytes:
    """``dot -T<fmt>`` of ``source``, kept by the digest of the source, the format and the dot program (in
    memory and on disk): one run of ``dot`` per figure, none for a figure drawn before."""
    if fmt not in ("svg", "pdf"):
        raise SpecError(f"a figure is drawn as svg or pdf, found {fmt!r}")
    program = _dot_program()
    stat = os.stat(program)
    key = hashlib.sha256(
        "\0".join([CACHE_FORMAT, fmt, program, str(stat.st_size), str(stat.st_mtime_ns), source]).encode()
    ).hexdigest()
    if key in _MEMORY:
        return _MEMORY[key]
    folder = _cache_dir()
    path = folder / f"{key}.{fmt}" if folder is not None else None
    if path is not None:
        with contextlib.suppress(OSError):
            data = path.read_bytes()
            if data[:32] == hashlib.sha256(data[32:]).digest():
                _MEMORY[key] = data[32:]
                return data[32:]
            path.unlink()
    try:
        RUNS[0] += 1
        proc = subprocess.run(
            [program, f"-T{fmt}"], input=source.encode(), capture_output=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise FigureError(f"Graphviz's dot did not finish a figure within {timeout:.0f} s") from None
    if proc.returncode != 0 or not proc.stdout:
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        raise FigureError(
            f"Graphviz's dot ({program}) failed on a figure (exit {proc.returncode}): "
            + (message[0] if message else "no message")
        )
    _MEMORY[key] = proc.stdout
    if path is not None:
        _store(path, hashlib.sha256(proc.stdout).digest() + proc.stdout)
    return proc.stdout


def _store(path: Path, data: bytes) -> None:
    """Write atomically (a temporary file renamed into place); a cache that cannot be written is skipped."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".figure.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
