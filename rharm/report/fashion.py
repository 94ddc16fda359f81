"""The Fashion-MNIST chapter: registration v2 (a confirmatory replication, :mod:`rharm.study.confirmatory`) run in its
registered order, v1 (exploratory) read from its archived result, the tables and charts of each section, and the
chapter's summary (:func:`summary`), which :func:`rharm.page.headline.publish` glues.

Each display function returns one displayable object (a :class:`rharm.page.tables.Table` or an Altair chart); the
chapter
calls it as the last expression of a cell.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from rharm.core import paths, sampling
from rharm.harm import metrics, stats
from rharm.page import charts, headline, tables
from rharm.study import confirmatory
from rharm.study.design import ci_text

#: where v1's result of a profile is archived (written by rharm at the commit it names; read, never written)
V1_ARCHIVE = "archive/fashion_harm.v1.json"
#: what every interval over seeds on this page is
INTERVAL_WORDS = (f"{metrics.RH_ESTIMATOR}; other quantities: mean over seeds with its Student t-interval")


def run(P: Any) -> confirmatory.Result:
    """Registration v2, in its registered order (:func:`rharm.study.confirmatory.run`)."""
    return confirmatory.run(
        "v2, confirmatory (five classes, fresh seeds)", confirmatory.registered_grid(P.values), n_close=P.n_close,
        alpha=P.alpha, level=P.ci_level, dose_ratios=P.dose_ratios, r0=P.dose_r0, fit_ratio=P.theory_fit_ratio,
        margin=P.theory_margin, low_temperature=P.low_temperature, theory_dim=P.theory_dim, probe_c=P.probe_c,
        log=lambda *a: None)


def load_v1(profile: str) -> dict | None:
    """v1's archived result of ``profile`` (``book/<profile>/archive/fashion_harm.v1.json``), or None if this profile
    has none. Read only."""
    f = paths.book_dir() / profile / V1_ARCHIVE
    if not f.is_file():
        return None
    return json.loads(f.read_text(encoding="utf-8"))


def v1_table(v1: Mapping[str, Any] | None) -> Any:
    """v1's verdicts, design by design, with point estimates and the registered tests' p-values. v1's intervals
    (percentile bootstraps over 3 to 5 seeds, which cover about 75 to 85 %) are not shown."""
    if v1 is None:
        from IPython.display import Markdown

        return Markdown("*No v1 result is archived for this profile (v1 was run at the cpu profile only).*")
    rows = []
    for key, d in v1["values"]["designs"].items():
        for t in d["tests"]:
            role = "control" if t["role"] == "control" else "minority"
            p = (f"Holm p {charts.fmt_sig(t['p_rh_holm'], 2)} (H1), {charts.fmt_sig(t['p_contrast_holm'], 2)} (H2)"
                 if role == "minority" else f"contrast p {charts.fmt_sig(t['p_contrast'], 2)}")
            rows.append({"design": key, "hypothesis": ("H1+H2 " if role == "minority" else "H3 control ")
                         + f"{t['minority']} → {t['partner']}", "RH": charts.fmt_sig(t["rh"]), "test": p,
                         "held": "yes" if t["held"] else "no"})
        dr, tp = d["dose_response"], d["temperature"]
        rows.append({"design": key, "hypothesis": f"H4 RH({dr['minority']}, {dr['partner']}) falls with the ratio",
                     "RH": "", "test": f"slope {dr['slope_log_rh_per_log_ratio']:+.3f}, "
                                       f"p {charts.fmt_sig(dr['p_one_sided'], 2)}",
                     "held": "yes" if dr["p_one_sided"] < 0.05 and dr["slope_log_rh_per_log_ratio"] < 0 else "no"})
        rows.append({"design": key, "hypothesis": "H5 more collapse at a larger temperature", "RH": "",
                     "test": f"slope {tp['slope_log_rh_per_log_tau']:+.3f}, p {charts.fmt_sig(tp['p_one_sided'], 2)}",
                     "held": "yes" if tp["p_one_sided"] < 0.05 and tp["slope_log_rh_per_log_tau"] < 0 else "no"})
    return tables.show(pd.DataFrame(rows), caption="v1 (exploratory, 2026-11-30): one row per registered hypothesis "
                       "of each design, the point estimate of RH (ratio of seed-mean distances, v1's estimator) and "
                       "the registered test. v1's intervals were percentile bootstraps over 3 to 5 seeds, which "
                       "cover about 75 to 85 % instead of 95 %, so they are not repeated here.")


def power_table(P: Any) -> tables.Table:
    """The registration's power calculation: per v1 cell, its per-seed spread, and the power of H1 at 4 to 12
    seeds to detect v1's own effect and a 20 % collapse (RH 0.8), at alpha / n_close (Holm's first step)."""
    rows = []
    a = P.alpha / P.n_close
    for cell, sd, eff in zip(P.power_cells, P.power_sd, P.power_effect):
        for n in range(4, 13):
            rows.append({"cell (v1)": cell, "seeds": n,
                         "power at v1's effect": stats.paired_t_power(abs(eff), sd, n, alpha=a),
                         "power at RH 0.8": stats.paired_t_power(-np.log(0.8), sd, n, alpha=a)})
    df = pd.DataFrame(rows)
    wide = df.pivot_table(index="seeds", columns="cell (v1)", values=["power at v1's effect", "power at RH 0.8"])
    wide.columns = [f"{c}: {m}" for m, c in wide.columns]
    return tables.show(wide.reset_index(), digits=2,
                       caption="Power of H1 (one-sided paired t-test of log RH at α / "
                               f"{P.n_close} = {a:g}, Holm's first step) by number of seeds, from v1's per-seed "
                               "standard deviation of log RH in each cell (" + ", ".join(
                                   f"{c}: sd {s:.3f}, mean log RH {e:+.3f}" for c, s, e in
                                   zip(P.power_cells, P.power_sd, P.power_effect)) + ").")


def setting_table(P: Any, res: confirmatory.Result) -> tables.Table:
    """v2's setting: classes, pool, what the minority keeps, seeds, epochs and training minutes."""
    setting = pd.DataFrame([{
        "classes": ", ".join(res.classes), "pool per class": res.grid["n_per_class"],
        "minority keeps": f"1/{P.ratio} = {sampling.kept_count(res.grid['n_per_class'], P.ratio)} images",
        "seeds": ", ".join(str(s) for s in P.seeds), "epochs": P.epochs,
        "training minutes (summed over models)": res.train_minutes}])
    return tables.show(setting, digits=2,
                       caption=f"v2's setting: {headline.model_words(P.backbone)}, batch {P.batch_size}, learning "
                               f"rate {P.lr}, temperature {P.temperature}, {headline.augment_words(P.augment)} "
                               f"augmentation; data {res.data_source}. Every "
                               "underrepresented model is paired with the balanced model of its seed.")


