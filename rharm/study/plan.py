"""Cost model of a profile: how many contrastive runs it trains, their FLOP, and the GPU time they need.

``rharm plan --profile gpu`` prints it. Every image chapter's runs are counted, each distinct run once (its store key,
:func:`rharm.runs.images.run_config`): the SimCLR grid shared by scale_study, representation_harm and allocation_harm,
the Fashion-MNIST chapter's registered design (balanced models, the rule's minorities and control, dose-response,
temperature study) and the mitigation chapter's interventions (the warm start's pre-training included), which share
their balanced and unmitigated runs with the Fashion-MNIST chapter. Minorities that a chapter's rule picks only after
its balanced models are trained are counted by number (the cost of a run does not depend on which class it is).
Per run::

    images seen   = epochs x (n_train // batch_size) x batch_size           (drop_last)
    training FLOP = images seen x 2 views x F_view                          (F_view: rharm.vision.models.training_flops_per_view)
    feature FLOP  = (test split + per-class pool) x F_view / 3             (one forward pass, eval mode)
    GPU seconds   = images seen / throughput

The throughput is either measured (``images_per_s``: training images per second, two views each, as
``benchmarks/device_check.py`` and :func:`rharm.vision.train.measure_throughput` report it) or, when no measurement is
given, *assumed* from the FLOP at a stated fraction (``utilisation``) of the device's dense bf16 peak
(``peak_tflops``; H200: 989 TFLOP/s dense BF16, NVIDIA H200 datasheet). The table says which.

With batching (``engine: batched``, :mod:`rharm.vision.engine`) the seeds of a grid point train as one job: the plan prints
the jobs, the runs per job (models on one device at once) and the cost divided by the batched engine's speed-up,
measured where it was measured (the CPU: :data:`rharm.vision.engine.CPU_BATCHED_SPEEDUP`, with CPU core-hours from
:data:`rharm.vision.engine.CPU_IMAGES_PER_S`) and otherwise 1 and marked "not measured".
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
#: keys that mark a chapter that trains contrastive image models (a chapter with them whose design this module does
#: not know is named in the plan as not counted)
_TRAINING_MARKERS = ("backbone", "epochs", "batch_size", "seeds", "n_per_class")


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
    jobs: int = 0  #: batched jobs: distinct grid points (all seeds of one grid point in one job)
    runs_per_job: int = 1  #: the most seeds of one grid point: models trained at once on one device
    batched_speedup: float = 1.0  #: runs per device-hour, batched engine over today's
    speedup_source: str = "not measured"
    cpu_images_per_s: float | None = None  #: today's engine on one CPU core, when measured

    @property
    def flop(self) -> float:
        return self.train_flop + self.feature_flop

    @property
    def gpu_hours(self) -> float:
        return self.images_seen / self.images_per_s / 3600.0

    @property
    def batched_gpu_hours(self) -> float:
        return self.gpu_hours / self.batched_speedup

    @property
    def cpu_core_hours(self) -> float | None:
        return None if self.cpu_images_per_s is None else self.images_seen / self.cpu_images_per_s / 3600.0

    @property
    def batched_cpu_core_hours(self) -> float | None:
        from rharm.vision import engine

        h = self.cpu_core_hours
        return None if h is None else h / engine.CPU_BATCHED_SPEEDUP.get(self.backbone, 1.0)


def _grid(values: Mapping[str, Any]) -> dict:
    """The training grid (:func:`rharm.runs.images.run_grid` keys) of a chapter's profile values, without its
    minorities and mitigations (a chapter's interventions are its design's, added by the enumerators below)."""
    from rharm.runs import images as experiment

    skip = {"minority_classes", "warm_start", *experiment.MITIGATION_OFF}
    return {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in values.items()
            if k in experiment.GRID_DEFAULTS and k not in skip}


def _classes(g: Mapping[str, Any]) -> list:
    from rharm.vision import data

    return list(g.get("classes") or data.dataset_info(g.get("dataset", "cifar10")).classes)


def _seed_runs(g: dict, minorities, seeds) -> list[tuple[dict, Any, int]]:
    """Every run of ``run_grid({**g, minority_classes, seeds})``: the balanced model and each minority, per seed."""
    return [(g, m, int(s)) for s in seeds for m in [None, *minorities]]


def _simclr_grid_runs(v: Mapping[str, Any]) -> list:
    return _seed_runs(_grid(v), list(v["minority_classes"]), v["seeds"])


def _design_runs(g: dict, v: Mapping[str, Any], n_close: int, dose_ratios, seeds) -> list:
    """A registered Fashion-MNIST design: balanced models, the rule's ``n_close`` minorities and its control (the
    first classes stand in for them), the dose-response of the first minority m0, and the temperature study
    (v2: ``low_temperature`` with the learning rate fixed and scaled; v1: ``temperatures``)."""
    mins = _classes(g)[:n_close + 1]
    m0 = mins[0]
    runs = _seed_runs(g, mins, seeds)
    dose_seeds = v.get("dose_seeds", seeds)
    for r in dose_ratios or []:
        if int(r) != 1:
            runs += _seed_runs({**g, "ratio": int(r)}, [m0], dose_seeds)
    if "low_temperature" in v:
        low = float(v["low_temperature"])
        for ch in ({"temperature": low}, {"temperature": low, "lr": float(g["lr"]) * low / float(g["temperature"])}):
            runs += _seed_runs({**g, **ch}, [m0], seeds)
    for t in v.get("temperatures", []) if "low_temperature" not in v else []:
        runs += _seed_runs({**g, "temperature": float(t)}, [m0], v.get("temperature_seeds", seeds))
    return runs


def _fashion_runs(v: Mapping[str, Any]) -> list:
    g = _grid(v)
    runs = _design_runs(g, v, int(v["n_close"]), v.get("dose_ratios"), v["seeds"])
    if "replication_classes" in v:  # v1's design B
        gb = {**g, "classes": list(v["replication_classes"]), "n_per_class": int(v["replication_n_per_class"])}
        runs += _design_runs(gb, v, int(v.get("replication_n_close", v["n_close"])), v.get("replication_dose_ratios"),
                             v["seeds"])
    return runs


def _mitigation_runs(v: Mapping[str, Any]) -> list:
    """The balanced models of ``seeds`` and, on ``mitigation_seeds``, every intervention's balanced and minority
    model (the first class stands in for the rule's first minority, as in :func:`_fashion_runs`; the theory's
    temperature for the smallest of ``temperatures``), plus the warm start's pre-training."""
    from rharm.runs import images as experiment

    g = _grid(v)
    m0 = _classes(g)[0]
    runs = _seed_runs(g, [], v["seeds"])
    arms = [{}, {"rebalance": True}, {"minority_weight": float(v["minority_weight"])},
            {"temperature": float(min(v["temperatures"]))},
            {"method": "simsiam", "lr": float(v["simsiam_lr"]), "weight_decay": float(v["simsiam_weight_decay"])},
            {"sdclr_prune": float(v["sdclr_prune"])}, {"warm_start": True}]
    seeds = v["mitigation_seeds"]
    for ch in arms:
        runs += _seed_runs({**g, **ch}, [m0], seeds)
    pre = experiment.pretrain_grid(experiment.validate_grid({**g, "warm_start": True, "minority_classes": [m0]}))
    return runs + _seed_runs(_grid(pre), [], seeds)


