"""Seed-batched training: the S seeds of one grid point trained together, in one process and one step loop.

:func:`train_batched` trains S contrastive models whose :class:`rharm.vision.train.TrainConfig` differ only in ``seed``
(same method, backbone, schedule and batch size; the training sets may differ, e.g. the minority images kept for
each seed, but must give the same number of steps per epoch). Each model keeps everything
:func:`rharm.vision.train.train` would give it for its seed: its initial weights
(:func:`rharm.vision.train.initial_model`), its batch order (:func:`rharm.vision.train.epoch_order`), its augmentation
stream (a generator seeded ``seed + 1``, drawn for view 1 then view 2 of each batch, as ``train`` draws it), its own
BatchNorm statistics (each model sees only its own batch), its own method state (SDCLR's masks) and its own optimiser
state. A batched run therefore equals S single runs to floating-point rounding
(``tests/test_engine.py`` checks it parameter by parameter and buffer by buffer).

What is shared across the S models in each step, in two strategies:

* ``"loop"`` (the CPU default): the augmentation of all S x 2 views is drawn per model from its own generator and
  applied in one batched call (:func:`rharm.vision.augment.apply_params` on S x 2B images); then each model runs its own
  forward and backward (per-model convolution kernels), and one SGD step updates the parameters of all S models.
  Measured on one CPU core (``benchmarks/engine.py``): a small_cnn step of today's engine is already made of large
  kernels (~2,200 operator calls per step, ~26 us each on average on a quiet core), not of per-call overhead: its
  convolutions (~37 % of the step) run at ~70 % of the core's fp32 matmul peak, and BatchNorm, ReLU and pooling
  (~35 %) are passes over activations bound by memory bandwidth, whose cost grows with S like the work itself. So
  batching can only save the per-call overhead (a few per cent: measured 0.96-1.08x runs per CPU-minute at S = 3, 5,
  10). Grouped convolutions are slower on the CPU than the S separate ones (strategy "stacked", S = 3: 0.88-0.95x),
  so here the convolutions stay per model.
* ``"stacked"`` (the CUDA default): one computation for all S models. The backbones become one network S times as
  wide, every convolution a grouped convolution (``groups = S x groups``), every BatchNorm one layer of S x C
  channels (per-channel statistics, so never mixed between models), the projection heads batched matrix products;
  NT-Xent of the S models in one batched call. Large kernels for a GPU that one small model leaves idle.

``engine`` is a :class:`rharm.vision.train.TrainConfig` field (:data:`ENGINES`); the grid trainer
(:func:`rharm.runs.images.prefetch`) groups the seeds of a grid point into one batched job when it is "batched".
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rharm.core import schema
from rharm.vision import augment, mitigation, models, train

ENGINES = schema.SPECS["engine"].choices
STRATEGIES = ("auto", "loop", "stacked")
#: TrainConfig fields that may differ between the models of one batched job (everything else must be equal).
PER_MODEL = ("seed",)

#: Measured on the CPU with ``benchmarks/engine.py`` (2026-12-05, Intel Xeon with AMX, one torch thread per
#: process, a shared 2-core machine, load average ~3, median of 3 paired rounds of 5 steps): training images per
#: second (two views each) of today's engine on one core, at the book's settings (Fashion-MNIST 955, CIFAR-10 912).
CPU_IMAGES_PER_S = {"small_cnn": 930.0}
#: Runs per CPU-minute of the batched engine (strategy "loop", S = 5) over today's, same measurement (Fashion-MNIST
#: 1.03, CIFAR-10 1.03; S = 3: 1.05 / 1.04; S = 10: 1.00 / 0.96; strategy "stacked", S = 3: 0.94 / 0.93).
CPU_BATCHED_SPEEDUP = {"small_cnn": 1.03}


def check_group(configs: Sequence[train.TrainConfig]) -> None:
    """Raise ValueError unless ``configs`` can train together: at least one, distinct seeds, equal otherwise."""
    if not configs:
        raise ValueError("train_batched needs at least one TrainConfig")
    for c in configs:
        if not isinstance(c, train.TrainConfig):
            raise TypeError(f"configs must be TrainConfig objects, got {type(c).__name__}")
        c.validate()
    seeds = [c.seed for c in configs]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"the models of a batched job need distinct seeds; got {seeds}")
    ref = {k: v for k, v in configs[0].to_dict().items() if k not in PER_MODEL}
    for c in configs[1:]:
        d = {k: v for k, v in c.to_dict().items() if k not in PER_MODEL}
        if d != ref:
            diff = sorted(k for k in ref if ref[k] != d[k])
            raise ValueError(f"the models of a batched job may differ only in {list(PER_MODEL)}; these differ: {diff}")


def resolve_strategy(strategy: str, device: torch.device, config: train.TrainConfig) -> str:
    """"auto" -> "stacked" on CUDA for SimCLR without SDCLR, "loop" otherwise (see the module docstring)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r} is not valid; choose one of {list(STRATEGIES)}")
    stackable = config.method == "simclr" and config.sdclr_prune == 0.0
    if strategy == "auto":
        return "stacked" if device.type == "cuda" and stackable else "loop"
    if strategy == "stacked" and not stackable:
        raise ValueError(f"strategy='stacked' supports method='simclr' without SDCLR; got method={config.method!r}, "
                         f"sdclr_prune={config.sdclr_prune!r}; use strategy='loop'")
    return strategy


