"""The text chapter's sections as data (``notebooks/text_harm.py``, glue prefix ``tx``).

Each ``*_summary`` function takes a section's inputs and returns a frozen dataclass whose fields are what the prose
and ``book/<profile>/text_harm.json`` need; the chapter passes them all to :func:`rharm.page.headline.publish`. The
training loop (:func:`train_runs`) and the probe loop (:func:`allocation_summary`) live here too, so the chapter only
shows tables and charts. The science (SimCSE runs, RH, the two-coordinate metric, TE / NIE / NDE) is in
:mod:`rharm.runs.text`; this module chooses, aggregates and words.

The page runs REGISTRATION v2 (the mechanism tests T1-T3, :mod:`rharm.runs.text_mechanism`), summarised by the
functions after the v1 ones: :func:`mechanism_summary`, :func:`grh_summary`, :func:`dose_summary`,
:func:`separation_summary`, :func:`mechanism_reading`, :func:`mechanism_finding`; v1 (exploratory) is read from its
archived result (:func:`load_v1`). The v1 functions above still serve a user who runs v1's design.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


# ==============================================================================================================
# REGISTRATION v2: the mechanism tests (rharm.runs.text_mechanism)
# ==============================================================================================================

#: the encoders in words
ENCODER_WORDS = {"minilm": "MiniLM (top layer retrained)", "scratch": "small transformer (from scratch)"}
#: the estimator every RH on the v2 sections is
RH_ESTIMATOR = "geometric mean over seeds, 95% Student t-interval of per-seed log RH"
#: where v1's result of a profile is archived (the committed page of v1; read, never written)
V1_ARCHIVE = "archive/text_harm.v1.json"


def mechanism_params(P: Any) -> dict:
    """The settings :func:`rharm.runs.text_mechanism.prepare` and the runs take, from the chapter's parameters."""
    return {"variant": P.bug_variant, "corpus": P.corpus, "context": P.context, "professions": list(P.professions),
            "cl_fraction": P.cl_fraction, "n_train_per_group": P.n_train_per_group,
            "n_eval_per_group": P.n_eval_per_group, "split_seed": P.split_seed, "token_group": P.token_group,
            "ratio": P.ratio, "threads": P.threads,
            "minilm": {"top_layers": P.minilm_top_layers, "steps": P.minilm_steps, "batch_size": P.minilm_batch_size,
                       "lr": P.minilm_lr, "temperature": P.temperature, "deletion_prob": P.deletion_prob},
            "scratch": {"dim": P.scratch_dim, "layers": P.scratch_layers, "heads": P.scratch_heads,
                        "steps": P.scratch_steps, "batch_size": P.scratch_batch_size, "lr": P.scratch_lr,
                        "temperature": P.temperature, "deletion_prob": P.deletion_prob}}


def hypotheses_table(token_group: str, ratio: int, margin: float, token: str) -> pd.DataFrame:
    """The registered hypotheses in words: test, design, prediction, test statistic."""
    g = group_label(token_group)
    prof = textdata.split_group(token_group)[0]
    return pd.DataFrame([
        {"test": "T1", "design": f"{g} at 1:{ratio}, sentences as they are",
         "prediction": f"no pair-specific harm: RH toward {prof} (other gender) and toward the nearest same-gender "
                       f"group of another profession both within 1/{margin:g} to {margin:g}",
         "statistic": "two one-sided t-tests per coordinate (equivalence)"},
        {"test": "T2", "design": f"{prof} (both genders) at 1:{ratio}; classes are professions",
         "prediction": "RH toward the nearest profession < 1", "statistic": "one-sided paired t-test of log RH"},
        {"test": "T3", "design": f"{g} at 1:{ratio} with its word replaced by {token}, used by no other group "
                                 "(unique) or also by the other gender (shared)",
         "prediction": "unique: RH toward its nearest group < 1, and below the shared arm's",
         "statistic": "both one-sided paired t-tests (the larger p counts)"},
    ])


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.2g}"


@dataclass(frozen=True)
class Mechanism:
    """The registered tests (section "The mechanism, tested"): one row per measured quantity and one per verdict."""

    tests: pd.DataFrame  #: encoder, test, quantity, toward, estimate, lo, hi, p (before Holm)
    verdicts: pd.DataFrame  #: encoder, test, p, p_holm, holds
    groups_rh_below_one: list  #: T1's coordinates whose interval lies below 1 (the landing page reads it)
    verdict_words: dict  #: encoder -> {test: "holds"/"does not hold"}


