"""The theory chapter's numbers, one summary per section (glue prefix ``th``).

``notebooks/theory.py`` runs the SBM simulations of the official code at node level (:func:`node_simulations`,
:func:`node_level`), checks the population reduction (:func:`reduction`), solves the population problem for both
objectives (:func:`convergence`, :func:`heatmaps`), compares with the published heatmaps (:func:`published`), sets
node against population level (:func:`node_population`, :func:`small_minority`), checks the limit
:math:`\\pi_1 \\to 0` (:func:`limit`) and states the finding (:func:`finding`). Every function takes the chapter's
parameters ``P`` (:class:`rharm.core.params.Params`, or anything with the same attributes) and the results it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from rharm import theory

#: block sizes of the reduction check: unequal, so the two population objectives differ
REDUCTION_SIZES = (8, 20, 36)
#: a converged cos(h1*, h2*) above this counts as full collapse of the minority onto block 2
COLLAPSE_COSINE = 0.99


def _words(items) -> str:
    return ", ".join(f"{a:g}" for a in items)


# ---------------------------------------------------------------------------------------------------------------
# scale of the page
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    """The settings the page runs (stated in its "Scale of this page" paragraph)."""

    profile: str
    alpha: float
    within: float  # within-block connection probability a
    majority_size: int
    n1_list: str  # the minority block sizes, "256, 32, 4"
    node_iters: int
    node_dim: int
    pop_dim: int
    tau: float
    restarts: int
    tol: float
    seed: int
    heatmap_pi1: float


def scale(P) -> Scale:
    """The page's settings from its parameters."""
    return Scale(profile=str(P.profile), alpha=float(P.alpha), within=float(theory.WITHIN_BLOCK),
                 majority_size=int(P.majority_size), n1_list=", ".join(str(int(n)) for n in P.block_sizes_n1),
                 node_iters=int(P.node_iters), node_dim=int(P.node_dim), pop_dim=int(P.pop_dim), tau=float(P.tau),
                 restarts=int(P.restarts), tol=float(P.tol), seed=int(P.seed), heatmap_pi1=float(P.heatmap_pi1))


# ---------------------------------------------------------------------------------------------------------------
# node level
# ---------------------------------------------------------------------------------------------------------------


def node_simulations(P) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """The node-level simulation for every minority size: ``{n1: (mean (3, 3), std (3, 3))}`` block cosines of
    blocks of sizes (n1, m, m) (:func:`rharm.theory.cached_sbm_node_cosines`, cached in the store)."""
    a = theory.sbm_connectivity(P.alpha)
    m = P.majority_size
    return {n1: theory.cached_sbm_node_cosines([n1, m, m], a, dim=P.node_dim, tau=P.tau, iters=P.node_iters,
                                               seed=P.seed)
            for n1 in P.block_sizes_n1}


@dataclass(frozen=True)
class NodeLevel:
    """What the node simulation shows at the smallest minority."""

    isolated_total: int  # nodes without a neighbour over all the graphs (they get no positive term)
    n1_min: int
    node_cos12_min: float  # block 1 to block 2, smallest minority
    node_cos13_min: float
    node_within_min: float  # smallest within-block mean cosine over all runs and blocks


def node_level(node: Mapping[int, tuple[np.ndarray, np.ndarray]], P) -> NodeLevel:
    """Summarise :func:`node_simulations` ``node``; the graphs are redrawn (same seed) to count isolated nodes."""
    if not node:
        raise ValueError("node is empty: no node-level simulation ran (block_sizes_n1 needs at least one size)")
    a = theory.sbm_connectivity(P.alpha)
    m = P.majority_size
    isolated = sum(int((theory.sample_sbm([n1, m, m], a, seed=P.seed).sum(axis=1) == 0).sum()) for n1 in node)
    n1_min = min(node)
    mean_min = node[n1_min][0]
    return NodeLevel(isolated_total=isolated, n1_min=int(n1_min), node_cos12_min=float(mean_min[0, 1]),
                     node_cos13_min=float(mean_min[0, 2]),
                     node_within_min=float(min(np.nanmin(np.diag(mean)) for mean, _ in node.values())))


# ---------------------------------------------------------------------------------------------------------------
# the population reduction
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reduction:
    """The node loss of a block-constant configuration on the expected graph against both population objectives."""

    reduction_sizes: str
    reduction_gap: float  # |node loss - principled objective|: rounding only
    official_gap: float  # |node loss - official objective|