# ----------------------------------------------------------------------------------------------------------------
# the stacked model: S backbones as one grouped network, S heads as batched matrix products
# ----------------------------------------------------------------------------------------------------------------


def _stack_backbone(backbones: Sequence[nn.Module]) -> nn.Module:
    """One module computing S backbones of identical structure on channel-stacked input (N, S x C, H, W) -> (N, S x d).

    Conv2d -> grouped Conv2d (weights concatenated model-major along the output channels), BatchNorm2d -> one of
    S x C channels; every other layer of these backbones (ReLU, pooling, residual additions, flatten) acts per
    channel and is kept as it is.
    """
    s = len(backbones)
    wide = copy.deepcopy(backbones[0])
    for name, mod in list(wide.named_modules()):
        parts = [b.get_submodule(name) for b in backbones]
        if isinstance(mod, nn.Conv2d):
            new = nn.Conv2d(mod.in_channels * s, mod.out_channels * s, mod.kernel_size, mod.stride, mod.padding,
                            mod.dilation, groups=mod.groups * s, bias=mod.bias is not None,
                            padding_mode=mod.padding_mode)
            with torch.no_grad():
                new.weight.copy_(torch.cat([p.weight for p in parts]))
                if mod.bias is not None:
                    new.bias.copy_(torch.cat([p.bias for p in parts]))
        elif isinstance(mod, nn.BatchNorm2d):
            new = nn.BatchNorm2d(mod.num_features * s, mod.eps, mod.momentum, mod.affine, mod.track_running_stats)
            with torch.no_grad():
                if mod.affine:
                    new.weight.copy_(torch.cat([p.weight for p in parts]))
                    new.bias.copy_(torch.cat([p.bias for p in parts]))
                new.running_mean.copy_(torch.cat([p.running_mean for p in parts]))
                new.running_var.copy_(torch.cat([p.running_var for p in parts]))
                new.num_batches_tracked.copy_(parts[0].num_batches_tracked)
        elif isinstance(mod, (nn.Linear, nn.BatchNorm1d, nn.LayerNorm, nn.GroupNorm)):
            raise ValueError(f"strategy='stacked' cannot stack layer {name!r} ({type(mod).__name__}) of the backbone")
        else:
            continue
        parent, _, leaf = name.rpartition(".")
        setattr(wide.get_submodule(parent) if parent else wide, leaf, new)
    return wide


