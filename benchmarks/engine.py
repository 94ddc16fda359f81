"""Benchmark: runs per CPU-minute of today's engine (one model per job, rharm.vision.train.train) against the
seed-batched
engine (rharm.vision.engine.train_batched) at the book's small_cnn settings, and the FLOP/s both reach as a fraction
of the
core's measured dense-matmul peak.

    .venv/bin/python benchmarks/engine.py                       # both settings, S = 3, 5, 10, 3 rounds
    .venv/bin/python benchmarks/engine.py --steps 4 --rounds 2  # quicker
    .venv/bin/python benchmarks/engine.py --compile             # also torch.compile (pays ~1 min of compilation)

Settings (profiles.yml, cpu profile; one torch thread per training process, as the book's ``threads: 1``):

* Fashion-MNIST (fashion_harm / mitigation): small_cnn, batch 64, 2 epochs, augment simclr_grey, a minority run of the
  main grid: 9 x 500 + 500 // 100 = 4,505 images, 70 steps per epoch, 140 steps per run.
* CIFAR-10 (the simclr grid): small_cnn, batch 64, 4 epochs, augment simclr, 4,505 images, 280 steps per run.

Images are synthetic uint8 of the same shape (Fashion-MNIST: 28x28 greyscale padded to 32x32 on three equal
channels, as :func:`rharm.vision.data.load_dataset` gives it): a step's cost does not depend on pixel values. Each
measurement times ``--steps`` optimiser steps of a real call (``stop_after_steps``) in process CPU seconds, and the
setup of the call (``stop_after_steps=0``: initialisation, sampling plan) separately; the cost of a run is
setup + steps per run x CPU seconds per step (extrapolated from the timed steps; feature extraction after training,
the same for both engines, is left out). Today's engine and every batched variant are timed in the same round, in
turn, ``--rounds`` times; ratios are per round (paired), and the medians are reported.

Peak: the best of several single-thread fp32 ``torch.mm`` of 1024 x 1024 matrices on the same core. Achieved: the
FLOP of a step (:func:`rharm.vision.models.training_flops_per_view` x 2 views x batch x models; 6 x
multiply-accumulates)
over its CPU seconds. A profile of today's step (where its time goes: convolution kernels, BatchNorm/ReLU/pooling,
the rest) gives the measured reason behind the ratio.

Rows marked bf16 train in bf16 autocast on the CPU (``precision: bf16``: a different number format, so different
results; their "% peak" is of the bf16 matmul peak) and are there to show where else CPU time could come from; every
"x today" is against today's engine in fp32, the book's setting (``precision: auto`` is fp32 on the CPU).

The last line printed is exactly ``ratio: <batched / today, runs per CPU-minute at the Fashion-MNIST setting>``, for
S = 5 (the seeds of fashion_harm's main grid) with the strategy the engine picks on the CPU ("loop").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

SETTINGS = {
    "fashion_mnist": dict(augment="simclr_grey", epochs=2, grey=True),
    "cifar10": dict(augment="simclr", epochs=4, grey=False),
}
N_IMAGES = 9 * 500 + 500 // 100  # a minority run of the cpu grids: 4,505 images
BATCH = 64


def synthetic(n: int, seed: int, grey: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if grey:
        x = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g)
        return torch.nn.functional.pad(x, (2, 2, 2, 2)).expand(-1, 3, -1, -1).contiguous()
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)


def matmul_peak(n: int = 1024, reps: int = 5, dtype=torch.float32) -> float:
    """Best single-thread dense matmul rate in ``dtype``, FLOP/s."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.process_time()
        for _ in range(4):
            a @ b
        best = min(best, (time.process_time() - t) / 4)
    return 2 * n ** 3 / best


def cpu_seconds(fn) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


TODAY = ("single", 1, "-", "fp32")


def variant_name(v: tuple) -> str:
    kind, s_count, strategy, precision = v
    name = "today (single)" if kind == "single" else f"batched {strategy} S={s_count}"
    return name if precision == "fp32" else f"{name} {precision}"


