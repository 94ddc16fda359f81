# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Allocation harm and causal mediation
#
# Underrepresenting a class hurts a downstream classifier built on the contrastive representation: the minority's
# accuracy drops (*allocation harm*). How much of that drop flows *through the representation* (the collapse
# measured in the previous chapter), and how much comes from the downstream head seeing few minority examples?
#
# The paper answers with an interventional mediation analysis. The treatment $T$ is "class $i$ underrepresented";
# the mediator $M$ is the learned representation; the outcome $Y(t, m)$ is the row-normalised confusion matrix of a
# linear probe trained under data condition $t$ on representation $m$:
#
# $$\mathrm{TE} = Y(1, M(1)) - Y(0, M(0)), \quad \mathrm{NIE} = Y(0, M(1)) - Y(0, M(0)), \quad
#   \mathrm{NDE} = \mathrm{TE} - \mathrm{NIE} = Y(1, M(1)) - Y(0, M(1)).$$
#
# The paper's figures title the direct panel "−rNDE"; it is our NDE. Diagonal entries are changes of the minority's
# own accuracy (negative = harm); entry $(i, j)$ is the change in $P(\text{predict } j \mid \text{true } i)$.
# Functions: {mod}`rharm.mediation`. The representation harm itself is measured in
# [the previous chapter](representation_harm.ipynb).
#
# :::{admonition} Finding
# :class: important
# {glue:md}`finding`
# :::

# %% tags=["parameters"]
profile = "cpu"
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
minority_classes = None
ratio = None
seeds = None
n_per_class = None
data_source = None
threads = None
workers = None
precision = None
deterministic = None
checkpoint_every = None
feature = None
n_boot = None
ci_level = None
paired = None
multicomp = None
alpha = None
mediation_minorities = None
protocols = None
split_seeds = None
probe_c_grid = None
probe_cv_folds = None
probe_max_iter = None
clean_max_train_per_class = None
crosscheck_n_boot = None

# %%
import rharm.params

P = rharm.params.check("allocation_harm", globals())
not_trained = [m for m in mediation_minorities if m not in minority_classes]
if not_trained:
    raise ValueError(f"mediation_minorities={mediation_minorities!r} includes {not_trained}, which are not trained; "
                     f"valid: a subset of minority_classes={minority_classes!r}")

# %%
import time

import altair as alt
import numpy as np
import pandas as pd
from myst_nb import glue

from IPython.display import Markdown

from rharm import charts as rcharts
from rharm import experiment, mediation, metrics, reference, tables

mediation.mediation_diagram()

# %% [markdown]
# The diagram: underrepresentation $T$ changes the representation $M$, which changes the probe's errors (the
# indirect path, NIE); it also acts directly, because the probe itself is trained on data with few minority
# examples (the direct part). NIE is the "pure" indirect effect: it is evaluated with the probe trained on
# balanced labels.

# %%
results = experiment.run_grid({**experiment.grid_from_params(P), "progress": False})  # the same grid as the previous chapter: cached
probe = mediation.ProbeConfig(c_grid=tuple(probe_c_grid), folds=probe_cv_folds, max_iter=probe_max_iter)
t0 = time.perf_counter()
runs_by_protocol = {
    prot: mediation.cached_mediation_runs(
        results, protocol=prot, ratio=ratio, split_seeds=list(split_seeds), probe=probe, feature=feature,
        minorities=[m for m in minority_classes if m in mediation_minorities],
        max_train_per_class=clean_max_train_per_class or None)
    for prot in protocols
}
probe_seconds = sum(mr.seconds for mr in runs_by_protocol.values())
glue("ah_probe_minutes", probe_seconds / 60, display=False)
glue("ah_wall_minutes", (time.perf_counter() - t0) / 60, display=False)
glue("ah_backbone", backbone, display=False)
glue("ah_epochs", tables.plural(epochs, "epoch"), display=False)
glue("ah_data", results[0].meta.get("extra", {}).get("data_source", "CIFAR-10 (source not recorded)"), display=False)
glue("ah_n_per_class", n_per_class, display=False)
glue("ah_ratio", ratio, display=False)
glue("ah_n_seeds", tables.plural(len(seeds), "seed"), display=False)
glue("ah_n_splits", tables.plural(len(split_seeds), "split seed"), display=False)
glue("ah_minorities", ", ".join(minority_classes), display=False)
glue("ah_mediation_minorities", ", ".join(m for m in minority_classes if m in mediation_minorities), display=False)
glue("ah_profile", P.profile, display=False)
glue("ah_c_grid", ", ".join(f"{c:g}" for c in probe_c_grid), display=False)
glue("ah_probe_c", Markdown(
    f"C = {probe_c_grid[0]:g} (fixed: no cross-validation)" if probe_cv_folds <= 1 or len(probe_c_grid) == 1 else
    f"C chosen by {probe_cv_folds}-fold cross-validation over {', '.join(f'{c:g}' for c in probe_c_grid)}"),
    display=False)
