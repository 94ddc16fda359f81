# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Representation harm in SimCLR on CIFAR-10
#
# Does contrastive learning push an underrepresented class toward another class in representation space? We train
# one SimCLR model on balanced CIFAR-10 and, for each chosen *minority* class $i$, one model on data where class $i$
# keeps only $1/\text{ratio}$ of its images, with the same seeds. On the test set we compare mean pairwise cosines
# of unit-normalised backbone features,
#
# $$\cos_M(i, j) = \frac{1}{n_i n_j}\sum_{a \in i}\sum_{b \in j} \langle u(a), u(b) \rangle
#   = \langle \bar u_i^M, \bar u_j^M \rangle, \qquad
#   \mathrm{RH}(i, j) = \frac{1 - \cos_{M_i}(i, j)}{1 - \cos_{M_\mathrm{bal}}(i, j)},$$
#
# where $\bar u_i^M$ is the mean of the unit vectors of class $i$ under model $M$. Row $i$ of the RH matrix comes
# from the model trained with class $i$ underrepresented. $\mathrm{RH}(i, j) < 1$: class $i$ moved closer to class
# $j$ (representation harm). The functions are in {mod}`rharm.harm.metrics`; the paper's values in {mod}`rharm.core.reference`.
#
# :::{admonition} Finding
# :class: rharm-finding
# {glue:text}`rh_finding`
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
ci_level = None
paired = None
multicomp = None
alpha = None

# %%
import rharm.core.params

P = rharm.core.params.check("representation_harm", globals())

# %%
import numpy as np
import pandas as pd
from IPython.display import Markdown

from rharm.core import reference
from rharm.harm import metrics
from rharm.page import charts, tables
from rharm.report import representation as report
from rharm.runs import images as experiment

charts.enable()
results = experiment.run_grid({**experiment.grid_from_params(P), "progress": False})
scale = report.scale(results, P)

# %% [markdown]
# ## Scale of this page
#
# Profile **{glue:text}`rh_profile`**: a {glue:text}`rh_backbone` backbone trained with SimCLR for
# {glue:text}`rh_epochs` on {glue:text}`rh_n_per_class` training images per class of
# {glue:text}`rh_data`; each minority class ({glue:text}`rh_minorities`) keeps {glue:text}`rh_kept` images
# (1:{glue:text}`rh_ratio`); {glue:text}`rh_n_seeds` per model; the models took
# {glue:text}`rh_train_minutes:.1f` minutes of training summed over runs, {glue:text}`rh_workers_text` at a time
# (hardware: {glue:text}`rh_hardware`).
# The paper used ResNet-34 for 500 epochs on all 5,000 images per class of the lossless CIFAR-10, every class as a
# minority, 10 seeds. The `cpu` profile is far smaller because it must run on two CPU cores (the paper's headline
# pair in both directions, three seeds); at that scale the representation barely separates the classes (the
# {doc}`scale_study` page measures it), so its numbers test the pipeline, not the paper's claim; the
# {doc}`fashion_harm` chapter is where the harm resolves on two cores. The `gpu` profile sets the paper's scale.
#
# This page reproduces the paper's matrices, so its within-class cells (the diagonal) are computed as the paper's
# code computes them, with each image's similarity to itself included (`within="paper"`); every other page leaves
# those self-pairs out. The off-diagonal cells, where the harm is, are the same either way.

# %% mystnb={"figure": {"name": "fig-rh-heatmaps", "caption": "Our RH matrix beside the paper's."}}
cr = metrics.cosine_runs(results, feature=P.feature, classes=metrics.CIFAR10_CLASSES, within="paper")
boot = metrics.rh_interval(cr, level=P.ci_level, paired=P.paired)
paper = report.paper_rh(P.method, P.ratio)  # None when the paper reports no RH for this method and ratio
order = reference.class_order()
rows = [c for c in order if c in cr.minorities]
ours_long = metrics.long_rh(boot["estimate"], boot["lo"], boot["hi"], paper)
comparison = report.paper_comparison(ours_long, P.method, P.ratio)
ours_title = f"Ours: RH ({P.backbone}, 1:{P.ratio}, {scale.n_seeds})"
if paper is None:
    heatmaps = charts.panels([charts.rh_heatmap(ours_long, title=ours_title, order=order, rows=rows,
                                                domain=charts.diverging_domain(ours_long.rh, 1.0))])
