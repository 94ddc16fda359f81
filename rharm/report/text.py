"""The text chapter's sections as data (``notebooks/text_harm.py``, glue prefix ``tx``).

Each ``*_summary`` function takes a section's inputs and returns a frozen dataclass whose fields are what the prose
and ``book/<profile>/text_harm.json`` need; the chapter passes them all to :func:`rharm.page.headline.publish`. The
training loop (:func:`train_runs`) and the probe loop (:func:`allocation_summary`) live here too, so the chapter only
shows tables and charts. The science (SimCSE runs, RH, the two-coordinate metric, TE / NIE / NDE) is in
:mod:`rharm.runs.text`; this module chooses, aggregates and words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from rharm.core import sampling, schema
from rharm.harm import stats
from rharm.language import data as textdata
from rharm.page import tables
from rharm.runs import text

QUANTITIES = ("y00", "TE", "NIE", "NDE")


def configs(P: Any) -> tuple[dict, dict]:
    """The data and SimCSE training configs (:func:`rharm.runs.text.data_config`,
    :func:`rharm.runs.text.train_config`) of
    the chapter's parameters ``P``."""
    data = text.data_config(source=P.source, path=P.biasbios_path, variant=P.bug_variant, corpus=P.corpus,
                            n_professions=P.n_professions, cl_fraction=P.cl_fraction,
                            n_train_per_group=P.n_train_per_group, n_eval_per_group=P.n_eval_per_group)
    train = text.train_config(model=P.model, pooling=P.pooling, max_length=P.max_length, batch_size=P.batch_size,
                              steps=P.steps, lr=P.lr, temperature=P.temperature, augmentation=P.augmentation,
                              deletion_prob=P.deletion_prob, reinit_layers=P.reinit_layers)
    return data, train


def group_label(group: str) -> str:
    """``"doctor|female"`` -> ``"doctor (female)"``, the way the page names a group."""
    return group.replace("|", " (") + ")" if "|" in group else group


# --- data and scale ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataScale:
    """The slice of sentences and the underrepresentation (section "Data and scale")."""

    n_sentences: int
    n_groups: int
    n_professions: int
    smallest_group: int
    minority_train: str  #: e.g. "1 sentence": what the underrepresented run keeps of the minority
    minority: str  #: the minority as the page names it, "doctor (female)"
    minority_group: str  #: the minority as a group name, "doctor|female"
    ratio: int
    n_train_per_group: int


def data_summary(frame: pd.DataFrame, professions: Sequence[str], *, minority: str, ratio: int,
                 n_train_per_group: int) -> DataScale:
    """Counts of the loaded slice ``frame`` (one row per deduplicated sentence, columns ``profession`` and
    ``gender``) for the kept ``professions``; raises before any training when ``minority`` is not one of its groups.
    """
    groups = textdata.groups_of(professions)
    if minority not in groups:
        raise ValueError(f"minority={minority!r} is not a group of this slice; valid: {groups}")
    schema.check("ratio", ratio)
    counts = textdata.group_counts(frame).loc[list(professions)]
    return DataScale(n_sentences=len(frame), n_groups=len(groups), n_professions=len(professions),
                     smallest_group=int(counts["smaller"].min()),
                     minority_train=tables.plural(sampling.kept_count(int(n_train_per_group), ratio, minimum=1),
                                                  "sentence"),
                     minority=group_label(minority), minority_group=minority, ratio=int(ratio),
                     n_train_per_group=int(n_train_per_group))


# --- training ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Runs:
    """The chapter's SimCSE runs: ``pairs`` (balanced, underrepresented) per seed, sharing that seed's held-out
    split, and ``signal``, the original recipe's balanced run for comparison (None when not run)."""

    pairs: list
    signal: Any


