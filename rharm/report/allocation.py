"""The numbers of the allocation-harm chapter, one summary dataclass per section.

Each function takes a section's inputs (run results, :class:`rharm.harm.mediation.MediationRuns`, the notebook's
parameters ``P``) and returns a frozen dataclass whose fields are exactly what the prose glues (as ``ah_<field>``)
and what ``book/<profile>/allocation_harm.json`` holds; :func:`rharm.page.headline.publish` does both. The chapter
itself
only draws the tables and charts. The paper's values come from :func:`rharm.core.reference.for_setting` for the run's
own method and ratio, never from another setting.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from rharm.core import reference
from rharm.harm import mediation, metrics
from rharm.harm.probe import ProbeConfig
from rharm.page import headline, tables


def check_minorities(P: Any) -> None:
    """Raise ValueError unless every ``P.mediation_minorities`` is one of ``P.minority_classes`` (trained)."""
    not_trained = [m for m in P.mediation_minorities if m not in P.minority_classes]
    if not_trained:
        raise ValueError(f"mediation_minorities={list(P.mediation_minorities)!r} includes {not_trained}, which are "
                         f"not trained; valid: a subset of minority_classes={list(P.minority_classes)!r}")


def probe_config(P: Any) -> ProbeConfig:
    """The probe settings of the notebook's parameters."""
    return ProbeConfig(c_grid=tuple(P.probe_c_grid), folds=P.probe_cv_folds, max_iter=P.probe_max_iter)


def mediation_runs(results: Sequence[Any], P: Any, *, probe: ProbeConfig | None = None,
                   cached: bool = True) -> tuple[dict[str, mediation.MediationRuns], float]:
    """Fit the probes of every protocol in ``P.protocols`` (first = the chapter's main protocol).

    Returns ``({protocol: MediationRuns}, wall seconds of this call)``; with ``cached`` the runs come from the
    result store when it has them (:func:`rharm.harm.mediation.cached_mediation_runs`), so the wall time can be far
    below the fitting time recorded in each run.
    """
    check_minorities(P)
    fit = mediation.cached_mediation_runs if cached else mediation.mediation_runs
    t0 = time.perf_counter()
    runs = {prot: fit(results, protocol=prot, ratio=P.ratio, split_seeds=list(P.split_seeds),
                      probe=probe or probe_config(P), feature=P.feature,
                      minorities=[m for m in P.minority_classes if m in P.mediation_minorities],
                      max_train_per_class=P.clean_max_train_per_class or None)
            for prot in P.protocols}
    return runs, time.perf_counter() - t0


def paper_label(method: str, ratio: int) -> str:
    """How the chapter names the paper's setting, e.g. ``"SimCLR 1:100"``."""
    name = {"simclr": "SimCLR", "simsiam": "SimSiam"}.get(str(method).lower(), method)
    return f"{name} 1:{ratio}"


def paper_effects(method: str, ratio: int) -> dict[str, pd.DataFrame] | None:
    """The paper's full (10-class) TE, NIE and NDE = TE - NIE matrices for this setting, or None when the paper
    reports none (never another ratio's values in their place)."""
    try:
        te, nie = (reference.for_setting(method, ratio, q, panel="full") for q in ("TE", "NIE"))
    except ValueError:
        return None
    return {"TE": te, "NIE": nie, "NDE": te - nie}


def paper_effects_6(method: str, ratio: int) -> dict[str, pd.DataFrame] | None:
    """The paper's 6-class panels as our effect names (its −rNDE is our NDE), or None unless all three exist."""
    try:
        return {e: reference.for_setting(method, ratio, q, panel="6-class")
                for e, q in (("TE", "TE"), ("NDE", "-rNDE"), ("NIE", "NIE"))}
    except ValueError:
        return None


@dataclass(frozen=True)
class Scale:
    """What the probes were fitted on, and how long they took."""

    profile: str
    backbone: str
    epochs: str  #: e.g. "4 epochs"
    data: str
    n_per_class: int
    ratio: int
    n_seeds: str  #: e.g. "3 seeds"
    n_splits: str  #: e.g. "2 split seeds"
    minorities: str
    mediation_minorities: str
    c_grid: str
    probe_c: str  #: how C was chosen
    max_iter: int
    probe_minutes: float  #: probe fitting time recorded in the runs (summed over protocols)
    wall_minutes: float  #: this execution's time to obtain them
    probe_time: str  #: the sentence on the probes' cost