def chapter_runs(profile: str, profiles_path=None) -> tuple[list[tuple[str, dict, Any, int]], list[str]]:
    """Every contrastive run the profile's image chapters train, as ``(chapter, grid, minority, seed)`` (not yet
    deduplicated), and the chapters that train image models in a design this module does not know (not counted)."""
    from rharm.core import params

    runs, unknown = [], []
    for name in params.notebook_names(profiles_path):
        v = params.profile_values(name, profile, profiles_path)
        if all(k in v for k in _GRID_MARKERS):
            found = _simclr_grid_runs(v)
        elif "mitigation_seeds" in v and all(k in v for k in _TRAINING_MARKERS):
            found = _mitigation_runs(v)
        elif "n_close" in v and all(k in v for k in _TRAINING_MARKERS):
            found = _fashion_runs(v)
        else:
            if all(k in v for k in _TRAINING_MARKERS):
                unknown.append(name)
            continue
        runs += [(name, g, m, s) for g, m, s in found]
    return runs, unknown


def _n_train(g: Mapping[str, Any], minority: str | None) -> int:
    """Training images per epoch of a run (re-balancing repeats each minority image
    :func:`rharm.vision.mitigation.rebalance_factor` times)."""
    npc, k = int(g["n_per_class"]), len(_classes(g))
    if minority is None:
        return k * npc
    n_min = int(npc / float(g["ratio"]))
    if g.get("rebalance"):
        n_min *= max(1, int(round(npc / n_min)))
    return (k - 1) * npc + n_min


#: plausibility bounds of the cost model's inputs: no device trains faster, none has a higher dense peak
MAX_IMAGES_PER_S = 1.0e7
MAX_TFLOPS = 1.0e5


