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

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from rharm.core.runtime import resolve_device


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
        with."""
        return self.coef[b], self.intercept[b], self.classes

    def predict(self, x: Any, b: int = 0) -> np.ndarray:
        """Class labels of problem b for x (N, d)."""
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
    """
    dev = resolve_device(device)
    if dtype is None:
        dtype = torch.float64 if dev.type == "cpu" else torch.float32
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
    N, d = x_t.shape
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

    K = cls.size
    X = x_t.to(device=dev, dtype=dtype)
    Yoh = torch.nn.functional.one_hot(torch.from_numpy(idx).to(dev), K).to(dtype)
    M = torch.as_tensor(np.array(M_np), device=dev).to(dtype)
    n = M.sum(1)
    Ct = torch.as_tensor(np.array(Cs), device=dev, dtype=dtype)
    P = K * (d + 1)

    def unpack(theta):
        return theta[:, :K * d].view(B, K, d), theta[:, K * d:]

    def evaluate(theta, need_grad=True):
        W, b = unpack(theta)
        loss, gW, gb = _objective(X, Yoh, M, n, Ct, W, b, need_grad)
        return loss, (torch.cat([gW.reshape(B, -1), gb], 1) if need_grad else None)

    theta = torch.zeros(B, P, device=dev, dtype=dtype)
    f, g = evaluate(theta)
    S = torch.zeros(history, B, P, device=dev, dtype=dtype)
    Yh = torch.zeros_like(S)
    rho = torch.zeros(history, B, device=dev, dtype=dtype)
    filled = 0
    done = g.abs().amax(1) <= tol
    n_iter = torch.zeros(B, dtype=torch.int64, device=dev)
    c1 = 1e-4
    for it in range(max_iter):
        if bool(done.all()):
            break
        # two-loop recursion, per problem (memory slots 0..filled-1, newest last)
        q = g.clone()
        alpha = torch.zeros(filled, B, device=dev, dtype=dtype)
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
        direction = -q
        slope = (g * direction).sum(1)
        bad = slope >= 0  # not a descent direction (numerical trouble): fall back to steepest descent
        if bool(bad.any()):
            direction[bad] = -g[bad]
            slope = (g * direction).sum(1)
        # Armijo backtracking, each problem with its own step
        t = torch.ones(B, device=dev, dtype=dtype)
        accepted = done.clone()
        f_new = f.clone()
        for _ in range(40):
            trial = theta + t[:, None] * direction
            f_try, _ = evaluate(trial, need_grad=False)
            ok = (~accepted) & (f_try <= f + c1 * t * slope)
            f_new = torch.where(ok, f_try, f_new)
            accepted |= ok
            if bool(accepted.all()):
                break
            t = torch.where(accepted, t, t * 0.5)
        step_ok = accepted & ~done
        t = torch.where(step_ok, t, torch.zeros_like(t))
        new_theta = theta + t[:, None] * direction
        _, g_new = evaluate(new_theta)
        s_vec, y_vec = new_theta - theta, g_new - g
        sy = (s_vec * y_vec).sum(1)
        theta, f = new_theta, torch.where(step_ok, f_new, f)
        g = torch.where(step_ok[:, None], g_new, g)
        n_iter += step_ok.to(torch.int64)
        # store the curvature pair where it is positive (always, for a strictly convex objective, up to rounding)
        keep = step_ok & (sy > 1e-12 * (y_vec * y_vec).sum(1).clamp_min(1e-300))
        if filled == history:
            S, Yh, rho = S.roll(-1, 0), Yh.roll(-1, 0), rho.roll(-1, 0)
            filled -= 1
        S[filled] = torch.where(keep[:, None], s_vec, S[filled - 1] if filled else torch.zeros_like(s_vec))
        Yh[filled] = torch.where(keep[:, None], y_vec, Yh[filled - 1] if filled else torch.zeros_like(y_vec))
        rho[filled] = torch.where(keep, 1.0 / sy.where(keep, torch.ones_like(sy)),
                                  rho[filled - 1] if filled else torch.zeros_like(sy))
        filled += 1
        # a problem whose line search failed has converged as far as its precision allows
        done = done | (g.abs().amax(1) <= tol) | ~accepted
    W, b = unpack(theta)
    return MultinomialFit(coef=W.double().cpu().numpy(), intercept=b.double().cpu().numpy(), classes=cls,
                          n_iter=n_iter.cpu().numpy(), converged=(g.abs().amax(1) <= tol).cpu().numpy())


def accuracy(fit: MultinomialFit, x: Any, y: Any, b: int = 0) -> float:
    """Share of rows of x (N, d) whose predicted label (problem b) equals y (N,)."""
    return float((fit.predict(x, b) == np.asarray(y)).mean())
