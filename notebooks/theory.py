# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Theory: contrastive learning on a stochastic block model
#
# The paper explains representation harm with a stochastic block model (SBM) used as the augmentation graph of
# contrastive learning: nodes are data points, an edge joins two points that can be augmentations of each other,
# and blocks are the classes. Its claim is a "representational neural collapse": at the optimum every block
# shares one representation, and an underrepresented block's representation moves onto that of a majority block
# it is connected to. This chapter rebuilds both simulations of the official code (a node-level one and a
# population-level one), solves the population problem to verified convergence for two versions of its
# objective, and derives where the minority's representation goes as its share $\pi_1$ vanishes.
#
# :::{admonition} Finding
# :class: rharm-finding
# {glue:text}`th_finding`
# :::
#
# :::{note}
# The paper's text, theorem and proofs are not public; the setup below is read from the official code
# (`simulation/SBM.py`, `simulation/node2vec.py`). The limit derivation is ours.
# :::

# %% tags=["parameters"]
profile = "cpu"
alpha = None
alphas = None
pi1_values = None
block_sizes_n1 = None
majority_size = None
node_dim = None
pop_dim = None
tau = None
node_iters = None
restarts = None
tol = None
seed = None
heatmap_pi1 = None

# %%
import rharm.core.params

P = rharm.core.params.check("theory", globals())

# %%
import rharm.page.provenance
from rharm import theory
from rharm.core import reference
from rharm.page import charts, headline, tables
from rharm.report import theory as report

charts.enable()
A = theory.sbm_connectivity(P.alpha)
sc = report.scale(P)

# %% [markdown]
# **Scale of this page.** Profile {glue:text}`th_profile`; node level: blocks of sizes $(n_1, m, m)$ with
# $n_1$ = {glue:text}`th_n1_list` and $m=$ {glue:text}`th_majority_size`, $d=$ {glue:text}`th_node_dim`,
# {glue:text}`th_node_iters` gradient steps, $\alpha=$ {glue:text}`th_alpha:.2f`, seed {glue:text}`th_seed`;
# population level: $d=$ {glue:text}`th_pop_dim`, $\tau=$ {glue:text}`th_tau:.2f`, {glue:text}`th_restarts` random
# starts per solve.
# The `cpu` and `gpu` profiles use the official code's settings (the simulations are small); the official code ran
# one start per setting, we run several to check that they agree. The `smoke` profile shrinks the graphs and steps
# and its numbers are not meant to be read. Our SBM graphs are drawn with NumPy, not graspologic, so they are other
# draws from the same distribution.
#
# ## The model
#
# Three blocks with connectivity
#
# $$A = \begin{pmatrix} a & \alpha & 0 \\ \alpha & a & 0 \\ 0 & 0 & a \end{pmatrix}, \qquad a = 0.95 :$$
#
# block 1 (the minority) is linked to block 2 with probability $\alpha$ and never to block 3.
#
# **Node level.** With unit vectors $v_1,\dots,v_N$, adjacency $G$ and degrees $\deg_i$, the official code
# minimises
#
# $$L(V) = -\frac{1}{N\tau}\sum_i \Big\langle v_i, \frac{1}{\deg_i}\sum_j G_{ij} v_j\Big\rangle
#          + \frac1N\sum_i \log\Big(\frac1N\sum_j e^{\langle v_i, v_j\rangle/\tau}\Big),$$
#
# a population InfoNCE loss: the positive of node $i$ is a random neighbour, the negatives are all nodes. We run
# its projected gradient descent (step $10\,(k+1)^{-0.2}$, rows renormalised after each step). A node without
# neighbours would make the official code divide by zero; ours gives it no positive term (the graphs here have
# {glue:text}`th_isolated_total` such nodes).
#
# {numref}`fig-th-connectivity` shows the connectivity and {numref}`fig-th-node` the node simulation's mean cosines.

# %% mystnb={"figure": {"name": "fig-th-connectivity", "caption": "The three blocks' link probabilities."}}
node = report.node_simulations(P)
node_sec = report.node_level(node, P)
charts.connectivity_chart(A, title=f"connectivity (α = {P.alpha:g})")

# %% mystnb={"figure": {"name": "fig-th-node", "caption": "The node simulation's mean cosines within and between blocks, by minority size."}}
charts.node_cosine_charts(node, P.majority_size)