class StackedModel(nn.Module):
    """S SimCLR :class:`rharm.vision.models.ContrastiveModel` s of one structure as one module (strategy "stacked").

    ``forward(x)`` takes the S models' inputs channel-stacked, (N, S x 3, H, W) (model s reads channels 3s..3s+2),
    and returns ``(h, z)`` with h (S, N, d) and z (S, N, proj_dim). :meth:`unstack` writes the parameters and
    BatchNorm buffers back into S ContrastiveModels.
    """

    def __init__(self, members: Sequence[models.ContrastiveModel]):
        super().__init__()
        if any(m.method != "simclr" for m in members):
            raise ValueError("StackedModel stacks SimCLR models only")
        self.s = len(members)
        self.backbone = _stack_backbone([m.backbone for m in members])
        self.out_dim = members[0].backbone.out_dim
        lin = [[m.projector.net[0] for m in members], [m.projector.net[2] for m in members]]
        # head weights (S, out, in) and biases (S, 1, out): one batched matrix product per layer
        self.w1 = nn.Parameter(torch.stack([m.weight.detach() for m in lin[0]]).clone())
        self.b1 = nn.Parameter(torch.stack([m.bias.detach() for m in lin[0]]).unsqueeze(1).clone())
        self.w2 = nn.Parameter(torch.stack([m.weight.detach() for m in lin[1]]).clone())
        self.b2 = nn.Parameter(torch.stack([m.bias.detach() for m in lin[1]]).unsqueeze(1).clone())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.backbone(x)  # (N, S x d)
        n = h.shape[0]
        h = h.reshape(n, self.s, self.out_dim).transpose(0, 1)  # (S, N, d)
        a = torch.relu(torch.baddbmm(self.b1, h, self.w1.transpose(1, 2)))
        z = torch.baddbmm(self.b2, a, self.w2.transpose(1, 2))
        return h, z

    @torch.no_grad()
    def unstack(self, members: Sequence[models.ContrastiveModel]) -> None:
        """Copy model s's slice of every parameter and buffer into ``members[s]`` (in place)."""
        for name, mod in self.backbone.named_modules():
            if isinstance(mod, (nn.Conv2d, nn.BatchNorm2d)):
                for s, m in enumerate(members):
                    dst = m.backbone.get_submodule(name)
                    for key, t in list(dst.named_parameters(recurse=False)) + list(dst.named_buffers(recurse=False)):
                        src = getattr(mod, key)
                        if key == "num_batches_tracked":
                            t.copy_(src)
                        else:
                            k = t.shape[0]
                            t.copy_(src[s * k:(s + 1) * k])
        for s, m in enumerate(members):
            m.projector.net[0].weight.copy_(self.w1[s])
            m.projector.net[0].bias.copy_(self.b1[s, 0])
            m.projector.net[2].weight.copy_(self.w2[s])
            m.projector.net[2].bias.copy_(self.b2[s, 0])


def nt_xent_stacked(z: torch.Tensor, temperature: float, clamp: bool = False,
                    weights: torch.Tensor | None = None) -> torch.Tensor:
    """NT-Xent of S models at once: z (S, 2N, d), rows 0..N-1 the first views, N..2N-1 the second; weights (S, N)
    or None. Returns the S losses (S,), each what :func:`rharm.vision.losses.nt_xent` gives for that model."""
    s, n2, _ = z.shape
    n = n2 // 2
    u = F.normalize(z.float(), dim=2)
    sim = torch.bmm(u, u.transpose(1, 2))
    if clamp:
        sim = sim.clamp(min=1e-7)
    logits = (sim / temperature).masked_fill(torch.eye(n2, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, n2), torch.arange(0, n)]).to(z.device).repeat(s)
    ce = F.cross_entropy(logits.reshape(s * n2, n2), targets, reduction="none").view(s, n2)
    if weights is None:
        return ce.mean(dim=1)
    w2 = torch.cat([weights, weights], dim=1).float()
    return (ce * w2).sum(dim=1) / w2.sum(dim=1)


# ----------------------------------------------------------------------------------------------------------------
# the training loop
# ----------------------------------------------------------------------------------------------------------------


def _per_model(value, s: int, name: str) -> list:
    if value is None:
        return [None] * s
    value = list(value)
    if len(value) != s:
        raise ValueError(f"{name} has {len(value)} entries for {s} models; give one per model (or None)")
    return value


def _augment_all(batches: Sequence[torch.Tensor], spec, gens: Sequence[torch.Generator]) -> torch.Tensor:
    """Two views of every model's batch, each model's parameters drawn from its own generator exactly as
    :func:`rharm.vision.train.train` draws them (view 1, then view 2), applied in one batched call. (S, 2B, 3, H, W)."""
    params = []
    for batch, gen in zip(batches, gens):
        for _ in range(2):
            params.append(augment.sample_params(batch.shape[0], spec, gen, batch.device,
                                                image_size=batch.shape[-2:]))
    joined = {k: torch.cat([p[k] for p in params]) for k in params[0]}
    stacked = torch.cat([b for b in batches for _ in range(2)])
    views = augment.apply_params(stacked, joined, spec)
    return views.view(len(batches), 2 * batches[0].shape[0], *views.shape[1:])


def save_checkpoint(path, members, optimizer, step: int, gens, configs, histories) -> None:
    """One atomic checkpoint of a batched job (loadable with ``torch.load(path, weights_only=True)``)."""
    from rharm.store import atomic_path

    payload = {"models": [m.state_dict() for m in members], "optimizer": optimizer.state_dict(), "step": int(step),
               "rng": [g.get_state() for g in gens], "configs": [c.to_dict() for c in configs],
               "histories": histories}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