@dataclass(frozen=True)
class Summary:
    """The chapter's headline: its finding, the numbers its prose quotes, v2's results and v1's archived ones."""

    finding: str
    alpha: str  # the level of the primary tests, as the prose shows it
    fit_ratio: str  # the ratio the theory's one parameter is fitted at
    seeds_text: str  # v2's seeds, as the prose shows them
    epochs_text: str
    r0_text: str
    margin_text: str
    low_tau_text: str
    v2: dict
    v1: dict
    wall_minutes: float


def _numbers(r: confirmatory.Result) -> dict:
    return {
        "name": r.name, "classes": r.classes, "n_per_class": r.grid["n_per_class"], "seeds": r.grid["seeds"],
        "epochs": r.grid["epochs"], "data_source": r.data_source, "interval": INTERVAL_WORDS,
        "preregistration": {"rule": r.prereg.rule, "minorities": r.prereg.minorities, "control": r.prereg.control,
                            "partners": r.prereg.partners, "table": r.prereg.table},
        "tests": r.tests, "noise_floor": r.floor, "balanced_probe_accuracy": r.probe,
        "mediation": {p: m.reset_index() for p, m in r.mediation.items()},
        "dose_response": {FEATURE_KEYS[f]: {"minority": r.minority, "partner": r.partner, "points": d.table,
                                            "alpha": d.fit.alpha, "alpha_solutions": d.fit.solutions,
                                            "at_bound": d.fit.at_bound, "h4a": d.h4a, "h4b": d.h4b}
                          for f, d in r.dose.items()},
        "temperature": r.temperature, "contradiction_survives": r.contradiction_survives,
        "allocation": r.allocation,
        "hypotheses_held": r.verdicts(), "registration": r.registration,
        "training_minutes_summed_over_models": r.train_minutes,
    }


