"""The text chapter's registered mechanism tests (REGISTRATION v2 of ``text_harm`` in ``profiles.yml``): the runs,
their measures, the tests T1-T3, the dose-response and its allocation effect.

Every run trains one encoder of :mod:`rharm.language.mechanism` with SimCSE on one design's contrastive-training
split and embeds the held-out split, which every run shares (stored kind ``text_mechanism``). Measures are the
image chapters' (arXiv 2310.01583, section 2.1.2): class cosines of the held-out embeddings and
``RH = (1 - cos_imb) / (1 - cos_bal)`` of paired runs (same seed), summarised over seeds as the geometric mean with a
Student t-interval of log RH (:func:`rharm.harm.stats.geometric_ci`). Chapter: ``notebooks/text_harm.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from rharm import store
from rharm.core import runtime, sampling
from rharm.harm import mediation, metrics, stats
from rharm.language import data as textdata
from rharm.language import mechanism as lm
from rharm.runs import text as runs_text

KIND = "text_mechanism"


# --- the runs --------------------------------------------------------------------------------------------


@dataclass
class Setup:
    """Everything the runs of one chapter share: the sentences, the splits, the tokenised inputs, the encoders."""

    frame: pd.DataFrame          # the windows of the chosen professions, with a ``group`` column
    group_order: list
    texts: dict                  # design -> list of N sentences (row-aligned with frame)
    splits: dict                 # (minorities tuple, ratio, seed) -> split
    inputs: lm.Inputs
    parts: dict
    token: str
    params: dict


def cell_split(setup: Setup, minorities: Sequence[str], ratio: int, seed: int) -> dict:
    key = (tuple(sorted(minorities)), int(ratio), int(seed))
    if key not in setup.splits:
        p = setup.params
        setup.splits[key] = lm.split_minorities(
            setup.frame["group"].to_numpy(dtype=object), list(minorities), ratio=ratio, cl_fraction=p["cl_fraction"],
            n_train_per_group=p["n_train_per_group"], n_eval_per_group=p["n_eval_per_group"],
            split_seed=p["split_seed"], seed=seed)
    return setup.splits[key]


def prepare(params: Mapping, designs: Sequence[str] = lm.DESIGNS) -> Setup:
    """Load the windows (:func:`rharm.language.mechanism.load_windows`), check the registered replacement token, and
    tokenise (and, for MiniLM, run the frozen layers on) every sentence a run can see, under every design. Raises
    ValueError naming a bad ``token_group`` before anything is trained."""
    p = dict(params)
    frame = lm.load_windows(tuple(p["professions"]), p["variant"], p["corpus"], p["context"])
    order = textdata.groups_of(p["professions"])
    if p["token_group"] not in order:
        raise ValueError(f"token_group={p['token_group']!r} is not a group of the data; valid: {order}")
    model, tokenizer = lm.minilm_model()
    token = p.get("token", lm.TOKEN)
    lm.check_token(tokenizer, frame["text"].tolist(), token)
    prof = textdata.split_group(p["token_group"])[0]
    texts = {d: lm.design_texts(frame, d, profession=prof, token_group=p["token_group"], token=token) for d in designs}
    setup = Setup(frame, order, texts, {}, None, {"model": model, "tokenizer": tokenizer}, token, p)
    split = cell_split(setup, [], 1, 0)
    rows = np.concatenate([split["cl_train"], split["eval"]])
    n_frozen = len(model.encoder.layer) - p["minilm"]["top_layers"]
    setup.inputs = lm.build_inputs([texts[d][r] for d in designs for r in rows], tokenizer, model, n_frozen)
    setup.parts["model_sha256"] = runs_text.content_sha256(lm.minilm_path())
    setup.parts["vocab_size"] = setup.inputs.vocab_size
    return setup


@dataclass
class Cell:
    """One trained encoder's held-out embeddings: ``groups`` and ``professions`` label its rows."""

    encoder: str
    design: str
    minorities: tuple
    ratio: int
    seed: int
    embeddings: np.ndarray
    groups: np.ndarray
    loss: np.ndarray
    seconds: float


