"""Linear probes on the device: batched multinomial logistic regression in torch.

The objective is scikit-learn's ``LogisticRegression(C=C)`` (lbfgs, L2, multinomial, unpenalised intercept), written
per sample as it normalises it::

    L(W, b) = (1 / n) sum_n CE(W x_n + b, y_n) + ||W||^2 / (2 C n)

:func:`fit_multinomial` minimises B such problems at once - one per (C, row mask) pair, e.g. every fold x C of a
cross-validated grid search - with a batched L-BFGS (two-loop recursion per problem, Armijo backtracking per problem,
analytic gradients). The problems share one pass over X per evaluation, so a 3-fold x 3-C search costs about as much
as three single fits, and on a GPU a 50,000 x 512 probe takes a fraction of a second per fit instead of the minutes of
CPU scikit-learn. Each problem stops when the largest absolute entry of its gradient is at most ``tol`` (scikit-learn's
lbfgs criterion). Tests (tests/test_probe.py) check agreement with scikit-learn on the CPU in float64.

For two classes this is the symmetric softmax parametrisation (two coefficient rows); scikit-learn fits one row
there, so coefficients differ (predictions match at C' = 2C). Probes in this project have ten classes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from rharm.core import runtime
from rharm.core.common import check_choice
from rharm.core.runtime import resolve_device

#: Armijo's sufficient-decrease constant of the line search
_ARMIJO_C1 = 1e-4


@dataclass
class MultinomialFit:
    """B fitted probes. coef (B, K, d), intercept (B, K), classes (K,) numpy; n_iter, converged (B,) numpy."""

    coef: np.ndarray
    intercept: np.ndarray
    classes: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray

    def model(self, b: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Problem b as ``(coef (K, d), intercept (K,), classes)``, the tuple :mod:`rharm.harm.mediation` predicts
        with.

        Example:
            >>> from rharm.harm import probe
            >>> fit = probe.fit_multinomial([[0.0], [1.0], [3.0], [4.0]], [0, 0, 1, 1], C=1.0, device="cpu")
            >>> coef, intercept, classes = fit.model()
            >>> coef.shape, intercept.shape, classes.tolist()
            ((2, 1), (2,), [0, 1])
        """
        return self.coef[b], self.intercept[b], self.classes

    def predict(self, x: Any, b: int = 0) -> np.ndarray:
        """Class labels of problem b for x (N, d).

        Example:
            >>> from rharm.harm import probe
            >>> fit = probe.fit_multinomial([[0.0], [1.0], [3.0], [4.0]], [0, 0, 1, 1], C=1.0, device="cpu")
            >>> fit.predict([[0.5], [3.5]]).tolist()
            [0, 1]
        """
        x = np.asarray(x, dtype=np.float64)
        return self.classes[np.argmax(x @ self.coef[b].T + self.intercept[b], axis=1)]


def _objective(X, Yoh, M, n, C, W, b, need_grad: bool):
    """Per-problem loss (B,) and, if asked, gradients (B, K, d), (B, K).

    X (N, d), Yoh (N, K) one-hot, M (B, N) row weights 0/1, n (B,) rows used, C (B,), W (B, K, d), b (B, K).
    """
    logits = torch.einsum("nd,bkd->bnk", X, W) + b[:, None, :]
    lse = torch.logsumexp(logits, dim=2)                                    # (B, N)
    picked = (logits * Yoh[None]).sum(2)                                    # (B, N)
    reg = (W * W).sum((1, 2)) / (2 * C * n)
    loss = ((lse - picked) * M).sum(1) / n + reg
    if not need_grad:
        return loss, None, None
    R = (torch.softmax(logits, dim=2) - Yoh[None]) * (M / n[:, None])[:, :, None]   # (B, N, K)
    gW = torch.einsum("bnk,nd->bkd", R, X) + W / (C * n)[:, None, None]
    gb = R.sum(1)
    return loss, gW, gb


