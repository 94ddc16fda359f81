"""Known-answer tests for rharm.harm.metrics (representation harm)."""

import numpy as np
import pandas as pd
import pytest
import torch

from rharm.harm import metrics as M
from rharm.harm import stats
from rharm.harm import synthetic as testing

MINS = ("automobile", "horse", "cat")
COLLAPSE = {"automobile": "truck", "horse": "deer"}


@pytest.fixture(scope="module")
def planted():
    runs = testing.synthetic_runs(minorities=MINS, collapse=COLLAPSE, seeds=(0, 1, 2, 3), n_test=60, dim=16)
    return runs, M.cosine_runs(runs)


def _brute_pairs(x, y, k, self_pairs):
    """Block means and stds of the N x N cosine matrix, the diagonal blocks with or without a != b."""
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    g = u @ u.T
    mean, sd = np.empty((k, k)), np.empty((k, k))
    for i in range(k):
        for j in range(k):
            block = g[y == i][:, y == j]
            v = block.ravel() if (i != j or self_pairs) else block[~np.eye(len(block), dtype=bool)]
            mean[i, j], sd[i, j] = v.mean(), v.std()
    return mean, sd


def test_class_cosines_equals_brute_force_pairs_for_both_within_estimators():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 7)) + 0.3
    y = rng.integers(0, 4, size=90)
    n = np.bincount(y)
    for within, self_pairs in (("unbiased", False), ("paper", True)):
        brute, brute_sd = _brute_pairs(x, y, 4, self_pairs)
        np.testing.assert_allclose(M.class_cosines(x, y, within=within), brute, atol=1e-12)
        np.testing.assert_allclose(M.class_cosines(torch.tensor(x, dtype=torch.float32), torch.tensor(y),
                                                   within=within), brute, atol=1e-6)
        st = M.class_cosine_stats(x, y, within=within)
        np.testing.assert_allclose(st["mean"], brute, atol=1e-12)
        np.testing.assert_allclose(st["std"], brute_sd, atol=1e-7)
        pairs = np.outer(n, n).astype(float)
        if within == "unbiased":
            np.fill_diagonal(pairs, n * (n - 1))
        np.testing.assert_array_equal(st["pairs"], pairs)
    # the default is the unbiased one; the two differ only on the diagonal, by the self-pairs' share
    paper, unbiased = M.class_cosines(x, y, within="paper"), M.class_cosines(x, y)
    off = ~np.eye(4, dtype=bool)
    assert np.array_equal(paper[off], unbiased[off])
    np.testing.assert_allclose(np.diag(paper), (n * (n - 1) * np.diag(unbiased) + n) / n**2, atol=1e-12)
    with pytest.raises(ValueError, match="within"):
        M.class_cosines(x, y, within="pairs")


def test_a_class_of_one_has_no_within_class_pairs():
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    cos = M.class_cosines(x, [0, 1, 1])
    assert np.isnan(cos[0, 0]) and cos[1, 1] == pytest.approx(np.sqrt(0.5))
    assert cos[0, 1] == pytest.approx((0.0 + np.sqrt(0.5)) / 2)
    assert M.class_cosines(x, [0, 1, 1], within="paper")[0, 0] == pytest.approx(1.0)


def test_within_from_sums_with_weights_counts_only_distinct_items():
    """A bootstrap resample (weights w) averages <u_a, u_b> over draws of distinct items a != b only."""
    rng = np.random.default_rng(3)
    u = M.unit_normalise(rng.normal(size=(6, 4)) + 1.0)
    w = np.array([3, 0, 1, 2, 0, 0])
    g = u @ u.T
    num = sum(w[a] * w[b] * g[a, b] for a in range(6) for b in range(6) if a != b)
    den = sum(w[a] * w[b] for a in range(6) for b in range(6) if a != b)
    got = M.within_from_sums(w @ u, w.sum(), (w**2).sum())
    assert got == pytest.approx(num / den, abs=1e-12)
    assert np.isnan(M.within_from_sums(4 * u[0], 4, 16))  # one item drawn 4 times: no pair of distinct items


