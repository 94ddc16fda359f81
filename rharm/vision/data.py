"""CIFAR-10: loading from either source, and the subsets the experiments train on.

Two sources give the same (images, labels) arrays:

``"jpeg"``         the archive ``cifar10-jpg.tar.gz`` under :func:`rharm.core.paths.data_root` (env ``RHARM_DATA_ROOT``):
                   the official train/test split re-encoded as lossy JPEG. Its checksum is verified before use; it
                   is decoded once with Pillow, straight from the tar, and cached as ``.npy`` under
                   :func:`rharm.core.paths.cache_root`. Accuracies from it are reported as "CIFAR-10 (JPEG copy)".
``"torchvision"``  ``torchvision.datasets.CIFAR10(root, download=True)``: the lossless original, for users with
                   internet access.

The underrepresentation protocol follows the paper's official code (github.com/smaityumich/CL-representation-harm,
cifar/simclr/simclr.py): one minority class keeps
``int(n_minority / ratio)`` randomly chosen images, every other class keeps all of its images.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import tarfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

# CIFAR10_CLASSES, ChecksumError and sha256_file are defined once in rharm.core.common and stay importable from here
from rharm.core import paths, sampling
from rharm.core.common import CIFAR10_CLASSES, ChecksumError, sha256_file
from rharm.core.common import check_choice as _check_choice

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


def class_index(name_or_index: str | int, classes: tuple[str, ...] = CIFAR10_CLASSES) -> int:
    """The label of a class given its name ("cat") or its index (3) in ``classes`` (default CIFAR-10's);
    raises ValueError otherwise."""
    bad = ValueError(f"class={name_or_index!r} is not valid; use a name in {list(classes)} or an index "
                     f"0-{len(classes) - 1}")
    if isinstance(name_or_index, (bool, np.bool_)):
        raise bad
    if isinstance(name_or_index, (int, np.integer)):
        if 0 <= int(name_or_index) < len(classes):
            return int(name_or_index)
    elif isinstance(name_or_index, str) and name_or_index in classes:
        return classes.index(name_or_index)
    raise bad


def load_cifar10(split: str, *, source: str = "auto", root: str | Path | None = None) -> CIFAR10Data:
    """Load one CIFAR-10 split as tensors.

    Args:
        split: "train" (50,000 images) or "test" (10,000).
        source: "jpeg" (the archive ``cifar10-jpg.tar.gz``), "torchvision" (``torchvision.datasets.CIFAR10`` with
            ``download=True``) or "auto" (the archive if present, else an existing torchvision copy).
        root: folder holding the archive or the torchvision copy; default :func:`rharm.core.paths.data_root`
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
    if dataset == "fashion_mnist":  # IDX files first, then the torchvision cache
        if _fashion_folder(root) is not None:
            return "idx"
        if _fashion_folder(paths.cache_root() / "torchvision" / "FashionMNIST" / "raw") is not None:
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
    # Keyed by the archive's checksum, so a different archive never reads a stale cache; its record
    # (<split>.cache.json) also names the decoder and each file's sha256, checked on every read.
    folder = paths.cache_root() / "cifar10-jpg" / digest[:16]
    img_path, lab_path = folder / f"{split}-images.npy", folder / f"{split}-labels.npy"
    record = folder / f"{split}.cache.json"
    if img_path.is_file() or lab_path.is_file() or record.is_file():
        why = _cache_problem(record, {"images": img_path, "labels": lab_path}, digest)
        if why is None:
            try:
                images, labels = np.load(img_path, allow_pickle=False), np.load(lab_path, allow_pickle=False)
                if len(images) == len(labels) and images.shape[1:] == (3, 32, 32):
                    return images, labels
                why = f"shapes {images.shape} and {labels.shape}"
            except (ValueError, OSError, EOFError) as err:  # truncated or damaged: the cache is re-creatable
                why = f"unreadable ({type(err).__name__}: {str(err)[:120]})"
        import sys

        print(f"rharm: decoded cache {folder} ({split}) is not used: {why}; decoding {archive.name} again",
              file=sys.stderr, flush=True)
    images, labels = _decode_archive(archive, split)
    from rharm.store import atomic_path, save_json

    with contextlib.suppress(OSError):
        record.unlink()  # first: a cache being rewritten is never trusted
    for path, array in ((img_path, images), (lab_path, labels)):
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.save would append ".npy"
            np.save(f, array, allow_pickle=False)
    save_json(record, {"source_sha256": digest, "decoder": decoder_identity(),
                       "files": {"images": sha256_file(img_path), "labels": sha256_file(lab_path)}})
    return images, labels


def decoder_identity() -> str:
    """sha256 of the code that decodes the JPEG archive (its text without comments and docstrings): a changed
    decoder never reads a cache the previous one wrote."""
    import inspect

    from rharm.store import code_text

    h = hashlib.sha256()
    for fn in _DECODER_CODE:
        h.update(code_text(inspect.getsource(fn)).encode())
    h.update(_MEMBER.pattern.encode())
    return h.hexdigest()[:16]


def _cache_problem(record: Path, files: dict[str, Path], source_sha256: str) -> str | None:
    """Why a decoded cache may not be used (None: its record matches the source, the decoder and every file)."""
    from rharm.store import UnreadableFileError, load_json

    try:
        rec = load_json(record)
    except FileNotFoundError:
        return f"it has no record {record.name} (written before caches were checked, or interrupted)"
    except (UnreadableFileError, OSError) as err:
        return f"its record {record.name} is unreadable ({type(err).__name__})"
    if not isinstance(rec, dict) or not isinstance(rec.get("files"), dict):
        return f"its record {record.name} is damaged"
    if rec.get("source_sha256") != source_sha256:
        return "it was decoded from another archive"
    if rec.get("decoder") != decoder_identity():
        return "it was written by another version of the decoder"
    for name, path in files.items():
        if not path.is_file():
            return f"{path.name} is missing"
        if sha256_file(path) != rec["files"].get(name):
            return f"{path.name} does not match its recorded sha256 (truncated or changed)"
    return None


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


#: the functions whose code decodes a cached split (their text is :func:`decoder_identity`)
_DECODER_CODE = (_decode_archive,)


def _labels_array(labels) -> np.ndarray:
    arr = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got shape {arr.shape} and dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def underrepresent(labels, minority: str | int | None, ratio: float, seed: int,
                   classes: tuple[str, ...] = CIFAR10_CLASSES) -> np.ndarray:
    """Indices kept when one class is underrepresented 1:``ratio`` (as the official code's
    cifar/simclr/simclr.py does).

    The minority class keeps ``int(n_minority / ratio)`` of its images, drawn without replacement with
    ``np.random.default_rng(seed)``; every other class keeps all of them. ``minority=None`` is the balanced
    condition: everything is kept (``ratio`` is still validated).

    Args:
        labels: int array or tensor (N,).
        minority: class name (in ``classes``, default CIFAR-10's), index, or None.
        ratio: >= 1; 100 in the paper's main setting (50 of 5,000 images kept), 20 in the second one.
        seed: seed of the draw.

    Returns:
        Sorted int64 array (M,) of kept indices into ``labels``.
    """
    y = _labels_array(labels)
    sampling.kept_count(len(y), ratio)  # validates ratio, for the balanced condition too
    if minority is None:
        return np.arange(len(y), dtype=np.int64)
    c = class_index(minority, classes)
    members = np.flatnonzero(y == c)
    if sampling.kept_count(len(members), ratio) < 1:
        raise ValueError(
            f"ratio={ratio!r} is not valid for minority={minority!r}: it has {len(members)} images, so it would keep "
            f"none; use 1 <= ratio <= {len(members)}"
        )
    keep = sampling.undersample_mask(y, c, ratio, np.random.default_rng(seed))
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


# --------------------------------------------------------------------------------------------------------------
# Fashion-MNIST, and one dataset interface over both image datasets
# --------------------------------------------------------------------------------------------------------------

#: Fashion-MNIST's classes in label order (Xiao, Rasul & Vollgraf 2017, github.com/zalandoresearch/fashion-mnist),
#: written as identifiers so they can be parameter values.
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot",
)
FASHION_SOURCES = ("auto", "idx", "torchvision")
#: The folder under the data root that holds the four IDX files (``.gz`` or decompressed).
FASHION_FOLDER = "fashion-mnist"
#: Where Debian's package ``dataset-fashion-mnist`` installs the same four files.
FASHION_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
#: sha256 of each **decompressed** IDX file. Debian re-compresses the ``.gz`` files, so their bytes differ from the
#: upstream downloads while the content is identical; the content is what is checked.
FASHION_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
_FASHION_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                  "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


