# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Representation harm on Fashion-MNIST, pre-registered
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
# underrepresented class to collapse onto its neighbour. This chapter tests that expectation, in two designs, under
# a pre-registration: the minority classes, their predicted partners, the tests and the cells they concern are fixed
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
replication_classes = None
replication_n_per_class = None
replication_n_close = None
replication_dose_ratios = None

# %%
import rharm.params

P = rharm.params.check("fashion_harm", globals())

# %%
import time

from rharm import charts, headline
from rharm.report import fashion

charts.enable()
t_start = time.perf_counter()

# %% [markdown]
# ## Two designs, both fixed before their runs
#
# **Design A** (all ten classes) was the first design, fixed with its hypotheses in `profiles.yml` before any of
# its models was trained. **Design B** replicates the design of a small pilot reported when this chapter was
# planned (five classes: T-shirt/top, trouser, sandal, shirt and sneaker; a larger pool per class), in which
# sneaker at 1:100 had collapsed onto sandal in both seeds tried. Design B was registered *after* design A's
# result was known, with the same rule, tests and sweeps, as a test of that pilot; it is not a second chance for
# design A, and both are reported in full.
#
# Every model is a SimCLR encoder trained from scratch on a per-class pool of the training split; the images are
# padded to 32×32 and repeated over three channels so that the package's backbones apply unchanged, and augmented
# with crops, flips, brightness and contrast jitter (no hue, saturation or grayscale step: `simclr_grey` in
# {mod}`rharm.augment`). The balanced model and every underrepresented model of a seed share the pool, the initial
# weights and the batch order of the images they have in common (common random numbers), so RH is computed per seed
# on paired models. Distances are measured on the test split's backbone features.
#
# **The rule** ({func}`rharm.study.preregister`): a class's **partner** is the class nearest to it (smallest
# $1-\cos$) in the balanced models, averaged over seeds. A class has **room to collapse** when its partner is
# farther from it than its own members are from each other ($1-\cos(i,\text{partner}) > 1-\cos(i,i)$); otherwise the
# two classes already overlap. The **minorities** are the classes with room whose partner is nearest; the
# **control** is the class with room whose nearest class is farthest. The rule is applied to a design's balanced
# models before any of its underrepresented models is trained ({func}`rharm.study.run_design` runs in that order).
#
# **The hypotheses**, each design:
#
# - **H1** (one per minority): RH(minority, partner) < 1. One-sided paired $t$-test of $\log \mathrm{RH}$ over the
#   seeds, Holm over the minorities' partner cells only, level {glue:text}`fh_alpha`.
# - **H2** (specificity, one per minority): the partner cell lies below the rest of its row,
#   $\log \mathrm{RH}(i,p) - \operatorname{mean}_{j\ne i,p} \log \mathrm{RH}(i,j) < 0$; same test and correction.
#   A whole row moving down would mean the minority simply learned less, a different and weaker finding.
# - **H3** (control): the control's partner cell does not stand out of its row (its H2 contrast is not
#   significant).
# - **H4** (dose-response): RH(first minority, partner) falls as the ratio grows (one-sided test of the slope of
#   per-seed log RH on log ratio), and the three-block theory with one parameter fitted at ratio
#   {glue:text}`fh_fit_ratio` predicts the other ratios.
# - **H5** (temperature): the theory predicts more collapse at a larger temperature (one-sided test of the slope of
#   log RH on log τ).
#
# **The theory's curve** maps an experiment onto the three-block model of the {doc}`theory` chapter: block 1 the
# minority (mass $1/\text{ratio}$), block 2 its partner (mass 1), block 3 every other class (mass $K-2$);
# within-block connection 0.95, none between block 3 and the others, and one **fitted** parameter, the
# minority–partner connection $\alpha$, chosen so that the theory's RH equals the observed one at the fitting ratio.
# Its RH is $1-\cos(h_1^*,h_2^*)$ at the ratio over the same at ratio 1, at the experiment's temperature.

# %%
results = fashion.run_designs(P)
fashion.setting_table(P, results)

# %% [markdown]
# ## Design A: all ten classes
#
# ### Pre-registration from the balanced models

# %%
fashion.prereg_table(results["A"])

# %% [markdown]
# ### Representation harm in the pre-registered cells

# %%
fashion.harm_table(results["A"], P.ci_level)

# %%
fashion.harm_heatmap(results["A"], results)

# %% [markdown]
# ### Allocation harm and mediation of the same runs
#
# The balanced linear probe says how good the representation is; the allocation harm is the change in the
# minority's own test accuracy of a linear classifier, split into the part carried by the representation (NIE) and
# the direct part (NDE) as in the {doc}`allocation_harm` chapter, under both probe protocols.

# %%
fashion.mediation_table(results["A"], P.ci_level, P.probe_c)

# %% [markdown]
# ### Dose-response and the theory's curve

# %%
fashion.dose_table(results["A"])

# %%
fashion.dose_chart(results["A"])

# %% [markdown]
# ### Temperature
#
# The {doc}`theory` chapter finds that, under the principled objective, the minority's representation merges
# fully with its partner's only when $1 + \alpha/0.95 \ge 2\tanh(1/\tau)$: a larger temperature makes collapse
# easier. The first minority at the main ratio, trained at each temperature and paired with the balanced model of
# the same temperature and seed, beside the theory's RH with the $\alpha$ fitted above.

# %%
fashion.temperature_table(results["A"])

# %% [markdown]
# ### Verdicts

# %%
fashion.verdict_table(results["A"])

# %% [markdown]
# ## Design B: the pilot's five classes
#
# ### Pre-registration from the balanced models

# %%
fashion.prereg_table(results["B"])

# %% [markdown]
# ### Representation harm in the pre-registered cells

# %%
fashion.harm_table(results["B"], P.ci_level)

# %%
fashion.harm_heatmap(results["B"], results)

# %% [markdown]
# ### Allocation harm and mediation of the same runs

# %%
fashion.mediation_table(results["B"], P.ci_level, P.probe_c)

# %% [markdown]
# ### Dose-response and the theory's curve

# %%
fashion.dose_table(results["B"])

# %%
fashion.dose_chart(results["B"])

# %% [markdown]
# ### Temperature

# %%
fashion.temperature_table(results["B"])

# %% [markdown]
# ### Verdicts

# %%
fashion.verdict_table(results["B"])

# %% tags=["remove-cell"]
headline.publish(P, "fh", fashion.summary(P, results, t_start))

# %% [markdown]
# ## How this page was made

# %%
import rharm.provenance

rharm.provenance.block(P)
