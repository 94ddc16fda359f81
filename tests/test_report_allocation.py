"""The allocation-harm chapter's section summaries (rharm.report.allocation) on synthetic runs."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from rharm.core import reference
from rharm.harm import mediation as D
from rharm.harm import synthetic as testing
from rharm.report import allocation as A

FAST = D.ProbeConfig(c_grid=(1.0,), folds=1, max_iter=100, solver="sklearn")


def _P(**kw):
    base = dict(profile="smoke", method="simclr", backbone="small_cnn", epochs=1, n_per_class=40, ratio=10,
                seeds=[0, 1], split_seeds=[0, 1], minority_classes=["automobile", "cat"],
                mediation_minorities=["automobile"], protocols=["paper", "clean"], feature="test_backbone",
                clean_max_train_per_class=0, probe_c_grid=[1.0], probe_cv_folds=1, probe_max_iter=100)
    base.update(kw)
    return SimpleNamespace(**base)


@pytest.fixture(scope="module")
def planted():
    runs = testing.synthetic_runs(minorities=("automobile", "cat"), collapse={"automobile": "truck"}, seeds=(0, 1),
                            n_test=80, n_train=40, dim=16, spread=1.4, strength=0.7, ratio=10)
    by_protocol, wall = A.mediation_runs(runs, _P(), probe=FAST, cached=False)
    return runs, by_protocol, wall


def test_check_minorities_names_the_untrained_class():
    A.check_minorities(_P())
    with pytest.raises(ValueError, match=r"includes \['dog'\], which are not trained"):
        A.check_minorities(_P(mediation_minorities=["automobile", "dog"]))


def test_paper_effects_are_the_runs_own_setting_or_none():
    full = A.paper_effects("simclr", 100)
    pd.testing.assert_frame_equal(full["NDE"], reference.matrix("simclr_100_te") - reference.matrix("simclr_100_nie"))
    assert A.paper_effects("simclr", 10) is None  # never the 1:100 values for a 1:10 run
    six = A.paper_effects_6("simclr", 100)
    pd.testing.assert_frame_equal(six["NDE"], reference.matrix("simclr_100_neg_rnde_6"))
    assert A.paper_effects_6("simclr", 20) is None  # the paper has only a -rNDE 6-class panel at 1:20


def test_mediation_runs_fit_every_protocol_for_the_chosen_minorities(planted):
    _, by_protocol, wall = planted
    assert list(by_protocol) == ["paper", "clean"]
    assert all(mr.minorities == ["automobile"] for mr in by_protocol.values())
    assert wall > 0
    with pytest.raises(ValueError, match="not trained"):
        A.mediation_runs(planted[0], _P(mediation_minorities=["dog"]), probe=FAST, cached=False)


def test_scale_texts():
    runs = [SimpleNamespace(meta={"extra": {"data_source": "CIFAR-10 (test copy)"}})]
    by = {"paper": SimpleNamespace(seconds=90.0), "clean": SimpleNamespace(seconds=30.0)}
    s = A.scale(runs, by, _P(), wall_seconds=1.0)
    assert s.probe_minutes == pytest.approx(2.0) and s.wall_minutes == pytest.approx(1 / 60)
    assert s.probe_time == "Fitting the probes took 2.0 minutes; this run read them from the result store"
    assert s.probe_c == "C = 1 (fixed: no cross-validation)"
    assert (s.n_splits, s.mediation_minorities, s.data) == ("2 split seeds", "automobile", "CIFAR-10 (test copy)")
    cv = A.scale(runs, by, _P(probe_c_grid=[0.1, 1.0], probe_cv_folds=3), wall_seconds=120.0)
    assert cv.probe_c == "C chosen by 3-fold cross-validation over 0.1, 1" and "result store" not in cv.probe_time


def _summary(te, nie):
    """A diagonal_summary-shaped frame for automobile, cat and their mean."""
    idx = ["automobile", "cat", "mean"]
    te, nie = np.append(te, np.mean(te)), np.append(nie, np.mean(nie))
    with np.errstate(invalid="ignore", divide="ignore"):  # a zero TE has no share
        share = nie / te
    out = pd.DataFrame({"TE": te, "NIE": nie, "NDE": te - nie, "share": share}, index=idx)
    for c in ("TE", "NIE", "share"):
        out[f"{c}_lo"], out[f"{c}_hi"] = out[c] - 0.1, out[c] + 0.1
    return out


def test_diagonal_against_the_papers_own_minorities():
    summary = {"paper": _summary([-0.6, -0.2], [-0.1, -0.1])}
    paper = A.paper_effects("simclr", 100)
    d = A.diagonal(summary, "paper", paper, "simclr", 100)
    te = reference.matrix("simclr_100_te")
    nie = reference.matrix("simclr_100_nie")
    want_te = np.mean([te.loc["automobile", "automobile"], te.loc["cat", "cat"]])
    want_nie = np.mean([nie.loc["automobile", "automobile"], nie.loc["cat", "cat"]])
    assert d.paper_te_mean == pytest.approx(want_te) and d.paper_nie_mean == pytest.approx(want_nie)
    assert d.paper_share == pytest.approx(want_nie / want_te)
    mean10 = reference.matrix("simclr_100_diagonal_mean").iloc[0]
    assert (d.paper10_te, d.paper10_nie) == (pytest.approx(mean10.TE), pytest.approx(mean10.NIE))
    assert (d.te_mean, d.nie_mean, d.share) == (pytest.approx(-0.4), pytest.approx(-0.1), pytest.approx(0.25))
    assert d.n_same == "2 minorities" and d.minority_list == ["automobile", "cat"]
    assert "over all ten minorities" in d.paper_comparison
    none = A.diagonal(summary, "paper", None, "simclr", 10)
    assert np.isnan(none.paper_share) and np.isnan(none.paper10_te)
    assert none.paper_comparison.startswith("The paper reports no TE or NIE for SimCLR 1:10")
    with pytest.raises(ValueError, match="main='clean' is not a protocol"):
        A.diagonal(summary, "clean", paper, "simclr", 100)


def test_protocols_one_and_two():
    two = A.protocols({"paper": _summary([-0.6, -0.2], [-0.1, -0.1]), "clean": _summary([-0.5, -0.5], [-0.25, 0])})
    assert (two.proto_a, two.proto_b) == ("paper", "clean")
    assert (two.share_a, two.share_b) == (pytest.approx(0.25), pytest.approx(0.25))
    assert len(two.protocol_table) == 6
    one = A.protocols({"paper": _summary([-0.6, -0.2], [-0.1, -0.1])})
    assert (one.proto_a, one.proto_b, one.share_b) == ("paper", "paper", pytest.approx(0.25))
    with pytest.raises(ValueError, match="summary is empty"):
        A.protocols({})


def test_crosscheck_finds_the_planted_direction(planted):
    runs, by_protocol, _ = planted
    mr = by_protocol["paper"]
    cc = A.crosscheck(runs, mr, feature="test_backbone", n_boot=50)
    assert (cc.cc_minority, cc.cc_toward) == ("automobile", "truck")
    # two split seeds: the regression pools images, so splits count by their evaluated images, not equally
    i = mr.classes.index("automobile")
    y = mr.test_labels
    n = (mr.pred00[:, :, y == i] >= 0).sum(axis=-1)
    assert len(set(n.ravel().tolist())) > 1  # unequal counts per split: the case where the plain NIE differs
    err1 = sum(((p != i) & (p >= 0)).sum() for p in mr.pred01[0][:, :, y == i].reshape(-1, (y == i).sum()))
    err0 = sum(((p != i) & (p >= 0)).sum() for p in mr.pred00[:, :, y == i].reshape(-1, (y == i).sum()))
    assert cc.cc_total == pytest.approx((err1 - err0) / n.sum(), abs=1e-9)  # pooled error rates, counted directly
    assert A.pooled_nie(mr, "automobile") == pytest.approx(-cc.cc_total, abs=1e-9)
    assert cc.cc_lo <= cc.cc_indirect <= cc.cc_hi
    one = D.mediation_runs(runs, protocol="paper", ratio=10, split_seeds=(0,), probe=FAST, minorities=["automobile"])
    plain = D.effect_matrices(one)["NIE"].loc["automobile", "automobile"]
    assert A.pooled_nie(one, "automobile") == pytest.approx(plain, abs=1e-12)  # one split: the plain NIE


def test_paper_sd_table(planted):
    _, by_protocol, _ = planted
    mr = by_protocol["paper"]
    boot = D.effect_intervals(mr, level=0.9)
    t = A.paper_sd_table(mr, boot)
    assert list(t.index) == ["automobile"]
    assert t.loc["automobile", "SE over seeds: TE"] == pytest.approx(boot["TE"]["se"].loc["automobile", "automobile"])


def test_finding_sentences():
    summary = {"paper": _summary([-0.6, -0.2], [-0.1, -0.1]), "clean": _summary([-0.5, -0.5], [-0.25, 0])}
    protos = A.protocols(summary)
    d = A.diagonal(summary, "paper", None, "simclr", 10)
    f = A.finding(10, d, protos).finding
    assert f.startswith("Underrepresenting a class (1:10) changes its own accuracy by -0.400 on average over 2 "
                        "minorities;")
    assert "a share of 0.25 (Fieller interval 0.15 to 0.35)" in f and "the paper reports no value" in f
    assert f.endswith("Most of the loss is the probe's own: it sees almost no minority example.")
    small = {"paper": _summary([0.001, -0.001], [0.0, 0.0])}
    f0 = A.finding(10, A.diagonal(small, "paper", None, "simclr", 10), A.protocols(small)).finding
    assert "no share is given: the total change (+0.000) is not a loss" in f0 and "probe's own" not in f0
    # a real loss whose mediated part has the other sign: the sentence says so (not "too small")
    opposite = {"paper": _summary([-0.4, -0.4], [0.002, 0.0])}
    f1 = A.finding(10, A.diagonal(opposite, "paper", None, "simclr", 10), A.protocols(opposite)).finding
    assert "opposite sign to the loss (NIE +0.001 against TE -0.400)" in f1 and "too small" not in f1
    over = {"paper": _summary([-0.4, -0.4], [-0.6, -0.6])}
    f2 = A.finding(10, A.diagonal(over, "paper", None, "simclr", 10), A.protocols(over)).finding
    assert "exceeds the whole loss" in f2
    from rharm.page.headline import FINDING_MAX_WORDS, word_count

    assert max(word_count(x) for x in (f, f0, f1, f2)) <= FINDING_MAX_WORDS


def test_the_sections_publish_without_a_name_clash(planted):
    from rharm.page import headline

    runs, by_protocol, wall = planted
    summary = A.summaries(by_protocol, level=0.9)
    diag = A.diagonal(summary, "paper", None, "simclr", 10)
    protos = A.protocols(summary)
    runs_meta = [SimpleNamespace(meta={})]
    sections = (A.scale(runs_meta, by_protocol, _P(), wall), diag, protos,
                A.crosscheck(runs, by_protocol["paper"], feature="test_backbone", n_boot=20),
                A.finding(10, diag, protos))
    values = headline.section_values(*sections)
    assert {"share_by_protocol", "cc_table", "diagonal_table", "finding", "probe_time"} <= set(values)
