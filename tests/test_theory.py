"""Tests for rharm.theory: objectives against independent loops, gradients against finite differences, the
node loss against the population objective, solver convergence, symmetries, the pi_1 -> 0 limit and validation."""

import math

import numpy as np
import pytest

from rharm import theory as th
from rharm.theory import node as node_mod


def _unit(rng, k, d):
    v = rng.standard_normal((k, d))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _loop_objective(h, pi, a, tau, objective):
    """Direct double/triple-loop evaluation of the two formulas in the module docstring (digest §5.2)."""
    k = len(pi)
    h = h / np.linalg.norm(h, axis=1, keepdims=True)
    total = 0.0
    for i in range(k):
        w_i = sum(a[i][m] * pi[m] for m in range(k))
        for j in range(k):
            dot = sum(h[i][t] * h[j][t] for t in range(h.shape[1]))
            if objective == "principled":
                total -= pi[i] * pi[j] * a[i][j] / w_i * dot / tau
            else:
                total -= pi[i] ** 2 / w_i * a[i][j] * dot / tau
        inner = 0.0
        for j in range(k):
            dot = sum(h[i][t] * h[j][t] for t in range(h.shape[1]))
            inner += (pi[j] if objective == "principled" else pi[i]) * math.exp(dot / tau)
        total += pi[i] * math.log(inner)
    return total


CASES = [
    (np.array([0.2, 0.5, 0.3]), th.sbm_connectivity(0.4), 1.0),
    (np.array([0.05, 0.475, 0.475]), th.sbm_connectivity(0.1), 0.5),
    (np.array([0.1, 0.2, 0.3, 0.4]), np.array([[0.9, 0.3, 0.1, 0.0], [0.3, 0.8, 0.0, 0.2],
                                               [0.1, 0.0, 0.7, 0.5], [0.0, 0.2, 0.5, 0.6]]), 2.0),
]


