"""Tests of rharm.vision.augment: per-image independence, exactness of each operation against torchvision's functional
ops, and the distributions of the random parameters against torchvision's own per-image draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image
from scipy import stats

from rharm.vision import augment as A
from rharm.vision.augment import SIMCLR, SIMSIAM, AugmentSpec, apply_params, augment_batch, sample_params

IDENTITY = AugmentSpec(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, gray_p=0.0)
KS_ALPHA = 1e-3  # every KS test below is on fixed seeds, so it is deterministic; alpha only sets the strictness


@pytest.fixture(autouse=True)
def _one_thread():
    """The per-image reference loops are many tiny kernels: one thread keeps this file fast on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _images(n: int, seed: int = 0, size: int = 32) -> torch.Tensor:
    """Smooth random colour images (uint8), so crops and colour operations change them visibly."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand((n, 3, 4, 4), generator=g)
    return (F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False) * 255).round().to(torch.uint8)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- shapes, determinism, independence ---------------------------------------------------------------------------

def test_shapes_dtypes_and_range():
    x = _images(8)
    for inp in (x, x.float() / 255):
        out = augment_batch(inp, SIMCLR, _gen(0))
        assert out.shape == (8, 3, 32, 32) and out.dtype == torch.float32
        assert out.min() >= 0 and out.max() <= 1
    assert augment_batch(x, AugmentSpec(size=20), _gen(0)).shape == (8, 3, 20, 20)
    assert augment_batch(_images(5, size=48), SIMCLR, _gen(0)).shape == (5, 3, 32, 32)
    assert augment_batch(x[:0], SIMCLR, _gen(0)).shape == (0, 3, 32, 32)
    # uint8 and float inputs give the same views.
    assert torch.allclose(augment_batch(x, SIMCLR, _gen(3)), augment_batch(x.float() / 255, SIMCLR, _gen(3)), atol=1e-5)


def test_simsiam_normalises():
    x = _images(16)
    plain = augment_batch(x, AugmentSpec(crop_scale=(0.2, 1.0)), _gen(1))
    normed = augment_batch(x, SIMSIAM, _gen(1))
    mean = torch.tensor(SIMSIAM.mean).view(1, 3, 1, 1)
    std = torch.tensor(SIMSIAM.std).view(1, 3, 1, 1)
    assert torch.allclose(normed, (plain - mean) / std, atol=1e-5)


def test_same_generator_seed_same_output_and_views_differ():
    x = _images(16)
    a, b = augment_batch(x, SIMCLR, _gen(5)), augment_batch(x, SIMCLR, _gen(5))
    assert torch.equal(a, b)
    g = _gen(5)
    v1, v2 = augment_batch(x, SIMCLR, g), augment_batch(x, SIMCLR, g)
    assert torch.equal(v1, a)
    per_image_diff = (v1 - v2).flatten(1).abs().amax(1)
    assert bool((per_image_diff > 0.05).all()), "two views of one image must differ"


def test_every_image_gets_its_own_parameters():
    x = _images(1).expand(64, -1, -1, -1).contiguous()  # 64 copies of ONE image
    out = augment_batch(x, SIMCLR, _gen(2))
    flat = out.flatten(1)
    dist = torch.cdist(flat, flat) + torch.eye(64) * 1e9
    assert dist.min() > 1e-3, "two images in one batch got the same augmentation"
    p = sample_params(256, SIMCLR, _gen(2))
    assert len({tuple(r) for r in p["crop"].tolist()}) > 200
    assert 0.3 < p["flip"].float().mean() < 0.7  # a batch-wide draw would give exactly 0 or 1
    assert len(set(p["brightness"].tolist())) == 256
    assert len({tuple(r) for r in p["jitter_order"].tolist()}) > 12


def test_identity_spec_returns_input_resized():
    x = _images(6)
    assert torch.allclose(augment_batch(x, IDENTITY, _gen(0)), x.float() / 255, atol=1e-6)
    small = augment_batch(x, AugmentSpec(size=16, **{k: getattr(IDENTITY, k) for k in
                                                      ("crop_scale", "crop_ratio", "flip_p", "jitter_p", "gray_p")}))
    ref = F.interpolate(x.float() / 255, size=(16, 16), mode="bilinear", align_corners=False, antialias=False)
    assert torch.allclose(small, ref, atol=1e-5)


# --- each operation against torchvision's functional ops on single images --------------------------------------

def _reference_apply(img: torch.Tensor, p: dict, k: int, size: int) -> torch.Tensor:
    i, j, h, w = p["crop"][k].tolist()
    out = TF.resized_crop(img, i, j, h, w, [size, size], antialias=False)
    if p["flip"][k]:
        out = TF.hflip(out)
    if p["jitter"][k]:
        ops = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
        for op in p["jitter_order"][k].tolist():
            out = ops[op](out, p[A.JITTER_OPS[op]][k].item())
    if p["gray"][k]:
        out = TF.rgb_to_grayscale(out, num_output_channels=3)
    return out


@pytest.mark.parametrize("spec,in_size", [(SIMCLR, 32), (AugmentSpec(size=24, jitter=(0.8, 0.8, 0.8, 0.5)), 40)])
def test_apply_params_matches_torchvision_functional(spec, in_size):
    x = _images(96, seed=4, size=in_size)
    p = sample_params(96, spec, _gen(9), image_size=(in_size, in_size))
    ours = apply_params(x, p, spec)
    xf = x.float() / 255
    ref = torch.stack([_reference_apply(xf[k], p, k, spec.size) for k in range(96)])
    assert torch.allclose(ours, ref, atol=1e-5), (ours - ref).abs().max()


def test_masked_jitter_equals_indexed_jitter():
    """The GPU path (no host sync) and the CPU path give the same images; checked here on the CPU."""
    x = _images(64, seed=6).float() / 255
    p = sample_params(64, SIMCLR, _gen(8))
    active = (True, True, True, True)
    assert torch.allclose(A._jitter_masked(x.clone(), p, active), A._jitter_indexed(x.clone(), p, active), atol=1e-6)
    changed = (A._jitter_masked(x.clone(), p, active) - x).flatten(1).abs().amax(1) > 1e-4
    assert torch.equal(changed, p["jitter"])


def test_hsv_round_trip():
    x = torch.rand(4, 3, 8, 8, generator=_gen(0))
    x[0] = 0.5  # grays
    x[1, :, 0, 0] = 0.0  # black
    assert torch.allclose(A.hsv_to_rgb(A.rgb_to_hsv(x)), x, atol=1e-6)


# --- distributions against torchvision's per-image draws ---------------------------------------------------------

def _torchvision_crops(n: int, spec: AugmentSpec, height: int, width: int) -> np.ndarray:
    torch.manual_seed(0)
    img = torch.zeros(3, height, width)
    return np.array([T.RandomResizedCrop.get_params(img, list(spec.crop_scale), list(spec.crop_ratio))
                     for _ in range(n)])


@pytest.mark.parametrize("spec,hw", [(SIMCLR, (32, 32)), (SIMSIAM, (32, 32)), (SIMCLR, (24, 40))])
def test_crop_distribution_matches_random_resized_crop(spec, hw):
    n = 4000
    theirs = _torchvision_crops(n, spec, *hw)
    ours = sample_params(n, spec, _gen(11), image_size=hw)["crop"].numpy()
    assert ours.min() >= 0 and np.all(ours[:, 0] + ours[:, 2] <= hw[0]) and np.all(ours[:, 1] + ours[:, 3] <= hw[1])

    def features(c):
        top, left, h, w = c.T
        return {"area": h * w / (hw[0] * hw[1]), "aspect": w / h,
                "top": top / np.maximum(hw[0] - h, 1), "left": left / np.maximum(hw[1] - w, 1)}

    fo, ft = features(ours), features(theirs)
    for name in fo:
        p = stats.ks_2samp(fo[name], ft[name]).pvalue
        assert p > KS_ALPHA, f"{name}: KS p={p:.2g}"
    # The test has power: a different scale range is rejected.
    wrong = sample_params(n, AugmentSpec(crop_scale=(0.12, 1.0)), _gen(11), image_size=hw)["crop"].numpy()
    assert stats.ks_2samp(features(wrong)["area"], ft["area"]).pvalue < KS_ALPHA


def test_crop_fallback_is_the_clamped_centre_crop():
    # Ratios 3-4 never fit a square at scale >= 0.5, so every draw falls back, as in torchvision.
    spec = AugmentSpec(crop_scale=(0.5, 1.0), crop_ratio=(3.0, 4.0))
    expected = _torchvision_crops(5, spec, 32, 32)
    assert (expected == expected[0]).all()
    ours = sample_params(50, spec, _gen(0))["crop"].numpy()
    assert (ours == expected[0]).all(), (ours[0], expected[0])


def _binomial_ok(hits: torch.Tensor, p: float) -> bool:
    n = hits.numel()
    return abs(hits.float().sum().item() - n * p) < 5 * np.sqrt(n * p * (1 - p)) + 1e-9


def test_flip_jitter_gray_rates_and_factor_ranges():
    n = 10000
    for spec in (SIMCLR, AugmentSpec(flip_p=0.1, jitter_p=0.3, gray_p=0.6, jitter=(0.9, 1.5, 0.2, 0.5))):
        p = sample_params(n, spec, _gen(21))
        assert _binomial_ok(p["flip"], spec.flip_p)
        assert _binomial_ok(p["jitter"], spec.jitter_p)
        assert _binomial_ok(p["gray"], spec.gray_p)
        for name, s in zip(A.JITTER_OPS, spec.jitter):
            lo, hi = (-s, s) if name == "hue" else (max(0.0, 1 - s), 1 + s)
            f = p[name].numpy()
            assert f.min() >= lo and f.max() <= hi
            assert stats.kstest(f, stats.uniform(lo, hi - lo).cdf).pvalue > KS_ALPHA, name
        order = p["jitter_order"]
        assert torch.equal(order.sort(dim=1).values, torch.arange(4).expand(n, 4))
        first = torch.bincount(order[:, 0], minlength=4).float() / n
        assert (first - 0.25).abs().max() < 0.025
    # Jitter is applied to roughly jitter_p of the images and changes them; with jitter_p=0 nothing changes.
    x = _images(200, seed=3)
    p = sample_params(200, SIMCLR, _gen(4))
    p_off = {**p, "jitter": torch.zeros_like(p["jitter"])}
    changed = (apply_params(x, p, SIMCLR) - apply_params(x, p_off, SIMCLR)).flatten(1).abs().amax(1) > 1e-4
    assert _binomial_ok(p["jitter"], SIMCLR.jitter_p)
    assert torch.equal(changed, p["jitter"])


def test_end_to_end_statistics_match_the_pil_reference():
    """Whole-pipeline check against the paper's per-image PIL transforms: the distributions of each view's mean
    intensity, contrast and saturation over many views of one image agree (the PIL path rounds to uint8 between
    operations, ours stays float, which these statistics do not resolve)."""
    n = 1500
    x = _images(1, seed=8)
    pil = Image.fromarray(x[0].permute(1, 2, 0).numpy())
    ref_tf = A.torchvision_reference(SIMCLR)
    torch.manual_seed(0)
    theirs = torch.stack([ref_tf(pil) for _ in range(n)])
    ours = augment_batch(x.expand(n, -1, -1, -1), SIMCLR, _gen(13))

    def summaries(v):
        sat = v.amax(1) - v.amin(1)
        return {"mean": v.mean((1, 2, 3)), "std": v.std((1, 2, 3)), "saturation": sat.mean((1, 2))}

    so, st = summaries(ours), summaries(theirs)
    for name in so:
        p = stats.ks_2samp(so[name].numpy(), st[name].numpy()).pvalue
        assert p > KS_ALPHA, f"{name}: KS p={p:.2g}"
    # Power check: without colour jitter the saturation distribution is clearly different.
    weak = augment_batch(x.expand(n, -1, -1, -1), AugmentSpec(jitter_p=0.0), _gen(13))
    assert stats.ks_2samp(summaries(weak)["saturation"].numpy(), st["saturation"].numpy()).pvalue < KS_ALPHA


def test_specs_pin_the_official_code_constants():
    # Pinned from the paper's official code (github.com/smaityumich/CL-representation-harm), not from our reference
    # builder: cifar/simclr/simclr.py trains SimCLR with RandomResizedCrop(32) (torchvision's default scale (0.08, 1)
    # and ratio (3/4, 4/3)), RandomHorizontalFlip(p=0.5), RandomApply([ColorJitter(0.8 s, 0.8 s, 0.8 s, 0.2 s)],
    # p=0.8) with s = 0.5, RandomGrayscale(p=0.2), ToTensor and no normalisation; cifar/simsiam/main.py trains
    # SimSiam with the same pipeline but crop scale (0.2, 1) and Normalize((0.4914, 0.4822, 0.4465),
    # (0.2023, 0.1994, 0.2010)).
    assert SIMCLR.size == 32
    assert SIMCLR.crop_scale == (0.08, 1.0)
    assert SIMCLR.crop_ratio == pytest.approx((3 / 4, 4 / 3))
    assert SIMCLR.flip_p == 0.5
    assert SIMCLR.jitter == pytest.approx((0.4, 0.4, 0.4, 0.1))
    assert SIMCLR.jitter_p == 0.8 and SIMCLR.gray_p == 0.2
    assert SIMCLR.mean is None and SIMCLR.std is None
    assert SIMSIAM.crop_scale == (0.2, 1.0)
    assert (SIMSIAM.flip_p, SIMSIAM.jitter_p, SIMSIAM.gray_p) == (0.5, 0.8, 0.2)
    assert SIMSIAM.jitter == pytest.approx((0.4, 0.4, 0.4, 0.1))
    assert SIMSIAM.mean == pytest.approx((0.4914, 0.4822, 0.4465))
    assert SIMSIAM.std == pytest.approx((0.2023, 0.1994, 0.2010))


def test_torchvision_reference_pipeline():
    ref = A.torchvision_reference(SIMSIAM)
    names = [type(t).__name__ for t in ref.transforms]
    assert names == ["RandomResizedCrop", "RandomHorizontalFlip", "RandomApply", "RandomGrayscale", "ToTensor",
                     "Normalize"]
    assert tuple(ref.transforms[0].scale) == (0.2, 1.0)
    out = ref(Image.new("RGB", (32, 32), (10, 200, 30)))
    assert out.shape == (3, 32, 32)


# --- validation ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,name", [
    ({"size": 0}, "size"), ({"size": 3.5}, "size"),
    ({"crop_scale": (0.0, 1.0)}, "crop_scale"), ({"crop_scale": (0.9, 0.2)}, "crop_scale"),
    ({"crop_scale": (0.5, 1.5)}, "crop_scale"), ({"crop_ratio": (0.0, 1.0)}, "crop_ratio"),
    ({"crop_ratio": 1.0}, "crop_ratio"), ({"flip_p": 1.5}, "flip_p"), ({"jitter_p": -0.1}, "jitter_p"),
    ({"gray_p": "0.2"}, "gray_p"), ({"jitter": (0.4, 0.4, 0.4)}, "jitter"), ({"jitter": (0.4, 0.4, 0.4, 0.6)}, "jitter"),
    ({"jitter": (-0.1, 0.4, 0.4, 0.1)}, "jitter"), ({"mean": (0.5, 0.5, 0.5)}, "mean"),
    ({"mean": (0.5, 0.5), "std": (1, 1)}, "mean"), ({"mean": (0.5,) * 3, "std": (1, 0, 1)}, "std"),
])
def test_spec_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        AugmentSpec(**kwargs)


def test_spec_accepts_lists_and_round_trips():
    spec = AugmentSpec(crop_scale=[0.2, 1.0], mean=[0.4914, 0.4822, 0.4465], std=[0.2023, 0.1994, 0.2010])
    assert spec == SIMSIAM
    assert AugmentSpec(**SIMSIAM.to_dict()) == SIMSIAM
    with pytest.raises(ValueError, match="images"):
        augment_batch(torch.zeros(2, 1, 32, 32), SIMCLR)
    with pytest.raises(ValueError, match="spec"):
        sample_params(2, {"size": 32})