@dataclass
class _Job:
    """One call of :func:`train_batched` while it trains: its plan (:func:`_plan_job`) and the S models' state
    (:func:`_build_job`, :func:`_place_job`), advanced by :func:`_job_step`."""

    configs: list
    images: list
    init_states: list
    plans: list
    device: torch.device
    precision: str
    strategy: str
    spec: Any
    steps_per_epoch: int
    total_steps: int
    members: list = field(default_factory=list)
    gens: list = field(default_factory=list)
    histories: list = field(default_factory=list)
    stacked: StackedModel | None = None
    optimizer: Any = None
    step: int = 0
    images_dev: list = field(default_factory=list)
    positions_dev: list = field(default_factory=list)
    weight_of: list = field(default_factory=list)
    forwards: list = field(default_factory=list)
    fwd_stacked: Any = None
    methods: list = field(default_factory=list)
    orders: list = field(default_factory=list)
    order_epoch: int = -1
    pending: list = field(default_factory=list)  # (S,) losses per step, still on the device
    bar: Any = None
    epoch_t0: float = 0.0
    epoch_images: int = 0

    @property
    def cfg0(self) -> train.TrainConfig:
        return self.configs[0]

    @property
    def s_count(self) -> int:
        return len(self.configs)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def dtype(self):
        return train.AUTOCAST_DTYPES[self.precision]


def _plan_job(configs, images, labels, sample_ids, groups, init_states, device, stop_after_steps,
              strategy: str) -> _Job:
    """Every input check and the S sampling plans, before any work."""
    configs = list(configs)
    check_group(configs)
    s_count = len(configs)
    cfg0 = configs[0]
    images = _per_model(images, s_count, "images")
    labels = _per_model(labels, s_count, "labels")
    sample_ids = _per_model(sample_ids, s_count, "sample_ids")
    groups = _per_model(groups, s_count, "groups")
    init_states = _per_model(init_states, s_count, "init_states")
    train.check_stop_after_steps(stop_after_steps)
    plans = [train.sampling_plan(c, x, y, i, g) for c, x, y, i, g in zip(configs, images, labels, sample_ids, groups)]
    spe = {len(p[0]) // cfg0.batch_size for p in plans}
    if len(spe) != 1:
        raise ValueError(f"the models of a batched job need the same number of steps per epoch; got {sorted(spe)} "
                         "(training sets of different sizes): train them with engine='single'")
    steps_per_epoch = spe.pop()
    device = torch.device(device)
    precision = train.resolve_precision(cfg0.precision, device)
    if precision == "fp16":
        raise ValueError("precision fp16 is not valid with engine='batched' (one loss scaler for all models); "
                         "use bf16 or engine='single'")
    if cfg0.deterministic:
        train.check_determinism_environment(device)
    strategy = resolve_strategy(strategy, device, cfg0)
    spec = train.augment_spec(cfg0.resolved_augment)
    return _Job(configs=configs, images=images, init_states=init_states, plans=plans, device=device,
                precision=precision, strategy=strategy, spec=spec, steps_per_epoch=steps_per_epoch,
                total_steps=steps_per_epoch * cfg0.epochs)


def _build_job(job: _Job, checkpoint_path) -> None:
    """The S models (each from its own seed, as :func:`rharm.vision.train.train` makes it), their generators and
    histories, the stacked model, one optimiser over all; then the checkpoint's state when there is one."""
    fmt, device, cfg0 = torch.channels_last, job.device, job.cfg0
    for c, st in zip(job.configs, job.init_states):
        m = train.initial_model(c)  # each model's initial weights: a function of its own seed, as in train()
        if st is not None:
            train.load_init_state(m, st, c)
        job.members.append(m.to(device).to(memory_format=fmt))
    job.gens = [torch.Generator(device=device).manual_seed(c.seed + 1) for c in job.configs]
    job.histories = [train.new_history(job.steps_per_epoch) for _ in job.configs]
    if job.strategy == "stacked":
        job.stacked = StackedModel(job.members).to(device).to(memory_format=fmt)
    stacked = job.stacked
    params = list(stacked.parameters()) if stacked is not None else [p for m in job.members for p in m.parameters()]
    job.optimizer = torch.optim.SGD(params, lr=train.lr_at(cfg0, 0, job.total_steps), momentum=cfg0.momentum,
                                    nesterov=cfg0.resolved_nesterov, weight_decay=cfg0.resolved_weight_decay,
                                    foreach=True)
    if checkpoint_path is not None and Path(checkpoint_path).exists():
        ck = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        if ck["configs"] != [c.to_dict() for c in job.configs]:
            raise ValueError(f"checkpoint {checkpoint_path} was written by a different batched job")
        for m, st in zip(job.members, ck["models"]):
            m.load_state_dict(st)
        if stacked is not None:
            stacked.load_state_dict(StackedModel(job.members).state_dict())
        job.optimizer.load_state_dict(ck["optimizer"])
        job.step = int(ck["step"])
        job.histories = ck["histories"]
        for g, st in zip(job.gens, ck["rng"]):
            g.set_state(st)


def _place_job(job: _Job, progress: bool) -> None:
    """The data on the device, anchor weights, the (compiled) forwards, the methods and the progress bar."""
    cfg0, device = job.cfg0, job.device
    job.images_dev = [x.to(device) for x in job.images]
    job.positions_dev = [p[0].to(device) for p in job.plans]
    job.weight_of = [mitigation.anchor_weights(p[2], c.minority_weight).to(device) if c.minority_weight != 1.0
                     else None for c, p in zip(job.configs, job.plans)]
    job.forwards = [torch.compile(m) if cfg0.compile else m for m in job.members]
    if job.stacked is not None:
        job.stacked.train()
        job.fwd_stacked = torch.compile(job.stacked) if cfg0.compile else job.stacked
    for m in job.members:
        m.train()
    job.methods = [train.method_for(cfg0) for _ in job.members]  # one each: SDCLR keeps each model's masks
    job.orders = [None] * job.s_count
    if progress:
        job.bar = train.progress_bar(job.total_steps, job.step, f"batched x{job.s_count} {cfg0.backbone}")
    job.epoch_t0, job.epoch_images = time.perf_counter(), 0


def _stacked_losses(job: _Job, views: torch.Tensor, weights: list) -> torch.Tensor:
    """The S losses of one step in one computation (strategy "stacked"), backward included."""
    bs, cfg0, device, dtype = job.cfg0.batch_size, job.cfg0, job.device, job.dtype
    # channel-stacked input: (2B, S x 3, H, W), model s reads channels 3s..3s+2
    x = views.permute(1, 0, 2, 3, 4).reshape(2 * bs, job.s_count * 3, *views.shape[-2:])
    w = None if weights[0] is None else torch.stack(weights)
    with torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None):
        _, z = job.fwd_stacked(x.contiguous(memory_format=torch.channels_last))
        step_losses = nt_xent_stacked(z, cfg0.temperature, clamp=cfg0.clamp, weights=w)
    step_losses.sum().backward()  # the gradient of model s is that of its own loss
    return step_losses.detach()