glue("ah_probe_time", Markdown(
    f"Fitting the probes took {probe_seconds / 60:.1f} minutes"
    + ("; this run read them from the result store" if time.perf_counter() - t0 < 0.5 * probe_seconds else "")),
    display=False)
glue("ah_max_iter", probe_max_iter, display=False)

# %% [markdown]
# ## Scale and protocols
#
# Profile **{glue:text}`ah_profile`**: the representations of the previous chapter ({glue:text}`ah_backbone`,
# {glue:text}`ah_epochs`, {glue:text}`ah_n_per_class` images per class of {glue:text}`ah_data`, minorities
# {glue:text}`ah_minorities` at 1:{glue:text}`ah_ratio`, {glue:text}`ah_n_seeds`); probes are fitted for the
# minorities {glue:text}`ah_mediation_minorities`, because they dominate this chapter's cost. The paper used ResNet-34
# for 500 epochs, all ten minorities and 10 seeds. {glue:md}`ah_probe_time`.
#
# Probes are multinomial logistic regressions on L2-normalised features with {glue:md}`ah_probe_c`, at most
# {glue:text}`ah_max_iter` L-BFGS iterations (scikit-learn's `LogisticRegression`; our fold loop reproduces
# `GridSearchCV`'s choice, checked in `tests/test_mediation.py`). The `cpu` profile fixes $C$ because on two shared
# CPU cores a search multiplies the cost of every probe by (folds × values of $C$ + 1); the `gpu` profile runs the
# paper's 3-fold search.
#
# - **paper**: the probe is trained on a 75% split of the *test* features and scored on the other 25%
#   ({glue:text}`ah_n_splits`); the imbalanced probe keeps $n_i // \text{ratio}$ of the minority
#   in its 75% (seeded here, unseeded in the official code). Training the probe on test images is not standard
#   practice, hence the second protocol.
# - **clean**: the probe is trained on training-set features (the balanced pool for $Y(0,\cdot)$; exactly the
#   images the imbalanced contrastive run saw for $Y(1, M(1))$) and scored on the whole test set.

# %%
order = reference.class_order()
boots = {prot: mediation.effect_bootstrap(mr, n_boot=n_boot, level=ci_level, seed=0)
         for prot, mr in runs_by_protocol.items()}
paper_full = {"TE": reference.matrix("simclr_100_te"), "NIE": reference.matrix("simclr_100_nie")}
paper_full["NDE"] = paper_full["TE"] - paper_full["NIE"]
main = protocols[0]
mr_main = runs_by_protocol[main]
rows = [c for c in order if c in mr_main.minorities]
long_main = mediation.long_effects(boots[main], paper_full)
ours_domain = rcharts.diverging_domain(long_main["value"], 0.0)  # one scale for TE, NDE and NIE: NIE is a part of TE
rcharts.panels([mediation.effect_heatmap(long_main, e, title=f"Ours ({main} protocol): {e}", order=order, rows=rows,
                                         domain=ours_domain) for e in mediation.EFFECTS], shared_color=True)

# %% [markdown]
# Our TE, direct part (NDE) and NIE, stacked, one row per minority class we ran, all ten predicted classes, on one
# colour scale centred at 0 (red: less often predicted; on the diagonal, accuracy lost), so NIE's colour can be
# compared with TE's directly. The tooltip gives the bootstrap interval (model seeds, then split seeds within each, resampled with replacement; the three
# conditions share the draws) and the paper's value.

# %%
six = reference.matrix("simclr_100_te_6").index.tolist()
paper_six = {"TE": reference.long("simclr_100_te_6"), "NDE": reference.long("simclr_100_neg_rnde_6"),
             "NIE": reference.long("simclr_100_nie_6")}
