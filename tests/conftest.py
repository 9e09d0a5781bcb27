import os
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
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

# --- a verdict is a function of the code, never of order, load or the machine ----------------------------
# The suite runs in random order (pytest-randomly; README, "The two commands"), spread over xdist workers,
# on a machine that may be busy. So every source of randomness a test meets is fixed by the test itself:
# - Hypothesis: every @given (a test's own, or one inside a helper) is derandomized: its examples come from
#   a seed that is the digest of the function's source, not from a fresh random seed per run; no example
#   database carries failures from one run into the next; no deadline and no "too slow" health check, the
#   two verdicts that depend on the machine's load. lmspec's runner seeds its checks itself (@seed(seed)).
#   A failure prints its reproduce_failure blob. A @settings(...) on a test inherits everything it does not
#   set from this profile.
# - Hypothesis also mixes into its draws constants it collects from every local module in sys.modules, so
#   a test's examples would depend on which tests ran (and imported what) before it in that worker: each
#   test runs with the draws lmspec's runner uses, from the strategies and Hypothesis's global constants
#   only (``_strategies_only``).
# - torch's global generator (the weights of every nn.Module a test builds) is seeded before each test
#   from the test's id, so the same test gets the same weights in any order, on any worker.
# - random and numpy's global generators: pytest-randomly seeds them before each test from its run seed
#   and the test's id (the same on every xdist worker); no test draws from them.
settings.register_profile(
    "lmspec",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("lmspec")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "hypothesis_local_constants: run with Hypothesis's own local constants (tests of the runner's swap)",
    )


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    """The seed of the random order, at the end where a failure is read (``-q`` hides the header)."""
    if config.pluginmanager.hasplugin("randomly"):
        seed = config.getoption("randomly_seed")
        terminalreporter.write_line(f"random order: rerun it with pytest -p randomly --randomly-seed={seed}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """torch's global generator from the test's id, before its fixtures run (a module-scoped fixture gets
    the stream of the first test that asks for it: one that builds a module seeds itself)."""
    torch.manual_seed(zlib.crc32(item.nodeid.encode()))


@pytest.fixture(autouse=True)
def _strategies_only(request):
    """Hypothesis draws as lmspec's runner does, whatever modules earlier tests imported."""
    if request.node.get_closest_marker("hypothesis_local_constants"):
        yield
        return
    with examples_from_strategies_only():
        yield


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
