"""The paper's published numbers, read from ``rharm/resources/paper_reference.json``.

Every value there was read from the text layer of a figure PDF committed in the official repository
(smaityumich/CL-representation-harm, commit b7b7aa3); each entry names its file and panel. This module is the only
way the package and the book reach those numbers, so none is ever typed by hand elsewhere.

Matrices come back as :class:`pandas.DataFrame` with rows = minority (underrepresented) class and columns = other
class (representation harm) or predicted class (TE, NIE, -rNDE), labelled with CIFAR-10 class names.

Names (see :func:`names`): ``simclr_100_rh``, ``simclr_20_rh``, ``simsiam_100_rh``, ``bcl_100_rh``,
``simclr_100_te``, ``simclr_100_nie``, ``simclr_100_te_6``, ``simclr_100_neg_rnde_6``, ``simclr_100_nie_6``,
``simclr_20_te``, ``simclr_20_nie``, ``simclr_20_neg_rnde_6``, ``simsiam_100_te``, ``simsiam_100_nie``,
``bcl_100_te``, ``bcl_100_nie`` (matrices) and ``other_settings_diagonal``, ``simclr_100_diagonal_mean`` (tables).

The theory figure's population cosines (``simulation/plots/cosine_th.pdf``, three-block SBM) are kept apart from
the CIFAR-10 entries: :func:`theory_cosines`, :func:`theory_cosine_matrices`, :func:`theory_info`.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pandas as pd

from rharm.core.paths import resources_dir

_FILE = "paper_reference.json"
_ORDERS = ("paper", "cifar10")


@functools.lru_cache(maxsize=1)
def _load() -> dict[str, Any]:
    with open(resources_dir() / _FILE, encoding="utf-8") as fh:
        return json.load(fh)


def names(kind: str | None = None) -> list[str]:
    """Names of the stored entries; ``kind`` = ``"matrix"`` or ``"table"`` filters them."""
    if kind not in (None, "matrix", "table"):
        raise ValueError(f"kind={kind!r} is not valid; choose None, 'matrix' or 'table'")
    return [k for k, v in _load()["entries"].items() if kind is None or v["kind"] == kind]


def class_order(order: str = "paper") -> list[str]:
    """Class names in the paper's plot order (``"paper"``) or CIFAR-10's label order (``"cifar10"``)."""
    if order == "paper":
        return list(_load()["class_order"])
    if order == "cifar10":
        return list(_load()["cifar10_label_order"])
    raise ValueError(f"order={order!r} is not valid; choose one of {_ORDERS}")


def _entry(name: str) -> dict[str, Any]:
    entries = _load()["entries"]
    if name not in entries:
        raise KeyError(f"name={name!r} is not a stored reference entry; valid names: {sorted(entries)}")
    return entries[name]


def _frame(name: str, field: str, order: str) -> pd.DataFrame:
    e = _entry(name)
    df = pd.DataFrame(e[field], index=e["rows"], columns=e["columns"], dtype=float)
    if e["kind"] == "matrix":
        df.index.name = "minority"
        df.columns.name = "predicted" if e["quantity"] != "RH" else "other"
        if order == "cifar10":
            keep = [c for c in class_order("cifar10") if c in df.index]
            df = df.loc[keep, keep]
        elif order != "paper":
            raise ValueError(f"order={order!r} is not valid; choose one of {_ORDERS}")
    return df


def matrix(name: str, order: str = "paper") -> pd.DataFrame:
    """The published values of entry ``name``.

    Args:
        name: an entry name (see :func:`names`).
        order: ``"paper"`` (the figures' class order) or ``"cifar10"`` (CIFAR-10 label order).

    Returns:
        DataFrame, (K, K) for matrices (K = 10 or 6; index = minority class, columns = other/predicted class), or
        the stored table for ``kind == "table"`` entries.
    """
    return _frame(name, "values", order)


def sd(name: str, order: str = "paper") -> pd.DataFrame:
    """The published "±" of a matrix entry, same shape and labels as :func:`matrix`.

    For RH this is the paper's cosine-scale sd (not propagated to the ratio); for TE/NIE it is the std over
    replicates times 1/sqrt(250), combined in quadrature (see :func:`info` ``["sd_formula"]``).
    """
    if _entry(name)["kind"] != "matrix":
        raise ValueError(f"name={name!r} is a table without sd; choose a matrix: {names('matrix')}")
    return _frame(name, "sd", order)


def source(name: str) -> dict[str, str]:
    """Where entry ``name`` was read: repository, commit, file, panel and how it was extracted."""
    return dict(_entry(name)["source"])


def source_text(name: str) -> str:
    """One line naming the source of ``name``, for captions."""
    s = source(name)
    panel = f", {s['panel']}" if s.get("panel") else ""
    return f"{s['repository'].rsplit('/', 2)[-2]}/{s['repository'].rsplit('/', 1)[-1]}@{s['commit']}: {s['file']}{panel}"


def info(name: str) -> dict[str, Any]:
    """Metadata of entry ``name`` (quantity, method, ratio, panel, sd formula), without the numbers."""
    return {k: v for k, v in _entry(name).items() if k not in ("values", "sd")}


def long(name: str, order: str = "paper") -> pd.DataFrame:
    """Entry ``name`` as a long table with columns ``minority``, ``other``, ``value``, ``sd`` (for charts)."""
    v = matrix(name, order).stack().rename("value")
    s = sd(name, order).stack().rename("sd")
    out = pd.concat([v, s], axis=1).reset_index()
    out.columns = ["minority", "other", "value", "sd"]
    return out


def settings() -> list[tuple[str, int, str, str]]:
    """Every (method, ratio, quantity, panel) the paper reports a matrix for, e.g. ``("SimCLR", 100, "RH", "full")``."""
    return [(i["method"], int(i["ratio"]), i["quantity"], i["panel"])
            for i in (info(n) for n in names("matrix"))]


def for_setting(method: str, ratio: int, quantity: str, *, panel: str | None = None,
                order: str = "paper") -> pd.DataFrame:
    """The paper's matrix for one setting: ``for_setting("SimCLR", 100, "RH")`` is ``matrix("simclr_100_rh")``.

    Args:
        method: "SimCLR", "SimSiam" or "BCL-I" (case-insensitive).
        ratio: the underrepresentation ratio 1:``ratio`` (100 or 20).
        quantity: "RH", "TE", "NIE" or "-rNDE" (case-insensitive).
        panel: "full" (10 classes) or "6-class"; None takes the full panel when the paper has one, else the other.
        order: class order, as in :func:`matrix`.

    Returns:
        (K, K) DataFrame, as :func:`matrix`.

    Raises:
        ValueError naming the valid settings when the paper reports no value for this one (e.g. SimSiam at 1:20):
        a missing reference is never silently replaced by another setting's numbers.
    """
    want = (str(method).lower(), ratio, str(quantity).lower())
    hits = [n for n in names("matrix")
            if (str(info(n)["method"]).lower(), info(n)["ratio"], str(info(n)["quantity"]).lower()) == want
            and (panel is None or info(n)["panel"] == panel)]
    if not hits:
        valid = ", ".join(f"({m!r}, {r}, {q!r}, panel={p!r})" for m, r, q, p in settings())
        raise ValueError(f"the paper reports no {quantity!r} matrix for method={method!r}, ratio={ratio!r}"
                         f"{'' if panel is None else f', panel={panel!r}'}; valid settings: {valid}")
    full = [n for n in hits if info(n)["panel"] == "full"]
    return matrix((full or hits)[0], order)


def theory_cosines() -> pd.DataFrame:
    """The published population cosines of the theory figure (official ``simulation/plots/cosine_th.pdf``).

    The figure shows the (3, 3) cosine matrix of the block representations ``h_1*, h_2*, h_3*`` of the paper's
    three-block SBM at ``alpha`` = :func:`theory_info` ``["alpha"]`` for three minority shares ``pi_1``; values are
    printed to 2 decimals (each known to ``+- theory_info()["precision"]``).

    Returns:
        DataFrame, one row per panel, columns ``pi1`` (float), ``pi1_label`` (as titled, e.g. ``"2^-4"``), ``alpha``,
        ``cos12``, ``cos13``, ``cos23`` (the off-diagonal cells; the printed matrices are symmetric with unit
        diagonal).
    """
    e = _load()["theory_cosine_th"]
    rows = []
    for panel in e["panels"]:
        v = panel["values"]
        rows.append({"pi1": float(panel["pi1"]), "pi1_label": panel["pi1_label"], "alpha": float(e["alpha"]),
                     "cos12": float(v[0][1]), "cos13": float(v[0][2]), "cos23": float(v[1][2])})
    return pd.DataFrame(rows)


def theory_cosine_matrices() -> dict[float, pd.DataFrame]:
    """The published (3, 3) cosine matrices of the theory figure as printed, keyed by ``pi_1``; rows and columns
    are the blocks ``"1"``, ``"2"``, ``"3"``."""
    e = _load()["theory_cosine_th"]
    return {float(p["pi1"]): pd.DataFrame(p["values"], index=e["blocks"], columns=e["blocks"], dtype=float)
            for p in e["panels"]}


def theory_info() -> dict[str, Any]:
    """Metadata of the theory figure's values (description, alpha, within-block probability, precision, source)."""
    return {k: v for k, v in _load()["theory_cosine_th"].items() if k != "panels"}