def train_runs(data: dict, train: dict, *, minority: str, ratio: int, seeds: Sequence[int],
               signal_steps: int) -> Runs:
    """Train (or load from the result store) one balanced and one underrepresented SimCSE run per seed, and the
    comparison run with the original recipe (dropout views, intact encoder) when the main recipe differs from it
    and ``signal_steps`` > 0."""
    if not seeds:
        raise ValueError(f"seeds={list(seeds)!r} must name at least one seed")
    pairs = [(text.run_simcse(data, train, minority=None, ratio=ratio, seed=seed),
              text.run_simcse(data, train, minority=minority, ratio=ratio, seed=seed)) for seed in seeds]
    original_recipe = train["augmentation"] == "dropout" and train["reinit_layers"] == 0
    signal = None
    if signal_steps > 0 and not original_recipe:
        signal_train = {**train, "augmentation": "dropout", "reinit_layers": 0, "steps": int(signal_steps)}
        signal = text.run_simcse(data, text.train_config(**signal_train), minority=None, ratio=ratio, seed=seeds[0])
    return Runs(pairs=pairs, signal=signal)


def loss_curves(runs: Runs, augmentation: str) -> pd.DataFrame:
    """Long frame (step, loss, run) of every run's per-step loss, for :func:`rharm.page.charts.loss_chart`."""
    def curve(run, label):
        return pd.DataFrame({"step": np.arange(1, len(run.loss) + 1), "loss": run.loss, "run": label})

    curves = [curve(b, f"{augmentation}, balanced, seed {b.seed}") for b, _ in runs.pairs]
    curves += [curve(i, f"{augmentation}, underrepresented, seed {i.seed}") for _, i in runs.pairs]
    if runs.signal is not None:
        curves.append(curve(runs.signal, "original recipe (dropout only, intact encoder), balanced, "
                                         f"seed {runs.signal.seed}"))
    return pd.concat(curves, ignore_index=True)


@dataclass(frozen=True)
class TrainingSignal:
    """Whether SimCSE learned (section "Training signal"); NaN where there is nothing to measure."""

    loss_start: float  #: mean first-step loss of the main runs
    loss_end: float  #: mean last-step loss of the main runs
    drift: float  #: mean before/after cosine of held-out embeddings (1 = unchanged)
    steps_per_s: float
    signal_loss_start: float  #: the same for the original-recipe comparison run
    signal_loss_end: float
    signal_drift: float


def training_signal(runs: Runs) -> TrainingSignal:
    """Loss at the first and last step (mean over the main runs), drift and speed, and the comparison run's."""
    main = [r for pair in runs.pairs for r in pair]
    trained = all(len(r.loss) for r in main)  # steps = 0: no loss was recorded
    nan = float("nan")
    sig = runs.signal
    sig_trained = sig is not None and len(sig.loss) > 0
    return TrainingSignal(
        loss_start=float(np.mean([r.loss[0] for r in main])) if trained else nan,
        loss_end=float(np.mean([r.loss[-1] for r in main])) if trained else nan,
        drift=float(np.mean([r.drift for r in main])), steps_per_s=float(np.mean([r.steps_per_s for r in main])),
        signal_loss_start=float(sig.loss[0]) if sig_trained else nan,
        signal_loss_end=float(sig.loss[-1]) if sig_trained else nan,
        signal_drift=float(sig.drift) if sig is not None else nan)


# --- representation harm toward every group ---------------------------------------------------------------------


def log_summary(frame: pd.DataFrame, by: Sequence[str], value: str) -> pd.DataFrame:
    """Geometric mean and t-interval of ``value`` for each combination of ``by``, computed on log(value) and mapped
    back (RH > 0, so the interval stays > 0): columns ``by`` + mean, lo, hi, n."""
    if (frame[value] <= 0).any():
        raise ValueError(f"{value} must be > 0 for a log-scale summary; got min {frame[value].min()!r}")
    s = text.summarise(frame.assign(_log=np.log(frame[value])), by, "_log")
    s[["mean", "lo", "hi"]] = np.exp(s[["mean", "lo", "hi"]])
    return s


