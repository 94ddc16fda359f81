"""The controlled-underrepresentation grid (arXiv 2310.01583, Appendix B steps 1-2; the official code's
cifar/simclr/simclr.py): one contrastive model per
(minority class, seed), plus the balanced model per seed, each cached in the result store.

Common random numbers. For a given seed, the balanced and every underrepresented run share:

* the per-class training pool (drawn with ``pool_seed``, the same for every run of the grid);
* the initial weights (a function of the seed alone, :func:`rharm.vision.train.train`);
* the relative batch order of the images they have in common (the order is drawn per pool image,
  :func:`rharm.vision.train.epoch_order`), and the seed of the augmentation generator.

They cannot share augmentation draws exactly: removing minority images shifts which batch every later image falls in
and so how the augmentation stream is consumed. The draw of the kept minority images uses the run seed.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from rharm import store
from rharm.core import runtime, sampling, schema
from rharm.vision import data, engine, train

KIND = "simclr_run"

#: Training settings a grid may set (passed to :class:`rharm.vision.train.TrainConfig`).
TRAIN_KEYS = ("method", "backbone", "init", "epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay",
              "temperature", "clamp", "schedule", "augment", "precision", "deterministic",
              *("rebalance", "minority_weight", "sdclr_prune"), "engine")
#: The mitigations (rharm.vision.mitigation) and the values that switch them off. A run at these values has the store key
#: it had before they existed (they are left out of the key); the balanced model has no minority, so re-balancing
#: and re-weighting are no-ops there and it shares the unmitigated balanced model's key.
MITIGATION_OFF = {f.name: f.default for f in dataclasses.fields(train.TrainConfig)
                  if f.name in ("rebalance", "minority_weight", "sdclr_prune")}
_GROUP_MITIGATIONS = ("rebalance", "minority_weight")
#: Data settings of a grid.
DATA_KEYS = ("dataset", "classes", "minority_classes", "ratio", "seeds", "n_per_class", "data_source", "pool_seed",
             "warm_start")
#: Execution settings that do not change results (not part of the cache key).
RUN_KEYS = ("device", "progress", "feature_batch_size", "threads", "workers", "checkpoint_every")

GRID_DEFAULTS: dict[str, Any] = {
    # the training defaults are TrainConfig's (one source): the paper's SimCLR setting
    **{f.name: f.default for f in dataclasses.fields(train.TrainConfig) if f.name in TRAIN_KEYS},
    "dataset": "cifar10", "classes": None, "minority_classes": [], "ratio": 100, "seeds": [0],
    "n_per_class": 5000, "data_source": "auto", "pool_seed": 0, "device": "auto", "progress": True,
    "feature_batch_size": 1024, "threads": 0, "workers": 1,
    # deterministic "auto": True on the CPU (exact resume, tests), False on CUDA (cuDNN benchmark mode)
    "deterministic": "auto", "checkpoint_every": 1,
    # warm start (a mitigation, rharm.vision.mitigation): every run of the grid starts from the model of the same seed
    # pre-trained, with the same settings, on the grid's classes without its one minority class
    "warm_start": False,
}


@dataclass
class RunResult:
    """One trained model of the grid.

    minority: the underrepresented class name, or None for the balanced model. ratio: None for the balanced model.
    dir: the store folder. features: ``features.pt`` (``test_backbone`` (10000, out_dim), ``test_projection``
    (10000, proj_dim), ``test_labels`` (10000,), ``train_backbone`` (10*n_per_class, out_dim), ``train_labels``,
    ``train_in_cl`` bool (10*n_per_class,)). history: ``history.json``. meta: ``meta.json`` (wall time, hardware).
    """

    minority: str | None
    seed: int
    ratio: float | None
    dir: Path
    features: dict
    history: dict
    meta: dict


def validate_grid(grid: Mapping[str, Any]) -> dict:
    unknown = sorted(set(grid) - set(GRID_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown grid key(s) {unknown}; valid keys: {sorted(GRID_DEFAULTS)}")
    g = {**GRID_DEFAULTS, **{k: v for k, v in grid.items() if v is not None}}
    info = data.dataset_info(g["dataset"])
    sub = g["classes"]
    if sub is not None:
        if isinstance(sub, str) or not isinstance(sub, (list, tuple)) or len(sub) < 3 or len(set(sub)) != len(sub) \
                or any(c not in info.classes for c in sub):
            raise ValueError(f"classes={sub!r} is not valid for dataset={g['dataset']!r}; give None (all classes) or "
                             f"a list of at least 3 distinct names from {list(info.classes)}")
        g["classes"] = list(sub)
        bad = [m for m in g["minority_classes"] if m not in sub]
        if bad:
            raise ValueError(f"minority_classes entries {bad} are not in classes={list(sub)}; choose minorities "
                             "among the classes trained on")
    mins = g["minority_classes"]
    if isinstance(mins, str) or not isinstance(mins, (list, tuple)):
        raise ValueError(f"minority_classes={mins!r} is not valid; give a list of names from {list(info.classes)}")
    schema.check("warm_start", g["warm_start"])
    if g["warm_start"] and len(mins) != 1:
        raise ValueError(f"warm_start=True needs exactly one minority class (the class its pre-training leaves out); "
                         f"got minority_classes={mins!r}")
    for m in mins:
        if m not in info.classes:
            raise ValueError(f"minority_classes entry {m!r} is not valid for dataset={g['dataset']!r}; "
                             f"choose from {list(info.classes)}")
    if len(set(mins)) != len(mins):
        raise ValueError(f"minority_classes={list(mins)!r} has repeats")
    for name in ("seeds", "ratio", "n_per_class", "threads", "workers"):  # one schema (rharm.core.schema) for each
        schema.check(name, g[name])
    seeds, r, npc = g["seeds"], g["ratio"], g["n_per_class"]
    if npc > info.train_per_class:
        raise ValueError(f"n_per_class={npc!r} is not valid for dataset={g['dataset']!r}; it must be an integer in "
                         f"[1, {info.train_per_class}]")
    if mins and int(npc / r) < 1:
        raise ValueError(f"ratio={r!r} is not valid with n_per_class={npc}: the minority class would keep no image; "
                         f"use ratio <= {npc}")
    if g["data_source"] not in info.sources:
        raise ValueError(f"data_source={g['data_source']!r} is not valid for dataset={g['dataset']!r}; choose one "
                         f"of {list(info.sources)}")
    if g["device"] != "auto":
        try:
            torch.device(g["device"])
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device={g['device']!r} is not valid; use 'auto', 'cpu' or 'cuda[:k]'") from exc
    # building the TrainConfig validates every training setting before anything runs
    _train_config(g, seeds[0])
    train.resolve_precision(g["precision"], _device(g["device"]))  # e.g. fp16 on a CPU: refused here
    return g


def _train_config(g: Mapping[str, Any], seed: int, balanced: bool = False) -> train.TrainConfig:
    kw = {k: g[k] for k in TRAIN_KEYS}
    if balanced:
        kw.update({k: MITIGATION_OFF[k] for k in _GROUP_MITIGATIONS})
    if kw["deterministic"] == "auto":
        kw["deterministic"] = _device(g["device"]).type != "cuda"
    return train.TrainConfig(**kw, seed=int(seed), knn_every=0, checkpoint_every=g["checkpoint_every"])


def run_config(g: Mapping[str, Any], minority: str | None, seed: int) -> dict:
    """The plain-data configuration (store key) of one run of a validated grid."""
    tc = _train_config(g, seed, balanced=minority is None).to_dict()
    for k in ("knn_every", "knn_k", "checkpoint_every"):
        tc.pop(k)
    for k, off in MITIGATION_OFF.items():
        if tc[k] == off:
            tc.pop(k)
    if tc["engine"] == "single":  # today's engine keeps the key it had before engines existed
        tc.pop("engine")
    device = _device(g["device"])
    return {
        "train": tc,
        # where and in what precision the run trains: a CPU fp32 run and a GPU bf16 run are different results
        "device": device.type,
        "precision": train.resolve_precision(tc["precision"], device),
        "minority": minority,
        # the balanced model is shared across ratios; 100.0 and 100 name the same run
        "ratio": None if minority is None else (int(g["ratio"]) if float(g["ratio"]).is_integer() else float(g["ratio"])),
        "seed": int(seed),
        "dataset": g["dataset"],
        **({"classes": list(g["classes"])} if g["classes"] is not None else {}),  # a class subset, in label order
        "n_per_class": int(g["n_per_class"]),
        "pool_seed": int(g["pool_seed"]),
        "data_source": data.resolve_source(g["data_source"], dataset=g.get("dataset", "cifar10")),  # "auto" resolved
        # the class left out of the warm start's pre-training (the key of a run without warm start is unchanged)
        **({"warm_start": g["minority_classes"][0]} if g["warm_start"] else {}),
    }


def pretrain_grid(g: Mapping[str, Any]) -> dict:
    """The grid of a warm-start grid's pre-training: the same settings on its classes without the minority class,
    balanced, no warm start (its balanced runs are the pre-trained models, one per seed)."""
    left_out = g["minority_classes"][0]
    return {**g, "classes": [c for c in run_classes(g) if c != left_out], "minority_classes": [], "warm_start": False}


def code_modules() -> list:
    # every rharm module this one imports, transitively, this module included (rharm.store.code_closure): an edit to
    # any code that shapes a run's features never reuses a stored result (tests/test_faults.py lists them)
    return store.code_closure(__name__)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@functools.lru_cache(maxsize=2)
def _load_split(dataset: str, split: str, source: str) -> data.ImageData:
    # kept in memory across the runs of a grid (a split is 180 MB at most)
    return data.load_dataset(dataset, split, source=source)


def _restrict(split: data.ImageData, all_classes: tuple, classes: tuple) -> data.ImageData:
    """The images of ``classes`` only, relabelled 0..len(classes)-1 in the order of ``classes``."""
    if classes == all_classes:
        return split
    old = torch.tensor([all_classes.index(c) for c in classes])
    keep = torch.isin(split.labels, old)
    remap = torch.full((len(all_classes),), -1, dtype=torch.int64)
    remap[old] = torch.arange(len(classes))
    return data.ImageData(split.images[keep], remap[split.labels[keep]], split.source)


def run_classes(cfg: Mapping[str, Any]) -> tuple[str, ...]:
    """The class names of a run, by label: its ``classes`` subset, or every class of its dataset."""
    return tuple(cfg.get("classes") or data.dataset_info(cfg["dataset"]).classes)


def _splits(cfg: Mapping[str, Any]) -> tuple[data.ImageData, data.ImageData]:
    all_classes, classes = data.dataset_info(cfg["dataset"]).classes, run_classes(cfg)
    tr = _restrict(_load_split(cfg["dataset"], "train", cfg["data_source"]), all_classes, classes)
    te = _restrict(_load_split(cfg["dataset"], "test", cfg["data_source"]), all_classes, classes)
    return tr, te


def _prepare_run(cfg: dict, g: Mapping[str, Any]) -> dict:
    """Everything one run trains on: its TrainConfig, training images and their ids, groups, warm start."""
    tr, te = _splits(cfg)
    pool = data.per_class_subset(tr.labels, cfg["n_per_class"], cfg["pool_seed"])
    pool_labels = tr.labels[torch.from_numpy(pool)]
    kept_in_pool = data.underrepresent(pool_labels, cfg["minority"], cfg["ratio"] or 1, cfg["seed"],
                                        run_classes(cfg))
    kept = pool[kept_in_pool]
    tc = _train_config(g, cfg["seed"], balanced=cfg["minority"] is None)
    device = _device(g["device"])
    classes = run_classes(cfg)
    kept_labels = tr.labels[torch.from_numpy(kept)]
    # which training images are the minority's (re-balancing and re-weighting know the rare group)
    groups = (kept_labels == classes.index(cfg["minority"])) if cfg["minority"] is not None else None
    init_state = None
    if cfg.get("warm_start"):
        pre = run_one(pretrain_grid(g), None, cfg["seed"])
        init_state = store.load_tensors(pre.dir / "model.pt")
    return {"tc": tc, "tr": tr, "te": te, "pool": pool, "pool_labels": pool_labels, "kept": kept,
            "kept_in_pool": kept_in_pool, "images": tr.images[torch.from_numpy(kept)], "labels": kept_labels,
            "sample_ids": torch.from_numpy(kept_in_pool), "groups": groups, "init_state": init_state, "device": device}


def _compute(cfg: dict, g: Mapping[str, Any], out: Path) -> dict:
    cpu0 = time.process_time()
    p = _prepare_run(cfg, g)
    ckpt = store.result_dir("checkpoints", cfg, code_modules()).with_suffix(".pt")
    kw = dict(checkpoint_path=ckpt, device=p["device"], progress=bool(g["progress"]), sample_ids=p["sample_ids"])
    if p["tc"].engine == "batched":  # a batched job of one model (rharm.vision.engine; prefetch groups the seeds)
        result = engine.train_batched([p["tc"]], [p["images"]], [p["labels"]], groups=[p["groups"]],
                                      init_states=[p["init_state"]], **{**kw, "sample_ids": [p["sample_ids"]]})[0]
    else:
        result = train.train(p["tc"], p["images"], p["labels"], groups=p["groups"], init_state=p["init_state"], **kw)
    extra = _save_run(p, g, out, result)
    if ckpt.exists():
        ckpt.unlink()
    # process CPU seconds: with one torch thread this is close to the wall time on an otherwise idle core, so it
    # measures the cost of a run on a shared machine better than the wall time does
    return {**extra, "cpu_time_s": round(time.process_time() - cpu0, 3)}


def _save_run(p: dict, g: Mapping[str, Any], out: Path, result: train.TrainResult) -> dict:
    """Write a trained run's artefacts (features, indices, history, weights) into ``out``; return its meta extra."""
    tr, te, pool, pool_labels, kept, kept_in_pool, device = (p[k] for k in (
        "tr", "te", "pool", "pool_labels", "kept", "kept_in_pool", "device"))
    model = result.model
    fb = int(g["feature_batch_size"])
    te_h, te_z = train.extract_features(model, te.images, fb, device)
    tr_h, _ = train.extract_features(model, tr.images[torch.from_numpy(pool)], fb, device)
    in_cl = np.zeros(len(pool), dtype=bool)
    in_cl[kept_in_pool] = True
    store.save_tensors(out / "features.pt", {
        "test_backbone": te_h, "test_projection": te_z, "test_labels": te.labels,
        "train_backbone": tr_h, "train_labels": pool_labels, "train_in_cl": torch.from_numpy(in_cl),
    })
    np.save(out / "kept_indices.npy", kept)  # indices into the CIFAR-10 train split of the CL training set
    np.save(out / "pool_indices.npy", pool)  # indices into the train split of the rows of train_backbone
    store.save_json(out / "history.json", result.history)
    store.save_tensors(out / "model.pt", model.state_dict())
    imgs = [t["images_per_s"] for t in result.history["throughput"]]
    return {"data_source": tr.source, "device": str(device), "n_train": int(len(kept)),
            "threads": torch.get_num_threads(), "engine": p["tc"].engine,
            "images_per_s": float(np.median(imgs)) if imgs else None, "final_loss": result.history["loss"][-1]}


