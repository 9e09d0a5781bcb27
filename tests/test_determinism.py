"""A verdict of the suite depends on the code only: not on the order tests run in, the xdist worker, the load
of the machine, or which tests ran before (issue 14). tests/conftest.py fixes each source of randomness a
test meets; these tests hold it to that."""

import sys
import zlib

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.internal.conjecture import providers


def test_hypothesis_is_derandomized_without_database_deadline_or_slowness_check():
    for s in (settings.default, settings(max_examples=3)):  # a test's own @settings keeps the rest
        assert s.derandomize and s.database is None and s.deadline is None and s.print_blob
        assert HealthCheck.too_slow in s.suppress_health_check  # the one health check that reads a clock


def _draws() -> list:
    seen = []

    @settings(max_examples=100)
    @given(st.data())
    def run(data):
        seen.append((data.draw(st.integers()), data.draw(st.floats(allow_nan=False))))

    run()
    return seen


def test_a_given_draws_the_same_examples_whatever_was_imported_before(tmp_path):
    """Hypothesis mixes into its draws the constants of every local module in sys.modules; within a test
    they are those of no module (conftest), so an import by an earlier test changes nothing."""
    before = _draws()
    path = tmp_path / "constants_imported_earlier.py"  # not *_test.py: Hypothesis skips test files
    path.write_text("A = (524287, -786431, 99991, 0.4375, -271.828125)\n")
    sys.path.insert(0, str(tmp_path))
    try:
        __import__("constants_imported_earlier")
        assert len(providers._get_local_constants()) == 0
        assert _draws() == before
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("constants_imported_earlier", None)
    assert len(set(before)) > 10  # derandomized, not constant


def test_torch_draws_depend_on_the_test_only(request):
    """torch's global generator is seeded from the test's id before the test: the weights of a module a test
    builds are the same whatever ran before it, on whichever worker."""
    seed = zlib.crc32(request.node.nodeid.encode())
    assert torch.initial_seed() == seed
    assert torch.equal(torch.randn(5), torch.randn(5, generator=torch.Generator().manual_seed(seed)))
