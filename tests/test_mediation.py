"""Known-answer tests for rharm.harm.mediation (allocation harm and its mediation)."""

import numpy as np
import pandas as pd
import pytest

from rharm.core import sampling
from rharm.harm import mediation as D
from rharm.harm import metrics as M
from rharm.harm import probe
from rharm.harm import synthetic as testing

FAST = probe.ProbeConfig(c_grid=(1.0,), folds=1, max_iter=100, solver="sklearn")  # tiny data: sklearn is quicker


def _runs(**kw):
    base = dict(minorities=("automobile", "cat"), collapse={"automobile": "truck"}, seeds=(0, 1), n_test=80,
                n_train=40, dim=16, spread=1.4, strength=0.7, ratio=10)
    base.update(kw)
    return testing.synthetic_runs(**base)


@pytest.fixture(scope="module")
def planted():
    runs = _runs()
    return runs, D.mediation_runs(runs, protocol="paper", ratio=10, split_seeds=(0, 1), probe=FAST)


def test_effects_pinned_values():
    # accuracies chosen exact in binary, so every effect is exact; the official code (cifar/simclr/utils.py of
    # github.com/smaityumich/CL-representation-harm) computes TE = y11 - y00, IE = y01 - y00, DE = y11 - y01
    y00, y01, y11 = np.array([0.875, 0.5]), np.array([0.625, 0.75]), np.array([0.5, 0.5])
    e = D.effects(y00, y01, y11)
    np.testing.assert_array_equal(e["TE"], [-0.375, 0.0])
    np.testing.assert_array_equal(e["NIE"], [-0.25, 0.25])
    np.testing.assert_array_equal(e["NDE"], [-0.125, -0.25])
    with pytest.raises(ValueError, match="equal shapes"):
        a = np.zeros((4, 5, 5))
        D.effects(a, a, a[:, :4])


def test_effects_match_the_official_definitions_on_random_confusions():
    rng = np.random.default_rng(0)
    a, b, c = rng.random((3, 4, 5, 5))
    e = D.effects(a, b, c)
    np.testing.assert_allclose(e["TE"], c - a, atol=1e-15)
    np.testing.assert_allclose(e["NIE"], b - a, atol=1e-15)
    np.testing.assert_allclose(e["NDE"], c - b, atol=1e-15)
    with pytest.raises(ValueError, match="equal shapes"):
        D.effects(a, b, c[:, :4])


def test_identical_representations_give_zero_nie():
    runs = _runs()
    bal = {r.seed: r for r in runs if r.minority is None}
    for r in runs:
        if r.minority is not None:
            f = dict(bal[r.seed].features)
            f["train_in_cl"] = r.features["train_in_cl"]
            r.features = f
    for protocol in ("paper", "clean"):
        mr = D.mediation_runs(runs, protocol=protocol, ratio=10, split_seeds=(0,), probe=FAST)
        e = D.effect_matrices(mr)
        np.testing.assert_array_equal(e["NIE"].to_numpy(), 0.0)
        assert (np.diag(e["TE"].loc[:, e["TE"].index].to_numpy()) < 0).all()  # the imbalanced head still harms


def test_planted_collapse_gives_positive_nie_in_that_cell(planted):
    _, mr = planted
    e = D.effect_matrices(mr)
    nie = e["NIE"]
    assert nie.loc["automobile", "automobile"] < -0.1
    off = nie.loc["automobile"].drop("automobile")
    assert off.idxmax() == "truck" and off["truck"] > 0.1
    assert (off.drop("truck").abs() < off["truck"] / 3).all()  # sampling noise elsewhere (~20 images per cell)
    assert nie.loc["cat"].abs().max() < off["truck"] / 3  # nothing planted for cat
    boot = D.effect_intervals(mr)
    rows = mr.rows()  # the point estimate is the plain mean over seeds and splits of y11 - y00
    direct = rows["y11"].mean(axis=(1, 2)) - rows["y00"].mean(axis=(1, 2))
    np.testing.assert_allclose(boot["TE"]["estimate"].to_numpy(), direct, atol=1e-12)
    # the interval, by hand: per model seed the NIE averaged over its splits, then a t-interval over seeds
    from scipy import stats as sps

    r, i, j = mr.minorities.index("automobile"), mr.classes.index("automobile"), mr.classes.index("truck")
    per_seed = (rows["y01"][r, :, :, j] - rows["y00"][r, :, :, j]).mean(axis=1)
    half = sps.t.ppf(0.975, per_seed.size - 1) * per_seed.std(ddof=1) / np.sqrt(per_seed.size)
    assert (boot["NIE"]["lo"].loc["automobile", "truck"], boot["NIE"]["hi"].loc["automobile", "truck"]) == \
        pytest.approx((per_seed.mean() - half, per_seed.mean() + half), rel=1e-10)
    assert boot["NIE"]["estimate"].loc["automobile", "truck"] > 0 and i != j
    summ = D.diagonal_summary(mr)
    assert 0 < summ.loc["automobile", "share"] < 1
    assert summ.loc["mean", "TE"] == pytest.approx(np.mean([e["TE"].loc[m, m] for m in mr.minorities]))


