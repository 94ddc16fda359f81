# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # What reduces the harm? Mitigations on the Fashion-MNIST setting
#
# :::{admonition} Finding
# :class: tip
# {glue:text}`mi_finding`
# :::
#
# The {doc}`fashion_harm` chapter measures the harm where two CPU cores can resolve it; a practitioner's next
# question is what to do about it. This chapter puts five mitigations on the same axes: how much representation harm
# each leaves for the pre-registered minority and its partner, what it does to the minority's allocation harm, and
# what it costs everybody (the balanced linear-probe accuracy of the model trained on the imbalanced data). Each is a
# setting of the one training loop ({mod}`rharm.mitigation`), trained with the same seeds, pools, initial weights and
# batch order of the shared images as the unmitigated model (common random numbers), so every comparison is paired by
# seed:
#
# - **re-balancing**: the practitioner knows which group is rare, and every minority image appears about `ratio`
#   times per epoch, so that batches see the minority at the rate of any other class;
# - **re-weighting**: the minority's anchors count {glue:text}`mi_weight` times in NT-Xent;
# - **temperature**: the NT-Xent temperature at which the three-block theory of the {doc}`theory` chapter predicts the
#   least collapse;
# - **SimSiam** (Chen & He 2021), the paper's second method, which has no negatives;
# - **SDCLR** (Jiang, Chen, Mortazavi & Wang, "Self-Damaging Contrastive Learning", ICML 2021): the second view of
#   each image is encoded by a magnitude-pruned copy of the network sharing its weights, so the images the pruned
#   network "forgets", in the paper's account the rare ones, get a larger loss. Implemented from the paper's
#   description; the deviations (which layers are pruned, mask refresh, BatchNorm of the pruned branch) are stated in
#   {mod}`rharm.mitigation`.
#
# - **warm start**: each seed's models start from a model pre-trained, with the same settings, on the other classes
#   only (the minority never seen), the analogue of the ImageNet initialisation of the paper's code.
#
# **The setting.** The chapter studies design B of the {doc}`fashion_harm` chapter (its five classes and pool),
# where the harm is resolved (see that chapter's verdicts for which of its cells are below 1 and which are
# pair-specific). The cell is that design's *first* pre-registered minority and its partner, as registered, picked
# by the same rule from the same balanced models, with all five of its seeds paired. The chapter's first version studied
# design A (all ten classes) with three seeds, where the unmitigated harm was not resolved (its interval included
# 1), so no mitigation could be judged there; the setting was moved to design B, and the warm start added with its
# expectation E6, before any mitigation of design B was trained. E1–E5 are unchanged from their first registration.

# %% tags=["parameters"]
profile = "cpu"
dataset = None
method = None
backbone = None
init = None
epochs = None
batch_size = None
lr = None
weight_decay = None
temperature = None
clamp = None
schedule = None
augment = None
ratio = None
seeds = None
n_per_class = None
classes = None
data_source = None
threads = None
workers = None
n_close = None
mitigation_seeds = None
temperatures = None
minority_weight = None
sdclr_prune = None
simsiam_lr = None
simsiam_weight_decay = None
theory_dim = None
n_boot = None
ci_level = None
probe_c = None

# %%
import rharm.params

P = rharm.params.check("mitigation", globals())

# %%
import time

import altair as alt
import numpy as np
import pandas as pd
from myst_nb import glue

from rharm import charts, data, experiment, headline, mediation, metrics, study, tables

t_start = time.perf_counter()
if not set(mitigation_seeds) <= set(seeds):
    raise ValueError(f"mitigation_seeds={mitigation_seeds} is not valid; it must be a subset of seeds={seeds} (the "
                     "balanced models of the pre-registration)")
# exactly fashion_harm's grid of the same design: its balanced and unmitigated runs come from the result store
grid = {k: P.values[k] for k in ("dataset", "method", "backbone", "init", "epochs", "batch_size", "lr",
                                 "weight_decay", "temperature", "clamp", "schedule", "augment", "ratio", "seeds",
                                 "n_per_class", "classes", "data_source", "threads", "workers")}
grid["progress"] = False
classes = list(experiment.run_classes(grid))


def runs(minorities, seeds_, **changes):
    """Train (or fetch from the store) the balanced model and each minority for each seed."""
    return experiment.run_grid({**grid, **changes, "minority_classes": list(minorities), "seeds": list(seeds_)})


