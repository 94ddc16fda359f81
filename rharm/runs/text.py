"""The text arm: representation and allocation harm of SimCSE when one (profession, gender) group is rare.

OUR RECONSTRUCTION. The paper's text code and its text metric ("GRH", its section 2.2.2) were not released; what is
here is our own design, not the paper's definition:

* each run trains SimCSE (:mod:`rharm.language.simcse`) on a CL-training split in which every group has the same
  number of sentences (balanced) or one group is kept at 1:ratio (underrepresented), and embeds a held-out
  evaluation split that keeps every group;
* group-level representation harm uses the image metric on group means (:mod:`rharm.harm.metrics`):
  ``RH(g, h) = (1 - cos_imb(g, h)) / (1 - cos_bal(g, h))``; below 1 the minority moved closer to h;
* the two coordinates of our text metric for a minority g = (o, s):
  ``x = RH(g, (o, s'))`` (collapse toward the same profession, other gender) and
  ``y = RH(g, (o*, s))`` (collapse toward the same gender of the nearest other profession o*, nearest by the
  balanced model's cosine); the plane splits at 1 on each axis;
* allocation: a logistic-regression profession probe on the evaluation embeddings, accuracy by group, and
  TE / NIE / NDE with :func:`rharm.harm.mediation.effects`.

Chapter: ``notebooks/text_harm.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from rharm import store
from rharm.core import runtime, sampling
from rharm.harm import probe, stats
from rharm.language import data as textdata
from rharm.language import simcse

SOURCES = ("bug", "biasbios")


@dataclass(frozen=True)
class TextRun:
    """One trained-and-embedded SimCSE run.

    Attributes:
        minority: the underrepresented group, or None for the balanced run.
        seed: seeds the split, the training order, dropout and the augmentation.
        dir: the result folder in the store.
        embeddings: (n_eval, d) float32 evaluation embeddings.
        groups: (n_eval,) group name of each evaluation sentence.
        loss: (steps,) SimCSE loss per step.
        drift: mean cosine between embeddings before and after training (on up to 256 evaluation sentences).
    """

    minority: str | None
    seed: int
    dir: Path
    embeddings: np.ndarray
    groups: np.ndarray
    loss: np.ndarray
    drift: float
    steps_per_s: float


@lru_cache(maxsize=2)
def _frame(source: str, path: str, variant: str, corpus: str) -> pd.DataFrame:
    if source == "bug":
        return textdata.load_bug(variant, corpus)
    return textdata.load_biasbios(path)


def load_slice(data: Mapping[str, Any]) -> pd.DataFrame:
    """The labelled sentences a data config names (``source``, ``path``, ``variant``, ``corpus``, ``professions``)."""
    source = data["source"]
    if source not in SOURCES:
        raise ValueError(f"source={source!r} is not valid; choose one of {list(SOURCES)}")
    if source == "biasbios" and not data.get("path"):
        raise ValueError("source='biasbios' needs path= pointing at a LabHC/bias_in_bios file or folder")
    frame = _frame(source, str(data.get("path") or ""), data.get("variant", "full"), data.get("corpus", "wikipedia"))
    return textdata.text_slice(frame, data["professions"])


def data_config(*, source: str = "bug", path: str = "", variant: str = "full", corpus: str = "wikipedia",
                n_professions: int = 10, professions: Sequence[str] | None = None, cl_fraction: float = 0.5,
                n_train_per_group: int = 100, n_eval_per_group: int = 120) -> dict:
    """A validated, JSON-plain data config; ``professions`` defaults to the n best supported by both genders."""
    if source not in SOURCES:
        raise ValueError(f"source={source!r} is not valid; choose one of {list(SOURCES)}")
    frame = _frame(source, str(path), variant, corpus) if source == "bug" or path else None
    if frame is None:
        raise ValueError("source='biasbios' needs path= pointing at a LabHC/bias_in_bios file or folder")
    if professions:
        present = sorted(set(frame["profession"]))
        bad = [p for p in professions if p not in present]
        if bad:
            raise ValueError(f"professions={bad!r} are not in the data; valid: {present}")
        chosen = list(professions)
    else:
        chosen = textdata.select_professions(frame, n_professions)
    return {"source": source, "path": str(path), "variant": variant, "corpus": corpus, "professions": chosen,
            "cl_fraction": float(cl_fraction), "n_train_per_group": int(n_train_per_group),
            "n_eval_per_group": int(n_eval_per_group)}


def train_config(*, model: str = simcse.OFFLINE_MINILM, pooling: str = "model", max_length: int = 32,
                 batch_size: int = 32, steps: int = 40, lr: float = 1e-4, temperature: float = 0.05,
                 augmentation: str = "token_deletion", deletion_prob: float = 0.2, reinit_layers: int = 0) -> dict:
    """A validated, JSON-plain SimCSE training config."""
    simcse.validate_training(steps=steps, batch_size=batch_size, lr=lr, temperature=temperature,
                             augmentation=augmentation, deletion_prob=deletion_prob)
    if pooling not in simcse.POOLINGS:
        raise ValueError(f"pooling={pooling!r} is not valid; choose one of {list(simcse.POOLINGS)}")
    return {"model": model, "pooling": pooling, "max_length": int(max_length), "batch_size": int(batch_size),
            "steps": int(steps), "lr": float(lr), "temperature": float(temperature), "augmentation": augmentation,
            "deletion_prob": float(deletion_prob), "reinit_layers": int(reinit_layers)}


def code_modules() -> list:
    # every rharm module this one imports, transitively, this module included: an edit never reuses a stored run
    return store.code_closure(__name__)


def content_sha256(path: str | Path) -> str | None:
    """sha256 of a file's bytes, or of every file under a folder (relative names and bytes, ``__pycache__`` and
    hidden files left out); None when ``path`` is not on disk (e.g. a model hub name)."""
    if not path:
        return None
    path = Path(path).expanduser()
    if path.is_file():
        files = [(path.name, path)]
    elif path.is_dir():
        files = [(p.relative_to(path).as_posix(), p) for p in sorted(path.rglob("*")) if p.is_file()
                 and not any(part.startswith(".") or part == "__pycache__" for part in p.relative_to(path).parts)]
    else:
        return None
    import hashlib

    h = hashlib.sha256()
    for rel, p in files:
        st = p.stat()
        h.update(rel.encode() + b"\0" + _file_sha256(str(p), st.st_size, st.st_mtime_ns).encode())
    return h.hexdigest()


@lru_cache(maxsize=1024)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:  # size and mtime key the cache: an edit rehashes
    return textdata.sha256_file(path)


def run_config(data: Mapping[str, Any], train: Mapping[str, Any], *, minority: str | None, ratio: int,
               seed: int) -> dict:
    """The store key of one SimCSE run: the configs plus the *contents* of the data file and the model.

    ``data["path"]`` (Bias in Bios) and ``train["model"]`` (a local folder, or the bundled MiniLM) are hashed by
    content, so a file replaced under the same name never reuses a stored run; a hub model name is kept as a name.
    """
    data_sha = content_sha256(data.get("path") or "") if data.get("source") == "biasbios" else None
    try:
        model_path = simcse.resolve_model_path(train["model"])
    except ValueError:
        model_path = None
    return {"data": dict(data), "train": dict(train), "minority": minority, "ratio": int(ratio), "seed": int(seed),
            "data_sha256": data_sha, "model_sha256": content_sha256(model_path) if model_path else None}


def run_simcse(data: Mapping[str, Any], train: Mapping[str, Any], *, minority: str | None, ratio: int,
               seed: int) -> TextRun:
    """Train (or load from the store) one SimCSE run and embed its evaluation split.

    The store key is :func:`run_config` (the data and training configs, the contents of the data file and of the
    model folder, the minority, the ratio (1 for balanced runs), the seed) with the source of every module this one
    imports (:func:`rharm.store.code_closure`). The folder holds ``split.pt``
    (``cl_train`` and ``eval`` indices into :func:`load_slice`), ``embeddings.pt`` and ``history.json``.
    """
    frame = load_slice(data)
    groups = frame["group"].to_numpy(dtype=object)
    groups_present = sorted(set(groups.tolist()))
    if minority is not None and minority not in groups_present:
        raise ValueError(f"minority={minority!r} is not a group of the data; valid: {groups_present}")
    ratio = 1 if minority is None else int(ratio)
    split_args = dict(cl_fraction=data["cl_fraction"], n_train_per_group=data["n_train_per_group"],
                      n_eval_per_group=data["n_eval_per_group"], seed=seed)
    split = textdata.underrepresented_split(groups, minority=minority, ratio=ratio, **split_args)  # validates now
    config = run_config(data, train, minority=minority, ratio=ratio, seed=seed)

    def compute(tmp: Path) -> dict:
        texts = frame["text"].tolist()
        encoder = simcse.load_encoder(train["model"], pooling=train["pooling"], max_length=train["max_length"],
                                      reinit_layers=train["reinit_layers"], seed=seed)
        sample = [texts[i] for i in split["eval"][:256]]
        before = simcse.encode(encoder, sample)
        history = simcse.train_simcse(
            encoder, [texts[i] for i in split["cl_train"]], steps=train["steps"], batch_size=train["batch_size"],
            lr=train["lr"], temperature=train["temperature"], augmentation=train["augmentation"],
            deletion_prob=train["deletion_prob"], seed=seed)
        after = simcse.encode(encoder, sample)
        emb = simcse.encode(encoder, [texts[i] for i in split["eval"]])
        store.save_tensors(tmp / "split.pt", {k: v for k, v in split.items()})
        store.save_tensors(tmp / "embeddings.pt", {"eval": emb})
        history["drift"] = simcse.mean_cosine(before, after)
        store.save_json(tmp / "history.json", history)
        return {"steps_per_s": history["steps_per_s"], "drift": history["drift"]}

    folder = store.cached("text_simcse", config, compute, code=code_modules())
    saved = store.load_tensors(folder / "split.pt")
    history = store.load_json(folder / "history.json")
    return TextRun(minority=minority, seed=int(seed), dir=folder,
                   embeddings=store.load_tensors(folder / "embeddings.pt")["eval"].numpy(),
                   groups=groups[saved["eval"].numpy()], loss=np.asarray(history["loss"], dtype=float),
                   drift=float(history["drift"]), steps_per_s=float(history["steps_per_s"]))


# --- representation harm ------------------------------------------------------------------------------------


def group_cosines(run: TextRun, group_order: Sequence[str]) -> np.ndarray:
    """(K, K) mean pairwise cosine between the groups' unit-normalised evaluation embeddings (section 3.1)."""
    from rharm.harm import metrics

    index = {g: k for k, g in enumerate(group_order)}
    missing = sorted(set(run.groups.tolist()) - set(index))
    if missing:
        raise ValueError(f"group_order lacks groups {missing} present in the run")
    labels = np.array([index[g] for g in run.groups], dtype=np.int64)
    return np.asarray(metrics.class_cosines(run.embeddings, labels, len(group_order)), dtype=float)


