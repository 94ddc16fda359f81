"""Population level of the paper's three-block SBM analysis (arXiv 2310.01583).

Each block k has one representation ``h_k`` on the unit sphere and block proportion ``pi_k``; with connectivity ``A``
and ``w_i = sum_k A_ik pi_k``, two objectives are provided:

``"principled"`` (the limit of the node loss under block-wise collapse, columns weighted by ``pi_j``)::

    L(h) = -(1/tau) sum_i pi_i sum_j (pi_j A_ij / w_i) <h_i, h_j> + sum_i pi_i log sum_j pi_j exp(<h_i, h_j>/tau)

``"official"`` (exactly what the official ``simulation/node2vec.py`` computes; its (K, 1) ``Pi`` array makes
``A * Pi`` and ``exp_cos * Pi`` scale rows by ``pi_i``)::

    L(h) = -(1/tau) sum_i (pi_i^2 / w_i) sum_j A_ij <h_i, h_j> + sum_i pi_i log( pi_i sum_j exp(<h_i, h_j>/tau) )

Both are instances of the generic form used internally::

    L(h) = -(1/tau) sum_ij P_ij <h_i, h_j> + sum_i r_i log sum_j Q_ij exp(<h_i, h_j>/tau)

Everything is float64 NumPy; every random draw comes from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy import optimize

from rharm.core.common import check_choice as _check_choice
from rharm.theory._validate import check_connectivity, check_count, check_dim, check_pi, check_tau

OBJECTIVES = ("principled", "official")
SOLVERS = ("lbfgs", "official_gd")

#: Within-block connection probability of the paper's SBM (arXiv 2310.01583; official simulation/SBM.py).
WITHIN_BLOCK = 0.95


# --------------------------------------------------------------------------------------------------------------
# the paper's SBM
# --------------------------------------------------------------------------------------------------------------


def sbm_connectivity(alpha: float, within: float = WITHIN_BLOCK) -> np.ndarray:
    """Connectivity of the paper's three-block SBM (arXiv 2310.01583).

    ``A = [[within, alpha, 0], [alpha, within, 0], [0, 0, within]]``: block 1 (the minority) is connected to
    block 2 with probability ``alpha`` and to block 3 not at all. Returns a (3, 3) float64 array.

    Example:
        >>> sbm_connectivity(0.4)
        array([[0.95, 0.4 , 0.  ],
               [0.4 , 0.95, 0.  ],
               [0.  , 0.  , 0.95]])
    """
    if not (isinstance(alpha, (int, float, np.floating)) and 0 <= alpha <= 1):
        raise ValueError(f"alpha={alpha!r} is invalid; valid: a float in [0, 1]")
    if not (isinstance(within, (int, float, np.floating)) and 0 < within <= 1):
        raise ValueError(f"within={within!r} is invalid; valid: a float in (0, 1]")
    return np.array([[within, alpha, 0.0], [alpha, within, 0.0], [0.0, 0.0, within]], dtype=np.float64)


def minority_proportions(pi1: float, k: int = 3) -> np.ndarray:
    """Block proportions ``(pi1, (1 - pi1)/(K-1), ..., (1 - pi1)/(K-1))`` of the paper's SBM. Shape (K,).

    Example:
        >>> minority_proportions(0.2)
        array([0.2, 0.4, 0.4])
        >>> minority_proportions(0.1, k=4).round(3)
        array([0.1, 0.3, 0.3, 0.3])
    """
    if not (isinstance(pi1, (int, float, np.floating)) and 0 < pi1 < 1):
        raise ValueError(f"pi1={pi1!r} is invalid; valid: a float in (0, 1)")
    k = check_count("k", k, 2)
    out = np.full(k, (1.0 - pi1) / (k - 1))
    out[0] = pi1
    return out


# --------------------------------------------------------------------------------------------------------------
# population objective
# --------------------------------------------------------------------------------------------------------------


def _weights(pi: np.ndarray, a: np.ndarray, objective: str):
    """Coefficients (P, r, Q, const) of the generic objective for ``objective``; shapes (K,K), (K,), (K,K), ()."""
    w = a @ pi
    if np.any(w <= 0):
        bad = np.flatnonzero(w <= 0).tolist()
        raise ValueError(
            f"connectivity leaves block(s) {bad} with no neighbours (w_i = sum_k A_ik pi_k = 0); "
            "valid: every row of connectivity has a positive entry"
        )
    k = pi.size
    if objective == "principled":
        p = pi[:, None] * pi[None, :] * a / w[:, None]
        q = np.broadcast_to(pi[None, :], (k, k))
        const = 0.0
    else:  # official: rows scaled by pi_i; log(pi_i * sum_j ...) = log pi_i + log sum_j ...
        p = (pi**2 / w)[:, None] * a
        q = np.ones((k, k))
        const = float(np.sum(pi * np.log(pi)))
    return p, pi, q, const


def _prepare(pi, connectivity, tau, objective):
    pi = check_pi(pi)
    a = check_connectivity(connectivity, pi.size)
    tau = check_tau(tau)
    _check_choice("objective", objective, OBJECTIVES)
    return pi, a, tau


def _value_and_coeff(h: np.ndarray, p, r, q, const, tau):
    """Objective value and G = dL/dC (K, K), where C = H H^T is treated as a free matrix."""
    c = h @ h.T
    s = c / tau
    m = s.max(axis=1, keepdims=True)
    e = q * np.exp(s - m)
    z = e.sum(axis=1, keepdims=True)
    value = -np.sum(p * c) / tau + float(np.sum(r * (np.log(z[:, 0]) + m[:, 0]))) + const
    g = -p / tau + (r[:, None] * e / z) / tau
    return value, g


def population_objective(H, pi, A, tau: float = 1.0, objective: str = "principled") -> float:
    """Population contrastive objective L(h) at block representations ``H`` (the paper's SBM analysis).

    Args:
        H: (K, d) block representations; each row is normalised to unit length first (the objective lives on
            the product of spheres, as in the official code which normalises inside the loss).
        pi: (K,) block proportions, a probability vector.
        A: (K, K) symmetric connectivity in [0, 1].
        tau: temperature > 0.
        objective: ``"principled"`` or ``"official"`` (see the module docstring for both equations).

    Returns:
        The scalar objective value (float).

    Example:
        Three orthogonal blocks against the minority merged into block 2 (rows need not be unit length):

        >>> pi, A = minority_proportions(0.1), sbm_connectivity(0.4)
        >>> round(float(population_objective(np.eye(3), pi, A)), 4)
        -0.3647
        >>> round(float(population_objective([[1, 1, 0], [0, 1, 0], [0, 0, 1]], pi, A)), 4)
        -0.3795
    """
    pi, a, tau = _prepare(pi, A, tau, objective)
    h = normalise_rows(np.asarray(H, dtype=np.float64), "H", pi.size)
    p, r, q, const = _weights(pi, a, objective)
    return _value_and_coeff(h, p, r, q, const, tau)[0]


def population_gradient(H, pi, A, tau: float = 1.0, objective: str = "principled") -> np.ndarray:
    """Euclidean gradient of :func:`population_objective` in the rows of ``H`` taken as free vectors.

    With ``C = H H^T`` and ``G_ij = dL/dC_ij = -P_ij/tau + r_i Q_ij exp(C_ij/tau) / (tau Z_i)``, the gradient is
    ``(G + G^T) H``. Rows of ``H`` are normalised first. Returns a (K, d) array; project it onto the tangent
    space with :func:`riemannian_gradient` for the gradient on the sphere product.

    Example:
        >>> H, pi, A = np.eye(3), minority_proportions(0.1), sbm_connectivity(0.4)
        >>> population_gradient(H, pi, A).round(3)
        array([[-0.023, -0.04 ,  0.064],
               [-0.04 , -0.202,  0.228],
               [ 0.064,  0.228, -0.279]])
        >>> riemannian_gradient(H, population_gradient(H, pi, A)).round(3)  # on the spheres
        array([[ 0.   , -0.04 ,  0.064],
               [-0.04 ,  0.   ,  0.228],
               [ 0.064,  0.228,  0.   ]])
    """
    pi, a, tau = _prepare(pi, A, tau, objective)
    h = normalise_rows(np.asarray(H, dtype=np.float64), "H", pi.size)
    p, r, q, const = _weights(pi, a, objective)
    g = _value_and_coeff(h, p, r, q, const, tau)[1]
    return (g + g.T) @ h


def riemannian_gradient(H, euclidean_grad) -> np.ndarray:
    """Project each row of a Euclidean gradient onto the tangent space of the unit sphere at that row of H.

    ``grad_i = g_i - <g_i, h_i> h_i`` for unit ``h_i``. Shapes (n, d) -> (n, d).

    Example:
        The radial part of the gradient is dropped:

        >>> riemannian_gradient([[2.0, 0.0]], [[3.0, 4.0]])
        array([[0., 4.]])
    """
    h = np.asarray(H, dtype=np.float64)
    h = h / np.linalg.norm(h, axis=1, keepdims=True)
    g = np.asarray(euclidean_grad, dtype=np.float64)
    return g - np.sum(g * h, axis=1, keepdims=True) * h


def normalise_rows(h: np.ndarray, name: str, k: int | None = None) -> np.ndarray:
    if h.ndim != 2 or (k is not None and h.shape[0] != k):
        raise ValueError(f"{name} has shape {h.shape}; valid: ({k if k is not None else 'n'}, d)")
    norms = np.linalg.norm(h, axis=1, keepdims=True)
    if np.any(norms == 0) or not np.all(np.isfinite(h)):
        raise ValueError(f"{name} has a zero or non-finite row; valid: finite rows of positive norm")
    return h / norms


# --------------------------------------------------------------------------------------------------------------
# population solver
# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PopulationSolution:
    """Result of :func:`solve_population`.

    Attributes:
        H: (K, d) unit block representations at the end.
        cosines: (K, K) Gram matrix ``H H^T``.
        objective_value: final L(h).
        grad_norm: Frobenius norm of the Riemannian gradient.
        block_grad_norm: ``max_k ||grad_k|| / pi_k``, the Riemannian gradient per unit of block mass; for the
            principled objective this is the gradient of the per-node loss, so small blocks are not let off lightly.
        iterations: gradient evaluations (lbfgs) or steps (official_gd).
        converged: ``block_grad_norm <= tol`` (always reported, never assumed).
        solver, objective, tol: the settings used.
    """

    H: np.ndarray
    cosines: np.ndarray
    objective_value: float
    grad_norm: float
    block_grad_norm: float
    iterations: int
    converged: bool
    solver: str
    objective: str
    tol: float


def init_sphere(k: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal((k, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def solve_population(
    pi,
    connectivity,
    *,
    dim: int = 20,
    tau: float = 1.0,
    objective: str = "principled",
    seed: int = 0,
    solver: str = "lbfgs",
    tol: float = 1e-8,
    max_rounds: int = 50,
    official_iters: int = 1000,
    official_lr: float = 0.2,
    H0=None,
) -> PopulationSolution:
    """Minimise the population objective over the product of K unit spheres in R^dim.

    Solvers:
        ``"lbfgs"`` (default): L-BFGS on unconstrained rows ``u_k`` with ``h_k = u_k/||u_k||``. Each round starts
        with ``||u_k|| = sqrt(pi_k / max pi)``: the gradient in ``u_k`` is the Riemannian gradient divided by
        ``||u_k||``, so this rescales each block's step by its mass (a diagonal preconditioner: the gradient on
        ``h_k`` scales with ``pi_k``). When L-BFGS's line search stalls (objective values equal to rounding) the
        round ends with Riemannian Newton steps (:func:`_newton_polish`). Rounds repeat until
        ``block_grad_norm <= tol`` or ``max_rounds``.
        ``"official_gd"``: the official ``node2vec.py`` solver, reproduced to show what the published figure
        reached: projected gradient descent, ``lr_k = official_lr * (k + 1)^(-0.1)``, ``official_iters`` steps,
        rows renormalised after each step. It is not expected to converge for small ``pi_1``; ``converged``
        says whether it did.

    Args:
        pi: (K,) block proportions; connectivity: (K, K) symmetric in [0, 1]; dim: d >= 1; tau > 0;
        objective: ``"principled"`` or ``"official"``; seed: seeds the random start (standard normal rows,
        normalised) unless ``H0`` (K, dim) is given; tol: tolerance on ``block_grad_norm``.

    Returns:
        :class:`PopulationSolution`.

    Example:
        The paper's three blocks with a minority of 10 % connected to block 2 (alpha = 0.4):

        >>> sol = solve_population(minority_proportions(0.1), sbm_connectivity(0.4), dim=5, seed=0)
        >>> sol.converged, sol.H.shape
        (True, (3, 5))
        >>> np.round(sol.cosines, 3)
        array([[ 1.   ,  0.747, -0.838],
               [ 0.747,  1.   , -0.989],
               [-0.838, -0.989,  1.   ]])
    """
    pi, a, tau = _prepare(pi, connectivity, tau, objective)
    dim = check_dim(dim)
    _check_choice("solver", solver, SOLVERS)
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"tol={tol!r} is invalid; valid: a float > 0")
    max_rounds = check_count("max_rounds", max_rounds, 1)
    official_iters = check_count("official_iters", official_iters, 1)
    coeffs = (*_weights(pi, a, objective), tau)  # p, r, q, const, tau
    h = _start(pi.size, dim, seed, H0)
    rgrad, block_norm = _gradient_fns(coeffs, pi)
    if solver == "official_gd":
        h = _official_gd(h, rgrad, official_iters, official_lr)
        iterations = official_iters
    else:
        h, iterations = _lbfgs_rounds(h, coeffs, pi, rgrad, block_norm, tol, max_rounds)
    gr = rgrad(h)
    value = _value_and_coeff(h, *coeffs)[0]
    bn = block_norm(gr)
    return PopulationSolution(
        H=h,
        cosines=np.clip(h @ h.T, -1.0, 1.0),
        objective_value=float(value),
        grad_norm=float(np.linalg.norm(gr)),
        block_grad_norm=bn,
        iterations=iterations,
        converged=bool(bn <= tol),
        solver=solver,
        objective=objective,
        tol=float(tol),
    )


def _start(k: int, dim: int, seed: int, H0) -> np.ndarray:
    """The solver's start: ``H0`` with unit rows, else K random unit rows in R^dim (``default_rng(seed)``)."""
    if H0 is None:
        return init_sphere(k, dim, np.random.default_rng(seed))
    h = normalise_rows(np.asarray(H0, dtype=np.float64), "H0", k)
    if h.shape[1] != dim:
        raise ValueError(f"H0 has shape {h.shape}; valid: ({k}, {dim}) to match dim={dim}")
    return h