# %% [markdown]
# ## The minority and its partner, from the balanced models alone
#
# The {doc}`fashion_harm` chapter's pre-registration rule ({func}`rharm.study.preregister`) applied to the same
# balanced models; this chapter studies its first minority and that minority's partner.

# %%
balanced_runs = runs([], seeds)
prereg = study.preregister(study.balanced_distance(metrics.cosine_runs(balanced_runs, classes=classes)), classes,
                           n_close=n_close)
m0 = prereg.minorities[0]
p0 = prereg.partners[m0]
tables.show(pd.DataFrame([("classes", ", ".join(classes)), ("pool per class", n_per_class),
                          ("minority", m0), ("partner", p0), ("ratio", f"1:{ratio}"),
                          ("paired seeds", ", ".join(map(str, mitigation_seeds)))], columns=["what", "value"]),
            caption=f"The cell every mitigation is measured on (profile {P.profile}).")

# %% [markdown]
# ## Which temperature the theory chooses
#
# The three-block model ({func}`rharm.study.theory_rh`; block 1 the minority, block 2 its partner, block 3 the other
# classes) with its one parameter $\alpha$ fitted to the unmitigated RH at this ratio, evaluated at each temperature
# of the {doc}`fashion_harm` chapter. The intervention uses the temperature with the largest theoretical RH (the
# least collapse).

# %%
base = runs([m0], mitigation_seeds)
base_bal = [r for r in base if r.minority is None]
base_imb = [r for r in base if r.minority == m0]
base_log_rh = study.cell_log_rh(base_bal, base_imb, m0, p0, classes)
fit = study.fit_alpha(float(np.exp(base_log_rh.mean())), ratio, tau=temperature, n_classes=len(classes),
                      dim=theory_dim)
theory_t = pd.DataFrame({"tau": [float(t) for t in temperatures]})
theory_t["theory_rh"] = [study.theory_rh(ratio, fit.alpha, tau=t, n_classes=len(classes), dim=theory_dim)
                         for t in theory_t.tau]
tau_star = float(theory_t.tau[theory_t.theory_rh.idxmax()])
tau_is_smallest = tau_star == min(theory_t.tau)
tables.show(theory_t, digits=3, rename={"tau": "temperature τ", "theory_rh": f"theory RH({m0}, {p0})"},
            caption=f"The three-block theory's RH at 1:{ratio} (α = {fit.alpha:.2f} fitted to the unmitigated RH at "
                    f"τ = {temperature:g}). The largest is at τ = {tau_star:g}, "
                    + ("the smallest temperature of the list." if tau_is_smallest else
                       "not the smallest temperature of the list."))

# %% [markdown]
# ## Pre-registration
#
# Written in `profiles.yml` (section `mitigation`) before the cpu profile was run. **Harm removed** is
# $1 - \overline{\log \mathrm{RH}}_{\text{mitigated}} / \overline{\log \mathrm{RH}}_{\text{none}}$ over the paired
# seeds: 0 is no change, 1 is no harm left, a negative value is more harm. An expectation **held** when the point
# estimate lies in its range and, for those expected to reduce the harm, the paired bootstrap interval of
# $\log \mathrm{RH}_{\text{mitigated}} - \log \mathrm{RH}_{\text{none}}$ lies above 0.

# %%
prereg_table = pd.DataFrame([
    ("E1", "re-balancing", "reduces the harm", 0.30, np.inf,
     "the minority at the balanced rate, but only its few images: not all of the harm expected back; "
     "probe accuracy within 1 point"),
    ("E2", "re-weighting", "reduces the harm", 0.15, 1.0,
     "the same expected gradient as re-balancing, with more variance: no more than E1"),
    ("E3", "temperature", "reduces the harm", 0.0, np.inf,
     "the three-block theory: least collapse at the smallest temperature (sign is the test)"),
    ("E4", "SimSiam", "does not remove it", -np.inf, 0.5,
     "Maity et al. report the harm for SimSiam too; its RH interval below 1"),
    ("E5", "SDCLR", "reduces it modestly", 0.10, 0.60,
     "Jiang et al. report better balance on long-tailed CIFAR, not the harm's removal; probe within 2 points"),
    ("E6", "warm start", "does not remove it", -np.inf, 0.3,
     "the pre-training never sees the minority, so it cannot separate it from its partner; Maity et al. see the "
     "harm with their ImageNet-initialised SimCLR; its RH interval below 1"),
], columns=["id", "intervention", "expected", "removed_lo", "removed_hi", "why"])
tables.show(prereg_table.assign(range=[f"{charts.fmt_sig(lo * 100, 2) if np.isfinite(lo) else '−∞'}% to "
                                       f"{charts.fmt_sig(hi * 100, 2) if np.isfinite(hi) else '∞'}%"
                                       for lo, hi in zip(prereg_table.removed_lo, prereg_table.removed_hi)]),
            index=None, columns=["id", "intervention", "expected", "range", "why"],
            rename={"range": "harm removed"}, caption="The pre-registered expectations.")

