"""What the bench measures and at which sizes: the parts, the goals, the model sizes, its errors.

Nothing here imports torch: the command line reads these names to check its options before anything heavy
is loaded.
"""

from dataclasses import dataclass
from pathlib import Path

#: The parts, in the order they run (docs/bench.md says what each measures and how to read it).
PARTS = (
    "suite", "checking", "hf", "gflops", "oracle", "startup", "plugin", "audit", "verify", "render", "tests",
)  # fmt: skip
#: The figures the issues set as goals: runtime checking's overhead on the GPT-2-small forward and the
#: impl/HF time ratio, ≤ 1.0 with 0.9 the aim (issue 14, "Fast"), ``lmspec --help`` wall time and the pytest
#: plugin's overhead on an unrelated project (issue 12), and ``lmspec render`` of the whole document with its
#: figures against without them (issue 17).
GOALS = {
    "checking_overhead_pct": 2.0,
    "hf_ratio": 1.0,
    "hf_ratio_aim": 0.9,
    "help_s": 0.5,
    "plugin_overhead_pct": 5.0,
    "render_figures_ratio": 2.0,
}
#: The torch thread counts the ``hf`` part compares at, unless ``--threads`` says otherwise (issue 14).
HF_THREADS = (1, 2)


def checkout_root() -> Path | None:
    """The checkout lmspec runs from (the folder of its pyproject.toml, with tests/ beside it), or None for an
    installed package: part tests times that checkout's test suite."""
    root = Path(__file__).resolve().parents[2]  # verify/bench/ -> the checkout (or the installed package)
    return root if (root / "pyproject.toml").is_file() and (root / "tests").is_dir() else None


class BenchError(RuntimeError):
    """A measurement that cannot be taken: the figure would not mean what it says."""


class MismatchError(BenchError):
    """impl's output disagrees with transformers' on the same weights: timings would compare different
    computations."""


class CommandError(BenchError):
    """A command timed in a fresh process did not do what it is timed for (a crash, a wrong exit code, the
    plugin not loaded): its wall time is not the figure."""


@dataclass(frozen=True)
class Size:
    """The models' sizes: GPT-2 (and BERT at the same width, with its own vocabulary and positions)."""

    name: str
    v: int
    n_max: int
    d_e: int
    M: int
    L: int
    d_f: int
    n: int
    batch: int
    v_bert: int
    n_max_bert: int
    #: the side of the square matmuls of the GFLOP/s reference
    square: int
    #: the oracle's ladder: every axis set to s (M and L to at most 2), for each equation
    oracle_steps: tuple[int, ...]
    oracle_equations: tuple[str, ...]
    #: the sequence lengths the ``hf`` part compares at (each at most n_max and n_max_bert)
    hf_lengths: tuple[int, ...] = ()

    @property
    def d_k(self) -> int:
        return self.d_e // self.M


SIZES = {
    "gpt2-small": Size(
        "gpt2-small", v=50257, n_max=1024, d_e=768, M=12, L=12, d_f=3072, n=256, batch=1,
        v_bert=30522, n_max_bert=1024, square=1024, oracle_steps=(2, 4, 6),
        oracle_equations=("attention.softmax_rows", "attention.scaled_dot_product", "attention.multi_head",
                          "norm.layer_norm", "transformer.block_pre_ln"),
        hf_lengths=(256, 1024),
    ),
    "small": Size(
        "small", v=1000, n_max=64, d_e=64, M=4, L=2, d_f=256, n=32, batch=1, v_bert=500, n_max_bert=64,
        square=128, oracle_steps=(2, 3),
        oracle_equations=("attention.softmax_rows", "attention.scaled_dot_product"), hf_lengths=(16, 32),
    ),
}  # fmt: skip


def sizes_of(size: Size) -> dict:
    """The models' sizes of ``size`` as plain data (with d_k = d_v = d_e / M)."""
    keys = ("v", "n_max", "d_e", "M", "L", "d_f", "n", "batch", "v_bert", "n_max_bert")
    return {"name": size.name, **{key: getattr(size, key) for key in keys}, "d_k": size.d_k}