def _loop_losses(job: _Job, views: torch.Tensor, weights: list) -> torch.Tensor:
    """The S losses of one step, model by model (strategy "loop"), backward included."""
    bs, device, dtype = job.cfg0.batch_size, job.device, job.dtype
    out = []
    for k, m in enumerate(job.members):
        v = views[k]
        if job.cuda:
            v = v.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None):
            loss = job.methods[k].views_loss(m, v[:bs], v[bs:], job.forwards[k], weights=weights[k])
        loss.backward()  # per model: its graph is freed before the next model's forward
        out.append(loss.detach())
    return torch.stack(out)


def _job_step(job: _Job) -> None:
    """One optimiser step of all S models: their batches (a new epoch draws their orders first), views, losses."""
    cfg0, bs = job.cfg0, job.cfg0.batch_size
    epoch, pos = divmod(job.step, job.steps_per_epoch)
    if epoch != job.order_epoch:
        job.order_epoch = epoch
        job.orders = [train.epoch_positions(c.seed, epoch, p[1], pd, job.device)
                      for c, p, pd in zip(job.configs, job.plans, job.positions_dev)]
        for method, m in zip(job.methods, job.members):
            method.start_epoch(m)  # SDCLR: each model's mask, refreshed from its weights once per epoch
    batch_pos = [o[pos * bs:(pos + 1) * bs] for o in job.orders]
    views = _augment_all([x[bp] for x, bp in zip(job.images_dev, batch_pos)], job.spec, job.gens)  # (S, 2B, 3, H, W)
    weights = [None if w is None else w[bp] for w, bp in zip(job.weight_of, batch_pos)]
    lr = train.lr_at(cfg0, job.step, job.total_steps)
    train.set_lr(job.optimizer, lr)
    job.optimizer.zero_grad(set_to_none=True)
    losses = (_stacked_losses if job.stacked is not None else _loop_losses)(job, views, weights)
    job.optimizer.step()
    job.step += 1
    job.epoch_images += bs * job.s_count
    job.pending.append(losses)
    for h in job.histories:
        h["lr"].append(lr)
        h["steps"] = job.step
    if job.bar is not None:
        job.bar.update(1)


