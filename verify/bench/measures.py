"""``lmspec bench``, all of it: the selected parts run in order, with the machine's facts and the settings,
and the goals each report meets. Each part returns plain data (dicts, lists, numbers):

- ``suite``     the verifier suite's wall time per family, serial and in ``jobs`` processes, and its shards;
- ``checking``  the cost of runtime checking (jaxtyping + beartype) on impl's GPT-2 forward (readable, fast);
- ``hf``        impl's GPT-2 and BERT (the fast path) against transformers' with the same weights (outputs
                agree first), at 1 and 2 threads, n = 256 and 1024;
- ``gflops``    achieved GFLOP/s of impl's GPT-2 forward against square matmuls of the same FLOPs;
- ``oracle``    the oracle's compile and per-example time, float64 and mpmath, as sizes grow;
- ``startup``   ``lmspec --help``, ``lmspec verify --help`` and a usage error, each in fresh processes;
- ``plugin``    pytest on a one-test project with and without lmspec's pytest plugin;
- ``audit``     the README's attention audit and docs/audit.md's GPT-2-style stack, start-up included, as
                ratios to the import floor (``python -c "import torch, sympy, hypothesis"``);
- ``verify``    ``lmspec verify`` over the catalogue in fresh processes, serial, cold cache and warm;
- ``render``    ``lmspec render`` of the document with figures and without, warm and cold;
- ``tests``     the test suite as ``make test`` runs it, from a checkout.

docs/bench.md says what each measures and how to read it. Importing this module loads no torch: each part's
module is imported when the part runs.
"""

import importlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._parts import HF_THREADS
from ._parts import PARTS as PARTS
from ._parts import SIZES as SIZES
from ._parts import BenchError as BenchError
from ._parts import MismatchError as MismatchError
from ._timing import machine, no_note


def run(
    parts: Sequence[str] = PARTS,
    size: str = "gpt2-small",
    repeat: int = 5,
    jobs: int = 0,
    profile: str = "default",
    families: Sequence[str] | None = None,
    shards: int = 2,
    threads: int | Sequence[int] | None = None,
    note: Callable[[str], None] = no_note,
    lengths: Sequence[int] | None = None,
) -> dict:
    """The selected parts, in the order of PARTS, with the machine's facts and the settings.

    ``threads``: torch's threads — parts ``checking`` and ``gflops`` run at the first (torch's default when
    none is given), part ``hf`` at each (1 and 2 when none is given); ``lengths``: the sequence lengths of
    part ``hf`` (the size's ``hf_lengths`` when none is given)."""
    import torch

    from . import _audit, _gpt2, _hf, _oracle, _render, _startup, _suite, _whole

    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown part {unknown[0]!r}; choose from {', '.join(PARTS)}")
    chosen = SIZES[size]
    counts = [threads] if isinstance(threads, int) else list(threads or [])
    hf_threads = tuple(counts or HF_THREADS)
    hf_lengths = tuple(lengths or chosen.hf_lengths or (chosen.n,))
    measures: dict[str, Callable[[], dict]] = {
        "suite": lambda: _suite.suite(families, profile, jobs, shards, note),
        "checking": lambda: _gpt2.checking(chosen, repeat, note),
        "hf": lambda: _hf.hf(chosen, repeat, note, hf_threads, hf_lengths),
        "gflops": lambda: _gpt2.gflops(chosen, repeat, note),
        "oracle": lambda: _oracle.oracle(chosen, repeat, note),
        "startup": lambda: _startup.startup(repeat, note),
        "plugin": lambda: _startup.plugin(repeat, note),
        "audit": lambda: _audit.audit(repeat, note),
        "verify": lambda: _whole.verify(repeat, note, families, profile),
        "render": lambda: _render.render(repeat, note, families),
        "tests": lambda: _whole.tests(repeat, note),
    }
    before = torch.get_num_threads()
    if counts:
        torch.set_num_threads(counts[0])
    start = time.perf_counter()
    try:
        report: dict = {
            "machine": machine(),
            "settings": {"parts": [p for p in PARTS if p in parts], "size": size, "repeat": repeat,
                         "jobs": jobs, "profile": profile, "families": list(families or []),
                         "shards": shards, "threads": torch.get_num_threads(), "hf_threads": list(hf_threads),
                         "hf_lengths": list(hf_lengths)},
        }  # fmt: skip
        for part in PARTS:
            if part in parts:
                report[part] = measures[part]()
    finally:
        torch.set_num_threads(before)
    report["wall_s"] = time.perf_counter() - start
    return report


