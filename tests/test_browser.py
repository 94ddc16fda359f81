"""Build a tiny book and open it in headless Chromium: the chart draws, fits the column at desktop and phone width,
the math is typeset, nothing prints a warning, offline, from file:// and over HTTP under a sub-path. Planted faults
must each make the check fail: no bundle, a chart that cannot shrink, a printed warning, a script error, a table
wider than the column at 1400 px, text under 11 px at 420 px, a page that scrolls sideways at 420 px, raw reprs
(a PosixPath, a dict, a 16-digit float) in the page text, an unlabelled legend, a named quantity (experiment,
theory) in another colour than the book's, a fault that shows only over HTTP."""

import os
import re
import shutil
from pathlib import Path

import pytest

from rharm.book import browser_check, runner

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(browser_check.find_chromium() is None, reason="needs Debian's chromium")]


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    """The fixture project's book, built once for this module (a copy per test via ``book``)."""
    root = Path(__file__).resolve().parents[1]
    dest = tmp_path_factory.mktemp("browser") / "project"
    shutil.copytree(root / "tests" / "fixtures" / "project", dest, symlinks=True)
    shutil.copy2(root / "_config.yml", dest / "_config.yml")
    # the book's own stylesheet and bibliography, as the real book has them
    shutil.copytree(root / "book" / "_static", dest / "book" / "_static")
    shutil.copy2(root / "book" / "references.bib", dest / "book" / "references.bib")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RHARM_PROJECT_ROOT", str(dest))
        for var in ("RHARM_RESULTS_ROOT", "RHARM_BOOK_DIR"):
            mp.delenv(var, raising=False)
        runner.run("demo", profile="cpu")
        html = runner.build("cpu", strict=True)
    assert Path(html).is_dir() and os.listdir(html)
    return Path(html)


@pytest.fixture
def book(built_book, tmp_path):
    out = tmp_path / "html"
    shutil.copytree(built_book, out)
    return out


def _demo_page(html):
    pages = [p for p in html.rglob("*.html") if 'class="rharm-vega"' in p.read_text(errors="replace")]
    assert pages, "the demo page has no chart"
    return pages[0]


def test_fixture_book_renders_offline_and_fits(book):
    reports = browser_check.check_book(book)  # file:// and HTTP, 1400 and 420 px
    assert reports and all(r.ok for r in reports), [(r.page.name, r.problems()) for r in reports if not r.ok]
    assert sum(r.drawn for r in reports) >= 1


def test_check_fails_without_the_bundle(book):
    (book / "_static" / "rharm-vega-embed.js").unlink()
    reports = browser_check.check_book(book)
    assert not all(r.ok for r in reports)


def test_check_fails_on_a_chart_wider_than_the_column(book):
    page = _demo_page(book)
    src = page.read_text()
    # a chart that no refit can narrow (a text mark 200 characters long) and whose SVG the page does not let shrink:
    # cut off at both widths
    spec = ('{"data": {"values": [{"t": "' + "W" * 200 + '"}]}, "mark": {"type": "text", "fontSize": 14}, '
            '"encoding": {"text": {"field": "t", "type": "nominal"}}, "width": 100, "height": 40}')
    planted = ('<div id="rharm-vega-planted" class="rharm-vega"></div><script>window.addEventListener("load", '
               'function () { window.rharmVegaEmbed("#rharm-vega-planted", ' + spec
               + ', {actions: false, renderer: "svg"}); });</script>')
    src = src.replace("</head>", "<style>.rharm-vega svg.marks{max-width:none !important}</style></head>", 1)
    page.write_text(src.replace('<div class="cell_output', planted + '<div class="cell_output', 1))
    report = browser_check.check_page(page, browser_check.find_chromium())
    assert report.drawn >= 2 and not report.ok
    assert any(w.startswith("1400px") for w in report.too_wide) and any(w.startswith("420px") for w in report.too_wide)


def test_chart_built_too_wide_is_refitted_to_the_column(book):
    page = _demo_page(book)
    src = page.read_text()
    # a chart built 2000 px wide: the page's refit draws it at the column's width, text at full size
    src, n = re.subn(r'"width":\d+', '"width":2000', src)
    assert n >= 1
    page.write_text(src)
    report = browser_check.check_page(page, browser_check.find_chromium())
    assert report.drawn >= 1 and report.ok, report.problems()


def test_check_fails_on_a_printed_warning(book):
    page = _demo_page(book)
    src = page.read_text()
    planted = ('<div class="cell_output docutils container"><div class="output stderr highlight-myst-ansi notranslate">'
               '<div class="highlight"><pre><span></span>/x/site-packages/tqdm/auto.py:21: TqdmWarning: IProgress '
               'not found.</pre></div></div></div>')
    assert '<div class="cell_output' in src
    page.write_text(src.replace('<div class="cell_output', planted + '<div class="cell_output', 1))
    report = browser_check.check_page(page, browser_check.find_chromium(), widths=(1400,))
    assert not report.ok and any("TqdmWarning" in p for p in report.printed), report.printed


