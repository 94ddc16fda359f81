"""Seed-batched training: the S seeds of one grid point trained together, in one process and one step loop.

:func:`train_batched` trains S contrastive models whose :class:`rharm.vision.train.TrainConfig` differ only in ``seed``
(same method, backbone, schedule and batch size; the training sets may differ, e.g. the minority images kept for
each seed, but must give the same number of steps per epoch). Each model keeps everything
:func:`rharm.vision.train.train`
would give it for its seed: its initial weights (:func:`rharm.vision.train.initial_model`), its batch order
(``_epoch_order(seed, epoch, ids)``), its augmentation stream (a generator seeded ``seed + 1``, drawn for view 1 then
view 2 of each batch, as ``train`` draws it), its own BatchNorm statistics (each model sees only its own batch) and
its own optimiser state. A batched run therefore equals S single runs to floating-point rounding
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

import contextlib
import copy
import time
from pathlib import Path
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rharm.core import runtime, schema
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
    configs = list(configs)
    check_group(configs)
    s_count = len(configs)
    cfg0 = configs[0]
    images = _per_model(images, s_count, "images")
    labels = _per_model(labels, s_count, "labels")
    sample_ids = _per_model(sample_ids, s_count, "sample_ids")
    groups = _per_model(groups, s_count, "groups")
    init_states = _per_model(init_states, s_count, "init_states")
    if stop_after_steps is not None and (not isinstance(stop_after_steps, int) or stop_after_steps < 0):
        raise ValueError(f"stop_after_steps={stop_after_steps!r} is not valid; use None or an integer >= 0")
    plans = [train.sampling_plan(c, x, y, i, g) for c, x, y, i, g in zip(configs, images, labels, sample_ids, groups)]
    spe = {len(p[0]) // cfg0.batch_size for p in plans}
    if len(spe) != 1:
        raise ValueError(f"the models of a batched job need the same number of steps per epoch; got {sorted(spe)} "
                         "(training sets of different sizes): train them with engine='single'")
    steps_per_epoch = spe.pop()
    total_steps = steps_per_epoch * cfg0.epochs
    device = torch.device(device)
    precision = train.resolve_precision(cfg0.precision, device)
    if precision == "fp16":
        raise ValueError("precision fp16 is not valid with engine='batched' (one loss scaler for all models); "
                         "use bf16 or engine='single'")
    if cfg0.deterministic:
        train.check_determinism_environment(device)
    strategy = resolve_strategy(strategy, device, cfg0)
    spec = train.augment_spec(cfg0.resolved_augment)
    cuda = device.type == "cuda"
    dtype = train.AUTOCAST_DTYPES[precision]
    fmt = torch.channels_last

    switches = contextlib.ExitStack()
    switches.enter_context(runtime.deterministic_kernels(cfg0.deterministic, cuda=cuda))
    switches.enter_context(runtime.seeded(cfg0.seed))
    try:
        members = []
        for c, st in zip(configs, init_states):
            m = train.initial_model(c)  # each model's initial weights: a function of its own seed, as in train()
            if st is not None:
                try:
                    m.load_state_dict(dict(st), strict=True)
                except RuntimeError as exc:
                    raise ValueError(f"init_state does not fit a {c.method}/{c.backbone} model: {exc}") from exc
            members.append(m.to(device).to(memory_format=fmt))
        gens = [torch.Generator(device=device).manual_seed(c.seed + 1) for c in configs]
        histories = [{"loss": [], "lr": [], "knn": [], "throughput": [], "steps": 0,
                      "steps_per_epoch": steps_per_epoch, "finished": False} for _ in configs]
        stacked = StackedModel(members).to(device).to(memory_format=fmt) if strategy == "stacked" else None
        params = list(stacked.parameters()) if stacked is not None else [p for m in members for p in m.parameters()]
        optimizer = torch.optim.SGD(params, lr=train.lr_at(cfg0, 0, total_steps), momentum=cfg0.momentum,
                                    nesterov=cfg0.resolved_nesterov, weight_decay=cfg0.resolved_weight_decay,
                                    foreach=True)
        step = 0
        if checkpoint_path is not None and Path(checkpoint_path).exists():
            ck = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
            if ck["configs"] != [c.to_dict() for c in configs]:
                raise ValueError(f"checkpoint {checkpoint_path} was written by a different batched job")
            for m, st in zip(members, ck["models"]):
                m.load_state_dict(st)
            if stacked is not None:
                stacked.load_state_dict(StackedModel(members).state_dict())
            optimizer.load_state_dict(ck["optimizer"])
            step = int(ck["step"])
            histories = ck["histories"]
            for g, st in zip(gens, ck["rng"]):
                g.set_state(st)

        images_dev = [x.to(device) for x in images]
        positions_dev = [p[0].to(device) for p in plans]
        weight_of = [mitigation.anchor_weights(p[2], c.minority_weight).to(device) if c.minority_weight != 1.0
                     else None for c, p in zip(configs, plans)]
        forwards = [torch.compile(m) if cfg0.compile else m for m in members]
        if stacked is not None:
            stacked.train()
            fwd_stacked = torch.compile(stacked) if cfg0.compile else stacked
        for m in members:
            m.train()
        masks = [None] * s_count
        orders = [None] * s_count
        order_epoch = -1
        pending: list[torch.Tensor] = []
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total_steps, initial=step, unit="step", desc=f"batched x{s_count} {cfg0.backbone}")
        epoch_t0, epoch_images = time.perf_counter(), 0
        bs = cfg0.batch_size

        def flush() -> None:
            if not pending:
                return
            values = torch.stack(pending).float().cpu()  # (steps, S)
            pending.clear()
            for k, h in enumerate(histories):
                start = len(h["loss"])
                col = values[:, k]
                bad = (~torch.isfinite(col)).nonzero()
                if len(bad):
                    j = int(bad[0])
                    raise FloatingPointError(f"loss of seed {configs[k].seed} became {float(col[j])} at step "
                                             f"{start + j} (lr {h['lr'][start + j]:.3g}); lower TrainConfig.lr")
                h["loss"].extend(col.tolist())

        while step < total_steps:
            if stop_after_steps is not None and step >= stop_after_steps:
                break
            epoch, pos = divmod(step, steps_per_epoch)
            if epoch != order_epoch:
                order_epoch = epoch
                orders = [pd[train.epoch_order(c.seed, epoch, p[1]).to(device)]
                          for c, p, pd in zip(configs, plans, positions_dev)]
                if cfg0.sdclr_prune > 0:
                    masks = [mitigation.prune_masks(m, cfg0.sdclr_prune) for m in members]
            batch_pos = [o[pos * bs:(pos + 1) * bs] for o in orders]
            views = _augment_all([x[bp] for x, bp in zip(images_dev, batch_pos)], spec, gens)  # (S, 2B, 3, H, W)
            weights = [None if w is None else w[bp] for w, bp in zip(weight_of, batch_pos)]
            lr = train.lr_at(cfg0, step, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            if stacked is not None:
                # channel-stacked input: (2B, S x 3, H, W), model s reads channels 3s..3s+2
                x = views.permute(1, 0, 2, 3, 4).reshape(2 * bs, s_count * 3, *views.shape[-2:])
                w = None if weights[0] is None else torch.stack(weights)
                with torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None):
                    _, z = fwd_stacked(x.contiguous(memory_format=fmt))
                    step_losses = nt_xent_stacked(z, cfg0.temperature, clamp=cfg0.clamp, weights=w)
                step_losses.sum().backward()  # the gradient of model s is that of its own loss
                step_losses = step_losses.detach()
            else:
                out = []
                for k, m in enumerate(members):
                    v = views[k]
                    if cuda:
                        v = v.contiguous(memory_format=fmt)
                    with torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None):
                        loss = train.method_loss(m, cfg0, v[:bs], v[bs:], forwards[k], weights=weights[k],
                                                 masks=masks[k])
                    loss.backward()  # per model: its graph is freed before the next model's forward
                    out.append(loss.detach())
                step_losses = torch.stack(out)
            optimizer.step()
            step += 1
            epoch_images += bs * s_count
            pending.append(step_losses)
            for h in histories:
                h["lr"].append(lr)
                h["steps"] = step
            if bar is not None:
                bar.update(1)
            if step % steps_per_epoch == 0:
                flush()
                done_epoch = step // steps_per_epoch
                dt = time.perf_counter() - epoch_t0
                rate = epoch_images / s_count / max(dt, 1e-9)  # images per second per model (the job's rate / S)
                for h in histories:
                    h["throughput"].append({"epoch": done_epoch, "images_per_s": rate})
                epoch_t0, epoch_images = time.perf_counter(), 0
                periodic = cfg0.checkpoint_every and done_epoch % cfg0.checkpoint_every == 0
                if checkpoint_path is not None and (periodic or step == total_steps):
                    if stacked is not None:
                        stacked.unstack(members)
                    save_checkpoint(checkpoint_path, members, optimizer, step, gens, configs, histories)
        flush()
        for h in histories:
            h["finished"] = step >= total_steps
        if stacked is not None:
            stacked.unstack(members)
        if checkpoint_path is not None and not histories[0]["finished"]:
            save_checkpoint(checkpoint_path, members, optimizer, step, gens, configs, histories)
        if bar is not None:
            bar.close()
    finally:
        switches.close()
    results = []
    for c, m, h in zip(configs, members, histories):
        if cuda:
            m = m.to(memory_format=torch.contiguous_format)
        results.append(train.TrainResult(model=m, history=h, config={
            **c.to_dict(), "device": device.type, "resolved_precision": precision, "engine_strategy": strategy,
            "engine_models": s_count}))
    return results

