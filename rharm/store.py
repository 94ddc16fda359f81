"""A content-addressed store for expensive results.

A result is a folder ``results_root()/<kind>/<key>/`` where ``key`` hashes the resolved configuration together with
the source text of the code that produced it, so a changed parameter or a changed training loop never reuses a stale
result. A result is computed in a temporary sibling folder and renamed into place only when complete, so a killed run
leaves nothing that a later run trusts. Every result folder carries ``config.json`` (the resolved configuration and
the code fingerprint) and ``meta.json`` (wall time, hardware, creation time).

Tensors are saved with :func:`torch.save` and loaded with ``weights_only=True``; arrays with ``allow_pickle=False``.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from . import __version__, paths

COMPLETE_MARKER = "config.json"


def _canonical_json(obj: Any) -> str:
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"config must be JSON-serialisable plain data (dict/list/str/int/float/bool/None, finite floats): {err}"
        ) from err


def code_fingerprint(code: Sequence[ModuleType | Callable | str] = ()) -> str:
    """sha256 over the source text of ``code`` (modules or functions; strings are hashed as given)."""
    h = hashlib.sha256(f"rharm {__version__}".encode())
    for item in code:
        text = item if isinstance(item, str) else inspect.getsource(item)
        h.update(hashlib.sha256(text.encode()).digest())
    return h.hexdigest()


def key(kind: str, config: Mapping[str, Any], code: Sequence[ModuleType | Callable | str] = ()) -> str:
    """The store key of ``config`` under ``kind``: 20 hex digits of sha256(config JSON, code fingerprint)."""
    payload = _canonical_json({"kind": kind, "config": config, "code": code_fingerprint(code)})
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path`` (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def save_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def load_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


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
    with atomic_path(path) as tmp:
        torch.save(plain, tmp)


def load_tensors(path: str | os.PathLike) -> dict:
    """Load a dict of tensors written by :func:`save_tensors`, without running code (``weights_only=True``)."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def hardware() -> dict:
    """CPU model, core count and GPU (if any) of this machine."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "gpu": None, "platform": platform.platform()}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def result_dir(kind: str, config: Mapping[str, Any], code: Sequence = (), root: Path | None = None) -> Path:
    root = Path(root) if root is not None else paths.results_root()
    return root / kind / key(kind, config, code)


def is_complete(folder: Path) -> bool:
    return (folder / COMPLETE_MARKER).is_file() and (folder / "meta.json").is_file()


def cached(
    kind: str,
    config: Mapping[str, Any],
    compute: Callable[[Path], Any],
    *,
    code: Sequence[ModuleType | Callable | str] = (),
    root: Path | None = None,
) -> Path:
    """Return the folder holding the result of ``compute`` for ``config``, computing it only if absent.

    ``compute(tmpdir)`` writes its artefacts into ``tmpdir``; it may return a JSON-serialisable dict, stored in
    ``meta.json`` under ``"extra"``. A complete folder is never overwritten; an incomplete temporary folder (a
    killed run) is never read and is cleaned up on the next call.
    """
    if not isinstance(kind, str) or not kind.isidentifier():
        raise ValueError(f"kind must be an identifier-like string, got {kind!r}")
    final = result_dir(kind, config, code, root)
    if is_complete(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.*.tmp"):
        # left by a killed run; only ours can match this key
        with contextlib.suppress(OSError):
            pid = int(stale.name.split(".")[-2])
            if pid != os.getpid() and not _pid_alive(pid):
                shutil.rmtree(stale, ignore_errors=True)
    tmp = final.parent / f".{final.name}.{os.getpid()}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    start = time.time()
    try:
        extra = compute(tmp)
        meta = {
            "kind": kind,
            "key": final.name,
            "wall_time_s": round(time.time() - start, 3),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "hardware": hardware(),
            "rharm_version": __version__,
            "extra": extra if extra is not None else {},
        }
        save_json(tmp / "meta.json", meta)
        save_json(tmp / COMPLETE_MARKER, {"kind": kind, "config": dict(config), "code": code_fingerprint(code)})
        try:
            os.rename(tmp, final)
        except OSError:
            if is_complete(final):  # another process finished the same result first: keep theirs
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load_meta(folder: Path) -> dict:
    return load_json(Path(folder) / "meta.json")
