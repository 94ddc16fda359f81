# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Training throughput: batched on-device augmentation against the paper's data pipeline
#
# The paper's code feeds SimCLR the usual way: a `DataLoader` whose worker processes turn each image into a PIL
# image and apply torchvision's transforms one image at a time. `rharm` keeps the training images as one `uint8`
# tensor on the training device and draws both views of a whole batch at once with
# `rharm.vision.augment.augment_batch`, which samples independent crop, flip, jitter and grayscale parameters for every
# image and every view (the tests check these distributions against torchvision's per-image transforms).
#
# This page runs the benchmark script `benchmarks/simclr_throughput.py`: both pipelines train the same model with
# the same loss, optimiser, batch size and device, alternating round by round in one process, with data loading,
# augmentation, forward, backward and the optimiser step inside the clock. The reported number is the median over
# rounds of ours / baseline, with the spread over rounds.
#
# :::{admonition} Finding
# :class: rharm-finding
# {glue:text}`tput_finding`
# :::

# %% tags=["parameters"]
profile = "cpu"
model = None
batch = None
steps = None
rounds = None
threads = None
workers = None
n_images = None

# %%
import rharm.core.params

P = rharm.core.params.check("throughput", globals())

# %% mystnb={"figure": {"name": "tab-tput-rounds", "caption": "Both pipelines, round by round.", "classes": "rharm-table", "caption_before": 1}}
import pandas as pd

import rharm.page.provenance
from rharm.page import charts, headline, tables
from rharm.report import throughput as report

charts.enable()
result = report.run_benchmark(P.model, P.batch, P.steps, P.rounds, P.threads, P.workers, P.n_images)
tput = report.summary(result, model=P.model, batch=P.batch, workers=P.workers)
rows = pd.DataFrame(tput.rounds)
tables.show(rows, caption="One row per round: images per second of our pipeline and of the paper-style one, and "
            "their ratio (> 1: ours is faster).", units={c: "images/s" for c in ("ours_img_s", "baseline_img_s")
                                                         if c in rows.columns},
            rename={"ours_img_s": "ours", "baseline_img_s": "paper-style", "ratio": "ours / paper-style"}
            | ({"round": "round"} if "round" in rows.columns else {}), digits=3)

# %% [markdown]
# ## Result
#
# On {glue:text}`tput_device` (torch threads: {glue:text}`tput_threads`; baseline DataLoader workers:
# {glue:text}`tput_workers`), training {glue:text}`tput_model` with batches of {glue:text}`tput_batch` images (two
# views each), our pipeline ran at a median {glue:text}`tput_ours_median:.0f` images/s against
# {glue:text}`tput_base_median:.0f` images/s for the paper-style pipeline: a ratio of
# **{glue:text}`tput_ratio:.2f`** (range over {glue:text}`tput_n_rounds` rounds: {glue:text}`tput_ratio_min:.2f` to
# {glue:text}`tput_ratio_max:.2f`).
#
# How to read this:
#
# * On a 2-core CPU both pipelines compete for the same two cores: the baseline's worker processes decode and
#   augment while the training process computes, so the ratio mostly reflects how much CPU time augmentation costs
#   per image in each pipeline, and it depends on the machine's load. On a GPU, batched augmentation runs on the
#   device while per-image PIL transforms stay on the CPU, which is where the paper's pipeline may become
#   data-bound (ResNet-34, batch 512); this compendium has not measured it on a GPU yet.
# * {glue:text}`tput_gpu_note`
#
# {numref}`tab-tput-rounds` gives both pipelines' speed in each round.

# %%
headline.publish(P, "tput", tput)

# %%
rharm.page.provenance.block(P)
