"""The device probe (rharm.harm.probe) minimises scikit-learn's LogisticRegression objective.

Stated tolerance: with tol 1e-8 (both solvers, float64 on the CPU) the coefficients and intercepts agree to 1e-4
absolute, and the predicted labels agree on at least 99.5% of the points (exactly, on these data).
"""

import numpy as np
import pytest

from rharm.harm import metrics, probe

COEF_ATOL = 1e-4
AGREE = 0.995


def blobs(n=1500, d=24, k=10, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(k, d)) * 0.5
    y = rng.integers(0, k, n)
    x = means[y] + rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True), y


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.mark.parametrize("C", [1.0, 0.1, 0.01])
def test_matches_sklearn_coefficients_and_predictions(C):
    from sklearn.linear_model import LogisticRegression

    x, y = blobs()
    sk = LogisticRegression(C=C, max_iter=5000, tol=1e-8).fit(x, y)
    fit = probe.fit_multinomial(x, y, C, tol=1e-8, max_iter=2000, device="cpu")
    assert fit.converged.all()
    np.testing.assert_allclose(fit.coef[0], sk.coef_, atol=COEF_ATOL)
    np.testing.assert_allclose(fit.intercept[0], sk.intercept_, atol=COEF_ATOL)
    assert (fit.predict(x) == sk.predict(x)).mean() >= AGREE
    assert abs(probe.accuracy(fit, x, y) - sk.score(x, y)) <= 1 - AGREE


def test_batched_problems_equal_separate_fits():
    x, y = blobs(n=900, d=16, seed=1)
    rng = np.random.default_rng(2)
    masks = rng.random((3, len(y))) < 0.7
    cs = [1.0, 0.1, 0.01]
    both = probe.fit_multinomial(x, y, cs, masks=masks, tol=1e-9, max_iter=2000, device="cpu")
    for b in range(3):
        alone = probe.fit_multinomial(x[masks[b]], y[masks[b]], cs[b], classes=np.unique(y), tol=1e-9,
                                      max_iter=2000, device="cpu")
        np.testing.assert_allclose(both.coef[b], alone.coef[0], atol=1e-6)
    # a smaller C shrinks the coefficients (the penalty is applied per problem, not shared)
    norms = [np.linalg.norm(both.coef[b]) for b in range(3)]
    assert norms[0] > norms[1] > norms[2]


def test_linear_probe_accuracy_torch_equals_sklearn():
    x, y = blobs(n=3000, seed=3)
    x, y, xt, yt = x[:1500], y[:1500], x[1500:], y[1500:]
    a = metrics.linear_probe_accuracy(x, y, xt, yt, C=0.1, max_iter=1000, solver="sklearn")
    b = metrics.linear_probe_accuracy(x, y, xt, yt, C=0.1, max_iter=1000, solver="torch", device="cpu")
    assert 0.2 < a and abs(a - b) <= 1 - AGREE


@pytest.mark.parametrize("kw,match", [
    (dict(C=0.0), "C=0.0"),
    (dict(C=[1.0, -1.0]), "C="),
    (dict(max_iter=0), "max_iter=0"),
    (dict(device="tpu"), "device='tpu'"),
    (dict(masks=np.ones((2, 5), bool)), "masks must be"),
    (dict(classes=[0, 1]), "outside classes"),
])
def test_bad_input_is_named(kw, match):
    x, y = blobs(n=60, d=4)
    args = dict(C=1.0)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        probe.fit_multinomial(x, y, **args)