FEATURE_KEYS = {"test_backbone": "backbone", "test_projection": "projection"}


def _records(table: Any) -> list[dict]:
    """A table of ``_numbers`` as a list of row dicts: a DataFrame (in the chapter) or such a list (read back from
    the chapter's JSON file)."""
    return table.to_dict("records") if isinstance(table, pd.DataFrame) else list(table or [])


def finding(v2: Mapping[str, Any], level: float) -> str:
    """The chapter's finding in at most :data:`rharm.page.headline.FINDING_MAX_WORDS` words, from v2's numbers
    (``_numbers`` of the result, or the ``v2`` entry of the chapter's JSON file): whether the registered minorities
    collapsed onto their partner, with each cell's RH and interval, what the control did and what the theory
    predicted. The tests, p-values and the allocation harm are in the page's body (its verdict table)."""
    tests = _records(v2["tests"])
    minor = [t for t in tests if t["role"] == "minority"]
    held = [t for t in minor if t["held"]]
    n = len(minor)
    if held and len(held) == n:
        lead = ("the registered minority collapsed specifically onto its partner" if n == 1 else
                ("both" if n == 2 else f"all {n}") + " registered minorities collapsed specifically onto their partner")
    elif held:
        lead = f"{len(held)} of {n} registered minorities collapsed specifically onto their partner"
    else:
        lead = ("the registered minority did not collapse specifically onto its partner" if n == 1 else
                f"none of the {n} registered minorities collapsed specifically onto their partner")
    cells = ", ".join(f"RH({t['minority']}, {t['partner']}) = {ci_text(t['rh'], t['rh_lo'], t['rh_hi'])}"
                      for t in minor)
    reg = v2.get("registration") or {}
    ratio = reg.get("ratio", reg.get("fit_ratio"))
    text = f"On Fashion-MNIST at 1:{ratio}, {lead}: {cells} ({level:.0%} intervals, fresh seeds; 1 = no harm). "
    ctrl = [t for t in tests if t["role"] == "control"]
    if ctrl:
        c = ctrl[0]
        text += (f"The control ({c['minority']}) did not collapse, as predicted. " if c["held"]
                 else f"The control ({c['minority']}) collapsed too, against the prediction. ")
    dose = v2.get("dose_response") or {}
    fits = [FEATURE_WORDS.get(k, k) for k, d in dose.items() if d["h4b"]["held"]]
    where = ("" if len(fits) == len(dose) else f" on the {' and '.join(fits)} only")
    text += ("The theory predicts the dose-response" + where if fits else "The theory misses the dose-response")
    temp = ("its low-temperature prediction failed." if v2.get("contradiction_survives") else
            "its low-temperature prediction was not contradicted.")
    return text + "; " + temp


#: the dose-response's representations in words (the keys of ``_numbers``'s ``dose_response``)
FEATURE_WORDS = {"backbone": "backbone", "projection": "projection output"}


