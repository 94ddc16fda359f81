"""The mitigation chapter's functions (rharm.report.mitigation) on synthetic runs and planted numbers."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from rharm.core import sampling
from rharm.core.common import plain_json
from rharm.harm import mediation as D
from rharm.harm import synthetic as testing
from rharm.page.headline import FINDING_MAX_WORDS, word_count
from rharm.report import mitigation as MI
from rharm.runs import images as experiment
from rharm.study import confirmatory
from rharm.study import design as study
from rharm.study import mitigation as MS

FIVE = ["tshirt_top", "trouser", "sandal", "shirt", "sneaker"]
FAST = D.ProbeConfig(c_grid=(1.0,), folds=1, max_iter=100, solver="sklearn")


def _P(**kw):
    values = dict(dataset="fashion_mnist", method="simclr", backbone="small_cnn", init="random", epochs=1,
                  batch_size=32, lr=0.3, weight_decay=1e-6, temperature=0.5, clamp=False, schedule="cosine",
                  augment="simclr_grey", ratio=10, seeds=[0, 1, 2], n_per_class=40, classes=FIVE,
                  data_source="auto", threads=1, workers=2, n_close=1, mitigation_seeds=[0, 1],
                  temperatures=[0.2, 0.5, 1.0], minority_weight=10.0, sdclr_prune=0.9, simsiam_lr=0.05,
                  simsiam_weight_decay=1e-4, theory_dim=3, ci_level=0.9, probe_c=1.0)
    values.update(kw)
    return SimpleNamespace(values=values, profile="smoke", **values)


def _cell(**kw):
    base = dict(minority="sandal", partner="sneaker", ratio=10, seeds=[0, 1], classes=FIVE, n_per_class=40,
                weight="10")
    base.update(kw)
    return MS.Cell(**base)


# --------------------------------------------------------------------------------------------------------------
# the pre-registration and the verdict rule
# --------------------------------------------------------------------------------------------------------------


def test_expectations_keep_the_registered_ranges_and_write_unbounded_ends_as_null():
    e = MI.expectations()
    assert e.id.tolist() == ["E1", "E2", "E3", "E4", "E5", "E6"]
    assert e.intervention.tolist() == list(MI.INTERVENTIONS[1:])
    ranges = {r.id: (r.removed_lo, r.removed_hi) for r in e.itertuples()}
    assert ranges == {"E1": (0.30, np.inf), "E2": (0.15, 1.0), "E3": (0.0, np.inf), "E4": (-np.inf, 0.5),
                      "E5": (0.10, 0.60), "E6": (-np.inf, 0.3)}
    rows = plain_json(e)
    assert rows[0]["removed_hi"] is None and rows[3]["removed_lo"] is None and rows[1]["removed_hi"] == 1.0
    shown = MI.expectations_table()
    assert "harm removed" in shown.to_html() and "−∞% to 50%" in shown.to_html()


def _res(resolved=True, base=None, **rows):
    """A planted interventions table: every arm 'no change' unless ``rows`` (keyed by intervention, spaces and
    hyphens as underscores) or ``base`` (every arm) sets its numbers. Refuses a key that names no intervention and a
    row whose estimate lies outside its own interval, so a planted number is one the chapter could produce."""
    keys = {name.replace(" ", "_").replace("-", "_"): name for name in MI.INTERVENTIONS}
    unknown = sorted(set(rows) - set(keys))
    if unknown:
        raise ValueError(f"planted rows {unknown} name no intervention; valid: {sorted(keys)}")
    default = dict(removed=0.0, rh=0.5, rh_lo=0.4, rh_hi=0.6, dlog=0.0, dlog_lo=-0.05, dlog_hi=0.05, dprobe=0.0)
    out = []
    for key, name in keys.items():
        r = {"intervention": name, **default, **(base or {}), **rows.get(key, {})}
        if not (r["rh_lo"] <= r["rh"] <= r["rh_hi"] and r["dlog_lo"] <= r["dlog"] <= r["dlog_hi"]):
            raise ValueError(f"planted row {name!r} has an estimate outside its interval: {r}")
        if not resolved:
            r["removed"] = np.nan
        out.append(r)
    return pd.DataFrame(out)


def test_planted_rows_are_possible_ones():
    with pytest.raises(ValueError, match="outside its interval"):
        _res(re_balancing=dict(dlog=0.3, dlog_lo=0.1, dlog_hi=0.05))
    with pytest.raises(ValueError, match="name no intervention"):
        _res(rh_hi=1.2)


def test_verdicts_on_planted_numbers_with_a_resolved_baseline():
    res = _res(re_balancing=dict(removed=0.5, dlog=0.3, dlog_lo=0.1, dlog_hi=0.5),  # in range, above 0: held
               re_weighting=dict(removed=0.5, dlog=0.3, dlog_lo=-0.01, dlog_hi=0.6),  # interval includes 0: no
               temperature=dict(removed=-0.1, dlog=-0.05, dlog_lo=-0.1, dlog_hi=0.0),  # harm grew: not held
               SimSiam=dict(removed=0.2, rh_hi=0.9),  # harm persists (RH below 1), little removed: held
               SDCLR=dict(removed=0.7, dlog=0.5, dlog_lo=0.2, dlog_hi=0.8),  # above the registered 60%: not held
               warm_start=dict(removed=0.1, rh_hi=1.05))  # RH interval includes 1: not held
    v = MI.verdicts(res, baseline_resolved=True)
    assert dict(zip(v.expectations_held.id, v.expectations_held.held)) == {
        "E1": "yes", "E2": "no", "E3": "no", "E4": "yes", "E5": "no", "E6": "no"}
    assert (v.n_held, v.n_expectations) == (2, 6)
    assert v.expectations_held.numbers[0].startswith("harm removed 50%; Δ log RH +0.300 (+0.100 to +0.500)")
    # E4's "little removed" matters when the baseline is resolved: 60% removed breaks it even with RH below 1
    v2 = MI.verdicts(_res(SimSiam=dict(removed=0.6, rh_hi=0.9)), baseline_resolved=True)
    assert v2.expectations_held.held[3] == "no"


def test_verdicts_with_an_unresolved_baseline():
    res = _res(resolved=False, re_balancing=dict(dlog=0.4, dlog_lo=0.3, dlog_hi=0.5), SimSiam=dict(rh_hi=0.9),
               warm_start=dict(rh_hi=1.1))
    v = MI.verdicts(res, baseline_resolved=False)
    held = dict(zip(v.expectations_held.id, v.expectations_held.held))
    assert held["E1"] == "no"  # no share removed is defined, so no reduction can hold
    assert held["E4"] == "yes"  # the harm persists: RH interval below 1 suffices
    assert held["E6"] == "no"
    assert "harm removed undefined" in v.expectations_held.numbers[0]


def test_verdicts_need_every_intervention():
    with pytest.raises(ValueError, match=r"no row for \['SDCLR'\]"):
        MI.verdicts(_res()[lambda d: d.intervention != "SDCLR"], True)


# --------------------------------------------------------------------------------------------------------------
# the finding's branches
# --------------------------------------------------------------------------------------------------------------


def _finding(res, resolved, n_held=2):
    return MI.finding_text(res, resolved, _cell(), 0.2, n_held, 6, 0.9)


def test_finding_names_the_mitigations_whose_paired_interval_clears_zero():
    text = _finding(_res(re_balancing=dict(removed=0.5, dlog=0.3, dlog_lo=0.1, dlog_hi=0.5, dprobe=-0.004),
                         temperature=dict(removed=0.2, dlog=0.1, dlog_lo=0.02, dlog_hi=0.2)), True)
    assert text.startswith("2 of 6 mitigations reduced the harm of sandal toward sneaker with a paired interval "
                           "clear of zero: re-balancing and temperature.")
    assert "RH(sandal, sneaker) = 0.500 (90% CI 0.400 to 0.600) at 1:10" in text
    assert "2 of 6 pre-registered expectations held" in text
    assert text.endswith("the theory's temperature reduced the harm, as predicted.")
    one = _finding(_res(re_balancing=dict(removed=0.5, dlog=0.3, dlog_lo=0.1, dlog_hi=0.5, dprobe=-0.004)), True)
    assert one.startswith("Re-balancing was the one mitigation of 6 that reduced the harm of sandal toward sneaker "
                          "with a paired interval clear of zero (50% removed, probe accuracy -0.4 points)")
    assert max(word_count(text), word_count(one)) <= FINDING_MAX_WORDS


def test_finding_without_a_significant_mitigation_names_the_largest_point_estimate():
    text = _finding(_res(SDCLR=dict(removed=0.3, dlog=0.2, dlog_hi=0.4),
                         SimSiam=dict(removed=-0.1, dlog=-0.1, dlog_lo=-0.2, dlog_hi=-0.05)), True, 0)
    assert text.startswith("None of the 6 mitigations reduced the harm of sandal toward sneaker with a paired "
                           "interval clear of zero (largest point estimate: SDCLR, 30% removed); SimSiam increased it.")
    assert text.endswith("did not reduce it, against the prediction.")
    assert word_count(text) <= FINDING_MAX_WORDS


def test_finding_with_an_unresolved_baseline_claims_no_reduction():
    text = _finding(_res(resolved=False, base=dict(rh_hi=1.2)), False)
    assert "the harm of sandal toward sneaker is not resolved" in text
    assert "no mitigation can be shown to reduce it." in text
    text = _finding(_res(resolved=False, SDCLR=dict(dlog=0.2, dlog_lo=0.1, dlog_hi=0.3)), False)
    assert "1 of 6 moved RH up" in text
    # the longest branch: every mitigation significant either way, names the longest
    many = _finding(_res(**{k: dict(dlog=0.2, dlog_lo=0.1, dlog_hi=0.3) for k in
                            ("re_balancing", "re_weighting", "temperature")},
                         SDCLR=dict(dlog=-0.2, dlog_lo=-0.3, dlog_hi=-0.1),
                         SimSiam=dict(dlog=-0.2, dlog_lo=-0.3, dlog_hi=-0.1)), True)
    assert word_count(many) <= FINDING_MAX_WORDS, many


# --------------------------------------------------------------------------------------------------------------
# the grids, the rule and the one training pool
# --------------------------------------------------------------------------------------------------------------


def test_base_grid_rejects_mitigation_seeds_outside_the_balanced_seeds():
    with pytest.raises(ValueError, match=r"mitigation_seeds=\[0, 7\] is not valid; it must be a subset of "
                                         r"seeds=\[0, 1, 2\]"):
        MS.base_grid(_P(mitigation_seeds=[0, 7]))
    g = MS.base_grid(_P())
    assert set(g) == {*confirmatory.GRID_KEYS, "progress"} and g["classes"] == FIVE


def _balanced_with_planted_pair():
    """Balanced runs of five classes in which sneaker sits close to sandal (and nothing else is close)."""
    runs = testing.synthetic_runs(classes=FIVE, minorities=(), seeds=(0, 1, 2), n_test=60, n_train=20, dim=16,
                            spread=0.5)
    for r in runs:
        y, f = r.features["test_labels"], r.features["test_backbone"]
        i, j = FIVE.index("sneaker"), FIVE.index("sandal")
        f[y == i] = 0.4 * f[y == i] + 0.6 * f[y == j].mean(axis=0)
    return runs


def test_choose_cell_finds_the_planted_pair_from_the_balanced_models():
    cell = MS.choose_cell(_P(), _balanced_with_planted_pair())
    # the pair is mutual, so the distances tie; the rule puts the tighter class (sneaker, pulled toward sandal and
    # shrunk: more room to collapse) first, not the alphabetically first one
    assert (cell.minority, cell.partner) == ("sneaker", "sandal")
    assert cell.seeds == [0, 1] and cell.classes == FIVE and cell.weight == "10"
    with pytest.raises(ValueError, match="balanced models only"):
        MS.choose_cell(_P(), testing.synthetic_runs(classes=FIVE, minorities=("sandal",), seeds=(0,), dim=16))


def test_choose_temperature_takes_the_largest_theoretical_rh(monkeypatch):
    seen = {}

    def fake_fit(observed, ratio, *, tau, n_classes, dim):
        seen.update(observed=observed, ratio=ratio, tau=tau, n_classes=n_classes)
        return SimpleNamespace(alpha=0.4)

    monkeypatch.setattr(study, "fit_alpha", fake_fit)
    monkeypatch.setattr(study, "theory_rh", lambda ratio, alpha, *, tau, n_classes, dim: 1 - (tau - 0.5) ** 2)
    t = MS.choose_temperature(_P(), _cell(), np.log([0.5, 0.8]))
    assert seen == {"observed": pytest.approx(np.sqrt(0.4)), "ratio": 10, "tau": 0.5, "n_classes": 5}
    assert (t.tau, t.is_smallest, t.alpha) == (0.5, False, 0.4)  # the peak, not the smallest temperature
    assert t.table.tau.tolist() == [0.2, 0.5, 1.0]
    monkeypatch.setattr(study, "theory_rh", lambda ratio, alpha, *, tau, n_classes, dim: 1 / tau)
    assert MS.choose_temperature(_P(), _cell(), np.log([0.5, 0.8])).is_smallest


def test_train_arms_prefetches_every_arm_in_one_pool_then_loads_each(monkeypatch):
    calls = []

    def fake_prefetch(grids, *, workers):
        calls.append(("prefetch", [dict(g) for g in grids], workers))
        return 0

    def fake_run_grid(grid):
        calls.append(("run_grid", dict(grid)))
        return testing.synthetic_runs(classes=FIVE, minorities=tuple(grid["minority_classes"]), seeds=grid["seeds"],
                                dim=16, n_test=10, n_train=10)

    monkeypatch.setattr(experiment, "prefetch", fake_prefetch)
    monkeypatch.setattr(experiment, "run_grid", fake_run_grid)
    P = _P()
    none = fake_run_grid({"minority_classes": ["sandal"], "seeds": [0, 1]})
    calls.clear()
    arms = MS.train_arms(P, _cell(), 0.2, none)
    assert calls[0][0] == "prefetch" and sum(c[0] == "prefetch" for c in calls) == 1
    grids = calls[0][1]
    assert calls[0][2] == P.workers and len(grids) == 7
    assert all(g["minority_classes"] == ["sandal"] and g["seeds"] == [0, 1] for g in grids)
    assert [g["temperature"] for g in grids] == [0.5, 0.5, 0.5, 0.2, 0.5, 0.5, 0.5]
    assert grids[6]["warm_start"] is True and grids[4]["method"] == "simsiam" and grids[1]["rebalance"] is True
    assert grids[0] == {**MS.base_grid(P), "minority_classes": ["sandal"], "seeds": [0, 1]}  # the unmitigated grid
    # every arm but 'none' (given) loaded after the pool, from its own grid
    assert [c[1] for c in calls[1:]] == grids[1:]
    assert list(arms) == list(MI.INTERVENTIONS)
    bal, imb = arms["none"]
    assert [r.minority for r in bal] == [None, None] and [r.minority for r in imb] == ["sandal", "sandal"]


def test_training_minutes_count_a_shared_model_once():
    def run(d, s):
        return SimpleNamespace(dir=d, meta={"wall_time_s": s}, minority=None)
    shared = run("bal0", 60.0)
    arms = {"none": ([shared], [run("imb0", 120.0)]), "re-balancing": ([shared], [run("reb0", 180.0)])}
    t = MI.training(_P(), _cell(), 0.2, arms)
    assert t.training_minutes_summed_over_models == pytest.approx(6.0)  # (60 + 120 + 180) / 60
    assert t.settings["re-balancing"] == "each sandal image ×10 per epoch"
    assert t.settings["temperature"] == "τ 0.2"


# --------------------------------------------------------------------------------------------------------------
# the effects of each arm on planted collapse
# --------------------------------------------------------------------------------------------------------------


def _arm(strength):
    runs = testing.synthetic_runs(classes=FIVE, minorities=("sandal",), collapse={"sandal": "sneaker"},
                                  strength=strength, seeds=(0, 1, 2), n_test=40, n_train=20, dim=16, spread=0.6,
                                  ratio=10)
    return [r for r in runs if r.minority is None], [r for r in runs if r.minority == "sandal"]


def test_effects_find_the_planted_reduction():
    arms = {"none": _arm(0.6), "re-balancing": _arm(0.0), "SimSiam": _arm(0.6)}
    settings = {"none": "a", "re-balancing": "b", "SimSiam": "c"}
    e = MI.effects(_P(), _cell(seeds=[0, 1, 2]), arms, settings, probe=FAST)
    t = e.interventions.set_index("intervention")
    assert e.baseline_harm_resolved and t.rh_hi["none"] < 1
    assert t.removed["re-balancing"] > 0.5 and t.dlog_lo["re-balancing"] > 0  # the planted collapse is gone
    assert t.removed["SimSiam"] == 0 and t.dlog["SimSiam"] == 0  # the same models: nothing removed
    assert t.dprobe["none"] == 0 and t.setting["SimSiam"] == "c" and (t.n_seeds == 3).all()
    assert e.per_seed["none"]["log_rh"].shape == (3,) and e.per_seed["none"]["probe_accuracy"].shape == (3,)
    np.testing.assert_allclose(np.exp(e.per_seed["none"]["log_rh"].mean()), t.rh["none"])


def test_effects_without_a_resolved_baseline_define_no_share_removed():
    arms = {"none": _arm(0.0), "re-balancing": _arm(0.6)}
    e = MI.effects(_P(), _cell(seeds=[0, 1, 2]), arms, {"none": "", "re-balancing": ""}, probe=FAST)
    assert not e.baseline_harm_resolved and e.interventions.removed.isna().all()
    with pytest.raises(ValueError, match="no 'none' arm"):
        MI.effects(_P(), _cell(), {"SimSiam": _arm(0.6)}, {"SimSiam": ""}, probe=FAST)


def test_rebalance_times_is_the_training_codes_factor():
    import torch

    from rharm.vision import mitigation

    for n, ratio in [(800, 100), (500, 100), (20, 10), (11, 3)]:
        kept = sampling.kept_count(n, ratio)
        labels = torch.tensor([0] * n + [1] * n + [2] * kept)  # two full classes and the minority
        assert MS.rebalance_times(n, ratio) == mitigation.rebalance_factor(labels == 2, labels)
    assert MS.rebalance_times(11, 3) == 4  # 11 / 3 kept, rounded; the floor 11 // 3 would say 3
