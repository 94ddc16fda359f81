"""The package's layers hold: no module imports from a higher layer or from a sibling package of its own layer, no
modules import each other in a circle, no private name crosses a module boundary, and no module uses a flat name
that moved (``rharm.train`` instead of ``rharm.vision.train``). Each rule is proved able to fail on a planted case."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rharm

PACKAGE = Path(rharm.__file__).resolve().parent

#: the floor of each subpackage, ground first (see rharm/__init__.py)
LAYERS = {"core": 1, "store": 2, "vision": 3, "language": 3, "theory": 3, "harm": 4, "runs": 5, "study": 6,
          "page": 7, "report": 8, "book": 9}

#: packages a package may not import although they stand lower: the harm measures work on features, so they import
#: no training code (an audit of a user's encoder never pulls in SimCLR or SimCSE)
FORBIDDEN = {"harm": ("vision", "language")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = all_modules()


def resolve(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    base = node.module or ""
    if node.level:
        parts = name.split(".") if is_package else name.split(".")[:-1]
        parts = parts[: len(parts) - node.level + 1]
        base = ".".join(parts + ([base] if base else []))
    return base


def imports_of(name: str, source: str, is_package: bool) -> list[tuple[str, str, int]]:
    """``(target module, imported name or '', line)`` for every rharm import in ``source`` (anywhere in the file,
    TYPE_CHECKING blocks included); ``from pkg import mod`` counts as importing ``pkg.mod``."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(a.name, "", node.lineno) for a in node.names if a.name.split(".")[0] == "rharm"]
        elif isinstance(node, ast.ImportFrom):
            base = resolve(node, name, is_package)
            if base.split(".")[0] != "rharm":
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.append((sub, "", node.lineno) if sub in MODULES or a.name in rharm.MOVED and base == "rharm"
                           else (base, a.name, node.lineno))
    return out


def layer(module: str) -> tuple[int, str]:
    parts = module.split(".")
    if len(parts) == 1:
        return 0, "rharm"
    return LAYERS[parts[1]], parts[1]


def violations(modules: dict[str, str]) -> list[str]:
    """Every broken rule in ``modules`` (name -> source)."""
    bad = []
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, source in modules.items():
        is_package = MODULES.get(mod, Path("x.py")).name == "__init__.py"
        own, own_pkg = layer(mod)
        for target, member, line in imports_of(mod, source, is_package):
            where = f"{mod}:{line}"
            if target.split(".", 1)[-1] in rharm.MOVED and target.count(".") == 1:
                bad.append(f"{where} imports the moved name {target}; use rharm.{rharm.MOVED[target.split('.')[1]]}")
                continue
            if target == "rharm":
                if member not in ("__version__",):
                    bad.append(f"{where} imports {member!r} from the top package")
                continue
            their, their_pkg = layer(target)
            if their > own:
                bad.append(f"{where} imports {target} from a higher layer ({their_pkg} {their} > {own_pkg} {own})")
            elif their_pkg in FORBIDDEN.get(own_pkg, ()):
                bad.append(f"{where} imports {target}: {own_pkg} imports no training code ({their_pkg})")
            elif their == own and their_pkg != own_pkg:
                bad.append(f"{where} imports {target} from a sibling package of its layer ({their_pkg})")
            if member.startswith("_") and not member.startswith("__") and target != mod:
                bad.append(f"{where} imports the private name {member} from {target}")
            if target != mod and target in modules:
                graph[mod].add(target)
        bad += private_attributes(mod, source)
    bad += [f"circle: {' -> '.join(c)}" for c in circles(graph)]
    return bad


def private_attributes(mod: str, source: str) -> list[str]:
    """``other._name`` where ``other`` is an rharm module imported under that name."""
    tree = ast.parse(source)
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("rharm")):
            aliases |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Import):
            aliases |= {a.asname or a.name.split(".")[0] for a in node.names if a.name.startswith("rharm")}
    return [f"{mod}:{node.lineno} uses the private name {node.value.id}.{node.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
            and node.attr.startswith("_") and not node.attr.startswith("__") and node.value.id != "rharm"]


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def sources() -> dict[str, str]:
    return {m: p.read_text() for m, p in MODULES.items()}


def test_every_subpackage_has_a_layer():
    found = {m.split(".")[1] for m in MODULES if m.count(".") >= 1}
    assert found <= set(LAYERS), found - set(LAYERS)


def test_the_layers_hold():
    bad = violations(sources())
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("planted, expect", [
    ({"rharm.harm.metrics": "from rharm.runs import images\n"}, "higher layer"),
    ({"rharm.harm.metrics": "from rharm.vision import train\n"}, "no training code"),
    ({"rharm.harm.metrics": "from rharm.page import charts\n"}, "higher layer"),
    ({"rharm.vision.data": "from rharm.language import data\n"}, "sibling package"),
    ({"rharm.harm.stats": "from rharm.harm.metrics import _as_numpy\n"}, "private name"),
    ({"rharm.harm.stats": "from rharm.harm import metrics\nmetrics._helper()\n"}, "private name metrics._helper"),
    ({"rharm.harm.stats": "from rharm import train\n"}, "moved name"),
    ({"rharm.harm.stats": "from rharm.harm import metrics\n", "rharm.harm.metrics": "from . import stats\n"},
     "circle"),
])
def test_each_rule_can_fail(planted, expect):
    modules = {**sources(), **planted}
    assert any(expect in line for line in violations(modules)), expect


MAX_FUNCTION_LINES = 80


def long_functions(modules: dict[str, str], limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``module.function (n lines)`` for every function or method longer than ``limit`` lines (docstring included)."""
    out = []
    for mod, source in modules.items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > limit:
                    out.append(f"{mod}.{node.name} ({n} lines)")
    return out


def test_no_function_is_over_80_lines():
    assert long_functions(sources()) == []


def test_the_length_rule_can_fail():
    planted = "def big():\n" + "    x = 1\n" * MAX_FUNCTION_LINES
    found = long_functions({"rharm.harm.planted": planted})
    assert found == [f"rharm.harm.planted.big ({MAX_FUNCTION_LINES + 1} lines)"]
