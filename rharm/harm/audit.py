"""``rharm audit``: measure representation and allocation harm in anyone's encoder.

Given n items embedded by an encoder (n, d), their group labels and, optionally, the embeddings of the **same items**
by a reference encoder (n, d_ref), :func:`audit` returns an :class:`AuditReport` with

* the class cosine-distance matrix D(i, j) = 1 - cos(i, j), cos(i, j) = <mu_i, mu_j> the mean pairwise cosine
  between classes (paper §2.1.2, :func:`rharm.harm.metrics.class_cosines`) and, within a class, the mean over pairs of
  distinct items, (‖s_i‖² - n_i) / (n_i (n_i - 1)) with s_i the class sum of unit vectors (``within="unbiased"``,
  the default; the paper's self-pair-inclusive mean <mu_i, mu_i> is ``within="paper"``), all computed from class
  sums of unit vectors in one O(n d) streaming pass, never an n x n matrix;
* with a reference, RH(i, j) = D(i, j) / D_ref(i, j) (:func:`rharm.harm.metrics.representation_harm`) with percentile
  bootstrap intervals over items, and the class pairs ranked by RH (smallest first: most collapsed);
* a cross-validated linear probe (logistic regression on unit vectors) disaggregated by group: accuracy (recall) of
  each group and the share of its items predicted as its nearest group; the same probe on the reference and the
  difference;
* a neural-collapse measure beside RH: the class-distance normalised variance of Galanti, Gyorgy and Hutter (ICLR
  2022), CDNV(i, j) = (Var_i + Var_j) / (2 ||m_i - m_j||^2) on the raw features (m_i the class mean, Var_i the mean
  squared distance to it), and the within/between variance ratio tr(S_W) / tr(S_B). Small values are neural
  collapse in its own sense (each class tight around its mean, far from the others: separable); a pair whose CDNV
  grows toward or above 1 is two groups merging, the collapse RH is about.

**Bootstrap.** Items are resampled with replacement within each class (class sizes fixed), jointly for the encoder
and the reference (a paired bootstrap over items). To stream, each replicate's multinomial draw of n_k items of
class k is split exactly: first the number of draws falling in each chunk (multinomial over chunks), then, inside a
chunk, over its items. The resampled class sums are weighted sums, a (B x c) @ (c x d) product per chunk. A
within-class cell of a replicate averages only over draws of distinct items: with resample counts w_a it is
(‖sum_a w_a u_a‖² - sum_a w_a^2) / (n^2 - sum_a w_a^2), so an item is never paired with its own copy (with
self-pairs the replicates carry ~ 1/n more of them than the sample, and the interval misses the truth).

**Why not fairlearn's MetricFrame.** The per-group table is a group-by of correct predictions; MetricFrame would
add an unpinned dependency for that one group-by and has no notion of the confusion toward each group's nearest
neighbour, which is the quantity the paper's allocation harm is about. The frame we return has the same shape
(one row per group, ``overall`` in :attr:`AuditReport.meta`).

Chapter: ``notebooks/audit.py``. CLI: ``rharm audit --help``.
"""

from __future__ import annotations

import functools
import os
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from rharm.harm import metrics, probe, stats

TABLE_SUFFIXES = (".parquet", ".csv")
ARRAY_SUFFIXES = (".npy", ".npz")
DEFAULT_CHUNK_ROWS = 16384
MAX_LISTED = 10


class AuditError(ValueError):
    """Bad input to :func:`audit`; raised before anything is written."""


def row_listing(rows: np.ndarray) -> str:
    """Row numbers as an error message lists them: the first ``MAX_LISTED`` and how many there are.

    Example:
        >>> row_listing(np.array([3, 5]))
        '[3, 5]'
        >>> row_listing(np.arange(12))
        '[0, 1, 2, 3, 4, 5, 6, 7, 8, 9] (first 10 of 12)'
    """
    shown = ", ".join(str(int(r)) for r in rows[:MAX_LISTED])
    more = f" (first {MAX_LISTED} of {rows.size})" if rows.size > MAX_LISTED else ""
    return f"[{shown}]{more}"


# --------------------------------------------------------------------------------------------------------------
# Embedding sources: arrays in memory, .npy streamed by memory-mapping one chunk at a time, .npz, tables
# --------------------------------------------------------------------------------------------------------------


class _Source:
    """Rows of an (n, d) embedding matrix, read chunk by chunk. ``name`` names the parameter in errors."""

    name: str
    n: int
    d: int

    def chunk(self, start: int, stop: int) -> np.ndarray:  # (stop - start, d) float64
        raise NotImplementedError

    def take(self, rows: np.ndarray) -> np.ndarray:  # (len(rows), d) float64, rows sorted
        raise NotImplementedError


class _ArraySource(_Source):
    def __init__(self, name: str, x: Any):
        if hasattr(x, "detach"):  # torch tensor
            x = x.detach().cpu().numpy()
        x = np.asarray(x)
        if x.ndim != 2:
            raise AuditError(f"{name} must be a 2-D (n, d) array; got shape {x.shape}")
        if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
            raise AuditError(f"{name} must hold real numbers; got dtype {x.dtype}")
        self.name, self.x, (self.n, self.d) = name, x, x.shape

    def chunk(self, start, stop):
        return _finite_scale(self.name, np.asarray(self.x[start:stop], dtype=np.float64), start)

    def take(self, rows):
        return np.asarray(self.x[rows], dtype=np.float64)


