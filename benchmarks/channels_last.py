"""Benchmark: one SimCLR training step on the CPU with the model and batches in channels_last memory format, against
the default (contiguous NCHW) layout, in this process, on the same data and weights.

    .venv/bin/python benchmarks/channels_last.py                      # small_cnn, batch 64, 1 thread (the cpu profile)
    .venv/bin/python benchmarks/channels_last.py --backbone resnet18 --batch-size 32 --threads 2

A step is what :func:`rharm.vision.train.train` does per batch: augment two views of the uint8 batch, forward both
through
backbone and projection head, NT-Xent, backward, SGD. The two layouts alternate in ``--rounds`` rounds (so a change
of machine load hits both), each round timing ``--steps`` steps after one warm-up step; the median per-step time of
each layout and their ratio are printed (``--json PATH`` writes them). ``rharm.vision.train`` uses channels_last on
every
device because of this measurement.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def step_seconds(model, opt, images, spec, gen, fmt, steps: int) -> float:
    from rharm.vision import augment, losses

    def one():
        v1 = augment.augment_batch(images, spec, gen).contiguous(memory_format=fmt)
        v2 = augment.augment_batch(images, spec, gen).contiguous(memory_format=fmt)
        opt.zero_grad(set_to_none=True)
        _, z = model(torch.cat([v1, v2]))
        losses.nt_xent(z[: len(v1)], z[len(v1):], temperature=0.5).backward()
        opt.step()

    one()  # warm-up: the layout's kernels chosen and allocated
    t = time.perf_counter()
    for _ in range(steps):
        one()
    return (time.perf_counter() - t) / steps


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="small_cnn")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--augment", default="simclr_grey")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    from rharm.vision import augment, models

    torch.set_num_threads(a.threads)  # a benchmark script is its own process: it may set this once
    spec = augment.SPECS[a.augment]
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (a.batch_size, 3, 32, 32), dtype=torch.uint8, generator=g)
    torch.manual_seed(0)
    base = models.ContrastiveModel("simclr", a.backbone)
    layouts = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
    runs = {}
    for name, fmt in layouts.items():
        m = models.ContrastiveModel("simclr", a.backbone)
        m.load_state_dict(base.state_dict())
        m = m.to(memory_format=fmt)
        runs[name] = (m, torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9), [])
    for r in range(a.rounds):
        for name, fmt in layouts.items():
            m, opt, times = runs[name]
            times.append(step_seconds(m, opt, images, spec, torch.Generator().manual_seed(r), fmt, a.steps))
    med = {name: statistics.median(v[2]) for name, v in runs.items()}
    out = {"backbone": a.backbone, "batch_size": a.batch_size, "threads": a.threads, "steps": a.steps,
           "rounds": a.rounds, "step_s": med, "per_round_s": {k: v[2] for k, v in runs.items()},
           "speedup_channels_last": med["contiguous"] / med["channels_last"]}
    print(f"{a.backbone}, batch {a.batch_size}, {a.threads} thread(s): "
          f"contiguous {med['contiguous'] * 1e3:.1f} ms/step, "
          f"channels_last {med['channels_last'] * 1e3:.1f} ms/step, speed-up x{out['speedup_channels_last']:.2f} "
          f"(median of {a.rounds} rounds of {a.steps} steps)")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return out


if __name__ == "__main__":
    main()
