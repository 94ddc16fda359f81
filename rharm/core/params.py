"""Notebook parameters and profiles.

Every notebook's parameters, and the named profiles that set them, live in one file, ``profiles.yml``::

    theory:
      title: "..."
      parameters:
        alpha: {type: float, range: [0.0, 1.0], help: "..."}
      profiles:
        smoke: {alpha: 0.4}
        cpu:   {alpha: 0.4}
        gpu:   {alpha: 0.4}

A notebook's ``parameters`` cell sets ``profile = "cpu"`` and every other parameter to ``None``. Its first code cell
calls :func:`check`, which fills the ``None`` values from the chosen profile, validates every value and rejects
unknown names *before* any computation, so ``papermill nb.ipynb out.ipynb -p alpha 2`` fails at once with a message
naming the parameter, the value and what is allowed.

A section may also list ``rules``: conditions that involve several parameters, named, each a Python expression over
the parameter names with a message, checked with the values (so before any kernel starts in ``rharm run``)::

    rules:
      minority_keeps_an_image:
        check: "ratio <= n_per_class"
        message: "the minority class keeps n_per_class // ratio images: none at this ratio"

Rules are a mapping, so YAML merge keys (``<<: *anchor``) share them between sections. Expressions may use the
parameter names, literals, arithmetic, comparisons, ``and``/``or``/``not``, ``in``, indexing, comprehensions and
``len``, ``min``, ``max``, ``all``, ``any``, ``set``, ``sum``, ``int``, ``float``; nothing else is evaluated.

Numbers follow YAML 1.2 in ``profiles.yml`` and in ``-p`` values: ``1e-10`` is a float (YAML 1.1 reads it as a string).
"""

from __future__ import annotations

import ast
import os
import re
import time
import types
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml

from rharm.core import paths
from rharm.core.schema import TYPES, ParameterError, Spec
from rharm.core.schema import spec as schema_spec

