"""Argument checks shared by the theory modules: each raises a ValueError naming the parameter, the bad value and
the valid ones, before any computation."""

from __future__ import annotations

import math

import numpy as np


def check_pi(pi) -> np.ndarray:
    """``pi`` as a float64 probability vector of K >= 2 positive entries (renormalised to sum exactly to 1).

    Example:
        >>> check_pi([0.2, 0.8])
        array([0.2, 0.8])
    """
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


def check_connectivity(connectivity, k: int | None = None, name: str = "connectivity") -> np.ndarray:
    """``connectivity`` as a symmetric (K, K) float64 matrix in [0, 1] (K = ``k`` when given).

    Example:
        >>> check_connectivity([[0.9, 0.1], [0.1, 0.9]], k=2)
        array([[0.9, 0.1],
               [0.1, 0.9]])
    """
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


def check_dim(dim, name: str = "dim") -> int:
    """``dim`` as an int >= 1.

    Example:
        >>> check_dim(3)
        3
    """
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"{name}={dim!r} is invalid; valid: an integer >= 1")
    return int(dim)


def check_tau(tau) -> float:
    """``tau`` as a finite float > 0.

    Example:
        >>> check_tau(1)
        1.0
    """
    if isinstance(tau, bool) or not isinstance(tau, (int, float, np.floating, np.integer)) or not (
        math.isfinite(tau) and tau > 0
    ):
        raise ValueError(f"tau={tau!r} is invalid; valid: a finite float > 0")
    return float(tau)


def check_count(name: str, value, lo: int) -> int:
    """``value`` as an int >= ``lo``; the error names it ``name``.

    Example:
        >>> check_count("restarts", 3, 1)
        3
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name}={value!r} is invalid; valid: an integer >= {lo}")
    return int(value)


def check_block_sizes(block_sizes) -> np.ndarray:
    """``block_sizes`` as an int64 array of K >= 2 positive sizes.

    Example:
        >>> check_block_sizes([10, 10, 2])
        array([10, 10,  2])
    """
    try:
        n = np.asarray(block_sizes)
    except Exception as exc:  # pragma: no cover - defensive
        raise ValueError(f"block_sizes={block_sizes!r} is invalid; valid: a list of K >= 2 positive integers") from exc
    if n.ndim != 1 or n.size < 2 or not np.issubdtype(n.dtype, np.integer) or np.any(n < 1):
        raise ValueError(f"block_sizes={block_sizes!r} is invalid; valid: a list of K >= 2 positive integers")
    return n.astype(np.int64)


def check_graph(G, n: int) -> np.ndarray:
    """``G`` as an (n, n) float64 matrix of finite, non-negative edge weights.

    Example:
        >>> check_graph([[0, 1], [1, 0]], 2)
        array([[0., 1.],
               [1., 0.]])
    """
    g = np.asarray(G, dtype=np.float64)
    if g.shape != (n, n):
        raise ValueError(f"G has shape {g.shape}; valid: ({n}, {n}) to match V")
    if not np.all(np.isfinite(g)) or g.min() < 0:
        raise ValueError("G has negative or non-finite entries; valid: non-negative edge weights")
    return g
