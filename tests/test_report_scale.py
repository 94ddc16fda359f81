"""rharm.report.scale: each section's summary on small synthetic inputs with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from rharm.core import params
from rharm.harm import synthetic as testing
from rharm.report import scale
from rharm.study import reuse


def _P(profile="smoke", **over):
    values = {**params.profile_values("scale_study", profile), **over}
    return params.Params(notebook="scale_study", profile=profile, values=values, overrides=over)


def test_scale_counts_come_from_the_parameters_and_the_paper_grid():
    s = scale.scale(_P(n_per_class=20, ratio=10, seeds=[3, 4, 5]))
    assert s.n_minority_kept == 2 and s.n_seeds == 3 and s.minority == "automobile" and s.partner == "truck"
    assert s.paper_runs_per_ratio == 110  # the paper: balanced + 10 minority classes, 10 seeds each


def test_throughput_takes_each_backbones_best_batch():
    tp = pd.DataFrame({"backbone": ["small_cnn", "small_cnn", "resnet18", "resnet18"],
                       "batch_size": [64, 256, 64, 256], "images_per_s": [400.0, 500.0, 10.0, 12.5]})
    t = scale.throughput(tp)
    assert (t.tp_small, t.tp_resnet18, t.tp_ratio) == (500.0, 12.5, 40.0)
    assert t.epoch_min_resnet18 == pytest.approx(50_000 / 12.5 / 60)
    only_small = scale.throughput(tp[tp.backbone == "small_cnn"])
    assert only_small.tp_small == 500.0 and math.isnan(only_small.tp_resnet18) and math.isnan(only_small.tp_ratio)
    with pytest.raises(ValueError, match="images_per_s"):
        scale.throughput(tp.drop(columns="images_per_s"))


def _diag(trained_probe):
    rows = []
    for seed, shift in ((0, 0.0), (1, 0.02)):
        rows.append({"seed": seed, "stage": "initialisation", "within": 0.90 + shift, "between": 0.88 + shift,
                     "gap": 0.02, "probe_accuracy": 0.20 + shift})
        rows.append({"seed": seed, "stage": "trained", "within": 0.60 + shift, "between": 0.50 + shift,
                     "gap": 0.10, "probe_accuracy": trained_probe + shift})
    return pd.DataFrame(rows)


def test_separation_averages_over_seeds_and_flags_weak_structure():
    s = scale.separation(_diag(0.30))
    assert (s.init_within, s.init_between, s.init_gap, s.trained_gap) == ("0.910", "0.890", "0.020", "0.100")
    assert (s.init_probe, s.trained_probe) == ("0.210", "0.310")
    assert s.weakly_separated and s.n_balanced_seeds == 2 and s.chance_accuracy == 0.1
    assert not scale.separation(_diag(0.70)).weakly_separated
    with pytest.raises(ValueError, match="'trained'"):
        scale.separation(_diag(0.3).query("stage == 'initialisation'"))


class _Run:
    def __init__(self, wall, cpu):
        self.meta = {"wall_time_s": wall, "extra": {"cpu_time_s": cpu}}


def test_paired_costs_and_grid_estimate():
    summary = {"rh_mean": 0.9, "log_rh_sd_seeds": 0.01, "noise_log_rms": 0.05, "snr": 2.1, "n_seeds": 2}
    p = scale.paired([_Run(10.0, 6.0), _Run(20.0, float("nan")), _Run(30.0, 12.0)], summary, "smoke")
    rh = params.profile_values("representation_harm", "smoke")
    n = (1 + len(rh["minority_classes"])) * len(rh["seeds"])
    assert p.run_wall_mean == 20.0 and p.run_cpu_mean == 9.0  # a run without CPU time is left out
    assert p.grid_runs.startswith(f"{n} runs (") and p.grid_estimate_min == pytest.approx(9.0 * n / 60)
    assert (p.rh_partner, p.noise_rms, p.snr) == (0.9, 0.05, 2.1)
    with pytest.raises(ValueError, match="runs is empty"):
        scale.paired([], summary, "smoke")


def test_pilot_history_is_read_from_profiles_and_checked(tmp_path):
    h = scale.pilot_history()
    assert h["pilot_rh"] == pytest.approx(0.930) and len(h["pilot_seeds"]) == 2
    bad = tmp_path / "profiles.yml"
    bad.write_text("scale_study:\n  history: {pilot_rh: 0.93}\n")
    with pytest.raises(ValueError, match="lacks.*pilot_seeds"):
        scale.pilot_history(bad)


def _sep_and_scale():
    return scale.separation(_diag(0.30)), scale.scale(_P())


@pytest.mark.parametrize("hi, replicated", [(0.97, True), (1.02, False)])
def test_pilot_replicates_only_when_the_interval_lies_below_one(hi, replicated):
    history = {"pilot_rh": 0.93, "pilot_seeds": [0, 1], "pilot_minority": "automobile", "pilot_partner": "truck",
               "pilot_setting": "x"}
    rep = {"minority": "automobile", "partner": "truck", "rh": 0.95, "lo": 0.90, "hi": hi, "n_seeds": 3}
    p = scale.pilot(history, rep, *_sep_and_scale())
    assert p.replicated is replicated and p.pilot_n_seeds == 2
    assert p.rh5 == f"0.950 (95% CI 0.900–{hi:.3f}, 3 seeds)"
    assert ("did not replicate" in p.finding) is not replicated
    assert "RH(automobile, truck) = 0.930 on 2 seeds" in p.finding and "barely separate" in p.finding
    one = scale.pilot(history, {**rep, "lo": 0.95, "hi": 0.95, "n_seeds": 1}, *_sep_and_scale())
    assert not one.replicated and "cannot be tested on one seed" in one.finding
    from rharm.page.headline import FINDING_MAX_WORDS, word_count

    assert max(word_count(p.finding), word_count(one.finding)) <= FINDING_MAX_WORDS
    with pytest.raises(ValueError, match="not the pilot's"):
        scale.pilot(history, {**rep, "partner": "ship"}, *_sep_and_scale())


def test_pilot_replication_finds_a_planted_collapse(monkeypatch):
    runs = testing.synthetic_runs(minorities=("automobile",), collapse={"automobile": "truck"}, strength=0.6,
                                  seeds=(0, 1, 2), n_test=40, dim=16)
    monkeypatch.setattr(reuse.experiment, "run_grid", lambda grid: runs)
    rep = reuse.pilot_replication("smoke", "automobile", "truck")
    assert rep["n_seeds"] == 3 and rep["lo"] <= rep["rh"] <= rep["hi"] < 1
    null = testing.synthetic_runs(minorities=("automobile",), seeds=(0, 1, 2), n_test=40, dim=16)
    monkeypatch.setattr(reuse.experiment, "run_grid", lambda grid: null)
    rep0 = reuse.pilot_replication("smoke", "automobile", "truck")
    assert rep0["lo"] < 1 < rep0["hi"] or np.isclose(rep0["rh"], 1, atol=0.05)
