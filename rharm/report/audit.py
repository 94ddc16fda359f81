"""The audit chapter's sections as data (``notebooks/audit.py``, glue prefix ``au``).

Three audits, one per section: a planted collapse with a known answer (:func:`synthetic_audit`), MiniLM before and
after SimCSE on BUG groups (:func:`text_audit`) and a Fashion-MNIST encoder trained with a rare class
(:func:`image_audit`). Each ``*_summary`` function turns an :class:`rharm.harm.audit.AuditReport` into a frozen
dataclass
of what the prose and ``book/<profile>/audit.json`` need; the chapter passes them to
:func:`rharm.page.headline.publish`.
The audit itself is :func:`rharm.harm.audit.audit`; the report's charts are :func:`rharm.page.charts.audit_charts`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from rharm.study.reuse import ImageSetting, image_encoders

if TYPE_CHECKING:
    from rharm.harm.audit import AuditReport


def audit_options(P: Any) -> dict:
    """The :func:`rharm.harm.audit.audit` settings shared by every audit of the chapter (from its parameters ``P``)."""
    return dict(n_boot=P.n_boot, probe_folds=P.probe_folds, probe_C=P.probe_C, seed=P.seed)


def _ranking(report: "AuditReport") -> pd.DataFrame:
    if not report.has_reference:
        raise ValueError("the report has no reference encoder, so no RH ranking: audit with reference=...")
    return report.ranking.reset_index(drop=True)


def _pair_position(rank: pd.DataFrame, a: str, b: str) -> int:
    """0-based position of the unordered pair {a, b} in a ranking (most collapsed first)."""
    hit = rank.index[((rank.class_a == a) & (rank.class_b == b)) | ((rank.class_a == b) & (rank.class_b == a))]
    if len(hit) == 0:
        classes = sorted(set(rank.class_a) | set(rank.class_b))
        raise ValueError(f"pair ({a!r}, {b!r}) is not in the ranking; valid classes: {classes}")
    return int(hit[0])


# --- a known answer: a planted collapse -------------------------------------------------------------------------


def planted_collapse(*, groups: int, per_group: int, dim: int, strength: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Items around random group centres seen by two "encoders"; in the audited one group g0 is moved toward g1.

    Centres are N(0, 4 I) in ``dim`` dimensions; each encoder adds its own N(0, I) noise per item. In the audited
    encoder g0's centre becomes (1 - strength) c_0 + strength c_1.

    Returns:
        audited (groups * per_group, dim), reference (same shape) and labels (groups * per_group,) ``"g0"``...
    """
    if groups < 2:
        raise ValueError(f"synth_groups={groups!r} must be >= 2 (g0 is moved toward g1)")
    if per_group < 2:
        raise ValueError(f"synth_per_group={per_group!r} must be >= 2 (a group needs two items)")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"synth_strength={strength!r} must lie in [0, 1] (0: no change, 1: g0 on g1)")
    rng = np.random.default_rng(seed)
    centres = 2.0 * rng.normal(size=(groups, dim))
    labels = np.repeat([f"g{i}" for i in range(groups)], per_group)
    idx = np.repeat(np.arange(groups), per_group)
    moved = centres.copy()
    moved[0] = (1 - strength) * centres[0] + strength * centres[1]
    reference = centres[idx] + rng.normal(size=(idx.size, dim))
    audited = moved[idx] + rng.normal(size=(idx.size, dim))
    return audited, reference, labels


def synthetic_audit(P: Any) -> "AuditReport":
    """Audit the planted collapse of :func:`planted_collapse` built from the chapter's ``synth_*`` parameters."""
    from rharm.harm.audit import audit

    audited, reference, labels = planted_collapse(groups=P.synth_groups, per_group=P.synth_per_group,
                                                  dim=P.synth_dim, strength=P.synth_strength, seed=P.seed)
    return audit(audited, labels, reference=reference, **audit_options(P))


@dataclass(frozen=True)
class Synthetic:
    """Where the audit ranks the planted pair g0-g1 (section "A known answer")."""

    syn_rh: float
    syn_lo: float
    syn_hi: float
    syn_rank: int  #: 1-based position of g0-g1 in the ranking (1 = most collapsed)
    syn_pairs: int
    syn_other_below: int  #: other pairs whose interval lies entirely below 1 (false alarms)


def synthetic_summary(report: "AuditReport", planted: Sequence[str] = ("g0", "g1")) -> Synthetic:
    """RH, interval and rank of the ``planted`` pair, and how many other pairs the audit flags."""
    rank = _ranking(report)
    i = _pair_position(rank, *planted)
    row = rank.iloc[i]
    below = rank.ci_high < 1
    return Synthetic(syn_rh=float(row.rh), syn_lo=float(row.ci_low), syn_hi=float(row.ci_high), syn_rank=i + 1,
                     syn_pairs=len(rank), syn_other_below=int(below.sum() - bool(below.iloc[i])))


# --- MiniLM before and after SimCSE -----------------------------------------------------------------------------