def mechanism_summary(rows: Sequence[dict], verdicts: pd.DataFrame, token_group: str) -> Mechanism:
    """The tests of :func:`rharm.runs.text_mechanism.hypothesis_tests` and the verdicts of
    :func:`rharm.runs.text_mechanism.verdicts`, as tables and words."""
    tests = pd.DataFrame(rows).drop(columns=["log"])
    t1 = tests[(tests["test"] == "T1") & (tests["hi"] < 1)]
    below = sorted({f"{group_label(token_group)} toward {group_label(t)} ({ENCODER_WORDS[e]})"
                    for t, e in zip(t1["toward"], t1["encoder"])})
    words = {e: {r.test: ("holds" if r.holds else "does not hold") for r in sub.itertuples()}
             for e, sub in verdicts.groupby("encoder", sort=False)}
    return Mechanism(tests=tests, verdicts=verdicts, groups_rh_below_one=below, verdict_words=words)


#: the tested quantities (:func:`rharm.runs.text_mechanism.hypothesis_tests`) in a few words, for a chart axis
SHORT_QUANTITY = {"x: RH toward the same profession, other gender": "x, toward the other gender",
                  "y: RH toward the nearest profession, same gender": "y, toward the nearest profession",
                  "RH of the profession toward its nearest profession": "toward the nearest profession",
                  "RH toward it / RH toward the other professions (reported, not tested)":
                      "nearest / other professions",
                  "a: RH, unique token": "unique token", "shared token (reference)": "shared token",
                  "b: RH unique / RH shared": "unique / shared"}


def chart_rows(mech: Mechanism) -> pd.DataFrame:
    """The tested quantities for :func:`rharm.page.charts.interval_chart`: one row per encoder and quantity
    (``quantity`` names both, so the two encoders' intervals sit on separate lines), mean, lo, hi, encoder."""
    t = mech.tests
    short = t["quantity"].map(lambda q: SHORT_QUANTITY.get(q, q))
    return pd.DataFrame({"quantity": t["test"] + " " + short + " · " + t["encoder"].map(
                             {"minilm": "MiniLM", "scratch": "small transformer"}),
                         "encoder": t["encoder"].map(ENCODER_WORDS), "mean": t["estimate"], "lo": t["lo"],
                         "hi": t["hi"]})


def verdict_table(mech: Mechanism) -> pd.DataFrame:
    """One row per encoder and quantity: the estimate with its interval, p before and after Holm, the verdict."""
    v = mech.verdicts.set_index(["encoder", "test"])
    rows = []
    for r in mech.tests.itertuples():
        ver = v.loc[(r.encoder, r.test)]
        rows.append({"encoder": ENCODER_WORDS[r.encoder], "test": r.test, "quantity": r.quantity,
                     "toward": group_label(r.toward) if r.toward else "",
                     "RH": f"{r.estimate:.3f} ({r.lo:.3f} to {r.hi:.3f})",
                     "p": _p(r.p) if np.isfinite(r.p) else "", "Holm p (test)": _p(ver["p_holm"]),
                     "verdict": "holds" if ver["holds"] else "does not hold"})
    return pd.DataFrame(rows)


#: the arms whose minority is one (profession, gender) group: name -> (balanced run, underrepresented run)
GRH_ARMS = {"sentences as they are (T1)": ("base_bal", "t1"), "unique token (T3)": ("unique_bal", "unique"),
            "shared token (T3)": ("shared_bal", "shared")}


@dataclass(frozen=True)
class GRH:
    """OUR RECONSTRUCTION of the paper's two-coordinate text metric (its definition is not public) for each
    group-level minority: x = RH toward the same profession of the other gender, y = RH toward the nearest group of
    the same gender and another profession (the registered partner rule); per seed and summarised."""

    per_seed: pd.DataFrame  #: encoder, arm, seed, other_gender, nearest_profession
    summary: pd.DataFrame  #: encoder, arm, x, x_lo, x_hi, y, y_lo, y_hi, nearest


