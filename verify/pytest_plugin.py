"""pytest plugin (registered as ``lmspec`` under the ``pytest11`` entry point): assert conformance in your
own test suite.

    def test_my_attention(lmspec_audit):
        lmspec_audit("mypkg.attn:attention", "attention.scaled_dot_product",
                     layout="q=b h n d_k, k=b h n d_k, v=b h n d_v, mask=b h n n -> b h n d_v",
                     mask="bool_keep")

The fixture runs ``verify.audit.audit`` with the same arguments and fails the test with the audit's
findings (every failed check, its counterexample — rounded, large tensors as their shape and range — the
variants it matches instead, and the ``lmspec audit`` command that reproduces it; lmspec's own frames are
hidden from the traceback) unless the verdict is ``pass``, or ``variant`` with a matched variant listed in
``accept=``. It returns the report.
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


#: Arrays with more entries than this print as their shape and range, not their values.
SHORT_ENTRIES = 12


def _short(value) -> str:
    """A counterexample's array for a message: rounded values when it is small, else its shape and range."""
    import numpy as np

    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):  # already a description ("array of shape [8, 16]")
        return str(value)
    if arr.size <= SHORT_ENTRIES:
        return repr(np.round(arr, 4).tolist())
    finite = arr[np.isfinite(arr)]
    span = f", values {finite.min():.4g} … {finite.max():.4g}" if finite.size else ""
    return f"shape {tuple(arr.shape)}{span}"


def _counterexample(cx: dict) -> str:
    arrays = ", ".join(f"{k} {_short(v)}" for k, v in (cx.get("arrays") or {}).items())
    return f"sizes {cx.get('sizes')}, batch {cx.get('batch')}" + (f"; {arrays}" if arrays else "")


#: The audit options and the command-line flags that say them.
_FLAGS = {"layout": "--layout", "mask": "--mask", "labels": "--labels", "ignore_index": "--ignore-index",
          "pool": "--pool", "dtype": "--dtype", "device": "--device"}  # fmt: skip
_PAIRS = {
    "init": "--init",
    "params": "--param",
    "constants": "--constant",
    "sizes": "--size",
    "derive": "--derive",
}


def reproduce(target, as_: str | None, report: "AuditReport", options: dict) -> str:
    """The ``lmspec audit`` command that reproduces the report: the target (a ``module:name`` where it was
    given as an object that has one), the equation, the binding (the inferred one where lmspec inferred it),
    profile and seed."""
    import shlex

    if not isinstance(target, str):
        module, name = getattr(target, "__module__", None), getattr(target, "__qualname__", None)
        target = f"{module}:{name}" if module and name and module != "__main__" else report.target
    words = ["lmspec", "audit", target, "--as", report.equation]
    if report.inferred:
        words += report.inferred["options"]
    else:
        for key, flag in _FLAGS.items():
            if options.get(key) is not None:
                words += [flag, str(options[key])]
        for key, flag in _PAIRS.items():
            for k, v in (options.get(key) or {}).items():
                words += [flag, f"{k}={v}"]
        if options.get("absent"):
            words += ["--absent", ",".join(options["absent"])]
        if options.get("logits"):
            words.append("--logits")
    words += ["--profile", report.profile, "--seed", str(report.seed)]
    return shlex.join(words)


def describe(report: "AuditReport", repro: str = "") -> str:
    """The audit's findings as plain text, for an assertion message: failed checks with short
    counterexamples (rounded values, or the shape of a large tensor), the variants tried, the command that
    reproduces it."""
    lines = [f"{report.target} as {report.equation}: {report.verdict}", report.summary]
    for c in report.checks:
        if c.status == "fail":
            lines.append(f"  FAIL {c.name}: {c.message}")
            if c.counterexample:
                lines.append(f"    counterexample: {_counterexample(c.counterexample)}")
    for v in report.variants:
        lines.append(f"  variant {v.name}: {'matches' if v.matched else 'no'}")
    if repro:
        lines.append(f"  reproduce: {repro}")
    return "\n".join(lines)


@pytest.fixture
def lmspec_audit(request):
    """A function ``(target, as_=None, *, accept=(), **audit_options) -> AuditReport`` that fails the test
    when the target does not compute the equation."""
    from .audit.auditor import audit

    profile = request.config.getoption("--lmspec-profile")
    seed = request.config.getoption("--lmspec-seed")

    def check(target, as_=None, *, accept=(), **options) -> "AuditReport":
        __tracebackhide__ = True  # the failure points at the test, not at lmspec's frames
        options.setdefault("profile", profile)
        options.setdefault("seed", seed)
        report = audit(target, as_, **options)
        if report.verdict == "pass":
            return report
        if report.verdict == "variant" and set(report.matched) & set(accept):
            return report
        raise AssertionError(describe(report, reproduce(target, as_, report, options)))

    return check