def run_one(grid: Mapping[str, Any], minority: str | None, seed: int) -> RunResult:
    """Train (or fetch from the store) one model of the grid; see :func:`run_grid`."""
    g = validate_grid(grid)
    classes = g["classes"] or data.dataset_info(g["dataset"]).classes
    if minority is not None and minority not in classes:
        raise ValueError(f"minority={minority!r} is not valid; choose None or one of {list(classes)}")
    cfg = run_config(g, minority, seed)

    def compute(out: Path) -> dict:
        # on a shared 2-core machine one thread per process avoids OpenMP oversubscription (3x faster there)
        with runtime.torch_threads(int(g["threads"])):
            return _compute(cfg, g, out)

    folder = store.cached(KIND, cfg, compute, code=code_modules())
    return RunResult(minority=minority, seed=int(seed), ratio=cfg["ratio"], dir=folder,
                     features=store.load_tensors(folder / "features.pt"),
                     history=store.load_json(folder / "history.json"), meta=store.load_meta(folder))


def run_grid(grid: Mapping[str, Any]) -> list[RunResult]:
    """Train or fetch every run of a grid: the balanced model and each minority class, for every seed.

    ``grid`` keys (all optional, defaults = the paper's SimCLR setting except ``minority_classes=[]``):
    training - method, backbone, init, epochs, batch_size, lr, momentum, nesterov, weight_decay, temperature,
    clamp, schedule, augment, engine (see :class:`rharm.vision.train.TrainConfig`); data - minority_classes (class names),
    ratio (1:ratio kept), seeds, n_per_class (per-class pool, 5000 = full train set), data_source ("auto" |
    "jpeg" | "torchvision"), pool_seed; execution (not part of the cache key) - device ("auto"), progress,
    feature_batch_size, threads (torch threads while training; 0 = leave as is), workers (runs trained at once in
    separate processes; 1 = serial).

    Every value is validated before any training. Each run is cached with
    ``rharm.store.cached("simclr_run", run_config(...), ..., code=[train, models, losses, augment, data])``; a killed
    run resumes from its checkpoint. Returns RunResults ordered seed-major: for each seed, balanced then minorities.
    """
    g = validate_grid(grid)
    if g["workers"] > 1 or g["engine"] == "batched":  # batched: prefetch trains the seeds of a grid point together
        prefetch([g], workers=g["workers"])
    elif g["warm_start"]:
        run_grid(pretrain_grid(g))  # the pre-trained models first, then the runs that start from them
    return [run_one(g, m, s) for m, s in _grid_todo(g)]


