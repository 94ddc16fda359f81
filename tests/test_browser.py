"""Build a tiny book and open it in headless Chromium: the chart draws, fits the column at desktop and phone width,
the math is typeset, nothing prints a warning, offline. Planted faults (no bundle, a chart that cannot shrink, a
printed warning, a script error) must each make the check fail."""

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
    reports = browser_check.check_book(book)
    assert reports and all(r.ok for r in reports), [(r.page.name, r.problems()) for r in reports if not r.ok]
    assert sum(r.drawn for r in reports) >= 1


def test_check_fails_without_the_bundle(book):
    (book / "_static" / "rharm-vega-embed.js").unlink()
    reports = browser_check.check_book(book)
    assert not all(r.ok for r in reports)


def test_check_fails_on_a_chart_wider_than_the_column(book):
    page = _demo_page(book)
    src = page.read_text()
    # a chart built 2000 px wide whose SVG the page does not let shrink: cut off at both widths
    src, n = re.subn(r'"width":\d+', '"width":2000', src)
    assert n >= 1
    src = src.replace("</head>", "<style>.rharm-vega svg.marks{max-width:none !important}</style></head>", 1)
    page.write_text(src)
    report = browser_check.check_page(page, browser_check.find_chromium())
    assert report.drawn >= 1 and not report.ok
    assert any(w.startswith("1400px") for w in report.too_wide) and any(w.startswith("420px") for w in report.too_wide)


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
