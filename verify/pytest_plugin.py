"""pytest plugin (registered as ``lmspec`` under the ``pytest11`` entry point): assert conformance in your
own test suite.

    def test_my_attention(lmspec_audit):
        lmspec_audit("mypkg.attn:attention", "attention.scaled_dot_product",
                     layout="q=b h n d_k, k=b h n d_k, v=b h n d_v, mask=b h n n -> b h n d_v",
                     mask="bool_keep")

The fixture runs ``verify.audit.audit`` with the same arguments and fails the test with the audit's
findings (every failed check, its counterexample and the variants it matches instead) unless the verdict
is ``pass``, or ``variant`` with a matched variant listed in ``accept=``. It returns the report.
``--lmspec-profile`` (quick, default, thorough) and ``--lmspec-seed`` set the search effort and seed.

Loading the plugin costs nothing: pytest loads it in every run of an environment where lmspec is installed,
so it imports only pytest, and the fixture imports the audit (torch, SymPy, Hypothesis) when a test uses it.
"""

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from .audit.report import AuditReport


def pytest_addoption(parser) -> None:
    group = parser.getgroup("lmspec", "lmspec conformance audits")
    group.addoption("--lmspec-profile", default="default", help="Audit profile: quick, default or thorough.")
    group.addoption("--lmspec-seed", type=int, default=0, help="Hypothesis seed of the audits.")


def describe(report: "AuditReport") -> str:
    """The audit's findings as plain text, for an assertion message."""
    lines = [f"{report.target} as {report.equation}: {report.verdict}", report.summary]
    for c in report.checks:
        if c.status == "fail":
            lines.append(f"  FAIL {c.name}: {c.message}")
            if c.counterexample:
                lines.append(f"    counterexample: {c.counterexample}")
    for v in report.variants:
        lines.append(f"  variant {v.name}: {'matches' if v.matched else 'no'}")
    return "\n".join(lines)


@pytest.fixture
def lmspec_audit(request):
    """A function ``(target, as_=None, *, accept=(), **audit_options) -> AuditReport`` that fails the test
    when the target does not compute the equation."""
    from .audit.auditor import audit

    profile = request.config.getoption("--lmspec-profile")
    seed = request.config.getoption("--lmspec-seed")

    def check(target, as_=None, *, accept=(), **options) -> "AuditReport":
        options.setdefault("profile", profile)
        options.setdefault("seed", seed)
        report = audit(target, as_, **options)
        if report.verdict == "pass":
            return report
        if report.verdict == "variant" and set(report.matched) & set(accept):
            return report
        raise AssertionError(describe(report))

    return check