def _gradient_fns(coeffs: tuple, pi: np.ndarray):
    """(rgrad, block_norm): the Riemannian gradient at unit rows H for the coefficients ``(P, r, Q, const, tau)``,
    and its largest row norm per unit of block mass, ``max_k ||grad_k|| / pi_k``."""

    def rgrad(hh):
        g = _value_and_coeff(hh, *coeffs)[1]
        return riemannian_gradient(hh, (g + g.T) @ hh)

    def block_norm(gr):
        return float(np.max(np.linalg.norm(gr, axis=1) / pi))

    return rgrad, block_norm


def _official_gd(h: np.ndarray, rgrad, iters: int, lr0: float) -> np.ndarray:
    """The official solver: ``iters`` projected gradient steps, ``lr_k = lr0 (k + 1)^(-0.1)``."""
    for step in range(iters):
        lr = lr0 * (step + 1) ** (-0.1)
        h = h - lr * rgrad(h)
        h = h / np.linalg.norm(h, axis=1, keepdims=True)
    return h


def _lbfgs_rounds(h: np.ndarray, coeffs: tuple, pi: np.ndarray, rgrad, block_norm, tol: float,
                  max_rounds: int) -> tuple[np.ndarray, int]:
    """Rounds of preconditioned L-BFGS, each finished by Newton steps, until ``block_norm <= tol``: (H, gradient
    evaluations)."""
    k, dim = h.shape
    scale = np.sqrt(pi / pi.max())[:, None]

    def fun(x):
        u = x.reshape(k, dim)
        n = np.linalg.norm(u, axis=1, keepdims=True)
        hh = u / n
        val, g = _value_and_coeff(hh, *coeffs)
        eg = (g + g.T) @ hh
        grad = riemannian_gradient(hh, eg) / n
        return val, grad.ravel()

    iterations = 0
    for _ in range(max_rounds):
        if block_norm(rgrad(h)) <= tol:
            break
        res = optimize.minimize(
            fun,
            (h * scale).ravel(),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 2000, "maxcor": 30, "ftol": 1e-300, "gtol": 1e-300},
        )
        iterations += int(res.nfev)
        u = res.x.reshape(k, dim)
        h = u / np.linalg.norm(u, axis=1, keepdims=True)
        if block_norm(rgrad(h)) <= tol:
            break
        # L-BFGS's line search stalls at the precision of the objective value before the gradient of a
        # small block is tiny; Newton steps use gradients only and finish the job quadratically.
        h, evals = _newton_polish(h, rgrad, block_norm, tol)
        iterations += evals
    return h, iterations


