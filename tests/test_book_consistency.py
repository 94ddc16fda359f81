"""One number per quantity: the pages that show the same runs show the same number (issue 25).

RH(m0, p0) at the main ratio appears on the Fashion-MNIST page three times (H1's table, the dose-response at the
main ratio) and on the mitigation page (its unmitigated arm); the minority's accuracy TE appears on both as well.
They come from the same runs and the same estimator, so they must be equal, in every committed profile."""

import json

import pytest

from rharm.core import paths


def _profiles():
    out = []
    for d in sorted(p for p in paths.book_dir().iterdir() if p.is_dir()):
        fh, mi = d / "fashion_harm.json", d / "mitigation.json"
        if fh.is_file() and mi.is_file() and "v2" in json.loads(fh.read_text())["values"]:
            out.append(d.name)
    return out


@pytest.mark.parametrize("profile", _profiles())
def test_fashion_and_mitigation_pages_show_one_number_per_quantity(profile):
    d = paths.book_dir() / profile
    fh = json.loads((d / "fashion_harm.json").read_text())["values"]["v2"]
    mi = json.loads((d / "mitigation.json").read_text())["values"]
    m0, p0 = fh["dose_response"]["backbone"]["minority"], fh["dose_response"]["backbone"]["partner"]
    assert (mi["minority"], mi["partner"]) == (m0, p0), "both pages must study the same registered cell"
    ratio = mi["ratio"]
    h1 = next(t for t in fh["tests"] if t["minority"] == m0)
    dose = next(p for p in fh["dose_response"]["backbone"]["points"] if p["x"] == ratio)
    none = next(r for r in mi["interventions"] if r["intervention"] == "none")
    for key in ("rh", "rh_lo", "rh_hi"):
        assert h1[key] == pytest.approx(dose[key], rel=1e-12) == pytest.approx(none[key], rel=1e-12), key
    assert dose["te"] == pytest.approx(none["TE"], abs=1e-12)


def test_the_check_finds_at_least_one_profile():
    assert _profiles(), "no committed profile has both pages in the v2 format"