def test_class_cosines_rejects_bad_input():
    x = np.ones((5, 3))
    with pytest.raises(ValueError, match="labels"):
        M.class_cosines(x, [0, 1, 0])
    with pytest.raises(ValueError, match="no samples"):
        M.class_cosines(x, [0, 0, 0, 2, 2])
    with pytest.raises(ValueError, match="num_classes"):
        M.class_cosines(x, [0, 1, 2, 3, 4], num_classes=3)


def test_identical_representations_give_rh_one():
    runs = testing.synthetic_runs(minorities=("automobile", "ship"), seeds=(0, 1), n_test=30, dim=12)
    bal = {r.seed: r for r in runs if r.minority is None}
    for r in runs:  # the "imbalanced" models are the balanced ones
        r.features = dict(bal[r.seed].features)
    cr = M.cosine_runs(runs)
    np.testing.assert_allclose(M.rh_matrix(cr).to_numpy(), 1.0, atol=1e-12)
    b = M.rh_interval(cr)
    np.testing.assert_allclose(b["estimate"].to_numpy(), 1.0, atol=1e-12)
    np.testing.assert_allclose(b["lo"].to_numpy(), 1.0, atol=1e-12)
    np.testing.assert_allclose(b["hi"].to_numpy(), 1.0, atol=1e-12)


def test_planted_collapse_is_found_in_exactly_that_cell(planted):
    _, cr = planted
    rh = M.rh_matrix(cr)
    for m, t in COLLAPSE.items():
        off = rh.loc[m].drop(m)
        assert off.idxmin() == t
        assert off[t] < 0.85
        assert (off.drop(t) > 0.95).all()
    assert (rh.loc["cat"].drop("cat") > 0.95).all()  # no collapse planted for cat
    test = M.rh_test(cr, method="holm")
    rejected = set(map(tuple, test.loc[test.reject, ["minority", "other"]].to_numpy()))
    assert rejected == set(COLLAPSE.items())
    spec = M.pair_specificity(cr)
    for m, t in COLLAPSE.items():
        assert spec.loc[m, "most_collapsed"] == t
        assert spec.loc[m, "contrast_lo"] > 0.1
    assert spec.loc["cat", "contrast_hi"] < 0.05


def test_rh_is_invariant_to_relabelling_classes(planted):
    _, cr = planted
    perm = np.random.default_rng(3).permutation(len(cr.classes))
    cr2 = cr.relabel(perm)
    assert cr2.classes != cr.classes
    a = M.rh_matrix(cr)
    b = M.rh_matrix(cr2).loc[a.index, a.columns]
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), atol=1e-12)
    pa, pb = M.rh_paper_sd(cr), M.rh_paper_sd(cr2).loc[a.index, a.columns]
    np.testing.assert_allclose(pa.to_numpy(), pb.to_numpy(), atol=1e-12)


def test_relabelled_features_give_the_same_rh():
    runs = testing.synthetic_runs(minorities=("automobile",), collapse={"automobile": "truck"}, seeds=(0, 1), n_test=30,
                            dim=12)
    perm = np.random.default_rng(1).permutation(10)
    names = [None] * 10
    for old, new in enumerate(perm):
        names[new] = M.CIFAR10_CLASSES[old]
    relabelled = []
    for r in runs:
        f = dict(r.features)
        f["test_labels"] = perm[np.asarray(f["test_labels"])]
        relabelled.append(testing.SyntheticRun(r.minority, r.seed, r.ratio, f))
    a = M.rh_matrix(M.cosine_runs(runs))
    b = M.rh_matrix(M.cosine_runs(relabelled, classes=names)).loc[a.index, a.columns]
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), atol=1e-12)


def _stack(bal, imb, classes=("a", "b", "c")):
    return M.CosineRuns(list(classes), list(range(bal.shape[0])), bal, imb)