def summary(P: Any, res: confirmatory.Result, v1: Mapping[str, Any] | None, started: float) -> Summary:
    """The chapter's summary; ``started`` is the ``time.perf_counter()`` at the chapter's start."""
    v2 = _numbers(res)
    return Summary(finding=finding(v2, res.level), alpha=f"{P.alpha:g}", fit_ratio=str(P.theory_fit_ratio),
                   seeds_text=f"{', '.join(str(s) for s in P.seeds)}", epochs_text=str(P.epochs),
                   r0_text=str(P.dose_r0), margin_text=f"{P.theory_margin:g}", low_tau_text=f"{P.low_temperature:g}",
                   v2=v2,
                   v1=dict(v1["values"]) if v1 else {}, wall_minutes=(time.perf_counter() - started) / 60)


def prereg_table(res: Any) -> tables.Table:
    """Every class of the balanced models: its nearest class, its room, and the role the rule gives it."""
    return tables.show(res.prereg.table, digits=3,
                       rename={"d_nearest": "1 − cos to nearest", "d_within": "1 − cos within",
                               "room": "room to collapse", "room_size": "room (nearest − within)"},
                       caption=f"{res.name}: one row per class of the balanced models (mean over seeds; within-class "
                               "distance over pairs of distinct images), its nearest class, its room and the "
                               "pre-registered role the rule gives it (ties in the nearest distance: larger room "
                               "first).")


def harm_table(res: Any, level: float) -> tables.Table:
    """H1-H3: RH of each pre-registered cell with its interval, the row contrast, Holm-adjusted p-values."""
    t = res.tests
    n_seeds = len(res.grid["seeds"])
    return tables.show(t.assign(
        minority=[f"{m} (control)" if r == "control" else m for m, r in zip(t.minority, t.role)],
        rh_ci=[ci_text(a, b, c) for a, b, c in zip(t.rh, t.rh_lo, t.rh_hi)],
        p_h1=[charts.fmt_sig(h, 2) for h in t.p_rh_holm],
        p_h2=[charts.fmt_sig(h if r == "minority" else c, 2)
              for h, c, r in zip(t.p_contrast_holm, t.p_contrast, t.role)],
        held=["yes" if h else "no" for h in t.held]),
        digits=3, columns=["minority", "partner", "rh_ci", "row_median_rh", "contrast", "p_h1", "p_h2", "held"],
        rename={"rh_ci": "RH(i, partner) (interval)", "row_median_rh": "row median RH", "contrast": "log contrast",
                "p_h1": "p H1", "p_h2": "p H2"},
        caption=f"{res.name}: one row per pre-registered minority (the control last). RH over {n_seeds} paired "
                f"seeds: {metrics.RH_ESTIMATOR} ({level:.0%}); log contrast: the partner cell's log RH minus the "
                "mean log RH of the rest of the row; p: one-sided paired t-tests over seeds, Holm-adjusted over the "
                "minorities (the control's contrast unadjusted). Spread of single-seed RH between balanced models "
                f"of different seeds in these rows (no underrepresentation): {charts.fmt_sig(res.floor['lo'])} to "
                f"{charts.fmt_sig(res.floor['hi'])} (middle 95 % of {res.floor['n']} ratios).")


def harm_heatmap(res: Any):
    """RH(i, j) of every pre-registered row."""
    return charts.heatmap(res.rh_long, "other", "minority", "rh",
                          title=f"RH(i, j), {res.name}, 1:{res.grid['ratio']}", mid=1.0,
                          x_order=res.classes, y_order=res.prereg.all_minorities,
                          domain=charts.diverging_domain(res.rh_long.rh, 1.0),
                          legend="RH (red < 1: i moved closer to j; blue > 1: farther)")