def text_audit(P: Any) -> tuple["AuditReport", list]:
    """Audit the text chapter's learning SimCSE variant (balanced BUG groups, seed ``text_seed``) against the
    pre-trained encoder on the same held-out sentences; returns the report and the group order."""
    from rharm import store
    from rharm.harm.audit import audit
    from rharm.language import data as textdata
    from rharm.language import simcse
    from rharm.runs import text

    data = text.data_config(source="bug", n_professions=P.n_professions, cl_fraction=0.5,
                            n_train_per_group=P.n_train_per_group, n_eval_per_group=P.n_eval_per_group)
    train = text.train_config(steps=P.steps, reinit_layers=P.reinit_layers)
    run = text.run_simcse(data, train, minority=None, ratio=1, seed=P.text_seed)
    frame = text.load_slice(data)
    eval_rows = store.load_tensors(run.dir / "split.pt")["eval"].numpy()
    sentences = frame["text"].to_numpy()[eval_rows].tolist()
    encoder = simcse.load_encoder(train["model"], max_length=train["max_length"])
    pretrained = simcse.encode(encoder, sentences).numpy()
    group_order = textdata.groups_of(data["professions"])
    report = audit(run.embeddings, run.groups, reference=pretrained, classes=group_order, **audit_options(P))
    return report, group_order


@dataclass(frozen=True)
class TextAudit:
    """The text audit's headline (section "MiniLM before and after SimCSE on BUG groups")."""

    text_top_pair: str  #: "a – b", the most collapsed pair
    text_top_rh: float
    text_top_lo: float
    text_top_hi: float
    text_n_below: int  #: pairs whose interval lies entirely below 1
    text_n_above: int  #: pairs whose interval lies entirely above 1
    text_n_pairs: int
    text_acc: float  #: probe accuracy, audited encoder
    text_acc_ref: float  #: probe accuracy, reference encoder
    text_n: int  #: items audited
    text_wbr: float  #: within/between variance ratio, audited encoder
    text_wbr_ref: float
    text_ranking: pd.DataFrame  #: every pair, most collapsed first


def text_summary(report: "AuditReport") -> TextAudit:
    """The most collapsed pair, how many pairs moved beyond their interval, probe accuracies and collapse ratios."""
    rank = _ranking(report)
    top = rank.iloc[0]
    return TextAudit(
        text_top_pair=f"{top.class_a} – {top.class_b}", text_top_rh=float(top.rh), text_top_lo=float(top.ci_low),
        text_top_hi=float(top.ci_high), text_n_below=int((rank.ci_high < 1).sum()),
        text_n_above=int((rank.ci_low > 1).sum()), text_n_pairs=len(rank),
        text_acc=float(report.meta["probe_accuracy"]), text_acc_ref=float(report.meta["reference_probe_accuracy"]),
        text_n=int(report.meta["n"]), text_wbr=float(report.collapse["within_between_ratio"]),
        text_wbr_ref=float(report.reference_collapse["within_between_ratio"]),
        text_ranking=rank[["class_a", "class_b", "rh", "ci_low", "ci_high"]])


# --- an image encoder trained with a rare class -----------------------------------------------------------------


def image_audit(profile: str, options: dict) -> tuple["AuditReport", ImageSetting]:
    """Audit the fashion_harm chapter's encoder of its first seed with its first pre-registered minority against the
    balanced encoder of the same seed, on the same test images (:func:`rharm.study.reuse.image_encoders`: runs from
    the result store, trained if absent). ``options`` are :func:`audit_options`."""
    from rharm.harm.audit import audit

    features, reference, labels, classes, setting = image_encoders(profile)
    return audit(features, labels, reference=reference, classes=classes, **options), setting


@dataclass(frozen=True)
class ImageAudit:
    """The image audit's headline (section "An image encoder trained with a rare class")."""

    img_minority: str
    img_partner: str
    img_ratio: str
    img_pair_rh: str  #: "0.812 (0.790 to 0.835)"
    img_pair_rank: str  #: "1 of 45"
    img_top: str  #: "a – b, RH 0.801"
    img_pair_rh_value: float
    img_pair_lo: float
    img_pair_hi: float
    img_pair_position: int  #: 1-based rank of the minority-partner pair


def image_summary(report: "AuditReport", setting: ImageSetting) -> ImageAudit:
    """RH and rank of the minority's pair with its predicted partner, and the most collapsed pair overall."""
    rank = _ranking(report)
    i = _pair_position(rank, setting.minority, setting.partner)
    pair, top = rank.iloc[i], rank.iloc[0]
    return ImageAudit(
        img_minority=setting.minority, img_partner=setting.partner, img_ratio=str(setting.ratio),
        img_pair_rh=f"{pair.rh:.3f} ({pair.ci_low:.3f} to {pair.ci_high:.3f})",
        img_pair_rank=f"{i + 1} of {len(rank)}", img_top=f"{top.class_a} – {top.class_b}, RH {top.rh:.3f}",
        img_pair_rh_value=float(pair.rh), img_pair_lo=float(pair.ci_low), img_pair_hi=float(pair.ci_high),
        img_pair_position=i + 1)