else:
    paper_long = metrics.long_rh(paper.loc[[r for r in rows if r in paper.index]])
    rh_domain = charts.diverging_domain(np.concatenate([ours_long.rh.to_numpy(), paper_long.rh.to_numpy()]), 1.0)
    heatmaps = charts.panels([
        charts.rh_heatmap(ours_long, title=ours_title, order=order, rows=rows, domain=rh_domain),
        charts.rh_heatmap(paper_long, title=f"Paper: RH (ResNet-34, {report.paper_label(P.method, P.ratio)})",
                          order=order, rows=rows, domain=rh_domain),
    ], shared_color=True)
heatmaps

# %% [markdown]
# {numref}`fig-rh-heatmaps`, top: our RH matrix, rows = minority class $i$, columns = the other class $j$; {glue:text}`rh_paper_panel`. The
# panels share one colour scale centred at 1: red below 1 (the minority moved closer: harm), blue above, so the same
# colour is the same RH in both. Our RH is the geometric mean over seeds of each seed's RH (the underrepresented
# model paired with the balanced model of the same seed); the tooltip gives its Student t-interval of log RH over
# seeds, exponentiated (with three seeds a percentile bootstrap would cover only about 75%).
#
# Where the paper reports this setting, {numref}`fig-rh-scatter` sets each of our cells against the paper's.

# %% mystnb={"figure": {"name": "fig-rh-scatter", "caption": "RH per cell, ours against the paper's."}}
(charts.ours_vs_paper_scatter(ours_long, title="RH per cell: ours against the paper's") if paper is not None
 else Markdown("*(the paper reports no RH for this setting: no scatter)*"))

# %% [markdown]
# {glue:text}`rh_corr_text`
#
# ## Is RH below 1 beyond seed noise?
#
# For each off-diagonal cell we test whether the paired per-seed log-ratio
# $\log(1-\cos_{M_i,s}) - \log(1-\cos_{M_\mathrm{bal},s})$ is below 0 (one-sided $t$-test over seeds), and control
# the error over all cells of the matrix with the profile's multiple-comparison correction.

# %% mystnb={"figure": {"name": "tab-rh-tests", "caption": "The cells with the smallest p-values.", "classes": "rharm-table", "caption_before": 1}}
sig = report.significance(cr, P.multicomp, P.alpha)
(tables.show(sig.cells.sort_values("p").head(12), caption="The cells with the smallest p-values, one row per "
             "(minority, other class): the mean paired log-ratio over seeds (< 0: moved closer), its p-value and "
             "whether it survives the correction.", digits=3) if sig.cells is not None
 else Markdown("*(one seed: no test)*"))

# %% [markdown]
# {glue:text}`rh_n_reject` of {glue:text}`rh_n_tests` cells have RH significantly below 1 at level
# {glue:text}`rh_alpha` after {glue:text}`rh_multicomp_words` control ({numref}`tab-rh-tests` lists the smallest
# $p$-values). With few
# seeds the $t$-test has few degrees of freedom and little power. The cells and seeds are the profile's, fixed before
# these runs; the cpu profile's training setting, however, was chosen on a two-seed pilot's RH (see the
# {doc}`scale_study` page), so this page is a diagnostic of scale, not a test of the paper's claim.
#
# ### Noise floor
#
# What does RH look like with no underrepresentation at all? The ratio between two *balanced* models of different
# seeds gives the spread that seed noise alone produces for a single-seed ratio.
#
# {numref}`tab-rh-floor` gives that spread.

# %% mystnb={"figure": {"name": "tab-rh-floor", "caption": "The noise floor: RH between two balanced models.", "classes": "rharm-table", "caption_before": 1}}
most = metrics.most_collapsed_table(boot["estimate"], boot["lo"], boot["hi"], paper)
floor = report.noise_floor(cr, most, P.ci_level)
tables.show(pd.DataFrame([{"lo": floor.floor_lo, "median": floor.floor_median, "hi": floor.floor_hi,
                           "n": floor.floor_n}]),
            caption="Noise floor: RH between two balanced models of different seeds (off-diagonal cells); lo and "
            "hi bound its central band.")

# %% [markdown]
# Between balanced models, the central band of single-seed RH values is {glue:text}`rh_floor_lo:.3f` to
# {glue:text}`rh_floor_hi:.3f` ({glue:text}`rh_floor_n` off-diagonal values; undefined with one seed). Our strongest
# collapse is {glue:text}`rh_strongest_minority` → {glue:text}`rh_strongest_class` with RH
# {glue:text}`rh_strongest_value:.3f` (interval {glue:text}`rh_strongest_lo:.3f` to
# {glue:text}`rh_strongest_hi:.3f`); {glue:text}`rh_strongest_paper_text`. A value
# inside the noise band is not evidence of representation harm at this scale.
#
# ## Most-collapsed class per minority, beside the paper
#
# {numref}`tab-rh-most` gives, per minority, the class it moved closest to.

