"""``lmspec bench``, all of it: the selected parts run in order, with the machine's facts and the settings,
and the goals each report meets. Each part returns plain data (dicts, lists, numbers):

- ``suite``     the verifier suite's wall time per family, serial and in ``jobs`` processes, and its shards;
- ``checking``  the cost of runtime checking (jaxtyping + beartype) on impl's GPT-2 forward;
- ``hf``        impl's GPT-2 and BERT against transformers' with the same weights (outputs agree first);
- ``gflops``    achieved GFLOP/s of impl's GPT-2 forward against square matmuls of the same FLOPs;
- ``oracle``    the oracle's compile and per-example time, float64 and mpmath, as sizes grow;
- ``startup``   ``lmspec --help``, ``lmspec verify --help`` and a usage error, each in fresh processes;
- ``plugin``    pytest on a one-test project with and without lmspec's pytest plugin.

docs/bench.md says what each measures and how to read it. Importing this module loads no torch: each part's
module is imported when the part runs.
"""

import importlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

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
    threads: int | None = None,
    note: Callable[[str], None] = no_note,
) -> dict:
    """The selected parts, in the order of PARTS, with the machine's facts and the settings."""
    import torch

    from . import _gpt2, _hf, _oracle, _startup, _suite

    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown part {unknown[0]!r}; choose from {', '.join(PARTS)}")
    chosen = SIZES[size]
    measures: dict[str, Callable[[], dict]] = {
        "suite": lambda: _suite.suite(families, profile, jobs, shards, note),
        "checking": lambda: _gpt2.checking(chosen, repeat, note),
        "hf": lambda: _hf.hf(chosen, repeat, note),
        "gflops": lambda: _gpt2.gflops(chosen, repeat, note),
        "oracle": lambda: _oracle.oracle(chosen, repeat, note),
        "startup": lambda: _startup.startup(repeat, note),
        "plugin": lambda: _startup.plugin(repeat, note),
    }
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        report: dict = {
            "machine": machine(),
            "settings": {"parts": [p for p in PARTS if p in parts], "size": size, "repeat": repeat,
                         "jobs": jobs, "profile": profile, "families": list(families or []),
                         "shards": shards, "threads": torch.get_num_threads()},
        }  # fmt: skip
        for part in PARTS:
            if part in parts:
                report[part] = measures[part]()
    finally:
        torch.set_num_threads(before)
    report["wall_s"] = time.perf_counter() - start
    return report


def _goal(goal: str, value: float, unit: str, target: float) -> dict:
    return {"goal": goal, "value": value, "unit": unit, "target": target, "met": value <= target}


def goals(report: Mapping) -> list[dict]:
    """Each goal of the issues that the report measured: its figure, the target and whether it is met."""
    out = []
    if "checking" in report:
        c = report["checking"]
        out.append(_goal("runtime checking overhead (measured)", c["overhead_pct"], "%", c["goal_pct"]))
        out.append(
            _goal("runtime checking overhead (estimated)", c["estimated_overhead_pct"], "%", c["goal_pct"])
        )
    if "hf" in report:
        for key, label in (("gpt2_model", "GPT2Model"), ("gpt2_lm_head", "GPT2LMHeadModel"),
                           ("bert_model", "BertModel")):  # fmt: skip
            c = report["hf"][key]
            for field, how in (("ratio", "checks on"), ("ratio_unchecked", "checks off")):
                out.append(_goal(f"impl / {label} time ({how})", c[field], "×", c["goal_ratio"]))
    if "startup" in report:
        s = report["startup"]
        out.append(_goal("lmspec --help wall time (median)", s["help_s"], "s", s["goal_s"]))
    if "plugin" in report:
        p = report["plugin"]
        out.append(_goal("pytest plugin overhead, one-test project", p["overhead_pct"], "%", p["goal_pct"]))
    return out


def __getattr__(name: str) -> Any:
    """The measuring functions this module held before it was split by concern (``oracle``, ``hf`` …), from
    the package face, which imports each on first use: ``from lmspec.verify.bench.measures import oracle``
    keeps working. New code imports them from ``lmspec.verify.bench``."""
    face = importlib.import_module(__package__)
    if name.startswith("__") or name not in face._LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(face, name)