class _NpySource(_Source):
    """A .npy file; each chunk is memory-mapped on its own and unmapped after copying, so the resident memory holds
    one chunk, not the pages of the whole file."""

    def __init__(self, name: str, path: Path):
        if path.stat().st_size == 0:
            raise AuditError(f"{name}={str(path)!r} is empty (0 bytes); save the (n, d) array with numpy.save")
        try:  # reads the header only; no page of data is touched
            mm = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise AuditError(f"{name}={str(path)!r} is not a plain numeric .npy array "
                             f"({type(err).__name__}: {first_line(err)}); save it with numpy.save") from None
        shape, dtype, self.offset = mm.shape, mm.dtype, mm.offset
        fortran = len(shape) == 2 and mm.flags.f_contiguous and not mm.flags.c_contiguous
        del mm
        if len(shape) != 2:
            raise AuditError(f"{name}={str(path)!r} holds an array of shape {shape}; it must be 2-D (n, d)")
        if fortran:
            raise AuditError(f"{name}={str(path)!r} is stored in Fortran order; save it C-ordered to stream it")
        if dtype.hasobject or not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
            raise AuditError(f"{name}={str(path)!r} has dtype {dtype}; it must hold real numbers (no pickles, no "
                             "complex values)")
        self.name, self.path, self.dtype, (self.n, self.d) = name, path, dtype, shape

    def _map(self, start, stop):
        return np.memmap(self.path, dtype=self.dtype, mode="r",
                         offset=self.offset + start * self.d * self.dtype.itemsize, shape=(stop - start, self.d))

    def chunk(self, start, stop):
        mm = self._map(start, stop)
        try:
            return _finite_scale(self.name, np.array(mm, dtype=np.float64), start)
        finally:
            del mm  # unmap now: the copy is all we keep

    def take(self, rows):
        out = np.empty((rows.size, self.d))
        step = DEFAULT_CHUNK_ROWS * 8
        for a in range(0, rows.size, step):  # map only the span each batch of sorted rows covers
            r = rows[a:a + step]
            mm = self._map(int(r[0]), int(r[-1]) + 1)
            out[a:a + r.size] = mm[r - r[0]]
            del mm
        return out


#: largest magnitude accepted in an embedding: the squared norm of a row must not overflow float64 (1e308)
MAX_ABS_VALUE = 1e150


def first_line(err: BaseException) -> str:
    """The first line of an exception's message, at most 200 characters (for one-line error messages).

    Example:
        >>> first_line(ValueError("could not convert 'x'\\nmore detail"))
        "could not convert 'x'"
    """
    text = str(err).strip().splitlines()
    return text[0][:200] if text else ""


def _finite_scale(name: str, x: np.ndarray, start: int) -> np.ndarray:
    """``x`` unchanged, or AuditError when a finite value is so large that its squared norm would overflow."""
    with np.errstate(invalid="ignore"):
        big = (np.abs(np.where(np.isfinite(x), x, 0.0)) > MAX_ABS_VALUE).any(axis=1)
    if big.any():
        raise AuditError(f"{name} has values above {MAX_ABS_VALUE:.0e} in magnitude at rows "
                         f"{row_listing(start + np.flatnonzero(big))}: their squared norms overflow; rescale the "
                         "embeddings (cosines do not depend on the scale)")
    return x


#: column names read as item ids, never as embedding dimensions (name one with --id-column, or drop it)
ID_LIKE = ("id", "idx", "index", "item", "item_id", "uid", "key", "row", "unnamed: 0")


def read_table(path: Path, name: str) -> pd.DataFrame:
    """A .parquet or .csv file as a DataFrame; AuditError naming ``name`` and the file when it cannot be read."""
    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as err:  # EmptyDataError and ParserError are ValueErrors
        raise AuditError(f"{name}={str(path)!r} could not be read as {path.suffix[1:]}: "
                         f"{type(err).__name__}: {first_line(err)}") from None


def _table_source(name: str, table: pd.DataFrame, path: Path, exclude: Sequence[str]) -> _ArraySource:
    cols = [c for c in table.columns if c not in set(exclude)]
    ids = [c for c in cols if str(c).strip().lower() in ID_LIKE or str(c).strip().lower().endswith("_id")]
    if ids:
        raise AuditError(f"{name}={str(path)!r} has column(s) {ids[:MAX_LISTED]} that look like item ids, not "
                         "embedding dimensions; name it with --id-column (id_column=) or drop it from the table")
    bad = [c for c in cols if not pd.api.types.is_numeric_dtype(table[c]) or pd.api.types.is_bool_dtype(table[c])]
    if bad:
        raise AuditError(f"{name}={str(path)!r} has non-numeric columns {bad[:MAX_LISTED]}; every column except "
                         f"the label/id columns ({list(exclude)}) must be an embedding dimension")
    if not cols:
        raise AuditError(f"{name}={str(path)!r} has no embedding columns besides {list(exclude)}")
    return _ArraySource(name, table[cols].to_numpy(dtype=np.float64))


def _open(name: str, value: Any, label_column: str | None, id_column: str | None):
    """(source, table or None) for an array, tensor or path."""
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if path.suffix not in ARRAY_SUFFIXES + TABLE_SUFFIXES:
            raise AuditError(f"{name}={str(path)!r}: unknown file type {path.suffix!r}; valid: "
                             f"{list(ARRAY_SUFFIXES + TABLE_SUFFIXES)}")
        if not path.is_file():
            raise AuditError(f"{name}={str(path)!r} is not a file")
        if path.suffix == ".npy":
            return _NpySource(name, path), None
        if path.suffix == ".npz":
            import zipfile

            try:
                with np.load(path, allow_pickle=False) as z:
                    keys = list(z.keys())
                    key = "embeddings" if "embeddings" in keys else (keys[0] if len(keys) == 1 else None)
                    if key is None:
                        raise AuditError(f"{name}={str(path)!r} holds arrays {keys}; name one 'embeddings' or store "
                                         "one")
                    return _ArraySource(name, z[key]), None
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
                if isinstance(err, AuditError):
                    raise
                raise AuditError(f"{name}={str(path)!r} is not a readable .npz of a numeric array "
                                 f"({type(err).__name__}: {first_line(err)}); object arrays (pickles) are never "
                                 "loaded: save a float array with numpy.savez") from None
        table = read_table(path, name)
        exclude = [c for c in (label_column, id_column) if c is not None and c in table.columns]
        return _table_source(name, table, path, exclude), table
    return _ArraySource(name, value), None