def test_effects_invariant_to_relabelling_classes():
    runs = _runs(seeds=(0,))
    perm = np.random.default_rng(4).permutation(10)
    names = [None] * 10
    for old, new in enumerate(perm):
        names[new] = M.CIFAR10_CLASSES[old]
    relabelled = []
    for r in runs:
        f = dict(r.features)
        f["test_labels"], f["train_labels"] = perm[f["test_labels"]], perm[f["train_labels"]]
        relabelled.append(testing.SyntheticRun(r.minority, r.seed, r.ratio, f))
    a = D.effect_matrices(D.mediation_runs(runs, ratio=10, split_seeds=(0,), probe=FAST))
    b = D.effect_matrices(D.mediation_runs(relabelled, ratio=10, split_seeds=(0,), probe=FAST, classes=names))
    for k in D.EFFECTS:
        np.testing.assert_allclose(a[k].to_numpy(), b[k].loc[a[k].index, a[k].columns].to_numpy(), atol=1e-12)


def test_paper_sd_matches_a_hand_computation(planted):
    _, mr = planted
    sd = D.effect_paper_sd(mr, n_eval_per_class=250)
    r, i = mr.minorities.index("automobile"), mr.classes.index("automobile")
    j = mr.classes.index("truck")
    a = [mr.y00[s, p, i, j] for s in range(2) for p in range(2)]
    b = [mr.y01[r, s, p, i, j] for s in range(2) for p in range(2)]
    hand = np.sqrt((np.std(a) / np.sqrt(250)) ** 2 + (np.std(b) / np.sqrt(250)) ** 2)
    assert sd["NIE"].loc["automobile", "truck"] == pytest.approx(hand, rel=1e-12)


def test_one_model_seed_gives_no_interval():
    """Split seeds are not replicates of the model: with one model seed there is no interval over seeds (NaN), not
    a collapsed or split-based one."""
    runs = _runs(seeds=(0,), minorities=("automobile",))
    mr = D.mediation_runs(runs, ratio=10, split_seeds=(3, 4), probe=FAST)
    b = D.effect_intervals(mr)
    assert np.isnan(b["NIE"]["lo"].to_numpy()).all() and np.isnan(b["NIE"]["hi"].to_numpy()).all()
    assert np.isfinite(b["NIE"]["estimate"].to_numpy()).all()


def test_cv_probe_matches_sklearn_gridsearch():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    f = _runs(seeds=(0,), minorities=())[0].features
    x, y = M.unit_normalise(f["test_backbone"]), f["test_labels"]
    gs = GridSearchCV(LogisticRegression(max_iter=1000, tol=1e-10), {"C": [1.0, 0.1, 0.01]}, cv=3).fit(x, y)
    for solver in probe.SOLVERS:
        cfg = probe.ProbeConfig(c_grid=(1.0, 0.1, 0.01), folds=3, max_iter=1000, tol=1e-9, solver=solver)
        model, c = probe.fit_probe(x, y, cfg)
        assert c == gs.best_params_["C"], solver
        np.testing.assert_allclose(model[0], gs.best_estimator_.coef_, atol=1e-3, err_msg=solver)
        np.testing.assert_allclose(model[1], gs.best_estimator_.intercept_, atol=1e-3, err_msg=solver)
        assert (probe.predict_logistic(model, x) == gs.predict(x)).mean() == 1.0, solver


def test_undersample_mask_keeps_n_over_ratio():
    y = np.repeat(np.arange(3), 50)
    m = sampling.undersample_mask(y, 1, 10, np.random.default_rng(0))
    assert m[y == 1].sum() == 5 and m[y != 1].all()
    m2 = sampling.undersample_mask(y, 1, 10, np.random.default_rng(0))
    np.testing.assert_array_equal(m, m2)  # seeded


def test_crosscheck_finds_an_indirect_effect(planted):
    runs, mr = planted
    out = D.mediation_crosscheck(runs, mr, "automobile", "truck", n_boot=200)
    assert out["indirect"] > 0 and out["indirect_lo"] > 0
    assert out["n"] == 2 * int((mr.pred00[:, :, mr.test_labels == 1] >= 0).sum())
    with pytest.raises(ValueError, match="toward"):
        D.mediation_crosscheck(runs, mr, "automobile", "automobile")


