"""The numbers of the representation-harm chapter, one summary dataclass per section.

Each function takes a section's inputs (run results, the notebook's parameters ``P``, tables from
:mod:`rharm.harm.metrics`) and returns a frozen dataclass whose fields are exactly what the prose glues (as
``rh_<field>``) and what ``book/<profile>/representation_harm.json`` holds; :func:`rharm.page.headline.publish` does
both.
The chapter itself only draws the tables and charts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from rharm.core import reference, sampling
from rharm.harm import metrics
from rharm.page import headline, tables


def paper_rh(method: str, ratio: int) -> pd.DataFrame | None:
    """The paper's RH matrix for this method and ratio (rows = minority), or None when the paper reports none.

    Never another ratio's values in their place (:func:`rharm.core.reference.for_setting` raises for a missing setting).
    """
    try:
        return reference.for_setting(method, ratio, "RH")
    except ValueError:
        return None


def paper_source(method: str, ratio: int) -> str | None:
    """The official repository's figure file the paper's RH for this setting was read from, or None."""
    for name in reference.names("matrix"):
        i = reference.info(name)
        if (str(i["method"]).lower(), i["ratio"], i["quantity"], i["panel"]) == (str(method).lower(), ratio, "RH",
                                                                                "full"):
            return i["source"]["file"].rsplit("/", 1)[-1]
    return None


def paper_label(method: str, ratio: int) -> str:
    """How the chapter names the paper's setting, e.g. ``"SimCLR at 1:100"``."""
    name = {"simclr": "SimCLR", "simsiam": "SimSiam"}.get(str(method).lower(), method)
    return f"{name} at 1:{ratio}"


@dataclass(frozen=True)
class Scale:
    """What was trained: the prose's "Scale of this page"."""

    profile: str
    backbone: str
    epochs: str  #: e.g. "4 epochs"
    n_per_class: int
    kept: int  #: minority images kept, n_per_class // ratio
    ratio: int
    n_seeds: str  #: e.g. "3 seeds"
    n_minorities: int
    minorities: str  #: comma-separated class names
    data: str
    workers: int
    workers_text: str  #: e.g. "2 runs"
    hardware: str
    train_minutes: float  #: training wall time summed over runs


def scale(results: Sequence[Any], P: Any) -> Scale:
    """Scale of the runs: ``results`` from :func:`rharm.runs.images.run_grid` (the balanced run first, with
    ``meta``), ``P`` the notebook's parameters."""
    balanced = [r for r in results if r.minority is None]
    if not balanced:
        raise ValueError("results contain no balanced run (minority=None); the chapter needs one per seed")
    meta0 = balanced[0].meta
    extra, hardware = meta0.get("extra", {}), meta0.get("hardware", {})
    threads = extra.get("threads")
    hw = hardware.get("gpu") or (
        f"{hardware.get('cpu', '?')}, "
        + (tables.plural(int(threads), "torch thread") if isinstance(threads, int) else "torch threads not recorded")
        + " per run")
    workers = int(P.workers or 1)
    return Scale(
        profile=P.profile, backbone=headline.model_words(P.backbone), epochs=tables.plural(P.epochs, "epoch"),
        n_per_class=int(P.n_per_class), kept=sampling.kept_count(int(P.n_per_class), P.ratio), ratio=int(P.ratio),
        n_seeds=tables.plural(len(P.seeds), "seed"), n_minorities=len(P.minority_classes),
        minorities=", ".join(P.minority_classes),
        data=extra.get("data_source", "CIFAR-10 (source not recorded)"),  # e.g. "CIFAR-10 (JPEG copy)"
        workers=workers, workers_text=tables.plural(workers, "run"), hardware=hw,
        train_minutes=sum(r.meta.get("wall_time_s", 0.0) for r in results) / 60)