def test_printed_problems_reads_text_in_outputs_only():
    clean = '<p>A RuntimeWarning: in prose is fine</p><div class="cell_output docutils container"><pre>ok</pre></div>'
    assert browser_check.printed_problems(clean) == []
    dirty = ('<div class="cell_output docutils container"><pre>Traceback (most recent call last):\n  x</pre></div>')
    assert browser_check.printed_problems(dirty)


def test_check_fails_on_a_console_error(book):
    page = _demo_page(book)
    src = page.read_text()
    page.write_text(src.replace("</head>", "<script>const DUP = 1;</script><script>const DUP = 2;</script></head>", 1))
    report = browser_check.check_page(page, browser_check.find_chromium(), widths=(1400,))
    assert not report.ok and any("DUP" in e for e in report.console_errors), report.console_errors


def _plant(page, html_text, where='<div class="cell_output'):
    src = page.read_text()
    assert where in src
    page.write_text(src.replace(where, html_text + where, 1))


def _check(page, widths=(1400,), modes=("file",), root=None):
    import contextlib

    with contextlib.ExitStack() as stack:
        servers = {m: (stack.enter_context(browser_check.serve(root, "rharm")) if m == "http" else None)
                   for m in modes}
        return browser_check.check_page(page, browser_check.find_chromium(), widths, servers=servers)


def test_check_fails_on_a_table_wider_than_the_column_at_desktop_width(book):
    page = _demo_page(book)
    cells = "".join(f"<td style='white-space:nowrap'>column_{k}_with_a_long_unbreakable_name</td>" for k in range(8))
    _plant(page, f"<table><tr>{cells}</tr></table>")
    report = _check(page, widths=(1400,))
    assert not report.ok and report.wide_tables and report.wide_tables[0].startswith("1400px"), report.problems()


def test_check_fails_on_text_under_11px_at_phone_width(book):
    page = _demo_page(book)
    _plant(page, '<p style="font-size:8px">a footnote nobody can read</p>')
    report = _check(page, widths=(420,))
    assert not report.ok and any("nobody can read" in t and "420px" in t for t in report.small_text), \
        report.problems()


def test_check_fails_on_a_page_that_scrolls_sideways_at_phone_width(book):
    page = _demo_page(book)
    _plant(page, '<div style="width:900px">a box wider than a phone</div>')
    report = _check(page, widths=(420,))
    assert not report.ok and report.overflow and report.overflow[0].startswith("420px"), report.problems()


def test_check_fails_on_raw_reprs_in_the_page_text(book):
    page = _demo_page(book)
    _plant(page, '<div class="cell_output docutils container"><pre>PosixPath(\'/home/me/book/cpu/demo.json\')'
                 "</pre></div>")
    report = _check(page)
    assert not report.ok and any("PosixPath(" in r for r in report.raw_output), report.problems()
    page2 = _demo_page(book)
    _plant(page2, "<p>{'rh_mean': 1.0316264704768183}</p>", where="</article>")
    assert any("1.0316264704768183" in r for r in _check(page2).raw_output)


def test_raw_output_patterns():
    bad = ["PosixPath('/x/y.json')", "{'a': 1}", "RH is 0.3333333333333333", "np.float64(0.5)", "x = -1.23456789"]
    for text in bad:
        assert browser_check.raw_output(f"before {text} after"), text
    good = ["RH 0.913 [0.85, 0.97]", "p = 0.0004", "version 2026.10.19", "{glue} and {x}", "1,234.5678 s", "1e-08"]
    for text in good:
        assert not browser_check.raw_output(text), text


def test_check_fails_on_an_unlabelled_legend(book):
    page = _demo_page(book)
    src = page.read_text()
    # the demo heatmap's legend, retitled with a bare field name
    src, n = re.subn(r'"title":"RH: red &lt; 1[^"]*"|"title":"RH: red < 1[^"]*"', '"title":"series"', src)
    assert n >= 1
    page.write_text(src)
    report = _check(page)
    assert not report.ok and any("'series'" in g for g in report.legends), report.problems()


def test_unlabelled_legend_rules():
    assert browser_check.unlabelled_legends([{"title": "RH: red < 1 = closer", "labels": ["0.8", "1.2"]}]) == []
    assert browser_check.unlabelled_legends([{"title": None, "labels": ["a"]}])
    assert browser_check.unlabelled_legends([{"title": "rh_seed_mean", "labels": []}])
    assert browser_check.unlabelled_legends([{"title": "interval excludes 1", "labels": ["false", "true"]}])