# %% [markdown]
# Each panel shows the mean cosine between node representations of two blocks, ± its standard deviation
# (within a block over distinct pairs, between blocks over all pairs). With the smallest minority
# ($n_1=$ {glue:text}`th_n1_min`) block 1 sits at cosine {glue:text}`th_node_cos12_min:.3f` to block 2 and
# {glue:text}`th_node_cos13_min:.3f` to block 3. Nodes of one block point in nearly one direction (the smallest
# within-block mean cosine is {glue:text}`th_node_within_min:.3f`; the spread is largest in the smallest block,
# whose few nodes each see their own random set of neighbours): the collapse of a block onto one representation
# that the population problem below takes for granted.
#
# :::{admonition} Fixed from the published figure
# :class: tip
# The committed `SBM-mean-cosine.pdf` titles its panels with powers of two that are not the sizes the code ran
# ($n_1 \in \{256, 32, 4\}$ with majority blocks of 256), and its last panel draws the colours of the $n_1=32$
# run under the annotations of the $n_1=4$ run. Here each panel's title gives the sizes that ran, and colours and
# annotations come from the same run. We also leave the diagonal (self-cosine 1) out of the within-block
# statistics, which the official code included.
# :::
#
# ## The population problem
#
# If every node of block $k$ takes the value $h_k$ and the graph is replaced by its expectation, block $k$ holds a
# share $\pi_k$ of the nodes and node $i$ of block $k$ has a neighbour in block $j$ with probability
# $\pi_j A_{kj}/w_k$, $w_k=\sum_l A_{kl}\pi_l$. The node loss then becomes the **principled** population objective
#
# $$L(h) = -\frac1\tau\sum_{i}\pi_i\sum_j \frac{\pi_j A_{ij}}{w_i}\langle h_i,h_j\rangle
#          + \sum_i \pi_i \log\sum_j \pi_j e^{\langle h_i,h_j\rangle/\tau}.$$
#
# The official `node2vec.py` keeps $\pi$ as a column, so its products scale rows by $\pi_i$ where columns should
# be scaled by $\pi_j$; it minimises the **official** objective
#
# $$L_{\text{code}}(h) = -\frac1\tau\sum_{i}\frac{\pi_i^2}{w_i}\sum_j A_{ij}\langle h_i,h_j\rangle
#          + \sum_i \pi_i \log\Big(\pi_i\sum_j e^{\langle h_i,h_j\rangle/\tau}\Big).$$
#
# The two agree when all blocks are equal. The check below evaluates the node loss of a block-constant
# configuration on the expected graph and the two population objectives at the same $h$.

# %%
red = report.reduction(P)

# %% [markdown]
# At a random $h$ with block sizes {glue:text}`th_reduction_sizes` the node loss and the principled objective
# differ by {glue:text}`th_reduction_gap:.1e` (rounding), the official objective by {glue:text}`th_official_gap:.3f`.
#
# We minimise both objectives over the product of spheres with L-BFGS (each block's step scaled by its mass,
# finished by Newton steps) and call a solution converged when the Riemannian gradient per unit of block mass,
# $\max_k \lVert \operatorname{grad}_{h_k} L\rVert/\pi_k$, is below {glue:text}`th_tol:.0e`. The gradient on $h_1$
# is proportional to $\pi_1$, so an unscaled tolerance would accept an $h_1$ that has barely moved. We also rerun
# the official code's own solver (projected gradient descent, step $0.2\,(k+1)^{-0.1}$, 1000 steps, one start).
#
# {numref}`tab-th-convergence` summarises the solves.

# %% mystnb={"figure": {"name": "tab-th-convergence", "caption": "Convergence of the population solves.", "classes": "rharm-table", "caption_before": 1}}
sweep = theory.population_sweep(P.pi1_values, P.alphas, dim=P.pop_dim, tau=P.tau, restarts=P.restarts, seed=P.seed,
                                tol=P.tol)
official_gd = theory.population_sweep(P.pi1_values, P.alphas, solvers=("official_gd",), dim=P.pop_dim, tau=P.tau,
                                      restarts=1, seed=P.seed, tol=P.tol)
conv = report.convergence(sweep, official_gd, P.restarts)
tables.show(conv.convergence, caption="One row per objective: solves over every α, π1 and start; whether all met "
            "the tolerance; the worst gradient norm and the worst disagreement between starts.",
            rename={"worst_block_grad_norm": "worst gradient norm", "worst_restart_spread": "worst spread"},
            scientific=["worst_block_grad_norm", "worst_restart_spread"], digits=2)