def _grid_todo(g: Mapping[str, Any]) -> list[tuple[str | None, int]]:
    return [(m, s) for s in g["seeds"] for m in [None, *g["minority_classes"]]]


def _train_only(grid: Mapping[str, Any], minority: str | None, seed: int) -> str:
    return str(run_one(grid, minority, seed).dir)


def _train_batched_job(grid: Mapping[str, Any], minority: str | None, seeds: Sequence[int]) -> list[str]:
    """Train the runs ``(minority, seed)`` of ``grid`` for every seed of ``seeds`` as one batched job
    (:func:`rharm.vision.engine.train_batched`) and store each as its own result; runs already stored are skipped."""
    g = validate_grid(grid)
    todo = [(int(s), run_config(g, minority, s)) for s in seeds]
    todo = [(s, c) for s, c in todo if not store.is_complete(store.result_dir(KIND, c, code_modules()))]
    if todo:
        with runtime.torch_threads(int(g["threads"])):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            preps = [_prepare_run(c, g) for _, c in todo]
            ckpt = store.result_dir("checkpoints", {"batched": [c for _, c in todo]}, code_modules()).with_suffix(".pt")
            results = engine.train_batched(
                [p["tc"] for p in preps], [p["images"] for p in preps], [p["labels"] for p in preps],
                sample_ids=[p["sample_ids"] for p in preps], groups=[p["groups"] for p in preps],
                init_states=[p["init_state"] for p in preps], checkpoint_path=ckpt, device=preps[0]["device"],
                progress=bool(g["progress"]))
            # the job's training cost, shared equally by its runs (meta "extra"; the store's own wall_time_s of a
            # batched run covers only its feature extraction and writing)
            share = {"job_models": len(todo), "train_cpu_time_s_share": round((time.process_time() - cpu0) / len(todo), 3),
                     "train_wall_time_s_share": round((time.perf_counter() - wall0) / len(todo), 3)}
            for (_, c), p, r in zip(todo, preps, results):
                def save(out: Path, p=p, r=r) -> dict:
                    t0 = time.process_time()
                    extra = _save_run(p, g, out, r)
                    cpu = share["train_cpu_time_s_share"] + time.process_time() - t0
                    return {**extra, **share, "cpu_time_s": round(cpu, 3)}

                store.cached(KIND, c, save, code=code_modules())
            if ckpt.exists():
                ckpt.unlink()
    return [str(store.result_dir(KIND, run_config(g, minority, s), code_modules())) for s in seeds]