@pytest.mark.parametrize("objective", th.OBJECTIVES)
@pytest.mark.parametrize("pi,a,tau", CASES)
def test_objective_matches_loops(pi, a, tau, objective):
    rng = np.random.default_rng(3)
    h = rng.standard_normal((len(pi), 5)) * 2.0  # rows of any length: the objective normalises them
    got = th.population_objective(h, pi, a, tau, objective)
    assert got == pytest.approx(_loop_objective(h, pi, a, tau, objective), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("objective", th.OBJECTIVES)
@pytest.mark.parametrize("pi,a,tau", CASES)
def test_gradient_matches_finite_differences(pi, a, tau, objective):
    rng = np.random.default_rng(4)
    h = _unit(rng, len(pi), 4)
    g = th.population_gradient(h, pi, a, tau, objective)
    # the objective normalises rows, so its derivative at unit rows is the projected (Riemannian) gradient
    rg = th.riemannian_gradient(h, g)
    num = np.zeros_like(h)
    eps = 1e-6
    for i in range(h.shape[0]):
        for t in range(h.shape[1]):
            hp, hm = h.copy(), h.copy()
            hp[i, t] += eps
            hm[i, t] -= eps
            num[i, t] = (th.population_objective(hp, pi, a, tau, objective)
                         - th.population_objective(hm, pi, a, tau, objective)) / (2 * eps)
    np.testing.assert_allclose(rg, num, atol=1e-8)


def test_node_gradient_matches_finite_differences_and_fast_path():
    rng = np.random.default_rng(5)
    g = th.sample_sbm([5, 4, 3], th.sbm_connectivity(0.4), seed=2)
    v = _unit(rng, 12, 3)
    grad = th.node_gradient(v, g, 0.7)
    num = np.zeros_like(v)
    eps = 1e-6
    for i in range(v.shape[0]):
        for t in range(v.shape[1]):
            vp, vm = v.copy(), v.copy()
            vp[i, t] += eps
            vm[i, t] -= eps
            num[i, t] = (th.node_loss(vp, g, 0.7) - th.node_loss(vm, g, 0.7)) / (2 * eps)
    np.testing.assert_allclose(grad, num, atol=1e-8)
    np.testing.assert_allclose(node_mod._node_gradient_fn(g, 0.7)(v), grad, atol=1e-14)


def test_node_loss_direct_formula():
    rng = np.random.default_rng(6)
    g = th.sample_sbm([4, 4, 4], th.sbm_connectivity(0.5), seed=0)
    v = _unit(rng, 12, 3)
    n = 12
    expected = 0.0
    for i in range(n):
        deg = g[i].sum()
        expected -= sum(g[i, j] * v[i] @ v[j] for j in range(n)) / deg / n
        expected += math.log(sum(math.exp(v[i] @ v[j]) for j in range(n)) / n) / n
    assert th.node_loss(v, g, 1.0) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("sizes", [(2, 6, 6), (3, 3, 6), (1, 1, 1, 3)])
def test_node_loss_block_constant_equals_principled(sizes):
    """On the expected graph (G_ij = A_{b_i b_j}, self-pairs included) a block-constant configuration has
    node loss equal to the principled population objective with pi proportional to the block sizes."""
    k = len(sizes)
    rng = np.random.default_rng(7)
    a = rng.uniform(0.05, 1.0, (k, k))
    a = (a + a.T) / 2
    labels = np.repeat(np.arange(k), sizes)
    h = _unit(rng, k, 4)
    pi = np.array(sizes) / sum(sizes)
    for tau in (0.5, 1.0):
        node = th.node_loss(h[labels], a[labels][:, labels], tau)
        pop = th.population_objective(h, pi, a, tau, "principled")
        assert node == pytest.approx(pop, rel=1e-12)
    # ... and the official objective is a different function away from equal blocks
    assert th.population_objective(h, pi, a, 1.0, "official") != pytest.approx(node, rel=1e-6)


def test_isolated_nodes_get_no_positive_term():
    g = np.zeros((3, 3))
    g[0, 1] = g[1, 0] = 1.0  # node 2 is isolated
    v = _unit(np.random.default_rng(8), 3, 2)
    c = v @ v.T
    expected = -(c[0, 1] + c[1, 0]) / 3 + np.mean(np.log(np.exp(c).mean(axis=1)))
    assert th.node_loss(v, g) == pytest.approx(expected, rel=1e-12)
    assert np.all(np.isfinite(th.node_gradient(v, g)))


def test_sample_sbm_structure():
    a = th.sbm_connectivity(0.4)
    g = th.sample_sbm([30, 40, 50], a, seed=1)
    assert g.shape == (120, 120)
    np.testing.assert_array_equal(g, g.T)
    assert np.all(np.diag(g) == 0)
    assert set(np.unique(g)) <= {0.0, 1.0}
    assert g[:30, 70:].sum() == 0 and g[30:70, 70:].sum() == 0  # alpha_13 = alpha_23 = 0
    assert 0.85 < g[70:, 70:].sum() / (50 * 49) < 1.0
    np.testing.assert_array_equal(g, th.sample_sbm([30, 40, 50], a, seed=1))
    assert not np.array_equal(g, th.sample_sbm([30, 40, 50], a, seed=2))


@pytest.mark.parametrize("objective", th.OBJECTIVES)
@pytest.mark.parametrize("pi1", [1 / 3, 1 / 24, 1 / 192])
def test_solver_converges_and_restarts_agree(objective, pi1):
    s = th.population_restarts(th.minority_proportions(pi1), th.sbm_connectivity(0.2), restarts=3,
                               objective=objective, seed=11)
    assert s.all_converged
    assert np.all(s.block_grad_norms <= 1e-8)
    assert s.spread < 1e-6
    # a stationary point that is a minimum: small random perturbations do not lower the objective
    rng = np.random.default_rng(0)
    best = s.best
    pi = th.minority_proportions(pi1)
    a = th.sbm_connectivity(0.2)
    for _ in range(20):
        h = best.H + 1e-3 * rng.standard_normal(best.H.shape)
        assert th.population_objective(h, pi, a, 1.0, objective) >= best.objective_value - 1e-12


@pytest.mark.parametrize("objective", th.OBJECTIVES)
def test_relabelling_blocks_permutes_cosines(objective):
    pi = np.array([0.05, 0.45, 0.5])
    a = th.sbm_connectivity(0.3)
    perm = np.array([2, 0, 1])
    c = th.population_cosines(pi, a, objective=objective, seed=1)
    cp = th.population_cosines(pi[perm], a[perm][:, perm], objective=objective, seed=2)
    np.testing.assert_allclose(cp, c[perm][:, perm], atol=1e-6)


def test_official_equals_principled_for_equal_blocks():
    pi = np.full(3, 1 / 3)
    a = th.sbm_connectivity(0.4)
    h = _unit(np.random.default_rng(9), 3, 6)
    assert th.population_objective(h, pi, a, 1.0, "official") == pytest.approx(
        th.population_objective(h, pi, a, 1.0, "principled"), rel=1e-13)
    np.testing.assert_allclose(th.population_cosines(pi, a, objective="official"),
                               th.population_cosines(pi, a, objective="principled"), atol=1e-6)


def test_objectives_differ_for_unequal_blocks():
    pi = th.minority_proportions(1 / 24)
    a = th.sbm_connectivity(0.4)
    c_p = th.population_cosines(pi, a, objective="principled")
    c_o = th.population_cosines(pi, a, objective="official")
    assert abs(c_p[0, 1] - c_o[0, 1]) > 0.01


def test_minority_moves_towards_connected_block_and_reaches_the_limit():
    """Principled objective, tau = 1: cos(h1, h2) rises as pi_1 falls, block 1 is pushed away from the
    unconnected block 3, and the value tends to the root of the first-order limit problem."""
    a = th.sbm_connectivity(0.4)
    pis = [1 / 3, 1 / 24, 1 / 192, 1e-5]
    cos = [th.population_cosines(th.minority_proportions(p), a) for p in pis]
    c12 = [c[0, 1] for c in cos]
    assert all(x < y for x, y in zip(c12, c12[1:]))
    assert all(c[0, 2] < 0 for c in cos)
    assert cos[-1][1, 2] == pytest.approx(-1.0, abs=1e-3)  # the two majority blocks become antipodal
    limit = th.limit_cosine(0.4)
    assert c12[-1] == pytest.approx(limit, abs=1e-3)
    assert abs(th.limit_derivative(limit, 0.4)) < 1e-10
    assert limit < 1.0  # at tau = 1 and alpha = 0.4 the limit is NOT full collapse


def test_full_collapse_when_the_limit_condition_holds():
    """1 + alpha/within >= 2 tanh(1/tau) gives cos(h1, h2) -> 1 as pi_1 -> 0, with cos(h1, h3) -> -1."""
    a = th.sbm_connectivity(0.8)
    assert 1 + 0.8 / 0.95 >= 2 * math.tanh(1.0)
    assert th.limit_cosine(0.8) == 1.0
    c = th.population_cosines(th.minority_proportions(1e-5), a)
    assert c[0, 1] > 0.999 and c[0, 2] < -0.999
    # a higher temperature makes collapse happen for a weak connection too
    assert th.limit_cosine(0.1, tau=2.0) == 1.0
    c = th.population_cosines(th.minority_proportions(1e-5), th.sbm_connectivity(0.1), tau=2.0)
    assert c[0, 1] > 0.999


def test_official_solver_option_is_the_published_gd():
    pi = th.minority_proportions(1 / 192)
    a = th.sbm_connectivity(0.4)
    gd = th.solve_population(pi, a, objective="principled", solver="official_gd")
    assert gd.iterations == 1000
    # the published solver stops far from stationarity on the principled objective for a tiny block
    assert not gd.converged
    ok = th.solve_population(pi, a, objective="principled")
    assert ok.converged and ok.objective_value < gd.objective_value


def test_block_cosine_stats_excludes_diagonal():
    v = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    mean, std = th.block_cosine_stats(v, [2, 2])
    assert mean[0, 0] == pytest.approx(1.0) and std[0, 0] == pytest.approx(0.0)
    assert mean[1, 1] == pytest.approx(0.8)
    assert mean[0, 1] == pytest.approx(0.3) and std[0, 1] == pytest.approx(0.3)


def test_sbm_node_cosines_small_run_separates_blocks():
    a = th.sbm_connectivity(0.0)
    mean, std = th.sbm_node_cosines([12, 12, 12], a, dim=5, iters=300, seed=0)
    assert mean.shape == std.shape == (3, 3)
    assert np.all(np.diag(mean) > 0.95)
    assert np.all(mean[~np.eye(3, dtype=bool)] < 0)
    np.testing.assert_allclose(mean, mean.T, atol=1e-12)


def test_node_simulation_matches_principled_population_for_equal_blocks():
    a = th.sbm_connectivity(0.4)
    mean, _ = th.sbm_node_cosines([96, 96, 96], a, iters=3000)
    pop = th.population_cosines(np.full(3, 1 / 3), a)
    assert np.max(np.abs(mean - pop)[~np.eye(3, dtype=bool)]) < 0.05


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(pi=[0.5, 0.6, 0.1]), "pi="),
        (dict(pi=[0.0, 0.5, 0.5]), "pi="),
        (dict(pi=[1.0]), "pi="),
        (dict(connectivity=[[0.9, 0.1, 0], [0.2, 0.9, 0], [0, 0, 0.9]]), "symmetric"),
        (dict(connectivity=[[1.5, 0.1, 0], [0.1, 0.9, 0], [0, 0, 0.9]]), r"\[0, 1\]"),
        (dict(connectivity=[[0.9, 0.1], [0.1, 0.9]]), "3 blocks"),
        (dict(connectivity=[[0.9, 0, 0], [0, 0.9, 0], [0, 0, 0.0]]), "no neighbours"),
        (dict(dim=0), "dim=0"),
        (dict(tau=0.0), "tau=0.0"),
        (dict(tau=-1.0), "tau=-1.0"),
        (dict(objective="paper"), "objective='paper'.*principled.*official"),
        (dict(solver="adam"), "solver='adam'.*lbfgs.*official_gd"),
    ],
)
def test_population_validation(kwargs, match):
    args = dict(pi=[0.2, 0.4, 0.4], connectivity=th.sbm_connectivity(0.4))
    args.update({k: kwargs.pop(k) for k in list(kwargs) if k in args})
    with pytest.raises(ValueError, match=match):
        th.solve_population(args["pi"], args["connectivity"], **kwargs)