def run_config(setup: Setup, encoder: str, design: str, minorities: Sequence[str], ratio: int, seed: int) -> dict:
    """The store key of one run: the data and split settings, the encoder's settings, the design, the minorities,
    the ratio, the seed, the token and the contents of the MiniLM folder (its tokenizer serves both encoders)."""
    p = setup.params
    data = {k: p[k] for k in ("variant", "corpus", "context", "professions", "cl_fraction", "n_train_per_group",
                              "n_eval_per_group", "split_seed", "token_group")}
    return {"data": data, "encoder": encoder, "train": dict(p[encoder]), "design": design,
            "minorities": sorted(minorities), "ratio": int(ratio), "seed": int(seed), "token": setup.token,
            "model_sha256": setup.parts.get("model_sha256")}


def run_cell(setup: Setup, encoder: str, design: str, minorities: Sequence[str], ratio: int, seed: int) -> Cell:
    """Train (or load from the store) one encoder with SimCSE on the design's CL split (the ``minorities`` at
    1:``ratio``) and embed the held-out split (shared by every run). The folder holds ``embeddings.pt`` and
    ``history.json`` (loss per step, training seconds)."""
    if encoder not in lm.ENCODERS:
        raise ValueError(f"encoder={encoder!r} is not valid; choose one of {list(lm.ENCODERS)}")
    if design not in setup.texts:
        raise ValueError(f"design={design!r} is not valid; choose one of {list(setup.texts)}")
    split = cell_split(setup, minorities, ratio, seed)
    texts = setup.texts[design]

    def compute(tmp: Path) -> dict:
        cfg = setup.params[encoder]
        with runtime.torch_threads(1 if encoder == "scratch" else setup.params.get("threads", 0) or None):
            model = lm.make_encoder(encoder, cfg, seed, setup.parts)
            history = lm.train_encoder(model, setup.inputs, setup.inputs.rows([texts[i] for i in split["cl_train"]]),
                                       encoder, cfg, seed)
            emb = lm.embed(model, setup.inputs, setup.inputs.rows([texts[i] for i in split["eval"]]), encoder)
        import torch

        store.save_tensors(tmp / "embeddings.pt", {"eval": torch.from_numpy(emb)})
        store.save_json(tmp / "history.json", history)
        return {"seconds": history["seconds"]}

    folder = store.cached(KIND, run_config(setup, encoder, design, minorities, ratio, seed), compute,
                          code=[lm.__name__, __name__])
    history = store.load_json(folder / "history.json")
    groups = setup.frame["group"].to_numpy(dtype=object)[split["eval"]]
    return Cell(encoder, design, tuple(minorities), int(ratio), int(seed),
                store.load_tensors(folder / "embeddings.pt")["eval"].numpy(), groups,
                np.asarray(history["loss"], dtype=float), float(history["seconds"]))


# --- measures and tests ----------------------------------------------------------------------------------------

LEVELS = ("group", "profession")


def cell_cosines(cell: Cell, level: str, order: Sequence[str]) -> np.ndarray:
    """(K, K) class cosines (:func:`rharm.metrics.class_cosines`, unbiased within) of the held-out embeddings,
    classes being the groups (``level="group"``) or the professions (``"profession"``) of ``order``."""
    if level not in LEVELS:
        raise ValueError(f"level={level!r} is not valid; choose one of {list(LEVELS)}")
    names = cell.groups if level == "group" else np.array([textdata.split_group(g)[0] for g in cell.groups])
    index = {c: k for k, c in enumerate(order)}
    missing = sorted(set(names.tolist()) - set(index))
    if missing:
        raise ValueError(f"order lacks {missing}")
    labels = np.array([index[c] for c in names], dtype=np.int64)
    return np.asarray(metrics.class_cosines(cell.embeddings, labels, len(order)), dtype=float)


