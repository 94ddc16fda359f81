import json

import altair as alt
import pandas as pd
import pytest

from rharm import charts


def _df():
    return pd.DataFrame({"row": ["a", "a", "b", "b"], "col": ["u", "v", "u", "v"], "rh": [0.8, 1.0, 1.1, 0.95]})


def test_heatmap_carries_its_data_and_centres_palette():
    chart = charts.heatmap(_df(), "col", "row", "rh", title="RH", mid=1.0)
    rows = charts.chart_data(chart)
    assert sorted(r["rh"] for r in rows) == [0.8, 0.95, 1.0, 1.1]
    spec = chart.to_dict()
    scale = spec["layer"][0]["encoding"]["color"]["scale"]
    assert scale["domainMid"] == 1.0 and scale["domain"] == pytest.approx([0.8, 1.2])


def test_heatmap_rejects_unknown_column():
    with pytest.raises(ValueError, match="column 'nope'"):
        charts.heatmap(_df(), "col", "row", "nope", title="x")


def test_line_chart_data_and_log_axis():
    df = pd.DataFrame({"pi1": [1 / 3, 1 / 6], "cos": [0.1, 0.5], "alpha": ["0.1", "0.1"]})
    chart = charts.line(df, "pi1", "cos", "alpha", title="t", log_x=True)
    assert len(charts.chart_data(chart)) == 2
    assert chart.to_dict()["encoding"]["x"]["scale"]["type"] == "log"


def test_offline_renderer_bundle_has_spec_and_html_without_cdn():
    charts.enable()
    chart = charts.heatmap(_df(), "col", "row", "rh", title="RH", mid=1.0)
    bundle = charts._render(chart.to_dict())
    assert json.dumps(bundle[charts.MIMETYPE]) == json.dumps(chart.to_dict())
    html = bundle["text/html"]
    assert "rharmVegaEmbed" in html and "<script src" not in html and "jsdelivr" not in html
    assert alt.renderers.active == charts.RENDERER


def test_sphinx_bundle_defines_only_the_wrapped_entry_point():
    from rharm import sphinx_vega

    js = sphinx_vega.vega_bundle()
    assert js.lstrip().startswith("/*") and "(function () {" in js and "window.rharmVegaEmbed=" in js.replace(" ", "")
    assert len(js) > 100_000  # the whole vega stack is inlined, nothing fetched


def test_sequential_heatmap_without_domain_validates():
    chart = charts.heatmap(_df(), "col", "row", "rh", title="RH")
    assert chart.to_dict()["layer"][0]["encoding"]["color"]["scale"] == {"scheme": "viridis"}
