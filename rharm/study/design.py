"""A pre-registered underrepresentation study: partner rule, primary tests, dose-response and the theory's curve.

The Fashion-MNIST chapter (``notebooks/fashion_harm.py``) is built from these functions, in this order:

1. :func:`preregister` fixes the hypotheses from the **balanced** models alone, before any underrepresented model
   is trained. For every class i, its *partner* is the class nearest to it, j*(i) = argmin_{j != i} d(i, j), with
   d(i, j) = 1 - cos(i, j) the class cosine distance of :func:`rharm.harm.metrics.class_cosines` averaged over the
   balanced seeds. Class i has *room to collapse* when d(i, j*) > d(i, i) (its partner is farther than its own
   members are from each other; otherwise the two classes already overlap). The minorities are the ``n_close``
   classes with room whose partner is nearest (smallest d(i, j*)); the control is the class with room whose nearest
   class is farthest. Hypotheses: each minority's partner cell has RH < 1 (primary, one-sided, Holm over the
   minorities' partner cells only) and stands out of its row (specificity); the control shows no pair-specific
   collapse (its specificity contrast is not significant).
2. :func:`primary_tests` tests them on paired seeds.
3. :func:`theory_rh` / :func:`fit_alpha` map the experiment onto the three-block model of
   :mod:`rharm.theory` (block 1 the minority, block 2 its partner, block 3 every other class) with one fitted
   parameter, the minority-partner connection alpha, and predict RH at the other ratios and temperatures.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from rharm.harm import metrics, stats
from rharm.harm.probe import ProbeConfig

# --------------------------------------------------------------------------------------------------------------
# 1. Pre-registration from the balanced models
# --------------------------------------------------------------------------------------------------------------

RULE = ("partner(i) = the class nearest to i (smallest 1 - cos) in the balanced models (mean over seeds); "
        "room(i): 1 - cos(i, partner) > 1 - cos(i, i); minorities: the {n_close} classes with room whose partner "
        "is nearest (ties: {tie_break}); control: the class with room whose nearest class is farthest")
_TIE_TEXT = {"room": "the larger room 1 - cos(i, partner) - (1 - cos(i, i)) first", "name": "alphabetical (v1)"}


@dataclass
class Preregistration:
    """Hypotheses fixed from the balanced models (see the module docstring).

    classes: K names. distance: (K, K) DataFrame of 1 - cos (mean over balanced seeds). table: one row per class
    (nearest class, its distance, the within-class distance, room). minorities: the pre-registered minority classes,
    nearest partner first. partners: minority (and control) -> partner. control: the control class.
    """

    classes: list[str]
    distance: pd.DataFrame
    table: pd.DataFrame
    minorities: list[str]
    partners: dict[str, str]
    control: str
    rule: str = ""
    n_close: int = 3

    @property
    def all_minorities(self) -> list[str]:
        """The pre-registered minorities followed by the control: every class whose underrepresented model is run."""
        return [*self.minorities, self.control]

    def hypotheses(self) -> pd.DataFrame:
        rows = [{"minority": m, "partner": self.partners[m],
                 "prediction": f"RH({m}, {self.partners[m]}) < 1, and lower than the rest of the row"}
                for m in self.minorities]
        rows.append({"minority": self.control, "partner": self.partners[self.control],
                     "prediction": f"control: RH({self.control}, ·) shows no pair-specific collapse"})
        return pd.DataFrame(rows)


def balanced_distance(cr: metrics.CosineRuns) -> np.ndarray:
    """(K, K) class cosine distance 1 - cos of the balanced models, averaged over seeds."""
    return 1.0 - cr.balanced.mean(axis=0)


#: how :func:`preregister` orders classes whose nearest-class distances tie exactly (two classes that are each
#: other's nearest class always tie: the distance is symmetric). "room": the class with more room to collapse,
#: d(i, partner) - d(i, i), comes first (registered for v2: a tighter class has further to fall, argued before any
#: v2 model was trained); a tie in both is refused. "name": alphabetical, as v1 did (kept to reproduce v1 only).
TIE_BREAKS = ("room", "name")


def preregister(distance, classes: Sequence[str], n_close: int = 3, *, tie_break: str = "room") -> Preregistration:
    """Apply the partner rule to a (K, K) distance matrix 1 - cos of the balanced models (see module docstring).

    Classes are ordered by the distance to their nearest class; exact ties are broken by ``tie_break``
    (:data:`TIE_BREAKS`), never by a name unless ``tie_break="name"`` asks for v1's rule.
    Raises ValueError when fewer than ``n_close + 1`` classes have room to collapse (no control would remain), or
    when ``tie_break="room"`` meets two classes tied in both distance and room.
    """
    from rharm.core.common import check_choice

    check_choice("tie_break", tie_break, TIE_BREAKS)
    d = np.asarray(distance, dtype=np.float64)
    classes = list(classes)
    k = len(classes)
    if d.shape != (k, k) or not np.all(np.isfinite(d)):
        raise ValueError(f"distance has shape {d.shape} (finite values needed); expected ({k}, {k}) "
                         f"for classes {classes}")
    if isinstance(n_close, bool) or not isinstance(n_close, (int, np.integer)) or n_close < 1:
        raise ValueError(f"n_close={n_close!r} is not valid; it must be an integer >= 1")
    off = d + np.diag(np.full(k, np.inf))
    nearest = off.argmin(axis=1)
    rows = []
    for i, c in enumerate(classes):
        j = int(nearest[i])
        rows.append({"class": c, "nearest": classes[j], "d_nearest": float(d[i, j]), "d_within": float(d[i, i]),
                     "room": bool(d[i, j] > d[i, i])})
    table = pd.DataFrame(rows)
    room = table[table.room]
    if len(room) < n_close + 1:
        raise ValueError(f"only {len(room)} classes have room to collapse ({room['class'].tolist()}); the rule needs "
                         f"n_close + 1 = {n_close + 1} (n_close minorities and a control); use a smaller n_close")
    room = room.assign(room_size=room.d_nearest - room.d_within)
    if tie_break == "room":
        ordered = room.sort_values(["d_nearest", "room_size"], ascending=[True, False], kind="stable")
        key = list(zip(ordered.d_nearest, ordered.room_size))
        tied = [ordered["class"].iloc[k] for k in range(len(key) - 1) if key[k] == key[k + 1]]
        if tied:
            raise ValueError(f"classes {tied} and their successors tie in both nearest distance and room; the "
                             "registered rule cannot order them (more balanced seeds separate them)")
    else:
        ordered = room.sort_values(["d_nearest", "class"], kind="stable")
    minorities = ordered["class"].iloc[:n_close].tolist()
    control = ordered["class"].iloc[-1]
    partners = {r["class"]: r["nearest"] for _, r in table.iterrows() if r["class"] in [*minorities, control]}
    table["room_size"] = table.d_nearest - table.d_within
    table["role"] = ["minority" if c in minorities else "control" if c == control else "" for c in table["class"]]
    return Preregistration(classes, pd.DataFrame(d, index=classes, columns=classes), table, minorities, partners,
                           control, RULE.format(n_close=n_close, tie_break=_TIE_TEXT[tie_break]), n_close)


# --------------------------------------------------------------------------------------------------------------
# 2. Paired tests of the pre-registered cells
# --------------------------------------------------------------------------------------------------------------


def seed_log_rh(cr: metrics.CosineRuns, minority: str) -> np.ndarray:
    """(S, K) log RH(minority, j) per seed, each imbalanced model paired with the balanced model of its seed."""
    i = cr.classes.index(minority)
    imb = cr.imbalanced[minority][:, i, :]
    bal = cr.balanced[:, i, :]
    return np.log(1.0 - imb) - np.log(1.0 - bal)


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error), in the input order
    (:func:`rharm.harm.stats.adjust_p`)."""
    return stats.adjust_p(p, "holm")[1]


