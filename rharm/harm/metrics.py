"""Representation harm: class cosines, the RH matrix, its uncertainty, tests and summaries.

Book chapter: "Representation harm in SimCLR on CIFAR-10" (``notebooks/representation_harm.py``).

Definitions (arXiv 2310.01583, §2.1.2). For a model M with unit-normalised features u(x) = f(x)/||f(x)||
and class means of the unit vectors mu_i = mean_{x in class i} u(x),

    cos_M(i, j) = mean_{a in i, b in j} <u(a), u(b)> = <mu_i, mu_j>          (i != j: every pair is distinct)
    cos_M(i, i) = mean_{a != b in i} <u(a), u(b)> = (‖s_i‖² - n_i) / (n_i (n_i - 1)),  s_i = n_i mu_i

The within-class cell (the diagonal) excludes self-pairs by default (``within="unbiased"``): each item's cosine with
itself is 1, so the all-pairs mean <mu_i, mu_i> the paper's code uses (``within="paper"``) is biased high by
(1 - cos(i, i)) / n_i, and the distance 1 - cos(i, i) low by as much. Between-class cells are the same either way.

    RH(i, j)    = (1 - cos_{M_i}(i, j)) / (1 - cos_{M_bal}(i, j))

where M_i was trained with class i underrepresented and M_bal on balanced data. Row i of an RH matrix comes from
M_i only. RH(i, j) < 1: the minority class moved closer to class j (representation harm).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

# CIFAR10_CLASSES is defined once in rharm.core.common; metrics.CIFAR10_CLASSES stays importable
from rharm.core import runtime
from rharm.core.common import CIFAR10_CLASSES, check_choice
from rharm.harm import probe, stats

MULTICOMP_METHODS = stats.P_ADJUSTMENTS

#: estimators of the within-class cell (the diagonal): ``"unbiased"`` (default) averages over the n (n - 1) pairs of
#: distinct items; ``"paper"`` over all n^2 pairs, self-pairs included, as the paper's code does (for reproductions)
WITHIN_ESTIMATORS = ("unbiased", "paper")


def as_numpy(x: Any, dtype=np.float64) -> np.ndarray:
    """An array, list or torch tensor (detached, on the CPU) as a numpy array of ``dtype``.

    Example:
        >>> import torch
        >>> as_numpy(torch.tensor([1, 2]))
        array([1., 2.])
        >>> as_numpy([0.0, 1.0], np.int64)
        array([0, 1])
    """
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def unit_normalise(features: Any) -> np.ndarray:
    """Rows divided by their L2 norm. (N, d) -> (N, d) float64; zero rows raise ValueError.

    Example:
        >>> unit_normalise([[3.0, 4.0], [0.0, 2.0]])
        array([[0.6, 0.8],
               [0. , 1. ]])
    """
    x = as_numpy(features)
    if x.ndim != 2:
        raise ValueError(f"features must be 2-D (N, d); got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("features contain an all-zero row; its direction (and cosine) is undefined")
    return x / norms


def _check_labels(labels: Any, n: int, num_classes: int | None) -> tuple[np.ndarray, int]:
    y = as_numpy(labels, dtype=np.int64).reshape(-1)
    if y.shape[0] != n:
        raise ValueError(f"labels has {y.shape[0]} entries but features has {n} rows; they must match")
    if y.size and y.min() < 0:
        raise ValueError(f"labels must be non-negative class indices; got min {y.min()}")
    k = int(y.max()) + 1 if num_classes is None else int(num_classes)
    if y.size and y.max() >= k:
        raise ValueError(f"num_classes={num_classes} but labels contain {y.max()}; valid labels are 0..{k - 1}")
    return y, k


def class_means(features: Any, labels: Any, num_classes: int | None = None) -> np.ndarray:
    """Means of the unit-normalised features per class. features (N, d), labels (N,) -> (K, d).

    A class without samples raises ValueError (its cosines would be undefined).

    Example:
        >>> class_means([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]], [0, 0, 1])
        array([[0.5, 0.5],
               [1. , 0. ]])
    """
    _, _, sums, counts, _ = _class_sums(features, labels, num_classes)
    return sums / counts[:, None]


def _class_sums(features: Any, labels: Any, num_classes: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                              np.ndarray, int]:
    """(unit vectors (N, d), labels (N,), class sums of unit vectors (K, d), counts (K,), K); empty classes raise."""
    u = unit_normalise(features)
    y, k = _check_labels(labels, u.shape[0], num_classes)
    counts = np.bincount(y, minlength=k)
    if np.any(counts == 0):
        raise ValueError(f"classes {np.flatnonzero(counts == 0).tolist()} have no samples; "
                         f"every class 0..{k - 1} needs one")
    sums = np.zeros((k, u.shape[1]))
    np.add.at(sums, y, u)
    return u, y, sums, counts, k


def within_from_sums(sums: Any, counts: Any, self_weight: Any = None) -> np.ndarray:
    """Mean cosine over pairs of distinct items of one class, from its sum of unit vectors: O(d) per class.

    With s = sum_a w_a u_a (weights w_a >= 0, e.g. bootstrap counts; all 1 for the sample itself), n = sum_a w_a and
    q = sum_a w_a^2 (``self_weight``; default ``counts``, i.e. unit weights)::

        sum_{a != b} w_a w_b <u_a, u_b> / sum_{a != b} w_a w_b = (‖s‖² - q) / (n^2 - q)

    since <u_a, u_a> = 1. With unit weights this is (‖s‖² - n) / (n (n - 1)). A class whose items have no pair of
    distinct items (n = 1, or a resample of one item repeated) has no within-class pairs: NaN.

    Args:
        sums: (..., d) sums of unit vectors; counts: (...) n; self_weight: (...) q or None.

    Returns:
        (...) float64, NaN where n^2 - q = 0.

    Example:
        Two unit vectors at 60 degrees (cosine 0.5), from their sum alone; then item 0 drawn twice, item 1 once:

        >>> u = np.array([[1.0, 0.0], [0.5, np.sqrt(0.75)]])
        >>> round(float(within_from_sums(u.sum(0), 2)), 6)
        0.5
        >>> round(float(within_from_sums(2 * u[0] + u[1], 3, self_weight=2**2 + 1**2)), 6)  # no self-pairs
        0.5
    """
    s = np.asarray(sums, dtype=np.float64)
    n = np.asarray(counts, dtype=np.float64)
    q = n if self_weight is None else np.asarray(self_weight, dtype=np.float64)
    num = np.einsum("...d,...d->...", s, s) - q
    den = n * n - q
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return np.clip(out, -1.0, 1.0)


def class_cosines(features: Any, labels: Any, num_classes: int | None = None, *,
                  within: str = "unbiased") -> np.ndarray:
    """Mean pairwise cosine between classes; within a class over pairs of distinct items unless ``within="paper"``.

    Off the diagonal, cos(i, j) = mean_{a in i, b in j} <u(a), u(b)> = <mu_i, mu_j>. On it, ``within="unbiased"``
    (default) gives the mean over the n_i (n_i - 1) pairs a != b, (‖s_i‖² - n_i) / (n_i (n_i - 1)) with s_i the
    class sum of unit vectors (:func:`within_from_sums`); ``within="paper"`` the mean over all n_i^2 pairs,
    self-pairs included (<mu_i, mu_i>, the paper's code), which is biased high by (1 - cos(i, i)) / n_i. Both are
    computed in O(N d) from the class sums and equal the brute-force pair means exactly.

    Args:
        features: (N, d) array or tensor.
        labels: (N,) integer class indices 0..K-1.
        num_classes: K; default max(label) + 1.
        within: ``"unbiased"`` or ``"paper"`` (:data:`WITHIN_ESTIMATORS`).

    Returns:
        (K, K) float64, symmetric. With ``within="unbiased"`` a class with one item has no within-class pair: its
        diagonal cell is NaN (its between-class cells are defined).

    Example:
        Two classes of two items each; the features need not be unit length:

        >>> x = [[1.0, 0.0], [0.8, 0.6], [0.0, 2.0], [0.6, 0.8]]
        >>> class_cosines(x, [0, 0, 1, 1]).round(3)
        array([[0.8 , 0.54],
               [0.54, 0.8 ]])
        >>> class_cosines(x, [0, 0, 1, 1], within="paper").round(3)  # self-pairs included on the diagonal
        array([[0.9 , 0.54],
               [0.54, 0.9 ]])
    """
    check_choice("within", within, WITHIN_ESTIMATORS)
    _, _, sums, counts, _ = _class_sums(features, labels, num_classes)
    mu = sums / counts[:, None]
    cos = mu @ mu.T
    if within == "unbiased":
        np.fill_diagonal(cos, within_from_sums(sums, counts))
    return cos


def class_cosine_stats(features: Any, labels: Any, num_classes: int | None = None, *,
                       within: str = "unbiased") -> dict[str, np.ndarray]:
    """Mean, std and count of the individual pairwise cosines between classes (within a class: pairs of distinct
    items unless ``within="paper"``, as :func:`class_cosines`).

    The std uses the second moment E[<u_a, u_b>^2] = sum(C_i * C_j) with C_i = mean_{a in i} u_a u_a^T (d x d), so
    no N x N matrix is formed: O(N d^2). Without self-pairs (each contributes <u_a, u_a>^2 = 1) the within-class
    second moment is (n^2 E_all - n) / (n (n - 1)).

    Returns:
        dict with ``mean`` (K, K), ``std`` (K, K) (population std over the pairs), ``pairs`` (K, K) = n_i n_j off
        the diagonal and n_i (n_i - 1) (``"unbiased"``) or n_i^2 (``"paper"``) on it, ``counts`` (K,).

    Example:
        >>> st = class_cosine_stats([[1.0, 0.0], [0.8, 0.6], [0.0, 2.0], [0.6, 0.8]], [0, 0, 1, 1])
        >>> st["mean"].round(3)
        array([[0.8 , 0.54],
               [0.54, 0.8 ]])
        >>> st["std"].round(3)
        array([[0.   , 0.345],
               [0.345, 0.   ]])
        >>> st["pairs"]
        array([[2., 4.],
               [4., 2.]])
    """
    check_choice("within", within, WITHIN_ESTIMATORS)
    u, y, _, counts, k = _class_sums(features, labels, num_classes)
    mean = class_cosines(u, y, k, within=within)
    second = np.stack([(u[y == c].T @ u[y == c]) / counts[c] for c in range(k)])  # (K, d, d)
    flat = second.reshape(k, -1)
    m2 = flat @ flat.T
    pairs = np.outer(counts, counts).astype(float)
    if within == "unbiased":
        n = counts.astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.fill_diagonal(m2, (n * n * np.diag(m2) - n) / (n * (n - 1)))
        np.fill_diagonal(pairs, n * (n - 1))
    var = np.clip(m2 - mean**2, 0.0, None)
    return {"mean": mean, "std": np.sqrt(var), "pairs": pairs, "counts": counts}


def representation_harm(cos_imbalanced: Any, cos_balanced: Any) -> np.ndarray:
    """RH = (1 - cos_imbalanced) / (1 - cos_balanced), elementwise on arrays of equal shape.

    RH < 1: the pair is closer (more collapsed) after underrepresentation. A balanced cosine of exactly 1 gives
    inf/nan, as the ratio is undefined there.

    Example:
        A pair at cosine 0.9 after underrepresentation and 0.8 before is half as far apart:

        >>> representation_harm([0.9, 0.5], [0.8, 0.5]).round(6)
        array([0.5, 1. ])
    """
    a, b = as_numpy(cos_imbalanced), as_numpy(cos_balanced)
    if a.shape != b.shape:
        raise ValueError(f"cos_imbalanced shape {a.shape} and cos_balanced shape {b.shape} must be equal")
    with np.errstate(divide="ignore", invalid="ignore"):
        return (1.0 - a) / (1.0 - b)


# --------------------------------------------------------------------------------------------------------------
# Cosines over a grid of runs
# --------------------------------------------------------------------------------------------------------------


@dataclass
class CosineRuns:
    """Class-cosine matrices of a grid of runs, aligned by model seed.

    Attributes:
        classes: K class names; label k is ``classes[k]``.
        seeds: S model seeds; index s of every array is ``seeds[s]``.
        balanced: (S, K, K) cosines of the balanced models.
        imbalanced: minority class name -> (S, K, K) cosines of the models with that class underrepresented.
        balanced_pair_std: (S, K, K) std of the individual pairwise cosines of the balanced models (paper's ±).
        pairs: (K, K) number of pairs averaged over in the evaluation set: n_i n_j off the diagonal, n_i (n_i - 1)
            on it (n_i^2 with ``within="paper"``).
    """

    classes: list[str]
    seeds: list[int]
    balanced: np.ndarray
    imbalanced: dict[str, np.ndarray]
    balanced_pair_std: np.ndarray | None = None
    pairs: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        k, s = len(self.classes), len(self.seeds)
        if self.balanced.shape != (s, k, k):
            raise ValueError(f"balanced has shape {self.balanced.shape}; expected (S, K, K) = {(s, k, k)}")
        for name, arr in self.imbalanced.items():
            if name not in self.classes:
                raise ValueError(f"minority {name!r} is not a class; valid: {self.classes}")
            if arr.shape != (s, k, k):
                raise ValueError(f"imbalanced[{name!r}] has shape {arr.shape}; expected {(s, k, k)}")

    @property
    def minorities(self) -> list[str]:
        """Minority classes run, in class-label order.

        Example:
            >>> from rharm.harm.synthetic import synthetic_runs
            >>> runs = synthetic_runs(classes=("a", "b", "c"), minorities=("a",), collapse={"a": "b"}, seeds=(0, 1, 2),
            ...                       n_test=30, n_train=10, dim=8)
            >>> cr = cosine_runs(runs, classes=("a", "b", "c"))
            >>> cr.minorities, cr.seeds
            (['a'], [0, 1, 2])
        """
        return [c for c in self.classes if c in self.imbalanced]

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Row i of the model with minority i and of the balanced model: two arrays (R, S, K) for R minorities.

        Example:
            >>> from rharm.harm.synthetic import synthetic_runs
            >>> runs = synthetic_runs(classes=("a", "b", "c"), minorities=("a",), collapse={"a": "b"}, seeds=(0, 1, 2),
            ...                       n_test=30, n_train=10, dim=8)
            >>> cr = cosine_runs(runs, classes=("a", "b", "c"))
            >>> imb, bal = cr.rows()
            >>> imb.shape, bal.shape
            ((1, 3, 3), (1, 3, 3))
            >>> (1 - imb[0, :, 1]).round(2), (1 - bal[0, :, 1]).round(2)  # distance of "a" to "b" per seed
            (array([0.71, 0.7 , 0.7 ]), array([0.99, 1.02, 0.99]))
        """
        idx = [self.classes.index(m) for m in self.minorities]
        imb = np.stack([self.imbalanced[m][:, i, :] for m, i in zip(self.minorities, idx)])
        bal = np.stack([self.balanced[:, i, :] for i in idx])
        return imb, bal

    def relabel(self, permutation: Sequence[int]) -> "CosineRuns":
        """The same runs with class k renamed to label permutation[k] (for invariance checks).

        Example:
            >>> from rharm.harm.synthetic import synthetic_runs
            >>> runs = synthetic_runs(classes=("a", "b", "c"), minorities=("a",), collapse={"a": "b"}, seeds=(0, 1, 2),
            ...                       n_test=30, n_train=10, dim=8)
            >>> cr = cosine_runs(runs, classes=("a", "b", "c"))
            >>> cr.relabel([2, 0, 1]).classes
            ['b', 'c', 'a']
        """
        perm = np.asarray(permutation)
        inv = np.argsort(perm)
        classes = [self.classes[i] for i in inv]
        take = lambda a: a[:, inv][:, :, inv]  # noqa: E731
        return CosineRuns(classes, list(self.seeds), take(self.balanced),
                          {m: take(a) for m, a in self.imbalanced.items()},
                          None if self.balanced_pair_std is None else take(self.balanced_pair_std),
                          None if self.pairs is None else self.pairs[inv][:, inv], dict(self.meta))


def cosine_runs(results: Iterable[Any], *, feature: str = "test_backbone", label_key: str = "test_labels",
                classes: Sequence[str] = CIFAR10_CLASSES, within: str = "unbiased") -> CosineRuns:
    """Collect class cosines from run results (``rharm.runs.images.RunResult`` or anything with ``minority``,
    ``seed`` and ``features``).

    Args:
        results: runs; ``minority`` is a class name or None for balanced; ``features[feature]`` is (N, d) and
            ``features[label_key]`` (N,).
        feature: which saved feature to analyse (``test_backbone`` as the paper, or ``test_projection``).
        classes: class names by label index.
        within: estimator of the within-class cells (the diagonal), :data:`WITHIN_ESTIMATORS`: ``"unbiased"``
            (pairs of distinct items, default) or ``"paper"`` (self-pairs included, the paper's code; use it to
            reproduce the paper's diagonal). Recorded in ``meta["within"]``.

    Every minority must have been run with the same seeds as the balanced model (pairing by seed).

    Example:
        Three model seeds, class "a" underrepresented in one model per seed and collapsed halfway toward "b":

        >>> from rharm.harm.synthetic import synthetic_runs
        >>> runs = synthetic_runs(classes=("a", "b", "c"), minorities=("a",), collapse={"a": "b"}, seeds=(0, 1, 2),
        ...                       n_test=30, n_train=10, dim=8)
        >>> cr = cosine_runs(runs, classes=("a", "b", "c"))
        >>> cr.balanced.shape, list(cr.imbalanced), cr.imbalanced["a"].shape
        ((3, 3, 3), ['a'], (3, 3, 3))
        >>> cr.imbalanced["a"][0].round(2)
        array([[ 0.29,  0.29, -0.07],
               [ 0.29,  0.51, -0.14],
               [-0.07, -0.14,  0.46]])
    """
    check_choice("within", within, WITHIN_ESTIMATORS)
    classes = list(classes)
    k = len(classes)
    bal: dict[int, np.ndarray] = {}
    bal_std: dict[int, np.ndarray] = {}
    imb: dict[str, dict[int, np.ndarray]] = {}
    pairs = None
    for r in results:
        feats = r.features
        if feature not in feats:
            raise ValueError(f"feature={feature!r} is not saved in run {getattr(r, 'dir', '?')}; "
                             f"valid: {sorted(feats)}")
        x, y = feats[feature], feats[label_key]
        seed = int(r.seed)
        if r.minority is None:
            st = class_cosine_stats(x, y, k, within=within)
            bal[seed], bal_std[seed], pairs = st["mean"], st["std"], st["pairs"]
        else:
            if r.minority not in classes:
                raise ValueError(f"run minority {r.minority!r} is not a class; valid: {classes}")
            imb.setdefault(r.minority, {})[seed] = class_cosines(x, y, k, within=within)
    if not bal:
        raise ValueError("results contain no balanced run (minority=None); RH needs one per seed")
    seeds = sorted(bal)
    for m, d in imb.items():
        if sorted(d) != seeds:
            raise ValueError(f"minority {m!r} was run with seeds {sorted(d)} but the balanced model with {seeds}; "
                             "pairing needs the same seeds")
    return CosineRuns(classes, seeds, np.stack([bal[s] for s in seeds]),
                      {m: np.stack([imb[m][s] for s in seeds]) for m in classes if m in imb},
                      np.stack([bal_std[s] for s in seeds]), pairs, {"feature": feature, "within": within})


# --------------------------------------------------------------------------------------------------------------
# RH matrix, the paper's ±, and our estimator with its t-interval
# --------------------------------------------------------------------------------------------------------------


def _frame(values: np.ndarray, cr: CosineRuns) -> pd.DataFrame:
    df = pd.DataFrame(values, index=pd.Index(cr.minorities, name="minority"),
                      columns=pd.Index(cr.classes, name="other"))
    return df


def rh_matrix(cr: CosineRuns) -> pd.DataFrame:
    """The paper's estimator: RH(i, j) = (1 - mean_s cos_{M_i,s}(i, j)) / (1 - mean_s cos_{M_bal,s}(i, j)).

    Returns an (R, K) DataFrame: index = minority classes run, columns = all classes.

    Example:
        >>> from rharm.harm.synthetic import synthetic_runs
        >>> runs = synthetic_runs(classes=("a", "b", "c"), minorities=("a",), collapse={"a": "b"}, seeds=(0, 1, 2),
        ...                       n_test=30, n_train=10, dim=8)
        >>> cr = cosine_runs(runs, classes=("a", "b", "c"))
        >>> rh_matrix(cr).round(2)
        other        a    b     c
        minority
        a         1.38  0.7  1.02
    """
    imb, bal = cr.rows()
    return _frame(representation_harm(imb.mean(axis=1), bal.mean(axis=1)), cr)


def rh_paper_sd(cr: CosineRuns) -> pd.DataFrame:
    """The paper's "±" (as coded in the official repository), on the COSINE scale, not the ratio's:

        sd(i, j) = sqrt( SD_seeds[cos_{M_i}(i, j)]^2 + mean_seeds[ SE_pairs(cos_{M_bal}(i, j)) ]^2 ),
        SE_pairs = std of the n_i n_j individual pairwise cosines / sqrt(n_i n_j)

    SD over seeds is the population std (ddof = 0, numpy's default). Reproduced only to compare with the
    published figures; it is not a standard error of RH. The paper's diagonal cells are those of
    ``cosine_runs(..., within="paper")`` (n_i^2 pairs, self-pairs included).

    Example:
        >>> from rharm.harm.synthetic import synthetic_runs
        >>> runs = synthetic_runs(classes=("a", "b", "c"), minorities=("a",), collapse={"a": "b"}, seeds=(0, 1, 2),
        ...                       n_test=30, n_train=10, dim=8)
        >>> cr = cosine_runs(runs, classes=("a", "b", "c"))
        >>> rh_paper_sd(cr).round(3)
        other         a      b      c
        minority
        a         0.057  0.011  0.044
    """
    if cr.balanced_pair_std is None or cr.pairs is None:
        raise ValueError("cr has no balanced_pair_std/pairs; build it with cosine_runs() to get the paper's sd")
    imb, _ = cr.rows()
    idx = [cr.classes.index(m) for m in cr.minorities]
    se_pairs = cr.balanced_pair_std[:, idx, :] / np.sqrt(cr.pairs[idx, :])[None]  # (S, R, K)
    sd = np.sqrt(imb.std(axis=1) ** 2 + se_pairs.mean(axis=0) ** 2)
    return _frame(sd, cr)


#: the name every page gives the RH estimator over seeds (:func:`rh_interval`)
RH_ESTIMATOR = ("geometric mean over paired seeds of the per-seed RH, with a Student t-interval of the per-seed "
                "log RH, exponentiated")


def seed_log_rh(cr: CosineRuns) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed log distances of the minority rows: (log(1 - cos) of the underrepresented models, the same of the
    balanced models), each (R, S, K), seed s of one paired with seed s of the other.

    Example:
        >>> from rharm.harm.synthetic import synthetic_runs
        >>> runs = synthetic_runs(classes=("a", "b", "c"), minorities=("a",), collapse={"a": "b"}, seeds=(0, 1, 2),
        ...                       n_test=30, n_train=10, dim=8)
        >>> cr = cosine_runs(runs, classes=("a", "b", "c"))
        >>> log_imb, log_bal = seed_log_rh(cr)
        >>> log_imb.shape
        (1, 3, 3)
        >>> np.exp(log_imb - log_bal)[0].round(2)  # RH of row "a", seed by seed
        array([[1.3 , 0.71, 1.01],
               [1.43, 0.69, 1.01],
               [1.44, 0.7 , 1.03]])
    """
    imb, bal = cr.rows()
    return np.log1p(-imb), np.log1p(-bal)


def rh_interval(cr: CosineRuns, *, level: float = 0.95, paired: bool = True) -> dict[str, pd.DataFrame]:
    """RH of every cell over model seeds: the one estimator rharm shows, and its interval.

    ``paired=True`` (default, common random numbers): per seed s, d_s = log(1 - cos_{M_i,s}(i, j)) -
    log(1 - cos_{M_bal,s}(i, j)); RH = exp(mean_s d_s) (the geometric mean of the per-seed RH) and the interval is
    exp of the Student t-interval of d over seeds, so it agrees with the paired t-test of :func:`rh_test`.
    ``paired=False``: the balanced seeds are treated as an independent sample; RH = exp(mean log distance of the
    underrepresented models - mean log distance of the balanced ones), Welch's t-interval. With one seed RH is the
    single ratio and the interval is NaN (undefined). For one seed RH equals :func:`rh_matrix`, the paper's
    one-model estimator.

    Returns:
        dict of (R, K) DataFrames: ``estimate``, ``lo``, ``hi`` and ``se`` (standard error on the RH scale by the
        delta method, estimate x se of the mean log ratio).

    Example:
        >>> from rharm.harm.synthetic import synthetic_runs
        >>> runs = synthetic_runs(classes=("a", "b", "c"), minorities=("a",), collapse={"a": "b"}, seeds=(0, 1, 2),
        ...                       n_test=30, n_train=10, dim=8)
        >>> cr = cosine_runs(runs, classes=("a", "b", "c"))
        >>> rh = rh_interval(cr)
        >>> rh["estimate"].round(2)
        other        a    b     c
        minority
        a         1.39  0.7  1.02
        >>> rh["lo"].round(2)
        other       a     b     c
        minority
        a         1.2  0.67  0.98
        >>> rh["hi"].round(2)
        other       a     b     c
        minority
        a         1.6  0.74  1.05
    """
    from scipy import stats as sps

    if not 0 < level < 1:
        raise ValueError(f"level={level!r} is not valid; it must lie in (0, 1)")
    li, lb = seed_log_rh(cr)
    s = li.shape[1]
    q = (1 + level) / 2
    if paired:
        d = li - lb
        mean = d.mean(axis=1)
        se = d.std(axis=1, ddof=1) / np.sqrt(s) if s > 1 else np.full_like(mean, np.nan)
        t = sps.t.ppf(q, s - 1) if s > 1 else np.nan
    else:
        mean = li.mean(axis=1) - lb.mean(axis=1)
        if s > 1:
            vi, vb = li.var(axis=1, ddof=1) / s, lb.var(axis=1, ddof=1) / s
            se = np.sqrt(vi + vb)
            with np.errstate(divide="ignore", invalid="ignore"):
                df = (vi + vb) ** 2 / ((vi ** 2 + vb ** 2) / (s - 1))
            t = sps.t.ppf(q, np.where(np.isfinite(df), df, s - 1))
        else:
            se, t = np.full_like(mean, np.nan), np.nan
    est = np.exp(mean)
    return {"estimate": _frame(est, cr), "lo": _frame(np.exp(mean - t * se), cr),
            "hi": _frame(np.exp(mean + t * se), cr), "se": _frame(est * se, cr)}


#: which pairs of balanced seeds :func:`noise_floor_ratios` compares
NOISE_FLOOR_PAIRINGS = ("all", "consecutive")


def noise_floor_ratios(balanced: Sequence[Any], pairing: str = "all") -> list[tuple[int, int, np.ndarray]]:
    """The noise floor: RH between two *balanced* models of different seeds, as if one were "underrepresented".

    ``balanced[s]`` is the cosine matrix (or row) of the balanced model of seed index s. For each pair (a, b) of
    seed indices it gives ``representation_harm(balanced[a], balanced[b])`` = (1 - cos_a) / (1 - cos_b): what RH
    looks like with no underrepresentation at all. ``pairing="all"``: every ordered pair a != b (S(S-1) ratios);
    ``"consecutive"``: (a, b) = (s + 1, s) for s = 0..S-2 (S-1 ratios, each seed used at most twice).

    Returns:
        list of (a, b, rh) with ``rh`` of the shape of ``balanced[s]``; empty with fewer than two seeds.

    Example:
        >>> balanced = [np.array([0.5, 0.2]), np.array([0.6, 0.2]), np.array([0.55, 0.1])]
        >>> [(a, b, r.round(3).tolist()) for a, b, r in noise_floor_ratios(balanced, "consecutive")]
        [(1, 0, [0.8, 1.0]), (2, 1, [1.125, 1.125])]
    """
    check_choice("pairing", pairing, NOISE_FLOOR_PAIRINGS)
    n = len(balanced)
    pairs = ([(a, b) for a in range(n) for b in range(n) if a != b] if pairing == "all"
             else [(s + 1, s) for s in range(n - 1)])
    return [(a, b, representation_harm(balanced[a], balanced[b])) for a, b in pairs]


def noise_floor(cr: CosineRuns) -> pd.DataFrame:
    """RH between balanced models of different seeds: what RH looks like with no underrepresentation at all.

    For every ordered pair of seeds (a, b), a != b, and every row i in the minority rows run and column j:
    (1 - cos_{bal,a}(i, j)) / (1 - cos_{bal,b}(i, j)). This is the spread of a single-seed ratio; the seed-averaged
    estimator's spread is smaller by about sqrt(S).

    Returns:
        long DataFrame with columns seed_a, seed_b, minority, other, rh (empty if fewer than 2 seeds).

    Example:
        >>> from rharm.harm.synthetic import synthetic_runs
        >>> runs = synthetic_runs(classes=("a", "b", "c"), minorities=("a",), collapse={"a": "b"}, seeds=(0, 1, 2),
        ...                       n_test=30, n_train=10, dim=8)
        >>> cr = cosine_runs(runs, classes=("a", "b", "c"))
        >>> nf = noise_floor(cr)
        >>> len(nf)
        18
        >>> nf.head(3).round(3)
           seed_a  seed_b minority other     rh
        0       0       1        a     a  1.214
        1       0       1        a     b  0.972
        2       0       1        a     c  1.102
    """
    rows = []
    idx = [cr.classes.index(m) for m in cr.minorities] or list(range(len(cr.classes)))
    for a, b, r in noise_floor_ratios(cr.balanced, "all"):
        for i in idx:
            for j, c in enumerate(cr.classes):
                rows.append((cr.seeds[a], cr.seeds[b], cr.classes[i], c, float(r[i, j])))
    return pd.DataFrame(rows, columns=["seed_a", "seed_b", "minority", "other", "rh"])


def noise_floor_summary(cr: CosineRuns, level: float = 0.95, off_diagonal: bool = True,
                        rows: Sequence[str] | None = None) -> dict[str, float]:
    """Quantiles of :func:`noise_floor` RH values: ``lo``, ``median``, ``hi`` (central ``level`` band), ``min``,
    ``max``, ``n`` (values used). ``rows``: only these minority rows (default: every row :func:`noise_floor` gives).
    NaNs and ``n = 0`` if fewer than two seeds.

    Example:
        >>> from rharm.harm.synthetic import synthetic_runs
        >>> runs = synthetic_runs(classes=("a", "b", "c"), minorities=("a",), collapse={"a": "b"}, seeds=(0, 1, 2),
        ...                       n_test=30, n_train=10, dim=8)
        >>> cr = cosine_runs(runs, classes=("a", "b", "c"))
        >>> {k: round(v, 3) for k, v in noise_floor_summary(cr).items()}
        {'lo': 0.918, 'median': 1.0, 'hi': 1.09, 'min': 0.908, 'max': 1.102, 'n': 12}
    """
    nf = noise_floor(cr)
    if off_diagonal and len(nf):
        nf = nf[nf.minority != nf.other]
    if rows is not None and len(nf):
        nf = nf[nf.minority.isin(list(rows))]
    if not len(nf):
        return {"lo": float("nan"), "median": float("nan"), "hi": float("nan"), "min": float("nan"),
                "max": float("nan"), "n": 0}
    v = nf.rh.to_numpy()
    lo, hi = stats.percentile_interval(v, level)
    return {"lo": float(lo), "median": float(np.median(v)), "hi": float(hi), "min": float(v.min()),
            "max": float(v.max()), "n": int(v.size)}


def rh_test(cr: CosineRuns, *, method: str = "holm", alpha: float = 0.05,
            include_diagonal: bool = False) -> pd.DataFrame:
    """Per-cell one-sided test of RH < 1 with multiple-comparison control.

    For cell (i, j) the paired per-seed log-ratio d_s = log(1 - cos_{M_i,s}(i, j)) - log(1 - cos_{M_bal,s}(i, j))
    is tested with a one-sided one-sample t-test (``pingouin.ttest``, alternative "less", H0: mean d = 0) over the
    S seeds; p-values over all tested cells are adjusted with ``pingouin.multicomp`` (``method`` = "holm",
    "fdr_bh", "bonf" or "none").

    Returns:
        long DataFrame: minority, other, rh_seed_mean (exp of mean d), mean_log_ratio, t, dof, p, p_adj, reject.
        Needs S >= 2 seeds (raises ValueError otherwise).

    Example:
        >>> from rharm.harm.synthetic import synthetic_runs
        >>> runs = synthetic_runs(classes=("a", "b", "c"), minorities=("a",), collapse={"a": "b"}, seeds=(0, 1, 2),
        ...                       n_test=30, n_train=10, dim=8)
        >>> cr = cosine_runs(runs, classes=("a", "b", "c"))
        >>> rh_test(cr)[["minority", "other", "rh_seed_mean", "p", "p_adj", "reject"]].round(4)
          minority other  rh_seed_mean       p  p_adj  reject
        0        a     b        0.7013  0.0005  0.001    True
        1        a     c        1.0162  0.9160  0.916   False
    """
    import pingouin as pg

    if method not in MULTICOMP_METHODS:
        raise ValueError(f"method={method!r} is not valid; choose one of {MULTICOMP_METHODS}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha} must lie in (0, 1)")
    imb, bal = cr.rows()
    if imb.shape[1] < 2:
        raise ValueError(f"rh_test needs at least 2 seeds; got {imb.shape[1]}")
    d = np.log1p(-imb) - np.log1p(-bal)  # (R, S, K)
    rows = []
    for r, m in enumerate(cr.minorities):
        for j, c in enumerate(cr.classes):
            if c == m and not include_diagonal:
                continue
            x = d[r, :, j]
            if np.allclose(x, x[0]):  # zero variance: t undefined
                t, p = (0.0, 0.5) if x[0] == 0 else (np.copysign(np.inf, x[0]), 0.0 if x[0] < 0 else 1.0)
            else:
                res = pg.ttest(x, 0.0, alternative="less")
                t, p = float(res["T"].iloc[0]), float(res["p_val"].iloc[0] if "p_val" in res else res["p-val"].iloc[0])
            rows.append((m, c, float(np.exp(x.mean())), float(x.mean()), t, x.size - 1, p))
    out = pd.DataFrame(rows, columns=["minority", "other", "rh_seed_mean", "mean_log_ratio", "t", "dof", "p"])
    reject, out["p_adj"] = stats.adjust_p(out.p.to_numpy(), method, alpha)
    out["reject"] = reject
    return out


def pair_specificity(cr: CosineRuns, *, level: float = 0.95) -> pd.DataFrame:
    """Is each minority's collapse concentrated on one class (as in the paper) or spread over all classes?

    Per minority row i of the RH estimate (:func:`rh_interval`), over off-diagonal j::

        most_collapsed  = argmin_j RH(i, j) (chosen on the estimate over all seeds, then held fixed)
        contrast_s      = median_{j != i} RH_s(i, j) - RH_s(i, most_collapsed)  per seed s (> 0: one class stands out)
        contrast        = mean_s contrast_s, with its Student t-interval over seeds (NaN with one seed)
        share           = (1 - RH_min)_+ / sum_{j != i} (1 - RH(i, j))_+    (1: all collapse in one cell)

    Returns:
        DataFrame indexed by minority: most_collapsed, rh_min, rh_median_other, contrast, contrast_lo,
        contrast_hi, share.

    Example:
        >>> from rharm.harm.synthetic import synthetic_runs
        >>> runs = synthetic_runs(classes=("a", "b", "c"), minorities=("a",), collapse={"a": "b"}, seeds=(0, 1, 2),
        ...                       n_test=30, n_train=10, dim=8)
        >>> cr = cosine_runs(runs, classes=("a", "b", "c"))
        >>> pair_specificity(cr)[["most_collapsed", "rh_min", "rh_median_other", "share"]].round(2)
                 most_collapsed  rh_min  rh_median_other  share
        minority
        a                     b     0.7             0.86    1.0
    """
    li, lb = seed_log_rh(cr)
    per_seed = np.exp(li - lb)  # (R, S, K) RH of each seed's paired models
    est = rh_interval(cr, level=level)["estimate"]
    rows = []
    for r, m in enumerate(cr.minorities):
        off = [j for j, c in enumerate(cr.classes) if c != m]
        v = est.loc[m].to_numpy()[off]
        jstar = off[int(np.argmin(v))]
        contrast, lo, hi = stats.t_interval(np.median(per_seed[r][:, off], axis=1) - per_seed[r][:, jstar],
                                            level=level)
        pos = np.clip(1 - v, 0, None)
        share = float(pos.max() / pos.sum()) if pos.sum() > 0 else float("nan")
        rows.append((m, cr.classes[jstar], float(v.min()), float(np.median(v)), float(contrast), float(lo),
                     float(hi), share))
    return pd.DataFrame(rows, columns=["minority", "most_collapsed", "rh_min", "rh_median_other", "contrast",
                                       "contrast_lo", "contrast_hi", "share"]).set_index("minority")


def most_collapsed_table(estimate: pd.DataFrame, lo: pd.DataFrame, hi: pd.DataFrame,
                         paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each minority row's most-collapsed other class (smallest off-diagonal RH) with its CI, beside the paper.

    Args:
        estimate, lo, hi: (R, K) DataFrames from :func:`rh_interval`.
        paper: the paper's RH matrix (``rharm.core.reference.matrix("simclr_100_rh")``), rows/columns by class name.

    Returns:
        DataFrame indexed by minority: ours_class, ours_rh, ours_lo, ours_hi and, with ``paper``, paper_class,
        paper_rh (the paper's most-collapsed cell in that row) and paper_rh_same_cell (the paper's value in our cell).

    Example:
        >>> from rharm.harm.synthetic import synthetic_runs
        >>> runs = synthetic_runs(classes=("a", "b", "c"), minorities=("a",), collapse={"a": "b"}, seeds=(0, 1, 2),
        ...                       n_test=30, n_train=10, dim=8)
        >>> cr = cosine_runs(runs, classes=("a", "b", "c"))
        >>> rh = rh_interval(cr)
        >>> most_collapsed_table(rh["estimate"], rh["lo"], rh["hi"]).round(2)
                 ours_class  ours_rh  ours_lo  ours_hi
        minority
        a                 b      0.7     0.67     0.74
    """
    rows = []
    for m in estimate.index:
        v = estimate.loc[m].drop(m)
        j = v.idxmin()
        row = {"minority": m, "ours_class": j, "ours_rh": v[j], "ours_lo": lo.loc[m, j], "ours_hi": hi.loc[m, j]}
        if paper is not None and m in paper.index:
            pv = paper.loc[m].drop(m)
            row.update(paper_class=pv.idxmin(), paper_rh=pv.min(), paper_rh_same_cell=paper.loc[m, j])
        rows.append(row)
    return pd.DataFrame(rows).set_index("minority")


def long_rh(estimate: pd.DataFrame, lo: pd.DataFrame | None = None, hi: pd.DataFrame | None = None,
            paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """(R, K) RH frames -> long table minority, other, rh[, lo, hi][, paper] for charts and scatter plots.

    Example:
        >>> from rharm.harm.synthetic import synthetic_runs
        >>> runs = synthetic_runs(classes=("a", "b", "c"), minorities=("a",), collapse={"a": "b"}, seeds=(0, 1, 2),
        ...                       n_test=30, n_train=10, dim=8)
        >>> cr = cosine_runs(runs, classes=("a", "b", "c"))
        >>> rh = rh_interval(cr)
        >>> long_rh(rh["estimate"], rh["lo"], rh["hi"]).round(2)
          minority other    rh    lo    hi
        0        a     a  1.39  1.20  1.60
        1        a     b  0.70  0.67  0.74
        2        a     c  1.02  0.98  1.05
    """
    out = estimate.stack().rename("rh").reset_index()
    out.columns = ["minority", "other", "rh"]
    if lo is not None:
        out["lo"] = lo.stack().to_numpy()
        out["hi"] = hi.stack().to_numpy()
    if paper is not None:
        out["paper"] = [paper.loc[m, o] if (m in paper.index and o in paper.columns) else np.nan
                        for m, o in zip(out.minority, out.other)]
    return out


# --------------------------------------------------------------------------------------------------------------
# Sanity anchor
# --------------------------------------------------------------------------------------------------------------


def linear_probe_accuracy(train_features: Any, train_labels: Any, test_features: Any, test_labels: Any, *,
                          C: float = 0.1, max_iter: int = 200, normalise: bool = True, solver: str = "auto",
                          device: str = "auto") -> float:
    """Top-1 test accuracy of a multinomial logistic-regression probe on frozen features.

    The paper's monitor: sklearn ``LogisticRegression(C=0.1)`` trained on the balanced training set's backbone
    features, scored on the test set. Features are L2-normalised first when ``normalise``.
    train_features (N, d), train_labels (N,), test_features (M, d), test_labels (M,) -> accuracy in [0, 1].
    ``solver``: "sklearn", "torch" (:func:`rharm.harm.probe.fit_multinomial` on ``device``, the same objective) or
    "auto" (torch when ``device`` resolves to CUDA, else sklearn).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> y = np.repeat([0, 1, 2], 20)
        >>> x = np.eye(3)[y] + 0.3 * rng.normal(size=(60, 3))
        >>> round(linear_probe_accuracy(x[::2], y[::2], x[1::2], y[1::2], solver="sklearn", device="cpu"), 3)
        1.0
    """

    if C <= 0:
        raise ValueError(f"C={C} must be > 0")
    if solver not in ("auto", "sklearn", "torch"):
        raise ValueError(f"solver={solver!r} is not valid; choose one of ['auto', 'sklearn', 'torch']")
    dev = runtime.resolve_device(device)
    xtr, xte = (unit_normalise(train_features), unit_normalise(test_features)) if normalise else \
        (as_numpy(train_features), as_numpy(test_features))
    ytr, yte = as_numpy(train_labels, np.int64), as_numpy(test_labels, np.int64)
    use = "torch" if solver == "torch" or (solver == "auto" and dev.type == "cuda") else "sklearn"
    model = probe.fit_logistic(xtr, ytr, C, max_iter=max_iter, solver=use, device=dev)
    return float((probe.predict_logistic(model, xte) == yte).mean())


# --------------------------------------------------------------------------------------------------------------
# Synthetic runs with a planted collapse (tests, and developing without trained models)
# --------------------------------------------------------------------------------------------------------------
