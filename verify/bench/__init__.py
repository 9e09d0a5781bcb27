"""``lmspec bench``: the speed and scale figures (docs/bench.md).

    from lmspec.verify import bench
    report = bench.run(["checking", "startup"], size="small", repeat=3)
    bench.goals(report)

The parts, sizes and goals, the errors and the timing helpers are light (no torch); the measuring functions
are imported on first use (PEP 562). The modules, by concern:

- ``_parts``    PARTS, GOALS, SIZES and the errors;
- ``_timing``   the machine's facts, interleaved repeated runs;
- ``_suite``    part ``suite``: the verifier suite, serial, parallel, sharded;
- ``_gpt2``     impl's GPT-2, its FLOP count, parts ``checking`` and ``gflops``;
- ``_hf``       part ``hf``: impl against transformers on the same weights;
- ``_oracle``   part ``oracle``: compile and evaluation times as sizes grow;
- ``_startup``  parts ``startup`` and ``plugin``: fresh processes, ``--help`` and pytest's plugin overhead;
- ``_audit``    part ``audit``: the documents' audits, start-up included, as ratios to the import floor;
- ``_whole``    parts ``verify`` and ``tests``: ``lmspec verify`` cold and warm, and the test suite, whole;
- ``_render``   part ``render``: ``lmspec render`` of the document with figures and without, warm and cold;
- ``measures``  ``run`` (the selected parts, in order) and ``goals``.
"""

import importlib
from typing import TYPE_CHECKING, Any

from ._parts import GOALS as GOALS
from ._parts import PARTS as PARTS
from ._parts import SIZES as SIZES
from ._parts import BenchError as BenchError
from ._parts import CommandError as CommandError
from ._parts import MismatchError as MismatchError
from ._parts import Size as Size
from ._parts import checkout_root as checkout_root
from ._timing import machine as machine
from ._timing import measure as measure
from ._timing import timing as timing

#: name -> the module (of this package) that defines it; imported on first access.
_LAZY = {
    "run": "measures",
    "goals": "measures",
    "suite": "_suite",
    "checking": "_gpt2",
    "gflops": "_gpt2",
    "gpt2_forward_flops": "_gpt2",
    "FLOP_FORMULA": "_gpt2",
    "hf": "_hf",
    "gpt2_from_hf": "_hf",
    "bert_from_hf": "_hf",
    "oracle": "_oracle",
    "oracle_sizes": "_oracle",
    "startup": "_startup",
    "plugin": "_startup",
    "audit": "_audit",
    "verify": "_whole",
    "tests": "_whole",
    "render": "_render",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from ._audit import audit as audit
    from ._gpt2 import FLOP_FORMULA as FLOP_FORMULA
    from ._gpt2 import checking as checking
    from ._gpt2 import gflops as gflops
    from ._gpt2 import gpt2_forward_flops as gpt2_forward_flops
    from ._hf import bert_from_hf as bert_from_hf
    from ._hf import gpt2_from_hf as gpt2_from_hf
    from ._hf import hf as hf
    from ._oracle import oracle as oracle
    from ._oracle import oracle_sizes as oracle_sizes
    from ._render import render as render
    from ._startup import plugin as plugin
    from ._startup import startup as startup
    from ._suite import suite as suite
    from ._whole import tests as tests
    from ._whole import verify as verify
    from .measures import goals as goals
    from .measures import run as run


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