def primary_tests(cr: metrics.CosineRuns, prereg: Preregistration, *, alpha: float = 0.05,
                  level: float = 0.95) -> pd.DataFrame:
    """Test every pre-registered hypothesis on paired seeds.

    For minority i and partner p, per seed s: log RH_s(i, p) (primary) and the specificity contrast
    log RH_s(i, p) - mean_{j not in {i, p}} log RH_s(i, j) (the partner cell below the rest of its row). Both are
    tested one-sided (mean < 0) with a t-test over seeds; Holm adjusts each family over the ``n_close``
    pre-registered minorities only (the control is reported beside them, unadjusted, with the opposite
    prediction). RH and its interval: :func:`rharm.harm.metrics.rh_interval` (geometric mean over paired seeds,
    t-interval
    of log RH), the same per-seed log RH the test uses, so the interval and the test cannot disagree.

    Returns one row per minority (control last): minority, role, partner, rh, rh_lo, rh_hi, row_median_rh,
    contrast (mean over seeds of the log contrast), p_rh, p_rh_holm, p_contrast, p_contrast_holm, held.
    """
    boot = metrics.rh_interval(cr, level=level)
    rows = []
    for m in prereg.all_minorities:
        if m not in cr.imbalanced:
            raise ValueError(f"no underrepresented runs for pre-registered minority {m!r}; run {prereg.all_minorities}")
        p = prereg.partners[m]
        i, j = cr.classes.index(m), cr.classes.index(p)
        lr = seed_log_rh(cr, m)
        rest = [c for c in range(len(cr.classes)) if c not in (i, j)]
        contrast = lr[:, j] - lr[:, rest].mean(axis=1)
        est = boot["estimate"].loc[m]
        rows.append({"minority": m, "role": "control" if m == prereg.control else "minority", "partner": p,
                     "rh": float(est[p]), "rh_lo": float(boot["lo"].loc[m, p]), "rh_hi": float(boot["hi"].loc[m, p]),
                     "row_median_rh": float(np.median(est[[cr.classes[c] for c in rest]])),
                     "contrast": float(contrast.mean()), "p_rh": stats.one_sided_p(lr[:, j]),
                     "p_contrast": stats.one_sided_p(contrast)})
    df = pd.DataFrame(rows)
    is_min = df.role == "minority"
    df["p_rh_holm"] = np.nan
    df["p_contrast_holm"] = np.nan
    df.loc[is_min, "p_rh_holm"] = holm(df.loc[is_min, "p_rh"].fillna(1.0))
    df.loc[is_min, "p_contrast_holm"] = holm(df.loc[is_min, "p_contrast"].fillna(1.0))
    held = []
    for _, r in df.iterrows():
        if r.role == "minority":
            held.append(bool(r.p_rh_holm < alpha and r.p_contrast_holm < alpha))
        else:  # the control's prediction holds when its partner cell does not stand out of its row
            held.append(bool(not (r.p_contrast < alpha)))
    df["held"] = held
    return df


