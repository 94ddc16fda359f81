"""The statistics every chapter shares, written once: resampling, intervals over seeds, one-sided tests, power and
multiple testing.

Each primitive lives here and only here; :mod:`rharm.harm.metrics`, :mod:`rharm.harm.mediation`,
:mod:`rharm.harm.audit`, :mod:`rharm.study.design` and the chapters call it. The underrepresentation draw is
:mod:`rharm.core.sampling`; the linear probe is :mod:`rharm.harm.probe`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from rharm.core.common import check_choice

# --------------------------------------------------------------------------------------------------------------
# Bootstrap
# --------------------------------------------------------------------------------------------------------------


def bootstrap_indices(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    """Resampling with replacement: integer array of shape ``(*shape, n)``, each entry uniform on 0..n-1.

    ``shape`` is ``(n_boot,)`` for one stage, ``(n_boot, S)`` for a second stage drawn within each of S first-stage
    draws. The one draw every bootstrap in rharm uses (one ``rng.integers`` call, so a seed gives the same indices).

    Example:
        Three resamples of five items:

        >>> bootstrap_indices(np.random.default_rng(0), 5, (3,))
        array([[4, 3, 2, 1, 1],
               [0, 0, 0, 0, 4],
               [3, 4, 2, 3, 4]])
    """
    return rng.integers(0, n, size=(*shape, n))


def percentile_interval(boot: Any, level: float, axis: int = 0, *,
                        skip_nan: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Central percentile interval of bootstrap replicates: the ``(1 - level) / 2`` and ``(1 + level) / 2``
    quantiles of ``boot`` along ``axis`` (numpy's linear interpolation). Returns (lo, hi), ``boot`` less ``axis``.
    ``skip_nan``: quantiles of the finite replicates only (a replicate can be undefined, e.g. a ratio 0/0).

    Example:
        The 90 % interval of 101 replicates 0, 1, ..., 100, and of two cells at once (replicates along axis 0):

        >>> lo, hi = percentile_interval(np.arange(101.0), 0.9)
        >>> round(float(lo), 6), round(float(hi), 6)
        (5.0, 95.0)
        >>> boot = np.stack([np.arange(101.0), 2 * np.arange(101.0)], axis=1)  # (replicates, cells)
        >>> percentile_interval(boot, 0.9)
        (array([ 5., 10.]), array([ 95., 190.]))
    """
    _check_level(level)
    a = (1 - level) / 2
    q = np.nanquantile if skip_nan else np.quantile
    return q(boot, a, axis=axis), q(boot, 1 - a, axis=axis)


#: the interval every summary over model seeds uses (named on every page that shows one)
SEED_INTERVAL = "Student t-interval over seeds"
#: the same on the log scale, for ratios such as RH (exp of the t-interval of the per-seed logs)
SEED_INTERVAL_LOG = "Student t-interval of per-seed log values, exponentiated"


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level={level!r} is not valid; it must lie in (0, 1)")


def t_interval(values: Any, *, level: float = 0.95, axis: int = 0) -> tuple[Any, Any, Any]:
    """Mean of per-seed values along ``axis`` and its Student t-interval: mean ± t_{n-1, (1+level)/2} · s / sqrt(n).

    Exact coverage for normally distributed values and robust to moderate skew, which a percentile bootstrap over
    3 to 5 seeds is not: its interval never leaves the sample range (about 75 % coverage at n = 3). With fewer than
    two values the interval is undefined (NaN); the mean is still returned. NaN values are an error (a seed that
    failed must be reported, not dropped).

    Example:
        >>> m, lo, hi = t_interval([1.0, 2.0, 3.0])
        >>> round(m, 3), round(lo, 3), round(hi, 3)
        (2.0, -0.484, 4.484)
    """
    from scipy import stats as sps

    _check_level(level)
    x = np.asarray(values, dtype=np.float64)
    if np.isnan(x).any():
        raise ValueError("values contain NaN; every seed must give a value")
    n = x.shape[axis] if x.ndim else 1
    if n == 0:
        nan = np.full(np.delete(x.shape, axis) if x.ndim > 1 else (), np.nan)
        return (float(nan) if nan.ndim == 0 else nan,) * 3
    m = x.mean(axis=axis)
    if n < 2:
        half = np.full_like(m, np.nan)
    else:
        half = sps.t.ppf((1 + level) / 2, n - 1) * x.std(axis=axis, ddof=1) / np.sqrt(n)
    out = (m, m - half, m + half)
    return tuple(float(v) for v in out) if np.ndim(m) == 0 else out