# %% [markdown]
# ## Training the mitigations
#
# Re-balancing and re-weighting change only the underrepresented model (the balanced model has no minority), so
# they share the unmitigated balanced model; the temperature, SimSiam, SDCLR and the warm start change the balanced
# model too, and each of their RH values compares two models trained the same way (for the warm start: both start
# from the seed's model pre-trained without the minority, a third model per seed).

# %%
interventions = {
    "none": {},
    "re-balancing": {"rebalance": True},
    "re-weighting": {"minority_weight": float(minority_weight)},
    "temperature": {"temperature": tau_star},
    "SimSiam": {"method": "simsiam", "lr": float(simsiam_lr), "weight_decay": float(simsiam_weight_decay)},
    "SDCLR": {"sdclr_prune": float(sdclr_prune)},
    "warm start": {"warm_start": True},
}
setting = {
    "none": f"SimCLR, τ {temperature:g}, lr {lr:g}",
    "re-balancing": f"each {m0} image ×{n_per_class // (n_per_class // ratio)} per epoch",
    "re-weighting": f"{m0} anchors weighted {minority_weight:g}",
    "temperature": f"τ {tau_star:g}",
    "SimSiam": f"lr {simsiam_lr:g}, weight decay {simsiam_weight_decay:g}",
    "SDCLR": f"prune {sdclr_prune:.0%} of each backbone layer but the first",
    "warm start": f"pre-trained {epochs} epochs on the {len(classes) - 1} other classes, then as none",
}
trained = {}
for name, changes in interventions.items():
    rs = base if not changes else runs([m0], mitigation_seeds, **changes)
    trained[name] = ([r for r in rs if r.minority is None], [r for r in rs if r.minority == m0])
# what the models shown cost, as recorded when each was trained (the warm start's pre-training not included)
train_minutes = sum({str(r.dir): r.meta.get("wall_time_s", np.nan) for b, i in trained.values()
                     for r in [*b, *i]}.values()) / 60

# %%
probe_cfg = mediation.ProbeConfig(c_grid=(probe_c,), folds=1)
rows, per_seed = [], {}
for name, (bal, imb) in trained.items():
    log_rh = study.cell_log_rh(bal, imb, m0, p0, classes)
    rh, rh_lo, rh_hi = study.geometric_ci(log_rh, n_boot=n_boot, level=ci_level)
    diff = log_rh - base_log_rh  # paired by seed
    d, d_lo, d_hi = study.mean_ci(diff, n_boot=n_boot, level=ci_level)
    mr = mediation.mediation_runs([*bal, *imb], protocol="clean", ratio=ratio, split_seeds=[0], probe=probe_cfg,
                                  classes=classes, minorities=[m0])
    med = mediation.diagonal_summary(mr, n_boot=n_boot, level=ci_level, seed=0).loc[m0]
    acc = np.array([metrics.linear_probe_accuracy(r.features["train_backbone"], r.features["train_labels"],
                                                  r.features["test_backbone"], r.features["test_labels"])
                    for r in imb])
    a, a_lo, a_hi = study.mean_ci(acc, n_boot=n_boot, level=ci_level)
    per_seed[name] = {"log_rh": log_rh, "probe_accuracy": acc}
    rows.append({"intervention": name, "setting": setting[name], "rh": rh, "rh_lo": rh_lo, "rh_hi": rh_hi,
                 "removed": 1 - log_rh.mean() / base_log_rh.mean(), "dlog": d, "dlog_lo": d_lo, "dlog_hi": d_hi,
                 "TE": med.TE, "TE_lo": med.TE_lo, "TE_hi": med.TE_hi, "NIE": med.NIE, "NIE_lo": med.NIE_lo,
                 "NIE_hi": med.NIE_hi, "probe": a, "probe_lo": a_lo, "probe_hi": a_hi,
                 "train_s": float(np.mean([r.meta.get("wall_time_s", np.nan) for r in imb])),
                 "n_seeds": len(imb)})
