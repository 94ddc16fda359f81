"""The throughput chapter's numbers: run the benchmark script and summarise its rounds (glue prefix ``tput``).

The chapter (``notebooks/throughput.py``) runs ``benchmarks/simclr_throughput.py`` in a subprocess, so that the
timed process is a fresh interpreter, and shows its per-round table; :func:`summary` turns the script's JSON into
the values the page states.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from rharm.core import paths
from rharm.page import headline, tables

#: a ratio within this band of 1 is reported as "about as fast" (round-to-round spread on a shared machine is
#: of this order)
SAME_SPEED_BAND = 0.05

#: columns every round of the benchmark's JSON carries
ROUND_COLUMNS = ("ours_img_s", "baseline_img_s", "ratio")


def run_benchmark(model: str, batch: int, steps: int, rounds: int, threads: int, workers: int,
                  n_images: int) -> dict:
    """Run ``benchmarks/simclr_throughput.py`` with these settings and return its JSON result.

    The result holds ``device``, ``torch_threads``, ``ratio_median`` and ``rounds`` (one dict per timed round
    with ``ours_img_s``, ``baseline_img_s`` and ``ratio``). Raises ``RuntimeError`` with the script's output
    when it fails.
    """
    root = paths.repo_root()
    script = root / "benchmarks" / "simclr_throughput.py"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        proc = subprocess.run(
            [sys.executable, str(script), "--model", model, "--batch", str(batch), "--steps", str(steps),
             "--rounds", str(rounds), "--threads", str(threads), "--workers", str(workers),
             "--n-images", str(n_images), "--json", str(out)],
            capture_output=True, text=True, cwd=root,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"benchmark failed:\n{proc.stdout}\n{proc.stderr}")
        return json.loads(out.read_text())


@dataclass(frozen=True)
class Throughput:
    """The page's result section and finding (glued as ``tput_<field>``)."""

    device: str
    threads: int  # torch threads of the timed process, as the script reports them
    model: str
    batch: int
    workers: int
    ratio: float  # median over rounds of ours / paper-style images per second
    ratio_min: float
    ratio_max: float
    ours_median: float  # images per second
    base_median: float
    n_rounds: int
    on_gpu: bool
    gpu_note: str
    finding: str
    rounds: list  # one dict per timed round (written to the JSON, not glued)


def on_gpu(device: str) -> bool:
    """Whether the benchmark's device string names a GPU."""
    text = str(device).lower()
    return "cuda" in text or "gpu" in text


def summary(result: Mapping[str, Any], *, model: str, batch: int, workers: int) -> Throughput:
    """Summarise the benchmark's JSON ``result`` (see :func:`run_benchmark`) for the page.

    ``model``, ``batch`` and ``workers`` are the chapter's parameters (stated beside the numbers).
    """
    rounds = list(result.get("rounds") or [])
    if not rounds:
        raise ValueError("result['rounds'] is empty: the benchmark timed no round (rounds must be >= 1)")
    missing = [c for c in ROUND_COLUMNS if any(c not in r for r in rounds)]
    if missing:
        raise ValueError(f"result['rounds'] lacks column(s) {missing}; expected {list(ROUND_COLUMNS)}")
    ratios = np.array([float(r["ratio"]) for r in rounds])
    ours = np.array([float(r["ours_img_s"]) for r in rounds])
    base = np.array([float(r["baseline_img_s"]) for r in rounds])
    device = str(result["device"])
    ratio = float(result["ratio_median"])
    gpu = on_gpu(device)
    gpu_note = (
        "This page ran on a GPU; the number above is the GPU ratio." if gpu else
        "This page ran on a CPU, so it shows no GPU number. On a GPU, run "
        "python benchmarks/simclr_throughput.py --model resnet34 --batch 512 --steps 20 --device cuda, or this "
        "notebook with the gpu profile (rharm run throughput --profile gpu).")
    if ratio >= 1 + SAME_SPEED_BAND:
        speed = f"{ratio:.2f}× as fast as"
    elif ratio <= 1 - SAME_SPEED_BAND:
        speed = f"at {ratio:.2f}× the speed of"
    else:
        speed = f"about as fast as ({ratio:.2f}×)"
    finding = (
        f"On {device}, training the {headline.model_words(model)} with batches of {batch}, batched on-device "
        f"augmentation runs {speed} the "
        f"paper-style DataLoader pipeline (range over {tables.plural(len(rounds), 'round')}: "
        f"{ratios.min():.2f} to {ratios.max():.2f})."
        + ("" if gpu else " This is a CPU measurement; the GPU setting, where the paper's pipeline may be "
           "data-bound, is not measured here."))
    return Throughput(
        device=device, threads=int(result["torch_threads"]), model=str(model), batch=int(batch),
        workers=int(workers), ratio=ratio, ratio_min=float(ratios.min()), ratio_max=float(ratios.max()),
        ours_median=float(np.median(ours)), base_median=float(np.median(base)), n_rounds=len(rounds),
        on_gpu=gpu, gpu_note=gpu_note, finding=finding, rounds=rounds,
    )
