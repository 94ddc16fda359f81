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
# `rharm.augment.augment_batch`, which samples independent crop, flip, jitter and grayscale parameters for every
# image and every view (the tests check these distributions against torchvision's per-image transforms).
#
# This page runs the benchmark script `benchmarks/simclr_throughput.py`: both pipelines train the same model with
# the same loss, optimiser, batch size and device, alternating round by round in one process, with data loading,
# augmentation, forward, backward and the optimiser step inside the clock. The reported number is the median over
# rounds of ours / baseline, with the spread over rounds.
#
# :::{admonition} Finding
# :class: important
# {glue:md}`finding`
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
import rharm.params

P = rharm.params.check("throughput", globals())

# %%
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from myst_nb import glue

from IPython.display import Markdown

import rharm.headline
import rharm.paths
import rharm.provenance
from rharm import tables

script = rharm.paths.repo_root() / "benchmarks" / "simclr_throughput.py"
with tempfile.TemporaryDirectory() as tmp:
    out = Path(tmp) / "result.json"
    proc = subprocess.run(
        [sys.executable, str(script), "--model", model, "--batch", str(batch), "--steps", str(steps),
         "--rounds", str(rounds), "--threads", str(threads), "--workers", str(workers),
         "--n-images", str(n_images), "--json", str(out)],
        capture_output=True, text=True, cwd=rharm.paths.repo_root(),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark failed:\n{proc.stdout}\n{proc.stderr}")
    result = json.loads(out.read_text())
rows = pd.DataFrame(result["rounds"])
ratios = rows["ratio"].to_numpy()
glue("device", result["device"], display=False)
glue("ratio", float(result["ratio_median"]), display=False)
glue("ratio_min", float(ratios.min()), display=False)
glue("ratio_max", float(ratios.max()), display=False)
glue("ours_median", float(rows["ours_img_s"].median()), display=False)
glue("base_median", float(rows["baseline_img_s"].median()), display=False)
glue("n_rounds", len(rows), display=False)
glue("model", model, display=False)
glue("batch", batch, display=False)
glue("workers", workers, display=False)
glue("threads", result["torch_threads"], display=False)
tables.show(rows, caption="One row per round: images per second of our pipeline and of the paper-style one, and "
            "their ratio (> 1: ours is faster).", units={c: "images/s" for c in ("ours_img_s", "baseline_img_s")
                                                         if c in rows.columns},
            rename={"ours_img_s": "ours", "baseline_img_s": "paper-style", "ratio": "ours / paper-style"}
            | ({"round": "round"} if "round" in rows.columns else {}), digits=3)

# %% [markdown]
# ## Result
#
# On {glue:text}`device` (torch threads: {glue:text}`threads`; baseline DataLoader workers:
# {glue:text}`workers`), training {glue:text}`model` with batches of {glue:text}`batch` images (two views each),
# our pipeline ran at a median {glue:text}`ours_median:.0f` images/s against {glue:text}`base_median:.0f` images/s
# for the paper-style pipeline: a ratio of **{glue:text}`ratio:.2f`** (range over {glue:text}`n_rounds` rounds:
# {glue:text}`ratio_min:.2f` to {glue:text}`ratio_max:.2f`).
#
# How to read this:
#
# * On a 2-core CPU both pipelines compete for the same two cores: the baseline's worker processes decode and
#   augment while the training process computes, so the ratio mostly reflects how much CPU time augmentation costs
#   per image in each pipeline, and it depends on the machine's load. On a GPU, batched augmentation runs on the
#   device while per-image PIL transforms stay on the CPU, which is where the paper's pipeline may become
#   data-bound (ResNet-34, batch 512); this compendium has not measured it on a GPU yet.
# * {glue:md}`gpu_note`

# %%
on_gpu = "cuda" in str(result["device"]).lower() or "gpu" in str(result["device"]).lower()
glue("gpu_note", Markdown(
    "This page ran on a GPU; the number above is the GPU ratio." if on_gpu else
    "This page ran on a CPU, so it shows no GPU number. On a GPU, run "
    "`python benchmarks/simclr_throughput.py --model resnet34 --batch 512 --steps 20 --device cuda`, or this "
    "notebook with the `gpu` profile (`rharm run throughput --profile gpu`)."), display=False)
ratio = float(result["ratio_median"])
finding = (
    f"On {result['device']}, training {model} with batches of {batch}, batched on-device augmentation runs "
    + (f"**{ratio:.2f}× as fast** as" if ratio >= 1.05 else f"at **{ratio:.2f}×** the speed of" if ratio <= 0.95
       else f"about as fast as ({ratio:.2f}×)")
    + f" the paper-style DataLoader pipeline (range over {tables.plural(len(rows), 'round')}: "
    f"{ratios.min():.2f} to {ratios.max():.2f})."
    + ("" if on_gpu else " This is a CPU measurement; the GPU setting, where the paper's pipeline may be data-bound, is "
       "not measured here.")
)
glue("finding", Markdown(finding), display=False)
rharm.headline.write(P, {"device": result["device"], "ratio_median": ratio, "ratio_min": float(ratios.min()),
                         "ratio_max": float(ratios.max()), "ours_img_s_median": float(rows["ours_img_s"].median()),
                         "baseline_img_s_median": float(rows["baseline_img_s"].median()), "model": model,
                         "batch": batch})

# %%
rharm.provenance.block(P)