def range_summary(frame: pd.DataFrame, by: Sequence[str], value: str) -> pd.DataFrame:
    """Mean and the observed range (min to max) of ``value`` for each combination of ``by``: for a handful of
    values, where an interval means little. Columns ``by`` + mean, lo, hi, n."""
    g = frame.groupby(list(by), sort=False)[value]
    return pd.DataFrame({"mean": g.mean(), "lo": g.min(), "hi": g.max(), "n": g.size()}).reset_index()


PAIRED_LABEL = "underrepresented vs balanced (geometric mean, 95% interval)"
FLOOR_LABEL = "noise floor: balanced vs balanced (mean, range)"


@dataclass(frozen=True)
class GroupHarm:
    """RH of the minority toward every group (section "Representation harm toward every group")."""

    rh_by_group: pd.DataFrame  #: kind, group, mean, lo, hi, n, label: paired (log-t) and noise floor (range)
    groups_rh_below_one: list  #: groups whose paired interval lies entirely below 1


def group_harm_summary(runs: Runs, group_order: Sequence[str], minority: str) -> GroupHarm:
    """Per group h: the geometric mean and 95% interval of RH(minority, h) over paired seeds, and the noise floor
    (consecutive balanced seeds, :func:`rharm.runs.text.harm_table`) as its observed range."""
    table = text.harm_table(runs.pairs, group_order, minority)
    paired = table[table["kind"] == "paired"]
    floor = table[table["kind"] != "paired"]
    parts = [log_summary(paired, ["kind", "group"], "rh")]
    if len(floor):  # one seed: no consecutive pair, no floor
        parts.append(range_summary(floor, ["kind", "group"], "rh"))
    summary = pd.concat(parts, ignore_index=True)
    summary["label"] = np.where(summary["kind"] == "paired", PAIRED_LABEL, FLOOR_LABEL)
    below = summary[(summary["kind"] == "paired") & (summary["hi"] < 1)]["group"].tolist()
    return GroupHarm(rh_by_group=summary, groups_rh_below_one=below)


# --- the two-coordinate metric ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HarmPlane:
    """Our two coordinates over seeds (section "Our two-coordinate text metric"); intervals on log RH."""

    x_mean: float  #: geometric mean RH toward the same profession of the other gender
    x_lo: float
    x_hi: float
    y_mean: float  #: geometric mean RH toward the nearest profession of the same gender
    y_lo: float
    y_hi: float
    other_group: str
    nearest_group: str  #: the nearest profession's group most seeds chose
    nearest_share: str  #: "2 of 3": in how many seeds it was the nearest
    n_seeds: str  #: "3 seeds"
    per_seed: pd.DataFrame  #: seed, other_gender, nearest_profession, other, nearest

    def interval_frame(self) -> pd.DataFrame:
        """One row (x, x_lo, x_hi, y, y_lo, y_hi) for :func:`rharm.page.charts.harm_plane_chart`."""
        return pd.DataFrame([{"x": self.x_mean, "x_lo": self.x_lo, "x_hi": self.x_hi, "y": self.y_mean,
                              "y_lo": self.y_lo, "y_hi": self.y_hi}])


def plane_summary(runs: Runs, group_order: Sequence[str], minority: str) -> HarmPlane:
    """The minority's two coordinates (:func:`rharm.runs.text.harm_coordinates`) per seed, and their geometric means
    with
    Student-t intervals on log RH mapped back (positive bounds)."""
    rows = []
    for bal, imb in runs.pairs:
        c = text.harm_coordinates(text.group_cosines(imb, group_order), text.group_cosines(bal, group_order),
                                  group_order, minority)
        rows.append({"seed": bal.seed, "other_gender": c["other_gender"],
                     "nearest_profession": c["nearest_profession"], "other": c["other"], "nearest": c["nearest"]})
    coords = pd.DataFrame(rows)
    x = list(stats.geometric_ci(np.log(coords["other_gender"])))
    y = list(stats.geometric_ci(np.log(coords["nearest_profession"])))
    nearest = coords["nearest"].value_counts()
    return HarmPlane(x_mean=x[0], x_lo=x[1], x_hi=x[2], y_mean=y[0], y_lo=y[1], y_hi=y[2],
                     other_group=str(coords["other"].iloc[0]), nearest_group=str(nearest.index[0]),
                     nearest_share=f"{nearest.iloc[0]} of {len(coords)}",
                     n_seeds=tables.plural(len(coords), "seed"), per_seed=coords)


