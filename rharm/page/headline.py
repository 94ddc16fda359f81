"""Every chapter's headline numbers as data: ``book/<profile>/<chapter>.json`` beside the page.

A chapter computes one summary dataclass per section (its ``rharm.report`` module) and calls :func:`publish` once
with all of them: every field is glued into the prose as ``<prefix>_<field>`` and written to the JSON file, so a
reader, a test or another paper can use the numbers without parsing HTML. The file always lies beside the executed
notebook that ``rharm run``/``rharm book`` wrote (a variant's in ``runs/<chapter>/``, an ``--output``'s beside it);
a plain papermill run writes none (it could only guess, and a guess would overwrite the book's numbers).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from rharm.core import paths
from rharm.core.common import plain_json

#: environment variable naming where :func:`write` puts the numbers instead (set by :func:`rharm.book.runner.run` for
#: a notebook executed to another place than its page)
PATH_ENV = "RHARM_HEADLINE_PATH"


def path_for(notebook: str, profile: str, overrides: Mapping[str, Any] | None = None) -> Path:
    """Where :func:`write` puts a chapter's headline numbers."""
    if overrides:
        parts = [f"{k}={v}" for k, v in sorted(overrides.items())]
        slug = re.sub(r"[^A-Za-z0-9=,._-]+", "-", "_".join(parts))[:120] or "default"
        return paths.repo_root() / "runs" / notebook / f"{profile}-{slug}.json"
    return paths.repo_root() / "book" / profile / f"{notebook}.json"


def write(P: Any, values: Mapping[str, Any]) -> Path | None:
    """Write ``values`` (the chapter's headline numbers) with the run's profile and overrides; return the path.

    The file is ``$RHARM_HEADLINE_PATH`` (:data:`PATH_ENV`, set by ``rharm run``/``rharm book`` to the ``.json``
    beside the executed notebook); without it nothing is written and None is returned.

    ``P`` is the notebook's :class:`rharm.core.params.Params`. The file holds ``{"chapter", "profile", "overrides",
    "values"}``; it is written atomically.
    """
    from rharm.store import atomic_path

    # rharm run / rharm book name the file beside the executed notebook (runner.run sets PATH_ENV). A plain
    # papermill run (or any other caller) has no output path it could know: its numbers are written nowhere, never
    # into book/ or runs/ of the repository (a user's run must not replace the committed pages' numbers)
    env = os.environ.get(PATH_ENV)
    if not env:
        import sys

        print(f"rharm: headline numbers of {P.notebook} not written (no {PATH_ENV}: not run by `rharm run`); "
              "`rharm run` writes them beside its output", file=sys.stderr)
        return None
    out = Path(env)
    doc = {"chapter": P.notebook, "profile": P.profile, "overrides": plain_json(dict(P.overrides)),
           "values": plain_json(dict(values))}
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    return out


_GLUABLE = (str, int, float, bool, np.integer, np.floating, np.bool_)


def section_values(*sections: Any) -> dict[str, Any]:
    """The fields of summary dataclasses, merged in order (a name given by two sections is an error)."""
    out: dict[str, Any] = {}
    for section in sections:
        if not dataclasses.is_dataclass(section) or isinstance(section, type):
            raise TypeError(f"a section must be a dataclass instance, got {type(section).__name__}")
        for f in dataclasses.fields(section):
            if f.name in out:
                raise ValueError(f"field {f.name!r} of {type(section).__name__} is already given by another section")
            out[f.name] = getattr(section, f.name)
    return out


def publish(P: Any, prefix: str, *sections: Any) -> Path | None:
    """Glue every scalar field of ``sections`` as ``<prefix>_<field>`` and write all fields to the chapter's JSON.

    ``sections`` are summary dataclasses (one per section of the chapter). Scalars (str, int, float, bool) are glued
    for ``{glue:text}`` roles (a string field with ``metadata={"markdown": True}`` as Markdown, for ``{glue:md}``);
    every field, lists and tables included, goes to the file (:func:`write`). Outside a kernel nothing is glued.
    Returns the JSON path.
    """
    values = section_values(*sections)
    markdown = {f.name for s in sections for f in dataclasses.fields(s) if f.metadata.get("markdown")}
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with the book stack
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        from IPython.display import Markdown
        from myst_nb import glue

        for name, value in gluable(values, markdown).items():
            glue(f"{prefix}_{name}", Markdown(value) if name in markdown else value, display=False)
    out = write(P, values)
    return _Unshown(out) if out is not None else None


