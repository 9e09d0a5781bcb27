"""The concept figures kept on disk, so that ``lmspec render`` draws them once, not at every run.

A concept figure is a pure function of lmspec's code (the spec's equations, the oracle, impl's GPT-2 with its
seeded weights, the drawing code), so the key is the SHA-256 of every module of spec/, impl/ and verify/
(``verify.cache.code_hash``) with the ids asked for, and the version of NumPy that computed the numbers: any
change to the code draws them again. The entries sit beside the oracle's (``$LMSPEC_CACHE_DIR``,
``LMSPEC_NO_CACHE=1`` bypasses them), written atomically with a checksum. A hit imports neither NumPy's
arithmetic nor the oracle: ``kept_concept_figures`` is that look-up alone, so that ``lmspec render`` can
compute the figures elsewhere (another process) when they are not kept.
"""

import contextlib
import hashlib
import importlib.metadata
import json
from collections.abc import Callable, Iterable
from pathlib import Path

from .. import cache
from ._svg import Figure

FORMAT = "concepts-v2"


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def key(ids: Iterable[str]) -> str:
    """The entry's name: the code that draws the figures, the ids, and NumPy's version."""
    package = Path(__file__).resolve().parents[2]  # verify/figures/ -> the lmspec package
    roots = tuple(package / part for part in ("spec", "impl", "verify") if (package / part).is_dir())
    text = "\0".join([FORMAT, cache.code_hash(roots), *sorted(ids), _version("numpy")])
    return hashlib.sha256(text.encode()).hexdigest()


def _entry(wanted: list[str] | None) -> Path:
    return cache.cache_dir() / f"{FORMAT}-{key(['*'] if wanted is None else wanted)}.json"


def kept_concept_figures(ids: Iterable[str] | None = None) -> dict[str, list[Figure]] | None:
    """The concept figures of ``ids`` (all when None) as kept on disk by ``cached_concept_figures``, or None
    where they are not kept (or the cache is off, or the entry is damaged): nothing is computed."""
    wanted = None if ids is None else list(ids)
    if not cache.enabled():
        return None
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        data = _entry(wanted).read_bytes()
        if data[:64].decode() == hashlib.sha256(data[64:]).hexdigest():
            stored = json.loads(data[64:])
            return {i: [Figure(**f) for f in stored[i]] for i in (stored if wanted is None else wanted)}
    return None


def _keep(wanted: list[str] | None, figures: dict[str, list[Figure]]) -> None:
    if cache.enabled():
        body = json.dumps({i: [vars(f) for f in fs] for i, fs in figures.items()}).encode()
        cache._write(_entry(wanted).name, hashlib.sha256(body).hexdigest().encode() + body)


def cached_concept_figures(ids: Iterable[str] | None = None) -> dict[str, list[Figure]]:
    """``concept_figures(ids)`` (all of them when ``ids`` is None), from the disk cache when the code that
    draws them has not changed; a hit imports neither NumPy's arithmetic nor the oracle."""
    return cached_concept_figures_ahead(ids)()


def cached_concept_figures_ahead(
    ids: Iterable[str] | None = None, jobs: int = 1
) -> Callable[[], dict[str, list[Figure]]]:
    """The function that gives ``cached_concept_figures(ids)``: at once when they are kept on disk, else
    when ``concept_figures_ahead(ids, jobs)`` has computed them (in ``jobs`` forked processes), and keeps
    them. Call it before this process starts any thread."""
    wanted = None if ids is None else list(ids)
    kept = kept_concept_figures(wanted)
    if kept is not None:
        return lambda: kept
    from .concepts import concept_figures_ahead

    waiting = concept_figures_ahead(wanted, jobs)

    def result() -> dict[str, list[Figure]]:
        figures = waiting()
        _keep(wanted, figures)
        return figures

    return result
