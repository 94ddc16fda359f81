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

Layout. Every chart of the package is built here, and nowhere else (``tests/test_charts.py`` scans for it): the
science modules compute, this module draws. Sections: primitives (renderer, policies, :func:`heatmap`,
:func:`line`, :func:`scatter_vs`, :func:`panels`), then one section per subject: representation harm, allocation
harm and mediation, text, theory, mitigation, audit. Each builder takes plain data (DataFrames, arrays) and
returns an Altair chart.
"""

from __future__ import annotations

import importlib.resources
import json
import uuid
from typing import Iterable, Sequence

import altair as alt
import numpy as np
import pandas as pd

from rharm.core.common import fmt_sig  # noqa: F401  (charts.fmt_sig: the book's number format)

# ==============================================================================================================
# Primitives: the offline renderer, the width and colour policies, and the generic builders every chapter uses
# ==============================================================================================================

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
#: every RH heatmap of the book uses this one colour domain (centred at 1; values beyond it take the end colours),
#: so the same colour means the same RH on every page (stated on the Glossary page)
RH_DOMAIN = (0.6, 1.4)
#: one colour per meaning across the book (Okabe-Ito, distinguishable by colour-blind readers; the Glossary page
#: lists them): our measurement, the paper's published numbers, the theory, the three mediation effects, and
#: whether an interval excludes the null
COLOURS = {
    "ours": "#0072B2", "paper": "#E69F00", "theory": "#009E73",
    "TE": "#CC79A7", "NIE": "#56B4E9", "NDE": "#D55E00",
    "excludes": "#000000", "includes": "#999999",
}
#: smallest font (px) of any chart text, at any width (the page's renderer refits charts to their container
#: rather than shrinking them: resources/vega_fit.js); below NARROW_PX side-by-side panels are stacked
MIN_FONT_PX, NARROW_PX = 11, 600
#: axis titles in words for the column names heatmaps are drawn from, when the caller gives none
AXIS_WORDS = {"other": "other class j", "minority": "minority class i", "predicted": "predicted class j",
              "row": "class i", "column": "class j", "row block": "row block i", "column block": "column block j"}
#: cell labels of a heatmap are drawn only in cells at least this wide (px)
CELL_TEXT_PX = 28
#: readable defaults for every chart (fonts never below MIN_FONT_PX)
CONFIG = {
    "axis": {"labelFontSize": MIN_FONT_PX, "titleFontSize": 12},
    "legend": {"labelFontSize": MIN_FONT_PX, "titleFontSize": 12},
    "header": {"labelFontSize": 12, "titleFontSize": 12},
    "title": {"fontSize": 14, "subtitleFontSize": 12},
    "text": {"fontSize": MIN_FONT_PX},
}


def meaning(label) -> str | None:
    """The key of :data:`COLOURS` a series label stands for ("experiment (interval band)" -> "ours", "theory (α
    0.77)" -> "theory", "paper" -> "paper", "NIE" -> "NIE"), or None."""
    s = str(label).strip()
    if s.upper() in ("TE", "NIE", "NDE"):
        return s.upper()
    low = s.lower()
    for key, starts in (("ours", ("experiment", "ours", "our ", "rharm")), ("theory", ("theory",)),
                        ("paper", ("paper", "published"))):
        if low.startswith(starts):
            return key
    return None


def _palette(spec: dict) -> None:
    """Give a nominal colour encoding without a scale the book's colours (:data:`COLOURS`) when each of its values
    stands for a different one of them (our measurement, the paper, the theory, TE, NIE, NDE)."""
    datasets = spec.get("datasets") or {}

    def walk(node, rows):
        if isinstance(node, list):
            for n in node:
                walk(n, rows)
            return
        if not isinstance(node, dict):
            return
        data = node.get("data")
        if isinstance(data, dict):  # the rows this view draws (a named dataset or inline values)
            rows = datasets.get(data.get("name"), data.get("values", rows)) if "name" in data else data.get(
                "values", rows)
        color = (node.get("encoding") or {}).get("color")
        if isinstance(color, dict) and color.get("type") == "nominal" and isinstance(color.get("field"), str) \
                and "scale" not in color and isinstance(rows, list):
            values = sorted({str(r[color["field"]]) for r in rows
                             if isinstance(r, dict) and r.get(color["field"]) is not None})
            keys = [meaning(v) for v in values]
            if values and None not in keys and len(set(keys)) == len(keys):
                color["scale"] = {"domain": values, "range": [COLOURS[k] for k in keys]}
        for key, child in node.items():
            if key not in ("datasets", "data", "encoding"):
                walk(child, rows)

    walk(spec, None)


def readable(spec: dict) -> dict:
    """``spec`` with :data:`CONFIG`'s font sizes as minimums (explicit larger sizes are kept), and the book's colour
    for every series that stands for one of :data:`COLOURS`' meanings (:func:`meaning`)."""
    config = spec.setdefault("config", {})
    for group, values in CONFIG.items():
        g = config.setdefault(group, {})
        for key, v in values.items():
            if not isinstance(g.get(key), (int, float)) or g[key] < v:
                g[key] = v
    _palette(spec)
    return spec


_STYLE = (
    "<style>.rharm-vega{max-width:100%;overflow-x:visible}"
    ".rharm-vega .vega-embed{display:block;max-width:100%}"
    ".rharm-vega svg.marks{max-width:100%;height:auto}</style>"
)


