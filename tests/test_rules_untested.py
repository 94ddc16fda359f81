"""Registered rules that had no test: the dose-response and temperature slope tests (rharm.study.design), the
probe-accuracy
clauses of the mitigation expectations (rharm.report.mitigation) and an alpha fit with two solutions
(rharm.study.design).

Each test derives its answer independently (scipy's regression by hand, a planted theory curve with known roots, the
registration's own words), so a fault in the rule fails it.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from rharm.report import mitigation as MI
from rharm.study import design as study

# --------------------------------------------------------------------------------------------------------------
# H4 / H5: the slope of pooled per-seed log RH on log ratio (log temperature), one-sided
# --------------------------------------------------------------------------------------------------------------


def _slope_by_hand(xs, ys):
    """Ordinary least squares of every per-seed value on log x, with the one-sided t-test of slope < 0."""
    x = np.concatenate([np.full(len(y), np.log(v)) for v, y in zip(xs, ys)])
    y = np.concatenate(ys)
    sxx = ((x - x.mean()) ** 2).sum()
    b = ((x - x.mean()) * (y - y.mean())).sum() / sxx
    resid = y - y.mean() - b * (x - x.mean())
    se = np.sqrt((resid**2).sum() / (x.size - 2) / sxx)
    return b, sps.t.cdf(b / se, x.size - 2)


def test_dose_slope_equals_ols_on_pooled_seeds_with_a_one_sided_p():
    rng = np.random.default_rng(0)
    xs = [2, 5, 10, 20, 50, 100]
    ys = [np.log(0.9) - 0.05 * np.log(x) + 0.04 * rng.normal(size=4) for x in xs]  # RH falls with the ratio
    slope, p = study._slope_p(xs, ys)
    b, p_hand = _slope_by_hand(xs, ys)
    assert slope == pytest.approx(b, rel=1e-10) and p == pytest.approx(p_hand, rel=1e-8)
    assert -0.08 < slope < -0.02 and p < 1e-4  # the planted fall is found
    # the same values rising with the ratio: the one-sided p is the complement (a rise is no evidence of a fall)
    up, p_up = study._slope_p(xs, [-y for y in ys])
    assert up == pytest.approx(-slope) and p_up == pytest.approx(1 - p, rel=1e-8)
    # pooled per-seed values, not means per ratio: 24 points give 22 degrees of freedom
    means = study._slope_p(xs, [np.array([y.mean()]) for y in ys])
    assert means[0] == pytest.approx(slope) and means[1] != pytest.approx(p)


def test_flat_dose_response_does_not_fall():
    rng = np.random.default_rng(1)
    xs = [2, 5, 10, 20]
    hits = 0
    for _ in range(200):  # no slope: the one-sided test rejects at about its level, 5%
        _, p = study._slope_p(xs, [0.05 * rng.normal(size=5) for _ in xs])
        hits += p < 0.05
    assert 0.01 <= hits / 200 <= 0.10


@pytest.mark.parametrize("prop, slope_field, p_field", [("dose_falls", "dose_slope", "dose_p"),
                                                         ("temp_more", "temperature_slope", "temperature_p")])
def test_slope_verdicts_need_a_negative_slope_and_p_below_the_registered_level(prop, slope_field, p_field):
    rule = getattr(study.DesignResult, prop).fget

    def verdict(slope, p, alpha=0.05):
        return rule(SimpleNamespace(**{slope_field: slope, p_field: p, "alpha": alpha}))

    assert verdict(-0.1, 0.01) is True
    assert verdict(-0.1, 0.05) is False  # p must lie below the level, not at it
    assert verdict(-0.1, 0.03, alpha=0.01) is False  # the design's own level decides
    assert verdict(0.1, 0.01) is False  # a rise never counts, whatever p says
    assert verdict(0.0, 0.0) is False


# --------------------------------------------------------------------------------------------------------------
# The mitigation expectations: the registered probe-accuracy clauses
# --------------------------------------------------------------------------------------------------------------


def _registered_probe_points() -> dict[str, float]:
    """{expectation id: points} from the registration's own words in profiles.yml (the commented E1-E6 list)."""
    text = (Path(__file__).resolve().parents[1] / "profiles.yml").read_text()
    out, current = {}, None
    for line in text.splitlines():
        m = re.match(r"\s*#\s+(E\d)\b", line)
        if m:
            current = m.group(1)
        elif not re.match(r"\s*#", line):
            current = None
        hit = re.search(r"probe accuracy within (\d+) points?", line)
        if current and hit:
            out[current] = float(hit.group(1))
    return out