@pytest.mark.parametrize("s", [3, 5, 10])  # the seed counts of the book's chapters
def test_rh_interval_over_seeds_at_the_book_seed_counts(s):
    """Per seed, the balanced distance is drawn and the underrepresented one is it times exp(log RH + noise): the
    true RH of the cell is known (0.7 / 0.9 up to a bias of sigma^2 / 2 = 0.1%, far inside any interval)."""
    rng = np.random.default_rng(s)
    truth, sigma, n_rep = 0.7 / 0.9, 0.05, 300
    hits, width = 0, []
    for _ in range(n_rep):
        d_bal = 0.9 * np.exp(0.1 * rng.normal(size=(s, 3, 3)))  # seed-level noise shared by the pair
        d_imb = d_bal * np.exp(np.log(truth) + sigma * rng.normal(size=(s, 3, 3)))
        b = M.rh_interval(_stack(1 - d_bal, {"a": 1 - d_imb}))
        lo, hi = b["lo"].loc["a", "b"], b["hi"].loc["a", "b"]
        assert lo <= b["estimate"].loc["a", "b"] <= hi
        hits += lo <= truth <= hi
        width.append(np.log(hi / lo))
    # the t-interval on log RH covers its nominal 95% (v1's percentile bootstrap over 3 seeds covered ~75%), and is
    # as wide as t_{S-1} says
    from scipy import stats as sps

    assert hits / n_rep >= 0.92
    expected = 2 * sps.t.ppf(0.975, s - 1) * sigma / np.sqrt(s) * _c4(s)  # E[width of the log interval]
    assert np.mean(width) == pytest.approx(expected, rel=0.15)


def _c4(s):
    """E[sample sd] / sigma for s normals."""
    from scipy.special import gammaln

    return np.sqrt(2 / (s - 1)) * np.exp(gammaln(s / 2) - gammaln((s - 1) / 2))


def test_paired_interval_is_narrower_with_shared_seed_noise():
    rng = np.random.default_rng(1)
    shared = 0.1 * rng.normal(size=(8, 3, 3))
    bal = 0.1 + shared
    imb = 0.3 + shared + 0.005 * rng.normal(size=(8, 3, 3))
    cr = _stack(bal, {"a": imb})
    p, u = M.rh_interval(cr, paired=True), M.rh_interval(cr, paired=False)
    assert (p["hi"] - p["lo"]).loc["a", "b"] < 0.5 * (u["hi"] - u["lo"]).loc["a", "b"]


def test_rh_interval_is_the_geometric_mean_with_a_t_interval_that_agrees_with_rh_test(planted):
    """One estimator: per cell, exp(mean over seeds of the paired log ratio), with the exponentiated t-interval, derived
    here by hand from the cosines; the 95% interval excludes 1 exactly when the two-sided paired t-test has p < 0.05
    (one-sided p < 0.025 for a cell below 1)."""
    from scipy import stats as sps

    _, cr = planted
    b = M.rh_interval(cr)
    imb, bal = cr.rows()
    s = imb.shape[1]
    test = M.rh_test(cr, method="none").set_index(["minority", "other"])
    for r, m in enumerate(cr.minorities):
        for j, c in enumerate(cr.classes):
            d = np.log(1 - imb[r, :, j]) - np.log(1 - bal[r, :, j])
            half = sps.t.ppf(0.975, s - 1) * d.std(ddof=1) / np.sqrt(s)
            assert b["estimate"].loc[m, c] == pytest.approx(np.exp(d.mean()), rel=1e-10)
            assert (b["lo"].loc[m, c], b["hi"].loc[m, c]) == pytest.approx(
                (np.exp(d.mean() - half), np.exp(d.mean() + half)), rel=1e-10)
            if c != m:
                assert test.loc[(m, c), "rh_seed_mean"] == pytest.approx(b["estimate"].loc[m, c], rel=1e-12)
                assert (b["hi"].loc[m, c] < 1) == (test.loc[(m, c), "p"] < 0.025)


