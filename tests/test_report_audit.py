"""rharm.report.audit: the audit chapter's section summaries on audits with a known answer."""

from types import SimpleNamespace

import numpy as np
import pytest

from rharm.harm import audit as A
from rharm.report import audit as report

P = SimpleNamespace(synth_groups=5, synth_per_group=40, synth_dim=12, synth_strength=0.7, n_boot=60,
                    probe_folds=2, probe_C=1.0, seed=3)


def test_planted_collapse_moves_only_g0_and_is_seeded():
    audited, reference, labels = report.planted_collapse(groups=3, per_group=400, dim=8, strength=1.0, seed=1)
    assert audited.shape == reference.shape == (1200, 8) and list(labels[::400]) == ["g0", "g1", "g2"]
    means = {g: audited[labels == g].mean(0) for g in ("g0", "g1", "g2")}
    ref_means = {g: reference[labels == g].mean(0) for g in ("g0", "g1", "g2")}
    # strength 1 puts g0 on g1 in the audited encoder; the reference keeps them apart; g2 is untouched
    assert np.linalg.norm(means["g0"] - means["g1"]) < 0.5 < np.linalg.norm(ref_means["g0"] - ref_means["g1"])
    assert np.linalg.norm(means["g2"] - ref_means["g2"]) < 0.5
    again = report.planted_collapse(groups=3, per_group=400, dim=8, strength=1.0, seed=1)
    assert np.array_equal(again[0], audited)
    with pytest.raises(ValueError, match=r"synth_strength=1.5 must lie in \[0, 1\]"):
        report.planted_collapse(groups=3, per_group=5, dim=4, strength=1.5, seed=0)
    with pytest.raises(ValueError, match="synth_groups=1"):
        report.planted_collapse(groups=1, per_group=5, dim=4, strength=0.5, seed=0)


def test_synthetic_summary_ranks_the_planted_pair_first():
    syn = report.synthetic_audit(P)
    s = report.synthetic_summary(syn)
    assert s.syn_rank == 1 and s.syn_pairs == 5 * 4 // 2
    assert s.syn_lo <= s.syn_rh <= s.syn_hi < 1
    i, j = syn.classes.index("g0"), syn.classes.index("g1")
    assert s.syn_rh == pytest.approx(syn.rh[i, j])
    # false alarms counted independently from the interval matrix (upper triangle, the planted pair left out)
    upper = np.triu(syn.rh_ci_high < 1, k=1)
    assert s.syn_other_below == int(upper.sum()) - 1


def _report(collapse=(0, 2)):
    rng = np.random.default_rng(0)
    centres = 2.0 * rng.normal(size=(4, 10))
    y = np.repeat(np.arange(4), 50)
    moved = centres.copy()
    moved[collapse[0]] = 0.3 * centres[collapse[0]] + 0.7 * centres[collapse[1]]
    names = np.array(["a", "b", "c", "d"])[y]
    return A.audit(moved[y] + rng.normal(size=(200, 10)), names, reference=centres[y] + rng.normal(size=(200, 10)),
                   n_boot=60, probe_folds=2)


def test_text_summary_names_the_most_collapsed_pair_and_counts_pairs_beyond_one():
    r = _report()
    s = report.text_summary(r)
    assert s.text_top_pair == "a – c" and s.text_top_rh < 1 and s.text_top_hi < 1
    upper = np.triu(np.ones_like(r.rh, dtype=bool), k=1)
    assert s.text_n_pairs == 6 == len(s.text_ranking)
    assert s.text_n_below == int((r.rh_ci_high[upper] < 1).sum())
    assert s.text_n_above == int((r.rh_ci_low[upper] > 1).sum())
    assert s.text_acc == r.meta["probe_accuracy"] and s.text_n == 200
    assert s.text_wbr == r.collapse["within_between_ratio"]


def test_image_summary_finds_the_pair_in_either_order_and_rejects_a_stranger():
    r = _report(collapse=(1, 3))
    s = report.image_summary(r, report.ImageSetting(minority="d", partner="b", ratio=100, seed=0))
    assert s.img_pair_position == 1 and s.img_pair_rank == "1 of 6" and s.img_ratio == "100"
    assert s.img_pair_rh == f"{s.img_pair_rh_value:.3f} ({s.img_pair_lo:.3f} to {s.img_pair_hi:.3f})"
    assert s.img_top.startswith("b – d, RH ")
    far = report.image_summary(r, report.ImageSetting(minority="a", partner="c", ratio=100, seed=0))
    assert far.img_pair_position > 1 and far.img_pair_rh_value > s.img_pair_rh_value
    with pytest.raises(ValueError, match="pair \\('a', 'zebra'\\) is not in the ranking"):
        report.image_summary(r, report.ImageSetting(minority="a", partner="zebra", ratio=100, seed=0))


def test_summaries_need_a_reference():
    rng = np.random.default_rng(0)
    alone = A.audit(rng.normal(size=(40, 4)), np.repeat(["a", "b"], 20), n_boot=0, probe_folds=2)
    with pytest.raises(ValueError, match="no reference"):
        report.text_summary(alone)