def _labels(value: Any, n: int, tables: Sequence[pd.DataFrame | None], label_column: str | None) -> np.ndarray:
    """(n,) labels as an object/int array from an array, a text file, a table column or a column name."""
    table = next((t for t in tables if t is not None), None)
    if value is None or (isinstance(value, str) and table is not None and value in table.columns
                         and not Path(value).is_file()):
        column = label_column if value is None else value
        if column is None:
            raise AuditError("labels is None; pass labels (an array, a text file with one label per line) or "
                             "label_column naming a column of the embeddings table")
        if table is None or column not in table.columns:
            valid = list(table.columns) if table is not None else "(the embeddings are not a table)"
            raise AuditError(f"label_column={column!r} is not a column of the embeddings table; valid: {valid}")
        y = table[column].to_numpy()
    elif isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if not path.is_file():
            raise AuditError(f"labels={str(path)!r} is not a file (nor a column of the embeddings table)")
        if path.suffix in TABLE_SUFFIXES:
            t = read_table(path, "labels")
            column = label_column or (t.columns[0] if len(t.columns) == 1 else None)
            if column not in t.columns:
                raise AuditError(f"labels={str(path)!r} is a table; label_column={label_column!r} must name one of "
                                 f"its columns {list(t.columns)}")
            y = t[column].to_numpy()
        else:
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError as err:
                raise AuditError(f"labels={str(path)!r} is not UTF-8 text ({first_line(err)}); save it as UTF-8, "
                                 "one label per line") from None
            if not text.strip():
                raise AuditError(f"labels={str(path)!r} is empty; it must hold one label per line ({n} lines)")
            y = np.array(text.splitlines(), dtype=object)
            if y.size == n + 1 and y[-1] == "":
                y = y[:-1]
    else:
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        y = np.asarray(value)
        if y.ndim != 1:
            raise AuditError(f"labels must be 1-D (n,); got shape {y.shape}")
    missing = pd.isna(y) if y.dtype == object or np.issubdtype(y.dtype, np.floating) else np.zeros(y.size, bool)
    if y.dtype == object:
        missing |= np.array([isinstance(v, str) and v.strip() == "" for v in y])
    if missing.any():
        raise AuditError(f"labels has missing or empty values at rows {row_listing(np.flatnonzero(missing))}")
    if y.dtype == object or y.dtype.kind == "U":  # "cat " and "cat" are one class, as a reader sees them
        y = np.array([v.strip() if isinstance(v, str) else v for v in y], dtype=object)
    return y


def _encode_labels(y: np.ndarray, classes: Sequence | None) -> tuple[list, np.ndarray]:
    """(classes, codes): class order (sorted unless given) and (n,) int64 codes into it."""
    present = pd.unique(pd.Series(y))
    if classes is None:
        try:
            classes = sorted(present.tolist())
        except TypeError:  # mixed types: order of first appearance
            classes = present.tolist()
    classes = list(classes)
    index = {c: k for k, c in enumerate(classes)}
    unknown = [v for v in present.tolist() if v not in index]
    if unknown:
        raise AuditError(f"labels contain {unknown[:MAX_LISTED]} not in classes={classes}")
    codes = pd.Series(y).map(index).to_numpy(dtype=np.int64)
    return classes, codes


# --------------------------------------------------------------------------------------------------------------
# The streaming pass: validation, class sums, bootstrap sums
# --------------------------------------------------------------------------------------------------------------


@dataclass
class _Sums:
    """Per-class accumulators of one encoder (K classes, dimension d, B bootstrap replicates)."""

    unit: np.ndarray  # (K, d) sum of unit vectors
    raw: np.ndarray  # (K, d) sum of raw vectors
    sq: np.ndarray  # (K,) sum of squared norms
    boot: np.ndarray  # (B, K, d) resampled sums of unit vectors
    boot_sq: np.ndarray  # (B, K) sums of squared resample counts (the self-pairs of each resample)
    nonfinite: list = field(default_factory=list)
    zero: list = field(default_factory=list)

    @classmethod
    def empty(cls, k: int, d: int, b: int) -> "_Sums":
        return cls(np.zeros((k, d)), np.zeros((k, d)), np.zeros(k), np.zeros((b, k, d)), np.zeros((b, k)))


def _chunk_starts(n: int, chunk_rows: int) -> list[tuple[int, int]]:
    return [(a, min(n, a + chunk_rows)) for a in range(0, n, chunk_rows)]


def _bootstrap_allocation(codes: np.ndarray, k: int, chunks: list[tuple[int, int]], n_boot: int,
                          rng: np.random.Generator) -> np.ndarray:
    """(B, K, C) draws of each replicate's within-class resample that fall into each chunk (exact multinomial)."""
    per_chunk = np.stack([np.bincount(codes[a:b], minlength=k) for a, b in chunks], axis=1)  # (K, C)
    alloc = np.zeros((n_boot, k, len(chunks)), dtype=np.int64)
    for c in range(k):
        n_c = per_chunk[c].sum()
        alloc[:, c, :] = rng.multinomial(n_c, per_chunk[c] / n_c, size=n_boot)
    return alloc


def _accumulate(sums: _Sums, x: np.ndarray, start: int, codes: np.ndarray, weights: dict[int, np.ndarray],
                k: int) -> None:
    from scipy import sparse

    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        sums.nonfinite.append(start + np.flatnonzero(bad))
        x = np.where(np.isfinite(x), x, 0.0)
    sq = np.einsum("ij,ij->i", x, x)
    zero = sq == 0
    if zero.any():
        sums.zero.append(start + np.flatnonzero(zero & ~bad))
    if sums.nonfinite or sums.zero:
        return  # the error is raised after the pass, listing every bad row; nothing more to compute
    u = x / np.sqrt(sq)[:, None]
    onehot = sparse.csr_matrix((np.ones(codes.size), (codes, np.arange(codes.size))), shape=(k, codes.size))
    sums.unit += onehot @ u
    sums.raw += onehot @ x
    sums.sq += np.bincount(codes, weights=sq, minlength=k)
    u32 = u.astype(np.float32)
    for c, w in weights.items():  # w: (B, items of class c in this chunk), resample counts
        sums.boot[:, c, :] += w @ u32[codes == c]
        sums.boot_sq[:, c] += np.einsum("bm,bm->b", w, w, dtype=np.float64)


def _stream(sources: list[_Source], codes: np.ndarray, k: int, n_boot: int, seed: int,
            chunk_rows: int) -> list[_Sums]:
    n = codes.size
    chunks = _chunk_starts(n, chunk_rows)
    rng = np.random.default_rng(seed)
    alloc = _bootstrap_allocation(codes, k, chunks, n_boot, rng)
    sums = [_Sums.empty(k, s.d, n_boot) for s in sources]
    for ci, (a, b) in enumerate(chunks):
        cc = codes[a:b]
        crng = np.random.default_rng([seed, ci])
        weights = {}
        for c in np.unique(cc):
            m = int((cc == c).sum())
            # each replicate's draws in this chunk spread uniformly over the class's items here
            weights[int(c)] = crng.multinomial(alloc[:, c, ci], np.full(m, 1.0 / m)).astype(np.float32)
        for src, acc in zip(sources, sums):
            _accumulate(acc, src.chunk(a, b), a, cc, weights, k)
    return sums


