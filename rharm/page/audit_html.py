"""The one-page ``report.html`` of ``rharm audit``: self-contained, drawn offline.

The page inlines vl-convert's bundle of vega, vega-lite and vega-embed (:func:`rharm.page.charts.vega_bundle`, shipped
inside the ``vl-convert-python`` wheel) and draws each chart (:func:`rharm.page.charts.audit_charts`) with
:mod:`rharm.page.charts`' renderer, so it needs no network and passes ``python -m rharm.book.browser_check`` like the
book's pages.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from rharm.core import paths
from rharm.harm.audit import AuditError, AuditReport
from rharm.store import dir_mode, pid_alive

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em;margin:.6em 0}td,th{padding:.2em .6em;border-bottom:1px solid #eee;
text-align:right}th{background:#f6f6f6}td:first-child,th:first-child{text-align:left}
.note{color:#555;font-size:.92em}.harm{color:#b2182b;font-weight:600}.grid{display:flex;flex-wrap:wrap;gap:2em}
.tablewrap{max-width:100%;overflow-x:auto}th{white-space:normal;vertical-align:bottom}
"""


def _table(frame: pd.DataFrame, fmt: str = "{:.3f}", harm_col: str | None = None) -> str:
    # headers wrap at spaces (a column name's underscores read as spaces), so a table fits its column
    head = "".join(f"<th>{html.escape(str(c).replace('_', ' '))}</th>" for c in frame.columns)
    rows = []
    for _, r in frame.iterrows():
        cls = ' class="harm"' if harm_col and bool(r[harm_col]) else ""
        cells = "".join(f"<td>{html.escape(fmt.format(v) if isinstance(v, (float, np.floating)) else str(v))}</td>"
                        for v in r)
        rows.append(f"<tr{cls}>{cells}</tr>")
    return f"<div class='tablewrap'><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"