def _render(spec: dict, **_: object) -> dict:
    spec = readable(spec)
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


def chart_html(chart: alt.TopLevelMixin) -> str:
    """The offline renderer's HTML for one chart (for pages built outside a notebook, e.g. ``report.html``)."""
    return _render(chart.to_dict())["text/html"]


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


def _heatmap_size(n_x: int, n_y: int, width: int | None, height: int | None, max_width: int,
                  text: bool) -> tuple[int, int, bool]:
    """(width, height, text): many columns get narrow cells (and no numbers) rather than a too-wide chart."""
    fit = max_width - Y_AXIS_PX
    width = min(width or int(MAX_CELL_PX * max(n_x, 1)), fit)
    width = max(width, 120)
    cell = width / max(n_x, 1)
    text = text and cell >= CELL_TEXT_PX
    height = height or max(60, int(min(26, max(18, cell * 0.8)) * n_y))
    return width, height, text


def _interval_columns(df: pd.DataFrame, value: str, mid: float | None, lo: str | None,
                      hi: str | None) -> tuple[str | None, str | None]:
    """The interval columns: as given, else found by their names (lo/hi, ci_low/ci_high, <value>_lo/<value>_hi)."""
    if lo is None and hi is None and mid is not None:
        for a, b in (("lo", "hi"), ("ci_low", "ci_high"), (f"{value}_lo", f"{value}_hi")):
            if a in df.columns and b in df.columns:
                return a, b
    return lo, hi


def _heatmap_scale(values: pd.Series, mid: float | None, scheme: str, domain: Sequence[float] | None) -> alt.Scale:
    """The colour scale: the book's RH scale at mid 1, diverging around another mid, sequential without one."""
    if mid is not None and mid == 1.0:
        return alt.Scale(scheme=scheme, domainMid=mid, domain=list(RH_DOMAIN), clamp=True)
    if mid is not None:
        dom = list(domain) if domain is not None else diverging_domain(values, mid)
        return alt.Scale(scheme=scheme, domainMid=mid, domain=dom)
    scheme = scheme if scheme != DIVERGING else "viridis"
    return alt.Scale(scheme=scheme, domain=list(domain)) if domain else alt.Scale(scheme=scheme)


def _outlines(df: pd.DataFrame, x: str, y: str, x_order, y_order, mid: float, lo: str, hi: str,
              tips: list) -> tuple[alt.Chart | None, str]:
    """The outline layer of the cells whose interval excludes ``mid`` (None when none does), and the subtitle."""
    excl = (pd.to_numeric(df[lo], errors="coerce") > mid) | (pd.to_numeric(df[hi], errors="coerce") < mid)
    marked = df[excl.fillna(False).to_numpy()]
    layer = None
    if len(marked):
        layer = alt.Chart(marked).mark_rect(filled=False, stroke=COLOURS["excludes"], strokeWidth=2.5).encode(
            x=alt.X(f"{x}:N", sort=list(x_order) if x_order is not None else None),
            y=alt.Y(f"{y}:N", sort=list(y_order) if y_order is not None else None), tooltip=tips)
    subtitle = (f"outlined: the cell's interval excludes {mid:g} ({len(marked)} of {len(df)} cells)"
                if len(marked) else f"no cell's interval excludes {mid:g}")
    return layer, subtitle


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
    lo: str | None = None,
    hi: str | None = None,
) -> alt.LayerChart:
    """A cell heatmap of ``df[value]`` over ``df[x]`` × ``df[y]``, annotated with the value.

    With ``mid`` the palette is diverging (red below ``mid``, blue above), centred at ``mid`` and symmetric around
    it (``domain`` overrides the span: pass :func:`diverging_domain` of all compared panels). Every RH heatmap
    (``mid=1``) uses the book's one RH scale, :data:`RH_DOMAIN`, whatever ``domain`` says. The plot is at most
    ``max_width`` px wide including the y axis; the legend (title ``legend``) sits below it.

    Intervals: with ``lo``/``hi`` columns (found by themselves when named ``lo``/``hi``, ``ci_low``/``ci_high`` or
    ``<value>_lo``/``<value>_hi``), a cell whose interval excludes ``mid`` is outlined in black, and the subtitle
    says so; the interval is in the tooltip.
    """
    for col in (x, y, value):
        if col not in df.columns:
            raise ValueError(f"heatmap: column {col!r} not in data; columns are {list(df.columns)}")
    n_x = len(x_order) if x_order is not None else df[x].nunique()
    n_y = len(y_order) if y_order is not None else df[y].nunique()
    width, height, text = _heatmap_size(n_x, n_y, width, height, max_width, text)
    lo, hi = _interval_columns(df, value, mid, lo, hi)
    scale = _heatmap_scale(df[value], mid, scheme, domain)
    tips = list(tooltip) if tooltip is not None else [x, y, alt.Tooltip(value, format=fmt)]
    base = alt.Chart(df).encode(
        x=alt.X(f"{x}:N", sort=list(x_order) if x_order is not None else None, title=x_title or AXIS_WORDS.get(x, x),
                axis=alt.Axis(labelAngle=-45, labelLimit=90)),
        y=alt.Y(f"{y}:N", sort=list(y_order) if y_order is not None else None, title=y_title or AXIS_WORDS.get(y, y),
                axis=alt.Axis(labelLimit=80)),
    )
    rect = base.mark_rect().encode(color=alt.Color(f"{value}:Q", scale=scale, legend=_legend(legend or value)),
                                   tooltip=tips)
    layers = [rect]
    subtitle = None
    if mid is not None and lo and hi and lo in df.columns and hi in df.columns:
        outline, subtitle = _outlines(df, x, y, x_order, y_order, mid, lo, hi, tips)
        if outline is not None:
            layers.append(outline)
    if text:
        layers.append(base.mark_text(fontSize=MIN_FONT_PX).encode(text=alt.Text(f"{value}:Q", format=fmt),
                                                                  tooltip=tips).properties(
            name=f"rharm-cell-text-{max(n_x, 1)}"))
    head = alt.Title(title, subtitle=subtitle) if subtitle else title
    return alt.layer(*layers).properties(title=head, width=width, height=height)


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