def _newton_polish(h: np.ndarray, rgrad, block_norm, tol: float, max_steps: int = 8, eps: float = 1e-6):
    """Riemannian Newton steps with a finite-difference Jacobian of the Riemannian gradient.

    The Jacobian of ``u -> rgrad(normalise(u))`` is singular along the radial and rotation directions; the
    minimum-norm least-squares step ignores them. A step is kept only if it lowers ``block_norm``.
    """
    shape = h.shape
    evals = 0
    best = block_norm(rgrad(h))
    for _ in range(max_steps):
        if best <= tol:
            break
        f0 = rgrad(h).ravel()
        x0 = h.ravel()
        jac = np.empty((x0.size, x0.size))
        for m in range(x0.size):
            e = np.zeros_like(x0)
            e[m] = eps
            hp = (x0 + e).reshape(shape)
            hm = (x0 - e).reshape(shape)
            hp = hp / np.linalg.norm(hp, axis=1, keepdims=True)
            hm = hm / np.linalg.norm(hm, axis=1, keepdims=True)
            jac[:, m] = (rgrad(hp).ravel() - rgrad(hm).ravel()) / (2 * eps)
        evals += 2 * x0.size + 1
        step = np.linalg.lstsq(jac, -f0, rcond=1e-10)[0].reshape(shape)
        cand = h + step
        cand = cand / np.linalg.norm(cand, axis=1, keepdims=True)
        val = block_norm(rgrad(cand))
        if not val < best:
            break
        h, best = cand, val
    return h, evals