def render_html(report: "AuditReport") -> str:
    """The standalone page: summary, charts, the ranking and per-group tables, and how to read them."""
    from rharm.page.charts import audit_charts, chart_html, vega_bundle

    names = [str(c) for c in report.classes]
    m = report.meta
    parts = [f"<h1>rharm audit</h1><p class='note'>{m['n']} items in {len(names)} groups, embedding dimension "
             f"{m['d']}" + (f", reference dimension {m['d_reference']}" if report.has_reference else "")
             + f"; {m['n_boot']} bootstrap replicates over items (paired, within class), level {m['level']}; "
             f"probe: {m['probe_folds']}-fold cross-validated logistic regression on {m['probe_items']} items. "
             f"Written {html.escape(time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))}.</p>"]
    charts = audit_charts(report)
    if report.has_reference:
        rk = report.ranking
        first = rk.iloc[0]
        n_harm = int(((rk.ci_high < 1)).sum())
        parts.append(
            f"<h2>Finding</h2><p>The most collapsed pair is <b>{html.escape(str(first.class_a))} – "
            f"{html.escape(str(first.class_b))}</b>: RH = {first.rh:.3f} (interval {first.ci_low:.3f} to "
            f"{first.ci_high:.3f}). {n_harm} of {len(rk)} pairs have an interval entirely below 1. Overall probe "
            f"accuracy {m['probe_accuracy']:.3f} (reference {m['reference_probe_accuracy']:.3f}).</p>"
            "<p class='note'>How to read RH: for groups i and j, RH = (1 − cos(i, j)) / (1 − cos_ref(i, j)), the "
            "cosine distance between the groups in the audited encoder over that in the reference, on the same "
            "items. RH &lt; 1: the two groups sit closer together than the reference puts them (representation "
            "harm: one may be collapsing onto the other); RH &gt; 1: further apart. The interval comes from "
            "resampling items; one that contains 1 is no evidence of a change. The diagonal compares each group's "
            "own spread.</p>")
        parts.append("<h2>Representation harm</h2><div class='grid'>" + chart_html(charts["rh"])
                     + chart_html(charts["ranking"]) + "</div>")
        tab = rk.head(20)[["class_a", "class_b", "rh", "ci_low", "ci_high", "cosine_distance",
                           "reference_cosine_distance", "excludes_1"]]
        tab = tab.assign(below_1=tab.ci_high < 1)
        parts.append("<p class='note'>Top pairs (red: interval entirely below 1).</p>" + _table(tab, harm_col="below_1"))
    else:
        parts.append(f"<h2>Finding</h2><p>No reference was given, so RH is not defined; the cosine distances and "
                     f"the probe below describe this encoder alone. Overall probe accuracy "
                     f"{m['probe_accuracy']:.3f}.</p>")
    parts.append("<h2>Cosine distances</h2>" + chart_html(charts["cosine_distance"]))
    probe = report.probe.copy()
    probe.insert(0, "class", names)
    for col in ("nearest", "confused_with"):
        probe[col] = [names[i] for i in probe[col]]
    parts.append("<h2>Allocation: a linear probe by group</h2>" + chart_html(charts["probe"])
                 + "<p class='note'><code>to_nearest</code>: share of the group's items the probe assigns to its "
                 "nearest group (by cosine distance in the audited encoder).</p>" + _table(probe))
    col = report.collapse
    cd = col["cdnv"]
    worst = np.nanmax(np.where(np.isnan(cd), -np.inf, cd), axis=1)
    coll = pd.DataFrame({"class": names, "within_variance": col["within_variance"], "cdnv_max": worst,
                         "cdnv_max_with": [names[j] for j in np.nanargmax(np.where(np.isnan(cd), -np.inf, cd), 1)]})
    text = f"within/between variance ratio {col['within_between_ratio']:.3f}"
    if report.has_reference:
        rc = report.reference_collapse["cdnv"]
        coll["reference_cdnv_max"] = np.nanmax(np.where(np.isnan(rc), -np.inf, rc), axis=1)
        text += f" (reference {report.reference_collapse['within_between_ratio']:.3f})"
    parts.append("<h2>Collapse (neural-collapse measures)</h2><p class='note'>CDNV(i, j) = (Var_i + Var_j) / "
                 "(2‖m_i − m_j‖²) on raw features (Galanti et al., ICLR 2022): small values mean classes are tight "
                 "relative to their separation (neural collapse); <code>cdnv_max</code>, each group's largest value "
                 f"and the group it is with, points at pairs that merge. {text}.</p>" + _table(coll))
    body = "\n".join(parts)
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>rharm audit</title>"
            f"<style>{STYLE}</style><script>{vega_bundle()}</script></head><body>{body}</body></html>\n")


def save(report: AuditReport, out_dir: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``report``'s ``audit.json`` and ``report.html`` into ``out_dir`` atomically (all or nothing); return it.

    Both files are written into a temporary sibling folder that is renamed onto ``out_dir`` when complete. An
    existing non-empty ``out_dir`` is refused unless ``overwrite``; then it is replaced only after the new one
    is complete.
    """
    from rharm.page.audit_html import render_html

    try:  # never a folder rharm did not make, the store, or a folder holding the project
        out = paths.check_output_folder(out_dir, param="out", force=overwrite)
    except paths.OwnershipError as err:
        raise AuditError(str(err)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".tmp", dir=out.parent))
    os.chmod(tmp, dir_mode())  # mkdtemp makes it private; the result follows the umask, as mkdir would
    try:
        (tmp / "audit.json").write_text(json.dumps(report.to_dict(), indent=1, allow_nan=False) + "\n")
        (tmp / "report.html").write_text(render_html(report))
        (tmp / paths.OWNER_MARKER).write_text("written by rharm audit; --force may replace this folder\n")
        if out.exists():
            old = out.parent / f".{out.name}.{os.getpid()}.old"
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _clean_leftovers(out: Path) -> None:
    """Remove ``.<name>.<pid>.*.tmp`` and ``.<name>.<pid>.old`` beside ``out`` left by a killed ``save``."""
    for p in out.parent.glob(f".{out.name}.*"):
        parts = p.name[len(out.name) + 2:].split(".")
        if not (p.is_dir() and parts and parts[0].isdigit() and p.name.endswith((".tmp", ".old"))):
            continue
        if int(parts[0]) != os.getpid() and not pid_alive(int(parts[0])):
            shutil.rmtree(p, ignore_errors=True)
