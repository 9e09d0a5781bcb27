"""Part ``render``: what the figures cost ``lmspec render`` (issue 17: the whole document with figures in
≤ 2× the time without them).

``lmspec render --format html`` of the selected families (the whole catalogue by default) in fresh processes,
with its figures and with ``--no-figures``, each timed around its whole life (start-up included, as a user
waits for it). **Warm**: the figure cache (Graphviz's drawings, the concept figures) filled by an untimed
run, as every run after the first finds it; the two commands run interleaved. **Cold**: each run with an
empty cache of its own (``LMSPEC_CACHE_DIR``), so that every figure is drawn: the first run on a machine, or
the first after a change to lmspec's code. The goal is set for the warm whole document; the cold ratio is
printed beside it. HTML is the format timed: it needs no TeX, and it carries every figure (inline SVG).
"""

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from ._parts import GOALS
from ._startup import _Command, installed_environment, lmspec_command
from ._timing import measure, no_note
from ._whole import SLOW_REPEAT, _timed


def _accept(output: str) -> str | None:
    return None if output.startswith("wrote ") else "did not write the document"


def render(
    repeat: int = 5, note: Callable[[str], None] = no_note, families: Sequence[str] | None = None
) -> dict:
    """``lmspec render --format html`` with and without figures, in fresh processes: warm (``repeat`` runs
    each, interleaved) and cold (``min(repeat, 3)`` runs each, an empty cache every run)."""
    from ... import spec

    selection = list(families or [])
    whole = not selection or set(selection) == set(spec.FAMILIES)
    with tempfile.TemporaryDirectory(prefix="lmspec-bench-render-") as tmp:
        env = installed_environment(Path(tmp))
        env["LMSPEC_CACHE_DIR"] = str(Path(tmp) / "warm")
        base = [*lmspec_command(), "render", "--format", "html", "-o", str(Path(tmp) / "spec.html")]
        base += [a for f in selection for a in ("--family", f)]
        commands = {
            "figures": _Command(base, env=env),
            "no_figures": _Command([*base, "--no-figures"], env=env),
        }
        note(f"render: `{commands['figures'].shown}`, with figures and with --no-figures, warm then cold")
        warm = measure(commands, repeat)  # the warm-up run fills the cache
        rows = {name: {**c.checked(_accept), **warm[name]} for name, c in commands.items()}

        def empty(k: int) -> None:
            env["LMSPEC_CACHE_DIR"] = str(Path(tmp) / f"cold-{k}")

        runs = max(1, min(repeat, SLOW_REPEAT))
        cold = {name: _timed(_Command(c.argv, env=env), runs, empty) for name, c in commands.items()}
    return {
        "families": selection or list(spec.FAMILIES),
        "format": "html",
        "warm": rows,
        "cold": cold,
        "ratio_warm": rows["figures"]["median_s"] / rows["no_figures"]["median_s"],
        "ratio_cold": cold["figures"]["median_s"] / cold["no_figures"]["median_s"],
        "goal_applies": whole,
        "goal_ratio": GOALS["render_figures_ratio"],
    }
