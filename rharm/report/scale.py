"""The scale-study chapter's numbers, one summary per section (glue prefix ``ss``).

``notebooks/scale_study.py`` asks why the CIFAR-10 chapters find no harm on two CPU cores: what one training step
costs (:func:`throughput`), how much class structure training adds to the representation (:func:`separation_table`,
:func:`separation`), a paired effect against its noise floor (:func:`paired`), and whether the pilot that chose the
cpu profile replicates with every seed (:func:`rharm.study.reuse.pilot_replication`, :func:`pilot`). The pilot's own
number is
history, not a result of this page: it is read from the ``history`` mapping of the ``scale_study`` section of
``profiles.yml`` (:func:`pilot_history`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from rharm.core import params, sampling
from rharm.harm import metrics
from rharm.page import headline, tables
from rharm.runs import images as experiment
from rharm.study import design as study

#: images in CIFAR-10's training split (Krizhevsky, 2009): one full epoch of the paper's training
N_CIFAR10_TRAIN = 50_000
#: CIFAR-10 classes; a linear probe at chance has accuracy 1 / N_CLASSES
N_CLASSES = 10
#: keys the ``history`` mapping of profiles.yml's scale_study section must hold
HISTORY_KEYS = ("pilot_rh", "pilot_seeds", "pilot_minority", "pilot_partner", "pilot_setting")


def _fmt(v: float) -> str:
    return f"{float(v):.3f}"


def _runs_of(values: Mapping[str, Any]) -> tuple[int, int, int]:
    """(runs, conditions, seeds) of a grid profile: the balanced model and each minority class, for every seed."""
    conditions = 1 + len(values["minority_classes"])
    seeds = len(values["seeds"])
    return conditions * seeds, conditions, seeds


# ---------------------------------------------------------------------------------------------------------------
# scale of the page
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    """The grid this page runs, and the paper's grid size for contrast."""

    profile: str
    backbone: str
    epochs: int
    batch_size: int
    n_per_class: int
    ratio: int
    n_minority_kept: int  # images the minority class keeps: n_per_class // ratio, as the data pipeline draws them
    n_seeds: int
    minority: str
    partner: str
    paper_runs_per_ratio: int  # the paper's full grid (the representation-harm chapter's gpu profile)


def scale(P) -> Scale:
    """The page's scale from its parameters ``P`` (:class:`rharm.core.params.Params`)."""
    paper, _, _ = _runs_of(params.profile_values("representation_harm", "gpu"))
    return Scale(profile=str(P.profile), backbone=headline.model_words(P.backbone), epochs=int(P.epochs),
                 batch_size=int(P.batch_size), n_per_class=int(P.n_per_class), ratio=int(P.ratio),
                 n_minority_kept=sampling.kept_count(int(P.n_per_class), P.ratio), n_seeds=len(P.seeds),
                 minority=str(P.minority_classes[0]), partner=str(P.partner_class), paper_runs_per_ratio=paper)


# ---------------------------------------------------------------------------------------------------------------
# 1. throughput
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    """Best images per second of each backbone (over batch sizes) and what a full epoch of ResNet-18 costs."""

    tp_small: float  # small_cnn, images/s (NaN when not timed)
    tp_resnet18: float  # CIFAR ResNet-18, images/s (NaN when not timed)
    tp_ratio: float  # tp_small / tp_resnet18
    epoch_min_resnet18: float  # minutes for N_CIFAR10_TRAIN images of ResNet-18
    throughput: pd.DataFrame  # the timing table (written to the JSON, not glued)


def throughput(tp: pd.DataFrame) -> Throughput:
    """Summarise :func:`rharm.runs.images.throughput_table` (columns backbone, batch_size, images_per_s, ...)."""
    missing = [c for c in ("backbone", "images_per_s") if c not in tp.columns]
    if missing:
        raise ValueError(f"throughput table lacks column(s) {missing}; expected those of experiment.throughput_table")
    best = tp.groupby("backbone")["images_per_s"].max()
    small = float(best.get("small_cnn", np.nan))
    r18 = float(best.get("resnet18", np.nan))
    return Throughput(tp_small=small, tp_resnet18=r18, tp_ratio=small / r18,
                      epoch_min_resnet18=N_CIFAR10_TRAIN / r18 / 60, throughput=tp)