@dataclass(frozen=True)
class PaperComparison:
    """Our RH matrix against the paper's, cell by cell."""

    paper_panel: str  #: the sentence naming the paper's panel, or saying the paper reports none
    corr_all: float  #: Pearson r over the shared cells (NaN with fewer than 3)
    corr_off: float  #: the same without the diagonal
    n_cells: int  #: cells with a paper value
    corr_text: str  #: the prose's sentence on the correlation (or on the paper's missing values)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(x, y)[0, 1]) if len(x) > 2 else float("nan")


def paper_comparison(ours_long: pd.DataFrame, method: str, ratio: int) -> PaperComparison:
    """Correlation of our RH with the paper's. ``ours_long``: :func:`rharm.harm.metrics.long_rh`'s table (columns
    minority, other, rh and, when the paper has values for this setting, paper: NaN where it has none)."""
    missing = {"minority", "other", "rh"} - set(ours_long.columns)
    if missing:
        raise ValueError(f"ours_long lacks columns {sorted(missing)}; it has {list(ours_long.columns)} "
                         "(give metrics.long_rh's table)")
    cells = ours_long.dropna(subset=["paper"]) if "paper" in ours_long else ours_long.iloc[:0].assign(paper=[])
    off = cells[cells.minority != cells.other]
    if paper_rh(method, ratio) is None:
        panel = (f"the paper reports no RH matrix for {paper_label(method, ratio)}, so there is no panel of its "
                 "values to compare with")
    else:
        panel = (f"bottom: the paper's values for the same rows ({paper_label(method, ratio)} with ResNet-34; "
                 f"official repository, {paper_source(method, ratio)}; read through rharm.core.reference)")
    corr_all = _pearson(cells.rh.to_numpy(), cells.paper.to_numpy())
    corr_off = _pearson(off.rh.to_numpy(), off.paper.to_numpy())
    if paper_rh(method, ratio) is None:
        text = f"The paper reports no RH for {paper_label(method, ratio)}, so no cell can be compared with it."
    elif len(cells) > 2:
        text = (f"Across the {len(cells)} cells we share with the paper, the Pearson correlation of our RH with "
                f"theirs is {corr_all:.2f} ({corr_off:.2f} without the diagonal, whose RH mostly measures how spread "
                "out the minority class became).")
    else:
        text = (f"We share {tables.plural(len(cells), 'cell')} with the paper's RH for {paper_label(method, ratio)}: "
                "too few for a correlation.")
    return PaperComparison(paper_panel=panel, corr_all=corr_all, corr_off=corr_off, n_cells=len(cells),
                           corr_text=text)


@dataclass(frozen=True)
class Significance:
    """Per-cell one-sided tests of RH < 1 over seeds, with multiple-comparison control."""

    n_reject: int
    n_tests: int  #: 0 with one seed (no test possible)
    multicomp: str
    alpha: float
    cells: pd.DataFrame | None = field(default=None, compare=False)  #: every tested cell (None with one seed)
    multicomp_words: str = ""  #: the control in words, for the prose (``holm`` -> "Holm's familywise-error")


#: the multiple-comparison controls of ``profiles.yml`` in words
MULTICOMP_WORDS = {"holm": "Holm's familywise-error", "fdr_bh": "Benjamini-Hochberg false-discovery-rate",
                   "bonf": "Bonferroni familywise-error", "none": "no multiple-comparison"}


def significance(cr: metrics.CosineRuns, multicomp: str, alpha: float) -> Significance:
    """:func:`rharm.harm.metrics.rh_test` over the off-diagonal cells of ``cr``; no test with a single seed."""
    if len(cr.seeds) < 2:
        return Significance(0, 0, multicomp, float(alpha), None, MULTICOMP_WORDS.get(multicomp, multicomp))
    tests = metrics.rh_test(cr, method=multicomp, alpha=alpha)
    return Significance(int(tests.reject.sum()), len(tests), multicomp, float(alpha), tests,
                        MULTICOMP_WORDS.get(multicomp, multicomp))


