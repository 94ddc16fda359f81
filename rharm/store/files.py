"""Writing and reading the store's files safely: atomic renames, the umask's permissions, a full disk named as such,
JSON without NaN, tensors loaded with ``weights_only=True`` and arrays without pickles."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from rharm.core import paths


class DiskFullError(OSError):
    """Writing a file failed because its file system is (nearly) full; the message says how much was needed where."""

    def __str__(self) -> str:  # one line, without OSError's "[Errno 28] ...: 'path'" decoration
        return str(self.strerror)


class UnreadableFileError(ValueError):
    """A stored file cannot be read back (truncated or damaged); the message names the file and the remedy."""


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: /proc/self/status)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no other way to read it: set and restore at once
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode ``open(path, "w")`` would give a new file: 0o666 less the umask."""
    return 0o666 & ~_umask()


def dir_mode() -> int:
    """The mode ``mkdir`` would give a new folder: 0o777 less the umask."""
    return 0o777 & ~_umask()


def _free_bytes(folder: Path) -> int:
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return -1


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def disk_full_error(path: str | os.PathLike, needed: int | None = None, cause: BaseException | None = None) -> DiskFullError:
    """A :class:`DiskFullError` naming ``path``, the bytes ``needed`` (when known) and the space left there."""
    path = Path(path)
    free = _free_bytes(path.parent)
    need = f"about {_mb(needed)} needed, " if needed else ""
    left = f"{_mb(free)} free" if free >= 0 else "free space unknown"
    why = f" ({type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''})" if cause else ""
    return DiskFullError(errno.ENOSPC, f"disk full writing {path}: {need}{left} on that file system{why}; free some "
                                       f"space or point RHARM_RESULTS_ROOT / RHARM_CACHE_ROOT elsewhere", str(path))


def guarded_write(path: str | os.PathLike, write: Callable[[], Any], needed: int | None = None) -> Any:
    """Run ``write()`` (which writes ``path``); a failure caused by a full disk becomes a :class:`DiskFullError`.

    torch's writer reports a full disk as ``basic_ios::clear`` or ``file write failed``, without errno; it is
    recognised by checking the free space left beside ``path`` against ``needed`` bytes.
    """
    try:
        return write()
    except DiskFullError:
        raise
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full_error(path, needed, err) from err
        raise
    except RuntimeError as err:
        free = _free_bytes(Path(path).parent)
        if 0 <= free < max(needed or 0, 1 << 20):
            raise disk_full_error(path, needed, err) from err
        raise


def canonical_json(obj: Any) -> str:
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"config must be JSON-serialisable plain data (dict/list/str/int/float/bool/None, finite floats): {err}"
        ) from err



@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path`` (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())  # mkstemp makes 0600; the final file gets what the umask gives, as open() would
    finally:
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def save_json(path: str | os.PathLike, obj: Any) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"
    with atomic_path(path) as tmp:
        guarded_write(path, lambda: tmp.write_text(text), len(text.encode()))


def _unreadable(path: Path, err: BaseException) -> UnreadableFileError:
    first = str(err).splitlines()[0] if str(err) else ""
    where = ""
    with contextlib.suppress(OSError, ValueError):
        root = paths.results_root().resolve()
        rel = Path(path).resolve().relative_to(root)
        if len(rel.parts) >= 3:  # <kind>/<key>/<file>: the whole result is re-creatable
            where = f" (or its result folder {root / rel.parts[0] / rel.parts[1]}: the next run computes it again)"
    return UnreadableFileError(
        f"{path} is unreadable ({type(err).__name__}: {first[:200]}): the file is truncated or damaged; delete it"
        + where
    )


def load_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a damaged one raises :class:`UnreadableFileError` naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise _unreadable(path, err) from err


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, Any]) -> None:
    """Save a flat dict of tensors/arrays atomically; numpy arrays are stored as tensors."""
    import torch

    plain = {}
    for name, value in tensors.items():
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.ascontiguousarray(value))
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"save_tensors: entry {name!r} is {type(value).__name__}, expected a tensor or array")
        plain[name] = value.detach().cpu()
    needed = sum(t.numel() * t.element_size() for t in plain.values())
    with atomic_path(path) as tmp:
        guarded_write(path, lambda: torch.save(plain, tmp), needed)


def load_tensors(path: str | os.PathLike) -> dict:
    """Load a dict of tensors written by :func:`save_tensors`, without running code (``weights_only=True``).

    A truncated or damaged file raises :class:`UnreadableFileError` naming it (torch's own message names neither
    the file nor a remedy).
    """
    import pickle

    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError, OSError) as err:
        raise _unreadable(path, err) from err



def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

