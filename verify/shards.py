"""Reading ``--shard i/n``: light (no torch, no SymPy), so that the command line answers a bad one at once and
verify.parallel plans with the same reading."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` with 1 ≤ i ≤ n, as ``(i, n)``; a ValueError says what was expected."""
    left, sep, right = text.partition("/")
    try:
        i, n = int(left), int(right)
    except ValueError:
        i = n = 0
    if not sep or n < 1 or not 1 <= i <= n:
        raise ValueError(f"--shard takes i/n with 1 ≤ i ≤ n (e.g. 2/4), found {text!r}")
    return i, n
