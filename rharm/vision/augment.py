"""SimCLR/SimSiam augmentation on batched tensors, with independent random parameters per image and per view.

The paper's official code (github.com/smaityumich/CL-representation-harm: cifar/simclr/simclr.py for SimCLR,
cifar/simsiam/main.py for SimSiam) augments one PIL image at a time in DataLoader workers:
RandomResizedCrop -> RandomHorizontalFlip -> RandomApply(ColorJitter, p) -> RandomGrayscale -> ToTensor
(-> Normalize for SimSiam). Calling torchvision's transforms once on a batched tensor would draw ONE set of random
parameters for the whole batch, which is not SimCLR's augmentation. Here the augmentation is declared as data
(:class:`AugmentSpec`), the parameters of every image are drawn at once (:func:`sample_params`, same distributions
as torchvision's per-image draws) and applied to the whole batch on its device (:func:`apply_params`):

* crop + resize: one bilinear ``grid_sample`` with a per-image sampling grid (horizontal flip folded into it),
  sampling exactly where ``resize`` of the integer crop box would (half-pixel centres, clamped to the box);
* colour jitter: brightness, contrast, saturation, hue in a per-image random order, like ColorJitter;
* random grayscale, then optional normalisation.

Differences from the PIL path: pixel values stay float between operations (PIL rounds to uint8 after each one),
and resizing does not antialias (irrelevant for 32x32 CIFAR crops, which are only ever enlarged).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

#: Grayscale weights of ITU-R 601-2 luma, as used by PIL's "L" conversion and torchvision.
_LUMA = (0.2989, 0.587, 0.114)
#: Colour-jitter operations, in the index order torchvision's ColorJitter permutes.
JITTER_OPS = ("brightness", "contrast", "saturation", "hue")
_CROP_ATTEMPTS = 10


def _pair(name: str, value, lo: float, hi: float, *, strict_lo: bool = False) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not valid; it must be a pair (low, high)") from None
    ok_lo = a > lo if strict_lo else a >= lo
    if not (ok_lo and a <= b <= hi and math.isfinite(a) and math.isfinite(b)):
        bracket = "(" if strict_lo else "["
        raise ValueError(f"{name}={value!r} is not valid; it needs low <= high, both in {bracket}{lo}, {hi}]")
    return a, b


def _prob(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name}={value!r} is not valid; it must be a probability in [0, 1]")
    return float(value)


@dataclass(frozen=True)
class AugmentSpec:
    """An augmentation pipeline declared as data (validated on construction; lists are accepted for tuples).

    Attributes:
        size: output side length (square).
        crop_scale: RandomResizedCrop area fraction range, in (0, 1].
        crop_ratio: RandomResizedCrop aspect-ratio (width / height) range, > 0.
        flip_p: probability of a horizontal flip.
        jitter: ColorJitter strengths (brightness, contrast, saturation, hue); factors are drawn uniformly from
            [max(0, 1 - s), 1 + s] for the first three and [-hue, hue] for hue (hue <= 0.5). 0 turns one off.
        jitter_p: probability that colour jitter is applied at all (RandomApply).
        gray_p: probability of RandomGrayscale.
        mean, std: per-channel normalisation applied last, or both None for none.
    """

    size: int = 32
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    gray_p: float = 0.2
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"size={self.size!r} is not valid; it must be an integer >= 1")
        set_("crop_scale", _pair("crop_scale", self.crop_scale, 0.0, 1.0, strict_lo=True))
        set_("crop_ratio", _pair("crop_ratio", self.crop_ratio, 0.0, math.inf, strict_lo=True))
        set_("flip_p", _prob("flip_p", self.flip_p))
        set_("jitter_p", _prob("jitter_p", self.jitter_p))
        set_("gray_p", _prob("gray_p", self.gray_p))
        try:
            jitter = tuple(float(v) for v in self.jitter)
        except (TypeError, ValueError):
            jitter = ()
        if len(jitter) != 4 or min(jitter) < 0 or jitter[3] > 0.5 or not all(map(math.isfinite, jitter)):
            raise ValueError(f"jitter={self.jitter!r} is not valid; it must be 4 numbers (brightness, contrast, "
                             "saturation, hue), each >= 0, hue <= 0.5")
        set_("jitter", jitter)
        if (self.mean is None) != (self.std is None):
            raise ValueError(f"mean={self.mean!r}, std={self.std!r} are not valid; give both or neither")
        if self.mean is not None:
            try:
                mean, std = tuple(float(v) for v in self.mean), tuple(float(v) for v in self.std)
            except (TypeError, ValueError):
                mean, std = (), ()
            if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
                raise ValueError(f"mean={self.mean!r}, std={self.std!r} are not valid; each must be 3 numbers "
                                 "(one per RGB channel), std > 0")
            set_("mean", mean)
            set_("std", std)

    def to_dict(self) -> dict:
        """Plain JSON-serialisable form (lists), e.g. for a :func:`rharm.store.cached` config."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