def nearest_partners(cos_balanced: np.ndarray, i: int, candidates: Sequence[int] | None = None) -> list[int]:
    """The registered partner rule: the class j != i with the smallest distance 1 - cos(i, j), cosines averaged over
    the balanced models of every seed ((S, K, K) or (K, K)). An exact tie is broken in favour of the class whose own
    nearest class is i (a mutual pair has one collapse target); a tie that survives returns every tied class (the
    test then uses their mean log RH). No tie is broken by name."""
    cos = np.asarray(cos_balanced, dtype=float)
    cos = cos.mean(axis=0) if cos.ndim == 3 else cos
    d = 1.0 - cos
    off = d + np.diag(np.full(len(d), np.inf))
    allowed = np.full(len(d), np.inf)
    allowed[[j for j in (range(len(d)) if candidates is None else candidates) if j != i]] = 0.0
    row = off[i] + allowed
    if not np.isfinite(row).any():
        raise ValueError(f"candidates={candidates!r} leave no class to compare with class {i}")
    best = np.flatnonzero(row == row.min()).tolist()
    if len(best) > 1:
        mutual = [j for j in best if int(np.argmin(off[j])) == i]
        best = mutual if mutual else best
    return best


def seed_log_rh(balanced: Sequence[Cell], imbalanced: Sequence[Cell], level: str, order: Sequence[str],
                minority: str, partners: Sequence[int] | None = None,
                candidates: Sequence[int] | None = None) -> tuple[np.ndarray, list[int]]:
    """Per-seed log RH(minority, partner) of paired runs (same seed, same held-out split), partner by
    :func:`nearest_partners` on the balanced runs unless given; several tied partners are averaged in log.
    Returns (S,) log RH and the partner indices."""
    if [c.seed for c in balanced] != [c.seed for c in imbalanced]:
        raise ValueError("balanced and imbalanced runs must be paired by seed, in the same order")
    i = list(order).index(minority)
    cb = np.stack([cell_cosines(c, level, order) for c in balanced])
    ci = np.stack([cell_cosines(c, level, order) for c in imbalanced])
    partners = nearest_partners(cb, i, candidates) if partners is None else list(partners)
    rh = metrics.representation_harm(ci[:, i, partners], cb[:, i, partners])
    return np.log(rh).mean(axis=1), partners


def row_log_rh(balanced: Sequence[Cell], imbalanced: Sequence[Cell], level: str, order: Sequence[str],
               minority: str) -> np.ndarray:
    """(S, K) per-seed log RH of the minority toward every class (its own cell included)."""
    i = list(order).index(minority)
    return np.stack([np.log(metrics.representation_harm(cell_cosines(m, level, order)[i],
                                                        cell_cosines(b, level, order)[i]))
                     for b, m in zip(balanced, imbalanced)])


def tost_p(x: Sequence[float], margin: float) -> float:
    """p-value of the two one-sided t-tests that the mean of ``x`` lies inside (-margin, margin): the larger of the
    two one-sided p-values (equivalence is shown when it is below the level)."""
    if not margin > 0:
        raise ValueError(f"margin={margin!r} is not valid; it must be > 0")
    return max(stats.one_sided_p(x, -margin, "greater"), stats.one_sided_p(x, margin, "less"))


# --- the registered hypotheses ---------------------------------------------------------------------------------

#: the runs of one encoder and seed: name -> (design, minorities); every name but the balanced ones is at 1:ratio
def cell_plan(params: Mapping) -> dict:
    g = params["token_group"]
    prof, gender = textdata.split_group(g)
    profession_groups = tuple(textdata.group_name(prof, s) for s in textdata.GENDERS)
    return {"base_bal": ("base", ()), "t1": ("base", (g,)), "t2": ("base", profession_groups),
            "unique_bal": ("unique", ()), "unique": ("unique", (g,)),
            "shared_bal": ("shared", ()), "shared": ("shared", (g,))}