@dataclass(frozen=True)
class NoiseFloor:
    """RH between balanced models of different seeds, and our strongest collapse beside it."""

    floor_lo: float  #: central band of single-seed balanced-vs-balanced RH (NaN with one seed)
    floor_hi: float
    floor_median: float
    floor_n: int  #: off-diagonal values used
    strongest_minority: str
    strongest_class: str
    strongest_value: float
    strongest_lo: float
    strongest_hi: float
    strongest_paper: float  #: the paper's RH in our strongest cell (NaN when the paper has none)
    strongest_paper_text: str  #: the prose's clause on it
    strongest_inside_floor: bool | None  #: None with one seed (no band)


def noise_floor(cr: metrics.CosineRuns, most: pd.DataFrame, level: float) -> NoiseFloor:
    """The noise floor of ``cr`` at ``level`` and the smallest RH of ``most``
    (:func:`rharm.harm.metrics.most_collapsed_table`, one row per minority)."""
    floor = metrics.noise_floor_summary(cr, level=level)
    if not len(most):
        raise ValueError("most has no rows; it needs one per minority (metrics.most_collapsed_table)")
    m = most.ours_rh.astype(float).idxmin()
    row = most.loc[m]
    value = float(row.ours_rh)
    paper_value = float(row.get("paper_rh_same_cell", np.nan))
    inside = bool(floor["lo"] <= value <= floor["hi"]) if np.isfinite(floor["lo"]) else None
    return NoiseFloor(
        floor_lo=floor["lo"], floor_hi=floor["hi"], floor_median=floor["median"], floor_n=int(floor["n"]),
        strongest_minority=str(m), strongest_class=str(row.ours_class), strongest_value=value,
        strongest_lo=float(row.ours_lo), strongest_hi=float(row.ours_hi),
        strongest_paper=paper_value, strongest_inside_floor=inside,
        strongest_paper_text=(f"the paper reports {paper_value:.3f} for that cell" if np.isfinite(paper_value)
                              else "the paper reports no value for that cell in this setting"))


@dataclass(frozen=True)
class Specificity:
    """Is each minority's collapse concentrated on one class? The first minority's contrast, beside the paper's."""

    contrast_first_minority: str
    contrast_first: float
    contrast_first_lo: float
    contrast_first_hi: float
    contrast_first_paper: float  #: NaN when the paper has no row for it
    contrast_first_paper_text: str  #: the prose's clause on it
    table: pd.DataFrame = field(compare=False)  #: per minority: ours (metrics.pair_specificity) and the paper's


def specificity(cr: metrics.CosineRuns, paper: pd.DataFrame | None, *, level: float) -> Specificity:
    """:func:`rharm.harm.metrics.pair_specificity` with the paper's most-collapsed class and contrast per row."""
    spec = metrics.pair_specificity(cr, level=level)
    has = [m for m in spec.index if paper is not None and m in paper.index]
    paper_spec = pd.DataFrame({
        "paper_most_collapsed": [paper.loc[m].drop(m).idxmin() if m in has else None for m in spec.index],
        "paper_contrast": [paper.loc[m].drop(m).median() - paper.loc[m].drop(m).min() if m in has else np.nan
                           for m in spec.index],
    }, index=spec.index)
    first = spec.index[0]
    p0 = float(paper_spec.paper_contrast.iloc[0])
    return Specificity(contrast_first_minority=str(first), contrast_first=float(spec.contrast.iloc[0]),
                       contrast_first_lo=float(spec.contrast_lo.iloc[0]),
                       contrast_first_hi=float(spec.contrast_hi.iloc[0]),
                       contrast_first_paper=p0, table=spec.join(paper_spec),
                       contrast_first_paper_text=(f"the paper's is {p0:.3f}" if np.isfinite(p0)
                                                  else "the paper reports no value for this setting"))


