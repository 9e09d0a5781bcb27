import os
import xml.etree.ElementTree as ET
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


# --- JUnit XML against the junit-10 schema ------------------------------------------------------------------
# A structural check of JUnit XML against the junit-10 schema (Jenkins' ``junit-10.xsd``, the one pytest's
# own tests validate against): which elements may appear where, and with which attributes. Written from the
# schema's documented structure; it checks what a consumer (Jenkins, GitLab, pytest's tests) relies on.

#: element -> (allowed attributes, required attributes, allowed children)
SCHEMA = {
    "testsuites": ({"name", "time", "tests", "failures", "disabled", "errors"}, set(), {"testsuite"}),
    "testsuite": (
        {"name", "tests", "failures", "errors", "time", "disabled", "skipped", "timestamp", "hostname", "id",
         "package", "file", "log", "url", "version"},
        {"name", "tests"},
        {"properties", "testcase", "system-out", "system-err"},
    ),
    "properties": (set(), set(), {"property"}),
    "property": ({"name", "value"}, {"name", "value"}, set()),
    "testcase": (
        {"name", "assertions", "time", "classname", "status", "file", "line", "log", "group", "url"},
        {"name"},
        {"skipped", "error", "failure", "system-out", "system-err"},
    ),
    "skipped": ({"message"}, set(), set()),
    "error": ({"message", "type"}, set(), set()),
    "failure": ({"message", "type"}, set(), set()),
    "system-out": (set(), set(), set()),
    "system-err": (set(), set(), set()),
}  # fmt: skip
#: attributes whose values are counts
COUNTS = {"tests", "failures", "errors", "skipped", "disabled"}


def junit10_problems(xml: str) -> list[str]:
    """What in ``xml`` the junit-10 schema does not allow (empty: it conforms), and counts that disagree
    with the test cases they count."""
    root = ET.fromstring(xml)
    found: list[str] = []

    def walk(el: ET.Element, parent: str | None) -> None:
        if el.tag not in SCHEMA:
            found.append(f"<{el.tag}> is no junit-10 element")
            return
        allowed, required, children = SCHEMA[el.tag]
        found.extend(f"<{el.tag}> has attribute {a!r}" for a in set(el.attrib) - allowed)
        found.extend(f"<{el.tag}> lacks attribute {a!r}" for a in required - set(el.attrib))
        found.extend(
            f"<{el.tag}> {a}={el.attrib[a]!r} is not a count" for a in COUNTS & set(el.attrib)
            if not el.attrib[a].isdigit()
        )  # fmt: skip
        for child in el:
            if child.tag not in children:
                found.append(f"<{child.tag}> inside <{el.tag}>")
            walk(child, el.tag)

    if root.tag not in ("testsuites", "testsuite"):
        return [f"the root is <{root.tag}>"]
    walk(root, None)
    for suite in root.iter("testsuite"):
        cases = suite.findall("testcase")
        for attr, tag in (("failures", "failure"), ("errors", "error"), ("skipped", "skipped")):
            counted = sum(len(c.findall(tag)) for c in cases)
            if attr in suite.attrib and int(suite.attrib[attr]) != counted:
                name, said = suite.get("name"), suite.attrib[attr]
                found.append(f"testsuite {name!r}: {attr}={said}, {counted} <{tag}>")
    return found


@pytest.fixture
def junit10():
    """What in a JUnit XML text the junit-10 schema does not allow (empty: it conforms)."""
    return junit10_problems
