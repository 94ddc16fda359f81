"""Small primitives several rharm modules share, each defined once here (the modules that used them re-export them).

Only the standard library is imported, so every module (the numpy-only statistics included) may use them.
"""

from __future__ import annotations

import hashlib
import math
import os
from typing import Any, Iterable, Mapping

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


def plain_json(value: Any) -> Any:
    """JSON-ready copy: numpy scalars/arrays, pandas frames and NaN (as null) converted."""
    import numpy as np  # here, so importing this module needs only the standard library

    if isinstance(value, Mapping):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # a DataFrame: a list of records
        return [plain_json(r) for r in value.to_dict(orient="records")]
    if isinstance(value, np.ndarray):
        return plain_json(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return None if not math.isfinite(v) else v
    return value


def fmt_sig(value: float, digits: int = 3) -> str:
    """A number with ``digits`` significant digits in plain (not scientific) notation, never ``-0``; below 1e-5 in
    magnitude in scientific notation (``8.95e-06``: a plain 0.00000895 is unreadable)."""
    if value is None or not math.isfinite(float(value)):
        return "–"
    v = float(value)
    if v == 0:
        return "0"
    if abs(v) < 1e-5:
        return f"{v:.{max(digits - 1, 0)}e}"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(v)))))
    s = f"{v:.{decimals}f}"
    return s[1:] if s.startswith("-") and float(s) == 0 else s