paper_six_long = pd.concat([d.rename(columns={"other": "predicted"}).assign(effect=e) for e, d in paper_six.items()])
six_rows = [c for c in six if c in rows]
six_ours = long_main[long_main.minority.isin(six_rows) & long_main.predicted.isin(six)]
six_domain = rcharts.diverging_domain(np.concatenate([paper_six_long["value"].to_numpy(), six_ours["value"].to_numpy()]),
                                      0.0)  # paper and ours on one scale: the same colour is the same effect
six_panels = []
for e in mediation.EFFECTS:
    six_panels.append(mediation.effect_heatmap(paper_six_long, e, order=six, rows=six, domain=six_domain,
                                               title=f"Paper, 6 classes: {e if e != 'NDE' else '−rNDE'}",
                                               width=rcharts.plot_width(2)))
    if six_rows:
        six_panels.append(mediation.effect_heatmap(long_main, e, title=f"Ours, same cells: {e}", order=six,
                                                   rows=six_rows, domain=six_domain, width=rcharts.plot_width(2)))
rcharts.panels(six_panels, shared_color=True)

# %% [markdown]
# Left: the paper's 6-class panels (airplane, ship, automobile, truck, deer, horse; `AH_undersampling_100.pdf`);
# right: ours for the minorities of that set we ran, one row per effect. All six panels share one colour scale, so a
# pale panel is a small effect, not a rescaled one.
#
# ## How much of the minority's accuracy loss does the representation carry?

# %%
with np.errstate(invalid="ignore", divide="ignore"):  # a share NIE/TE is undefined where a draw has TE = 0
    summaries = {prot: mediation.diagonal_summary(mr, n_boot=n_boot, level=ci_level, seed=0)
                 for prot, mr in runs_by_protocol.items()}
paper_diag = pd.DataFrame({"paper_TE": np.diag(reference.matrix("simclr_100_te")),
                           "paper_NIE": np.diag(reference.matrix("simclr_100_nie"))}, index=order)
paper_diag["paper_share"] = paper_diag.paper_NIE / paper_diag.paper_TE
paper_mean = reference.matrix("simclr_100_diagonal_mean")
table = summaries[main][["TE", "TE_lo", "TE_hi", "NIE", "NIE_lo", "NIE_hi", "share", "share_lo", "share_hi"]]
table = table.join(paper_diag, how="left")
# like for like: the paper's mean over the same minorities as ours (its 10-class mean is quoted in the text)
same = paper_diag.loc[[m for m in mr_main.minorities if m in paper_diag.index]]
table.loc["mean", ["paper_TE", "paper_NIE"]] = same[["paper_TE", "paper_NIE"]].mean().to_numpy()
table.loc["mean", "paper_share"] = table.loc["mean", "paper_NIE"] / table.loc["mean", "paper_TE"]
glue("ah_paper10_te", float(paper_mean.iloc[0]["TE"]), display=False)
glue("ah_paper10_nie", float(paper_mean.iloc[0]["NIE"]), display=False)
glue("ah_n_same", tables.plural(len(same), "minority", "minorities"), display=False)
s = summaries[main].loc["mean"]
glue("ah_main", main, display=False)
glue("ah_te_mean", float(s.TE), display=False)
glue("ah_nie_mean", float(s.NIE), display=False)
glue("ah_share", float(s.share), display=False)
glue("ah_share_lo", float(s.share_lo), display=False)
glue("ah_share_hi", float(s.share_hi), display=False)
glue("ah_paper_te_mean", float(table.loc["mean", "paper_TE"]), display=False)
glue("ah_paper_nie_mean", float(table.loc["mean", "paper_NIE"]), display=False)
glue("ah_paper_share", float(table.loc["mean", "paper_share"]), display=False)
tables.show(table, index="minority", caption="One row per minority class (and their mean): the change of its own "
            "accuracy in total (TE) and through the representation (NIE), NIE's share of TE, each with its bootstrap "
            "interval, beside the paper's values for the same class; the mean row averages the same classes in both.",
            digits=2)

