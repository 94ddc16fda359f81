"""The underrepresentation draw: how many members of a group a ratio keeps, and which ones.

One draw for every modality (images, sentences, probes), so a seed keeps the same members wherever it is used.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rharm.core import schema
from rharm.core.common import check_choice

#: how :func:`undersample` picks the kept members
UNDERSAMPLE_DRAWS = ("choice", "permutation", "prefix")

def kept_count(n: int, ratio: float, *, minimum: int = 0) -> int:
    """How many of ``n`` minority members are kept at 1:``ratio``: ``max(minimum, int(n / ratio))``, as the paper's
    code does (50 of 5,000 at 1:100). Raises ValueError unless ``ratio`` is valid (:data:`rharm.core.schema.SPECS`)."""
    schema.check("ratio", ratio)
    return max(int(minimum), int(n / ratio))


def undersample(members: Any, ratio: float, rng: np.random.Generator | None = None, *, minimum: int = 0,
                draw: str = "choice") -> np.ndarray:
    """The kept minority members (k,) of ``members`` (n,), k = :func:`kept_count` (n, ratio, minimum=minimum).

    ``draw``: ``"choice"``: ``rng.choice(members, k, replace=False)`` (the paper's code; images, probes);
    ``"permutation"``: the first k of ``rng.permutation(members)``; ``"prefix"``: the first k of ``members``, which
    the caller has already shuffled (``rng`` must be None), so the kept set is nested in any larger one.
    The result is in draw order, not sorted.
    """
    check_choice("draw", draw, UNDERSAMPLE_DRAWS)
    members = np.asarray(members)
    k = kept_count(members.size, ratio, minimum=minimum)
    if draw == "prefix":
        if rng is not None:
            raise ValueError("rng must be None for draw='prefix' (the members are already in random order)")
        return members[:k]
    if rng is None:
        raise ValueError(f"rng is None; draw={draw!r} needs a numpy Generator")
    if draw == "choice":
        return rng.choice(members, size=k, replace=False)
    return rng.permutation(members)[:k]


def undersample_mask(labels: Any, minority_label: int, ratio: float, rng: np.random.Generator, *,
                     minimum: int = 0) -> np.ndarray:
    """(N,) bool mask keeping every sample of ``labels`` (N,) except all but :func:`undersample` (``"choice"``) of
    the ``minority_label`` members."""
    labels = np.asarray(labels)
    members = np.flatnonzero(labels == minority_label)
    mask = labels != minority_label
    mask[undersample(members, ratio, rng, minimum=minimum)] = True
    return mask
