"""The mitigation study's design: its cell (the Fashion-MNIST chapter's first pre-registered minority and partner,
chosen on the balanced models), the theory's temperature fitted to the unmitigated models, and the training grid of
every intervention (re-weighting, re-balancing, SDCLR pruning, a lower temperature), all trained in one pool.

The functions run in the registered order: :func:`balanced_runs` (the rule of :func:`rharm.study.design.preregister`
reads them), :func:`none_runs` (the theory's temperature is fitted to them), then :func:`train_arms`. What the reader
sees of them (tables, verdicts, the finding) is :mod:`rharm.report.mitigation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from rharm.core import sampling
from rharm.harm import metrics
from rharm.runs import images as experiment
from rharm.study import confirmatory
from rharm.study import design as study
from rharm.vision import mitigation


def base_grid(P: Any) -> dict:
    """The unmitigated training grid (without minorities and seeds: each call sets them).

    Raises ValueError when ``P.mitigation_seeds`` is not a subset of ``P.seeds`` (the balanced models of the
    pre-registration), before anything is trained.
    """
    if not set(P.mitigation_seeds) <= set(P.seeds):
        raise ValueError(f"mitigation_seeds={list(P.mitigation_seeds)} is not valid; it must be a subset of "
                         f"seeds={list(P.seeds)} (the balanced models of the pre-registration)")
    return confirmatory.registered_grid(P.values)


def interventions(P: Any, tau: float) -> dict[str, dict]:
    """The grid changes of each intervention (``none``: no change); ``tau`` is the theory's temperature."""
    return {
        "none": {},
        "re-balancing": {"rebalance": True},
        "re-weighting": {"minority_weight": float(P.minority_weight)},
        "temperature": {"temperature": float(tau)},
        "SimSiam": {"method": "simsiam", "lr": float(P.simsiam_lr), "weight_decay": float(P.simsiam_weight_decay)},
        "SDCLR": {"sdclr_prune": float(P.sdclr_prune)},
        "warm start": {"warm_start": True},
    }


def rebalance_times(n_per_class: int, ratio: float) -> int:
    """How often re-balancing shows each kept minority image per epoch: :func:`rharm.vision.mitigation.rebalance_factor`
    on a pool of ``n_per_class`` images per class whose minority keeps :func:`rharm.core.sampling.kept_count` of
    them."""
    import torch

    kept = sampling.kept_count(int(n_per_class), ratio)
    labels = torch.repeat_interleave(torch.arange(2), torch.tensor([int(n_per_class), kept]))  # a class, the minority
    return mitigation.rebalance_factor(labels == 1, labels)


def arm_grids(P: Any, minority: str, tau: float) -> dict[str, dict]:
    """Every intervention's grid: the balanced model and ``minority`` at ``P.ratio``, seeds ``P.mitigation_seeds``."""
    grid = base_grid(P)
    return {name: {**grid, **changes, "minority_classes": [minority], "seeds": list(P.mitigation_seeds)}
            for name, changes in interventions(P, tau).items()}


def _split(runs: Sequence[Any], minority: str) -> tuple[list, list]:
    return [r for r in runs if r.minority is None], [r for r in runs if r.minority == minority]


def balanced_runs(P: Any) -> list:
    """The balanced models of every ``P.seeds`` (trained or from the store): the rule's only input."""
    return experiment.run_grid({**base_grid(P), "minority_classes": [], "seeds": list(P.seeds)})


@dataclass(frozen=True)
class Cell:
    """The cell every mitigation is measured on: the rule's first minority and its partner."""

    minority: str
    partner: str
    ratio: int
    seeds: list  #: the paired seeds of every intervention (``mitigation_seeds``)
    classes: list
    n_per_class: int
    weight: str  #: the minority's anchor weight of re-weighting, as the prose shows it


