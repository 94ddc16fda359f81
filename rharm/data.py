"""CIFAR-10: loading from either source, and the subsets the experiments train on.

Two sources give the same (images, labels) arrays:

``"jpeg"``         the archive ``cifar10-jpg.tar.gz`` under :func:`rharm.paths.data_root` (env ``RHARM_DATA_ROOT``):
                   the official train/test split re-encoded as lossy JPEG. Its checksum is verified before use; it
                   is decoded once with Pillow, straight from the tar, and cached as ``.npy`` under
                   :func:`rharm.paths.cache_root`. Accuracies from it are reported as "CIFAR-10 (JPEG copy)".
``"torchvision"``  ``torchvision.datasets.CIFAR10(root, download=True)``: the lossless original, for users with
                   internet access.

The underrepresentation protocol follows the paper's code (paper.md E1): one minority class keeps
``int(n_minority / ratio)`` randomly chosen images, every other class keeps all of its images.
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from rharm import paths

#: Class names in CIFAR-10's label order.
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
SPLITS = ("train", "test")
SOURCES = ("auto", "jpeg", "torchvision")

JPEG_ARCHIVE = "cifar10-jpg.tar.gz"
JPEG_SHA256 = "7efb3fa528138d91f307130768610880e592f95463a7d6a0be63a874d1ce680f"
#: The folder torchvision's CIFAR10 unpacks into under its ``root``.
TORCHVISION_FOLDER = "cifar-10-batches-py"

SOURCE_NAMES = {"jpeg": "CIFAR-10 (JPEG copy)", "torchvision": "CIFAR-10 (torchvision)"}

_MEMBER = re.compile(r"^(?:\./)?cifar10-jpg/(train|test)/([a-z]+)/([^/]+\.jpg)$")


class CIFAR10Data(NamedTuple):
    """One split of CIFAR-10.

    images: uint8 tensor (N, 3, 32, 32); labels: int64 tensor (N,) in CIFAR-10's label order;
    source: which copy it came from, "CIFAR-10 (JPEG copy)" or "CIFAR-10 (torchvision)" (quote it with results).
    """

    images: torch.Tensor
    labels: torch.Tensor
    source: str


class ChecksumError(ValueError):
    """A data file's sha256 differs from the expected one."""


def class_index(name_or_index: str | int) -> int:
    """The label of a CIFAR-10 class given its name ("cat") or its index (3); raises ValueError otherwise."""
    if isinstance(name_or_index, (bool, np.bool_)):
        raise ValueError(f"class={name_or_index!r} is not valid; use a name in {list(CIFAR10_CLASSES)} or an index 0-9")
    if isinstance(name_or_index, (int, np.integer)):
        if 0 <= int(name_or_index) < len(CIFAR10_CLASSES):
            return int(name_or_index)
    elif isinstance(name_or_index, str) and name_or_index in CIFAR10_CLASSES:
        return CIFAR10_CLASSES.index(name_or_index)
    raise ValueError(
        f"class={name_or_index!r} is not valid; use a name in {list(CIFAR10_CLASSES)} or an index 0-9"
    )


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not valid; choose one of {list(choices)}")


def load_cifar10(split: str, *, source: str = "auto", root: str | Path | None = None) -> CIFAR10Data:
    """Load one CIFAR-10 split as tensors.

    Args:
        split: "train" (50,000 images) or "test" (10,000).
        source: "jpeg" (the archive ``cifar10-jpg.tar.gz``), "torchvision" (``torchvision.datasets.CIFAR10`` with
            ``download=True``) or "auto" (the archive if present, else an existing torchvision copy).
        root: folder holding the archive or the torchvision copy; default :func:`rharm.paths.data_root`
            (env ``RHARM_DATA_ROOT``).

    Returns:
        ``CIFAR10Data(images, labels, source)``: images uint8 (N, 3, 32, 32), labels int64 (N,), and the name of
        the source actually used.

    Raises:
        ValueError for a bad ``split``/``source``; :class:`ChecksumError` when the archive's sha256 is wrong;
        FileNotFoundError when ``source="auto"`` finds neither copy.
    """
    _check_choice("split", split, SPLITS)
    _check_choice("source", source, SOURCES)
    root = Path(root).expanduser() if root is not None else paths.data_root()
    archive = root / JPEG_ARCHIVE
    if source == "auto":
        if archive.is_file():
            source = "jpeg"
        elif (root / TORCHVISION_FOLDER).is_dir():
            source = "torchvision"
        else:
            raise FileNotFoundError(
                f"No CIFAR-10 copy under {root}: expected the JPEG archive {archive} (source='jpeg') or a "
                f"torchvision copy {root / TORCHVISION_FOLDER} (source='torchvision', downloads the lossless "
                "original when online). Point the environment variable RHARM_DATA_ROOT (or root=) at the folder "
                "holding either."
            )
    if source == "jpeg":
        images, labels = _load_jpeg(archive, split)
    else:
        images, labels = _load_torchvision(root, split)
    return CIFAR10Data(torch.from_numpy(images), torch.from_numpy(labels), SOURCE_NAMES[source])