def _check_rows(sources: list[_Source], sums: list[_Sums]) -> None:
    for src, s in zip(sources, sums):
        if s.nonfinite:
            rows = np.concatenate(s.nonfinite)
            raise AuditError(f"{src.name} has NaN or inf in rows {row_listing(rows)}; remove or repair those rows")
        if s.zero:
            rows = np.concatenate(s.zero)
            raise AuditError(f"{src.name} has all-zero rows {row_listing(rows)}: their direction, and so their cosine, "
                             "is undefined; drop those items (from every input) or fix the encoder")


def _available_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _check_memory(sources: list[_Source], k: int, n_boot: int, chunk_rows: int) -> None:
    """Refuse, before allocating, an audit whose bootstrap sums and chunks need more memory than is available."""
    per = [8 * (3 * k * s.d + n_boot * k * s.d) for s in sources]  # unit, raw, boot sums (float64)
    chunk = sum(8 * 3 * min(chunk_rows, s.n) * s.d for s in sources)  # a chunk, its unit vectors, a copy
    need = sum(per) + chunk + 8 * n_boot * k * max(1, -(-sources[0].n // chunk_rows))
    avail = _available_bytes()
    if avail is not None and need > avail:
        raise AuditError(f"this audit needs about {need / 2**30:.1f} GiB ({n_boot} bootstrap replicates x {k} "
                         f"classes x dimension {'+'.join(str(s.d) for s in sources)}, float64) but "
                         f"{avail / 2**30:.1f} GiB are available; lower --n-boot (n_boot)")


def _check_reference_separates(dref: np.ndarray, classes: list) -> None:
    """RH = D / D_ref is undefined where the reference does not separate two classes at all."""
    off = dref + np.diag(np.full(len(classes), np.inf))
    i, j = np.unravel_index(np.argmin(off), off.shape)
    if off[i, j] <= 1e-9:
        raise AuditError(f"reference does not separate classes {classes[i]!r} and {classes[j]!r} (their cosine "
                         f"distance is {max(off[i, j], 0.0):.1e}, e.g. identical rows): RH = D / D_ref is undefined; "
                         "use a reference encoder that tells the groups apart")


def _cos_from_sums(unit_sums: np.ndarray, counts: np.ndarray, self_weight: np.ndarray | None = None, *,
                   within: str = "unbiased") -> np.ndarray:
    """(..., K, K) class cosines from (..., K, d) class sums of (weighted) unit vectors and (..., K) total weights.

    Between classes: <s_i, s_j> / (n_i n_j). Within a class, ``within="unbiased"``: the mean over pairs of distinct
    items, (‖s_i‖² - q_i) / (n_i^2 - q_i) with q_i = ``self_weight`` the sum of squared weights (None: unit
    weights, q_i = n_i; :func:`rharm.harm.metrics.within_from_sums`), so a bootstrap resample, whose repeated draws of
    one item are self-pairs too, never pairs an item with its own copy; ``within="paper"``: ‖s_i‖² / n_i^2,
    self-pairs included.
    """
    mu = unit_sums / counts[..., None]
    cos = np.clip(mu @ np.swapaxes(mu, -1, -2), -1.0, 1.0)
    if within == "unbiased":
        diag = metrics.within_from_sums(unit_sums, counts, self_weight)
        k = cos.shape[-1]
        cos[..., np.arange(k), np.arange(k)] = diag
    return cos


def cosine_distance_ci(embeddings: Any, codes: Any, k: int | None = None, *, n_boot: int = 200,
                       level: float = 0.95, seed: int = 0, within: str = "unbiased",
                       chunk_rows: int = DEFAULT_CHUNK_ROWS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The audit's cosine-distance matrix and its bootstrap interval, without the probe: (D, lo, hi), each (K, K).

    The same streamed pass, estimator and within-class bootstrap as :func:`audit` (``within`` as there), for an
    (n, d) array and (n,) integer codes 0..K-1 (every class with at least 2 items).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> codes = np.repeat([0, 1], 50)
        >>> x = np.eye(2)[codes] + 0.5 * rng.normal(size=(100, 2))
        >>> d, lo, hi = cosine_distance_ci(x, codes, n_boot=200, seed=0)
        >>> d.round(2)
        array([[0.29, 1.01],
               [1.01, 0.22]])
        >>> lo.round(2)
        array([[0.18, 0.88],
               [0.88, 0.15]])
        >>> hi.round(2)
        array([[0.42, 1.14],
               [1.14, 0.32]])
    """
    y = np.asarray(codes, dtype=np.int64)
    k = int(y.max()) + 1 if k is None else int(k)
    if within not in metrics.WITHIN_ESTIMATORS:
        raise AuditError(f"within={within!r} is not valid; choose one of {list(metrics.WITHIN_ESTIMATORS)}")
    counts = np.bincount(y, minlength=k)
    src = _ArraySource("embeddings", embeddings)
    s = _stream([src], y, k, int(n_boot), int(seed), int(chunk_rows))[0]
    _check_rows([src], [s])
    d, b = _distances(s, counts, within)
    lo, hi = stats.percentile_interval(b, level, skip_nan=True)
    return d, lo, hi


def _distances(s: _Sums, counts: np.ndarray, within: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(D (K, K), its B bootstrap replicates (B, K, K) or None without replicates) of one encoder's sums."""
    d = 1.0 - _cos_from_sums(s.unit, counts, within=within)
    if not s.boot.shape[0]:
        return d, None
    return d, 1.0 - _cos_from_sums(s.boot, counts[None, :], s.boot_sq, within=within)


def _collapse(s: _Sums, counts: np.ndarray) -> dict:
    """CDNV (K, K) on raw features and the within/between variance ratio tr(S_W) / tr(S_B)."""
    m = s.raw / counts[:, None]
    var = np.clip(s.sq / counts - np.einsum("ij,ij->i", m, m), 0.0, None)
    dist2 = np.einsum("ij,ij->i", m, m)[:, None] + np.einsum("ij,ij->i", m, m)[None, :] - 2 * m @ m.T
    with np.errstate(divide="ignore", invalid="ignore"):
        cdnv = (var[:, None] + var[None, :]) / (2 * np.clip(dist2, 0.0, None))
    np.fill_diagonal(cdnv, np.nan)
    grand = s.raw.sum(0) / counts.sum()
    between = float((counts * ((m - grand) ** 2).sum(1)).sum() / counts.sum())
    within = float((counts * var).sum() / counts.sum())
    return {"cdnv": cdnv, "within_variance": var, "within_between_ratio": within / between if between > 0 else np.inf}


# --------------------------------------------------------------------------------------------------------------
# Probe
# --------------------------------------------------------------------------------------------------------------


def probe_by_group(x: np.ndarray, codes: np.ndarray, k: int, nearest: np.ndarray, *, folds: int = 5,
                   C: float = 1.0, seed: int = 0) -> tuple[pd.DataFrame, float]:
    """Cross-validated linear probe, disaggregated by group.

    Logistic regression (sklearn, ``C``) on unit vectors (:func:`rharm.harm.metrics.unit_normalise`), out-of-fold
    predictions from stratified ``folds``-fold cross-validation. x (m, d), codes (m,) in 0..K-1, nearest (K,) the
    index of each group's nearest other group.

    Returns (frame with one row per group: ``n``, ``accuracy`` (recall), ``to_nearest`` (share predicted as the
    nearest group), ``confused_with`` (most frequent wrong prediction), ``confused_share``; overall accuracy).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> codes = np.repeat([0, 1, 2], 20)
        >>> x = np.array([[1, 0], [0, 1], [0.2, 1]])[codes] + 0.3 * rng.normal(size=(60, 2))
        >>> frame, overall = probe_by_group(x, codes, 3, nearest=np.array([1, 2, 1]), folds=3)
        >>> frame.round(2)
            n  accuracy  to_nearest  confused_with  confused_share
        0  20      1.00        0.00              1            0.00
        1  20      0.40        0.60              2            0.60
        2  20      0.55        0.45              1            0.45
        >>> round(overall, 2)
        0.65
    """
    from sklearn.model_selection import StratifiedKFold

    u = metrics.unit_normalise(x)
    pred = np.empty_like(codes)
    for tr, te in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(u, codes):  # out of fold
        pred[te] = probe.predict_logistic(probe.fit_logistic(u[tr], codes[tr], C, max_iter=1000), u[te])
    conf = np.zeros((k, k))
    np.add.at(conf, (codes, pred), 1.0)
    conf /= conf.sum(1, keepdims=True)
    off = conf.copy()
    np.fill_diagonal(off, -1.0)
    rows = pd.DataFrame({"n": np.bincount(codes, minlength=k), "accuracy": np.diag(conf),
                         "to_nearest": conf[np.arange(k), nearest], "confused_with": off.argmax(1),
                         "confused_share": off.max(1)})
    return rows, float((pred == codes).mean())


def _probe_rows(codes: np.ndarray, k: int, max_items: int, folds: int, seed: int) -> np.ndarray:
    """Sorted rows of a stratified subsample of at most ``max_items`` (every class keeps >= ``folds`` items)."""
    n = codes.size
    if n <= max_items:
        return np.arange(n)
    rng = np.random.default_rng([seed, 7])
    counts = np.bincount(codes, minlength=k)
    take = np.maximum(np.minimum(counts, folds), np.floor(counts * max_items / n).astype(int))
    rows = [rng.choice(np.flatnonzero(codes == c), take[c], replace=False) for c in range(k)]
    return np.sort(np.concatenate(rows))


# --------------------------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------------------------


@dataclass
class AuditReport:
    """What :func:`audit` measured. Matrices are (K, K) with rows/columns in ``classes`` order.

    Attributes:
        classes: K class labels, the order used everywhere.
        n_per_class: (K,) items per class.
        cosine_distance: 1 - mean pairwise cosine of the audited encoder; within a class over pairs of distinct
            items (``meta["within"] == "unbiased"``, the default) or all pairs, self-pairs included (``"paper"``).
        cosine_distance_ci_low, cosine_distance_ci_high: bootstrap interval of it.
        collapse: ``cdnv`` (K, K, NaN diagonal), ``within_variance`` (K,), ``within_between_ratio``.
        probe: per-group frame (``n``, ``accuracy``, ``to_nearest``, ``nearest``, ``confused_with``,
            ``confused_share``), with a reference also ``reference_accuracy``, ``reference_to_nearest``,
            ``accuracy_difference`` (audited - reference).
        reference_*: the same for the reference; ``rh``, ``rh_ci_low``, ``rh_ci_high``: RH = D / D_ref and its
            interval; ``ranking``: unordered pairs i < j sorted by RH (most collapsed first).
        meta: n, d, d_reference, n_boot, level, seed, chunk_rows, probe settings, overall accuracies, timings.
    """

    classes: list
    n_per_class: np.ndarray
    cosine_distance: np.ndarray
    cosine_distance_ci_low: np.ndarray
    cosine_distance_ci_high: np.ndarray
    collapse: dict
    probe: pd.DataFrame
    meta: dict
    reference_cosine_distance: np.ndarray | None = None
    reference_collapse: dict | None = None
    rh: np.ndarray | None = None
    rh_ci_low: np.ndarray | None = None
    rh_ci_high: np.ndarray | None = None
    ranking: pd.DataFrame | None = None

    @property
    def has_reference(self) -> bool:
        """Whether the audit had a reference encoder (and so RH, its interval and the ranking).

        Example:
            >>> rng = np.random.default_rng(0)
            >>> x = np.repeat(np.eye(3), 10, axis=0) + 0.5 * rng.normal(size=(30, 3))
            >>> report = audit(x, np.repeat(["a", "b", "c"], 10), n_boot=20, probe_folds=2)
            >>> report.has_reference, report.rh is None
            (False, True)
        """
        return self.rh is not None

    def to_dict(self) -> dict:
        """JSON-ready dict: the keys of ``audit.json`` (NaN/inf become null).

        Example:
            >>> rng = np.random.default_rng(0)
            >>> x = np.repeat(np.eye(3), 10, axis=0) + 0.5 * rng.normal(size=(30, 3))
            >>> report = audit(x, np.repeat(["a", "b", "c"], 10), n_boot=20, probe_folds=2)
            >>> d = report.to_dict()
            >>> d["classes"], d["n_per_class"], "rh" in d
            (['a', 'b', 'c'], [10, 10, 10], False)
            >>> d["probe"][0]["class"], d["probe"][0]["nearest"]  # names, not codes
            ('a', 'b')
        """
        from rharm.core.common import plain_json

        names = [str(c) for c in self.classes]
        probe = self.probe.copy()
        probe.insert(0, "class", names)
        for col in ("nearest", "confused_with"):
            probe[col] = [names[i] for i in probe[col]]
        out = {"classes": names, "n_per_class": self.n_per_class, "cosine_distance": self.cosine_distance,
               "cosine_distance_ci_low": self.cosine_distance_ci_low,
               "cosine_distance_ci_high": self.cosine_distance_ci_high,
               "collapse": self.collapse, "probe": probe, "meta": self.meta}
        if self.has_reference:
            ranking = self.ranking.copy()
            out.update(reference_cosine_distance=self.reference_cosine_distance,
                       reference_collapse=self.reference_collapse, rh=self.rh, rh_ci_low=self.rh_ci_low,
                       rh_ci_high=self.rh_ci_high, ranking=ranking)
        return plain_json(out)


def _rank(rh: np.ndarray, lo: np.ndarray, hi: np.ndarray, d: np.ndarray, dref: np.ndarray,
          classes: list) -> pd.DataFrame:
    i, j = np.triu_indices(len(classes), k=1)
    frame = pd.DataFrame({"class_a": [classes[a] for a in i], "class_b": [classes[b] for b in j], "rh": rh[i, j],
                          "ci_low": lo[i, j], "ci_high": hi[i, j], "cosine_distance": d[i, j],
                          "reference_cosine_distance": dref[i, j]})
    frame["excludes_1"] = (frame.ci_high < 1) | (frame.ci_low > 1)
    return frame.sort_values("rh", kind="stable").reset_index(drop=True)


def audit(embeddings: Any, labels: Any = None, *, reference: Any = None, label_column: str | None = None,
          id_column: str | None = None, classes: Sequence | None = None, n_boot: int = 200, level: float = 0.95,
          probe_folds: int = 5, probe_C: float = 1.0, probe_max_items: int = 5000, seed: int = 0,
          chunk_rows: int = DEFAULT_CHUNK_ROWS, within: str = "unbiased") -> AuditReport:
    """Audit an encoder's embeddings for representation and allocation harm across groups.

    Args:
        embeddings: (n, d) numpy array or torch tensor, or a path to .npy (streamed, memory-mapped per chunk), .npz
            (the array ``embeddings`` or the only one), .parquet or .csv (numeric columns = dimensions).
        labels: (n,) group labels (any hashable), a text file with one label per line, a .csv/.parquet file with
            ``label_column``, or the name of a column of the embeddings table. None: ``label_column`` of the table.
        reference: optional (n, d_ref) embeddings of the same items by a reference encoder (same kinds of input);
            d_ref may differ from d, n may not.
        label_column: the label column of a table input.
        id_column: a column present in both tables (embeddings and reference); reference rows are aligned to the
            embeddings' ids, which must be unique and the same set.
        classes: the class order (default: sorted labels); must cover every label.
        n_boot: bootstrap replicates over items (0: no intervals). level: interval coverage.
        probe_folds: cross-validation folds of the probe; probe_C: its inverse L2 strength; probe_max_items: the
            probe runs on a stratified subsample of at most this many items (seeded).
        seed: seeds the bootstrap, the probe's folds and its subsample.
        chunk_rows: rows read per streaming step (the memory bound).
        within: the within-class cells (the diagonal of D and of RH): ``"unbiased"`` (default) the mean cosine over
            pairs of distinct items, and a bootstrap that never pairs an item with its own copy; ``"paper"`` the
            paper's all-pairs mean, self-pairs included, biased low in distance by (1 - cos) / n_i. Between-class
            cells are the same either way. Recorded in ``meta["within"]``.

    Returns:
        :class:`AuditReport`.

    Raises:
        AuditError: row counts differ, NaN/inf or all-zero rows (listed), a class with fewer than 2 items, bad
            settings. Nothing is written by this function.

    Example:
        A reference encoder and an audited one that pulls "cat" toward "dog" embed the same 90 items:

        >>> import numpy as np
        >>> from rharm.harm.audit import audit
        >>> rng = np.random.default_rng(0)
        >>> groups = np.repeat(["cat", "dog", "car"], 30)
        >>> axis = {"cat": [1, 0, 0, 0], "dog": [0, 1, 0, 0], "car": [0, 0, 1, 0]}
        >>> reference = 2 * np.array([axis[g] for g in groups]) + rng.normal(size=(90, 4))
        >>> audited = reference.copy()
        >>> audited[groups == "cat", 0] *= 0.2
        >>> audited[groups == "cat", 1] += 1.6
        >>> report = audit(audited, groups, reference=reference, n_boot=100, probe_folds=3, seed=0)
        >>> report.ranking[["class_a", "class_b", "rh", "ci_low", "ci_high"]].round(2)
          class_a class_b    rh  ci_low  ci_high
        0     cat     dog  0.54    0.46     0.62
        1     car     dog  1.00    1.00     1.00
        2     car     cat  1.05    0.96     1.15
        >>> report.probe[["accuracy", "reference_accuracy"]].set_axis(report.classes).round(2)
             accuracy  reference_accuracy
        car      0.93                0.93
        cat      0.57                0.83
        dog      0.57                0.97

        Cat and dog are half as far apart as in the reference (RH 0.54, an interval below 1) and the probe finds
        them less often: representation and allocation harm.
    """
    started = time.perf_counter()
    _check_settings(n_boot=n_boot, level=level, probe_folds=probe_folds, probe_C=probe_C,
                    probe_max_items=probe_max_items, seed=seed, chunk_rows=chunk_rows, within=within,
                    id_column=id_column, reference=reference)
    src, ref, y = _read_inputs(embeddings, labels, reference, label_column, id_column)
    classes, codes, counts = _classes_of(y, classes)
    sources = [src] + ([ref] if ref is not None else [])
    sums, t_stream = _streamed(sources, codes, len(classes), int(n_boot), int(seed), int(chunk_rows))
    t0 = time.perf_counter()
    report = _report(sources, sums, classes, codes, counts, n_boot=n_boot, level=level, seed=seed,
                     chunk_rows=chunk_rows, within=within, probe_folds=probe_folds, probe_C=probe_C,
                     probe_max_items=probe_max_items)
    report.meta.update(seconds_stream=round(t_stream, 3), seconds_probe=round(time.perf_counter() - t0, 3),
                       seconds_total=round(time.perf_counter() - started, 3))
    return report


# audit, step 1: reading -------------------------------------------------------------------------------------------


def _check_settings(*, n_boot, level, probe_folds, probe_C, probe_max_items, seed, chunk_rows, within, id_column,
                    reference) -> None:
    """AuditError for a setting of :func:`audit` out of range, before any input is read."""
    for pname, v, lo in (("n_boot", n_boot, 0), ("probe_folds", probe_folds, 2),
                         ("probe_max_items", probe_max_items, 2), ("chunk_rows", chunk_rows, 1),
                         ("seed", seed, 0)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
            raise AuditError(f"{pname}={v!r} is not valid; it must be an int >= {lo}")
    if not 0 < level < 1:
        raise AuditError(f"level={level!r} is not valid; it must lie in (0, 1)")
    if not probe_C > 0:
        raise AuditError(f"probe_C={probe_C!r} is not valid; it must be > 0")
    if within not in metrics.WITHIN_ESTIMATORS:
        raise AuditError(f"within={within!r} is not valid; choose one of {list(metrics.WITHIN_ESTIMATORS)}")
    if id_column is not None and reference is None:
        raise AuditError("id_column is given but reference is None; ids only align a reference to the embeddings")


def _read_inputs(embeddings: Any, labels: Any, reference: Any, label_column: str | None,
                 id_column: str | None) -> tuple[_Source, _Source | None, np.ndarray]:
    """(the embeddings' source, the reference's source with its rows in the embeddings' order or None, (n,) labels)."""
    if (isinstance(labels, str) and label_column is None and not Path(labels).suffix
            and isinstance(embeddings, (str, os.PathLike)) and Path(embeddings).suffix in TABLE_SUFFIXES):
        label_column, labels = labels, None  # a column name of the embeddings table: keep it out of the dimensions
    src, table = _open("embeddings", embeddings, label_column, id_column)
    ref, ref_table = (None, None) if reference is None else _open("reference", reference, label_column, id_column)
    y = _labels(labels, src.n, [table], label_column)
    if y.size != src.n:
        raise AuditError(f"labels has {y.size} entries but embeddings has {src.n} rows; they must match (one label "
                         "per embedded item)")
    if ref is not None:
        if id_column is not None:
            ref = _align_reference(ref, table, ref_table, id_column)
        if ref.n != src.n:
            raise AuditError(f"reference has {ref.n} rows but embeddings has {src.n}; the reference must embed the "
                             "same items in the same order (or pass id_column to align them); its dimension may "
                             f"differ (here {ref.d} vs {src.d})")
    return src, ref, y


def _align_reference(ref: _Source, table: pd.DataFrame | None, ref_table: pd.DataFrame | None,
                     id_column: str) -> _ArraySource:
    """The reference's rows reordered to the embeddings' ``id_column`` (unique in each, the same set in both)."""
    if table is None or ref_table is None or id_column not in table or id_column not in ref_table:
        raise AuditError(f"id_column={id_column!r} must be a column of both embeddings and reference tables")
    ids, ref_ids = table[id_column], ref_table[id_column]
    for pname, s in (("embeddings", ids), ("reference", ref_ids)):
        if s.duplicated().any():
            raise AuditError(f"{pname} has duplicate {id_column!r} values "
                             f"{s[s.duplicated()].tolist()[:MAX_LISTED]}")
    only = sorted(set(ids) ^ set(ref_ids), key=str)
    if only:
        raise AuditError(f"reference is not of the same items: {len(only)} {id_column!r} values appear in "
                         f"only one of embeddings/reference, e.g. {only[:MAX_LISTED]}")
    order = pd.Series(np.arange(len(ref_ids)), index=ref_ids.to_numpy())[ids.to_numpy()].to_numpy()
    return _ArraySource("reference", ref.x[order])


def _classes_of(y: np.ndarray, classes: Sequence | None) -> tuple[list, np.ndarray, np.ndarray]:
    """(classes, (n,) codes, (K,) counts), or AuditError when fewer than 2 classes or a class of one item."""
    classes, codes = _encode_labels(y, classes)
    k = len(classes)
    counts = np.bincount(codes, minlength=k)
    if k < 2:
        raise AuditError(f"labels hold {k} class(es) {classes}; an audit compares at least 2 groups")
    small = [classes[c] for c in np.flatnonzero(counts < 2)]
    if small:
        raise AuditError(f"classes {small[:MAX_LISTED]} have fewer than 2 members (sizes "
                         f"{counts[counts < 2].tolist()[:MAX_LISTED]}); every class needs at least 2 for its "
                         "within-class cosine, the bootstrap and the cross-validated probe; drop or merge them")
    return classes, codes, counts


# audit, step 2: streaming -----------------------------------------------------------------------------------------


def _streamed(sources: list[_Source], codes: np.ndarray, k: int, n_boot: int, seed: int,
              chunk_rows: int) -> tuple[list[_Sums], float]:
    """(class and bootstrap sums of every source, seconds): the memory check, one :func:`_stream` pass, then every
    bad row listed in one AuditError."""
    _check_memory(sources, k, n_boot, chunk_rows)
    t0 = time.perf_counter()
    sums = _stream(sources, codes, k, n_boot, seed, chunk_rows)
    _check_rows(sources, sums)
    return sums, time.perf_counter() - t0


# audit, steps 3 and 4: statistics and the report's assembly ------------------------------------------------------


def _interval(boot: np.ndarray | None, fallback: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of bootstrap replicates (NaN where undefined), or NaN of ``fallback``'s shape without."""
    if boot is None:
        return np.full_like(fallback, np.nan), np.full_like(fallback, np.nan)
    return stats.percentile_interval(boot, level, skip_nan=True)


def _probe_on(source: _Source, *, rows: np.ndarray, codes: np.ndarray, k: int, nearest: np.ndarray, folds: int,
              C: float, seed: int) -> tuple[pd.DataFrame, float]:
    """:func:`probe_by_group` on the items ``rows`` of ``source`` (read at once when they are all of them)."""
    x = source.take(rows) if rows.size < source.n else source.chunk(0, source.n)
    return probe_by_group(x, codes[rows], k, nearest, folds=folds, C=C, seed=seed)


def _report(sources: list[_Source], sums: list[_Sums], classes: list, codes: np.ndarray, counts: np.ndarray, *,
            n_boot: int, level: float, seed: int, chunk_rows: int, within: str, probe_folds: int, probe_C: float,
            probe_max_items: int) -> AuditReport:
    """The statistics of the audited encoder (distances, their interval, collapse, the probe) as an
    :class:`AuditReport`, completed by :func:`_add_reference` when ``sources`` holds a reference."""
    src, k = sources[0], len(classes)
    dist, boot = (list(v) for v in zip(*(_distances(s, counts, within) for s in sums)))
    d_lo, d_hi = _interval(boot[0], dist[0], level)
    nearest = (dist[0] + np.diag(np.full(k, np.inf))).argmin(1)
    prows = _probe_rows(codes, k, int(probe_max_items), int(probe_folds), int(seed))
    probe_folds_used = int(min(probe_folds, np.bincount(codes[prows], minlength=k).min()))
    fit = functools.partial(_probe_on, rows=prows, codes=codes, k=k, nearest=nearest, folds=probe_folds_used,
                            C=probe_C, seed=seed)
    probe, overall = fit(src)
    probe.insert(2, "nearest", nearest)
    meta = {"n": int(src.n), "d": int(src.d), "n_boot": int(n_boot), "level": float(level), "seed": int(seed),
            "chunk_rows": int(chunk_rows), "probe_items": int(prows.size), "probe_folds": probe_folds_used,
            "probe_C": float(probe_C), "probe_accuracy": overall,
            "bootstrap": "paired, within-class resampling of items (exact multinomial, streamed)",
            "within": within}
    report = AuditReport(classes=classes, n_per_class=counts, cosine_distance=dist[0], cosine_distance_ci_low=d_lo,
                         cosine_distance_ci_high=d_hi, collapse=_collapse(sums[0], counts), probe=probe, meta=meta)
    if len(sources) > 1:
        _add_reference(report, fit(sources[1]), sources[1].d, sums[1], dist, boot, level, int(n_boot))
    return report


def _add_reference(report: AuditReport, reference_probe: tuple[pd.DataFrame, float], d_reference: int,
                   reference_sums: _Sums, dist: list, boot: list, level: float, n_boot: int) -> None:
    """Complete ``report`` with the reference: its probe beside the audited one, its distances and collapse, RH =
    D / D_ref with its paired-bootstrap interval and the class pairs ranked by RH."""
    rprobe, roverall = reference_probe
    probe = report.probe
    probe["reference_accuracy"] = rprobe["accuracy"]
    probe["reference_to_nearest"] = rprobe["to_nearest"]
    probe["accuracy_difference"] = probe["accuracy"] - rprobe["accuracy"]
    report.meta.update(d_reference=int(d_reference), reference_probe_accuracy=roverall)
    _check_reference_separates(dist[1], report.classes)
    rh = metrics.representation_harm(1.0 - dist[0], 1.0 - dist[1])
    if n_boot:
        with np.errstate(divide="ignore", invalid="ignore"):
            rh_lo, rh_hi = _interval(boot[0] / boot[1], rh, level)
    else:
        rh_lo, rh_hi = _interval(None, rh, level)
    report.reference_cosine_distance = dist[1]
    report.reference_collapse = _collapse(reference_sums, report.n_per_class)
    report.rh, report.rh_ci_low, report.rh_ci_high = rh, rh_lo, rh_hi
    report.ranking = _rank(rh, rh_lo, rh_hi, dist[0], dist[1], report.classes)


# --------------------------------------------------------------------------------------------------------------
# The definition, for checks: the O(n^2 d) all-pairs mean (never used by audit)
# --------------------------------------------------------------------------------------------------------------


def class_cosine_distance(embeddings: Any, codes: Any, k: int | None = None, *,
                          within: str = "unbiased") -> np.ndarray:
    """(K, K) 1 - mean pairwise cosine via class sums of unit vectors, O(n d) (:func:`rharm.harm.metrics.class_cosines`;
    ``within`` as there).

    Example:
        >>> x = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 2.0], [0.6, 0.8], [0.0, 1.0]])
        >>> codes = np.array([0, 0, 1, 1, 1])
        >>> class_cosine_distance(x, codes).round(3)
        array([[0.2  , 0.54 ],
               [0.54 , 0.133]])
    """
    return 1.0 - metrics.class_cosines(embeddings, codes, k, within=within)


def class_cosine_distance_pairwise(embeddings: Any, codes: Any, k: int | None = None, *,
                                   within: str = "unbiased") -> np.ndarray:
    """The same matrix by its definition: the n x n cosine matrix, averaged over each block; in a diagonal block
    over a != b (``within="unbiased"``) or over all pairs, self-pairs included (``within="paper"``).

    O(n^2 d) time and O(n^2) memory: a reference for tests and the benchmark baseline, not for use.

    Example:
        The same matrix as :func:`class_cosine_distance`, by brute force:

        >>> x = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 2.0], [0.6, 0.8], [0.0, 1.0]])
        >>> codes = np.array([0, 0, 1, 1, 1])
        >>> class_cosine_distance_pairwise(x, codes).round(3)
        array([[0.2  , 0.54 ],
               [0.54 , 0.133]])
        >>> bool(np.allclose(class_cosine_distance_pairwise(x, codes), class_cosine_distance(x, codes)))
        True
    """
    if within not in metrics.WITHIN_ESTIMATORS:
        raise ValueError(f"within={within!r} is not valid; choose one of {list(metrics.WITHIN_ESTIMATORS)}")
    u = metrics.unit_normalise(embeddings)
    y = np.asarray(codes, dtype=np.int64)
    k = int(y.max()) + 1 if k is None else k
    g = u @ u.T
    out = np.empty((k, k))
    for i in range(k):
        gi = g[y == i]
        for j in range(k):
            block = gi[:, y == j]
            if i == j and within == "unbiased":
                block = block[~np.eye(block.shape[0], dtype=bool)]
            out[i, j] = 1.0 - block.mean() if block.size else np.nan
    return out


class _CallableModule(types.ModuleType):
    """``rharm.harm.audit(...)`` is :func:`audit`, also after ``import rharm.harm.audit`` binds the module to that
    name."""

    def __call__(self, *args, **kwargs) -> AuditReport:
        return audit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
