"""Registration v2 of the Fashion-MNIST study: a confirmatory replication on fresh seeds, with the dose-response
posed as the theory poses it and the temperature question without its two confounds.

The hypotheses, their tests and the cells they concern are written in ``profiles.yml`` (``fashion_harm``) and were
committed before any v2 model was trained. :func:`run` computes them in the registered order:

1. the balanced models of the v2 seeds; :func:`rharm.study.design.preregister` with the ``room`` tie-break names the
   minorities, their partners and the control (before any underrepresented model is trained);
2. H1-H3 as in v1 (:func:`rharm.study.design.primary_tests`), now with t-intervals;
3. H4a: RH(m0, p0) < 1 at every registered ratio >= ``r0`` (one-sided paired t-test of log RH at each ratio;
   intersection-union: held when every one rejects at ``alpha``, no multiplicity correction needed);
4. H4b: the three-block theory with alpha fitted at ``fit_ratio`` predicts the other ratios better than a flat line
   fitted at the same ratio: per seed, the mean absolute error in log RH over the held-out ratios, flat minus theory,
   is greater than ``margin`` (one-sided paired t-test at ``alpha``); with several alpha solutions it must hold for
   each. H4a and H4b are judged on the backbone (the paper's measure) and on the projection output (what the loss,
   and so the theory, sees), each with its own verdict;
5. T: the temperature question, in a 2 x 2 (tau in {``low_temperature``, the main temperature}) x (learning rate
   fixed, learning rate scaled by tau / main tau), on both representations: the theory expects RH near 1 at the low
   temperature; its contradiction "survives" in a cell when the upper end of RH's interval lies below the theory's
   RH at that temperature minus ``CONTRADICTION_MARGIN``.

Every interval over seeds is a Student t-interval (of log RH for RH, :data:`rharm.harm.metrics.RH_ESTIMATOR`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from rharm.harm import metrics, stats
from rharm.harm.probe import ProbeConfig
from rharm.study import design as study

#: the representations every v2 hypothesis about the dose-response and the temperature is judged on
FEATURES = {"test_backbone": "backbone", "test_projection": "projection output"}

#: the parameters of ``fashion_harm`` that make up the v2 training grid (:func:`rharm.runs.images.run_grid`); the
#: mitigation and audit chapters train (or fetch) exactly this grid, so their runs come from the same result store
GRID_KEYS = ("dataset", "method", "backbone", "init", "epochs", "batch_size", "lr", "weight_decay", "temperature",
             "clamp", "schedule", "augment", "ratio", "seeds", "n_per_class", "classes", "data_source", "threads",
             "workers")


def registered_grid(values: Any) -> dict:
    """The v2 training grid from ``fashion_harm``'s parameter values (a mapping holding at least :data:`GRID_KEYS`),
    without progress bars."""
    return {**{k: values[k] for k in GRID_KEYS}, "progress": False}
#: how far below the theory's RH the interval's upper end must lie for the low-temperature contradiction to survive
CONTRADICTION_MARGIN = 0.05


def below_one_at_every_ratio(points: Sequence[dict], r0: float, alpha: float) -> dict:
    """H4a: per ratio >= ``r0`` the one-sided paired t-test of log RH < 0; held when every test rejects at ``alpha``
    (an intersection-union test). Returns {"held", "ratios", "p"} (p in the order of ``ratios``)."""
    use = [p for p in points if p["x"] >= r0]
    ps = [stats.one_sided_p(p["log_rh"]) for p in use]
    return {"held": bool(use) and all(np.isfinite(p) and p < alpha for p in ps), "ratios": [p["x"] for p in use],
            "p": ps}


def theory_against_flat(points: Sequence[dict], fit: study.TheoryFit, *, margin: float, alpha: float,
                        level: float, dim: int) -> dict:
    """H4b: held-out error of the theory's curve against a flat line, both fitted at ``fit.fit_ratio``.

    Per seed s and held-out ratio r (every ratio but 1 and the fitting ratio): e_theory = abs(log RH_s(r) - log T(r)),
    e_flat = abs(log RH_s(r) - log RH_fit) with RH_fit the geometric-mean RH at the fitting ratio (what the theory is
    fitted to). D_s = mean_r e_flat - mean_r e_theory; held when the one-sided t-test of mean D > ``margin`` rejects
    at ``alpha`` for every alpha solution of the fit. Returns {"held", "by_solution": [...], ...}.
    """
    fit_pt = [p for p in points if p["x"] == fit.fit_ratio]
    if not fit_pt:
        raise ValueError(f"fit ratio {fit.fit_ratio} is not a dose-response ratio {[p['x'] for p in points]}")
    flat = float(np.mean(fit_pt[0]["log_rh"]))
    held_out = [p for p in points if p["x"] not in (1, fit.fit_ratio)]
    if not held_out:
        raise ValueError("no held-out ratio: the dose-response needs a ratio other than 1 and the fitting ratio")
    y = np.stack([np.asarray(p["log_rh"]) for p in held_out])  # (ratios, S)
    e_flat = np.abs(y - flat).mean(axis=0)
    out = []
    for a in fit.solutions:
        t = np.log([study.theory_rh(p["x"], a, tau=fit.tau, n_classes=fit.n_classes, dim=dim) for p in held_out])
        e_theory = np.abs(y - t[:, None]).mean(axis=0)
        d = e_flat - e_theory
        m, lo, hi = stats.t_interval(d, level=level)
        p = stats.one_sided_p(d, margin, "greater")
        out.append({"alpha": float(a), "theory_error": float(e_theory.mean()), "flat_error": float(e_flat.mean()),
                    "difference": m, "lo": lo, "hi": hi, "p": p, "held": bool(np.isfinite(p) and p < alpha)})
    return {"held": all(o["held"] for o in out) and not fit.at_bound, "by_solution": out,
            "held_out_ratios": [p["x"] for p in held_out], "at_bound": fit.at_bound}


@dataclass
class FeatureDose:
    """The dose-response of one representation: its table, the theory fit, H4a and H4b."""

    feature: str
    table: pd.DataFrame
    fit: study.TheoryFit
    h4a: dict
    h4b: dict


@dataclass
class Result:
    """Everything the v2 section of the chapter shows (see :func:`run`)."""

    name: str
    classes: list
    grid: dict
    prereg: study.Preregistration
    tests: pd.DataFrame
    floor: dict
    rh_long: pd.DataFrame
    probe: dict
    mediation: dict
    dose: dict  #: feature -> FeatureDose
    temperature: pd.DataFrame
    minority: str
    partner: str
    data_source: str
    train_minutes: float
    alpha: float
    level: float
    registration: dict = field(default_factory=dict)
    #: the minority's allocation effects per ratio (accuracy and one-vs-rest AUC; :func:`allocation_table`)
    allocation: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def contradiction_survives(self) -> bool:
        """The registered temperature verdict: the low-temperature contradiction survives when it holds with the
        learning rate scaled by tau on both representations (the confound-free cells)."""
        t = self.temperature
        cells = t[(t.condition == "low τ, lr scaled")]
        return bool(len(cells)) and bool(cells.contradiction.all())

    def verdicts(self) -> pd.DataFrame:
        """One row per registered v2 hypothesis: held or not, and the numbers that decide it."""
        f = _fmt
        minor = self.tests[self.tests.role == "minority"]
        ctrl = self.tests[self.tests.role == "control"].iloc[0]
        rows = [{"hypothesis": f"H1+H2 {r.minority} → {r.partner}", "held": _yes(r.held),
                 "numbers": f"RH {study.ci_text(r.rh, r.rh_lo, r.rh_hi)}; Holm-adjusted p {f(r.p_rh_holm, 2)} (H1) "
                            f"and {f(r.p_contrast_holm, 2)} (H2)"} for r in minor.itertuples()]
        rows.append({"hypothesis": f"H3 control {ctrl.minority} (nearest: {ctrl.partner})", "held": _yes(ctrl.held),
                     "numbers": f"RH {study.ci_text(ctrl.rh, ctrl.rh_lo, ctrl.rh_hi)}, row median "
                                f"{f(ctrl.row_median_rh)}; contrast p {f(ctrl.p_contrast, 2)}"})
        for feat, fd in self.dose.items():
            name = FEATURES[feat]
            ps = ", ".join(f"1:{r:g} p {f(p, 2)}" for r, p in zip(fd.h4a["ratios"], fd.h4a["p"]))
            rows.append({"hypothesis": f"H4a ({name}) RH({self.minority}, {self.partner}) < 1 at every ratio ≥ "
                                       f"{self.registration.get('r0', '?')}", "held": _yes(fd.h4a["held"]),
                         "numbers": ps})
            sols = "; ".join(f"α {s['alpha']:.3f}: flat − theory error {s['difference']:+.3f} ({s['lo']:+.3f} to "
                             f"{s['hi']:+.3f}), p {f(s['p'], 2)}" for s in fd.h4b["by_solution"])
            rows.append({"hypothesis": f"H4b ({name}) theory beats a flat line by > "
                                       f"{self.registration.get('margin', '?')} in log RH",
                         "held": _yes(fd.h4b["held"]),
                         "numbers": ("fit at the edge of the theory's range; " if fd.fit.at_bound else "")
                                    + f"{len(fd.fit.solutions)} α solution(s); " + sols})
        t = self.temperature
        low = t[t.condition != "main τ"]
        rows.append({"hypothesis": "T: the low-temperature contradiction survives the learning-rate and "
                                   "representation confounds",
                     "held": _yes(self.contradiction_survives),
                     "numbers": "; ".join(f"{r.condition}, {r.representation}: RH "
                                          f"{study.ci_text(r.rh, r.rh_lo, r.rh_hi)} vs theory {f(r.theory_rh)}"
                                          for r in low.itertuples())})
        return pd.DataFrame(rows)

    def finding(self) -> str:
        """Three or four sentences, every clause chosen by a number (a contradicting number changes the sentence)."""
        minor = self.tests[self.tests.role == "minority"]
        held = [f"{r.minority} → {r.partner}" for r in minor.itertuples() if r.held]
        n = len(minor)
        lead = (("both" if n == 2 else f"all {n}") + " pre-registered minorities collapsed specifically onto "
                "their predicted partner" if len(held) == n and n > 1 else
                "the pre-registered minority collapsed specifically onto its predicted partner" if len(held) == n else
                f"{len(held)} of {n} pre-registered minorities collapsed specifically onto their predicted partner "
                f"({', '.join(held)})" if held else
                ("the pre-registered minority showed no significant pair-specific collapse" if n == 1 else
                 f"none of the {n} pre-registered minorities showed a significant pair-specific collapse"))
        cells = "; ".join(f"RH({r.minority}, {r.partner}) = {study.ci_text(r.rh, r.rh_lo, r.rh_hi)}"
                          for r in minor.itertuples())
        bb = self.dose.get("test_backbone")
        pj = self.dose.get("test_projection")

        def dose_words(fd: FeatureDose | None, name: str) -> str:
            if fd is None:
                return ""
            a = "stays below 1 at every ratio from 1:" + f"{self.registration.get('r0', '?')}" if fd.h4a["held"] \
                else "is not below 1 at every registered ratio"
            b = "the theory's curve predicts the held-out ratios better than a flat line" if fd.h4b["held"] \
                else "the theory's curve does not beat a flat line by the registered margin"
            return f"on the {name}, RH {a} and {b}"

        dose = "; ".join(x for x in (dose_words(bb, "backbone"), dose_words(pj, "projection output")) if x)
        temp = ("the low-temperature contradiction of the theory survives with the learning rate scaled by τ"
                if self.contradiction_survives else
                "the low-temperature contradiction of the theory does not survive once the learning rate is scaled "
                "by τ on both representations")
        return (f"{self.name}: {lead} ({cells}; {metrics.RH_ESTIMATOR}, {self.level:.0%}). "
                + self.control_sentence() + f"Dose-response of "
                f"{self.minority} → {self.partner}: {dose}. Temperature: {temp}." + self.allocation_sentence())

    def control_sentence(self) -> str:
        """What the control did, in its partner cell and in its most collapsed cell when that is another one (a
        control can keep its prediction, no pair-specific collapse toward its nearest class, while another cell of
        its row falls further)."""
        ctrl = self.tests[self.tests.role == "control"]
        if ctrl.empty:
            return ""
        c = ctrl.iloc[0]
        verdict = ("no pair-specific collapse toward its nearest class" if c.held
                   else "a pair-specific collapse toward its nearest class, against the prediction")
        text = (f"The control ({c.minority}) showed {verdict} (RH({c.minority}, {c.partner}) = "
                f"{study.ci_text(c.rh, c.rh_lo, c.rh_hi)}, contrast p {_fmt(c.p_contrast, 2)})")
        row = self.rh_long[(self.rh_long.minority == c.minority) & (self.rh_long.other != c.minority)] \
            if not self.rh_long.empty else self.rh_long
        if len(row):
            low = row.loc[row.rh.idxmin()]
            if low.other != c.partner:
                text += (f"; its most collapsed cell is toward {low.other} (RH {study.ci_text(low.rh, low.lo, low.hi)})"
                         if {"lo", "hi"} <= set(row.columns) else f"; its most collapsed cell is toward {low.other}")
        return text + ". "

    def allocation_sentence(self) -> str:
        """The allocation harm at the main ratio in the measure that does not saturate (the minority's AUC), with
        how much of it the representation carries; empty when not computed."""
        a = self.allocation
        if a.empty or self.grid.get("ratio") not in set(a.x):
            return ""
        r = a[a.x == self.grid["ratio"]].iloc[0]
        acc = f"its accuracy changes by {r.TE_acc:+.2f}"
        sat = (" (the imbalanced probe almost never predicts it, so accuracy says nothing more)"
               if r.acc00 + r.TE_acc < 0.05 else "")
        auc = (f"its one-vs-rest AUC by {study.ci_text(r.TE_auc, r.TE_auc_lo, r.TE_auc_hi)}, of which the "
               f"representation carries {study.ci_text(r.NIE_auc, r.NIE_auc_lo, r.NIE_auc_hi)}")
        return f" Allocation at 1:{self.grid['ratio']}: {acc}{sat}; {auc}."


def _fmt(v: float, digits: int = 3) -> str:
    from rharm.core.common import fmt_sig

    return fmt_sig(v, digits)


def _yes(b: Any) -> str:
    return "yes" if bool(b) else "no"


def _lr_scaled(lr: float, tau: float, main_tau: float) -> float:
    """The learning rate scaled with the temperature: NT-Xent's gradient scales as 1/tau, so lr x tau / main_tau keeps
    the step size of the main setting."""
    return float(lr) * float(tau) / float(main_tau)


def run(name: str, grid: dict, *, n_close: int, alpha: float, level: float, dose_ratios: Sequence[int], r0: float,
        fit_ratio: int, margin: float, low_temperature: float, theory_dim: int, probe_c: float,
        log=print) -> Result:
    """Train and analyse registration v2 in the registered order (module docstring). ``grid``: an
    :func:`rharm.runs.images.run_grid` grid with ``classes``, the v2 seeds and the main ratio."""
    from rharm.harm import mediation
    from rharm.runs import images as experiment
    from rharm.vision import data

    run_seconds: dict[str, float] = {}
    classes = list(grid.get("classes") or data.dataset_info(grid["dataset"]).classes)
    seeds = list(grid["seeds"])
    main_tau, lr = float(grid["temperature"]), float(grid["lr"])
    if fit_ratio not in dose_ratios or 1 not in dose_ratios:
        raise ValueError(f"dose_ratios={list(dose_ratios)} must contain 1 and the fitting ratio {fit_ratio}")

    def runs(minorities, **changes):
        out = experiment.run_grid({**grid, **changes, "minority_classes": list(minorities), "seeds": seeds})
        run_seconds.update({str(r.dir): float(r.meta.get("wall_time_s", float("nan"))) for r in out})
        return out

    balanced = runs([])
    prereg = study.preregister(study.balanced_distance(metrics.cosine_runs(balanced, classes=classes)), classes,
                               n_close=n_close, tie_break="room")
    m0, p0 = prereg.minorities[0], prereg.partners[prereg.minorities[0]]
    low = {"lr fixed": {"temperature": float(low_temperature)},
           "lr scaled": {"temperature": float(low_temperature), "lr": _lr_scaled(lr, low_temperature, main_tau)}}
    later = [{**grid, "minority_classes": list(prereg.all_minorities)}]
    later += [{**grid, "minority_classes": [m0], "ratio": int(r)} for r in dose_ratios
              if int(r) not in (1, grid["ratio"])]
    later += [{**grid, **ch, "minority_classes": [m0]} for ch in low.values()]
    experiment.prefetch(later, workers=int(grid.get("workers") or 1))
    main = runs(prereg.all_minorities)
    prim = study.primary_section(balanced, main, prereg, classes, ratio=int(grid["ratio"]), alpha=alpha,
                                 level=level, probe_c=probe_c)
    probe_cfg = ProbeConfig(c_grid=(float(probe_c),), folds=1)
    log(f"{name}: H1-H3 done")
    imb_by_ratio = {int(r): [x for x in runs([m0], ratio=int(r)) if x.minority == m0]
                    for r in dose_ratios if int(r) != 1}
    alloc = {r: mediation.minority_probe_effects([*balanced, *imb], m0, ratio=r, classes=classes, probe=probe_cfg)
             for r, imb in imb_by_ratio.items()}
    allocation = allocation_table(alloc, level)
    dose = {}
    for feat in FEATURES:
        points = [{"x": 1, "log_rh": np.zeros(len(seeds)), "te": np.zeros(len(seeds))}]
        points += [{"x": r, "log_rh": study.cell_log_rh(balanced, imb, m0, p0, classes, feature=feat),
                    "te": alloc[r]["TE_acc"]} for r, imb in imb_by_ratio.items()]
        table = study.sweep_table(points, level=level)
        fit = study.fit_alpha(float(table[table.x == fit_ratio].rh.iloc[0]), fit_ratio, tau=main_tau,
                              n_classes=len(classes), dim=theory_dim)
        table, _ = study.theory_prediction_error(table, fit, dim=theory_dim)
        dose[feat] = FeatureDose(feat, table, fit, below_one_at_every_ratio(points, r0, alpha),
                                 theory_against_flat(points, fit, margin=margin, alpha=alpha, level=level,
                                                     dim=theory_dim))
    log(f"{name}: dose-response done")
    trows = []
    conditions = {"main τ": {}, **{f"low τ, {k}": v for k, v in low.items()}}
    for cond, ch in conditions.items():
        rs = runs([m0], **ch)
        bal = [x for x in rs if x.minority is None]
        imb = [x for x in rs if x.minority == m0]
        tau = float(ch.get("temperature", main_tau))
        for feat, rep in FEATURES.items():
            lr_ = study.cell_log_rh(bal, imb, m0, p0, classes, feature=feat)
            rh, lo, hi = stats.geometric_ci(lr_, level=level)
            th = study.theory_rh(int(grid["ratio"]), dose[feat].fit.alpha, tau=tau, n_classes=len(classes),
                                 dim=theory_dim)
            trows.append({"condition": cond, "representation": rep, "temperature": tau,
                          "lr": float(ch.get("lr", lr)), "rh": rh, "rh_lo": lo, "rh_hi": hi, "theory_rh": th,
                          "p_below_1": stats.one_sided_p(lr_),
                          "contradiction": bool(cond != "main τ" and np.isfinite(hi)
                                                and hi < th - CONTRADICTION_MARGIN)})
    temp = pd.DataFrame(trows)
    src = balanced[0].meta.get("extra", {}).get("data_source", data.dataset_info(grid["dataset"]).title)
    return Result(name, classes, dict(grid), prereg, prim["tests"], prim["floor"], prim["rh_long"], prim["probe"],
                  prim["mediation"], dose, temp, m0, p0, src,
                  sum(run_seconds.values()) / 60, float(alpha), float(level),
                  {"ratio": int(grid["ratio"]), "r0": r0, "margin": margin, "fit_ratio": fit_ratio,
                   "low_temperature": low_temperature},
                  allocation)


def allocation_table(alloc: dict, level: float) -> pd.DataFrame:
    """Per ratio: the minority's accuracy change (TE, clean protocol) and the change of its one-vs-rest AUC (TE, NIE,
    NDE), each the mean over paired seeds with its t-interval (from
    :func:`rharm.harm.mediation.minority_probe_effects`). Ratio 1 (the balanced model against itself) is 0 by
    definition and left out."""
    rows = []
    for r, e in sorted(alloc.items()):
        row = {"x": r, "n_seeds": int(e["TE_acc"].size), "acc00": float(e["acc00"].mean()),
               "auc00": float(e["auc00"].mean())}
        for k in ("TE_acc", "TE_auc", "NIE_auc", "NDE_auc"):
            row[k], row[f"{k}_lo"], row[f"{k}_hi"] = stats.t_interval(e[k], level=level)
        rows.append(row)
    return pd.DataFrame(rows)
