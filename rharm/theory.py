"""Theory chapter: contrastive learning on a stochastic block model (SBM).

Introduced in the book chapter ``notebooks/theory.py``. Two levels are implemented:

* **Node level** (the official code's simulation/SBM.py, github.com/smaityumich/CL-representation-harm): an SBM
  graph is the augmentation (positive-pair) graph; every node has a free unit vector ``v_i`` and the population
  InfoNCE loss of the paper's SBM analysis is minimised by projected gradient descent::

      L(V) = -(1/(N tau)) sum_i <v_i, (1/deg_i) sum_j G_ij v_j>
             + (1/N) sum_i log( (1/N) sum_j exp(<v_i, v_j> / tau) )

* **Population level** (the paper's three-block SBM analysis, arXiv 2310.01583): each block k has one
  representation ``h_k`` on the unit sphere and block proportion ``pi_k``; with connectivity ``A`` and ``w_i = sum_k A_ik pi_k``, two objectives are provided:

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
import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import optimize

from .common import check_choice as _check_choice

OBJECTIVES = ("principled", "official")
SOLVERS = ("lbfgs", "official_gd")

#: Within-block connection probability of the paper's SBM (arXiv 2310.01583; official simulation/SBM.py).
WITHIN_BLOCK = 0.95

__all__ = [
    "OBJECTIVES",
    "SOLVERS",
    "WITHIN_BLOCK",
    "PopulationSolution",
    "RestartSummary",
    "sbm_connectivity",
    "minority_proportions",
    "population_objective",
    "population_gradient",
    "riemannian_gradient",
    "solve_population",
    "population_cosines",
    "population_restarts",
    "population_sweep",
    "limit_cosine",
    "limit_derivative",
    "limit_symbolic_check",
    "limit_check",
    "expected_graph",
    "sample_sbm",
    "node_loss",
    "node_gradient",
    "train_node_embeddings",
    "block_cosine_stats",
    "sbm_node_cosines",
    "cached_sbm_node_cosines",
    "node_population_comparison",
    "connectivity_chart",
    "node_cosine_charts",
    "population_line_chart",
    "population_heatmap_charts",
]


# --------------------------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------------------------


def _check_pi(pi) -> np.ndarray:
    try:
        arr = np.asarray(pi, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"pi={pi!r} is not numeric; valid: a probability vector of K >= 2 positive numbers") from exc
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(f"pi={pi!r} has shape {arr.shape}; valid: a 1-d probability vector of K >= 2 entries")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0) or abs(arr.sum() - 1.0) > 1e-6:
        raise ValueError(
            f"pi={arr.tolist()!r} is not a probability vector; valid: entries in (0, 1] summing to 1 (tolerance 1e-6)"
        )
    return arr / arr.sum()


def _check_connectivity(connectivity, k: int | None = None, name: str = "connectivity") -> np.ndarray:
    try:
        a = np.asarray(connectivity, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}={connectivity!r} is not numeric; valid: a symmetric (K, K) matrix in [0, 1]") from exc
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 2:
        raise ValueError(f"{name} has shape {a.shape}; valid: a square (K, K) matrix with K >= 2")
    if k is not None and a.shape[0] != k:
        raise ValueError(f"{name} has shape {a.shape} but there are {k} blocks; valid: shape ({k}, {k})")
    if not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 1:
        raise ValueError(f"{name}={a.tolist()!r} has entries outside [0, 1]; valid: probabilities in [0, 1]")
    if not np.allclose(a, a.T, rtol=0, atol=1e-12):
        raise ValueError(f"{name}={a.tolist()!r} is not symmetric; valid: a symmetric matrix (undirected graph)")
    return a


def _check_dim(dim, name: str = "dim") -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"{name}={dim!r} is invalid; valid: an integer >= 1")
    return int(dim)


def _check_tau(tau) -> float:
    if isinstance(tau, bool) or not isinstance(tau, (int, float, np.floating, np.integer)) or not (
        math.isfinite(tau) and tau > 0
    ):
        raise ValueError(f"tau={tau!r} is invalid; valid: a finite float > 0")
    return float(tau)


def _check_count(name: str, value, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name}={value!r} is invalid; valid: an integer >= {lo}")
    return int(value)


# --------------------------------------------------------------------------------------------------------------
# the paper's SBM
# --------------------------------------------------------------------------------------------------------------


def sbm_connectivity(alpha: float, within: float = WITHIN_BLOCK) -> np.ndarray:
    """Connectivity of the paper's three-block SBM (arXiv 2310.01583).

    ``A = [[within, alpha, 0], [alpha, within, 0], [0, 0, within]]``: block 1 (the minority) is connected to
    block 2 with probability ``alpha`` and to block 3 not at all. Returns a (3, 3) float64 array.
    """
    if not (isinstance(alpha, (int, float, np.floating)) and 0 <= alpha <= 1):
        raise ValueError(f"alpha={alpha!r} is invalid; valid: a float in [0, 1]")
    if not (isinstance(within, (int, float, np.floating)) and 0 < within <= 1):
        raise ValueError(f"within={within!r} is invalid; valid: a float in (0, 1]")
    return np.array([[within, alpha, 0.0], [alpha, within, 0.0], [0.0, 0.0, within]], dtype=np.float64)


def minority_proportions(pi1: float, k: int = 3) -> np.ndarray:
    """Block proportions ``(pi1, (1 - pi1)/(K-1), ..., (1 - pi1)/(K-1))`` of the paper's SBM. Shape (K,)."""
    if not (isinstance(pi1, (int, float, np.floating)) and 0 < pi1 < 1):
        raise ValueError(f"pi1={pi1!r} is invalid; valid: a float in (0, 1)")
    k = _check_count("k", k, 2)
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
    pi = _check_pi(pi)
    a = _check_connectivity(connectivity, pi.size)
    tau = _check_tau(tau)
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
    """
    pi, a, tau = _prepare(pi, A, tau, objective)
    h = _normalise_rows(np.asarray(H, dtype=np.float64), "H", pi.size)
    p, r, q, const = _weights(pi, a, objective)
    return _value_and_coeff(h, p, r, q, const, tau)[0]


def population_gradient(H, pi, A, tau: float = 1.0, objective: str = "principled") -> np.ndarray:
    """Euclidean gradient of :func:`population_objective` in the rows of ``H`` taken as free vectors.

    With ``C = H H^T`` and ``G_ij = dL/dC_ij = -P_ij/tau + r_i Q_ij exp(C_ij/tau) / (tau Z_i)``, the gradient is
    ``(G + G^T) H``. Rows of ``H`` are normalised first. Returns a (K, d) array; project it onto the tangent
    space with :func:`riemannian_gradient` for the gradient on the sphere product.
    """
    pi, a, tau = _prepare(pi, A, tau, objective)
    h = _normalise_rows(np.asarray(H, dtype=np.float64), "H", pi.size)
    p, r, q, const = _weights(pi, a, objective)
    g = _value_and_coeff(h, p, r, q, const, tau)[1]
    return (g + g.T) @ h


def riemannian_gradient(H, euclidean_grad) -> np.ndarray:
    """Project each row of a Euclidean gradient onto the tangent space of the unit sphere at that row of H.

    ``grad_i = g_i - <g_i, h_i> h_i`` for unit ``h_i``. Shapes (n, d) -> (n, d).
    """
    h = np.asarray(H, dtype=np.float64)
    h = h / np.linalg.norm(h, axis=1, keepdims=True)
    g = np.asarray(euclidean_grad, dtype=np.float64)
    return g - np.sum(g * h, axis=1, keepdims=True) * h


def _normalise_rows(h: np.ndarray, name: str, k: int | None = None) -> np.ndarray:
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


def _init_sphere(k: int, dim: int, rng: np.random.Generator) -> np.ndarray:
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
    """
    pi, a, tau = _prepare(pi, connectivity, tau, objective)
    dim = _check_dim(dim)
    _check_choice("solver", solver, SOLVERS)
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"tol={tol!r} is invalid; valid: a float > 0")
    max_rounds = _check_count("max_rounds", max_rounds, 1)
    official_iters = _check_count("official_iters", official_iters, 1)
    k = pi.size
    p, r, q, const = _weights(pi, a, objective)
    if H0 is None:
        h = _init_sphere(k, dim, np.random.default_rng(seed))
    else:
        h = _normalise_rows(np.asarray(H0, dtype=np.float64), "H0", k)
        if h.shape[1] != dim:
            raise ValueError(f"H0 has shape {h.shape}; valid: ({k}, {dim}) to match dim={dim}")

    def rgrad(hh):
        g = _value_and_coeff(hh, p, r, q, const, tau)[1]
        return riemannian_gradient(hh, (g + g.T) @ hh)

    def block_norm(gr):
        return float(np.max(np.linalg.norm(gr, axis=1) / pi))

    iterations = 0
    if solver == "official_gd":
        for step in range(official_iters):
            lr = official_lr * (step + 1) ** (-0.1)
            h = h - lr * rgrad(h)
            h = h / np.linalg.norm(h, axis=1, keepdims=True)
        iterations = official_iters
    else:
        scale = np.sqrt(pi / pi.max())[:, None]

        def fun(x):
            u = x.reshape(k, dim)
            n = np.linalg.norm(u, axis=1, keepdims=True)
            hh = u / n
            val, g = _value_and_coeff(hh, p, r, q, const, tau)
            eg = (g + g.T) @ hh
            grad = riemannian_gradient(hh, eg) / n
            return val, grad.ravel()

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
    gr = rgrad(h)
    value = _value_and_coeff(h, p, r, q, const, tau)[0]
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
    """Solve from ``restarts`` random starts (seeds ``seed, seed+1, ...``) and report their agreement."""
    restarts = _check_count("restarts", restarts, 1)
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


