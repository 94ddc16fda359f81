"""Benchmark of ``rharm audit``: the O(n d) class cosine distances against the all-pairs definition, and an audit of
a large memory-mapped ``.npy`` with its peak resident memory.

    .venv/bin/python benchmarks/audit_scale.py                       # ratio only (seconds)
    .venv/bin/python benchmarks/audit_scale.py --scale 1000000       # + the 1M x 768 audit (writes ~4.5 GB to --tmp)

Part 1 times, in this process and on the same data (n items, d = 768, K groups), the all-pairs definition
(:func:`rharm.harm.audit.class_cosine_distance_pairwise`, an n x n Gram matrix) and the streamed pass :func:`rharm.harm.audit`
uses (class sums of unit vectors, chunk by chunk, no bootstrap), and reports their ratio; both results must agree.
Part 2 writes float32 embeddings (n x 768) and a reference (n x 384, another encoder's dimension) to .npy files, then
runs the full audit (bootstrap, probe) in a child process, which reports its wall time and peak resident memory
(``VmHWM`` of /proc/self/status: this process only; ``ru_maxrss`` can carry the parent's peak across fork/exec). ``--json PATH`` writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = """
import json, resource, sys, time
import numpy as np
from rharm import audit as A
emb, ref, lab, n_boot = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
labels = np.load(lab)
t = time.perf_counter()
r = A.audit(emb, labels, reference=ref, n_boot=n_boot)
wall = time.perf_counter() - t
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
print(json.dumps({"wall_s": wall, "peak_rss_mib": hwm, "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "seconds_stream": r.meta["seconds_stream"], "seconds_probe": r.meta["seconds_probe"],
                  "probe_items": r.meta["probe_items"], "top_pair": [str(r.ranking.class_a[0]), str(r.ranking.class_b[0])],
                  "top_rh": float(r.ranking.rh[0])}))
"""


def _data(n: int, d: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    centres = rng.normal(size=(k, d)).astype(np.float32)
    return centres[y] + rng.normal(size=(n, d)).astype(np.float32) * 3, y


def ratio(n: int, d: int, k: int, repeats: int) -> dict:
    from rharm.harm import audit as A

    x, y = _data(n, d, k, 0)
    src = A._ArraySource("embeddings", x)

    def fast():
        s = A._stream([src], y, k, 0, 0, A.DEFAULT_CHUNK_ROWS)[0]
        return 1.0 - A._cos_from_sums(s.unit, np.bincount(y, minlength=k))

    def naive():
        return A.class_cosine_distance_pairwise(x, y, k)

    times = {}
    for name, fn in (("naive_pairwise", naive), ("streamed", fast)):
        best = np.inf
        for _ in range(repeats):
            t = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - t)
        times[name] = (best, out)
    err = float(np.abs(times["naive_pairwise"][1] - times["streamed"][1]).max())
    assert err < 1e-9, err
    return {"n": n, "d": d, "k": k, "naive_pairwise_s": times["naive_pairwise"][0], "streamed_s": times["streamed"][0],
            "ratio_naive_over_streamed": times["naive_pairwise"][0] / times["streamed"][0], "max_abs_difference": err}


def scale(n: int, k: int, n_boot: int, tmp: Path) -> dict:
    tmp.mkdir(parents=True, exist_ok=True)
    paths = {"emb": tmp / "embeddings.npy", "ref": tmp / "reference.npy", "lab": tmp / "labels.npy"}
    rng = np.random.default_rng(1)
    y = rng.integers(0, k, size=n)
    np.save(paths["lab"], y)
    t = time.perf_counter()
    for key, d in (("emb", 768), ("ref", 384)):
        centres = np.random.default_rng(d).normal(size=(k, d)).astype(np.float32)
        if key == "emb":  # plant a collapse of group 0 toward group 1 in the audited encoder
            centres[0] = 0.3 * centres[0] + 0.7 * centres[1]
        mm = np.lib.format.open_memmap(paths[key], mode="w+", dtype=np.float32, shape=(n, d))
        for a in range(0, n, 65536):
            b = min(n, a + 65536)
            mm[a:b] = centres[y[a:b]] + 3 * rng.normal(size=(b - a, d)).astype(np.float32)
        mm.flush()
        del mm
    written = time.perf_counter() - t
    proc = subprocess.run([sys.executable, "-c", CHILD, str(paths["emb"]), str(paths["ref"]), str(paths["lab"]),
                           str(n_boot)], capture_output=True, text=True, check=True)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out.update(n=n, d=768, d_reference=384, k=k, n_boot=n_boot, write_s=written,
               bytes_on_disk=sum(p.stat().st_size for p in paths.values()))
    for p in paths.values():
        p.unlink()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=6000, help="items for the ratio (the n x n Gram must fit)")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scale", type=int, default=0, help="items of the large audit (0: skip)")
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--tmp", type=Path, default=None, help="folder for the large .npy files")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    res = {"ratio": ratio(args.n, 768, args.k, args.repeats)}
    print(json.dumps(res["ratio"]))
    if args.scale:
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            res["scale"] = scale(args.scale, args.k, args.n_boot, Path(tmp))
        print(json.dumps(res["scale"]))
    res["self_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        args.json.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
