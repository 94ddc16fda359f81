"""The shared statistics core: each primitive pinned by a hand derivation or a value computed before the merge."""

import numpy as np
import pytest

from rharm import stats


def test_mean_ci_matches_the_exact_bootstrap_distribution():
    # two values 0 and 1: a resample's mean is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4
    mean, lo, hi = stats.mean_ci([0.0, 1.0], n_boot=20000, level=0.4)
    assert mean == 0.5 and lo == 0.5 and hi == 0.5  # the 30% and 70% quantiles fall inside the mass at 0.5
    _, lo, hi = stats.mean_ci([0.0, 1.0], n_boot=20000, level=0.9)
    assert lo == 0.0 and hi == 1.0  # the 5% and 95% quantiles fall inside the masses at 0 and 1


def test_mean_ci_pinned_draws():
    # values of the implementation before the merge (rharm.study.mean_ci / geometric_ci, seed 3, 1000 replicates)
    x = [0.1, -0.4, 0.3, 0.0, -0.2]
    np.testing.assert_allclose(stats.mean_ci(x, n_boot=1000, seed=3), (-0.04, -0.24, 0.16), atol=1e-12)
    from rharm import study

    np.testing.assert_allclose(study.geometric_ci(x, n_boot=1000, seed=3),
                               (0.9607894391523232, 0.7866278610665534, 1.1735108709918103), rtol=1e-12)
    assert stats.mean_ci([2.5]) == (2.5, 2.5, 2.5)
    assert all(np.isnan(v) for v in stats.mean_ci([]))


def test_percentile_interval_and_bad_level():
    lo, hi = stats.percentile_interval(np.arange(101.0), 0.9)
    assert (lo, hi) == pytest.approx((5.0, 95.0))
    with pytest.raises(ValueError, match="level=1.5"):
        stats.percentile_interval(np.arange(3.0), 1.5)


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04, 0.2 times 5, 4, 3, 2, 1 = 0.025, 0.04, 0.09, 0.08 -> 0.09 (monotone), 0.2
    reject, adj = stats.adjust_p([0.01, 0.04, 0.03, 0.20, 0.005], "holm", alpha=0.05)
    np.testing.assert_allclose(adj, [0.04, 0.09, 0.09, 0.2, 0.025])
    assert reject.tolist() == [True, False, False, False, True]
    np.testing.assert_allclose(stats.adjust_p([0.3, 0.6], "holm")[1], [0.6, 0.6])
    np.testing.assert_allclose(stats.adjust_p([0.01, 0.04], "bonf")[1], [0.02, 0.08])
    np.testing.assert_allclose(stats.adjust_p([0.01, 0.04], "none")[1], [0.01, 0.04])
    with pytest.raises(ValueError, match="method='bh'"):
        stats.adjust_p([0.1], "bh")


def test_kept_count_by_hand():
    assert stats.kept_count(5000, 100) == 50  # the paper's 1:100
    assert stats.kept_count(100, 30) == 3  # int(100 / 30)
    assert stats.kept_count(10, 7.5) == 1
    assert stats.kept_count(9, 10) == 0 and stats.kept_count(9, 10, minimum=1) == 1
    for bad in (0.5, float("inf"), True, "2"):
        with pytest.raises(ValueError, match="ratio=.* is not valid"):
            stats.kept_count(10, bad)


def test_undersample_pinned_draws():
    # values of the implementations before the merge (rharm.data.underrepresent, mediation.undersample_mask and
    # text.allocation_effects' permutation), which the modules now get from rharm.stats
    from rharm import data, mediation

    y = np.repeat(np.arange(3), 10)
    assert data.underrepresent(y, 1, 3, 0).tolist() == [*range(10), 15, 16, 19, *range(20, 30)]
    assert np.flatnonzero(mediation.undersample_mask(y, 2, 4, np.random.default_rng(1))).tolist() == \
        [*range(20), 24, 25]
    kept = stats.undersample(np.arange(10, 20), 3, np.random.default_rng(2), draw="permutation")
    assert kept.tolist() == [12, 10, 17]
    assert stats.undersample(np.arange(10, 20), 4, draw="prefix").tolist() == [10, 11]
    kept = stats.undersample(np.arange(100, 200), 10, np.random.default_rng(0))
    assert len(set(kept.tolist())) == 10 and set(kept.tolist()) <= set(range(100, 200))  # without replacement


def test_undersample_argument_errors():
    with pytest.raises(ValueError, match="draw='shuffle' is not valid"):
        stats.undersample(np.arange(5), 2, np.random.default_rng(0), draw="shuffle")
    with pytest.raises(ValueError, match="rng must be None"):
        stats.undersample(np.arange(5), 2, np.random.default_rng(0), draw="prefix")
    with pytest.raises(ValueError, match="rng is None"):
        stats.undersample(np.arange(5), 2)


def _objective_minimum(x, y, C):
    """The probe's objective minimised directly with scipy: (1/n) sum CE(W x + b, y) + ||W||^2 / (2 C n)."""
    from scipy.optimize import minimize
    from scipy.special import logsumexp

    n, d = x.shape
    k = int(y.max()) + 1

    def f(theta):
        w, b = theta[:k * d].reshape(k, d), theta[k * d:]
        z = x @ w.T + b
        return (logsumexp(z, axis=1) - z[np.arange(n), y]).mean() + (w ** 2).sum() / (2 * C * n)

    theta = minimize(f, np.zeros(k * d + k), method="BFGS", options={"gtol": 1e-9}).x
    return theta[:k * d].reshape(k, d), theta[k * d:]


@pytest.mark.parametrize("solver", ["sklearn", "torch"])
def test_fit_logistic_minimises_the_stated_objective(solver):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    x = rng.normal(size=(60, 4)) + 1.2 * rng.normal(size=(3, 4))[y]
    w, b = _objective_minimum(x, y, 0.5)
    coef, intercept, classes = stats.fit_logistic(x, y, 0.5, max_iter=1000, tol=1e-10, solver=solver)
    # logits are identified up to a constant per row: compare centred logits
    z_ref, z = x @ w.T + b, x @ coef.T + intercept
    np.testing.assert_allclose(z - z.mean(1, keepdims=True), z_ref - z_ref.mean(1, keepdims=True), atol=1e-4)
    assert classes.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(stats.predict_logistic((coef, intercept, classes), x), z_ref.argmax(1))


def test_fit_logistic_warm_start_and_binary_prediction():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    y = np.repeat([3, 7], 25)  # labels that are not 0..K-1, and the single-row binary model
    x = rng.normal(size=(50, 3)) + np.where(y == 7, 0.8, -0.8)[:, None]
    cold = stats.fit_logistic(x, y, 1.0, tol=1e-10, max_iter=1000)
    warm = stats.fit_logistic(x, y, 1.0, tol=1e-10, max_iter=1000, init=stats.fit_logistic(x, y, 0.01))
    np.testing.assert_allclose(warm[0], cold[0], atol=1e-5)  # a warm start changes the path, not the minimum
    assert cold[0].shape == (1, 3)
    np.testing.assert_array_equal(stats.predict_logistic(cold, x),
                                  LogisticRegression(C=1.0, tol=1e-10, max_iter=1000).fit(x, y).predict(x))
    with pytest.raises(ValueError, match="C=0 is not valid"):
        stats.fit_logistic(x, y, 0)
    with pytest.raises(ValueError, match="solver='lbfgs' is not valid"):
        stats.fit_logistic(x, y, 1.0, solver="lbfgs")