def mediation_table(res: Any, level: float, probe_c: float) -> tables.Table:
    """TE, NIE and NDE per protocol and pre-registered minority, with the balanced probe accuracy."""
    med = pd.concat([m.drop(index="mean").assign(protocol=p) for p, m in res.mediation.items()]).reset_index()
    for eff in ("TE", "NIE", "NDE", "share"):
        med[f"{eff} (interval)"] = [ci_text(a, b, c) for a, b, c in zip(med[eff], med[f"{eff}_lo"],
                                                                         med[f"{eff}_hi"])]
    return tables.show(
        med, digits=3, columns=["protocol", "minority", "TE (interval)", "NIE (interval)", "NDE (interval)",
                                "share (interval)"],
        rename={"share (interval)": "NIE / TE (Fieller)"},
        caption=f"{res.name}: one row per protocol and minority, the change in the minority's own test accuracy "
                f"(TE), its mediated (NIE) and direct (NDE = TE − NIE) parts, {level:.0%} Student t-intervals over "
                f"model seeds (NIE / TE: Fieller's interval, '–' where TE is not resolved from 0); probe C = "
                f"{probe_c}, no cross-validation at this scale. Balanced linear probe accuracy: "
                f"{ci_text(res.probe['mean'], res.probe['lo'], res.probe['hi'])} (chance {1 / len(res.classes):.2f}).")


def dose_table(res: confirmatory.Result) -> tables.Table:
    """H4: RH of the first minority's partner cell at every ratio on both representations, beside the theory's RH,
    with the minority's allocation TE."""
    base = res.dose["test_backbone"].table
    out = pd.DataFrame({"ratio": base.x})
    for feat, d in res.dose.items():
        t = d.table.set_index("x").loc[base.x]
        name = confirmatory.FEATURES[feat]
        out[f"RH, {name} (interval)"] = ["1 (by definition)" if x == 1 else ci_text(a, b, c)
                                          for x, a, b, c in zip(base.x, t.rh, t.rh_lo, t.rh_hi)]
        out[f"theory RH, {name} (α {d.fit.alpha:.3f})"] = t.theory_rh.to_numpy()
    out["TE, clean (interval)"] = ["0 (by definition)" if x == 1 else ci_text(a, b, c)
                                   for x, a, b, c in zip(base.x, base.te, base.te_lo, base.te_hi)]
    return tables.show(out, digits=3, caption=(
        f"{res.name}: one row per ratio (1: the balanced model itself), RH({res.minority}, {res.partner}) on the "
        f"backbone and on the projection output ({metrics.RH_ESTIMATOR}), the theory's RH with α fitted at ratio "
        f"{res.registration['fit_ratio']} on each representation, and the minority's total allocation effect "
        "(clean protocol, t-interval)."))


def dose_chart(res: confirmatory.Result):
    """H4 as one panel per representation: RH with its interval band against the ratio, and the theory's curve."""
    out = []
    for feat, d in res.dose.items():
        t = d.table
        dl = pd.concat([t.assign(series="experiment (interval band)")[["x", "rh", "rh_lo", "rh_hi", "series"]],
                        t.assign(series=f"theory (α {d.fit.alpha:.2f})", rh=t.theory_rh, rh_lo=np.nan,
                                 rh_hi=np.nan)[["x", "rh", "rh_lo", "rh_hi", "series"]]])
        out.append(charts.line_band(dl, "x", "rh", "rh_lo", "rh_hi", "series", log_x=True,
                                    title=f"RH({res.minority}, {res.partner}), {confirmatory.FEATURES[feat]}",
                                    x_title="ratio (minority keeps 1/ratio)", y_title="RH (< 1: collapse)",
                                    legend="curve (band: its 95% interval)"))
    return charts.panels(out)


