"""Loading what to audit: a built-in's name (``lmspec audit --list``), ``package.module:name`` or
``path/to/file.py:Name`` (the file imported under a name that is the same in every process), and the name
an audited object goes by in reports."""

import ast
import importlib
import importlib.util
import inspect
import re
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
    return callable_form(obj)


def callable_form(obj: object) -> object:
    """What is audited of a loaded or given object: a C function with the signature its docstring gives
    (with_documented_signature), a logits processor class as the function that builds and calls it
    (as_processor), anything else as it is."""
    return as_processor(with_documented_signature(obj))


def _standing_for(wrapper, obj, signature: inspect.Signature):
    """``wrapper`` carrying ``signature`` and ``obj``'s name, module and docstring: what inference reads and
    reports name."""
    wrapper.__signature__ = signature
    wrapper.__name__ = wrapper.__qualname__ = obj.__name__
    wrapper.__module__ = getattr(obj, "__module__", None) or wrapper.__module__
    wrapper.__doc__ = obj.__doc__
    return wrapper


def as_processor(obj: object) -> object:
    """``obj`` itself, or, for a transformers logits processor class (``TemperatureLogitsWarper``,
    ``TopKLogitsWarper``: a LogitsProcessor is built with its settings and called on ``(input_ids,
    scores)``), the function of its constructor's settings and the scores that builds it and calls it, as
    generate does, with no previous tokens (``input_ids`` of batch × 0: a warper reads only the scores). A
    setting given a 0-d tensor is passed as the Python number it holds (the warpers refuse anything else)."""
    if not inspect.isclass(obj) or not any(
        k.__name__ in ("LogitsProcessor", "LogitsWarper") for k in obj.__mro__[1:]
    ):
        return obj
    try:
        settings = [p for p in inspect.signature(obj).parameters.values() if p.kind is not p.VAR_KEYWORD]
        call = inspect.signature(obj.__call__).parameters
    except (TypeError, ValueError):
        return obj
    if list(call)[:3] != ["self", "input_ids", "scores"]:
        return obj

    def processor(**kwargs):
        scores = kwargs.pop("scores")
        plain = {
            k: v.item() if isinstance(v, torch.Tensor) and v.dim() == 0 else v for k, v in kwargs.items()
        }
        ids = torch.empty((*scores.shape[:-1], 0), dtype=torch.long, device=scores.device)
        return obj(**plain)(ids, scores)

    processor.__lmspec_scores__ = True  # it returns scores (logits): inference reads its output so
    keyword = inspect.Parameter.KEYWORD_ONLY
    signature = inspect.Signature(
        [p.replace(kind=keyword) for p in settings] + [inspect.Parameter("scores", keyword)]
    )
    return _standing_for(processor, obj, signature)


def with_documented_signature(obj: object) -> object:
    """``obj`` itself, or, for a function written in C whose signature Python cannot read (torch's
    ``F.scaled_dot_product_attention``, ``F.linear``, ``F.gelu``), a thin wrapper that calls it and carries
    the signature its docstring opens with (``scaled_dot_product_attention(query, key, value,
    attn_mask=None, …) -> Tensor``): the names inference reads and the audit binds by are then the ones its
    documentation gives. Where the docstring states none, ``obj`` is returned as it is."""
    if not inspect.isbuiltin(obj):
        return obj
    try:
        inspect.signature(obj)
        return obj
    except (TypeError, ValueError):
        pass
    signature = documented_signature(obj)
    if signature is None:
        return obj

    def documented(*args, **kwargs):
        return obj(*args, **kwargs)

    return _standing_for(documented, obj, signature)


def documented_signature(obj: object) -> inspect.Signature | None:
    """The signature a C function's docstring opens with, ``name(a, b=None, *, c=1) -> T``; None where it
    opens with none, or with one Python cannot parse (a default that is not a literal)."""
    name = getattr(obj, "__name__", "")
    found = re.match(rf"\s*{re.escape(name)}\((.*?)\)\s*(?:->|:|$)", obj.__doc__ or "", re.DOTALL)
    if not name or found is None:
        return None
    try:
        tree = ast.parse(f"def _({found.group(1)}): pass")
        args = tree.body[0].args
        defaults = [ast.literal_eval(d) for d in args.defaults]
        kw_defaults = [None if d is None else ast.literal_eval(d) for d in args.kw_defaults]
    except (SyntaxError, ValueError):
        return None
    empty, kinds = inspect.Parameter.empty, inspect.Parameter
    positional = [*args.posonlyargs, *args.args]
    padded = [empty] * (len(positional) - len(defaults)) + defaults
    params = [
        kinds(
            a.arg, kinds.POSITIONAL_ONLY if a in args.posonlyargs else kinds.POSITIONAL_OR_KEYWORD, default=d
        )
        for a, d in zip(positional, padded, strict=True)
    ]
    params += [
        kinds(a.arg, kinds.KEYWORD_ONLY, default=empty if d is None and k is None else d)
        for a, d, k in zip(args.kwonlyargs, kw_defaults, args.kw_defaults, strict=True)
    ]
    try:
        return inspect.Signature(params)
    except ValueError:
        return None


def display_name(obj: object) -> str:
    """What reports call an object given as itself: a module by its class, a callable by its name."""
    if isinstance(obj, torch.nn.Module):
        return type(obj).__qualname__
    return who(obj) if callable(obj) else repr(obj)


__all__ = [
    "as_processor",
    "callable_form",
    "display_name",
    "documented_signature",
    "load",
    "with_documented_signature",
]
