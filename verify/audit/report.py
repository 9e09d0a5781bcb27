"""What an audit says: the verdict, every check with its errors against the tolerance, the variants tried,
and for failures the shrunk counterexample and heat maps. Rendered as JSON (byte-identical for a seed),
JUnit XML and (audit.html) a self-contained HTML page.

Importing this module is light (no NumPy, torch or SymPy): the pytest plugin names AuditReport when it
loads.
"""

import importlib
import json
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

#: The verdicts, from best to worst.
VERDICTS = ("pass", "variant", "fail", "error")


@dataclass
class AuditCheck:
    """One check of the target: shape, value (against the oracle / generated code), a property, gradient."""

    name: str  # "shape", "value=oracle", "value=generated", "property:causal", "gradient"
    status: str  # "pass", "fail" or "skip"
    message: str = ""  # why it failed or was skipped
    examples: int = 0
    max_abs: float | None = None
    max_rel: float | None = None
    atol: float | None = None
    rtol: float | None = None
    counterexample: dict = field(default_factory=dict)  # sizes, batch, arrays (shrunk)
    seconds: float = 0.0

    def as_json(self) -> dict:
        out = asdict(self)
        out.pop("seconds")
        return out


@dataclass
class VariantTrial:
    """One alternative the audit tried after the base equation's value check failed."""

    name: str  # a variant name ("eps", "fill_1e4") or a convention ("mask polarity inverted")
    kind: str  # "variant", "equation" (a sibling: pre- vs post-LN) or "convention"
    description: str
    matched: bool
    constants: dict = field(default_factory=dict)  # values it was tried with, e.g. {"eps": 1e-5}
    message: str = ""  # why it did not match (the first mismatch) or could not be tried
    max_abs: float | None = None


@dataclass
class Heatmap:
    """A 2-D slice of a failing example: what the target computed and what the spec computes."""

    title: str  # e.g. "attention weights softmax(QKᵀ/√d_k + S), batch [0]" or "output P"
    check: str
    target: "np.ndarray"
    spec: "np.ndarray"
    row_label: str = ""
    col_label: str = ""

    def as_json(self) -> dict:
        import numpy as np

        return {
            "title": self.title,
            "check": self.check,
            "target": np.asarray(self.target).tolist(),
            "spec": np.asarray(self.spec).tolist(),
            "row_label": self.row_label,
            "col_label": self.col_label,
        }


@dataclass
class AuditReport:
    target: str  # what was audited, as the user named it
    equation: str  # the equation id it was held to
    verdict: str  # one of VERDICTS
    summary: str  # one sentence for people
    checks: list[AuditCheck]
    variants: list[VariantTrial] = field(default_factory=list)
    heatmaps: list[Heatmap] = field(default_factory=list)
    device: str = "cpu"
    dtype: str = "float64"
    profile: str = "default"
    seed: int = 0
    seconds: float = 0.0
    #: how the target was held to the spec, where that is not the plain case (eval mode, a fixed or per-key
    #: mask, spec parameters no module parameter takes): what a reader needs to trust the verdict
    notes: list[str] = field(default_factory=list)
    #: the binding lmspec inferred (audit.infer: the options that pin it, and why), None where it was given
    inferred: dict | None = None
    #: a failing composite's parts, each audited alone against the equation it calls (audit.parts)
    parts: list[dict] = field(default_factory=list)

    @property
    def matched(self) -> list[str]:
        """The variants and conventions the target matches where the base equation failed."""
        return [v.name for v in self.variants if v.matched]

    @property
    def failures(self) -> list[AuditCheck]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def __repr__(self) -> str:
        """One line, as a notebook or a debugger shows it (the full report: ``print(report.summary)``,
        ``to_json``, or the HTML a notebook displays)."""
        failed = ", ".join(c.name for c in self.failures)
        return (
            f"<AuditReport {self.target} as {self.equation}: {self.verdict}"
            + (f", matches {', '.join(self.matched)}" if self.matched else "")
            + (f", failed {failed}" if failed else "")
            + ">"
        )

    def _repr_html_(self) -> str:
        """The report in a notebook: its summary, checks, variants tried and heat maps, as audit.html
        draws them (it registers itself here when the audit package is imported)."""
        if not _HTML:  # the drawing is loaded on demand (it imports this module, not the other way)
            importlib.import_module(f"{__package__}.html")
        return _HTML[0](self) if _HTML else f"<pre>{escape(self.summary)}</pre>"

    def as_json(self) -> dict:
        return {
            "target": self.target,
            "equation": self.equation,
            "verdict": self.verdict,
            "summary": self.summary,
            "matched": self.matched,
            "device": self.device,
            "dtype": self.dtype,
            "profile": self.profile,
            "seed": self.seed,
            "notes": list(self.notes),
            "inferred": self.inferred,
            "parts": list(self.parts),
            "checks": [c.as_json() for c in self.checks],
            "variants": [asdict(v) for v in self.variants],
            "heatmaps": [h.as_json() for h in self.heatmaps],
        }


#: The HTML renderer of one report (audit.html.fragment), registered by audit.html: the data does not import
#: its drawing, which imports it.
_HTML: list = []


def to_json(reports: list[AuditReport]) -> str:
    """JSON for machines; wall times are left out, so the same seed gives the same bytes."""
    from ..report import _plain, versions

    doc = {"tool": "lmspec audit", "versions": versions(), "reports": [r.as_json() for r in reports]}
    return json.dumps(_plain(doc), indent=2, sort_keys=True, allow_nan=False) + "\n"


def to_junit(reports: list[AuditReport]) -> str:
    """JUnit XML: one test suite per audited target, one test case per check; skips are <skipped/>."""
    from ..report import _plain, version_properties

    suites = ET.Element("testsuites", name="lmspec audit")
    total = failed = errored = 0
    for r in reports:
        # a target that cannot be bound or built is an <error> (lmspec could not run it), never a <failure>
        errors = [c for c in r.checks if c.status == "fail" and r.verdict == "error"]
        failures = [c for c in r.failures if c not in errors]
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"{r.target} as {r.equation}",
            tests=str(len(r.checks)),
            failures=str(len(failures)),
            errors=str(len(errors)),
            skipped=str(sum(c.status == "skip" for c in r.checks)),
            time=f"{r.seconds:.3f}",
        )
        props = ET.SubElement(suite, "properties")
        for key in ("verdict", "device", "dtype", "profile", "seed"):
            ET.SubElement(props, "property", name=key, value=str(getattr(r, key)))
        ET.SubElement(props, "property", name="matched", value=", ".join(r.matched))
        version_properties(props)
        for c in r.checks:
            case = ET.SubElement(
                suite, "testcase", classname=r.equation, name=c.name, time=f"{c.seconds:.3f}"
            )
            if c in errors:
                ET.SubElement(case, "error", message=c.message, type=c.name)
            elif c.status == "fail":
                fail = ET.SubElement(case, "failure", message=c.message, type=c.name)
                fail.text = json.dumps(_plain(c.counterexample), indent=1, allow_nan=False)
            elif c.status == "skip":
                ET.SubElement(case, "skipped", message=c.message)
        total += len(r.checks)
        failed += len(failures)
        errored += len(errors)
    suites.set("tests", str(total))
    suites.set("failures", str(failed))
    suites.set("errors", str(errored))
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
