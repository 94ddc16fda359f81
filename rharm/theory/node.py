"""Node level of the SBM simulation (the official code's ``simulation/SBM.py``,
github.com/smaityumich/CL-representation-harm).

An SBM graph is the augmentation (positive-pair) graph; every node has a free unit vector ``v_i`` and the population
InfoNCE loss of the paper's SBM analysis is minimised by projected gradient descent::

    L(V) = -(1/(N tau)) sum_i <v_i, (1/deg_i) sum_j G_ij v_j>
           + (1/N) sum_i log( (1/N) sum_j exp(<v_i, v_j> / tau) )

Everything is float64 NumPy except the training iteration (float32, as the official code); every random draw comes
from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import warnings

import numpy as np

from rharm.theory._validate import (
    check_block_sizes,
    check_connectivity,
    check_count,
    check_dim,
    check_graph,
    check_tau,
)
from rharm.theory.population import (
    OBJECTIVES,
    init_sphere,
    minority_proportions,
    normalise_rows,
    population_restarts,
    riemannian_gradient,
    sbm_connectivity,
)


def expected_graph(block_sizes, connectivity) -> np.ndarray:
    """The expected SBM adjacency ``G_ij = A_{b_i b_j}`` (self-pairs included), shape (N, N).

    Example:
        >>> expected_graph([2, 1], [[0.9, 0.1], [0.1, 0.8]])
        array([[0.9, 0.9, 0.1],
               [0.9, 0.9, 0.1],
               [0.1, 0.1, 0.8]])
    """
    n = check_block_sizes(block_sizes)
    a = check_connectivity(connectivity, n.size)
    labels = np.repeat(np.arange(n.size), n)
    return a[labels][:, labels]


def sample_sbm(block_sizes, connectivity, *, seed: int = 1) -> np.ndarray:
    """Sample an undirected SBM graph without self-loops.

    Each pair i < j is an edge independently with probability ``connectivity[b_i, b_j]``; nodes are ordered by
    block. Uses ``numpy.random.default_rng(seed)`` (the official code used graspologic with ``np.random.seed(1)``:
    same distribution, different draw). Returns the (N, N) symmetric 0/1 float64 adjacency with a zero diagonal.

    Example:
        >>> sample_sbm([3, 2], [[0.9, 0.1], [0.1, 0.9]], seed=0)
        array([[0., 1., 1., 1., 0.],
               [1., 0., 1., 0., 0.],
               [1., 1., 0., 1., 0.],
               [1., 0., 1., 0., 1.],
               [0., 0., 0., 1., 0.]])
    """
    n = check_block_sizes(block_sizes)
    a = check_connectivity(connectivity, n.size)
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

    Example:
        Two blocks of two nodes: one direction per block gives a lower loss than each block split over two:

        >>> G = sample_sbm([2, 2], [[1.0, 0.0], [0.0, 1.0]])
        >>> round(float(node_loss([[1, 0], [1, 0], [0, 1], [0, 1]], G)), 4)
        -0.3799
        >>> round(float(node_loss([[1, 0], [0, 1], [1, 0], [0, 1]], G)), 4)
        0.6201
    """
    tau = check_tau(tau)
    v = normalise_rows(np.asarray(V, dtype=np.float64), "V")
    g = check_graph(G, v.shape[0])
    return _node_terms(v, g, tau)[0]