def allocation_table(res: confirmatory.Result) -> tables.Table:
    """The minority's allocation harm per ratio on two outcomes: accuracy (saturates) and one-vs-rest AUC (does not),
    with the AUC's mediated part."""
    a = res.allocation
    out = pd.DataFrame({
        "ratio": a.x,
        "balanced accuracy on the minority": a.acc00,
        "accuracy change, TE (interval)": [ci_text(x, lo, hi) for x, lo, hi in zip(a.TE_acc, a.TE_acc_lo,
                                                                                    a.TE_acc_hi)],
        "balanced AUC": a.auc00,
        "AUC change, TE (interval)": [ci_text(x, lo, hi) for x, lo, hi in zip(a.TE_auc, a.TE_auc_lo, a.TE_auc_hi)],
        "AUC change carried by the representation, NIE (interval)": [
            ci_text(x, lo, hi) for x, lo, hi in zip(a.NIE_auc, a.NIE_auc_lo, a.NIE_auc_hi)]})
    return tables.show(out, digits=3, caption=(
        f"{res.name}: the allocation harm of {res.minority} per ratio (clean protocol, paired seeds, Student "
        "t-intervals). Accuracy: the share of its test images the linear probe labels correctly; once the probe "
        "trained on the imbalanced data stops predicting the class at all, accuracy sits at 0 whatever the "
        "representation, so its change stops carrying information. AUC: how well the probe's score for the class "
        "ranks its test images above the others; it stays informative at any ratio, and its NIE is the part of the "
        "change that the representation alone causes (a balanced-label probe on the underrepresented model's "
        "representation). Descriptive, not a registered hypothesis; added before v2's runs were read."))


def allocation_chart(res: confirmatory.Result):
    """Accuracy TE and AUC TE / NIE against the ratio, each with its interval band."""
    a = res.allocation
    parts = [a.assign(series=name, v=a[k], lo=a[f"{k}_lo"], hi=a[f"{k}_hi"])[["x", "v", "lo", "hi", "series"]]
             for name, k in (("accuracy, TE", "TE_acc"), ("AUC, TE", "TE_auc"), ("AUC, NIE", "NIE_auc"))]
    return charts.line_band(pd.concat(parts), "x", "v", "lo", "hi", "series", log_x=True,
                            title=f"{res.minority}: allocation harm against the imbalance",
                            x_title="ratio (minority keeps 1/ratio)", y_title="change (0: no harm)",
                            legend="outcome and effect")


def temperature_table(res: confirmatory.Result) -> tables.Table:
    """T: RH at the main and the low temperature, learning rate fixed or scaled, on both representations."""
    tt = res.temperature
    return tables.show(
        tt.assign(rh_ci=[ci_text(a, b, c) for a, b, c in zip(tt.rh, tt.rh_lo, tt.rh_hi)],
                  contradiction=["yes" if c else "no" if cond != "main τ" else "" for c, cond in
                                 zip(tt.contradiction, tt.condition)]),
        digits=3, columns=["condition", "representation", "temperature", "lr", "rh_ci", "theory_rh", "p_below_1",
                           "contradiction"],
        rename={"temperature": "τ", "lr": "learning rate", "rh_ci": f"RH({res.minority}, {res.partner}) (interval)",
                "theory_rh": "theory RH", "p_below_1": "p (RH < 1)",
                "contradiction": "interval below theory − " + f"{confirmatory.CONTRADICTION_MARGIN}"},
        caption=f"{res.name}: one row per condition and representation at 1:{res.grid['ratio']}; the learning rate "
                "is either the main one or scaled by τ / main τ (NT-Xent's gradient grows as 1/τ); theory: the "
                "three-block RH at that τ with the α fitted on the same representation.")


def temperature_chart(res: confirmatory.Result):
    """T as a chart: RH with its interval per condition and representation, beside the theory's RH."""
    tt = res.temperature.copy()
    tt["series"] = tt.representation
    exp = tt.assign(kind="experiment")
    th = tt.assign(kind="theory", rh=tt.theory_rh, rh_lo=np.nan, rh_hi=np.nan)
    both = pd.concat([exp, th])
    both["label"] = both.kind + ", " + both.representation
    return charts.interval_dots(both, "condition", "rh", "rh_lo", "rh_hi", "label",
                                title=f"RH({res.minority}, {res.partner}) by temperature condition",
                                x_title="condition", y_title="RH (< 1: collapse)",
                                legend="estimate and representation",
                                rule_at=1.0)


def verdict_table(res: Any) -> tables.Table:
    """Each pre-registered hypothesis, whether it held, and the numbers that decide it."""
    return tables.show(res.verdicts(), caption=f"{res.name}: each pre-registered hypothesis, whether it held, and the "
                                               "numbers that decide it.")
