"""Cost model of a profile: how many contrastive runs it trains, their FLOP, and the GPU time they need.

``rharm plan --profile gpu`` prints it. The dominant cost of the book is the SimCLR grid shared by the image chapters
(scale_study, representation_harm, allocation_harm hit the same cached runs, so each distinct run is counted once).
Per run::

    images seen   = epochs x (n_train // batch_size) x batch_size           (drop_last)
    training FLOP = images seen x 2 views x F_view                          (F_view: rharm.models.training_flops_per_view)
    feature FLOP  = (test split + per-class pool) x F_view / 3             (one forward pass, eval mode)
    GPU seconds   = images seen / throughput

The throughput is either measured (``images_per_s``: training images per second, two views each, as
``benchmarks/device_check.py`` and :func:`rharm.train.measure_throughput` report it) or, when no measurement is
given, *assumed* from the FLOP at a stated fraction (``utilisation``) of the device's dense bf16 peak
(``peak_tflops``; H200: 989 TFLOP/s dense BF16, NVIDIA H200 datasheet). The table says which.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

#: NVIDIA H200 SXM dense BF16 tensor-core peak (TFLOP/s), from NVIDIA's H200 datasheet (1,979 with sparsity).
H200_BF16_TFLOPS = 989.0
#: Fraction of the peak assumed when no throughput was measured: small 32x32 convolutions keep a large GPU far from
#: its peak, so this is a guess to be replaced by a measurement (benchmarks/device_check.py).
ASSUMED_UTILISATION = 0.25

_GRID_MARKERS = ("backbone", "epochs", "batch_size", "seeds", "minority_classes", "n_per_class")


@dataclass
class GridCost:
    """The distinct runs of a profile's contrastive grids and their cost (one row of :func:`plan_table`)."""

    backbone: str
    method: str
    runs: int
    epochs: int
    images_seen: int
    train_flop: float
    feature_flop: float
    images_per_s: float
    throughput_source: str
    notebooks: list

    @property
    def flop(self) -> float:
        return self.train_flop + self.feature_flop

    @property
    def gpu_hours(self) -> float:
        return self.images_seen / self.images_per_s / 3600.0


def _grids(profile: str, profiles_path=None) -> dict[str, dict]:
    from . import params

    out = {}
    for name in params.notebook_names(profiles_path):
        values = params.profile_values(name, profile, profiles_path)
        if all(k in values for k in _GRID_MARKERS):
            out[name] = values
    return out


def _n_train(values: Mapping[str, Any], minority: str | None) -> int:
    npc = int(values["n_per_class"])
    classes = 10
    if minority is None:
        return classes * npc
    return (classes - 1) * npc + int(npc / float(values["ratio"]))


#: plausibility bounds of the cost model's inputs: no device trains faster, none has a higher dense peak
MAX_IMAGES_PER_S = 1.0e7
MAX_TFLOPS = 1.0e5