class ImageData(NamedTuple):
    """One split of an image dataset, ready for the models: uint8 (N, 3, 32, 32), int64 labels (N,), source name."""

    images: torch.Tensor
    labels: torch.Tensor
    source: str


class DatasetInfo(NamedTuple):
    """What the experiments need to know about an image dataset.

    name: the ``dataset`` parameter value. title: how pages name it. classes: class names in label order.
    image_shape: (channels, height, width) as stored. train_per_class / test_per_class: images per class in the
    official splits. sources: the ``data_source`` values it accepts.
    """

    name: str
    title: str
    classes: tuple[str, ...]
    image_shape: tuple[int, int, int]
    train_per_class: int
    test_per_class: int
    sources: tuple[str, ...]

    @property
    def channels(self) -> int:
        return self.image_shape[0]


DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo("cifar10", "CIFAR-10", CIFAR10_CLASSES, (3, 32, 32), 5000, 1000, SOURCES),
    "fashion_mnist": DatasetInfo("fashion_mnist", "Fashion-MNIST", FASHION_MNIST_CLASSES, (1, 28, 28), 6000, 1000,
                                 FASHION_SOURCES),
}


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name``; ValueError naming the valid names otherwise."""
    if name not in DATASETS:
        raise ValueError(f"dataset={name!r} is not valid; choose one of {list(DATASETS)}")
    return DATASETS[name]


def load_dataset(name: str, split: str, *, source: str = "auto", root: str | Path | None = None) -> ImageData:
    """One split of ``name`` as model input: uint8 (N, 3, 32, 32), labels int64 (N,), and the source used.

    CIFAR-10 is returned as stored (:func:`load_cifar10`). Fashion-MNIST's 28x28 greyscale images are padded with two
    black pixels on every side to 32x32 (its background is black) and repeated over three channels, so that every
    backbone and augmentation of the package applies unchanged; the augmentation used for it has no hue, saturation
    or grayscale step (:data:`rharm.vision.augment.SIMCLR_GREY`), so the three channels stay equal.
    """
    info = dataset_info(name)
    if name == "cifar10":
        d = load_cifar10(split, source=source, root=root)
        return ImageData(d.images, d.labels, d.source)
    images, labels, used = load_fashion_mnist(split, source=source, root=root)
    x = torch.from_numpy(images)[:, None]
    x = torch.nn.functional.pad(x, (2, 2, 2, 2)).expand(-1, 3, -1, -1).contiguous()
    assert x.shape[1:] == (3, 32, 32) and info.channels == 1
    return ImageData(x, torch.from_numpy(labels), used)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or not) of unsigned bytes: the array with its stored shape.

    The format (LeCun et al., yann.lecun.com/exdb/mnist): two zero bytes, a type byte (0x08 = ubyte), the number of
    dimensions, one big-endian uint32 size per dimension, then the data. A short or inconsistent file raises
    ValueError naming the file.
    """
    raw = _read_maybe_gz(Path(path))
    return _parse_idx(raw, Path(path))


