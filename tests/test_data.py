"""Tests of rharm.vision.data on tiny archives written here (never on /work/shared)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rharm.vision import data
from rharm.vision.data import CIFAR10_CLASSES, class_index, load_cifar10, per_class_subset, underrepresent

# A few flat-coloured 32x32 images per (split, class); flat colours survive JPEG almost exactly.
TINY = {("train", "cat"): 3, ("train", "airplane"): 2, ("train", "truck"): 1, ("test", "dog"): 2}


def _colour(split: str, cls: str, k: int) -> tuple[int, int, int]:
    c = CIFAR10_CLASSES.index(cls)
    return (20 * c + 10, 40 * k + 30, 200 if split == "train" else 100)


def _write_archive(folder: Path, extra: dict[str, bytes] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / data.JPEG_ARCHIVE
    with tarfile.open(path, "w:gz") as tar:
        def add(name: str, payload: bytes):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))

        # Written in reverse order, so the loader's sort is what puts them in label order.
        for (split, cls), n in sorted(TINY.items(), reverse=True):
            for k in reversed(range(n)):
                buf = io.BytesIO()
                Image.new("RGB", (32, 32), _colour(split, cls, k)).save(buf, format="JPEG", quality=95)
                add(f"cifar10-jpg/{split}/{cls}/{k:04d}.jpg", buf.getvalue())
        for name, payload in (extra or {}).items():
            add(name, payload)
    return path


@pytest.fixture
def tiny_root(tmp_path, monkeypatch):
    root = tmp_path / "data"
    archive = _write_archive(root)
    monkeypatch.setattr(data, "JPEG_SHA256", data.sha256_file(archive))
    monkeypatch.setenv("RHARM_CACHE_ROOT", str(tmp_path / "cache"))
    monkeypatch.setenv("RHARM_DATA_ROOT", str(root))
    return root


def test_class_index():
    assert CIFAR10_CLASSES[0] == "airplane" and CIFAR10_CLASSES[3] == "cat" and CIFAR10_CLASSES[9] == "truck"
    assert class_index("cat") == 3 and class_index(9) == 9 and class_index(np.int64(2)) == 2
    for bad in ["Cat", "lion", 10, -1, True, 2.0]:
        with pytest.raises(ValueError, match="airplane.*truck"):
            class_index(bad)


def test_load_jpeg_decodes_in_label_order_and_caches(tiny_root, tmp_path, monkeypatch):
    out = load_cifar10("train", source="jpeg")
    assert out.source == "CIFAR-10 (JPEG copy)"
    assert out.images.dtype == torch.uint8 and out.images.shape == (6, 3, 32, 32)
    assert out.labels.dtype == torch.int64
    assert out.labels.tolist() == [0, 0, 3, 3, 3, 9]
    expected = [_colour("train", c, k) for c, n in [("airplane", 2), ("cat", 3), ("truck", 1)] for k in range(n)]
    got = out.images.float().mean(dim=(2, 3))
    assert torch.allclose(got, torch.tensor(expected, dtype=torch.float32), atol=3.0)
    test = load_cifar10("test")  # auto picks the archive
    assert test.source == "CIFAR-10 (JPEG copy)" and test.labels.tolist() == [5, 5]
    cached = list((tmp_path / "cache").rglob("*.npy"))
    assert {p.name for p in cached} == {"train-images.npy", "train-labels.npy", "test-images.npy", "test-labels.npy"}

    # A second load reads the cache and never decodes again.
    def boom(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(data, "_decode_archive", boom)
    again = load_cifar10("train", source="jpeg")
    assert torch.equal(again.images, out.images) and torch.equal(again.labels, out.labels)


def test_load_explicit_root_over_env(tiny_root, tmp_path, monkeypatch):
    monkeypatch.setenv("RHARM_DATA_ROOT", str(tmp_path / "nowhere"))
    assert load_cifar10("test", root=tiny_root).labels.tolist() == [5, 5]


def test_checksum_mismatch(tiny_root, monkeypatch):
    monkeypatch.setattr(data, "JPEG_SHA256", "0" * 64)
    with pytest.raises(data.ChecksumError, match="sha256"):
        load_cifar10("train", source="jpeg")
    assert issubclass(data.ChecksumError, ValueError)


def test_bad_member_is_rejected(tmp_path, monkeypatch):
    root = tmp_path / "data"
    archive = _write_archive(root, extra={"cifar10-jpg/train/lion/0000.jpg": b"not a jpeg"})
    monkeypatch.setattr(data, "JPEG_SHA256", data.sha256_file(archive))
    monkeypatch.setenv("RHARM_CACHE_ROOT", str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="lion"):
        load_cifar10("train", root=root)


def test_bad_arguments(tiny_root):
    with pytest.raises(ValueError, match="split='val'.*train.*test"):
        load_cifar10("val")
    with pytest.raises(ValueError, match="source='web'.*jpeg.*torchvision"):
        load_cifar10("train", source="web")


def test_auto_without_any_copy_names_both_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("RHARM_DATA_ROOT", str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        load_cifar10("train")
    msg = str(err.value)
    assert data.JPEG_ARCHIVE in msg and "torchvision" in msg and "RHARM_DATA_ROOT" in msg


class _FakeCIFAR10:
    calls: list = []

    def __init__(self, root, train=True, download=False):
        type(self).calls.append({"root": root, "train": train, "download": download})
        n = 4 if train else 2
        rng = np.random.default_rng(0)
        self.data = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)  # torchvision keeps NHWC
        self.targets = list(range(n))


@pytest.fixture
def fake_torchvision(monkeypatch):
    import torchvision

    _FakeCIFAR10.calls = []
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", _FakeCIFAR10)
    return _FakeCIFAR10


def test_torchvision_source(tmp_path, fake_torchvision):
    out = load_cifar10("test", source="torchvision", root=tmp_path)
    # an existing copy under the data root is read as it is: nothing is downloaded into (or written to) the data root
    assert fake_torchvision.calls == [{"root": str(tmp_path), "train": False, "download": False}]
    assert out.source == "CIFAR-10 (torchvision)"
    assert out.images.shape == (2, 3, 32, 32) and out.images.dtype == torch.uint8
    assert out.labels.dtype == torch.int64 and out.labels.tolist() == [0, 1]
    # NHWC -> NCHW without scrambling pixels.
    ref = _FakeCIFAR10(tmp_path, train=False).data
    assert torch.equal(out.images[1, :, 5, 7], torch.from_numpy(ref[1, 5, 7]))


def test_auto_falls_back_to_existing_torchvision_copy(tmp_path, monkeypatch, fake_torchvision):
    (tmp_path / data.TORCHVISION_FOLDER).mkdir()
    monkeypatch.setenv("RHARM_DATA_ROOT", str(tmp_path))
    out = load_cifar10("train")
    assert out.source == "CIFAR-10 (torchvision)"
    assert fake_torchvision.calls[0]["root"] == str(tmp_path) and fake_torchvision.calls[0]["train"] is True


LABELS = np.repeat(np.arange(10), 100)


def test_underrepresent_counts_and_reproducibility():
    kept = underrepresent(LABELS, "cat", 20, seed=7)
    assert kept.dtype == np.int64 and np.all(np.diff(kept) > 0)
    counts = np.bincount(LABELS[kept], minlength=10)
    assert counts[3] == 5 and np.all(np.delete(counts, 3) == 100)
    assert np.array_equal(kept, underrepresent(torch.from_numpy(LABELS), 3, 20, seed=7))
    other = underrepresent(LABELS, "cat", 20, seed=8)
    assert not np.array_equal(kept, other)
    assert np.array_equal(np.setdiff1d(kept, np.flatnonzero(LABELS == 3)),
                          np.setdiff1d(other, np.flatnonzero(LABELS == 3)))
    # int(n / ratio), as in the paper's code: 100 / 30 -> 3.
    assert np.bincount(LABELS[underrepresent(LABELS, 3, 30, 0)])[3] == 3
    assert np.array_equal(underrepresent(LABELS, None, 100, 0), np.arange(1000))
    assert len(underrepresent(LABELS, "cat", 1, 0)) == 1000


def test_underrepresent_draws_every_minority_image_equally_often():
    hits = np.zeros(100)
    for seed in range(400):
        kept = underrepresent(LABELS, 0, 10, seed)
        hits[kept[LABELS[kept] == 0]] += 1
    # Each image kept with probability 0.1: 40 of 400 expected; binomial sd about 6.
    assert hits.sum() == 4000 and hits.min() > 15 and hits.max() < 70


@pytest.mark.parametrize("ratio", [0.5, 0, -3, float("nan"), float("inf"), "10", True])
def test_underrepresent_rejects_bad_ratio(ratio):
    with pytest.raises(ValueError, match="ratio"):
        underrepresent(LABELS, "cat", ratio, 0)


def test_underrepresent_rejects_bad_class_and_too_big_ratio():
    with pytest.raises(ValueError, match="lion"):
        underrepresent(LABELS, "lion", 10, 0)
    with pytest.raises(ValueError, match="ratio=500"):
        underrepresent(LABELS, "cat", 500, 0)
    with pytest.raises(ValueError, match="labels"):
        underrepresent(np.zeros((3, 2), dtype=int), "cat", 10, 0)


def test_per_class_subset():
    sub = per_class_subset(LABELS, 7, seed=1)
    assert sub.dtype == np.int64 and np.all(np.diff(sub) > 0)
    assert np.all(np.bincount(LABELS[sub], minlength=10) == 7)
    assert np.array_equal(sub, per_class_subset(LABELS, 7, seed=1))
    assert not np.array_equal(sub, per_class_subset(LABELS, 7, seed=2))
    with pytest.raises(ValueError, match="n_per_class=101"):
        per_class_subset(LABELS, 101, 0)
    with pytest.raises(ValueError, match="n_per_class=0"):
        per_class_subset(LABELS, 0, 0)