@dataclass
class _Problems:
    """B multinomial problems on one X, as tensors on the device: X (N, d), Yoh (N, K) one-hot, M (B, N) row weights
    0/1, n (B,) rows used, C (B,)."""

    X: torch.Tensor
    Yoh: torch.Tensor
    M: torch.Tensor
    n: torch.Tensor
    C: torch.Tensor
    B: int
    K: int
    d: int

    @property
    def P(self) -> int:
        return self.K * (self.d + 1)

    def unpack(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        K, d = self.K, self.d
        return theta[:, :K * d].view(self.B, K, d), theta[:, K * d:]

    def evaluate(self, theta: torch.Tensor, need_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Loss (B,) and the flat gradient (B, P) when asked."""
        W, b = self.unpack(theta)
        loss, gW, gb = _objective(self.X, self.Yoh, self.M, self.n, self.C, W, b, need_grad)
        return loss, (torch.cat([gW.reshape(self.B, -1), gb], 1) if need_grad else None)


def _check_inputs(x, y, C, masks, classes, max_iter, tol):
    """ValueError naming the first bad input; else (x (N, d) tensor, each label's index in classes (N,), classes,
    C (B,), masks (B, N)), C and masks broadcast to B problems."""
    x_t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if x_t.ndim != 2:
        raise ValueError(f"x must be (N, d); got shape {tuple(x_t.shape)}")
    y_np = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y).astype(np.int64).ravel()
    if y_np.size != x_t.shape[0]:
        raise ValueError(f"y has {y_np.size} labels but x has {x_t.shape[0]} rows")
    cls = np.unique(y_np) if classes is None else np.asarray(classes, dtype=np.int64)
    idx = np.searchsorted(cls, y_np)
    if (idx >= cls.size).any() or not np.array_equal(cls[np.minimum(idx, cls.size - 1)], y_np):
        raise ValueError(f"y holds labels outside classes={cls.tolist()}")
    if cls.size < 2:
        raise ValueError(f"y has {cls.size} class(es); a probe needs at least 2")
    Cs = np.atleast_1d(np.asarray(C, dtype=np.float64))
    if Cs.ndim != 1 or Cs.size == 0 or not np.all(np.isfinite(Cs)) or (Cs <= 0).any():
        raise ValueError(f"C={C!r} is not valid; give a positive number or a non-empty list of them")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter={max_iter!r} is not valid; it must be an integer >= 1")
    if not tol > 0:
        raise ValueError(f"tol={tol!r} is not valid; it must be > 0")
    N = x_t.shape[0]
    if masks is None:
        M_np = np.ones((1, N), dtype=bool)
    else:
        M_np = np.asarray(masks.cpu() if isinstance(masks, torch.Tensor) else masks, dtype=bool)
        if M_np.ndim != 2 or M_np.shape[1] != N:
            raise ValueError(f"masks must be (B, {N}) booleans; got shape {M_np.shape}")
    B = max(Cs.size, M_np.shape[0])
    if Cs.size not in (1, B) or M_np.shape[0] not in (1, B):
        raise ValueError(f"C has {Cs.size} values and masks {M_np.shape[0]} rows; they must match or be 1")
    Cs = np.broadcast_to(Cs, (B,))
    M_np = np.broadcast_to(M_np, (B, N))
    if (M_np.sum(1) == 0).any():
        raise ValueError("a mask selects no rows")
    return x_t, idx, cls, Cs, M_np


def _problems(x_t, idx, K: int, Cs, M_np, dev: torch.device, dtype: torch.dtype) -> _Problems:
    X = x_t.to(device=dev, dtype=dtype)
    Yoh = torch.nn.functional.one_hot(torch.from_numpy(idx).to(dev), K).to(dtype)
    M = torch.as_tensor(np.array(M_np), device=dev).to(dtype)
    Ct = torch.as_tensor(np.array(Cs), device=dev, dtype=dtype)
    return _Problems(X=X, Yoh=Yoh, M=M, n=M.sum(1), C=Ct, B=M.shape[0], K=K, d=x_t.shape[1])


@dataclass
class _Memory:
    """L-BFGS memory of B problems: the last curvature pairs s (S), y (Yh) and 1 / (s . y) (rho), slots
    0..filled-1, newest last."""

    S: torch.Tensor
    Yh: torch.Tensor
    rho: torch.Tensor
    filled: int = 0

    def direction(self, g: torch.Tensor) -> torch.Tensor:
        """The quasi-Newton direction -H g of each problem (two-loop recursion)."""
        S, Yh, rho, filled = self.S, self.Yh, self.rho, self.filled
        q = g.clone()
        alpha = torch.zeros(filled, g.shape[0], device=g.device, dtype=g.dtype)
        for j in range(filled - 1, -1, -1):
            alpha[j] = rho[j] * (S[j] * q).sum(1)
            q -= alpha[j][:, None] * Yh[j]
        if filled:
            yy = (Yh[filled - 1] * Yh[filled - 1]).sum(1)
            first = 1.0 / g.abs().sum(1).clamp_min(1.0)
            gamma = torch.where(yy > 0, (S[filled - 1] * Yh[filled - 1]).sum(1) / yy.clamp_min(1e-300), first)
            q *= gamma[:, None]
        else:
            q /= g.abs().sum(1).clamp_min(1.0)[:, None]  # first step: bounded length, as scipy's lbfgs
        for j in range(filled):
            beta = rho[j] * (Yh[j] * q).sum(1)
            q += (alpha[j] - beta)[:, None] * S[j]
        return -q

    def push(self, s_vec: torch.Tensor, y_vec: torch.Tensor, sy: torch.Tensor, step_ok: torch.Tensor) -> None:
        """Store the curvature pair of each problem that stepped, where it is positive (always, for a strictly convex
        objective, up to rounding); the others repeat their newest pair."""
        keep = step_ok & (sy > 1e-12 * (y_vec * y_vec).sum(1).clamp_min(1e-300))
        if self.filled == self.S.shape[0]:
            self.S, self.Yh, self.rho = self.S.roll(-1, 0), self.Yh.roll(-1, 0), self.rho.roll(-1, 0)
            self.filled -= 1
        S, Yh, rho, filled = self.S, self.Yh, self.rho, self.filled
        S[filled] = torch.where(keep[:, None], s_vec, S[filled - 1] if filled else torch.zeros_like(s_vec))
        Yh[filled] = torch.where(keep[:, None], y_vec, Yh[filled - 1] if filled else torch.zeros_like(y_vec))
        rho[filled] = torch.where(keep, 1.0 / sy.where(keep, torch.ones_like(sy)),
                                  rho[filled - 1] if filled else torch.zeros_like(sy))
        self.filled += 1


def _descent(direction: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The direction, steepest descent where it does not descend (numerical trouble), and its slope g . direction."""
    slope = (g * direction).sum(1)
    bad = slope >= 0
    if bool(bad.any()):
        direction[bad] = -g[bad]
        slope = (g * direction).sum(1)
    return direction, slope


def _armijo(problems: _Problems, theta, f, direction, slope, done) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Armijo backtracking, each problem with its own step: (step t, accepted, loss at the accepted step)."""
    t = torch.ones(theta.shape[0], device=theta.device, dtype=theta.dtype)
    accepted = done.clone()
    f_new = f.clone()
    for _ in range(40):
        trial = theta + t[:, None] * direction
        f_try, _ = problems.evaluate(trial, need_grad=False)
        ok = (~accepted) & (f_try <= f + _ARMIJO_C1 * t * slope)
        f_new = torch.where(ok, f_try, f_new)
        accepted |= ok
        if bool(accepted.all()):
            break
        t = torch.where(accepted, t, t * 0.5)
    return t, accepted, f_new


def _lbfgs(problems: _Problems, max_iter: int, tol: float, history: int, dev, dtype):
    """Batched L-BFGS from zero: (theta (B, P), gradient (B, P), iterations (B,))."""
    B, P = problems.B, problems.P
    theta = torch.zeros(B, P, device=dev, dtype=dtype)
    f, g = problems.evaluate(theta)
    S = torch.zeros(history, B, P, device=dev, dtype=dtype)
    memory = _Memory(S, torch.zeros_like(S), torch.zeros(history, B, device=dev, dtype=dtype))
    done = g.abs().amax(1) <= tol
    n_iter = torch.zeros(B, dtype=torch.int64, device=dev)
    for _ in range(max_iter):
        if bool(done.all()):
            break
        direction, slope = _descent(memory.direction(g), g)
        t, accepted, f_new = _armijo(problems, theta, f, direction, slope, done)
        step_ok = accepted & ~done
        t = torch.where(step_ok, t, torch.zeros_like(t))
        new_theta = theta + t[:, None] * direction
        _, g_new = problems.evaluate(new_theta)
        s_vec, y_vec = new_theta - theta, g_new - g
        sy = (s_vec * y_vec).sum(1)
        theta, f = new_theta, torch.where(step_ok, f_new, f)
        g = torch.where(step_ok[:, None], g_new, g)
        n_iter += step_ok.to(torch.int64)
        memory.push(s_vec, y_vec, sy, step_ok)
        # a problem whose line search failed has converged as far as its precision allows
        done = done | (g.abs().amax(1) <= tol) | ~accepted
    return theta, g, n_iter


def fit_multinomial(x: Any, y: Any, C: float | Sequence[float], *, masks: Any = None,
                    classes: Sequence[int] | np.ndarray | None = None, max_iter: int = 500, tol: float = 1e-4,
                    history: int = 10, device: str | torch.device | None = "auto",
                    dtype: torch.dtype | None = None) -> MultinomialFit:
    """Fit B multinomial logistic regressions at once (module docstring for the objective).

    Args:
        x: (N, d) features (numpy or tensor). y: (N,) integer labels.
        C: inverse L2 strength, a number or a sequence of B numbers (> 0).
        masks: None (every problem uses all rows) or (B, N) booleans, the rows of each problem (e.g. CV folds);
            B is the longer of C and masks, the other is broadcast when it has length 1.
        classes: the label values (default: ``np.unique(y)``); every label must be among them.
        max_iter: L-BFGS iterations per problem. tol: stop a problem when max abs(gradient) <= tol.
        history: L-BFGS memory. device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda[:k]"``.
        dtype: float64 on the CPU, float32 on CUDA by default.
    Returns: :class:`MultinomialFit` on the CPU.

    Example:
        >>> from rharm.harm import probe
        >>> x, y = [[0.0], [1.0], [3.0], [4.0]], [0, 0, 1, 1]
        >>> fit = probe.fit_multinomial(x, y, C=1.0, device="cpu")
        >>> fit.coef.shape, fit.converged.tolist(), round(float(fit.coef[0, 1, 0]), 2)
        ((1, 2, 1), [True], 0.67)

        Two problems in one call, one per (C, rows) pair, e.g. the folds of a grid search:

        >>> folds = [[True, True, False, True], [True, False, True, True]]
        >>> cv = probe.fit_multinomial(x, y, C=[0.01, 100.0], masks=folds, device="cpu")
        >>> cv.coef.shape, (cv.coef[:, 1, 0] > 0.5).tolist()
        ((2, 2, 1), [False, True])
    """
    dev = resolve_device(device)
    if dtype is None:
        dtype = torch.float64 if dev.type == "cpu" else torch.float32
    x_t, idx, cls, Cs, M_np = _check_inputs(x, y, C, masks, classes, max_iter, tol)
    problems = _problems(x_t, idx, cls.size, Cs, M_np, dev, dtype)
    theta, g, n_iter = _lbfgs(problems, max_iter, tol, history, dev, dtype)
    W, b = problems.unpack(theta)
    return MultinomialFit(coef=W.double().cpu().numpy(), intercept=b.double().cpu().numpy(), classes=cls,
                          n_iter=n_iter.cpu().numpy(), converged=(g.abs().amax(1) <= tol).cpu().numpy())


def accuracy(fit: MultinomialFit, x: Any, y: Any, b: int = 0) -> float:
    """Share of rows of x (N, d) whose predicted label (problem b) equals y (N,).

    Example:
        >>> from rharm.harm import probe
        >>> fit = probe.fit_multinomial([[0.0], [1.0], [3.0], [4.0]], [0, 0, 1, 1], C=1.0, device="cpu")
        >>> probe.accuracy(fit, [[0.0], [1.0], [3.0], [4.0]], [0, 0, 0, 1])
        0.75
    """
    return float((fit.predict(x, b) == np.asarray(y)).mean())


# --------------------------------------------------------------------------------------------------------------
# The probe every chapter uses: one fit (fit_logistic), one prediction (predict_logistic), one cross-validated
# choice of C (fit_probe with a ProbeConfig)
# --------------------------------------------------------------------------------------------------------------

SOLVERS = ("auto", "torch", "sklearn")

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
        solver: ``"sklearn"`` (``LogisticRegression``, lbfgs) or ``"torch"`` (:func:`fit_multinomial`,
            the same objective, on ``device``).
        init: a previous model to warm-start from (sklearn only): the path over C starts each fit from the last.
        quiet: silence sklearn's ConvergenceWarning (a capped path over C warns by design).

    Returns:
        ``(coef (K', d), intercept (K',), classes (K,))``, K' = K, or 1 for two classes with sklearn;
        :func:`predict_logistic` applies it.

    Example:
        A probe on six 2-d features of three classes:

        >>> x = np.array([[0, 0], [0, 1], [3, 3], [3, 4], [-3, 3], [-3, 4]], dtype=float)
        >>> coef, intercept, classes = fit_logistic(x, [0, 0, 1, 1, 2, 2], C=1.0)
        >>> coef.shape, intercept.shape, classes.tolist()
        ((3, 2), (3,), [0, 1, 2])
    """
    check_choice("solver", solver, LOGISTIC_SOLVERS)
    if not C > 0:
        raise ValueError(f"C={C!r} is not valid; it must be > 0")
    limits = {k: v for k, v in (("max_iter", max_iter), ("tol", tol)) if v is not None}
    if solver == "torch":
        if init is not None:
            raise ValueError("init is not supported with solver='torch' (it needs no warm start)")
        return fit_multinomial(x, y, C, device=device, **limits).model(0)
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
    single-row sklearn model, the sign of its one decision function), as ``LogisticRegression.predict``.

    Example:
        >>> x = np.array([[0, 0], [0, 1], [3, 3], [3, 4], [-3, 3], [-3, 4]], dtype=float)
        >>> model = fit_logistic(x, [0, 0, 1, 1, 2, 2], C=1.0)
        >>> predict_logistic(model, [[2.5, 3.0], [-2.0, 3.5], [0.0, 0.2]]).tolist()
        [1, 2, 0]
    """
    coef, intercept, classes = model
    x = np.asarray(x)
    return classes[np.argmax(x @ coef.T + intercept, axis=1)] if coef.shape[0] > 1 else \
        classes[(x @ coef[0] + intercept[0] > 0).astype(int)]


@dataclass(frozen=True)
class ProbeConfig:
    """Linear probe: multinomial logistic regression (lbfgs, L2) with k-fold CV over C, then a refit.

    ``warm_start``: fit the C grid from the strongest regularisation to the weakest, each fit starting from the
    previous solution. The objective is strictly convex, so this changes only the iterations needed (up to the
    solver tolerance ``tol``), not the optimum. Off by default: on 7,500 x 128 CIFAR features it did not save time
    (measured 103 s with vs 85 s without for one 3-fold x 3-C search, torch solver, shared 2-core machine). Folds
    are ``StratifiedKFold(folds)`` without shuffling and ties in CV accuracy go to the first C of ``c_grid``, as
    sklearn's GridSearchCV does.

    ``solver``: ``"sklearn"`` (the paper's lbfgs ``LogisticRegression``), ``"torch"``: the same objective minimised
    by :func:`rharm.harm.probe.fit_multinomial` on ``device`` - a batched L-BFGS that fits every fold x C of the search
    in one call (tests check it reaches sklearn's solution) - or ``"auto"`` (default): torch when the probe device
    is CUDA, sklearn otherwise (not faster on our CPUs). ``tol`` is sklearn's ``tol``, the same max-abs gradient
    criterion in torch. ``device``: "auto" (CUDA when available), "cpu", "cuda[:k]".
    """

    c_grid: tuple[float, ...] = (1.0, 0.1, 0.01)
    folds: int = 3
    max_iter: int = 200
    tol: float = 1e-4
    warm_start: bool = False
    solver: str = "auto"
    device: str = "auto"

    def __post_init__(self) -> None:
        if not self.c_grid or any(c <= 0 for c in self.c_grid):
            raise ValueError(f"c_grid={self.c_grid} must be a non-empty list of positive values")
        if self.folds < 1:
            raise ValueError(f"folds={self.folds} must be >= 1 (1 = no CV, use c_grid[0])")
        if self.max_iter < 1:
            raise ValueError(f"max_iter={self.max_iter} must be >= 1")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver={self.solver!r} is not valid; choose one of {SOLVERS}")

        runtime.resolve_device(self.device)  # raises ValueError naming the device

    @property
    def resolved_device(self) -> str:
        """The device type the torch solver runs on: ``"cpu"`` or ``"cuda"``.

        Example:
            >>> ProbeConfig(device="cpu").resolved_device
            'cpu'
        """
        return runtime.resolve_device(self.device).type

    @property
    def resolved_solver(self) -> str:
        """The solver ``"auto"`` stands for here: torch on CUDA, sklearn otherwise.

        Example:
            >>> ProbeConfig(device="cpu").resolved_solver, ProbeConfig(solver="torch", device="cpu").resolved_solver
            ('sklearn', 'torch')
        """
        if self.solver != "auto":
            return self.solver
        return "torch" if self.resolved_device == "cuda" else "sklearn"


def _lr_torch(x: np.ndarray, y: np.ndarray, cs: Sequence[float], cfg: ProbeConfig, classes: np.ndarray,
              masks: np.ndarray | None = None) -> list[tuple]:
    """Every (C, mask) problem at once with :func:`rharm.harm.probe.fit_multinomial` on ``cfg.device``: the objective
    sklearn minimises, (1/n) sum_n CE(W x_n + b, y_n) + ||W||^2 / (2 C n), intercept unpenalised."""
    fit = fit_multinomial(x, y, list(cs), masks=masks, classes=classes, max_iter=cfg.max_iter, tol=cfg.tol,
                                    device=cfg.device)
    return [fit.model(b) for b in range(len(fit.coef))]


def _lr_path(x: np.ndarray, y: np.ndarray, cs: Sequence[float], cfg: ProbeConfig) -> list[Any]:
    """One probe (:func:`fit_logistic`) per C; with ``cfg.warm_start`` each fit starts from the one
    before, strongest regularisation (smallest C) first."""
    if cfg.resolved_solver == "torch":
        return _lr_torch(x, y, cs, cfg, np.unique(y))  # the whole path in one batched fit (no warm start needed)
    models: list[Any] = [None] * len(cs)
    previous = None
    for k in sorted(range(len(cs)), key=lambda k: cs[k]):
        previous = fit_logistic(x, y, cs[k], max_iter=cfg.max_iter, tol=cfg.tol,
                                      init=previous if cfg.warm_start else None, quiet=True)
        models[k] = previous
    return models


def fit_probe(x: np.ndarray, y: np.ndarray, cfg: ProbeConfig = ProbeConfig()) -> tuple[tuple, float]:
    """Choose C by ``cfg.folds``-fold CV accuracy over ``cfg.c_grid``, refit on all of (x, y).

    x (N, d) (already normalised), y (N,) -> (model, chosen C); ``model`` is (coef (K, d), intercept (K,), classes),
    used by :func:`predict`.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> y = np.repeat([0, 1, 2], 20)
        >>> x = _unit(np.eye(3)[y] + 0.4 * rng.normal(size=(60, 3)))
        >>> model, c = fit_probe(x, y, ProbeConfig(c_grid=(1.0, 0.01), folds=3, device="cpu"))
        >>> c
        1.0
        >>> model[0].shape  # coef (K, d)
        (3, 3)
    """
    from sklearn.model_selection import StratifiedKFold

    cs = list(cfg.c_grid)
    if len(cs) == 1 or cfg.folds == 1:
        best = cs[0]
    else:
        scores = np.zeros(len(cs))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # tiny minority: fewer members than folds
            splits = list(StratifiedKFold(cfg.folds).split(x, y))
        if cfg.resolved_solver == "torch":
            # every fold x C in one batched fit: row masks select each fold's training rows
            masks = np.zeros((len(splits) * len(cs), len(y)), dtype=bool)
            for f, (tr, _) in enumerate(splits):
                masks[f * len(cs):(f + 1) * len(cs), tr] = True
            fits = _lr_torch(x, y, cs * len(splits), cfg, np.unique(y), masks)
            for f, (_, va) in enumerate(splits):
                for k in range(len(cs)):
                    scores[k] += (predict_logistic(fits[f * len(cs) + k], x[va]) == y[va]).mean() / len(splits)
        else:
            for tr, va in splits:
                for k, m in enumerate(_lr_path(x[tr], y[tr], cs, cfg)):
                    scores[k] += (predict_logistic(m, x[va]) == y[va]).mean() / len(splits)
        best = cs[int(np.argmax(scores))]  # first maximum = GridSearchCV's tie rule
    model = _lr_path(x, y, [best], cfg)[0]
    return model, best


def _unit(x: np.ndarray) -> np.ndarray:  # rows scaled to unit length (the examples' features)
    return x / np.linalg.norm(x, axis=1, keepdims=True)