def noise_floor_rows(cr: metrics.CosineRuns, rows: Sequence[str]) -> dict:
    """RH between balanced models of different seeds in the given rows, off the diagonal (no underrepresentation):
    ``min``, ``max``, ``lo``/``hi`` (2.5 and 97.5 percentiles) and ``n``. Single-seed ratios: wider than the
    seed-averaged estimator's spread. :func:`rharm.harm.metrics.noise_floor_summary` restricted to ``rows``."""
    s = metrics.noise_floor_summary(cr, level=0.95, off_diagonal=True, rows=rows)
    return {k: s[k] for k in ("min", "max", "lo", "hi", "n")}


# --------------------------------------------------------------------------------------------------------------
# 3. The three-block theory, mapped onto the experiment with one fitted parameter
# --------------------------------------------------------------------------------------------------------------


def block_proportions(ratio: float, n_classes: int) -> np.ndarray:
    """(pi_1, pi_2, pi_3) of the three-block model for one minority class kept at 1:ratio among ``n_classes``
    equally large classes: block 1 the minority (1/ratio), block 2 its partner (1), block 3 the other
    ``n_classes - 2`` classes together."""
    if not ratio >= 1 or n_classes < 3:
        raise ValueError(f"ratio={ratio!r}, n_classes={n_classes!r} are not valid; need ratio >= 1, n_classes >= 3")
    w = np.array([1.0 / ratio, 1.0, n_classes - 2.0])
    return w / w.sum()


@dataclass
class TheoryFit:
    """alpha fitted so that the theory's RH at ``fit_ratio`` equals the observed one; ``predict`` gives RH elsewhere."""

    alpha: float
    fit_ratio: float
    observed_at_fit: float
    tau: float
    n_classes: int
    grid: pd.DataFrame = field(default_factory=pd.DataFrame)
    at_bound: bool = False
    solutions: list = field(default_factory=list)  #: every alpha that reproduces the observed RH (two if not monotone)


