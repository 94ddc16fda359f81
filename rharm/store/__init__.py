"""The result store: expensive results computed once, kept as files, found again by their key.

* :mod:`rharm.store.files`: atomic writes with the umask's permissions, a full disk named as such, JSON and
  tensors read back without running code;
* :mod:`rharm.store.fingerprint`: the code a result came from (provenance);
* :mod:`rharm.store.recipes`: each stored kind's recipe version and canary;
* :mod:`rharm.store.cache`: :func:`cached`, keys, integrity checks and :func:`rekey`.

**Adding a stored kind.** Give it an entry in :data:`rharm.store.recipes.RECIPES` (version 1, a canary function
``module:function`` in the module that computes the kind, returning a few floats from a tiny deterministic run of
the same code path, and its output, which ``tests/test_recipes.py`` prints when it is missing), and call
``cached(kind, config, compute, code=...)``. Bump the version whenever a change is meant to alter that kind's
results; the canary test fails when the output changes and the version did not.
"""

from rharm.store import cache, files, fingerprint, recipes
from rharm.store.cache import (
    BROKEN_DIR,
    COMPLETE_MARKER,
    cached,
    canary_mismatch,
    canary_output,
    config_mismatch,
    hardware,
    is_complete,
    key,
    key_payload,
    load_meta,
    problem,
    rekey,
    result_dir,
    torch_version,
)
from rharm.store.files import (
    DiskFullError,
    UnreadableFileError,
    atomic_path,
    dir_mode,
    disk_full_error,
    file_mode,
    guarded_write,
    load_json,
    load_tensors,
    pid_alive,
    save_json,
    save_tensors,
)
from rharm.store.fingerprint import NOT_RESULT_SHAPING, code_closure, code_fingerprint, code_text, rharm_imports
from rharm.store.recipes import RECIPES, Recipe

__all__ = [
    "BROKEN_DIR", "COMPLETE_MARKER", "NOT_RESULT_SHAPING", "cache", "files", "fingerprint", "recipes", "RECIPES", "DiskFullError", "Recipe", "UnreadableFileError", "atomic_path",
    "cached", "canary_mismatch", "canary_output", "code_closure", "code_fingerprint", "code_text", "config_mismatch",
    "dir_mode", "disk_full_error", "file_mode", "guarded_write", "hardware", "is_complete", "key", "key_payload",
    "load_json", "load_meta", "load_tensors", "pid_alive", "problem", "rekey", "result_dir", "rharm_imports",
    "save_json", "save_tensors", "torch_version",
]
