# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # The harm, resolved on a laptop: Fashion-MNIST
#
# :::{admonition} Finding
# :class: tip
# {glue:text}`fh_finding`
# :::
#
# On CIFAR-10 at a scale two CPU cores can train, the representations are too weak for any harm to exist (see
# {doc}`scale_study`). Fashion-MNIST (Xiao, Rasul & Vollgraf 2017; 28×28 greyscale, lossless, MIT licence) has
# classes a small network separates within seconds, and pairs of classes that are close but distinct (sandal,
# sneaker and ankle boot; trouser and dress), which is the situation in which the paper expects an
# underrepresented class to collapse onto its neighbour. This chapter tests that expectation under a
# pre-registration: the minority classes, their predicted partners, the tests and the cells they concern are fixed
# from the balanced models alone, before any underrepresented model is trained, by a rule written in
# `profiles.yml` ({mod}`rharm.study`). It then measures how the harm grows with the imbalance (dose-response) and
# with the temperature, and sets both beside the three-block theory of the {doc}`theory` chapter.

# %% tags=["parameters"]
profile = "cpu"
dataset = None
method = None
backbone = None
init = None
epochs = None
batch_size = None
lr = None
weight_decay = None
temperature = None
clamp = None
schedule = None
augment = None
ratio = None
seeds = None
n_per_class = None
data_source = None
threads = None
workers = None
n_close = None
alpha = None
n_boot = None
ci_level = None
dose_ratios = None
dose_seeds = None
temperatures = None
temperature_seeds = None
theory_fit_ratio = None
theory_dim = None
probe_c = None

# %%
import rharm.params

P = rharm.params.check("fashion_harm", globals())

# %%
import time

import numpy as np
import pandas as pd
from myst_nb import glue
from scipy import stats

from rharm import charts, data, experiment, headline, mediation, metrics, study, tables

t_start = time.perf_counter()
info = data.dataset_info(dataset)
classes = list(info.classes)
grid = {k: P.values[k] for k in ("dataset", "method", "backbone", "init", "epochs", "batch_size", "lr",
                                 "weight_decay", "temperature", "clamp", "schedule", "augment", "ratio", "seeds",
                                 "n_per_class", "data_source", "threads", "workers")}
grid["progress"] = False


def runs(minorities, seeds_, **changes):
    """Train (or fetch from the store) the balanced model and each minority for each seed."""
    return experiment.run_grid({**grid, **changes, "minority_classes": list(minorities), "seeds": list(seeds_)})


# %% [markdown]
# ## The setting
#
# Every model is a SimCLR encoder trained from scratch on a per-class pool of the training split; the images are
# padded to 32×32 and repeated over three channels so that the package's backbones apply unchanged, and augmented
# with crops, flips, brightness and contrast jitter (no hue, saturation or grayscale step: `simclr_grey` in
# {mod}`rharm.augment`). The balanced model and every underrepresented model of a seed share the pool, the initial
# weights and the batch order of the images they have in common (common random numbers), so RH is computed per seed
# on paired models. Distances are measured on the test split's backbone features.

# %%
t0 = time.perf_counter()
balanced_runs = runs([], seeds)
train_minutes = (time.perf_counter() - t0) / 60
src = balanced_runs[0].meta.get("extra", {}).get("data_source", info.title)
setting = pd.DataFrame([
    ("data", f"{src}: {n_per_class:,} training images per class, {len(classes)} classes; test split "
             f"({info.test_per_class:,} per class) for every measurement"),
    ("encoder", f"{backbone}, {epochs} epoch{'s' if epochs != 1 else ''}, batch {batch_size}, lr {lr}, "
                f"temperature {temperature}, augmentation {augment}"),
    ("underrepresentation", f"the minority keeps 1/{ratio} of its pool ({n_per_class // ratio} images)"),
    ("seeds", f"{len(seeds)} paired seeds for the pre-registered tests; {len(dose_seeds)} per dose-response point; "
              f"{len(temperature_seeds)} per temperature"),
], columns=["what", "value"])
tables.show(setting, caption="The setting of this page (profile " + P.profile + ").")