# %% [markdown]
# With the {glue:text}`ah_main` protocol, the minority's accuracy changes by {glue:text}`ah_te_mean:.3f` in total,
# of which {glue:text}`ah_nie_mean:.3f` flows through the representation: a share of
# {glue:text}`ah_share:.2f` (interval {glue:text}`ah_share_lo:.2f` to {glue:text}`ah_share_hi:.2f`). The paper
# reports {glue:text}`ah_paper_te_mean:.3f` and {glue:text}`ah_paper_nie_mean:.3f`, a share of
# {glue:text}`ah_paper_share:.2f`, averaged over the same {glue:text}`ah_n_same` (over all ten minorities:
# {glue:text}`ah_paper10_te:.3f` and {glue:text}`ah_paper10_nie:.3f`). The rest of the loss is the probe's own:
# with 1:{glue:text}`ah_ratio` it sees almost no minority example.
#
# ### Other settings in the paper
#
# For reference, the paper's mean diagonals for its other settings ({mod}`rharm.reference`, entry
# `other_settings_diagonal`):

# %%
tables.show(reference.matrix("other_settings_diagonal"), index="setting",
            caption="One row per setting of the paper: its mean diagonal TE and NIE over the minorities it ran.")

# %% [markdown]
# ## Both probe protocols side by side

# %%
both = pd.concat({prot: summ[["TE", "NIE", "NDE", "share", "share_lo", "share_hi"]]
                  for prot, summ in summaries.items()}, names=["protocol", "minority"]).reset_index()
if len(summaries) > 1:
    a, b = list(summaries)[:2]
    glue("ah_proto_a", a, display=False)
    glue("ah_proto_b", b, display=False)
    glue("ah_share_a", float(summaries[a].loc["mean", "share"]), display=False)
    glue("ah_share_b", float(summaries[b].loc["mean", "share"]), display=False)
else:
    glue("ah_proto_a", main, display=False)
    glue("ah_proto_b", main, display=False)
    glue("ah_share_a", float(s.share), display=False)
    glue("ah_share_b", float(s.share), display=False)
tables.show(both, caption="One row per protocol and minority class: TE, NIE and the direct part NDE of its own "
            "accuracy, and NIE's share of TE with its interval.", digits=2)

# %% [markdown]
# The share carried by the representation is {glue:text}`ah_share_a:.2f` with the {glue:text}`ah_proto_a`
# protocol and {glue:text}`ah_share_b:.2f` with the {glue:text}`ah_proto_b` protocol.
#
# ## The paper's "±"
#
# The official figures print, per condition, the standard deviation over all (model seed × split seed) replicates
# times $1/\sqrt{250}$ (250 = test images per class in the 25% split), combined in quadrature for a difference.
# This is neither a standard error over replicates nor a binomial one; we show it beside the bootstrap standard
# error for the minority diagonals.

# %%
psd = mediation.effect_paper_sd(mr_main)
tables.show(pd.DataFrame({e: {m: psd[e].loc[m, m] for m in mr_main.minorities} for e in mediation.EFFECTS}).add_prefix(
    "paper's formula: ").join(pd.DataFrame({e: {m: boots[main][e]["se"].loc[m, m] for m in mr_main.minorities}
                                            for e in mediation.EFFECTS}).add_prefix("bootstrap SE: ")),
            index="minority", caption="One row per minority class: the paper's ± for its diagonal TE, NDE and NIE "
            "beside our bootstrap standard errors.", digits=2)

# %% [markdown]
# ## A regression cross-check with pingouin
#
# The interventional design above retrains probes under each condition. A regression mediation design instead
# models individual outcomes. For each minority test image we compute a scalar mediator, the *collapse score*:
# cosine to the centroid of the class the minority collapses toward minus cosine to its own class centroid (in
# the model that produced the image's features). $X$ = 1 for the representation trained with the minority
# underrepresented, 0 for the balanced one; $Y$ = 1 if the balanced-label probe misclassifies the image.
# `pingouin.mediation_analysis` fits $M \sim X$ and $Y \sim X + M$ by least squares and bootstraps the indirect
# effect $a \times b$.

# %%
rh_cr = metrics.cosine_runs(results, feature=feature)
rh_est = metrics.rh_matrix(rh_cr)
nie_main = mediation.effect_matrices(mr_main)["NIE"]
checks = []
for m in mr_main.minorities:
    toward = rh_est.loc[m].drop(m).idxmin()
    out = mediation.mediation_crosscheck(results, mr_main, m, toward, feature=feature, n_boot=crosscheck_n_boot, seed=0)
    checks.append({"minority": m, "toward": toward, "indirect": out["indirect"], "lo": out["indirect_lo"],
                   "hi": out["indirect_hi"], "direct": out["direct"], "total": out["total"], "n": out["n"]})
    # the regression's total (mean Y at X=1 minus at X=0, balanced-label probe) is the interventional NIE of the
    # diagonal with its sign flipped, by construction: assert it rather than print a column that repeats it
    assert abs(out["total"] + float(nie_main.loc[m, m])) < 1e-6, (m, out["total"], nie_main.loc[m, m])