def _cos12(pi: np.ndarray, alpha: float, tau: float, dim: int) -> float:
    return _cos12_cached(tuple(float(v) for v in pi), float(alpha), float(tau), int(dim))


@functools.lru_cache(maxsize=4096)
def _cos12_cached(pi: tuple, alpha: float, tau: float, dim: int) -> float:
    from rharm import theory

    pi = np.asarray(pi)
    a = theory.sbm_connectivity(float(alpha))
    last = None
    for seed in range(4):  # a failed convergence check is retried from another start
        try:
            return float(theory.population_cosines(pi, a, dim=dim, tau=tau, seed=seed)[0, 1])
        except RuntimeError as exc:
            last = exc
    raise RuntimeError(f"population problem did not converge at alpha={alpha}, pi={pi.tolist()}, tau={tau}: {last}")


def theory_rh(ratio: float, alpha: float, *, tau: float, n_classes: int, dim: int = 20) -> float:
    """RH(minority, partner) the population optimum predicts: (1 - cos12 at 1:ratio) / (1 - cos12 balanced)."""
    c_r = _cos12(block_proportions(ratio, n_classes), alpha, tau, dim)
    c_1 = _cos12(block_proportions(1.0, n_classes), alpha, tau, dim)
    if 1.0 - c_1 < 1e-9:  # the blocks already coincide in the balanced optimum: RH is undefined
        return float("nan")
    return float((1.0 - c_r) / (1.0 - c_1))


def fit_alpha(observed_rh: float, fit_ratio: float, *, tau: float, n_classes: int,
              alphas: Sequence[float] = tuple(np.round(np.linspace(0.0, 0.9, 19), 3)), dim: int = 20) -> TheoryFit:
    """The one fitted parameter: alpha whose predicted RH at ``fit_ratio`` equals ``observed_rh``.

    The theory's RH is evaluated on the ``alphas`` grid; every grid interval whose ends bracket the observed value
    gives one solution (linear interpolation in log RH), so a curve that is not monotone in alpha can give two:
    ``solutions`` lists them all and ``alpha`` is the first. With none (the observed value outside the theory's
    range) ``alpha`` is the grid point closest in log RH and ``at_bound`` is True.
    """
    rows = [{"alpha": float(a), "rh": theory_rh(fit_ratio, a, tau=tau, n_classes=n_classes, dim=dim)} for a in alphas]
    grid = pd.DataFrame(rows)
    grid = grid[np.isfinite(grid.rh) & (grid.rh > 0)].reset_index(drop=True)
    if grid.empty or not observed_rh > 0:
        raise ValueError(f"cannot fit alpha: observed_rh={observed_rh!r}, finite theory values {len(grid)}")
    target = math.log(observed_rh)
    lg = np.log(grid.rh.to_numpy())
    al = grid.alpha.to_numpy()
    solutions = []
    for k in range(len(lg) - 1):
        lo_side, hi_side = lg[k] - target, lg[k + 1] - target
        if lo_side == 0:
            solutions.append(float(al[k]))
        elif lo_side * hi_side < 0:
            solutions.append(float(al[k] + (target - lg[k]) / (lg[k + 1] - lg[k]) * (al[k + 1] - al[k])))
    if len(lg) and lg[-1] == target:
        solutions.append(float(al[-1]))
    at_bound = not solutions
    alpha = solutions[0] if solutions else float(al[int(np.argmin(np.abs(lg - target)))])
    fit = TheoryFit(alpha, float(fit_ratio), float(observed_rh), float(tau), int(n_classes), grid, at_bound)
    fit.solutions = solutions or [alpha]
    return fit


# --------------------------------------------------------------------------------------------------------------
# 4. Sweeps: RH of one pre-registered cell and the minority's allocation effect along a ratio or temperature axis
# --------------------------------------------------------------------------------------------------------------


def cell_log_rh(balanced: Sequence, imbalanced: Sequence, minority: str, partner: str, classes: Sequence[str],
                feature: str = "test_backbone") -> np.ndarray:
    """(S,) per-seed log RH(minority, partner): each imbalanced run paired with the balanced run of its seed."""
    cr = metrics.cosine_runs([*balanced, *imbalanced], feature=feature, classes=classes)
    return seed_log_rh(cr, minority)[:, list(classes).index(partner)]