def scale(results: Sequence[Any], runs_by_protocol: dict[str, mediation.MediationRuns], P: Any,
          wall_seconds: float) -> Scale:
    """Scale of the chapter; ``wall_seconds`` from :func:`mediation_runs`."""
    if not results:
        raise ValueError("results is empty; the chapter needs the representation runs")
    probe_seconds = sum(mr.seconds for mr in runs_by_protocol.values())
    grid = ", ".join(f"{c:g}" for c in P.probe_c_grid)
    probe_c = (f"C = {P.probe_c_grid[0]:g} (fixed: no cross-validation)"
               if P.probe_cv_folds <= 1 or len(P.probe_c_grid) == 1 else
               f"C chosen by {P.probe_cv_folds}-fold cross-validation over {grid}")
    probe_time = (f"Fitting the probes took {probe_seconds / 60:.1f} minutes"
                  + ("; this run read them from the result store" if wall_seconds < 0.5 * probe_seconds else ""))
    return Scale(
        profile=P.profile, backbone=headline.model_words(P.backbone), epochs=tables.plural(P.epochs, "epoch"),
        data=results[0].meta.get("extra", {}).get("data_source", "CIFAR-10 (source not recorded)"),
        n_per_class=int(P.n_per_class), ratio=int(P.ratio), n_seeds=tables.plural(len(P.seeds), "seed"),
        n_splits=tables.plural(len(P.split_seeds), "split seed"), minorities=", ".join(P.minority_classes),
        mediation_minorities=", ".join(m for m in P.minority_classes if m in P.mediation_minorities),
        c_grid=grid, probe_c=probe_c, max_iter=int(P.probe_max_iter), probe_minutes=probe_seconds / 60,
        wall_minutes=wall_seconds / 60, probe_time=probe_time)


def summaries(runs_by_protocol: dict[str, mediation.MediationRuns], *, level: float) -> dict[str, pd.DataFrame]:
    """:func:`rharm.harm.mediation.diagonal_summary` per protocol (rows: minorities and "mean")."""
    with np.errstate(invalid="ignore", divide="ignore"):  # a share NIE/TE is undefined where a draw has TE = 0
        return {prot: mediation.diagonal_summary(mr, level=level)
                for prot, mr in runs_by_protocol.items()}


@dataclass(frozen=True)
class Diagonal:
    """The minority's own accuracy change (main protocol) and the share the representation carries."""

    main: str  #: the main protocol
    te_mean: float
    nie_mean: float
    share: float  #: mean NIE / mean TE
    share_lo: float
    share_hi: float
    paper_te_mean: float  #: the paper's mean over the same minorities (NaN without paper values)
    paper_nie_mean: float
    paper_share: float
    n_same: str  #: e.g. "2 minorities"
    paper10_te: float  #: the paper's mean over all ten minorities (NaN unless it reports it for this setting)
    paper10_nie: float
    paper_comparison: str  #: the prose's sentence comparing with the paper
    minority_list: list = field(compare=False)
    diagonal_table: pd.DataFrame = field(compare=False)  #: per minority and mean: ours with intervals, the paper's


def _paper_mean_10(method: str, ratio: int) -> tuple[float, float]:
    t = reference.matrix("simclr_100_diagonal_mean")
    label = paper_label(method, ratio)
    if label not in t.index:
        return float("nan"), float("nan")
    return float(t.loc[label, "TE"]), float(t.loc[label, "NIE"])


