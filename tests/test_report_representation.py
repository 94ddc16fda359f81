"""The representation-harm chapter's section summaries (rharm.report.representation) on synthetic runs."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from rharm.core import reference
from rharm.harm import metrics as M
from rharm.harm import synthetic as testing
from rharm.report import representation as R

SEEDS = (0, 1, 2, 3, 4)


@pytest.fixture(scope="module")
def planted():
    """automobile collapses toward truck in its own model; cat is a minority with no planted change."""
    runs = testing.synthetic_runs(minorities=("automobile", "cat"), collapse={"automobile": "truck"}, strength=0.6,
                            seeds=SEEDS, n_test=60, n_train=40, dim=16, model_noise=0.02, seed_noise=0.02)
    cr = M.cosine_runs(runs)
    boot = M.rh_interval(cr, level=0.9)
    return runs, cr, boot


def _P(**kw):
    base = dict(profile="smoke", method="simclr", backbone="small_cnn", epochs=1, n_per_class=20, ratio=10,
                seeds=list(SEEDS), workers=2, minority_classes=["automobile", "cat"], multicomp="holm", alpha=0.05)
    base.update(kw)
    return SimpleNamespace(**base)


def test_paper_rh_is_the_runs_own_setting_or_none():
    pd.testing.assert_frame_equal(R.paper_rh("simclr", 100), reference.matrix("simclr_100_rh"))
    pd.testing.assert_frame_equal(R.paper_rh("SimCLR", 20), reference.matrix("simclr_20_rh"))
    assert R.paper_rh("simclr", 10) is None  # never the 1:100 values for a 1:10 run
    assert R.paper_rh("simsiam", 20) is None


def test_scale_reads_meta_and_parameters(planted):
    runs = [SimpleNamespace(minority=r.minority, seed=r.seed, meta={"wall_time_s": 30.0}) for r in planted[0]]
    runs[0].meta.update(extra={"threads": 2, "data_source": "CIFAR-10 (test copy)"}, hardware={"cpu": "Some CPU"})
    s = R.scale(runs, _P())
    assert (s.kept, s.ratio, s.n_seeds, s.epochs) == (2, 10, "5 seeds", "1 epoch")
    assert s.hardware == "Some CPU, 2 torch threads per run"
    assert s.data == "CIFAR-10 (test copy)" and s.minorities == "automobile, cat"
    assert s.train_minutes == pytest.approx(30.0 * len(runs) / 60)
    assert s.workers_text == "2 runs"
    runs[0].meta["hardware"]["gpu"] = "NVIDIA H200"
    assert R.scale(runs, _P()).hardware == "NVIDIA H200"
    with pytest.raises(ValueError, match="no balanced run"):
        R.scale([r for r in runs if r.minority is not None], _P())


def test_paper_comparison_known_correlation():
    rng = np.random.default_rng(0)
    cells = [(m, o) for m in ("automobile", "cat") for o in M.CIFAR10_CLASSES]
    rh = rng.uniform(0.5, 1.5, len(cells))
    paper = 2 * rh + 1  # a perfect linear relation: r = 1
    paper[3] = np.nan  # a cell the paper lacks is not shared
    diag = [i for i, (m, o) in enumerate(cells) if m == o]
    paper[diag] = -rh[diag]  # the diagonal anti-correlated: r drops with it, not without it
    long = pd.DataFrame({"minority": [c[0] for c in cells], "other": [c[1] for c in cells], "rh": rh,
                         "paper": paper})
    c = R.paper_comparison(long, "simclr", 100)
    assert c.n_cells == len(cells) - 1
    assert c.corr_off == pytest.approx(1.0)
    assert c.corr_all < 0.99
    assert f"{c.n_cells} cells" in c.corr_text and "RH_undersampling_100_full.pdf" in c.paper_panel
    none = R.paper_comparison(long.drop(columns="paper"), "simclr", 10)
    assert none.n_cells == 0 and np.isnan(none.corr_all) and "reports no RH matrix" in none.paper_panel
    assert none.corr_text.startswith("The paper reports no RH for SimCLR at 1:10")
    with pytest.raises(ValueError, match="lacks columns"):
        R.paper_comparison(long.drop(columns="rh"), "simclr", 100)


def test_significance_finds_the_planted_cell(planted):
    _, cr, _ = planted
    sig = R.significance(cr, "holm", 0.05)
    assert sig.n_tests == 2 * 9  # off-diagonal cells of two minority rows
    rejected = set(map(tuple, sig.cells.loc[sig.cells.reject, ["minority", "other"]].to_numpy()))
    assert ("automobile", "truck") in rejected
    assert sig.n_reject == len(rejected)
    one = M.cosine_runs([r for r in planted[0] if r.seed == 0])
    s1 = R.significance(one, "holm", 0.05)
    assert (s1.n_tests, s1.n_reject, s1.cells) == (0, 0, None)


def test_noise_floor_and_strongest_collapse(planted):
    _, cr, boot = planted
    paper = reference.matrix("simclr_100_rh")
    most = M.most_collapsed_table(boot["estimate"], boot["lo"], boot["hi"], paper)
    nf = R.noise_floor(cr, most, 0.9)
    assert (nf.strongest_minority, nf.strongest_class) == ("automobile", "truck")
    assert nf.strongest_value == pytest.approx(float(boot["estimate"].loc["automobile", "truck"]))
    assert nf.strongest_paper == pytest.approx(float(paper.loc["automobile", "truck"]))
    assert nf.floor_n == len(SEEDS) * (len(SEEDS) - 1) * 2 * 9
    assert nf.floor_lo < 1 < nf.floor_hi
    assert nf.strongest_inside_floor is False  # the planted collapse is far below balanced-vs-balanced noise
    no_paper = R.noise_floor(cr, M.most_collapsed_table(boot["estimate"], boot["lo"], boot["hi"]), 0.9)
    assert np.isnan(no_paper.strongest_paper) and "no value" in no_paper.strongest_paper_text


def test_specificity_against_an_independent_paper_contrast(planted):
    _, cr, _ = planted
    paper = reference.matrix("simclr_100_rh")
    sp = R.specificity(cr, paper, level=0.9)
    assert sp.contrast_first_minority == "automobile"
    assert sp.table.loc["automobile", "most_collapsed"] == "truck"
    row = paper.loc["automobile"].drop("automobile")
    assert sp.contrast_first_paper == pytest.approx(float(np.median(row.to_numpy()) - row.min()))
    assert sp.contrast_first_lo <= sp.contrast_first <= sp.contrast_first_hi
    assert sp.contrast_first > 0.2  # one class stands out in the planted row
    none = R.specificity(cr, None, level=0.9)
    assert np.isnan(none.contrast_first_paper) and "no value" in none.contrast_first_paper_text


def test_probe_anchor_per_seed(planted):
    runs = planted[0]
    p = R.probe_anchor(runs)
    assert p.probe_seeds == list(SEEDS)
    assert p.probe_acc == pytest.approx(np.mean(p.probe_accs))
    assert p.probe_acc_min <= p.probe_acc <= p.probe_acc_max
    assert p.probe_acc_min > 0.3  # separated synthetic clusters: far above chance (0.1)
    with pytest.raises(ValueError, match="no balanced run"):
        R.probe_anchor([r for r in runs if r.minority is not None])


def test_paper_sd_table_rows_are_the_most_collapsed_cells(planted):
    _, cr, boot = planted
    most = M.most_collapsed_table(boot["estimate"], boot["lo"], boot["hi"])
    t = R.paper_sd_table(cr, boot, most)
    assert list(t.cell) == [f"{m} → {most.loc[m, 'ours_class']}" for m in most.index]
    assert t.se_over_seeds.iloc[0] == pytest.approx(float(boot["se"].loc["automobile", "truck"]))


def test_finding_sentences(planted):
    _, cr, boot = planted
    most = M.most_collapsed_table(boot["estimate"], boot["lo"], boot["hi"])
    nf = R.noise_floor(cr, most, 0.9)
    sig = R.Significance(0, 18, "holm", 0.05)
    long = M.long_rh(boot["estimate"], boot["lo"], boot["hi"])
    f = R.finding(_P(), sig, nf, R.paper_comparison(long, "simclr", 10)).finding
    assert f.startswith("At this scale (small CNN, 1 epoch, 20 images per class) no representation harm is "
                        "detected")
    assert "automobile → truck" in f and "outside the seed-noise band" in f
    assert "reports no RH matrix for SimCLR at 1:10" in f
    sig1 = R.Significance(3, 18, "holm", 0.05)
    f1 = R.finding(_P(), sig1, nf, R.paper_comparison(long, "simclr", 10)).finding
    assert "3 of 18 off-diagonal cells" in f1 and "no representation harm" not in f1
    from rharm.page.headline import FINDING_MAX_WORDS, word_count

    assert max(word_count(f), word_count(f1)) <= FINDING_MAX_WORDS


def test_the_sections_publish_without_a_name_clash(planted):
    from rharm.page import headline

    runs, cr, boot = planted
    meta_runs = [SimpleNamespace(minority=r.minority, seed=r.seed, meta={}) for r in runs]
    most = M.most_collapsed_table(boot["estimate"], boot["lo"], boot["hi"])
    long = M.long_rh(boot["estimate"], boot["lo"], boot["hi"])
    sig = R.significance(cr, "holm", 0.05)
    nf = R.noise_floor(cr, most, 0.9)
    comp = R.paper_comparison(long, "simclr", 10)
    values = headline.section_values(R.scale(meta_runs, _P()), comp, sig, nf,
                                     R.specificity(cr, None, level=0.9), R.probe_anchor(runs),
                                     R.finding(_P(), sig, nf, comp))
    assert {"floor_lo", "corr_text", "probe_accs", "finding", "kept"} <= set(values)


def test_the_multiple_comparison_control_is_named_in_words():
    from rharm.report import representation as R

    assert R.MULTICOMP_WORDS["holm"] == "Holm's familywise-error"
    for name in ("holm", "fdr_bh", "bonf", "none"):  # every choice profiles.yml offers has its words
        assert name in R.MULTICOMP_WORDS and name not in R.MULTICOMP_WORDS[name].lower().split()
