"""Part ``oracle``: the oracle's compile and per-example time, float64 and mpmath, as sizes grow."""

from collections.abc import Callable
from functools import partial

from ._parts import Size
from ._timing import measure, no_note


def oracle_sizes(eq, s: int) -> dict[str, int]:
    """Every free axis of ``eq`` set to ``s`` (M and L to at most 2), then its equalities."""
    from ..oracle import size_subs

    sizes = {a: min(s, 2) if a in ("M", "L") else s for a in eq.free_axes}
    for c in eq.equalities:
        sizes[c.lhs.name] = int(c.rhs.subs(size_subs(sizes)))
    if not all(bool(c.subs(size_subs(sizes))) for c in eq.inequalities):
        raise ValueError(f"{eq.id}: the sizes {sizes} break its constraints")
    return sizes


def _oracle(size: Size, repeat: int = 5, note: Callable[[str], None] = no_note) -> dict:
    """For each equation of ``size.oracle_equations`` and each step s of ``size.oracle_steps``: the oracle's
    compile time (expansion of ``_entry`` + Python compile, cache cleared first) and its evaluation time per
    example (median of ``repeat``), in float64 and with mpmath (50 digits)."""
    import numpy as np

    from ... import spec
    from ..oracle import Oracle, _compile, concrete_shape
    from ..strategies import seeded_tensor

    rows = []
    for eq_id in size.oracle_equations:
        eq = spec.get(eq_id)
        ora = Oracle(eq)
        for s in size.oracle_steps:
            note(f"oracle: {eq_id} at s = {s}")
            sizes = oracle_sizes(eq, s)
            rng = np.random.default_rng(0)
            example = {
                d.ascii: seeded_tensor(rng, d.entry_kind, concrete_shape(d, sizes), sizes)
                for d in (*eq.inputs, *eq.params)
            }
            row: dict = {"equation": eq_id, "step": s, "sizes": sizes,
                         "entries": int(sum(np.size(a) for a in example.values()))}  # fmt: skip
            for precision in ("float64", "mpmath"):
                _compile.cache_clear()
                compiled = ora.compiled(sizes, precision)
                row[f"compile_{precision}_s"] = compiled.compile_seconds
                row["lines"] = len(compiled.program.assignments)
                evaluate = partial(ora, example, sizes, precision=precision)
                row[f"eval_{precision}"] = measure({"eval": evaluate}, repeat)["eval"]
            rows.append(row)
    return {"steps": list(size.oracle_steps), "rows": rows}


def oracle(*args, **kwargs) -> dict:
    """:func:`_oracle` with the disk cache of compiled oracles bypassed (verify.cache): cold, as a first
    ``lmspec verify`` on a machine is, and as the figures have always been taken."""
    from .. import cache

    with cache.disabled():
        return _oracle(*args, **kwargs)
