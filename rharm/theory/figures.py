"""Charts of the theory chapter (Altair, via :mod:`rharm.charts`)."""

from __future__ import annotations

import numpy as np

from ..common import check_choice as _check_choice
from ._validate import _check_connectivity

_BLOCKS = ["1", "2", "3"]


def _matrix_frame(mat, std=None, *, value="value"):
    import pandas as pd

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
    """Heatmap of the (K, K) connectivity matrix (Altair chart)."""
    from rharm import charts

    a = _check_connectivity(connectivity)
    order = [str(i + 1) for i in range(a.shape[0])]
    return charts.heatmap(
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
    )


def node_cosine_charts(results: dict, majority_size: int):
    """One mean-cosine heatmap per n1, annotated ``mean ± sd`` (Altair), concatenated horizontally.

    ``results`` maps ``n1 -> (mean, std)`` from :func:`sbm_node_cosines`. Titles give the block sizes the code
    ran, n = (n1, m, m) (the published figure's titles gave non-matching powers of two).
    """
    import altair as alt

    from rharm import charts

    panels = []
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
        panels.append(
            (rect + text).properties(title=f"n = ({n1}, {majority_size}, {majority_size})", width=200, height=150)
        )
    return charts.panels(panels, shared_color=True)


def population_line_chart(sweep, *, pair: str = "cos12", solver: str = "lbfgs"):
    """cos(h_1*, h_2*) (``pair="cos12"``) or cos(h_2*, h_3*) (``"cos23"``) against pi_1 (log x), one line per
    alpha, one panel per objective. ``sweep`` is a :func:`population_sweep` DataFrame."""

    from rharm import charts

    names = {"cos12": "cos(h1*, h2*)", "cos13": "cos(h1*, h3*)", "cos23": "cos(h2*, h3*)"}
    _check_choice("pair", pair, list(names))
    df = sweep[sweep["solver"] == solver].copy()
    df["alpha"] = df["alpha"].map(lambda a: f"{a:g}")
    panels = [
        charts.line(
            df[df["objective"] == obj],
            "pi1",
            pair,
            "alpha",
            title=f"{names[pair]}, {obj} objective",
            log_x=True,
            tooltip=["alpha", "pi1", pair, "block_grad_norm", "spread"],
            width=charts.plot_width(2),
            x_title="minority share π1 (log scale)",
            y_title=names[pair],
            legend="α (link probability)",
        )
        for obj in df["objective"].unique()
    ]
    return charts.panels(panels)


def population_heatmap_charts(solutions: dict):
    """Population cosine heatmaps, one per key (e.g. ``"principled, π1=1/192"``) of (K, K) matrices."""

    from rharm import charts

    panels = []
    for name, mat in solutions.items():
        mat = np.asarray(mat)
        order = [str(i + 1) for i in range(mat.shape[0])]
        panels.append(
            charts.heatmap(
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
    return charts.panels(panels, shared_color=True)


def published_comparison_chart(comparison, *, precision: float):
    """rharm minus published cosine against pi_1 (log x), one line per rharm source, one panel per block pair; the
    grey band is ``+- precision``, where a value that rounds to the printed one falls.

    ``comparison`` is a :func:`rharm.theory.published.published_comparison` DataFrame.
    """
    import altair as alt
    import pandas as pd

    from rharm import charts

    names = {"cos12": "cos(h1*, h2*)", "cos13": "cos(h1*, h3*)", "cos23": "cos(h2*, h3*)"}
    panels = []
    for pair in comparison["pair"].unique():
        df = comparison[comparison["pair"] == pair]
        band = alt.Chart(pd.DataFrame({"lo": [-precision], "hi": [precision]})).mark_rect(
            color="lightgrey", opacity=0.5).encode(y="lo:Q", y2="hi:Q")
        line = charts.line(df, "pi1", "difference", "source", title=f"{names[pair]}: rharm − published",
                           log_x=True, tooltip=["pi1_label", "source", "published", "cosine", "difference"],
                           width=charts.plot_width(3), x_title="minority share π1 (log scale)",
                           y_title="rharm − published", legend="rharm solution")
        panels.append(band + line)
    return charts.panels(panels)
