"""The GPU device check: correctness, throughput and a short science run in one script (<= 8 minutes on one H200).

Writes ``<out>/device_check.json`` (every number) and ``<out>/device_check.log`` (what was printed).

(a) correctness - SimCLR on ResNet-18 for ``--steps`` steps in bf16 and in fp32 from the same seed: finite losses
    whose mean over the last quarter is below the first quarter's; an interrupted run resumed from its checkpoint
    on the device (deterministic mode) reproduces the uninterrupted losses; features of the trained model, a device
    probe (rharm.harm.probe, on the device) and scikit-learn's probe on the CPU agree in accuracy.
(b) throughput - ``benchmarks/simclr_throughput.py`` (rharm's device pipeline vs the paper-style PIL DataLoader with
    ``--workers`` workers, same GPU, model, batch and precision) for ResNet-18 and ResNet-34; the ratio and the
    fraction of the bf16 peak reached (FLOP per image-view from rharm.vision.models.training_flops_per_view).
(c) science - a short paired run: balanced vs one minority class (1:ratio) for ``--seeds`` seeds, representation
    harm of the minority toward its partner class per seed, for the ``gpu-short`` page.

``--tiny`` shrinks everything (small_cnn, synthetic images, a few steps) so that the script runs on a CPU in the
test suite (tests/test_device_check.py) and cannot rot.

Example (the device machine):
    CUBLAS_WORKSPACE_CONFIG=:4096:8 python benchmarks/device_check.py --out device_out
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rharm.harm import metrics  # noqa: E402
from rharm.vision import models, train  # noqa: E402

#: NVIDIA H200 dense BF16 tensor-core peak, TFLOP/s (NVIDIA H200 datasheet).
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}


class Log:
    def __init__(self, path: Path):
        self.fh = open(path, "w")

    def __call__(self, *parts) -> None:
        line = " ".join(str(p) for p in parts)
        print(line, flush=True)
        self.fh.write(line + "\n")
        self.fh.flush()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for device_check.json and device_check.log")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tiny", action="store_true", help="CPU-sized: small_cnn, synthetic data, a few steps")
    p.add_argument("--steps", type=int, default=300, help="(a) SimCLR steps per precision")
    p.add_argument("--batch", type=int, default=512, help="(a, b) images per step")
    p.add_argument("--workers", type=int, default=16, help="(b) baseline DataLoader workers (the paper's: 16)")
    p.add_argument("--throughput-steps", type=int, default=20, help="(b) timed steps per pipeline and round")
    p.add_argument("--rounds", type=int, default=2, help="(b) timed rounds")
    p.add_argument("--dataset", default="cifar10", help="(c) dataset for the science run (rharm.vision.data)")
    p.add_argument("--science-epochs", type=int, default=15, help="(c) epochs per run")
    p.add_argument("--science-backbone", default="resnet18")
    p.add_argument("--seeds", type=int, default=2, help="(c) paired seeds")
    p.add_argument("--minority", default="automobile")
    p.add_argument("--partner", default="truck")
    p.add_argument("--ratio", type=int, default=100)
    p.add_argument("--skip", nargs="*", default=[], choices=["a", "b", "c"], help="parts to skip")
    args = p.parse_args(argv)
    if args.tiny:
        args.steps, args.batch, args.throughput_steps, args.rounds = 8, 16, 2, 1
        args.workers, args.science_epochs, args.seeds = 0, 1, 2
    for name in ("steps", "batch", "throughput_steps", "rounds", "science_epochs", "seeds"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')}={getattr(args, name)} is not valid; it must be >= 1")
    return args


def _images(n: int, seed: int) -> torch.Tensor:
    """Gratings with per-image orientation and frequency: learnable structure for the tiny mode."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    ang = torch.rand(n, generator=g) * np.pi
    f = 0.2 + 0.5 * torch.rand(n, generator=g)
    v = torch.sin(f[:, None, None] * (xx * torch.cos(ang)[:, None, None] + yy * torch.sin(ang)[:, None, None]))
    return ((v + 1) * 127.5).round().to(torch.uint8)[:, None].expand(n, 3, 32, 32).contiguous()