def grh_summary(cells: dict, setup: Any, seeds: Sequence[int], encoders: Sequence[str], *,
                level: float = 0.95) -> GRH:
    """Both coordinates of every arm in :data:`GRH_ARMS` on every encoder, with geometric means and t-intervals."""
    from rharm.runs import text_mechanism as tm

    order, g = setup.group_order, setup.params["token_group"]
    prof, gender = textdata.split_group(g)
    other = [order.index(textdata.group_name(prof, s)) for s in textdata.GENDERS if s != gender]
    same = [j for j, h in enumerate(order) if textdata.split_group(h)[1] == gender
            and textdata.split_group(h)[0] != prof]
    rows, summary = [], []
    for enc in encoders:
        for arm, (b, m) in GRH_ARMS.items():
            bal, imb = tm.series(cells, enc, b, seeds), tm.series(cells, enc, m, seeds)
            x, _ = tm.seed_log_rh(bal, imb, "group", order, g, partners=other)
            y, near = tm.seed_log_rh(bal, imb, "group", order, g, candidates=same)
            rows += [{"encoder": ENCODER_WORDS[enc], "arm": arm, "seed": int(s), "other_gender": float(np.exp(a)),
                      "nearest_profession": float(np.exp(c))} for s, a, c in zip(seeds, x, y)]
            ex, ey = stats.geometric_ci(x, level=level), stats.geometric_ci(y, level=level)
            summary.append({"encoder": ENCODER_WORDS[enc], "arm": arm, "x": ex[0], "x_lo": ex[1], "x_hi": ex[2],
                            "y": ey[0], "y_lo": ey[1], "y_hi": ey[2],
                            "nearest": ", ".join(group_label(order[j]) for j in near)})
    return GRH(per_seed=pd.DataFrame(rows), summary=pd.DataFrame(summary))


def grh_table(grh: GRH) -> pd.DataFrame:
    """One row per encoder and arm: both coordinates with their intervals and the nearest group."""
    return pd.DataFrame([{"encoder": r.encoder, "arm": r.arm,
                          "x: toward other gender": f"{r.x:.3f} ({r.x_lo:.3f} to {r.x_hi:.3f})",
                          "y: toward nearest profession": f"{r.y:.3f} ({r.y_lo:.3f} to {r.y_hi:.3f})",
                          "nearest (same gender)": r.nearest} for r in grh.summary.itertuples()])


@dataclass(frozen=True)
class Dose:
    """The dose-response of the registered design and its allocation effect (section "Dose-response")."""

    dose_design: str  #: the design in words
    dose_resolved: str  #: "yes" when its registered test held, "no" for the registered fallback
    dose_rh: pd.DataFrame  #: ratio, kept, mean, lo, hi: RH toward the registered partner
    dose_effects: pd.DataFrame  #: ratio, quantity, mean, lo, hi: y00, y01, y11, TE, NIE, NDE of the minority


def dose_summary(frame: pd.DataFrame, choice: Sequence, *, n_train_per_group: int, level: float = 0.95) -> Dose:
    """Per ratio: RH (geometric mean, t-interval of log RH; 1 by definition at ratio 1) and the minority's probe
    accuracies and effects (mean, t-interval) from :func:`rharm.runs.text_mechanism.dose_response`."""
    test, enc, resolved = choice
    rh, eff = [], []
    for ratio, sub in frame.groupby("ratio", sort=True):
        est = (1.0, np.nan, np.nan) if ratio == 1 else stats.geometric_ci(sub["log_rh"].to_numpy(), level=level)
        rh.append({"ratio": int(ratio), "kept": sampling.kept_count(n_train_per_group, ratio, minimum=1),
                   "mean": est[0], "lo": est[1], "hi": est[2]})
        for q in ("y00", "y01", "y11", "TE", "NIE", "NDE"):
            m, lo, hi = stats.t_interval(sub[q].to_numpy(), level=level)
            eff.append({"ratio": int(ratio), "quantity": q, "mean": m, "lo": lo, "hi": hi})
    what = {"T3": "T3's unique-token arm", "T2": "T2's whole profession"}[test]
    return Dose(dose_design=f"{what} on the {ENCODER_WORDS[enc]}", dose_resolved="yes" if resolved else "no",
                dose_rh=pd.DataFrame(rh), dose_effects=pd.DataFrame(eff))


def load_v1(profile: str) -> dict | None:
    """v1's archived headline values of ``profile`` (``book/<profile>/archive/text_harm.v1.json``), or None."""
    import json

    from rharm.core import paths

    f = paths.book_dir() / profile / V1_ARCHIVE
    return json.loads(f.read_text(encoding="utf-8"))["values"] if f.is_file() else None


