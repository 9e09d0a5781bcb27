"""Print the oracle's compile time and per-example evaluation time as sizes grow.

Run: .venv/bin/python benchmarks/oracle_timing.py
"""

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import spec
from verify.oracle import Oracle, _compile
from verify.strategies import examples, size_tuples

CASES = ["attention.softmax_rows", "attention.scaled_dot_product", "attention.multi_head", "attention.cross"]


def draw_example(eq, sizes):
    box = {}

    @settings(max_examples=1, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def one(data):
        box["ex"] = data.draw(examples(eq, sizes, batch=()))

    one()
    return box["ex"]


def main() -> None:
    print(
        f"{'equation':30s} {'sizes':48s} {'compile':>9s} {'lines':>6s} {'float64/ex':>11s} {'mpmath/ex':>10s}"
    )
    for eq_id in CASES:
        eq = spec.get(eq_id)
        for sizes in size_tuples(eq, 3, 0, "small"):
            _compile.cache_clear()
            oracle = Oracle(eq)
            compiled = oracle.compiled(sizes)
            oracle.compiled(sizes, "mpmath")
            ex = draw_example(eq, sizes)
            reps = 20
            start = time.perf_counter()
            for _ in range(reps):
                oracle(ex.arrays, sizes)
            per64 = (time.perf_counter() - start) / reps
            start = time.perf_counter()
            oracle(ex.arrays, sizes, precision="mpmath")
            permp = time.perf_counter() - start
            print(
                f"{eq_id:30s} {sizes!s:48s} {compiled.compile_seconds * 1e3:7.0f}ms "
                f"{len(compiled.program.assignments):6d} {per64 * 1e3:9.2f}ms {permp * 1e3:8.1f}ms"
            )


if __name__ == "__main__":
    main()
