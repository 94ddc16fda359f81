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

:func:`train` is a short loop of steps (plan, build or resume, place on the device, one optimiser step, end of
epoch, finish). Each method is a registered :class:`Method` (:data:`METHODS`: :class:`SimCLR`, :class:`SimSiam`,
:class:`SDCLR`) carrying its loss and its own state (SDCLR's pruning masks, refreshed each epoch); a run's method is
:func:`method_for` its config. Steps shared with the seed-batched engine (:mod:`rharm.vision.engine`) are public.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

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


# ----------------------------------------------------------------------------------------------------------------
# the methods: each one registered by name with its loss and the state it keeps across steps
# ----------------------------------------------------------------------------------------------------------------


def joint_projections(model: models.ContrastiveModel, v1: torch.Tensor, v2: torch.Tensor,
                      forward: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The projections of both views from one forward over the 2N images, so BatchNorm sees 2N samples, as in the
    official SimCLR code. ``forward`` is the model or its torch.compile wrapper (same parameters)."""
    n = v1.shape[0]
    # `is None`, not `or`: bool() of a torch.compile'd module raises TypeError (it has no __len__)
    _, z = (model if forward is None else forward)(torch.cat([v1, v2], dim=0))
    return z[:n], z[n:]


def pruned_projections(model: models.ContrastiveModel, v1: torch.Tensor, v2: torch.Tensor,
                       masks: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """SDCLR's projections: the first view through the dense model, the second through its pruned branch
    (:func:`rharm.vision.mitigation.pruned_forward` with ``masks``)."""
    _, z1 = model(v1)
    _, z2 = mitigation.pruned_forward(model, v2, masks)
    return z1, z2


#: The registered methods by name (:func:`register`); :func:`method_for` picks a run's one from its TrainConfig.
METHODS: dict[str, type[Method]] = {}


def register(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator: register a :class:`Method` subclass in :data:`METHODS` under ``name``."""

    def add(cls: type[Method]) -> type[Method]:
        cls.name = name
        METHODS[name] = cls
        return cls

    return add


class Method:
    """A contrastive method as the training loop sees it: one instance per trained model (it may keep state, e.g.
    SDCLR's pruning masks), made by :func:`method_for`.

    The loop calls :meth:`start_epoch` once at the start of each epoch (and of a resumed one), after the epoch's batch
    order is drawn, then :meth:`views_loss` once per step (under autocast): :meth:`projections` of the two views,
    then :meth:`loss` of the projections. ``weights``: (N,) anchor weights of re-weighting (SimCLR's NT-Xent only).
    """

    name: ClassVar[str] = ""

    def __init__(self, config: TrainConfig):
        self.config = config

    def start_epoch(self, model: models.ContrastiveModel) -> None:
        """Refresh per-epoch state from the model's weights (nothing by default)."""

    def projections(self, model: models.ContrastiveModel, v1: torch.Tensor, v2: torch.Tensor,
                    forward: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The two views' projections; by default one forward over both (:func:`joint_projections`)."""
        return joint_projections(model, v1, v2, forward)

    def loss(self, model: models.ContrastiveModel, z1: torch.Tensor, z2: torch.Tensor,
             weights: torch.Tensor | None = None) -> torch.Tensor:
        """The method's loss of the two views' projections (each subclass defines it)."""
        raise NotImplementedError

    def views_loss(self, model: models.ContrastiveModel, v1: torch.Tensor, v2: torch.Tensor,
                   forward: Callable | None = None, weights: torch.Tensor | None = None) -> torch.Tensor:
        """The loss of one batch's two augmented views."""
        z1, z2 = self.projections(model, v1, v2, forward)
        return self.loss(model, z1, z2, weights)


@register("simclr")
class SimCLR(Method):
    """NT-Xent of the two views' projections (:func:`rharm.vision.losses.nt_xent`; temperature, clamp and the
    anchor weights of re-weighting)."""

    def loss(self, model, z1, z2, weights=None):
        return losses.nt_xent(z1, z2, self.config.temperature, clamp=self.config.clamp, weights=weights)


@register("simsiam")
class SimSiam(Method):
    """The symmetric negative cosine of each view's prediction (the model's predictor head) against the other
    view's projection (:func:`rharm.vision.losses.simsiam_loss`)."""

    def loss(self, model, z1, z2, weights=None):
        return losses.simsiam_loss(model.predict(z1), model.predict(z2), z1, z2)


@register("sdclr")
class SDCLR(SimCLR):
    """SimCLR whose second view goes through a pruned copy of the backbone (``TrainConfig.sdclr_prune`` > 0); the
    pruning masks are refreshed from the weights at the start of every epoch (:mod:`rharm.vision.mitigation`)."""

    def __init__(self, config: TrainConfig, masks: dict | None = None):
        super().__init__(config)
        self.masks = masks

    def start_epoch(self, model):
        self.masks = mitigation.prune_masks(model, self.config.sdclr_prune)

    def projections(self, model, v1, v2, forward=None):
        return pruned_projections(model, v1, v2, self.masks)


def method_name(config: TrainConfig) -> str:
    """The registered method of ``config``: "sdclr" when it prunes (SimCLR with ``sdclr_prune`` > 0), else
    ``config.method``."""
    return "sdclr" if config.sdclr_prune > 0 else config.method


def method_for(config: TrainConfig) -> Method:
    """A new :class:`Method` for one model trained under ``config`` (:data:`METHODS`, :func:`method_name`)."""
    return METHODS[method_name(config)](config)


def method_loss(model: models.ContrastiveModel, config: TrainConfig, v1: torch.Tensor, v2: torch.Tensor,
                forward: Callable | None = None, weights: torch.Tensor | None = None,
                masks: dict | None = None) -> torch.Tensor:
    """The loss of ``config.method`` on one batch's two views: one forward over both views, or, with SDCLR's pruning
    ``masks``, the second view through the pruned branch (:func:`pruned_projections`). ``forward``: the model or its
    torch.compile wrapper; ``weights``: (N,) NT-Xent anchor weights (re-weighting)."""
    if masks is not None:
        z1, z2 = pruned_projections(model, v1, v2, masks)
    else:
        z1, z2 = joint_projections(model, v1, v2, forward)
    return METHODS[config.method](config).loss(model, z1, z2, weights)


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


# ----------------------------------------------------------------------------------------------------------------
# the training loop: steps shared with the seed-batched engine (rharm.vision.engine), then train's own
# ----------------------------------------------------------------------------------------------------------------


def check_stop_after_steps(stop_after_steps: int | None) -> None:
    """Raise ValueError unless ``stop_after_steps`` is None or an integer >= 0."""
    if stop_after_steps is not None and (not isinstance(stop_after_steps, int) or stop_after_steps < 0):
        raise ValueError(f"stop_after_steps={stop_after_steps!r} is not valid; use None or an integer >= 0")


def process_switches(config: TrainConfig, cuda: bool) -> contextlib.ExitStack:
    """The process-wide switches of a run (deterministic kernels, the global generators seeded from ``config.seed``),
    entered now; closing the returned stack restores them."""
    switches = contextlib.ExitStack()
    switches.enter_context(runtime.deterministic_kernels(config.deterministic, cuda=cuda))
    switches.enter_context(runtime.seeded(config.seed))
    return switches


def load_init_state(model: models.ContrastiveModel, init_state: Mapping[str, torch.Tensor],
                    config: TrainConfig) -> None:
    """Load a warm start into ``model`` (every key must match); ValueError naming the model when it does not fit."""
    try:
        model.load_state_dict(dict(init_state), strict=True)
    except RuntimeError as exc:
        raise ValueError(f"init_state does not fit a {config.method}/{config.backbone} model: {exc}") from exc


def new_history(steps_per_epoch: int) -> dict[str, Any]:
    """The empty history of a run (see :func:`train`'s Returns)."""
    return {"loss": [], "lr": [], "knn": [], "throughput": [], "steps": 0, "steps_per_epoch": steps_per_epoch,
            "finished": False}


def progress_bar(total: int, initial: int, desc: str):
    """A tqdm bar counting optimiser steps."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", desc=desc)


def epoch_positions(seed: int, epoch: int, ids: torch.Tensor, positions: torch.Tensor,
                    device: torch.device) -> torch.Tensor:
    """``positions`` (on ``device``) in the batch order of ``epoch`` (:func:`epoch_order` of the sample ``ids``)."""
    return positions[epoch_order(seed, epoch, ids).to(device)]


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def record_losses(history: dict, values: torch.Tensor, who: str = "") -> None:
    """Append one model's losses (on the CPU) to its history; FloatingPointError at the first that is not finite
    (``who`` names the model in the message, e.g. " of seed 3")."""
    start = len(history["loss"])
    bad = (~torch.isfinite(values)).nonzero()
    if len(bad):
        k = int(bad[0])
        raise FloatingPointError(f"loss{who} became {float(values[k])} at step {start + k} "
                                 f"(lr {history['lr'][start + k]:.3g}); lower TrainConfig.lr")
    history["loss"].extend(values.tolist())


def checkpoint_due(config: TrainConfig, done_epoch: int, step: int, total_steps: int) -> bool:
    """Whether a checkpoint is written after epoch ``done_epoch`` (every ``checkpoint_every`` epochs, and at the end)."""
    periodic = config.checkpoint_every and done_epoch % config.checkpoint_every == 0
    return bool(periodic or step == total_steps)


@dataclass
class _Run:
    """One call of :func:`train` while it trains: its plan (set by :func:`_plan_run`) and its state (set by
    :func:`_build_run` and :func:`_place_run`, advanced by :func:`_train_step`)."""

    config: TrainConfig
    device: torch.device
    precision: str
    spec: Any
    positions: torch.Tensor
    ids: torch.Tensor
    groups: torch.Tensor
    steps_per_epoch: int
    total_steps: int
    model: Any = None
    optimizer: Any = None
    gen: Any = None
    history: dict = field(default_factory=dict)
    step: int = 0
    method: Any = None
    forward: Any = None
    scaler: Any = None
    dtype: Any = None
    images: Any = None
    weight_of: Any = None
    bar: Any = None
    epoch_t0: float = 0.0
    epoch_images: int = 0
    order_epoch: int = -1
    order: Any = None
    pending: list = field(default_factory=list)  # this epoch's losses, still on the device

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


def _plan_run(config: TrainConfig, images, labels, sample_ids, groups, device, stop_after_steps) -> _Run:
    """Every input check and the sampling plan, before any work."""
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    config.validate()
    check_stop_after_steps(stop_after_steps)
    positions, ids, groups = sampling_plan(config, images, labels, sample_ids, groups)
    device = torch.device(device)
    precision = resolve_precision(config.precision, device)  # raises before any work for fp16 off CUDA
    if config.deterministic:
        check_determinism_environment(device)
    spec = augment_spec(config.resolved_augment)
    steps_per_epoch = len(positions) // config.batch_size
    return _Run(config=config, device=device, precision=precision, spec=spec, positions=positions, ids=ids,
                groups=groups, steps_per_epoch=steps_per_epoch, total_steps=steps_per_epoch * config.epochs)


def _build_run(run: _Run, init_state, checkpoint_path) -> None:
    """The model, optimiser, augmentation generator and history: from the seed, or from the checkpoint."""
    config = run.config
    # initialisation is a function of the seed alone: the same seed gives the same initial weights in every
    # condition (common random numbers)
    model = initial_model(config)
    if init_state is not None:
        load_init_state(model, init_state, config)
    # channels_last on every device: 1.6x faster small_cnn steps on one CPU thread too (benchmarks/channels_last.py)
    run.model = model.to(run.device).to(memory_format=torch.channels_last)
    run.optimizer = torch.optim.SGD(run.model.parameters(), lr=lr_at(config, 0, run.total_steps),
                                    momentum=config.momentum, nesterov=config.resolved_nesterov,
                                    weight_decay=config.resolved_weight_decay)
    run.gen = torch.Generator(device=run.device).manual_seed(config.seed + 1)  # augmentation draws, on the device
    run.history = new_history(run.steps_per_epoch)
    ck = _resumable_checkpoint(checkpoint_path)
    if ck is not None:
        if ck["config"] != config.to_dict():
            raise ValueError(f"checkpoint {checkpoint_path} was written by a different TrainConfig: "
                             f"{ck['config']} != {config.to_dict()}")
        run.model.load_state_dict(ck["model"])
        run.optimizer.load_state_dict(ck["optimizer"])
        run.step = int(ck["step"])
        run.history = ck["history"]
        _set_rng_state(run.gen, ck["rng"])


def _place_run(run: _Run, images: torch.Tensor, progress: bool) -> None:
    """Precision, the compiled forward, the data on the device, the method and the progress bar."""
    config = run.config
    run.dtype = AUTOCAST_DTYPES[run.precision]
    run.scaler = torch.amp.GradScaler("cuda") if run.dtype == torch.float16 else None
    run.forward = torch.compile(run.model) if config.compile else run.model
    run.images = images.to(run.device)  # the whole uint8 training set on the device (150 MB for CIFAR-10)
    run.positions = run.positions.to(run.device)
    if config.minority_weight != 1.0:
        run.weight_of = mitigation.anchor_weights(run.groups, config.minority_weight).to(run.device)
    run.method = method_for(config)
    if progress:
        run.bar = progress_bar(run.total_steps, run.step, f"{config.method}/{config.backbone}")
    run.model.train()
    run.epoch_t0, run.epoch_images = time.perf_counter(), 0
    run.order_epoch, run.order = -1, run.positions


def _train_step(run: _Run) -> None:
    """One optimiser step: the batch (a new epoch draws its order first), its two views, the method's loss."""
    from rharm.vision import augment as augment_mod

    config = run.config
    epoch, pos = divmod(run.step, run.steps_per_epoch)
    if epoch != run.order_epoch:
        run.order_epoch, run.order = epoch, epoch_positions(config.seed, epoch, run.ids, run.positions, run.device)
        run.method.start_epoch(run.model)  # SDCLR: the mask is refreshed from the weights once per epoch
    batch_pos = run.order[pos * config.batch_size:(pos + 1) * config.batch_size]
    batch = run.images[batch_pos]
    v1 = augment_mod.augment_batch(batch, run.spec, run.gen)
    v2 = augment_mod.augment_batch(batch, run.spec, run.gen)
    if run.cuda:
        v1, v2 = v1.contiguous(memory_format=torch.channels_last), v2.contiguous(memory_format=torch.channels_last)
    lr = lr_at(config, run.step, run.total_steps)
    set_lr(run.optimizer, lr)
    run.optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type=run.device.type, dtype=run.dtype, enabled=run.dtype is not None):
        loss = run.method.views_loss(run.model, v1, v2, run.forward,
                                     weights=None if run.weight_of is None else run.weight_of[batch_pos])
    if run.scaler is not None:
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        loss.backward()
        run.optimizer.step()
    run.step += 1
    run.epoch_images += config.batch_size
    run.pending.append(loss.detach())
    run.history["lr"].append(lr)
    run.history["steps"] = run.step
    if run.bar is not None:
        run.bar.update(1)


def _flush(run: _Run) -> None:
    """One host synchronisation per epoch: move the pending losses over and check them."""
    if not run.pending:
        return
    values = torch.stack(run.pending).float().cpu()
    run.pending.clear()
    record_losses(run.history, values)


def _knn_monitor(run: _Run, knn_eval, done_epoch: int) -> None:
    """The k-NN monitor's accuracy after ``done_epoch``, when it is due (every ``knn_every`` epochs and the last)."""
    config = run.config
    if knn_eval is not None and config.knn_every and (
            done_epoch % config.knn_every == 0 or done_epoch == config.epochs):
        tr_x, tr_y, te_x, te_y = knn_eval
        tr_h, _ = extract_features(run.model, tr_x, device=run.device, augment=config.resolved_augment)
        te_h, _ = extract_features(run.model, te_x, device=run.device, augment=config.resolved_augment)
        acc = knn_accuracy(tr_h, torch.as_tensor(tr_y), te_h, torch.as_tensor(te_y), k=config.knn_k)
        run.history["knn"].append({"epoch": done_epoch, "accuracy": acc})
        run.epoch_t0 = time.perf_counter()  # do not charge the monitor to throughput


def _end_epoch(run: _Run, knn_eval, on_epoch_end, checkpoint_path) -> None:
    """After an epoch's last step: its losses, throughput, the monitor, the callback and the checkpoint."""
    _flush(run)
    history = run.history
    done_epoch = run.step // run.steps_per_epoch
    dt = time.perf_counter() - run.epoch_t0
    history["throughput"].append({"epoch": done_epoch, "images_per_s": run.epoch_images / max(dt, 1e-9)})
    if run.bar is not None:
        run.bar.set_postfix(loss=f"{history['loss'][-1]:.3f}", img_s=f"{run.epoch_images / max(dt, 1e-9):.0f}")
    run.epoch_t0, run.epoch_images = time.perf_counter(), 0
    _knn_monitor(run, knn_eval, done_epoch)
    if on_epoch_end is not None:
        on_epoch_end(done_epoch, history)
    if checkpoint_path is not None and checkpoint_due(run.config, done_epoch, run.step, run.total_steps):
        save_checkpoint(checkpoint_path, run.model, run.optimizer, run.step, run.gen, run.config, history)


def _finish(run: _Run, checkpoint_path) -> None:
    """After the loop: the last losses, and a checkpoint when it stopped early."""
    _flush(run)
    run.history["finished"] = run.step >= run.total_steps
    if checkpoint_path is not None and not run.history["finished"]:
        save_checkpoint(checkpoint_path, run.model, run.optimizer, run.step, run.gen, run.config, run.history)
    if run.bar is not None:
        run.bar.close()


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
    run = _plan_run(config, images, labels, sample_ids, groups, device, stop_after_steps)
    # process-wide switches (kernels, global generators) are set for the duration of the run and restored after it
    switches = process_switches(config, run.cuda)
    try:
        _build_run(run, init_state, checkpoint_path)
        _place_run(run, images, progress)
        while run.step < run.total_steps:
            if stop_after_steps is not None and run.step >= stop_after_steps:
                break
            _train_step(run)
            if run.step % run.steps_per_epoch == 0:
                _end_epoch(run, knn_eval, on_epoch_end, checkpoint_path)
        _finish(run, checkpoint_path)
    finally:
        switches.close()
    model = run.model.to(memory_format=torch.contiguous_format) if run.cuda else run.model
    return TrainResult(model=model, history=run.history,
                       config={**config.to_dict(), "device": run.device.type, "resolved_precision": run.precision})


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
