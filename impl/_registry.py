"""The registry of implementations by equation id, and the switch for runtime shape checking.

impl/ never imports spec/: an equation id is a plain string here.
"""

import importlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TypeVar

import jaxtyping
from beartype import beartype
from jaxtyping import jaxtyped

F = TypeVar("F", bound=Callable)

_IMPLEMENTATIONS: dict[str, Callable] = {}


def implements(
    equation_id: str, variants: Mapping[str, Mapping[str, object]] | None = None
) -> Callable[[F], F]:
    """Register a function as the implementation of ``equation_id`` (``family.name``).

    ``variants`` names the equation's variants the function also implements, each with the keyword
    arguments that select it (``{"start_token": {"start": 0}}``; ``{}`` when the variant's own symbols, such
    as ε, bind to parameters the function has). ``lmspec verify`` checks those variants too.
    """

    def register(fn: F) -> F:
        if equation_id in _IMPLEMENTATIONS:
            other = _IMPLEMENTATIONS[equation_id]
            raise ValueError(
                f"@implements({equation_id!r}) on {fn.__module__}.{fn.__qualname__}: already "
                f"implemented by {other.__module__}.{other.__qualname__}"
            )
        _IMPLEMENTATIONS[equation_id] = fn
        fn.__lmspec_id__ = equation_id  # type: ignore[attr-defined]
        fn.__lmspec_variants__ = {name: dict(kw) for name, kw in (variants or {}).items()}  # type: ignore[attr-defined]
        return fn

    return register


def variant_options(equation_id: str, variant: str) -> dict[str, object] | None:
    """The keyword arguments selecting ``variant`` of ``equation_id`` in its implementation, or None when
    the implementation does not declare that variant."""
    return getattr(implementation(equation_id), "__lmspec_variants__", {}).get(variant)


def implemented_variants() -> dict[str, tuple[str, ...]]:
    """Every equation id whose implementation declares variants, with their names."""
    return {
        eq_id: tuple(fn.__lmspec_variants__)
        for eq_id, fn in implementations().items()
        if getattr(fn, "__lmspec_variants__", None)
    }


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
        importlib.import_module(f".{family}", __package__)


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