def _check_plan_inputs(profile: str, images_per_s, peak_tflops: float, utilisation: float,
                       batched_speedup) -> tuple[dict[str, float], dict[str, float]]:
    """ValueError naming the first bad argument of :func:`plan_table`; else the measured throughputs and the
    batched speed-ups, as dicts."""
    from rharm.core import params
    from rharm.vision import models

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
    speedups = dict(batched_speedup or {})
    for k, v in speedups.items():
        if k not in models.BACKBONES or not (math.isfinite(v) and 0 < v <= 1000):
            raise ValueError(f"batched_speedup entry {k}={v!r} is not valid; give backbone names from "
                             f"{list(models.BACKBONES)} with speed-ups in (0, 1000]")
    return measured, speedups


def _distinct_runs(profile: str, profiles_path) -> tuple[dict[str, tuple], dict[tuple, set]]:
    """The profile's distinct runs, by store key: (chapter, validated grid, minority, batched job), and the chapters
    of each (backbone, method)."""
    from rharm.runs import images as experiment

    seen: dict[str, tuple] = {}
    chapters: dict[tuple, set] = {}
    planned, _ = chapter_runs(profile, profiles_path)
    minorities: dict[str, list] = {}  # per grid, its minorities (validated together, as run_grid does)
    for _, grid, m, _ in planned:
        ms = minorities.setdefault(json.dumps(grid, sort_keys=True, default=str), [])
        if m is not None and m not in ms:
            ms.append(m)
    validated: dict[str, dict] = {}
    for name, grid, m, s in planned:
        gk = json.dumps(grid, sort_keys=True, default=str)
        if gk not in validated:
            validated[gk] = experiment.validate_grid({**grid, "minority_classes": minorities[gk]})
        g = validated[gk]
        cfg = experiment.run_config(g, m, s)
        key = json.dumps(cfg, sort_keys=True, default=str)
        # a batched job: every seed of one grid point (the run's key but its seeds)
        job = json.dumps({**{k: v for k, v in cfg.items() if k != "seed"},
                          "train": {k: v for k, v in cfg["train"].items() if k != "seed"}}, sort_keys=True, default=str)
        seen.setdefault(key, (name, g, m, job))
        chapters.setdefault((g["backbone"], g["method"]), set()).add(name)
    return seen, chapters


