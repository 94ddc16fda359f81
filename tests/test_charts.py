import json

import altair as alt
import pandas as pd
import pytest

from rharm.page import charts


def _df():
    return pd.DataFrame({"row": ["a", "a", "b", "b"], "col": ["u", "v", "u", "v"], "rh": [0.8, 1.0, 1.1, 0.95]})


def test_heatmap_carries_its_data_and_centres_palette():
    chart = charts.heatmap(_df(), "col", "row", "rh", title="RH", mid=1.0)
    rows = charts.chart_data(chart)
    assert sorted(r["rh"] for r in rows) == [0.8, 0.95, 1.0, 1.1]
    spec = chart.to_dict()
    scale = spec["layer"][0]["encoding"]["color"]["scale"]
    # every RH heatmap (centred at 1) uses the book's one RH scale, clamped
    assert scale["domainMid"] == 1.0 and scale["domain"] == pytest.approx(list(charts.RH_DOMAIN)) and scale["clamp"]


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
    assert json.dumps(bundle[charts.MIMETYPE]) == json.dumps(charts.readable(chart.to_dict()))
    assert bundle[charts.MIMETYPE]["config"]["axis"]["labelFontSize"] >= charts.MIN_FONT_PX
    html = bundle["text/html"]
    assert "rharmVegaEmbed" in html and "<script src" not in html and "jsdelivr" not in html
    assert alt.renderers.active == charts.RENDERER


def test_sphinx_bundle_defines_only_the_wrapped_entry_point():
    from rharm.book import sphinx_vega

    js = sphinx_vega.vega_bundle()
    assert js.lstrip().startswith("/*") and "(function () {" in js and "window.rharmVegaEmbed=" in js.replace(" ", "")
    assert len(js) > 100_000  # the whole vega stack is inlined, nothing fetched


def test_sequential_heatmap_without_domain_validates():
    chart = charts.heatmap(_df(), "col", "row", "rh", title="RH")
    assert chart.to_dict()["layer"][0]["encoding"]["color"]["scale"] == {"scheme": "viridis"}


def _wide(n=10):
    classes = [f"class{i}" for i in range(n)]
    return pd.DataFrame([{"row": a, "col": b, "v": (i - j) / 10} for i, a in enumerate(classes[:6])
                         for j, b in enumerate(classes)]), classes


def test_heatmap_fits_the_column_however_many_columns():
    df, classes = _wide(10)
    for n in (3, 10, 40):
        d = pd.DataFrame([{"row": "r", "col": f"c{i}", "v": float(i)} for i in range(n)])
        chart = charts.heatmap(d, "col", "row", "v", title="t", mid=0.0)
        assert charts.estimated_width(chart) <= charts.CONTENT_WIDTH, n


def test_compare_heatmaps_share_one_colour_domain_and_fit():
    df, classes = _wide(10)
    ours = df.assign(v=df.v * 0.1)  # a 10x smaller effect must not get the same colours as the paper's
    chart = charts.compare_heatmaps([(ours, "ours"), (df, "paper")], "col", "row", "v", mid=0.0, legend="effect",
                                    x_order=classes)
    spec = chart.to_dict()
    assert spec["resolve"]["scale"]["color"] == "shared"
    doms = [json.dumps(s) for s in _color_scales(spec)]
    assert len(doms) == 2 and doms[0] == doms[1]
    assert _color_scales(spec)[0]["domain"] == pytest.approx([-0.9, 0.9])
    assert charts.estimated_width(chart) <= charts.CONTENT_WIDTH


def _color_scales(node):
    out = []
    if isinstance(node, dict):
        enc = node.get("encoding", {})
        if isinstance(enc.get("color"), dict) and "scale" in enc["color"]:
            out.append(enc["color"]["scale"])
        for v in node.values():
            out.extend(_color_scales(v))
    elif isinstance(node, list):
        for v in node:
            out.extend(_color_scales(v))
    return out


