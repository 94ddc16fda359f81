"""Fashion-MNIST loading (rharm.vision.data) on IDX files written here, never on the shared copy (except one marked
check)."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from rharm.vision import data


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_fashion(folder: Path, *, n_train: int = 20, n_test: int = 10, gz: bool = True, corrupt: str | None = None,
                   monkeypatch=None) -> dict[str, np.ndarray]:
    """Four tiny IDX files; their decompressed sha256s are patched into rharm.vision.data so the loader accepts them."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, size=(n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 10,
    }
    folder.mkdir(parents=True, exist_ok=True)
    sums = {}
    for stem, arr in arrays.items():
        raw = _idx_bytes(arr)
        sums[stem] = hashlib.sha256(raw).hexdigest()
        if stem == corrupt:
            raw = raw[:-7]  # truncated after the checksums were recorded
        (folder / (stem + (".gz" if gz else ""))).write_bytes(gzip.compress(raw) if gz else raw)
    if monkeypatch is not None:
        monkeypatch.setattr(data, "FASHION_SHA256", sums)
    return arrays


def test_read_idx_round_trip_and_shape(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(_idx_bytes(arr))
    (tmp_path / "a.gz").write_bytes(gzip.compress(_idx_bytes(arr)))
    assert np.array_equal(data.read_idx(tmp_path / "a"), arr)
    assert np.array_equal(data.read_idx(tmp_path / "a.gz"), arr)


@pytest.mark.parametrize("mangle, message", [
    (lambda raw: raw[:-1], "truncated or corrupt"),
    (lambda raw: raw[:6], "header is truncated"),
    (lambda raw: b"\x01" + raw[1:], "not an IDX file"),
    (lambda raw: raw[:2] + b"\x0d" + raw[3:], "not supported"),
])
def test_read_idx_rejects_corrupt_files_naming_them(tmp_path, mangle, message):
    raw = _idx_bytes(np.zeros((2, 28, 28), dtype=np.uint8))
    path = tmp_path / "bad-idx"
    path.write_bytes(mangle(raw))
    with pytest.raises(ValueError, match=message) as err:
        data.read_idx(path)
    assert "bad-idx" in str(err.value)


def test_truncated_gzip_is_reported(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(_idx_bytes(np.zeros((5, 28, 28), dtype=np.uint8)))[:-20])
    with pytest.raises(ValueError, match="gzip"):
        data.read_idx(path)


def test_load_fashion_mnist_from_data_root(tmp_path, monkeypatch):
    arrays = _write_fashion(tmp_path / data.FASHION_FOLDER, monkeypatch=monkeypatch)
    images, labels, source = data.load_fashion_mnist("train", root=tmp_path)
    assert images.shape == (20, 28, 28) and images.dtype == np.uint8
    assert np.array_equal(images, arrays["train-images-idx3-ubyte"])
    assert np.array_equal(labels, arrays["train-labels-idx1-ubyte"]) and labels.dtype == np.int64
    assert source == "Fashion-MNIST (IDX files)"
    images, labels, _ = data.load_fashion_mnist("test", root=tmp_path, source="idx")
    assert images.shape == (10, 28, 28)


def test_uncompressed_files_load_too(tmp_path, monkeypatch):
    _write_fashion(tmp_path / data.FASHION_FOLDER, gz=False, monkeypatch=monkeypatch)
    assert data.load_fashion_mnist("test", root=tmp_path)[0].shape == (10, 28, 28)


def test_checksum_is_on_decompressed_content(tmp_path, monkeypatch):
    """Re-compressing the same content (as Debian did) changes the .gz bytes but not the verdict."""
    folder = tmp_path / data.FASHION_FOLDER
    arrays = _write_fashion(folder, monkeypatch=monkeypatch)
    stem = "t10k-labels-idx1-ubyte"
    (folder / f"{stem}.gz").write_bytes(gzip.compress(_idx_bytes(arrays[stem]), compresslevel=1, mtime=123))
    assert data.load_fashion_mnist("test", root=tmp_path)[1].shape == (10,)


def test_corrupt_file_raises_checksum_error_with_the_three_ways(tmp_path, monkeypatch):
    _write_fashion(tmp_path / data.FASHION_FOLDER, corrupt="t10k-images-idx3-ubyte", monkeypatch=monkeypatch)
    with pytest.raises(data.ChecksumError) as err:
        data.load_fashion_mnist("test", root=tmp_path)
    msg = str(err.value)
    assert "t10k-images-idx3-ubyte" in msg and "dataset-fashion-mnist" in msg and "torchvision" in msg


def test_missing_copy_names_all_three_ways(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FASHION_DEBIAN", tmp_path / "no-debian")
    monkeypatch.setenv("RHARM_CACHE_ROOT", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError) as err:
        data.load_fashion_mnist("train", root=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / data.FASHION_FOLDER) in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "data_source='torchvision'" in msg


def test_debian_location_is_used_when_the_data_root_has_no_copy(tmp_path, monkeypatch):
    debian = tmp_path / "usr-share"
    _write_fashion(debian, monkeypatch=monkeypatch)
    monkeypatch.setattr(data, "FASHION_DEBIAN", debian)
    _, _, source = data.load_fashion_mnist("train", root=tmp_path / "empty-root")
    assert source == "Fashion-MNIST (Debian dataset-fashion-mnist)"


def test_bad_split_and_source_are_named():
    with pytest.raises(ValueError, match="split='val'"):
        data.load_fashion_mnist("val")
    with pytest.raises(ValueError, match=r"data_source='jpeg'.*\['auto', 'idx', 'torchvision'\]"):
        data.load_fashion_mnist("train", source="jpeg")


def test_load_dataset_pads_to_three_equal_channels(tmp_path, monkeypatch):
    arrays = _write_fashion(tmp_path / data.FASHION_FOLDER, monkeypatch=monkeypatch)
    monkeypatch.setenv("RHARM_DATA_ROOT", str(tmp_path))
    d = data.load_dataset("fashion_mnist", "train")
    assert d.images.shape == (20, 3, 32, 32) and d.images.dtype == torch.uint8
    assert torch.equal(d.images[:, 0], d.images[:, 2])
    assert int(d.images[:, :, :2].sum()) == 0 and int(d.images[:, :, :, -2:].sum()) == 0  # black border
    assert np.array_equal(d.images[:, 1, 2:30, 2:30].numpy(), arrays["train-images-idx3-ubyte"])


def test_dataset_interface():
    fm = data.dataset_info("fashion_mnist")
    assert fm.classes[5] == "sandal" and fm.classes[7] == "sneaker" and fm.classes[9] == "ankle_boot"
    assert fm.channels == 1 and fm.image_shape == (1, 28, 28) and fm.train_per_class == 6000
    assert data.dataset_info("cifar10").classes == data.CIFAR10_CLASSES
    with pytest.raises(ValueError, match=r"dataset='mnist'.*cifar10.*fashion_mnist"):
        data.dataset_info("mnist")


def test_underrepresent_uses_the_dataset_classes():
    labels = np.repeat(np.arange(10), 100)
    kept = data.underrepresent(labels, "sneaker", 10, seed=0, classes=data.FASHION_MNIST_CLASSES)
    assert (labels[kept] == 7).sum() == 10 and len(kept) == 910
    with pytest.raises(ValueError, match="sneaker"):
        data.underrepresent(labels, "sneaker", 10, seed=0)  # not a CIFAR-10 class


def test_grid_rejects_classes_of_another_dataset():
    from rharm.runs import images as experiment

    with pytest.raises(ValueError, match=r"minority_classes entry 'truck' is not valid for dataset='fashion_mnist'"):
        experiment.run_grid({"dataset": "fashion_mnist", "minority_classes": ["truck"], "backbone": "small_cnn"})
    with pytest.raises(ValueError, match=r"data_source='jpeg' is not valid for dataset='fashion_mnist'"):
        experiment.run_grid({"dataset": "fashion_mnist", "data_source": "jpeg", "backbone": "small_cnn"})


def test_greyscale_augmentation_keeps_channels_equal():
    from rharm.vision import augment

    x = torch.randint(0, 256, (8, 1, 32, 32), dtype=torch.uint8).expand(-1, 3, -1, -1).float() / 255
    out = augment.augment_batch(x, augment.SIMCLR_GREY, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out[:, 0], out[:, 1], atol=1e-6) and torch.allclose(out[:, 1], out[:, 2], atol=1e-6)
    assert augment.SIMCLR_GREY.jitter[2:] == (0.0, 0.0) and augment.SIMCLR_GREY.gray_p == 0.0


@pytest.mark.skipif(not (data.paths.data_root() / data.FASHION_FOLDER).is_dir(), reason="no Fashion-MNIST copy here")
def test_the_real_copy_matches_the_published_checksums():
    images, labels, _ = data.load_fashion_mnist("test")
    assert images.shape == (10000, 28, 28) and np.bincount(labels).tolist() == [1000] * 10


def test_grid_trains_on_a_class_subset(monkeypatch, tmp_path):
    """``classes`` restricts the pool and the test split to a subset, relabelled in the subset's order."""
    from rharm.runs import images as experiment

    monkeypatch.setenv("RHARM_RESULTS_ROOT", str(tmp_path / "results"))

    def load(dataset, split, source):
        per = 12 if split == "train" else 3
        g = torch.Generator().manual_seed(0 if split == "train" else 1)
        labels = torch.arange(10).repeat_interleave(per)
        return data.ImageData(torch.randint(0, 256, (10 * per, 3, 32, 32), dtype=torch.uint8, generator=g), labels,
                              "fake")

    monkeypatch.setattr(experiment, "_load_split", load)
    grid = {"dataset": "fashion_mnist", "classes": ["sneaker", "sandal", "trouser"], "minority_classes": ["sandal"],
            "backbone": "small_cnn", "epochs": 1, "batch_size": 8, "lr": 0.1, "ratio": 4, "seeds": [0],
            "n_per_class": 8, "augment": "simclr_grey", "threads": 1, "progress": False}
    bal, imb = experiment.run_grid(grid)
    # rows keep their order (trouser 1, sandal 5, sneaker 7) and are relabelled by position in ``classes``
    assert bal.features["test_labels"].tolist() == [2] * 3 + [1] * 3 + [0] * 3
    assert bal.features["test_backbone"].shape[0] == 9
    counts = torch.bincount(imb.features["train_labels"][imb.features["train_in_cl"]], minlength=3).tolist()
    assert counts == [8, 2, 8]  # sandal (subset label 1) kept at 1:4
    assert experiment.run_classes({"dataset": "fashion_mnist", "classes": grid["classes"]}) == tuple(grid["classes"])
    with pytest.raises(ValueError, match=r"minority_classes entries \['bag'\] are not in classes"):
        experiment.run_grid({**grid, "minority_classes": ["bag"]})
    with pytest.raises(ValueError, match="at least 3 distinct names"):
        experiment.run_grid({**grid, "classes": ["sneaker", "sandal"]})
