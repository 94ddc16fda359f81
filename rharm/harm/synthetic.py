"""Synthetic runs for tests and examples: stand-ins for trained models whose class geometry is known.

:func:`synthetic_runs` plants a collapse of chosen minorities toward chosen classes in Gaussian class clusters, so a
metric, a test or a chapter summary can be checked against a known answer without training anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from rharm.core import sampling
from rharm.core.common import CIFAR10_CLASSES


@dataclass
class SyntheticRun:
    """Stand-in for ``rharm.runs.images.RunResult`` with the fields the metrics use."""

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
                mask = sampling.undersample_mask(y_tr, i, ratio, np.random.default_rng(int(s)))
            mrng = np.random.default_rng([int(s), 0 if m is None else 1 + classes.index(m)])
            f_te = c[y_te] + e_te + model_noise * mrng.normal(size=e_te.shape) / np.sqrt(dim)
            f_tr = c[y_tr] + e_tr + model_noise * mrng.normal(size=e_tr.shape) / np.sqrt(dim)
            out.append(SyntheticRun(m, int(s), ratio, {
                "test_backbone": f_te.astype(np.float32), "test_labels": y_te,
                "train_backbone": f_tr.astype(np.float32),
                "train_labels": y_tr, "train_in_cl": mask}))
    return out


def sphere_classes(*, k: int = 3, per: int | Sequence[int] = 200, dim: int = 16,
                   mean_cos: Sequence[float] | None = None, half_width: float = 0.25, overlap: float = 0.2,
                   rng: int | np.random.Generator | None = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings whose true class cosines are known exactly: items of class i have unit direction
    u = c e_i + sqrt(1 - c^2) v, v uniform on the unit sphere orthogonal to the class axis e_i and
    c ~ Uniform(m_i - half_width, m_i + half_width), each row then scaled by a random positive factor (cosines do
    not see it).

    E[u] = m_i e_i, so for two distinct items the expected cosine is m_i^2 within class i and m_i m_j <e_i, e_j>
    between classes i and j; the axes are unit vectors with <e_i, e_j> = ``overlap`` for i != j.

    Args:
        k: classes; per: items per class (an int or K ints); dim: dimension (>= k + 1);
        mean_cos: (K,) m_i in (half_width - 1, 1 - half_width); default evenly from 0.3 to 0.7.
        rng: seed or generator.

    Returns:
        (x (N, dim) float64, labels (N,) int64 in class order, truth (K, K) expected cosine of two distinct items).
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if dim < k + 1:
        raise ValueError(f"dim={dim} must be >= k + 1 = {k + 1}")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap={overlap} must lie in [0, 1)")
    m = np.linspace(0.3, 0.7, k) if mean_cos is None else np.asarray(mean_cos, dtype=np.float64)
    if m.shape != (k,) or np.any(np.abs(m) + half_width > 1):
        raise ValueError(f"mean_cos={m.tolist()} must hold k={k} values with |m| + half_width <= 1")
    sizes = np.full(k, int(per)) if np.ndim(per) == 0 else np.asarray(per, dtype=np.int64)
    q = np.linalg.qr(np.random.default_rng(4242).normal(size=(dim, k + 1)))[0].T  # (K + 1, dim) orthonormal
    # e_i = sqrt(1 - overlap) q_i + sqrt(overlap) q_K: unit vectors with pairwise inner product ``overlap``
    axes = np.sqrt(1 - overlap) * q[:k] + np.sqrt(overlap) * q[k]
    y = np.repeat(np.arange(k), sizes)
    e = axes[y]
    c = m[y] + half_width * rng.uniform(-1, 1, size=y.size)
    v = rng.normal(size=(y.size, dim))
    v -= np.einsum("nd,nd->n", v, e)[:, None] * e
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    u = c[:, None] * e + np.sqrt(1 - c**2)[:, None] * v
    x = u * np.exp(rng.normal(size=(y.size, 1)))
    truth = np.outer(m, m) * (axes @ axes.T)
    return x, y, truth
