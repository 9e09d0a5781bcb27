"""Reports for machines: JSON (deterministic for a seed) and JUnit XML."""

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from .runner import CheckResult


def summary(results: Sequence[CheckResult]) -> dict:
    failed = [r for r in results if not r.passed]
    return {"checks": len(results), "passed": len(results) - len(failed), "failed": len(failed)}


def _plain(obj: object) -> object:
    """Valid JSON: non-finite floats become the strings "inf", "-inf" and "nan"."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def versions() -> dict[str, str]:
    """What produced a report: lmspec's, torch's and Python's versions (every JSON and JUnit report
    carries them, so that a result can be reproduced and two reports compared)."""
    import platform

    import torch

    from .._version import __version__

    return {"lmspec": __version__, "torch": torch.__version__, "python": platform.python_version()}


def version_properties(props: ET.Element) -> None:
    """The versions as JUnit ``<property>`` elements of a test suite."""
    for key, value in versions().items():
        ET.SubElement(props, "property", name=f"{key}_version", value=value)


def to_json(
    results: Sequence[CheckResult],
    *,
    profile: str,
    seeds: Sequence[int],
    selection: Sequence[str],
    shard: tuple[int, int] | None = None,
) -> str:
    """The JSON report. Wall times are left out, so that the same seeds give the same bytes (whatever the
    number of jobs). ``seed`` is the first seed, ``shard`` ``[i, n]`` or null."""
    doc = {
        "tool": "lmspec",
        "versions": versions(),
        "profile": profile,
        "seed": seeds[0],
        "seeds": list(seeds),
        "shard": list(shard) if shard else None,
        "selection": list(selection),
        "summary": summary(results),
        "results": [r.as_json() for r in results],
    }
    return json.dumps(_plain(doc), indent=2, sort_keys=True, allow_nan=False) + "\n"


def _unbound(r: CheckResult) -> bool:
    """A check that could not run: the implementation could not be bound to the equation."""
    return not r.passed and r.message.startswith("cannot bind the implementation")


def to_junit(results: Sequence[CheckResult], *, profile: str, seeds: Sequence[int]) -> str:
    """JUnit XML: one test suite per family, one test case per (equation, check), per seed when several."""
    suites = ET.Element(
        "testsuites",
        name="lmspec verify",
        tests=str(len(results)),
        failures=str(sum(not r.passed and not _unbound(r) for r in results)),
        errors=str(sum(_unbound(r) for r in results)),
    )
    by_family: dict[str, list[CheckResult]] = {}
    for r in results:
        by_family.setdefault(r.equation.split(".", 1)[0], []).append(r)
    for family, rs in by_family.items():
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=family,
            tests=str(len(rs)),
            failures=str(sum(not r.passed and not _unbound(r) for r in rs)),
            errors=str(sum(_unbound(r) for r in rs)),
            time=f"{sum(r.seconds for r in rs):.3f}",
        )
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="profile", value=profile)
        ET.SubElement(props, "property", name="seeds", value=" ".join(map(str, seeds)))
        version_properties(props)
        for r in rs:
            name = r.check if len(seeds) == 1 else f"{r.check} [seed {r.seed}]"
            case = ET.SubElement(suite, "testcase", classname=r.equation, name=name, time=f"{r.seconds:.3f}")
            if _unbound(r):  # lmspec could not run the check: an <error>, not a verdict on the code
                ET.SubElement(case, "error", message=r.message, type=r.check)
            elif not r.passed:
                fail = ET.SubElement(case, "failure", message=r.message, type=r.check)
                fail.text = json.dumps(_plain(r.counterexample), indent=1, allow_nan=False)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
