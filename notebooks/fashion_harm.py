# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Representation harm on Fashion-MNIST, pre-registered
#
# :::{admonition} Finding (registration v2, confirmatory)
# :class: rharm-finding
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
# `profiles.yml` ({mod}`rharm.study.design`). It has two registrations. **v1** (exploratory) found a pair-specific harm in
# one design and left three faults that a reviewer would not accept; **v2** (confirmatory) fixes them and
# replicates the design on fresh seeds. Every interval on this page is a Student $t$-interval over model seeds (for
# RH: of the per-seed $\log \mathrm{RH}$, exponentiated), which covers what it claims at three to ten seeds; a
# percentile bootstrap over so few seeds does not (about 75% coverage at three seeds).

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
classes = None
data_source = None
threads = None
workers = None
n_close = None
alpha = None
ci_level = None
dose_ratios = None
dose_r0 = None
theory_fit_ratio = None
theory_margin = None
low_temperature = None
theory_dim = None
probe_c = None
power_cells = None
power_sd = None
power_effect = None

# %%
import rharm.core.params

P = rharm.core.params.check("fashion_harm", globals())

# %%
import time

from rharm.page import charts, headline
from rharm.report import fashion

charts.enable()
t_start = time.perf_counter()

# %% [markdown]
# ## v1, exploratory (2026-11-30)
#
# v1 registered two designs before their runs: **design A** (all ten classes, 500 images per class) and **design B**
# (the five classes of a pilot, T-shirt/top, trouser, sandal, shirt and sneaker, 800 per class), five seeds (0–4),
# two epochs, with a dose-response over ten ratios and a temperature study. Its verdicts, kept as they were ({numref}`tab-fh-v1`):

# %% mystnb={"figure": {"name": "tab-fh-v1", "caption": "v1's verdicts, as archived.", "classes": "rharm-table", "caption_before": 1}}
v1 = fashion.load_v1(P.profile)
fashion.v1_table(v1)

# %% [markdown]
# A careful reading found three faults that keep v1 exploratory:
#
# 1. **Intervals that did not cover.** They were percentile bootstraps over 3–5 seeds, which contain the true value
#    about 75–85% of the time, not 95%.
# 2. **A tie broken by spelling.** Sandal and sneaker are each other's nearest class, so their distances tie exactly;
#    v1 ordered them alphabetically, and sandal, the weaker cell, carried the dose-response and the temperature
#    study.
# 3. **A dose-response test the theory does not pose.** H4 asked whether RH keeps falling with the ratio; the
#    three-block theory predicts a curve that falls and then saturates, which is what v1 saw.

# %% [markdown]
# ## Registration v2, confirmatory
#
# Written in `profiles.yml` (dated 2026-12-05) and committed before any v2 model was trained. It replicates design B
# on **fresh seeds** {glue:text}`fh_seeds_text`, at {glue:text}`fh_epochs_text` epochs.
#
# **The rule** ({func}`rharm.study.design.preregister`): a class's **partner** is the class nearest to it (smallest
# $1-\cos$) in the balanced models, averaged over seeds. A class has **room to collapse** when its partner is
# farther from it than its own members are from each other; the **minorities** are the classes with room whose
# partner is nearest, and the **control** is the class with room whose nearest class is farthest. New in v2: an
# exact tie in the nearest distance (always the case for two mutually nearest classes) is broken by the **larger
# room** $(1-\cos(i,\text{partner})) - (1-\cos(i,i))$, since a tighter class has further to fall; a tie in both is
# refused, never broken by a name. The first minority carries the dose-response, the temperature study and the
# {doc}`mitigation` chapter.
#
# **Seeds by a power calculation.** v1's own per-seed spread of $\log \mathrm{RH}$ in design B's two minority
# cells sets the number of seeds: the smallest number at which H1 has power ≥ 0.8 to detect v1's own effect in both
# cells, at Holm's first-step level. v1's archive keeps summaries, not per-seed values, so its design-B main grid
# (seeds 0–4, 2 epochs) was re-run for this on 2026-12-05. That machine had another CPU type than v1's, and the
# re-run's per-seed values are not bit-identical to v1's (the floating-point kernels differ between CPU types): its
# tests point the same way as the archived ones in {numref}`tab-fh-v1`, with other p-values. The spreads in {numref}`tab-fh-power` are the
# re-run's.

# %% mystnb={"figure": {"name": "tab-fh-power", "caption": "Power of the primary test by number of seeds.", "classes": "rharm-table", "caption_before": 1}}
fashion.power_table(P)

# %% [markdown]
# **The hypotheses:**
#
# - **H1** (one per minority): RH(minority, partner) < 1. One-sided paired $t$-test of $\log \mathrm{RH}$ over the
#   seeds, Holm over the minorities, level {glue:text}`fh_alpha`.
# - **H2** (specificity, one per minority): the partner cell lies below the rest of its row; same test and
#   correction. A whole row moving down would mean the minority simply learned less, a weaker finding.
# - **H3** (control): the control's partner cell does not stand out of its row.
# - **H4a** (dose-response, as the theory poses it): RH(first minority, partner) < 1 at every ratio from
#   1:{glue:text}`fh_r0_text` on (a one-sided test at each ratio; held when every one rejects).
# - **H4b**: the three-block theory with its one parameter $\alpha$ fitted at ratio {glue:text}`fh_fit_ratio`
#   predicts the other ratios better than a flat line fitted at the same ratio, by more than
#   {glue:text}`fh_margin_text` in mean absolute $\log \mathrm{RH}$ (paired over seeds). A fit with several
#   solutions must win with each; a fit at the edge of the theory's range does not hold.
# - H4a and H4b are judged on the **backbone** (the paper's measure) and on the **projection output** (the
#   representation the loss, and so the theory, describes), each with its own verdict.
# - **T** (temperature without its confounds): v1 found collapse at τ = 0.1 where the theory expects none. The
#   NT-Xent gradient grows as $1/\tau$ while v1 held the learning rate fixed, and RH was measured on the backbone,
#   not the projection. v2 trains the first minority at τ = {glue:text}`fh_low_tau_text` with the learning rate
#   fixed and with it scaled by τ / main τ, on both representations. The contradiction survives when, with the
#   learning rate scaled, the interval of RH lies below the theory's RH minus 0.05 on both representations.
#
# **The theory's curve** maps an experiment onto the three-block model of the {doc}`theory` chapter: block 1 the
# minority (mass $1/\text{ratio}$), block 2 its partner (mass 1), block 3 every other class (mass $K-2$);
# within-block connection 0.95, none between block 3 and the others, and one **fitted** parameter, the
# minority–partner connection $\alpha$. Its RH is $1-\cos(h_1^*,h_2^*)$ at the ratio over the same at ratio 1, at
# the experiment's temperature. At 1:100 this RH is not monotone in $\alpha$, so a fit can have several solutions.
#
# {numref}`tab-fh-setting` gives v2's setting.

