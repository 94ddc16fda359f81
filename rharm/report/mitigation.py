"""The mitigation chapter as a reader sees it: the cell and the theory's temperature in words, the pre-registered
expectations E1-E6, the harm, allocation and cost of each intervention, the verdicts and the finding.

The design (the cell, the temperature, every intervention's training) is :mod:`rharm.study.mitigation`; this module
only summarises its results. Each section's numbers are a frozen dataclass whose fields are what the prose glues (as
``mi_<field>``) and what ``book/<profile>/mitigation.json`` holds; :func:`rharm.page.headline.publish` does both.
Each display function returns one displayable object (a :class:`rharm.page.tables.Table` or an Altair chart) for the
last expression of a chapter cell.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from rharm.harm import mediation, metrics, stats
from rharm.harm.probe import ProbeConfig
from rharm.page import charts, tables
from rharm.study import design as study
from rharm.study.mitigation import Cell, TheoryTemperature, rebalance_times

#: the interventions, in the order of the tables (``none`` first: every other is compared with it, paired by seed)
INTERVENTIONS = ("none", "re-balancing", "re-weighting", "temperature", "SimSiam", "SDCLR", "warm start")

#: The pre-registered expectations, written in ``profiles.yml`` (section ``mitigation``) before the cpu profile was
#: run; E1-E5 unchanged since their first registration, E6 added with the move to design B. Per row: id,
#: intervention, expectation, the range of the harm removed (lo, hi; a share, 0 = no change, 1 = no harm left) and
#: why. Do not edit: it is a pre-registration.
EXPECTATIONS = (
    ("E1", "re-balancing", "reduces the harm", 0.30, np.inf,
     "the minority at the balanced rate, but only its few images: not all of the harm expected back; "
     "probe accuracy within 1 point"),
    ("E2", "re-weighting", "reduces the harm", 0.15, 1.0,
     "the same expected gradient as re-balancing, with more variance: no more than E1"),
    ("E3", "temperature", "reduces the harm", 0.0, np.inf,
     "the three-block theory: least collapse at the smallest temperature (sign is the test)"),
    ("E4", "SimSiam", "does not remove it", -np.inf, 0.5,
     "Maity et al. report the harm for SimSiam too; its RH interval below 1"),
    ("E5", "SDCLR", "reduces it modestly", 0.10, 0.60,
     "Jiang et al. report better balance on long-tailed CIFAR, not the harm's removal; probe within 2 points"),
    ("E6", "warm start", "does not remove it", -np.inf, 0.3,
     "the pre-training never sees the minority, so it cannot separate it from its partner; Maity et al. see the "
     "harm with their ImageNet-initialised SimCLR; its RH interval below 1"),
)

#: the expectations that the harm persists: judged by the RH interval lying below 1, not by a paired difference
PERSISTS = ("E4", "E6")
#: the registered probe-accuracy clauses (``profiles.yml``): |change of the balanced probe accuracy| at most this
#: (a fraction: 0.01 = 1 point), judged on the mean over paired seeds
PROBE_WITHIN = {"E1": 0.01, "E2": 0.01, "E5": 0.02}


def expectations() -> pd.DataFrame:
    """:data:`EXPECTATIONS` as a table: columns id, intervention, expected, removed_lo, removed_hi, why (the
    unbounded ends as ±inf; the chapter's JSON writes them as null)."""
    return pd.DataFrame(list(EXPECTATIONS),
                        columns=["id", "intervention", "expected", "removed_lo", "removed_hi", "why"])


def expectations_table() -> tables.Table:
    """The pre-registered expectations with the range of the harm removed in percent."""
    e = expectations()
    e["range"] = [f"{charts.fmt_sig(lo * 100, 2) if np.isfinite(lo) else '−∞'}% to "
                  f"{charts.fmt_sig(hi * 100, 2) if np.isfinite(hi) else '∞'}%"
                  for lo, hi in zip(e.removed_lo, e.removed_hi)]
    return tables.show(e, index=None, columns=["id", "intervention", "expected", "range", "why"],
                       rename={"range": "harm removed"}, caption="The pre-registered expectations.")


# --------------------------------------------------------------------------------------------------------------
# The grids
# --------------------------------------------------------------------------------------------------------------


def settings(P: Any, minority: str, tau: float, n_classes: int) -> dict[str, str]:
    """How each intervention was set, as the table shows it."""
    return {
        "none": f"SimCLR, τ {P.temperature:g}, lr {P.lr:g}",
        "re-balancing": f"each {minority} image ×{rebalance_times(P.n_per_class, P.ratio)} per epoch",
        "re-weighting": f"{minority} anchors weighted {P.minority_weight:g}",
        "temperature": f"τ {tau:g}",
        "SimSiam": f"lr {P.simsiam_lr:g}, weight decay {P.simsiam_weight_decay:g}",
        "SDCLR": f"prune {P.sdclr_prune:.0%} of each backbone layer but the first",
        "warm start": f"pre-trained {P.epochs} epochs on the {n_classes - 1} other classes, then as none",
    }


# --------------------------------------------------------------------------------------------------------------
# The minority and its partner, from the balanced models alone
# --------------------------------------------------------------------------------------------------------------


def cell_table(P: Any, cell: Cell) -> tables.Table:
    """What the cell is: classes, pool, minority, partner, ratio and paired seeds."""
    return tables.show(pd.DataFrame([("classes", ", ".join(cell.classes)), ("pool per class", cell.n_per_class),
                                     ("minority", cell.minority), ("partner", cell.partner),
                                     ("ratio", f"1:{cell.ratio}"), ("paired seeds", ", ".join(map(str, cell.seeds)))],
                                    columns=["what", "value"]),
                       caption=f"The cell every mitigation is measured on (profile {P.profile}).")


# --------------------------------------------------------------------------------------------------------------
# Which temperature the theory chooses
# --------------------------------------------------------------------------------------------------------------


def temperature_table(P: Any, cell: Cell, t: TheoryTemperature) -> tables.Table:
    """The theory's RH at every temperature of the list."""
    return tables.show(t.table, digits=3,
                       rename={"tau": "temperature τ", "theory_rh": f"theory RH({cell.minority}, {cell.partner})"},
                       caption=f"The three-block theory's RH at 1:{cell.ratio} (α = {t.alpha:.2f} fitted to the "
                               f"unmitigated RH at τ = {P.temperature:g}). The largest is at τ = {t.tau:g}, "
                               + ("the smallest temperature of the list." if t.is_smallest else
                                  "not the smallest temperature of the list."))


# --------------------------------------------------------------------------------------------------------------
# Training the mitigations
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Training:
    """What the models shown cost, as recorded when each was trained (the warm start's pre-training not included;
    a run shared by two arms or with another chapter counted once, at the time it took there)."""

    training_minutes_summed_over_models: float
    settings: dict  #: intervention -> how it was set


def training(P: Any, cell: Cell, tau: float, arms: Mapping[str, tuple[list, list]]) -> Training:
    """Summed recorded training time of every distinct model of ``arms``."""
    seconds = {str(r.dir): r.meta.get("wall_time_s", np.nan) for b, i in arms.values() for r in [*b, *i]}
    return Training(training_minutes_summed_over_models=float(sum(seconds.values())) / 60,
                    settings=settings(P, cell.minority, tau, len(cell.classes)))


# --------------------------------------------------------------------------------------------------------------
# Harm, allocation and cost, per intervention
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Effects:
    """One row per intervention (``interventions``), its per-seed numbers, and whether the unmitigated harm is
    resolved (its RH interval below 1: only then is a share of it "removed"; else ``removed`` is NaN)."""

    interventions: pd.DataFrame
    baseline_harm_resolved: bool
    per_seed: dict  #: intervention -> {"log_rh": (S,), "probe_accuracy": (S,)}


def effects(P: Any, cell: Cell, arms: Mapping[str, tuple[list, list]], settings_: Mapping[str, str], *,
            probe: ProbeConfig | None = None) -> Effects:
    """RH of the cell with its interval, the paired difference of log RH against ``none``, the minority's TE and
    NIE (clean protocol) and the balanced probe accuracy of the imbalanced-data model, per intervention.

    ``arms`` must hold ``none``, and every arm the same seeds (the comparison is paired by seed). ``probe``: the
    probe of the mediation (default: C = ``P.probe_c``, no cross-validation).
    """
    if "none" not in arms:
        raise ValueError(f"arms={list(arms)} has no 'none' arm; every intervention is compared with it")
    probe = probe or ProbeConfig(c_grid=(P.probe_c,), folds=1)
    m0, p0, classes = cell.minority, cell.partner, cell.classes
    base_log_rh = study.cell_log_rh(*arms["none"], m0, p0, classes)
    rows, per_seed = [], {}
    for name, (bal, imb) in arms.items():
        log_rh = study.cell_log_rh(bal, imb, m0, p0, classes)
        if log_rh.shape != base_log_rh.shape:
            raise ValueError(f"arm {name!r} has {log_rh.size} paired seeds, 'none' {base_log_rh.size}; the "
                             "comparison is paired by seed")
        rh, rh_lo, rh_hi = stats.geometric_ci(log_rh, level=P.ci_level)
        d, d_lo, d_hi = stats.mean_ci(log_rh - base_log_rh, level=P.ci_level)
        mr = mediation.mediation_runs([*bal, *imb], protocol="clean", ratio=cell.ratio, split_seeds=[0],
                                      probe=probe, classes=classes, minorities=[m0])
        med = mediation.diagonal_summary(mr, level=P.ci_level).loc[m0]
        acc = np.array([metrics.linear_probe_accuracy(r.features["train_backbone"], r.features["train_labels"],
                                                      r.features["test_backbone"], r.features["test_labels"])
                        for r in imb])
        a, a_lo, a_hi = stats.mean_ci(acc, level=P.ci_level)
        per_seed[name] = {"log_rh": log_rh, "probe_accuracy": acc}
        rows.append({"intervention": name, "setting": settings_[name], "rh": rh, "rh_lo": rh_lo, "rh_hi": rh_hi,
                     "removed": 1 - log_rh.mean() / base_log_rh.mean(), "dlog": d, "dlog_lo": d_lo,
                     "dlog_hi": d_hi, "TE": med.TE, "TE_lo": med.TE_lo, "TE_hi": med.TE_hi, "NIE": med.NIE,
                     "NIE_lo": med.NIE_lo, "NIE_hi": med.NIE_hi, "probe": a, "probe_lo": a_lo, "probe_hi": a_hi,
                     "train_s": float(np.mean([r.meta.get("wall_time_s", np.nan) for r in imb])),
                     "n_seeds": len(imb)})
    res = pd.DataFrame(rows)
    res["dprobe"] = res.probe - res.probe[res.intervention == "none"].iloc[0]
    resolved = bool(res.rh_hi[res.intervention == "none"].iloc[0] < 1)
    if not resolved:  # a share of the harm removed is defined only where there is a resolved harm to remove
        res["removed"] = np.nan
    return Effects(interventions=res, baseline_harm_resolved=resolved, per_seed=per_seed)


def effects_table(P: Any, cell: Cell, e: Effects) -> tables.Table:
    """One row per intervention: RH, harm removed, TE / NIE, probe accuracy and its change, seconds per model."""
    m0, p0 = cell.minority, cell.partner
    return tables.show(
        e.interventions, index=None, digits=3,
        columns=["intervention", "setting", "rh", "rh_lo", "rh_hi", "removed", "TE", "TE_lo", "TE_hi", "NIE",
                 "NIE_lo", "NIE_hi", "probe", "dprobe", "train_s"],
        rename={"rh": f"RH({m0}, {p0})", "rh_lo": "CI low", "rh_hi": "CI high", "removed": "harm removed",
                "TE_lo": "TE low", "TE_hi": "TE high", "NIE_lo": "NIE low", "NIE_hi": "NIE high",
                "probe": "probe accuracy", "dprobe": "Δ probe", "train_s": "s per model"},
        caption=f"One row per intervention, {len(cell.seeds)} paired seeds, {P.ci_level:.0%} Student "
                f"t-intervals over seeds. RH: {metrics.RH_ESTIMATOR} (< 1: {m0} moved toward {p0}); harm "
                "removed: the share of the unmitigated mean log RH that is gone ("
                + ("" if e.baseline_harm_resolved else "undefined here: the unmitigated RH interval includes 1; ")
                + "–: undefined); TE / NIE: the change in the "
                f"minority's own test accuracy and its part carried by the representation (clean protocol, "
                f"probe C = {P.probe_c}); probe accuracy: balanced linear probe of the model trained on the "
                "imbalanced data (what the mitigation costs every class), Δ against no intervention; seconds "
                "of training per model (mean over its runs; runs shared with other chapters keep the time "
                "they took there).")


def harm_chart(P: Any, cell: Cell, e: Effects):
    """RH of the cell against the balanced probe accuracy, one point per intervention with both intervals
    (:func:`rharm.page.charts.harm_accuracy_chart`)."""
    return charts.harm_accuracy_chart(e.interventions, minority=cell.minority, partner=cell.partner, ratio=cell.ratio,
                                      n_seeds=len(cell.seeds), level=P.ci_level)


# --------------------------------------------------------------------------------------------------------------
# Which expectations held
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdicts:
    """Each pre-registered expectation (``preregistered``), whether it held and the numbers (``expectations_held``)."""

    preregistered: pd.DataFrame
    expectations_held: pd.DataFrame
    n_held: int
    n_expectations: int


def held(expectation: Any, row: Any, baseline_resolved: bool) -> bool:
    """The registered rule, every clause: the point estimate of the harm removed lies in the range AND, for an
    expected reduction, the paired interval of Δ log RH lies above 0; for E4 and E6 (the harm persists) the RH
    interval lies below 1 and, where a share removed is defined (resolved baseline), that share lies in the range;
    and where a probe-accuracy clause is registered (:data:`PROBE_WITHIN`), abs(Δ probe) is within it."""
    in_range = bool(expectation.removed_lo <= row.removed <= expectation.removed_hi)  # False when NaN (undefined)
    probe_ok = abs(row.dprobe) <= PROBE_WITHIN[expectation.id] if expectation.id in PROBE_WITHIN else True
    if expectation.id in PERSISTS:
        return bool(row.rh_hi < 1) and (in_range or not baseline_resolved) and bool(probe_ok)
    return in_range and bool(row.dlog_lo > 0) and bool(probe_ok)


def _numbers(r: Any) -> str:
    removed = f"{charts.fmt_sig(r.removed * 100, 2)}%" if np.isfinite(r.removed) else "undefined"
    return (f"harm removed {removed}; Δ log RH {r.dlog:+.3f} ({r.dlog_lo:+.3f} to {r.dlog_hi:+.3f}); RH "
            f"{charts.fmt_sig(r.rh)} ({charts.fmt_sig(r.rh_lo)}–{charts.fmt_sig(r.rh_hi)}); probe "
            f"{r.dprobe * 100:+.1f} points")


def verdicts(res: pd.DataFrame, baseline_resolved: bool) -> Verdicts:
    """Judge every expectation of :data:`EXPECTATIONS` on ``res`` (the ``interventions`` table of :class:`Effects`:
    one row per intervention with removed, rh, rh_lo, rh_hi, dlog, dlog_lo, dlog_hi, dprobe)."""
    expected = expectations()
    missing = sorted(set(expected.intervention) - set(res.intervention))
    if missing:
        raise ValueError(f"res has no row for {missing}; it needs one per intervention {list(INTERVENTIONS)}")
    rows = []
    for e in expected.itertuples():
        r = res[res.intervention == e.intervention].iloc[0]
        rows.append({"id": e.id, "intervention": e.intervention, "expected": e.expected,
                     "held": "yes" if held(e, r, baseline_resolved) else "no", "numbers": _numbers(r)})
    table = pd.DataFrame(rows)
    return Verdicts(preregistered=expected, expectations_held=table, n_held=int((table.held == "yes").sum()),
                    n_expectations=len(table))


def verdict_table(v: Verdicts) -> tables.Table:
    """Each expectation, whether it held, and the numbers."""
    return tables.show(v.expectations_held, index=None,
                       caption="Each pre-registered expectation, whether it held, and the numbers.")


# --------------------------------------------------------------------------------------------------------------
# The finding
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """The chapter's finding and this execution's wall time."""

    finding: str
    wall_minutes: float


def finding_text(res: pd.DataFrame, baseline_resolved: bool, cell: Cell, tau: float, n_held: int,
                 n_expectations: int, level: float) -> str:
    """The finding, in at most :data:`rharm.page.headline.FINDING_MAX_WORDS` words: which mitigations reduced the
    harm with a paired interval clear of zero (none can where the unmitigated harm is not resolved), the unmitigated
    RH with its interval, how many expectations held and whether the theory's temperature reduced the harm. The
    per-mitigation numbers are in the page's tables."""
    m0, p0 = cell.minority, cell.partner
    none = res[res.intervention == "none"].iloc[0]
    mit = res[res.intervention != "none"]
    sig_less = mit[mit.dlog_lo > 0]
    sig_more = mit[mit.dlog_hi < 0]  # RH fell further: the intervention increased the harm
    more = ("" if not len(sig_more) else "; " + _names(sig_more) + " increased it")
    if not baseline_resolved:
        lead = (f"Without intervention the harm of {m0} toward {p0} is not resolved (its RH interval includes 1), so "
                "no mitigation can be shown to reduce it"
                + (f"; {len(sig_less)} of {len(mit)} moved RH up" if len(sig_less) else ""))
    elif len(sig_less) == 1:
        r = next(sig_less.itertuples())
        lead = (f"{_names(sig_less)[:1].upper()}{_names(sig_less)[1:]} was the one mitigation of {len(mit)} that "
                f"reduced the harm of {m0} toward {p0} with a paired interval clear of zero "
                f"({charts.fmt_sig(r.removed * 100, 2)}% removed, probe accuracy {r.dprobe * 100:+.1f} points)")
    elif len(sig_less):
        lead = (f"{len(sig_less)} of {len(mit)} mitigations reduced the harm of {m0} toward {p0} with a paired "
                f"interval clear of zero: {_names(sig_less)}")
    else:
        best = mit.loc[mit.dlog.idxmax()]
        lead = (f"None of the {len(mit)} mitigations reduced the harm of {m0} toward {p0} with a paired interval "
                f"clear of zero (largest point estimate: {best.intervention}, "
                f"{charts.fmt_sig(best.removed * 100, 2)}% removed)")
    temperature_reduced = bool(res.dlog_lo[res.intervention == "temperature"].iloc[0] > 0)
    return (f"{lead}{more}. Unmitigated, RH({m0}, {p0}) = {charts.fmt_sig(none.rh)} ({level:.0%} CI "
            f"{charts.fmt_sig(none.rh_lo)} to {charts.fmt_sig(none.rh_hi)}) at 1:{cell.ratio}. {n_held} of "
            f"{n_expectations} pre-registered expectations held; the theory's temperature "
            + ("reduced the harm, as predicted." if temperature_reduced
               else "did not reduce it, against the prediction."))


def _names(rows: pd.DataFrame) -> str:
    """The interventions of ``rows``, joined in words ("re-balancing, SDCLR and warm start")."""
    names = [str(n) for n in rows.intervention]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def finding(P: Any, cell: Cell, theory: TheoryTemperature, e: Effects, v: Verdicts, started: float) -> Finding:
    """The chapter's finding; ``started`` is the ``time.perf_counter()`` at the chapter's start."""
    text = finding_text(e.interventions, e.baseline_harm_resolved, cell, theory.tau, v.n_held, v.n_expectations,
                        P.ci_level)
    return Finding(finding=text, wall_minutes=(time.perf_counter() - started) / 60)
