"""Backbones and heads for contrastive learning on 32x32 images, as in the paper's official code
(github.com/smaityumich/CL-representation-harm: cifar/simclr for SimCLR, cifar/simsiam for SimSiam).

* :func:`build_backbone` - torchvision ResNet-18/34 adapted to CIFAR the way the official code does it (3x3 stride-1
  ``conv1`` without bias, ``maxpool`` and ``fc`` replaced by identities; 512-d output), or ``small_cnn``, a fast
  four-block CNN chosen for the CPU profile by the throughput measurements in ``notebooks/scale_study.py``.
* :class:`ProjectionHead` - SimCLR's Linear-ReLU-Linear head (512 -> 2048 -> 128 in the paper).
* :class:`SimSiamProjector` / :class:`SimSiamPredictor` - SimSiam's 2-layer BN projector and 2048 -> 512 -> 2048
  predictor (the official cifar/simsiam code).
* :class:`ContrastiveModel` - backbone + head(s), the single module that training saves and restores.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from rharm.core.common import check_choice as _check_choice
from rharm.core.schema import SPECS as _SPECS

BACKBONES = _SPECS["backbone"].choices
INITS = _SPECS["init"].choices
METHODS = _SPECS["method"].choices

#: Channel widths of the four blocks of ``small_cnn``; the last one is its ``out_dim``.
SMALL_CNN_WIDTHS = (16, 32, 64, 128)


class SmallCNN(nn.Module):
    """Four conv3x3-BN-ReLU blocks, 2x2 max-pooling after the first three, global average pooling.

    Input (N, 3, 32, 32) float -> output (N, ``widths[-1]``). About 0.1M parameters with the default widths (out_dim 128).
    """

    def __init__(self, widths: tuple[int, ...] = SMALL_CNN_WIDTHS):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for k, c_out in enumerate(widths):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            if k < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            c_in = c_out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.net = nn.Sequential(*layers)
        self.out_dim = int(widths[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


#: Environment variable naming a local torchvision ImageNet weights file, or a folder that holds it.
IMAGENET_WEIGHTS_ENV = "RHARM_IMAGENET_WEIGHTS"
#: torchvision's IMAGENET1K_V1 file names (the last part of each weights URL, which torchvision caches under
#: ``$TORCH_HOME/hub/checkpoints``); source: torchvision.models.ResNet18_Weights / ResNet34_Weights.
IMAGENET_FILES = {"resnet18": "resnet18-f37072fd.pth", "resnet34": "resnet34-b627a593.pth"}


def imagenet_weights_file(name: str, weights_path: str | os.PathLike | None = None) -> Path:
    """The local ImageNet weights file of backbone ``name``; nothing is downloaded.

    Looked up in this order: ``weights_path`` (a file, or a folder holding :data:`IMAGENET_FILES` [name]); the
    environment variable :data:`IMAGENET_WEIGHTS_ENV` (file or folder); torch's hub cache
    ``$TORCH_HOME/hub/checkpoints/`` (where an earlier online torchvision call left it). Raises FileNotFoundError
    naming every place looked at and the file to put there.
    """
    _check_choice("backbone", name, tuple(IMAGENET_FILES))
    fname = IMAGENET_FILES[name]
    candidates: list[Path] = []
    for given in (weights_path, os.environ.get(IMAGENET_WEIGHTS_ENV) or None):
        if given is not None:
            p = Path(given).expanduser()
            candidates.append(p / fname if p.is_dir() else p)
    candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / fname)
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(
        f"init='imagenet' needs torchvision's ImageNet weights for {name} ({fname}) as a local file; none found at "
        f"{[str(c) for c in candidates]}. Put the file (torchvision IMAGENET1K_V1, downloadable from "
        f"https://download.pytorch.org/models/{fname}) in one of those places, or set {IMAGENET_WEIGHTS_ENV}=<file "
        "or folder>, or use init='random' (the gpu profile's default).")


def _cifar_resnet(name: str, init: str, weights_path: str | os.PathLike | None = None) -> nn.Module:
    import torchvision

    ctor = {"resnet18": torchvision.models.resnet18, "resnet34": torchvision.models.resnet34}[name]
    net = ctor(weights=None)
    if init == "imagenet":
        # read from a local file only: a run-time download fails on offline GPU machines (and would be a hidden
        # network dependency); weights_only=True, since the file comes from outside this repository
        path = imagenet_weights_file(name, weights_path)
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            net.load_state_dict(state)
        except (RuntimeError, KeyError) as exc:
            raise ValueError(f"{path} is not a torchvision {name} state dict ({exc})") from exc
    # CIFAR adaptation, as in the official code (cifar/simclr/models.py): the ImageNet stem would shrink 32x32 inputs
    # to 8x8.
    # The replaced conv1 is freshly initialised even with ImageNet weights.
    net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    net.out_dim = 512
    return net


def build_backbone(name: str, *, init: str = "random", weights_path: str | os.PathLike | None = None) -> nn.Module:
    """Build a feature extractor for (N, 3, 32, 32) float images in [0, 1] -> (N, ``out_dim``).

    Args:
        name: "resnet18" | "resnet34" (out_dim 512) | "small_cnn" (out_dim 128).
        init: "random" or "imagenet" (torchvision IMAGENET1K_V1 weights for every layer except the replaced conv1;
            the official SimCLR code does this for ResNet-34, cifar/simclr/models.py). The weights are read from a
            local file (:func:`imagenet_weights_file`), never downloaded. Not available for "small_cnn".
        weights_path: the ImageNet weights file or its folder (default: ``$RHARM_IMAGENET_WEIGHTS``, then torch's
            hub cache).
    """
    _check_choice("backbone", name, BACKBONES)
    _check_choice("init", init, INITS)
    if name == "small_cnn":
        if init != "random":
            raise ValueError(f"init={init!r} is not valid for backbone='small_cnn'; choose one of ['random']")
        return SmallCNN()
    return _cifar_resnet(name, init, weights_path)


class ProjectionHead(nn.Module):
    """SimCLR projection g(h) = W2 ReLU(W1 h): (N, in_dim) -> (N, out). Paper: 512 -> 2048 -> 128."""

    def __init__(self, in_dim: int, hidden: int = 2048, out: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))
        self.out_dim = out

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class SimSiamProjector(nn.Module):
    """SimSiam 2-layer projector: Linear-BN-ReLU-Linear-BN(affine=False), (N, in_dim) -> (N, dim). Paper: dim 2048."""

    def __init__(self, in_dim: int, dim: int = 2048):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, dim, bias=False), nn.BatchNorm1d(dim), nn.ReLU(inplace=True),
            nn.Linear(dim, dim, bias=False), nn.BatchNorm1d(dim, affine=False),
        )
        self.out_dim = dim

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class SimSiamPredictor(nn.Module):
    """SimSiam predictor: Linear-BN-ReLU-Linear, (N, dim) -> (N, dim) through a bottleneck. Paper: 2048 -> 512 -> 2048."""

    def __init__(self, dim: int = 2048, hidden: int = 512):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class ContrastiveModel(nn.Module):
    """Backbone f plus projection g (and, for SimSiam, predictor q).

    ``forward(x)`` returns ``(h, z)`` with h = f(x) (N, out_dim) and z = g(h) (N, proj_dim); ``predict(z)`` applies
    the SimSiam predictor.
    """

    def __init__(self, method: str, backbone: str, *, init: str = "random", proj_hidden: int = 2048,
                 proj_dim: int = 128, simsiam_dim: int = 2048, pred_hidden: int = 512):
        super().__init__()
        _check_choice("method", method, METHODS)
        self.method = method
        self.backbone = build_backbone(backbone, init=init)
        d = self.backbone.out_dim
        if method == "simclr":
            self.projector = ProjectionHead(d, proj_hidden, proj_dim)
            self.predictor = None
        else:
            self.projector = SimSiamProjector(d, simsiam_dim)
            self.predictor = SimSiamPredictor(simsiam_dim, pred_hidden)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.backbone(x)
        return h, self.projector(h)

    def predict(self, z: torch.Tensor) -> torch.Tensor:
        if self.predictor is None:
            raise RuntimeError("predict() exists only for method='simsiam'")
        return self.predictor(z)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def forward_macs(module: nn.Module, input_shape: tuple[int, ...] = (1, 3, 32, 32)) -> int:
    """Multiply-accumulates of one forward pass per sample, counting Conv2d and Linear layers (the rest - BN, ReLU,
    pooling, additions - is under 1% for these networks). Measured by running the module once on zeros of
    ``input_shape`` (N, C, H, W) on the CPU with forward hooks; the result is divided by N."""
    total = 0

    def hook(mod, inputs, output):
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
            total += output.numel() * k
        elif isinstance(mod, nn.Linear):
            total += output.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(torch.zeros(input_shape))
    finally:
        module.train(was_training)
        for h in handles:
            h.remove()
    return int(total // input_shape[0])


def training_flops_per_view(backbone: str, method: str = "simclr") -> float:
    """FLOP of one training image-view (forward + backward) of ``ContrastiveModel(method, backbone)`` at 32x32.

    2 FLOP per multiply-accumulate; backward ~ 2x forward (gradients for inputs and for weights), so 6 x MACs -
    the usual estimate (Kaplan et al. 2020, arXiv 2001.08361). CIFAR ResNet-18: ~3.3 GFLOP, ResNet-34: ~7.0 GFLOP.
    """
    model = ContrastiveModel(method, backbone)
    return 6.0 * forward_macs(model)
