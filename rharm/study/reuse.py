"""Runs one chapter reuses from another chapter's registered design, fetched from the result store (trained if
absent): the scale chapter's replication of its pilot on the representation chapter's grid, and the audit
chapter's image encoders from the Fashion-MNIST registration (v2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rharm.core import params
from rharm.harm import metrics
from rharm.runs import images as experiment
from rharm.study import confirmatory
from rharm.study import design as study
from rharm.vision import data as image_data


def pilot_replication(profile: str, minority: str, partner: str) -> dict:
    """RH(minority, partner) over every seed of the representation-harm chapter's grid of ``profile``.

    Trains (or fetches from the store) that grid's balanced model and ``minority`` runs, and returns
    ``{"minority", "partner", "rh", "lo", "hi", "n_seeds"}`` (:func:`rharm.harm.metrics.rh_interval`, 95%).
    """
    grid = experiment.grid_from_params(params.profile_values("representation_harm", profile))
    runs = experiment.run_grid({**grid, "minority_classes": [minority], "progress": False})
    cr = metrics.cosine_runs(runs)
    boot = metrics.rh_interval(cr, level=0.95)
    return {"minority": minority, "partner": partner, "rh": float(boot["estimate"].loc[minority, partner]),
            "lo": float(boot["lo"].loc[minority, partner]), "hi": float(boot["hi"].loc[minority, partner]),
            "n_seeds": len(cr.seeds)}


@dataclass(frozen=True)
class ImageSetting:
    """Which Fashion-MNIST encoders are audited: the first pre-registered minority and its predicted partner."""

    minority: str
    partner: str
    ratio: int
    seed: int


def image_encoders(profile: str) -> tuple[np.ndarray, np.ndarray, list[str], list[str], ImageSetting]:
    """The fashion_harm registration's first seed: the test-set backbone features of the model trained with the first
    pre-registered minority underrepresented and of the balanced model of the same seed (the same test images), the
    test labels (class names), the classes, and which setting that is. ``profile`` picks the fashion_harm
    parameters; the grid is exactly the registration's, so every run comes from its result store."""
    fp = params.profile_values("fashion_harm", profile)
    grid = confirmatory.registered_grid(fp)
    classes = list(fp.get("classes") or image_data.dataset_info(fp["dataset"]).classes)
    balanced = experiment.run_grid({**grid, "minority_classes": []})
    pre = study.preregister(study.balanced_distance(metrics.cosine_runs(balanced, classes=classes)), classes,
                            n_close=fp["n_close"], tie_break="room")
    minority = pre.minorities[0]
    seed = fp["seeds"][0]
    imb = experiment.run_one(grid, minority, seed)
    ref = next(r for r in balanced if r.seed == seed)
    labels = [classes[i] for i in imb.features["test_labels"].tolist()]
    setting = ImageSetting(minority=minority, partner=pre.partners[minority], ratio=int(fp["ratio"]), seed=seed)
    return (imb.features["test_backbone"].numpy(), ref.features["test_backbone"].numpy(), labels, classes, setting)
