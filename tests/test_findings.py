"""Every chapter's Finding box is short: at most ``FINDING_MAX_WORDS`` plain words, the key number and its interval.

A chapter's finding lives in three committed places: the glued output of its executed page (``book/cpu/<chapter>
.ipynb``, what the box shows), the ``finding`` of its headline file (``book/cpu/<chapter>.json``) and the landing
page's list (``book/findings.txt``, assembled from the pages when the book is built). Each is held to the limit, and
the check is proved able to fail on a planted page. The summary functions' branches are held to it in
``tests/test_report_*.py``; the Fashion-MNIST chapter's, which reads v2's numbers, here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from rharm.book import runner
from rharm.page import headline
from rharm.page.headline import FINDING_MAX_WORDS, word_count
from rharm.report import fashion

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "book" / "cpu"
CHAPTERS = runner.toc_chapters()


def too_long(text: str | None, limit: int = FINDING_MAX_WORDS) -> str | None:
    """Why ``text`` breaks the limit (its word count and opening), or None when it keeps it."""
    if text is None or word_count(text) <= limit:
        return None
    return f"{word_count(text)} words (limit {limit}): {' '.join(text.split()[:12])} ..."


def page_faults(pages: Path, chapters: list[str]) -> dict[str, str]:
    """Every chapter of ``pages`` whose glued finding or headline-file finding is over the limit."""
    faults = {}
    for name in chapters:
        page, values = pages / f"{name}.ipynb", pages / f"{name}.json"
        texts = {"page": headline.page_finding(page) if page.is_file() else None,
                 "headline file": (json.loads(values.read_text()).get("values", {}).get("finding")
                                   if values.is_file() else None)}
        for where, text in texts.items():
            why = too_long(text)
            if why:
                faults[f"{name} ({where})"] = why
    return faults


def test_word_count_counts_words_not_symbols():
    assert word_count("RH(sneaker, sandal) = 0.469 (0.352 to 0.624); 1 = no harm.") == 9
    assert word_count("π1 → 0, α ≥ 0.5") == 4
    assert word_count("") == 0


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_committed_finding_is_at_most_60_words(name):
    faults = page_faults(PAGES, [name])
    assert not faults, ("Finding over the limit; shorten the chapter's summary function in rharm/report/ and "
                        f"re-execute the chapter: {faults}")


def test_the_landing_page_list_of_findings_is_at_most_60_words_each():
    lines = [line for line in (ROOT / "book" / "findings.txt").read_text().splitlines() if line.startswith("* ")]
    assert lines
    faults = [too_long(line.split("**: ", 1)[1]) for line in lines]
    assert not any(faults), [f for f in faults if f]


def _planted(path: Path, finding: str) -> None:
    prefix = "application/papermill.record/"
    out = {"output_type": "display_data", "metadata": {"scrapbook": {"name": "xx_finding", "mime_prefix": prefix}},
           "data": {f"{prefix}text/plain": repr(finding)}}
    path.with_suffix(".ipynb").write_text(json.dumps({"cells": [
        {"cell_type": "markdown", "source": ["# A chapter\n"]},
        {"cell_type": "code", "source": "", "outputs": [out]}]}))
    path.with_suffix(".json").write_text(json.dumps({"values": {"finding": finding}}))


def test_the_check_fails_on_a_planted_long_finding(tmp_path):
    _planted(tmp_path / "short", " ".join(["word"] * FINDING_MAX_WORDS))
    _planted(tmp_path / "long", " ".join(["word"] * (FINDING_MAX_WORDS + 1)))
    faults = page_faults(tmp_path, ["short", "long"])
    assert set(faults) == {"long (page)", "long (headline file)"}
    assert faults["long (page)"].startswith(f"{FINDING_MAX_WORDS + 1} words")


# --- the Fashion-MNIST chapter's finding, from v2's numbers ---------------------------------------------------


def _v2(held=(True, True), control_held=False, fits=(False, True), survives=True, n_minorities=2):
    names = ["sneaker", "sandal", "bag", "coat"][:n_minorities]
    tests = [{"role": "minority", "minority": m, "partner": names[(i + 1) % len(names)], "rh": 0.469,
              "rh_lo": 0.352, "rh_hi": 0.624, "held": h} for i, (m, h) in enumerate(zip(names, held))]
    tests.append({"role": "control", "minority": "trouser", "partner": "shirt", "rh": 0.66, "rh_lo": 0.55,
                  "rh_hi": 0.79, "held": control_held})
    return {"tests": pd.DataFrame(tests), "registration": {"ratio": 100},
            "dose_response": {"backbone": {"h4b": {"held": fits[0]}}, "projection": {"h4b": {"held": fits[1]}}},
            "contradiction_survives": survives}


@pytest.mark.parametrize("kw, words", [
    ({}, "both registered minorities collapsed specifically onto their partner: RH(sneaker, sandal) = 0.469 "
         "(0.352 to 0.624), RH(sandal, sneaker)"),
    ({}, "The control (trouser) collapsed too, against the prediction."),
    ({}, "The theory predicts the dose-response on the projection output only; its low-temperature prediction "
         "failed."),
    ({"held": (True, False)}, "1 of 2 registered minorities"),
    ({"held": (False, False)}, "none of the 2 registered minorities"),
    ({"held": (True,), "n_minorities": 1}, "the registered minority collapsed specifically onto its partner"),
    ({"control_held": True}, "The control (trouser) did not collapse, as predicted."),
    ({"fits": (True, True), "survives": False}, "predicts the dose-response; its low-temperature prediction was "
                                                "not contradicted."),
    ({"fits": (False, False)}, "The theory misses the dose-response;"),
    ({"held": (True, True, True), "n_minorities": 3}, "all 3 registered minorities"),
])
def test_fashion_finding_follows_the_numbers_and_stays_short(kw, words):
    text = fashion.finding(_v2(**kw), 0.95)
    assert words in text
    assert text.startswith("On Fashion-MNIST at 1:100, ") and "(95% intervals, fresh seeds; 1 = no harm)" in text
    assert word_count(text) <= FINDING_MAX_WORDS, text


def test_fashion_finding_reads_the_committed_headline_file_as_the_chapter_does():
    v2 = json.loads((PAGES / "fashion_harm.json").read_text())["values"]["v2"]
    text = fashion.finding(v2, 0.95)  # the JSON holds lists of rows where the chapter holds DataFrames
    assert text.startswith("On Fashion-MNIST") and word_count(text) <= FINDING_MAX_WORDS
