"""A recurrence unrolled over time as a data-flow picture: one cell box per step t = 1..n, the input x_t
below it, the states it emits above it (as heat strips of their values), and the state passed on to t + 1."""

from collections.abc import Mapping

import numpy as np

from ._svg import TICK_SIZE, Figure, Scale, cell, document, label, legend, nonfinite

STRIP = 14.0  # side of a strip cell
STEP = 118.0  # width of one time step
BOX_H = 40.0


def _strip(x: float, y: float, column: np.ndarray, scale: Scale, panel: str, t: int, name: str) -> str:
    return "\n".join(
        cell(x, y + i * STRIP, STRIP, STRIP, float(v), scale, panel, i, t, f"{name}, entry {i + 1}")
        for i, v in enumerate(column)
    )


def _arrow(x1: float, y1: float, x2: float, y2: float) -> str:
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#57606a" stroke-width="1.3" '
        'marker-end="url(#arrow)"/>'
    )


def unrolled(
    name: str,
    title: str,
    subtitle: str,
    caption: str,
    X: np.ndarray,
    states: Mapping[str, np.ndarray],
    cell_name: str,
    sizes: dict[str, int],
) -> Figure:
    """``X ∈ ℝ^{d_e×n}`` and the states (``{"h": H, "c": C}``, each ``d_h × n``) drawn over t = 1..n. Panels:
    ``X`` and each state's upper-case name (``H``, ``C``), column t − 1 the value at step t."""
    d_e, n = X.shape
    d_h = next(iter(states.values())).shape[0]
    names = list(states)
    state_label = "states " + ", ".join(f"{s}_t" for s in names)
    state_scale = Scale.fit("diverging", list(states.values()), state_label)
    x_scale = Scale.fit("diverging", [X], "inputs x_t")
    x0, top = 100.0, 30.0
    box_y = top + d_h * STRIP + 34
    x_y = box_y + BOX_H + 34
    width_strips = len(names) * STRIP + (len(names) - 1) * 8
    out = [
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#57606a"/></marker></defs>'
    ]
    # the initial state, 0, on the left at the boxes' height
    zero_y = box_y + BOX_H / 2 - d_h * STRIP / 2
    for k, s in enumerate(names):
        zx = 20 + k * (STRIP + 8)
        out.append(_strip(zx, zero_y, np.zeros(d_h), state_scale, f"{s}_0", 0, f"{s}_0"))
        out.append(label(zx + STRIP / 2, zero_y - 6, f"{s}_0", TICK_SIZE + 1))
    out.append(_arrow(20 + width_strips + 4, box_y + BOX_H / 2, x0 + 14, box_y + BOX_H / 2))
    for t in range(1, n + 1):
        left = x0 + (t - 1) * STEP + 14
        mid = left + (STEP - 28) / 2
        out.append(
            f'<rect x="{left:.1f}" y="{box_y:.1f}" width="{STEP - 28:.1f}" height="{BOX_H}" rx="6" '
            'fill="#fff8c5" stroke="#9a6700"/>'
        )
        out.append(label(mid, box_y + BOX_H / 2 + 5, cell_name, 13, font_weight="bold"))
        sx = mid - width_strips / 2
        for k, s in enumerate(names):
            xs = sx + k * (STRIP + 8)
            out.append(_strip(xs, top, states[s][:, t - 1], state_scale, s.upper(), t - 1, f"{s}_{t}"))
            out.append(label(xs + STRIP / 2, top - 6, f"{s}_{t}", TICK_SIZE + 1))
        out.append(_arrow(mid, box_y, mid, top + d_h * STRIP + 4))
        out.append(_strip(mid - STRIP / 2, x_y, X[:, t - 1], x_scale, "X", t - 1, f"x_{t}"))
        out.append(_arrow(mid, x_y - 2, mid, box_y + BOX_H + 2))
        out.append(label(mid, x_y + d_e * STRIP + 14, f"x_{t}", TICK_SIZE + 1))
        out.append(label(mid, x_y + d_e * STRIP + 30, f"t = {t}", TICK_SIZE + 1, fill="#57606a"))
        if t < n:
            passed = ", ".join(f"{s}_{t}" for s in names)
            out.append(_arrow(left + STEP - 28, box_y + BOX_H / 2, left + STEP, box_y + BOX_H / 2))
            out.append(label(left + STEP - 14, box_y + BOX_H / 2 - 6, passed, 9))
    width = x0 + n * STEP
    height = x_y + d_e * STRIP + 40
    present = {nonfinite(float(v)) for a in (X, *states.values()) for v in np.ravel(a)} - {None}
    key, key_h = legend([state_scale, x_scale], present)
    out.append(f'<g transform="translate({width + 10:.1f} 10)">{key}</g>')
    svg = document(title, subtitle, "\n".join(out), width + 190, max(height, key_h + 10))
    return Figure(name, title, svg, caption, dict(sizes))