# %% [markdown]
# Of {glue:text}`th_n_solves` solves (every $\alpha$, $\pi_1$, objective and start), {glue:text}`th_all_converged`
# converged; the worst gradient norm is {glue:text}`th_worst_grad:.1e` and random starts agree on every cosine to
# within {glue:text}`th_worst_spread:.1e`. The official solver stops short of that tolerance in
# {glue:text}`th_gd_unconverged` of its {glue:text}`th_gd_total` runs ({numref}`tab-th-official-solver`):

# %% mystnb={"figure": {"name": "tab-th-official-solver", "caption": "The official code's solver on the same grid.", "classes": "rharm-table", "caption_before": 1}}
tables.show(conv.gd_check, caption="One row per objective: the official solver's runs, how many met the tolerance, "
            "and its worst gradient norm.", rename={"worst_block_grad_norm": "worst gradient norm"}, digits=2,
            scientific=["worst_block_grad_norm"])

# %% [markdown]
# $\cos(h_1^\star, h_2^\star)$ by $\alpha$ (rows) and $\pi_1$ (columns), converged, for both objectives ({numref}`tab-th-cosines`; {numref}`fig-th-lines` draws them against the minority share):

# %% mystnb={"figure": {"name": "tab-th-cosines", "caption": "The converged cos(h1*, h2*) by α and minority share.", "classes": "rharm-table", "caption_before": 1}}
table = sweep.assign(alpha=sweep["alpha"].map("{:g}".format)).pivot_table(
    index=["objective", "alpha"], columns="pi1", values="cos12"
)
table.columns = [f"{p:.3g}" for p in table.columns]
tables.show(table, index="objective, α", caption="cos(h1*, h2*): one row per objective and α, one column per "
            "minority share π1.", digits=3, decimals={c: 3 for c in table.columns})

# %% mystnb={"figure": {"name": "fig-th-lines", "caption": "The converged cosines against the minority share, for both objectives."}}
charts.population_line_chart(sweep, pair="cos12") & charts.population_line_chart(sweep, pair="cos23")

# %% [markdown]
# What the official code's own solver (projected gradient descent as in `node2vec.py`, on the official objective)
# reaches on the same grid. `node2vec.py` draws such curves into a `cosine_plot.pdf` that is not committed to the
# official repository; the committed theory figure, `simulation/plots/cosine_th.pdf`, shows cosine heatmaps
# instead, and is compared with our solutions below.
#
# {numref}`fig-th-official` shows what it reaches; {numref}`fig-th-heatmaps` shows the converged cosine matrices at
# the smallest minority share.

# %% mystnb={"figure": {"name": "fig-th-official", "caption": "What the official code's solver reaches."}}
charts.population_line_chart(official_gd, pair="cos12", solver="official_gd")

# %% mystnb={"figure": {"name": "fig-th-heatmaps", "caption": "The converged cosine matrices at the smallest minority share."}}
charts.population_heatmap_charts(report.heatmaps(P))

# %% [markdown]
# ### Against the published heatmaps
#
# The official repository's `simulation/plots/cosine_th.pdf` (commit `b7b7aa3`) prints the cosine matrix of
# $h_1^\star, h_2^\star, h_3^\star$ at $\alpha = 0.4$ for $\pi_1 = 2^{-2}, 2^{-4}, 2^{-6}$, rounded to two decimals;
# we read its numbers from the PDF's text layer (`rharm.core.reference.theory_cosines`). The script that drew it is not
# in the repository, and the figure names neither its objective nor its solver, $d$ or $\tau$; so at the official
# code's $d = 20$ and $\tau = 1$ (whatever this page's profile) we solve each panel three ways and set every
# printed cosine beside them ({numref}`tab-th-published`; {numref}`tab-th-fit` and {numref}`fig-th-published` show how close each solution comes):

# %% mystnb={"figure": {"name": "tab-th-published", "caption": "The published cosines beside rharm's three solutions.", "classes": "rharm-table", "caption_before": 1}}
published = theory.published_comparison(dim=20, tau=1.0, restarts=P.restarts, seed=P.seed, tol=P.tol)
precision = float(reference.theory_info()["precision"])
pub = report.published(published, precision)
published_wide = published.pivot_table(index=["pi1", "pi1_label", "pair", "published"], columns="source",
                                       values="cosine", sort=False).reset_index()
tables.show(published_wide, caption="One row per panel of cosine_th.pdf (α = 0.4) and block pair: the printed "
            "cosine beside rharm's three solutions at the same α and π1 (d = 20, τ = 1).",
            decimals={"pi1": 4, "published": 2} | {label: 3 for label, _, _ in theory.PUBLISHED_SOURCES},
            rename={"pi1": "π1", "pi1_label": "π1 (as titled)"})