def run_all(setup: Setup, encoders: Sequence[str], seeds: Sequence[int], run=run_cell) -> dict:
    """Every run the registration names, as ``{(encoder, name, seed): Cell}`` (names from :func:`cell_plan`)."""
    out = {}
    for enc in encoders:
        for name, (design, minorities) in cell_plan(setup.params).items():
            ratio = 1 if not minorities else setup.params["ratio"]
            for seed in seeds:
                out[(enc, name, seed)] = run(setup, enc, design, minorities, ratio, seed)
    return out


def series(cells: Mapping, enc: str, name: str, seeds: Sequence[int]) -> list:
    return [cells[(enc, name, s)] for s in seeds]


def t_estimate(log_values: Sequence[float], level: float) -> dict:
    """Geometric mean and exponentiated t-interval of per-seed log RH (:func:`rharm.stats.geometric_ci`)."""
    est, lo, hi = stats.geometric_ci(np.asarray(log_values, dtype=float), level=level)
    return {"estimate": est, "lo": lo, "hi": hi}


def hypothesis_tests(cells: Mapping, setup: Setup, enc: str, seeds: Sequence[int], *, margin: float,
                     level: float) -> list[dict]:
    """T1, T2, T3 of one encoder, each a dict: test, quantity, estimate (geometric mean RH), lo, hi, p (one-sided
    or TOST as registered), toward (the partner(s)); the per-seed log values under ``log``."""
    p, order = setup.params, setup.group_order
    g = p["token_group"]
    prof, gender = textdata.split_group(g)
    bal, s = series(cells, enc, "base_bal", seeds), lambda n: series(cells, enc, n, seeds)
    other = order.index(textdata.group_name(prof, next(x for x in textdata.GENDERS if x != gender)))
    same_gender = [j for j, h in enumerate(order)
                   if textdata.split_group(h)[1] == gender and textdata.split_group(h)[0] != prof]
    x, _ = seed_log_rh(bal, s("t1"), "group", order, g, partners=[other])
    y, py = seed_log_rh(bal, s("t1"), "group", order, g, candidates=same_gender)
    professions = list(p["professions"])
    t2, p2 = seed_log_rh(bal, s("t2"), "profession", professions, prof)
    row = row_log_rh(bal, s("t2"), "profession", professions, prof)
    rest = [j for j in range(len(professions)) if j != professions.index(prof) and j not in p2]
    t2_pair = row[:, p2].mean(axis=1) - row[:, rest].mean(axis=1)  # registered as reported, not tested
    uq, pu = seed_log_rh(s("unique_bal"), s("unique"), "group", order, g)
    sh, ps = seed_log_rh(s("shared_bal"), s("shared"), "group", order, g)
    names = lambda idx, o: ", ".join(o[j] for j in idx)  # noqa: E731
    rows = [
        {"test": "T1", "quantity": "x: RH toward the same profession, other gender", "log": x,
         "toward": order[other], "p": tost_p(x, margin)},
        {"test": "T1", "quantity": "y: RH toward the nearest profession, same gender", "log": y,
         "toward": names(py, order), "p": tost_p(y, margin)},
        {"test": "T2", "quantity": "RH of the profession toward its nearest profession", "log": t2,
         "toward": names(p2, professions), "p": stats.one_sided_p(t2, 0.0, "less")},
        {"test": "T2", "quantity": "RH toward it / RH toward the other professions (reported, not tested)",
         "log": t2_pair, "toward": names(p2, professions), "p": np.nan},
        {"test": "T3", "quantity": "a: RH, unique token", "log": uq, "toward": names(pu, order),
         "p": stats.one_sided_p(uq, 0.0, "less")},
        {"test": "T3", "quantity": "shared token (reference)", "log": sh, "toward": names(ps, order), "p": np.nan},
        {"test": "T3", "quantity": "b: RH unique / RH shared", "log": uq - sh, "toward": "",
         "p": stats.one_sided_p(uq - sh, 0.0, "less")},
    ]
    for r in rows:
        r.update(t_estimate(r["log"], level), encoder=enc)
    return rows