def _batched_jobs(missing: Sequence[tuple[dict, str | None, int]], workers: int) -> list[tuple[dict, str | None, list]]:
    """Group missing runs ``(grid, minority, seed)`` into batched jobs ``(grid, minority, seeds)``: the seeds of one
    grid point together, split into near-equal parts of at most ceil(runs / (2 x workers)) seeds when ``workers``
    > 1 (so that every worker stays busy to the end), largest jobs first."""
    import json
    import math

    groups: dict[str, tuple[dict, str | None, list]] = {}
    for child, m, s in missing:
        k = json.dumps([{**child, "seeds": None}, m], sort_keys=True, default=str)
        groups.setdefault(k, (child, m, []))[2].append(int(s))
    cap = len(missing) if workers <= 1 else max(1, math.ceil(len(missing) / (2 * workers)))
    jobs = []
    for child, m, seeds in groups.values():
        parts = math.ceil(len(seeds) / cap)
        jobs += [(child, m, seeds[i::parts]) for i in range(parts)]
    return sorted(jobs, key=lambda j: -len(j[2]))


def prefetch(grids: Sequence[Mapping[str, Any]], *, workers: int) -> int:
    """Train every run of ``grids`` that is not in the store yet, all in one pool of ``workers`` spawned processes;
    return how many were trained.

    A chapter that needs several grids (a design's main grid, its dose-response and temperature points) trains them
    in one pool, so no worker waits at the end of each small grid and the processes start once. Every grid is
    validated before anything trains; a warm-start grid's pre-training runs first. Each process writes its run to
    the store (atomically, as always) and :func:`run_grid` then loads them, so results are those of a serial run.
    With ``engine="batched"`` the missing seeds of each grid point (same grid, same minority) train together as one
    job (:func:`rharm.vision.engine.train_batched`; :func:`_batched_jobs` splits them so that no worker idles), each run
    still stored under its own key.
    On a 2-core CPU, two one-thread processes use both cores, where one process with two threads spends much of its
    time synchronising small convolutions.
    """
    validated = [validate_grid(g) for g in grids]
    schema.check("workers", workers)
    stages = [[pretrain_grid(g) for g in validated if g["warm_start"]], validated]
    trained = 0
    for stage in stages:
        missing, seen = [], set()
        for g in stage:
            for m, s in _grid_todo(g):
                folder = store.result_dir(KIND, run_config(g, m, s), code_modules())
                if folder not in seen and not store.is_complete(folder):
                    seen.add(folder)
                    missing.append(({**g, "workers": 1, "progress": False}, m, s))
        trained += len(missing)
        batched = [x for x in missing if x[0]["engine"] == "batched"]
        tasks = [(_train_batched_job, job) for job in _batched_jobs(batched, workers)]
        tasks += [(_train_only, x) for x in missing if x[0]["engine"] != "batched"]
        if workers == 1 or len(tasks) < 2:
            for fn, args in tasks:
                fn(*args)
            continue
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("spawn")  # fork after torch/OpenMP initialisation can deadlock
        with ProcessPoolExecutor(max_workers=min(workers, len(missing)), mp_context=ctx) as pool:
            futures = [pool.submit(fn, *args) for fn, args in tasks]
            for fut in futures:
                fut.result()
    return trained


