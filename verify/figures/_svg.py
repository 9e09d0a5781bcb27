"""SVG by hand: colour scales, heat maps, bar charts, strips and their legends, and reading values back.

No plotting library: each figure is a standalone ``<svg>`` document. Every drawn number is carried by its
element: a cell or bar has ``data-panel``, ``data-row``, ``data-col`` and ``data-value`` (Python's ``repr`` of
the float, so it reads back exactly; ``-inf``, ``inf``, ``nan`` for the non-finite) and a ``<title>`` tooltip.
``read_values(svg, panel)`` gives a panel back as an array.
"""

import html
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: Non-finite cells, in the audit page's colours (verify/audit/html.py); no scale below reaches them.
NONFINITE_COLOURS = {"−∞": "#000000", "+∞": "#ff00ff", "NaN": "#39d353"}
#: Stops of the scales (ColorBrewer Blues and RdBu): blue to white to red, never black, green or magenta.
SEQUENTIAL = ((247, 251, 255), (198, 219, 239), (107, 174, 214), (33, 113, 181), (8, 48, 107))
DIVERGING = ((33, 102, 172), (146, 197, 222), (247, 247, 247), (244, 165, 130), (178, 24, 43))
#: The colour of a mask's finite entry (0: attend).
MASK_OPEN = "#f7f7f7"
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
TITLE_SIZE, LABEL_SIZE, TICK_SIZE = 15, 12, 10


def fmt(x: float) -> str:
    """A number as people read it: 3 significant digits, a true minus sign, ±∞ and NaN."""
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "−∞" if x < 0 else "+∞"
    text = f"{x:.3g}"
    return "0" if text in ("0", "-0") else text.replace("-", "−")