def test_rh_interval_with_one_seed_is_the_single_ratio_and_no_interval():
    bal = 0.2 + 0.1 * np.eye(3)[None]
    imb = bal.copy()
    imb[0, 0, 1] = imb[0, 1, 0] = 0.6
    cr = _stack(bal, {"a": imb})
    b = M.rh_interval(cr)
    np.testing.assert_allclose(b["estimate"].to_numpy(), M.rh_matrix(cr).to_numpy(), rtol=1e-12)
    assert np.isnan(b["lo"].to_numpy()).all() and np.isnan(b["hi"].to_numpy()).all()


def test_paper_sd_matches_a_hand_computation():
    rng = np.random.default_rng(2)
    classes = ["p", "q"]
    runs = []
    for s in (5, 6):
        for m in (None, "p"):
            x = rng.normal(size=(8, 3)) + 1.0
            runs.append(testing.SyntheticRun(m, s, 100, {"test_backbone": x,
                                                   "test_labels": np.array([0, 0, 0, 1, 1, 1, 1, 1])}))
    cr = M.cosine_runs(runs, classes=classes, within="paper")  # the paper's diagonal: self-pairs included
    sd = M.rh_paper_sd(cr)
    assert cr.meta["within"] == "paper" and M.cosine_runs(runs, classes=classes).meta["within"] == "unbiased"

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    imb_cos, se = [], []
    for s in (5, 6):
        ri = next(r for r in runs if r.seed == s and r.minority == "p")
        rb = next(r for r in runs if r.seed == s and r.minority is None)
        ui, ub = unit(ri.features["test_backbone"]), unit(rb.features["test_backbone"])
        imb_cos.append([np.mean([ui[a] @ ui[b] for a in range(3) for b in range(3)]),
                        np.mean([ui[a] @ ui[b] for a in range(3) for b in range(3, 8)])])
        pair = [[ub[a] @ ub[b] for a in range(3) for b in range(3)],
                [ub[a] @ ub[b] for a in range(3) for b in range(3, 8)]]
        se.append([np.std(pair[0]) / np.sqrt(9), np.std(pair[1]) / np.sqrt(15)])
    hand = np.sqrt(np.std(imb_cos, axis=0) ** 2 + np.mean(se, axis=0) ** 2)
    np.testing.assert_allclose(sd.loc["p"].to_numpy(), hand, atol=1e-10)


def test_noise_floor_is_one_for_identical_balanced_seeds():
    bal = np.repeat((0.2 + 0.1 * np.eye(3))[None], 3, axis=0)
    cr = _stack(bal, {"a": bal.copy()})
    nf = M.noise_floor(cr)
    assert len(nf) == 3 * 2 * 3
    np.testing.assert_allclose(nf.rh.to_numpy(), 1.0)
    s = M.noise_floor_summary(cr)
    assert s["lo"] == pytest.approx(1.0) and s["hi"] == pytest.approx(1.0)


def test_validation_errors_name_the_parameter(planted):
    runs, cr = planted
    with pytest.raises(ValueError, match="method"):
        M.rh_test(cr, method="bh")
    with pytest.raises(ValueError, match="level"):
        M.rh_interval(cr, level=1.5)
    with pytest.raises(ValueError, match="feature"):
        M.cosine_runs(runs, feature="nope")
    with pytest.raises(ValueError, match="seeds"):
        M.cosine_runs([r for r in runs if not (r.minority == "horse" and r.seed == 2)])
    single = _stack(np.zeros((1, 3, 3)), {"a": np.zeros((1, 3, 3))})
    with pytest.raises(ValueError, match="2 seeds"):
        M.rh_test(single)


def _frame(values, rows, cols=("a", "b", "c")):
    return pd.DataFrame(values, index=list(rows), columns=list(cols))


