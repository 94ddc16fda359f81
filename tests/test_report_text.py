"""rharm.report.text: the text chapter's section summaries on synthetic SimCSE runs with planted collapses."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rharm.language import data as textdata
from rharm.report import text as report
from rharm.runs import text

ORDER = textdata.groups_of(["doctor", "nurse", "teacher"])
MINORITY = "doctor|female"


def _run(centres: dict, seed: int, minority=None, n=150, noise=0.3, loss=(2.0, 1.0), drift=0.9):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.array(ORDER, dtype=object), n)
    emb = np.stack([centres[g] for g in groups]) + noise * rng.standard_normal((len(groups), 16))
    return text.TextRun(minority=minority, seed=seed, dir=Path("."), embeddings=emb.astype(np.float32),
                        groups=groups, loss=np.asarray(loss, dtype=float), drift=drift, steps_per_s=2.0)


def _centres(seed=0):
    rng = np.random.default_rng(100 + seed)
    c = {g: rng.standard_normal(16) for g in ORDER}
    c["nurse|female"] = 0.5 * c["nurse|female"] + 0.5 * c[MINORITY]  # the minority's nearest other profession
    return c


def _collapse(centres, toward, amount=0.6):
    out = dict(centres)
    out[MINORITY] = (1 - amount) * centres[MINORITY] + amount * centres[toward]
    return out


def _runs(toward="doctor|male", seeds=(0, 1, 2), amount=0.6, noise=0.3):
    """Paired runs per seed; the seed moves the class centres a little, and the minority collapses toward
    ``toward`` in the underrepresented run."""
    pairs = []
    for s in seeds:
        c = _centres(s % 2)  # two centre draws: balanced seeds differ, so the noise floor is not trivially 1
        pairs.append((_run(c, s, noise=noise), _run(_collapse(c, toward, amount), s, MINORITY, noise=noise)))
    return report.Runs(pairs=pairs, signal=None)


def test_data_summary_counts_the_slice_and_rejects_an_unknown_minority():
    frame = pd.DataFrame({"profession": ["doctor"] * 5 + ["nurse"] * 4 + ["teacher"] * 3,
                          "gender": ["female", "male", "male", "male", "female", "female", "female", "female",
                                     "male", "female", "male", "male"]})
    s = report.data_summary(frame, ["doctor", "nurse", "teacher"], minority=MINORITY, ratio=100,
                            n_train_per_group=250)
    # doctor 2 f / 3 m, nurse 3 f / 1 m, teacher 1 f / 2 m: the smallest group has 1 sentence
    assert (s.n_sentences, s.n_groups, s.n_professions, s.smallest_group) == (12, 6, 3, 1)
    assert s.minority == "doctor (female)" and s.minority_group == MINORITY
    assert s.minority_train == "2 sentences" and s.ratio == 100
    assert report.data_summary(frame, ["doctor"], minority=MINORITY, ratio=1000,
                               n_train_per_group=250).minority_train == "1 sentence"  # at least one is kept
    with pytest.raises(ValueError, match=r"minority='vet\|female'.*valid: \['doctor\|female'"):
        report.data_summary(frame, ["doctor", "nurse"], minority="vet|female", ratio=10, n_train_per_group=8)


def test_train_runs_pairs_every_seed_and_adds_the_original_recipe_only_when_it_differs(monkeypatch):
    calls = []

    def fake_run(data, train, *, minority, ratio, seed):
        calls.append((train["augmentation"], train["reinit_layers"], train["steps"], minority, seed))
        return f"run{len(calls)}"

    monkeypatch.setattr(report.text, "run_simcse", fake_run)
    train = text.train_config(steps=40, augmentation="token_deletion", reinit_layers=2)
    runs = report.train_runs({}, train, minority=MINORITY, ratio=10, seeds=[3, 4], signal_steps=20)
    assert runs.pairs == [("run1", "run2"), ("run3", "run4")]
    assert [c[3:] for c in calls[:4]] == [(None, 3), (MINORITY, 3), (None, 4), (MINORITY, 4)]
    assert calls[4] == ("dropout", 0, 20, None, 3) and runs.signal == "run5"
    calls.clear()
    original = text.train_config(steps=40, augmentation="dropout", reinit_layers=0)
    assert report.train_runs({}, original, minority=MINORITY, ratio=10, seeds=[0], signal_steps=20).signal is None
    assert len(calls) == 2
    with pytest.raises(ValueError, match="seeds"):
        report.train_runs({}, train, minority=MINORITY, ratio=10, seeds=[], signal_steps=0)


def test_training_signal_means_and_nan_without_steps_or_comparison_run():
    c = _centres()
    runs = report.Runs(pairs=[(_run(c, 0, loss=[3.0, 1.0]), _run(c, 0, loss=[5.0, 2.0], drift=0.7))],
                       signal=_run(c, 0, loss=[0.5, 0.4, 0.3], drift=0.99))
    s = report.training_signal(runs)
    assert (s.loss_start, s.loss_end, s.drift, s.steps_per_s) == (4.0, 1.5, pytest.approx(0.8), 2.0)
    assert (s.signal_loss_start, s.signal_loss_end, s.signal_drift) == (0.5, 0.3, 0.99)
    none = report.training_signal(report.Runs(pairs=[(_run(c, 0, loss=[]), _run(c, 0, loss=[]))], signal=None))
    assert np.isnan(none.loss_start) and np.isnan(none.loss_end) and np.isnan(none.signal_drift)
    curves = report.loss_curves(runs, "token_deletion")
    assert len(curves) == 2 + 2 + 3 and curves["run"].str.contains("original recipe").sum() == 3


def test_group_harm_finds_the_planted_collapse_and_its_interval_is_geometric():
    runs = _runs(toward="doctor|male")
    harm = report.group_harm_summary(runs, ORDER, MINORITY)
    assert "doctor|male" in harm.groups_rh_below_one
    paired = harm.rh_by_group[harm.rh_by_group["kind"] == "paired"].set_index("group")
    # the geometric mean, derived independently from the per-seed RH of the minority row
    i, j = ORDER.index(MINORITY), ORDER.index("doctor|male")
    rh = [(1 - text.group_cosines(imb, ORDER)[i, j]) / (1 - text.group_cosines(bal, ORDER)[i, j])
          for bal, imb in runs.pairs]
    assert paired.loc["doctor|male", "mean"] == pytest.approx(np.exp(np.mean(np.log(rh))), rel=1e-9)
    assert paired.loc["doctor|male", "lo"] > 0
    floor = harm.rh_by_group[harm.rh_by_group["kind"] == "noise_floor"]
    assert len(floor) == len(ORDER) and (floor["lo"] <= floor["mean"]).all() and (floor["mean"] <= floor["hi"]).all()
    one = report.group_harm_summary(_runs(seeds=(0,)), ORDER, MINORITY)
    assert one.groups_rh_below_one == [] and set(one.rh_by_group["kind"]) == {"paired"}  # one seed: no test
    with pytest.raises(ValueError, match="rh must be > 0"):
        report.log_summary(pd.DataFrame({"g": ["a", "a"], "rh": [1.0, 0.0]}), ["g"], "rh")


@pytest.mark.parametrize("toward, axis", [("doctor|male", "x"), ("nurse|female", "y")])
def test_plane_summary_puts_the_planted_collapse_on_its_axis(toward, axis):
    runs = _runs(toward=toward)
    plane = report.plane_summary(runs, ORDER, MINORITY)
    assert plane.other_group == "doctor|male" and plane.n_seeds == "3 seeds"
    assert plane.nearest_share.endswith("of 3")
    mean, hi = getattr(plane, f"{axis}_mean"), getattr(plane, f"{axis}_hi")
    other = getattr(plane, f"{'y' if axis == 'x' else 'x'}_mean")
    assert hi < 1 and mean < other
    column = "other_gender" if axis == "x" else "nearest_profession"
    assert mean == pytest.approx(np.exp(np.log(plane.per_seed[column]).mean()), rel=1e-12)
    assert list(plane.interval_frame().columns) == ["x", "x_lo", "x_hi", "y", "y_lo", "y_hi"]


def test_allocation_summary_zero_for_identical_runs_and_negative_nie_for_a_collapse():
    c = _centres()
    same = report.Runs(pairs=[(_run(c, s), _run(c, s)) for s in (0, 1)], signal=None)
    a = report.allocation_summary(same, ORDER, minority=MINORITY, ratio=1, test_size=0.25, C=1.0)
    assert a.TE_mean == 0 and a.NIE_mean == 0 and a.NDE_mean == 0
    assert set(a.effects_by_group["quantity"]) == {"y00", "TE", "NIE", "NDE"}
    collapsed = _runs(toward="nurse|female", amount=0.95, noise=0.6, seeds=(0, 1))
    b = report.allocation_summary(collapsed, ORDER, minority=MINORITY, ratio=10, test_size=0.25, C=1.0)
    # the representation alone costs the minority accuracy, and the by-group table holds the same number
    assert b.NIE_mean < -0.2 and b.TE_mean <= b.NIE_mean + 0.05
    table = b.effects_by_group.set_index(["quantity", "group"])
    assert table.loc[("NIE", MINORITY), "mean"] == b.NIE_mean and table.loc[("NIE", MINORITY), "n"] == 2


def _sections(te, nie, below=(), seeds=3):
    data = report.DataScale(n_sentences=1, n_groups=6, n_professions=3, smallest_group=1, minority_train="1 sentence",
                            minority="doctor (female)", minority_group=MINORITY, ratio=100, n_train_per_group=100)
    harm = report.GroupHarm(rh_by_group=pd.DataFrame(), groups_rh_below_one=list(below))
    plane = report.HarmPlane(x_mean=0.9, x_lo=0.8, x_hi=1.05, y_mean=1.0, y_lo=float("nan"), y_hi=float("nan"),
                             other_group="doctor|male", nearest_group="nurse|female", nearest_share="3 of 3",
                             n_seeds="3 seeds", per_seed=pd.DataFrame())
    vals = {f"{q}_{k}": 0.0 for q in report.QUANTITIES for k in ("mean", "lo", "hi")}
    vals.update(TE_mean=te, NIE_mean=nie, NIE_lo=nie - 0.01, NIE_hi=nie + 0.01)
    return data, harm, plane, report.Allocation(**vals, effects_by_group=pd.DataFrame()), seeds


def test_finding_words_each_case():
    f = report.finding_summary(*_sections(te=-0.2, nie=-0.01)).finding
    assert f.startswith("With doctor (female) kept at 1:100 in SimCSE training (3 seeds), no group's RH interval")
    assert "other gender RH is 0.900 (0.800 to 1.050), toward the nearest profession 1.000. " in f
    assert "loses 0.200" in f and "NIE -0.010 (-0.020 to 0.000)" in f and f.endswith("the probe's own.")
    assert report.finding_summary(*_sections(te=-0.2, nie=-0.15)).finding.endswith("a large part of it.")
    up = report.finding_summary(*_sections(te=0.05, nie=0.0, below=["doctor|male", "nurse|female"], seeds=1))
    assert "(1 seed), RH lies below 1 beyond seed noise toward doctor|male, nurse|female:" in up.finding
    assert up.finding.endswith("changes by TE 0.050.")
    assert "no RH can be tested with one seed" in report.finding_summary(*_sections(-0.2, 0.0, seeds=1)).finding