def part_a(args, log) -> dict:
    out: dict = {}
    backbone = "small_cnn" if args.tiny else "resnet18"
    n = args.batch * max(1, args.steps // 4) if not args.tiny else args.batch * 2
    x = _images(n, 0)
    epochs = max(1, args.steps // (n // args.batch))
    for precision in ("bf16", "fp32"):
        cfg = train.TrainConfig(backbone=backbone, epochs=epochs, batch_size=args.batch, lr=0.3, seed=0,
                                precision=precision, deterministic=False, checkpoint_every=0)
        t0 = time.perf_counter()
        res = train.train(cfg, x, device=args.device, progress=False)
        loss = res.history["loss"]
        q = max(1, len(loss) // 4)
        first, last = float(np.mean(loss[:q])), float(np.mean(loss[-q:]))
        ok = bool(np.all(np.isfinite(loss)) and last < first)
        out[precision] = {"steps": len(loss), "first_quarter_loss": first, "last_quarter_loss": last,
                          "finite_and_decreasing": ok, "seconds": time.perf_counter() - t0,
                          "resolved_precision": res.config["resolved_precision"]}
        log(f"(a) {backbone} {precision}: {len(loss)} steps, loss {first:.3f} -> {last:.3f}, ok={ok}, "
            f"{out[precision]['seconds']:.1f} s")
    # resume on the device: deterministic mode (needs CUBLAS_WORKSPACE_CONFIG on CUDA)
    ck = Path(args.out) / "resume_check.pt"
    if ck.exists():
        ck.unlink()
    cfg = train.TrainConfig(backbone=backbone, epochs=2, batch_size=args.batch, lr=0.3, seed=1, precision="fp32",
                            deterministic=True, checkpoint_every=0)
    xr = x[: args.batch * 3]
    try:
        full = train.train(cfg, xr, device=args.device, progress=False)
        train.train(cfg, xr, device=args.device, progress=False, checkpoint_path=ck, stop_after_steps=4)
        resumed = train.train(cfg, xr, device=args.device, progress=False, checkpoint_path=ck)
        diff = float(np.max(np.abs(np.array(full.history["loss"]) - np.array(resumed.history["loss"]))))
        out["resume"] = {"max_abs_loss_difference": diff, "exact": diff == 0.0}
        log(f"(a) resume on {args.device}: max |loss difference| {diff:.3g} (exact={diff == 0.0})")
    except RuntimeError as exc:  # e.g. CUBLAS_WORKSPACE_CONFIG unset
        out["resume"] = {"error": str(exc)}
        log(f"(a) resume: {exc}")
    finally:
        if ck.exists():
            ck.unlink()
    # features and probes: device probe vs scikit-learn on the CPU
    y = (torch.arange(len(x)) % 10).numpy()
    h, _ = train.extract_features(res.model, x, device=args.device)
    half = len(x) // 2
    t0 = time.perf_counter()
    acc_dev = metrics.linear_probe_accuracy(h[:half], y[:half], h[half:], y[half:], solver="torch",
                                            device=args.device, max_iter=200)
    t_dev = time.perf_counter() - t0
    t0 = time.perf_counter()
    acc_cpu = metrics.linear_probe_accuracy(h[:half], y[:half], h[half:], y[half:], solver="sklearn", max_iter=200)
    t_cpu = time.perf_counter() - t0
    out["probe"] = {"device_accuracy": acc_dev, "sklearn_accuracy": acc_cpu, "device_s": t_dev, "sklearn_s": t_cpu,
                    "agree_within_0.01": abs(acc_dev - acc_cpu) <= 0.01}
    log(f"(a) probe: device {acc_dev:.4f} ({t_dev:.2f} s) vs sklearn {acc_cpu:.4f} ({t_cpu:.2f} s)")
    return out


def _peak(device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(torch.device(device))
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def part_b(args, log) -> dict:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import simclr_throughput

    out = {}
    peak = _peak(args.device)
    for backbone in (["small_cnn"] if args.tiny else ["resnet18", "resnet34"]):
        js = Path(args.out) / f"throughput_{backbone}.json"
        argv = ["--model", backbone, "--batch", str(args.batch), "--steps", str(args.throughput_steps),
                "--rounds", str(args.rounds), "--device", args.device, "--workers", str(args.workers),
                "--data", "synthetic", "--n-images", str(max(args.batch * args.throughput_steps, 10000)),
                "--precision", "auto", "--json", str(js)]
        t0 = time.perf_counter()
        ratio = simclr_throughput.main(argv)
        rec = json.loads(js.read_text())
        ours = float(np.median([r["ours_img_s"] for r in rec["rounds"]]))
        flop = models.training_flops_per_view(backbone)
        tflops = 2 * ours * flop / 1e12
        out[backbone] = {"ratio_ours_over_baseline": ratio, "ours_img_s": ours,
                         "baseline_img_s": float(np.median([r["baseline_img_s"] for r in rec["rounds"]])),
                         "flop_per_view": flop, "achieved_tflop_s": tflops,
                         "fraction_of_bf16_peak": tflops / peak if peak else None,
                         "precision": rec["settings"].get("precision"), "seconds": time.perf_counter() - t0}
        log(f"(b) {backbone}: ours {ours:.0f} img/s, ratio {ratio:.2f}, {tflops:.1f} TFLOP/s"
            + (f" = {tflops / peak:.1%} of {peak:g}" if peak else ""))
    return out


def part_c(args, log) -> dict:
    from rharm.vision import data

    if args.tiny:
        labels = torch.arange(400) % 10
        imgs = _images(400, 3)
        te_imgs, te_labels = _images(200, 4), torch.arange(200) % 10
        backbone, npc, source = "small_cnn", 40, "synthetic gratings"
    else:
        tr = data.load_dataset(args.dataset, "train") if hasattr(data, "load_dataset") else data.load_cifar10("train")
        te = data.load_dataset(args.dataset, "test") if hasattr(data, "load_dataset") else data.load_cifar10("test")
        imgs, labels, te_imgs, te_labels = tr.images, tr.labels, te.images, te.labels
        backbone, npc, source = args.science_backbone, 5000, getattr(tr, "source", args.dataset)
    classes = list(data.CIFAR10_CLASSES)
    mi, pa = classes.index(args.minority), classes.index(args.partner)
    rows = []
    for seed in range(args.seeds):
        cos = {}
        for cond in ("balanced", "minority"):
            keep = np.ones(len(labels), dtype=bool)
            if cond == "minority":
                keep = data.underrepresent(labels, mi, args.ratio, seed) if not args.tiny else keep
                if args.tiny:
                    idx = np.flatnonzero(labels.numpy() == mi)
                    keep[idx[max(1, len(idx) // args.ratio):]] = False
            keep_t = torch.from_numpy(np.asarray(keep))
            cfg = train.TrainConfig(backbone=backbone, epochs=args.science_epochs,
                                    batch_size=min(args.batch, int(keep_t.sum())), lr=0.6 if not args.tiny else 0.3,
                                    seed=seed, precision="auto", deterministic=False, checkpoint_every=0)
            t0 = time.perf_counter()
            res = train.train(cfg, imgs[keep_t], labels[keep_t], device=args.device, progress=False,
                              sample_ids=torch.nonzero(keep_t).ravel())
            h, _ = train.extract_features(res.model, te_imgs, device=args.device)
            cos[cond] = metrics.class_cosines(h, te_labels, 10)
            log(f"(c) seed {seed} {cond}: {int(keep_t.sum())} images, final loss {res.history['loss'][-1]:.3f}, "
                f"{time.perf_counter() - t0:.0f} s")
        rh = metrics.representation_harm(cos["minority"], cos["balanced"])
        rows.append({"seed": seed, "rh_minority_partner": float(rh[mi, pa]),
                     "rh_minority_row_mean": float(np.mean(np.delete(rh[mi], mi)))})
        log(f"(c) seed {seed}: RH({args.minority}, {args.partner}) = {rh[mi, pa]:.3f}")
    return {"source": source, "backbone": backbone, "epochs": args.science_epochs, "ratio": args.ratio,
            "minority": args.minority, "partner": args.partner, "n_per_class": npc, "rows": rows}


def main(argv=None) -> dict:
    args = parse_args(argv)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = Log(out_dir / "device_check.log")
    t_start = time.perf_counter()
    record: dict = {"settings": vars(args), "torch": torch.__version__, "python": platform.python_version(),
                    "device": torch.cuda.get_device_name(torch.device(args.device))
                    if args.device.startswith("cuda") else f"{platform.processor() or 'CPU'} (CPU)",
                    "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG")}
    log(f"device check on {record['device']}, torch {torch.__version__}")
    for part, fn in (("a", part_a), ("b", part_b), ("c", part_c)):
        if part in args.skip:
            continue
        t0 = time.perf_counter()
        try:
            record[part] = fn(args, log)
        except Exception as exc:  # one failing part must not lose the others' numbers
            record[part] = {"error": f"{type(exc).__name__}: {exc}"}
            log(f"({part}) FAILED: {type(exc).__name__}: {exc}")
        record[part]["seconds_total"] = time.perf_counter() - t0
        (out_dir / "device_check.json").write_text(json.dumps(record, indent=2, default=str))
    record["wall_s"] = time.perf_counter() - t_start
    (out_dir / "device_check.json").write_text(json.dumps(record, indent=2, default=str))
    log(f"done in {record['wall_s']:.0f} s")
    return record


if __name__ == "__main__":
    main(sys.argv[1:])
