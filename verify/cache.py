"""A persistent cache of compiled oracles and generated code: the Python source the oracle generates for an
equation at given sizes, and the PyTorch generated from it, on disk, so that a second run does no SymPy
expansion or printing at all.

- **Where**: ``$LMSPEC_CACHE_DIR``, else ``$XDG_CACHE_HOME/lmspec``, else ``~/.cache/lmspec``; a folder per
  format version. ``LMSPEC_NO_CACHE=1`` (``lmspec verify --no-cache``) bypasses it.
- **Key**: a SHA-256 of the equation's content (its declarations, definitions and constraints, and those of
  every equation it calls), the sizes, the precision, and the source of the code that turns an equation into
  a program (spec/ and verify/oracle.py). A changed equation, operator or expansion gives another key: the
  cache can never return the oracle of an equation that has changed.
- **Safe**: an entry is written to a temporary file and renamed into place (atomic on POSIX and Windows), so
  two processes writing at once leave one whole entry; an entry carries a checksum of its body, and one that
  does not match (a truncated or corrupt file) is deleted and recomputed.
- **Bytecode too**: Python's compile of a large oracle's source takes longer than everything else a warm
  run does with it (0.2–0.3 s for a transformer block's 500 kB), so ``compile_source`` keeps the compiled
  code beside the entries (``<digest>.<cache tag>.pyc``, marshal), keyed by the source itself, the file name
  it is compiled under and this Python's bytecode version (importlib's magic number): it is derived from a
  source entry that has just been read and checked, never a substitute for one.
"""

import contextlib
import functools
import hashlib
import importlib.util
import marshal
import os
import sys
import tempfile
from pathlib import Path
from types import CodeType

import sympy as sp

from ..spec import Equation

#: Bump when the entries' format or the oracle's source conventions change.
FORMAT = "oracle-v1"
_HEADER = "# lmspec oracle cache {key} sha256={digest}\n"


def enabled() -> bool:
    return os.environ.get("LMSPEC_NO_CACHE", "") in ("", "0")


@contextlib.contextmanager
def disabled():
    """Bypass the cache inside the block, in this process and in the processes it starts (cold timings)."""
    before = os.environ.get("LMSPEC_NO_CACHE")
    os.environ["LMSPEC_NO_CACHE"] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ["LMSPEC_NO_CACHE"]
        else:
            os.environ["LMSPEC_NO_CACHE"] = before


