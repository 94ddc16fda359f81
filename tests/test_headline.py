"""Every chapter's headline numbers as data (rharm.page.headline)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rharm.book import runner
from rharm.core import params
from rharm.page import headline

ROOT = Path(__file__).resolve().parents[1]


def test_write_profile_page_and_variant(project, monkeypatch):
    P = params.Params(notebook="demo", profile="smoke", values={"alpha": 0.2})
    monkeypatch.setenv(headline.PATH_ENV, str(headline.path_for("demo", "smoke")))  # as rharm run sets it
    out = headline.write(P, {"rh": np.float32(0.5), "n": np.int64(3), "nan": float("nan"),
                             "table": pd.DataFrame({"a": [1, 2]}), "arr": np.array([1.0, 2.0])})
    assert out == project / "book" / "smoke" / "demo.json"
    doc = json.loads(out.read_text())
    assert doc["values"] == {"rh": 0.5, "n": 3, "nan": None, "table": [{"a": 1}, {"a": 2}], "arr": [1.0, 2.0]}
    assert headline.read("demo", "smoke")["n"] == 3
    V = params.Params(notebook="demo", profile="smoke", values={"alpha": 0.3}, overrides={"alpha": 0.3})
    monkeypatch.setenv(headline.PATH_ENV, str(headline.path_for("demo", "smoke", {"alpha": 0.3})))
    variant = headline.write(V, {"rh": 1.0})
    assert variant == project / "runs" / "demo" / "smoke-alpha=0.3.json"
    assert json.loads(out.read_text())["values"]["n"] == 3  # the page's file is untouched by a variant


@pytest.mark.parametrize("name", runner.toc_chapters())
def test_every_chapter_publishes_its_headline_numbers_once_and_glues_nothing_else(name):
    src = (ROOT / "notebooks" / f"{name}.py").read_text()
    assert len(re.findall(r"headline\.publish\(P, \"\w+\"", src)) == 1, f"notebooks/{name}.py: one publish call"
    assert not re.search(r"\bglue\(", src), f"notebooks/{name}.py glues values one by one: put them in a summary"


def test_publish_glues_scalars_writes_everything_and_refuses_clashes(tmp_path, monkeypatch):
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class A:
        rh: float
        finding: str = dataclasses.field(metadata={"markdown": True})
        table: list = dataclasses.field(default_factory=list)

    @dataclasses.dataclass(frozen=True)
    class B:
        n: int
        note: str | None = None

    a, b = A(np.float64(0.5), "**harm**", [1, 2]), B(np.int64(3))
    values = headline.section_values(a, b)
    assert list(values) == ["rh", "finding", "table", "n", "note"]
    glued = headline.gluable(values, {"finding"})
    assert glued == {"rh": 0.5, "finding": "**harm**", "n": 3} and type(glued["rh"]) is float
    with pytest.raises(ValueError, match="'rh' of A is already given"):
        headline.section_values(a, a)
    with pytest.raises(TypeError, match="dataclass instance"):
        headline.section_values({"rh": 1})
    with pytest.raises(TypeError, match="marked markdown"):
        headline.gluable({"finding": 1.0}, {"finding"})
    monkeypatch.setenv(headline.PATH_ENV, str(tmp_path / "x.json"))
    P = params.Params(notebook="demo", profile="smoke", values={})
    out = headline.publish(P, "xx", a, b)  # outside a kernel: written, not glued
    assert json.loads(out.read_text())["values"] == {"rh": 0.5, "finding": "**harm**", "table": [1, 2], "n": 3,
                                                     "note": None}


def _page(path, title, finding_mime, finding):
    prefix = "application/papermill.record/"
    glue_out = {"output_type": "display_data",
                "metadata": {"scrapbook": {"name": "xx_finding", "mime_prefix": prefix}},
                "data": {f"{prefix}{finding_mime}": finding}}
    other = {"output_type": "display_data", "metadata": {"scrapbook": {"name": "n", "mime_prefix": ""}},
             "data": {"text/plain": "3"}}
    nb = {"cells": [{"cell_type": "markdown", "source": [f"# {title}\n", "text"]},
                    {"cell_type": "code", "source": "", "outputs": [other, glue_out]}]}
    path.write_text(json.dumps(nb))


def test_intro_findings_are_assembled_from_the_executed_pages(tmp_path):
    _page(tmp_path / "a.ipynb", "Chapter A", "text/markdown", "RH = 0.5 at\n1:100.")
    _page(tmp_path / "b.ipynb", "Chapter B", "text/plain", "'No harm.'")
    assert headline.page_finding(tmp_path / "b.ipynb") == "No harm."
    md = headline.findings_markdown(["a", "missing", "b"], tmp_path, "cpu")
    assert md == ("* **[Chapter A](cpu/a.ipynb)**: RH = 0.5 at 1:100.\n"
                  "* **[Chapter B](cpu/b.ipynb)**: No harm.\n")


@pytest.mark.parametrize("name", runner.toc_chapters())
def test_every_committed_cpu_page_has_its_headline_numbers(name):
    path = ROOT / "book" / "cpu" / f"{name}.json"
    assert path.is_file(), f"book/cpu/{name}.json is missing: execute the chapter with `rharm run {name}`"
    doc = json.loads(path.read_text())
    assert doc["chapter"] == name and doc["profile"] == "cpu" and doc["overrides"] == {} and doc["values"]


def test_reproduce_page_timings_come_from_the_build_record(tmp_path):
    from rharm.book import runner

    assert "No full execution" in runner.timings_markdown(tmp_path, "cpu")
    (tmp_path / "cpu").mkdir()
    rec = {"profile": "cpu", "started": "2026-11-30 08:00 UTC", "git_commit": "abc", "result_store_empty": True,
           "hardware": {"cpu": "Some CPU", "cpu_count": 2, "gpu": None}, "load_average_start": [1.0, 1, 1],
           "load_average_end": [2.04, 2, 2], "chapters": {"theory": 30.0, "fashion_harm": 900.0}, "total_s": 1500.0}
    (tmp_path / "cpu" / "build.json").write_text(json.dumps(rec))
    md = runner.timings_markdown(tmp_path, "cpu")
    assert "**25 minutes** on 2 CPU cores (Some CPU), no GPU, from an empty result store" in md
    assert "| fashion_harm | 15.0 min |" in md and "| theory | 0.5 min |" in md and "2.0 at the end" in md


def test_readme_quotes_the_recorded_book_time():
    """The README's whole-book time is the one the last full cpu execution recorded (not a hand-kept number)."""
    from rharm.core import paths

    rec = json.loads((paths.book_dir() / "cpu" / "build.json").read_text())
    readme = (paths.repo_root() / "README.md").read_text()
    quoted = re.search(r"whole\s+cpu\s+book\s+took\s+(\d+)\s+minutes", readme)
    assert quoted, "README must state the recorded whole-book time ('whole cpu book took N minutes')"
    assert int(quoted.group(1)) == round(rec["total_s"] / 60)