def test_node_validation():
    a = th.sbm_connectivity(0.4)
    with pytest.raises(ValueError, match="block_sizes"):
        th.sbm_node_cosines([10, 0, 10], a)
    with pytest.raises(ValueError, match="symmetric"):
        th.sbm_node_cosines([4, 4, 4], [[0.9, 0.1, 0], [0.2, 0.9, 0], [0, 0, 0.9]])
    with pytest.raises(ValueError, match="dim=0"):
        th.sbm_node_cosines([4, 4, 4], a, dim=0)
    with pytest.raises(ValueError, match="tau"):
        th.sbm_node_cosines([4, 4, 4], a, tau=0)
    with pytest.raises(ValueError, match="iters"):
        th.sbm_node_cosines([4, 4, 4], a, iters=-1)
    with pytest.raises(ValueError, match="alpha"):
        th.sbm_connectivity(1.5)
    with pytest.raises(ValueError, match="pi1"):
        th.minority_proportions(0.0)


def test_charts_build():
    import altair as alt

    from rharm.page import charts

    a = th.sbm_connectivity(0.4)
    sweep = th.population_sweep([1 / 3, 1 / 12], [0.1, 0.4], restarts=1)
    assert set(sweep["objective"]) == set(th.OBJECTIVES) and sweep["converged"].all()
    mean = np.array([[1.0, -0.25, 0.5], [-0.3, 0.75, 0.125], [0.55, 0.1, 0.9]])  # not symmetric: shows a transpose
    sd = np.arange(9.0).reshape(3, 3) / 100
    for chart, encoded in (
        (charts.connectivity_chart(a), {"probability": a}),
        (charts.node_cosine_charts({4: (mean, sd)}, 256), {"mean cosine": mean, "sd": sd}),
        (charts.population_heatmap_charts({"x": mean}), {"cosine": mean}),
    ):
        assert isinstance(chart, alt.TopLevelMixin)
        records = _chart_records(chart)
        for column, matrix in encoded.items():  # every cell drawn, at its block, with its value
            drawn = {(r["row block"], r["column block"]): r[column] for r in records if column in r}
            assert drawn == {(str(i + 1), str(j + 1)): matrix[i, j] for i in range(3) for j in range(3)}, column
    assert "n = (4, 256, 256)" in str(charts.node_cosine_charts({4: (mean, sd)}, 256).to_dict())
    line = _chart_records(charts.population_line_chart(sweep, pair="cos12"))
    lbfgs = sweep[sweep.solver == "lbfgs"]
    assert sorted((r["pi1"], float(r["alpha"]), r["cos12"]) for r in line) == sorted(
        zip(lbfgs.pi1, lbfgs.alpha, lbfgs.cos12))


def _chart_records(chart):
    """Every data record a chart's Vega-Lite spec carries (named datasets and inline values)."""
    spec = chart.to_dict()
    out = [r for values in spec.get("datasets", {}).values() for r in values]
    return out + list((spec.get("data") or {}).get("values", []))


def test_limit_derivation_symbolic_and_numeric():
    difference, _ = th.limit_symbolic_check()
    assert difference == 0
    table = th.limit_check([0.1, 0.4], pi1=1e-6)
    assert (table["abs_diff"] < 1e-4).all()
    assert (table["cos13"] < 0).all()


def test_expected_graph_block_constant():
    g = th.expected_graph([2, 3], [[0.9, 0.2], [0.2, 0.7]])
    assert g.shape == (5, 5) and g[0, 0] == 0.9 and g[0, 4] == 0.2 and g[4, 4] == 0.7
