# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Scaling the SimCLR experiment down to two CPU cores
#
# The paper trains a ResNet-34 with SimCLR for 500 epochs on all 50,000 CIFAR-10 training images, 110 times per
# underrepresentation ratio (11 conditions x 10 seeds; the digest's E1). That is GPU-weeks of work. This page records
# how the `cpu` profile of the SimCLR grid was chosen so that the whole grid (the balanced model and six minority
# classes, three seeds each, ratio 1:100) fits in about a quarter of an hour on two cores, and what that costs in
# resolution.
#
# Two measurements decide it:
#
# 1. **Throughput** of one SimCLR training step (two augmented views, forward, backward, update) per backbone and
#    batch size on this machine.
# 2. **A paired comparison**: for one minority class, the representation harm
#    $\mathrm{RH}_s(i, j) = \dfrac{1 - \cos_{M_i^s}(i, j)}{1 - \cos_{M_{\text{bal}}^s}(i, j)}$ of a model trained with
#    class $i$ underrepresented against the balanced model *of the same seed* $s$ (same initial weights, same pool,
#    same relative batch order: common random numbers), set against the **noise floor**: the same ratio between two
#    balanced models of different seeds, which is what RH looks like when nothing was underrepresented.

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
throughput_backbones = None
throughput_batch_sizes = None
throughput_steps = None
partner_class = None

# %%
import rharm.params

P = rharm.params.check("scale_study", globals())

# %%
import time

import numpy as np
import torch
from myst_nb import glue

from rharm import experiment, provenance

# %% [markdown]
# ## Scale of this page
#
# Profile **{glue:text}`profile`**; the grid settings below are the profile's `simclr_grid` block, shared with the
# representation-harm and allocation-harm pages, so the models trained here are the same cached runs those pages use.
# The paper's SimCLR setting is ResNet-34 (ImageNet-initialised in its code), batch 512, 500 epochs, the full
# 5,000 images per class; every difference from it below is forced by the CPU budget.

# %%
glue("profile", P.profile, display=False)
glue("backbone", P.backbone, display=False)
glue("epochs", P.epochs, display=False)
glue("batch_size", P.batch_size, display=False)
glue("n_per_class", P.n_per_class, display=False)
glue("ratio", P.ratio, display=False)
glue("n_minority_kept", int(P.n_per_class / P.ratio), display=False)
glue("n_seeds", len(P.seeds), display=False)
glue("minority", P.minority_classes[0], display=False)
glue("partner", P.partner_class, display=False)

# %% [markdown]
# Grid on this page: backbone **{glue:text}`backbone`**, **{glue:text}`epochs`** epochs at batch
# **{glue:text}`batch_size`**, a per-class pool of **{glue:text}`n_per_class`** training images, ratio
# 1:{glue:text}`ratio` (so the minority class keeps **{glue:text}`n_minority_kept`** images), seeds:
# **{glue:text}`n_seeds`**, minority class **{glue:text}`minority`**.
#
# ## 1. Throughput

# %%
tp = experiment.throughput_table(P.throughput_backbones, P.throughput_batch_sizes, P.throughput_steps,
                                 threads=P.threads)
tp

# %%
import altair as alt

alt.Chart(tp).mark_bar().encode(
    x=alt.X("images_per_s:Q", title="training images per second (two views each)"),
    y=alt.Y("backbone:N", title=None),
    color=alt.Color("batch_size:N", title="batch"),
    yOffset="batch_size:N",
    tooltip=["backbone", "batch_size", alt.Tooltip("images_per_s:Q", format=".0f"), "parameters", "threads"],
).properties(title="SimCLR training throughput on this machine", width=360)

# %%
best = tp.groupby("backbone")["images_per_s"].max()
glue("tp_small", float(best.get("small_cnn", np.nan)), display=False)
glue("tp_resnet18", float(best.get("resnet18", np.nan)), display=False)
glue("tp_ratio", float(best.get("small_cnn", np.nan) / best.get("resnet18", np.nan)), display=False)
glue("epoch_min_resnet18", float(50000 / best.get("resnet18", np.nan) / 60), display=False)

# %% [markdown]
# `small_cnn` trains at {glue:text}`tp_small:.0f` images/s against {glue:text}`tp_resnet18:.0f` for the CIFAR
# ResNet-18 ({glue:text}`tp_ratio:.0f`x), so one full 50,000-image epoch of ResNet-18 alone would take about
# {glue:text}`epoch_min_resnet18:.0f` minutes here: the paper's backbone is out of reach on two cores, and every
# CPU-minute is better spent on the small network.
#
# :::{note}
# Timings depend on the load of the machine. On a shared two-core machine, one torch thread per process was about
# three times faster than two (OpenMP threads spin against other processes); the grid runs with the `threads`
# parameter. The store also records each run's process CPU time (`meta.json`, `extra.cpu_time_s`), a better
# estimate of its cost on an idle core than its wall time.
# :::
#
# ## 2. Paired comparison: effect against noise floor

# %%
t0 = time.time()
grid = experiment.grid_from_params(P)
runs = experiment.run_grid({**grid, "progress": False})
minority = P.minority_classes[0]
df = experiment.paired_rh(runs, minority)
summary = experiment.paired_summary(df, P.partner_class)
grid_wall = time.time() - t0
run_wall = [r.meta["wall_time_s"] for r in runs]
run_cpu = [r.meta["extra"].get("cpu_time_s", np.nan) for r in runs]
glue("rh_partner", summary["rh_mean"], display=False)
glue("noise_rms", summary["noise_log_rms"], display=False)
glue("snr", summary["snr"], display=False)
glue("run_wall_mean", float(np.mean(run_wall)), display=False)
glue("run_cpu_mean", float(np.nanmean(run_cpu)), display=False)
glue("grid_estimate_min", float(np.nanmean(run_cpu)) * 7 * 3 / 60, display=False)
summary

# %%
experiment.paired_chart(df, title=f"log RH({minority}, j): underrepresented vs balanced, and balanced vs balanced")

# %% [markdown]
# Averaged over seeds, RH({glue:text}`minority`, {glue:text}`partner`) = {glue:text}`rh_partner:.3f`; the noise
# floor (balanced against balanced, all other classes) has a root-mean-square log RH of {glue:text}`noise_rms:.3f`,
# so the effect on the pair stands {glue:text}`snr:.1f` noise-floor units from 1. Read the chart before the number:
# if every other class shows about the same RH below 1, the minority class has become less distinct from all of them
# (a poorer representation of a rare class) rather than collapsing toward its semantic neighbour, which is the
# paper's claim. The representation-harm page tests every pair over the full grid.
#
# One run of this grid cost {glue:text}`run_wall_mean:.0f` s of wall time and {glue:text}`run_cpu_mean:.0f` s of
# process CPU time on average; the full `cpu` grid (7 conditions x 3 seeds) is therefore about
# {glue:text}`grid_estimate_min:.1f` CPU-minutes.
#
# :::{admonition} How the cpu profile was chosen
# Candidates of equal cost (the same number of images seen per run) were compared with this page's paired
# comparison: batch 64 against batch 256 (four times as many optimiser steps), and a pool of 500 images per class
# for 4 epochs against 250 images per class for 8 epochs. At this budget the batch-256 models were barely trained
# and showed no harm distinguishable from the noise floor, so the profile uses batch 64. The measured numbers are
# recorded as a comment beside the `simclr_grid` block in `profiles.yml`; rerun any candidate by setting this page's
# `batch_size`, `n_per_class` and `epochs`.
# :::

# %%
rharm.provenance.block(P)