def _grid_totals(seen: Mapping[str, tuple]) -> tuple[dict[tuple, dict], dict[tuple, float]]:
    """Per (backbone, method): runs, epochs, images seen, training and feature FLOP, chapters and batched jobs; and
    the FLOP per view of each."""
    from rharm.vision import data, models

    groups: dict[tuple, dict] = {}
    flop_cache: dict[tuple, float] = {}
    for name, v, m, job in seen.values():
        key = (v["backbone"], v["method"])
        if key not in flop_cache:
            flop_cache[key] = models.training_flops_per_view(*key)
        f_view = flop_cache[key]
        n = _n_train(v, m)
        bs = int(v["batch_size"])
        images = int(v["epochs"]) * (n // bs) * bs
        g = groups.setdefault(key, {"runs": 0, "epochs": set(), "images": 0, "train": 0.0, "feat": 0.0,
                                    "notebooks": set(), "jobs": {}})
        g["runs"] += 1
        g["epochs"].add(int(v["epochs"]))
        g["images"] += images
        g["train"] += images * 2 * f_view
        k = len(_classes(v))
        g["feat"] += k * (data.dataset_info(v["dataset"]).test_per_class + int(v["n_per_class"])) * f_view / 3
        g["notebooks"].add(name)
        g["jobs"][job] = g["jobs"].get(job, 0) + 1
    return groups, flop_cache


def _grid_cost(backbone: str, method: str, g: Mapping[str, Any], f_view: float, notebooks: set,
               measured: Mapping[str, float], speedups: Mapping[str, float], peak_tflops: float,
               utilisation: float) -> GridCost:
    """One row of :func:`plan_table`, its throughput measured or assumed, its batched speed-up given or 1."""
    from rharm.vision import engine

    if backbone in measured:
        ips, src = float(measured[backbone]), "measured"
    else:
        ips = peak_tflops * 1e12 * utilisation / (2 * f_view)
        src = f"assumed {utilisation:.0%} of {peak_tflops:g} TFLOP/s"
    if backbone in speedups:
        sp, sp_src = float(speedups[backbone]), "given"
    else:
        sp, sp_src = 1.0, "not measured on this device"
    return GridCost(backbone=backbone, method=method, runs=g["runs"], epochs=max(g["epochs"]),
                    images_seen=g["images"], train_flop=g["train"], feature_flop=g["feat"],
                    images_per_s=ips, throughput_source=src,
                    notebooks=sorted(notebooks), jobs=len(g["jobs"]),
                    runs_per_job=max(g["jobs"].values()), batched_speedup=sp, speedup_source=sp_src,
                    cpu_images_per_s=engine.CPU_IMAGES_PER_S.get(backbone))


def plan_table(profile: str, *, images_per_s: Mapping[str, float] | None = None, peak_tflops: float = H200_BF16_TFLOPS,
               utilisation: float = ASSUMED_UTILISATION, profiles_path=None,
               batched_speedup: Mapping[str, float] | None = None) -> list[GridCost]:
    """One :class:`GridCost` per (backbone, method) of the profile's contrastive runs (every image chapter's,
    :func:`chapter_runs`), the costliest first.

    images_per_s: measured training throughput per backbone name (e.g. ``{"resnet34": 5200.0}``); backbones not in
    it get the assumed throughput ``peak_tflops * 1e12 * utilisation / (2 * F_view)``. batched_speedup: the batched
    engine's measured speed-up on the device per backbone (``benchmarks/engine.py``); 1 where none is given.
    """
    measured, speedups = _check_plan_inputs(profile, images_per_s, peak_tflops, utilisation, batched_speedup)
    seen, chapters = _distinct_runs(profile, profiles_path)
    groups, flop_cache = _grid_totals(seen)
    rows = [_grid_cost(backbone, method, g, flop_cache[(backbone, method)], chapters[(backbone, method)], measured,
                       speedups, peak_tflops, utilisation) for (backbone, method), g in groups.items()]
    return sorted(rows, key=lambda r: -r.images_seen)


def format_plan(profile: str, rows: list[GridCost], profiles_path=None) -> str:
    """The plan as fixed-width text: the cost of today's engine (one model per job) with a total line, then the same
    runs with batching (``engine: batched``), then the chapters counted and any not counted."""
    head = (f"{'backbone':9s} {'method':7s} {'runs':>5s} {'epochs':>6s} {'images seen':>13s} {'FLOP':>9s} "
            f"{'img/s':>8s} {'GPU-h':>8s} {'GPU-days':>8s}  throughput")
    lines = [f"profile {profile}: distinct contrastive runs of the image chapters (shared runs counted once)", head]
    for r in rows:
        lines.append(f"{r.backbone:9s} {r.method:7s} {r.runs:5d} {r.epochs:6d} {r.images_seen:13.3e} {r.flop:9.2e} "
                     f"{r.images_per_s:8.0f} {r.gpu_hours:8.1f} {r.gpu_hours / 24:8.2f}  {r.throughput_source}")
    _, unknown = chapter_runs(profile, profiles_path)
    if rows:
        total_h = sum(r.gpu_hours for r in rows)
        lines.append(f"total: {sum(r.runs for r in rows)} runs, {sum(r.flop for r in rows):.2e} FLOP, "
                     f"{total_h:.1f} GPU-hours = {total_h / 24:.2f} GPU-days on one device "
                     "(probes, mediation and the text chapter add minutes on a GPU)")
        lines.append("with batching (engine: batched; the seeds of a grid point as one job, rharm.vision.engine):")
        lines.append(f"{'backbone':9s} {'method':7s} {'runs':>5s} {'jobs':>5s} {'runs/job':>8s} {'speed-up':>8s} "
                     f"{'GPU-h':>8s} {'batched':>8s} {'CPU-core-h':>10s} {'batched':>8s}  speed-up source")
        for r in rows:
            cpu = r.cpu_core_hours
            cpu_b = r.batched_cpu_core_hours
            cpu_txt = f"{cpu:10.2f} {cpu_b:8.2f}" if cpu is not None else f"{'-':>10s} {'-':>8s}"
            src = (f"GPU: {r.speedup_source}" + ("; CPU: measured, benchmarks/engine.py" if cpu is not None else ""))
            lines.append(f"{r.backbone:9s} {r.method:7s} {r.runs:5d} {r.jobs:5d} {r.runs_per_job:8d} "
                         f"{r.batched_speedup:8.2f} {r.gpu_hours:8.1f} {r.batched_gpu_hours:8.1f} {cpu_txt}  {src}")
        total_b = sum(r.batched_gpu_hours for r in rows)
        lines.append(f"total with batching: {sum(r.jobs for r in rows)} jobs of up to "
                     f"{max(r.runs_per_job for r in rows)} models on one device at once, {total_b:.1f} GPU-hours = "
                     f"{total_b / 24:.2f} GPU-days")
        lines.append("chapters: " + ", ".join(sorted({n for r in rows for n in r.notebooks})))
    else:
        lines.append("no contrastive grid in this profile")
    if unknown:
        lines.append("not counted (a training design rharm.study.plan does not know): " + ", ".join(unknown))
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
