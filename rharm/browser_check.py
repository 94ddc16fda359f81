"""Open built book pages in headless Chromium and check that every chart drew and all math was typeset.

Usage: ``python -m rharm.browser_check <html-dir> [--min-charts N]``. For each HTML page that holds a chart
(``class="rharm-vega"``) or math, Chromium loads it from ``file://`` with no network, and the rendered DOM must show
one Vega SVG with drawn marks per chart and MathJax output (``mjx-container``) and no raw ``\\(`` math left.
Exits non-zero, listing the failures, otherwise prints a line per page.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
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


def rendered_dom(page: Path, chromium: str, budget_ms: int = 20000) -> str:
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
             "--dump-dom", page.resolve().as_uri()],
            capture_output=True, text=True, timeout=180,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"chromium failed on {page}: {proc.stderr[-2000:]}")
    return proc.stdout


@dataclass
class PageReport:
    page: Path
    charts: int
    drawn: int
    has_math: bool
    math_typeset: int
    raw_math_left: bool

    @property
    def ok(self) -> bool:
        charts_ok = self.drawn >= self.charts
        math_ok = (not self.has_math) or (self.math_typeset > 0 and not self.raw_math_left)
        return charts_ok and math_ok


_MATH_SOURCE = re.compile(r'class="math[ "]|\\\(|\\\[|\$\$')


def check_page(page: Path, chromium: str) -> PageReport:
    source = page.read_text(errors="replace")
    charts = source.count('class="rharm-vega"')
    has_math = bool(re.search(r'class="math[ "\-]', source))
    dom = rendered_dom(page, chromium)
    # a drawn Vega chart is an <svg class="marks"> whose scene graph holds at least one mark group with content
    drawn = len(re.findall(r'<svg[^>]*class="marks"', dom))
    typeset = dom.count("<mjx-container")
    # raw delimiters left in math spans mean MathJax did not run
    raw = bool(re.search(r'<span class="math notranslate nohighlight">\\\(', dom)) or bool(
        re.search(r'<div class="math notranslate nohighlight">\s*\\\[', dom)
    )
    return PageReport(page, charts, drawn, has_math, typeset, raw)


def check_book(html_dir: Path, min_charts: int = 1) -> list[PageReport]:
    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError("Debian's chromium is needed (apt-get install chromium)")
    reports = []
    for page in sorted(html_dir.rglob("*.html")):
        if any(part.startswith("_") for part in page.relative_to(html_dir).parts):
            continue
        text = page.read_text(errors="replace")
        if 'class="rharm-vega"' in text or re.search(r'class="math[ "\-]', text):
            reports.append(check_page(page, chromium))
    total = sum(r.charts for r in reports)
    if total < min_charts:
        raise RuntimeError(f"only {total} charts found under {html_dir}; expected at least {min_charts}")
    return reports


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("html_dir", type=Path)
    ap.add_argument("--min-charts", type=int, default=1)
    args = ap.parse_args(argv)
    reports = check_book(args.html_dir, args.min_charts)
    bad = [r for r in reports if not r.ok]
    for r in reports:
        status = "ok " if r.ok else "BAD"
        print(f"{status} {r.page.relative_to(args.html_dir)}: charts {r.drawn}/{r.charts} drawn; "
              f"math {'typeset ' + str(r.math_typeset) if r.has_math else 'none'}"
              + ("; raw math left" if r.raw_math_left else ""))
    print(f"{len(reports)} pages checked, {sum(r.charts for r in reports)} charts, {len(bad)} failing")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
