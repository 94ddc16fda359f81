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

_PACKAGE_DIR = Path(__file__).resolve().parent


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