def grid_from_params(P) -> dict:
    """Build a grid from notebook parameters (``P.values`` or a dict): every grid key present is taken over."""
    values = P.values if hasattr(P, "values") and not isinstance(P, Mapping) else P
    return {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in values.items() if k in GRID_DEFAULTS}


# --------------------------------------------------------------------------------------------------------------
# The CPU scale study (notebooks/scale_study.py): throughput and paired effect-versus-noise comparisons
# --------------------------------------------------------------------------------------------------------------


def throughput_table(backbones, batch_sizes, steps: int = 2, *, warmup: int = 1, threads: int = 0,
                     device: str = "auto"):
    """Training throughput (images/s, augmentation included) for every backbone x batch size, as a DataFrame with
    columns backbone, batch_size, device, precision, images_per_s, augment_images_per_s, step_s, parameters,
    flop_per_view, tflop_s, threads. ``device="auto"`` times on CUDA when there is one (precision "auto")."""
    device = _device(device)
    import pandas as pd

    with runtime.torch_threads(int(threads)) as n_threads:
        rows = [{**train.measure_throughput(b, int(bs), steps, warmup=warmup, device=device),
                 "threads": n_threads} for b in backbones for bs in batch_sizes]
    return pd.DataFrame(rows)


def paired_rh(runs: list[RunResult], minority: str, feature: str = "test_backbone",
              classes: tuple[str, ...] = data.CIFAR10_CLASSES):
    r"""Paired representation harm of one minority class against the noise floor, per seed and other class.

    For seed s, with cos from :func:`rharm.harm.metrics.class_cosines` on the test features,
    ``effect``: :math:`RH_s(i, j) = (1 - \cos_{M_i^s}(i, j)) / (1 - \cos_{M_{bal}^s}(i, j))` (same seed: common
    random numbers); ``noise floor``: the same ratio between two *balanced* models of different seeds s' != s,
    :math:`(1 - \cos_{M_{bal}^{s'}}(i, j)) / (1 - \cos_{M_{bal}^s}(i, j))`, i.e. what RH looks like with no
    underrepresentation at all. Returns a long DataFrame: kind, seed, other_class, rh, log_rh (j != i only).
    """
    import pandas as pd

    from rharm.harm import metrics

    i = data.class_index(minority, classes)
    bal = {r.seed: r for r in runs if r.minority is None}
    imb = {r.seed: r for r in runs if r.minority == minority}
    if not imb or not set(imb) <= set(bal):
        raise ValueError(f"runs must hold the balanced and the minority={minority!r} model for the same seeds; "
                         f"got balanced seeds {sorted(bal)}, minority seeds {sorted(imb)}")

    def cos(r):
        f = r.features
        return metrics.class_cosines(f[feature].numpy(), f["test_labels"].numpy(), len(classes))

    cb = {s: cos(r) for s, r in bal.items()}
    rows = []
    for s, r in imb.items():
        rh = (1 - cos(r)[i]) / (1 - cb[s][i])
        rows += [("effect", s, j, rh[j]) for j in range(len(rh)) if j != i]
    seeds = list(cb)
    ratios = metrics.noise_floor_ratios([cb[s][i] for s in seeds], "all")  # (a, b, rh): seed a's model over b's
    for a, b, rh in sorted(ratios, key=lambda t: (t[1], t[0])):  # rows grouped by the denominator seed
        rows += [("noise floor", seeds[b], j, rh[j]) for j in range(len(rh)) if j != i]
    df = pd.DataFrame(rows, columns=["kind", "seed", "j", "rh"])
    df["other_class"] = [classes[j] for j in df["j"]]
    df["log_rh"] = np.log(df["rh"].astype(float))
    return df.drop(columns="j")