def test_most_collapsed_table_and_long_rh_against_hand_values():
    # estimate, bounds and paper all differ, so every column of the output can only come from its own input
    est = _frame([[0.9, 0.8, 0.95], [0.7, 1.0, 0.6]], "ab")
    lo = _frame([[0.85, 0.75, 0.9], [0.65, 0.97, 0.55]], "ab")
    hi = _frame([[0.95, 0.88, 0.99], [0.75, 1.02, 0.66]], "ab")
    paper = _frame([[1.0, 0.99, 0.5], [0.4, 1.0, 0.9]], "ac", ("a", "b", "c"))  # no paper row for "b"
    t = M.most_collapsed_table(est, lo, hi, paper)
    # row a: off-diagonal ours {b: 0.8, c: 0.95} -> b; the paper's {b: 0.99, c: 0.5} -> c
    assert t.loc["a", ["ours_class", "ours_rh", "ours_lo", "ours_hi"]].tolist() == ["b", 0.8, 0.75, 0.88]
    assert t.loc["a", ["paper_class", "paper_rh", "paper_rh_same_cell"]].tolist() == ["c", 0.5, 0.99]
    # row b: ours {a: 0.7, c: 0.6} -> c; the paper has no row b
    assert t.loc["b", ["ours_class", "ours_rh", "ours_lo", "ours_hi"]].tolist() == ["c", 0.6, 0.55, 0.66]
    assert pd.isna(t.loc["b", "paper_class"])
    long = M.long_rh(est, lo, hi, paper).set_index(["minority", "other"])
    assert len(long) == 6
    assert long.loc[("b", "c"), ["rh", "lo", "hi"]].tolist() == [0.6, 0.55, 0.66]
    assert long.loc[("a", "c"), "paper"] == 0.5 and np.isnan(long.loc[("b", "a"), "paper"])


def test_paper_reference_pins_the_most_collapsed_cells():
    # pinned from the paper (arXiv 2310.01583, SimCLR 1:100 RH matrix): automobile collapses most onto truck
    from rharm.core import reference

    paper = reference.matrix("simclr_100_rh")
    est = pd.DataFrame(1.0, index=paper.index, columns=paper.columns)
    est.loc["automobile", "ship"] = 0.5  # ours points elsewhere: the table must keep the two apart
    t = M.most_collapsed_table(est, est, est, paper)
    assert t.loc["automobile", "ours_class"] == "ship" and t.loc["automobile", "paper_class"] == "truck"
    assert t.loc["automobile", "paper_rh_same_cell"] == paper.loc["automobile", "ship"] != 0.5


def test_linear_probe_separates_clusters():
    runs = testing.synthetic_runs(minorities=(), seeds=(0,), n_test=40, n_train=40, dim=16, spread=0.5)
    f = runs[0].features
    acc = M.linear_probe_accuracy(f["train_backbone"], f["train_labels"], f["test_backbone"], f["test_labels"])
    assert acc > 0.9
    chance = M.linear_probe_accuracy(f["train_backbone"], np.random.default_rng(0).permutation(f["train_labels"]),
                                     f["test_backbone"], f["test_labels"])
    assert chance < 0.4


def test_charts_build():
    from rharm.core import reference
    from rharm.page import charts

    long = reference.long("simclr_100_rh").rename(columns={"value": "rh"})
    ch = charts.rh_heatmap(long, title="t", order=reference.class_order())
    assert ch.to_dict()["title"] == "t"
    sc = charts.ours_vs_paper_scatter(long.assign(paper=long.rh.iloc[::-1].to_numpy()), title="s")

    data = [r for r in charts.chart_data(sc) if "cell" in r]  # the points (the rest: identity line, RH = 1 rule)
    assert len(data) == len(long)  # one point per cell
    assert any(abs(r["paper"] - r["rh"]) > 0.01 for r in data)  # x and y carry different columns


