"""Allocation harm and its causal mediation through the representation.

Book chapter: "Allocation harm and causal mediation" (``notebooks/allocation_harm.py``).

Treatment T: the minority class i is underrepresented (T = 1) or not (T = 0). Mediator M: the contrastive
representation, M(0) learned on balanced data, M(1) on data with class i at 1:ratio. Outcome Y(t, m): the
row-normalised confusion matrix of a linear probe trained under data condition t on representation m. Three
conditions are estimated, as in the paper's official code (github.com/smaityumich/CL-representation-harm,
cifar/simclr/utils.py):

    y00 = Y(0, M(0))   balanced representation, balanced probe data
    y01 = Y(0, M(1))   imbalanced representation, balanced probe data
    y11 = Y(1, M(1))   imbalanced representation, probe data with class i kept at n_i // ratio

    TE  = y11 - y00     total effect
    NIE = y01 - y00     natural indirect effect (through the representation; "pure", at T = 0)
    NDE = y11 - y01     direct part; the paper's figure panel "-rNDE". TE = NIE + NDE exactly.

Row i of each matrix comes from the models with minority i (as for representation harm). Diagonal entries are
changes in the minority's accuracy (negative = harm); off-diagonal entries are changes in P(predict j | true i).

Probe protocols::

    "paper"  75/25 split of the TEST features (split seeds, default {0, 1}); multinomial logistic regression with
             3-fold CV over C in {1, 0.1, 0.01}; confusion on the 25%. The imbalanced probe keeps n_i // ratio of
             the minority in the probe's 75% (seeded here; unseeded in the official code).
    "clean"  probe trained on TRAINING-set features (the balanced pool, or the images the imbalanced CL run saw,
             with the minority at the same ratio) and evaluated on the whole test set.

Features are L2-normalised first, as the paper does.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from rharm.core import sampling, schema
from rharm.harm import stats
from rharm.harm.metrics import CIFAR10_CLASSES, as_numpy, class_means, unit_normalise
from rharm.harm.probe import ProbeConfig, fit_probe, predict_logistic

PROTOCOLS = ("paper", "clean")
CONDITIONS = ("y00", "y01", "y11")


# --------------------------------------------------------------------------------------------------------------
# Effects
# --------------------------------------------------------------------------------------------------------------


def effects(y00: Any, y01: Any, y11: Any) -> dict[str, np.ndarray]:
    """TE = y11 - y00, NIE = y01 - y00, NDE = TE - NIE (= y11 - y01, the paper's "-rNDE").

    Arrays of any equal shape (e.g. (K, K) confusions or (R, K) rows); TE = NIE + NDE holds exactly because NDE is
    defined as TE - NIE.

    Example:
        The minority's accuracy: 0.9 balanced, 0.6 with the imbalanced representation, 0.2 with its probe too:

        >>> {name: round(float(v), 2) for name, v in effects(0.9, 0.6, 0.2).items()}
        {'TE': -0.7, 'NIE': -0.3, 'NDE': -0.4}
    """
    a, b, c = (as_numpy(v) for v in (y00, y01, y11))
    if not (a.shape == b.shape == c.shape):
        raise ValueError(f"y00, y01, y11 must have equal shapes; got {a.shape}, {b.shape}, {c.shape}")
    te, nie = c - a, b - a
    return {"TE": te, "NIE": nie, "NDE": te - nie}


def confusion(y_true: Any, y_pred: Any, num_classes: int) -> np.ndarray:
    """Row-normalised confusion matrix: entry [i, j] = P(predict j | true i). (N,), (N,) -> (K, K); rows without
    samples are NaN.

    Example:
        >>> confusion([0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1], num_classes=3)
        array([[0.75, 0.25, 0.  ],
               [0.  , 1.  , 0.  ],
               [ nan,  nan,  nan]])
    """
    t, p = as_numpy(y_true, np.int64), as_numpy(y_pred, np.int64)
    m = np.zeros((num_classes, num_classes))
    np.add.at(m, (t, p), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return m / m.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------------------------------------------
# Probe
# --------------------------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------------------------
# Conditions over a grid of runs
# --------------------------------------------------------------------------------------------------------------


@dataclass
class MediationRuns:
    """Confusions of the three conditions over minorities x model seeds x split seeds.

    Attributes:
        classes: K names; minorities: R names; seeds: S model seeds; splits: P split seeds ([None] for "clean").
        y00: (S, P, K, K); y01, y11: (R, S, P, K, K) row-normalised confusions.
        pred00: (S, P, N) test-set predictions of the y00 probe (-1 where the point trained the probe);
        pred01: (R, S, P, N) the same for y01 (used by the per-sample cross-check).
        test_labels: (N,); n_eval_per_class: mean evaluated count per class (the paper's 250); chosen C per probe.
    """

    protocol: str
    classes: list[str]
    minorities: list[str]
    seeds: list[int]
    splits: list[Any]
    ratio: int
    y00: np.ndarray
    y01: np.ndarray
    y11: np.ndarray
    pred00: np.ndarray
    pred01: np.ndarray
    test_labels: np.ndarray
    n_eval_per_class: float
    chosen_c: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0

    def rows(self) -> dict[str, np.ndarray]:
        """Row i of each condition for minority i: dict of (R, S, P, K) arrays (y00 broadcast to every minority).

        Example:
            >>> from rharm.harm.synthetic import synthetic_runs
            >>> runs = synthetic_runs(classes=("a", "b", "c"), minorities=("a",), collapse={"a": "b"},
            ...                       seeds=(0, 1, 2), ratio=10, n_test=40, n_train=60, dim=8, strength=0.8)
            >>> mr = mediation_runs(runs, protocol="clean", ratio=10, classes=("a", "b", "c"),
            ...                     probe=ProbeConfig(c_grid=(1.0,), folds=1))
            >>> rows = mr.rows()
            >>> rows["y11"].shape  # (minorities, seeds, splits, K)
            (1, 3, 1, 3)
            >>> rows["y11"][0, :, 0].round(2)  # row "a" of y11, seed by seed
            array([[0.  , 0.98, 0.02],
                   [0.  , 1.  , 0.  ],
                   [0.  , 0.95, 0.05]])
        """
        idx = [self.classes.index(m) for m in self.minorities]
        return {"y00": np.stack([self.y00[:, :, i, :] for i in idx]),
                "y01": np.stack([self.y01[r, :, :, i, :] for r, i in enumerate(idx)]),
                "y11": np.stack([self.y11[r, :, :, i, :] for r, i in enumerate(idx)])}

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything numeric, for ``rharm.store.save_tensors``/``np.savez`` (no pickles).

        Example:
            >>> from rharm.harm.synthetic import synthetic_runs
            >>> runs = synthetic_runs(classes=("a", "b", "c"), minorities=("a",), collapse={"a": "b"},
            ...                       seeds=(0, 1, 2), ratio=10, n_test=40, n_train=60, dim=8, strength=0.8)
            >>> mr = mediation_runs(runs, protocol="clean", ratio=10, classes=("a", "b", "c"),
            ...                     probe=ProbeConfig(c_grid=(1.0,), folds=1))
            >>> for name, a in mr.to_arrays().items():
            ...     print(name, a.dtype, a.shape)
            y00 float64 (3, 1, 3, 3)
            y01 float64 (1, 3, 1, 3, 3)
            y11 float64 (1, 3, 1, 3, 3)
            pred00 int64 (3, 1, 120)
            pred01 int64 (1, 3, 1, 120)
            test_labels int64 (120,)
        """
        return {"y00": self.y00, "y01": self.y01, "y11": self.y11, "pred00": self.pred00, "pred01": self.pred01,
                "test_labels": self.test_labels}


def _index_runs(results: Iterable[Any], classes: list[str]) -> tuple[dict[int, Any], dict[tuple[str, int], Any]]:
    bal, imb = {}, {}
    for r in results:
        if r.minority is None:
            bal[int(r.seed)] = r
        else:
            if r.minority not in classes:
                raise ValueError(f"run minority {r.minority!r} is not a class; valid: {classes}")
            imb[(r.minority, int(r.seed))] = r
    if not bal:
        raise ValueError("results contain no balanced run (minority=None); mediation needs one per seed")
    return bal, imb


def mediation_runs(results: Iterable[Any], *, protocol: str = "paper", ratio: int = 100,
                   split_seeds: Sequence[int] = (0, 1), test_size: float = 0.25, head_seed: int = 0,
                   probe: ProbeConfig = ProbeConfig(), feature: str = "test_backbone",
                   train_feature: str = "train_backbone", classes: Sequence[str] = CIFAR10_CLASSES,
                   minorities: Sequence[str] | None = None, max_train_per_class: int | None = None) -> MediationRuns:
    """Fit the probes of the three conditions for every minority run, model seed and split seed.

    Args:
        results: runs (``rharm.runs.images.RunResult`` or alike: ``minority``, ``seed``, ``features``).
        protocol: ``"paper"`` or ``"clean"`` (module docstring).
        ratio: the probe's underrepresentation for y11 (n_i // ratio kept), normally the CL run's ratio.
        split_seeds: the paper protocol's ``train_test_split`` random states (ignored by "clean").
        head_seed: seeds the imbalanced probe's subsample (with the model seed and split seed).
        probe: probe settings; feature/train_feature: which saved features to use.
        minorities: restrict to these minority runs (default: all run).
        max_train_per_class: "clean" only; subsample the training pool per class (seeded, same points for every
            condition of a seed) to bound the cost.

    The balanced probe y00 depends only on (seed, split) and is fitted once and shared by every minority.

    Example:
        Synthetic runs (:func:`rharm.harm.synthetic.synthetic_runs`) whose minority "a" collapses toward "b":

        >>> from rharm.harm.synthetic import synthetic_runs
        >>> runs = synthetic_runs(classes=("a", "b", "c"), minorities=("a",), collapse={"a": "b"}, seeds=(0,),
        ...                       ratio=10, n_test=40, n_train=60, dim=8, strength=0.8)
        >>> mr = mediation_runs(runs, ratio=10, split_seeds=(0,), classes=("a", "b", "c"),
        ...                     probe=ProbeConfig(c_grid=(1.0,), folds=1))
        >>> mr.y00.shape, mr.y01.shape  # (seeds, splits, K, K) and (minorities, seeds, splits, K, K)
        ((1, 1, 3, 3), (1, 1, 1, 3, 3))
        >>> {c: np.round(v[0, 0, 0], 2).tolist() for c, v in mr.rows().items()}  # row "a" of each condition
        {'y00': [0.91, 0.09, 0.0], 'y01': [0.55, 0.36, 0.09], 'y11': [0.0, 0.91, 0.09]}
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol={protocol!r} is not valid; choose one of {PROTOCOLS}")
    schema.check("ratio", ratio)
    if not 0 < test_size < 1:
        raise ValueError(f"test_size={test_size} must lie in (0, 1)")
    t0 = time.perf_counter()
    classes = list(classes)
    bal, imb, seeds, minorities, splits = _grid(results, classes, minorities, protocol, split_seeds)
    y_test = as_numpy(bal[seeds[0]].features["test_labels"], np.int64)
    fits = _Fits.empty(len(seeds), len(splits), len(minorities), len(classes), y_test.size)
    for si, s in enumerate(seeds):
        xb = unit_normalise(bal[s].features[feature])
        xi = {m: unit_normalise(imb[(m, s)].features[feature]) for m in minorities}
        if protocol == "clean":
            _fit_clean(fits, si, s, bal[s], [imb[(m, s)] for m in minorities], xb, xi, y_test, classes,
                       minorities, ratio=ratio, head_seed=head_seed, probe=probe, train_feature=train_feature,
                       max_train_per_class=max_train_per_class)
        else:
            _fit_paper(fits, si, s, xb, xi, y_test, classes, minorities, splits, ratio=ratio, test_size=test_size,
                       head_seed=head_seed, probe=probe)
    return MediationRuns(protocol, classes, minorities, seeds, splits, ratio, fits.y00, fits.y01, fits.y11,
                         fits.pred00, fits.pred01, y_test, float(np.mean(fits.n_eval)), fits.chosen,
                         time.perf_counter() - t0)


def _grid(results: Iterable[Any], classes: list[str], minorities: Sequence[str] | None, protocol: str,
          split_seeds: Sequence[int]) -> tuple[dict, dict, list[int], list[str], list[Any]]:
    """(balanced runs by seed, underrepresented runs by (minority, seed), seeds, minorities, split seeds) of
    :func:`mediation_runs`; ValueError when a minority misses a seed or the paper protocol has no split seed."""
    bal, imb = _index_runs(results, classes)
    seeds = sorted(bal)
    run_minorities = sorted({m for m, _ in imb}, key=classes.index)
    minorities = list(minorities) if minorities is not None else run_minorities
    for m in minorities:
        missing = [s for s in seeds if (m, s) not in imb]
        if missing:
            raise ValueError(f"minority {m!r} has no run for seeds {missing}; run seeds: {seeds}")
    splits: list[Any] = list(split_seeds) if protocol == "paper" else [None]
    if protocol == "paper" and not splits:
        raise ValueError("split_seeds must not be empty for protocol 'paper'")
    return bal, imb, seeds, minorities, splits


@dataclass
class _Fits:
    """What :func:`mediation_runs` fills seed by seed: the confusions and predictions of :class:`MediationRuns`, the
    C chosen per condition and the evaluated count per class of every probe."""

    y00: np.ndarray
    y01: np.ndarray
    y11: np.ndarray
    pred00: np.ndarray
    pred01: np.ndarray
    chosen: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in CONDITIONS})
    n_eval: list[float] = field(default_factory=list)

    @classmethod
    def empty(cls, S: int, P: int, R: int, k: int, n: int) -> "_Fits":
        return cls(np.zeros((S, P, k, k)), np.zeros((R, S, P, k, k)), np.zeros((R, S, P, k, k)),
                   -np.ones((S, P, n), dtype=np.int64), -np.ones((R, S, P, n), dtype=np.int64))


def _fit_clean(fits: _Fits, si: int, s: int, bal: Any, runs: list[Any], xb: np.ndarray, xi: dict[str, np.ndarray],
               y_test: np.ndarray, classes: list[str], minorities: list[str], *, ratio: int, head_seed: int,
               probe: ProbeConfig, train_feature: str, max_train_per_class: int | None) -> None:
    """The "clean" protocol for model seed ``s`` (index ``si``; ``bal`` its balanced run, ``runs`` its run of each
    minority): probes trained on training-set features, evaluated on the whole test set."""
    k, n = len(classes), y_test.size
    ytr = as_numpy(bal.features["train_labels"], np.int64)
    pool = np.ones(ytr.size, dtype=bool)
    if max_train_per_class:
        rng = np.random.default_rng([head_seed, s, 7])
        pool = np.zeros(ytr.size, dtype=bool)
        for c in range(k):
            idx = np.flatnonzero(ytr == c)
            pool[rng.choice(idx, size=min(idx.size, max_train_per_class), replace=False)] = True
    xbt = unit_normalise(as_numpy(bal.features[train_feature])[pool])
    m00, c00 = fit_probe(xbt, ytr[pool], probe)
    p = predict_logistic(m00, xb)
    fits.y00[si, 0], fits.pred00[si, 0] = confusion(y_test, p, k), p
    fits.chosen["y00"].append(c00)
    fits.n_eval.append(n / k)
    for r, (m, run) in enumerate(zip(minorities, runs)):
        xt = unit_normalise(as_numpy(run.features[train_feature])[pool])
        m01, c01 = fit_probe(xt, ytr[pool], probe)
        p = predict_logistic(m01, xi[m])
        fits.y01[r, si, 0], fits.pred01[r, si, 0] = confusion(y_test, p, k), p
        if "train_in_cl" in run.features:
            keep = as_numpy(run.features["train_in_cl"], bool)[pool]
        else:
            keep = sampling.undersample_mask(ytr[pool], classes.index(m), ratio,
                                             np.random.default_rng([head_seed, s, r]))
        m11, c11 = fit_probe(xt[keep], ytr[pool][keep], probe)
        fits.y11[r, si, 0] = confusion(y_test, predict_logistic(m11, xi[m]), k)
        fits.chosen["y01"].append(c01)
        fits.chosen["y11"].append(c11)


def _fit_paper(fits: _Fits, si: int, s: int, xb: np.ndarray, xi: dict[str, np.ndarray], y_test: np.ndarray,
               classes: list[str], minorities: list[str], splits: list[Any], *, ratio: int, test_size: float,
               head_seed: int, probe: ProbeConfig) -> None:
    """The "paper" protocol for model seed ``s`` (index ``si``): per split seed, probes trained on part of the test
    features and evaluated on the rest."""
    from sklearn.model_selection import train_test_split

    k, n = len(classes), y_test.size
    for pi, sp in enumerate(splits):
        tr, te = train_test_split(np.arange(n), test_size=test_size, random_state=sp)
        fits.n_eval.append(te.size / k)
        m00, c00 = fit_probe(xb[tr], y_test[tr], probe)
        p = predict_logistic(m00, xb[te])
        fits.y00[si, pi] = confusion(y_test[te], p, k)
        fits.pred00[si, pi, te] = p
        fits.chosen["y00"].append(c00)
        for r, m in enumerate(minorities):
            m01, c01 = fit_probe(xi[m][tr], y_test[tr], probe)
            p = predict_logistic(m01, xi[m][te])
            fits.y01[r, si, pi] = confusion(y_test[te], p, k)
            fits.pred01[r, si, pi, te] = p
            keep = sampling.undersample_mask(y_test[tr], classes.index(m), ratio,
                                    np.random.default_rng([head_seed, s, int(sp), r]))
            m11, c11 = fit_probe(xi[m][tr][keep], y_test[tr][keep], probe)
            fits.y11[r, si, pi] = confusion(y_test[te], predict_logistic(m11, xi[m][te]), k)
            fits.chosen["y01"].append(c01)
            fits.chosen["y11"].append(c11)


# --------------------------------------------------------------------------------------------------------------
# Estimates and uncertainty
# --------------------------------------------------------------------------------------------------------------

EFFECTS = ("TE", "NIE", "NDE")


def _frames(arrs: dict[str, np.ndarray], mr: MediationRuns) -> dict[str, pd.DataFrame]:
    return {n: pd.DataFrame(a, index=pd.Index(mr.minorities, name="minority"),
                            columns=pd.Index(mr.classes, name="predicted")) for n, a in arrs.items()}


def effect_matrices(mr: MediationRuns) -> dict[str, pd.DataFrame]:
    """TE, NIE, NDE as (R, K) DataFrames (row i from the minority-i models), averaged over seeds and splits.

    Example:
        >>> from rharm.harm.synthetic import synthetic_runs
        >>> runs = synthetic_runs(classes=("a", "b", "c"), minorities=("a",), collapse={"a": "b"}, seeds=(0, 1, 2),
        ...                       ratio=10, n_test=40, n_train=60, dim=8, strength=0.8)
        >>> mr = mediation_runs(runs, protocol="clean", ratio=10, classes=("a", "b", "c"),
        ...                     probe=ProbeConfig(c_grid=(1.0,), folds=1))
        >>> effect_matrices(mr)["NIE"].round(2)
        predicted    a     b     c
        minority
        a         -0.4  0.42 -0.02
    """
    rows = mr.rows()
    return _frames(effects(*(rows[c].mean(axis=(1, 2)) for c in CONDITIONS)), mr)


def effect_paper_sd(mr: MediationRuns, n_eval_per_class: float | None = None) -> dict[str, pd.DataFrame]:
    """The paper's "±" (as coded in the official repository), reproduced only to compare with its figures:

        sd(condition) = std over all (model seed x split seed) replicates (ddof = 0) / sqrt(n_eval_per_class)
        sd(effect a - b) = sqrt(sd_a^2 + sd_b^2)

    with n_eval_per_class = 1000 x 0.25 = 250 in the paper (default: the evaluated count per class of ``mr``).
    It is neither std / sqrt(#replicates) nor a binomial standard error.

    Example:
        >>> from rharm.harm.synthetic import synthetic_runs
        >>> runs = synthetic_runs(classes=("a", "b", "c"), minorities=("a",), collapse={"a": "b"}, seeds=(0, 1, 2),
        ...                       ratio=10, n_test=40, n_train=60, dim=8, strength=0.8)
        >>> mr = mediation_runs(runs, protocol="clean", ratio=10, classes=("a", "b", "c"),
        ...                     probe=ProbeConfig(c_grid=(1.0,), folds=1))
        >>> effect_paper_sd(mr)["TE"].round(3)
        predicted      a      b      c
        minority
        a          0.002  0.005  0.005
    """
    n = mr.n_eval_per_class if n_eval_per_class is None else n_eval_per_class
    rows = mr.rows()
    sd = {c: rows[c].reshape(rows[c].shape[0], -1, rows[c].shape[-1]).std(axis=1) / np.sqrt(n) for c in CONDITIONS}
    q = lambda a, b: np.sqrt(sd[a] ** 2 + sd[b] ** 2)  # noqa: E731
    return _frames({"TE": q("y11", "y00"), "NIE": q("y01", "y00"), "NDE": q("y11", "y01")}, mr)


def minority_score(model: tuple, x: np.ndarray, label: int) -> np.ndarray:
    """The probe's log-probability of class ``label`` for each row of x (N, d): z_label - logsumexp(z), a score that
    ranks the test images by how strongly the probe believes they are ``label`` (threshold-free, so it stays
    informative where the probe never *predicts* the class).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> y = np.repeat([0, 1, 2], 20)
        >>> x = unit_normalise(np.eye(3)[y] + 0.4 * rng.normal(size=(60, 3)))
        >>> model, _ = fit_probe(x, y, ProbeConfig(c_grid=(1.0,), folds=1, device="cpu"))
        >>> minority_score(model, x[[0, 20, 40]], label=0).round(2)  # log P(class 0) of one item of each class
        array([-0.14, -3.31, -2.09])
    """
    coef, intercept, classes = model
    z = np.asarray(x) @ coef.T + intercept
    if coef.shape[0] == 1:  # binary sklearn layout: one decision function for classes[1]
        z = np.concatenate([np.zeros((z.shape[0], 1)), z], axis=1)
    col = int(np.flatnonzero(np.asarray(classes) == label)[0])
    zmax = z.max(axis=1, keepdims=True)
    return z[:, col] - (zmax[:, 0] + np.log(np.exp(z - zmax).sum(axis=1)))


def minority_probe_effects(results: Iterable[Any], minority: str, *, ratio: int, classes: Sequence[str],
                           probe: ProbeConfig = ProbeConfig(), feature: str = "test_backbone",
                           train_feature: str = "train_backbone", head_seed: int = 0) -> dict[str, np.ndarray]:
    """The minority's allocation effects per model seed under the clean protocol, on two outcomes: its test accuracy
    (the diagonal of the confusion, as :func:`mediation_runs`) and its one-vs-rest ROC AUC under the probe's score
    (:func:`minority_score`). The AUC does not saturate when an imbalanced probe stops predicting the minority
    altogether (accuracy then sits at 0 whatever the representation), because it asks whether minority test images
    still *rank* above the others.

    Conditions per seed, as :func:`mediation_runs`' clean protocol: 00 balanced model, balanced probe; 01 the
    underrepresented model's representation with a balanced-label probe; 11 the underrepresented model with the probe
    trained on what its contrastive run saw. Returns {"acc00", "acc01", "acc11", "auc00", "auc01", "auc11",
    "TE_acc", "NIE_acc", "TE_auc", "NIE_auc", "NDE_auc"} of (S,) arrays, seeds sorted.

    Example:
        >>> from rharm.harm.synthetic import synthetic_runs
        >>> runs = synthetic_runs(classes=("a", "b", "c"), minorities=("a",), collapse={"a": "b"}, seeds=(0, 1),
        ...                       ratio=10, n_test=40, n_train=60, dim=8, strength=0.8)
        >>> out = minority_probe_effects(runs, "a", ratio=10, classes=("a", "b", "c"),
        ...                              probe=ProbeConfig(c_grid=(1.0,), folds=1))
        >>> {name: out[name].round(2).tolist() for name in ("acc00", "acc11", "auc00", "auc11")}
        {'acc00': [0.95, 0.95], 'acc11': [0.0, 0.0], 'auc00': [0.99, 1.0], 'auc11': [0.71, 0.83]}

        The imbalanced probe never predicts "a" (accuracy 0), yet its score still ranks the "a" images high (AUC).
    """
    from sklearn.metrics import roc_auc_score

    classes = list(classes)
    bal, imb = _index_runs(results, classes)
    seeds = sorted(bal)
    missing = [s for s in seeds if (minority, s) not in imb]
    if missing:
        raise ValueError(f"minority {minority!r} has no run for seeds {missing}; run seeds: {seeds}")
    m = classes.index(minority)
    out: dict[str, list] = {k: [] for k in ("acc00", "acc01", "acc11", "auc00", "auc01", "auc11")}
    for s in seeds:
        y = as_numpy(bal[s].features["test_labels"], np.int64)
        ytr = as_numpy(bal[s].features["train_labels"], np.int64)
        run = imb[(minority, s)]
        xb, xi = unit_normalise(bal[s].features[feature]), unit_normalise(run.features[feature])
        xbt = unit_normalise(as_numpy(bal[s].features[train_feature]))
        xit = unit_normalise(as_numpy(run.features[train_feature]))
        keep = (as_numpy(run.features["train_in_cl"], bool) if "train_in_cl" in run.features else
                sampling.undersample_mask(ytr, m, ratio, np.random.default_rng([head_seed, s, 0])))
        fits = {"00": (fit_probe(xbt, ytr, probe)[0], xb), "01": (fit_probe(xit, ytr, probe)[0], xi),
                "11": (fit_probe(xit[keep], ytr[keep], probe)[0], xi)}
        for c, (model, x) in fits.items():
            out[f"acc{c}"].append(float(np.mean(predict_logistic(model, x)[y == m] == m)))
            out[f"auc{c}"].append(float(roc_auc_score(y == m, minority_score(model, x, m))))
    res = {k: np.asarray(v) for k, v in out.items()}
    res["TE_acc"], res["NIE_acc"] = res["acc11"] - res["acc00"], res["acc01"] - res["acc00"]
    res["TE_auc"], res["NIE_auc"] = res["auc11"] - res["auc00"], res["auc01"] - res["auc00"]
    res["NDE_auc"] = res["TE_auc"] - res["NIE_auc"]
    return res


def _seed_rows(mr: MediationRuns) -> dict[str, np.ndarray]:
    """Each condition's rows per model seed, averaged over split seeds: condition -> (R, S, K)."""
    return {c: v.mean(axis=2) for c, v in mr.rows().items()}


def effect_intervals(mr: MediationRuns, *, level: float = 0.95) -> dict[str, dict[str, pd.DataFrame]]:
    """TE, NIE, NDE of every cell with a Student t-interval over model seeds.

    The unit is the model seed: the effect of seed s is averaged over its split seeds (the three conditions share
    the seed and the splits, so every effect is a paired difference), and the interval is the t-interval of those S
    per-seed effects (:func:`rharm.harm.stats.t_interval`; NaN with one seed).
    Returns {effect: {"estimate", "lo", "hi", "se"}} of (R, K) DataFrames.

    Example:
        >>> from rharm.harm.synthetic import synthetic_runs
        >>> runs = synthetic_runs(classes=("a", "b", "c"), minorities=("a",), collapse={"a": "b"}, seeds=(0, 1, 2),
        ...                       ratio=10, n_test=40, n_train=60, dim=8, strength=0.8)
        >>> mr = mediation_runs(runs, protocol="clean", ratio=10, classes=("a", "b", "c"),
        ...                     probe=ProbeConfig(c_grid=(1.0,), folds=1))
        >>> te = effect_intervals(mr)["TE"]
        >>> te["estimate"].round(2)
        predicted     a     b    c
        minority
        a         -0.96  0.96  0.0
        >>> te["lo"].round(2)
        predicted     a     b     c
        minority
        a         -0.99  0.86 -0.11
    """
    rows = _seed_rows(mr)
    per_seed = effects(rows["y00"], rows["y01"], rows["y11"])  # (R, S, K)
    out = {}
    for e in EFFECTS:
        est, lo, hi = stats.t_interval(per_seed[e], level=level, axis=1)
        s = per_seed[e].shape[1]
        se = per_seed[e].std(axis=1, ddof=1) / np.sqrt(s) if s > 1 else np.full_like(est, np.nan)
        out[e] = {"estimate": _frames({"v": est}, mr)["v"], **_frames({"lo": lo, "hi": hi, "se": se}, mr)}
    return out


def diagonal_summary(mr: MediationRuns, *, level: float = 0.95) -> pd.DataFrame:
    """The minority's own accuracy change and the share the representation carries.

    Per minority i: TE_ii, NIE_ii, NDE_ii over model seeds (t-intervals, as :func:`effect_intervals`) and share =
    mean NIE_ii / mean TE_ii with Fieller's interval for a ratio of paired means
    (:func:`rharm.harm.stats.fieller_ratio_ci`; NaN when TE is not resolved from 0); plus a row "mean" with the means of
    the diagonals (per seed, then over seeds) and share = mean NIE / mean TE (the paper's summary).

    Example:
        >>> from rharm.harm.synthetic import synthetic_runs
        >>> runs = synthetic_runs(classes=("a", "b", "c"), minorities=("a",), collapse={"a": "b"}, seeds=(0, 1, 2),
        ...                       ratio=10, n_test=40, n_train=60, dim=8, strength=0.8)
        >>> mr = mediation_runs(runs, protocol="clean", ratio=10, classes=("a", "b", "c"),
        ...                     probe=ProbeConfig(c_grid=(1.0,), folds=1))
        >>> diagonal_summary(mr)[["TE", "NIE", "NDE", "share"]].round(2)
                    TE  NIE   NDE  share
        minority
        a        -0.96 -0.4 -0.56   0.42
        mean     -0.96 -0.4 -0.56   0.42
    """
    rows = _seed_rows(mr)
    e = effects(rows["y00"], rows["y01"], rows["y11"])  # (R, S, K)
    idx = [mr.classes.index(m) for m in mr.minorities]
    d = {n: np.stack([e[n][r, :, i] for r, i in enumerate(idx)], axis=0) for n in EFFECTS}  # (R, S)
    d = {n: np.concatenate([v, v.mean(axis=0, keepdims=True)], axis=0) for n, v in d.items()}  # (R + 1, S)
    out = pd.DataFrame(index=pd.Index([*mr.minorities, "mean"], name="minority"))
    for n in EFFECTS:
        out[n], out[f"{n}_lo"], out[f"{n}_hi"] = stats.t_interval(d[n], level=level, axis=1)
    share = [stats.fieller_ratio_ci(d["NIE"][r], d["TE"][r], level=level) for r in range(len(out))]
    out["share"], out["share_lo"], out["share_hi"] = (np.array([s[k] for s in share]) for k in range(3))
    return out


def long_effects(boot: dict[str, dict[str, pd.DataFrame]],
                 paper: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """{effect: {estimate, lo, hi}} -> long table effect, minority, predicted, value, lo, hi[, paper] for charts.

    Example:
        >>> from rharm.harm.synthetic import synthetic_runs
        >>> runs = synthetic_runs(classes=("a", "b", "c"), minorities=("a",), collapse={"a": "b"}, seeds=(0, 1, 2),
        ...                       ratio=10, n_test=40, n_train=60, dim=8, strength=0.8)
        >>> mr = mediation_runs(runs, protocol="clean", ratio=10, classes=("a", "b", "c"),
        ...                     probe=ProbeConfig(c_grid=(1.0,), folds=1))
        >>> long_effects(effect_intervals(mr)).head(3).round(2)
          effect minority predicted  value    lo    hi
        0     TE        a         a  -0.96 -0.99 -0.92
        1     TE        a         b   0.96  0.86  1.05
        2     TE        a         c   0.00 -0.11  0.11
    """
    parts = []
    for e, d in boot.items():
        t = d["estimate"].stack().rename("value").reset_index()
        t.columns = ["minority", "predicted", "value"]
        t["lo"], t["hi"] = d["lo"].stack().to_numpy(), d["hi"].stack().to_numpy()
        t.insert(0, "effect", e)
        if paper is not None and e in paper:
            p = paper[e]
            t["paper"] = [p.loc[m, c] if (m in p.index and c in p.columns) else np.nan
                          for m, c in zip(t.minority, t.predicted)]
        parts.append(t)
    return pd.concat(parts, ignore_index=True)


# --------------------------------------------------------------------------------------------------------------
# Per-sample regression mediation cross-check (pingouin)
# --------------------------------------------------------------------------------------------------------------


def collapse_score(features: Any, labels: Any, minority_label: int, toward_label: int,
                   num_classes: int | None = None) -> np.ndarray:
    """Per minority test image x: cos(u(x), centroid of ``toward``) - cos(u(x), centroid of its own class).

    Centroids are the class means of the unit-normalised features of the same model. features (N, d), labels (N,)
    -> (n_minority,) in the order of the minority's samples. Larger = closer to the class it collapses toward.

    Example:
        Two items of class 0, one leaning toward class 1:

        >>> x = [[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [0.1, 1.0]]
        >>> collapse_score(x, [0, 0, 1, 1], minority_label=0, toward_label=1).round(2)
        array([-0.84, -0.07])
    """
    u = unit_normalise(features)
    y = as_numpy(labels, np.int64)
    mu = class_means(u, y, num_classes)
    ct = mu[toward_label] / np.linalg.norm(mu[toward_label])
    co = mu[minority_label] / np.linalg.norm(mu[minority_label])
    um = u[y == minority_label]
    return um @ ct - um @ co


def mediation_crosscheck(results: Iterable[Any], mr: MediationRuns, minority: str, toward: str, *,
                         feature: str = "test_backbone", n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Regression-based mediation (``pingouin.mediation_analysis``) on a scalar mediator, per test image.

    Samples: the minority's evaluated test images, once under the balanced representation (X = 0) and once under
    the representation learned with the minority underrepresented (X = 1), pooled over model seeds and split
    seeds; both with a probe trained on balanced data (conditions y00 and y01, i.e. the NIE contrast).
    M = :func:`collapse_score` toward ``toward`` in that model; Y = 1 if the image is misclassified.

    Returns:
        dict: indirect, indirect_lo, indirect_hi, indirect_p, direct, total, n (samples), table (pingouin's
        DataFrame).

    Example:
        >>> from rharm.harm.synthetic import synthetic_runs
        >>> runs = synthetic_runs(classes=("a", "b", "c"), minorities=("a",), collapse={"a": "b"}, seeds=(0, 1),
        ...                       ratio=10, n_test=40, n_train=60, dim=8, strength=0.8)
        >>> mr = mediation_runs(runs, ratio=10, split_seeds=(0,), classes=("a", "b", "c"),
        ...                     probe=ProbeConfig(c_grid=(1.0,), folds=1))
        >>> out = mediation_crosscheck(runs, mr, "a", "b", n_boot=200)
        >>> out["n"], round(out["indirect"], 2), round(out["total"], 2)
        (44, 0.57, 0.36)
    """
    import pingouin as pg

    for name, v in (("minority", minority), ("toward", toward)):
        if v not in mr.classes:
            raise ValueError(f"{name}={v!r} is not a class; valid: {mr.classes}")
    if minority not in mr.minorities:
        raise ValueError(f"minority={minority!r} was not run; valid: {mr.minorities}")
    if minority == toward:
        raise ValueError(f"toward={toward!r} must differ from minority")
    bal, imb = _index_runs(results, mr.classes)
    i, j, r = mr.classes.index(minority), mr.classes.index(toward), mr.minorities.index(minority)
    y = mr.test_labels
    k = len(mr.classes)
    frames = []
    for si, s in enumerate(mr.seeds):
        m0 = collapse_score(bal[s].features[feature], y, i, j, k)
        m1 = collapse_score(imb[(minority, s)].features[feature], y, i, j, k)
        for pi in range(len(mr.splits)):
            p0, p1 = mr.pred00[si, pi][y == i], mr.pred01[r, si, pi][y == i]
            ev0, ev1 = p0 >= 0, p1 >= 0
            frames.append(pd.DataFrame({"X": 0.0, "M": m0[ev0], "Y": (p0[ev0] != i).astype(float)}))
            frames.append(pd.DataFrame({"X": 1.0, "M": m1[ev1], "Y": (p1[ev1] != i).astype(float)}))
    data = pd.concat(frames, ignore_index=True)
    tab = pg.mediation_analysis(data=data, x="X", m="M", y="Y", n_boot=n_boot, seed=seed)
    tab = tab.set_index("path")
    pcol = "pval" if "pval" in tab.columns else [c for c in tab.columns if c.startswith("p")][0]
    lo_col, hi_col = [c for c in tab.columns if c.startswith("CI")][:2]
    ind = tab.loc["Indirect"]
    return {"indirect": float(ind["coef"]), "indirect_lo": float(ind[lo_col]), "indirect_hi": float(ind[hi_col]),
            "indirect_p": float(ind[pcol]), "direct": float(tab.loc["Direct", "coef"]),
            "total": float(tab.loc["Total", "coef"]), "n": int(len(data)), "table": tab.reset_index()}


# --------------------------------------------------------------------------------------------------------------
# Result store
# --------------------------------------------------------------------------------------------------------------

KIND = "mediation"


def cached_mediation_runs(results: Sequence[Any], **kwargs: Any) -> MediationRuns:
    """:func:`mediation_runs`, cached in the result store (kind ``"mediation"``).

    The key holds the store folders of the runs (``r.dir``, themselves content-addressed), the keyword arguments and
    the source of this module and :mod:`rharm.harm.metrics`, so a change of any input recomputes and nothing else does.
    """
    from rharm import store
    from rharm.harm import metrics

    results = list(results)
    probe = kwargs.get("probe", ProbeConfig())
    # a run is named by its store key, not its folder's path: a store moved to another root keeps its mediation
    cfg = {"runs": sorted(f"{r.minority}|{r.seed}|{Path(getattr(r, 'dir', '')).name}" for r in results),
           **{k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in kwargs.items() if k != "probe"},
           "probe": {"c_grid": list(probe.c_grid), "folds": probe.folds, "max_iter": probe.max_iter, "tol": probe.tol,
                     "warm_start": probe.warm_start, "solver": probe.resolved_solver,
                     "device": probe.resolved_device}}
    holder: dict[str, MediationRuns] = {}

    def compute(out):
        mr = mediation_runs(results, **kwargs)
        holder["mr"] = mr
        store.save_tensors(out / "confusions.pt", mr.to_arrays())
        store.save_json(out / "index.json", {"protocol": mr.protocol, "classes": mr.classes,
                                             "minorities": mr.minorities, "seeds": mr.seeds, "splits": mr.splits,
                                             "ratio": mr.ratio, "n_eval_per_class": mr.n_eval_per_class,
                                             "chosen_c": mr.chosen_c, "seconds": mr.seconds})
        return {"seconds": mr.seconds}

    folder = store.cached(KIND, cfg, compute, code=[metrics, sys.modules[__name__]])
    if "mr" in holder:
        return holder["mr"]
    a = {k: v.numpy() for k, v in store.load_tensors(folder / "confusions.pt").items()}
    i = store.load_json(folder / "index.json")
    return MediationRuns(i["protocol"], i["classes"], i["minorities"], i["seeds"], i["splits"], i["ratio"], a["y00"],
                         a["y01"], a["y11"], a["pred00"], a["pred01"], a["test_labels"], i["n_eval_per_class"],
                         i["chosen_c"], i["seconds"])


def canary() -> list[float]:
    """The canary of the stored kind ``mediation`` (:mod:`rharm.store.recipes`): 6 numbers from
    :func:`mediation_runs` (the paper's protocol) on synthetic runs of 3 classes, 2 seeds, one minority collapsed
    halfway toward another (:func:`rharm.harm.synthetic.synthetic_runs`); CPU, a second or two."""
    from rharm.harm.synthetic import synthetic_runs

    runs = synthetic_runs(classes=("a", "b", "c"), minorities=("a",), collapse={"a": "b"}, seeds=(0, 1), ratio=10,
                          n_test=40, n_train=60, dim=8)
    mr = mediation_runs(runs, ratio=10, classes=("a", "b", "c"), probe=ProbeConfig(c_grid=(1.0,), folds=2))
    a = mr.to_arrays()  # y00 (seeds, splits, K, K) and y01, y11 (minorities, ...): row-normalised confusions
    diag = {k: np.diagonal(a[k], axis1=-2, axis2=-1) for k in ("y00", "y01", "y11")}
    return [float(diag["y00"].mean()), float(diag["y01"].mean()), float(diag["y11"].mean()),
            float(diag["y01"][..., 0].mean()), float(diag["y11"][..., 0].mean()),
            float(np.mean(a["pred00"] == a["pred01"][0]))]