def reduction(P) -> Reduction:
    """Evaluate the three losses at one random block-constant ``h`` (seeded by ``P.seed``) with unequal blocks."""
    a = theory.sbm_connectivity(P.alpha)
    pi = np.array(REDUCTION_SIZES) / sum(REDUCTION_SIZES)
    h = np.random.default_rng(P.seed).standard_normal((len(REDUCTION_SIZES), P.pop_dim))
    labels = np.repeat(np.arange(len(REDUCTION_SIZES)), REDUCTION_SIZES)
    node_value = theory.node_loss(h[labels], theory.expected_graph(list(REDUCTION_SIZES), a), P.tau)
    gap = {obj: float(abs(node_value - theory.population_objective(h, pi, a, P.tau, obj)))
           for obj in theory.OBJECTIVES}
    return Reduction(reduction_sizes="(" + ", ".join(map(str, REDUCTION_SIZES)) + ")",
                     reduction_gap=gap["principled"], official_gap=gap["official"])


# ---------------------------------------------------------------------------------------------------------------
# convergence of the population solves
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Convergence:
    """Whether the converged solver and the official one met the tolerance over the whole sweep."""

    n_solves: int  # every alpha, pi1, objective and start
    all_converged: str  # "all" or "not all", as the prose reads it
    every_solve_converged: bool
    worst_grad: float
    worst_spread: float  # worst disagreement between random starts on any cosine
    gd_unconverged: int
    gd_total: int
    convergence: pd.DataFrame  # one row per objective (JSON only)
    gd_check: pd.DataFrame  # the official solver's runs, one row per objective (JSON only)


def convergence(sweep: pd.DataFrame, official_gd: pd.DataFrame, restarts: int) -> Convergence:
    """Summarise :func:`rharm.theory.population_sweep` runs of the converged solver (``sweep``, ``restarts``
    starts each) and of the official solver (``official_gd``)."""
    if len(sweep) == 0 or len(official_gd) == 0:
        raise ValueError(f"empty sweep: sweep has {len(sweep)} rows, official_gd {len(official_gd)}")
    table = (sweep.groupby("objective")
             .agg(solves=("converged", "size"), all_converged=("converged", "all"),
                  worst_block_grad_norm=("block_grad_norm", "max"), worst_restart_spread=("spread", "max"))
             .reset_index())
    gd = (official_gd.groupby("objective")
          .agg(solves=("converged", "size"), converged=("converged", "sum"),
               worst_block_grad_norm=("block_grad_norm", "max"))
          .reset_index())
    every = bool(sweep["converged"].all())
    return Convergence(n_solves=int(len(sweep)) * int(restarts), all_converged="all" if every else "not all",
                       every_solve_converged=every, worst_grad=float(sweep["block_grad_norm"].max()),
                       worst_spread=float(sweep["spread"].max()),
                       gd_unconverged=int((~official_gd["converged"].astype(bool)).sum()),
                       gd_total=int(len(official_gd)), convergence=table, gd_check=gd)


def heatmaps(P) -> dict[str, np.ndarray]:
    """The converged cosine matrix of each objective at ``P.heatmap_pi1`` (for the heatmap charts)."""
    a = theory.sbm_connectivity(P.alpha)
    pi = theory.minority_proportions(P.heatmap_pi1)
    out = {}
    for objective in theory.OBJECTIVES:
        s = theory.population_restarts(pi, a, restarts=P.restarts, dim=P.pop_dim, tau=P.tau, objective=objective,
                                       seed=P.seed, tol=P.tol)
        out[f"{objective}, π1 = {P.heatmap_pi1:.4g}"] = s.best.cosines
    return out


# ---------------------------------------------------------------------------------------------------------------
# the published heatmaps
# ---------------------------------------------------------------------------------------------------------------


def _superscript(label: str) -> str:
    """``"2^-6"`` -> ``"2⁻⁶"``: the panel's title as plain text (math in a glued value is not typeset)."""
    base, _, exponent = str(label).partition("^")
    return base + exponent.translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))


@dataclass(frozen=True)
class Published:
    """How each of rharm's solutions matches the printed cosines of the published figure."""

    pub_best_source: str  # the solution closest to the print (largest difference smallest)
    pub_best_max: float
    pub_best_within: int  # cells it rounds to the printed value in
    pub_cells: int
    pub_precision: float
    pub_principled_max: float
    pub_small_label: str  # the smallest panel's pi1, as titled ("2⁻⁶")
    pub_small_printed: float  # printed cos(h1, h2) at that panel
    pub_small_gd: float  # the official solver there
    pub_small_converged: float  # the converged official optimum there
    figure_objective: str  # the objective of pub_best_source
    published_fit: pd.DataFrame  # one row per solution (JSON only)


