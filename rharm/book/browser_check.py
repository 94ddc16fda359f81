"""Open built book pages in headless Chromium and check what a reader sees.

Usage: ``python -m rharm.book.browser_check <html-dir> [--min-charts N] [--widths 1400 420] [--modes file http]``.
Chromium loads every page with no network, at each window width, from ``file://`` and over HTTP (a local server
that serves the book under a ``/<folder>/`` sub-path, as GitHub Pages does), and a page fails when

* a chart (``class="rharm-vega"``) did not draw (no Vega SVG with marks), or math was not typeset (no
  ``mjx-container``, or raw ``\\(`` left);
* a chart's drawn width exceeds the text column (or its right edge runs past the column or the window), at any width;
* a table is wider than the text column at a desktop width (>= 1000 px: it would need sideways scrolling), or the
  page itself scrolls sideways at any width (a wide table must scroll inside its own box);
* any text of the article, chart text included, is drawn smaller than :data:`MIN_FONT_PX` (11 px) at any width
  (math is left out: its sub- and superscripts are smaller by design);
* the page text shows a raw Python repr (``PosixPath(``, ``np.float64(``, a dict ``{'``) or a number with a long
  float tail (8 or more decimals), outside the code a reader is shown as code (code cells, code blocks of the prose,
  API signatures);
* a chart legend has no title, a title that is a bare field name (one lowercase word or ``snake_case``), or the
  entries ``true``/``false``;
* a legend entry that stands for one of the book's meanings (our measurement, the paper, the theory, TE, NIE, NDE)
  is drawn in another colour than the book's palette (:data:`rharm.page.charts.COLOURS`);
* the page prints a warning or a traceback in a cell output (``output stderr``/``output traceback`` blocks, or text
  such as ``SomethingWarning:`` or ``Traceback (most recent call last)`` in an output);
* the browser console reports an error (a script error such as a name declared twice);
* a link points at an anchor docutils numbered (``bibliography.html#id3``) or a section's anchor is a number
  (:func:`rharm.book.sphinx_search.numbered_anchors`).

Over HTTP the search page is also run for a few words (:data:`SEARCH_QUERIES`), and the book fails when a result's
snippet shows TeX source (``\\(``, ``\\[``) instead of the formula in words.

Exits non-zero, listing the failures, otherwise prints a line per page.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import html
import http.server
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from rharm.book.sphinx_search import numbered_anchors

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


#: window widths (px) every page is checked at: desktop and phone
WIDTHS = (1400, 420)

#: smallest font (px) any article text may be drawn at, at any window width
MIN_FONT_PX = 11
#: windows at least this wide are "desktop": a table must fit the column there without sideways scrolling
DESKTOP_PX = 1000

# Injected into a copy of the page: once the page has loaded and the charts have drawn, write what a reader sees into
# the DOM, where --dump-dom can read it: every chart's drawn box, every table's box, the page's own overflow, the
# smallest text drawn, the legends' titles and entries, and the page's text less code (JSON).
_LAYOUT_PROBE = """<script>window.addEventListener('load', function () { setTimeout(function () {
  var col = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  var c = col.getBoundingClientRect(), out = [], tables = [], small = [], legends = [];
  var vw = document.documentElement.clientWidth;
  document.querySelectorAll('.rharm-vega').forEach(function (el) {
    var svg = el.querySelector('svg');
    if (!svg) { out.push({drawn: false}); return; }
    var r = svg.getBoundingClientRect();
    out.push({drawn: true, width: r.width, left: r.left, right: r.right, col_width: c.width, col_left: c.left,
              col_right: c.right, viewport: vw});
    svg.querySelectorAll('g.role-legend').forEach(function (g) {
      var t = g.querySelector('.role-legend-title text'), labels = [], colours = [];
      g.querySelectorAll('.role-legend-label text').forEach(function (x) { labels.push(x.textContent); });
      g.querySelectorAll('.role-legend-symbol path').forEach(function (x) {
        var f = x.getAttribute('fill'), st = x.getAttribute('stroke');
        colours.push(f && f !== 'transparent' && f !== 'none' ? f : st);
      });
      legends.push({title: t ? t.textContent : null, labels: labels.slice(0, 12), colours: colours.slice(0, 12)});
    });
  });
  col.querySelectorAll('table').forEach(function (t) {
    var r = t.getBoundingClientRect();
    if (r.width === 0) return;
    var cap = t.closest('.rharm-table');
    var head = (t.querySelector('th') || t.querySelector('td') || {textContent: ''}).textContent;
    tables.push({width: r.width, right: r.right, col_width: c.width, col_right: c.right,
                 label: ((cap && cap.querySelector('.rharm-table-caption')) ? cap.querySelector('.rharm-table-caption').textContent : head).trim().slice(0, 70)});
  });
  var walker = document.createTreeWalker(col, NodeFilter.SHOW_TEXT), node;
  while ((node = walker.nextNode())) {
    var text = node.textContent.trim(), el = node.parentElement;
    if (!text || !el || el.closest('mjx-container, .math, script, style, .headerlink, title, .vg-tooltip')) continue;
    var rects = el.getClientRects();
    if (!rects.length) continue;
    var cs = getComputedStyle(el);
    if (cs.visibility === 'hidden' || cs.display === 'none' || parseFloat(cs.opacity) === 0) continue;
    var px = parseFloat(cs.fontSize);
    if (el instanceof SVGElement && el.getScreenCTM) {
      var m = el.getScreenCTM();
      if (m) px = px * Math.sqrt(Math.abs(m.a * m.d - m.b * m.c));
    }
    if (px < %(min_font)s - 0.05) small.push({px: Math.round(px * 10) / 10, text: text.slice(0, 50),
                                              chart: !!el.closest('.rharm-vega')});
  }
  var clone = col.cloneNode(true);
  clone.querySelectorAll('.cell_input, script, style, mjx-container, .math, .headerlink, dt.sig').forEach(function (e) { e.remove(); });
  clone.querySelectorAll('div[class*="highlight-"]').forEach(function (e) { if (!e.closest('.cell_output')) e.remove(); });
  var wide = [];
  document.querySelectorAll('body *').forEach(function (e) {
    if (wide.length >= 3 || e.closest('.rharm-vega, mjx-container')) return;
    for (var a = e.parentElement; a && a !== document.body; a = a.parentElement)
      if (/(auto|scroll|hidden|clip)/.test(getComputedStyle(a).overflowX)) return;  // scrolls inside its own box
    var r = e.getBoundingClientRect();
    if (r.right > vw + 1 && r.width > 0 && getComputedStyle(e).visibility !== 'hidden' && !(e.parentElement && e.parentElement.getBoundingClientRect().right > vw + 1))
      wide.push(e.tagName.toLowerCase() + '.' + (e.className && e.className.baseVal === undefined ? e.className : '').split(' ').join('.') + ': ' + (e.textContent || '').trim().slice(0, 50));
  });
  var rawMath = 0;
  document.querySelectorAll('span.math, div.math').forEach(function (e) {
    if (/^\\s*\\\\[\\(\\[]/.test(e.textContent) && !e.querySelector('mjx-container')) rawMath += 1;
  });
  var probe = {charts: out, tables: tables, small_text: small.slice(0, 20), n_small: small.length, legends: legends,
               overflow: document.documentElement.scrollWidth - vw, overflowing: wide, viewport: vw,
               drawn: document.querySelectorAll('svg.marks').length,
               typeset: document.querySelectorAll('mjx-container').length, raw_math: rawMath,
               text: clone.textContent.replace(/\\s+/g, ' ')};
  var pre = document.createElement('pre'); pre.id = 'rharm-layout-probe';
  pre.textContent = JSON.stringify(probe); document.body.appendChild(pre);
  if (window.parent !== window) window.parent.postMessage('rharm-probe:' + JSON.stringify(probe), '*');
}, 2500); });</script>""" % {"min_font": MIN_FONT_PX}

# The page is opened inside an <iframe> exactly ``width`` px wide (headless Chromium will not open a window narrower
# than 500 px): the probe in the page posts what it found to this frame, which writes it where --dump-dom reads it.
_FRAME = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body style="margin:0">
<iframe src="%(src)s" style="width:%(width)dpx;height:2000px;border:0;display:block"></iframe>
<script>window.addEventListener('message', function (e) {
  if (typeof e.data !== 'string' || e.data.indexOf('rharm-probe:') !== 0) return;
  var pre = document.createElement('pre'); pre.id = 'rharm-layout-probe';
  pre.textContent = e.data.slice(12); document.body.appendChild(pre);
});</script></body></html>"""


# chromium --enable-logging=stderr writes console messages as `...:CONSOLE:12] "message", source: ...`
_CONSOLE_MESSAGE = re.compile(r'CONSOLE[:(]\d+\)?\] "(.*?)", source:')


def rendered_dom(page: Path, chromium: str, budget_ms: int = 20000, width: int = WIDTHS[0],
                 probe: bool = False, base_url: str | None = None, root: Path | None = None) -> tuple[str, list[str]]:
    """The page's DOM after its scripts ran, at window ``width``, and the console errors it logged.

    With ``probe`` the DOM holds a ``<pre id="rharm-layout-probe">`` with what the reader sees (JSON, :func:`layout`).
    With ``base_url`` (and the served folder ``root``) the page is loaded over HTTP from
    ``<base_url>/<page relative to root>`` instead of from ``file://``.
    """
    target, made = page, []
    if probe:
        # sibling copies, so relative links to _static still resolve: the page with the probe, and a frame that
        # shows it exactly ``width`` px wide
        copy = page.with_name(f".rharm-probe-{width}-{page.name}")
        source = page.read_text(errors="replace")
        cut = source.rfind("</body>")
        copy.write_text(source[:cut] + _LAYOUT_PROBE + source[cut:] if cut >= 0 else source + _LAYOUT_PROBE)
        target = page.with_name(f".rharm-frame-{width}-{page.name}")
        target.write_text(_FRAME % {"src": copy.name, "width": width})
        made = [copy, target]
    url = target.resolve().as_uri()
    if base_url is not None:
        url = base_url.rstrip("/") + "/" + target.resolve().relative_to(Path(root).resolve()).as_posix()
    try:
        with tempfile.TemporaryDirectory() as profile:
            proc = subprocess.run(
                [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
                 f"--window-size={max(width, 500) + 20},2000", "--enable-logging=stderr", "--v=0", "--dump-dom",
                 url],
                capture_output=True, text=True, timeout=180,
            )
    finally:
        for path in made:
            path.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise RuntimeError(f"chromium failed on {page}: {proc.stderr[-2000:]}")
    errors = [m for m in _CONSOLE_MESSAGE.findall(proc.stderr) if m.startswith("Uncaught") or "Error" in m.split(":")[0]]
    return proc.stdout, errors


def layout(dom: str) -> dict:
    """What the layout probe wrote into ``dom``: ``charts`` (drawn boxes), ``tables`` (boxes), ``overflow`` (px the
    page scrolls sideways), ``small_text`` (text under :data:`MIN_FONT_PX`), ``legends`` (titles, entries) and
    ``text`` (the page text less code). Empty when there is no probe."""
    m = re.search(r'<pre id="rharm-layout-probe">(.*?)</pre>', dom, re.S)
    if not m:
        return {}
    return json.loads(html.unescape(m.group(1)))


# what a reader must never see in a cell output
_OUTPUT_BLOCK = re.compile(r'<div class="output (stderr|traceback)[^"]*">(.*?)</div>', re.S)
_WARNING_TEXT = re.compile(r"\b\w*Warning: |Traceback \(most recent call last\)")
_CELL_OUTPUT = re.compile(r'<div class="cell_output[^"]*">(.*?)(?=<div class="cell[ "]|</section>|$)', re.S)


def printed_problems(source: str) -> list[str]:
    """Warnings and tracebacks a page prints in its cell outputs (short excerpts; empty when clean)."""
    found = []
    for kind, body in _OUTPUT_BLOCK.findall(source):
        text = re.sub(r"<[^>]+>", "", body).strip()
        found.append(f"{kind}: {text[:160]}")
    for block in _CELL_OUTPUT.findall(source):
        text = re.sub(r"<[^>]+>", "", block)
        for m in _WARNING_TEXT.finditer(text):
            excerpt = text[max(0, m.start() - 60): m.end() + 100].strip().replace("\n", " ")
            if not any(excerpt[:40] in f for f in found):
                found.append(f"printed: {excerpt}")
    return found


@dataclass
class PageReport:
    page: Path
    charts: int
    drawn: int
    has_math: bool
    math_typeset: int
    raw_math_left: bool
    too_wide: list[str] = field(default_factory=list)  # "<mode> <width>px: chart k drawn W px in a C px column"
    printed: list[str] = field(default_factory=list)  # warnings/tracebacks in outputs
    console_errors: list[str] = field(default_factory=list)
    wide_tables: list[str] = field(default_factory=list)  # tables wider than the column at a desktop width
    overflow: list[str] = field(default_factory=list)  # the page scrolls sideways
    small_text: list[str] = field(default_factory=list)  # text drawn under MIN_FONT_PX
    raw_output: list[str] = field(default_factory=list)  # raw reprs and long float tails in the page text
    legends: list[str] = field(default_factory=list)  # unlabelled legends
    palette: list[str] = field(default_factory=list)  # a named quantity in another colour than the book's
    anchors: list[str] = field(default_factory=list)  # links to numbered anchors (#id3), numbered sections

    @property
    def ok(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        out = []
        if self.drawn < self.charts:
            out.append(f"charts {self.drawn}/{self.charts} drawn")
        if self.has_math and (self.math_typeset == 0 or self.raw_math_left):
            out.append("math not typeset")
        return (out + [f"too wide at {w}" for w in self.too_wide] + self.printed
                + [f"console: {e}" for e in self.console_errors] + [f"table too wide: {t}" for t in self.wide_tables]
                + [f"page scrolls sideways: {o}" for o in self.overflow]
                + [f"text under {MIN_FONT_PX} px: {t}" for t in self.small_text]
                + [f"raw output: {r}" for r in self.raw_output] + [f"legend: {g}" for g in self.legends]
                + [f"colour: {c}" for c in self.palette] + [f"numbered anchor: {a}" for a in self.anchors])


_MATH_SOURCE = re.compile(r'class="math[ "]|\\\(|\\\[|\$\$')


def too_wide(boxes: list[dict], width: int, tolerance: float = 1.5) -> list[str]:
    """Charts whose drawn box is wider than the text column or runs past it or the window."""
    out = []
    for k, b in enumerate(boxes):
        if not b.get("drawn"):
            continue
        limit_right = min(b["col_right"], b["viewport"]) + tolerance
        if b["width"] > b["col_width"] + tolerance or b["right"] > limit_right:
            out.append(f"{width}px: chart {k + 1} drawn {b['width']:.0f} px wide (right edge {b['right']:.0f}) "
                       f"in a {b['col_width']:.0f} px column (right edge {b['col_right']:.0f})")
    return out


def wide_tables(tables: list[dict], width: int, tolerance: float = 1.5) -> list[str]:
    """Tables wider than the text column (checked at desktop widths, where a table must fit without scrolling)."""
    if width < DESKTOP_PX:
        return []
    return [f"{width}px: table {k + 1} ({t['label']!r}) is {t['width']:.0f} px in a {t['col_width']:.0f} px column"
            for k, t in enumerate(tables) if t["width"] > t["col_width"] + tolerance]


def small_text(found: list[dict], n: int, width: int) -> list[str]:
    """Text drawn smaller than :data:`MIN_FONT_PX` (a few examples and the count)."""
    if not found:
        return []
    examples = "; ".join(f"{f['text']!r} {f['px']} px{' (chart)' if f.get('chart') else ''}" for f in found[:4])
    return [f"{width}px: {n} text runs, e.g. {examples}"]


#: what a reader must never see as page text: a raw Python repr or a float printed with all its digits
RAW_REPR = re.compile(r"(?:Posix|Windows|Pure)?Path\('|np\.(?:float|int)\d*\(|\{'[^']{0,60}':|"
                      r"(?<![\w.])-?\d+\.\d{8,}(?![\w.])")


def raw_output(text: str) -> list[str]:
    """Raw reprs and long float tails in ``text`` (the page text less code blocks and math), with context."""
    out = []
    for m in RAW_REPR.finditer(text):
        out.append(text[max(0, m.start() - 40): m.end() + 40].strip())
        if len(out) >= 5:
            break
    return out


_FIELD_NAME = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")


def unlabelled_legends(legends: list[dict]) -> list[str]:
    """Legends without a title, titled with a bare field name (``series``, ``rh``, ``p_adj``), or with entries
    ``true``/``false``."""
    out = []
    for g in legends:
        title = (g.get("title") or "").strip()
        labels = [str(x).strip() for x in g.get("labels", [])]
        if not title:
            out.append(f"a legend without a title (entries {labels[:4]})")
        elif _FIELD_NAME.match(title):
            out.append(f"legend titled with a field name {title!r} (entries {labels[:4]})")
        if {"true", "false"} & set(labels):
            out.append(f"legend {title!r} has entries true/false")
    return sorted(set(out))


def palette_mismatches(legends: list[dict]) -> list[str]:
    """Legend entries that stand for one of the book's meanings (our measurement, the paper, the theory, TE, NIE,
    NDE: :func:`rharm.page.charts.meaning`, each once in the legend) but are drawn in another colour than
    :data:`rharm.page.charts.COLOURS` gives it."""
    from rharm.page.charts import COLOURS, meaning

    out = []
    for g in legends:
        labels, colours = g.get("labels", []), g.get("colours", [])
        if not labels or len(colours) != len(labels):
            continue
        keys = [meaning(x) for x in labels]
        if None in keys or len(set(keys)) != len(keys):
            continue
        for label, key, colour in zip(labels, keys, colours):
            if str(colour).lower() != COLOURS[key].lower():
                out.append(f"{label!r} ({key}) drawn in {colour}, the book's colour for it is {COLOURS[key]}")
    return out


def check_page(page: Path, chromium: str, widths: tuple[int, ...] = WIDTHS, *,
               servers: dict[str, tuple[str, Path] | None] | None = None) -> PageReport:
    """Check one page at every width, loaded in every mode of ``servers`` (``{"file": None}`` by default; an HTTP
    mode maps to its ``(base_url, served folder)``)."""
    source = page.read_text(errors="replace")
    charts = source.count('class="rharm-vega"')
    has_math = bool(re.search(r'class="math[ "\-]', source))
    servers = servers or {"file": None}
    report = PageReport(page, charts, 0, has_math, 0, False, printed=printed_problems(source),
                        anchors=numbered_anchors(source))
    first = True
    for mode, server in servers.items():
        for w in widths:
            base, root = server if server else (None, None)
            dom, errs = rendered_dom(page, chromium, width=w, probe=True, base_url=base, root=root)
            probe = layout(dom)
            tag = f"{mode} {w}" if len(servers) > 1 else f"{w}"
            report.console_errors += [e for e in errs if e not in report.console_errors]
            if not probe:
                report.console_errors.append(f"{tag}px: the layout probe did not run")
                continue
            if first:
                # a drawn Vega chart is an <svg class="marks">; raw delimiters left in math mean MathJax did not run
                report.drawn = probe["drawn"]
                report.math_typeset = probe["typeset"]
                report.raw_math_left = probe["raw_math"] > 0
                report.raw_output = raw_output(probe.get("text", ""))
                report.legends = unlabelled_legends(probe.get("legends", []))
                report.palette = palette_mismatches(probe.get("legends", []))
                first = False
            elif probe["drawn"] < charts:
                report.console_errors.append(f"{tag}px: only {probe['drawn']} of {charts} charts drawn")
            report.too_wide += [f"{mode} {x}" if len(servers) > 1 else x for x in too_wide(probe["charts"], w)]
            report.wide_tables += [f"{mode} {x}" if len(servers) > 1 else x for x in wide_tables(probe["tables"], w)]
            if probe.get("overflow", 0) > 1:
                report.overflow.append(f"{tag}px: {probe['overflow']:.0f} px ({'; '.join(probe['overflowing'])})")
            report.small_text += [f"{mode} {x}" if len(servers) > 1 else x
                                  for x in small_text(probe["small_text"], probe["n_small"], w)]
    return report


#: words the search page is run for over HTTP (each hit's snippet must show formulas in words, not TeX)
SEARCH_QUERIES = ("minority", "temperature", "cosine", "math")
_SNIPPET = re.compile(r'<p class="context">(.*?)</p>', re.S)
_TEX_SOURCE = re.compile(r"\\[(\[]|\\(?:pi|alpha|tau|mathrm|frac|cos)\b")


def search_snippets(chromium: str, base_url: str, query: str, budget_ms: int = 20000) -> list[str]:
    """The snippets the book's search page shows for ``query`` (served at ``base_url``), as text."""
    url = f"{base_url.rstrip('/')}/search.html?q={query}"
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
             "--window-size=1400,2000", "--dump-dom", url], capture_output=True, text=True, timeout=180)
    return [html.unescape(re.sub(r"<[^>]+>", "", m)).strip() for m in _SNIPPET.findall(proc.stdout)]


def tex_in_snippets(snippets: list[str]) -> list[str]:
    """Snippets that show TeX source (``\\(\\pi_1``) where a reader expects the formula in words."""
    return [s[:160] for s in snippets if _TEX_SOURCE.search(s)]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no access log on the terminal
        pass


@contextlib.contextmanager
def serve(html_dir: Path, prefix: str | None = None):
    """Serve the folder above ``html_dir`` over HTTP on 127.0.0.1, so the book sits under a ``/<prefix>/`` sub-path
    as on GitHub Pages; yields ``(base_url, served folder)``. ``prefix`` defaults to the folder's name."""
    html_dir = Path(html_dir).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        name = prefix or html_dir.name
        (Path(tmp) / name).symlink_to(html_dir, target_is_directory=True)
        handler = functools.partial(_Quiet, directory=tmp)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/{name}", html_dir
        finally:
            server.shutdown()
            server.server_close()


#: how pages are loaded: from files, and over HTTP under a sub-path
MODES = ("file", "http")


def check_book(html_dir: Path, min_charts: int = 1, widths: tuple[int, ...] = WIDTHS,
               modes: tuple[str, ...] = MODES) -> list[PageReport]:
    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError("Debian's chromium is needed (apt-get install chromium)")
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ValueError(f"modes={list(modes)}: each must be one of {list(MODES)}")
    reports = []
    with contextlib.ExitStack() as stack:
        servers: dict[str, tuple[str, Path] | None] = {}
        for mode in modes:
            servers[mode] = stack.enter_context(serve(html_dir, "rharm")) if mode == "http" else None
        for page in sorted(Path(html_dir).rglob("*.html")):
            if any(part.startswith(("_", ".")) for part in page.relative_to(html_dir).parts):
                continue
            if re.search(r'<meta http-equiv="refresh"', page.read_text(errors="replace")[:2000], re.I):
                continue  # a redirect (index.html -> the root page), checked as the page it points to
            reports.append(check_page(page, chromium, widths, servers=servers))
        if "http" in servers and (Path(html_dir) / "search.html").is_file():
            base, _ = servers["http"]
            raw = sorted({t for q in SEARCH_QUERIES for t in tex_in_snippets(search_snippets(chromium, base, q))})
            if raw:
                search = PageReport(Path(html_dir) / "search.html", 0, 0, False, 0, False)
                search.raw_output = [f"search snippet shows TeX: {t}" for t in raw[:5]]
                reports.append(search)
    total = sum(r.charts for r in reports)
    if total < min_charts:
        raise RuntimeError(f"only {total} charts found under {html_dir}; expected at least {min_charts}")
    return reports


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("html_dir", type=Path)
    ap.add_argument("--min-charts", type=int, default=1)
    ap.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS), help="window widths in px")
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES),
                    help="load pages from file:// and/or over HTTP (under a /rharm/ sub-path)")
    args = ap.parse_args(argv)
    reports = check_book(args.html_dir, args.min_charts, tuple(args.widths), tuple(args.modes))
    bad = [r for r in reports if not r.ok]
    for r in reports:
        status = "ok " if r.ok else "BAD"
        print(f"{status} {r.page.relative_to(args.html_dir)}: charts {r.drawn}/{r.charts} drawn; "
              f"math {'typeset ' + str(r.math_typeset) if r.has_math else 'none'}"
              + ("; raw math left" if r.raw_math_left else ""))
        for p in r.problems():
            print(f"    {p}")
    print(f"{len(reports)} pages checked ({', '.join(args.modes)}; widths {', '.join(map(str, args.widths))} px), "
          f"{sum(r.charts for r in reports)} charts, {len(bad)} failing")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
