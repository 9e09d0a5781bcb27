"""An SVG document made fit to sit inside an HTML page beside others: no XML prolog, no DOCTYPE, no comments,
its ids (and the ``url(#…)`` and ``href="#…"`` that point at them) prefixed so that two figures on one page
cannot share an id, and sized to shrink with the page (``max-width: 100%``) but never to grow."""

import re

_PROLOG = re.compile(r"<\?xml[^>]*\?>|<!DOCTYPE[^>]*>|<!--.*?-->", re.S)
_OPEN = re.compile(r"<svg\b[^>]*>", re.S)


def inline_svg(svg: str, prefix: str, css_class: str = "figure") -> str:
    """``svg`` (a standalone SVG document, as Graphviz or verify/figures write it) as an element for an HTML
    page: ids prefixed with ``prefix-``, and a class and style that keep it within its column."""
    body = _PROLOG.sub("", svg).strip()
    body = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', body)
    body = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})", body)
    body = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}-{m.group(1)}"', body)
    opening = _OPEN.search(body)
    if opening is None:
        raise ValueError(f"not an SVG document: {svg[:60]!r}")
    tag = opening.group(0)
    style = 'style="max-width:100%;height:auto"'
    new = (
        tag[:-1].rstrip("/").rstrip()
        + f' class="{css_class}" {style}'
        + (" />" if tag.endswith("/>") else ">")
    )
    return body[: opening.start()] + new + body[opening.end() :]