def v1_table(v1: dict | None) -> pd.DataFrame | None:
    """v1's two coordinates (exploratory; doctor (female) at 1:100 kept one sentence): estimate and interval."""
    if v1 is None:
        return None
    return pd.DataFrame([
        {"coordinate": f"x: toward {group_label(v1['other_group'])}",
         "RH": f"{v1['x_mean']:.3f} ({v1['x_lo']:.3f} to {v1['x_hi']:.3f})"},
        {"coordinate": f"y: toward {group_label(v1['nearest_group'])}",
         "RH": f"{v1['y_mean']:.3f} ({v1['y_lo']:.3f} to {v1['y_hi']:.3f})"}])


@dataclass(frozen=True)
class MechanismFinding:
    """The chapter's finding (glued as ``tx_finding``, at most 60 words) and the verdict sentences the prose quotes."""

    finding: str
    verdict_text: str = field(metadata={"markdown": True})


def _cell(mech: Mechanism, enc: str, test: str, quantity_start: str) -> str:
    t = mech.tests
    r = t[(t.encoder == enc) & (t.test == test) & t.quantity.str.startswith(quantity_start)].iloc[0]
    return f"{r.estimate:.2f} ({r.lo:.2f} to {r.hi:.2f})"


def mechanism_finding(mech: Mechanism, encoders: Sequence[str], ratio: int, n_seeds: int) -> MechanismFinding:
    """Word the verdicts: T3 (the decisive test) with its unique-token RH per encoder, then where T1 and T2 held."""
    short = {"minilm": "MiniLM", "scratch": "a small transformer"}
    held = {t: [e for e in encoders if mech.verdict_words[e][t] == "holds"] for t in ("T1", "T2", "T3")}
    def names(es):
        return ("neither encoder" if not es else "both encoders" if len(es) == len(encoders) > 1
                else " and ".join(short[e] for e in es))

    rh = ", ".join(f"{_cell(mech, e, 'T3', 'a:')} on {short[e]}" for e in encoders)
    t3 = ("It did not" if not held["T3"] else "It did" if len(held["T3"]) == len(encoders)
          else f"It did on {names(held['T3'])} only")
    finding = (f"Registered test: a group kept at 1:{ratio} whose word no other group uses should collapse (T3). "
               f"{t3}: RH {rh}. T1 (no pair-specific harm) held on {names(held['T1'])}; T2 (a rare profession nears "
               f"its nearest) on {names(held['T2'])}. Geometric means, 95% t-intervals, {n_seeds} seeds.")
    verdicts = [f"On the {ENCODER_WORDS[e]}, " + "; ".join(f"{t} {mech.verdict_words[e][t]}"
                                                           for t in ("T1", "T2", "T3")) for e in encoders]
    return MechanismFinding(finding=finding, verdict_text=". ".join(verdicts) + ".")


@dataclass(frozen=True)
class Design:
    """The sentences, the split and the replacement (section "Data and design")."""

    n_sentences: int  #: windows of the kept professions
    n_groups: int
    smallest_group: int
    median_words: float  #: median words per window
    minority: str  #: the T1 / T3 group in words
    ratio: int
    n_train_per_group: int
    minority_kept: str  #: "6 sentences"
    n_eval_per_group: int
    token: str
    replaced_unique: int  #: sentences whose profession word T3's unique arm replaces
    replaced_shared: int
    n_seeds: int
    context: int
    temperature: float
    deletion_prob: float
    run_seconds: dict  #: encoder -> mean training seconds per run (measured, this machine)


def design_summary(setup: Any, cells: dict, seeds: Sequence[int]) -> Design:
    """Counts of the windows and the designs of :func:`rharm.runs.text_mechanism.prepare`, and the runs' cost."""
    frame, p = setup.frame, setup.params
    counts = frame["group"].value_counts()
    base = setup.texts["base"]
    seconds: dict = {}
    for (enc, _, _), cell in cells.items():
        seconds.setdefault(enc, []).append(cell.seconds)
    return Design(n_sentences=len(frame), n_groups=len(setup.group_order), smallest_group=int(counts.min()),
                  median_words=float(frame["text"].str.split().map(len).median()),
                  minority=group_label(p["token_group"]), ratio=int(p["ratio"]),
                  n_train_per_group=int(p["n_train_per_group"]),
                  minority_kept=tables.plural(sampling.kept_count(p["n_train_per_group"], p["ratio"], minimum=1),
                                              "sentence"),
                  n_eval_per_group=int(p["n_eval_per_group"]), token=setup.token,
                  replaced_unique=sum(a != b for a, b in zip(base, setup.texts["unique"])),
                  replaced_shared=sum(a != b for a, b in zip(base, setup.texts["shared"])), n_seeds=len(seeds),
                  context=int(p["context"]), temperature=float(p["minilm"]["temperature"]),
                  deletion_prob=float(p["minilm"]["deletion_prob"]),
                  run_seconds={k: float(np.mean(v)) for k, v in seconds.items()})


