"""HTML primitives of the report: escaped text, numbers for table cells, meta.json values as
HTML, an embedded figure, an id from a name. Pure functions of their arguments."""
from __future__ import annotations

import base64
import html
import math
import re

from analysis.figures import NAME_LIMIT


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def number_cell(value, scale=1.0, digits=4) -> str:
    """A number for a table cell: `digits` significant digits in fixed notation (never
    1.676e+04: 16,760), thousands separated; '–' when there is none."""
    try:
        v = float(value) * scale
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(v):
        return "–"
    if v == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    text = f"{float(f'{v:.{digits}g}'):,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def meta_value_text(value, key: str = "") -> str:
    """A scalar of meta.json for people: seconds (keys ending _s) and rates (_Bps) with their
    unit, other floats to 4 significant digits."""
    from bench.core.units import format_bw, format_time

    if isinstance(value, bool) or value is None or not isinstance(value, (int, float)):
        return "–" if value is None else str(value)
    if key.endswith("_s"):
        return format_time(float(value))
    if key.endswith("_Bps"):
        return format_bw(float(value))
    return str(value) if isinstance(value, int) else number_cell(value)


def render_value(value, key: str = "") -> str:
    """Any JSON value from meta.json as escaped HTML (numbers through value_text)."""
    if isinstance(value, dict):
        if not value:
            return "<i>none</i>"
        rows = "".join(f"<tr><th>{esc(k)}</th><td>{render_value(v, str(k))}</td></tr>"
                       for k, v in value.items())
        return f"<table class='kv'>{rows}</table>"
    if isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value):
            return esc(" ".join(meta_value_text(v, key) for v in value)) if value else "<i>none</i>"
        return "<ol>" + "".join(f"<li>{render_value(v, key)}</li>" for v in value) + "</ol>"
    if value is None:
        return "<i>–</i>"
    return esc(meta_value_text(value, key))


def figure_html(name, title, png, caption="") -> str:
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return (f"<figure><img src='data:image/png;base64,{data}' alt='{esc(title)}' "
            f"title='{esc(name)}'>{cap}</figure>")


def slug(text) -> str:
    """An HTML id from a name: the characters of analysis.figures.safe_name, at most
    NAME_LIMIT of them."""
    return (re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)) or "op")[:NAME_LIMIT]
