"""Mitigations of representation harm, as pieces of the one training loop (:func:`rharm.vision.train.train`).

Each is switched on by a :class:`rharm.vision.train.TrainConfig` field whose default leaves training unchanged:

* **known-group re-balancing** (``rebalance``): every minority image appears :func:`rebalance_factor` times per
  epoch, so that batches see the minority at the rate of an average other class (the practitioner knows which group
  is rare). The epoch grows by the copies; at ratio 100 with equal pools it has as many images as the balanced one.
* **re-weighted loss** (``minority_weight``): the minority's anchors count ``minority_weight`` times in NT-Xent
  (:func:`rharm.vision.losses.nt_xent` ``weights``; weighted mean over anchors).
* **SDCLR** (``sdclr_prune``): Jiang, Chen, Mortazavi & Wang, "Self-Damaging Contrastive Learning", ICML 2021
  (arXiv 2106.02990), implemented from the paper's description. The second view of every image is encoded by a
  magnitude-pruned copy of the network that shares the dense network's weights; NT-Xent contrasts the dense and the
  pruned branch, so samples the pruned network "forgets" (in the paper's account, rare ones) get a larger loss and
  gradient. Deviations from the paper, stated: the masks prune each convolution and linear weight of the backbone
  except the first convolution, layer-wise by magnitude (:func:`prune_masks`), and leave the projection head dense;
  the masks are recomputed from the current weights at the start of every epoch (not restored from a checkpoint: a
  run resumed mid-epoch recomputes them from the resumed weights); the pruned branch normalises with its own batch
  statistics and does not update the dense network's BatchNorm running statistics (it reuses the affine
  parameters). The loss is the standard symmetric NT-Xent over the 2N views of the two branches.
"""

from __future__ import annotations

import torch
from torch import nn


def check_groups(groups: torch.Tensor, n: int) -> torch.Tensor:
    g = torch.as_tensor(groups)
    if g.dtype != torch.bool or g.shape != (n,):
        raise ValueError(f"groups must be a bool tensor of shape ({n},) (True = a minority image); got "
                         f"{g.dtype} {tuple(g.shape)}")
    return g


def rebalance_factor(groups: torch.Tensor, labels: torch.Tensor) -> int:
    """How many times each minority image appears per epoch under re-balancing.

    groups: bool (N,), True for a minority image; labels: (N,) class ids. The factor is the mean size of the other
    classes over the minority's size, rounded (at least 1): 500 / 5 = 100 at ratio 100 with pools of 500. 1 when
    there is no minority image (the balanced model: re-balancing changes nothing).
    """
    labels = torch.as_tensor(labels)
    groups = check_groups(groups, len(labels))
    n_min = int(groups.sum())
    if n_min == 0:
        return 1
    others = labels[~groups]
    if len(others) == 0:
        return 1
    mean_other = len(others) / int(torch.unique(others).numel())
    return max(1, int(round(mean_other / n_min)))


def rebalanced_samples(ids: torch.Tensor, groups: torch.Tensor, labels: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """The samples of one re-balanced epoch: ``(positions (M,), virtual_ids (M,))``.

    ids: (N,) distinct sample ids of the training images; positions index the images (0..N-1), each minority image
    repeated :func:`rebalance_factor` times; virtual_ids name each copy (copy c of id i is ``i + c * (max id + 1)``,
    c = 0 for the original), so :func:`rharm.vision.train.epoch_order` shuffles copies independently and the
    originals keep
    their ids (and their relative order with the un-re-balanced run of the same seed: common random numbers).
    """
    ids = torch.as_tensor(ids, dtype=torch.int64)
    k = rebalance_factor(groups, labels)
    pos = torch.arange(len(ids))
    if k == 1:
        return pos, ids
    minority_pos = pos[groups]
    span = int(ids.max()) + 1
    extra_pos = minority_pos.repeat(k - 1)
    extra_ids = torch.cat([ids[minority_pos] + c * span for c in range(1, k)])
    return torch.cat([pos, extra_pos]), torch.cat([ids, extra_ids])


def anchor_weights(groups: torch.Tensor, minority_weight: float) -> torch.Tensor:
    """(N,) float weights of a batch's images: ``minority_weight`` for a minority image, 1 otherwise."""
    g = torch.as_tensor(groups, dtype=torch.bool)
    return torch.where(g, torch.tensor(float(minority_weight)), torch.tensor(1.0))


def prunable(model: nn.Module) -> list[str]:
    """Names of the backbone weights SDCLR prunes: every conv / linear weight except the first convolution."""
    names = []
    for name, mod in model.backbone.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            names.append(f"backbone.{name}.weight" if name else "backbone.weight")
    return names[1:]


@torch.no_grad()
def prune_masks(model: nn.Module, ratio: float) -> dict[str, torch.Tensor]:
    """Layer-wise magnitude pruning: for each :func:`prunable` weight, a bool mask (same shape) that keeps all but
    the ``ratio`` fraction of its entries with the smallest absolute value (ties broken by position)."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"ratio={ratio!r} is not valid; the pruned fraction must be in [0, 1)")
    params = dict(model.named_parameters())
    masks = {}
    for name in prunable(model):
        w = params[name].detach().abs().flatten().float()
        n_prune = int(ratio * w.numel())
        keep = torch.ones(w.numel(), dtype=torch.bool, device=w.device)
        if n_prune:
            keep[torch.argsort(w, stable=True)[:n_prune]] = False
        masks[name] = keep.view_as(params[name])
    return masks


def pruned_forward(model: nn.Module, x: torch.Tensor, masks: dict[str, torch.Tensor]
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``model(x)`` through the pruned network: every masked weight multiplied by its mask (gradients reach the
    surviving entries of the shared dense weights), BatchNorm running statistics in throw-away copies."""
    from torch.func import functional_call

    params = {n: (p * masks[n] if n in masks else p) for n, p in model.named_parameters()}
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    return functional_call(model, {**params, **buffers}, (x,))
