"""What code a result came from: the rharm modules a computation imports and a hash of their code without comments,
docstrings or layout. Recorded in every result's ``config.json`` as provenance; it is not part of the key
(:mod:`rharm.store.cache`)."""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Callable, Sequence

from rharm import __version__


def rharm_imports(module: ModuleType | str) -> list[str]:
    """Every ``rharm`` module ``module`` imports, transitively (module-level and inside functions), itself included.

    Read from the source with :mod:`ast`, so imports inside functions count although they have not run yet.
    Returns sorted dotted names (``rharm.vision.train``, ...).
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
NOT_RESULT_SHAPING = ("rharm.core.paths", "rharm.store", "rharm.page.charts")


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