def line_band(
    df: pd.DataFrame,
    x: str,
    y: str,
    lo: str,
    hi: str,
    color: str,
    *,
    title: str,
    log_x: bool = False,
    width: int | None = None,
    height: int = 220,
    x_title: str | None = None,
    y_title: str | None = None,
    legend: str | None = None,
) -> alt.LayerChart:
    """Lines of ``df[y]`` against ``df[x]`` (one per ``df[color]``) with a shaded band from ``df[lo]`` to ``df[hi]``
    where those are finite (an estimate's interval; a series without one, e.g. a theory curve, is drawn as a line
    only). The band says how sure each point is, so a zigzag inside it reads as noise."""
    xs = alt.X(f"{x}:Q", scale=alt.Scale(type="log") if log_x else alt.Scale(zero=False), title=x_title or x)
    col = alt.Color(f"{color}:N", legend=_legend(legend or color, direction="horizontal"))
    tip = [x, y, lo, hi, color]
    base = alt.Chart(df)
    band = base.transform_filter(f"isFinite(datum['{lo}']) && isFinite(datum['{hi}'])").mark_area(opacity=0.2).encode(
        x=xs, y=alt.Y(f"{lo}:Q", scale=alt.Scale(zero=False), title=y_title or y), y2=f"{hi}:Q", color=col)
    lines = base.mark_line(point=True).encode(x=xs, y=alt.Y(f"{y}:Q", scale=alt.Scale(zero=False),
                                                            title=y_title or y), color=col, tooltip=tip)
    return alt.layer(band, lines).properties(title=title, width=width or plot_width(1), height=height)


def interval_dots(
    df: pd.DataFrame,
    x: str,
    y: str,
    lo: str,
    hi: str,
    color: str,
    *,
    title: str,
    x_title: str | None = None,
    y_title: str | None = None,
    legend: str | None = None,
    rule_at: float | None = None,
    width: int | None = None,
    height: int = 220,
) -> alt.LayerChart:
    """One dot per row at ``df[y]`` with a vertical bar from ``df[lo]`` to ``df[hi]`` where finite, categories of
    ``df[x]`` side by side (offset by ``df[color]``), and an optional reference line at ``rule_at``."""
    xs = alt.X(f"{x}:N", title=x_title or x, axis=alt.Axis(labelAngle=0))
    off = alt.XOffset(f"{color}:N")
    col = alt.Color(f"{color}:N", legend=_legend(legend or color, direction="horizontal"))
    ys = alt.Y(f"{y}:Q", scale=alt.Scale(zero=False), title=y_title or y)
    base = alt.Chart(df)
    bars = base.transform_filter(f"isFinite(datum['{lo}']) && isFinite(datum['{hi}'])").mark_rule().encode(
        x=xs, xOffset=off, y=alt.Y(f"{lo}:Q", scale=alt.Scale(zero=False), title=y_title or y), y2=f"{hi}:Q",
        color=col)
    dots = base.mark_point(filled=True, size=60).encode(x=xs, xOffset=off, y=ys, color=col,
                                                        tooltip=[x, color, y, lo, hi])
    layers = [bars, dots]
    if rule_at is not None:
        layers.append(alt.Chart(pd.DataFrame({"v": [rule_at]})).mark_rule(strokeDash=[4, 4], color="grey")
                      .encode(y="v:Q"))
    return alt.layer(*layers).properties(title=title, width=width or plot_width(1), height=height)


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


def vega_bundle() -> str:
    """vl-convert's bundle for Altair's Vega-Lite version, wrapped so it only defines ``window.rharmVegaEmbed``."""
    import vl_convert

    major_minor = ".".join(alt.SCHEMA_VERSION.split(".")[:2])
    bundle = vl_convert.javascript_bundle("window.rharmVegaEmbed = vegaEmbed;", vl_version=major_minor)
    # every chart is refitted to its container before it is drawn (fonts >= MIN_FONT_PX, panels stacked below
    # NARROW_PX, widths that fit): resources/vega_fit.js
    fit = (importlib.resources.files("rharm") / "resources" / "vega_fit.js").read_text()
    return ("/* vega-embed bundle from vl-convert, wrapped by rharm.page.charts */\n(function () {\n" + bundle + "\n"
            + fit + "\nwindow.rharmVegaEmbed = rharmEmbedFitted(window.rharmVegaEmbed);\n})();\n")


# ==============================================================================================================
# Representation harm (representation-harm and scale-study chapters)
# ==============================================================================================================


RH_LEGEND = "RH: red < 1 = minority moved closer (harm), blue > 1 = apart"


