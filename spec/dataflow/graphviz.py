"""Running Graphviz's ``dot``, what it made kept by the digest of the DOT text (in memory and on disk,
``$LMSPEC_CACHE_DIR/figures-v1`` as the verifier's cache; ``LMSPEC_NO_CACHE=1`` bypasses it).

``render_dot`` draws one figure; ``render_many`` draws every figure a document needs that is not kept yet
in ONE ``dot`` run (``dot -T<fmt> -O a.gv b.gv …``, an output file per input). Most of a ``dot`` run on a
small graph is the program's start-up (its plugins, its fonts: about 0.05 s), so a whole document's ~90
figures cost about 0.5 s in one run against 5 s in one run each.
"""

import contextlib
import hashlib
import os
import re
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


def _key(source: str, fmt: str, program: str) -> str:
    """The cache key of a drawing: the DOT text, the format, and which ``dot`` program (path, size, mtime)."""
    stat = os.stat(program)
    return hashlib.sha256(
        "\0".join([CACHE_FORMAT, fmt, program, str(stat.st_size), str(stat.st_mtime_ns), source]).encode()
    ).hexdigest()


def _kept(key: str, fmt: str) -> tuple[bytes | None, Path | None]:
    """What was drawn for ``key`` before (in memory, else a sound entry on disk), and the entry's path."""
    if key in _MEMORY:
        return _MEMORY[key], None
    folder = _cache_dir()
    path = folder / f"{key}.{fmt}" if folder is not None else None
    if path is not None:
        with contextlib.suppress(OSError):
            data = path.read_bytes()
            if data[:32] == hashlib.sha256(data[32:]).digest():
                _MEMORY[key] = data[32:]
                return data[32:], path
            path.unlink()
    return None, path


def _keep(key: str, path: Path | None, data: bytes) -> bytes:
    _MEMORY[key] = data
    if path is not None:
        _store(path, hashlib.sha256(data).digest() + data)
    return data


def render_dot(source: str, fmt: str, *, timeout: float = 60) -> bytes:
    """``dot -T<fmt>`` of ``source``, kept by the digest of the source, the format and the dot program (in
    memory and on disk): one run of ``dot`` per figure, none for a figure drawn before."""
    if fmt not in ("svg", "pdf"):
        raise SpecError(f"a figure is drawn as svg or pdf, found {fmt!r}")
    program = _dot_program()
    key = _key(source, fmt, program)
    data, path = _kept(key, fmt)
    if data is not None:
        return data
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
    return _keep(key, path, proc.stdout)


#: dot names the objects of every graph after the first of a run ``page0,1_<id>`` in SVG (Graphviz carries
#: its page counter from one graph to the next); one run per figure writes the bare ``<id>``. The prefix is
#: taken off the ids and off the references to them (``url(#…)``, ``href="#…"``).
_PAGE_PREFIX = re.compile(rb'(\sid="|#)page\d+,\d+_')


def render_many(sources: list[str], fmt: str, *, timeout: float = 120) -> list[bytes]:
    """``render_dot`` of each of ``sources``, with the figures not kept yet drawn in one ``dot`` run.

    The drawings are those of one run per figure: the same layout, the same text, ids without the page
    prefix dot adds after the first graph of a run (Graphviz 2.43 may list a graph's clusters in another
    order). A run that fails or leaves out a figure is not trusted: each missing figure is then drawn by
    ``render_dot`` on its own, whose error, if any, names what failed."""
    if fmt not in ("svg", "pdf"):
        raise SpecError(f"a figure is drawn as svg or pdf, found {fmt!r}")
    program = _dot_program()
    keys = [_key(s, fmt, program) for s in sources]
    out: dict[str, bytes] = {}
    todo: dict[str, tuple[str, Path | None]] = {}  # key -> (source, cache entry), each key once
    for key, source in zip(keys, sources, strict=True):
        if key in out or key in todo:
            continue
        data, path = _kept(key, fmt)
        if data is not None:
            out[key] = data
        else:
            todo[key] = (source, path)
    if len(todo) > 1:
        with contextlib.suppress(OSError):  # a folder that cannot be written: one run per figure below
            out.update(_one_run(program, {key: source for key, (source, _) in todo.items()}, fmt, timeout))
    for key, (source, path) in todo.items():
        if key in out:
            _keep(key, path, out[key])
        else:
            out[key] = render_dot(source, fmt)
    return [out[key] for key in keys]


def _one_run(program: str, sources: dict[str, str], fmt: str, timeout: float) -> dict[str, bytes]:
    """``dot -T<fmt> -O`` over one file per source, in a temporary folder: what it drew, by key (nothing
    where the run failed or timed out)."""
    with tempfile.TemporaryDirectory(prefix="lmspec-dot-") as tmp:
        files = {key: Path(tmp) / f"figure{k}.gv" for k, key in enumerate(sources)}
        for key, file in files.items():
            file.write_text(sources[key], encoding="utf-8")
        RUNS[0] += 1
        try:
            proc = subprocess.run(
                [program, f"-T{fmt}", "-O", *map(str, files.values())], capture_output=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return {}
        if proc.returncode != 0:
            return {}
        drawn = {}
        for key, file in files.items():
            with contextlib.suppress(OSError):
                data = file.with_name(f"{file.name}.{fmt}").read_bytes()
                if data:
                    drawn[key] = _PAGE_PREFIX.sub(rb"\1", data) if fmt == "svg" else data
        return drawn


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