# --------------------------------------------------------------------------------------------------------------
# the pi_1 -> 0 limit (principled objective, three-block SBM)
# --------------------------------------------------------------------------------------------------------------


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
    """
    t = np.asarray(t, dtype=np.float64)
    c = 1.0 + alpha / within
    return (-c + np.tanh(t / tau) + np.sinh(t / tau) / np.cosh(1.0 / tau)) / tau


def limit_cosine(alpha: float, tau: float = 1.0, within: float = WITHIN_BLOCK) -> float:
    """lim_{pi_1 -> 0} cos(h_1*, h_2*) for the principled objective (root of :func:`limit_derivative`).

    F' is increasing in t and negative at t = -1, so the minimiser over [-1, 1] is the unique root when
    ``F'(1) > 0``, i.e. ``1 + alpha/within < 2 tanh(1/tau)``, and t = 1 (full collapse) otherwise.
    """
    if not (isinstance(alpha, (int, float, np.floating)) and 0 < alpha <= 1):
        raise ValueError(f"alpha={alpha!r} is invalid; valid: a float in (0, 1] (the limit needs alpha > 0)")
    tau = _check_tau(tau)
    if limit_derivative(1.0, alpha, tau, within) <= 0:
        return 1.0
    return float(optimize.brentq(lambda t: float(limit_derivative(t, alpha, tau, within)), -1.0, 1.0, xtol=1e-14))


def limit_symbolic_check():
    """Check :func:`limit_derivative` with sympy: differentiate the principled objective in pi_1 at pi_1 = 0 on the
    configuration ``h_3 = -h_2``, ``<h_1, h_2> = t`` (so ``<h_1, h_3> = -t``), with symbolic ``alpha``, ``within``
    and ``tau``, and subtract d/dt of the stated F(t).

    Returns ``(difference, F)``: the simplified sympy expression (0 when the derivation is right) and F(t).
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
    and ``abs_diff`` = |limit_cos12 - cos12|.
    """
    import pandas as pd

    rows = []
    for alpha in alphas:
        c = population_cosines(minority_proportions(pi1), sbm_connectivity(float(alpha)), dim=dim, tau=tau, seed=seed)
        lim = limit_cosine(float(alpha), tau)
        rows.append(dict(alpha=float(alpha), limit_cos12=lim, cos12=float(c[0, 1]), cos13=float(c[0, 2]),
                         cos23=float(c[1, 2]), abs_diff=abs(lim - float(c[0, 1]))))
    return pd.DataFrame(rows)


def expected_graph(block_sizes, connectivity) -> np.ndarray:
    """The expected SBM adjacency ``G_ij = A_{b_i b_j}`` (self-pairs included), shape (N, N)."""
    n = _check_block_sizes(block_sizes)
    a = _check_connectivity(connectivity, n.size)
    labels = np.repeat(np.arange(n.size), n)
    return a[labels][:, labels]


# --------------------------------------------------------------------------------------------------------------
# node level
# --------------------------------------------------------------------------------------------------------------


def _check_block_sizes(block_sizes) -> np.ndarray:
    try:
        n = np.asarray(block_sizes)
    except Exception as exc:  # pragma: no cover - defensive
        raise ValueError(f"block_sizes={block_sizes!r} is invalid; valid: a list of K >= 2 positive integers") from exc
    if n.ndim != 1 or n.size < 2 or not np.issubdtype(n.dtype, np.integer) or np.any(n < 1):
        raise ValueError(f"block_sizes={block_sizes!r} is invalid; valid: a list of K >= 2 positive integers")
    return n.astype(np.int64)


def sample_sbm(block_sizes, connectivity, *, seed: int = 1) -> np.ndarray:
    """Sample an undirected SBM graph without self-loops.

    Each pair i < j is an edge independently with probability ``connectivity[b_i, b_j]``; nodes are ordered by
    block. Uses ``numpy.random.default_rng(seed)`` (the official code used graspologic with ``np.random.seed(1)``:
    same distribution, different draw). Returns the (N, N) symmetric 0/1 float64 adjacency with a zero diagonal.
    """
    n = _check_block_sizes(block_sizes)
    a = _check_connectivity(connectivity, n.size)
    labels = np.repeat(np.arange(n.size), n)
    prob = a[labels][:, labels]
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.random(prob.shape) < prob, k=1)
    return (upper | upper.T).astype(np.float64)


def _node_terms(v: np.ndarray, g: np.ndarray, tau: float):
    n = v.shape[0]
    deg = g.sum(axis=1)
    # isolated nodes have no positive partner: their positive term is 0 (they still act as, and see, negatives)
    inv = np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)
    w = g * inv[:, None]
    c = v @ v.T
    s = c / tau
    m = s.max(axis=1, keepdims=True)
    e = np.exp(s - m)
    z = e.sum(axis=1, keepdims=True)
    value = -np.sum(w * c) / (n * tau) + float(np.mean(np.log(z[:, 0] / n) + m[:, 0]))
    coeff = (-w + e / z) / (n * tau)
    return value, coeff


def node_loss(V, G, tau: float = 1.0) -> float:
    """Node-level contrastive loss (the official ``simulation/SBM.py`` loss).

    ``L(V) = -(1/(N tau)) sum_i <v_i, (1/deg_i) sum_j G_ij v_j> + (1/N) sum_i log((1/N) sum_j exp(<v_i,v_j>/tau))``

    Args:
        V: (N, d) node representations (rows normalised first).
        G: (N, N) non-negative weights; an SBM adjacency, or any weighted graph (e.g. the expected adjacency).
            Nodes with ``deg_i = 0`` (isolated) get no positive term; they stay in everyone's negatives.
        tau: temperature > 0.
    """
    tau = _check_tau(tau)
    v = _normalise_rows(np.asarray(V, dtype=np.float64), "V")
    g = _check_graph(G, v.shape[0])
    return _node_terms(v, g, tau)[0]


def node_gradient(V, G, tau: float = 1.0) -> np.ndarray:
    """Riemannian gradient of :func:`node_loss` on the product of unit spheres. Shape (N, d)."""
    tau = _check_tau(tau)
    v = _normalise_rows(np.asarray(V, dtype=np.float64), "V")
    g = _check_graph(G, v.shape[0])
    coeff = _node_terms(v, g, tau)[1]
    return riemannian_gradient(v, (coeff + coeff.T) @ v)


def _check_graph(G, n: int) -> np.ndarray:
    g = np.asarray(G, dtype=np.float64)
    if g.shape != (n, n):
        raise ValueError(f"G has shape {g.shape}; valid: ({n}, {n}) to match V")
    if not np.all(np.isfinite(g)) or g.min() < 0:
        raise ValueError("G has negative or non-finite entries; valid: non-negative edge weights")
    return g


def train_node_embeddings(
    G,
    *,
    dim: int = 10,
    tau: float = 1.0,
    iters: int = 5000,
    lr: float = 10.0,
    power: float = 0.2,
    seed: int = 1,
) -> np.ndarray:
    """Projected gradient descent on :func:`node_loss` as in the official ``simulation/SBM.py``.

    Start: rows i.i.d. standard normal (``default_rng(seed)``; the official code left torch unseeded), normalised.
    The iteration runs in float32, as the official code did.
    Step ``i``: ``v <- normalise(v - lr (i+1)^(-power) grad_i)`` where ``grad`` is the Riemannian gradient (what
    autograd returns through the official code's in-loss normalisation). Returns (N, dim) unit rows.
    """
    tau = _check_tau(tau)
    dim = _check_dim(dim)
    iters = _check_count("iters", iters, 0)
    g = np.asarray(G, dtype=np.float64)
    g = _check_graph(g, g.shape[0] if g.ndim == 2 else -1)
    from threadpoolctl import threadpool_limits

    # float32 like the official code (twice as fast); the start is drawn in float64 so it does not depend on it
    v = _init_sphere(g.shape[0], dim, np.random.default_rng(seed)).astype(np.float32)
    step = _node_gradient_fn(g.astype(np.float32), tau)
    # (N, N) products this small run fastest on one BLAS thread, and several threads thrash a shared machine
    with threadpool_limits(limits=1, user_api="blas"):
        for i in range(iters):
            v = v - np.float32(lr * (i + 1) ** (-power)) * step(v)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v.astype(np.float64)


def _node_gradient_fn(g: np.ndarray, tau: float):
    """A fast closure for the Riemannian gradient of the node loss at unit rows ``v`` (same value as
    :func:`node_gradient`). Uses that ``exp((C - 1)/tau)`` is symmetric with row maxima at most 1 for unit rows,
    so ``(S + S^T) v = (E v) / z + E (v / z)`` needs one (N, N) exponential and one matrix product."""
    n = g.shape[0]
    deg = g.sum(axis=1)
    inv = np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)
    w = g * inv[:, None]
    align = (w + w.T) / (n * tau)

    def grad(v: np.ndarray) -> np.ndarray:
        e = v @ v.T
        e -= 1.0
        e /= tau
        np.exp(e, out=e)
        z = e.sum(axis=1)[:, None]
        both = e @ np.hstack([v, v / z])
        d = v.shape[1]
        eg = (both[:, :d] / z + both[:, d:]) / (n * tau) - align @ v
        return eg - np.sum(eg * v, axis=1, keepdims=True) * v

    return grad


def block_cosine_stats(V, block_sizes) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of node cosines per block pair.

    Within a block the statistics run over distinct pairs (the diagonal, always 1, is left out; the official
    code included it); between blocks over all pairs. A block of one node has NaN within-block statistics.
    Returns two (K, K) arrays.
    """
    n = _check_block_sizes(block_sizes)
    v = _normalise_rows(np.asarray(V, dtype=np.float64), "V", int(n.sum()))
    c = v @ v.T
    edges = np.concatenate([[0], np.cumsum(n)])
    k = n.size
    mean = np.full((k, k), np.nan)
    std = np.full((k, k), np.nan)
    for i in range(k):
        for j in range(k):
            block = c[edges[i] : edges[i + 1], edges[j] : edges[j + 1]]
            vals = block[~np.eye(n[i], dtype=bool)] if i == j else block.ravel()
            if vals.size:
                mean[i, j] = vals.mean()
                std[i, j] = vals.std()
    return mean, std


def sbm_node_cosines(
    block_sizes,
    connectivity,
    *,
    dim: int = 10,
    tau: float = 1.0,
    iters: int = 5000,
    seed: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Node-level SBM simulation (as the official ``simulation/SBM.py``): sample the graph, train node vectors,
    summarise cosines by block.

    The graph is drawn with ``seed`` (:func:`sample_sbm`) and the start with ``seed`` too
    (:func:`train_node_embeddings`, lr_i = 10 (i+1)^(-0.2)). Isolated nodes keep no positive term (a warning
    says how many). Returns ``(mean, std)``, each (K, K): within-block over distinct pairs, between blocks
    over all pairs (:func:`block_cosine_stats`).
    """
    n = _check_block_sizes(block_sizes)
    a = _check_connectivity(connectivity, n.size)
    dim = _check_dim(dim)
    tau = _check_tau(tau)
    iters = _check_count("iters", iters, 0)
    g = sample_sbm(n, a, seed=seed)
    isolated = int(np.sum(g.sum(axis=1) == 0))
    if isolated:
        warnings.warn(f"{isolated} isolated node(s) in the SBM graph: they get no positive term", stacklevel=2)
    v = train_node_embeddings(g, dim=dim, tau=tau, iters=iters, seed=seed)
    return block_cosine_stats(v, n)


def cached_sbm_node_cosines(
    block_sizes,
    connectivity,
    *,
    dim: int = 10,
    tau: float = 1.0,
    iters: int = 5000,
    seed: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sbm_node_cosines` through the result store (kind ``theory_sbm_node``), keyed by every argument and
    this module's source, so the book re-renders without re-training. Returns ``(mean, std)``, (K, K) each."""
    import sys

    from rharm import store

    n = _check_block_sizes(block_sizes)
    a = _check_connectivity(connectivity, n.size)
    config = {
        "block_sizes": [int(x) for x in n],
        "connectivity": a.tolist(),
        "dim": _check_dim(dim),
        "tau": _check_tau(tau),
        "iters": _check_count("iters", iters, 0),
        "seed": int(seed),
    }

    def compute(tmp):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mean, std = sbm_node_cosines(n, a, dim=dim, tau=tau, iters=iters, seed=seed)
        store.save_tensors(tmp / "cosines.pt", {"mean": mean, "std": std})
        return {"warnings": [str(w.message) for w in caught]}

    folder = store.cached("theory_sbm_node", config, compute, code=[sys.modules[__name__]])
    out = store.load_tensors(folder / "cosines.pt")
    return out["mean"].numpy(), out["std"].numpy()


def node_population_comparison(node_means: dict, alpha: float, majority_size: int, **solve_kwargs):
    """Compare node-level mean cosines with the population optimum at the matching ``pi_1 = n1 / (n1 + 2 m)``.

    Args:
        node_means: ``{n1: (K, K) mean cosine matrix}`` from :func:`sbm_node_cosines` with sizes (n1, m, m).
        alpha: the node-level connectivity parameter; majority_size: m.
        solve_kwargs: passed to :func:`population_restarts` (dim, tau, restarts, seed, tol).

    Returns a DataFrame, one row per (n1, pair, source) with ``cosine``; sources ``node``, ``principled``,
    ``official``.
    """
    import pandas as pd

    a = sbm_connectivity(float(alpha))
    rows = []
    for n1, mean in node_means.items():
        pi1 = n1 / (n1 + 2 * majority_size)
        sources = {"node": np.asarray(mean)}
        for objective in OBJECTIVES:
            s = population_restarts(minority_proportions(pi1), a, objective=objective, **solve_kwargs)
            if not s.all_converged:
                raise RuntimeError(f"population solve did not converge for n1={n1}, objective={objective}")
            sources[objective] = s.best.cosines
        for src, c in sources.items():
            for (i, j), name in zip([(0, 1), (0, 2), (1, 2)], ["cos12", "cos13", "cos23"]):
                rows.append(dict(n1=int(n1), pi1=pi1, pair=name, source=src, cosine=float(c[i, j])))
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------------------
# charts (Altair, via rharm.charts)
# --------------------------------------------------------------------------------------------------------------

_BLOCKS = ["1", "2", "3"]


def _matrix_frame(mat, std=None, *, value="value"):
    import pandas as pd

    mat = np.asarray(mat)
    rows = []
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            row = {"row block": str(i + 1), "column block": str(j + 1), value: float(mat[i, j])}
            if std is not None:
                row["sd"] = float(std[i, j])
                row["label"] = f"{mat[i, j]:.2f} ± {std[i, j]:.2f}"
            rows.append(row)
    return pd.DataFrame(rows)


def connectivity_chart(connectivity, *, title: str = "connectivity α_ij"):
    """Heatmap of the (K, K) connectivity matrix (Altair chart)."""
    from rharm import charts

    a = _check_connectivity(connectivity)
    order = [str(i + 1) for i in range(a.shape[0])]
    return charts.heatmap(
        _matrix_frame(a, value="probability"),
        "column block",
        "row block",
        "probability",
        title=title,
        x_order=order,
        y_order=order,
        scheme="blues",
        fmt=".2f",
        domain=[0.0, 1.0],
    )


def node_cosine_charts(results: dict, majority_size: int):
    """One mean-cosine heatmap per n1, annotated ``mean ± sd`` (Altair), concatenated horizontally.

    ``results`` maps ``n1 -> (mean, std)`` from :func:`sbm_node_cosines`. Titles give the block sizes the code
    ran, n = (n1, m, m) (the published figure's titles gave non-matching powers of two).
    """
    import altair as alt

    from rharm import charts

    panels = []
    for n1, (mean, std) in results.items():
        df = _matrix_frame(mean, std, value="mean cosine")
        order = [str(i + 1) for i in range(np.asarray(mean).shape[0])]
        base = alt.Chart(df).encode(
            x=alt.X("column block:N", sort=order),
            y=alt.Y("row block:N", sort=order),
        )
        rect = base.mark_rect().encode(
            color=alt.Color(
                "mean cosine:Q",
                scale=alt.Scale(scheme="redblue", domain=[-1, 1], domainMid=0),
                legend=alt.Legend(orient="bottom", title="mean cosine: red < 0 = opposed, blue > 0 = aligned"),
            ),
            tooltip=["row block", "column block", alt.Tooltip("mean cosine:Q", format=".3f"), alt.Tooltip("sd:Q", format=".3f")],
        )
        text = base.mark_text(fontSize=10).encode(text="label:N")
        panels.append(
            (rect + text).properties(title=f"n = ({n1}, {majority_size}, {majority_size})", width=200, height=150)
        )
    return charts.panels(panels, shared_color=True)


def population_line_chart(sweep, *, pair: str = "cos12", solver: str = "lbfgs"):
    """cos(h_1*, h_2*) (``pair="cos12"``) or cos(h_2*, h_3*) (``"cos23"``) against pi_1 (log x), one line per
    alpha, one panel per objective. ``sweep`` is a :func:`population_sweep` DataFrame."""

    from rharm import charts

    names = {"cos12": "cos(h1*, h2*)", "cos13": "cos(h1*, h3*)", "cos23": "cos(h2*, h3*)"}
    _check_choice("pair", pair, list(names))
    df = sweep[sweep["solver"] == solver].copy()
    df["alpha"] = df["alpha"].map(lambda a: f"{a:g}")
    panels = [
        charts.line(
            df[df["objective"] == obj],
            "pi1",
            pair,
            "alpha",
            title=f"{names[pair]}, {obj} objective",
            log_x=True,
            tooltip=["alpha", "pi1", pair, "block_grad_norm", "spread"],
            width=charts.plot_width(2),
            x_title="minority share π1 (log scale)",
            y_title=names[pair],
            legend="α (link probability)",
        )
        for obj in df["objective"].unique()
    ]
    return charts.panels(panels)


def population_heatmap_charts(solutions: dict):
    """Population cosine heatmaps, one per key (e.g. ``"principled, π1=1/192"``) of (K, K) matrices."""

    from rharm import charts

    panels = []
    for name, mat in solutions.items():
        mat = np.asarray(mat)
        order = [str(i + 1) for i in range(mat.shape[0])]
        panels.append(
            charts.heatmap(
                _matrix_frame(mat, value="cosine"),
                "column block",
                "row block",
                "cosine",
                title=str(name),
                x_order=order,
                y_order=order,
                mid=0.0,
                domain=[-1.0, 1.0],
                fmt=".2f",
                width=150,
                legend="cosine: red < 0 = opposed, blue > 0 = aligned",
            )
        )
    return charts.panels(panels, shared_color=True)