def test_noise_floor_needs_two_seeds():
    nf = M.noise_floor(M.CosineRuns(["a"], [0], np.zeros((1, 1, 1)), {}))
    assert len(nf) == 0 and list(nf.columns) == ["seed_a", "seed_b", "minority", "other", "rh"]
    assert np.isnan(M.noise_floor_summary(M.CosineRuns(["a"], [0], np.zeros((1, 1, 1)), {}))["median"])


def test_noise_floor_ratios_pinned_values():
    bal = [np.array([0.5, 0.0]), np.array([0.75, 0.5]), np.array([0.0, 0.75])]  # 1 - cos: (.5, 1), (.25, .5), (1, .25)
    consecutive = M.noise_floor_ratios(bal, "consecutive")
    assert [(a, b) for a, b, _ in consecutive] == [(1, 0), (2, 1)]
    np.testing.assert_array_equal(consecutive[0][2], [0.5, 0.5])  # (.25 / .5, .5 / 1)
    np.testing.assert_array_equal(consecutive[1][2], [4.0, 0.5])  # (1 / .25, .25 / .5)
    every = {(a, b): r for a, b, r in M.noise_floor_ratios(bal)}
    assert sorted(every) == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
    np.testing.assert_array_equal(every[(0, 2)], [0.5, 4.0])  # (.5 / 1, 1 / .25)
    assert M.noise_floor_ratios(bal[:1]) == []
    with pytest.raises(ValueError, match=r"pairing='pairs' is not valid; choose one of \['all', 'consecutive'\]"):
        M.noise_floor_ratios(bal, "pairs")


def test_bootstrap_indices_resample_with_replacement():
    idx = stats.bootstrap_indices(np.random.default_rng(0), 5, (2000,))
    assert idx.shape == (2000, 5) and idx.min() == 0 and idx.max() == 4
    # each draw is uniform with replacement: P(a resample holds a given item) = 1 - (4/5)^5 = 0.672
    assert abs((idx == 0).any(axis=1).mean() - (1 - 0.8 ** 5)) < 0.04
    nested = stats.bootstrap_indices(np.random.default_rng(0), 3, (4, 2))
    assert nested.shape == (4, 2, 3)
    np.testing.assert_array_equal(nested, np.random.default_rng(0).integers(0, 3, size=(4, 2, 3)))


def test_noise_floor_summary_by_hand_and_restricted_rows():
    # 1 - cos of the balanced models, rows a, b (row c unused): seed 0 then seed 1
    d0 = np.array([[0.1, 0.5, 1.0], [0.5, 0.1, 0.25], [1.0, 0.25, 0.1]])
    d1 = np.array([[0.1, 0.25, 0.5], [1.0, 0.1, 0.5], [0.5, 0.5, 0.1]])
    bal = 1.0 - np.stack([d0, d1])
    cr = M.CosineRuns(["a", "b", "c"], [0, 1], bal, {"a": bal.copy(), "b": bal.copy()})
    # ordered seed pairs (0, 1), (1, 0): row a off the diagonal gives 2, 2 and 0.5, 0.5; row b gives 0.5, 0.5 and 2, 2
    s = M.noise_floor_summary(cr, level=0.5, rows=["a"])
    assert (s["n"], s["min"], s["max"], s["median"]) == (4, 0.5, 2.0, 1.25)
    assert s["lo"] == pytest.approx(0.5) and s["hi"] == pytest.approx(2.0)  # quantiles .25 / .75 of (.5, .5, 2, 2)
    assert M.noise_floor_summary(cr)["n"] == 8
    with_diagonal = M.noise_floor_summary(cr, off_diagonal=False, rows=["b"])
    assert with_diagonal["n"] == 6 and with_diagonal["median"] == pytest.approx(1.0)  # (.5, .5, 1, 1, 2, 2)
    from rharm.study import design as study

    assert study.noise_floor_rows(cr, ["b"]) == {"min": 0.5, "max": 2.0, "lo": 0.5, "hi": 2.0, "n": 4}