PROFILES = ("smoke", "cpu", "gpu")
DEFAULT_PROFILE = "cpu"
# names IPython and papermill put into a kernel's namespace; never treated as parameters
_KERNEL_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open", "P"}
# the first line papermill writes into the cell it injects (papermill.translators: comment("Parameters"))
_INJECTED_HEADER = "# Parameters"


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with the YAML 1.2 core schema's scalars instead of YAML 1.1's.

    ``1e-10`` and ``1E5`` are floats (1.1: strings); ``010`` is ten (1.1: octal 8); ``1:30`` is a string (1.1:
    sexagesimal 90); ``yes``/``no``/``on``/``off`` are strings (1.1: booleans); ``2024-01-01`` is a string (1.1: a
    date); ``1_000`` is a string. Octal and hexadecimal need their 1.2 prefixes ``0o17``, ``0x1F``. Merge keys
    (``<<``) keep working.
    """


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag == "tag:yaml.org,2002:merge"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_YAML12_SCALARS = (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     list("-+0123456789.")),
)
for _tag, _rx, _first in _YAML12_SCALARS:
    _Yaml12Loader.add_implicit_resolver(_tag, re.compile(_rx), _first)


def _yaml12_int(loader, node) -> int:
    text = loader.construct_scalar(node)
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text, 10)  # "010" is ten


def _yaml12_float(loader, node) -> float:
    text = loader.construct_scalar(node).lower()
    return float(text.replace(".inf", "inf").replace(".nan", "nan"))


def _yaml12_bool(loader, node) -> bool:
    return loader.construct_scalar(node).lower() == "true"


_Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _yaml12_int)
_Yaml12Loader.add_constructor("tag:yaml.org,2002:float", _yaml12_float)
_Yaml12Loader.add_constructor("tag:yaml.org,2002:bool", _yaml12_bool)


def yaml_load(text) -> Any:
    """``yaml.safe_load`` with YAML 1.2 numbers (see :class:`_Yaml12Loader`)."""
    return yaml.load(text, Loader=_Yaml12Loader)


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> dict:
    with open(path) as fh:
        data = yaml_load(fh) or {}
    if not isinstance(data, dict):
        raise ParameterError(f"{path}: expected a mapping of notebook names")
    return {k: v for k, v in data.items() if not str(k).startswith("_")}


def load_profiles(path: str | Path | None = None) -> dict:
    """The parsed ``profiles.yml`` (notebook name -> section); keys starting with ``_`` (anchors) are skipped."""
    path = Path(path) if path is not None else paths.profiles_file()
    return _load(str(path), path.stat().st_mtime)


def notebook_names(path: str | Path | None = None) -> list[str]:
    return list(load_profiles(path))


def _section(notebook: str, path: str | Path | None = None) -> dict:
    sections = load_profiles(path)
    if notebook not in sections:
        raise ParameterError(
            f"notebook {notebook!r} has no section in profiles.yml; known notebooks: {', '.join(sections)}"
        )
    return sections[notebook]


def specs(notebook: str, path: str | Path | None = None) -> dict[str, Spec]:
    """The parameter specs of ``notebook``, in declaration order."""
    out = {}
    for name, raw in (_section(notebook, path).get("parameters") or {}).items():
        if isinstance(raw, dict) and "schema" in raw:  # the shared schema's spec, optionally narrowed
            fields = _spec_fields(notebook, name, {k: v for k, v in raw.items() if k != "schema"})
            try:
                out[name] = schema_spec(raw["schema"]).narrowed(name=name, **fields)
            except ParameterError as err:
                raise ParameterError(f"profiles.yml: {notebook}.{name}: {err}") from None
            continue
        if not isinstance(raw, dict) or raw.get("type") not in TYPES:
            raise ParameterError(
                f"profiles.yml: {notebook}.{name} needs a type among {', '.join(TYPES)} or a schema name "
                f"({{schema: <name>}}, rharm.core.schema.SPECS), got {raw!r}"
            )
        out[name] = Spec(name=name, **_spec_fields(notebook, name, raw))
    return out


def _spec_fields(notebook: str, name: str, raw: dict) -> dict:
    """The :class:`Spec` fields a profiles.yml declaration gives (type, help, range, choices, min_len)."""
    unknown = sorted(set(raw) - {"type", "help", "range", "choices", "min_len"})
    if unknown:
        raise ParameterError(f"profiles.yml: {notebook}.{name} has unknown key(s) {unknown}")
    fields: dict[str, Any] = {}
    if "type" in raw:
        fields["type"] = raw["type"]
    if "help" in raw:
        fields["help"] = raw["help"]
    rng = raw.get("range")
    if rng is not None:
        try:
            lo, hi = (float(v) for v in rng)
        except (TypeError, ValueError):
            raise ParameterError(
                f"profiles.yml: {notebook}.{name}.range must be two numbers [lo, hi], got {rng!r} "
                "(YAML reads 1.0e6 as a string: write 1.0e+6)"
            ) from None
        fields["range"] = (lo, hi)
    if raw.get("choices") is not None:
        fields["choices"] = tuple(raw["choices"])
    if "min_len" in raw:
        fields["min_len"] = int(raw["min_len"])
    return fields


@dataclass(frozen=True)
class Rule:
    """A condition on several parameters of one notebook: ``check`` (an expression) must be true."""

    name: str
    check: str
    message: str
    names: tuple[str, ...]  # the parameters the expression reads, in order of appearance


_RULE_CALLS = {"len": len, "min": min, "max": max, "all": all, "any": any, "set": set, "sum": sum, "int": int,
               "float": float, "abs": abs}
_RULE_NODES = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd, ast.BinOp,
               ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Compare, ast.Eq, ast.NotEq, ast.Lt,
               ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Name, ast.Load, ast.Store, ast.Constant,
               ast.Subscript, ast.Slice, ast.List, ast.Tuple, ast.Set, ast.Call, ast.IfExp, ast.GeneratorExp,
               ast.ListComp, ast.comprehension)


def _compile_rule(notebook: str, name: str, raw: Any, declared: Mapping[str, Spec]) -> Rule:
    where = f"profiles.yml: {notebook}.rules.{name}"
    if not isinstance(raw, dict) or not isinstance(raw.get("check"), str) or not isinstance(raw.get("message"), str):
        raise ParameterError(f"{where} needs 'check' (an expression) and 'message' (text), got {raw!r}")
    try:
        tree = ast.parse(raw["check"], mode="eval")
    except SyntaxError as err:
        raise ParameterError(f"{where}: check {raw['check']!r} is not an expression ({err.msg})") from None
    bound = {n.id for c in ast.walk(tree) if isinstance(c, ast.comprehension) for n in ast.walk(c.target)
             if isinstance(n, ast.Name)}
    names: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, _RULE_NODES):
            raise ParameterError(f"{where}: {type(node).__name__} is not allowed in a rule ({raw['check']!r})")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in _RULE_CALLS):
            raise ParameterError(f"{where}: only {sorted(_RULE_CALLS)} may be called in a rule ({raw['check']!r})")
        if isinstance(node, ast.Name) and node.id not in _RULE_CALLS and node.id not in bound:
            if node.id not in declared:
                raise ParameterError(f"{where}: {node.id!r} is not a parameter of {notebook!r} ({raw['check']!r})")
            if node.id not in names:
                names.append(node.id)
    return Rule(name=name, check=raw["check"], message=raw["message"], names=tuple(names))


def rules(notebook: str, path: str | Path | None = None) -> list[Rule]:
    """The cross-parameter rules of ``notebook`` (``rules:`` in its profiles.yml section), compiled and checked."""
    raw = _section(notebook, path).get("rules") or {}
    if not isinstance(raw, dict):
        raise ParameterError(f"profiles.yml: {notebook}.rules must be a mapping of rule names, got {type(raw).__name__}")
    declared = specs(notebook, path)
    return [_compile_rule(notebook, name, r, declared) for name, r in raw.items()]


def check_rules(notebook: str, values: Mapping[str, Any], path: str | Path | None = None) -> None:
    """Raise :class:`ParameterError` naming the parameters, their values and the rule when one does not hold."""
    for rule in rules(notebook, path):
        env = {"__builtins__": {}, **_RULE_CALLS, **{n: values[n] for n in rule.names}}
        try:
            ok = bool(eval(compile(rule.check, f"<rule {rule.name}>", "eval"), env))  # noqa: S307 - AST-checked
        except Exception as err:  # e.g. an index into an empty list: the values do not satisfy the rule
            ok, why = False, f" ({type(err).__name__}: {err})"
        else:
            why = ""
        if not ok:
            given = ", ".join(f"{n} = {values[n]!r}" for n in rule.names)
            raise ParameterError(f"parameters {given} are not valid together: {rule.message} "
                                 f"(rule {rule.name!r}: {rule.check}){why}")


def profile_values(notebook: str, profile: str, path: str | Path | None = None) -> dict[str, Any]:
    """The parameter values ``profile`` sets for ``notebook`` (validated)."""
    if profile not in PROFILES:
        raise ParameterError(f"parameter profile={profile!r} is not valid; valid profiles: {', '.join(PROFILES)}")
    section = _section(notebook, path)
    profiles = section.get("profiles") or {}
    if profile not in profiles:
        raise ParameterError(f"profiles.yml: notebook {notebook!r} has no profile {profile!r}")
    values = dict(profiles[profile] or {})
    spec = specs(notebook, path)
    missing = [n for n in spec if n not in values]
    unknown = [n for n in values if n not in spec]
    if missing or unknown:
        raise ParameterError(
            f"profiles.yml: {notebook}.profiles.{profile} must set exactly the declared parameters; "
            f"missing {missing}, undeclared {unknown}"
        )
    return {n: spec[n].validate(values[n]) for n in spec}


def resolve(notebook: str, given: Mapping[str, Any], path: str | Path | None = None) -> tuple[str, dict]:
    """Merge ``given`` (None = take the profile's value) over the profile named by ``given['profile']``."""
    profile = given.get("profile") or DEFAULT_PROFILE
    spec = specs(notebook, path)
    unknown = sorted(set(given) - set(spec) - {"profile"})
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for notebook {notebook!r}; "
            f"valid parameters: profile, {', '.join(spec)}"
        )
    values = profile_values(notebook, profile, path)
    for name, value in given.items():
        if name != "profile" and value is not None:
            values[name] = _check_list(spec[name], spec[name].validate(value))
    check_rules(notebook, values, path)
    return profile, values