class _Unshown(type(Path())):
    """The path :func:`publish` returns: an ordinary path, shown as nothing when it is a cell's last expression
    (a local path never reaches a page)."""

    def _ipython_display_(self) -> None:
        pass


def gluable(values: Mapping[str, Any], markdown: set[str] = frozenset()) -> dict[str, Any]:
    """The fields :func:`publish` glues: scalars, as plain Python values (a numpy scalar would be shown as
    ``np.float64(...)`` by ``{glue:text}``); ``None`` is skipped (nothing to show). A name in ``markdown`` must be a
    string (glued as Markdown for ``{glue:md}``)."""
    out = {}
    for name, value in values.items():
        if value is None or not isinstance(value, _GLUABLE):
            continue
        if name in markdown and not isinstance(value, str):
            raise TypeError(f"field {name!r} is marked markdown but is a {type(value).__name__}, not a string")
        out[name] = value.item() if isinstance(value, (np.generic,)) else value
    return out


def read(notebook: str, profile: str) -> dict:
    """The headline numbers a chapter wrote for a profile (``values`` of its JSON file)."""
    return json.loads(path_for(notebook, profile).read_text())["values"]


#: the most words a chapter's Finding box may hold: the key number and its interval, plainly; the details are in the
#: chapter's body (tests/test_findings.py holds every committed page to it)
FINDING_MAX_WORDS = 60

#: the networks' code names, in words (a finding or a caption names the network, not the parameter value)
MODEL_WORDS = {"small_cnn": "small CNN", "resnet18": "ResNet-18", "resnet34": "ResNet-34"}


#: the augmentations' code names, in words (as in "SimCLR's greyscale augmentation")
AUGMENT_WORDS = {"simclr": "SimCLR's", "simsiam": "SimSiam's", "simclr_grey": "SimCLR's greyscale"}


def augment_words(name: str) -> str:
    """An augmentation's parameter value in words: ``simclr_grey`` -> "SimCLR's greyscale"; an unknown name is kept."""
    return AUGMENT_WORDS.get(str(name), str(name))


def model_words(name: str) -> str:
    """A backbone's parameter value in words: ``small_cnn`` -> "small CNN"; an unknown name is kept."""
    return MODEL_WORDS.get(str(name), str(name))


def word_count(text: str) -> int:
    """The words of ``text`` as a reader counts them: runs of characters between spaces that hold a letter or a
    digit (a lone "=", "→" or "–" is not a word)."""
    return sum(1 for tok in str(text).split() if re.search(r"\w", tok))


def page_finding(page: str | Path) -> str | None:
    """The finding an executed chapter glued (the glue name ending in ``finding``), as Markdown/plain text."""
    nb = json.loads(Path(page).read_text())
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            sb = out.get("metadata", {}).get("scrapbook", {})
            if not str(sb.get("name", "")).endswith("finding"):
                continue
            prefix = sb.get("mime_prefix", "")
            for mime in ("text/markdown", "text/plain"):
                text = out.get("data", {}).get(prefix + mime)
                if text is not None:
                    text = "".join(text) if isinstance(text, list) else str(text)
                    return text.strip().strip("'\"") if mime == "text/plain" else text.strip()
    return None


def page_title(page: str | Path) -> str:
    """The first level-one heading of an executed chapter."""
    nb = json.loads(Path(page).read_text())
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell.get("source", "")).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return Path(page).stem


def findings_markdown(chapters: list[str], pages: Path, link_prefix: str) -> str:
    """A bulleted summary of every chapter's finding, computed from the executed pages in ``pages`` (one bullet per
    chapter that glued a finding, linked as ``<link_prefix>/<chapter>.ipynb``)."""
    lines = []
    for name in chapters:
        page = Path(pages) / f"{name}.ipynb"
        if not page.is_file():
            continue
        finding = page_finding(page)
        if finding:
            one_line = " ".join(finding.split())
            lines.append(f"* **[{page_title(page)}]({link_prefix}/{name}.ipynb)**: {one_line}")
    return "\n".join(lines) + "\n"