def population_cosines(
    pi,
    connectivity,
    *,
    dim: int = 20,
    tau: float = 1.0,
    objective: str = "principled",
    seed: int = 0,
    solver: str = "lbfgs",
) -> np.ndarray:
    """Cosines ``<h_i*, h_j*>`` between the optimal block representations (the paper's SBM analysis).

    Solves the population problem with :func:`solve_population` and returns the (K, K) Gram matrix. With the
    default solver a :class:`RuntimeError` is raised if the Riemannian gradient test fails, so a returned
    matrix is always a verified stationary point; with ``solver="official_gd"`` whatever the official solver
    reached is returned.

    Example:
        >>> population_cosines(minority_proportions(0.1), sbm_connectivity(0.4), dim=5).round(3)
        array([[ 1.   ,  0.747, -0.838],
               [ 0.747,  1.   , -0.989],
               [-0.838, -0.989,  1.   ]])
    """
    sol = solve_population(pi, connectivity, dim=dim, tau=tau, objective=objective, seed=seed, solver=solver)
    if solver == "lbfgs" and not sol.converged:
        raise RuntimeError(
            f"population solver did not converge: block gradient norm {sol.block_grad_norm:.3g} > tol {sol.tol:.3g}"
        )
    return sol.cosines


@dataclasses.dataclass(frozen=True)
class RestartSummary:
    """Result of :func:`population_restarts`.

    Attributes:
        best: the restart with the lowest objective value (:class:`PopulationSolution`).
        cosines: (R, K, K) cosines of every restart.
        objective_values: (R,) final objective values.
        block_grad_norms: (R,) final ``block_grad_norm`` values.
        spread: max over block pairs of (max - min over restarts) of the cosines; 0 means full agreement.
        all_converged: every restart passed the gradient test.
    """

    best: PopulationSolution
    cosines: np.ndarray
    objective_values: np.ndarray
    block_grad_norms: np.ndarray
    spread: float
    all_converged: bool