def harm_coordinates(cos_imb: np.ndarray, cos_bal: np.ndarray, group_order: Sequence[str],
                     minority: str) -> dict:
    """Our reconstruction of the text metric: the minority's RH toward two kinds of neighbour.

    With ``RH(g, h) = (1 - cos_imb(g, h)) / (1 - cos_bal(g, h))`` (rharm.harm.metrics.representation_harm) and the
    minority g = (o, s):

    * ``other_gender`` = RH(g, (o, s')) - collapse toward the same profession of the other gender;
    * ``nearest_profession`` = RH(g, (o*, s)) with o* = argmax over o' != o of cos_bal(g, (o', s)) - collapse
      toward the same gender of the nearest other profession (nearest in the balanced model).

    Values below 1 mean the minority moved closer (harm); the plane of the two splits at 1.

    Args:
        cos_imb, cos_bal: (K, K) group cosines of the underrepresented and the balanced model.
    Returns a dict with both coordinates, ``nearest`` (the group o*|s), ``other`` (o|s') and ``row`` (K,) RH row.
    """
    from rharm.harm import metrics

    order = list(group_order)
    if minority not in order:
        raise ValueError(f"minority={minority!r} is not in group_order; valid: {order}")
    k = len(order)
    if np.shape(cos_imb) != (k, k) or np.shape(cos_bal) != (k, k):
        raise ValueError(f"cos_imb and cos_bal must be ({k}, {k}); got {np.shape(cos_imb)} and {np.shape(cos_bal)}")
    profession, gender = textdata.split_group(minority)
    other_gender = [g for g in textdata.GENDERS if g != gender]
    other = textdata.group_name(profession, other_gender[0])
    i = order.index(minority)
    candidates = [j for j, g in enumerate(order)
                  if textdata.split_group(g)[1] == gender and textdata.split_group(g)[0] != profession]
    if other not in order or not candidates:
        raise ValueError(f"group_order needs {other!r} and another profession of gender {gender!r}")
    nearest = max(candidates, key=lambda j: cos_bal[i, j])
    row = np.asarray(metrics.representation_harm(np.asarray(cos_imb)[i], np.asarray(cos_bal)[i]), dtype=float)
    return {"other_gender": float(row[order.index(other)]), "nearest_profession": float(row[nearest]),
            "other": other, "nearest": order[nearest], "row": row}