def nonfinite(x: float) -> str | None:
    """``"−∞"``, ``"+∞"`` or ``"NaN"`` for a non-finite number, else None."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "−∞" if x < 0 else "+∞"
    return None


def _mix(stops: Sequence[tuple[int, int, int]], f: float) -> str:
    f = min(max(f, 0.0), 1.0) * (len(stops) - 1)
    k = min(int(f), len(stops) - 2)
    w = f - k
    rgb = (round(a + (b - a) * w) for a, b in zip(stops[k], stops[k + 1], strict=True))
    return "#{:02x}{:02x}{:02x}".format(*rgb)


@dataclass(frozen=True)
class Scale:
    """A colour scale: ``sequential`` on [lo, hi], ``diverging`` centred on 0 over [lo, hi] = [−r, r], or
    ``mask`` (0 open, −∞ masked). Non-finite values take NONFINITE_COLOURS whatever the kind."""

    kind: str
    lo: float
    hi: float
    label: str

    @classmethod
    def fit(cls, kind: str, arrays: Sequence[np.ndarray], label: str, lo: float | None = None) -> "Scale":
        finite = np.concatenate([np.ravel(a)[np.isfinite(np.ravel(a))] for a in arrays] + [np.zeros(0)])
        if kind == "diverging":
            r = float(np.abs(finite).max()) if finite.size else 1.0
            return cls(kind, -(r or 1.0), r or 1.0, label)
        low = float(finite.min()) if lo is None and finite.size else (lo or 0.0)
        high = float(finite.max()) if finite.size else 1.0
        return cls(kind, low, high if high > low else low + 1.0, label)

    def colour(self, x: float) -> str:
        kind = nonfinite(x)
        if kind:
            return NONFINITE_COLOURS[kind]
        if self.kind == "mask":
            return MASK_OPEN
        stops = DIVERGING if self.kind == "diverging" else SEQUENTIAL
        return _mix(stops, (float(x) - self.lo) / (self.hi - self.lo))


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def rich(text: str) -> str:
    """Escaped text with ``_x`` / ``_{xy}`` set as a subscript and ``^x`` / ``^{xy}`` as a superscript
    (``h_t``, ``n_{max}``, ``10000^{2i/d_e}``; no nesting)."""
    out, i = [], 0
    while i < len(text):
        if text[i] in "_^" and i + 1 < len(text):
            dy = "0.3em" if text[i] == "_" else "-0.45em"
            if text[i + 1] == "{":
                end = text.index("}", i)
                sub, i_next = text[i + 2 : end], end + 1
            else:
                sub, i_next = text[i + 1], i + 2
            back = "-0.3em" if text[i] == "_" else "0.45em"
            sub = sub.replace("_", "")
            out.append(f'<tspan dy="{dy}" font-size="75%">{esc(sub)}</tspan>')
            out.append(f'<tspan dy="{back}">\u200b</tspan>')
            i = i_next
        else:
            out.append(esc(text[i]))
            i += 1
    return "".join(out)


def plain(text: str) -> str:
    """The text of ``rich`` without markup (for ``<title>``): ``h_t`` → ``h_t``, ``n_{max}`` → ``n_max``."""
    return text.replace("_{", "_").replace("^{", "^").replace("}", "")


def label(x: float, y: float, text: str, size: int = LABEL_SIZE, anchor: str = "middle", **attrs) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{esc(v)}"' for k, v in attrs.items())
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{extra}>{rich(text)}</text>'
    )


def cell(x, y, w, h, value: float, scale: Scale, panel: str, row: int, col: int, tip: str) -> str:
    """One drawn number: a rectangle carrying its value."""
    return (
        f'<rect class="cell" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" '
        f'fill="{scale.colour(value)}" stroke="#ffffff" stroke-width="0.5" data-panel="{esc(panel)}" '
        f'data-row="{row}" data-col="{col}" data-value="{float(value)!r}"><title>{esc(tip)}: '
        f"{esc(fmt(value))}</title></rect>"
    )


def _ink(fill: str) -> str:
    """Black or white text, whichever reads on ``fill``."""
    r, g, b = (int(fill[k : k + 2], 16) for k in (1, 3, 5))
    return "#000000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#ffffff"


@dataclass
class Heat:
    """A heat-map panel: ``values[i, j]`` in row i, column j."""

    values: np.ndarray
    title: str
    rows: str
    cols: str
    row_ticks: Sequence[str]
    col_ticks: Sequence[str]
    scale: Scale
    key: str
    numbers: bool = False
    cell: float = 0.0  # side of a cell; 0: chosen from the size
    digits: int | None = None  # the numbers written in cells: decimals (None: 3 significant digits)

    def size(self) -> tuple[float, float]:
        r, c = self.values.shape
        self.cell = self.cell or max(7.0, min(34.0, 230.0 / max(r, c)))
        return 70 + c * self.cell + 10, 28 + r * self.cell + 52

    def draw(self) -> str:
        r, c = self.values.shape
        self.size()
        s = self.cell
        x0, y0 = 70.0, 28.0
        out = [label(x0 + c * s / 2, 16, self.title, LABEL_SIZE, font_weight="bold")]
        for i in range(r):
            for j in range(c):
                v = float(self.values[i, j])
                x, y = x0 + j * s, y0 + i * s
                tip = f"{plain(self.title)} [{self.row_ticks[i]}, {self.col_ticks[j]}]"
                out.append(cell(x, y, s, s, v, self.scale, self.key, i, j, tip))
                if self.numbers:
                    ink = _ink(self.scale.colour(v))
                    text = fmt(v) if self.digits is None or not math.isfinite(v) else f"{v:.{self.digits}f}"
                    out.append(label(x + s / 2, y + s / 2 + 3.5, text, 9, fill=ink, pointer_events="none"))
        step_r, step_c = _tick_step(r, s), _tick_step(c, s)
        for i in range(0, r, step_r):
            out.append(label(x0 - 4, y0 + (i + 0.5) * s + 3.5, self.row_ticks[i], TICK_SIZE, "end"))
        for j in range(0, c, step_c):
            out.append(label(x0 + (j + 0.5) * s, y0 + r * s + 13, self.col_ticks[j], TICK_SIZE))
        out.append(label(x0 + c * s / 2, y0 + r * s + 32, self.cols, LABEL_SIZE))
        yc = y0 + r * s / 2
        out.append(label(14, yc, self.rows, LABEL_SIZE, transform=f"rotate(-90 14 {yc:.1f})"))
        return "\n".join(out)


def _tick_step(count: int, side: float) -> int:
    step = 1
    while step * side < 16 and step < count:
        step = {1: 2, 2: 5}.get(step, step * 2)
    return step


@dataclass
class Bars:
    """A bar-chart panel: ``values[j]`` for column j; ``kept[j]`` False draws bar j in grey (filtered out)."""

    values: np.ndarray
    title: str
    x_label: str
    y_label: str
    ticks: Sequence[str]
    key: str
    lo: float
    hi: float
    kept: Sequence[bool] | None = None
    colour: str = "#2171b5"

    def size(self) -> tuple[float, float]:
        return 60 + 34 * len(self.values) + 10, 28 + 150 + 52

    def draw(self) -> str:
        x0, y0, h, w = 60.0, 28.0, 150.0, 34.0
        n = len(self.values)
        zero = y0 + h * self.hi / (self.hi - self.lo)
        out = [label(x0 + n * w / 2, 16, self.title, LABEL_SIZE, font_weight="bold")]
        out.append(f'<rect x="{x0}" y="{y0}" width="{n * w}" height="{h}" fill="none" stroke="#d0d7de"/>')
        for v in (self.lo, 0.0, self.hi) if self.lo < 0 else (0.0, self.hi / 2, self.hi):
            y = y0 + h * (self.hi - v) / (self.hi - self.lo)
            out.append(f'<line x1="{x0 - 3}" y1="{y:.1f}" x2="{x0 + n * w}" y2="{y:.1f}" stroke="#d0d7de"/>')
            out.append(label(x0 - 5, y + 3.5, fmt(v), TICK_SIZE, "end"))
        for j, v in enumerate(map(float, self.values)):
            kept = self.kept is None or self.kept[j]
            fill = self.colour if kept else "#afb8c1"
            x = x0 + j * w + 5
            tip = f"{plain(self.title)} [{self.ticks[j]}]: {fmt(v)}"
            attrs = f'data-panel="{esc(self.key)}" data-row="0" data-col="{j}" data-value="{v!r}"'
            if math.isfinite(v):
                top, bottom = sorted((zero, y0 + h * (self.hi - v) / (self.hi - self.lo)))
                out.append(
                    f'<rect class="bar" x="{x:.1f}" y="{top:.1f}" width="{w - 10:.1f}" '
                    f'height="{max(bottom - top, 0.5):.1f}" fill="{fill}" {attrs}>'
                    f"<title>{esc(tip)}</title></rect>"
                )
                out.append(label(x + (w - 10) / 2, top - 3, fmt(v), 9))
            else:  # −∞ (a filtered logit): a marker at the bottom, in the non-finite colour
                colour = NONFINITE_COLOURS[nonfinite(v) or "NaN"]
                out.append(
                    f'<rect class="bar" x="{x:.1f}" y="{y0 + h - 4:.1f}" width="{w - 10:.1f}" height="4" '
                    f'fill="{colour}" {attrs}><title>{esc(tip)}</title></rect>'
                )
                out.append(label(x + (w - 10) / 2, y0 + h - 8, fmt(v), 10))
            out.append(label(x0 + (j + 0.5) * w, y0 + h + 13, self.ticks[j], TICK_SIZE))
        out.append(label(x0 + n * w / 2, y0 + h + 32, self.x_label, LABEL_SIZE))
        yc = y0 + h / 2
        out.append(label(14, yc, self.y_label, LABEL_SIZE, transform=f"rotate(-90 14 {yc:.1f})"))
        return "\n".join(out)


def legend(
    scales: Sequence[Scale], present: set[str], swatches: Sequence[tuple[str, str]] = ()
) -> tuple[str, float]:
    """The colour legend: a gradient bar per scale (masks: two swatches), the non-finite kinds ``present``
    and any extra ``(colour, text)`` swatches; returns the SVG and its height."""
    out, y = [], 0.0
    for k, s in enumerate(scales):
        out.append(label(0, y + 12, s.label, LABEL_SIZE, "start", font_weight="bold"))
        y += 20
        if s.kind == "mask":
            for colour, text in ((MASK_OPEN, "0: attend"), (NONFINITE_COLOURS["−∞"], "−∞: masked")):
                out.append(
                    f'<rect class="swatch" x="0" y="{y}" width="14" height="14" fill="{colour}" '
                    'stroke="#57606a"/>'
                )
                out.append(label(20, y + 11, text, TICK_SIZE, "start"))
                y += 20
            present = present - {"−∞"}
            y += 8
            continue
        gid = f"scale{k}"
        stops = "".join(
            f'<stop offset="{f:.2f}" stop-color="{s.colour(s.hi - f * (s.hi - s.lo))}"/>'
            for f in np.linspace(0, 1, 11)
        )
        gradient = f'<linearGradient id="{gid}" x1="0" y1="0" x2="0" y2="1">{stops}</linearGradient>'
        out.append(f"<defs>{gradient}</defs>")
        out.append(
            f'<rect class="legend" x="0" y="{y}" width="14" height="110" fill="url(#{gid})" stroke="#57606a" '
            f'stroke-width="0.5" data-lo="{s.lo!r}" data-hi="{s.hi!r}" data-kind="{s.kind}"/>'
        )
        for f in (0.0, 0.5, 1.0):
            out.append(label(20, y + 110 * f + 4, fmt(s.hi - f * (s.hi - s.lo)), TICK_SIZE, "start"))
        y += 122
    y += 4
    names = {"−∞": "−∞: masked / filtered", "+∞": "+∞", "NaN": "NaN"}
    items = list(swatches) + [(NONFINITE_COLOURS[k], names[k]) for k in NONFINITE_COLOURS if k in present]
    for colour, text in items:
        out.append(
            f'<rect class="swatch" x="0" y="{y}" width="14" height="14" fill="{colour}" stroke="#57606a"/>'
        )
        out.append(label(20, y + 11, text, TICK_SIZE, "start"))
        y += 20
    return "\n".join(out), y


@dataclass
class Figure:
    """One concept figure: a standalone SVG document with its title and caption."""

    name: str
    title: str
    svg: str
    caption: str
    sizes: dict[str, int] = field(default_factory=dict)


def document(title: str, subtitle: str, body: str, width: float, height: float) -> str:
    """A standalone SVG document: white background, title and subtitle on top, ``body`` below them."""
    w, h = math.ceil(width), math.ceil(height + 52)
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
            f'font-family="{FONT}" fill="#1f2328">',
            f"<title>{esc(title)}</title>",
            f'<rect width="{w}" height="{h}" fill="#ffffff"/>',
            label(12, 20, title, TITLE_SIZE, "start", font_weight="bold"),
            label(12, 38, subtitle, LABEL_SIZE, "start", fill="#57606a"),
            '<g transform="translate(0 52)">',
            body,
            "</g>",
            "</svg>",
        ]
    )


def panels_figure(
    name: str,
    title: str,
    subtitle: str,
    caption: str,
    panels: Sequence[Heat | Bars],
    *,
    per_row: int = 4,
    swatches: Sequence[tuple[str, str]] = (),
    sizes: dict[str, int] | None = None,
) -> Figure:
    """Panels left to right (``per_row`` to a row), then the legend of their scales."""
    parts, x, y, row_h, width = [], 0.0, 0.0, 0.0, 0.0
    for k, p in enumerate(panels):
        if k and k % per_row == 0:
            x, y, row_h = 0.0, y + row_h, 0.0
        pw, ph = p.size()
        parts.append(f'<g transform="translate({x:.1f} {y:.1f})">{p.draw()}</g>')
        x, row_h, width = x + pw, max(row_h, ph), max(width, x + pw)
    scales = list(dict.fromkeys(p.scale for p in panels if isinstance(p, Heat)))
    present = {nonfinite(v) for p in panels for v in np.ravel(p.values).astype(float)} - {None}
    key, key_h = legend(scales, present, swatches)
    parts.append(f'<g transform="translate({width + 10:.1f} 10)">{key}</g>')
    height = max(y + row_h, key_h + 10)
    svg = document(title, subtitle, "\n".join(parts), width + 180, height)
    return Figure(name, title, svg, caption, dict(sizes or {}))


def read_values(svg: str, panel: str) -> np.ndarray:
    """The numbers a figure draws in ``panel``, read back from its ``data-value`` attributes, as a 2-D array
    (rows × columns). Raises KeyError when the figure has no such panel."""
    cells = [e for e in ET.fromstring(svg).iter() if e.get("data-panel") == panel]
    if not cells:
        raise KeyError(f"no panel {panel!r} in the figure")
    r = 1 + max(int(e.get("data-row")) for e in cells)
    c = 1 + max(int(e.get("data-col")) for e in cells)
    out = np.full((r, c), np.nan)
    for e in cells:
        out[int(e.get("data-row")), int(e.get("data-col"))] = float(e.get("data-value"))
    return out


def panels(svg: str) -> list[str]:
    """The panel keys of a figure, in drawing order."""
    return list(dict.fromkeys(e.get("data-panel") for e in ET.fromstring(svg).iter() if e.get("data-panel")))