def _goal(goal: str, value: float, unit: str, target: float, aim: float | None = None) -> dict:
    out = {"goal": goal, "value": value, "unit": unit, "target": target, "met": value <= target}
    if aim is not None:  # a stricter figure the issue aims at beyond the target
        out |= {"aim": aim, "aim_met": value <= aim}
    return out


#: The models of part ``hf``: key in each run, transformers' class.
HF_MODELS = (("gpt2_model", "GPT2Model"), ("gpt2_lm_head", "GPT2LMHeadModel"), ("bert_model", "BertModel"))


def goals(report: Mapping) -> list[dict]:
    """Each goal of the issues that the report measured: its figure, the target and whether it is met."""
    out = []
    if "checking" in report:
        c = report["checking"]
        for d in (c, c.get("fast")):
            if d is None:
                continue
            what = f"runtime checking overhead, {d.get('function', 'impl.gpt2.forward')}"
            out.append(_goal(f"{what} (measured)", d["overhead_pct"], "%", c["goal_pct"]))
            out.append(_goal(f"{what} (estimated)", d["estimated_overhead_pct"], "%", c["goal_pct"]))
    if "hf" in report:
        for run in report["hf"]["runs"]:
            t, n = run["threads"], run["n"]
            for key, label in HF_MODELS:
                c = run[key]
                for field, how in (("ratio", "checks on"), ("ratio_unchecked", "checks off")):
                    what = f"impl / {label} time ({how}), {t} thread{'s' if t > 1 else ''}, n = {n}"
                    out.append(_goal(what, c[field], "×", c["goal_ratio"], c.get("aim_ratio")))
    if "startup" in report:
        s = report["startup"]
        out.append(_goal("lmspec --help wall time (median)", s["help_s"], "s", s["goal_s"]))
    if "plugin" in report:
        p = report["plugin"]
        out.append(_goal("pytest plugin overhead, one-test project", p["overhead_pct"], "%", p["goal_pct"]))
    if "audit" in report:
        a = report["audit"]
        for key, label in (("attention", "README's attention audit"),
                           ("gpt_stack", "2-layer GPT-2-style stack audit")):  # fmt: skip
            out.append(_goal(f"{label} / import floor (median)", a[key]["ratio"], "×", a[key]["goal_ratio"]))
    if "verify" in report and report["verify"]["goals_apply"]:
        v = report["verify"]
        for key, label in (("cold", "cold cache"), ("warm", "warm cache")):
            what = f"lmspec verify, whole catalogue, default profile, serial, {label} (median, s)"
            out.append(_goal(what, v[key]["median_s"], "s", v[f"goal_{key}_s"]))
    if "render" in report and report["render"]["goal_applies"]:
        r = report["render"]
        what = "lmspec render, whole document, with figures / without (warm cache, medians)"
        out.append(_goal(what, r["ratio_warm"], "×", r["goal_ratio"]))
    if "tests" in report:
        t = report["tests"]
        out.append(_goal("the test suite as make test runs it (median, s)", t["median_s"], "s", t["goal_s"]))
    return out


def __getattr__(name: str) -> Any:
    """The measuring functions this module held before it was split by concern (``oracle``, ``hf`` …), from
    the package face, which imports each on first use: ``from lmspec.verify.bench.measures import oracle``
    keeps working. New code imports them from ``lmspec.verify.bench``."""
    face = importlib.import_module(__package__)
    if name.startswith("__") or name not in face._LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(face, name)