#: SimCLR's augmentation in the paper's official code (cifar/simclr/simclr.py): no normalisation.
SIMCLR = AugmentSpec()
#: SimSiam's augmentation in the paper's official code (cifar/simsiam/main.py): crop scale from 0.2, CIFAR
#: normalisation.
SIMSIAM = AugmentSpec(crop_scale=(0.2, 1.0), mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010))
#: SimCLR's augmentation for greyscale images (Fashion-MNIST, stored as three equal channels): the same crop, flip and
#: brightness/contrast jitter as :data:`SIMCLR`, without the colour-only steps (saturation, hue, random grayscale),
#: which are identities on grey images anyway; keeping them out keeps the random draws meaningful.
SIMCLR_GREY = AugmentSpec(jitter=(0.4, 0.4, 0.0, 0.0), gray_p=0.0)
#: Every named augmentation (the ``augment`` training setting).
SPECS = {"simclr": SIMCLR, "simsiam": SIMSIAM, "simclr_grey": SIMCLR_GREY}


def _rand(n: int, generator: torch.Generator | None, device, *shape: int) -> torch.Tensor:
    return torch.rand((n, *shape), generator=generator, device=device)


def _uniform(u: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * u


def sample_params(n: int, spec: AugmentSpec, generator: torch.Generator | None = None,
                  device: torch.device | str | None = None, *, image_size: Sequence[int] = (32, 32)) -> dict:
    """Draw independent augmentation parameters for ``n`` images of ``image_size`` = (height, width).

    The crop follows torchvision's ``RandomResizedCrop.get_params`` for every image: up to 10 attempts with
    area ~ U(scale) * H * W and log aspect ratio ~ U(log ratio), w = round(sqrt(area * ratio)),
    h = round(sqrt(area / ratio)); the first attempt with 0 < w <= W and 0 < h <= H wins and its top-left corner is
    uniform over the valid positions; if none fits, the central crop clamped to the ratio range.

    Returns a dict of tensors on ``device`` (draws come from ``generator``, which must live on that device):
        ``crop`` int64 (n, 4): top, left, height, width;  ``flip`` bool (n,);
        ``jitter`` bool (n,): colour jitter applied;  ``jitter_order`` int64 (n, 4): a permutation of
        :data:`JITTER_OPS` indices per image;  ``brightness``, ``contrast``, ``saturation``, ``hue`` float32 (n,);
        ``gray`` bool (n,).
    """
    if not isinstance(spec, AugmentSpec):
        raise ValueError(f"spec={spec!r} is not valid; it must be an AugmentSpec (e.g. rharm.vision.augment.SIMCLR)")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n={n!r} is not valid; it must be an integer >= 0")
    height, width = (int(v) for v in image_size)
    if height < 1 or width < 1:
        raise ValueError(f"image_size={tuple(image_size)!r} is not valid; both sides must be >= 1")
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    device = torch.device(device)

    # --- crop (vectorised RandomResizedCrop.get_params) ---
    area = float(height * width)
    log_lo, log_hi = math.log(spec.crop_ratio[0]), math.log(spec.crop_ratio[1])
    target_area = area * _uniform(_rand(n, generator, device, _CROP_ATTEMPTS), *spec.crop_scale)
    aspect = torch.exp(_uniform(_rand(n, generator, device, _CROP_ATTEMPTS), log_lo, log_hi))
    w_try = torch.round(torch.sqrt(target_area * aspect)).long()  # round half to even, like Python's round
    h_try = torch.round(torch.sqrt(target_area / aspect)).long()
    fits = (w_try > 0) & (w_try <= width) & (h_try > 0) & (h_try <= height)
    first = fits.long().argmax(dim=1, keepdim=True)  # index of the first fitting attempt (0 if none fits)
    any_fit = fits.any(dim=1)
    w = w_try.gather(1, first).squeeze(1)
    h = h_try.gather(1, first).squeeze(1)
    # Fallback: the central crop with the aspect ratio clamped into crop_ratio.
    in_ratio = width / height
    if in_ratio < spec.crop_ratio[0]:
        fw, fh = width, int(round(width / spec.crop_ratio[0]))
    elif in_ratio > spec.crop_ratio[1]:
        fw, fh = int(round(height * spec.crop_ratio[1])), height
    else:
        fw, fh = width, height
    w = torch.where(any_fit, w, torch.full_like(w, fw))
    h = torch.where(any_fit, h, torch.full_like(h, fh))
    u_pos = _rand(n, generator, device, 2)
    top = torch.minimum((u_pos[:, 0] * (height - h + 1)).floor().long(), height - h)
    left = torch.minimum((u_pos[:, 1] * (width - w + 1)).floor().long(), width - w)
    top = torch.where(any_fit, top, torch.full_like(top, 0) + (height - fh) // 2)
    left = torch.where(any_fit, left, torch.full_like(left, 0) + (width - fw) // 2)

    # --- flip, colour jitter, grayscale ---
    flip = _rand(n, generator, device) < spec.flip_p
    jitter = _rand(n, generator, device) < spec.jitter_p
    order = torch.argsort(_rand(n, generator, device, 4), dim=1)  # a uniform random permutation per image
    u_jit = _rand(n, generator, device, 4)
    b, c, s, hue = spec.jitter
    params = {
        "crop": torch.stack([top, left, h, w], dim=1),
        "flip": flip,
        "jitter": jitter,
        "jitter_order": order,
        "brightness": _uniform(u_jit[:, 0], max(0.0, 1 - b), 1 + b),
        "contrast": _uniform(u_jit[:, 1], max(0.0, 1 - c), 1 + c),
        "saturation": _uniform(u_jit[:, 2], max(0.0, 1 - s), 1 + s),
        "hue": _uniform(u_jit[:, 3], -hue, hue),
        "gray": _rand(n, generator, device) < spec.gray_p,
    }
    return params


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W) luma."""
    return _LUMA[0] * x[:, 0:1] + _LUMA[1] * x[:, 1:2] + _LUMA[2] * x[:, 2:3]


def _per_image(f: torch.Tensor) -> torch.Tensor:
    return f.to(torch.float32).view(-1, 1, 1, 1)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """x (N, 3, H, W) in [0, 1], factor (N,): clamp(factor * x, 0, 1)."""
    return (x * _per_image(factor)).clamp_(0.0, 1.0)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend each image with the mean of its grayscale version: clamp(f x + (1 - f) mean, 0, 1)."""
    f = _per_image(factor)
    mean = _grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    return (f * x + (1 - f) * mean).clamp_(0.0, 1.0)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend each image with its grayscale version: clamp(f x + (1 - f) gray, 0, 1)."""
    f = _per_image(factor)
    return (f * x + (1 - f) * _grayscale(x)).clamp_(0.0, 1.0)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> HSV, each channel in [0, 1] (hue as a fraction of a turn; 0 for grays).

    h = ((g - b) / d, (b - r) / d + 2, (r - g) / d + 4) / 6 mod 1 when the largest channel is r, g, b (ties in that
    order), with d = max - min; s = d / max; v = max.
    """
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    maxc = torch.maximum(torch.maximum(r, g), b)  # elementwise: much faster than a reduction over dim 1
    minc = torch.minimum(torch.minimum(r, g), b)
    delta = maxc - minc
    inv = torch.where(delta > 0, 1.0 / delta.clamp(min=1e-12), 0.0)  # grays: every sector formula gives 0 below
    h = torch.where(r == maxc, (g - b) * inv,
                    torch.where(g == maxc, (b - r) * inv + 2.0, (r - g) * inv + 4.0))
    h = torch.where(delta > 0, h, 0.0).div_(6.0).remainder_(1.0)
    s = delta / maxc.clamp(min=1e-12)
    return torch.stack([h, s, maxc], dim=1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) HSV in [0, 1] -> RGB: channel c = v - v s clamp(min(k, 4 - k), 0, 1), k = (n_c + 6 h) mod 6,
    with n = 5, 3, 1 for R, G, B."""
    h, s, v = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    n = torch.tensor([5.0, 3.0, 1.0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    k = (n + 6 * h) % 6
    return v - v * s * torch.minimum(k, 4 - k).clamp(0.0, 1.0)


def adjust_hue(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Rotate hue by ``factor`` (N,) in [-0.5, 0.5] turns, through HSV."""
    hsv = rgb_to_hsv(x)
    hsv[:, 0] = (hsv[:, 0] + factor.to(x.dtype).view(-1, 1, 1)) % 1.0
    return hsv_to_rgb(hsv)


_JITTER_FUNCS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def _crop_grid(crop: torch.Tensor, flip: torch.Tensor, size: int, height: int, width: int) -> torch.Tensor:
    """Sampling grid (N, size, size, 2) for grid_sample(align_corners=False) that reproduces bilinear ``resize``
    of each integer crop box (half-pixel centres, source clamped to the box), mirrored where ``flip``."""
    top, left, h, w = (crop[:, k].to(torch.float32).unsqueeze(1) for k in range(4))
    o = torch.arange(size, device=crop.device, dtype=torch.float32).unsqueeze(0) + 0.5  # output pixel centres
    ys = torch.minimum((o * h / size - 0.5).clamp(min=0.0), h - 1) + top  # source rows, (N, size)
    xs = torch.minimum((o * w / size - 0.5).clamp(min=0.0), w - 1) + left
    xs = torch.where(flip.unsqueeze(1), xs.flip(1), xs)
    gx = (2 * xs + 1) / width - 1  # pixel coordinate -> [-1, 1] with align_corners=False
    gy = (2 * ys + 1) / height - 1
    n = crop.shape[0]
    return torch.stack([gx.unsqueeze(1).expand(n, size, size), gy.unsqueeze(2).expand(n, size, size)], dim=-1)


def apply_params(images: torch.Tensor, params: dict, spec: AugmentSpec) -> torch.Tensor:
    """Apply drawn parameters (from :func:`sample_params`) to a batch.

    Args:
        images: (N, 3, H, W), uint8 (0-255) or float (0-1), on any device.
        params: as returned by ``sample_params(N, spec, image_size=(H, W))``, on the same device.
        spec: the pipeline (output size, which jitter operations are on, normalisation).

    Returns:
        float32 (N, 3, size, size): in [0, 1], or normalised (x - mean) / std when ``spec.mean`` is set.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images has shape {tuple(images.shape)}; expected (N, 3, H, W)")
    return _apply(images, params, spec)


def _apply(images: torch.Tensor, params: dict, spec: AugmentSpec) -> torch.Tensor:
    x = images.to(torch.float32)
    if images.dtype == torch.uint8:
        x = x / 255.0
    n, _, height, width = x.shape
    if n == 0:
        return x.new_zeros((0, 3, spec.size, spec.size))
    grid = _crop_grid(params["crop"], params["flip"], spec.size, height, width)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    # Operations with strength 0 are skipped, as ColorJitter skips them.
    active = tuple(spec.jitter[i] > 0 for i in range(4))
    if any(active):
        jitter = _jitter_indexed if x.device.type == "cpu" else _jitter_masked
        x = jitter(x, params, active)

    gray = params["gray"].view(-1, 1, 1, 1)
    x = torch.where(gray, _grayscale(x).expand_as(x), x)
    if spec.mean is not None:
        mean = torch.tensor(spec.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(spec.std, device=x.device).view(1, 3, 1, 1)
        x = (x - mean) / std
    return x


def _jitter_indexed(x: torch.Tensor, params: dict, active: tuple[bool, ...]) -> torch.Tensor:
    """Colour jitter: step k applies, to every jittered image, the operation at position k of its own order.
    Gathers the images each operation applies to, so every image goes through at most four operations (CPU)."""
    order, on = params["jitter_order"], params["jitter"]
    for k in range(4):
        for op in range(4):
            if active[op]:
                idx = torch.nonzero(on & (order[:, k] == op)).squeeze(1)
                if idx.numel():
                    x[idx] = _JITTER_FUNCS[op](x[idx], params[JITTER_OPS[op]][idx])
    return x


def _jitter_masked(x: torch.Tensor, params: dict, active: tuple[bool, ...]) -> torch.Tensor:
    """Same result as :func:`_jitter_indexed`, computing every operation on the whole batch and selecting per image:
    4x the arithmetic but no host-device synchronisation (GPU)."""
    order, on = params["jitter_order"], params["jitter"]
    for k in range(4):
        for op in range(4):
            if active[op]:
                use = (on & (order[:, k] == op)).view(-1, 1, 1, 1)
                x = torch.where(use, _JITTER_FUNCS[op](x, params[JITTER_OPS[op]]), x)
    return x


def augment_batch(images: torch.Tensor, spec: AugmentSpec = SIMCLR,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """One augmented view of every image, each with its own random parameters.

    Args:
        images: (N, 3, H, W) uint8 or float in [0, 1], on the training device.
        spec: the augmentation (:data:`SIMCLR`, :data:`SIMSIAM` or any :class:`AugmentSpec`).
        generator: a ``torch.Generator`` on ``images.device`` (None: torch's global generator). The output is a
            deterministic function of the images and the generator's state; two calls give two independent views.

    Returns:
        float32 (N, 3, spec.size, spec.size) on ``images.device``.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images={shape} is not valid; expected a tensor (N, 3, H, W)")
    if generator is not None and generator.device.type != images.device.type:
        raise ValueError(f"generator on {generator.device} is not valid for images on {images.device}; "
                         "create it with torch.Generator(device=images.device)")
    params = sample_params(images.shape[0], spec, generator, images.device, image_size=images.shape[-2:])
    return apply_params(images, params, spec)


def torchvision_reference(spec: AugmentSpec = SIMCLR):
    """The same augmentation as a per-image torchvision pipeline on PIL images, as the paper's code builds it:
    RandomResizedCrop -> RandomHorizontalFlip -> RandomApply([ColorJitter], p) -> RandomGrayscale -> ToTensor
    (-> Normalize). For tests and for the throughput baseline; returns a ``torchvision.transforms.Compose``."""
    from torchvision import transforms as T

    steps = [
        T.RandomResizedCrop(spec.size, scale=spec.crop_scale, ratio=spec.crop_ratio),
        T.RandomHorizontalFlip(spec.flip_p),
        T.RandomApply([T.ColorJitter(*spec.jitter)], p=spec.jitter_p),
        T.RandomGrayscale(spec.gray_p),
        T.ToTensor(),
    ]
    if spec.mean is not None:
        steps.append(T.Normalize(spec.mean, spec.std))
    return T.Compose(steps)
