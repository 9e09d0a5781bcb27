"""Loading what to audit: a built-in's name (``lmspec audit --list``), ``package.module:name`` or
``path/to/file.py:Name`` (the file imported under a name that is the same in every process), and the name
an audited object goes by in reports."""

import importlib
import importlib.util
import sys
import zlib
from pathlib import Path

import torch

from .._errors import AuditError
from ..binding import who
from .adapters import builtins


def load(target: str) -> object:
    """The object named by ``package.module:name`` or ``path/to/file.py:Name`` (or a built-in's name)."""
    found = builtins()
    if target in found:
        return found[target]
    if ":" not in target:
        near = [n for n in found if target.lower() in n.lower()]
        hint = f" (built-ins like it: {', '.join(near[:6])})" if near else ""
        raise AuditError(
            f"cannot audit {target!r}: expected a built-in name (lmspec audit --list), 'module:name' or "
            f"'path/to/file.py:Name'{hint}"
        )
    where, _, attr = target.rpartition(":")
    if not attr:
        raise AuditError(f"cannot audit {target!r}: nothing after ':' names the callable")
    try:
        if where.endswith(".py") or "/" in where or "\\" in where:
            path = Path(where)
            if not path.is_file():
                raise AuditError(f"cannot audit {target!r}: there is no file {where}")
            # the same name in every process (hash() of a str is salted per process), since it appears in
            # messages and reports: the file's stem and a checksum of its absolute path
            name = f"lmspec_audit_{path.stem}_{zlib.crc32(str(path.resolve()).encode()):08x}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)
            module.__lmspec_display__ = where  # messages name it as the user did (binding.who)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except AuditError:
        raise
    except Exception as exc:
        raise AuditError(
            f"cannot audit {target!r}: importing {where} raised {type(exc).__name__}: {exc}"
        ) from exc
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise AuditError(f"cannot audit {target!r}: {where} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise AuditError(f"cannot audit {target!r}: {attr} is a {type(obj).__name__}, not callable")
    return obj


def display_name(obj: object) -> str:
    """What reports call an object given as itself: a module by its class, a callable by its name."""
    if isinstance(obj, torch.nn.Module):
        return type(obj).__qualname__
    return who(obj) if callable(obj) else repr(obj)


__all__ = ["display_name", "load"]