def _flush_job(job: _Job) -> None:
    """One host synchronisation per epoch: every model's pending losses, checked."""
    if not job.pending:
        return
    values = torch.stack(job.pending).float().cpu()  # (steps, S)
    job.pending.clear()
    for k, h in enumerate(job.histories):
        train.record_losses(h, values[:, k], who=f" of seed {job.configs[k].seed}")


def _save(job: _Job, checkpoint_path) -> None:
    save_checkpoint(checkpoint_path, job.members, job.optimizer, job.step, job.gens, job.configs, job.histories)


def _job_end_epoch(job: _Job, checkpoint_path) -> None:
    """After an epoch's last step: the losses, the throughput per model, the checkpoint."""
    _flush_job(job)
    done_epoch = job.step // job.steps_per_epoch
    dt = time.perf_counter() - job.epoch_t0
    rate = job.epoch_images / job.s_count / max(dt, 1e-9)  # images per second per model (the job's rate / S)
    for h in job.histories:
        h["throughput"].append({"epoch": done_epoch, "images_per_s": rate})
    job.epoch_t0, job.epoch_images = time.perf_counter(), 0
    if checkpoint_path is not None and train.checkpoint_due(job.cfg0, done_epoch, job.step, job.total_steps):
        if job.stacked is not None:
            job.stacked.unstack(job.members)
        _save(job, checkpoint_path)


def _job_finish(job: _Job, checkpoint_path) -> None:
    """After the loop: the last losses, the stacked weights written back, a checkpoint when it stopped early."""
    _flush_job(job)
    for h in job.histories:
        h["finished"] = job.step >= job.total_steps
    if job.stacked is not None:
        job.stacked.unstack(job.members)
    if checkpoint_path is not None and not job.histories[0]["finished"]:
        _save(job, checkpoint_path)
    if job.bar is not None:
        job.bar.close()


def _job_results(job: _Job) -> list[train.TrainResult]:
    results = []
    for c, m, h in zip(job.configs, job.members, job.histories):
        if job.cuda:
            m = m.to(memory_format=torch.contiguous_format)
        results.append(train.TrainResult(model=m, history=h, config={
            **c.to_dict(), "device": job.device.type, "resolved_precision": job.precision,
            "engine_strategy": job.strategy, "engine_models": job.s_count}))
    return results


def train_batched(configs: Sequence[train.TrainConfig], images: Sequence[torch.Tensor],
                  labels: Sequence[torch.Tensor] | None = None, *, sample_ids: Sequence | None = None,
                  groups: Sequence | None = None,
                  init_states: Sequence[Mapping[str, torch.Tensor] | None] | None = None,
                  checkpoint_path: str | Path | None = None, device: str | torch.device = "cpu",
                  progress: bool = False, stop_after_steps: int | None = None,
                  strategy: str = "auto") -> list[train.TrainResult]:
    """Train S models together; return their :class:`rharm.vision.train.TrainResult` s, in the order of ``configs``.

    Model s is what ``train.train(configs[s], images[s], labels[s], sample_ids=sample_ids[s], groups=groups[s],
    init_state=init_states[s])`` gives, to floating-point rounding. ``images`` etc. are one entry per model (``labels``,
    ``sample_ids``, ``groups``, ``init_states`` may be None for all). ``checkpoint_path``: one checkpoint for the
    whole job, resumed exactly when it exists and written every ``checkpoint_every`` epochs and when stopping early.
    ``strategy``: see :data:`STRATEGIES` and the module docstring. Not supported (ValueError): fp16 (one loss scaler
    would skip every model's step when one overflows), the k-NN monitor.
    """
    job = _plan_job(configs, images, labels, sample_ids, groups, init_states, device, stop_after_steps, strategy)
    switches = train.process_switches(job.cfg0, job.cuda)
    try:
        _build_job(job, checkpoint_path)
        _place_job(job, progress)
        while job.step < job.total_steps:
            if stop_after_steps is not None and job.step >= stop_after_steps:
                break
            _job_step(job)
            if job.step % job.steps_per_epoch == 0:
                _job_end_epoch(job, checkpoint_path)
        _job_finish(job, checkpoint_path)
    finally:
        switches.close()
    return _job_results(job)