def loss_table(cells: dict) -> pd.DataFrame:
    """Per encoder: mean SimCSE loss at the first and the last step over every run, and the number of runs."""
    rows = {}
    for (enc, _, _), cell in cells.items():
        r = rows.setdefault(enc, {"first": [], "last": []})
        r["first"].append(cell.loss[0])
        r["last"].append(cell.loss[-1])
    return pd.DataFrame([{"encoder": ENCODER_WORDS[e], "runs": len(r["first"]), "loss at step 1": np.mean(r["first"]),
                          "loss at the last step": np.mean(r["last"])} for e, r in rows.items()])


@dataclass(frozen=True)
class Separation:
    """Descriptive, NOT registered: how far apart the groups are in the balanced models, which bounds how far RH
    can move. Per encoder: the mean within-group and between-group cosine of the held-out sentences."""

    separation: pd.DataFrame  #: encoder, within, between, within_minority, to_partner (means over seeds)


def separation_summary(cells: dict, setup: Any, seeds: Sequence[int], encoders: Sequence[str]) -> Separation:
    """Mean within-group cosine (diagonal) and between-group cosine (off the diagonal) of the balanced models of the
    sentences as they are, and the T1 minority's within-group cosine, averaged over seeds."""
    from rharm.runs import text_mechanism as tm

    order, g = setup.group_order, setup.params["token_group"]
    i = order.index(g)
    rows = []
    for enc in encoders:
        cos = np.stack([tm.cell_cosines(c, "group", order) for c in tm.series(cells, enc, "base_bal", seeds)])
        off = ~np.eye(len(order), dtype=bool)
        rows.append({"encoder": ENCODER_WORDS[enc], "within a group": float(np.nanmean(np.diagonal(cos, 0, 1, 2))),
                     "between groups": float(cos[:, off].mean()),
                     f"within {group_label(g)}": float(cos[:, i, i].mean()),
                     f"{group_label(g)} to other groups": float(cos[:, i, off[i]].mean())})
    return Separation(separation=pd.DataFrame(rows))


@dataclass(frozen=True)
class Reading:
    """What the verdicts say about the mechanism, in words generated from them (glued as Markdown)."""

    reading: str = field(metadata={"markdown": True})


def mechanism_reading(mech: Mechanism, encoders: Sequence[str]) -> Reading:
    """One paragraph: whether the decisive test (T3) held on each encoder, and what follows for the mechanism."""
    t3 = [e for e in encoders if mech.verdict_words[e]["T3"] == "holds"]
    t1 = [e for e in encoders if mech.verdict_words[e]["T1"] == "holds"]
    t2 = [e for e in encoders if mech.verdict_words[e]["T2"] == "holds"]
    names = lambda es: " and ".join(ENCODER_WORDS[e] for e in es) or "neither encoder"  # noqa: E731
    if t3:
        head = (f"**The decisive test held on the {names(t3)}:** a group whose defining word is its own collapsed "
                "when rare, and more than the same group sharing its word, as the mechanism predicts.")
    else:
        head = (f"**The decisive test (T3) failed on the {names(encoders)}:** a group whose defining word occurs in "
                "no other group did not collapse measurably when rare, nor more than the same group sharing its "
                "word. The mechanism as registered (shared tokens protect a rare group) is therefore not shown by "
                "this test; a unique token is not enough to produce harm at this scale.")
    tail = (f" T1 (no pair-specific harm for a profession-gender group) held on {names(t1)}; T2 (a whole rare "
            f"profession moves toward its nearest profession) held on {names(t2)}.")
    t = mech.tests
    for e in t2:
        pair = t[(t.encoder == e) & t.quantity.str.contains("reported, not tested")]
        if len(pair) and pair["lo"].iloc[0] <= 1 <= pair["hi"].iloc[0]:
            r = pair.iloc[0]
            tail += (f" On the {ENCODER_WORDS[e]} that move is no larger than toward the other professions (RH toward "
                     f"the nearest over RH toward the rest {r.estimate:.3f}, {r.lo:.3f} to {r.hi:.3f}): the rare "
                     "profession's whole row shrinks, not one pair.")
    return Reading(reading=head + tail)
