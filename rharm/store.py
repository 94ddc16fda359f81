"""A content-addressed store for expensive results.

A result is a folder ``results_root()/<kind>/<key>/`` where ``key`` hashes the resolved configuration together with
the code that produced it (its source without comments and docstrings, :func:`code_text`), so a changed parameter or
a changed training loop never reuses a stale result, and a documentation fix never recomputes one. A result is
computed in a temporary sibling folder and renamed into place only when complete, so a killed run leaves nothing that
a later run trusts. Every result folder carries ``config.json`` (the resolved configuration and
the code fingerprint) and ``meta.json`` (wall time, hardware, creation time, and the size and sha256 of every file).
A folder that is incomplete (no ``meta.json``) or whose files no longer match their recorded size and sha256 (a
truncated or damaged file) is treated as absent: it is moved aside under ``<kind>/.broken/``, one line on stderr says
so, and the result is computed again.

Files are written with the permissions the process umask gives (as ``open`` would), so a store shared by a group is
readable by the group.

Tensors are saved with :func:`torch.save` and loaded with ``weights_only=True``; arrays with ``allow_pickle=False``.
"""

from __future__ import annotations

import ast
import contextlib
import errno
import functools
import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from . import __version__, paths
from .common import sha256_file

COMPLETE_MARKER = "config.json"
BROKEN_DIR = ".broken"  # where unreadable or incomplete results are moved, per kind


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


def _canonical_json(obj: Any) -> str:
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"config must be JSON-serialisable plain data (dict/list/str/int/float/bool/None, finite floats): {err}"
        ) from err


def rharm_imports(module: ModuleType | str) -> list[str]:
    """Every ``rharm`` module ``module`` imports, transitively (module-level and inside functions), itself included.

    Read from the source with :mod:`ast`, so imports inside functions count although they have not run yet.
    Returns sorted dotted names (``rharm.train``, ...).
    """
    name = module if isinstance(module, str) else module.__name__
    seen: set[str] = set()
    todo = [name]
    while todo:
        cur = todo.pop()
        if cur in seen:
            continue
        seen.add(cur)
        mod = importlib.import_module(cur)
        todo += _direct_imports(cur, mod.__file__, os.stat(mod.__file__).st_mtime_ns)
    return sorted(seen)


@functools.lru_cache(maxsize=256)
def _direct_imports(cur: str, file: str, mtime_ns: int) -> tuple[str, ...]:
    """The rharm modules imported by the source file of module ``cur`` (cached per file version)."""
    tree = ast.parse(Path(file).read_text())
    pkg = cur if Path(file).name == "__init__.py" else cur.rpartition(".")[0]
    out: list[str] = []
    for node in ast.walk(tree):
        found: list[str] = []
        if isinstance(node, ast.Import):
            found = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found = [base]
            if base == "rharm" or base.startswith("rharm."):
                for a in node.names:  # "from . import train" names a module, "from .data import x" a member
                    if _is_package(base) and importlib.util.find_spec(f"{base}.{a.name}") is not None:
                        found.append(f"{base}.{a.name}")
        out += [f for f in found if f.startswith("rharm.")]
    return tuple(out)


def _is_package(name: str) -> bool:
    spec = importlib.util.find_spec(name)
    return spec is not None and spec.submodule_search_locations is not None


#: rharm modules that never shape a stored result: where files live, how they are addressed, how charts are drawn
NOT_RESULT_SHAPING = ("rharm.paths", "rharm.store", "rharm.charts")


def code_closure(module: ModuleType | str, exclude: Sequence[str] = NOT_RESULT_SHAPING) -> list[ModuleType]:
    """The modules whose code shapes ``module``'s results: :func:`rharm_imports` less ``exclude``."""
    return [sys.modules[n] if n in sys.modules else importlib.import_module(n)
            for n in rharm_imports(module) if n not in exclude]


def _strip_docs(body: list[ast.stmt]) -> list[ast.stmt]:
    """``body`` without its bare string statements (docstrings); an emptied body becomes ``pass``."""
    kept = [s for s in body
            if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str))]
    return kept or [ast.Pass()]


@functools.lru_cache(maxsize=256)
def code_text(source: str) -> str:
    """``source`` as Python code without comments, docstrings and layout: what an edit must change to change a result.

    The source is parsed with :mod:`ast`, every bare string statement (a docstring, wherever it stands; it has no
    effect when run) is removed and the tree is written back with :func:`ast.unparse`, which drops comments, blank
    lines and formatting. Text that does not parse as Python (a lambda cut out of its line, a plain string) is
    returned unchanged.
    """
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return source
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                setattr(node, field, _strip_docs(block))
    return ast.unparse(tree)