def population_restarts(
    pi,
    connectivity,
    *,
    restarts: int = 5,
    dim: int = 20,
    tau: float = 1.0,
    objective: str = "principled",
    seed: int = 0,
    solver: str = "lbfgs",
    tol: float = 1e-8,
) -> RestartSummary:
    """Solve from ``restarts`` random starts (seeds ``seed, seed+1, ...``) and report their agreement.

    Example:
        >>> s = population_restarts(minority_proportions(0.1), sbm_connectivity(0.4), restarts=3, dim=5)
        >>> s.all_converged, s.spread < 1e-6, s.cosines.shape
        (True, True, (3, 3, 3))
        >>> round(float(s.best.cosines[0, 1]), 3)
        0.747
    """
    restarts = check_count("restarts", restarts, 1)
    sols = [
        solve_population(
            pi, connectivity, dim=dim, tau=tau, objective=objective, seed=seed + i, solver=solver, tol=tol
        )
        for i in range(restarts)
    ]
    cos = np.stack([s.cosines for s in sols])
    values = np.array([s.objective_value for s in sols])
    return RestartSummary(
        best=sols[int(np.argmin(values))],
        cosines=cos,
        objective_values=values,
        block_grad_norms=np.array([s.block_grad_norm for s in sols]),
        spread=float(np.max(cos.max(axis=0) - cos.min(axis=0))),
        all_converged=all(s.converged for s in sols),
    )


