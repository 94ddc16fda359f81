"""One table formatter for every page: significant digits, no index column, padded cells, units in headers.

How to use (in a chapter, as the last expression of a cell)::

    from rharm import tables
    tables.show(df, caption="One row per minority class: ...", digits=3,
                units={"wall": "s"}, rename={"rh": "RH"}, index="minority")

``index``: a name turns the DataFrame's index into a first column of that name (use it when the index is data,
e.g. the minority class); ``None`` drops it (a RangeIndex carries nothing). Each float column gets one number of
decimals, chosen so that its largest magnitude shows ``digits`` significant digits (``decimals`` overrides per
column); values that round to zero print as ``0`` (never ``-0.000``); NaN prints as an en dash. Integer columns
print with thousands separators. A column without a ``rename`` is headed in words (:func:`header_words`:
``TE_lo`` -> "TE lower"). Numbers stay on one line; headers and text cells wrap, so the table fits the column (the
book's CSS scrolls a still-too-wide table inside its own box on a phone). The result renders as HTML (its cells
padded, numbers right-aligned) in Jupyter and in the book, and as plain text elsewhere; :attr:`Table.text` holds the
formatted strings for tests.
"""

from __future__ import annotations

import html
import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

_CSS = ("border-collapse:collapse;margin:0.5em 0 1em 0;font-size:0.9em;font-variant-numeric:tabular-nums")
_TH = "padding:0.25em 0.75em;border-bottom:1px solid #999;text-align:{align};vertical-align:bottom"
_TD = "padding:0.2em 0.75em;text-align:{align};white-space:{wrap}"

#: words for the parts of a snake_case column name left without a ``rename`` (``TE_lo`` -> "TE lower")
HEADER_WORDS = {"lo": "lower", "hi": "upper", "adj": "adjusted", "sd": "SD", "se": "SE", "ci": "interval",
                "rh": "RH", "te": "TE", "nie": "NIE", "nde": "NDE", "cos": "cosine", "pct": "%", "n": "n",
                "acc": "accuracy", "p": "p", "std": "SD", "min": "min.", "max": "max."}


def header_words(name: str) -> str:
    """A column name in words: ``snake_case`` parts joined by spaces, abbreviations spelled out
    (:data:`HEADER_WORDS`): ``TE_lo`` -> "TE lower", ``p_adj`` -> "p adjusted", ``rh_seed_mean`` -> "RH seed mean".
    A name without an underscore is kept as it is."""
    if "_" not in name:
        return name
    return " ".join(HEADER_WORDS.get(part.lower(), part) for part in name.split("_") if part)


def column_decimals(values: pd.Series | np.ndarray, digits: int = 3, max_decimals: int = 6) -> int:
    """Decimals that show the column's largest finite magnitude with ``digits`` significant digits."""
    v = np.asarray(values, dtype=float)
    v = np.abs(v[np.isfinite(v)])
    v = v[v > 0]
    if not len(v):
        return 0
    top = int(math.floor(math.log10(v.max())))
    return int(min(max_decimals, max(0, digits - 1 - top)))


def format_number(value, decimals: int) -> str:
    """``value`` with ``decimals`` decimals; ``0`` for anything that rounds to zero; an en dash for NaN/None."""
    if value is None:
        return "–"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v):
        return "–"
    s = f"{v:,.{decimals}f}"
    if float(s.replace(",", "")) == 0:
        return "0"
    return s


class Table:
    """A formatted table: ``text`` (DataFrame of strings, no index), ``caption``; renders as HTML."""

    def __init__(self, text: pd.DataFrame, caption: str | None, numeric: Sequence[bool]):
        self.text = text
        self.caption = caption
        self.numeric = list(numeric)

    def to_html(self) -> str:
        head = "".join(
            f"<th style='{_TH.format(align='right' if num else 'left')}'>{html.escape(str(c))}</th>"
            for c, num in zip(self.text.columns, self.numeric))
        body = "".join(
            "<tr>" + "".join(
                f"<td style='{_TD.format(align='right' if num else 'left', wrap='nowrap' if num else 'normal')}'>"
                f"{html.escape(str(v))}</td>"
                for v, num in zip(row, self.numeric)) + "</tr>"
            for row in self.text.itertuples(index=False))
        # the caption is a paragraph above the scrolling box, so it wraps at the column's width however wide the table
        cap = (f"<p class='rharm-table-caption' style='margin:0.5em 0 0 0;font-size:0.9em'>"
               f"{html.escape(self.caption)}</p>") if self.caption else ""
        return (f"<div class='rharm-table'>{cap}<div style='max-width:100%;overflow-x:auto'><table style='{_CSS}'>"
                f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div></div>")

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        out = self.text.to_string(index=False)
        return f"{self.caption}\n{out}" if self.caption else out


def show(
    df: pd.DataFrame,
    *,
    caption: str | None = None,
    digits: int = 3,
    decimals: Mapping[str, int] | None = None,
    units: Mapping[str, str] | None = None,
    rename: Mapping[str, str] | None = None,
    index: str | None = None,
    columns: Sequence[str] | None = None,
    scientific: Sequence[str] = (),
) -> Table:
    """Format ``df`` for a page (see the module docstring). ``columns`` selects and orders columns (after ``index``
    has become a column, before ``rename``); ``units`` maps a column to the unit shown in its header."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    if digits < 1:
        raise ValueError(f"digits={digits} must be >= 1")
    d = df.copy()
    if index is not None:
        d = d.reset_index(names=index) if not isinstance(d.index, pd.MultiIndex) else d.reset_index()
    if columns is not None:
        missing = [c for c in columns if c not in d.columns]
        if missing:
            raise ValueError(f"columns={missing} not in the table; columns are {list(d.columns)}")
        d = d[list(columns)]
    for name, mapping in (("decimals", decimals), ("units", units), ("rename", rename),
                          ("scientific", dict.fromkeys(scientific))):
        unknown = [c for c in (mapping or {}) if c not in d.columns]
        if unknown:
            raise ValueError(f"{name} names {unknown}, not columns of the table; columns are {list(d.columns)}")
    out, numeric = {}, []
    for col in d.columns:
        s = d[col]
        if pd.api.types.is_bool_dtype(s):
            out[col] = s.map(lambda b: "yes" if b else "no")
            numeric.append(False)
        elif pd.api.types.is_integer_dtype(s):
            out[col] = s.map(lambda v: f"{int(v):,}")
            numeric.append(True)
        elif col in scientific:  # tolerances and gradient norms: 3.2e-09, not 0.0000000032
            out[col] = s.map(lambda v: "–" if not np.isfinite(v) else f"{v:.{max(digits - 1, 0)}e}")
            numeric.append(True)
        elif pd.api.types.is_numeric_dtype(s):
            dec = (decimals or {}).get(col, column_decimals(s, digits))
            out[col] = s.map(lambda v, dec=dec: format_number(v, dec))
            numeric.append(True)
        else:
            out[col] = s.map(lambda v: "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else str(v))
            numeric.append(False)
    text = pd.DataFrame(out)
    headers = []
    for col in d.columns:
        h = (rename or {}).get(col, header_words(str(col)))
        if units and col in units:
            h = f"{h} ({units[col]})"
        headers.append(h)
    text.columns = headers
    return Table(text.reset_index(drop=True), caption, numeric)


def plural(n: int, singular: str, plural_form: str | None = None) -> str:
    """``"1 seed"``, ``"3 seeds"``: a count with the right form of its noun."""
    return f"{n:,} {singular if n == 1 else (plural_form or singular + 's')}"
