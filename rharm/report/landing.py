"""The landing page's bottom line: five plain sentences and one table (claim, the paper, ours, verdict), computed
from the chapters' headline files (``book/<profile>/<chapter>.json``) and the paper's reference values, so no number
is typed by hand. :func:`bottom_line` gives the Markdown the book's introduction includes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rharm.core import reference
from rharm.study.design import ci_text


def _load(pages: Path, chapter: str) -> dict | None:
    f = Path(pages) / f"{chapter}.json"
    if not f.is_file():
        return None
    return json.loads(f.read_text(encoding="utf-8")).get("values")


def _f(v: Any, digits: int = 2) -> str:
    from rharm.core.common import fmt_sig

    return fmt_sig(v, digits)


def sentences(fh: dict | None, rh: dict | None, tx: dict | None, profile: str) -> list[str]:
    """The five sentences: what was asked, what we found, how sure, what the theory did, what this does not show."""
    out = ["**Asked.** When one class is rare in a contrastive encoder's training data, does its representation "
           "collapse onto a similar class (representation harm), does that cost it downstream accuracy *through* the "
           "representation (allocation harm), and does the paper's three-block theory predict it?"]
    if fh and "v2" in fh:
        v2 = fh["v2"]
        minor = [t for t in v2["tests"] if t["role"] == "minority"]
        held = [t for t in minor if t["held"]]
        cells = " and ".join(f"RH({t['minority']}, {t['partner']}) = {ci_text(t['rh'], t['rh_lo'], t['rh_hi'])}"
                             for t in minor)
        verb = (f"{'both' if len(minor) == 2 else 'all'} registered minorities collapsed specifically onto their "
                "nearest class" if held and len(held) == len(minor) else
                f"{len(held)} of {len(minor)} registered minorities collapsed specifically onto their nearest class"
                if held else "no registered minority collapsed specifically onto its nearest class")
        out.append(f"**Found.** On Fashion-MNIST, with one class kept at 1:{_ratio(v2)}, {verb} ({cells}; 1 = no "
                   "harm).")
        n = len(v2["seeds"])
        out.append(f"**How sure.** A confirmatory replication on {n} fresh seeds, registered before its runs; "
                   "95% Student t-intervals over paired seeds (they cover what they claim at this sample size) and "
                   "Holm-adjusted one-sided tests; an earlier, exploratory registration is shown beside it.")
        dose = v2["dose_response"]
        fits = {k: d["h4b"]["held"] for k, d in dose.items()}
        fit_words = ("predicted how the harm grows with the imbalance on the projection output"
                     if fits.get("projection") else "did not predict the dose-response on the projection output")
        fit_words += (" and on the backbone" if fits.get("backbone") else ", not on the backbone" if
                      fits.get("projection") else " nor on the backbone")
        temp = ("its prediction of no collapse at a low temperature failed, with the learning rate scaled to the "
                "temperature" if v2.get("contradiction_survives") else
                "its prediction of no collapse at a low temperature was not contradicted once the learning rate was "
                "scaled")
        out.append(f"**Theory.** With one parameter fitted at one ratio, the three-block theory {fit_words}; {temp}.")
    else:
        out.append(f"**Found.** The Fashion-MNIST chapter has no confirmatory result at the `{profile}` profile.")
    limits = "**Not shown.** Nothing here runs at the paper's GPU scale"
    if rh:
        limits += (f"; on CIFAR-10 at two-CPU scale no cell's RH is significantly below 1 ({rh['n_reject']} of "
                   f"{rh['n_tests']} tests), because the representations barely separate the classes")
    if tx:
        limits += ("; the text arm finds no harm for a profession-gender group" if not tx.get("groups_rh_below_one")
                   else "; the text arm finds harm for " + ", ".join(tx["groups_rh_below_one"]))
        limits += _text_mechanism(tx.get("verdicts") or [])
    out.append(limits + ".")
    return out


def _text_mechanism(verdicts: list) -> str:
    """The text arm's decisive test (T3: a group whose defining word is its own collapses when rare) in words."""
    t3 = [v for v in verdicts if v.get("test") == "T3"]
    if not t3:
        return ""
    held = sum(bool(v["holds"]) for v in t3)
    how = ("did not hold on either encoder" if held == 0 and len(t3) == 2 else
           f"held on {held} of {len(t3)} encoders")
    return (", and its registered test of why (a group whose defining word no other group uses collapses when rare) "
            + how)