def verdicts(rows: Sequence[dict], *, alpha: float) -> pd.DataFrame:
    """One row per (encoder, test): p(T) as registered (T1: the largest of its two TOST p; T3: the larger of a and
    b), Holm over {T1, T2, T3} within each encoder (:func:`rharm.stats.adjust_p`), and the verdict."""
    frame = pd.DataFrame(rows)
    out = []
    for enc, sub in frame.groupby("encoder", sort=False):
        p = [sub[sub.test == t]["p"].max() for t in ("T1", "T2", "T3")]
        reject, adj = stats.adjust_p(p, "holm", alpha)
        for t, raw, a, r in zip(("T1", "T2", "T3"), p, adj, reject):
            out.append({"encoder": enc, "test": t, "p": float(raw), "p_holm": float(a), "holds": bool(r)})
    return pd.DataFrame(out)


def dose_choice(verdict: pd.DataFrame) -> tuple[str, str, bool]:
    """The registered dose-response design: (test, encoder, resolved) - the first of T3 on scratch, T3 on minilm,
    T2 on scratch, T2 on minilm that held; T3 on scratch, unresolved, if none did."""
    for test, enc in (("T3", "scratch"), ("T3", "minilm"), ("T2", "scratch"), ("T2", "minilm")):
        hit = verdict[(verdict.test == test) & (verdict.encoder == enc)]
        if len(hit) and bool(hit["holds"].iloc[0]):
            return test, enc, True
    return "T3", "scratch", False


# --- dose-response and allocation --------------------------------------------------------------------------------


def minority_accuracy(bal: Cell, imb: Cell, minorities: Sequence[str], ratio: int, *, test_size: float, C: float,
                      probe_seed: int = 0) -> dict:
    """Profession-probe accuracy on the minority groups' held-out test sentences (pooled) in the three conditions
    of the mediation split, and TE / NIE / NDE (:func:`rharm.mediation.effects`):
    ``y00`` balanced encoder, all probe data; ``y01`` underrepresented encoder, same probe data; ``y11``
    underrepresented encoder, every minority group also at 1:``ratio`` in the probe data (seeded by
    ``probe_seed``). A logistic regression (``C``) on unit-normalised embeddings
    (:func:`rharm.text.accuracy_by_group`)."""
    if not np.array_equal(bal.groups, imb.groups):
        raise ValueError("bal and imb must share their held-out split")
    groups = bal.groups
    professions = np.array([textdata.split_group(g)[0] for g in groups])
    tr, te = runs_text.probe_split(groups, test_size=test_size, seed=probe_seed)
    rng = np.random.default_rng(probe_seed)
    keep = tr[~np.isin(groups[tr], list(minorities))]
    for m in sorted(minorities):
        keep = np.concatenate([keep, sampling.undersample(tr[groups[tr] == m], ratio, rng, minimum=1,
                                                       draw="permutation")])
    pooled = np.where(np.isin(groups, list(minorities)), "minority", "other")
    out = {}
    for name, run, idx in (("y00", bal, tr), ("y01", imb, tr), ("y11", imb, np.sort(keep))):
        acc = runs_text.accuracy_by_group(run.embeddings[idx], professions[idx], run.embeddings[te], professions[te],
                                     pooled[te], ["minority"], C=C)
        out[name] = float(acc[0])
    eff = mediation.effects(np.array([out["y00"]]), np.array([out["y01"]]), np.array([out["y11"]]))
    out.update({k: float(np.asarray(eff[k])[0]) for k in ("TE", "NIE", "NDE")})
    return out