def _read_maybe_gz(path: Path) -> bytes:
    import gzip

    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path}: not a readable gzip file ({exc}); the download is truncated or corrupt") from None
    return data


def _parse_idx(raw: bytes, path: Path) -> np.ndarray:
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (its first bytes are {raw[:4]!r}, expected 00 00 08 <ndim>)")
    if raw[2] != 0x08:
        raise ValueError(f"{path}: IDX data type 0x{raw[2]:02x} is not supported; only unsigned bytes (0x08)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim < 1 or len(raw) < header:
        raise ValueError(f"{path}: IDX header is truncated ({len(raw)} bytes for {ndim} dimensions)")
    shape = tuple(int.from_bytes(raw[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise ValueError(f"{path}: IDX payload has {len(raw) - header} bytes, the header says shape {shape} "
                         f"({expected - header} bytes); the file is truncated or corrupt")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def _fashion_candidates(root: Path) -> list[Path]:
    return [root / FASHION_FOLDER, root, FASHION_DEBIAN]


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _fashion_folder(root: Path) -> Path | None:
    """The first folder holding all four IDX files: ``<root>/fashion-mnist``, ``<root>``, Debian's location."""
    for folder in _fashion_candidates(root):
        if all(_find_idx(folder, stem) for stem in FASHION_SHA256):
            return folder
    return None


def _fashion_help(root: Path) -> str:
    return ("Get Fashion-MNIST in one of three ways: (1) put the four IDX files (train-images-idx3-ubyte.gz, "
            "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz, from "
            f"github.com/zalandoresearch/fashion-mnist) in {root / FASHION_FOLDER} (or set RHARM_DATA_ROOT); "
            "(2) on Debian, `apt-get install dataset-fashion-mnist` (installs them under "
            f"{FASHION_DEBIAN}); (3) with internet access, data_source='torchvision' downloads them.")


def load_fashion_mnist(split: str, *, source: str = "auto",
                       root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """One Fashion-MNIST split: images uint8 (N, 28, 28), labels int64 (N,), and a description of the source.

    Args:
        split: "train" (60,000 images) or "test" (10,000).
        source: "idx" (the four IDX files under ``<root>/fashion-mnist/``, ``<root>/`` or Debian's
            ``/usr/share/datasets/fashion-mnist/``), "torchvision" (``torchvision.datasets.FashionMNIST`` with
            ``download=True``, into the cache folder) or "auto" (the IDX files if found, else an existing
            torchvision copy in the cache).
        root: the data root; default :func:`rharm.core.paths.data_root` (env ``RHARM_DATA_ROOT``).

    Every file's decompressed content is checked against :data:`FASHION_SHA256` before use; a mismatch raises
    :class:`ChecksumError`, a missing copy FileNotFoundError naming the three ways to get one.
    """
    _check_choice("split", split, SPLITS)
    _check_choice("data_source", source, FASHION_SOURCES)
    root = Path(root).expanduser() if root is not None else paths.data_root()
    folder = _fashion_folder(root) if source in ("auto", "idx") else None
    tv_folder = paths.cache_root() / "torchvision" / "FashionMNIST" / "raw"
    if folder is None and source == "auto" and _fashion_folder(tv_folder) is not None:
        folder = tv_folder
    if folder is None and source == "torchvision":
        _torchvision_fashion(paths.cache_root() / "torchvision")
        folder = _fashion_folder(tv_folder)
    if folder is None:
        looked = ", ".join(str(p) for p in _fashion_candidates(root))
        raise FileNotFoundError(f"Fashion-MNIST not found (looked in {looked}). {_fashion_help(root)}")
    img_stem, lab_stem = _FASHION_FILES[split]
    arrays = []
    for stem in (img_stem, lab_stem):
        path = _find_idx(folder, stem)
        raw = _read_maybe_gz(path)
        digest = hashlib.sha256(raw).hexdigest()
        if digest != FASHION_SHA256[stem]:
            raise ChecksumError(f"{path}: decompressed sha256 {digest}, expected {FASHION_SHA256[stem]}: the file is "
                                f"corrupt or not Fashion-MNIST. {_fashion_help(root)}")
        arrays.append(_parse_idx(raw, path))
    images, labels = arrays
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise ValueError(f"{folder}: Fashion-MNIST {split} images have shape {images.shape}, labels {labels.shape}")
    where = "Debian dataset-fashion-mnist" if folder == FASHION_DEBIAN else (
        "torchvision download" if folder == tv_folder else "IDX files")
    return images, labels.astype(np.int64), f"Fashion-MNIST ({where})"


def _torchvision_fashion(cache: Path) -> None:
    """Download Fashion-MNIST with torchvision into ``cache`` (never into the data root); offline, a one-line
    :class:`DownloadError` from :func:`_torchvision_download`."""
    import torchvision

    for train in (True, False):
        _torchvision_download(torchvision.datasets.FashionMNIST, train=train, title="Fashion-MNIST (torchvision)")
