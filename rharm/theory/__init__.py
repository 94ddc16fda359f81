"""Theory chapter: contrastive learning on a stochastic block model (SBM).

Introduced in the book chapter ``notebooks/theory.py``. The package is split by concern; every name is re-exported
here, so ``rharm.theory.population_cosines`` and ``rharm.theory.sbm_node_cosines`` are the public entry points:

* :mod:`rharm.theory.population`: the population problem of the paper's three-block SBM analysis (arXiv
  2310.01583): the ``"principled"`` and ``"official"`` objectives, their gradients and the verified solver.
* :mod:`rharm.theory.limit`: the ``pi_1 -> 0`` limit of the principled objective (our derivation) and its checks.
* :mod:`rharm.theory.node`: the node-level SBM simulation (the official code's ``simulation/SBM.py``,
  github.com/smaityumich/CL-representation-harm) and its comparison with the population optimum.
* :mod:`rharm.theory.published`: the official code's committed theory figure (``cosine_th.pdf``) against rharm's
  population solutions.

The chapter's charts are built from these results in :mod:`rharm.page.charts` (its theory section).

Everything is float64 NumPy; every random draw comes from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from rharm.theory._validate import (
    check_block_sizes,
    check_connectivity,
    check_count,
    check_dim,
    check_graph,
    check_pi,
    check_tau,
)
from rharm.theory.limit import limit_check, limit_cosine, limit_derivative, limit_symbolic_check
from rharm.theory.node import (
    block_cosine_stats,
    cached_sbm_node_cosines,
    expected_graph,
    node_gradient,
    node_loss,
    node_population_comparison,
    sample_sbm,
    sbm_node_cosines,
    train_node_embeddings,
)
from rharm.theory.population import (
    OBJECTIVES,
    SOLVERS,
    WITHIN_BLOCK,
    PopulationSolution,
    RestartSummary,
    minority_proportions,
    population_cosines,
    population_gradient,
    population_objective,
    population_restarts,
    population_sweep,
    riemannian_gradient,
    sbm_connectivity,
    solve_population,
)
from rharm.theory.published import SOURCES as PUBLISHED_SOURCES
from rharm.theory.published import published_comparison

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
    "published_comparison",
    "PUBLISHED_SOURCES",
    "check_block_sizes",
    "check_connectivity",
    "check_count",
    "check_dim",
    "check_graph",
    "check_pi",
    "check_tau",
]
