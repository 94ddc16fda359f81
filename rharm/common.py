"""Small primitives several rharm modules share, each defined once here (the modules that used them re-export them).

Only the standard library is imported, so every module (the numpy-only statistics included) may use them.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Iterable

#: Class names in CIFAR-10's label order (label k is ``CIFAR10_CLASSES[k]``), as torchvision's ``CIFAR10`` gives them.
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)


class ChecksumError(ValueError):
    """A file's sha256 differs from the expected one (the message names the file and both digests)."""


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of the bytes of the file at ``path``, read ``chunk`` bytes at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``; otherwise raise ValueError naming the parameter ``name``, the bad
    value and the valid ones."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not valid; choose one of {choices}")
    return value