def allocation_te(balanced: Sequence, imbalanced: Sequence, minority: str, ratio: int, classes: Sequence[str],
                  probe_c: float = 1.0) -> np.ndarray:
    """(S,) per-seed total allocation effect on the minority's own test accuracy, clean protocol
    (:func:`rharm.harm.mediation.mediation_runs`): Y(1, M(1)) - Y(0, M(0)) on the diagonal."""
    from rharm.harm import mediation

    probe = ProbeConfig(c_grid=(float(probe_c),), folds=1)
    mr = mediation.mediation_runs([*balanced, *imbalanced], protocol="clean", ratio=int(ratio), probe=probe,
                                  classes=list(classes), minorities=[minority])
    rows = mr.rows()  # condition -> (R, S, P, K)
    i = list(classes).index(minority)
    te = mediation.effects(rows["y00"], rows["y01"], rows["y11"])["TE"]
    return te[0, :, :, i].mean(axis=1)


def sweep_table(points: Sequence[dict], *, level: float = 0.95) -> pd.DataFrame:
    """One row per sweep point from dicts with ``x`` (ratio or temperature), ``log_rh`` (S,) and optionally ``te``
    (S,) per-seed values: rh, rh_lo, rh_hi (geometric mean over paired seeds, exponentiated t-interval of log RH),
    te, te_lo, te_hi (t-interval), n_seeds."""
    rows = []
    for p in points:
        rh, lo, hi = stats.geometric_ci(p["log_rh"], level=level)
        row = {"x": p["x"], "rh": rh, "rh_lo": lo, "rh_hi": hi, "n_seeds": int(len(p["log_rh"]))}
        if p.get("te") is not None:
            row["te"], row["te_lo"], row["te_hi"] = stats.mean_ci(p["te"], level=level)
        rows.append(row)
    return pd.DataFrame(rows)


def theory_prediction_error(table: pd.DataFrame, fit: TheoryFit, *, dim: int = 20) -> tuple[pd.DataFrame, float]:
    """Add the theory's RH (``theory_rh``) at every ratio of a dose-response ``table`` (column ``x``) and return it
    with the mean absolute error in RH over the ratios not used to fit (ratio 1, where both are 1, excluded)."""
    t = table.copy()
    t["theory_rh"] = [1.0 if x == 1 else theory_rh(x, fit.alpha, tau=fit.tau, n_classes=fit.n_classes, dim=dim)
                      for x in t.x]
    held_out = t[(t.x != fit.fit_ratio) & (t.x != 1)]
    mae = float(np.mean(np.abs(held_out.rh - held_out.theory_rh))) if len(held_out) else float("nan")
    return t, mae


def separation(features, labels, num_classes: int) -> dict:
    """How far apart the classes are in a representation: mean within-class cosine (the diagonal of
    :func:`rharm.harm.metrics.class_cosines`, over pairs of distinct items), mean between-class cosine (off-diagonal),
    and their gap. A gap near 0 means the classes are not separated, and RH is then a ratio of tiny, unstructured
    numbers."""
    cos = metrics.class_cosines(features, labels, num_classes)
    off = ~np.eye(num_classes, dtype=bool)
    within, between = float(np.diag(cos).mean()), float(cos[off].mean())
    return {"within": within, "between": between, "gap": within - between}


def ci_text(estimate: float, lo: float, hi: float, digits: int = 3) -> str:
    """``"0.846 (0.490 to 1.31)"``: an estimate with its interval, each to ``digits`` significant digits; an
    undefined interval (one seed) is said as such."""
    from rharm.core.common import fmt_sig

    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{fmt_sig(estimate, digits)} (no interval: one seed)"
    return f"{fmt_sig(estimate, digits)} ({fmt_sig(lo, digits)} to {fmt_sig(hi, digits)})"


# --------------------------------------------------------------------------------------------------------------
# 5. One whole pre-registered design, computed in the order the pre-registration requires
# --------------------------------------------------------------------------------------------------------------