class DownloadError(FileNotFoundError):
    """A dataset is not on this machine and could not be downloaded (offline); the message is one line."""


def _torchvision_download(dataset_cls, *, train: bool, root: Path | None = None, title: str | None = None):
    """An instance of the torchvision dataset class ``dataset_cls`` (``CIFAR10``, ``FashionMNIST``, ...).

    An existing copy under ``root`` (the data root) is read as it is; otherwise the copy in
    ``paths.cache_root() / "torchvision"`` is used, downloaded there first when missing. Nothing is ever written into
    the data root, which may be shared read-only. Offline, the download fails with a one-line :class:`DownloadError`
    naming both folders and what to do instead, not a raw ``URLError``.
    """
    title = title or dataset_cls.__name__
    cache = paths.cache_root() / "torchvision"
    for folder in ([Path(root)] if root is not None else []) + [cache]:
        try:
            return dataset_cls(str(folder), train=train, download=False)
        except RuntimeError:  # torchvision: "Dataset not found or corrupted"
            continue
    cache.mkdir(parents=True, exist_ok=True)
    try:
        return dataset_cls(str(cache), train=train, download=True)
    except (OSError, RuntimeError) as exc:  # URLError and socket errors are OSErrors
        reason = getattr(exc, "reason", None) or exc
        reason = str(reason).splitlines()[0] if str(reason) else type(exc).__name__
        where = f"{root} or {cache}" if root is not None else str(cache)
        raise DownloadError(f"{title} is not in {where}, and downloading it into {cache} failed ({reason}): connect "
                            f"to the internet, or use a local copy (for CIFAR-10: data_source='jpeg' with "
                            f"RHARM_DATA_ROOT pointing at the folder holding {JPEG_ARCHIVE})") from None


def resolve_source(source: str, *, dataset: str = "cifar10", root: str | Path | None = None) -> str:
    """The copy ``source="auto"`` will read, without loading it: ``"jpeg"``/``"idx"``/``"torchvision"``.

    Used in store keys, so a result computed from the JPEG copy is never reused for the lossless original (or back).
    Explicit sources are returned as given; ``"auto"`` stays ``"auto"`` when no copy is found (loading then fails).
    """
    if source != "auto":
        return source
    root = Path(root).expanduser() if root is not None else paths.data_root()
    if dataset == "cifar10":
        if (root / JPEG_ARCHIVE).is_file():
            return "jpeg"
        if (root / TORCHVISION_FOLDER).is_dir():
            return "torchvision"
        return source
    finder = globals().get("_fashion_folder")  # Fashion-MNIST: IDX files first, then the torchvision cache
    if dataset == "fashion_mnist" and finder is not None:
        if finder(root) is not None:
            return "idx"
        if finder(paths.cache_root() / "torchvision" / "FashionMNIST" / "raw") is not None:
            return "torchvision"
    return source


