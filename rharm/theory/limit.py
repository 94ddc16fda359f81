"""The pi_1 -> 0 limit of the principled population objective on the paper's three-block SBM (our derivation)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import optimize

from rharm.theory._validate import check_tau
from rharm.theory.population import WITHIN_BLOCK, minority_proportions, population_cosines, sbm_connectivity


def limit_derivative(t, alpha: float, tau: float = 1.0, within: float = WITHIN_BLOCK):
    """Derivative F'(t) of the minority block's limit problem as pi_1 -> 0 (principled objective).

    With ``pi = (pi_1, (1-pi_1)/2, (1-pi_1)/2)`` and the three-block connectivity, expanding the principled
    objective to first order in pi_1 gives ``h_3* = -h_2*`` at order 0 and, with ``t = <h_1, h_2>``,
    ``L = L_0 + pi_1 F(t) + O(pi_1^2)``::

        F(t)  = -(1 + alpha/within) t / tau + log cosh(t/tau) + cosh(t/tau) / cosh(1/tau)
        F'(t) = [ -(1 + alpha/within) + tanh(t/tau) + sinh(t/tau) / cosh(1/tau) ] / tau

    (the coefficient 1 is block 1's own positive term, ``alpha/within`` block 2's positive term seen from block
    2; ``log cosh`` is block 1's own uniformity, the last term is block 1 as a negative of blocks 2 and 3).
    Valid for ``alpha > 0``. Vectorised over ``t``.

    Example:
        >>> limit_derivative([-1.0, 0.0, 1.0], alpha=0.4).round(4)
        array([-2.9442, -1.4211,  0.1021])
    """
    t = np.asarray(t, dtype=np.float64)
    c = 1.0 + alpha / within
    return (-c + np.tanh(t / tau) + np.sinh(t / tau) / np.cosh(1.0 / tau)) / tau


def limit_cosine(alpha: float, tau: float = 1.0, within: float = WITHIN_BLOCK) -> float:
    """lim_{pi_1 -> 0} cos(h_1*, h_2*) for the principled objective (root of :func:`limit_derivative`).

    F' is increasing in t and negative at t = -1, so the minimiser over [-1, 1] is the unique root when
    ``F'(1) > 0``, i.e. ``1 + alpha/within < 2 tanh(1/tau)``, and t = 1 (full collapse) otherwise.

    Example:
        >>> round(limit_cosine(0.4), 4), limit_cosine(0.4, tau=2.0)
        (0.9279, 1.0)
    """
    if not (isinstance(alpha, (int, float, np.floating)) and 0 < alpha <= 1):
        raise ValueError(f"alpha={alpha!r} is invalid; valid: a float in (0, 1] (the limit needs alpha > 0)")
    tau = check_tau(tau)
    if limit_derivative(1.0, alpha, tau, within) <= 0:
        return 1.0
    return float(optimize.brentq(lambda t: float(limit_derivative(t, alpha, tau, within)), -1.0, 1.0, xtol=1e-14))


def limit_symbolic_check():
    """Check :func:`limit_derivative` with sympy: differentiate the principled objective in pi_1 at pi_1 = 0 on the
    configuration ``h_3 = -h_2``, ``<h_1, h_2> = t`` (so ``<h_1, h_3> = -t``), with symbolic ``alpha``, ``within``
    and ``tau``, and subtract d/dt of the stated F(t).

    Returns ``(difference, F)``: the simplified sympy expression (0 when the derivation is right) and F(t).

    Example:
        >>> difference, F = limit_symbolic_check()
        >>> difference
        0
    """
    import sympy as sp

    p = sp.Symbol("pi_1", positive=True)
    t = sp.Symbol("t", real=True)
    a, al, tau = sp.symbols("a alpha tau", positive=True)
    pi = [p, (1 - p) / 2, (1 - p) / 2]
    conn = [[a, al, 0], [al, a, 0], [0, 0, a]]
    cos = [[1, t, -t], [t, 1, -1], [-t, -1, 1]]
    loss = 0
    for i in range(3):
        w = sum(conn[i][k] * pi[k] for k in range(3))
        loss += -sum(pi[i] * pi[j] * conn[i][j] / w * cos[i][j] for j in range(3)) / tau
        loss += pi[i] * sp.log(sum(pi[j] * sp.exp(cos[i][j] / tau) for j in range(3)))
    first_order = sp.diff(loss, p).subs(p, 0)
    f = -(1 + al / a) * t / tau + sp.log(sp.cosh(t / tau)) + sp.cosh(t / tau) / sp.cosh(1 / tau)
    difference = sp.simplify((sp.diff(first_order, t) - sp.diff(f, t)).rewrite(sp.exp))
    return difference, f


def limit_check(alphas: Sequence[float], *, tau: float = 1.0, pi1: float = 1e-6, dim: int = 20, seed: int = 0):
    """Compare :func:`limit_cosine` with the solved principled optimum at a tiny ``pi1`` for each alpha.

    Returns a DataFrame with columns ``alpha``, ``limit_cos12`` (theory), ``cos12``, ``cos13``, ``cos23`` (solver)
    and ``abs_diff`` = abs(limit_cos12 - cos12).

    Example:
        >>> limit_check([0.2, 0.4], dim=5)[["alpha", "limit_cos12", "cos12"]].round(3)
           alpha  limit_cos12  cos12
        0    0.2        0.780  0.780
        1    0.4        0.928  0.928
    """
    import pandas as pd

    rows = []
    for alpha in alphas:
        c = population_cosines(minority_proportions(pi1), sbm_connectivity(float(alpha)), dim=dim, tau=tau, seed=seed)
        lim = limit_cosine(float(alpha), tau)
        rows.append(dict(alpha=float(alpha), limit_cos12=lim, cos12=float(c[0, 1]), cos13=float(c[0, 2]),
                         cos23=float(c[1, 2]), abs_diff=abs(lim - float(c[0, 1]))))
    return pd.DataFrame(rows)