# ---------------------------------------------------------------------------------------------------------------
# 2. what training added
# ---------------------------------------------------------------------------------------------------------------


def separation_table(grid: Mapping[str, Any], balanced_runs) -> pd.DataFrame:
    """Class separation and linear-probe accuracy of each balanced run, at initialisation and after training.

    ``grid`` is the page's grid (:func:`rharm.runs.images.grid_from_params`); ``balanced_runs`` its balanced runs
    (one per seed). Returns one row per (seed, stage) with columns seed, stage ("initialisation" | "trained"),
    within, between, gap (:func:`rharm.study.design.separation` of the test features) and probe_accuracy.
    """
    rows = []
    for run in balanced_runs:
        untrained = experiment.init_features({**grid, "minority_classes": []}, run.seed)
        for stage, f in (("initialisation", untrained), ("trained", run.features)):
            sep = study.separation(f["test_backbone"], f["test_labels"], N_CLASSES)
            acc = metrics.linear_probe_accuracy(f["train_backbone"], f["train_labels"], f["test_backbone"],
                                                f["test_labels"])
            rows.append({"seed": run.seed, "stage": stage, **sep, "probe_accuracy": float(acc)})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Separation:
    """Mean over seeds of the class structure before and after training (three decimals, as the prose shows)."""

    init_within: str
    init_between: str
    init_gap: str
    trained_gap: str
    init_probe: str
    trained_probe: str
    chance_accuracy: float
    weakly_separated: bool  # the trained probe stays below 0.5
    n_balanced_seeds: int
    separation: pd.DataFrame  # per seed and stage (JSON only)
    separation_mean: pd.DataFrame  # one row per stage, mean over seeds (JSON only)


def separation(diag: pd.DataFrame) -> Separation:
    """Summarise :func:`separation_table`: the mean over seeds per stage."""
    stages = set(diag["stage"]) if "stage" in diag.columns else set()
    if not {"initialisation", "trained"} <= stages:
        raise ValueError(f"separation table needs stages 'initialisation' and 'trained', got {sorted(stages)}")
    mean = diag.groupby("stage", sort=False)[["within", "between", "gap", "probe_accuracy"]].mean().reset_index()
    init, trained = mean.set_index("stage").loc["initialisation"], mean.set_index("stage").loc["trained"]
    return Separation(init_within=_fmt(init["within"]), init_between=_fmt(init["between"]),
                      init_gap=_fmt(init["gap"]), trained_gap=_fmt(trained["gap"]),
                      init_probe=_fmt(init["probe_accuracy"]), trained_probe=_fmt(trained["probe_accuracy"]),
                      chance_accuracy=1 / N_CLASSES, weakly_separated=bool(trained["probe_accuracy"] < 0.5),
                      n_balanced_seeds=int(diag["seed"].nunique()), separation=diag, separation_mean=mean)


# ---------------------------------------------------------------------------------------------------------------
# 3. paired comparison
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Paired:
    """The paired effect on (minority, partner) against the noise floor, and what the runs cost."""

    rh_partner: float
    noise_rms: float
    snr: float
    run_wall_mean: float  # seconds per run
    run_cpu_mean: float  # process CPU seconds per run
    grid_runs: str  # the representation-harm chapter's grid of this profile, in words
    grid_estimate_min: float  # its cost in CPU-minutes at run_cpu_mean
    paired_summary: dict  # rharm.runs.images.paired_summary (JSON only)


def paired(runs, summary: Mapping[str, Any], profile: str) -> Paired:
    """Summarise the paired grid's ``runs`` and :func:`rharm.runs.images.paired_summary` ``summary``; ``profile``
    names the representation-harm chapter's profile whose grid cost is estimated."""
    if not runs:
        raise ValueError("runs is empty: the paired comparison trained no model")
    wall = [float(r.meta["wall_time_s"]) for r in runs]
    cpu = [float(r.meta.get("extra", {}).get("cpu_time_s", np.nan)) for r in runs]
    n_runs, conditions, seeds = _runs_of(params.profile_values("representation_harm", profile))
    cpu_mean = float(np.nanmean(cpu)) if np.isfinite(cpu).any() else float("nan")
    return Paired(rh_partner=float(summary["rh_mean"]), noise_rms=float(summary["noise_log_rms"]),
                  snr=float(summary["snr"]), run_wall_mean=float(np.mean(wall)), run_cpu_mean=cpu_mean,
                  grid_runs=f"{tables.plural(n_runs, 'run')} ({conditions} conditions x "
                            f"{tables.plural(seeds, 'seed')})",
                  grid_estimate_min=cpu_mean * n_runs / 60, paired_summary=dict(summary))