@dataclass(frozen=True)
class ProbeAnchor:
    """Linear-probe test accuracy of the balanced models (a sanity check of the representation)."""

    probe_acc: float  #: mean over seeds
    probe_acc_min: float
    probe_acc_max: float
    probe_seeds: list = field(compare=False)  #: model seed per accuracy
    probe_accs: list = field(compare=False)  #: accuracy per seed


def probe_anchor(results: Sequence[Any], C: float = 0.1) -> ProbeAnchor:
    """Fit :func:`rharm.harm.metrics.linear_probe_accuracy` on each balanced run's training-pool features
    (``train_backbone`` (N, d), ``train_labels``) and score it on its test features."""
    balanced = [r for r in results if r.minority is None]
    if not balanced:
        raise ValueError("results contain no balanced run (minority=None)")
    accs = [metrics.linear_probe_accuracy(r.features["train_backbone"], r.features["train_labels"],
                                          r.features["test_backbone"], r.features["test_labels"], C=C)
            for r in balanced]
    return ProbeAnchor(float(np.mean(accs)), float(np.min(accs)), float(np.max(accs)),
                       [int(r.seed) for r in balanced], accs)


def paper_sd_table(cr: metrics.CosineRuns, boot: dict[str, pd.DataFrame], most: pd.DataFrame) -> pd.DataFrame:
    """The paper's ± formula (:func:`rharm.harm.metrics.rh_paper_sd`) beside our standard error of RH over seeds (delta
    method from the t-interval's log scale, :func:`rharm.harm.metrics.rh_interval`), in each minority's most-collapsed
    cell: columns cell, paper_formula_sd, se_over_seeds (one row per row of ``most``)."""
    paper_sd = metrics.rh_paper_sd(cr)
    return pd.DataFrame({
        "cell": [f"{m} → {most.loc[m, 'ours_class']}" for m in most.index],
        "paper_formula_sd": [paper_sd.loc[m, most.loc[m, "ours_class"]] for m in most.index],
        "se_over_seeds": [boot["se"].loc[m, most.loc[m, "ours_class"]] for m in most.index],
    })


@dataclass(frozen=True)
class Finding:
    """The chapter's one-paragraph finding (plain text)."""

    finding: str


def finding(P: Any, sig: Significance, nf: NoiseFloor, comparison: PaperComparison) -> Finding:
    """The finding in at most :data:`rharm.page.headline.FINDING_MAX_WORDS` words, from the sections' numbers
    (``P`` gives backbone, epochs, n_per_class and seeds): the test count, the strongest collapse with its interval
    and the correlation with the paper. The correction, the noise floor and the paper's scale are in the body."""
    scale = (f"At this scale ({headline.model_words(P.backbone)}, {tables.plural(P.epochs, 'epoch')}, "
             f"{P.n_per_class:,} images per class)")
    if sig.n_tests:
        tests = (f"{sig.n_reject} of {sig.n_tests} off-diagonal cells have RH significantly below 1 "
                 f"({tables.plural(len(P.seeds), 'seed')})")
        text = (f"{scale} no representation harm is detected: {tests}. " if sig.n_reject == 0
                else f"{scale}, {tests}. ")
    else:
        text = f"{scale}, one seed: no cell can be tested. "
    text += (f"The strongest collapse, {nf.strongest_minority} → {nf.strongest_class}, has RH "
             f"{nf.strongest_value:.3f}"
             + (f" (interval {nf.strongest_lo:.3f} to {nf.strongest_hi:.3f})" if len(P.seeds) > 1 else "")
             + {True: ", inside the seed-noise band. ", False: ", outside the seed-noise band. "}.get(
                 nf.strongest_inside_floor, ". "))
    if paper_rh(P.method, P.ratio) is None:
        text += f"The paper reports no RH matrix for {paper_label(P.method, P.ratio)}."
    elif np.isfinite(comparison.corr_all):
        text += f"Our RH correlates with the paper's at r = {comparison.corr_all:.2f} over {comparison.n_cells} cells."
    return Finding(text.strip())