def diagonal(summary: dict[str, pd.DataFrame], main: str, paper: dict[str, pd.DataFrame] | None,
             method: str, ratio: int) -> Diagonal:
    """The main protocol's "mean" row of ``summary`` (:func:`summaries`) beside ``paper`` (:func:`paper_effects`)."""
    if main not in summary:
        raise ValueError(f"main={main!r} is not a protocol of summary; valid: {list(summary)}")
    ours = summary[main]
    minorities = [m for m in ours.index if m != "mean"]
    table = ours[["TE", "TE_lo", "TE_hi", "NIE", "NIE_lo", "NIE_hi", "share", "share_lo", "share_hi"]].copy()
    if paper is not None:
        pd_ = pd.DataFrame({"paper_TE": np.diag(paper["TE"]), "paper_NIE": np.diag(paper["NIE"])},
                           index=paper["TE"].index)
        pd_["paper_share"] = pd_.paper_NIE / pd_.paper_TE
        table = table.join(pd_, how="left")
        # like for like: the paper's mean over the same minorities as ours (its 10-class mean is quoted apart)
        same = pd_.loc[[m for m in minorities if m in pd_.index]]
        table.loc["mean", ["paper_TE", "paper_NIE"]] = same[["paper_TE", "paper_NIE"]].mean().to_numpy()
        table.loc["mean", "paper_share"] = table.loc["mean", "paper_NIE"] / table.loc["mean", "paper_TE"]
        p_te, p_nie, p_share = (float(table.loc["mean", c]) for c in ("paper_TE", "paper_NIE", "paper_share"))
    else:
        same, p_te, p_nie, p_share = [], float("nan"), float("nan"), float("nan")
    te10, nie10 = _paper_mean_10(method, ratio)
    n_same = tables.plural(len(same), "minority", "minorities")
    if paper is None:
        sentence = f"The paper reports no TE or NIE for {paper_label(method, ratio)}, so there is nothing to compare"
    else:
        sentence = (f"The paper reports {p_te:.3f} and {p_nie:.3f}, a share of {p_share:.2f}, averaged over the "
                    f"same {n_same}"
                    + (f" (over all ten minorities: {te10:.3f} and {nie10:.3f})" if np.isfinite(te10) else ""))
    s = ours.loc["mean"]
    return Diagonal(main=main, te_mean=float(s.TE), nie_mean=float(s.NIE), share=float(s.share),
                    share_lo=float(s.share_lo), share_hi=float(s.share_hi), paper_te_mean=p_te,
                    paper_nie_mean=p_nie, paper_share=p_share, n_same=n_same, paper10_te=te10, paper10_nie=nie10,
                    paper_comparison=sentence, minority_list=minorities, diagonal_table=table)


@dataclass(frozen=True)
class Protocols:
    """The representation's share under the first two protocols (the same one twice when only one was run)."""

    proto_a: str
    proto_b: str
    share_a: float
    share_b: float
    share_by_protocol: dict = field(compare=False)
    protocol_table: pd.DataFrame = field(compare=False)  #: per protocol and minority: TE, NIE, NDE, share (interval)


def protocols(summary: dict[str, pd.DataFrame]) -> Protocols:
    """Compare the protocols of ``summary`` (:func:`summaries`, first = main)."""
    if not summary:
        raise ValueError("summary is empty; give at least one protocol")
    names = list(summary)
    a, b = (names[0], names[1]) if len(names) > 1 else (names[0], names[0])
    both = pd.concat({prot: summ[["TE", "NIE", "NDE", "share", "share_lo", "share_hi"]]
                      for prot, summ in summary.items()}, names=["protocol", "minority"]).reset_index()
    by = {p: float(v.loc["mean", "share"]) for p, v in summary.items()}
    return Protocols(a, b, by[a], by[b], by, both)


def paper_sd_table(mr: mediation.MediationRuns, boot: dict[str, dict[str, pd.DataFrame]]) -> pd.DataFrame:
    """The paper's ± (:func:`rharm.harm.mediation.effect_paper_sd`) for each minority's diagonal TE, NDE, NIE beside our
    standard error over seeds (``boot`` from :func:`rharm.harm.mediation.effect_intervals`); one row per minority."""
    psd = mediation.effect_paper_sd(mr)
    ours = {e: {m: psd[e].loc[m, m] for m in mr.minorities} for e in mediation.EFFECTS}
    se = {e: {m: boot[e]["se"].loc[m, m] for m in mr.minorities} for e in mediation.EFFECTS}
    return pd.DataFrame(ours).add_prefix("paper's formula: ").join(pd.DataFrame(se).add_prefix("SE over seeds: "))


@dataclass(frozen=True)
class CrossCheck:
    """The regression (pingouin) mediation on the collapse score, reported for the first minority."""

    cc_minority: str
    cc_toward: str
    cc_indirect: float
    cc_lo: float
    cc_hi: float
    cc_total: float
    cc_table: pd.DataFrame = field(compare=False)  #: per minority: toward, indirect (lo, hi), direct, total, n


