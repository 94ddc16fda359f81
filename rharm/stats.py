"""The statistics every chapter shares, written once: resampling, intervals, multiple testing, the
underrepresentation draw and the logistic-regression probe.

Each primitive lives here and only here; :mod:`rharm.metrics`, :mod:`rharm.study`, :mod:`rharm.mediation`,
:mod:`rharm.audit`, :mod:`rharm.text`, :mod:`rharm.textdata` and :mod:`rharm.data` call it (some re-export it under
their historical names). The draws are the ones those modules made before, so a seed gives the same numbers.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

from . import schema
from .common import check_choice

# --------------------------------------------------------------------------------------------------------------
# Bootstrap
# --------------------------------------------------------------------------------------------------------------


def bootstrap_indices(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    """Resampling with replacement: integer array of shape ``(*shape, n)``, each entry uniform on 0..n-1.

    ``shape`` is ``(n_boot,)`` for one stage, ``(n_boot, S)`` for a second stage drawn within each of S first-stage
    draws. The one draw every bootstrap in rharm uses (one ``rng.integers`` call, so a seed gives the same indices).
    """
    return rng.integers(0, n, size=(*shape, n))


def percentile_interval(boot: Any, level: float, axis: int = 0, *,
                        skip_nan: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Central percentile interval of bootstrap replicates: the ``(1 - level) / 2`` and ``(1 + level) / 2``
    quantiles of ``boot`` along ``axis`` (numpy's linear interpolation). Returns (lo, hi), ``boot`` less ``axis``.
    ``skip_nan``: quantiles of the finite replicates only (a replicate can be undefined, e.g. a ratio 0/0)."""
    if not 0 < level < 1:
        raise ValueError(f"level={level!r} is not valid; it must lie in (0, 1)")
    a = (1 - level) / 2
    q = np.nanquantile if skip_nan else np.quantile
    return q(boot, a, axis=axis), q(boot, 1 - a, axis=axis)