# --- allocation harm --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Allocation:
    """The minority's profession-probe accuracy and its TE / NIE / NDE (section "Allocation harm"): mean over seeds
    and Student-t 95% interval (NaN bounds with one seed)."""

    y00_mean: float
    y00_lo: float
    y00_hi: float
    TE_mean: float
    TE_lo: float
    TE_hi: float
    NIE_mean: float
    NIE_lo: float
    NIE_hi: float
    NDE_mean: float
    NDE_lo: float
    NDE_hi: float
    effects_by_group: pd.DataFrame  #: quantity, group, mean, lo, hi, n for every group


def allocation_summary(runs: Runs, group_order: Sequence[str], *, minority: str, ratio: int, test_size: float,
                       C: float) -> Allocation:
    """Fit the profession probes of :func:`rharm.runs.text.allocation_effects` for every seed's pair and summarise
    y00, TE, NIE and NDE over seeds, by group."""
    rows = []
    for bal, imb in runs.pairs:
        eff = text.allocation_effects(bal, imb, group_order, minority=minority, ratio=ratio, test_size=test_size,
                                      seed=bal.seed, C=C)
        for name in QUANTITIES:
            rows += [{"seed": bal.seed, "group": g, "quantity": name, "value": float(v)}
                     for g, v in zip(group_order, eff[name])]
    by_group = text.summarise(pd.DataFrame(rows), ["quantity", "group"], "value")
    m = by_group[by_group["group"] == minority].set_index("quantity")
    values = {f"{q}_{k}": float(m.loc[q, k]) for q in QUANTITIES for k in ("mean", "lo", "hi")}
    return Allocation(**values, effects_by_group=by_group)


# --- the finding ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """The chapter's finding, one paragraph of plain text (glued as ``tx_finding``)."""

    finding: str


def _iv(lo: float, hi: float) -> str:
    """' (lo to hi)' when the interval exists (two seeds or more), else nothing."""
    return f" ({lo:.3f} to {hi:.3f})" if np.isfinite(lo) and np.isfinite(hi) else ""


def finding_summary(data: DataScale, harm: GroupHarm, plane: HarmPlane, alloc: Allocation,
                    n_seeds: int) -> Finding:
    """Word the finding from the sections: which groups the minority collapses toward beyond seed noise, its two
    coordinates, and how much of the probe's accuracy change the representation carries."""
    if harm.groups_rh_below_one:
        rh_part = f"RH lies below 1 beyond seed noise toward {', '.join(harm.groups_rh_below_one)}"
    elif n_seeds > 1:
        rh_part = "no group's RH interval lies below 1"
    else:
        rh_part = "no RH can be tested with one seed"
    out = (f"With {data.minority} kept at 1:{data.ratio} in SimCSE training ({tables.plural(n_seeds, 'seed')}), "
           f"{rh_part}: toward the same profession of the other gender RH is {plane.x_mean:.3f}"
           f"{_iv(plane.x_lo, plane.x_hi)}, toward the nearest profession {plane.y_mean:.3f}"
           f"{_iv(plane.y_lo, plane.y_hi)}. ")
    if alloc.TE_mean < 0:
        share = ("almost all of the loss is the probe's own." if abs(alloc.NIE_mean) < 0.25 * abs(alloc.TE_mean)
                 else "the representation carries a large part of it.")
        out += (f"The downstream probe loses {-alloc.TE_mean:.3f} of the minority's accuracy (TE {alloc.TE_mean:.3f}), "
                f"of which the representation carries NIE {alloc.NIE_mean:.3f}{_iv(alloc.NIE_lo, alloc.NIE_hi)}: "
                + share)
    else:
        out += f"The downstream probe's accuracy on the minority changes by TE {alloc.TE_mean:.3f}."
    return Finding(finding=out)