def mean_ci(values: Any, *, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of (S,) per-seed values and its t-interval over seeds (:func:`t_interval`): (mean, lo, hi).

    Example:
        >>> [round(v, 3) for v in mean_ci([0.61, 0.64, 0.58, 0.63])]
        [0.615, 0.573, 0.657]
    """
    return t_interval(values, level=level)


def geometric_ci(log_values: Any, *, level: float = 0.95) -> tuple[float, float, float]:
    """exp(mean) of (S,) per-seed log values and the exponentiated t-interval of the logs: (estimate, lo, hi).

    The estimator of every ratio over paired seeds (RH above all): the geometric mean of the per-seed ratios. Its
    interval is positive, and it agrees with the paired t-test of the logs by construction (the two-sided interval at
    ``level`` excludes 1 exactly when the two-sided test rejects at 1 - ``level``).

    Example:
        >>> est, lo, hi = geometric_ci(np.log([0.5, 0.6, 0.7]))
        >>> round(est, 3), lo < est < hi < 1.0
        (0.594, True)
    """
    return tuple(float(np.exp(v)) for v in t_interval(log_values, level=level))


def fieller_ratio_ci(num: Any, den: Any, *, level: float = 0.95) -> tuple[float, float, float]:
    """Ratio of means mean(num) / mean(den) over paired seeds and its Fieller interval (exact under normality).

    Used for a share such as NIE / TE. The interval is NaN (unbounded) when the denominator's mean is not
    significantly different from 0 at ``level``: then no finite interval covers, and none is shown.

    Example:
        The share of a total effect (TE, per seed) that goes through the representation (NIE, per seed):

        >>> est, lo, hi = fieller_ratio_ci([-0.10, -0.14, -0.12, -0.11], [-0.20, -0.26, -0.21, -0.24])
        >>> round(est, 3), round(lo, 3), round(hi, 3)
        (0.516, 0.439, 0.598)
        >>> fieller_ratio_ci([0.1, 0.2, 0.1], [0.1, -0.1, 0.0])  # TE not resolved from 0: no interval
        (nan, nan, nan)
    """
    from scipy import stats as sps

    _check_level(level)
    a, b = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"num and den must be paired (S,) arrays; got {a.shape} and {b.shape}")
    n = a.size
    ma, mb = float(a.mean()) if n else np.nan, float(b.mean()) if n else np.nan
    est = ma / mb if mb != 0 else float("nan")
    if n < 2:
        return est, float("nan"), float("nan")
    t = sps.t.ppf((1 + level) / 2, n - 1)
    vaa, vbb = a.var(ddof=1) / n, b.var(ddof=1) / n
    vab = float(np.cov(a, b, ddof=1)[0, 1]) / n
    # (ma - R mb)^2 <= t^2 (vaa - 2 R vab + R^2 vbb), a quadratic A R^2 - 2 B R + C <= 0 in R
    qa, qb, qc = mb * mb - t * t * vbb, ma * mb - t * t * vab, ma * ma - t * t * vaa
    disc = qb * qb - qa * qc
    if qa <= 0 or disc < 0:  # the denominator is not resolved from 0: the set is unbounded
        return est, float("nan"), float("nan")
    lo, hi = (qb - np.sqrt(disc)) / qa, (qb + np.sqrt(disc)) / qa
    return est, float(lo), float(hi)


def one_sided_p(x: Sequence[float], mu: float = 0.0, alternative: str = "less") -> float:
    """p-value of a one-sample t-test of mean(x) against ``mu`` (``alternative`` "less" or "greater"); NaN with fewer
    than two values; 0 or 1 with no spread (the sign decides).

    Example:
        Is the mean per-seed log RH below 0?

        >>> round(one_sided_p([-0.30, -0.12, -0.21, -0.25]), 5)
        0.00516
        >>> one_sided_p([0.1, 0.1, 0.1], alternative="greater")
        0.0
    """
    from scipy import stats as sps

    check_choice("alternative", alternative, ("less", "greater"))
    x = np.asarray(x, dtype=np.float64)
    if x.size < 2:
        return float("nan")
    if np.allclose(x, x[0]):
        below = x[0] < mu
        return (0.0 if below else 1.0) if alternative == "less" else (0.0 if x[0] > mu else 1.0)
    return float(sps.ttest_1samp(x, mu, alternative=alternative).pvalue)


def paired_t_power(effect: float, sd: float, n: int, *, alpha: float = 0.05) -> float:
    """Power of a one-sided one-sample (paired) t-test at level ``alpha`` with ``n`` seeds to detect a mean shift of
    ``effect`` (> 0, in the direction tested) when the per-seed values have standard deviation ``sd``: the
    noncentral t with n - 1 degrees of freedom and noncentrality effect / (sd / sqrt(n)).

    Example:
        >>> round(paired_t_power(1.0, 1.0, 10), 2)
        0.9
    """
    from scipy import stats as sps

    if not (effect > 0 and sd > 0 and n >= 2 and 0 < alpha < 1):
        raise ValueError(f"effect={effect!r}, sd={sd!r}, n={n!r}, alpha={alpha!r}: need effect > 0, sd > 0, n >= 2 and "
                         "alpha in (0, 1)")
    crit = sps.t.ppf(1 - alpha, n - 1)
    return float(sps.nct.sf(crit, n - 1, effect / (sd / np.sqrt(n))))


# --------------------------------------------------------------------------------------------------------------
# Multiple testing
# --------------------------------------------------------------------------------------------------------------

#: adjustments :func:`adjust_p` accepts (pingouin's names)
P_ADJUSTMENTS = ("holm", "fdr_bh", "bonf", "none")


def adjust_p(p: Sequence[float], method: str = "holm", alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Multiple-comparison adjusted p-values, in the input order, with ``pingouin.multicomp``.

    p (m,) -> (reject (m,) bool at ``alpha``, adjusted p (m,)). ``"holm"``: Holm's step-down family-wise control;
    ``"fdr_bh"``: Benjamini-Hochberg; ``"bonf"``: Bonferroni; ``"none"``: unadjusted.

    Example:
        >>> reject, adjusted = adjust_p([0.01, 0.04, 0.03], "holm")
        >>> reject.tolist(), np.round(adjusted, 3).tolist()
        ([True, False, False], [0.03, 0.06, 0.06])
    """
    check_choice("method", method, P_ADJUSTMENTS)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r} is not valid; it must lie in (0, 1)")
    p = np.asarray(p, dtype=np.float64)
    if method == "none":
        return p < alpha, p.copy()
    import pingouin as pg

    reject, adj = pg.multicomp(p, alpha=alpha, method=method)
    return np.asarray(reject, dtype=bool), np.asarray(adj, dtype=np.float64)