# %% [markdown]
# ## Pre-registration, from the balanced models alone
#
# The rule ({func}`rharm.study.preregister`, fixed in `profiles.yml` with the hypotheses and tests before this
# chapter's underrepresented models were trained): a class's **partner** is the class nearest to it (smallest
# $1-\cos$) in the balanced models, averaged over seeds. A class has **room to collapse** when its partner is
# farther from it than its own members are from each other ($1-\cos(i,\text{partner}) > 1-\cos(i,i)$); otherwise the
# two classes already overlap. The **minorities** are the {glue:text}`fh_n_close` classes with room whose partner
# is nearest; the **control** is the class with room whose nearest class is farthest. The hypotheses:
#
# - **H1** (one per minority): RH(minority, partner) < 1. One-sided paired $t$-test of $\log \mathrm{RH}$ over the
#   seeds, Holm over the minorities' partner cells only, level {glue:text}`fh_alpha`.
# - **H2** (specificity, one per minority): the partner cell lies below the rest of its row,
#   $\log \mathrm{RH}(i,p) - \operatorname{mean}_{j\ne i,p} \log \mathrm{RH}(i,j) < 0$; same test and correction.
#   A whole row moving down would mean the minority simply learned less, a different and weaker finding.
# - **H3** (control): the control's partner cell does not stand out of its row (its H2 contrast is not
#   significant).
# - **H4** (dose-response): RH(first minority, partner) falls as the ratio grows, and the three-block theory with
#   one parameter fitted at one ratio predicts the others.
# - **H5** (temperature): the theory predicts more collapse at a larger temperature.
#
# The rule applied to this page's balanced models (this cell runs before any underrepresented model is trained):

# %%
cr_bal = metrics.cosine_runs(balanced_runs, classes=classes)
prereg = study.preregister(study.balanced_distance(cr_bal), classes, n_close=n_close)
tables.show(prereg.table, index=None, digits=2,
            rename={"d_nearest": "1 − cos to nearest", "d_within": "1 − cos within", "room": "room to collapse"},
            caption="One row per class of the balanced models (mean over seeds): its nearest class and the "
                    "pre-registered role the rule gives it.")

# %%
tables.show(prereg.hypotheses(), caption="The pre-registered hypotheses of this page.")

# %% [markdown]
# ## Representation harm in the pre-registered cells

# %%
t0 = time.perf_counter()
main_runs = runs(prereg.all_minorities, seeds)
train_minutes += (time.perf_counter() - t0) / 60
cr = metrics.cosine_runs(main_runs, classes=classes)
tests = study.primary_tests(cr, prereg, alpha=alpha, n_boot=n_boot, level=ci_level)
floor = study.noise_floor_rows(cr, prereg.all_minorities)
ci = study.ci_text
shown = tests.assign(
    minority=[f"{m} (control)" if r == "control" else m for m, r in zip(tests.minority, tests.role)],
    rh_ci=[ci(a, b, c) for a, b, c in zip(tests.rh, tests.rh_lo, tests.rh_hi)],
    p_h1=[charts.fmt_sig(h, 2) for h in tests.p_rh_holm],
    p_h2=[charts.fmt_sig(h if r == "minority" else c, 2)
          for h, c, r in zip(tests.p_contrast_holm, tests.p_contrast, tests.role)],
    held=["yes" if h else "no" for h in tests.held])
tables.show(shown, index=None, digits=3,
            columns=["minority", "partner", "rh_ci", "row_median_rh", "contrast", "p_h1", "p_h2", "held"],
            rename={"rh_ci": "RH(i, partner) (CI)", "row_median_rh": "row median RH", "contrast": "log contrast",
                    "p_h1": "p H1", "p_h2": "p H2", "held": "held"},
            caption=f"One row per pre-registered minority (the control last). RH: the paper's estimator over "
                    f"{len(seeds)} paired seeds with a {ci_level:.0%} paired percentile bootstrap interval; log "
                    "contrast: the partner cell's log RH minus the mean log RH of the rest of the row; p: one-sided "
                    "paired t-tests over seeds, Holm-adjusted over the minorities (the control's contrast "
                    "unadjusted); held: the pre-registered prediction held.")