@dataclass
class DesignResult:
    """Everything a page shows of one design (see :func:`run_design`)."""

    name: str
    classes: list[str]
    grid: dict
    prereg: Preregistration
    tests: pd.DataFrame
    floor: dict
    rh_long: pd.DataFrame
    probe: dict
    mediation: dict
    dose: pd.DataFrame
    fit: TheoryFit
    theory_mae: float
    dose_slope: float
    dose_p: float
    temperature: pd.DataFrame
    temperature_slope: float
    temperature_p: float
    minority: str
    partner: str
    data_source: str
    train_minutes: float  # wall time of the design's distinct models, summed over them, as recorded when trained
    alpha: float = 0.05  # level of the pre-registered tests (dose and temperature slopes too)

    def verdicts(self) -> pd.DataFrame:
        """One row per pre-registered hypothesis: whether it held, and the numbers that decide it."""
        from rharm.core.common import fmt_sig as f

        minor = self.tests[self.tests.role == "minority"]
        ctrl = self.tests[self.tests.role == "control"].iloc[0]
        rows = [{"hypothesis": f"H1+H2 {r.minority} → {r.partner}", "held": "yes" if r.held else "no",
                 "numbers": f"RH {ci_text(r.rh, r.rh_lo, r.rh_hi)}, row median {f(r.row_median_rh)}; Holm p "
                            f"{f(r.p_rh_holm, 2)} / {f(r.p_contrast_holm, 2)}"} for r in minor.itertuples()]
        rows.append({"hypothesis": f"H3 control {ctrl.minority} (nearest: {ctrl.partner})",
                     "held": "yes" if ctrl.held else "no",
                     "numbers": f"RH {ci_text(ctrl.rh, ctrl.rh_lo, ctrl.rh_hi)}, row median "
                                f"{f(ctrl.row_median_rh)}; contrast p {f(ctrl.p_contrast, 2)}"})
        rows.append({"hypothesis": f"H4 RH({self.minority}, {self.partner}) falls with the ratio",
                     "held": "yes" if self.dose_falls else "no",
                     "numbers": f"slope of log RH on log ratio {self.dose_slope:+.3f}, one-sided p "
                                f"{f(self.dose_p, 2)}; theory (α {self.fit.alpha:.2f}"
                                + (", at the edge of its range" if self.fit.at_bound else "")
                                + f") mean absolute error {f(self.theory_mae, 2)} in RH over the held-out ratios"})
        t = self.temperature
        rows.append({"hypothesis": "H5 more collapse at a larger temperature",
                     "held": "yes" if self.temp_more else "no",
                     "numbers": f"slope of log RH on log τ {self.temperature_slope:+.3f}, one-sided p "
                                f"{f(self.temperature_p, 2)}; theory RH from {f(t.theory_rh.iloc[0])} (τ "
                                f"{t.x.iloc[0]:g}) to {f(t.theory_rh.iloc[-1])} (τ {t.x.iloc[-1]:g})"})
        return pd.DataFrame(rows)

    @property
    def dose_falls(self) -> bool:
        return bool(self.dose_slope < 0 and self.dose_p < self.alpha)

    @property
    def temp_more(self) -> bool:
        return bool(self.temperature_slope < 0 and self.temperature_p < self.alpha)

    def finding(self, level: float) -> str:
        """Two or three sentences with the numbers, worded from the results (they hold at any scale)."""
        from rharm.core.common import fmt_sig as f

        minor = self.tests[self.tests.role == "minority"]
        ctrl = self.tests[self.tests.role == "control"].iloc[0]
        held = [f"{r.minority} → {r.partner}" for r in minor.itertuples() if r.held]
        n = len(minor)
        if len(held) == n:
            lead = f"all {n} pre-registered minorities collapsed specifically onto their predicted partner"
        elif held:
            lead = f"{len(held)} of {n} pre-registered minorities collapsed specifically onto their predicted " \
                   f"partner ({', '.join(held)})"
        else:
            lead = f"none of the {n} pre-registered minorities showed a significant pair-specific collapse"
        cells = "; ".join(
            f"RH({r.minority}, {r.partner}) = {ci_text(r.rh, r.rh_lo, r.rh_hi)}, "
            + ("below 1 and pair-specific" if r.held else "below 1 but not pair-specific"
               if r.p_rh_holm < self.alpha
               # a bootstrap interval below 1 can still fail the registered test: say which test decides
               else f"not significantly below 1 (Holm-adjusted t-test p {f(r.p_rh_holm, 2)})")
            for r in minor.itertuples())
        return (f"{self.name}: {lead}. {cells} ({level:.0%} CIs; noise floor of single-seed RH "
                f"{f(self.floor['lo'])} to {f(self.floor['hi'])}). The control ({ctrl.minority}) "
                + ("showed no pair-specific collapse, as predicted; " if ctrl.held
                   else f"also collapsed toward its nearest class ({ctrl.partner}), against the prediction; ")
                + f"RH {'falls' if self.dose_falls else 'does not fall significantly'} as the imbalance grows, and a "
                f"larger temperature {'gave' if self.temp_more else 'did not give significantly'} more collapse.")