def node_gradient(V, G, tau: float = 1.0) -> np.ndarray:
    """Riemannian gradient of :func:`node_loss` on the product of unit spheres. Shape (N, d).

    Example:
        >>> G = sample_sbm([2, 2], [[1.0, 0.0], [0.0, 1.0]])
        >>> node_gradient([[1, 0], [0.6, 0.8], [0, 1], [0, 1]], G).round(3)
        array([[ 0.   , -0.17 ],
               [-0.364,  0.273],
               [ 0.143,  0.   ],
               [ 0.143,  0.   ]])
    """
    tau = check_tau(tau)
    v = normalise_rows(np.asarray(V, dtype=np.float64), "V")
    g = check_graph(G, v.shape[0])
    coeff = _node_terms(v, g, tau)[1]
    return riemannian_gradient(v, (coeff + coeff.T) @ v)


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

    Example:
        >>> G = sample_sbm([5, 5], [[0.9, 0.1], [0.1, 0.9]], seed=0)
        >>> V = train_node_embeddings(G, dim=3, iters=100, seed=0)
        >>> V.shape, np.linalg.norm(V, axis=1).round(6).tolist()[:3]
        ((10, 3), [1.0, 1.0, 1.0])
    """
    tau = check_tau(tau)
    dim = check_dim(dim)
    iters = check_count("iters", iters, 0)
    g = np.asarray(G, dtype=np.float64)
    g = check_graph(g, g.shape[0] if g.ndim == 2 else -1)
    from threadpoolctl import threadpool_limits

    # float32 like the official code (twice as fast); the start is drawn in float64 so it does not depend on it
    v = init_sphere(g.shape[0], dim, np.random.default_rng(seed)).astype(np.float32)
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

    Example:
        >>> V = [[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]
        >>> mean, std = block_cosine_stats(V, [2, 1])
        >>> mean.round(2)
        array([[0.8, 0.3],
               [0.3, nan]])
        >>> std.round(2)
        array([[0. , 0.3],
               [0.3, nan]])
    """
    n = check_block_sizes(block_sizes)
    v = normalise_rows(np.asarray(V, dtype=np.float64), "V", int(n.sum()))
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

    Example:
        >>> mean, std = sbm_node_cosines([6, 6, 3], sbm_connectivity(0.4), dim=3, iters=200, seed=0)
        >>> mean.round(2)
        array([[ 0.94,  0.22, -0.76],
               [ 0.22,  0.93, -0.76],
               [-0.76, -0.76,  1.  ]])
    """
    n = check_block_sizes(block_sizes)
    a = check_connectivity(connectivity, n.size)
    dim = check_dim(dim)
    tau = check_tau(tau)
    iters = check_count("iters", iters, 0)
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
    the code of this module and every rharm module it imports (:func:`rharm.store.code_closure`: the population
    module and the argument checks included), so the book re-renders without re-training. Returns ``(mean, std)``,
    (K, K) each."""
    from rharm import store

    n = check_block_sizes(block_sizes)
    a = check_connectivity(connectivity, n.size)
    config = {
        "block_sizes": [int(x) for x in n],
        "connectivity": a.tolist(),
        "dim": check_dim(dim),
        "tau": check_tau(tau),
        "iters": check_count("iters", iters, 0),
        "seed": int(seed),
    }

    def compute(tmp):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mean, std = sbm_node_cosines(n, a, dim=dim, tau=tau, iters=iters, seed=seed)
        store.save_tensors(tmp / "cosines.pt", {"mean": mean, "std": std})
        return {"warnings": [str(w.message) for w in caught]}

    folder = store.cached("theory_sbm_node", config, compute, code=store.code_closure(__name__))
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

    Example:
        >>> node = {4: np.array([[1.0, 0.8, -0.5], [0.8, 1.0, -0.6], [-0.5, -0.6, 1.0]])}
        >>> out = node_population_comparison(node, alpha=0.4, majority_size=20, dim=5, restarts=1)
        >>> out[out.pair == "cos12"].round(3)
           n1    pi1   pair      source  cosine
        0   4  0.091  cos12        node   0.800
        3   4  0.091  cos12  principled   0.761
        6   4  0.091  cos12    official   0.780
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


def canary() -> list[float]:
    """The canary of the stored kind ``theory_sbm_node`` (:mod:`rharm.store.recipes`): 6 numbers of
    :func:`sbm_node_cosines` on a 3-block graph of 24 nodes, 200 iterations (NumPy, deterministic; under a second)."""
    mean, std = sbm_node_cosines([10, 10, 4], [[0.6, 0.1, 0.1], [0.1, 0.6, 0.3], [0.1, 0.3, 0.6]], dim=4, tau=1.0,
                                 iters=200, seed=0)
    return [float(mean[0, 1]), float(mean[1, 2]), float(mean[2, 2]), float(mean.mean()), float(std.mean()),
            float(std[2, 1])]
