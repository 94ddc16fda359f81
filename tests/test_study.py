"""rharm.study.design: the pre-registration rule, the paired tests, and the theory mapping, on inputs with known
answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rharm.harm import metrics, stats
from rharm.harm import synthetic as testing
from rharm.study import design as study

CLASSES = ["a", "b", "c", "d", "e", "f"]


def _distance():
    """a-b close (0.10) with small within spread; c-d overlapping (no room); e and f far from everything."""
    d = np.full((6, 6), 0.8)
    np.fill_diagonal(d, 0.05)
    d[0, 0] = 0.04  # a is tighter than b: more room (0.06 against 0.05), so a comes first under the v2 tie-break
    d[0, 1] = d[1, 0] = 0.10
    d[2, 3] = d[3, 2] = 0.20
    d[2, 2], d[3, 3] = 0.30, 0.25  # within > between: c and d already overlap
    d[4, 5] = d[5, 4] = 0.50
    d[4, 0] = d[0, 4] = 0.40
    return d


def test_rule_picks_nearest_partners_with_room_and_a_far_control():
    pre = study.preregister(_distance(), CLASSES, n_close=2)
    t = pre.table.set_index("class")
    assert t.loc["a", "nearest"] == "b" and t.loc["b", "nearest"] == "a" and t.loc["e", "nearest"] == "a"
    assert not t.loc["c", "room"] and not t.loc["d", "room"] and t.loc["a", "room"]
    assert pre.minorities == ["a", "b"]  # smallest nearest distance among classes with room (tie: larger room)
    assert pre.control == "f" and pre.partners["f"] == "e"  # f's nearest class (e, 0.5) is the farthest
    assert pre.all_minorities == ["a", "b", "f"]
    assert list(t.role) == ["minority", "minority", "", "", "", "control"]


def test_tie_break_uses_room_never_the_name_unless_v1_is_asked_for():
    d = _distance()
    d[0, 0], d[1, 1] = 0.06, 0.03  # now b (the later name) is the tighter class: it must come first
    pre = study.preregister(d, CLASSES, n_close=2)
    assert pre.minorities == ["b", "a"]
    assert "larger room" in pre.rule
    # v1's rule, kept to reproduce v1: alphabetical
    assert study.preregister(d, CLASSES, n_close=2, tie_break="name").minorities == ["a", "b"]
    # a tie in both distance and room is refused, not broken by a name
    d[0, 0] = d[1, 1] = 0.05
    with pytest.raises(ValueError, match="tie in both nearest distance and room"):
        study.preregister(d, CLASSES, n_close=2)
    with pytest.raises(ValueError, match="tie_break"):
        study.preregister(d, CLASSES, n_close=2, tie_break="spelling")


def test_rule_refuses_when_no_control_would_remain():
    with pytest.raises(ValueError, match="only 4 classes have room.*n_close \\+ 1 = 5"):
        study.preregister(_distance(), CLASSES, n_close=4)
    with pytest.raises(ValueError, match="expected \\(6, 6\\)"):
        study.preregister(np.zeros((5, 5)), CLASSES)
    with pytest.raises(ValueError, match="n_close=0"):
        study.preregister(_distance(), CLASSES, n_close=0)


def test_rule_on_class_means():
    """From synthetic class means: two nearby centres are each other's partners."""
    rng = np.random.default_rng(0)
    centres = np.linalg.qr(rng.normal(size=(16, 6)))[0].T
    centres[1] = 0.8 * centres[0] + 0.6 * centres[1]  # b near a
    x = np.repeat(centres, 50, axis=0) + 0.3 * rng.normal(size=(300, 16))
    y = np.repeat(np.arange(6), 50)
    d = 1 - metrics.class_cosines(x, y, 6)
    pre = study.preregister(d, CLASSES, n_close=2)
    assert set(pre.minorities) == {"a", "b"} and pre.partners["a"] == "b" and pre.partners["b"] == "a"


def test_holm_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    p = np.array([0.01, 0.04, 0.03, 0.20, 0.005])
    assert np.allclose(study.holm(p), multipletests(p, method="holm")[1])