# %% [markdown]
# The noise floor is what RH looks like with no underrepresentation at all: the same ratio between two *balanced*
# models of different seeds, in the same rows. Single-seed ratios spread more than the seed-averaged estimate.

# %%
rh_boot = metrics.rh_bootstrap(cr, n_boot=n_boot, level=ci_level, paired=True, seed=0)
long = metrics.long_rh(rh_boot["estimate"], rh_boot["lo"], rh_boot["hi"])
long = long[long.minority.isin(prereg.all_minorities)]
dom = charts.diverging_domain(long.rh, 1.0)
charts.heatmap(long, "other", "minority", "rh", title=f"RH(i, j), {info.title}, 1:{ratio}", mid=1.0,
               x_order=classes, y_order=prereg.all_minorities, domain=dom,
               legend="RH (red < 1: i moved closer to j; blue > 1: farther)")

# %%
tables.show(pd.DataFrame([{"rows": ", ".join(prereg.all_minorities), "min": floor["min"], "2.5%": floor["lo"],
                           "97.5%": floor["hi"], "max": floor["max"], "values": floor["n"]}]),
            caption="Noise floor: RH between balanced models of different seeds, off-diagonal cells of the rows "
                    "above.")

# %% [markdown]
# ## What the balanced model can do, and the allocation harm of the same runs
#
# The balanced linear probe (multinomial logistic regression on the balanced training pool's backbone features,
# scored on the test split) says how good the representation is. The allocation harm is the change in the
# minority's own test accuracy of a linear classifier; the mediation analysis of the {doc}`allocation_harm` chapter
# splits it into the part carried by the representation (NIE) and the direct part of training the classifier on
# imbalanced data (NDE), under both probe protocols.

# %%
probe_acc = np.array([metrics.linear_probe_accuracy(r.features["train_backbone"], r.features["train_labels"],
                                                    r.features["test_backbone"], r.features["test_labels"])
                      for r in balanced_runs])
probe_mean, probe_lo, probe_hi = study.mean_ci(probe_acc, n_boot=n_boot, level=ci_level)
probe_cfg = mediation.ProbeConfig(c_grid=(probe_c,), folds=1)
med = {}
for prot in ("paper", "clean"):
    mr = mediation.mediation_runs(main_runs, protocol=prot, ratio=ratio, split_seeds=[0], probe=probe_cfg,
                                  classes=classes, minorities=prereg.all_minorities)
    med[prot] = mediation.diagonal_summary(mr, n_boot=n_boot, level=ci_level, seed=0)
med_table = pd.concat([m.drop(index="mean").assign(protocol=p) for p, m in med.items()]).reset_index()
for eff in ("TE", "NIE", "NDE"):
    med_table[f"{eff} (CI)"] = [ci(a, b, c) for a, b, c in
                                zip(med_table[eff], med_table[f"{eff}_lo"], med_table[f"{eff}_hi"])]
tables.show(med_table, digits=3, columns=["protocol", "minority", "TE (CI)", "NIE (CI)", "NDE (CI)", "share"],
            rename={"share": "NIE / TE"},
            caption=f"One row per protocol and minority: the change in the minority's own test accuracy (TE) and its "
                    f"mediated (NIE) and direct (NDE = TE − NIE) parts, {ci_level:.0%} bootstrap intervals over "
                    f"seeds. Probe C = {probe_c}, no cross-validation at this scale.")

# %% [markdown]
# ## Dose-response: how the harm grows with the imbalance
#
# The first pre-registered minority and its partner, at every ratio of the profile (ratio 1 is the balanced model
# itself, RH = 1 and TE = 0 by construction), each with {glue:text}`fh_n_dose_seeds` paired seeds. The theory's
# curve maps the experiment onto the three-block model of the {doc}`theory` chapter: block 1 the minority (mass
# $1/\text{ratio}$), block 2 its partner (mass 1), block 3 every other class (mass $K-2$); within-block connection
# 0.95, none between block 3 and the others, and one **fitted** parameter, the minority–partner connection
# $\alpha$, chosen so that the theory's RH equals the observed one at ratio {glue:text}`fh_fit_ratio` (fixed before
# the runs). Its RH is $(1-\cos(h_1^*,h_2^*))$ at the ratio over the same at ratio 1, at the experiment's
# temperature. The other ratios are predictions.