def choose_cell(P: Any, balanced: Sequence[Any]) -> Cell:
    """Apply :func:`rharm.study.design.preregister` (``n_close = P.n_close``, ties broken by the larger room, as the
    Fashion-MNIST chapter's registration v2) to the balanced models; the first minority."""
    base_grid(P)  # validates the seeds
    if any(r.minority is not None for r in balanced):
        raise ValueError("balanced holds underrepresented runs; the rule reads the balanced models only")
    classes = list(experiment.run_classes(P.values))
    prereg = study.preregister(study.balanced_distance(metrics.cosine_runs(list(balanced), classes=classes)),
                               classes, n_close=P.n_close, tie_break="room")
    m0 = prereg.minorities[0]
    return Cell(minority=m0, partner=prereg.partners[m0], ratio=int(P.ratio), seeds=list(P.mitigation_seeds),
                classes=classes, n_per_class=int(P.n_per_class), weight=f"{P.minority_weight:g}")


def none_runs(P: Any, cell: Cell) -> list:
    """The unmitigated models of the paired seeds (the Fashion-MNIST chapter's, from the store when it ran)."""
    return experiment.run_grid(arm_grids(P, cell.minority, P.temperature)["none"])


def cell_log_rh(cell: Cell, runs: Sequence[Any]) -> np.ndarray:
    """(S,) per-seed log RH(minority, partner) of one arm's ``runs`` (balanced and minority models, paired by seed)."""
    return study.cell_log_rh(*_split(runs, cell.minority), cell.minority, cell.partner, cell.classes)


@dataclass(frozen=True)
class TheoryTemperature:
    """The temperature at which the three-block theory, fitted to the unmitigated RH, predicts the least collapse.

    ``theory_temperature``: ``tau`` (the choice), ``is_smallest`` (whether it is the smallest of the list),
    ``alpha`` (the fitted parameter) and ``table`` (columns tau, theory_rh).
    """

    theory_temperature: dict

    @property
    def tau(self) -> float:
        return self.theory_temperature["tau"]

    @property
    def alpha(self) -> float:
        return self.theory_temperature["alpha"]

    @property
    def is_smallest(self) -> bool:
        return self.theory_temperature["is_smallest"]

    @property
    def table(self) -> pd.DataFrame:
        return self.theory_temperature["table"]


def choose_temperature(P: Any, cell: Cell, base_log_rh: np.ndarray) -> TheoryTemperature:
    """Fit the theory's alpha to exp(mean of ``base_log_rh``) (S,) at ``P.temperature`` and take, among
    ``P.temperatures``, the one with the largest theoretical RH (ties: the first of the list)."""
    k = len(cell.classes)
    fit = study.fit_alpha(float(np.exp(np.mean(base_log_rh))), cell.ratio, tau=P.temperature, n_classes=k,
                          dim=P.theory_dim)
    table = pd.DataFrame({"tau": [float(t) for t in P.temperatures]})
    table["theory_rh"] = [study.theory_rh(cell.ratio, fit.alpha, tau=t, n_classes=k, dim=P.theory_dim)
                          for t in table.tau]
    tau = float(table.tau[table.theory_rh.idxmax()])
    return TheoryTemperature({"tau": tau, "is_smallest": bool(tau == min(table.tau)), "alpha": float(fit.alpha),
                              "table": table})


def train_arms(P: Any, cell: Cell, tau: float, none: Sequence[Any] | None = None) -> dict[str, tuple[list, list]]:
    """Every intervention's models, ``{name: (balanced runs, minority runs)}`` in the order of :func:`interventions`.

    All arms' missing runs are trained in one pool (:func:`rharm.runs.images.prefetch`, warm-start pre-training
    first), then each arm is loaded with :func:`rharm.runs.images.run_grid`; the results are those of a serial run.
    ``none``: the unmitigated runs already loaded (:func:`none_runs`), reused rather than loaded again.
    """
    grids = arm_grids(P, cell.minority, tau)
    experiment.prefetch(list(grids.values()), workers=P.workers)
    out = {}
    for name, grid in grids.items():
        runs = none if (name == "none" and none is not None) else experiment.run_grid(grid)
        out[name] = _split(runs, cell.minority)
    return out