def code_fingerprint(code: Sequence[ModuleType | Callable | str] = ()) -> str:
    """sha256 over the code of ``code`` (modules or functions; strings are hashed as given).

    A module's or function's source is hashed as :func:`code_text` gives it, so editing a comment or a docstring
    keeps every store key (a documentation fix never retrains) while any change to the code itself changes them.
    """
    h = hashlib.sha256(f"rharm {__version__}".encode())
    for item in code:
        text = item if isinstance(item, str) else code_text(inspect.getsource(item))
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


def _manifest(folder: Path) -> dict:
    """``{relative path: {"size", "sha256"}}`` of every file under ``folder``."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out[p.relative_to(folder).as_posix()] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    return out


_VERIFIED: dict[tuple, bool] = {}  # (folder, file, size, mtime) already hashed in this process


def problem(folder: Path) -> str | None:
    """Why the result folder ``folder`` cannot be trusted (None: it is complete and every file is intact).

    Checks that ``config.json`` and ``meta.json`` exist and parse, and every file recorded in ``meta.json``'s
    ``files`` has its recorded size and sha256 (results written before the manifest existed are checked for
    completeness only).
    """
    folder = Path(folder)
    for name in (COMPLETE_MARKER, "meta.json"):
        if not (folder / name).is_file():
            return f"{name} is missing (an interrupted or foreign write)"
    try:
        meta = load_json(folder / "meta.json")
        stored = load_json(folder / COMPLETE_MARKER)
    except UnreadableFileError as err:
        return str(err).split(" is unreadable", 1)[0].rsplit("/", 1)[-1] + " is unreadable (truncated or damaged)"
    if not isinstance(meta, dict) or not isinstance(meta.get("files", {}), (dict, type(None))):
        return f"meta.json is a JSON {type(meta).__name__} without a files record, not rharm's (damaged or foreign)"
    why = config_mismatch(folder, stored)
    if why is not None:
        return why
    for rel, rec in (meta.get("files") or {}).items():
        p = folder / rel
        if not isinstance(rec, dict) or not isinstance(rec.get("size"), int) or not isinstance(rec.get("sha256"), str):
            return f"meta.json's record of {rel} lacks its size or sha256 (damaged or foreign)"
        try:
            st = p.stat()
        except OSError:
            return f"{rel} is missing"
        if st.st_size != rec["size"]:
            return f"{rel} has {st.st_size} bytes, {rec['size']} were written (truncated or damaged)"
        stamp = (str(folder), rel, st.st_size, st.st_mtime_ns)
        if stamp not in _VERIFIED:
            if sha256_file(p) != rec["sha256"]:
                return f"{rel} does not match its recorded sha256 (damaged)"
            _VERIFIED[stamp] = True
    return None


def config_mismatch(folder: Path, stored: Any) -> str | None:
    """Why ``config.json`` (``stored``) does not belong to the key ``folder`` is named by (None: it does).

    A result is addressed by the hash of its kind, configuration and code fingerprint; the stored copy of those must
    hash to the folder's name, so a folder copied or renamed under another key is never trusted.
    """
    if not isinstance(stored, dict) or not {"kind", "config", "code"} <= set(stored):
        return f"{COMPLETE_MARKER} is not rharm's record of kind, config and code (damaged or foreign)"
    try:
        payload = _canonical_json({"kind": stored["kind"], "config": stored["config"], "code": stored["code"]})
    except ValueError:
        return f"{COMPLETE_MARKER} holds a config that cannot be hashed (damaged or foreign)"
    if hashlib.sha256(payload.encode()).hexdigest()[:20] != folder.name or stored["kind"] != folder.parent.name:
        return (f"its {COMPLETE_MARKER} belongs to another key (the folder was copied or renamed), so it is not the "
                "result of this configuration")
    return None


def _move_aside(final: Path, why: str) -> None:
    """Move an untrustworthy result folder to ``<kind>/.broken/`` (never deleted: it may hold evidence)."""
    broken = final.parent / BROKEN_DIR
    broken.mkdir(parents=True, exist_ok=True)
    dest = broken / f"{final.name}.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}.{os.urandom(3).hex()}"
    try:
        os.rename(final, dest)
    except FileNotFoundError:  # another process moved it first
        return
    print(f"rharm: result {final} is unusable ({why}); moved to {dest} and computing it again",
          file=sys.stderr, flush=True)


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
    if final.exists():
        why = problem(final)
        if why is None:
            return final
        _move_aside(final, why)
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
            "files": _manifest(tmp),  # checked on every reuse: a truncated file is never trusted
        }
        save_json(tmp / "meta.json", meta)
        save_json(tmp / COMPLETE_MARKER, {"kind": kind, "config": dict(config), "code": code_fingerprint(code)})
        try:
            os.rename(tmp, final)
        except OSError:
            if problem(final) is None:  # another process finished the same result first: keep theirs
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
