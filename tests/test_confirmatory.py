"""Registration v2's decision rules (rharm.study.confirmatory): each one decided by a planted case it must accept and
one it
must reject, and the finding's sentences driven by the numbers."""

import numpy as np
import pandas as pd
import pytest

from rharm.harm import stats
from rharm.study import confirmatory as C
from rharm.study import design as study


def _points(curve, seeds=6, sd=0.05, seed=0):
    """Dose-response points with per-seed log RH scattered around log(curve(ratio))."""
    rng = np.random.default_rng(seed)
    out = [{"x": 1, "log_rh": np.zeros(seeds)}]
    for r in (2, 3, 5, 10, 30, 100):
        out.append({"x": r, "log_rh": np.log(curve(r)) + rng.normal(0, sd, seeds)})
    return out


def saturating(r):
    return 0.6 + 0.4 / r  # falls and then flattens, as the three-block theory predicts


def test_h4a_holds_when_every_ratio_from_r0_is_below_one_and_not_otherwise():
    pts = _points(saturating)
    res = C.below_one_at_every_ratio(pts, r0=5, alpha=0.05)
    assert res["held"] and res["ratios"] == [5, 10, 30, 100] and max(res["p"]) < 0.05
    # one ratio at RH 1 (nothing collapsed there): the intersection-union test fails
    bad = [dict(p) for p in pts]
    bad[4] = {"x": 10, "log_rh": np.random.default_rng(1).normal(0, 0.05, 6)}
    assert not C.below_one_at_every_ratio(bad, r0=5, alpha=0.05)["held"]
    # ratios below r0 are not tested
    assert C.below_one_at_every_ratio(bad, r0=30, alpha=0.05)["held"]


def _fit(solutions, at_bound=False):
    return study.TheoryFit(alpha=solutions[0], fit_ratio=100, observed_at_fit=0.6, tau=0.5, n_classes=5,
                           at_bound=at_bound, solutions=list(solutions))


def test_h4b_theory_that_matches_beats_the_flat_line(monkeypatch):
    monkeypatch.setattr(study, "theory_rh", lambda r, a, **k: saturating(r))
    res = C.theory_against_flat(_points(saturating), _fit([0.3]), margin=0.02, alpha=0.05, level=0.95, dim=3)
    assert res["held"] and res["held_out_ratios"] == [2, 3, 5, 10, 30]
    s = res["by_solution"][0]
    assert s["theory_error"] < s["flat_error"] and s["lo"] > 0.02


def test_h4b_fails_on_flat_data_on_a_wrong_solution_and_at_the_bound(monkeypatch):
    monkeypatch.setattr(study, "theory_rh", lambda r, a, **k: saturating(r) if a < 0.5 else 1.0 - 0.004 * r)
    flat = _points(lambda r: 0.604)
    assert not C.theory_against_flat(flat, _fit([0.3]), margin=0.02, alpha=0.05, level=0.95, dim=3)["held"]
    # two solutions: the second predicts badly, so H4b must not hold
    two = C.theory_against_flat(_points(saturating), _fit([0.3, 0.7]), margin=0.02, alpha=0.05, level=0.95, dim=3)
    assert [s["held"] for s in two["by_solution"]] == [True, False] and not two["held"]
    # a fit at the edge of the theory's range never holds
    edge = C.theory_against_flat(_points(saturating), _fit([0.3], at_bound=True), margin=0.02, alpha=0.05,
                                 level=0.95, dim=3)
    assert not edge["held"]


def test_fit_alpha_reports_every_solution_of_a_curve_that_is_not_monotone(monkeypatch):
    # RH at the fitting ratio against alpha: down, up, down (like the three-block theory at 1:100)
    curve = {0.0: 0.63, 0.1: 0.40, 0.3: 0.55, 0.5: 0.55, 0.7: 0.30}
    monkeypatch.setattr(study, "theory_rh", lambda r, a, **k: curve[round(float(a), 1)])
    fit = study.fit_alpha(0.5, 100, tau=0.5, n_classes=5, alphas=tuple(curve))
    assert len(fit.solutions) == 3 and not fit.at_bound
    assert fit.solutions[0] < 0.1 < fit.solutions[1] < 0.3 and 0.5 < fit.solutions[2] < 0.7
    out = study.fit_alpha(0.9, 100, tau=0.5, n_classes=5, alphas=tuple(curve))
    assert out.at_bound and out.alpha == 0.0  # outside the range: nearest grid point, flagged