checks = pd.DataFrame(checks).set_index("minority")
first = checks.iloc[0]
glue("ah_cc_minority", checks.index[0], display=False)
glue("ah_cc_toward", first.toward, display=False)
glue("ah_cc_indirect", float(first.indirect), display=False)
glue("ah_cc_lo", float(first.lo), display=False)
glue("ah_cc_hi", float(first.hi), display=False)
glue("ah_cc_total", float(first.total), display=False)
tables.show(checks, index="minority", caption="One row per minority class: the class it collapses toward (smallest "
            "RH), the regression's indirect effect on P(misclassified) with its bootstrap interval, the direct and "
            "total effects, and the number of test images.", digits=2, rename={"lo": "indirect lo",
                                                                               "hi": "indirect hi"})

# %% [markdown]
# For {glue:text}`ah_cc_minority` (collapse toward {glue:text}`ah_cc_toward`), the regression indirect effect on
# the misclassification probability is {glue:text}`ah_cc_indirect:.3f` (bootstrap interval
# {glue:text}`ah_cc_lo:.3f` to {glue:text}`ah_cc_hi:.3f`) out of a total of {glue:text}`ah_cc_total:.3f`.
# The regression's total is, by construction, the interventional NIE of the minority's accuracy with its sign
# flipped (both compare the balanced-label probe on the two representations; the notebook asserts the equality), so
# the two designs differ only in how they split that total.
#
# **How the two designs differ.** The interventional NIE changes the whole representation and retrains the probe,
# so it counts every way the new representation moves the decision boundary; it needs no model of how $M$ acts on
# $Y$. The regression design compresses the representation into one number chosen by us, assumes linear
# $M \to Y$ and $X \to M$ relations with no unmeasured $M$–$Y$ confounding, and attributes to "direct" everything
# the collapse score does not capture, including other changes of the representation. Its indirect effect is
# therefore the part of the harm explained *by this particular collapse direction*, a lower bound on the
# representation's role when the score misses other changes, and it agrees with the interventional NIE only if
# the collapse score is what drives the errors.

# %%
import rharm.headline

meaningful = bool(np.isfinite(s.share) and s.TE < -0.01 and 0 <= s.share <= 1)
share_txt = (f"a share of {s.share:.2f}"
             + (f" (interval {s.share_lo:.2f} to {s.share_hi:.2f})" if s.share_hi > s.share_lo else "")
             if meaningful else "a share that is not meaningful here (the total loss is too small or has the "
             "other sign)")
other = [p for p in summaries if p != main]
other_share = float(summaries[other[0]].loc["mean", "share"]) if other else float("nan")
finding = (
    f"Underrepresenting a class (1:{ratio}) changes its own accuracy by {s.TE:.3f} on average over "
    f"{tables.plural(len(mr_main.minorities), 'minority', 'minorities')} ({main} protocol); "
    f"the representation carries {s.NIE:.3f} of it, {share_txt}, against the paper's "
    f"{table.loc['mean', 'paper_share']:.2f} for the same classes. "
    + ("Most of the loss is the probe's own: it sees almost no minority example. "
       if meaningful and s.share < 0.5 else "")
    + (f"The {other[0]} protocol gives a share of {other_share:.2f}."
       if other and meaningful and np.isfinite(other_share) else "")
)
glue("finding", Markdown(finding), display=False)
rharm.headline.write(P, {"protocol": main, "te_mean": s.TE, "nie_mean": s.NIE, "share": s.share,
                         "share_lo": s.share_lo, "share_hi": s.share_hi,
                         "paper_share_same_minorities": table.loc["mean", "paper_share"],
                         "paper_te_mean_10": float(paper_mean.iloc[0]["TE"]),
                         "paper_nie_mean_10": float(paper_mean.iloc[0]["NIE"]),
                         "share_by_protocol": {p: float(v.loc["mean", "share"]) for p, v in summaries.items()},
                         "minorities": list(mr_main.minorities)})

# %%
import rharm.provenance

rharm.provenance.block(P)
