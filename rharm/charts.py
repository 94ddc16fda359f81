"""Altair charts that render offline and fit the page: one width policy and one colour policy for every chapter.

How to use (in a chapter)::

    from rharm import charts
    charts.heatmap(df, "other", "minority", "rh", title="Ours", mid=1.0, legend="RH (red < 1: moved closer)")
    charts.compare_heatmaps([(ours, "Ours"), (paper, "Paper")], "other", "minority", "rh", mid=1.0, ...)
    charts.panels([chart_a, chart_b])        # side by side when they fit the column, else stacked
    charts.scatter_vs(df, "paper", "rh", ...)   # ours vs a reference: identity line, axes where the data are
    charts.line(df, "pi1", "cos", "alpha", title=...)

Width policy. The book's text column is :data:`CONTENT_WIDTH` pixels wide at desktop width. Every builder sizes its
plot so that the whole chart (axes, labels and legend included) fits that column; several panels are put side by
side only while they fit and are otherwise stacked (:func:`panels`); legends sit below the plot so they never widen
a chart or get clipped. On narrower screens (a phone) the drawn SVG scales down with its container (the renderer
adds ``max-width: 100%``), so no column is ever cut off.

Colour policy. A diverging scale is centred at the null (``mid``: 1 for RH, 0 for effects), symmetric around it, and
its legend title says which direction is which. Panels that are compared (:func:`compare_heatmaps`) share one colour
domain, so the same colour means the same value in each.

Rendering. Altair's default HTML output fetches vega from a CDN when the page is viewed, so an offline reader sees no
chart. :func:`enable` registers the ``rharm`` renderer, whose output carries the spec
(``application/vnd.vegalite.v*+json``, drawn natively by JupyterLab) and ``text/html`` that calls
``rharmVegaEmbed``, which the book's Sphinx extension :mod:`rharm.book.sphinx_vega` puts into every page.
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Iterable, Sequence

import altair as alt
import numpy as np
import pandas as pd

RENDERER = "rharm"
MIMETYPE = f"application/vnd.vegalite.{alt.SCHEMA_VERSION.split('.')[0]}+json"

#: usable width (px) of the book's text column at desktop width (sphinx-book-theme); charts are built to fit it
CONTENT_WIDTH = 660
#: horizontal space (px) taken by a y axis with category labels and its title
Y_AXIS_PX = 110
#: gap (px) between side-by-side panels
GAP_PX = 20
#: widest and narrowest heatmap cell (px)
MAX_CELL_PX, MIN_CELL_PX = 38, 14

# One diverging palette everywhere: red = below the null (harm direction: RH < 1, an accuracy loss), blue = above.
DIVERGING = "redblue"

_STYLE = (
    "<style>.rharm-vega{max-width:100%;overflow-x:visible}"
    ".rharm-vega .vega-embed{display:block;max-width:100%}"
    ".rharm-vega svg.marks{max-width:100%;height:auto}</style>"
)


def _render(spec: dict, **_: object) -> dict:
    div_id = f"rharm-vega-{uuid.uuid4().hex[:12]}"
    payload = json.dumps(spec, separators=(",", ":")).replace("</", "<\\/")
    html = (
        f'{_STYLE}<div id="{div_id}" class="rharm-vega"></div>\n'
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


# --------------------------------------------------------------------------------------------------------------
# Width policy
# --------------------------------------------------------------------------------------------------------------


def estimated_width(chart: alt.TopLevelMixin | dict) -> float:
    """Upper estimate (px) of a chart's drawn width: plot widths plus axis space and gaps (legends sit below).

    Used by :func:`panels` to decide between side by side and stacked, and by tests to hold every builder to
    :data:`CONTENT_WIDTH`.
    """
    spec = chart.to_dict() if not isinstance(chart, dict) else chart

    def walk(node: dict) -> float:
        if "hconcat" in node:
            parts = [walk(n) for n in node["hconcat"]]
            return sum(parts) + GAP_PX * (len(parts) - 1)
        if "vconcat" in node:
            return max(walk(n) for n in node["vconcat"])
        if "concat" in node:
            cols = node.get("columns") or len(node["concat"])
            parts = [walk(n) for n in node["concat"]]
            rows = [parts[i:i + cols] for i in range(0, len(parts), cols)]
            return max(sum(r) + GAP_PX * (len(r) - 1) for r in rows)
        width = node.get("width")
        if not isinstance(width, (int, float)):
            for child in node.get("layer", []):
                if isinstance(child.get("width"), (int, float)):
                    width = child["width"]
            width = width if isinstance(width, (int, float)) else 300
        legend_right = _legend_on_side(node)
        return float(width) + Y_AXIS_PX + (120 if legend_right else 0)

    return walk(spec)


def _legend_on_side(node: dict) -> bool:
    """Whether a unit/layer spec has a colour legend placed left or right (which widens the chart)."""
    encs = [node.get("encoding", {})] + [c.get("encoding", {}) for c in node.get("layer", [])]
    for enc in encs:
        color = enc.get("color")
        if isinstance(color, dict) and color.get("legend", {}) is not None and "field" in color:
            orient = (color.get("legend") or {}).get("orient", "right")
            if orient in ("right", "left"):
                return True
    return False


def plot_width(n_panels: int = 1, *, total: int = CONTENT_WIDTH, axis_px: int = Y_AXIS_PX) -> int:
    """Width (px) of the plot area of each of ``n_panels`` side-by-side panels that together fit ``total``."""
    if n_panels < 1:
        raise ValueError(f"n_panels={n_panels} must be >= 1")
    return int((total - GAP_PX * (n_panels - 1)) / n_panels - axis_px)


def panels(charts: Sequence[alt.TopLevelMixin], *, total: int = CONTENT_WIDTH, shared_color: bool = False,
           title: str | None = None) -> alt.TopLevelMixin:
    """Lay compared panels out to fit the column: side by side while they fit ``total`` px, otherwise in rows.

    The charts should already be sized (e.g. with ``width=plot_width(k)``); ``shared_color=True`` resolves their
    colour scales into one (one legend, the same colour for the same value).
    """
    charts = list(charts)
    if not charts:
        raise ValueError("panels: no charts given")
    widths = [estimated_width(c) for c in charts]
    cols = len(charts)
    while cols > 1 and max(sum(widths[i:i + cols]) + GAP_PX * (cols - 1) for i in range(0, len(charts), cols)) > total:
        cols -= 1
    if cols == len(charts):
        out = alt.hconcat(*charts)
    elif cols == 1:
        out = alt.vconcat(*charts)
    else:
        out = alt.vconcat(*[alt.hconcat(*charts[i:i + cols]) for i in range(0, len(charts), cols)])
    out = out.resolve_scale(color="shared" if shared_color else "independent")
    if title:
        out = out.properties(title=title)
    return out


# --------------------------------------------------------------------------------------------------------------
# Colour policy
# --------------------------------------------------------------------------------------------------------------


def diverging_domain(values: Iterable[float] | pd.Series | np.ndarray, mid: float) -> list[float]:
    """Symmetric colour domain ``[mid - s, mid + s]`` covering every finite value (s > 0).

    Pass the values of every panel that is compared, so they share one domain.
    """
    v = np.asarray(list(values) if not isinstance(values, (np.ndarray, pd.Series)) else values, dtype=float)
    v = v[np.isfinite(v)]
    span = float(np.abs(v - mid).max()) if len(v) else 0.0
    span = span or 1.0
    return [mid - span, mid + span]


def diverging_legend(name: str, mid: float, below: str, above: str) -> str:
    """Legend title that states the direction: e.g. ``RH: red < 1 = moved closer, blue > 1 = apart``."""
    return f"{name}: red < {mid:g} = {below}, blue > {mid:g} = {above}"


# --------------------------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------------------------


def _legend(title: str | None, direction: str = "horizontal") -> alt.Legend:
    return alt.Legend(title=title, orient="bottom", direction=direction, titleLimit=CONTENT_WIDTH - 40,
                      gradientLength=min(220, CONTENT_WIDTH // 3), labelLimit=CONTENT_WIDTH // 2)


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
    scheme: str = DIVERGING,
    fmt: str = ".2f",
    text: bool = True,
    tooltip: Sequence[str] | None = None,
    width: int | None = None,
    height: int | None = None,
    domain: Sequence[float] | None = None,
    legend: str | None = None,
    x_title: str | None = None,
    y_title: str | None = None,
    max_width: int = CONTENT_WIDTH,
) -> alt.LayerChart:
    """A cell heatmap of ``df[value]`` over ``df[x]`` × ``df[y]``, annotated with the value.

    With ``mid`` the palette is diverging (red below ``mid``, blue above), centred at ``mid`` and symmetric around
    it (``domain`` overrides the span: pass :func:`diverging_domain` of all compared panels). The plot is at most
    ``max_width`` px wide including the y axis; the legend (title ``legend``) sits below it.
    """
    for col in (x, y, value):
        if col not in df.columns:
            raise ValueError(f"heatmap: column {col!r} not in data; columns are {list(df.columns)}")
    n_x = len(x_order) if x_order is not None else df[x].nunique()
    n_y = len(y_order) if y_order is not None else df[y].nunique()
    fit = max_width - Y_AXIS_PX  # many columns get narrow cells (and no numbers) rather than a too-wide chart
    width = min(width or int(MAX_CELL_PX * max(n_x, 1)), fit)
    width = max(width, 120)
    cell = width / max(n_x, 1)
    text = text and cell >= MIN_CELL_PX * 1.5
    height = height or max(60, int(min(26, max(16, cell * 0.8)) * n_y))
    if mid is not None:
        dom = list(domain) if domain is not None else diverging_domain(df[value], mid)
        scale = alt.Scale(scheme=scheme, domainMid=mid, domain=dom)
    else:
        scheme = scheme if scheme != DIVERGING else "viridis"
        scale = alt.Scale(scheme=scheme, domain=list(domain)) if domain else alt.Scale(scheme=scheme)
    tips = list(tooltip) if tooltip is not None else [x, y, alt.Tooltip(value, format=fmt)]
    base = alt.Chart(df).encode(
        x=alt.X(f"{x}:N", sort=list(x_order) if x_order is not None else None, title=x_title or x,
                axis=alt.Axis(labelAngle=-45, labelLimit=90)),
        y=alt.Y(f"{y}:N", sort=list(y_order) if y_order is not None else None, title=y_title or y,
                axis=alt.Axis(labelLimit=80)),
    )
    rect = base.mark_rect().encode(color=alt.Color(f"{value}:Q", scale=scale, legend=_legend(legend or value)),
                                   tooltip=tips)
    layers = [rect]
    if text:
        font = 9 if cell >= 30 else 7
        layers.append(base.mark_text(fontSize=font).encode(text=alt.Text(f"{value}:Q", format=fmt), tooltip=tips))
    return alt.layer(*layers).properties(title=title, width=width, height=height)


def compare_heatmaps(
    frames: Sequence[tuple[pd.DataFrame, str]],
    x: str,
    y: str,
    value: str,
    *,
    mid: float,
    legend: str,
    total: int = CONTENT_WIDTH,
    **kwargs,
) -> alt.TopLevelMixin:
    """Heatmaps of the same quantity that are compared: one shared diverging domain, one legend, fitted layout.

    ``frames``: (data, panel title) pairs. Panels go side by side when each can keep cells of at least
    ``MIN_CELL_PX`` in the column, otherwise they are stacked at full width.
    """
    if not frames:
        raise ValueError("compare_heatmaps: no frames given")
    dom = diverging_domain(np.concatenate([np.asarray(d[value], dtype=float) for d, _ in frames]), mid)
    n_x = max(len(kwargs.get("x_order") or []) or d[x].nunique() for d, _ in frames)
    k = len(frames)
    while k > 1 and plot_width(k, total=total) < max(MIN_CELL_PX * 1.6, 20) * n_x:
        k -= 1
    w = min(plot_width(k, total=total), MAX_CELL_PX * n_x)
    charts = [heatmap(d, x, y, value, title=t, mid=mid, domain=dom, legend=legend, width=w, **kwargs)
              for d, t in frames]
    return panels(charts, total=total, shared_color=True)


def line(
    df: pd.DataFrame,
    x: str,
    y: str,
    color: str | None = None,
    *,
    title: str,
    log_x: bool = False,
    tooltip: Sequence[str] | None = None,
    width: int | None = None,
    height: int = 220,
    points: bool = True,
    x_title: str | None = None,
    y_title: str | None = None,
    legend: str | None = None,
) -> alt.Chart:
    """A line chart of ``df[y]`` against ``df[x]``, one line per ``df[color]``; axes start where the data are,
    the legend sits below the plot (never clipped)."""
    enc = {
        "x": alt.X(f"{x}:Q", scale=alt.Scale(type="log") if log_x else alt.Scale(zero=False), title=x_title or x),
        "y": alt.Y(f"{y}:Q", scale=alt.Scale(zero=False), title=y_title or y),
        "tooltip": list(tooltip) if tooltip is not None else [x, y] + ([color] if color else []),
    }
    if color:
        enc["color"] = alt.Color(f"{color}:N", legend=_legend(legend or color, direction="horizontal"))
    return alt.Chart(df).mark_line(point=points).encode(**enc).properties(
        title=title, width=width or plot_width(1), height=height)


def padded_domain(*arrays: Iterable[float], include: Sequence[float] = (), pad: float = 0.08) -> list[float]:
    """``[lo, hi]`` around every finite value of ``arrays`` (and ``include``), padded by ``pad`` of the range, so
    that an axis starts where the data are rather than at 0."""
    vals = np.concatenate([np.asarray(list(a), dtype=float).ravel() for a in arrays] + [np.asarray(include, float)])
    vals = vals[np.isfinite(vals)]
    if not len(vals):
        return [0.0, 1.0]
    lo, hi = float(vals.min()), float(vals.max())
    span = hi - lo or max(abs(hi), 1.0) * 0.1
    return [lo - pad * span, hi + pad * span]


def scatter_vs(
    df: pd.DataFrame,
    x: str,
    y: str,
    *,
    title: str,
    x_title: str,
    y_title: str,
    null: float | None = None,
    lo: str | None = None,
    hi: str | None = None,
    color: str | None = None,
    legend: str | None = None,
    tooltip: Sequence[str] | None = None,
    size: int | None = None,
) -> alt.LayerChart:
    """Scatter of ``y`` (ours, with optional ``lo``/``hi`` bars) against ``x`` (a reference), with the identity line
    and rules at ``null``. Both axes share one domain padded around the data (not from 0), so the identity is the
    diagonal; the legend sits below."""
    for col in [c for c in (x, y, lo, hi, color) if c]:
        if col not in df.columns:
            raise ValueError(f"scatter_vs: column {col!r} not in data; columns are {list(df.columns)}")
    d = df.dropna(subset=[x, y])
    arrays = [d[x], d[y]] + ([d[lo], d[hi]] if lo and hi else [])
    dom = padded_domain(*arrays, include=[null] if null is not None else [])
    size = size or min(360, plot_width(1))
    sx = alt.Scale(domain=dom, zero=False, nice=False)
    sy = alt.Scale(domain=dom, zero=False, nice=False)
    enc = {"x": alt.X(f"{x}:Q", scale=sx, title=x_title), "y": alt.Y(f"{y}:Q", scale=sy, title=y_title),
           "tooltip": list(tooltip) if tooltip is not None else [c for c in (x, y, lo, hi, color) if c]}
    if color:
        enc["color"] = alt.Color(f"{color}:N", legend=_legend(legend or color))
    layers = []
    ident = pd.DataFrame({"a": dom, "b": dom})
    layers.append(alt.Chart(ident).mark_line(strokeDash=[4, 4], color="gray").encode(
        x=alt.X("a:Q", scale=sx), y=alt.Y("b:Q", scale=sy)))
    if null is not None:
        n = pd.DataFrame({"v": [null]})
        layers.append(alt.Chart(n).mark_rule(color="lightgray").encode(x=alt.X("v:Q", scale=sx)))
        layers.append(alt.Chart(n).mark_rule(color="lightgray").encode(y=alt.Y("v:Q", scale=sy)))
    if lo and hi:
        layers.append(alt.Chart(d).mark_rule(opacity=0.5).encode(
            x=alt.X(f"{x}:Q", scale=sx), y=alt.Y(f"{lo}:Q", scale=sy), y2=f"{hi}:Q"))
    layers.append(alt.Chart(d).mark_circle(size=50).encode(**enc))
    return alt.layer(*layers).properties(title=title, width=size, height=size)


def fmt_sig(value: float, digits: int = 3) -> str:
    """A number with ``digits`` significant digits in plain (not scientific) notation, never ``-0``."""
    if value is None or not math.isfinite(float(value)):
        return "–"
    v = float(value)
    if v == 0:
        return "0"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(v)))))
    s = f"{v:.{decimals}f}"
    return s[1:] if s.startswith("-") and float(s) == 0 else s


def vega_bundle() -> str:
    """vl-convert's bundle for Altair's Vega-Lite version, wrapped so it only defines ``window.rharmVegaEmbed``."""
    import vl_convert

    major_minor = ".".join(alt.SCHEMA_VERSION.split(".")[:2])
    bundle = vl_convert.javascript_bundle("window.rharmVegaEmbed = vegaEmbed;", vl_version=major_minor)
    return "/* vega-embed bundle from vl-convert, wrapped by rharm.charts */\n(function () {\n" + bundle + "\n})();\n"
