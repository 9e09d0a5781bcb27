"""The oracle's compile time and per-example evaluation time as sizes grow: part 5 of ``lmspec bench``.

A thin caller of ``verify.bench.oracle`` (the same as ``lmspec bench --only oracle``), kept for its name.
Run: .venv/bin/python benchmarks/oracle_timing.py [--size small|gpt2-small] [--repeat K]
"""

import argparse

from rich.console import Console

from lmspec.verify.bench.measures import SIZES, oracle
from lmspec.verify.cli.bench import oracle_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(SIZES), default="gpt2-small")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    console = Console()
    data = oracle(SIZES[args.size], args.repeat, note=lambda text: console.print(text, style="dim"))
    console.print(oracle_table(data))


if __name__ == "__main__":
    main()
