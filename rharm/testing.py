"""Synthetic runs for tests and examples: stand-ins for trained models whose class geometry is known.

:func:`synthetic_runs` plants a collapse of chosen minorities toward chosen classes in Gaussian class clusters, so a
metric, a test or a chapter summary can be checked against a known answer without training anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from . import stats
from .common import CIFAR10_CLASSES


@dataclass
class SyntheticRun:
    """Stand-in for ``rharm.experiment.RunResult`` with the fields the metrics use."""

    minority: str | None
    seed: int
    ratio: int
    features: dict[str, np.ndarray]
    dir: str = "<synthetic>"
    meta: dict[str, Any] = field(default_factory=dict)


def synthetic_runs(*, classes: Sequence[str] = CIFAR10_CLASSES, minorities: Sequence[str] = ("automobile",),
                   collapse: dict[str, str] | None = None, strength: float = 0.5, seeds: Sequence[int] = (0, 1, 2),
                   ratio: int = 100, n_test: int = 100, n_train: int = 200, dim: int = 32, spread: float = 1.0,
                   model_noise: float = 0.05, seed_noise: float = 0.1) -> list[SyntheticRun]:
    """Gaussian class clusters, with class ``m`` moved toward ``collapse[m]`` in the model where m is the minority.

    Per seed s, class centres c_k (orthonormal, plus N(0, seed_noise^2) per seed) and the "images"' offsets
    e_n ~ N(0, spread^2 / dim) are drawn once and shared by all models of that seed (the same test images); each
    model adds its own N(0, model_noise^2 / dim) noise. In the model with minority m and target t = collapse[m],
    class m's centre becomes (1 - strength) c_m + strength c_t. Minorities without a target get no change.

    Returns:
        list of :class:`SyntheticRun` (balanced first, then each minority), per seed; features ``test_backbone``
        (K n_test, dim), ``test_labels``, ``train_backbone`` (K n_train, dim), ``train_labels`` and
        ``train_in_cl`` (the minority kept at n_train // ratio).
    """
    collapse = dict(collapse or {})
    classes = list(classes)
    k = len(classes)
    base = np.random.default_rng(12345)
    if dim < k:
        raise ValueError(f"dim={dim} must be >= the number of classes {k} (orthonormal class centres)")
    centres0 = np.linalg.qr(base.normal(size=(dim, k)))[0].T  # (K, dim), orthonormal rows
    out: list[SyntheticRun] = []
    for s in seeds:
        rng = np.random.default_rng(1000 + int(s))
        centres = centres0 + seed_noise * rng.normal(size=(k, dim)) / np.sqrt(dim)
        y_te = np.repeat(np.arange(k), n_test)
        y_tr = np.repeat(np.arange(k), n_train)
        e_te = spread * rng.normal(size=(y_te.size, dim)) / np.sqrt(dim)
        e_tr = spread * rng.normal(size=(y_tr.size, dim)) / np.sqrt(dim)
        for m in [None, *minorities]:
            c = centres.copy()
            mask = np.ones(y_tr.size, dtype=bool)
            if m is not None:
                i = classes.index(m)
                if m in collapse:
                    c[i] = (1 - strength) * c[i] + strength * c[classes.index(collapse[m])]
                mask = stats.undersample_mask(y_tr, i, ratio, np.random.default_rng(int(s)))
            mrng = np.random.default_rng([int(s), 0 if m is None else 1 + classes.index(m)])
            f_te = c[y_te] + e_te + model_noise * mrng.normal(size=e_te.shape) / np.sqrt(dim)
            f_tr = c[y_tr] + e_tr + model_noise * mrng.normal(size=e_tr.shape) / np.sqrt(dim)
            out.append(SyntheticRun(m, int(s), ratio, {
                "test_backbone": f_te.astype(np.float32), "test_labels": y_te,
                "train_backbone": f_tr.astype(np.float32),
                "train_labels": y_tr, "train_in_cl": mask}))
    return out
