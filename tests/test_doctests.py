"""Every public function of the harm measures, the audit API and the theory shows how it is called: its docstring
has an ``Example:`` section written as a doctest, which ``python -m pytest`` runs (``--doctest-modules`` over
``rharm/harm`` and ``rharm/theory``, pyproject.toml). The rule is proved able to fail on a planted function."""

from __future__ import annotations

import doctest
import inspect
import re
import sys
import types
from pathlib import Path

import pytest

import rharm.theory
from rharm.harm import audit, mediation, metrics, probe, stats

ROOT = Path(__file__).resolve().parents[1]

#: the modules whose every public function, method and property needs an example
MODULES = (stats, metrics, mediation, audit, probe)

#: public functions without an example, and why (an example would need training, files or the result store)
WITHOUT_EXAMPLE = {
    "rharm.harm.audit.read_table": "reads a .csv or .parquet file",
    "rharm.harm.mediation.cached_mediation_runs": "reads and writes the result store",
    "rharm.harm.mediation.canary": "the store's canary; rharm.store.recipes commits its output (tests/test_recipes.py)",
    "rharm.theory.node.cached_sbm_node_cosines": "reads and writes the result store",
}


def public_functions(module: types.ModuleType) -> dict[str, object]:
    """Qualified name -> function, for the functions of ``module`` and the methods and properties of its classes
    whose names do not start with an underscore (names imported from elsewhere are left to their own module)."""
    out = {}
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj):
            out[f"{module.__name__}.{name}"] = obj
        elif inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if isinstance(member, property):
                    member = member.fget
                if not attr.startswith("_") and inspect.isfunction(member):
                    out[f"{module.__name__}.{name}.{attr}"] = member
    return out


def theory_functions() -> dict[str, object]:
    """The functions among the theory's public names (``rharm.theory.__all__``), by their defining module."""
    out = {}
    for name in rharm.theory.__all__:
        obj = getattr(rharm.theory, name)
        if inspect.isfunction(obj):
            out[f"{obj.__module__}.{obj.__qualname__}"] = obj
        elif inspect.isclass(obj):
            out.update({k: v for k, v in public_functions(sys.modules[obj.__module__]).items()
                        if k.startswith(f"{obj.__module__}.{name}.")})
    return out


def has_example(function: object) -> bool:
    """An ``Example:`` (or ``Examples:``) heading followed by at least one doctest."""
    doc = inspect.getdoc(function) or ""
    heading = re.search(r"^Examples?:$", doc, re.M)
    return heading is not None and bool(doctest.DocTestParser().get_examples(doc[heading.end():]))


def missing_examples(functions: dict[str, object]) -> list[str]:
    return sorted(name for name, f in functions.items() if name not in WITHOUT_EXAMPLE and not has_example(f))


def all_functions() -> dict[str, object]:
    out = theory_functions()
    for module in MODULES:
        out.update(public_functions(module))
    return out


def test_every_public_function_has_an_example():
    functions = all_functions()
    assert len(functions) > 90  # the rule looks at what it should
    assert missing_examples(functions) == [], "add an Example: section (a doctest) to these, or a reason to " \
                                              "WITHOUT_EXAMPLE"


def test_every_exemption_names_a_public_function_without_an_example():
    functions = all_functions()
    for name in WITHOUT_EXAMPLE:
        assert name in functions, f"{name} is no longer a public function: drop it from WITHOUT_EXAMPLE"
        assert not has_example(functions[name]), f"{name} has an example now: drop it from WITHOUT_EXAMPLE"


def test_the_rule_fails_on_a_planted_function_without_an_example():
    planted = types.ModuleType("rharm.harm.planted")
    source = '''
def documented(x):
    """Twice x.

    Example:
        >>> documented(2)
        4
    """
    return 2 * x


def undocumented(x):
    """Twice x, with no example."""
    return 2 * x


def prose_only(x):
    """Twice x.

    Example:
        call it with a number.
    """
    return 2 * x


class Thing:
    def method(self):
        """No example either."""

    @property
    def size(self):
        """Example:
            >>> Thing().size
            1
        """
        return 1
'''
    exec(compile(source, "<planted>", "exec"), planted.__dict__)
    assert missing_examples(public_functions(planted)) == [
        "rharm.harm.planted.Thing.method", "rharm.harm.planted.prose_only", "rharm.harm.planted.undocumented"]


def test_pytest_collects_the_doctests_of_harm_and_theory_only():
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--doctest-modules" in config["addopts"]
    assert [p for p in config["testpaths"] if p.startswith("rharm")] == ["rharm/harm", "rharm/theory"]
    assert "tests" in config["testpaths"]


def test_the_examples_are_found_by_doctest():
    """Each example is a doctest of its own module (the audit module is callable, its functions stay findable)."""
    finder = doctest.DocTestFinder()
    found = {t.name for module in (*MODULES, *{sys.modules[f.__module__] for f in theory_functions().values()})
             for t in finder.find(module) if t.examples}
    wanted = {name for name, f in all_functions().items() if has_example(f)}
    assert wanted <= found, sorted(wanted - found)
