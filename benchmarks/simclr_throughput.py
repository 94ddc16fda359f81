"""End-to-end SimCLR training throughput: rharm's on-device batched augmentation against the paper's data pipeline.

OURS      the training images as one uint8 tensor on the device; each step indexes a batch and draws two views
          with :func:`rharm.vision.augment.augment_batch` (independent parameters per image and per view).
BASELINE  the way the paper's code feeds SimCLR (paper.md E1): a Dataset of uint8 HWC arrays turned into PIL
          images, two views per image from :func:`rharm.vision.augment.torchvision_reference` (per-image torchvision
          transforms), in a torch DataLoader with worker processes, shuffled, ``drop_last=True``.

Both feed the same model (``rharm.vision.models.build_backbone`` + ``ProjectionHead``), loss (``rharm.vision.losses.nt_xent``,
tau 0.5), optimiser (SGD lr 0.6, momentum 0.9, Nesterov, weight decay 1e-6), batch size and device. Each round
times ``--steps`` full training steps of one pipeline, then of the other (their order alternating between rounds),
starting from a fresh epoch iterator, so data start-up, augmentation, transfer, forward, backward and the optimiser
step are all inside the clock. The baseline's workers start with each epoch iterator and stop after it, as in the
paper's code (no persistent workers); ``--steps`` near one epoch (97 steps of 512 on CIFAR-10) weighs that start-up
as training does, while a few steps overweight it. Throughput counts source images per second (each gives two views). Round 0 is a
warm-up and is not reported.

The LAST line printed is exactly ``ratio: <median over rounds of ours / baseline>``.

Example (CPU, a few minutes on 2 cores):
    python benchmarks/simclr_throughput.py --model small_cnn --batch 256 --steps 10 --rounds 3 --device cpu
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time

import numpy as np
import torch

from rharm.vision import augment, losses, models, train


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=list(models.BACKBONES), default="small_cnn")
    p.add_argument("--batch", type=int, default=256, help="source images per step (each gives two views)")
    p.add_argument("--steps", type=int, default=10, help="timed training steps per pipeline and round")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds (plus one warm-up round)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1),
                   help="baseline DataLoader workers (the paper's code uses 16)")
    p.add_argument("--data", choices=["cifar10", "synthetic"], default="cifar10",
                   help="CIFAR-10 train images (rharm.vision.data.load_cifar10), or random uint8 images when no copy exists")
    p.add_argument("--n-images", type=int, default=10000, help="training images held by both pipelines")
    p.add_argument("--threads", type=int, default=0,
                   help="torch intra-op threads of the training process (0: torch's default); on a shared CPU, 1 "
                        "can be several times faster than 2")
    p.add_argument("--precision", choices=list(train.PRECISIONS), default="auto",
                   help="training precision of both pipelines (auto: bf16 autocast on CUDA, fp32 on CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the settings, device and per-round numbers to this JSON file")
    args = p.parse_args(argv)
    for name in ("batch", "steps", "rounds", "n_images"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')}={getattr(args, name)} is not valid; it must be >= 1")
    if args.threads < 0:
        p.error(f"--threads={args.threads} is not valid; it must be >= 0")
    if args.workers < 0:
        p.error(f"--workers={args.workers} is not valid; it must be >= 0")
    if args.n_images < args.batch * args.steps:
        # Each round is one epoch prefix; it must hold all its steps with drop_last.
        p.error(f"--n-images={args.n_images} is not valid; it must be >= batch * steps = {args.batch * args.steps}")
    try:
        torch.empty(0, device=args.device)
    except (RuntimeError, AssertionError) as exc:
        p.error(f"--device={args.device!r} is not valid here ({exc})")
    return args


def load_images(kind: str, n: int, seed: int) -> torch.Tensor:
    """(n, 3, 32, 32) uint8 on the CPU."""
    if kind == "synthetic":
        return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    from rharm.vision.data import load_cifar10

    train = load_cifar10("train")
    if n > len(train.images):
        raise ValueError(f"--n-images={n} is not valid; the train split has {len(train.images)} images")
    idx = np.random.default_rng(seed).permutation(len(train.images))[:n]
    print(f"data: {n} images of {train.source} (train split)")
    return train.images[torch.from_numpy(idx)].contiguous()


class TwoViewDataset(torch.utils.data.Dataset):
    """Baseline dataset: HWC uint8 array -> PIL image -> two independent views of the per-image transform."""

    def __init__(self, images_nhwc: np.ndarray, transform):
        self.images = images_nhwc
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image

        img = Image.fromarray(self.images[i])
        return self.transform(img), self.transform(img)


class Trainer:
    """One SimCLR model + optimiser; ``step(v1, v2)`` is a full training step."""

    def __init__(self, backbone: torch.nn.Module, head: torch.nn.Module, device: torch.device,
                 precision: str = "fp32"):
        # channels_last on CUDA and the same autocast for both pipelines: only the data path differs
        self.fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
        self.net = torch.nn.Sequential(backbone, head).to(device).to(memory_format=self.fmt)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=0.6, momentum=0.9, nesterov=True, weight_decay=1e-6)
        self.device_type = device.type
        self.dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    def step(self, v1: torch.Tensor, v2: torch.Tensor) -> float:
        x = torch.cat([v1, v2]).contiguous(memory_format=self.fmt)
        with torch.autocast(device_type=self.device_type, dtype=self.dtype, enabled=self.dtype is not None):
            z = self.net(x)
            z1, z2 = z.chunk(2)
            loss = losses.nt_xent(z1, z2, temperature=0.5)
        if self.scaler is not None:
            self.opt.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
            return loss.detach()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_ours(trainer: Trainer, images_dev: torch.Tensor, args, gen: torch.Generator, device) -> float:
    """Images per second over ``args.steps`` steps of the on-device pipeline (one fresh epoch permutation)."""
    _sync(device)
    t0 = time.perf_counter()
    perm = torch.randperm(len(images_dev), generator=gen, device=device)
    for k in range(args.steps):
        x = images_dev[perm[k * args.batch:(k + 1) * args.batch]]
        v1 = augment.augment_batch(x, augment.SIMCLR, gen)
        v2 = augment.augment_batch(x, augment.SIMCLR, gen)
        loss = trainer.step(v1, v2)
    float(loss)  # waits for the device
    _sync(device)
    return args.batch * args.steps / (time.perf_counter() - t0)


def run_baseline(trainer: Trainer, loader, args, device) -> float:
    """Images per second over ``args.steps`` steps of the DataLoader pipeline (one fresh epoch iterator)."""
    _sync(device)
    t0 = time.perf_counter()
    it = iter(loader)
    for _ in range(args.steps):
        v1, v2 = next(it)
        v1 = v1.to(device, non_blocking=True)
        v2 = v2.to(device, non_blocking=True)
        loss = trainer.step(v1, v2)
    float(loss)
    _sync(device)
    del it  # shuts its workers down, so they cannot prefetch (and take CPU) during the other pipeline's turn
    return args.batch * args.steps / (time.perf_counter() - t0)


def main(argv=None) -> float:
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    images = load_images(args.data, args.n_images, args.seed)

    backbone = models.build_backbone(args.model)
    head = models.ProjectionHead(backbone.out_dim)
    precision = train.resolve_precision(args.precision, device)
    ours = Trainer(copy.deepcopy(backbone), copy.deepcopy(head), device, precision)
    base = Trainer(backbone, head, device, precision)

    images_dev = images.to(device)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    dataset = TwoViewDataset(images.permute(0, 2, 3, 1).numpy().copy(), augment.torchvision_reference(augment.SIMCLR))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch, shuffle=True, drop_last=True, num_workers=args.workers,
        pin_memory=device.type == "cuda",
    )
    print(f"model={args.model} batch={args.batch} (x2 views) steps={args.steps} rounds={args.rounds} "
          f"device={device} precision={precision} torch_threads={torch.get_num_threads()} baseline_workers={args.workers} "
          f"torch={torch.__version__}", flush=True)
    if device.type == "cuda":
        print(f"gpu: {torch.cuda.get_device_name(device)}", flush=True)

    ratios = []
    rounds = []
    for r in range(args.rounds + 1):
        first_ours = r % 2 == 0
        if first_ours:
            o = run_ours(ours, images_dev, args, gen, device)
            b = run_baseline(base, loader, args, device)
        else:
            b = run_baseline(base, loader, args, device)
            o = run_ours(ours, images_dev, args, gen, device)
        label = "warm-up" if r == 0 else f"round {r}"
        print(f"{label}: ours {o:.1f} img/s, baseline {b:.1f} img/s, ratio {o / b:.3f}", flush=True)
        if r > 0:
            ratios.append(o / b)
            rounds.append({"round": r, "ours_img_s": o, "baseline_img_s": b, "ratio": o / b})
    ratio = statistics.median(ratios)
    if args.json:
        import json
        import platform

        cpu = platform.processor()
        try:
            cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                       if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
        record = {
            "settings": {**{k: v for k, v in vars(args).items() if k != "json"}, "precision": precision},
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"{cpu} (CPU)",
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "rounds": rounds, "ratio_median": ratio,
        }
        with open(args.json, "w") as fh:
            json.dump(record, fh, indent=2)
    print(f"ratio: {ratio:.3f}")
    return ratio


if __name__ == "__main__":
    main(sys.argv[1:])
