"""The audit as one self-contained HTML page for people.

No JavaScript, no network, no external fonts or style sheets: the CSS is inline and the heat maps are PNGs
embedded as ``data:`` URIs. The page carries no date or wall time and the PNGs no metadata, so the same
reports give the same bytes.
"""

import base64
import html
import io
import json
import math
from pathlib import Path

import numpy as np

from .report import _HTML, VERDICTS, AuditCheck, AuditReport, Heatmap, VariantTrial

#: Resolution of the heat-map PNGs (small files: a few tens of KB each).
DPI = 80

#: How non-finite cells are drawn: they are masked out of the colour scale and painted in these colours.
NONFINITE_COLOURS = {"−∞": "#000000", "+∞": "#ff00ff", "NaN": "#39d353"}

_VERDICT_COLOURS = {"pass": "#1a7f37", "variant": "#9a6700", "fail": "#cf222e", "error": "#8250df"}
_STATUS_COLOURS = {"pass": "#1a7f37", "fail": "#cf222e", "skip": "#6e7781"}

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  color: #1f2328; background: #ffffff; margin: 0 auto; max-width: 1200px; padding: 1.5em; line-height: 1.45; }
h1 { font-size: 1.7em; margin: 0 0 0.2em 0; }
h2 { font-size: 1.35em; margin-top: 2.2em; padding-top: 0.6em; border-top: 2px solid #d0d7de; }
h3 { font-size: 1.1em; margin-top: 1.6em; }
h4 { font-size: 1em; margin: 1.2em 0 0.4em 0; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
  font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #d0d7de; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
tr.fail td { background: #fff5f5; }
tr.skip td { color: #57606a; }
.badge { display: inline-block; padding: 0.05em 0.55em; border-radius: 1em; color: #ffffff;
  font-weight: 600; font-size: 0.9em; }
.meta { color: #57606a; font-size: 0.92em; }
.summary { font-size: 1.05em; }
.failure { border-left: 4px solid #cf222e; padding: 0.2em 0 0.2em 1em; margin: 1em 0; }
pre { background: #f6f8fa; border: 1px solid #d0d7de; padding: 0.6em; overflow-x: auto; white-space: pre; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #d0d7de; }
figcaption { color: #57606a; font-size: 0.9em; margin-top: 0.3em; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; border: 1px solid #57606a;
  vertical-align: -0.1em; margin: 0 0.2em 0 0.4em; }
"""


# ----------------------------------------------------------------------------------------------- text


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _num(x: float | None) -> str:
    if x is None:
        return "—"
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+∞" if x > 0 else "−∞"
    return f"{x:.3g}"


def _badge(word: str, colours: dict[str, str]) -> str:
    colour = colours.get(word, "#57606a")
    return f'<span class="badge" style="background:{colour}">{_e(word)}</span>'


def _counts(r: AuditReport) -> tuple[int, int, int]:
    statuses = [c.status for c in r.checks]
    return statuses.count("pass"), statuses.count("fail"), statuses.count("skip")


def _anchor(i: int) -> str:
    return f"report-{i + 1}"


def _constants(constants: dict) -> str:
    return ", ".join(f"{k} = {_num(v) if isinstance(v, float) else v}" for k, v in constants.items())


def _floats(obj: object) -> object:
    """Nested lists as they come from JSON: "inf", "-inf", "nan" back to floats."""
    if isinstance(obj, (list, tuple)):
        return [_floats(v) for v in obj]
    if isinstance(obj, str) and obj in ("inf", "-inf", "nan"):
        return float(obj)
    return obj


def _array_text(value: object) -> str:
    """A counterexample's array compactly; a summary string ("array of shape [..]") as it is."""
    if isinstance(value, str):
        return value
    try:
        arr = np.asarray(_floats(value))
    except ValueError:  # ragged
        return repr(value)
    if arr.dtype == object:
        return repr(value)
    with np.printoptions(precision=4, suppress=True, linewidth=100, threshold=1000, floatmode="maxprec"):
        return np.array2string(arr, separator=", ")


# ------------------------------------------------------------------------------------------ heat maps


def _as_2d(a: object) -> np.ndarray:
    arr = np.asarray(_floats(a), dtype=float)
    if arr.ndim == 0:
        return arr.reshape(1, 1)
    if arr.ndim == 1:
        return arr.reshape(1, -1)
    return arr.reshape(-1, arr.shape[-1])


def _nonfinite(arr: np.ndarray) -> dict[str, np.ndarray]:
    return {"−∞": np.isneginf(arr), "+∞": np.isposinf(arr), "NaN": np.isnan(arr)}


def _difference(t: np.ndarray, s: np.ndarray) -> np.ndarray:
    """target − spec; cells where both hold the same value (the same infinity, or both NaN) count as 0."""
    with np.errstate(invalid="ignore", over="ignore"):
        d = t - s
    d[(t == s) | (np.isnan(t) & np.isnan(s))] = 0.0
    return d


def _limits(*arrays: np.ndarray) -> tuple[float, float]:
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays])
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    if lo == hi:
        pad = max(abs(lo) * 0.05, 0.5)
        return lo - pad, hi + pad
    return lo, hi


def _panel(fig, ax, arr: np.ndarray, title: str, cmap: str, vmin: float, vmax: float, h: Heatmap) -> None:
    from matplotlib.colors import ListedColormap
    from matplotlib.ticker import MaxNLocator

    rows, cols = arr.shape
    extent = (-0.5, cols - 0.5, rows - 0.5, -0.5)
    image = ax.imshow(
        np.ma.masked_invalid(arr),
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        interpolation="nearest",
        aspect="auto",
        extent=extent,
    )
    for kind, where in _nonfinite(arr).items():
        if where.any():
            ax.imshow(
                np.ma.masked_where(~where, np.ones_like(arr)),
                cmap=ListedColormap([NONFINITE_COLOURS[kind]]),
                vmin=0,
                vmax=1,
                interpolation="nearest",
                aspect="auto",
                extent=extent,
            )
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(h.col_label, fontsize=9)
    ax.set_ylabel(h.row_label, fontsize=9)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    ax.tick_params(labelsize=8)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.ax.tick_params(labelsize=7)


def _heatmap_png(h: Heatmap) -> bytes:
    """Three panels side by side: target, spec (one shared colour scale) and target − spec (diverging,
    centred on 0). Non-finite cells are painted in NONFINITE_COLOURS."""
    import matplotlib.style
    from matplotlib.figure import Figure

    t, s = _as_2d(h.target), _as_2d(h.spec)
    same_shape = t.shape == s.shape
    with matplotlib.style.context("default"):  # the user's matplotlibrc does not change the picture
        panels = 3 if same_shape else 2
        fig = Figure(figsize=(3.4 * panels, 3.0), dpi=DPI, layout="constrained")
        axes = fig.subplots(1, panels)
        vmin, vmax = _limits(t, s)
        _panel(fig, axes[0], t, "target", "viridis", vmin, vmax, h)
        _panel(fig, axes[1], s, "spec", "viridis", vmin, vmax, h)
        if same_shape:
            d = _difference(t, s)
            finite = np.abs(d[np.isfinite(d)])
            m = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
            _panel(fig, axes[2], d, "target − spec", "RdBu_r", -m, m, h)
        fig.suptitle(h.title, fontsize=10)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _caption(h: Heatmap) -> str:
    t, s = _as_2d(h.target), _as_2d(h.spec)
    parts = [
        f"{_e(h.title)} (check {_e(h.check)}): target and spec share one colour scale"
        + (
            "; the difference target − spec is drawn on a diverging scale centred on 0 (cells where both "
            "hold the same value, infinities and NaN included, count as 0)."
            if t.shape == s.shape
            else f"; no difference panel: the target's slice has shape {t.shape}, the spec's {s.shape}."
        )
    ]
    panels = [("target", t), ("spec", s)]
    if t.shape == s.shape:
        panels.append(("difference", _difference(t, s)))
    found = []
    for name, arr in panels:
        counts = [f"{int(w.sum())} × {kind}" for kind, w in _nonfinite(arr).items() if w.any()]
        if counts:
            found.append(f"{name}: {', '.join(counts)}")
    if found:
        swatches = " ".join(
            f'<span class="swatch" style="background:{colour}"></span>{_e(kind)}'
            for kind, colour in NONFINITE_COLOURS.items()
        )
        parts.append(
            f" Non-finite cells ({_e('; '.join(found))}) are masked out of the colour scales and painted in"
            f" their own colours: {swatches}."
        )
    return "".join(parts)


def _figure(h: Heatmap) -> str:
    data = base64.b64encode(_heatmap_png(h)).decode("ascii")
    alt = f"heat maps of {h.title}: target, spec and their difference"
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_e(alt)}">'
        f"<figcaption>{_caption(h)}</figcaption></figure>"
    )


# ------------------------------------------------------------------------------------------- sections


def _header(reports: list[AuditReport]) -> list[str]:
    verdicts = [r.verdict for r in reports]
    tally = ", ".join(f"{verdicts.count(v)} {v}" for v in VERDICTS if v in verdicts)
    noun = "target" if len(reports) == 1 else "targets"
    return [
        "<header><h1>lmspec audit</h1>",
        f'<p class="meta">{len(reports)} {noun} held to the spec{": " + _e(tally) if tally else ""}.</p>',
        "</header>",
    ]


def _summary_table(reports: list[AuditReport]) -> list[str]:
    out = [
        "<section><h2>Summary</h2><table><thead><tr><th>target</th><th>equation</th><th>verdict</th>"
        "<th>matched variants</th><th>passed</th><th>failed</th><th>skipped</th></tr></thead><tbody>"
    ]
    for i, r in enumerate(reports):
        p, f, s = _counts(r)
        out.append(
            f'<tr><td><a href="#{_anchor(i)}"><code>{_e(r.target)}</code></a></td>'
            f"<td><code>{_e(r.equation)}</code></td><td>{_badge(r.verdict, _VERDICT_COLOURS)}</td>"
            f"<td>{_e(', '.join(r.matched)) or '—'}</td>"
            f'<td class="num">{p}</td><td class="num">{f}</td><td class="num">{s}</td></tr>'
        )
    out.append("</tbody></table></section>")
    return out


def _checks_table(checks: list[AuditCheck]) -> list[str]:
    if not checks:
        return ["<p>No checks were run.</p>"]
    out = [
        "<table><thead><tr><th>check</th><th>status</th><th>max |Δ|</th><th>max relative Δ</th>"
        "<th>tolerance</th><th>examples</th><th>message</th></tr></thead><tbody>"
    ]
    for c in checks:
        tol = "—" if c.atol is None and c.rtol is None else f"atol {_num(c.atol)}, rtol {_num(c.rtol)}"
        out.append(
            f'<tr class="{_e(c.status)}"><td><code>{_e(c.name)}</code></td>'
            f"<td>{_badge(c.status, _STATUS_COLOURS)}</td>"
            f'<td class="num">{_num(c.max_abs)}</td><td class="num">{_num(c.max_rel)}</td>'
            f'<td class="num">{_e(tol)}</td><td class="num">{c.examples}</td><td>{_e(c.message)}</td></tr>'
        )
    out.append("</tbody></table>")
    return out


def _variants_table(variants: list[VariantTrial]) -> list[str]:
    out = [
        "<table><thead><tr><th>name</th><th>kind</th><th>matched</th><th>constants</th><th>max |Δ|</th>"
        "<th>description</th><th>message</th></tr></thead><tbody>"
    ]
    for v in variants:
        out.append(
            f"<tr><td><code>{_e(v.name)}</code></td><td>{_e(v.kind)}</td>"
            f"<td>{_badge('yes', {'yes': _VERDICT_COLOURS['pass']}) if v.matched else 'no'}</td>"
            f"<td><code>{_e(_constants(v.constants)) or '—'}</code></td>"
            f'<td class="num">{_num(v.max_abs)}</td><td>{_e(v.description)}</td><td>{_e(v.message)}</td></tr>'
        )
    out.append("</tbody></table>")
    return out


def _counterexample(cx: dict) -> list[str]:
    if not cx:
        return ["<p>No counterexample was recorded.</p>"]
    out = ["<p><strong>Shrunk counterexample.</strong>"]
    if "sizes" in cx:
        sizes = cx["sizes"]
        text = ", ".join(f"{k} = {v}" for k, v in sizes.items()) if isinstance(sizes, dict) else str(sizes)
        out.append(f" Sizes: <code>{_e(text) or '—'}</code>.")
    if "batch" in cx:
        batch = cx["batch"]
        out.append(f" Batch: <code>{_e(list(batch) if isinstance(batch, (list, tuple)) else batch)}</code>.")
    out.append("</p>")
    arrays = cx.get("arrays") or {}
    if arrays:
        width = max(len(str(k)) for k in arrays)
        lines = []
        for name, value in arrays.items():
            text = _array_text(value).splitlines() or [""]
            lines.append(f"{str(name).ljust(width)} = {text[0]}")
            lines.extend(" " * (width + 3) + line for line in text[1:])
        out.append(f"<pre>{_e(chr(10).join(lines))}</pre>")
    rest = {k: v for k, v in cx.items() if k not in ("sizes", "batch", "arrays")}
    if rest:
        out.append(f"<pre>{_e(json.dumps(rest, indent=1, sort_keys=True, default=str))}</pre>")
    return out


def _report(i: int, r: AuditReport) -> list[str]:
    p, f, s = _counts(r)
    out = [
        f'<section id="{_anchor(i)}">',
        f"<h2><code>{_e(r.target)}</code> as <code>{_e(r.equation)}</code> "
        f"{_badge(r.verdict, _VERDICT_COLOURS)}</h2>",
        f'<p class="summary">{_e(r.summary)}</p>',
        f'<p class="meta">device {_e(r.device)} · dtype {_e(r.dtype)} · profile {_e(r.profile)} · '
        f"seed {_e(r.seed)} · {p} passed, {f} failed, {s} skipped"
        + (f" · matches {_e(', '.join(r.matched))}" if r.matched else "")
        + "</p>",
        "<h3>Checks</h3>",
        *_checks_table(r.checks),
    ]
    if r.variants:
        out += ["<h3>Variants tried</h3>", *_variants_table(r.variants)]
    shown: set[int] = set()
    if r.failures:
        out.append("<h3>Failures</h3>")
        for c in r.failures:
            out += [
                '<div class="failure">',
                f"<h4><code>{_e(c.name)}</code></h4>",
                f"<p>{_e(c.message)}</p>" if c.message else "",
                *_counterexample(c.counterexample),
            ]
            for k, h in enumerate(r.heatmaps):
                if h.check == c.name and k not in shown:
                    shown.add(k)
                    out.append(_figure(h))
            out.append("</div>")
    rest = [h for k, h in enumerate(r.heatmaps) if k not in shown]
    if rest:
        out.append("<h3>Heat maps</h3>")
        out += [_figure(h) for h in rest]
    out.append("</section>")
    return out


# -------------------------------------------------------------------------------------------- the page


def to_html(reports: list[AuditReport]) -> str:
    """One self-contained HTML page: a summary table of all reports, then per report its summary, checks,
    variants tried and, for each failure, the shrunk counterexample and heat maps (target, spec, target −
    spec). Deterministic: the same reports give the same bytes."""
    body = _header(reports) + _summary_table(reports)
    for i, r in enumerate(reports):
        body += _report(i, r)
    head = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>lmspec audit</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
    )
    return head + "\n".join(line for line in body if line) + "\n</body>\n</html>\n"


def fragment(report: AuditReport) -> str:
    """One report as a self-contained ``<div>`` (its own scoped styles), for a notebook's display."""
    css = _CSS.replace("body", ".lmspec-audit")
    body = _report(0, report)
    return f'<div class="lmspec-audit"><style>{css}</style>\n' + "\n".join(x for x in body if x) + "\n</div>"


def write_html(reports: list[AuditReport], path: str | Path) -> None:
    """Write the HTML page (creating its folder). An OSError is left to the caller; it names ``path``."""
    path = Path(path)
    text = to_html(reports)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        if exc.errno is None:
            raise OSError(f"cannot write {path}: {exc}") from exc
        raise type(exc)(exc.errno, exc.strerror, str(path)) from exc


_HTML[:] = [fragment]  # how a report displays itself in a notebook (AuditReport._repr_html_)
