"""How the bench times: the machine's facts, interleaved repeated runs, median, min and max.

Timings are warm-up, then ``repeat`` runs timed with ``time.perf_counter``; the competitors of one
comparison run interleaved (A B, B A, A B …) so that a change in the machine's load falls on both.
"""

import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence


def no_note(_: str) -> None:
    """The default progress callback: say nothing."""


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """The facts a figure depends on: CPU, cores, load, library versions, torch's threads."""
    import torch

    try:
        import transformers

        tf_version = transformers.__version__
    except ImportError:  # the [hf] extra is missing: the hf part says so when it runs
        tf_version = None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cores": cores,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": tf_version,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
    }


def timing(seconds: Sequence[float]) -> dict:
    """Median, min and max of timed runs (seconds), and the runs themselves."""
    return {
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
        "runs_s": list(seconds),
    }


def measure(fns: Mapping[str, Callable[[], object]], repeat: int, warmup: int = 1) -> dict[str, dict]:
    """Time each function ``repeat`` times after ``warmup`` untimed calls, interleaved: the order is
    reversed every other round, so a drift in the machine's load falls on every competitor alike."""
    if repeat < 1:
        raise ValueError(f"measure: repeat must be at least 1, found {repeat}")
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    runs: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeat):
        for name in names if r % 2 == 0 else reversed(names):
            start = time.perf_counter()
            fns[name]()
            runs[name].append(time.perf_counter() - start)
    return {name: timing(runs[name]) for name in names}
