"""rharm.theory as a package: the names it exported as one module, the store fingerprint of its submodules, and the
published theory figure (official ``simulation/plots/cosine_th.pdf``) against rharm's population solutions."""

import numpy as np
import pytest

from rharm import store
from rharm import theory as th
from rharm.core import reference
from rharm.page import charts

#: every public name of rharm.theory before the split into a package (its __all__ then), less the charts
NAMES_BEFORE_SPLIT = [
    "OBJECTIVES", "SOLVERS", "WITHIN_BLOCK", "PopulationSolution", "RestartSummary", "sbm_connectivity",
    "minority_proportions", "population_objective", "population_gradient", "riemannian_gradient",
    "solve_population", "population_cosines", "population_restarts", "population_sweep", "limit_cosine",
    "limit_derivative", "limit_symbolic_check", "limit_check", "expected_graph", "sample_sbm", "node_loss",
    "node_gradient", "train_node_embeddings", "block_cosine_stats", "sbm_node_cosines", "cached_sbm_node_cosines",
    "node_population_comparison",
]
#: the theory charts, exported by rharm.theory before every chart moved to rharm.page.charts
CHART_NAMES = ["connectivity_chart", "node_cosine_charts", "population_line_chart", "population_heatmap_charts",
               "published_comparison_chart"]


def test_every_name_of_the_single_module_is_still_exported():
    missing = [n for n in NAMES_BEFORE_SPLIT if not hasattr(th, n)]
    assert not missing
    assert set(NAMES_BEFORE_SPLIT) <= set(th.__all__)
    assert th.population_cosines.__module__ == "rharm.theory.population"
    assert th.sbm_node_cosines.__module__ == "rharm.theory.node"
    assert th.limit_cosine.__module__ == "rharm.theory.limit"


def test_theory_charts_live_in_rharm_charts_only():
    assert [n for n in CHART_NAMES if hasattr(th, n) or n in th.__all__] == []
    assert all(getattr(charts, n).__module__ == "rharm.page.charts" for n in CHART_NAMES)


def test_store_fingerprint_of_an_importer_covers_the_package_submodules():
    # rharm.study.design does `from . import theory`: the package's __init__ must pull every submodule into the closure
    closure = {m.__name__ for m in store.code_closure("rharm.study.design")}
    for sub in ("population", "node", "limit", "_validate"):
        assert f"rharm.theory.{sub}" in closure, sub
    # the node cache is keyed by the node module and what it imports (the population solver, the checks)
    node_closure = {m.__name__ for m in store.code_closure("rharm.theory.node")}
    assert {"rharm.theory.node", "rharm.theory.population", "rharm.theory._validate"} <= node_closure
    assert "rharm.page.charts" not in node_closure  # charts do not shape the cached numbers


def test_cached_node_cosines_is_keyed_by_the_code_closure(monkeypatch):
    seen = {}

    class Stop(Exception):
        pass

    def fake_cached(kind, config, compute, *, code=(), root=None):
        seen["kind"], seen["code"] = kind, [m.__name__ for m in code]
        raise Stop

    monkeypatch.setattr(store, "cached", fake_cached)
    with pytest.raises(Stop):
        th.cached_sbm_node_cosines([4, 6, 6], th.sbm_connectivity(0.4), iters=1)
    assert seen["kind"] == "theory_sbm_node"
    assert "rharm.theory.population" in seen["code"] and "rharm.theory.node" in seen["code"]


def test_published_theory_cosines_load_with_their_source():
    df = reference.theory_cosines()
    assert list(df["pi1"]) == [2.0**-2, 2.0**-4, 2.0**-6]
    assert list(df["pi1_label"]) == ["2^-2", "2^-4", "2^-6"]
    assert (df["alpha"] == 0.4).all()
    assert df.loc[0, ["cos12", "cos13", "cos23"]].tolist() == [0.58, -0.87, -0.9]
    # as pi_1 shrinks the minority moves towards block 2 and the majorities apart (the figure's message)
    assert df["cos12"].is_monotonic_increasing and df["cos23"].is_monotonic_decreasing
    mats = reference.theory_cosine_matrices()
    assert sorted(mats) == sorted(df["pi1"])
    for pi1, m in mats.items():
        v = m.to_numpy()
        np.testing.assert_array_equal(v, v.T)
        np.testing.assert_array_equal(np.diag(v), 1.0)
        row = df[df["pi1"] == pi1].iloc[0]
        assert (v[0, 1], v[0, 2], v[1, 2]) == (row.cos12, row.cos13, row.cos23)
    info = reference.theory_info()
    assert info["precision"] == 0.005 and info["within"] == th.WITHIN_BLOCK
    src = info["source"]
    assert src["file"] == "simulation/plots/cosine_th.pdf" and src["commit"] == "b7b7aa3"
    assert src["repository"].endswith("smaityumich/CL-representation-harm")


def test_published_heatmaps_match_the_official_solver_not_the_converged_optima():
    comparison = th.published_comparison(restarts=1, seed=0)
    assert len(comparison) == 3 * 3 * len(th.PUBLISHED_SOURCES)
    by_source = comparison.groupby("source")["within_print"].sum()
    # the official objective under the official solver rounds to every printed cosine
    assert by_source["official objective, official solver"] == 9
    # the converged official optimum does not at pi_1 = 2^-6 (it is nearer full collapse); the principled one
    # misses most cells
    assert by_source["official objective, converged"] < 9
    assert by_source["principled objective, converged"] <= 3
    np.testing.assert_allclose(comparison["difference"], comparison["cosine"] - comparison["published"])


def test_published_comparison_validates_before_solving():
    with pytest.raises(ValueError, match="restarts=0"):
        th.published_comparison(restarts=0)
    with pytest.raises(ValueError, match="tau="):
        th.published_comparison(tau=-1.0)


def test_published_comparison_chart_has_one_panel_per_pair():
    comparison = th.published_comparison(restarts=1)
    spec = charts.published_comparison_chart(comparison, precision=0.005).to_dict()
    assert len(spec.get("hconcat", spec.get("vconcat", spec.get("concat", [])))) == 3


@pytest.mark.parametrize("kwargs, match", [({"dim": 0}, "dim=0"), ({"tol": 0.0}, "tol=0.0"),
                                           ({"official_iters": 0}, "official_iters=0")])
def test_published_comparison_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        th.published_comparison(**kwargs)