def measure(setting: str, variant: tuple, steps: int, compile_: bool = False) -> dict:
    """CPU seconds of setup and per step of one variant (kind "single" or "batched", S, strategy, precision)."""
    from rharm.vision import engine, train

    st = SETTINGS[setting]
    kind, s_count, strategy, precision = variant
    cfgs = [train.TrainConfig(backbone="small_cnn", epochs=st["epochs"], batch_size=BATCH, lr=0.3,
                              weight_decay=1e-6, augment=st["augment"], seed=k, checkpoint_every=0,
                              compile=compile_, precision=precision) for k in range(s_count)]
    imgs = [synthetic(N_IMAGES, 100 + k, st["grey"]) for k in range(s_count)]
    if kind == "single":
        def call(k):
            return train.train(cfgs[0], imgs[0], progress=False, stop_after_steps=k)
    else:
        def call(k):
            return engine.train_batched(cfgs, imgs, stop_after_steps=k, strategy=strategy)
    setup = cpu_seconds(lambda: call(0))
    total = cpu_seconds(lambda: call(steps))
    return {"setup_s": setup, "step_s": max(total - setup, 1e-9) / steps, "models": s_count}


def steps_per_run(setting: str) -> int:
    return (N_IMAGES // BATCH) * SETTINGS[setting]["epochs"]


def runs_per_cpu_minute(m: dict, setting: str) -> float:
    per_run = (m["setup_s"] + steps_per_run(setting) * m["step_s"]) / m["models"]
    return 60.0 / per_run


def profile_step(setting: str) -> dict:
    """Where today's step spends its CPU time (self time per operator class, over 3 steps after 2 warm-up steps)."""
    from torch.profiler import ProfilerActivity, profile

    from rharm.vision import augment, losses, models

    st = SETTINGS[setting]
    spec = augment.SPECS[st["augment"]]
    imgs = synthetic(BATCH, 0, st["grey"])
    torch.manual_seed(0)
    m = models.ContrastiveModel("simclr", "small_cnn").to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    gen = torch.Generator().manual_seed(1)

    def step():
        v = torch.cat([augment.augment_batch(imgs, spec, gen), augment.augment_batch(imgs, spec, gen)])
        opt.zero_grad()
        _, z = m(v)
        losses.nt_xent(z[:BATCH], z[BATCH:], 0.5).backward()
        opt.step()

    for _ in range(2):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as p:
        for _ in range(3):
            step()
    classes = {"convolution (fwd+bwd)": ("convolution",), "batchnorm (fwd+bwd)": ("batch_norm",),
               "relu (fwd+bwd)": ("threshold_backward", "relu", "clamp_min"), "max-pool (fwd+bwd)": ("max_pool",),
               "matmul (head, loss)": ("aten::mm", "aten::addmm", "aten::bmm")}
    out = {k: 0.0 for k in classes}
    out["other (augmentation, optimiser, small ops)"] = 0.0
    calls = 0
    total = 0.0
    for ev in p.key_averages():
        if not ev.key.startswith("aten::"):
            continue
        t = ev.self_cpu_time_total / 1e6
        total += t
        calls += ev.count
        for k, pats in classes.items():
            if any(pat in ev.key for pat in pats):
                out[k] += t
                break
        else:
            out["other (augmentation, optimiser, small ops)"] += t
    return {"share": {k: v / total for k, v in out.items()}, "aten_calls_per_step": calls / 3,
            "step_s": total / 3, "us_per_call": total / calls * 1e6,
            "conv_flop_per_step": 6.0 * models.forward_macs(m.backbone) * 2 * BATCH}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", type=int, nargs="+", default=[3, 5, 10], help="S values")
    ap.add_argument("--stacked", type=int, nargs="*", default=[3], help="S values also timed with strategy 'stacked'")
    ap.add_argument("--bf16", type=int, nargs="*", default=[5],
                    help="S values of the batched engine also timed in bf16 autocast (today's engine too, if any)")
    ap.add_argument("--compile", action="store_true", help="also time both engines under torch.compile (Fashion)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)  # the book trains with one torch thread per job (profiles.yml cpu: threads 1)
    from rharm.vision import models

    load0 = os.getloadavg()
    peak = matmul_peak()
    peak_bf16 = matmul_peak(dtype=torch.bfloat16)
    flop_view = models.training_flops_per_view("small_cnn", "simclr")
    variants = [TODAY] + [("batched", s, "loop", "fp32") for s in a.models]
    variants += [("batched", s, "stacked", "fp32") for s in a.stacked]
    if a.bf16:
        variants += [("single", 1, "-", "bf16")] + [("batched", s, "loop", "bf16") for s in a.bf16]
    for setting in SETTINGS:  # warm-up: kernels chosen, memory allocated
        for v in variants:
            measure(setting, v, 1)
    rows: dict[tuple, list] = {}
    for r in range(a.rounds):
        for setting in SETTINGS:
            order = variants if r % 2 == 0 else variants[:1] + variants[:0:-1]
            for v in order:
                rows.setdefault((setting, v), []).append(measure(setting, v, a.steps))
    compiled = {}
    if a.compile:
        for v in (TODAY, ("batched", 5, "loop", "fp32")):
            t0 = time.perf_counter()
            measure("fashion_mnist", v, 1, compile_=True)  # compilation
            compile_s = time.perf_counter() - t0
            eager = measure("fashion_mnist", v, a.steps)
            comp = measure("fashion_mnist", v, a.steps, compile_=True)
            compiled[v] = {"compile_wall_s": compile_s, "eager_step_s": eager["step_s"],
                           "compiled_step_s": comp["step_s"]}
    load1 = os.getloadavg()

    result: dict = {"peak_gflop_s": peak / 1e9, "peak_bf16_gflop_s": peak_bf16 / 1e9, "flop_per_view": flop_view,
                    "load_before": load0, "load_after": load1, "settings": {}}
    print(f"one core, 1 torch thread; dense matmul peak fp32 {peak / 1e9:.1f} GFLOP/s, bf16 {peak_bf16 / 1e9:.1f} "
          f"GFLOP/s; small_cnn training {flop_view / 1e6:.1f} MFLOP per view; load average {load0[0]:.2f} -> "
          f"{load1[0]:.2f}")
    print(f"{'setting':14s} {'engine':23s} {'ms/step/model':>13s} {'runs/CPU-min':>12s} {'x today':>8s} "
          f"{'(min-max)':>11s} {'GFLOP/s':>8s} {'% peak':>7s}")
    for setting in SETTINGS:
        base = rows[(setting, TODAY)]
        out = {}
        for v in variants:
            ms = rows[(setting, v)]
            rpm = [runs_per_cpu_minute(m, setting) for m in ms]
            ratios = [rr / runs_per_cpu_minute(b, setting) for rr, b in zip(rpm, base)]
            step_model = statistics.median(m["step_s"] / m["models"] for m in ms)
            gflops = 2 * BATCH * flop_view / step_model / 1e9
            name = variant_name(v)
            own_peak = peak if v[3] == "fp32" else peak_bf16  # the peak of the row's own arithmetic
            out[name] = {"step_s_per_model": step_model, "runs_per_cpu_minute": statistics.median(rpm),
                         "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
                         "gflop_s": gflops, "fraction_of_peak": gflops * 1e9 / own_peak}
            o = out[name]
            print(f"{setting:14s} {name:23s} {step_model * 1e3:13.1f} {o['runs_per_cpu_minute']:12.2f} "
                  f"{o['ratio']:8.2f} {o['ratio_min']:5.2f}-{o['ratio_max']:<5.2f} {gflops:8.1f} "
                  f"{100 * o['fraction_of_peak']:6.1f}%")
        result["settings"][setting] = out
    prof = profile_step("fashion_mnist")
    result["profile_today_fashion"] = prof
    print(f"today's Fashion-MNIST step, CPU self time by operator class ({prof['aten_calls_per_step']:.0f} aten calls "
          f"per step, {prof['us_per_call']:.0f} us per call on average):")
    for k, v in prof["share"].items():
        print(f"  {k:45s} {100 * v:5.1f}%")
    # the profiler's times are wall-clock (inflated on a loaded machine): its shares are applied to the process-CPU
    # step time measured above
    conv_s = prof["share"]["convolution (fwd+bwd)"] * result["settings"]["fashion_mnist"]["today (single)"][
        "step_s_per_model"]
    prof["conv_gflop_s"] = prof["conv_flop_per_step"] / conv_s / 1e9
    print(f"  the convolution kernels alone (their share of today's CPU step time): {prof['conv_gflop_s']:.1f} "
          f"GFLOP/s = {100 * prof['conv_gflop_s'] * 1e9 / peak:.0f}% of the matmul peak")
    for v, c in compiled.items():
        name = variant_name(v)
        e, k = c["eager_step_s"], c["compiled_step_s"]
        print(f"torch.compile, Fashion-MNIST, {name}: {e * 1e3:.1f} -> {k * 1e3:.1f} ms/step ({e / k:.2f}x), "
              f"compilation {c['compile_wall_s']:.0f} s wall")
    result["compile"] = {variant_name(k): v for k, v in compiled.items()}
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(result, fh, indent=1)
    headline = result["settings"]["fashion_mnist"].get("batched loop S=5")
    if headline is None:
        headline = next(v for k, v in result["settings"]["fashion_mnist"].items() if k.startswith("batched loop"))
    print(f"ratio: {headline['ratio']:.2f}")
    return result


if __name__ == "__main__":
    main()