def pooled_nie(mr: mediation.MediationRuns, minority: str) -> float:
    """The diagonal NIE of ``minority`` with each (model seed, split seed) weighted by its number of evaluated
    minority test images (those that did not train the probe); equals the plain NIE when the numbers are equal."""
    i, r = mr.classes.index(minority), mr.minorities.index(minority)
    y = mr.test_labels
    n = (mr.pred00[:, :, y == i] >= 0).sum(axis=-1)  # (S, P)
    acc_change = mr.y01[r, :, :, i, i] - mr.y00[:, :, i, i]  # (S, P)
    return float((n * acc_change).sum() / n.sum())


def crosscheck(results: Sequence[Any], mr: mediation.MediationRuns, *, feature: str, n_boot: int) -> CrossCheck:
    """:func:`rharm.harm.mediation.mediation_crosscheck` for each minority of ``mr``, toward the class of its smallest
    RH.

    The regression's total (mean Y at X=1 minus at X=0, balanced-label probe, pooled over the evaluated images) is
    by construction the interventional NIE of the diagonal with its sign flipped, each (model seed, split seed)
    weighted by its number of evaluated minority images (:func:`pooled_nie`; the plain NIE when that number is the
    same in every split, e.g. with one split seed); a RuntimeError is raised if it is not.
    """
    rh_est = metrics.rh_interval(metrics.cosine_runs(results, feature=feature, classes=mr.classes))["estimate"]
    rows = []
    for m in mr.minorities:
        toward = rh_est.loc[m].drop(m).idxmin()
        out = mediation.mediation_crosscheck(results, mr, m, toward, feature=feature, n_boot=n_boot, seed=0)
        nie = pooled_nie(mr, m)
        if abs(out["total"] + nie) >= 1e-6:
            raise RuntimeError(f"regression total {out['total']} for {m!r} is not minus the pooled NIE {nie}")
        rows.append({"minority": m, "toward": toward, "indirect": out["indirect"], "lo": out["indirect_lo"],
                     "hi": out["indirect_hi"], "direct": out["direct"], "total": out["total"], "n": out["n"]})
    table = pd.DataFrame(rows).set_index("minority")
    first = table.iloc[0]
    return CrossCheck(str(table.index[0]), str(first.toward), float(first.indirect), float(first.lo),
                      float(first.hi), float(first.total), table)


@dataclass(frozen=True)
class Finding:
    """The chapter's one-paragraph finding (plain text)."""

    finding: str


def finding(ratio: int, diag: Diagonal, protos: Protocols) -> Finding:
    """The finding, in at most :data:`rharm.page.headline.FINDING_MAX_WORDS` words, from the main protocol's
    diagonal: the accuracy change, the representation's part and its share with an interval. The other protocol's
    share is in the body (``protos`` is kept for the chapter's call)."""
    meaningful = bool(np.isfinite(diag.share) and diag.te_mean < -0.01 and 0 <= diag.share <= 1)
    if meaningful:
        share_txt = f"a share of {diag.share:.2f}" + (
            f" (Fieller interval {diag.share_lo:.2f} to {diag.share_hi:.2f})" if diag.share_hi > diag.share_lo
            else " (no finite interval over these seeds)")
    elif not diag.te_mean < -0.01:
        share_txt = (f"so no share is given: the total change ({diag.te_mean:+.3f}) is not a loss of more than one "
                     "point")
    elif diag.share < 0:
        share_txt = (f"so no share is given: the representation's part has the opposite sign to the loss (NIE "
                     f"{diag.nie_mean:+.3f} against TE {diag.te_mean:+.3f})")
    else:
        share_txt = (f"so no share is given: the representation's part exceeds the whole loss (NIE "
                     f"{diag.nie_mean:+.3f} against TE {diag.te_mean:+.3f})")
    paper_part = (f", against the paper's {diag.paper_share:.2f}. " if np.isfinite(diag.paper_share)
                  else " (the paper reports no value for this setting). ")
    text = (f"Underrepresenting a class (1:{ratio}) changes its own accuracy by {diag.te_mean:.3f} on average over "
            f"{tables.plural(len(diag.minority_list), 'minority', 'minorities')}; "
            f"the representation carries {diag.nie_mean:.3f} of it, {share_txt}" + paper_part
            + ("Most of the loss is the probe's own: it sees almost no minority example."
               if meaningful and diag.share < 0.5 else ""))
    return Finding(text.strip())