def mean_ci(values: Any, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Mean of (S,) per-seed values and its percentile-bootstrap interval over seeds: (mean, lo, hi).

    With fewer than two values the interval collapses to the mean (NaN when there is none).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        v = float(x.mean()) if x.size else float("nan")
        return v, v, v
    b = x[bootstrap_indices(np.random.default_rng(seed), x.size, (n_boot,))].mean(axis=1)
    lo, hi = percentile_interval(b, level)
    return float(x.mean()), float(lo), float(hi)


# --------------------------------------------------------------------------------------------------------------
# Multiple testing
# --------------------------------------------------------------------------------------------------------------

#: adjustments :func:`adjust_p` accepts (pingouin's names)
P_ADJUSTMENTS = ("holm", "fdr_bh", "bonf", "none")


def adjust_p(p: Sequence[float], method: str = "holm", alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Multiple-comparison adjusted p-values, in the input order, with ``pingouin.multicomp``.

    p (m,) -> (reject (m,) bool at ``alpha``, adjusted p (m,)). ``"holm"``: Holm's step-down family-wise control;
    ``"fdr_bh"``: Benjamini-Hochberg; ``"bonf"``: Bonferroni; ``"none"``: unadjusted.
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


# --------------------------------------------------------------------------------------------------------------
# Underrepresentation: which members of the minority are kept at 1:ratio
# --------------------------------------------------------------------------------------------------------------

#: how :func:`undersample` picks the kept members
UNDERSAMPLE_DRAWS = ("choice", "permutation", "prefix")


def kept_count(n: int, ratio: float, *, minimum: int = 0) -> int:
    """How many of ``n`` minority members are kept at 1:``ratio``: ``max(minimum, int(n / ratio))``, as the paper's
    code does (50 of 5,000 at 1:100). Raises ValueError unless ``ratio`` is valid (:data:`rharm.schema.SPECS`)."""
    schema.check("ratio", ratio)
    return max(int(minimum), int(n / ratio))


def undersample(members: Any, ratio: float, rng: np.random.Generator | None = None, *, minimum: int = 0,
                draw: str = "choice") -> np.ndarray:
    """The kept minority members (k,) of ``members`` (n,), k = :func:`kept_count` (n, ratio, minimum=minimum).

    ``draw``: ``"choice"``: ``rng.choice(members, k, replace=False)`` (the paper's code; images, probes);
    ``"permutation"``: the first k of ``rng.permutation(members)``; ``"prefix"``: the first k of ``members``, which
    the caller has already shuffled (``rng`` must be None), so the kept set is nested in any larger one.
    The result is in draw order, not sorted.
    """
    check_choice("draw", draw, UNDERSAMPLE_DRAWS)
    members = np.asarray(members)
    k = kept_count(members.size, ratio, minimum=minimum)
    if draw == "prefix":
        if rng is not None:
            raise ValueError("rng must be None for draw='prefix' (the members are already in random order)")
        return members[:k]
    if rng is None:
        raise ValueError(f"rng is None; draw={draw!r} needs a numpy Generator")
    if draw == "choice":
        return rng.choice(members, size=k, replace=False)
    return rng.permutation(members)[:k]


def undersample_mask(labels: Any, minority_label: int, ratio: float, rng: np.random.Generator, *,
                     minimum: int = 0) -> np.ndarray:
    """(N,) bool mask keeping every sample of ``labels`` (N,) except all but :func:`undersample` (``"choice"``) of
    the ``minority_label`` members."""
    labels = np.asarray(labels)
    members = np.flatnonzero(labels == minority_label)
    mask = labels != minority_label
    mask[undersample(members, ratio, rng, minimum=minimum)] = True
    return mask


# --------------------------------------------------------------------------------------------------------------
# The linear probe: multinomial logistic regression on frozen features
# --------------------------------------------------------------------------------------------------------------

#: solvers of :func:`fit_logistic`
LOGISTIC_SOLVERS = ("sklearn", "torch")


def fit_logistic(x: Any, y: Any, C: float, *, max_iter: int | None = None, tol: float | None = None,
                 solver: str = "sklearn", device: Any = "cpu", init: tuple | None = None,
                 quiet: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The paper's probe: L2-penalised multinomial logistic regression, (1/n) sum CE + ||W||^2 / (2 C n), with an
    unpenalised intercept, fitted by L-BFGS.

    Args:
        x: (N, d) features (the caller normalises them). y: (N,) integer labels.
        C: inverse regularisation strength (> 0), scikit-learn's ``C``.
        max_iter, tol: L-BFGS limits; None keeps the solver's default (sklearn: 100 and 1e-4).
        solver: ``"sklearn"`` (``LogisticRegression``, lbfgs) or ``"torch"`` (:func:`rharm.probe.fit_multinomial`,
            the same objective, on ``device``).
        init: a previous model to warm-start from (sklearn only): the path over C starts each fit from the last.
        quiet: silence sklearn's ConvergenceWarning (a capped path over C warns by design).

    Returns:
        ``(coef (K', d), intercept (K',), classes (K,))``, K' = K, or 1 for two classes with sklearn;
        :func:`predict_logistic` applies it.
    """
    check_choice("solver", solver, LOGISTIC_SOLVERS)
    if not C > 0:
        raise ValueError(f"C={C!r} is not valid; it must be > 0")
    limits = {k: v for k, v in (("max_iter", max_iter), ("tol", tol)) if v is not None}
    if solver == "torch":
        if init is not None:
            raise ValueError("init is not supported with solver='torch' (it needs no warm start)")
        from rharm import probe

        return probe.fit_multinomial(x, y, C, device=device, **limits).model(0)
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=C, warm_start=init is not None, **limits)
    if init is not None:  # sklearn's warm start reads coef_ and intercept_: set them, as a previous fit would
        clf.coef_, clf.intercept_ = init[0].copy(), init[1].copy()
    from threadpoolctl import threadpool_limits

    # one BLAS thread: L-BFGS on a probe's small matrices spends more time synchronising threads than computing;
    # measured 1.5-10x faster for 1,000-20,000 rows of 128-512 features on 2 cores (benchmarks/probe_threads.py)
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        if quiet:
            warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    return clf.coef_.copy(), clf.intercept_.copy(), clf.classes_.copy()


def predict_logistic(model: tuple, x: Any) -> np.ndarray:
    """Class predictions (N,) of a :func:`fit_logistic` model for x (N, d): the arg-max of x W^T + b (for a
    single-row sklearn model, the sign of its one decision function), as ``LogisticRegression.predict``."""
    coef, intercept, classes = model
    x = np.asarray(x)
    return classes[np.argmax(x @ coef.T + intercept, axis=1)] if coef.shape[0] > 1 else \
        classes[(x @ coef[0] + intercept[0] > 0).astype(int)]