# %%
m0 = prereg.minorities[0]
p0 = prereg.partners[m0]
bal_dose = [r for r in runs([], dose_seeds)]
points = []
for r_ in dose_ratios:
    if r_ == 1:
        points.append({"x": 1, "log_rh": np.zeros(len(dose_seeds)), "te": np.zeros(len(dose_seeds))})
        continue
    t0 = time.perf_counter()
    imb = [x for x in runs([m0], dose_seeds, ratio=int(r_)) if x.minority == m0]
    train_minutes += (time.perf_counter() - t0) / 60
    points.append({"x": int(r_), "log_rh": study.cell_log_rh(bal_dose, imb, m0, p0, classes),
                   "te": study.allocation_te(bal_dose, imb, m0, int(r_), classes, probe_c)})
dose = study.sweep_table(points, n_boot=n_boot, level=ci_level)
fit_row = dose[dose.x == theory_fit_ratio]
if fit_row.empty:
    raise ValueError(f"theory_fit_ratio={theory_fit_ratio} is not one of dose_ratios={dose_ratios}")
fit = study.fit_alpha(float(fit_row.rh.iloc[0]), theory_fit_ratio, tau=temperature, n_classes=len(classes),
                      dim=theory_dim)
dose, theory_mae = study.theory_prediction_error(dose, fit, dim=theory_dim)
dose_slope = stats.linregress(np.log([p["x"] for p in points for _ in p["log_rh"] if p["x"] != 1]),
                              np.concatenate([p["log_rh"] for p in points if p["x"] != 1]))
dose_p = dose_slope.pvalue / 2 if dose_slope.slope < 0 else 1 - dose_slope.pvalue / 2
tables.show(dose.assign(rh_ci=[ci(a, b, c) for a, b, c in zip(dose.rh, dose.rh_lo, dose.rh_hi)],
                        te_ci=[ci(a, b, c) for a, b, c in zip(dose.te, dose.te_lo, dose.te_hi)]),
            digits=3, columns=["x", "rh_ci", "theory_rh", "te_ci", "n_seeds"],
            rename={"x": "ratio", "rh_ci": f"RH({m0}, {p0}) (CI)", "theory_rh": "theory RH",
                    "te_ci": "TE, clean (CI)", "n_seeds": "seeds"},
            caption="One row per ratio: RH of the pre-registered cell (geometric mean over paired seeds, percentile "
                    "bootstrap interval), the theory's RH with alpha fitted at ratio "
                    f"{theory_fit_ratio}, and the minority's total allocation effect (clean protocol).")

# %%
dose_long = pd.concat([
    dose.assign(series="experiment")[["x", "rh", "rh_lo", "rh_hi", "series"]],
    dose.assign(series=f"theory (α = {fit.alpha:.2f} fitted at 1:{theory_fit_ratio})", rh=dose.theory_rh,
                rh_lo=np.nan, rh_hi=np.nan)[["x", "rh", "rh_lo", "rh_hi", "series"]],
])
rh_chart = charts.line(dose_long, "x", "rh", "series", title=f"RH({m0}, {p0}) against the imbalance", log_x=True,
                       x_title="ratio (minority keeps 1/ratio)", y_title="RH (< 1: collapse)", legend="")
te_chart = charts.line(dose.assign(series="TE (clean)"), "x", "te", "series", log_x=True,
                       title=f"{m0}: change in own test accuracy", x_title="ratio", y_title="TE", legend="")
charts.panels([rh_chart, te_chart])

# %% [markdown]
# ## Temperature
#
# The {doc}`theory` chapter finds that, under the principled objective, the minority's representation merges fully
# with its partner's only when $1 + \alpha/0.95 \ge 2\tanh(1/\tau)$: a larger temperature $\tau$ makes collapse
# easier. Here the first minority at ratio {glue:text}`fh_ratio` is trained at each temperature, paired with the
# balanced model of the same temperature and seed, beside the theory's RH at the same $\tau$ with the $\alpha$
# fitted above.

