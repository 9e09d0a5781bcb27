"""The registry of implementations by equation id, and the switch for runtime shape checking.

impl/ never imports spec/: an equation id is a plain string here.
"""

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import jaxtyping
from beartype import beartype
from jaxtyping import jaxtyped

F = TypeVar("F", bound=Callable)

_IMPLEMENTATIONS: dict[str, Callable] = {}


def implements(equation_id: str) -> Callable[[F], F]:
    """Register a function as the implementation of ``equation_id`` (``family.name``)."""

    def register(fn: F) -> F:
        if equation_id in _IMPLEMENTATIONS:
            other = _IMPLEMENTATIONS[equation_id]
            raise ValueError(
                f"@implements({equation_id!r}) on {fn.__module__}.{fn.__qualname__}: already "
                f"implemented by {other.__module__}.{other.__qualname__}"
            )
        _IMPLEMENTATIONS[equation_id] = fn
        fn.__lmspec_id__ = equation_id  # type: ignore[attr-defined]
        return fn

    return register


def implementation(equation_id: str) -> Callable:
    """The registered implementation of ``equation_id``; a KeyError names the known ids."""
    _load()
    try:
        return _IMPLEMENTATIONS[equation_id]
    except KeyError:
        known = ", ".join(sorted(_IMPLEMENTATIONS))
        raise KeyError(f"no implementation registered for {equation_id!r} (known: {known})") from None


def implementations() -> dict[str, Callable]:
    _load()
    return dict(_IMPLEMENTATIONS)


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


def _load() -> None:
    for family in FAMILIES:
        importlib.import_module(f"impl.{family}")


def checked(fn: F) -> F:
    """jaxtyping + beartype runtime checking of shapes and dtypes (switchable, see runtime_checks)."""
    return jaxtyped(typechecker=beartype)(fn)


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
