"""Open built book pages in headless Chromium and check what a reader sees.

Usage: ``python -m rharm.book.browser_check <html-dir> [--min-charts N] [--widths 1400 420]``. Chromium loads every
page from ``file://`` with no network, at each window width, and a page fails when

* a chart (``class="rharm-vega"``) did not draw (no Vega SVG with marks), or math was not typeset (no
  ``mjx-container``, or raw ``\\(`` left);
* a chart's drawn width exceeds the text column (or its right edge runs past the column or the window), at any width;
* the page prints a warning or a traceback in a cell output (``output stderr``/``output traceback`` blocks, or text
  such as ``SomethingWarning:`` or ``Traceback (most recent call last)`` in an output);
* the browser console reports an error (a script error such as a name declared twice).

Exits non-zero, listing the failures, otherwise prints a line per page.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

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

# Injected into a copy of the page: once the page has loaded and the charts have drawn, write every chart's drawn box
# and the text column's box into the DOM, where --dump-dom can read them.
_LAYOUT_PROBE = """<script>window.addEventListener('load', function () { setTimeout(function () {
  var col = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  var c = col.getBoundingClientRect(), out = [];
  document.querySelectorAll('.rharm-vega').forEach(function (el) {
    var svg = el.querySelector('svg');
    if (!svg) { out.push({drawn: false}); return; }
    var r = svg.getBoundingClientRect();
    out.push({drawn: true, width: r.width, left: r.left, right: r.right, col_width: c.width, col_left: c.left,
              col_right: c.right, viewport: document.documentElement.clientWidth});
  });
  var pre = document.createElement('pre'); pre.id = 'rharm-layout-probe';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
}, 1500); });</script>"""

# chromium --enable-logging=stderr writes console messages as `...:CONSOLE:12] "message", source: ...`
_CONSOLE_MESSAGE = re.compile(r'CONSOLE[:(]\d+\)?\] "(.*?)", source:')


def rendered_dom(page: Path, chromium: str, budget_ms: int = 20000, width: int = WIDTHS[0],
                 probe: bool = False) -> tuple[str, list[str]]:
    """The page's DOM after its scripts ran, at window ``width``, and the console errors it logged.

    With ``probe`` the DOM holds a ``<pre id="rharm-layout-probe">`` with the charts' drawn boxes (JSON).
    """
    target = page
    if probe:
        # a sibling copy, so relative links to _static still resolve
        target = page.with_name(f".rharm-probe-{width}-{page.name}")
        source = page.read_text(errors="replace")
        cut = source.rfind("</body>")
        target.write_text(source[:cut] + _LAYOUT_PROBE + source[cut:] if cut >= 0 else source + _LAYOUT_PROBE)
    try:
        with tempfile.TemporaryDirectory() as profile:
            proc = subprocess.run(
                [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
                 f"--window-size={width},2000", "--enable-logging=stderr", "--v=0",
                 "--dump-dom", target.resolve().as_uri()],
                capture_output=True, text=True, timeout=180,
            )
    finally:
        if probe:
            target.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise RuntimeError(f"chromium failed on {page}: {proc.stderr[-2000:]}")
    errors = [m for m in _CONSOLE_MESSAGE.findall(proc.stderr) if m.startswith("Uncaught") or "Error" in m.split(":")[0]]
    return proc.stdout, errors


def layout(dom: str) -> list[dict]:
    """The chart boxes the layout probe wrote into ``dom`` (empty when there is none)."""
    m = re.search(r'<pre id="rharm-layout-probe">(.*?)</pre>', dom, re.S)
    if not m:
        return []
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))


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
    too_wide: list[str] = field(default_factory=list)  # "<width>px: chart k drawn W px in a C px column"
    printed: list[str] = field(default_factory=list)  # warnings/tracebacks in outputs
    console_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        charts_ok = self.drawn >= self.charts
        math_ok = (not self.has_math) or (self.math_typeset > 0 and not self.raw_math_left)
        return charts_ok and math_ok and not self.too_wide and not self.printed and not self.console_errors

    def problems(self) -> list[str]:
        out = []
        if self.drawn < self.charts:
            out.append(f"charts {self.drawn}/{self.charts} drawn")
        if self.has_math and (self.math_typeset == 0 or self.raw_math_left):
            out.append("math not typeset")
        return out + [f"too wide at {w}" for w in self.too_wide] + self.printed + [
            f"console: {e}" for e in self.console_errors]


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


def check_page(page: Path, chromium: str, widths: tuple[int, ...] = WIDTHS) -> PageReport:
    source = page.read_text(errors="replace")
    charts = source.count('class="rharm-vega"')
    has_math = bool(re.search(r'class="math[ "\-]', source))
    dom, errors = rendered_dom(page, chromium, width=widths[0], probe=bool(charts))
    wide = too_wide(layout(dom), widths[0]) if charts else []
    for w in widths[1:]:
        if charts:
            dom_w, errs_w = rendered_dom(page, chromium, width=w, probe=True)
            wide += too_wide(layout(dom_w), w)
            errors += [e for e in errs_w if e not in errors]
    # a drawn Vega chart is an <svg class="marks"> whose scene graph holds at least one mark group with content
    drawn = len(re.findall(r'<svg[^>]*class="marks"', dom))
    typeset = dom.count("<mjx-container")
    # raw delimiters left in math spans mean MathJax did not run
    raw = bool(re.search(r'<span class="math notranslate nohighlight">\\\(', dom)) or bool(
        re.search(r'<div class="math notranslate nohighlight">\s*\\\[', dom)
    )
    return PageReport(page, charts, drawn, has_math, typeset, raw, wide, printed_problems(source), errors)


def check_book(html_dir: Path, min_charts: int = 1, widths: tuple[int, ...] = WIDTHS) -> list[PageReport]:
    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError("Debian's chromium is needed (apt-get install chromium)")
    reports = []
    for page in sorted(html_dir.rglob("*.html")):
        if any(part.startswith(("_", ".")) for part in page.relative_to(html_dir).parts):
            continue
        reports.append(check_page(page, chromium, widths))
    total = sum(r.charts for r in reports)
    if total < min_charts:
        raise RuntimeError(f"only {total} charts found under {html_dir}; expected at least {min_charts}")
    return reports


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("html_dir", type=Path)
    ap.add_argument("--min-charts", type=int, default=1)
    ap.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS), help="window widths in px")
    args = ap.parse_args(argv)
    reports = check_book(args.html_dir, args.min_charts, tuple(args.widths))
    bad = [r for r in reports if not r.ok]
    for r in reports:
        status = "ok " if r.ok else "BAD"
        print(f"{status} {r.page.relative_to(args.html_dir)}: charts {r.drawn}/{r.charts} drawn; "
              f"math {'typeset ' + str(r.math_typeset) if r.has_math else 'none'}"
              + ("; raw math left" if r.raw_math_left else ""))
        for p in r.problems():
            print(f"    {p}")
    print(f"{len(reports)} pages checked, {sum(r.charts for r in reports)} charts, {len(bad)} failing")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
