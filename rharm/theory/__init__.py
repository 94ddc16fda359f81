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

The chapter's charts are built from these results in :mod:`rharm.charts` (its theory section).

Everything is float64 NumPy; every random draw comes from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from ._validate import (
    _check_block_sizes,
    _check_connectivity,
    _check_count,
    _check_dim,
    _check_graph,
    _check_pi,
    _check_tau,
)
from .limit import limit_check, limit_cosine, limit_derivative, limit_symbolic_check
from .node import (
    _node_gradient_fn,
    _node_terms,
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
from .population import (
    OBJECTIVES,
    SOLVERS,
    WITHIN_BLOCK,
    PopulationSolution,
    RestartSummary,
    _init_sphere,
    _newton_polish,
    _normalise_rows,
    _prepare,
    _value_and_coeff,
    _weights,
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
from .published import SOURCES as PUBLISHED_SOURCES
from .published import published_comparison

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
]

#: private helpers kept importable from ``rharm.theory`` as before the split (tests and notebooks may reach them)
_PRIVATE = (
    _check_block_sizes, _check_connectivity, _check_count, _check_dim, _check_graph, _check_pi, _check_tau,
    _node_gradient_fn, _node_terms, _init_sphere, _newton_polish, _normalise_rows, _prepare,
    _value_and_coeff, _weights,
)
