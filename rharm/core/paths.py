"""Every location the project reads or writes, in one place.

Each root can be overridden by an environment variable, so the same code runs on a laptop, in CI and on a GPU box:

``RHARM_PROJECT_ROOT``  the compendium folder itself (profiles, notebooks, book); default: the package's parent.
``RHARM_DATA_ROOT``     input data (the CIFAR-10 archive, downloaded datasets); default ``<repo>/../shared/data`` when
                        that folder exists, else ``<repo>/data``.
``RHARM_RESULTS_ROOT``  the content-addressed result store (:mod:`rharm.store`); default ``<repo>/results``.
``RHARM_CACHE_ROOT``    decoded datasets, fetched wheels and other re-creatable caches; default ``<repo>/.cache``.
``RHARM_BOOK_DIR``      where executed notebooks become book pages; default ``<repo>/book``.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # rharm/ (this file is rharm/core/paths.py)


def repo_root() -> Path:
    """The compendium's top folder (holding ``profiles.yml``, ``notebooks/``, ``book/``).

    ``RHARM_PROJECT_ROOT`` overrides it (the tests point it at a small fixture project).
    """
    value = os.environ.get("RHARM_PROJECT_ROOT")
    return Path(value).expanduser().resolve() if value else _PACKAGE_DIR.parent


def _env_path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


def data_root() -> Path:
    shared = repo_root().parent / "shared" / "data"
    return _env_path("RHARM_DATA_ROOT", shared if shared.is_dir() else repo_root() / "data")


def results_root() -> Path:
    return _env_path("RHARM_RESULTS_ROOT", repo_root() / "results")


def cache_root() -> Path:
    return _env_path("RHARM_CACHE_ROOT", repo_root() / ".cache")


def book_dir() -> Path:
    return _env_path("RHARM_BOOK_DIR", repo_root() / "book")


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"


def profiles_file() -> Path:
    return repo_root() / "profiles.yml"


def toc_file() -> Path:
    return repo_root() / "_toc.yml"


def resources_dir() -> Path:
    return _PACKAGE_DIR / "resources"


# --------------------------------------------------------------------------------------------------------------
# Ownership: rharm replaces only what it made
# --------------------------------------------------------------------------------------------------------------

#: written into every output folder rharm creates (``rharm audit --out``); ``--force`` replaces only such a folder
OWNER_MARKER = ".rharm-owned"
#: the marker :func:`rharm.book.runner.render_page` puts in its page folders (also rharm's own)
PAGE_MARKER = ".rharm-page"


class OwnershipError(ValueError):
    """rharm refuses to write or replace a path it does not own; the message (one line) names it and the remedy."""


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path == folder or path.is_relative_to(folder)
    except ValueError:  # pragma: no cover - different drives
        return False


def _protected_roots() -> list[tuple[Path, str]]:
    """Folders rharm never replaces as a whole, nor anything holding them: (resolved path, what it is)."""
    out = [(results_root().resolve(), "the result store"), (repo_root().resolve(), "the rharm project"),
           (book_dir().resolve(), "the book's pages"), (Path.home().resolve(), "your home folder"),
           (Path.cwd().resolve(), "the current folder")]
    return out


def check_output_folder(folder: str | os.PathLike, *, param: str = "--out", force: bool = False,
                        inputs: tuple = ()) -> Path:
    """Check, before anything is computed, that rharm may write the output folder ``folder``; return it resolved.

    A folder that does not exist (its first existing ancestor writable) or is empty may be written. A non-empty one
    is refused unless ``force``; even with ``force`` it is replaced only when rharm made it (it holds
    :data:`OWNER_MARKER`), and never when it is, holds or lies inside the result store, holds the project, the home
    or current folder, or holds one of ``inputs`` (the files being read). Raises :class:`OwnershipError`.
    """
    raw = Path(folder).expanduser()
    out = raw.resolve()
    name = str(folder)
    if out.exists() and not out.is_dir():
        raise OwnershipError(f"{param} {name!r} is a file, not a folder; choose a new folder")
    for root, what in _protected_roots():
        if _inside(root, out):
            raise OwnershipError(f"{param} {name!r} ({out}) holds {what} ({root}); rharm never writes over it: "
                                 "choose a new folder")
    store = results_root().resolve()
    if _inside(out, store):
        raise OwnershipError(f"{param} {name!r} lies inside the result store ({store}); choose a folder outside it")
    for inp in inputs:
        if inp is None:
            continue
        p = Path(inp).expanduser().resolve()
        if _inside(p, out):
            raise OwnershipError(f"{param} {name!r} holds the input {str(inp)!r}; writing there could destroy it: "
                                 "choose a new folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise OwnershipError(f"{param} {name!r} exists and is not empty; choose a new folder or pass --force "
                                 "(replaces only a folder rharm made)")
        if not (out / OWNER_MARKER).is_file():
            raise OwnershipError(f"{param} {name!r} was not made by rharm (it has no {OWNER_MARKER}); --force "
                                 "replaces only rharm's own output folders: move it away or choose a new folder")
    writable_target = out if out.is_dir() else next((p for p in out.parents if p.exists()), Path("/"))
    if not os.access(writable_target, os.W_OK | os.X_OK):
        raise OwnershipError(f"{param} {name!r}: {writable_target} is not writable; choose a writable folder")
    if out.is_dir() and not os.access(out.parent, os.W_OK | os.X_OK):
        raise OwnershipError(f"{param} {name!r}: its parent {out.parent} is not writable (the folder is replaced "
                             "through a rename there); choose a writable place")
    return out


def check_new_file(path: str | os.PathLike, *, param: str, force: bool = False, owned=None) -> Path:
    """Check that rharm may write the file ``path``: new, or (with ``force``) one that ``owned(path)`` says rharm
    wrote. Never a path inside the result store. Raises :class:`OwnershipError`; returns the resolved path."""
    p = Path(path).expanduser().resolve()
    store = results_root().resolve()
    if _inside(p, store):
        raise OwnershipError(f"{param} {str(path)!r} lies inside the result store ({store}); choose a place outside it")
    if p.exists() or p.is_symlink():
        if p.is_dir():
            raise OwnershipError(f"{param} {str(path)!r} is a folder; name a file")
        if not force:
            raise OwnershipError(f"{param} {str(path)!r} exists; pass --force to replace it, or choose another name")
        if owned is not None and not owned(p):
            raise OwnershipError(f"{param} {str(path)!r} exists and was not written by rharm; --force replaces only "
                                 "rharm's own files: move it away or choose another name")
    return p