def paired_summary(df, partner: str) -> dict:
    """Summary of :func:`paired_rh` for one partner class j: mean effect RH(i, j) over seeds, its seed sd, the noise
    floor's sd of log RH over all pairs (j' != i), and the signal-to-noise ratio abs(mean log RH(i, j)) / noise sd."""
    eff = df[(df.kind == "effect") & (df.other_class == partner)]["log_rh"]
    noise = df[df.kind == "noise floor"]["log_rh"]
    noise_sd = float(np.sqrt(np.mean(noise ** 2))) if len(noise) else float("nan")  # RMS: its centre is 0 (RH=1)
    return {"rh_mean": float(np.exp(eff.mean())), "log_rh_sd_seeds": float(eff.std(ddof=1)) if len(eff) > 1 else float("nan"),
            "noise_log_rms": noise_sd, "snr": float(abs(eff.mean()) / noise_sd) if noise_sd > 0 else float("nan"),
            "n_seeds": int(len(eff))}


def grid_runs(grid: Mapping[str, Any]) -> list[tuple[str | None, int, dict, Path]]:
    """Every run of a grid, in :func:`run_grid`'s order (seed-major, balanced first), without training anything.

    Returns ``[(minority, seed, config, dir)]``: ``config`` is the run's store key data (:func:`run_config`) and
    ``dir`` its store folder (complete when :func:`rharm.store.is_complete`). The grid is validated first.
    """
    g = validate_grid(grid)
    runs = []
    for s in g["seeds"]:
        for m in [None, *g["minority_classes"]]:
            cfg = run_config(g, m, s)
            runs.append((m, int(s), cfg, store.result_dir(KIND, cfg, code_modules())))
    return runs