def harm_table(pairs: Sequence[tuple[TextRun, TextRun]], group_order: Sequence[str], minority: str) -> pd.DataFrame:
    """Per-seed RH of the minority toward every group, from paired (balanced, underrepresented) runs of one seed.

    Also adds the noise floor: RH computed between the balanced model of seed k+1 (as "underrepresented") and that
    of seed k, which shows how far from 1 RH strays with no treatment at all.

    Returns a long frame: seed, group, rh, kind (``"paired"`` or ``"noise_floor"``).
    """
    order = list(group_order)
    from rharm.harm import metrics

    i = order.index(minority)
    rows = []
    bal_cos = [group_cosines(b, order) for b, _ in pairs]
    for (bal, imb), cb in zip(pairs, bal_cos):
        rh = metrics.representation_harm(group_cosines(imb, order)[i], cb[i])
        rows += [{"seed": bal.seed, "group": g, "rh": float(v), "kind": "paired"} for g, v in zip(order, rh)]
    for _, k, rh in metrics.noise_floor_ratios([c[i] for c in bal_cos], "consecutive"):  # seed k+1 over seed k
        rows += [{"seed": pairs[k][0].seed, "group": g, "rh": float(v),
                  "kind": "noise_floor"} for g, v in zip(order, rh)]
    return pd.DataFrame(rows)