# %% mystnb={"figure": {"name": "tab-rh-most", "caption": "The most-collapsed class per minority, beside the paper.", "classes": "rharm-table", "caption_before": 1}}
tables.show(most, index="minority", caption="One row per minority class: the class it moved closest to in our "
            "models (RH, interval) and, where the paper reports this setting, in the paper's and its RH for our cell.")

# %% [markdown]
# ## Is the collapse specific to one class?
#
# The paper's collapse is concentrated: automobile moves toward truck, horse toward deer, not toward every class.
# `contrast` is the row's median off-diagonal RH minus its smallest (per seed, then averaged, with its Student
# t-interval over seeds); `share` is
# the most-collapsed cell's part of the row's total $(1-\mathrm{RH})_+$.
#
# {numref}`tab-rh-specific` gives both per minority.

# %% mystnb={"figure": {"name": "tab-rh-specific", "caption": "How specific each minority's collapse is.", "classes": "rharm-table", "caption_before": 1}}
spec = report.specificity(cr, paper, level=P.ci_level)
tables.show(spec.table, index="minority", caption="One row per minority class: contrast (median minus "
            "smallest off-diagonal RH, interval), the most-collapsed cell's share of the row's total (1 − RH)+, and "
            "the paper's values.")

# %% [markdown]
# For {glue:text}`rh_contrast_first_minority`, the contrast is {glue:text}`rh_contrast_first:.3f`
# ({glue:text}`rh_contrast_first_lo:.3f` to {glue:text}`rh_contrast_first_hi:.3f`);
# {glue:text}`rh_contrast_first_paper_text`.
#
# ## Sanity anchor: is the balanced representation any good?
#
# A linear probe of our own (logistic regression, $C = 0.1$; a sanity check, not the paper's k-NN training monitor) on the balanced model's
# features of its training pool, scored on the test set. A well-trained ResNet reaches far higher accuracy on
# CIFAR-10 than a small model trained briefly on CPU; a weak representation bounds how much structure RH can show.
#
# {numref}`tab-rh-probe` gives it per seed.

# %% mystnb={"figure": {"name": "tab-rh-probe", "caption": "Linear-probe accuracy of the balanced models.", "classes": "rharm-table", "caption_before": 1}}
probe = report.probe_anchor(results)
tables.show(pd.DataFrame({"seed": probe.probe_seeds, "linear_probe_accuracy": probe.probe_accs}),
            caption="One row per seed: the balanced model's linear-probe test accuracy (chance 0.1).",
            rename={"linear_probe_accuracy": "linear-probe accuracy"})

# %% [markdown]
# Mean linear-probe accuracy of the balanced models: {glue:text}`rh_probe_acc:.3f` (range
# {glue:text}`rh_probe_acc_min:.3f` to {glue:text}`rh_probe_acc_max:.3f` over seeds; chance: one class in ten).
#
# ## The paper's "±"
#
# The official figures print $\pm\,\mathrm{sd}$ with
# $\mathrm{sd} = \sqrt{\mathrm{SD}_\text{seeds}[\cos_{M_i}]^2 + \overline{\mathrm{SE}_\text{pairs}[\cos_{M_\mathrm{bal}}]}^2}$,
# on the *cosine* scale, not the ratio's, and treating the $n_i n_j$ pairwise cosines as independent. We compute it
# for comparison only ({numref}`tab-rh-sd`); the intervals above are the ones to read.

# %% mystnb={"figure": {"name": "tab-rh-sd", "caption": "The paper's ± beside our standard error.", "classes": "rharm-table", "caption_before": 1}}
tables.show(report.paper_sd_table(cr, boot, most),
            caption="One row per minority's most-collapsed cell: the paper's ± formula beside our standard error "
            "of RH over seeds.", rename={"paper_formula_sd": "paper's formula (sd)",
                                         "se_over_seeds": "standard error over seeds"})

# %%
import rharm.page.headline

rharm.page.headline.publish(P, "rh", scale, comparison, sig, floor, spec, probe,
                       report.finding(P, sig, floor, comparison))

# %%
import rharm.page.provenance

rharm.page.provenance.block(P)
