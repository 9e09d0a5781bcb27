"""Putting a mutated impl/ in front of lmspec's own, without touching the installed package.

lmspec is one import package: ``lmspec.impl`` is a sub-package, so a copy of impl/ cannot shadow it by coming
first on ``sys.path`` as a top-level ``impl`` once could. Two ways instead:

- in a process that already has the verifier loaded (a mutant's worker, forked from the fork server):
  :func:`use_impl` forgets ``lmspec.impl`` and puts a finder first on ``sys.meta_path`` that loads it from
  the copy; ``lmspec.spec`` and ``lmspec.verify`` stay as they are;
- for a fresh interpreter (a subprocess and the fork server it starts): :func:`shadow_tree` lays out a
  directory holding an ``lmspec`` package whose ``spec`` and ``verify`` are links to the real ones and whose
  ``impl`` is the copy; that directory first on ``PYTHONPATH`` is found before the installed lmspec.
"""

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path


def package_dir(name: str) -> Path:
    """The directory of the sub-package ``lmspec.NAME``, found without importing it."""
    found = importlib.util.find_spec(f"lmspec.{name}")
    if found is None or not found.submodule_search_locations:
        raise RuntimeError(f"cannot find the package lmspec.{name}")
    return Path(next(iter(found.submodule_search_locations)))


def write_impl(directory: Path, sources: Mapping[str, str]) -> Path:
    """impl/'s modules (name -> source) written into ``directory/impl``; returns that directory."""
    impl = Path(directory) / "impl"
    impl.mkdir(parents=True, exist_ok=True)
    for name, text in sources.items():
        (impl / f"{name}.py").write_text(text, "utf-8")
    return impl


def shadow_tree(root: Path, sources: Mapping[str, str]) -> Path:
    """``root/lmspec``: the real face, spec/ and verify/ (linked, or copied where links are refused) and impl/
    written from ``sources``. Put ``root`` first on PYTHONPATH; returns ``root``."""
    face = importlib.util.find_spec("lmspec")
    if face is None or face.origin is None:
        raise RuntimeError("cannot find the lmspec package")
    package = Path(root) / "lmspec"
    package.mkdir(parents=True, exist_ok=True)
    shutil.copy(face.origin, package / "__init__.py")
    for name in ("spec", "verify"):
        try:
            os.symlink(package_dir(name), package / name, target_is_directory=True)
        except OSError:
            shutil.copytree(package_dir(name), package / name, ignore=shutil.ignore_patterns("__pycache__"))
    write_impl(package, sources)
    return Path(root)


class _ImplFinder(importlib.abc.MetaPathFinder):
    """Finds ``lmspec.impl`` in one directory; its modules then come from there through the package path."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "lmspec.impl":
            return None
        return importlib.util.spec_from_file_location(
            fullname, self.directory / "__init__.py", submodule_search_locations=[str(self.directory)]
        )


def use_impl(directory: Path) -> None:
    """From now on, in this process, ``lmspec.impl`` is the package in ``directory`` (for a worker process:
    nothing that imported impl/ before this call may be used after it)."""
    for name in [m for m in sys.modules if m == "lmspec.impl" or m.startswith("lmspec.impl.")]:
        del sys.modules[name]
    face = sys.modules.get("lmspec")
    if face is not None:
        face.__dict__.pop("impl", None)
    sys.meta_path.insert(0, _ImplFinder(directory))
    importlib.invalidate_caches()