def cache_dir() -> Path:
    """The folder holding the entries (not created until an entry is written)."""
    root = os.environ.get("LMSPEC_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "lmspec")
    return Path(root) / FORMAT


@functools.cache
def code_hash(roots: tuple[Path, ...] | None = None) -> str:
    """SHA-256 of the code that turns an equation into source: every module of spec/, verify/oracle.py and
    verify/codegen.py."""
    if roots is None:
        here = Path(__file__).resolve().parent
        roots = (_spec_dir(), here / "oracle.py", here / "codegen.py")
    digest = hashlib.sha256()
    for root in roots:
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        for path in files:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _spec_dir() -> Path:
    from .. import spec

    return Path(spec.__file__).resolve().parent


def fingerprint(eq: Equation) -> str:
    """SHA-256 of what the equation says: its declarations, definitions and constraints, and the
    fingerprints of the equations it calls (a changed callee changes its callers)."""
    return _fingerprint(eq, ())


def _fingerprint(eq: Equation, stack: tuple[str, ...]) -> str:
    from ..spec.registry import lookup

    own, callees = _content(eq)
    digest = hashlib.sha256(own.encode())
    for name in callees:
        if name not in stack:
            # resolved at every call, so that a callee registered anew is seen
            digest.update(f"\0{name}\0{_fingerprint(lookup(name), (*stack, eq.id))}".encode())
    return digest.hexdigest()


#: _content's answers by the equation's identity, with the identities of the attributes it read: an
#: equation's parts are immutable tuples of SymPy objects, so a changed equation is one with a new tuple
#: (its entry is then recomputed); printing every expression again cost seconds per verifier run.
_CONTENT: dict[int, tuple[tuple[object, ...], tuple[str, tuple[str, ...]]]] = {}


def _content(eq: Equation) -> tuple[str, tuple[str, ...]]:
    """The digest of what ``eq`` itself says, and the ids of the equations it calls (in a fixed order)."""
    parts = (eq.id, eq.variant_of, eq.variant_name, eq.inputs, eq.params, eq.intermediates, eq.outputs)
    parts += (eq.bindings, eq.constraints)
    # the objects themselves (not their ids): held here, none can be freed and its id reused
    identity = (eq, *parts, *(p for b in eq.bindings for p in (b.lhs, b.rhs)))
    hit = _CONTENT.get(id(eq))
    same = hit is not None and len(hit[0]) == len(identity)
    if same and all(a is b for a, b in zip(hit[0], identity, strict=True)):
        return hit[1]
    from ..spec.ops_nn import Call

    digest = hashlib.sha256()

    def add(*parts: object) -> None:
        for part in parts:
            digest.update(repr(part).encode())
            digest.update(b"\0")

    add(eq.id, eq.variant_of, eq.variant_name)
    roles = (("in", eq.inputs), ("param", eq.params), ("mid", eq.intermediates), ("out", eq.outputs))
    for role, decls in roles:
        for d in decls:
            add(role, sp.srepr(d), str(getattr(d, "entry_kind", "")))
    callees: list[str] = []
    for b in eq.bindings:
        add(sp.srepr(b.lhs), sp.srepr(b.rhs))
        for call in sorted(b.rhs.atoms(Call), key=sp.srepr):
            add("calls", call.args[0].name)
            callees.append(call.args[0].name)
    for c in eq.constraints:
        add(sp.srepr(c))
    result = (digest.hexdigest(), tuple(callees))
    _CONTENT[id(eq)] = (identity, result)
    return result


def key(eq: Equation, sizes: tuple[tuple[str, int], ...], precision: str) -> str:
    """The entry's name: the equation's content, the sizes, the precision ("float64", "mpmath", or "torch"
    for the generated PyTorch, which takes any sizes) and the code that compiles it."""
    text = "\0".join([FORMAT, code_hash(), fingerprint(eq), repr(sizes), precision])
    return hashlib.sha256(text.encode()).hexdigest()


def load(name: str) -> str | None:
    """The cached source, or None (absent, disabled, or corrupt: a corrupt entry is deleted)."""
    if not enabled():
        return None
    path = cache_dir() / f"{name}.py"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    head, _, body = text.partition("\n")
    if head + "\n" != _HEADER.format(key=name, digest=hashlib.sha256(body.encode()).hexdigest()):
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    return body


def store(name: str, source: str) -> None:
    """Write an entry atomically; a cache that cannot be written (read-only, full) is skipped silently: the
    oracle is correct without it, only slower."""
    if not enabled():
        return
    text = _HEADER.format(key=name, digest=hashlib.sha256(source.encode()).hexdigest()) + source
    _write(f"{name}.py", text.encode("utf-8"))


def _write(file: str, data: bytes) -> None:
    """``file`` in the cache folder, written atomically (a temporary file renamed into place); skipped
    silently where the cache cannot be written."""
    folder = cache_dir()
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{file[:16]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, folder / file)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def compile_source(source: str, filename: str) -> CodeType:
    """``compile(source, filename, "exec")``, its bytecode kept in the cache: keyed by the source, the file
    name and this Python's bytecode version, with a checksum (a corrupt file is deleted and compiled anew)."""
    if not enabled():
        return compile(source, filename, "exec")
    key = hashlib.sha256(b"\0".join([importlib.util.MAGIC_NUMBER, filename.encode(), source.encode()]))
    path = cache_dir() / f"{key.hexdigest()}.{sys.implementation.cache_tag}.pyc"
    with contextlib.suppress(OSError):
        data = path.read_bytes()
        if data[:32] == hashlib.sha256(data[32:]).digest():
            with contextlib.suppress(ValueError, EOFError, TypeError):
                code = marshal.loads(data[32:])
                if isinstance(code, CodeType):
                    return code
        path.unlink()
    code = compile(source, filename, "exec")
    body = marshal.dumps(code)
    _write(path.name, hashlib.sha256(body).digest() + body)
    return code