def test_validation_and_store_roundtrip(tmp_path, monkeypatch):
    runs = _runs(seeds=(0,), minorities=("automobile",))
    with pytest.raises(ValueError, match="protocol"):
        D.mediation_runs(runs, protocol="official")
    with pytest.raises(ValueError, match="c_grid"):
        probe.ProbeConfig(c_grid=(0.0,))
    monkeypatch.setenv("RHARM_RESULTS_ROOT", str(tmp_path))
    a = D.cached_mediation_runs(runs, ratio=10, split_seeds=[0], probe=FAST)
    b = D.cached_mediation_runs(runs, ratio=10, split_seeds=[0], probe=FAST)
    np.testing.assert_array_equal(a.y11, b.y11)
    assert b.minorities == ["automobile"] and len(list((tmp_path / "mediation").iterdir())) == 1


def test_charts_build():
    idx = pd.Index(["automobile", "horse"], name="minority")
    cols = pd.Index(["automobile", "horse", "truck"], name="predicted")

    def frame(v):
        return pd.DataFrame(np.asarray(v, dtype=float).reshape(2, 3), index=idx, columns=cols)

    base = np.array([-0.3, 0.05, 0.2, 0.01, -0.6, 0.4])  # planted effects: each effect its own values
    boot = {e: {"estimate": frame(base * (k + 1)), "lo": frame(base * (k + 1) - 0.1),
                "hi": frame(base * (k + 1) + 0.1)} for k, e in enumerate(("TE", "NIE", "NDE"))}
    t = D.long_effects(boot)
    assert set(t.effect) == {"TE", "NIE", "NDE"}
    from rharm.page import charts

    spec = charts.effect_heatmap(t, "NIE", title="NIE").to_dict()
    records = [r for values in spec["datasets"].values() for r in values]
    drawn = {(r["minority"], r["predicted"]): r["value"] for r in records if r.get("effect") == "NIE"}
    est = boot["NIE"]["estimate"]  # every cell of the NIE estimate, at its place, and nothing of TE or NDE
    assert drawn == {(m, c): est.loc[m, c] for m in est.index for c in est.columns}
    assert {r.get("effect") for r in records if "effect" in r} == {"NIE"}
    diagram = charts.mediation_diagram(direct_label="DIRECT", indirect_label="INDIRECT").to_dict()
    labels = {r["label"]: r["path"] for values in diagram["datasets"].values() for r in values if "label" in r}
    assert labels == {"": "indirect", "INDIRECT": "indirect", "DIRECT": "direct"}
    assert diagram["title"] == "Causal mediation of allocation harm"


def test_minority_probe_effects_match_mediation_runs_and_auc_by_hand():
    """Accuracy effects equal the clean protocol's diagonal; each AUC equals a rank computation by hand."""
    from scipy.stats import rankdata

    runs = _runs()
    e = D.minority_probe_effects(runs, "automobile", ratio=10, classes=M.CIFAR10_CLASSES, probe=FAST)
    mr = D.mediation_runs(runs, protocol="clean", ratio=10, probe=FAST, minorities=["automobile"])
    i = mr.classes.index("automobile")
    np.testing.assert_allclose(e["acc00"], mr.y00[:, 0, i, i], atol=1e-12)
    np.testing.assert_allclose(e["acc11"], mr.y11[0, :, 0, i, i], atol=1e-12)
    np.testing.assert_allclose(e["TE_acc"], mr.y11[0, :, 0, i, i] - mr.y00[:, 0, i, i], atol=1e-12)
    # AUC by hand (Mann-Whitney) for seed 0's balanced probe
    bal = next(r for r in runs if r.minority is None and r.seed == 0)
    model, _ = probe.fit_probe(M.unit_normalise(bal.features["train_backbone"]), bal.features["train_labels"], FAST)
    score = D.minority_score(model, M.unit_normalise(bal.features["test_backbone"]), i)
    y = np.asarray(bal.features["test_labels"]) == i
    ranks = rankdata(score)
    auc = (ranks[y].sum() - y.sum() * (y.sum() + 1) / 2) / (y.sum() * (~y).sum())
    assert e["auc00"][0] == pytest.approx(auc, rel=1e-12)
    assert np.allclose(e["TE_auc"], e["NIE_auc"] + e["NDE_auc"])


def test_auc_stays_informative_where_accuracy_saturates():
    """A probe that never predicts the minority has accuracy 0 on it whatever the representation, while its score
    can still rank the minority's images: minority_score is a log-probability, so a large negative intercept for the
    class shifts every score equally and leaves the AUC unchanged."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    y = (x[:, 0] > 1.0).astype(int)
    coef = np.array([[-3.0, 0, 0, 0], [3.0, 0, 0, 0]])
    good = (coef, np.array([0.0, -3.0]), np.array([0, 1]))
    never = (coef, np.array([0.0, -50.0]), np.array([0, 1]))  # class 1 never wins the arg-max
    assert (probe.predict_logistic(never, x) == 1).sum() == 0
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, D.minority_score(never, x, 1)) == pytest.approx(
        roc_auc_score(y, D.minority_score(good, x, 1))) and roc_auc_score(y, D.minority_score(never, x, 1)) > 0.9