def _result(tests_held=(True, False), h4a=True, h4b=True, contradiction=(True, True)):
    tests = pd.DataFrame([
        {"minority": "sneaker", "role": "minority", "partner": "sandal", "rh": 0.5, "rh_lo": 0.4, "rh_hi": 0.6,
         "row_median_rh": 0.9, "contrast": -0.5, "p_rh": 0.001, "p_contrast": 0.002, "p_rh_holm": 0.002,
         "p_contrast_holm": 0.004, "held": tests_held[0]},
        {"minority": "sandal", "role": "minority", "partner": "sneaker", "rh": 0.8, "rh_lo": 0.6, "rh_hi": 1.1,
         "row_median_rh": 0.9, "contrast": -0.1, "p_rh": 0.1, "p_contrast": 0.2, "p_rh_holm": 0.1,
         "p_contrast_holm": 0.2, "held": tests_held[1]},
        {"minority": "trouser", "role": "control", "partner": "shirt", "rh": 0.9, "rh_lo": 0.8, "rh_hi": 1.0,
         "row_median_rh": 0.9, "contrast": 0.0, "p_rh": 0.2, "p_contrast": 0.5, "p_rh_holm": np.nan,
         "p_contrast_holm": np.nan, "held": True}])
    fit = _fit([0.1])
    dose = {f: C.FeatureDose(f, pd.DataFrame(), fit, {"held": h4a, "ratios": [5], "p": [0.01]},
                             {"held": h4b, "by_solution": [{"alpha": 0.1, "difference": 0.1, "lo": 0.05, "hi": 0.15,
                                                            "p": 0.01, "held": h4b}]}) for f in C.FEATURES}
    temp = pd.DataFrame([{"condition": c, "representation": r, "rh": 0.5, "rh_lo": 0.4, "rh_hi": 0.6,
                          "theory_rh": 0.95, "contradiction": c != "main τ" and flag}
                         for c, flag in (("main τ", False), ("low τ, lr fixed", True),
                                         ("low τ, lr scaled", contradiction[0]))
                         for r in ("backbone", "projection output")])
    if not contradiction[1]:
        temp.loc[(temp.condition == "low τ, lr scaled") & (temp.representation == "backbone"), "contradiction"] = \
            False
    prereg = study.Preregistration(["a"], pd.DataFrame(), pd.DataFrame(), ["sneaker", "sandal"],
                                   {"sneaker": "sandal", "sandal": "sneaker", "trouser": "shirt"}, "trouser")
    return C.Result("v2", [], {"ratio": 100, "seeds": [10, 11]}, prereg, tests, {}, pd.DataFrame(), {}, {}, dose,
                    temp, "sneaker", "sandal", "idx", 1.0, 0.05, 0.95, {"r0": 5, "margin": 0.02, "fit_ratio": 100})


def test_finding_follows_the_numbers():
    base = _result()
    text = base.finding()
    assert "1 of 2 pre-registered minorities collapsed" in text and "sneaker → sandal" in text
    assert "stays below 1 at every ratio from 1:5" in text and "better than a flat line" in text
    assert "survives with the learning rate scaled" in text and base.contradiction_survives
    # each contradicting number changes its clause
    assert "both pre-registered minorities collapsed" in _result(tests_held=(True, True)).finding()
    assert "none of the 2" in _result(tests_held=(False, False)).finding()
    assert "is not below 1 at every registered ratio" in _result(h4a=False).finding()
    assert "does not beat a flat line" in _result(h4b=False).finding()
    one_cell = _result(contradiction=(True, False))
    assert not one_cell.contradiction_survives and "does not survive" in one_cell.finding()


def test_verdicts_list_every_registered_hypothesis():
    v = _result().verdicts()
    assert len(v) == 2 + 1 + 2 * 2 + 1  # H1+H2 per minority, H3, H4a and H4b per representation, T
    assert v.held.tolist() == ["yes", "no", "yes", "yes", "yes", "yes", "yes", "yes"]
    assert any("projection output" in h for h in v.hypothesis)


def test_one_sided_p():
    assert stats.one_sided_p([-1.0, -1.1, -0.9]) < 0.01
    assert stats.one_sided_p([1.0, 1.1, 0.9], 0.5, "greater") < 0.05
    assert np.isnan(stats.one_sided_p([1.0]))
    assert stats.one_sided_p([-2.0, -2.0]) == 0.0 and stats.one_sided_p([2.0, 2.0]) == 1.0
    with pytest.raises(ValueError, match="dose_ratios"):
        C.run("x", {"classes": ["a"], "seeds": [0, 1], "temperature": 0.5, "lr": 0.1, "dataset": "fashion_mnist"},
              n_close=1, alpha=0.05, level=0.95, dose_ratios=[1, 2], r0=2, fit_ratio=10, margin=0.0,
              low_temperature=0.1, theory_dim=3, probe_c=1.0)


def test_allocation_sentence_uses_the_auc_and_says_when_accuracy_saturates():
    r = _result()
    assert r.allocation_sentence() == ""  # not computed: nothing said
    alloc = {100: {"TE_acc": np.array([-0.8, -0.82, -0.79]), "acc00": np.array([0.8, 0.82, 0.79]),
                   "auc00": np.array([0.97, 0.98, 0.97]), "TE_auc": np.array([-0.10, -0.12, -0.11]),
                   "NIE_auc": np.array([-0.05, -0.06, -0.04]), "NDE_auc": np.array([-0.05, -0.06, -0.07])}}
    r.allocation = C.allocation_table(alloc, 0.95)
    text = r.allocation_sentence()
    assert "accuracy changes by -0.80" in text and "almost never predicts it" in text
    assert "AUC by -0.11" in text and "representation carries -0.05" in text
    alloc[100]["TE_acc"] = np.array([-0.3, -0.31, -0.29])  # not saturated: no such clause
    r.allocation = C.allocation_table(alloc, 0.95)
    assert "almost never" not in r.allocation_sentence()
    assert r.allocation_sentence() in r.finding()


def test_control_sentence_names_a_lower_cell_than_its_partner():
    r = _result()
    r.rh_long = pd.DataFrame([{"minority": "trouser", "other": "shirt", "rh": 0.9, "lo": 0.8, "hi": 1.0},
                              {"minority": "trouser", "other": "tshirt_top", "rh": 0.6, "lo": 0.45, "hi": 0.8},
                              {"minority": "trouser", "other": "trouser", "rh": 1.0, "lo": 0.9, "hi": 1.1}])
    text = r.control_sentence()
    assert text.startswith("The control (trouser) showed no pair-specific collapse toward its nearest class")
    assert "most collapsed cell is toward tshirt_top (RH 0.600 (0.450 to 0.800))" in text
    assert text in r.finding()
    r.rh_long.loc[1, "rh"] = 0.95  # now the partner cell is the lowest: no such clause
    assert "most collapsed" not in r.control_sentence()
    r.tests.loc[r.tests.role == "control", "held"] = False
    assert "against the prediction" in r.control_sentence()