def population_sweep(
    pi1_values: Sequence[float],
    alphas: Sequence[float],
    *,
    objectives: Sequence[str] = OBJECTIVES,
    solvers: Sequence[str] = ("lbfgs",),
    dim: int = 20,
    tau: float = 1.0,
    restarts: int = 3,
    seed: int = 0,
    tol: float = 1e-8,
):
    """Solve the paper's three-block problem on a grid of ``pi1`` and ``alpha``.

    Returns a pandas DataFrame, one row per (objective, solver, alpha, pi1), with columns ``cos12``, ``cos13``,
    ``cos23`` (from the lowest-objective restart), ``objective_value``, ``block_grad_norm`` (worst restart),
    ``spread`` (restart agreement), ``converged`` (all restarts), ``restarts``.

    Example:
        >>> sweep = population_sweep([0.05, 0.2], [0.4], objectives=("principled",), dim=5, restarts=2)
        >>> sweep[["alpha", "pi1", "cos12", "cos13", "converged"]].round(3)
           alpha   pi1  cos12  cos13  converged
        0    0.4  0.05  0.829 -0.863       True
        1    0.4  0.20  0.631 -0.842       True
    """
    import pandas as pd

    rows = []
    for objective in objectives:
        _check_choice("objectives", objective, OBJECTIVES)
        for solver in solvers:
            _check_choice("solvers", solver, SOLVERS)
            for alpha in alphas:
                a = sbm_connectivity(float(alpha))
                for pi1 in pi1_values:
                    s = population_restarts(
                        minority_proportions(float(pi1)),
                        a,
                        restarts=restarts,
                        dim=dim,
                        tau=tau,
                        objective=objective,
                        seed=seed,
                        solver=solver,
                        tol=tol,
                    )
                    c = s.best.cosines
                    rows.append(
                        dict(
                            objective=objective,
                            solver=solver,
                            alpha=float(alpha),
                            pi1=float(pi1),
                            cos12=float(c[0, 1]),
                            cos13=float(c[0, 2]),
                            cos23=float(c[1, 2]),
                            objective_value=s.best.objective_value,
                            block_grad_norm=float(s.block_grad_norms.max()),
                            spread=s.spread,
                            converged=s.all_converged,
                            restarts=restarts,
                        )
                    )
    return pd.DataFrame(rows)