def _load_torchvision(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    import torchvision

    ds = _torchvision_download(torchvision.datasets.CIFAR10, train=(split == "train"), root=root,
                               title="CIFAR-10 (torchvision)")
    images = np.ascontiguousarray(np.asarray(ds.data, dtype=np.uint8).transpose(0, 3, 1, 2))  # NHWC -> NCHW
    labels = np.asarray(ds.targets, dtype=np.int64)
    return images, labels


def _load_jpeg(archive: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    if not archive.is_file():
        raise FileNotFoundError(
            f"CIFAR-10 JPEG archive not found at {archive}; set RHARM_DATA_ROOT (or root=) to the folder holding "
            f"{JPEG_ARCHIVE}, or use source='torchvision'."
        )
    digest = sha256_file(archive)
    if digest != JPEG_SHA256:
        raise ChecksumError(
            f"{archive} has sha256 {digest}, expected {JPEG_SHA256}: the file is corrupt or not the CIFAR-10 "
            "JPEG copy. Replace it, or use source='torchvision'."
        )
    # Keyed by the archive's checksum, so a different archive never reads a stale cache.
    folder = paths.cache_root() / "cifar10-jpg" / digest[:16]
    img_path, lab_path = folder / f"{split}-images.npy", folder / f"{split}-labels.npy"
    if img_path.is_file() and lab_path.is_file():
        try:
            images, labels = np.load(img_path, allow_pickle=False), np.load(lab_path, allow_pickle=False)
            if len(images) == len(labels) and images.shape[1:] == (3, 32, 32):
                return images, labels
            raise ValueError(f"shapes {images.shape} and {labels.shape}")
        except (ValueError, OSError, EOFError) as err:  # truncated or damaged: the cache is re-creatable
            import sys

            print(f"rharm: decoded cache {folder} is unreadable ({type(err).__name__}: {str(err)[:120]}); decoding "
                  f"{archive.name} again", file=sys.stderr, flush=True)
    images, labels = _decode_archive(archive, split)
    from rharm.store import atomic_path

    for path, array in ((img_path, images), (lab_path, labels)):
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.save would append ".npy"
            np.save(f, array, allow_pickle=False)
    return images, labels


def _decode_archive(archive: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode every ``cifar10-jpg/<split>/<class>/<file>.jpg`` member; order: by class, then by file name."""
    from PIL import Image

    found: list[tuple[int, str, np.ndarray]] = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            m = _MEMBER.match(member.name)
            if not member.isfile() or m is None or m.group(1) != split:
                continue
            if m.group(2) not in CIFAR10_CLASSES:
                raise ValueError(f"{archive}: member {member.name} has class folder {m.group(2)!r}, not one of "
                                 f"{list(CIFAR10_CLASSES)}")
            data = tar.extractfile(member).read()
            with Image.open(io.BytesIO(data)) as im:
                arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
            if arr.shape != (32, 32, 3):
                raise ValueError(f"{archive}: member {member.name} has shape {arr.shape}, expected (32, 32, 3)")
            found.append((CIFAR10_CLASSES.index(m.group(2)), m.group(3), arr))
    if not found:
        raise ValueError(f"{archive} holds no images under cifar10-jpg/{split}/<class>/")
    found.sort(key=lambda t: (t[0], t[1]))
    images = np.ascontiguousarray(np.stack([t[2] for t in found]).transpose(0, 3, 1, 2))
    labels = np.array([t[0] for t in found], dtype=np.int64)
    return images, labels


def _labels_array(labels) -> np.ndarray:
    arr = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got shape {arr.shape} and dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def underrepresent(labels, minority: str | int | None, ratio: float, seed: int) -> np.ndarray:
    """Indices kept when one class is underrepresented 1:``ratio`` (paper.md E1).

    The minority class keeps ``int(n_minority / ratio)`` of its images, drawn without replacement with
    ``np.random.default_rng(seed)``; every other class keeps all of them. ``minority=None`` is the balanced
    condition: everything is kept (``ratio`` is still validated).

    Args:
        labels: int array or tensor (N,).
        minority: class name, index, or None.
        ratio: >= 1; 100 in the paper's main setting (50 of 5,000 images kept), 20 in the second one.
        seed: seed of the draw.

    Returns:
        Sorted int64 array (M,) of kept indices into ``labels``.
    """
    y = _labels_array(labels)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float, np.integer, np.floating)) \
            or not np.isfinite(ratio) or ratio < 1:
        raise ValueError(f"ratio={ratio!r} is not valid; it must be a finite number >= 1 (1:ratio kept)")
    if minority is None:
        return np.arange(len(y), dtype=np.int64)
    c = class_index(minority)
    members = np.flatnonzero(y == c)
    n_keep = int(len(members) / ratio)
    if n_keep < 1:
        raise ValueError(
            f"ratio={ratio!r} is not valid for minority={minority!r}: it has {len(members)} images, so it would keep "
            f"none; use 1 <= ratio <= {len(members)}"
        )
    kept = np.random.default_rng(seed).choice(members, size=n_keep, replace=False)
    keep = np.ones(len(y), dtype=bool)
    keep[members] = False
    keep[kept] = True
    return np.flatnonzero(keep).astype(np.int64)


def per_class_subset(labels, n_per_class: int, seed: int) -> np.ndarray:
    """A balanced random subset: ``n_per_class`` indices of every class present in ``labels``.

    Drawn without replacement with ``np.random.default_rng(seed)``, classes in increasing label order.
    Returns sorted int64 indices (n_classes * n_per_class,). Raises ValueError when a class has fewer images.
    """
    y = _labels_array(labels)
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, (int, np.integer)) or n_per_class < 1:
        raise ValueError(f"n_per_class={n_per_class!r} is not valid; it must be an integer >= 1")
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) and counts.min() < n_per_class:
        raise ValueError(
            f"n_per_class={n_per_class} is not valid: class {int(classes[counts.argmin()])} has only "
            f"{int(counts.min())} images; use 1 <= n_per_class <= {int(counts.min())}"
        )
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(y == c), size=n_per_class, replace=False) for c in classes]
    return np.sort(np.concatenate(chosen)).astype(np.int64) if chosen else np.zeros(0, dtype=np.int64)