def _slope_p(xs: Sequence[float], ys: Sequence[np.ndarray]) -> tuple[float, float]:
    """Least-squares slope of pooled per-seed log values on log x, and its one-sided p-value (slope < 0)."""
    from scipy import stats

    x = np.log(np.concatenate([np.full(len(y), xv, dtype=float) for xv, y in zip(xs, ys)]))
    y = np.concatenate(list(ys))
    fit = stats.linregress(x, y)
    p = fit.pvalue / 2 if fit.slope < 0 else 1 - fit.pvalue / 2
    return float(fit.slope), float(p)


def primary_section(balanced: Sequence, main: Sequence, prereg: Preregistration, classes: Sequence[str], *,
                    ratio: int, alpha: float, level: float, probe_c: float) -> dict:
    """The analysis every registration runs on its main grid, computed once for all: the registered tests
    (:func:`primary_tests`), the noise floor of the registered rows, the RH of every registered row with its interval
    (long form, for the heatmap), the balanced models' linear-probe accuracy (mean and t-interval over seeds) and
    the minority diagonal of the mediation under both probe protocols. Returns a dict with those five entries."""
    from rharm.harm import mediation

    classes = list(classes)
    cr = metrics.cosine_runs(main, classes=classes)
    est = metrics.rh_interval(cr, level=level)
    rh_long = metrics.long_rh(est["estimate"], est["lo"], est["hi"])
    acc = np.array([metrics.linear_probe_accuracy(r.features["train_backbone"], r.features["train_labels"],
                                                  r.features["test_backbone"], r.features["test_labels"])
                    for r in balanced])
    pm, plo, phi = stats.mean_ci(acc, level=level)
    probe_cfg = ProbeConfig(c_grid=(float(probe_c),), folds=1)
    med = {}
    for prot in ("paper", "clean"):
        mr = mediation.mediation_runs(main, protocol=prot, ratio=int(ratio), split_seeds=[0], probe=probe_cfg,
                                      classes=classes, minorities=prereg.all_minorities)
        med[prot] = mediation.diagonal_summary(mr, level=level)
    return {"tests": primary_tests(cr, prereg, alpha=alpha, level=level),
            "floor": noise_floor_rows(cr, prereg.all_minorities),
            "rh_long": rh_long[rh_long.minority.isin(prereg.all_minorities)],
            "probe": {"mean": pm, "lo": plo, "hi": phi, "per_seed": acc}, "mediation": med}