def _ratio(v2: dict) -> Any:
    """The main ratio, as the registration records it. Pages executed before it was recorded have only the fitting
    ratio, which every profile of ``profiles.yml`` sets equal to the main ratio."""
    reg = v2.get("registration", {})
    return reg.get("ratio", reg.get("fit_ratio"))


def claims_table(fh: dict | None, rh: dict | None, al: dict | None) -> str:
    """One row per claim of the paper: the paper's number, ours and the verdict, in Markdown."""
    paper_rh = reference.matrix("simclr_100_rh")
    rows = [("claim", "the paper (CIFAR-10, SimCLR, 1:100)", "ours", "verdict")]
    v2 = (fh or {}).get("v2")
    if v2:
        minor = [t for t in v2["tests"] if t["role"] == "minority"]
        first = minor[0]
        rows.append(("An underrepresented class collapses onto a similar one (RH < 1)",
                     f"RH(automobile, truck) = {_f(paper_rh.loc['automobile', 'truck'])}",
                     f"Fashion-MNIST: RH({first['minority']}, {first['partner']}) = "
                     f"{ci_text(first['rh'], first['rh_lo'], first['rh_hi'])}",
                     "replicated at small scale" if first["rh_hi"] < 1 else "not replicated"))
        n_held = sum(bool(t["held"]) for t in minor)
        rows.append(("The collapse is toward one class, not the whole row",
                     "concentrated in one cell per row", f"{n_held} of {len(minor)} registered "
                     "cells stand out of their row (Holm p < 0.05)",
                     "replicated" if n_held == len(minor) else "partly" if n_held else "not replicated"))
        alloc = v2.get("allocation") or []
        main = next((a for a in alloc if a.get("x") == _ratio(v2)), None)
        if main and al:
            nie_ok = main["NIE_auc_hi"] < 0
            rows.append(("Part of the downstream loss is carried by the representation",
                         f"NIE / TE = {_f(al.get('paper_share'))} (mean over minorities)",
                         f"AUC change {ci_text(main['TE_auc'], main['TE_auc_lo'], main['TE_auc_hi'])}, "
                         f"representation's part {ci_text(main['NIE_auc'], main['NIE_auc_lo'], main['NIE_auc_hi'])}",
                         "replicated (a small part)" if nie_ok else "not resolved"))
        dose = v2["dose_response"]
        rows.append(("A stochastic-block model predicts the collapse",
                     "qualitative (the paper's theory figure)",
                     "dose-response predicted better than a flat line: "
                     + ", ".join(f"{k} {'yes' if d['h4b']['held'] else 'no'}" for k, d in dose.items())
                     + f"; low-temperature prediction {'contradicted' if v2.get('contradiction_survives') else 'held'}",
                     "partly" if any(d["h4b"]["held"] for d in dose.values()) else "not supported"))
    if rh:
        below = sum(bool(paper_rh.loc[m].drop(m).min() < 1) for m in paper_rh.index)
        rows.append(("The harm appears on CIFAR-10", f"the most collapsed cell of {below} of {len(paper_rh)} rows has "
                     "RH < 1", f"{rh['n_reject']} of "
                     f"{rh['n_tests']} cells significant at two-CPU scale", "not testable at this scale"
                     if rh["n_reject"] == 0 else "partly"))
    head, *body = rows
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(md)


def bottom_line(pages: Path, profile: str) -> str:
    """The bottom line of the book at ``profile``: five sentences and the claims table (Markdown)."""
    pages = Path(pages)
    fh, rh, tx, al = (_load(pages, c) for c in ("fashion_harm", "representation_harm", "text_harm",
                                                 "allocation_harm"))
    text = "\n\n".join(sentences(fh, rh, tx, profile))
    return text + "\n\n" + claims_table(fh, rh, al) + "\n"
