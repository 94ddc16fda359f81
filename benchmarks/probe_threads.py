"""Benchmark: the sklearn probe (:func:`rharm.harm.probe.fit_logistic`) with one BLAS thread, against the BLAS library's
default thread count, in this process, on the same data.

    .venv/bin/python benchmarks/probe_threads.py                 # the chapters' probe sizes
    .venv/bin/python benchmarks/probe_threads.py --json out.json

For each size (rows, features, classes) it fits L2 multinomial logistic regression (C = 1) on unit-normalised
Gaussian class clusters, ``--reps`` times per setting after one warm-up fit, with BLAS limited to 1 thread and then to
``--threads`` (default: the machine's core count), and prints the median seconds per fit and the ratio. ``fit_logistic``
fits with one BLAS thread because of this measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np


def data(n: int, d: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    x = rng.normal(size=(n, d)) / np.sqrt(d) + 0.3 * rng.normal(size=(k, d))[y] / np.sqrt(d)
    return x / np.linalg.norm(x, axis=1, keepdims=True), y


def seconds_per_fit(x, y, threads: int, reps: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    times = []
    with threadpool_limits(limits=threads, user_api="blas"):
        LogisticRegression(C=1.0).fit(x, y)  # warm-up
        for _ in range(reps):
            t = time.perf_counter()
            LogisticRegression(C=1.0).fit(x, y)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    rows = []
    # (rows, features, classes): a design-B probe pool, design A's, the CIFAR cpu pool, a larger pool
    for n, d, k in [(4000, 128, 5), (5000, 128, 10), (5000, 512, 10), (20000, 512, 10)]:
        x, y = data(n, d, k)
        one = seconds_per_fit(x, y, 1, a.reps)
        many = seconds_per_fit(x, y, a.threads, a.reps)
        rows.append({"rows": n, "features": d, "classes": k, "s_one_thread": one, f"s_{a.threads}_threads": many,
                     "speedup_one_thread": many / one})
        print(f"{n:>6} x {d:<4} {k:>2} classes: 1 thread {one:.3f} s, {a.threads} threads {many:.3f} s, "
              f"one thread x{many / one:.2f} as fast")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return rows


if __name__ == "__main__":
    main()