# %% mystnb={"figure": {"name": "tab-th-fit", "caption": "How closely each solution matches the print.", "classes": "rharm-table", "caption_before": 1}}
tables.show(pub.published_fit, caption="One row per rharm solution: its mean and largest absolute difference from the "
            "printed cosines, and in how many of the cells it rounds to the printed value (within ± 0.005).",
            rename={"mean_abs_difference": "mean |difference|", "max_abs_difference": "max |difference|",
                    "cells_within_print": "cells within print precision"}, digits=2)

# %% mystnb={"figure": {"name": "fig-th-published", "caption": "rharm minus the published cosines, per panel."}}
charts.published_comparison_chart(published, precision=precision)

# %% [markdown]
# The {glue:text}`th_pub_best_source` matches the published heatmaps best: it differs from the printed cosines by at
# most {glue:text}`th_pub_best_max:.4f` and rounds to the printed value in {glue:text}`th_pub_best_within` of the
# {glue:text}`th_pub_cells` cells (print precision ± {glue:text}`th_pub_precision:.3f`); the converged principled
# optimum differs by up to {glue:text}`th_pub_principled_max:.3f`. At π₁ = {glue:text}`th_pub_small_label` the
# printed $\cos(h_1^\star, h_2^\star) =$ {glue:text}`th_pub_small_printed:.2f` is where the official solver stops
# ({glue:text}`th_pub_small_gd:.3f`), not the converged optimum of the same objective
# ({glue:text}`th_pub_small_converged:.3f`, which would print as 1).

# %% [markdown]
# ## Node level against population level
#
# A node simulation with sizes $(n_1, m, m)$ corresponds to $\pi_1 = n_1/(n_1+2m)$. {numref}`tab-th-node-pop` sets the node-level
# mean cosines beside both population optima at that $\pi_1$.

# %% mystnb={"figure": {"name": "tab-th-node-pop", "caption": "Node level against population level.", "classes": "rharm-table", "caption_before": 1}}
comparison = theory.node_population_comparison(
    {n1: mean for n1, (mean, _) in node.items()}, P.alpha, P.majority_size, restarts=P.restarts, dim=P.pop_dim,
    tau=P.tau, seed=P.seed, tol=P.tol,
)
node_pop = report.node_population(comparison)
tables.show(node_pop.node_population, caption="One row per minority size n1 and block pair: the node simulation's "
            "mean cosine beside the two population optima at the same π1.",
            decimals={"node": 3, "principled": 3, "official": 3, "pi1": 4}, rename={"pi1": "π1"})

# %%
small = report.small_minority(P, report.small_minority_solves(P), sweep, official_gd, pub.figure_objective,
                              node_pop.closer)