def test_check_fails_on_a_fault_that_shows_only_over_http(book):
    page = _demo_page(book)
    src = page.read_text()
    page.write_text(src.replace("</head>", "<script>if (location.protocol.indexOf('http') === 0) "
                                "{ throw new Error('HTTPONLY broken over http'); }</script></head>", 1))
    assert _check(page, modes=("file",)).ok
    report = _check(page, modes=("file", "http"), root=book)
    assert not report.ok and any("HTTPONLY" in e for e in report.console_errors), report.problems()


def _series_chart(page, colours):
    """Plant a chart of two series, "experiment" and "theory", drawn in ``colours`` (None: Vega's defaults)."""
    scale = f', "scale": {{"domain": ["experiment", "theory"], "range": {colours}}}' if colours else ""
    spec = ('{"data": {"values": [{"x": 1, "y": 1, "s": "experiment"}, {"x": 2, "y": 2, "s": "theory"}]}, '
            '"mark": "point", "encoding": {"x": {"field": "x", "type": "quantitative"}, '
            '"y": {"field": "y", "type": "quantitative"}, "color": {"field": "s", "type": "nominal", '
            '"title": "what the series is", "legend": {"orient": "bottom"}' + scale + '}}, "width": 200}')
    _plant(page, '<div id="rharm-vega-series" class="rharm-vega"></div><script>window.addEventListener("load", '
                 'function () { window.rharmVegaEmbed("#rharm-vega-series", ' + spec
                 + ', {actions: false, renderer: "svg"}); });</script>')


def test_check_fails_on_a_named_quantity_in_another_colour(book):
    page = _demo_page(book)
    _series_chart(page, '["#ff0000", "#00ff00"]')
    report = _check(page)
    assert not report.ok and any("'experiment'" in c and "#ff0000" in c for c in report.palette), report.problems()


def test_named_quantities_in_the_book_colours_pass(book):
    from rharm.page import charts

    page = _demo_page(book)
    _series_chart(page, f'["{charts.COLOURS["ours"]}", "{charts.COLOURS["theory"]}"]')
    report = _check(page)
    assert report.ok, report.problems()


def test_charts_and_tables_carry_numbered_captions_the_prose_refers_to(book):
    src = _demo_page(book).read_text()
    # the chart: a figure with its number and caption under it; the table: its caption (closed) above the table
    assert re.search(r'<figure[^>]*id="fig-demo-heatmap".*?<span class="caption-number">Figure 1 </span>'
                     r'<span class="caption-text">The demo values as a heatmap.</span>', src, re.S)
    table = re.search(r'<figure class="rharm-table[^"]*"[^>]*id="tab-demo-values">(.*?)</figure>', src, re.S)
    assert table and re.search(r'^\s*<figcaption>\s*<p><span class="caption-number">Table 1 </span>.*?</p>\s*'
                               r'</figcaption>\s*<div class="output', table.group(1), re.S), table
    # the prose's {numref} roles read "Figure 1" and "Table 1" and link to them
    assert re.search(r'href="#fig-demo-heatmap"[^>]*>.*?Figure 1', src, re.S)
    assert re.search(r'href="#tab-demo-values"[^>]*>.*?Table 1', src, re.S)


def test_math_carries_its_words_and_the_search_snippet_shows_them(book):
    page = _demo_page(book)
    src = page.read_text()
    assert 'data-text="cos(h1, h2) → 1"' in src
    # a heading's math carries its words in the page and in the "Contents" sidebar
    assert src.count('data-text="π1 → 0"') >= 2 and not re.search(r'<span class="math[^"]*">\\\(', src)
    with browser_check.serve(book, "rharm") as (base, _):
        snippets = browser_check.search_snippets(browser_check.find_chromium(), base, "math")
    assert snippets and any("cos(h1, h2) → 1" in s for s in snippets), snippets
    assert not browser_check.tex_in_snippets(snippets)


def test_check_fails_on_a_search_snippet_that_shows_tex(book):
    page = _demo_page(book)
    page.write_text(re.sub(r' data-text="[^"]*"', "", page.read_text()))  # the formula's words removed
    reports = browser_check.check_book(book, modes=("http",), widths=(1400,))
    bad = [p for r in reports for p in r.problems() if "search snippet shows TeX" in p]
    assert bad and "\\(\\cos" in bad[0], [r.problems() for r in reports]


def test_check_fails_on_a_link_to_a_numbered_anchor(book):
    page = _demo_page(book)
    assert not _check(page).anchors
    _plant(page, '<p><a class="reference internal" href="../bibliography.html#id3">[3]</a></p>')
    report = _check(page)
    assert not report.ok and report.anchors == ["../bibliography.html#id3"], report.problems()