def test_panels_stack_when_side_by_side_would_overflow():
    small = [charts.line(pd.DataFrame({"x": [1, 2], "y": [1, 2]}), "x", "y", title=str(i), width=150) for i in range(2)]
    assert "hconcat" in charts.panels(small).to_dict()
    big = [charts.line(pd.DataFrame({"x": [1, 2], "y": [1, 2]}), "x", "y", title=str(i), width=400) for i in range(3)]
    spec = charts.panels(big).to_dict()
    assert "vconcat" in spec and charts.estimated_width(spec) <= charts.CONTENT_WIDTH


def test_line_legend_below_plot():
    df = pd.DataFrame({"pi1": [0.1, 0.2], "cos": [0.1, 0.5], "alpha": ["0.1", "0.1"]})
    enc = charts.line(df, "pi1", "cos", "alpha", title="t").to_dict()["encoding"]
    assert enc["color"]["legend"]["orient"] == "bottom"


def test_scatter_axes_start_at_the_data_not_zero():
    df = pd.DataFrame({"paper": [0.8, 0.9, 1.0], "rh": [0.95, 0.97, 1.02]})
    spec = charts.scatter_vs(df, "paper", "rh", title="t", x_title="paper", y_title="ours", null=1.0).to_dict()
    scales = [l["encoding"]["x"]["scale"] for l in spec["layer"] if "x" in l["encoding"] and "scale" in l["encoding"]["x"]]
    assert scales and all(s["domain"] == scales[0]["domain"] for s in scales)
    lo, hi = scales[0]["domain"]
    assert 0.7 < lo < 0.8 and 1.02 < hi < 1.1 and scales[0]["zero"] is False


def test_diverging_domain_is_symmetric_about_the_null():
    assert charts.diverging_domain([0.9, 1.05], 1.0) == pytest.approx([0.9, 1.1])
    assert charts.diverging_domain([float("nan")], 0.0) == [-1.0, 1.0]


def test_renderer_lets_the_svg_shrink_with_its_container():
    html = charts._render(charts.heatmap(_df(), "col", "row", "rh", title="RH", mid=1.0).to_dict())["text/html"]
    assert "max-width:100%" in html


def test_fmt_sig_never_prints_negative_zero():
    assert charts.fmt_sig(-0.00001, 2) == "-0.000010"
    assert charts.fmt_sig(2.6781, 3) == "2.68" and charts.fmt_sig(0.0) == "0"
    assert charts.fmt_sig(8.95e-6, 3) == "8.95e-06" and charts.fmt_sig(10981443.2, 3) == "10981443"


#: modules that may still build charts: the book tooling, and the mitigation report until its charts move here
_CHART_SCAN_EXEMPT = ("rharm/page/charts.py", "rharm/book/")


def test_no_module_but_rharm_charts_builds_a_chart():
    """Every chart constructor lives in rharm.page.charts: a source scan of the package for Altair use elsewhere."""
    import re
    from pathlib import Path

    import rharm

    root = Path(rharm.__file__).resolve().parent
    pattern = re.compile(r"alt\.Chart|\.mark_[a-z]+\(|^\s*(import|from) altair\b")
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = "rharm/" + path.relative_to(root).as_posix()
        if rel.startswith(_CHART_SCAN_EXEMPT):
            continue
        for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(text):
                found.append(f"{rel}:{n}: {text.strip()}")
    assert found == [], "chart code outside rharm/page/charts.py:\n" + "\n".join(found)
    assert pattern.search((root / "page" / "charts.py").read_text(encoding="utf-8"))  # the scan does see Altair use


def test_throughput_chart_has_one_bar_per_backbone_and_batch():
    tp = pd.DataFrame({"backbone": ["small_cnn", "small_cnn", "resnet18"], "batch_size": [64, 128, 64],
                       "images_per_s": [900.0, 1100.0, 80.0], "parameters": [1, 1, 11], "threads": [2, 2, 2]})
    spec = charts.throughput_chart(tp).to_dict()
    assert spec["mark"]["type"] == "bar" and spec["encoding"]["yOffset"]["field"] == "batch_size"
    assert sorted(r["images_per_s"] for r in charts.chart_data(charts.throughput_chart(tp))) == [80.0, 900.0, 1100.0]