def plan_table(profile: str, *, images_per_s: Mapping[str, float] | None = None, peak_tflops: float = H200_BF16_TFLOPS,
               utilisation: float = ASSUMED_UTILISATION, profiles_path=None) -> list[GridCost]:
    """One :class:`GridCost` per (backbone, method) of the profile's contrastive grids.

    images_per_s: measured training throughput per backbone name (e.g. ``{"resnet34": 5200.0}``); backbones not in
    it get the assumed throughput ``peak_tflops * 1e12 * utilisation / (2 * F_view)``.
    """
    from . import models, params

    if profile not in params.PROFILES:
        raise ValueError(f"profile={profile!r} is not valid; choose one of {list(params.PROFILES)}")
    if not 0 < utilisation <= 1:
        raise ValueError(f"utilisation={utilisation!r} is not valid; it must lie in (0, 1]")
    if not (math.isfinite(peak_tflops) and 0 < peak_tflops <= MAX_TFLOPS):
        raise ValueError(f"peak_tflops={peak_tflops!r} is not valid; it must lie in (0, {MAX_TFLOPS:g}]")
    measured = dict(images_per_s or {})
    for k, v in measured.items():
        if k not in models.BACKBONES or not (math.isfinite(v) and 0 < v <= MAX_IMAGES_PER_S):
            raise ValueError(f"images_per_s entry {k}={v!r} is not valid; give backbone names from "
                             f"{list(models.BACKBONES)} with finite throughputs in (0, {MAX_IMAGES_PER_S:g}]")
    seen: dict[str, tuple] = {}
    chapters: dict[tuple, set] = {}
    for name, v in _grids(profile, profiles_path).items():
        chapters.setdefault((v["backbone"], v.get("method", "simclr")), set()).add(name)
        train_key = tuple((k, json.dumps(v.get(k), sort_keys=True)) for k in
                          ("dataset", "method", "backbone", "init", "epochs", "batch_size", "lr", "weight_decay",
                           "temperature", "clamp", "schedule", "n_per_class", "data_source", "precision"))
        for s in v["seeds"]:
            for m in [None, *v["minority_classes"]]:
                run = (train_key, s, m, None if m is None else float(v["ratio"]))
                seen.setdefault(json.dumps(run), (name, v, m))
    groups: dict[tuple, dict] = {}
    flop_cache: dict[tuple, float] = {}
    for name, v, m in seen.values():
        key = (v["backbone"], v.get("method", "simclr"))
        if key not in flop_cache:
            flop_cache[key] = models.training_flops_per_view(*key)
        f_view = flop_cache[key]
        n = _n_train(v, m)
        bs = int(v["batch_size"])
        images = int(v["epochs"]) * (n // bs) * bs
        g = groups.setdefault(key, {"runs": 0, "epochs": set(), "images": 0, "train": 0.0, "feat": 0.0,
                                    "notebooks": set()})
        g["runs"] += 1
        g["epochs"].add(int(v["epochs"]))
        g["images"] += images
        g["train"] += images * 2 * f_view
        g["feat"] += (10000 + 10 * int(v["n_per_class"])) * f_view / 3
        g["notebooks"].add(name)
    rows = []
    for (backbone, method), g in groups.items():
        f_view = flop_cache[(backbone, method)]
        if backbone in measured:
            ips, src = float(measured[backbone]), "measured"
        else:
            ips = peak_tflops * 1e12 * utilisation / (2 * f_view)
            src = f"assumed {utilisation:.0%} of {peak_tflops:g} TFLOP/s"
        rows.append(GridCost(backbone=backbone, method=method, runs=g["runs"], epochs=max(g["epochs"]),
                             images_seen=g["images"], train_flop=g["train"], feature_flop=g["feat"],
                             images_per_s=ips, throughput_source=src,
                             notebooks=sorted(chapters[(backbone, method)])))
    return rows


def format_plan(profile: str, rows: list[GridCost]) -> str:
    """The plan as a fixed-width text table with a total line."""
    head = (f"{'backbone':9s} {'method':7s} {'runs':>5s} {'epochs':>6s} {'images seen':>13s} {'FLOP':>9s} "
            f"{'img/s':>8s} {'GPU-h':>8s} {'GPU-days':>8s}  throughput")
    lines = [f"profile {profile}: distinct contrastive runs of the image chapters (shared runs counted once)", head]
    for r in rows:
        lines.append(f"{r.backbone:9s} {r.method:7s} {r.runs:5d} {r.epochs:6d} {r.images_seen:13.3e} {r.flop:9.2e} "
                     f"{r.images_per_s:8.0f} {r.gpu_hours:8.1f} {r.gpu_hours / 24:8.2f}  {r.throughput_source}")
    if rows:
        total_h = sum(r.gpu_hours for r in rows)
        lines.append(f"total: {sum(r.runs for r in rows)} runs, {sum(r.flop for r in rows):.2e} FLOP, "
                     f"{total_h:.1f} GPU-hours = {total_h / 24:.2f} GPU-days on one device "
                     "(probes, mediation and the text chapter add minutes on a GPU)")
        lines.append("chapters: " + ", ".join(sorted({n for r in rows for n in r.notebooks})))
    else:
        lines.append("no contrastive grid in this profile")
    return "\n".join(lines)


def parse_throughputs(items: list[str] | None) -> dict[str, float]:
    """``["resnet34=5200", ...]`` -> ``{"resnet34": 5200.0}`` (ValueError naming the bad item)."""
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ValueError(f"--images-per-s {item!r} is not valid; write BACKBONE=IMAGES_PER_S, e.g. resnet34=5200")
    return out