def run_design(name: str, grid: dict, *, n_close: int, alpha: float, level: float,
               dose_ratios: Sequence[int], dose_seeds: Sequence[int], temperatures: Sequence[float],
               temperature_seeds: Sequence[int], theory_fit_ratio: int, theory_dim: int, probe_c: float,
               log=print) -> DesignResult:
    """Train and analyse one design in the pre-registered order.

    1. the balanced models of ``grid["seeds"]``; 2. :func:`preregister` on them (before any underrepresented model
    of the design is trained); 3. the minorities and the control; :func:`primary_tests`, the noise floor, the
    balanced probe and the mediation (both protocols); 4. the dose-response of the first minority's partner cell
    over ``dose_ratios`` and the theory fitted at ``theory_fit_ratio``; 5. the temperature study.
    ``grid`` is an :func:`rharm.runs.images.run_grid` grid (``classes`` may select a subset).
    """
    from rharm.runs import images as experiment
    from rharm.vision import data

    # training cost: each distinct model's wall time as recorded when it was trained (a page re-executed from the
    # result store shows what its models cost, not the seconds it took to load them)
    run_seconds: dict[str, float] = {}
    classes = list(grid.get("classes") or data.dataset_info(grid["dataset"]).classes)

    def runs(minorities, seeds, **changes):
        out = experiment.run_grid({**grid, **changes, "minority_classes": list(minorities), "seeds": list(seeds)})
        run_seconds.update({str(r.dir): float(r.meta.get("wall_time_s", float("nan"))) for r in out})
        return out

    seeds = list(grid["seeds"])
    balanced = runs([], seeds)
    log(f"{name}: {len(balanced)} balanced models")
    # v1 as it ran: its within-class distances included self-pairs and its ties were broken by name
    prereg = preregister(balanced_distance(metrics.cosine_runs(balanced, classes=classes, within="paper")), classes,
                         n_close=n_close, tie_break="name")
    m0, p0 = prereg.minorities[0], prereg.partners[prereg.minorities[0]]
    # every model the rest of the design needs, known once the rule has named the minorities: trained in one pool
    # (the analysis below then reads them from the store in the registered order)
    later = [{**grid, "minority_classes": list(prereg.all_minorities), "seeds": seeds}]
    later += [{**grid, "minority_classes": [m0], "seeds": list(dose_seeds), "ratio": int(r)}
              for r in dose_ratios if int(r) != 1]
    later += [{**grid, "minority_classes": [m0], "seeds": list(temperature_seeds), "temperature": float(t)}
              for t in temperatures]
    experiment.prefetch(later, workers=int(grid.get("workers") or 1))
    main = runs(prereg.all_minorities, seeds)
    prim = primary_section(balanced, main, prereg, classes, ratio=int(grid["ratio"]), alpha=alpha, level=level,
                           probe_c=probe_c)
    tests, floor, rh_long, med = prim["tests"], prim["floor"], prim["rh_long"], prim["mediation"]
    log(f"{name}: pre-registered tests done")
    bal_dose = runs([], dose_seeds)
    points = []
    for r in dose_ratios:
        if int(r) == 1:
            points.append({"x": 1, "log_rh": np.zeros(len(dose_seeds)), "te": np.zeros(len(dose_seeds))})
            continue
        imb = [x for x in runs([m0], dose_seeds, ratio=int(r)) if x.minority == m0]
        points.append({"x": int(r), "log_rh": cell_log_rh(bal_dose, imb, m0, p0, classes),
                       "te": allocation_te(bal_dose, imb, m0, int(r), classes, probe_c)})
    dose = sweep_table(points, level=level)
    fit_row = dose[dose.x == theory_fit_ratio]
    if fit_row.empty:
        raise ValueError(f"theory_fit_ratio={theory_fit_ratio} is not one of dose_ratios={list(dose_ratios)}")
    fit = fit_alpha(float(fit_row.rh.iloc[0]), theory_fit_ratio, tau=float(grid["temperature"]),
                    n_classes=len(classes), dim=theory_dim)
    dose, mae = theory_prediction_error(dose, fit, dim=theory_dim)
    held_out = [p for p in points if p["x"] != 1]
    d_slope, d_p = _slope_p([p["x"] for p in held_out], [p["log_rh"] for p in held_out])
    log(f"{name}: dose-response done")
    tpoints = []
    for tau in temperatures:
        rs = runs([m0], temperature_seeds, temperature=float(tau))
        tpoints.append({"x": float(tau), "log_rh": cell_log_rh([x for x in rs if x.minority is None],
                                                              [x for x in rs if x.minority == m0], m0, p0, classes)})
    temp = sweep_table(tpoints, level=level)
    temp["theory_rh"] = [theory_rh(int(grid["ratio"]), fit.alpha, tau=x, n_classes=len(classes), dim=theory_dim)
                         for x in temp.x]
    t_slope, t_p = _slope_p([p["x"] for p in tpoints], [p["log_rh"] for p in tpoints])
    src = balanced[0].meta.get("extra", {}).get("data_source", data.dataset_info(grid["dataset"]).title)
    return DesignResult(name, classes, dict(grid), prereg, tests, floor, rh_long, prim["probe"], med, dose, fit, mae,
                        d_slope, d_p, temp, t_slope, t_p, m0, p0, src, sum(run_seconds.values()) / 60,
                        alpha=float(alpha))