def rh_heatmap(table: pd.DataFrame, *, title: str, value: str = "rh", order: Sequence[str] | None = None,
               rows: Sequence[str] | None = None, domain: Sequence[float] | None = None, width: int | None = None):
    """Diverging heatmap of a long RH table (from :func:`rharm.harm.metrics.long_rh` or ``rharm.core.reference.long``),
    centred at 1.

    Rows = minority class, columns = other class; tooltips carry every column of ``table`` (CI, paper value).
    Pass one ``domain`` (:func:`diverging_domain` of every panel) to heatmaps that are compared.
    """
    tooltip = [c for c in table.columns]
    return heatmap(table, x="other", y="minority", value=value, title=title,
                   x_order=list(order) if order else None, y_order=list(rows) if rows else None, mid=1.0,
                   fmt=".2f", tooltip=tooltip, domain=domain, width=width, legend=RH_LEGEND,
                   x_title="other class j", y_title="minority class i")


def ours_vs_paper_scatter(table: pd.DataFrame, *, title: str, x: str = "paper", y: str = "rh", lo: str | None = "lo",
                          hi: str | None = "hi"):
    """Scatter of our RH (y, with CI bars) against the paper's (x) per cell, with the identity line and RH = 1 rules.

    ``table``: a long table with columns minority, other, ``x``, ``y`` (and ``lo``/``hi``); rows with NaN dropped.
    """
    d = table.dropna(subset=[x, y]).copy()
    d["cell"] = d.minority + " → " + d.other
    d["cell kind"] = np.where(d.minority == d.other, "diagonal (i = j)", "off-diagonal")
    have_ci = bool(lo and hi and lo in d and hi in d)
    return scatter_vs(d, x, y, title=title, x_title="paper's RH (SimCLR, ResNet-34, 1:100)",
                      y_title="our RH", null=1.0, lo=lo if have_ci else None, hi=hi if have_ci else None,
                      color="cell kind", legend="kind of cell",
                      tooltip=[c for c in ["cell", x, y, lo, hi] if c and c in d])


def paired_chart(df: pd.DataFrame, *, title: str):
    """Strip chart of log RH per other class: the paired effect (one dot per seed) against the noise floor.

    ``df``: :func:`rharm.runs.images.paired_rh`'s long frame (columns kind, seed, other_class, rh, log_rh).
    """
    from rharm.core.common import CIFAR10_CLASSES

    return alt.Chart(df).mark_circle(size=60, opacity=0.8).encode(
        x=alt.X("other_class:N", title="other class j", sort=list(CIFAR10_CLASSES)),
        y=alt.Y("log_rh:Q", title="log RH(i, j)  (< 0: i moved toward j)"),
        color=alt.Color("kind:N", title="models compared", legend=alt.Legend(orient="bottom")),
        xOffset="kind:N",
        tooltip=["kind", "seed", "other_class", alt.Tooltip("rh:Q", format=".3f")],
    ).properties(title=title, width=420, height=220)


def throughput_chart(tp: pd.DataFrame):
    """Bars of training images per second per backbone, one bar per batch size.

    ``tp``: :func:`rharm.runs.images.throughput_table`'s frame (columns backbone, batch_size, images_per_s,
    parameters, threads).
    """
    return alt.Chart(tp).mark_bar().encode(
        x=alt.X("images_per_s:Q", title="training images per second (two views each)"),
        y=alt.Y("backbone:N", title=None),
        color=alt.Color("batch_size:N", title="batch size (images)", legend=alt.Legend(orient="bottom")),
        yOffset="batch_size:N",
        tooltip=["backbone", "batch_size", alt.Tooltip("images_per_s:Q", format=".0f"), "parameters", "threads"],
    ).properties(title="SimCLR training throughput on this machine", width=360)


# ==============================================================================================================
# Allocation harm and mediation (allocation-harm chapter)
# ==============================================================================================================


EFFECT_LEGEND = ("change in P(predict j | true i): red < 0 = less often (on the diagonal: accuracy lost), "
                 "blue > 0 = more")


def effect_heatmap(table: pd.DataFrame, effect: str, *, title: str, order: Sequence[str] | None = None,
                   rows: Sequence[str] | None = None, domain: Sequence[float] | None = None,
                   width: int | None = None):
    """Diverging heatmap (centred at 0) of one effect from :func:`rharm.harm.mediation.long_effects`; CI and paper value
    in tooltips.

    Pass one ``domain`` (:func:`diverging_domain` of every panel) to heatmaps that are compared.
    """
    d = table[table.effect == effect]
    if order is not None:
        d = d[d.predicted.isin(order)]
    if rows is not None:
        d = d[d.minority.isin(rows)]
    return heatmap(d, x="predicted", y="minority", value="value", title=title,
                   x_order=list(order) if order else None, y_order=list(rows) if rows else None, mid=0.0,
                   fmt=".2f", tooltip=list(d.columns), domain=domain, width=width, legend=EFFECT_LEGEND,
                   x_title="predicted class j", y_title="minority class i")