res = pd.DataFrame(rows)
res["dprobe"] = res.probe - res.probe[res.intervention == "none"].iloc[0]
# a share of the harm removed is defined only where there is a resolved harm to remove
base_resolved = bool(res.rh_hi[res.intervention == "none"].iloc[0] < 1)
if not base_resolved:
    res["removed"] = np.nan

# %% [markdown]
# ## Harm, allocation and cost, per intervention

# %%
tables.show(res, index=None, digits=3,
            columns=["intervention", "setting", "rh", "rh_lo", "rh_hi", "removed", "TE", "TE_lo", "TE_hi", "NIE",
                     "NIE_lo", "NIE_hi", "probe", "dprobe", "train_s"],
            rename={"rh": f"RH({m0}, {p0})", "rh_lo": "CI low", "rh_hi": "CI high", "removed": "harm removed",
                    "TE_lo": "TE low", "TE_hi": "TE high", "NIE_lo": "NIE low", "NIE_hi": "NIE high",
                    "probe": "probe accuracy", "dprobe": "Δ probe", "train_s": "s per model"},
            caption=f"One row per intervention, {len(mitigation_seeds)} paired seeds, {ci_level:.0%} percentile "
                    f"bootstrap intervals. RH: geometric mean over seeds (< 1: {m0} moved toward {p0}); harm "
                    "removed: the share of the unmitigated mean log RH that is gone ("
                    + ("" if base_resolved else "undefined here: the unmitigated RH interval includes 1; ")
                    + "–: undefined); TE / NIE: the change in the "
                    f"minority's own test accuracy and its part carried by the representation (clean protocol, "
                    f"probe C = {probe_c}); probe accuracy: balanced linear probe of the model trained on the "
                    "imbalanced data (what the mitigation costs every class), Δ against no intervention; seconds "
                    "of training per model (mean over its runs; runs shared with other chapters keep the time "
                    "they took there).")

# %%
pts = res.assign(kind=np.where(res.intervention == "none", "no intervention", "mitigation"))
x_dom = charts.padded_domain(pts.probe_lo, pts.probe_hi)
y_dom = charts.padded_domain(pts.rh_lo, pts.rh_hi, include=[1.0])
sx = alt.Scale(domain=x_dom, zero=False, nice=False)
sy = alt.Scale(domain=y_dom, zero=False, nice=False)
size = min(420, charts.plot_width(1))
one = alt.Chart(pd.DataFrame({"v": [1.0]})).mark_rule(color="lightgray").encode(y=alt.Y("v:Q", scale=sy))
vbar = alt.Chart(pts).mark_rule(opacity=0.6).encode(x=alt.X("probe:Q", scale=sx), y=alt.Y("rh_lo:Q", scale=sy),
                                                   y2="rh_hi:Q", color=alt.Color("intervention:N", legend=None))
hbar = alt.Chart(pts).mark_rule(opacity=0.6).encode(y=alt.Y("rh:Q", scale=sy), x=alt.X("probe_lo:Q", scale=sx),
                                                   x2="probe_hi:Q", color=alt.Color("intervention:N", legend=None))
dots = alt.Chart(pts).mark_point(size=90, filled=True).encode(
    x=alt.X("probe:Q", scale=sx, title="balanced linear-probe accuracy of the imbalanced-data model"),
    y=alt.Y("rh:Q", scale=sy, title=f"RH({m0}, {p0})  (1 = no harm)"),
    color=alt.Color("intervention:N", legend=alt.Legend(orient="bottom", title=None)),
    shape=alt.Shape("kind:N", scale=alt.Scale(domain=["no intervention", "mitigation"], range=["square", "circle"]),
                    legend=alt.Legend(orient="bottom", title=None)),
    tooltip=["intervention", "setting", "rh", "rh_lo", "rh_hi", "probe", "probe_lo", "probe_hi"])
labels = alt.Chart(pts).mark_text(dx=8, dy=-8, align="left", fontSize=11).encode(
    x=alt.X("probe:Q", scale=sx), y=alt.Y("rh:Q", scale=sy), text="intervention:N")
alt.layer(one, vbar, hbar, dots, labels).properties(
    title=f"Harm against accuracy, 1:{ratio} ({len(mitigation_seeds)} paired seeds, {ci_level:.0%} intervals)",
    width=size, height=size)

# %% [markdown]
# ## Which expectations held