# %%
tpoints = []
for tau_ in temperatures:
    t0 = time.perf_counter()
    rs = runs([m0], temperature_seeds, temperature=float(tau_))
    train_minutes += (time.perf_counter() - t0) / 60
    bal_t = [x for x in rs if x.minority is None]
    imb_t = [x for x in rs if x.minority == m0]
    tpoints.append({"x": float(tau_), "log_rh": study.cell_log_rh(bal_t, imb_t, m0, p0, classes)})
temp = study.sweep_table(tpoints, n_boot=n_boot, level=ci_level)
temp["theory_rh"] = [study.theory_rh(ratio, fit.alpha, tau=x, n_classes=len(classes), dim=theory_dim)
                     for x in temp.x]
temp_slope = stats.linregress(np.log([p["x"] for p in tpoints for _ in p["log_rh"]]),
                              np.concatenate([p["log_rh"] for p in tpoints]))
temp_p = temp_slope.pvalue / 2 if temp_slope.slope < 0 else 1 - temp_slope.pvalue / 2
tables.show(temp.assign(rh_ci=[ci(a, b, c) for a, b, c in zip(temp.rh, temp.rh_lo, temp.rh_hi)]),
            digits=3, columns=["x", "rh_ci", "theory_rh", "n_seeds"],
            rename={"x": "temperature τ", "rh_ci": f"RH({m0}, {p0}) (CI)", "theory_rh": "theory RH",
                    "n_seeds": "seeds"},
            caption=f"One row per temperature: RH of the pre-registered cell at 1:{ratio} (geometric mean over "
                    "paired seeds, percentile bootstrap interval) and the theory's prediction.")

# %%
temp_long = pd.concat([temp.assign(series="experiment")[["x", "rh", "series"]],
                       temp.assign(series="theory", rh=temp.theory_rh)[["x", "rh", "series"]]])
charts.line(temp_long, "x", "rh", "series", title=f"RH({m0}, {p0}) at 1:{ratio} against the temperature",
            log_x=True, x_title="temperature τ", y_title="RH (< 1: collapse)", legend="")

# %% [markdown]
# ## Verdicts

# %%
minor = tests[tests.role == "minority"]
ctrl = tests[tests.role == "control"].iloc[0]
n_held = int(minor.held.sum())
dose_falls = bool(dose_slope.slope < 0 and dose_p < alpha)
temp_more = bool(temp_slope.slope < 0 and temp_p < alpha)
theory_temp_dir = float(np.sign(temp.theory_rh.iloc[-1] - temp.theory_rh.iloc[0]))
verdicts = pd.DataFrame([
    *[{"hypothesis": f"H1+H2 {r.minority} → {r.partner}", "held": "yes" if r.held else "no",
       "numbers": f"RH {charts.fmt_sig(r.rh)} ({charts.fmt_sig(r.rh_lo)}–{charts.fmt_sig(r.rh_hi)}), row median "
                  f"{charts.fmt_sig(r.row_median_rh)}; Holm p {charts.fmt_sig(r.p_rh_holm, 2)} / "
                  f"{charts.fmt_sig(r.p_contrast_holm, 2)}"} for r in minor.itertuples()],
    {"hypothesis": f"H3 control {ctrl.minority} (nearest: {ctrl.partner})", "held": "yes" if ctrl.held else "no",
     "numbers": f"RH {charts.fmt_sig(ctrl.rh)} ({charts.fmt_sig(ctrl.rh_lo)}–{charts.fmt_sig(ctrl.rh_hi)}), "
                f"row median {charts.fmt_sig(ctrl.row_median_rh)}; contrast p {charts.fmt_sig(ctrl.p_contrast, 2)}"},
    {"hypothesis": "H4 RH falls with the ratio", "held": "yes" if dose_falls else "no",
     "numbers": f"slope of log RH on log ratio {dose_slope.slope:+.3f}, one-sided p {charts.fmt_sig(dose_p, 2)}; "
                f"theory (α {fit.alpha:.2f}) mean absolute error {charts.fmt_sig(theory_mae, 2)} in RH over the "
                "held-out ratios"},
    {"hypothesis": "H5 more collapse at a larger temperature", "held": "yes" if temp_more else "no",
     "numbers": f"slope of log RH on log τ {temp_slope.slope:+.3f}, one-sided p {charts.fmt_sig(temp_p, 2)}; "
                f"theory RH from {charts.fmt_sig(temp.theory_rh.iloc[0])} (τ {temp.x.iloc[0]:g}) to "
                f"{charts.fmt_sig(temp.theory_rh.iloc[-1])} (τ {temp.x.iloc[-1]:g})"},
])
tables.show(verdicts, caption="Each pre-registered hypothesis, whether it held, and the numbers that decide it.")

