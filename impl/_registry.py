"""The registry of implementations by equation id, and the switch for runtime shape checking.

impl/ never imports spec/: an equation id is a plain string here.
"""

import functools
import importlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TypeVar

import jaxtyping
from beartype import beartype
from jaxtyping import jaxtyped

F = TypeVar("F", bound=Callable)

#: The name of an equation's default implementation: the readable one, written step by step beside the
#: tutorial. Other implementations of the same equation (``@implements(id, name="fast")``) are named.
DEFAULT = "readable"

#: The default implementation of each equation id, and the others by id and name.
_IMPLEMENTATIONS: dict[str, Callable] = {}
_NAMED: dict[str, dict[str, Callable]] = {}


def implements(
    equation_id: str,
    variants: Mapping[str, Mapping[str, object]] | None = None,
    *,
    name: str = DEFAULT,
) -> Callable[[F], F]:
    """Register a function as an implementation of ``equation_id`` (``family.name``).

    ``variants`` names the equation's variants the function also implements, each with the keyword
    arguments that select it (``{"start_token": {"start": 0}}``; ``{}`` when the variant's own symbols, such
    as ε, bind to parameters the function has). ``lmspec verify`` checks those variants too.

    ``name`` registers another implementation of the same equation beside the default, readable one (a fast
    path: ``name="fast"``); ``implementation(id)`` stays the readable one, ``implementations_of(id)`` gives
    them all, and ``lmspec verify`` holds each to the spec (checks ``impl[fast]=oracle`` …).
    """
    if not name or not name.isidentifier():
        raise ValueError(f"@implements({equation_id!r}, name={name!r}): a name is an identifier, as 'fast'")

    def register(fn: F) -> F:
        table = _IMPLEMENTATIONS if name == DEFAULT else _NAMED.setdefault(equation_id, {})
        key = equation_id if name == DEFAULT else name
        if key in table:
            other = table[key]
            which = "" if name == DEFAULT else f" (name={name!r})"
            raise ValueError(
                f"@implements({equation_id!r}){which} on {fn.__module__}.{fn.__qualname__}: already "
                f"implemented by {other.__module__}.{other.__qualname__}"
            )
        table[key] = fn
        fn.__lmspec_id__ = equation_id  # type: ignore[attr-defined]
        fn.__lmspec_name__ = name  # type: ignore[attr-defined]
        fn.__lmspec_variants__ = {v: dict(kw) for v, kw in (variants or {}).items()}  # type: ignore[attr-defined]
        return fn

    return register


def variant_options(equation_id: str, variant: str, name: str = DEFAULT) -> dict[str, object] | None:
    """The keyword arguments selecting ``variant`` of ``equation_id`` in its implementation ``name``, or
    None when that implementation does not declare the variant."""
    return getattr(implementation(equation_id, name), "__lmspec_variants__", {}).get(variant)


def implemented_variants() -> dict[str, tuple[str, ...]]:
    """Every equation id whose default implementation declares variants, with their names (the other
    implementations of an id are checked on those of these variants they declare too)."""
    return {
        eq_id: tuple(fn.__lmspec_variants__)
        for eq_id, fn in implementations().items()
        if getattr(fn, "__lmspec_variants__", None)
    }


def implementation(equation_id: str, name: str = DEFAULT) -> Callable:
    """The registered implementation of ``equation_id`` (the readable one unless ``name`` is given); a
    KeyError names the known ids, or the names registered for the id."""
    _load()
    if equation_id not in _IMPLEMENTATIONS:
        known = ", ".join(sorted(_IMPLEMENTATIONS))
        raise KeyError(f"no implementation registered for {equation_id!r} (known: {known})")
    named = implementations_of(equation_id)
    if name not in named:
        raise KeyError(
            f"no implementation named {name!r} registered for {equation_id!r} (named: {', '.join(named)})"
        )
    return named[name]


def implementations() -> dict[str, Callable]:
    """Every equation id with its default, readable implementation."""
    _load()
    return dict(_IMPLEMENTATIONS)


def implementations_of(equation_id: str) -> dict[str, Callable]:
    """Every registered implementation of ``equation_id`` by name, the default (``"readable"``) first; empty
    when there is none."""
    _load()
    default = {DEFAULT: _IMPLEMENTATIONS[equation_id]} if equation_id in _IMPLEMENTATIONS else {}
    return default | _NAMED.get(equation_id, {})


#: One module of impl/ per equation family (the same names as spec/'s), imported to register.
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


#: Modules of impl/ that register other implementations of the families' equations (imported after them).
NAMED = ("fast",)


def _load() -> None:
    for module in (*FAMILIES, *NAMED):
        importlib.import_module(f".{module}", __package__)


def checked(fn: F) -> F:
    """jaxtyping + beartype runtime checking of shapes and dtypes (switchable, see runtime_checks).

    The checking wrapper is built on the first call: beartype writes and compiles a checker for each
    function it decorates (about 6 ms each, 0.6 s for impl/'s hundred at every start of lmspec), and a
    run uses a few of them."""
    checker: Callable | None = None

    @functools.wraps(fn)
    def run(*args, **kwargs):
        nonlocal checker
        if checker is None:
            checker = jaxtyped(typechecker=beartype)(fn)
        return checker(*args, **kwargs)

    return run  # type: ignore[return-value]


def set_runtime_checks(enabled: bool) -> None:
    """Switch jaxtyping/beartype checking of impl/ on or off (on by default)."""
    jaxtyping.config.update("jaxtyping_disable", not enabled)


def runtime_checks_enabled() -> bool:
    return not jaxtyping.config.jaxtyping_disable


@contextmanager
def runtime_checks(enabled: bool) -> Iterator[None]:
    """Run a block with runtime checking on or off, restoring the previous setting."""
    before = runtime_checks_enabled()
    set_runtime_checks(enabled)
    try:
        yield
    finally:
        set_runtime_checks(before)
