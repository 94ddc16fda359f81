"""Contrastive training (SimCLR, SimSiam) on an in-memory uint8 image tensor, with exact resume.

One :class:`TrainConfig` holds every setting (as the official code's cifar/simclr/simclr.py for SimCLR and
cifar/simsiam/main.py for SimSiam) and is validated before any training starts. :func:`train` draws batches with seeded :class:`torch.Generator` objects, makes two augmented views
per image with :func:`rharm.vision.augment.augment_batch`, and writes atomic checkpoints that hold everything needed to
continue bit-for-bit: model, optimiser, step, the augmentation generator and the global RNG states. Each epoch's
batch order is a function of ``(seed, epoch)`` alone, so a run resumed mid-epoch sees the same batches.

The GPU path: the whole uint8 training set is moved to the device once; batches are indexed and augmented there; the
model runs in the resolved precision (:func:`resolve_precision`: bf16 autocast on CUDA by default, fp32 on the CPU),
channels_last on every device, optionally under ``torch.compile``; the step loop makes no host synchronisation (losses stay
on the device and are checked for finiteness once per epoch). ``deterministic=True`` (the default, for CPU tests and
exact resume) turns on ``torch.use_deterministic_algorithms``; with ``False`` cuDNN may benchmark and pick the fastest
(non-deterministic) kernels, the gpu profile's choice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from rharm.core import runtime, schema
from rharm.vision import losses, mitigation, models

SCHEDULES = schema.SPECS["schedule"].choices
#: Numerical precision of training: "auto" = bf16 autocast on CUDA when supported (fp16 with loss scaling
#: otherwise), fp32 on the CPU; "fp32" = no autocast; "bf16" / "fp16" = autocast to that type (fp16: CUDA only).
PRECISIONS = schema.SPECS["precision"].choices
#: The environment setting cuBLAS needs for deterministic results on CUDA (NVIDIA cuBLAS docs, "Results
#: reproducibility"); read when the process creates its first cuBLAS handle.
CUBLAS_WORKSPACE = ":4096:8"
AUGMENTS = schema.SPECS["augment"].choices
#: Final learning rate as a fraction of the initial one (the official get_lr's lr_min = 1e-3, cifar/simclr/simclr.py).
LR_FINAL_FRACTION = 1e-3

_DEFAULT_LR = {"simclr": 0.6, "simsiam": 0.06}
_DEFAULT_WD = {"simclr": 1e-6, "simsiam": 5e-4}


#: TrainConfig fields where None means "the method's own value"
_OPTIONAL = ("lr", "weight_decay", "nesterov", "augment")


@dataclass
class TrainConfig:
    """Every setting of one contrastive training run. The defaults are the paper's SimCLR setting (ResNet-34, 500
    epochs, batch 512; the official cifar/simclr/simclr.py) and the one source of the training defaults of
    :func:`rharm.runs.images.run_grid`. ``None`` means "the paper's value for ``method``".

    Fields::

        method: "simclr" | "simsiam".  backbone: see :data:`rharm.vision.models.BACKBONES`.  init: "random" | "imagenet".
        epochs, batch_size (drop_last=True; must not exceed the training-set size).
        lr: 0.6 SimCLR (= 0.3 x 512/256) / 0.06 SimSiam.  momentum 0.9.  nesterov: True SimCLR (its code) / False SimSiam.
        weight_decay: 1e-6 SimCLR / 5e-4 SimSiam.  temperature, clamp: NT-Xent settings (see :func:`rharm.vision.losses.nt_xent`).
        schedule: "cosine" - per-step cosine from lr to lr*1e-3;
                  "official" - the official code's LambdaLR quirk: the multiplier itself runs from lr to 1e-3, so the
                  effective lr runs from lr*lr to lr*1e-3 (0.36 -> 6e-4 for lr 0.6; cifar/simclr/simclr.py).
        augment: "simclr" | "simsiam" | "simclr_grey" (AugmentSpec of :mod:`rharm.vision.augment`; None = the method's own).
        knn_every: run the k-NN monitor every this many epochs (0 = never; the last epoch is always included).
        knn_k: neighbours of the monitor (200, cosine-weighted).
        checkpoint_every: write the checkpoint (one file, replaced atomically: only the last is kept) every this
            many epochs; 0 = only when stopping early. A ResNet-34 checkpoint is ~175 MB, so the gpu profile writes
            every 25 epochs instead of every epoch.
        seed: drives initialisation, batch order and augmentation (common random numbers across conditions).
        precision: see :data:`PRECISIONS` and :func:`resolve_precision`.
        deterministic: torch.use_deterministic_algorithms(True) during training (CPU tests, exact resume; on CUDA
            it needs CUBLAS_WORKSPACE_CONFIG set, see :data:`CUBLAS_WORKSPACE`). False: cuDNN benchmark mode, faster
            on a GPU, and results are not bit-reproducible.
        compile: run the model's forward under ``torch.compile`` (CUDA; the first steps pay the compilation).
        rebalance: known-group re-balancing, each minority image (``groups`` of :func:`train`) repeated
            :func:`rharm.vision.mitigation.rebalance_factor` times per epoch (False: unchanged training).
        minority_weight: weight of the minority's anchors in NT-Xent (1.0: unchanged; SimCLR only).
        sdclr_prune: SDCLR's pruned fraction of the backbone (0.0: plain SimCLR; :mod:`rharm.vision.mitigation`).
        engine: "single" (:func:`train`, one model per job) or "batched" (the seeds of a grid point trained together
            by :func:`rharm.vision.engine.train_batched`; the grid trainer :mod:`rharm.runs.images` groups them). :func:`train`
            itself trains one model either way; the field makes the two engines' results different store keys.
    """

    method: str = "simclr"
    backbone: str = "resnet34"
    init: str = "random"
    epochs: int = 500
    batch_size: int = 512
    lr: float | None = None
    momentum: float = 0.9
    nesterov: bool | None = None
    weight_decay: float | None = None
    temperature: float = 0.5
    clamp: bool = False
    schedule: str = "cosine"
    augment: str | None = None
    knn_every: int = 0
    knn_k: int = 200
    checkpoint_every: int = 1
    seed: int = 0
    precision: str = "auto"
    deterministic: bool = True
    compile: bool = False
    rebalance: bool = False
    minority_weight: float = 1.0
    sdclr_prune: float = 0.0
    engine: str = "single"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad field, its value and what is allowed (:mod:`rharm.core.schema`)."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None or f.name not in _OPTIONAL:  # None: the method's value (lr, weight decay, ...)
                object.__setattr__(self, f.name, schema.check(f.name, value))  # e.g. epochs 2.0 -> 2
        if self.backbone == "small_cnn" and self.init != "random":
            raise ValueError(f"TrainConfig.init={self.init!r} is not valid for backbone='small_cnn'; choose ['random']")
        for name in ("minority_weight", "sdclr_prune"):
            if self.method != "simclr" and getattr(self, name) != getattr(TrainConfig, name):
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r} is not valid with method="
                                 f"{self.method!r}; it is a change of NT-Xent, use method='simclr'")
        if self.resolved_nesterov and self.momentum == 0:
            raise ValueError("TrainConfig.nesterov=True is not valid with momentum=0; set momentum > 0 or nesterov=False")

    @property
    def resolved_lr(self) -> float:
        return float(self.lr if self.lr is not None else _DEFAULT_LR[self.method])

    @property
    def resolved_weight_decay(self) -> float:
        return float(self.weight_decay if self.weight_decay is not None else _DEFAULT_WD[self.method])

    @property
    def resolved_nesterov(self) -> bool:
        return bool(self.nesterov if self.nesterov is not None else self.method == "simclr")

    @property
    def resolved_augment(self) -> str:
        return self.augment if self.augment is not None else self.method

    def to_dict(self) -> dict:
        """Plain-data form with the method defaults filled in (for the result store and checkpoints)."""
        d = dataclasses.asdict(self)
        d.update(lr=self.resolved_lr, weight_decay=self.resolved_weight_decay, augment=self.resolved_augment,
                 nesterov=self.resolved_nesterov)
        return d


def lr_at(config: TrainConfig, step: int, total_steps: int) -> float:
    r"""Learning rate of optimiser step ``step`` (0-based) of ``total_steps``.

    cosine:   :math:`\eta_t = \eta_{min} + \tfrac12(\eta - \eta_{min})(1 + \cos(\pi t / T))`, :math:`\eta_{min} = 10^{-3}\eta`.
    official: :math:`\eta_t = \eta \cdot [10^{-3} + \tfrac12(\eta - 10^{-3})(1 + \cos(\pi t / T))]` (LambdaLR multiplies
    the base lr by get_lr(t, T, eta, 1e-3); cifar/simclr/simclr.py).
    """
    lr = config.resolved_lr
    c = 0.5 * (1.0 + math.cos(math.pi * step / max(total_steps, 1)))
    if config.schedule == "cosine":
        lo = lr * LR_FINAL_FRACTION
        return lo + (lr - lo) * c
    return lr * (LR_FINAL_FRACTION + (lr - LR_FINAL_FRACTION) * c)


def augment_spec(name: str):
    from rharm.vision import augment

    return augment.SPECS[name]


def _to_float(images: torch.Tensor, spec) -> torch.Tensor:
    """uint8 (N,3,H,W) -> float in [0, 1], normalised with the spec's mean/std when it has them (SimSiam)."""
    from rharm.vision import augment

    if hasattr(augment, "to_float"):
        return augment.to_float(images, spec)
    x = images.float() / 255.0
    mean = getattr(spec, "mean", None)
    std = getattr(spec, "std", None)
    if mean is not None and std is not None:
        x = (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    return x


def epoch_order(seed: int, epoch: int, ids: torch.Tensor) -> torch.Tensor:
    """The batch order of one epoch: positions sorted by a random priority per sample id, drawn from (seed, epoch).

    It depends on (seed, epoch, ids) only, so resuming mid-epoch replays it; and two runs with the same seed whose
    training sets share ids (the balanced and an underrepresented run) visit their common images in the same
    relative order (common random numbers).
    """
    g = torch.Generator().manual_seed((seed * 1_000_003 + epoch * 7919 + 17) % (2**63 - 1))
    priority = torch.rand(int(ids.max()) + 1, generator=g, dtype=torch.float64)
    return torch.argsort(priority[ids], stable=True)


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """The precision a run actually uses: "fp32", "bf16" or "fp16" (what the result store keys on).

    "auto" is bf16 on a CUDA device that supports it, fp16 on an older CUDA device, fp32 elsewhere (a CUDA device
    named on a machine without CUDA, e.g. when planning or keying a GPU run, resolves to bf16, what every GPU since
    NVIDIA Ampere supports). fp16 needs CUDA (its loss scaler); asking for it on another device raises ValueError.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not valid; choose one of {list(PRECISIONS)}")
    device = torch.device(device)
    if precision == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if not torch.cuda.is_available() or torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"precision='fp16' is not valid on device {str(device)!r}; choose 'fp32' or 'bf16' there")
    return precision


AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _autocast(config: TrainConfig, device: torch.device):
    return AUTOCAST_DTYPES[resolve_precision(config.precision, device)]


def check_determinism_environment(device: str | torch.device) -> None:
    """Raise RuntimeError unless deterministic CUDA training is possible in this process (CUBLAS_WORKSPACE_CONFIG)."""
    import os

    if torch.device(device).type == "cuda" and os.environ.get("CUBLAS_WORKSPACE_CONFIG") not in (":4096:8", ":16:8"):
        raise RuntimeError(
            "deterministic=True on CUDA needs the environment variable CUBLAS_WORKSPACE_CONFIG=:4096:8 (or :16:8) "
            "set before the process starts (cuBLAS reads it once); set it, or use deterministic=False")


def method_loss(model: models.ContrastiveModel, config: TrainConfig, v1: torch.Tensor, v2: torch.Tensor,
          forward: Callable | None = None, weights: torch.Tensor | None = None,
          masks: dict | None = None) -> torch.Tensor:
    # one forward over both views: BatchNorm sees 2N samples, as in the official SimCLR code. ``forward`` is the
    # model or its torch.compile wrapper (same parameters). weights: (N,) NT-Xent anchor weights (re-weighting);
    # masks: SDCLR's pruning masks, the second view then goes through the pruned branch.
    n = v1.shape[0]
    if masks is not None:
        _, z1 = model(v1)
        _, z2 = mitigation.pruned_forward(model, v2, masks)
    else:
        # `is None`, not `or`: bool() of a torch.compile'd module raises TypeError (it has no __len__)
        _, z = (model if forward is None else forward)(torch.cat([v1, v2], dim=0))
        z1, z2 = z[:n], z[n:]
    if config.method == "simclr":
        return losses.nt_xent(z1, z2, config.temperature, clamp=config.clamp, weights=weights)
    return losses.simsiam_loss(model.predict(z1), model.predict(z2), z1, z2)


@torch.no_grad()
def extract_features(model: models.ContrastiveModel, images: torch.Tensor, batch_size: int = 1024,
                     device: str | torch.device = "cpu", augment: str | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of un-augmented images, in eval mode.

    images: uint8 (N, 3, 32, 32). Returns ``(backbone (N, out_dim), projection (N, proj_dim))`` as float32 on CPU;
    projection is the SimCLR head output (128-d) or the SimSiam projector output (2048-d, the features the paper
    analyses for SimSiam, cifar/simsiam/main.py). Inputs are scaled to [0, 1] and, for the SimSiam spec, normalised with
    its mean/std, exactly as the training views are.
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 (N, 3, H, W); got {images.dtype} {tuple(images.shape)}")
    spec = augment_spec(augment if augment is not None else model.method)
    device = torch.device(device)
    was_training = model.training
    model.eval()
    hs, zs = [], []
    try:
        for start in range(0, images.shape[0], batch_size):
            x = _to_float(images[start:start + batch_size], spec).to(device)
            h, z = model(x)
            hs.append(h.float().cpu())
            zs.append(z.float().cpu())
    finally:
        model.train(was_training)
    if not hs:
        return torch.zeros(0, model.backbone.out_dim), torch.zeros(0, model.projector.out_dim)
    return torch.cat(hs), torch.cat(zs)


def knn_accuracy(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                 test_labels: torch.Tensor, k: int = 200, temperature: float = 0.1, chunk: int = 1024) -> float:
    r"""Cosine-weighted k-NN accuracy (Wu et al. 2018 monitor): each of the k nearest training features (cosine
    similarity s) votes for its label with weight exp(s / temperature).

    train_features (M, d), train_labels (M,) int, test_features (N, d), test_labels (N,) -> accuracy in [0, 1].
    """
    k = min(k, train_features.shape[0])
    a = F.normalize(train_features.float(), dim=1)
    b = F.normalize(test_features.float(), dim=1)
    n_classes = int(max(train_labels.max(), test_labels.max())) + 1
    correct = 0
    for start in range(0, b.shape[0], chunk):
        sim = b[start:start + chunk] @ a.t()
        s, idx = sim.topk(k, dim=1)
        votes = torch.zeros(sim.shape[0], n_classes)
        votes.scatter_add_(1, train_labels[idx].long(), (s / temperature).exp())
        correct += int((votes.argmax(1) == test_labels[start:start + chunk].long()).sum())
    return correct / max(b.shape[0], 1)


@dataclass
class TrainResult:
    """The trained model and its history (lists are per step or per epoch; see :func:`train`)."""

    model: models.ContrastiveModel
    history: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)

    def state_dict(self) -> dict:
        return self.model.state_dict()


def _rng_state(gen: torch.Generator) -> dict:
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "augment_generator": gen.get_state(),
        "torch_global": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]), "numpy_has_gauss": int(np_state[3]), "numpy_gauss": float(np_state[4]),
        "python": torch.tensor(py_state[1], dtype=torch.int64), "python_version": int(py_state[0]),
        "python_gauss": py_state[2],
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(gen: torch.Generator, st: dict) -> None:
    gen.set_state(st["augment_generator"])
    torch.set_rng_state(st["torch_global"])
    np.random.set_state(("MT19937", st["numpy_keys"].numpy().astype(np.uint32), st["numpy_pos"],
                         st["numpy_has_gauss"], st["numpy_gauss"]))
    random.setstate((st["python_version"], tuple(int(v) for v in st["python"].tolist()), st["python_gauss"]))
    if st["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def save_checkpoint(path: str | Path, model, optimizer, step: int, gen: torch.Generator, config: TrainConfig,
                    history: dict) -> None:
    """Write a checkpoint atomically (loadable with ``torch.load(path, weights_only=True)``)."""
    from rharm.store import atomic_path

    payload = {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": {"step": int(step)},
        "step": int(step), "rng": _rng_state(gen), "config": config.to_dict(), "history": history,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint without running code (``weights_only=True``). A truncated or damaged file raises
    :class:`rharm.store.UnreadableFileError` naming it (torch's own message names neither the file nor a remedy)."""
    from rharm import store

    return store.load_tensors(path)


def _resumable_checkpoint(path: str | Path | None) -> dict | None:
    """The checkpoint at ``path`` if there is a readable one. A damaged one (a run killed while the disk filled, a
    copy cut short) is moved aside to ``<name>.damaged`` with one line on stderr and the run starts from scratch:
    a checkpoint only saves time, so losing it loses nothing computed."""
    import sys

    from rharm import store

    if path is None or not Path(path).exists():
        return None
    try:
        return load_checkpoint(path)
    except store.UnreadableFileError as err:
        aside, k = Path(path).with_name(Path(path).name + ".damaged"), 1
        while aside.exists():  # never replace an earlier damaged copy
            aside, k = Path(path).with_name(f"{Path(path).name}.damaged.{k}"), k + 1
        Path(path).rename(aside)
        print(f"rharm: {err}; moved it to {aside} and training starts from the beginning", file=sys.stderr)
        return None


def initial_model(config: TrainConfig) -> models.ContrastiveModel:
    """The model of ``config`` before training, on the CPU: its initial weights are a function of ``config.seed``
    alone (drawn inside :func:`rharm.core.runtime.seeded`), the same in every condition of a seed."""
    with runtime.seeded(config.seed):
        return models.ContrastiveModel(config.method, config.backbone, init=config.init)


def sampling_plan(config: TrainConfig, images: torch.Tensor, labels=None, sample_ids=None,
                  groups=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The input checks and the sampling plan of one training run, shared by :func:`train` and the seed-batched
    engine (:mod:`rharm.vision.engine`): (positions into ``images`` that an epoch draws from, their sample ids, the
    minority mask). Raises ValueError naming the bad input before any work."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be a uint8 tensor (N, 3, H, W); got "
                         f"{getattr(images, 'dtype', type(images))} {tuple(getattr(images, 'shape', ()))}")
    n = images.shape[0]
    if labels is not None and len(labels) != n:
        raise ValueError(f"labels has length {len(labels)} but images has {n} rows")
    if config.batch_size > n:
        raise ValueError(f"TrainConfig.batch_size={config.batch_size} is not valid for {n} training images "
                         f"(drop_last=True would give zero steps); choose a batch_size <= {n}")
    if sample_ids is None:
        ids = torch.arange(n)
    else:
        ids = torch.as_tensor(sample_ids, dtype=torch.int64)
        if ids.shape != (n,) or (n and int(ids.min()) < 0) or torch.unique(ids).numel() != n:
            raise ValueError(f"sample_ids must be {n} distinct non-negative integers, one per image")
    if groups is None:
        if config.rebalance or config.minority_weight != 1.0:
            raise ValueError(f"TrainConfig.rebalance={config.rebalance!r} / minority_weight={config.minority_weight!r} "
                             "need groups= (which images are the minority's)")
        groups = torch.zeros(n, dtype=torch.bool)
    groups = mitigation.check_groups(groups, n)
    if config.rebalance:
        if labels is None:
            raise ValueError("TrainConfig.rebalance=True needs labels= (the other classes' sizes set the minority's rate)")
        positions, ids = mitigation.rebalanced_samples(ids, groups, labels)
    else:
        positions = torch.arange(n)
    return positions, ids, groups


def train(config: TrainConfig, images: torch.Tensor, labels: torch.Tensor | None = None, *,
          checkpoint_path: str | Path | None = None, device: str | torch.device = "cpu", progress: bool = True,
          knn_eval: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
          stop_after_steps: int | None = None, on_epoch_end: Callable[[int, dict], None] | None = None,
          sample_ids: torch.Tensor | None = None, groups: torch.Tensor | None = None,
          init_state: Mapping[str, torch.Tensor] | None = None) -> TrainResult:
    """Train a contrastive model from scratch or, when ``checkpoint_path`` exists, resume it exactly.

    Args:
        config: validated :class:`TrainConfig`.
        images: uint8 (N, 3, 32, 32), the contrastive training set (N >= batch_size); moved to ``device`` once.
        labels: (N,) ints; unused by the loss, kept for the record and validated for length.
        checkpoint_path: resume from it if it exists; write it (atomically, replacing the previous one) every
            ``config.checkpoint_every`` epochs and when stopping early.
        device: "cpu", "cuda", "cuda:k" or a torch.device.
        knn_eval: ``(train_images, train_labels, test_images, test_labels)`` for the k-NN monitor (uint8 images).
        stop_after_steps: stop after this many optimiser steps in total (for interruption tests).
        on_epoch_end: called as ``on_epoch_end(epoch, history)`` after each epoch.
        sample_ids: (N,) distinct non-negative ints naming each image (e.g. its index in the data set); batch
            order is drawn per id, so runs that share images share their order (default: 0..N-1).
        groups: (N,) bool, True for an image of the underrepresented group; needed by ``config.rebalance`` and
            ``config.minority_weight`` (default: no image is in it, and both change nothing).
        init_state: a ``state_dict`` of a :class:`rharm.vision.models.ContrastiveModel` of the same method and backbone,
            loaded in place of the seeded initial weights (a warm start; every key must match). The seed still
            drives batch order and augmentation.

    Returns: :class:`TrainResult` with ``history`` = {"loss": [per step], "lr": [per step], "knn": [{"epoch",
        "accuracy"}], "throughput": [{"epoch", "images_per_s"}], "steps": int, "steps_per_epoch": int,
        "finished": bool} and ``config`` = ``config.to_dict()`` plus "device" and "resolved_precision".

    Raises FloatingPointError when a loss is not finite (checked once per epoch and at a stop, so the step loop
    never waits for the device); no checkpoint is written from such a state.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    config.validate()
    if stop_after_steps is not None and (not isinstance(stop_after_steps, int) or stop_after_steps < 0):
        raise ValueError(f"stop_after_steps={stop_after_steps!r} is not valid; use None or an integer >= 0")
    positions, ids, groups = sampling_plan(config, images, labels, sample_ids, groups)
    device = torch.device(device)
    precision = resolve_precision(config.precision, device)  # raises before any work for fp16 off CUDA
    if config.deterministic:
        check_determinism_environment(device)
    spec = augment_spec(config.resolved_augment)
    from rharm.vision import augment as augment_mod

    steps_per_epoch = len(positions) // config.batch_size
    total_steps = steps_per_epoch * config.epochs
    cuda = device.type == "cuda"

    # process-wide switches (kernels, global generators) are set for the duration of the run and restored after it
    switches = contextlib.ExitStack()
    switches.enter_context(runtime.deterministic_kernels(config.deterministic, cuda=cuda))
    switches.enter_context(runtime.seeded(config.seed))
    try:
        # initialisation is a function of the seed alone: the same seed gives the same initial weights in every
        # condition (common random numbers)
        model = initial_model(config)
        if init_state is not None:
            try:
                model.load_state_dict(dict(init_state), strict=True)
            except RuntimeError as exc:
                raise ValueError(f"init_state does not fit a {config.method}/{config.backbone} model: {exc}") from exc
        model = model.to(device)
        # channels_last on every device: 1.6x faster small_cnn steps on one CPU thread too (benchmarks/channels_last.py)
        memory_format = torch.channels_last
        model = model.to(memory_format=memory_format)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr_at(config, 0, total_steps), momentum=config.momentum,
                                    nesterov=config.resolved_nesterov, weight_decay=config.resolved_weight_decay)
        gen = torch.Generator(device=device).manual_seed(config.seed + 1)  # augmentation draws, on the device
        history: dict[str, Any] = {"loss": [], "lr": [], "knn": [], "throughput": [], "steps": 0,
                                   "steps_per_epoch": steps_per_epoch, "finished": False}
        step = 0
        ck = _resumable_checkpoint(checkpoint_path)
        if ck is not None:
            if ck["config"] != config.to_dict():
                raise ValueError(f"checkpoint {checkpoint_path} was written by a different TrainConfig: "
                                 f"{ck['config']} != {config.to_dict()}")
            model.load_state_dict(ck["model"])
            optimizer.load_state_dict(ck["optimizer"])
            step = int(ck["step"])
            history = ck["history"]
            _set_rng_state(gen, ck["rng"])

        dtype = AUTOCAST_DTYPES[precision]
        scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
        forward = torch.compile(model) if config.compile else model
        images_dev = images.to(device)  # the whole uint8 training set on the device (150 MB for CIFAR-10)
        positions_dev = positions.to(device)
        weight_of = None
        if config.minority_weight != 1.0:
            weight_of = mitigation.anchor_weights(groups, config.minority_weight).to(device)
        masks = None
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total_steps, initial=step, unit="step", desc=f"{config.method}/{config.backbone}")
        model.train()
        epoch_t0, epoch_images = time.perf_counter(), 0
        order_epoch, order = -1, positions_dev
        pending: list[torch.Tensor] = []  # this epoch's losses, still on the device

        def flush() -> None:
            # one host synchronisation per epoch: move the pending losses over and check them
            if not pending:
                return
            values = torch.stack(pending).float().cpu()
            start = len(history["loss"])
            pending.clear()
            bad = (~torch.isfinite(values)).nonzero()
            if len(bad):
                k = int(bad[0])
                raise FloatingPointError(f"loss became {float(values[k])} at step {start + k} "
                                         f"(lr {history['lr'][start + k]:.3g}); lower TrainConfig.lr")
            history["loss"].extend(values.tolist())

        while step < total_steps:
            if stop_after_steps is not None and step >= stop_after_steps:
                break
            epoch, pos = divmod(step, steps_per_epoch)
            if epoch != order_epoch:
                order_epoch, order = epoch, positions_dev[epoch_order(config.seed, epoch, ids).to(device)]
                if config.sdclr_prune > 0:  # SDCLR: the mask is refreshed from the weights once per epoch
                    masks = mitigation.prune_masks(model, config.sdclr_prune)
            batch_pos = order[pos * config.batch_size:(pos + 1) * config.batch_size]
            batch = images_dev[batch_pos]
            v1 = augment_mod.augment_batch(batch, spec, gen)
            v2 = augment_mod.augment_batch(batch, spec, gen)
            if cuda:
                v1, v2 = v1.contiguous(memory_format=memory_format), v2.contiguous(memory_format=memory_format)
            lr = lr_at(config, step, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None):
                loss = method_loss(model, config, v1, v2, forward,
                             weights=None if weight_of is None else weight_of[batch_pos], masks=masks)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            step += 1
            epoch_images += config.batch_size
            pending.append(loss.detach())
            history["lr"].append(lr)
            history["steps"] = step
            if bar is not None:
                bar.update(1)
            end_of_epoch = step % steps_per_epoch == 0
            if end_of_epoch:
                flush()
                done_epoch = step // steps_per_epoch
                dt = time.perf_counter() - epoch_t0
                history["throughput"].append({"epoch": done_epoch, "images_per_s": epoch_images / max(dt, 1e-9)})
                if bar is not None:
                    bar.set_postfix(loss=f"{history['loss'][-1]:.3f}", img_s=f"{epoch_images / max(dt, 1e-9):.0f}")
                epoch_t0, epoch_images = time.perf_counter(), 0
                if knn_eval is not None and config.knn_every and (
                        done_epoch % config.knn_every == 0 or done_epoch == config.epochs):
                    tr_x, tr_y, te_x, te_y = knn_eval
                    tr_h, _ = extract_features(model, tr_x, device=device, augment=config.resolved_augment)
                    te_h, _ = extract_features(model, te_x, device=device, augment=config.resolved_augment)
                    acc = knn_accuracy(tr_h, torch.as_tensor(tr_y), te_h, torch.as_tensor(te_y), k=config.knn_k)
                    history["knn"].append({"epoch": done_epoch, "accuracy": acc})
                    epoch_t0 = time.perf_counter()  # do not charge the monitor to throughput
                if on_epoch_end is not None:
                    on_epoch_end(done_epoch, history)
                periodic = config.checkpoint_every and done_epoch % config.checkpoint_every == 0
                if checkpoint_path is not None and (periodic or step == total_steps):
                    save_checkpoint(checkpoint_path, model, optimizer, step, gen, config, history)
        flush()
        history["finished"] = step >= total_steps
        if checkpoint_path is not None and not history["finished"]:
            save_checkpoint(checkpoint_path, model, optimizer, step, gen, config, history)
        if bar is not None:
            bar.close()
    finally:
        switches.close()
    if cuda:
        model = model.to(memory_format=torch.contiguous_format)
    return TrainResult(model=model, history=history,
                       config={**config.to_dict(), "device": device.type, "resolved_precision": precision})


def measure_throughput(backbone: str, batch_size: int, steps: int = 3, *, method: str = "simclr",
                       device: str | torch.device = "cpu", seed: int = 0, warmup: int = 1, precision: str = "auto",
                       compile: bool = False) -> dict:
    """Time ``steps`` training steps (after ``warmup`` untimed steps) on random uint8 images held on the device.

    The step is :func:`train`'s (same precision, channels_last on CUDA, optional ``torch.compile``).
    Returns {"backbone", "batch_size", "device", "precision", "images_per_s" (training images per second, two views
    each, augmentation included), "augment_images_per_s" (the two views alone), "step_s" (seconds per step),
    "parameters", "flop_per_view" (:func:`rharm.vision.models.training_flops_per_view`), "tflop_s" (achieved)}.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r} is not valid; it must be an integer >= 1")
    config = TrainConfig(method=method, backbone=backbone, batch_size=batch_size, epochs=1, seed=seed,
                         precision=precision, compile=compile)
    device = torch.device(device)
    resolved = resolve_precision(precision, device)
    dtype = AUTOCAST_DTYPES[resolved]
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch_size, 3, 32, 32), dtype=torch.uint8, generator=g).to(device)
    from rharm.vision import augment as augment_mod

    spec = augment_spec(config.resolved_augment)
    with runtime.seeded(seed):
        model = models.ContrastiveModel(method, backbone).to(device)
    fmt = torch.channels_last
    model = model.to(memory_format=fmt)
    forward = torch.compile(model) if compile else model
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    gen = torch.Generator(device=device).manual_seed(seed)

    def step():
        v1, v2 = augment_mod.augment_batch(images, spec, gen), augment_mod.augment_batch(images, spec, gen)
        v1, v2 = v1.contiguous(memory_format=fmt), v2.contiguous(memory_format=fmt)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None):
            loss = method_loss(model, config, v1, v2, forward)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    step_s = (time.perf_counter() - t0) / steps
    t0 = time.perf_counter()
    for _ in range(steps):
        augment_mod.augment_batch(images, spec, gen), augment_mod.augment_batch(images, spec, gen)
    sync()
    aug_s = (time.perf_counter() - t0) / steps
    flop = models.training_flops_per_view(backbone, method)
    return {"backbone": backbone, "batch_size": batch_size, "device": device.type, "precision": resolved,
            "images_per_s": batch_size / step_s, "augment_images_per_s": batch_size / aug_s, "step_s": step_s,
            "parameters": models.count_parameters(model.backbone), "flop_per_view": flop,
            "tflop_s": 2 * batch_size * flop / step_s / 1e12}
