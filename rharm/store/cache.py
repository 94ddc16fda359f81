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

import contextlib
import hashlib
import os
import shutil
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Mapping, Sequence

from rharm import __version__
from rharm.core import paths
from rharm.core.common import sha256_file
from rharm.store.files import UnreadableFileError, canonical_json, load_json, pid_alive, save_json
from rharm.store.fingerprint import code_fingerprint
from rharm.store.recipes import RECIPES

COMPLETE_MARKER = "config.json"
BROKEN_DIR = ".broken"  # where unreadable or incomplete results are moved, per kind


def torch_version() -> str:
    """torch's version as major.minor (``"none"`` without torch): part of every recipe-keyed result's key, since a new
    torch may change a result's last digits."""
    import importlib.metadata

    try:
        return ".".join(importlib.metadata.version("torch").split(".")[:2])
    except importlib.metadata.PackageNotFoundError:
        return "none"


def key_payload(kind: str, config: Mapping[str, Any], code: Sequence[ModuleType | Callable | str] = ()) -> dict:
    """What a key hashes. A kind with a recipe (:data:`rharm.store.recipes.RECIPES`): the kind, the configuration,
    the recipe's version and torch's major.minor. A kind without one (a user's own): the kind, the configuration and
    the fingerprint of ``code``, as every kind was keyed before recipes existed."""
    if kind in RECIPES:
        return {"kind": kind, "config": config, "recipe": RECIPES[kind].version, "torch": torch_version()}
    return {"kind": kind, "config": config, "code": code_fingerprint(code)}


def hash_payload(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(dict(payload)).encode()).hexdigest()[:20]


def key(kind: str, config: Mapping[str, Any], code: Sequence[ModuleType | Callable | str] = ()) -> str:
    """The store key of ``config`` under ``kind``: 20 hex digits of sha256 of :func:`key_payload`."""
    return hash_payload(key_payload(kind, config, code))



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

    A result is addressed by the hash of :func:`key_payload`; the stored copy of it must hash to the folder's name, so
    a folder copied or renamed under another key is never trusted.
    """
    fields = ({"kind", "config", "recipe", "torch"} if isinstance(stored, dict) and "recipe" in stored
              else {"kind", "config", "code"})
    if not isinstance(stored, dict) or not fields <= set(stored):
        return f"{COMPLETE_MARKER} is not rharm's record of kind, config and recipe or code (damaged or foreign)"
    try:
        name = hash_payload({k: stored[k] for k in fields})
    except ValueError:
        return f"{COMPLETE_MARKER} holds a config that cannot be hashed (damaged or foreign)"
    if name != folder.name or stored["kind"] != folder.parent.name:
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
            if pid != os.getpid() and not pid_alive(pid):
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
        # the code fingerprint is provenance for a recipe-keyed kind, part of the key for any other
        save_json(tmp / COMPLETE_MARKER, {**key_payload(kind, dict(config), code), "code": code_fingerprint(code)})
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



def load_meta(folder: Path) -> dict:
    return load_json(Path(folder) / "meta.json")


def canary_output(kind: str) -> list[float]:
    """Run ``kind``'s canary (:data:`rharm.store.recipes.RECIPES`) and return its output."""
    import importlib

    module, _, function = RECIPES[kind].canary.partition(":")
    return [float(v) for v in getattr(importlib.import_module(module), function)()]


def canary_mismatch(kind: str, output: Sequence[float] | None = None) -> str | None:
    """Why ``kind``'s canary output differs from the committed one (None: it matches within the recipe's tolerance)."""
    import numpy as np

    recipe = RECIPES[kind]
    got = np.asarray(canary_output(kind) if output is None else output, dtype=float)
    want = np.asarray(recipe.expected, dtype=float)
    if want.shape != got.shape:
        return f"the canary gives {got.size} numbers, {want.size} are committed"
    if not np.allclose(got, want, rtol=recipe.rtol, atol=recipe.rtol * 1e-2):
        worst = int(np.argmax(np.abs(got - want) / (np.abs(want) + 1e-12)))
        return (f"output {worst} is {got[worst]!r}, {want[worst]!r} is committed (relative tolerance {recipe.rtol}): "
                f"bump RECIPE for {kind} in rharm/store/recipes.py and commit the new canary output")
    return None


def _adopted_config(kind: str, config: Mapping[str, Any], renamed: Mapping[str, str]) -> dict | None:
    """A legacy result's configuration as the current code writes it (None: it names a result not adopted).

    A mediation result names its runs as ``minority|seed|<run folder>``; the folder was an absolute path under the
    old keys and is the run's key now (a store moved to another root keeps its mediation results)."""
    config = dict(config)
    if kind == "mediation":
        runs = []
        for entry in config["runs"]:
            minority, seed, folder = entry.split("|", 2)
            new = renamed.get(Path(folder).name)
            if new is None:
                return None
            runs.append(f"{minority}|{seed}|{new}")
        config["runs"] = sorted(runs)
    return config


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)  # results are never modified in place, so the two keys may share the bytes
    except OSError:
        shutil.copy2(src, dst)


def _adopt(old: Path, stored: Mapping[str, Any], config: Mapping[str, Any]) -> tuple[Path, bool]:
    """Write ``old``'s result under its recipe key (files hard-linked); returns (new folder, whether it was new)."""
    kind = old.parent.name
    payload = key_payload(kind, config)
    new = old.parent / hash_payload(payload)
    if new.exists():
        return new, False
    tmp = old.parent / f".{new.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        meta = load_json(old / "meta.json")
        for rel in meta.get("files") or {}:
            _link_or_copy(old / rel, tmp / rel)
        meta.update(key=new.name, rekeyed_from=old.name, rekeyed=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        save_json(tmp / "meta.json", meta)
        save_json(tmp / COMPLETE_MARKER, {**payload, "code": stored["code"]})
        os.rename(tmp, new)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return new, True


def rekey(root: Path | None = None, *, kinds: Sequence[str] | None = None, check_canary: bool = True) -> dict:
    """Adopt results written under the old code-hash keys as results of their kind's recipe, without recomputing.

    A result is adopted when its recorded code fingerprint is one of its recipe's ``legacy`` fingerprints, its files
    are intact (:func:`problem`) and, unless ``check_canary`` is False, the kind's canary matches its committed output
    today (the code still behaves as the code that wrote it). Its files are hard-linked (copied across file systems)
    into the new key's folder; the old folder is left as it was. Kinds are taken in :data:`RECIPES` order, so the
    runs a mediation result names are adopted before it. Returns ``{kind: {"adopted", "present", "other_code",
    "unusable", "refused"}}``.
    """
    root = Path(root) if root is not None else paths.results_root()
    renamed: dict[str, str] = {}
    report: dict[str, dict] = {}
    for kind in kinds or list(RECIPES):
        counts = {"adopted": 0, "present": 0, "other_code": 0, "unusable": 0, "refused": None}
        report[kind] = counts
        folder = root / kind
        if not folder.is_dir():
            continue
        if check_canary and (why := canary_mismatch(kind)) is not None:
            counts["refused"] = why
            continue
        for old in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if problem(old) is not None:
                counts["unusable"] += 1
                continue
            stored = load_json(old / COMPLETE_MARKER)
            if "recipe" in stored:
                renamed.setdefault(old.name, old.name)
                continue
            config = _adopted_config(kind, stored["config"], renamed)
            if stored["code"] not in RECIPES[kind].legacy or config is None:
                counts["other_code"] += 1
                continue
            new, fresh = _adopt(old, stored, config)
            renamed[old.name] = new.name
            counts["adopted" if fresh else "present"] += 1
    return report
