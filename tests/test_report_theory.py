"""rharm.report.theory: each section's summary on small synthetic inputs with known answers."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from rharm import theory
from rharm.core import params
from rharm.report import theory as report


def _P(profile="smoke", **over):
    values = {**params.profile_values("theory", profile), **over}
    return params.Params(notebook="theory", profile=profile, values=values, overrides=over)


def _plain_scalars(section):
    """Scalars are plain Python values: numpy ones are glued as "np.float64(...)", unreadable by {glue:text}."""
    for f in dataclasses.fields(section):
        v = getattr(section, f.name)
        if not isinstance(v, (list, dict, pd.DataFrame)):
            assert type(v) in (str, int, float, bool), (f.name, type(v))


def test_scale_states_the_parameters():
    s = report.scale(_P("cpu"))
    assert s.n1_list == "256, 32, 4" and s.majority_size == 256 and s.within == 0.95 and s.profile == "cpu"
    _plain_scalars(s)


def test_node_level_reads_the_smallest_minority_and_counts_isolated_nodes():
    mean_small = np.array([[0.9, 0.7, -0.2], [0.7, 0.95, -0.1], [-0.2, -0.1, 0.99]])
    mean_big = np.array([[0.8, 0.1, 0.0], [0.1, np.nan, 0.0], [0.0, 0.0, 0.97]])
    node = {4: (mean_small, np.zeros((3, 3))), 32: (mean_big, np.zeros((3, 3)))}
    s = report.node_level(node, _P(alpha=0.0, majority_size=8))
    assert (s.n1_min, s.node_cos12_min, s.node_cos13_min) == (4, 0.7, -0.2)
    assert s.node_within_min == 0.8  # the NaN of a one-node block is skipped
    _plain_scalars(s)
    # a one-node minority without a link to block 2 (alpha = 0) has no neighbour at all; with alpha = 1 it links to
    # every node of block 2
    lone = {1: (mean_small, np.zeros((3, 3)))}
    assert report.node_level(lone, _P(alpha=0.0, majority_size=8)).isolated_total >= 1
    assert report.node_level(lone, _P(alpha=1.0, majority_size=8)).isolated_total == 0
    with pytest.raises(ValueError, match="node is empty"):
        report.node_level({}, _P())


def test_reduction_matches_the_principled_objective_not_the_official_one():
    r = report.reduction(_P())
    assert r.reduction_sizes == "(8, 20, 36)"
    assert r.reduction_gap < 1e-10 < 1e-3 < r.official_gap


def _sweep(converged=(True, True, True, False)):
    rows = []
    for i, ok in enumerate(converged):
        rows.append({"objective": theory.OBJECTIVES[i % 2], "alpha": 0.4, "pi1": 0.1 * (1 + i // 2),
                     "converged": ok, "block_grad_norm": 1e-9 * (i + 1), "spread": 1e-7 * (i + 1),
                     "cos12": 0.5 + 0.1 * i})
    return pd.DataFrame(rows)


def test_convergence_counts_solves_and_unconverged_runs():
    c = report.convergence(_sweep(), _sweep((True, False, False, True)), restarts=3)
    assert c.n_solves == 12 and c.all_converged == "not all" and not c.every_solve_converged
    assert c.worst_grad == pytest.approx(4e-9) and c.worst_spread == pytest.approx(4e-7)
    assert (c.gd_unconverged, c.gd_total) == (2, 4)
    assert list(c.gd_check["converged"]) == [1, 1]  # one converged run of each objective
    assert report.convergence(_sweep((True,) * 4), _sweep(), restarts=1).all_converged == "all"
    with pytest.raises(ValueError, match="empty sweep"):
        report.convergence(_sweep().iloc[:0], _sweep(), restarts=1)


def _published():
    rows = []
    errors = {"official objective, official solver": 0.001, "official objective, converged": 0.2,
              "principled objective, converged": 0.3}
    for pi1, label in ((0.25, "2^-2"), (2 ** -6, "2^-6")):
        for pair in ("cos12", "cos13"):
            for source, err in errors.items():
                printed = 0.5
                rows.append({"pi1": pi1, "pi1_label": label, "pair": pair, "published": printed, "source": source,
                             "cosine": printed + err, "difference": err, "within_print": err <= 0.005})
    return pd.DataFrame(rows)


def test_published_picks_the_closest_solution_and_its_objective():
    p = report.published(_published(), 0.005)
    assert p.pub_best_source == "official objective, official solver" and p.figure_objective == "official"
    assert p.pub_best_within == 4 and p.pub_cells == 4 and p.pub_best_max == pytest.approx(0.001)
    assert p.pub_principled_max == pytest.approx(0.3)
    assert p.pub_small_label == "2⁻⁶" and p.pub_small_printed == 0.5
    assert p.pub_small_gd == pytest.approx(0.501) and p.pub_small_converged == pytest.approx(0.7)
    _plain_scalars(p)
    with pytest.raises(ValueError, match="source.*'mine'"):
        report.published(_published().assign(source="mine"), 0.005)


def _comparison(official_offset):
    rows = []
    for n1, pair, node in ((4, "cos12", 0.9), (4, "cos13", -0.5), (32, "cos12", 0.6)):
        for source, value in (("node", node), ("principled", node + 0.01), ("official", node + official_offset)):
            rows.append({"n1": n1, "pi1": n1 / (n1 + 64), "pair": pair, "source": source, "cosine": value})
    return pd.DataFrame(rows)


def test_node_population_finds_the_closer_objective():
    s = report.node_population(_comparison(0.2))
    assert s.closer == "principled" and s.gap_principled == pytest.approx(0.01)
    assert s.gap_official == pytest.approx(0.2)
    assert report.node_population(_comparison(0.001)).closer == "official"
    with pytest.raises(ValueError, match="official"):
        report.node_population(_comparison(0.2).query("source != 'official'"))


def test_small_minority_words_and_figure_gaps():
    sweep = pd.DataFrame({"objective": ["principled", "official"], "alpha": [0.4, 0.4], "pi1": [0.01, 0.01],
                          "cos12": [0.8, 0.95]})
    gd = pd.DataFrame({"objective": ["official"], "alpha": [0.4], "pi1": [0.01], "cos12": [0.9]})
    reached = {"official": (0.9, 0.999), "principled": (0.7, 0.8)}
    s = report.small_minority(_P(), reached, sweep, gd, "official", "principled")
    assert s.collapsing == "the official objective" and s.node_objective_differs == "differs from"
    assert s.figure_gap_official == pytest.approx(0.05) and s.figure_gap_principled == pytest.approx(0.1)
    assert (s.gd_principled, s.opt_principled) == (0.7, 0.8)
    none = report.small_minority(_P(), {"official": (0.9, 0.5), "principled": (0.7, 0.8)}, sweep, gd, "official",
                                 "official")
    assert none.collapsing == "neither objective" and none.node_objective_differs == "is the same as"
    with pytest.raises(ValueError, match="principled"):
        report.small_minority(_P(), {"official": (0.9, 0.5)}, sweep, gd, "official", "official")


def test_collapse_threshold_separates_full_collapse_from_a_finite_angle():
    t = report.collapse_threshold(1.0)
    assert t == pytest.approx(0.95 * (2 * math.tanh(1.0) - 1))
    assert theory.limit_cosine(t + 1e-3, tau=1.0) == 1.0 and theory.limit_cosine(t - 1e-2, tau=1.0) < 0.999
    with pytest.raises(ValueError, match="tau = 0"):
        report.collapse_threshold(0)


@pytest.mark.parametrize("alphas, words", [([0.6, 0.8], "every run (α = 0.6, 0.8) reaches it"),
                                           ([0.1, 0.2], "no run (α = 0.1, 0.2) reaches it"),
                                           ([0.1, 0.6], "α = 0.6 collapse fully; α = 0.1 stop at a finite angle")])
def test_limit_and_finding_follow_the_threshold(alphas, words):
    P = _P(alphas=alphas, tau=1.0)
    limits = pd.DataFrame({"alpha": alphas, "abs_diff": [1e-9, 3e-8]})
    lim = report.limit(P, limits, 0)
    assert lim.sympy_difference == "0" and lim.limit_worst == pytest.approx(3e-8)
    assert sorted(lim.alphas_collapsing + lim.alphas_finite_angle) == sorted(alphas)
    pub = report.published(_published(), 0.005)
    empty = pd.DataFrame(columns=["objective", "alpha", "pi1", "cos12"])
    small = report.small_minority(P, {"official": (0.9, 0.999), "principled": (0.7, 0.8)}, empty, empty,
                                  "official", "principled")
    f = report.finding(P, lim, small, pub, report.node_population(_comparison(0.2))).finding
    assert words in f and "at least 0.497" in f and "reproduces 4 of the paper's 4 printed cosines" in f
    other = report.finding(P, lim, small, pub, report.node_population(_comparison(0.001))).finding
    assert "agrees more closely with the official objective" in other
    from rharm.page.headline import FINDING_MAX_WORDS, word_count

    assert max(word_count(f), word_count(other)) <= FINDING_MAX_WORDS