def mediation_diagram(direct_label: str = "direct part (NDE = TE − NIE; paper: −rNDE)",
                      indirect_label: str = "NIE"):
    """The mediation DAG as an Altair chart: T -> M -> allocation harm (NIE) and T -> allocation harm (direct)."""
    nodes = pd.DataFrame({"name": ["T: minority underrepresented", "M: CL representation", "Y: allocation harm"],
                          "x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 0.0]})
    edges = pd.DataFrame({"x": [0.0, 1.0, 0.0], "y": [0.0, 1.0, 0.0], "x2": [1.0, 2.0, 2.0], "y2": [1.0, 0.0, 0.0],
                          "label": ["", indirect_label, direct_label], "lx": [0.5, 1.5, 1.0], "ly": [0.5, 0.5, -0.12],
                          "path": ["indirect", "indirect", "direct"]})
    sx, sy = alt.Scale(domain=[-0.5, 2.5]), alt.Scale(domain=[-0.3, 1.3])
    noaxis = dict(axis=None)
    lines = alt.Chart(edges).mark_rule(strokeWidth=2).encode(
        x=alt.X("x:Q", scale=sx, **noaxis), y=alt.Y("y:Q", scale=sy, **noaxis), x2="x2", y2="y2",
        color=alt.Color("path:N", legend=None))
    arrow = alt.Chart(edges.assign(tx=lambda d: d.x + 0.8 * (d.x2 - d.x), ty=lambda d: d.y + 0.8 * (d.y2 - d.y))
                      ).mark_point(shape="triangle", size=120, filled=True).encode(
        x=alt.X("tx:Q", scale=sx), y=alt.Y("ty:Q", scale=sy), color=alt.Color("path:N", legend=None))
    labels = alt.Chart(edges).mark_text(fontSize=12).encode(x=alt.X("lx:Q", scale=sx), y=alt.Y("ly:Q", scale=sy),
                                                            text="label:N")
    pts = alt.Chart(nodes).mark_circle(size=900, color="white", stroke="black").encode(
        x=alt.X("x:Q", scale=sx), y=alt.Y("y:Q", scale=sy))
    names = alt.Chart(nodes).mark_text(dy=-28, fontSize=13, fontWeight="bold").encode(
        x=alt.X("x:Q", scale=sx), y=alt.Y("y:Q", scale=sy), text="name:N")
    return alt.layer(lines, arrow, pts, names, labels).properties(width=520, height=220,
                                                                  title="Causal mediation of allocation harm")


# ==============================================================================================================
# Text (text-harm chapter)
# ==============================================================================================================


def loss_chart(curves: pd.DataFrame, *, title: str):
    """Loss per step (columns step, loss, run) on a log y axis."""
    return alt.Chart(curves, title=title).mark_line(point=False).encode(
        x=alt.X("step:Q", title="training step"),
        y=alt.Y("loss:Q", title="SimCSE loss (MNRL)", scale=alt.Scale(type="log")),
        color=alt.Color("run:N", legend=alt.Legend(title="training run", orient="bottom", direction="vertical",
                                                   labelLimit=560)),
        tooltip=["run", "step", alt.Tooltip("loss:Q", format=".2e")],
    ).properties(width=480, height=240)


def harm_plane_chart(points: pd.DataFrame, summary: pd.DataFrame | None = None, *, title: str):
    """Our reconstructed text-metric plane: x = RH toward the same profession's other gender, y = RH toward the
    nearest profession of the same gender; rules at 1; per-seed points and (optionally) the mean with its interval.

    ``points``: columns seed, other_gender, nearest_profession. ``summary``: one row with x, x_lo, x_hi, y, y_lo,
    y_hi.
    """
    vals = np.concatenate([points[["other_gender", "nearest_profession"]].to_numpy().ravel(), [1.0]])
    if summary is not None:
        vals = np.concatenate([vals, summary[["x_lo", "x_hi", "y_lo", "y_hi"]].to_numpy().ravel()])
    vals = vals[np.isfinite(vals)]
    pad = max(0.02, 0.15 * (vals.max() - vals.min()))
    dom = [float(vals.min() - pad), float(vals.max() + pad)]
    sc = alt.Scale(domain=dom, zero=False, nice=False)  # every layer names it: a layer without it would add 0
    x = alt.X("other_gender:Q", title="RH toward same profession, other gender", scale=sc)
    y = alt.Y("nearest_profession:Q", title="RH toward nearest profession, same gender", scale=sc)
    base = alt.Chart(points).mark_point(filled=True, size=60, opacity=0.7).encode(
        x=x, y=y, tooltip=["seed", alt.Tooltip("other_gender:Q", format=".3f"),
                           alt.Tooltip("nearest_profession:Q", format=".3f")])
    one = pd.DataFrame({"v": [1.0]})
    layers = [alt.Chart(one).mark_rule(strokeDash=[4, 4], color="gray").encode(x=alt.X("v:Q", scale=sc)),
              alt.Chart(one).mark_rule(strokeDash=[4, 4], color="gray").encode(y=alt.Y("v:Q", scale=sc))]
    # quadrant names in the four corners, short enough that two fit side by side in the plot
    labels = pd.DataFrame({
        "x": [dom[0], dom[1], dom[0], dom[1]], "y": [dom[0], dom[0], dom[1], dom[1]],
        "align": ["left", "right", "left", "right"],
        "text": ["closer to both", "closer to nearest profession", "closer to other gender", "closer to neither"]})
    for _, r in labels.iterrows():
        layers.append(alt.Chart(pd.DataFrame([r])).mark_text(
            align=r["align"], baseline="bottom" if r["y"] == dom[0] else "top", dx=4 if r["align"] == "left" else -4,
            dy=-4 if r["y"] == dom[0] else 4, color="gray", fontSize=9).encode(
                x=alt.X("x:Q", scale=sc), y=alt.Y("y:Q", scale=sc), text="text:N"))
    layers.append(base)
    if summary is not None:
        s = alt.Chart(summary)
        layers += [
            s.mark_rule(color="black").encode(x=alt.X("x_lo:Q", scale=sc), x2="x_hi:Q", y=alt.Y("y:Q", scale=sc)),
            s.mark_rule(color="black").encode(y=alt.Y("y_lo:Q", scale=sc), y2="y_hi:Q", x=alt.X("x:Q", scale=sc)),
            s.mark_point(shape="diamond", size=120, color="black", filled=True).encode(
                x=alt.X("x:Q", scale=sc), y=alt.Y("y:Q", scale=sc)),
        ]
    return alt.layer(*layers, title=title).properties(width=380, height=380)


def interval_chart(summary: pd.DataFrame, *, category: str, title: str, x_title: str, reference: float | None = None,
                   color: str | None = None, legend: str | None = None):
    """Mean with interval per category (columns ``category``, mean, lo, hi; optional ``color``, its legend titled
    ``legend``), reference rule. TE, NIE and NDE take the book's colours (:data:`COLOURS`)."""
    order = list(dict.fromkeys(summary[category]))
    y = alt.Y(f"{category}:N", sort=order, title=None)
    leg = alt.Legend(title=legend or color, orient="bottom", labelLimit=400)
    enc = {}
    if color:
        values = list(dict.fromkeys(summary[color]))
        scale = (alt.Scale(domain=values, range=[COLOURS[v] for v in values])
                 if set(values) <= {"TE", "NIE", "NDE"} else alt.Undefined)
        enc = {"color": alt.Color(f"{color}:N", legend=leg, scale=scale)}
    base = alt.Chart(summary)
    layers = [base.mark_rule().encode(x=alt.X("lo:Q", title=x_title, scale=alt.Scale(zero=False)), x2="hi:Q", y=y,
                                      **enc),
              base.mark_point(filled=True, size=50).encode(
                  x="mean:Q", y=y, tooltip=[category, alt.Tooltip("mean:Q", format=".3f"),
                                            alt.Tooltip("lo:Q", format=".3f"), alt.Tooltip("hi:Q", format=".3f")],
                  **enc)]
    if reference is not None:
        layers.append(alt.Chart(pd.DataFrame({"v": [reference]})).mark_rule(strokeDash=[4, 4], color="gray")
                      .encode(x="v:Q"))
    return alt.layer(*layers, title=title).properties(width=440)


# ==============================================================================================================
# Theory (theory chapter: the stochastic block model)
# ==============================================================================================================


def _matrix_frame(mat, std=None, *, value="value") -> pd.DataFrame:
    """Long frame (row block, column block, ``value``[, sd, label]) of a (K, K) matrix, blocks numbered from 1."""
    mat = np.asarray(mat)
    rows = []
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            row = {"row block": str(i + 1), "column block": str(j + 1), value: float(mat[i, j])}
            if std is not None:
                row["sd"] = float(std[i, j])
                row["label"] = f"{mat[i, j]:.2f} ± {std[i, j]:.2f}"
            rows.append(row)
    return pd.DataFrame(rows)


def connectivity_chart(connectivity, *, title: str = "connectivity α_ij"):
    """Heatmap of the (K, K) connectivity matrix (Altair chart); the matrix is checked as the theory checks it."""
    from rharm.theory import check_connectivity

    a = check_connectivity(connectivity)
    order = [str(i + 1) for i in range(a.shape[0])]
    return heatmap(
        _matrix_frame(a, value="probability"),
        "column block",
        "row block",
        "probability",
        title=title,
        x_order=order,
        y_order=order,
        scheme="blues",
        fmt=".2f",
        domain=[0.0, 1.0],
        legend="link probability α_ij",
    )


def node_cosine_charts(results: dict, majority_size: int):
    """One mean-cosine heatmap per n1, annotated ``mean ± sd`` (Altair), concatenated horizontally.

    ``results`` maps ``n1 -> (mean, std)`` from :func:`rharm.theory.sbm_node_cosines`. Titles give the block sizes
    the code ran, n = (n1, m, m) (the published figure's titles gave non-matching powers of two).
    """
    parts = []
    for n1, (mean, std) in results.items():
        df = _matrix_frame(mean, std, value="mean cosine")
        order = [str(i + 1) for i in range(np.asarray(mean).shape[0])]
        base = alt.Chart(df).encode(
            x=alt.X("column block:N", sort=order),
            y=alt.Y("row block:N", sort=order),
        )
        rect = base.mark_rect().encode(
            color=alt.Color(
                "mean cosine:Q",
                scale=alt.Scale(scheme="redblue", domain=[-1, 1], domainMid=0),
                legend=alt.Legend(orient="bottom", title="mean cosine: red < 0 = opposed, blue > 0 = aligned"),
            ),
            tooltip=["row block", "column block", alt.Tooltip("mean cosine:Q", format=".3f"),
                     alt.Tooltip("sd:Q", format=".3f")],
        )
        text = base.mark_text(fontSize=10).encode(text="label:N")
        parts.append(
            (rect + text).properties(title=f"n = ({n1}, {majority_size}, {majority_size})", width=200, height=150)
        )
    return panels(parts, shared_color=True)


def population_line_chart(sweep, *, pair: str = "cos12", solver: str = "lbfgs"):
    """cos(h_1*, h_2*) (``pair="cos12"``) or cos(h_2*, h_3*) (``"cos23"``) against pi_1 (log x), one line per
    alpha, one panel per objective. ``sweep`` is a :func:`rharm.theory.population_sweep` DataFrame."""
    from rharm.core.common import check_choice as _check_choice

    names = {"cos12": "cos(h1*, h2*)", "cos13": "cos(h1*, h3*)", "cos23": "cos(h2*, h3*)"}
    _check_choice("pair", pair, list(names))
    df = sweep[sweep["solver"] == solver].copy()
    df["alpha"] = df["alpha"].map(lambda a: f"{a:g}")
    parts = [
        line(
            df[df["objective"] == obj],
            "pi1",
            pair,
            "alpha",
            title=f"{names[pair]}, {obj} objective",
            log_x=True,
            tooltip=["alpha", "pi1", pair, "block_grad_norm", "spread"],
            width=plot_width(2),
            x_title="minority share π1 (log scale)",
            y_title=names[pair],
            legend="α (link probability)",
        )
        for obj in df["objective"].unique()
    ]
    return panels(parts)


def population_heatmap_charts(solutions: dict):
    """Population cosine heatmaps, one per key (e.g. ``"principled, π1=1/192"``) of (K, K) matrices."""
    parts = []
    for name, mat in solutions.items():
        mat = np.asarray(mat)
        order = [str(i + 1) for i in range(mat.shape[0])]
        parts.append(
            heatmap(
                _matrix_frame(mat, value="cosine"),
                "column block",
                "row block",
                "cosine",
                title=str(name),
                x_order=order,
                y_order=order,
                mid=0.0,
                domain=[-1.0, 1.0],
                fmt=".2f",
                width=150,
                legend="cosine: red < 0 = opposed, blue > 0 = aligned",
            )
        )
    return panels(parts, shared_color=True)


def published_comparison_chart(comparison, *, precision: float):
    """rharm minus published cosine against pi_1 (log x), one line per rharm source, one panel per block pair (full
    column width, stacked: three side by side were illegible); the grey band is ``+- precision``, where a value that
    rounds to the printed one falls.

    ``comparison`` is a :func:`rharm.theory.published.published_comparison` DataFrame.
    """
    names = {"cos12": "cos(h1*, h2*)", "cos13": "cos(h1*, h3*)", "cos23": "cos(h2*, h3*)"}
    parts = []
    for pair in comparison["pair"].unique():
        df = comparison[comparison["pair"] == pair]
        band = alt.Chart(pd.DataFrame({"lo": [-precision], "hi": [precision]})).mark_rect(
            color="lightgrey", opacity=0.5).encode(y="lo:Q", y2="hi:Q")
        ln = line(df, "pi1", "difference", "source", title=f"{names[pair]}: rharm − published",
                  log_x=True, tooltip=["pi1_label", "source", "published", "cosine", "difference"],
                  width=plot_width(1), height=150, x_title="minority share π1 (log scale)",
                  y_title="rharm − published", legend="rharm solution")
        parts.append(band + ln)
    return panels(parts)


# ==============================================================================================================
# Mitigation (mitigation chapter)
# ==============================================================================================================


def harm_accuracy_chart(res: pd.DataFrame, *, minority: str, partner: str, ratio: int, n_seeds: int, level: float):
    """RH(minority, partner) against the balanced probe accuracy, one point per intervention with both intervals.

    ``res``: one row per intervention, columns ``intervention``, ``setting``, ``rh``, ``rh_lo``, ``rh_hi``,
    ``probe``, ``probe_lo``, ``probe_hi``; the row ``"none"`` (no intervention) is drawn as a square.
    """
    pts = res.assign(kind=np.where(res.intervention == "none", "no intervention", "mitigation"))
    sx = alt.Scale(domain=padded_domain(pts.probe_lo, pts.probe_hi), zero=False, nice=False)
    sy = alt.Scale(domain=padded_domain(pts.rh_lo, pts.rh_hi, include=[1.0]), zero=False, nice=False)
    size = min(420, plot_width(1))
    one = alt.Chart(pd.DataFrame({"v": [1.0]})).mark_rule(color="lightgray").encode(y=alt.Y("v:Q", scale=sy))
    vbar = alt.Chart(pts).mark_rule(opacity=0.6).encode(
        x=alt.X("probe:Q", scale=sx), y=alt.Y("rh_lo:Q", scale=sy), y2="rh_hi:Q",
        color=alt.Color("intervention:N", legend=None))
    hbar = alt.Chart(pts).mark_rule(opacity=0.6).encode(
        y=alt.Y("rh:Q", scale=sy), x=alt.X("probe_lo:Q", scale=sx), x2="probe_hi:Q",
        color=alt.Color("intervention:N", legend=None))
    dots = alt.Chart(pts).mark_point(size=90, filled=True).encode(
        x=alt.X("probe:Q", scale=sx, title="balanced linear-probe accuracy of the imbalanced-data model"),
        y=alt.Y("rh:Q", scale=sy, title=f"RH({minority}, {partner})  (1 = no harm)"),
        color=alt.Color("intervention:N", legend=alt.Legend(orient="bottom", title="intervention")),
        shape=alt.Shape("kind:N", scale=alt.Scale(domain=["no intervention", "mitigation"],
                                                  range=["square", "circle"]),
                        legend=alt.Legend(orient="bottom", title="point shape")),
        tooltip=["intervention", "setting", "rh", "rh_lo", "rh_hi", "probe", "probe_lo", "probe_hi"])
    labels = alt.Chart(pts).mark_text(dx=8, dy=-8, align="left", fontSize=11).encode(
        x=alt.X("probe:Q", scale=sx), y=alt.Y("rh:Q", scale=sy), text="intervention:N")
    return alt.layer(one, vbar, hbar, dots, labels).properties(
        title=f"Harm against accuracy, 1:{ratio} ({n_seeds} paired seeds, {level:.0%} intervals)",
        width=size, height=size)


# ==============================================================================================================
# Audit (the audit chapter and the standalone report.html of ``rharm audit``)
# ==============================================================================================================


def _audit_long(matrix: np.ndarray, classes: list[str], name: str, lo: np.ndarray | None = None,
                hi: np.ndarray | None = None) -> pd.DataFrame:
    """(K, K) matrix (and its interval) -> long frame row, column, ``name``[, ci_low, ci_high]; non-finite dropped."""
    k = len(classes)
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    out = pd.DataFrame({"row": [classes[a] for a in i.ravel()], "column": [classes[b] for b in j.ravel()],
                        name: matrix.ravel()})
    if lo is not None:
        out["ci_low"], out["ci_high"] = lo.ravel(), hi.ravel()
    return out.replace([np.inf, -np.inf], np.nan).dropna(subset=[name])


def audit_charts(report) -> dict:
    """The charts of an audit by name: ``cosine_distance`` and ``probe`` always; ``rh`` and ``ranking`` when the
    audit had a reference encoder.

    ``report``: a :class:`rharm.harm.audit.AuditReport`; only its data fields are read (classes, the (K, K) arrays
    cosine_distance[, _ci_low, _ci_high] and rh[, _ci_low, _ci_high], the ranking and probe frames).
    """
    names = [str(c) for c in report.classes]
    k = len(names)
    size = dict(width=max(200, 28 * k), height=max(160, 22 * k))
    out = {"cosine_distance": heatmap(
        _audit_long(report.cosine_distance, names, "distance", report.cosine_distance_ci_low,
                    report.cosine_distance_ci_high), x="column", y="row", value="distance", x_order=names,
        y_order=names, title="Cosine distance 1 − cos(i, j) (audited encoder)", fmt=".2f", text=k <= 14,
        tooltip=["row", "column", "distance", "ci_low", "ci_high"], legend="cosine distance 1 − cos(i, j)",
        x_title="class j", y_title="class i", **size)}
    probe = report.probe.copy()
    probe["class"] = names
    bars = [probe.assign(encoder="audited", value=probe["accuracy"])[["class", "encoder", "value"]]]
    if report.has_reference:
        out["rh"] = heatmap(
            _audit_long(report.rh, names, "rh", report.rh_ci_low, report.rh_ci_high), x="column", y="row",
            value="rh", x_order=names, y_order=names, mid=1.0, fmt=".2f", text=k <= 14,
            title="Representation harm RH = D / D_reference (< 1: closer than in the reference)",
            tooltip=["row", "column", "rh", "ci_low", "ci_high"], legend=RH_LEGEND, x_title="class j",
            y_title="class i", **size)
        top = report.ranking.head(15).copy()
        top["pair"] = top.class_a.astype(str) + " – " + top.class_b.astype(str)
        top["interval"] = np.where(top["excludes_1"].astype(bool), "excludes 1", "includes 1")
        y = alt.Y("pair:N", sort=top["pair"].tolist(), title=None)
        out["ranking"] = alt.layer(
            alt.Chart(top).mark_rule().encode(x=alt.X("ci_low:Q", title="RH (bootstrap interval)",
                                                        scale=alt.Scale(zero=False)), x2="ci_high:Q", y=y),
            alt.Chart(top).mark_point(filled=True, size=50).encode(
                x="rh:Q", y=y, color=alt.Color("interval:N", title="bootstrap interval of RH", scale=alt.Scale(
                    domain=["excludes 1", "includes 1"], range=[COLOURS["excludes"], COLOURS["includes"]]),
                    legend=alt.Legend(orient="bottom")),
                tooltip=["pair", alt.Tooltip("rh:Q", format=".3f"), alt.Tooltip("ci_low:Q", format=".3f"),
                         alt.Tooltip("ci_high:Q", format=".3f")]),
            alt.Chart(pd.DataFrame({"v": [1.0]})).mark_rule(strokeDash=[4, 4], color="gray").encode(x="v:Q"),
        ).properties(title="Class pairs ranked by RH (most collapsed first)", width=380)
        bars.append(probe.assign(encoder="reference", value=probe["reference_accuracy"])[["class", "encoder", "value"]])
    out["probe"] = alt.Chart(pd.concat(bars, ignore_index=True)).mark_bar().encode(
        y=alt.Y("class:N", sort=names, title=None), x=alt.X("value:Q", title="probe accuracy (cross-validated)",
                                                            scale=alt.Scale(domain=[0, 1])),
        yOffset="encoder:N", color=alt.Color("encoder:N", title="encoder probed", scale=alt.Scale(
            domain=["audited", "reference"], range=[COLOURS["ours"], COLOURS["paper"]]),
            legend=alt.Legend(orient="bottom")),
        tooltip=["class", "encoder", alt.Tooltip("value:Q", format=".3f")],
    ).properties(title="Linear-probe accuracy by group", width=360)
    return out

