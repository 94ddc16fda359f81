"""Build a tiny book and open it in headless Chromium: the chart draws and the math is typeset, offline."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rharm import browser_check, runner

pytestmark = pytest.mark.browser


@pytest.mark.skipif(browser_check.find_chromium() is None, reason="needs Debian's chromium")
def test_fixture_book_renders_offline(project):
    runner.run("demo", profile="cpu")
    html = runner.build("cpu", strict=True)
    reports = browser_check.check_book(html)
    assert reports and all(r.ok for r in reports), reports
    assert sum(r.drawn for r in reports) >= 1


@pytest.mark.skipif(browser_check.find_chromium() is None, reason="needs Debian's chromium")
def test_check_fails_without_the_bundle(project):
    runner.run("demo", profile="cpu")
    html = runner.build("cpu", strict=True)
    (html / "_static" / "rharm-vega-embed.js").unlink()
    reports = browser_check.check_book(html)
    assert not all(r.ok for r in reports)
