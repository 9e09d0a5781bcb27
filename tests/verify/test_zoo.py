"""The zoo (tests/zoo): implementations written the way other people write them, audited against the spec.

Each case declares how to audit it and what the audit must conclude: the verdict, the named variants or
conventions it matches (exactly), and for a bug the checks that must catch it. The correct ones must pass
with no failed check. Quick profile, seed 0.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

from lmspec.verify.audit import audit


def _load_zoo():
    """tests/zoo as the package ``zoo`` (tests/ itself is not importable: its spec/, impl/ and verify/
    folders would shadow the real packages)."""
    if "zoo" in sys.modules:
        return sys.modules["zoo"]
    where = Path(__file__).resolve().parents[1] / "zoo"
    found = importlib.util.spec_from_file_location(
        "zoo", where / "__init__.py", submodule_search_locations=[str(where)]
    )
    module = importlib.util.module_from_spec(found)
    sys.modules["zoo"] = module
    found.loader.exec_module(module)
    return module


zoo = _load_zoo()
BUG_CLASSES = zoo.BUG_CLASSES
CASES = zoo.all_cases()


def _describe(report) -> str:
    lines = [f"verdict {report.verdict}, matched {report.matched}: {report.summary}"]
    lines += [f"  inferred: {report.inferred['options']}"] if report.inferred else []
    lines += [f"  {c.name}: {c.status} {c.message}" for c in report.checks]
    lines += [f"  tried {v.name} ({v.kind}): {'match' if v.matched else v.message}" for v in report.variants]
    return "\n".join(lines)


def test_the_zoo_is_large_and_covers_every_bug_class():
    assert len(CASES) >= 25
    assert sum(c.correct for c in CASES) >= 8
    covered = {tag for c in CASES for tag in c.tags}
    assert covered == set(BUG_CLASSES), f"bug classes without a case: {sorted(set(BUG_CLASSES) - covered)}"
    for c in CASES:
        if not c.correct:
            assert c.bug and c.tags and c.caught_by, (
                f"{c.name}: a bug names itself, its classes, its catchers"
            )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_zoo_case(case):
    report = audit(case.target, profile="quick", seed=0, **case.audit_kwargs())
    described = _describe(report)
    assert (report.inferred is not None) == case.inferred, f"{case.name}: binding inferred {report.inferred}"
    assert report.verdict == case.verdict, f"{case.name}: expected {case.verdict}\n{described}"
    assert set(report.matched) == set(case.matched), f"{case.name}: expected {case.matched}\n{described}"
    if case.parts is not None:  # a failing composite is traced to its part
        got = {p["path"]: " ".join([p["verdict"], *p["matched"]]) for p in report.parts}
        assert got == dict(case.parts), f"{case.name}: parts {got}\n{described}"
    failed = {c.name for c in report.failures}
    if case.correct:
        assert not failed, f"{case.name}\n{described}"
    else:
        missing = set(case.caught_by) - failed
        assert not missing, f"{case.name}: {sorted(missing)} did not fail\n{described}"


def test_inference_binds_most_of_the_zoo_with_no_layout():
    """Issue 15's measure: of the zoo's plain functions and module classes, the share audited with no
    --layout, --param, --init, --mask or pins (each with the verdict its case states: test_zoo_case above),
    and why the others are not. docs/audit.md quotes these counts."""
    targets = [c for c in CASES if c.inferable]
    inferred = [c for c in targets if c.inferred]
    functions = [c for c in targets if not isinstance(c.target, type)]
    assert (len(inferred), len(targets)) == (108, 112)
    assert (sum(c.inferred for c in functions), len(functions)) == (43, 47)
    assert len(inferred) / len(targets) >= 0.8, [c.name for c in targets if not c.inferred]
    assert all(c.not_inferred for c in targets if not c.inferred)