def published(comparison: pd.DataFrame, precision: float) -> Published:
    """Summarise :func:`rharm.theory.published_comparison` ``comparison`` (print ``precision``, e.g. 0.005)."""
    labels = {label: objective for label, objective, _ in theory.PUBLISHED_SOURCES}
    unknown = sorted(set(comparison["source"]) - set(labels))
    if unknown:
        raise ValueError(f"comparison has source(s) {unknown}; valid sources: {list(labels)}")
    fit = (comparison.assign(abs_difference=comparison["difference"].abs())
           .groupby("source", sort=False)
           .agg(mean_abs_difference=("abs_difference", "mean"), max_abs_difference=("abs_difference", "max"),
                cells_within_print=("within_print", "sum"), cells=("within_print", "size"))
           .reset_index())
    best = fit.loc[fit["max_abs_difference"].idxmin()]
    small = comparison[(comparison["pi1"] == comparison["pi1"].min()) & (comparison["pair"] == "cos12")]
    small = small.set_index("source")
    by_source = fit.set_index("source")
    return Published(
        pub_best_source=str(best["source"]), pub_best_max=float(best["max_abs_difference"]),
        pub_best_within=int(best["cells_within_print"]), pub_cells=int(best["cells"]), pub_precision=float(precision),
        pub_principled_max=float(by_source.loc["principled objective, converged", "max_abs_difference"]),
        pub_small_label=_superscript(small["pi1_label"].iloc[0]), pub_small_printed=float(small["published"].iloc[0]),
        pub_small_gd=float(small.loc["official objective, official solver", "cosine"]),
        pub_small_converged=float(small.loc["official objective, converged", "cosine"]),
        figure_objective=labels[best["source"]], published_fit=fit)


# ---------------------------------------------------------------------------------------------------------------
# node level against population level
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodePopulation:
    """Which population objective the node simulation agrees with."""

    gap_principled: float  # mean |principled optimum - node cosine| over block pairs and minority sizes
    gap_official: float
    closer: str  # the objective with the smaller gap
    node_population: pd.DataFrame  # one row per (n1, pi1, pair): node, principled, official (JSON only)


def node_population(comparison: pd.DataFrame) -> NodePopulation:
    """Summarise :func:`rharm.theory.node_population_comparison` (long format: n1, pi1, pair, source, cosine)."""
    wide = comparison.pivot_table(index=["n1", "pi1", "pair"], columns="source", values="cosine")
    missing = [c for c in ("node", *theory.OBJECTIVES) if c not in wide.columns]
    if missing:
        raise ValueError(f"comparison lacks source(s) {missing}; expected node, {', '.join(theory.OBJECTIVES)}")
    wide = wide[["node", *theory.OBJECTIVES]]
    gaps = {obj: float((wide[obj] - wide["node"]).abs().mean()) for obj in theory.OBJECTIVES}
    return NodePopulation(gap_principled=gaps["principled"], gap_official=gaps["official"],
                          closer=min(gaps, key=gaps.get), node_population=wide.reset_index())


def small_minority_solves(P) -> dict[str, tuple[float, float]]:
    """cos(h1, h2) at the smallest pi1 and the largest alpha for each objective: ``{objective: (official solver,
    converged optimum)}``."""
    pi = theory.minority_proportions(min(P.pi1_values))
    a = theory.sbm_connectivity(max(P.alphas))
    reached = {}
    for objective in theory.OBJECTIVES:
        gd = theory.solve_population(pi, a, dim=P.pop_dim, tau=P.tau, objective=objective, seed=P.seed,
                                     solver="official_gd")
        ok = theory.population_restarts(pi, a, restarts=P.restarts, dim=P.pop_dim, tau=P.tau, objective=objective,
                                        seed=P.seed, tol=P.tol)
        reached[objective] = (float(gd.cosines[0, 1]), float(ok.best.cosines[0, 1]))
    return reached


@dataclass(frozen=True)
class SmallMinority:
    """Where each solver leaves the minority at the smallest pi1, and which objective the published figure shows."""

    pi1_small: float
    alpha_max: float
    gd_official: float
    opt_official: float
    gd_principled: float
    opt_principled: float
    collapsing: str  # the objectives whose optimum collapses fully, in words
    figure_gap_official: float  # mean |official solver - converged optimum| over the sweep, per objective
    figure_gap_principled: float
    node_objective_differs: str  # "differs from" / "is the same as"