#: the most items a list parameter may hold (a grid of more runs than this is a mistake, not a study)
MAX_LIST_LEN = 64


def _check_list(spec: Spec, value: Any) -> Any:
    """A list parameter's value, refused when longer than :data:`MAX_LIST_LEN` or holding an item twice."""
    if not isinstance(value, list):
        return value
    if len(value) > MAX_LIST_LEN:
        raise ParameterError(f"parameter {spec.name} has {len(value)} items; at most {MAX_LIST_LEN} are allowed "
                             f"(each item is a run or a grid point): give fewer")
    seen, dup = set(), []
    for v in value:
        if v in seen and v not in dup:
            dup.append(v)
        seen.add(v)
    if dup:
        raise ParameterError(f"parameter {spec.name}={value!r} repeats {dup}; each item may appear once "
                             f"(a repeated {spec.name[:-1] if spec.name.endswith('s') else 'item'} would be one run "
                             "counted twice)")
    return value


def check_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Overrides given on a command line (``-p NAME VALUE``) or to :func:`rharm.book.runner.run`, before anything
    else: ``profile`` is chosen with ``--profile`` (it names the output), and ``null`` is not a value (leave the
    parameter out to get the profile's value). Raises :class:`ParameterError`; returns a copy."""
    out = dict(overrides)
    if "profile" in out:
        raise ParameterError(f"-p profile {out['profile']!r}: the profile is not a parameter here; use --profile "
                             f"{out['profile']} (valid: {', '.join(PROFILES)})")
    for name, value in out.items():
        if value is None:
            raise ParameterError(f"-p {name} null: null is not a value; leave -p {name} out to use the profile's "
                                 "value, or give one")
    return out


@dataclass
class Params:
    """Resolved notebook parameters: ``P.alpha``, ``P.values``, ``P.profile``, ``P.overrides``."""

    notebook: str
    profile: str
    values: dict
    overrides: dict = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(f"notebook {self.__dict__.get('notebook')!r} has no parameter {name!r}")


def _candidate_names(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """User-level variables of a kernel namespace: what the parameters and injected-parameters cells defined."""
    out = {}
    for name, value in namespace.items():
        if name.startswith("_") or name in _KERNEL_NAMES:
            continue
        if isinstance(value, (types.ModuleType, types.FunctionType, type, types.BuiltinFunctionType)):
            continue
        out[name] = value
    return out


def _injected_names(namespace: Mapping[str, Any]) -> list[str]:
    """Every name assigned in the cell papermill injected (found in the kernel's input history ``In``).

    ``_candidate_names`` must skip ``_``-names and ``P`` (IPython's and this module's own); a name injected by
    papermill is a parameter whatever it looks like, so it is read from the injected cell's source instead.
    """
    history = namespace.get("In")
    if not isinstance(history, list):
        return []
    names: list[str] = []
    for source in history:
        if isinstance(source, str) and source.lstrip().startswith(_INJECTED_HEADER):
            try:
                tree = ast.parse(source)
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id not in names:
                    names.append(node.id)
    return names


def check(notebook: str, namespace: dict, path: str | Path | None = None) -> Params:
    """Validate a notebook's parameters; call it in the first code cell with ``globals()``.

    Fills ``None`` parameters from the profile and rejects unknown names and invalid values with a
    :class:`ParameterError` naming the parameter, the value and the valid values. ``namespace`` is only read: a
    chapter reads every parameter as ``P.<name>`` (the bare names keep the parameters cell's ``None``).
    """
    given = _candidate_names(namespace)
    for name in _injected_names(namespace):  # e.g. papermill -p _x 1 or -p P 1: unknown, not silently ignored
        given.setdefault(name, namespace.get(name))
    profile, values = resolve(notebook, given, path)
    overrides = {k: v for k, v in given.items() if k != "profile" and v is not None}
    P = Params(notebook=notebook, profile=profile, values=values, overrides=overrides)
    _announce(P)
    return P


PROFILE_NOTES = {
    "smoke": "a seconds-long plumbing check: its numbers carry no scientific weight",
    "cpu": "the default: sized for a 2-core CPU; the measured time of the whole book is on the Reproduce page",
    "gpu": "the paper's scale",
}


def _announce(P: Params) -> None:
    """Inside a kernel, show which profile produced every figure on this page."""
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:
        return
    if get_ipython() is None:
        return
    extra = f" with overrides <code>{P.overrides}</code>" if P.overrides else ""
    display(HTML(
        f"<div class='rharm-profile admonition note'><p>Every number and figure on this page comes from the "
        f"<strong>{P.profile}</strong> profile{extra} ({PROFILE_NOTES.get(P.profile, '')}). "
        "The full parameters, hardware and wall time are at the end of the page.</p></div>"
    ))


def parse_cli_value(text: str) -> Any:
    """Parse a ``-p name value`` string as YAML scalars and lists, with YAML 1.2 numbers (``1e-10`` is a float)."""
    try:
        return yaml_load(text)
    except yaml.YAMLError:
        return text


def notebook_source(notebook: str | os.PathLike) -> Path:
    """Resolve a notebook name (``theory``) or path (``notebooks/theory.py``/``.ipynb``) to its ``.py`` source.

    A path is honoured: it must be one of the project's chapters (``notebooks/<name>.py`` or its paired ``.ipynb``);
    any other path, existing or not, is refused (a name alone never silently stands for a path elsewhere).
    """
    p = Path(notebook)
    name = p.stem if p.suffix in (".py", ".ipynb") else p.name
    src = paths.notebooks_dir() / f"{name}.py"
    known = sorted(x.stem for x in paths.notebooks_dir().glob("*.py"))
    if not src.is_file():
        raise ParameterError(f"notebook {str(notebook)!r} not found; known notebooks: {', '.join(known)}")
    if len(p.parts) > 1 or p.suffix:  # a path: it must be the chapter's own file
        given = p.expanduser()
        if not given.is_absolute() and not given.exists():  # relative to the project, as the README writes it
            given = paths.repo_root() / given
        if not given.exists():
            raise ParameterError(
                f"notebook {str(notebook)!r} does not exist; rharm runs the project's chapters "
                f"({paths.notebooks_dir()}): give a name ({name}) or a path there")
        if given.resolve() not in (src.resolve(), src.with_suffix(".ipynb").resolve()):
            raise ParameterError(
                f"notebook {str(notebook)!r} is not a chapter of this project (they are {paths.notebooks_dir()}/"
                f"<name>.py: {', '.join(known)}); run another notebook with papermill")
    return src
