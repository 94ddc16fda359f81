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
"""

from __future__ import annotations

import time
import types
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml

from . import paths

TYPES = ("int", "float", "str", "bool", "list[int]", "list[float]", "list[str]")
PROFILES = ("smoke", "cpu", "gpu")
DEFAULT_PROFILE = "cpu"
# names IPython and papermill put into a kernel's namespace; never treated as parameters
_KERNEL_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open", "P"}


class ParameterError(ValueError):
    """A notebook parameter has an unknown name or an invalid value."""


@dataclass(frozen=True)
class Spec:
    name: str
    type: str
    help: str = ""
    range: tuple[float, float] | None = None
    choices: tuple | None = None
    min_len: int = 0

    def describe(self) -> str:
        parts = [self.type]
        if self.choices is not None:
            parts.append("one of " + ", ".join(map(repr, self.choices)))
        if self.range is not None:
            parts.append(f"in [{self.range[0]}, {self.range[1]}]")
        if self.min_len:
            parts.append(f"at least {self.min_len} item(s)")
        return "; ".join(parts)


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> dict:
    with open(path) as fh:
        data = yaml.safe_load(fh) or {}
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
        if not isinstance(raw, dict) or raw.get("type") not in TYPES:
            raise ParameterError(
                f"profiles.yml: {notebook}.{name} needs a type among {', '.join(TYPES)}, got {raw!r}"
            )
        rng = raw.get("range")
        if rng is not None:
            try:
                lo, hi = (float(v) for v in rng)
            except (TypeError, ValueError):
                raise ParameterError(
                    f"profiles.yml: {notebook}.{name}.range must be two numbers [lo, hi], got {rng!r} "
                    "(YAML reads 1.0e6 as a string: write 1.0e+6)"
                ) from None
            rng = (lo, hi)
        choices = raw.get("choices")
        out[name] = Spec(
            name=name,
            type=raw["type"],
            help=raw.get("help", ""),
            range=tuple(rng) if rng is not None else None,
            choices=tuple(choices) if choices is not None else None,
            min_len=int(raw.get("min_len", 0)),
        )
    return out


def profile_values(notebook: str, profile: str, path: str | Path | None = None) -> dict[str, Any]:
    """The parameter values ``profile`` sets for ``notebook`` (validated)."""
    if profile not in PROFILES:
        raise ParameterError(f"parameter 'profile' = {profile!r} is not valid; valid profiles: {', '.join(PROFILES)}")
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
    return {n: validate_value(spec[n], values[n]) for n in spec}


def _bad(spec: Spec, value: Any, why: str = "") -> ParameterError:
    extra = f" ({why})" if why else ""
    return ParameterError(
        f"parameter {spec.name!r} = {value!r} is not valid{extra}; expected {spec.describe()}"
        + (f" — {spec.help}" if spec.help else "")
    )


def _scalar(spec: Spec, base: str, value: Any) -> Any:
    if base == "bool":
        if isinstance(value, bool):
            return value
        raise _bad(spec, value, "not a bool")
    if base == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise _bad(spec, value, "not an integer")
    elif base == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad(spec, value, "not a number")
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise _bad(spec, value, "not finite")
    elif base == "str":
        if not isinstance(value, str):
            raise _bad(spec, value, "not a string")
    if spec.range is not None and base in ("int", "float"):
        lo, hi = spec.range
        if not lo <= value <= hi:
            raise _bad(spec, value, "out of range")
    if spec.choices is not None and value not in spec.choices:
        raise _bad(spec, value, "unknown choice")
    return value


def validate_value(spec: Spec, value: Any) -> Any:
    """Return ``value`` converted to the spec's type, or raise :class:`ParameterError`."""
    if spec.type.startswith("list["):
        base = spec.type[5:-1]
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise _bad(spec, value, "not a list")
        if len(value) < spec.min_len:
            raise _bad(spec, value, "too few items")
        return [_scalar(spec, base, v) for v in value]
    return _scalar(spec, spec.type, value)


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
            values[name] = validate_value(spec[name], value)
    return profile, values


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


def check(notebook: str, namespace: dict, path: str | Path | None = None) -> Params:
    """Validate a notebook's parameters; call it in the first code cell with ``globals()``.

    Fills ``None`` parameters from the profile, rejects unknown names and invalid values with a
    :class:`ParameterError` naming the parameter, the value and the valid values, writes the resolved values back
    into ``namespace`` and enables the offline chart renderer.
    """
    given = _candidate_names(namespace)
    profile, values = resolve(notebook, given, path)
    overrides = {k: v for k, v in given.items() if k != "profile" and v is not None}
    namespace.update(values)
    namespace["profile"] = profile
    from . import charts

    charts.enable()
    P = Params(notebook=notebook, profile=profile, values=values, overrides=overrides)
    _announce(P)
    return P


PROFILE_NOTES = {
    "smoke": "a seconds-long plumbing check: its numbers carry no scientific weight",
    "cpu": "the default: the best science that fits about half an hour on a 2-core CPU",
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
    """Parse a ``-p name value`` string the way papermill's ``-y`` does: YAML scalars and lists."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text