def _runs(collapse, strength=0.6):
    return testing.synthetic_runs(classes=CLASSES, minorities=("a", "b", "f"), collapse=collapse,
                                  strength=strength, seeds=range(5), dim=16, n_test=60, spread=0.6)


def test_planted_collapse_is_confirmed_and_an_absent_one_is_not():
    pre = study.preregister(_distance(), CLASSES, n_close=2)  # minorities a -> b, b -> a; control f
    cr = metrics.cosine_runs(_runs({"a": "b"}), classes=CLASSES)
    t = study.primary_tests(cr, pre).set_index("minority")
    assert t.loc["a", "held"] and t.loc["a", "rh"] < 0.8 and t.loc["a", "rh_hi"] < 1
    assert t.loc["a", "p_rh_holm"] < 0.05 and t.loc["a", "contrast"] < 0
    assert not t.loc["b", "held"]  # nothing planted for b
    assert t.loc["f", "role"] == "control" and t.loc["f", "held"]  # no planted collapse of the control
    assert np.isnan(t.loc["f", "p_rh_holm"])  # the control is not in the Holm family


def test_control_prediction_fails_when_the_control_collapses():
    pre = study.preregister(_distance(), CLASSES, n_close=2)
    cr = metrics.cosine_runs(_runs({"f": "e"}), classes=CLASSES)
    t = study.primary_tests(cr, pre).set_index("minority")
    assert not t.loc["f", "held"] and t.loc["f", "p_contrast"] < 0.05


def test_seed_log_rh_is_paired_by_seed():
    cr = metrics.cosine_runs(_runs({"a": "b"}), classes=CLASSES)
    lr = study.seed_log_rh(cr, "a")
    s = 3
    expected = np.log((1 - cr.imbalanced["a"][s, 0, 1]) / (1 - cr.balanced[s, 0, 1]))
    assert lr.shape == (5, 6) and lr[s, 1] == pytest.approx(expected)


def test_noise_floor_rows_without_underrepresentation():
    cr = metrics.cosine_runs(_runs({}), classes=CLASSES)
    f = study.noise_floor_rows(cr, ["a"])
    # by hand: row a of every ordered pair of distinct balanced seeds, off the diagonal
    v = np.array([(1 - cr.balanced[a, 0, j]) / (1 - cr.balanced[b, 0, j])
                  for a in range(5) for b in range(5) if a != b for j in range(1, 6)])
    assert f["n"] == v.size == 5 * 4 * 5
    assert (f["min"], f["max"]) == (pytest.approx(v.min(), abs=1e-12), pytest.approx(v.max(), abs=1e-12))
    assert (f["lo"], f["hi"]) == (pytest.approx(np.quantile(v, 0.025), abs=1e-12),
                                  pytest.approx(np.quantile(v, 0.975), abs=1e-12))


