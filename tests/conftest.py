import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hseed
from hypothesis import strategies as st

from lmspec import impl
from lmspec.verify._errors import Mismatch
from lmspec.verify.runner import examples_from_strategies_only

# The disk cache of compiled oracles (verify/cache.py) for this checkout's test runs, shared by the xdist
# workers and the subprocesses tests start, kept between runs (its keys hold the code and the equations'
# content).
os.environ.setdefault("LMSPEC_CACHE_DIR", str(Path(__file__).resolve().parents[1] / "build" / "test-cache"))


@pytest.fixture(autouse=True)
def _runtime_checks_on():
    """impl/ is checked by jaxtyping + beartype in every test."""
    with impl.runtime_checks(True):
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(20240107)


@pytest.fixture
def caught():
    """``caught(check)``: the mismatch a check raises on one of ``examples`` generated examples, or None.
    No shrinking: a wrong implementation's failure is expected, only that it is found (the runner's
    shrinking is tested in tests/verify)."""

    def first(check, examples: int = 12, seed: int = 0) -> Mismatch | None:
        found: list[Mismatch] = []

        @settings(
            max_examples=examples,
            phases=(Phase.explicit, Phase.generate),
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @hseed(seed)
        @given(st.data())
        def run(data) -> None:
            try:
                check.run(data, {})
            except Mismatch as exc:  # anything else (a crash) fails the test
                found.append(exc)

        with examples_from_strategies_only():  # as the runner draws them, whatever else is imported
            run()
        return found[0] if found else None

    return first
