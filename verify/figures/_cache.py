"""The concept figures kept on disk, so that ``lmspec render`` draws them once, not at every run.

A concept figure is a pure function of lmspec's code (the spec's equations, the oracle, impl's GPT-2 with its
seeded weights, the drawing code), so the key is the SHA-256 of every module of spec/, impl/ and verify/
(``verify.cache.code_hash``) with the ids asked for, and the versions of torch and NumPy that computed the
numbers: any change to the code draws them again. The entries sit beside the oracle's
(``$LMSPEC_CACHE_DIR``, ``LMSPEC_NO_CACHE=1`` bypasses them), written atomically with a checksum. A hit
imports neither torch nor the oracle.
"""

import contextlib
import hashlib
import importlib.metadata
import json
from collections.abc import Iterable
from pathlib import Path

from .. import cache
from ._svg import Figure

FORMAT = "concepts-v1"


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def key(ids: Iterable[str]) -> str:
    """The entry's name: the code that draws the figures, the ids, and torch's and NumPy's versions."""
    package = Path(__file__).resolve().parents[2]  # verify/figures/ -> the lmspec package
    roots = tuple(package / part for part in ("spec", "impl", "verify") if (package / part).is_dir())
    text = "\0".join([FORMAT, cache.code_hash(roots), *sorted(ids), _version("torch"), _version("numpy")])
    return hashlib.sha256(text.encode()).hexdigest()


def cached_concept_figures(ids: Iterable[str] | None = None) -> dict[str, list[Figure]]:
    """``concept_figures(ids)`` (all of them when ``ids`` is None), from the disk cache when the code that
    draws them has not changed; a hit imports neither torch nor the oracle."""
    wanted = None if ids is None else list(ids)
    name = f"{FORMAT}-{key(['*'] if wanted is None else wanted)}.json"
    path = cache.cache_dir() / name
    if cache.enabled():
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            data = path.read_bytes()
            if data[:64].decode() == hashlib.sha256(data[64:]).hexdigest():
                stored = json.loads(data[64:])
                return {i: [Figure(**f) for f in stored[i]] for i in (stored if wanted is None else wanted)}
    from .concepts import concept_figures

    figures = concept_figures(wanted)
    if cache.enabled():
        body = json.dumps({i: [vars(f) for f in fs] for i, fs in figures.items()}).encode()
        cache._write(name, hashlib.sha256(body).hexdigest().encode() + body)
    return figures