def summarise(table: pd.DataFrame, by: Sequence[str], value: str, level: float = 0.95) -> pd.DataFrame:
    """Mean and t-interval over seeds of ``value`` for each combination of ``by``: columns mean, lo, hi, n."""
    out = []
    for key, sub in table.groupby(list(by), sort=False):
        mean, lo, hi = stats.t_interval(sub[value].to_numpy(), level=level)
        key = key if isinstance(key, tuple) else (key,)
        out.append({**dict(zip(by, key)), "mean": mean, "lo": lo, "hi": hi, "n": len(sub)})
    return pd.DataFrame(out)


# --- allocation harm ------------------------------------------------------------------------------------------


def probe_split(groups: np.ndarray, *, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of evaluation sentences into probe-training and probe-test indices, stratified by group."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(groups))
    tr, te = train_test_split(idx, test_size=test_size, random_state=seed, stratify=groups)
    return np.sort(tr), np.sort(te)


def accuracy_by_group(emb_train: np.ndarray, y_train: np.ndarray, emb_test: np.ndarray, y_test: np.ndarray,
                      groups_test: np.ndarray, group_order: Sequence[str], *, C: float = 1.0) -> np.ndarray:
    """Fit a multinomial logistic regression on L2-normalised embeddings; (K,) test accuracy per group."""
    def unit(x):  # in the embeddings' own dtype (float32 from the encoder), as the probe was always fitted
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    model = probe.fit_logistic(unit(emb_train), y_train, C, max_iter=2000)
    correct = probe.predict_logistic(model, unit(emb_test)) == y_test
    return np.array([correct[groups_test == g].mean() if np.any(groups_test == g) else np.nan
                     for g in group_order])


def allocation_effects(bal: TextRun, imb: TextRun, group_order: Sequence[str], *, minority: str, ratio: int,
                       test_size: float = 0.25, seed: int = 0, C: float = 1.0) -> dict:
    """Profession-probe accuracy by group under three conditions, and TE / NIE / NDE (rharm.harm.mediation.effects).

    * ``y00``: balanced SimCSE, probe trained on all probe-training sentences;
    * ``y01``: underrepresented SimCSE, same probe data (the representation alone changes);
    * ``y11``: underrepresented SimCSE, probe data with the minority also kept at 1:ratio (seeded).

    TE = y11 - y00, NIE = y01 - y00, NDE = TE - NIE. Both runs must share the evaluation split (same seed).
    Returns ``{"y00", "y01", "y11", "TE", "NIE", "NDE"}``, each (K,) over ``group_order``.
    """
    from rharm.harm import mediation

    if not np.array_equal(bal.groups, imb.groups):
        raise ValueError("bal and imb must share their evaluation split (train them with the same seed and data)")
    groups = bal.groups
    professions = np.array([textdata.split_group(g)[0] for g in groups])
    tr, te = probe_split(groups, test_size=test_size, seed=seed)
    rng = np.random.default_rng(seed)
    minority_tr = tr[groups[tr] == minority]
    keep_minority = sampling.undersample(minority_tr, ratio, rng, minimum=1, draw="permutation")
    tr_imb = np.sort(np.concatenate([tr[groups[tr] != minority], keep_minority]))
    out = {}
    for name, run, train_idx in (("y00", bal, tr), ("y01", imb, tr), ("y11", imb, tr_imb)):
        out[name] = accuracy_by_group(run.embeddings[train_idx], professions[train_idx], run.embeddings[te],
                                      professions[te], groups[te], group_order, C=C)
    eff = mediation.effects(out["y00"], out["y01"], out["y11"])
    out.update({k: np.asarray(eff[k], dtype=float) for k in ("TE", "NIE", "NDE")})
    return out


def canary() -> list[float]:
    """The canary of the stored kind ``text_simcse`` (:mod:`rharm.store.recipes`): 6 numbers from two SimCSE steps
    of the offline MiniLM (top 2 layers re-initialised) on 16 fixed sentences of four groups, one of them
    underrepresented at 1:4 by the split a stored run uses, and the embeddings of 4 sentences. CPU; a few seconds."""
    groups = np.array([g for g in ("nurse_f", "nurse_m", "doctor_f", "doctor_m") for _ in range(8)], dtype=object)
    texts = [f"the {g.split('_')[0]} number {i} works at {'her' if g.endswith('f') else 'his'} clinic"
             for i, g in enumerate(groups)]
    split = textdata.underrepresented_split(groups, minority="doctor_f", ratio=4, cl_fraction=0.5,
                                            n_train_per_group=4, n_eval_per_group=2, seed=0)
    with runtime.torch_threads(1):
        encoder = simcse.load_encoder(simcse.OFFLINE_MINILM, pooling="model", max_length=32, reinit_layers=2, seed=0,
                                      device="cpu")
        history = simcse.train_simcse(encoder, [texts[i] for i in split["cl_train"]], steps=2, batch_size=8,
                                      lr=3e-5, temperature=0.05, augmentation="dropout", deletion_prob=0.1, seed=0)
        emb = simcse.encode(encoder, [texts[i] for i in split["eval"][:4]])
    return [history["loss"][0], history["loss"][-1], float(emb.mean()), float(emb.std()), float(emb[0, 0]),
            float(emb[3, 5])]