def _geometric_ci_by_hand(x, level=0.95):
    """The interval stats.geometric_ci should give, derived independently: the exponentiated t-interval of the logs
    (issue 25)."""
    from scipy import stats as sps

    half = sps.t.ppf((1 + level) / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return np.exp(x.mean()), np.exp(x.mean() - half), np.exp(x.mean() + half)


def test_geometric_ci_equals_an_independent_derivation_and_is_equivariant():
    rng = np.random.default_rng(1)
    x = np.log(0.5) + 0.8 * rng.normal(size=4)
    est, lo, hi = stats.geometric_ci(x)
    assert (est, lo, hi) == pytest.approx(_geometric_ci_by_hand(x), rel=1e-12)
    assert est == pytest.approx(np.exp(x.mean()), rel=1e-12) and 0 < lo < est < hi
    # shifting every log ratio by c multiplies estimate and ends by exp(c); negating inverts and swaps the ends
    assert stats.geometric_ci(x + 0.3) == pytest.approx(tuple(np.exp(0.3) * np.array([est, lo, hi])), rel=1e-9)
    assert stats.geometric_ci(-x) == pytest.approx((1 / est, 1 / hi, 1 / lo), rel=1e-9)
    te = np.array([-0.1, -0.2, -0.3, -0.2])
    t = study.sweep_table([{"x": 2, "log_rh": x, "te": te}]).iloc[0]
    assert (t.rh, t.rh_lo, t.rh_hi) == pytest.approx((est, lo, hi), rel=1e-12) and t.n_seeds == 4
    te_est, te_lo, te_hi = np.log(_geometric_ci_by_hand(te))  # the same interval, on the natural scale
    assert (t.te, t.te_lo, t.te_hi) == pytest.approx((te_est, te_lo, te_hi), rel=1e-9, abs=1e-12)


def test_block_proportions():
    assert np.allclose(study.block_proportions(100, 10), np.array([0.01, 1, 8]) / 9.01)
    assert np.allclose(study.block_proportions(1, 10), [0.1, 0.1, 0.8])
    with pytest.raises(ValueError, match="ratio=0.5"):
        study.block_proportions(0.5, 10)


def test_theory_rh_is_one_when_balanced_and_the_fit_recovers_alpha():
    assert study.theory_rh(1, 0.3, tau=0.5, n_classes=10, dim=10) == pytest.approx(1.0)
    target = study.theory_rh(100, 0.47, tau=0.5, n_classes=10, dim=10)
    assert 0 < target < 1
    fit = study.fit_alpha(target, 100, tau=0.5, n_classes=10, dim=10)
    assert fit.alpha == pytest.approx(0.47, abs=0.01) and not fit.at_bound
    table, mae = study.theory_prediction_error(pd.DataFrame({"x": [1, 10, 100], "rh": [1.0, 0.5, target]}), fit,
                                               dim=10)
    assert table.theory_rh.iloc[0] == 1.0 and table.theory_rh.iloc[2] == pytest.approx(target, rel=0.05)
    assert mae == pytest.approx(abs(0.5 - table.theory_rh.iloc[1]))


def test_fit_reports_an_observation_outside_the_theory_range():
    fit = study.fit_alpha(0.99, 100, tau=0.5, n_classes=10, dim=10, alphas=(0.0, 0.2, 0.4))
    assert fit.at_bound


def test_design_finding_names_each_minority_cell_and_which_test_held():
    tests = pd.DataFrame([
        {"minority": "sandal", "partner": "sneaker", "role": "minority", "rh": 0.65, "rh_lo": 0.53, "rh_hi": 0.76,
         "p_rh_holm": 0.007, "held": False},
        {"minority": "sneaker", "partner": "sandal", "role": "minority", "rh": 0.46, "rh_lo": 0.34, "rh_hi": 0.56,
         "p_rh_holm": 0.007, "held": True},
        {"minority": "bag", "partner": "shirt", "role": "minority", "rh": 0.98, "rh_lo": 0.8, "rh_hi": 1.2,
         "p_rh_holm": 0.4, "held": False},
        {"minority": "trouser", "partner": "shirt", "role": "control", "rh": 0.6, "rh_lo": 0.5, "rh_hi": 0.7,
         "p_rh_holm": np.nan, "held": True},
    ])
    res = study.DesignResult("Design B", [], {}, None, tests, {"lo": 0.65, "hi": 1.55}, None, {}, {}, None, None,
                             0.3, 0.1, 0.7, None, 0.2, 0.6, "sandal", "sneaker", "idx", 1.0, alpha=0.05)
    text = res.finding(0.95)
    assert "1 of 3 pre-registered minorities collapsed specifically onto their predicted partner (sneaker → sandal)" \
        in text
    assert "RH(sandal, sneaker) = 0.650 (0.530 to 0.760), below 1 but not pair-specific" in text
    assert "RH(sneaker, sandal) = 0.460 (0.340 to 0.560), below 1 and pair-specific" in text
    assert "RH(bag, shirt) = 0.980 (0.800 to 1.20), not significantly below 1" in text
    assert "does not fall significantly" in text and "did not give significantly more collapse" in text
    assert "as predicted" in text  # the control held