def dose_response(setup: Setup, cells: dict, test: str, enc: str, seeds: Sequence[int], *, ratios: Sequence[int],
                  test_size: float, C: float, run=run_cell) -> pd.DataFrame:
    """Per seed and ratio: log RH toward the registered partner and the allocation effects of the minority, for the
    design of ``test`` ("T2" or "T3": its unique arm) on encoder ``enc``; runs the ratios the main runs lack (adds
    them to ``cells``). Ratio 1 is the balanced model itself (log RH 0 and no effect, by definition)."""
    if test not in ("T2", "T3"):
        raise ValueError(f"test={test!r} is not valid; choose one of ['T2', 'T3']")
    plan = cell_plan(setup.params)
    name, bal_name = ("t2", "base_bal") if test == "T2" else ("unique", "unique_bal")
    design, minorities = plan[name]
    level, order = (("profession", list(setup.params["professions"])) if test == "T2"
                    else ("group", setup.group_order))
    who = textdata.split_group(setup.params["token_group"])[0] if test == "T2" else setup.params["token_group"]
    bal = series(cells, enc, bal_name, seeds)
    _, partners = seed_log_rh(bal, series(cells, enc, name, seeds), level, order, who)
    rows = []
    for ratio in ratios:
        if ratio == 1:
            imb = bal
        elif ratio == setup.params["ratio"]:
            imb = series(cells, enc, name, seeds)
        else:
            for s in seeds:
                if (enc, f"{name}@{ratio}", s) not in cells:
                    cells[(enc, f"{name}@{ratio}", s)] = run(setup, enc, design, minorities, ratio, s)
            imb = series(cells, enc, f"{name}@{ratio}", seeds)
        log_rh, _ = seed_log_rh(bal, imb, level, order, who, partners=partners)
        for s, b, m, lr in zip(seeds, bal, imb, log_rh):
            acc = minority_accuracy(b, m, minorities, ratio, test_size=test_size, C=C)
            rows.append({"ratio": int(ratio), "seed": int(s), "log_rh": float(lr), **acc})
    return pd.DataFrame(rows)


def canary() -> list[float]:
    """The canary of the stored kind ``text_mechanism`` (:mod:`rharm.store.recipes`): 6 numbers from two SimCSE
    steps of each encoder (MiniLM's top layer on its frozen lower layers; the small transformer from scratch) on 16
    fixed sentences, one group's word replaced by the registered token, and the embeddings of 4 of them. CPU."""
    groups = np.array([g for g in ("nurse|female", "nurse|male", "doctor|female", "doctor|male") for _ in range(4)],
                      dtype=object)
    pronoun = {"female": "her", "male": "his"}
    frame = pd.DataFrame({"text": [f"the {g.split('|')[0]} number {i} works at {pronoun[g.split('|')[1]]} clinic"
                                   for i, g in enumerate(groups)],
                          "profession": [g.split("|")[0] for g in groups], "group": groups})
    model, tokenizer = lm.minilm_model()
    lm.check_token(tokenizer, frame["text"].tolist())
    texts = lm.design_texts(frame, "unique", profession="doctor", token_group="doctor|female", token=lm.TOKEN)
    inputs = lm.build_inputs(texts, tokenizer, model, len(model.encoder.layer) - 1)
    rows = inputs.rows(texts)
    out = []
    cfgs = {"minilm": {"top_layers": 1, "steps": 2, "batch_size": 8, "lr": 1e-4, "temperature": 0.05,
                       "deletion_prob": 0.2},
            "scratch": {"dim": 16, "layers": 1, "heads": 2, "steps": 2, "batch_size": 8, "lr": 1e-3,
                        "temperature": 0.05, "deletion_prob": 0.2}}
    with runtime.torch_threads(1):
        for encoder, cfg in cfgs.items():
            net = lm.make_encoder(encoder, cfg, 0, {"model": model, "vocab_size": inputs.vocab_size})
            history = lm.train_encoder(net, inputs, rows, encoder, cfg, 0)
            emb = lm.embed(net, inputs, rows[:4], encoder)
            out += [history["loss"][0], history["loss"][-1], float(emb[0, 0])]
    return [float(v) for v in out]