def test_the_registration_has_probe_clauses_for_e1_e2_and_e5():
    assert _registered_probe_points() == {"E1": 1.0, "E2": 1.0, "E5": 2.0}


def _row(intervention, dprobe):
    """A row of the interventions table that meets every other clause of its expectation."""
    e = MI.expectations().set_index("intervention").loc[intervention]
    lo, hi = e.removed_lo, e.removed_hi
    removed = (lo + min(hi, 1.0)) / 2
    return dict(intervention=intervention, removed=removed, rh=0.5, rh_lo=0.4, rh_hi=0.6, dlog=0.3, dlog_lo=0.1,
                dlog_hi=0.5, dprobe=dprobe)


def _verdict(eid, dprobe):
    e = MI.expectations().set_index("id").loc[eid]
    rows = [_row(name, 0.0) if name != e.intervention else _row(name, dprobe) for name in MI.INTERVENTIONS[1:]]
    rows.insert(0, dict(intervention="none", removed=0.0, rh=0.5, rh_lo=0.4, rh_hi=0.6, dlog=0.0, dlog_lo=0.0,
                        dlog_hi=0.0, dprobe=0.0))
    v = MI.verdicts(pd.DataFrame(rows), baseline_resolved=True).expectations_held.set_index("id")
    return v.loc[eid, "held"]


@pytest.mark.parametrize("eid", ["E1", "E2", "E5"])
def test_expectations_hold_when_the_probe_stays_within_its_registered_points(eid):
    points = _registered_probe_points()[eid]
    assert _verdict(eid, -0.5 * points / 100) == "yes"  # half the allowed change: every clause met


@pytest.mark.parametrize("eid", ["E1", "E2", "E5"])
def test_expectations_fail_when_the_probe_moves_beyond_its_registered_points(eid):
    points = _registered_probe_points()[eid]
    assert _verdict(eid, -3 * points / 100) == "no"  # three times the allowed drop
    assert _verdict(eid, +3 * points / 100) == "no"  # "within" is both ways
    assert MI.PROBE_WITHIN[eid] == pytest.approx(points / 100)  # the rule's numbers are the registration's


# --------------------------------------------------------------------------------------------------------------
# The alpha fit when the theory's RH is not monotone in alpha: two solutions
# --------------------------------------------------------------------------------------------------------------


def _log_rh(alpha):
    return -1 + (2.0 if alpha < 0.45 else 1.2) * abs(alpha - 0.45)


def _v_shaped_theory(monkeypatch):
    """A planted theory: log RH = -1 + 2 (0.45 - alpha) left of 0.45, -1 + 1.2 (alpha - 0.45) right of it: piecewise
    linear on the default grid (steps of 0.05, the kink on a grid point), so the interpolated fit is exact and its
    two roots are known."""
    calls = []

    def fake(ratio, alpha, *, tau, n_classes, dim=20):
        calls.append((ratio, alpha, tau, n_classes, dim))
        return float(np.exp(_log_rh(alpha)))

    monkeypatch.setattr(study, "theory_rh", fake)
    return calls


def test_alpha_fit_with_two_solutions_returns_a_root_and_lists_both(monkeypatch):
    calls = _v_shaped_theory(monkeypatch)
    observed = float(np.exp(-0.55))  # roots: 0.45 - 0.45 / 2 = 0.225 and 0.45 + 0.45 / 1.2 = 0.825
    roots = [0.225, 0.825]
    fit = study.fit_alpha(observed, 100, tau=0.5, n_classes=10, dim=7)
    assert {c[0] for c in calls} == {100} and {c[2:] for c in calls} == {(0.5, 10, 7)}
    assert not fit.at_bound
    assert min(abs(fit.alpha - r) for r in roots) < 1e-9  # one of the two roots, never a point between them
    assert np.exp(_log_rh(fit.alpha)) == pytest.approx(observed, rel=1e-9)  # it reproduces the observed RH
    assert fit.solutions == pytest.approx(roots, abs=1e-9)  # every alpha that reproduces the observed RH, in order
    assert fit.alpha == pytest.approx(fit.solutions[0])


def test_alpha_fit_outside_the_theory_range_is_at_its_bound(monkeypatch):
    _v_shaped_theory(monkeypatch)
    fit = study.fit_alpha(float(np.exp(-1.2)), 100, tau=0.5, n_classes=10)  # below the minimum exp(-1)
    assert fit.at_bound and fit.alpha == pytest.approx(0.45)  # the grid point closest in log RH