# ---------------------------------------------------------------------------------------------------------------
# the pilot that chose the cpu profile, replicated with every seed; the finding
# ---------------------------------------------------------------------------------------------------------------


def pilot_history(path=None) -> dict:
    """The ``history`` mapping of profiles.yml's scale_study section: the pilot run before the profile was fixed."""
    history = params.load_profiles(path)["scale_study"].get("history")
    if not isinstance(history, Mapping):
        raise ValueError(f"profiles.yml: scale_study.history must be a mapping with keys {list(HISTORY_KEYS)}, "
                         f"got {history!r}")
    missing = [k for k in HISTORY_KEYS if k not in history]
    if missing:
        raise ValueError(f"profiles.yml: scale_study.history lacks {missing}; expected keys {list(HISTORY_KEYS)}")
    return dict(history)


@dataclass(frozen=True)
class Pilot:
    """The pilot's number (history), its replication with every seed, and the page's finding."""

    pilot_rh: float
    pilot_n_seeds: int
    pilot_minority: str
    pilot_partner: str
    pilot_setting: str
    rh5: str  # the replication, "0.972 (95% CI 0.930–1.010, 3 seeds)"
    replicated: bool  # the replication's interval (two seeds or more) lies below 1
    pilot_replication: dict  # :func:`rharm.study.reuse.pilot_replication` (JSON only)
    finding: str


def pilot(history: Mapping[str, Any], replication: Mapping[str, Any], sep: Separation, sc: Scale) -> Pilot:
    """Set the pilot (``history``, :func:`pilot_history`) against its ``replication``
    (:func:`rharm.study.reuse.pilot_replication`)
    and write the finding (at most :data:`rharm.page.headline.FINDING_MAX_WORDS` words) from the separation ``sep``
    and the page's scale ``sc``."""
    if (replication["minority"], replication["partner"]) != (history["pilot_minority"], history["pilot_partner"]):
        raise ValueError(f"the replication's cell ({replication['minority']}, {replication['partner']}) is not the "
                         f"pilot's ({history['pilot_minority']}, {history['pilot_partner']})")
    n = int(replication["n_seeds"])
    rh, lo, hi = (float(replication[k]) for k in ("rh", "lo", "hi"))
    replicated = n >= 2 and hi < 1  # one seed has no interval: nothing to replicate with
    pilot_rh, pilot_seeds = float(history["pilot_rh"]), len(history["pilot_seeds"])
    cell = f"RH({history['pilot_minority']}, {history['pilot_partner']})"
    finding = (
        "At this scale the classes "
        + ("barely separate" if sep.weakly_separated else "separate")
        + f": the within- minus between-class cosine gap grows from {sep.init_gap} to {sep.trained_gap} with "
        f"training, and a linear probe reaches {sep.trained_probe} (untrained {sep.init_probe}, chance "
        f"{sep.chance_accuracy:g}). The pilot that chose this setting, {cell} = {pilot_rh:.3f} on "
        f"{tables.plural(pilot_seeds, 'seed')}, "
        + ("replicated" if replicated else "did not replicate" if n >= 2 else "cannot be tested on one seed")
        + f": {_fmt(rh)}" + (f" (95% CI {_fmt(lo)} to {_fmt(hi)})" if n >= 2 else "")
        + f" on {tables.plural(n, 'seed')}.")
    return Pilot(pilot_rh=pilot_rh, pilot_n_seeds=pilot_seeds, pilot_minority=str(history["pilot_minority"]),
                 pilot_partner=str(history["pilot_partner"]), pilot_setting=str(history["pilot_setting"]),
                 rh5=f"{_fmt(rh)} (95% CI {_fmt(lo)}–{_fmt(hi)}, {tables.plural(n, 'seed')})", replicated=replicated,
                 pilot_replication=dict(replication), finding=finding)