# %%
none_probe = float(res.probe[res.intervention == "none"].iloc[0])
verdict_rows = []
for e in prereg_table.itertuples():
    r = res[res.intervention == e.intervention].iloc[0]
    in_range = bool(e.removed_lo <= r.removed <= e.removed_hi)  # False when undefined (NaN)
    if e.id in ("E4", "E6"):  # harm persists: its RH interval lies below 1 (and, where defined, little of it removed)
        held = bool(r.rh_hi < 1) and (in_range or not base_resolved)
    else:
        held = in_range and bool(r.dlog_lo > 0)
    verdict_rows.append({
        "id": e.id, "intervention": e.intervention, "expected": e.expected, "held": "yes" if held else "no",
        "numbers": ("harm removed " + (f"{charts.fmt_sig(r.removed * 100, 2)}%" if np.isfinite(r.removed)
                                        else "undefined") + f"; Δ log RH {r.dlog:+.3f} "
                   f"({r.dlog_lo:+.3f} to {r.dlog_hi:+.3f}); RH {charts.fmt_sig(r.rh)} "
                   f"({charts.fmt_sig(r.rh_lo)}–{charts.fmt_sig(r.rh_hi)}); probe {r.dprobe * 100:+.1f} points")})
verdicts = pd.DataFrame(verdict_rows)
tables.show(verdicts, index=None, caption="Each pre-registered expectation, whether it held, and the numbers.")

# %% tags=["remove-cell"]
wall_minutes = (time.perf_counter() - t_start) / 60
none = res[res.intervention == "none"].iloc[0]
mit = res[res.intervention != "none"]
sig_less = mit[mit.dlog_lo > 0]
n_held = int((verdicts.held == "yes").sum())
if not base_resolved:
    lead = (f"On these {len(mitigation_seeds)} paired seeds the unmitigated model shows no resolved harm for {m0} "
            f"toward {p0} (its RH interval includes 1), so no mitigation can be shown to reduce it; "
            + (f"{len(sig_less)} of {len(mit)} moved RH up with a paired interval clear of zero"
               if len(sig_less) else f"none of the {len(mit)} moved RH with a paired interval clear of zero"))
elif len(sig_less):
    which = ", ".join(f"{r.intervention} ({charts.fmt_sig(r.removed * 100, 2)}% removed, probe "
                      f"{r.dprobe * 100:+.1f} points)" for r in sig_less.itertuples())
    lead = (f"{len(sig_less)} of {len(mit)} mitigations reduced the harm of {m0} toward {p0} with a paired "
            f"interval clear of zero: {which}")
else:
    best = mit.loc[mit.dlog.idxmax()]
    lead = (f"None of the {len(mit)} mitigations reduced the harm of {m0} toward {p0} with a paired interval clear "
            f"of zero; the largest point estimate was {best.intervention}'s ({charts.fmt_sig(best.removed * 100, 2)}% "
            "removed)")
finding = (
    f"{lead}. Without intervention RH({m0}, {p0}) = {charts.fmt_sig(none.rh)} ({ci_level:.0%} CI "
    f"{charts.fmt_sig(none.rh_lo)}–{charts.fmt_sig(none.rh_hi)}) at 1:{ratio} over {len(mitigation_seeds)} paired "
    f"seeds. {n_held} of {len(verdicts)} pre-registered expectations held"
    + (f"; the theory-chosen temperature (τ = {tau_star:g}) "
       + ("reduced the harm, as predicted." if bool(res.dlog_lo[res.intervention == "temperature"].iloc[0] > 0)
          else "did not reduce it significantly, against the prediction.")))
glue("mi_finding", finding, display=False)
glue("mi_weight", f"{minority_weight:g}", display=False)
headline.write(P, {
    "finding": finding,
    "minority": m0, "partner": p0, "ratio": ratio, "seeds": list(mitigation_seeds),
    "theory_temperature": {"tau": tau_star, "is_smallest": tau_is_smallest, "alpha": fit.alpha, "table": theory_t},
    "interventions": res, "baseline_harm_resolved": base_resolved,
    "per_seed": per_seed,
    "preregistered": prereg_table.assign(**{c: prereg_table[c].where(np.isfinite(prereg_table[c]))
                                            for c in ("removed_lo", "removed_hi")}),
    "expectations_held": verdicts,
    "training_minutes_summed_over_models": train_minutes, "wall_minutes": wall_minutes,
})

# %% [markdown]
# ## How this page was made

# %%
import rharm.provenance

rharm.provenance.block(P)