# %% tags=["remove-cell"]
wall_minutes = (time.perf_counter() - t_start) / 60
held_names = [f"{r.minority} → {r.partner}" for r in minor.itertuples() if r.held]
if n_held == len(minor):
    h12 = (f"All {len(minor)} pre-registered minorities collapsed onto the partner the balanced model predicted "
           f"({', '.join(held_names)}), each cell below the rest of its row")
elif n_held:
    h12 = (f"{n_held} of {len(minor)} pre-registered minorities collapsed specifically onto their predicted partner "
           f"({', '.join(held_names)})")
else:
    h12 = f"None of the {len(minor)} pre-registered minorities showed a significant pair-specific collapse"
first = minor.iloc[0]
finding = (
    f"{h12}: at 1:{ratio}, RH({first.minority}, {first.partner}) = {charts.fmt_sig(first.rh)} "
    f"({ci_level:.0%} CI {charts.fmt_sig(first.rh_lo)}–{charts.fmt_sig(first.rh_hi)}) against a noise floor of "
    f"{charts.fmt_sig(floor['lo'])}–{charts.fmt_sig(floor['hi'])}. The control ({ctrl.minority}) "
    + ("showed no pair-specific collapse, as predicted. " if ctrl.held else
       f"also collapsed toward its nearest class ({ctrl.partner}), against the prediction. ")
    + f"RH {'falls' if dose_falls else 'does not fall significantly'} as the imbalance grows; the three-block "
    f"theory with one fitted parameter predicts the other ratios with a mean absolute error of "
    f"{charts.fmt_sig(theory_mae, 2)} in RH, and a larger temperature "
    + ("gave more collapse, as it predicts." if temp_more else "did not give significantly more collapse, "
       "against its prediction.")
)
glue("fh_finding", finding, display=False)
glue("fh_n_close", str(n_close), display=False)
glue("fh_alpha", f"{alpha:g}", display=False)
glue("fh_n_dose_seeds", str(len(dose_seeds)), display=False)
glue("fh_fit_ratio", str(theory_fit_ratio), display=False)
glue("fh_ratio", str(ratio), display=False)
headline.write(P, {
    "finding": finding,
    "dataset": info.title, "data_source": src,
    "preregistration": {"rule": prereg.rule, "minorities": prereg.minorities, "control": prereg.control,
                        "partners": prereg.partners, "table": prereg.table},
    "tests": tests,
    "noise_floor": floor,
    "balanced_probe_accuracy": {"mean": probe_mean, "lo": probe_lo, "hi": probe_hi, "per_seed": probe_acc},
    "mediation": {p: m.reset_index() for p, m in med.items()},
    "dose_response": {"minority": m0, "partner": p0, "points": dose, "slope_log_rh_per_log_ratio": dose_slope.slope,
                      "p_one_sided": dose_p},
    "theory": {"alpha": fit.alpha, "fit_ratio": fit.fit_ratio, "at_bound": fit.at_bound, "mae_rh": theory_mae,
               "tau": fit.tau},
    "temperature": {"points": temp, "slope_log_rh_per_log_tau": temp_slope.slope, "p_one_sided": temp_p},
    "hypotheses_held": verdicts,
    "training_minutes": train_minutes, "wall_minutes": wall_minutes,
})

# %% [markdown]
# ## How this page was made

# %%
import rharm.provenance

rharm.provenance.block(P)