def init_features(grid: Mapping[str, Any], seed: int) -> dict:
    """Features of the grid's model *before training* (the initial weights of ``seed``, as :func:`rharm.vision.train.train`
    draws them), on the same pool and test split as a trained run: ``test_backbone``, ``test_labels``,
    ``train_backbone``, ``train_labels``. What a trained run's features are compared with to see what training
    added."""
    g = validate_grid(grid)
    cfg = run_config(g, None, seed)
    tr, te = _splits(cfg)
    pool = data.per_class_subset(tr.labels, cfg["n_per_class"], cfg["pool_seed"])
    device = _device(g["device"])
    tc = _train_config(g, seed)
    state = torch.random.get_rng_state()
    try:
        model = train.initial_model(tc).to(device)
    finally:
        torch.random.set_rng_state(state)
    fb = int(g["feature_batch_size"])
    te_h, _ = train.extract_features(model, te.images, fb, device)
    tr_h, _ = train.extract_features(model, tr.images[torch.from_numpy(pool)], fb, device)
    return {"test_backbone": te_h, "test_labels": te.labels, "train_backbone": tr_h,
            "train_labels": tr.labels[torch.from_numpy(pool)]}


def canary() -> list[float]:
    """The canary of the stored kind ``simclr_run`` (:mod:`rharm.store.recipes`): 8 numbers from one epoch of a
    small_cnn on 64 fixed random images on the CPU, trained through a validated grid's training configuration (the
    paper's SimCLR defaults), the minority draw at 1:4, the augmentations, the loss and the feature extraction that a
    stored run uses. Deterministic on one CPU thread; a few seconds."""
    g = validate_grid({"backbone": "small_cnn", "epochs": 1, "batch_size": 16, "device": "cpu", "n_per_class": 16,
                       "seeds": [0]})
    tc = _train_config(g, seed=0)
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (64, 3, 32, 32), dtype=np.uint8))
    labels = np.arange(64) % 4
    keep = torch.from_numpy(sampling.undersample_mask(labels, 0, 4, np.random.default_rng(1)))
    with runtime.torch_threads(1):
        result = train.train(tc, images[keep], torch.from_numpy(labels)[keep], progress=False)
        h, z = train.extract_features(result.model, images, 32, torch.device("cpu"))
    return [result.history["loss"][0], result.history["loss"][-1], float(h.mean()), float(h.std()),
            float(z.mean()), float(z.std()), float(h[0, 0]), float(z[7, 1])]