# %% [markdown]
# Averaged over block pairs and minority sizes, the node simulation differs from the principled optimum by
# {glue:text}`th_gap_principled:.3f` and from the official one by {glue:text}`th_gap_official:.3f`: **the node
# simulation agrees with the {glue:text}`th_closer` objective**, as it should, since that objective is the node loss
# restricted to block-constant representations.
#
# At $\pi_1=$ {glue:text}`th_pi1_small:.4g` and $\alpha=$ {glue:text}`th_alpha_max:.2f`, the official solver
# reaches $\cos(h_1,h_2)=$ {glue:text}`th_gd_official:.3f` on the official objective, whose converged optimum is
# {glue:text}`th_opt_official:.3f`; on the principled objective the same solver stops at
# {glue:text}`th_gd_principled:.3f`, far from its optimum {glue:text}`th_opt_principled:.3f`. Full collapse
# ($\cos > 0.99$) there is reached by {glue:text}`th_collapsing`. Over the whole grid of $\alpha$ and $\pi_1$, the
# curve of the official solver lies on average {glue:text}`th_figure_gap_official:.3f` from the converged official
# optimum and {glue:text}`th_figure_gap_principled:.3f` from the converged principled one, and the published heatmaps
# match that solver: **the published figure shows the {glue:text}`th_figure_objective` objective**, which
# {glue:text}`th_node_objective_differs` the objective the node simulation agrees with.
#
# ## Where the minority goes as $\pi_1 \to 0$ (principled objective)
#
# Take $\pi = (\pi_1, \tfrac{1-\pi_1}{2}, \tfrac{1-\pi_1}{2})$ and expand $L$ in $\pi_1$.
#
# **Order 0.** Without block 1, blocks 2 and 3 are unconnected, equal halves:
# $L_0 = -\tfrac1\tau + \log\big(\tfrac12 e^{1/\tau} + \tfrac12 e^{\langle h_2,h_3\rangle/\tau}\big)$, minimised by
# $\langle h_2, h_3\rangle = -1$: the majority blocks become antipodal, $h_3^\star=-h_2^\star$.
#
# **Order 1.** $L = L_0 + \pi_1 F(h_1) + O(\pi_1^2)$ where $F$ collects every place $h_1$ appears: block 1's own
# positive term (its neighbours are in block 2, since $\pi_1 a \ll \alpha/2$), block 2's positive term (a
# fraction $\pi_1\alpha/w_2$ of block 2's neighbours are in block 1), block 1's own uniformity term, and block 1
# as a negative in the normalisers of blocks 2 and 3. With $t=\langle h_1,h_2\rangle$ and $h_3=-h_2$,
#
# $$F(t) = -\Big(1+\frac{\alpha}{a}\Big)\frac t\tau + \log\cosh\frac t\tau + \frac{\cosh(t/\tau)}{\cosh(1/\tau)},$$
#
# $$F'(t) = \frac1\tau\Big[\tanh\frac t\tau + \frac{\sinh(t/\tau)}{\cosh(1/\tau)}
#   - \Big(1+\frac\alpha a\Big)\Big].$$
#
# sympy derives the limit objective $F(t)$ from the principled objective itself (its derivative in $\pi_1$ at
# $\pi_1=0$ on this configuration), shown below; the stated $F'$ is then checked against the derivative of that
# $F$:

# %%
difference, F = theory.limit_symbolic_check()
F

# %% [markdown]
# (the difference between sympy's derivative and the stated $F'$ simplifies to {glue:text}`th_sympy_difference`.)
#
# $F'$ increases in $t$ and $F'(-1)<0$, so the limit $t^\star = \lim_{\pi_1\to0}\cos(h_1^\star,h_2^\star)$ is the
# root of $F'$ when $F'(1)>0$ and equals 1 otherwise:
#
# $$t^\star = 1 \iff 1+\frac{\alpha}{a} \ge 2\tanh\frac1\tau .$$
#
# - For $\alpha>0$ the pull towards block 2 has weight at least 1 however small $\pi_1$ is, while the pull towards
#   block 3 is zero; so $h_1$ leans to $h_2$, and $\cos(h_1^\star,h_3^\star) = -t^\star$ is negative: the
#   unconnected block is pushed away.
# - Full collapse needs the pull to beat the push from the majorities' negatives. At $\tau=$
#   {glue:text}`th_tau:.2f` this requires $\alpha \ge$ {glue:text}`th_alpha_threshold:.3f` (with $a=$
#   {glue:text}`th_within`); below it the minority stops at a finite angle from block 2. The shortcut "the
#   derivative in $\langle h_1,h_2\rangle$ is always negative" misses the last term of $F$, block 1 acting as a
#   negative for the majority blocks.
#
# {numref}`tab-th-limit` checks the limit against the solver at $\pi_1=10^{-6}$:

# %% mystnb={"figure": {"name": "tab-th-limit", "caption": "The limit against the solver.", "classes": "rharm-table", "caption_before": 1}}
limits = theory.limit_check(P.alphas, tau=P.tau, pi1=1e-6, dim=P.pop_dim, seed=P.seed)
lim = report.limit(P, limits, difference)
tables.show(limits, caption="One row per α: the limit t* from F′ beside the solved cosines at π1 = 1e-6 and their "
            "absolute difference.", decimals={c: 4 for c in ["limit_cos12", "cos12", "cos13", "cos23"]},
            scientific=["abs_diff"], digits=2)

# %% [markdown]
# The limit from $F'$ and the solved optimum agree to {glue:text}`th_limit_worst:.1e` for every $\alpha$. So under the
# principled objective the minority's representation moves towards the majority block it is connected to, and
# away from the block it is not connected to, monotonically as $\pi_1$ shrinks (see {numref}`fig-th-lines`); it merges
# with it completely only when the connection is strong enough (or the temperature high enough).

# %%
headline.publish(P, "th", sc, node_sec, red, conv, pub, node_pop, small, lim,
                 report.finding(P, lim, small, pub, node_pop))

# %%
rharm.page.provenance.block(P)