def small_minority(P, reached: Mapping[str, tuple[float, float]], sweep: pd.DataFrame, official_gd: pd.DataFrame,
                   figure_objective: str, closer: str) -> SmallMinority:
    """Summarise :func:`small_minority_solves` ``reached`` and how far the official solver's curve (``official_gd``
    on the official objective) lies from each converged optimum of ``sweep``."""
    missing = [obj for obj in theory.OBJECTIVES if obj not in reached]
    if missing:
        raise ValueError(f"reached lacks objective(s) {missing}; expected {list(theory.OBJECTIVES)}")
    collapsing = [obj for obj in theory.OBJECTIVES if reached[obj][1] > COLLAPSE_COSINE]
    gd_curve = official_gd[official_gd["objective"] == "official"].set_index(["alpha", "pi1"])["cos12"]
    figure_gap = {
        obj: float((sweep[sweep["objective"] == obj].set_index(["alpha", "pi1"])["cos12"] - gd_curve).abs().mean())
        for obj in theory.OBJECTIVES
    }
    return SmallMinority(
        pi1_small=float(min(P.pi1_values)), alpha_max=float(max(P.alphas)),
        gd_official=reached["official"][0], opt_official=reached["official"][1],
        gd_principled=reached["principled"][0], opt_principled=reached["principled"][1],
        collapsing=" and ".join(f"the {c} objective" for c in collapsing) if collapsing else "neither objective",
        figure_gap_official=figure_gap["official"], figure_gap_principled=figure_gap["principled"],
        node_objective_differs="differs from" if figure_objective != closer else "is the same as")


# ---------------------------------------------------------------------------------------------------------------
# the limit pi1 -> 0 and the finding
# ---------------------------------------------------------------------------------------------------------------


def collapse_threshold(tau: float, within: float = theory.WITHIN_BLOCK) -> float:
    """The smallest alpha at which the minority collapses fully as pi1 -> 0: 1 + alpha / a >= 2 tanh(1 / tau)."""
    if not tau > 0:
        raise ValueError(f"tau = {tau!r} must be > 0")
    return float(within * (2 * np.tanh(1 / tau) - 1))


@dataclass(frozen=True)
class Limit:
    """The derived limit against sympy and against the solver."""

    sympy_difference: str  # sympy's derivative minus the stated F' (simplified): "0" when the derivation holds
    alpha_threshold: float
    limit_worst: float  # largest |limit - solved cosine| over alpha
    alphas_collapsing: list  # alphas at or above the threshold (JSON only)
    alphas_finite_angle: list
    limits: pd.DataFrame  # :func:`rharm.theory.limit_check` (JSON only)


def limit(P, limits: pd.DataFrame, difference: Any) -> Limit:
    """Summarise :func:`rharm.theory.limit_check` ``limits`` and :func:`rharm.theory.limit_symbolic_check`'s
    ``difference``."""
    threshold = collapse_threshold(P.tau)
    return Limit(sympy_difference=str(difference), alpha_threshold=threshold,
                 limit_worst=float(limits["abs_diff"].max()),
                 alphas_collapsing=[float(a) for a in P.alphas if a >= threshold],
                 alphas_finite_angle=[float(a) for a in P.alphas if a < threshold], limits=limits)


@dataclass(frozen=True)
class Finding:
    """The chapter's finding (one paragraph of plain text)."""

    finding: str


def finding(P, lim: Limit, small: SmallMinority, pub: Published, node_pop: NodePopulation) -> Finding:
    """The chapter's finding in at most :data:`rharm.page.headline.FINDING_MAX_WORDS` words: the collapse threshold,
    which runs reach it, and how many printed cosines rharm reproduces, or, where the node simulation agrees more
    closely with the other objective, that caution instead. The solver gaps and the derived limit's accuracy are in
    the page's body."""
    above, below = lim.alphas_collapsing, lim.alphas_finite_angle
    if not below:
        verdict = f"every run (α = {_words(above)}) reaches it: the minority collapses fully. "
    elif not above:
        verdict = (f"no run (α = {_words(below)}) reaches it: the minority stops at a finite angle "
                   f"(cos(h1*, h2*) = {small.opt_principled:.3f} at π1 = {small.pi1_small:.3g}). ")
    else:
        verdict = f"α = {_words(above)} collapse fully; α = {_words(below)} stop at a finite angle. "
    return Finding(
        "As π1 → 0, the minority merges with the majority block it links to only when the link probability α is at "
        f"least {lim.alpha_threshold:.3f} (τ = {P.tau:g}, principled objective); " + verdict
        + (f"rharm reproduces {pub.pub_best_within} of the paper's {pub.pub_cells} printed cosines."
           if node_pop.closer == "principled" else
           f"Caution: the node simulation agrees more closely with the {node_pop.closer} objective."))
