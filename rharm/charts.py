"""Altair charts that render offline, in Jupyter and in the static book.

Altair's default HTML output fetches vega, vega-lite and vega-embed from a CDN when the page is viewed, so an offline
reader sees no chart. :func:`enable` registers the ``rharm`` renderer, whose output carries two representations:

* ``application/vnd.vegalite.v*+json``: the spec itself (with its data inlined), which JupyterLab draws natively;
* ``text/html``: a ``<div>`` and a script that calls ``rharmVegaEmbed`` once the page has loaded. The book's Sphinx
  extension :mod:`rharm.sphinx_vega` puts vl-convert's bundle of vega-embed into every page, so no network is needed.

The chart builders below are small, shared by every chapter: a heatmap (diverging around a midpoint when asked) and a
line chart. Both return ordinary Altair charts with their data inlined.
"""

from __future__ import annotations

import json
import uuid
from typing import Sequence

import altair as alt
import pandas as pd

RENDERER = "rharm"
MIMETYPE = f"application/vnd.vegalite.{alt.SCHEMA_VERSION.split('.')[0]}+json"


def _render(spec: dict, **_: object) -> dict:
    div_id = f"rharm-vega-{uuid.uuid4().hex[:12]}"
    payload = json.dumps(spec, separators=(",", ":")).replace("</", "<\\/")
    html = (
        f'<div id="{div_id}" class="rharm-vega"></div>\n'
        '<script type="text/javascript">(function () {\n'
        f"  var spec = {payload};\n"
        "  function draw() {\n"
        "    if (typeof window.rharmVegaEmbed !== 'function') {\n"
        f"      document.getElementById('{div_id}').textContent = 'chart unavailable: vega-embed bundle not loaded';\n"
        "      return;\n"
        "    }\n"
        f"    window.rharmVegaEmbed('#{div_id}', spec, {{actions: false, renderer: 'svg'}});\n"
        "  }\n"
        "  if (document.readyState === 'complete') { draw(); } else { window.addEventListener('load', draw); }\n"
        "})();</script>"
    )
    return {MIMETYPE: spec, "text/html": html}


def enable() -> None:
    """Register and enable the offline renderer (idempotent)."""
    if RENDERER not in alt.renderers.names():
        alt.renderers.register(RENDERER, _render)
    alt.renderers.enable(RENDERER)
    alt.data_transformers.disable_max_rows()


def chart_data(chart: alt.TopLevelMixin) -> list[dict]:
    """The inlined data rows of a chart (for tests: a chart must carry its data)."""
    spec = chart.to_dict()
    rows: list[dict] = []
    for values in (spec.get("datasets") or {}).values():
        rows.extend(values)
    if "data" in spec and isinstance(spec["data"], dict) and "values" in spec["data"]:
        rows.extend(spec["data"]["values"])
    return rows


def heatmap(
    df: pd.DataFrame,
    x: str,
    y: str,
    value: str,
    *,
    title: str,
    x_order: Sequence | None = None,
    y_order: Sequence | None = None,
    mid: float | None = None,
    scheme: str = "redblue",
    fmt: str = ".2f",
    text: bool = True,
    tooltip: Sequence[str] | None = None,
    width: int | None = None,
    height: int | None = None,
    domain: Sequence[float] | None = None,
) -> alt.LayerChart:
    """A cell heatmap of ``df[value]`` over ``df[x]`` × ``df[y]``, annotated with the value.

    With ``mid`` the palette is diverging and centred at ``mid`` (e.g. 1 for representation harm, 0 for effects),
    symmetric around it so equal departures get equal colour strength.
    """
    for col in (x, y, value):
        if col not in df.columns:
            raise ValueError(f"heatmap: column {col!r} not in data; columns are {list(df.columns)}")
    n_x = len(x_order) if x_order is not None else df[x].nunique()
    n_y = len(y_order) if y_order is not None else df[y].nunique()
    width = width or max(160, 34 * n_x)
    height = height or max(120, 26 * n_y)
    if mid is not None:
        span = float((df[value] - mid).abs().max()) or 1.0
        scale = alt.Scale(scheme=scheme, domainMid=mid, domain=list(domain or [mid - span, mid + span]))
    else:
        scheme = scheme if scheme != "redblue" else "viridis"
        scale = alt.Scale(scheme=scheme, domain=list(domain)) if domain else alt.Scale(scheme=scheme)
    tips = list(tooltip) if tooltip is not None else [x, y, alt.Tooltip(value, format=fmt)]
    base = alt.Chart(df).encode(
        x=alt.X(f"{x}:N", sort=list(x_order) if x_order is not None else None, title=x),
        y=alt.Y(f"{y}:N", sort=list(y_order) if y_order is not None else None, title=y),
    )
    rect = base.mark_rect().encode(color=alt.Color(f"{value}:Q", scale=scale, title=value), tooltip=tips)
    layers = [rect]
    if text:
        layers.append(base.mark_text(fontSize=9).encode(text=alt.Text(f"{value}:Q", format=fmt), tooltip=tips))
    return alt.layer(*layers).properties(title=title, width=width, height=height)


def line(
    df: pd.DataFrame,
    x: str,
    y: str,
    color: str | None = None,
    *,
    title: str,
    log_x: bool = False,
    tooltip: Sequence[str] | None = None,
    width: int = 320,
    height: int = 220,
    points: bool = True,
) -> alt.Chart:
    """A line chart of ``df[y]`` against ``df[x]``, one line per ``df[color]``."""
    enc = {
        "x": alt.X(f"{x}:Q", scale=alt.Scale(type="log") if log_x else alt.Scale(zero=False), title=x),
        "y": alt.Y(f"{y}:Q", scale=alt.Scale(zero=False), title=y),
        "tooltip": list(tooltip) if tooltip is not None else [x, y] + ([color] if color else []),
    }
    if color:
        enc["color"] = alt.Color(f"{color}:N", title=color)
    return alt.Chart(df).mark_line(point=points).encode(**enc).properties(title=title, width=width, height=height)
