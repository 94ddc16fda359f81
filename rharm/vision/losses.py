"""Contrastive losses as pure functions: NT-Xent as in the paper's official code (github.com/smaityumich/
CL-representation-harm, cifar/simclr/simclr.py) and SimSiam's loss (its cifar/simsiam code)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5, clamp: bool = False,
            weights: torch.Tensor | None = None) -> torch.Tensor:
    r"""NT-Xent (SimCLR) loss of two batches of views.

    Row i of ``z1`` and of ``z2`` (each (N, d)) are two views of image i. With u = z/||z|| for the 2N views,
    s_ab = <u_a, u_b>, and p(a) the other view of a's image,

    .. math:: \mathcal{L} = \frac{1}{2N}\sum_{a=1}^{2N} -\log
              \frac{\exp(s_{a,p(a)}/\tau)}{\sum_{b \ne a} \exp(s_{ab}/\tau)}

    (mean over all 2N anchors, self-similarity excluded). With ``weights`` (N,) >= 0, both anchors of image i count
    w_i times: the weighted mean :math:`\sum_a w_a \ell_a / \sum_a w_a` (re-weighting, :mod:`rharm.vision.mitigation`).

    Args:
        temperature: tau > 0 (the paper uses 0.5).
        clamp: reproduce the official code's quirk (inherited from p3i0t/SimCLR-CIFAR10; cifar/simclr/simclr.py): every
            similarity is clamped to at least 1e-7 before dividing by tau, so negative cosines count as ~0.
    Returns: scalar tensor.
    """
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must both be (N, d) with the same shape; got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature={temperature!r} is not valid; it must be > 0")
    n = z1.shape[0]
    u = F.normalize(torch.cat([z1, z2], dim=0).float(), dim=1)
    sim = u @ u.t()
    if clamp:
        sim = sim.clamp(min=1e-7)
    logits = sim / temperature
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=u.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(u.device)
    if weights is None:
        return F.cross_entropy(logits, targets)
    w = torch.as_tensor(weights, dtype=torch.float32, device=u.device)
    if w.shape != (n,):  # values are not checked here: that would synchronise the device every step
        raise ValueError(f"weights must have shape ({n},), one per image; got {tuple(w.shape)}")
    w2 = torch.cat([w, w])
    return (F.cross_entropy(logits, targets, reduction="none") * w2).sum() / w2.sum()


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """D(p, z) = -mean_i <p_i/||p_i||, z_i/||z_i||> with a stop-gradient on z. (N, d), (N, d) -> scalar."""
    return -F.cosine_similarity(p.float(), z.detach().float(), dim=1).mean()


def simsiam_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    r"""Symmetric SimSiam loss :math:`\tfrac12 D(p_1, \mathrm{sg}(z_2)) + \tfrac12 D(p_2, \mathrm{sg}(z_1))`.

    p1, p2: predictor outputs of the two views (N, d); z1, z2: projector outputs (N, d). Minimum -1.
    """
    if not (p1.shape == p2.shape == z1.shape == z2.shape) or p1.ndim != 2:
        raise ValueError(f"p1, p2, z1, z2 must all be (N, d) with one shape; got "
                         f"{[tuple(t.shape) for t in (p1, p2, z1, z2)]}")
    return 0.5 * negative_cosine(p1, z2) + 0.5 * negative_cosine(p2, z1)