def test_harm_accuracy_chart_draws_every_intervention_with_both_intervals():
    import pandas as pd

    res = pd.DataFrame({"intervention": ["none", "re-balancing"], "setting": ["a", "b"], "rh": [0.7, 1.0],
                        "rh_lo": [0.6, 0.9], "rh_hi": [0.8, 1.1], "probe": [0.80, 0.81], "probe_lo": [0.79, 0.80],
                        "probe_hi": [0.81, 0.82]})
    spec = charts.harm_accuracy_chart(res, minority="sandal", partner="sneaker", ratio=100, n_seeds=5,
                                      level=0.95).to_dict()
    assert spec["title"] == "Harm against accuracy, 1:100 (5 paired seeds, 95% intervals)"
    marks = [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in spec["layer"]]
    assert marks == ["rule", "rule", "rule", "point", "text"]
    dots = spec["layer"][3]["encoding"]
    assert dots["y"]["title"] == "RH(sandal, sneaker)  (1 = no harm)"
    assert dots["shape"]["scale"]["range"] == ["square", "circle"]
    kinds = {r["intervention"]: r["kind"] for d in spec["datasets"].values() for r in d if "kind" in r}
    assert kinds == {"none": "no intervention", "re-balancing": "mitigation"}


def test_heatmap_outlines_cells_whose_interval_excludes_the_null():
    df = pd.DataFrame({"col": ["a", "b", "a", "b"], "row": ["x", "x", "y", "y"], "rh": [0.8, 1.0, 1.1, 0.95],
                       "lo": [0.7, 0.9, 1.05, 0.9], "hi": [0.9, 1.1, 1.2, 1.0]})
    spec = charts.heatmap(df, "col", "row", "rh", title="RH", mid=1.0).to_dict()
    outlined = [layer for layer in spec["layer"] if layer["mark"].get("filled") is False]
    assert len(outlined) == 1
    rows = spec["datasets"][outlined[0]["data"]["name"]]
    assert sorted(r["rh"] for r in rows) == [0.8, 1.1]  # 0.95's interval [0.9, 1.0] touches 1: not outlined
    assert "excludes 1" in spec["title"]["subtitle"]
    texts = [layer for layer in spec["layer"] if layer["mark"].get("type") == "text"]
    assert all(t["mark"]["fontSize"] >= charts.MIN_FONT_PX for t in texts)
    assert all(t["name"].startswith("rharm-cell-text-") for t in texts)  # the page's refit drops it in narrow cells


def test_series_that_stand_for_a_meaning_get_the_book_colours():
    df = pd.DataFrame({"x": [1, 2, 1, 2], "y": [1.0, 0.9, 1.0, 0.8],
                       "series": ["experiment (interval band)"] * 2 + ["theory (α 0.77)"] * 2})
    spec = charts.readable(charts.line(df, "x", "y", "series", title="t", legend="what the curve shows").to_dict())
    scale = spec["encoding"]["color"]["scale"]
    assert dict(zip(scale["domain"], scale["range"])) == {"experiment (interval band)": charts.COLOURS["ours"],
                                                          "theory (α 0.77)": charts.COLOURS["theory"]}
    # two series standing for the same meaning stay apart: no book colour is forced on them
    df2 = df.assign(series=["experiment, backbone"] * 2 + ["experiment, projection"] * 2)
    spec2 = charts.readable(charts.line(df2, "x", "y", "series", title="t", legend="what").to_dict())
    assert "scale" not in spec2["encoding"]["color"]
    assert charts.meaning("NIE") == "NIE" and charts.meaning("paper") == "paper" and charts.meaning("cat") is None


def test_book_colours_per_panel_when_panels_show_different_series():
    df = pd.DataFrame({"x": [1, 2, 1, 2], "y": [1.0, 0.9, 1.0, 0.8],
                       "series": ["experiment"] * 2 + ["theory (α 0)"] * 2})
    a = charts.line(df, "x", "y", "series", title="a", legend="what the curve shows")
    b = charts.line(df.assign(series=["experiment"] * 2 + ["theory (α 1)"] * 2), "x", "y", "series", title="b",
                    legend="what the curve shows")
    spec = charts.readable(alt.vconcat(a, b).to_dict())
    for panel in spec["vconcat"]:
        assert panel["encoding"]["color"]["scale"]["range"] == [charts.COLOURS["ours"], charts.COLOURS["theory"]]
