"""The Fashion-MNIST chapter: its two designs run in the registered order (:func:`run_designs`), the tables and
charts of one design (:class:`rharm.study.DesignResult`), one function per section so that both designs are shown
by the same code, and the chapter's summary (:func:`summary`), which :func:`rharm.headline.publish` glues.

Each display function returns one displayable object (a :class:`rharm.tables.Table` or an Altair chart); the chapter
calls it as the last expression of a cell.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd

from .. import charts, experiment, stats, study, tables
from ..study import DesignResult, ci_text

#: the parameters that make up a design's training grid (:func:`rharm.experiment.run_grid`)
GRID_KEYS = ("dataset", "method", "backbone", "init", "epochs", "batch_size", "lr", "weight_decay", "temperature",
             "clamp", "schedule", "augment", "ratio", "seeds", "n_per_class", "data_source", "threads", "workers")


def design_grids(P: Any) -> dict[str, dict]:
    """The training grid of each design: A on every class, B on ``replication_classes`` with its own pool."""
    grid = {k: P.values[k] for k in GRID_KEYS}
    grid["progress"] = False
    return {"A": grid, "B": {**grid, "classes": list(P.replication_classes), "n_per_class": P.replication_n_per_class}}


def run_designs(P: Any) -> dict[str, DesignResult]:
    """Both designs, each in its registered order (:func:`rharm.study.run_design`); the balanced models of both are
    trained first, in one pool (nothing of either design is underrepresented before its rule has run)."""
    grids = design_grids(P)
    experiment.prefetch([{**g, "minority_classes": []} for g in grids.values()], workers=P.workers)
    common = dict(alpha=P.alpha, n_boot=P.n_boot, level=P.ci_level, dose_seeds=P.dose_seeds,
                  temperatures=P.temperatures, temperature_seeds=P.temperature_seeds,
                  theory_fit_ratio=P.theory_fit_ratio, theory_dim=P.theory_dim, probe_c=P.probe_c, log=lambda *a: None)
    return {"A": study.run_design("Design A (all ten classes)", grids["A"], n_close=P.n_close,
                                  dose_ratios=P.dose_ratios, **common),
            "B": study.run_design("Design B (the pilot's five classes)", grids["B"], n_close=P.replication_n_close,
                                  dose_ratios=P.replication_dose_ratios, **common)}


def setting_table(P: Any, results: Mapping[str, DesignResult]) -> tables.Table:
    """One row per design: classes, pool, what the minority keeps, seeds and training minutes."""
    setting = pd.DataFrame([
        {"design": r.name, "classes": ", ".join(r.classes), "pool per class": r.grid["n_per_class"],
         "minority keeps":
             f"1/{P.ratio} = {stats.kept_count(r.grid['n_per_class'], P.ratio)} images", "seeds": len(P.seeds),
         "training minutes (summed over models)": r.train_minutes} for r in results.values()])
    return tables.show(setting, digits=2,
                       caption=f"One row per design. Both: {P.backbone}, {tables.plural(P.epochs, 'epoch')}, batch "
                               f"{P.batch_size}, lr {P.lr}, temperature {P.temperature}, augmentation {P.augment}; "
                               f"data {results['A'].data_source}; {len(P.dose_seeds)} seeds per dose-response "
                               f"point and {len(P.temperature_seeds)} per temperature.")


@dataclass(frozen=True)
class Summary:
    """The chapter's headline: its finding, the numbers its prose quotes, and every design's results."""

    finding: str
    alpha: str  # the level of the primary tests, as the prose shows it
    fit_ratio: str  # the ratio the theory's one parameter is fitted at
    designs: dict
    wall_minutes: float


def _design_numbers(r: DesignResult) -> dict:
    return {
        "name": r.name, "classes": r.classes, "n_per_class": r.grid["n_per_class"], "data_source": r.data_source,
        "preregistration": {"rule": r.prereg.rule, "minorities": r.prereg.minorities, "control": r.prereg.control,
                            "partners": r.prereg.partners, "table": r.prereg.table},
        "tests": r.tests, "noise_floor": r.floor, "balanced_probe_accuracy": r.probe,
        "mediation": {p: m.reset_index() for p, m in r.mediation.items()},
        "dose_response": {"minority": r.minority, "partner": r.partner, "points": r.dose,
                          "slope_log_rh_per_log_ratio": r.dose_slope, "p_one_sided": r.dose_p},
        "theory": {"alpha": r.fit.alpha, "fit_ratio": r.fit.fit_ratio, "at_bound": r.fit.at_bound,
                   "mae_rh": r.theory_mae, "tau": r.fit.tau},
        "temperature": {"points": r.temperature, "slope_log_rh_per_log_tau": r.temperature_slope,
                        "p_one_sided": r.temperature_p},
        "hypotheses_held": r.verdicts(), "training_minutes_summed_over_models": r.train_minutes,
    }


def summary(P: Any, results: Mapping[str, DesignResult], started: float) -> Summary:
    """The chapter's summary; ``started`` is the ``time.perf_counter()`` at the chapter's start."""
    return Summary(finding=" ".join(r.finding(P.ci_level) for r in results.values()), alpha=f"{P.alpha:g}",
                   fit_ratio=str(P.theory_fit_ratio), designs={k: _design_numbers(r) for k, r in results.items()},
                   wall_minutes=(time.perf_counter() - started) / 60)


def prereg_table(res: DesignResult) -> tables.Table:
    """Every class of the balanced models: its nearest class and the role the pre-registration rule gives it."""
    return tables.show(res.prereg.table, digits=2,
                       rename={"d_nearest": "1 − cos to nearest", "d_within": "1 − cos within",
                               "room": "room to collapse"},
                       caption=f"{res.name}: one row per class of the balanced models (mean over seeds), its nearest "
                               "class and the pre-registered role the rule gives it.")


def harm_table(res: DesignResult, level: float) -> tables.Table:
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
        rename={"rh_ci": "RH(i, partner) (CI)", "row_median_rh": "row median RH", "contrast": "log contrast",
                "p_h1": "p H1", "p_h2": "p H2"},
        caption=f"{res.name}: one row per pre-registered minority (the control last). RH: the paper's estimator over "
                f"{n_seeds} paired seeds with a {level:.0%} paired percentile bootstrap interval; log contrast: the "
                "partner cell's log RH minus the mean log RH of the rest of the row; p: one-sided paired t-tests "
                "over seeds, Holm-adjusted over the minorities (the control's contrast unadjusted). Noise floor (RH "
                f"between balanced models of different seeds in these rows): {charts.fmt_sig(res.floor['lo'])} to "
                f"{charts.fmt_sig(res.floor['hi'])} (2.5 and 97.5 percentiles of {res.floor['n']} single-seed "
                "ratios).")


def harm_heatmap(res: DesignResult, designs: Mapping[str, DesignResult]):
    """RH(i, j) of every pre-registered row, on a colour scale shared by all ``designs``."""
    return charts.heatmap(res.rh_long, "other", "minority", "rh",
                          title=f"RH(i, j), {res.name}, 1:{res.grid['ratio']}", mid=1.0,
                          x_order=res.classes, y_order=res.prereg.all_minorities,
                          domain=charts.diverging_domain(pd.concat([r.rh_long.rh for r in designs.values()]), 1.0),
                          legend="RH (red < 1: i moved closer to j; blue > 1: farther)")


def mediation_table(res: DesignResult, level: float, probe_c: float) -> tables.Table:
    """TE, NIE and NDE per protocol and pre-registered minority, with the balanced probe accuracy."""
    med = pd.concat([m.drop(index="mean").assign(protocol=p) for p, m in res.mediation.items()]).reset_index()
    for eff in ("TE", "NIE", "NDE"):
        med[f"{eff} (CI)"] = [ci_text(a, b, c) for a, b, c in zip(med[eff], med[f"{eff}_lo"], med[f"{eff}_hi"])]
    return tables.show(
        med, digits=3, columns=["protocol", "minority", "TE (CI)", "NIE (CI)", "NDE (CI)", "share"],
        rename={"share": "NIE / TE"},
        caption=f"{res.name}: one row per protocol and minority, the change in the minority's own test accuracy "
                f"(TE), its mediated (NIE) and direct (NDE = TE − NIE) parts, {level:.0%} bootstrap intervals over "
                f"seeds; probe C = {probe_c}, no cross-validation at this scale. Balanced linear probe accuracy: "
                f"{ci_text(res.probe['mean'], res.probe['lo'], res.probe['hi'])} (chance {1 / len(res.classes):.2f}).")


def dose_table(res: DesignResult) -> tables.Table:
    """H4: RH of the first minority's partner cell and its allocation TE at every ratio, beside the theory's RH."""
    d = res.dose
    return tables.show(
        d.assign(rh_ci=[ci_text(a, b, c) for a, b, c in zip(d.rh, d.rh_lo, d.rh_hi)],
                 te_ci=[ci_text(a, b, c) for a, b, c in zip(d.te, d.te_lo, d.te_hi)]),
        digits=3, columns=["x", "rh_ci", "theory_rh", "te_ci", "n_seeds"],
        rename={"x": "ratio", "rh_ci": f"RH({res.minority}, {res.partner}) (CI)", "theory_rh": "theory RH",
                "te_ci": "TE, clean (CI)", "n_seeds": "seeds"},
        caption=f"{res.name}: one row per ratio (1: the balanced model itself), RH of the first minority's partner "
                "cell (geometric mean over paired seeds, percentile bootstrap interval), the theory's RH with α = "
                f"{res.fit.alpha:.2f} fitted at ratio {res.fit.fit_ratio}"
                + (" (the observed RH lies outside the theory's range there: the fit sits at the edge)"
                   if res.fit.at_bound else "")
                + ", and the minority's total allocation effect (clean protocol).")


def dose_chart(res: DesignResult):
    """H4 as two panels: RH against the ratio with the theory's curve, and the allocation TE."""
    d = res.dose
    dl = pd.concat([d.assign(series="experiment")[["x", "rh", "series"]],
                    d.assign(series="theory", rh=d.theory_rh)[["x", "rh", "series"]]])
    return charts.panels([
        charts.line(dl, "x", "rh", "series", title=f"RH({res.minority}, {res.partner}) against the imbalance",
                    log_x=True, x_title="ratio (minority keeps 1/ratio)", y_title="RH (< 1: collapse)", legend=""),
        charts.line(d.assign(series="TE (clean)"), "x", "te", "series", log_x=True,
                    title=f"{res.minority}: change in own test accuracy", x_title="ratio", y_title="TE", legend=""),
    ])


def temperature_table(res: DesignResult) -> tables.Table:
    """H5: RH of the first minority's partner cell at every temperature, beside the theory's prediction."""
    tt = res.temperature
    return tables.show(
        tt.assign(rh_ci=[ci_text(a, b, c) for a, b, c in zip(tt.rh, tt.rh_lo, tt.rh_hi)]),
        digits=3, columns=["x", "rh_ci", "theory_rh", "n_seeds"],
        rename={"x": "temperature τ", "rh_ci": f"RH({res.minority}, {res.partner}) (CI)",
                "theory_rh": "theory RH", "n_seeds": "seeds"},
        caption=f"{res.name}: one row per temperature at 1:{res.grid['ratio']}, RH (geometric mean over paired "
                "seeds, percentile bootstrap interval) and the theory's prediction.")


def verdict_table(res: DesignResult) -> tables.Table:
    """Each pre-registered hypothesis of the design, whether it held, and the numbers that decide it."""
    return tables.show(res.verdicts(), caption=f"{res.name}: each pre-registered hypothesis, whether it held, and the "
                                               "numbers that decide it.")