# %% mystnb={"figure": {"name": "tab-fh-setting", "caption": "v2's setting.", "classes": "rharm-table", "caption_before": 1}}
res = fashion.run(P)
fashion.setting_table(P, res)

# %% [markdown]
# ### Pre-registration from the balanced models
#
# {numref}`tab-fh-prereg` gives each class of the balanced models, its nearest class, its room to collapse and the
# role the rule gives it.

# %% mystnb={"figure": {"name": "tab-fh-prereg", "caption": "The pre-registration rule applied to the balanced models.", "classes": "rharm-table", "caption_before": 1}}
fashion.prereg_table(res)

# %% [markdown]
# ### H1–H3: representation harm in the pre-registered cells
#
# {numref}`tab-fh-harm` gives the tests of the pre-registered cells; {numref}`fig-fh-heatmap` shows RH for every pair
# of classes.

# %% mystnb={"figure": {"name": "tab-fh-harm", "caption": "Representation harm in the pre-registered cells (H1–H3).", "classes": "rharm-table", "caption_before": 1}}
fashion.harm_table(res, P.ci_level)

# %% mystnb={"figure": {"name": "fig-fh-heatmap", "caption": "RH of every pair of classes at the main ratio."}}
fashion.harm_heatmap(res)

# %% [markdown]
# ### Allocation harm and mediation of the same runs
#
# The balanced linear probe says how good the representation is; the allocation harm is the change in the
# minority's own test accuracy of a linear classifier, split into the part carried by the representation (NIE) and
# the direct part (NDE) as in the {doc}`allocation_harm` chapter, under both probe protocols ({numref}`tab-fh-mediation`).

# %% mystnb={"figure": {"name": "tab-fh-mediation", "caption": "Allocation harm and the part the representation carries, per protocol and minority.", "classes": "rharm-table", "caption_before": 1}}
fashion.mediation_table(res, P.ci_level, P.probe_c)

# %% [markdown]
# ### H4: dose-response and the theory's curve
#
# {numref}`tab-fh-dose` and {numref}`fig-fh-dose` give RH at each ratio. In the figure, the band around the experiment's curve is its interval at each ratio; the theory's curve has none (it is
# computed, with $\alpha$ fitted at one ratio).

# %% mystnb={"figure": {"name": "tab-fh-dose", "caption": "The first minority's RH at each ratio.", "classes": "rharm-table", "caption_before": 1}}
fashion.dose_table(res)

# %% mystnb={"figure": {"name": "fig-fh-dose", "caption": "The first minority's RH against the imbalance, with the theory's curve."}}
fashion.dose_chart(res)

# %% [markdown]
# ### Allocation harm along the dose-response
#
# At this scale the probe trained on the imbalanced data soon stops predicting the minority at all, and its accuracy
# then sits at 0 whatever the representation: an accuracy-based TE stops changing long before 1:100 and its NIE
# says nothing. The minority's one-vs-rest AUC under the same probes asks whether its test images still *rank*
# above the others, which stays informative at every ratio ({numref}`tab-fh-allocation` and {numref}`fig-fh-allocation`).

# %% mystnb={"figure": {"name": "tab-fh-allocation", "caption": "The first minority's allocation harm at each ratio.", "classes": "rharm-table", "caption_before": 1}}
fashion.allocation_table(res)

# %% mystnb={"figure": {"name": "fig-fh-allocation", "caption": "The first minority's allocation harm against the imbalance."}}
fashion.allocation_chart(res)

# %% [markdown]
# ### T: temperature, learning rate and representation
#
# {numref}`tab-fh-temperature` and {numref}`fig-fh-temperature` give RH in each condition.

# %% mystnb={"figure": {"name": "tab-fh-temperature", "caption": "RH by temperature condition and representation.", "classes": "rharm-table", "caption_before": 1}}
fashion.temperature_table(res)

# %% mystnb={"figure": {"name": "fig-fh-temperature", "caption": "RH by temperature condition."}}
fashion.temperature_chart(res)

# %% [markdown]
# ### Verdicts of v2
#
# {numref}`tab-fh-verdicts` sets each hypothesis beside the numbers that decide it.

# %% mystnb={"figure": {"name": "tab-fh-verdicts", "caption": "v2's verdicts.", "classes": "rharm-table", "caption_before": 1}}
fashion.verdict_table(res)

# %% tags=["remove-cell"]
headline.publish(P, "fh", fashion.summary(P, res, v1, t_start))

# %% [markdown]
# ## How this page was made

# %%
import rharm.page.provenance

rharm.page.provenance.block(P)
