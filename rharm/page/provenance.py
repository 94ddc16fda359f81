"""The provenance block that ends every page: profile, parameters, commit, hardware, versions, wall time."""

from __future__ import annotations

import html
import importlib.metadata
import json
import re
import subprocess
import time
from typing import Any

from rharm.core import paths
from rharm.store import hardware

LIBRARIES = (
    "rharm", "torch", "torchvision", "numpy", "scipy", "pandas", "scikit-learn", "pingouin", "altair",
    "sentence-transformers", "papermill", "jupytext", "jupyter-book",
)


def git_commit() -> str:
    """The commit of the working tree, with ``+dirty`` when tracked files differ from it; ``unknown`` outside git."""
    root = paths.repo_root()
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "rharm", "notebooks", "profiles.yml"],
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def versions(libraries: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    out = {}
    for lib in libraries:
        try:
            out[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            out[lib] = "not installed"
    return out


def record(P: Any) -> dict:
    """A JSON-serialisable provenance record of a notebook run (``P`` from :func:`rharm.core.params.check`)."""
    return {
        "notebook": P.notebook,
        "profile": P.profile,
        "parameters": P.values,
        "overrides": P.overrides,
        "git_commit": git_commit(),
        "hardware": hardware(),
        "precision": precision_used(P.values),
        "versions": versions(),
        "wall_time_s": round(time.time() - P.started, 1),
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def precision_used(values: dict) -> str:
    """The numerical precision the page's training ran in, resolved for this machine's device (fp32 on a CPU,
    bf16 autocast on CUDA by default; rharm.vision.train.resolve_precision), or the library defaults when the notebook
    trains no contrastive model."""
    if "precision" not in values:
        return "library defaults (no mixed precision)"
    import torch

    from rharm.vision.train import resolve_precision

    device = "cuda" if torch.cuda.is_available() and values.get("device", "auto") != "cpu" else "cpu"
    return f"{resolve_precision(values['precision'], device)} on {device}"


def rebuild_command(rec: dict) -> str:
    """The exact command that rebuilds this page: ``rharm run <notebook> --profile <p> [-p NAME VALUE ...]``."""
    import shlex

    parts = ["rharm", "run", rec["notebook"], "--profile", rec["profile"]]
    for name, value in (rec.get("overrides") or {}).items():
        parts += ["-p", name, value if isinstance(value, str) else json.dumps(value)]
    return " ".join(shlex.quote(str(p)) for p in parts)


def format_value(value: Any, digits: int = 4) -> str:
    """A parameter value for a page: floats with ``digits`` significant digits (``0.3333``, not
    ``0.3333333333333333``), lists and mappings element by element, an absolute path as its last part only (a local
    path never reaches a page); the record keeps the exact values."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return "0" if value == 0 else f"{value:.{digits}g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v, digits) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {format_value(v, digits)}" for k, v in value.items()) + "}"
    if isinstance(value, str) and (value.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", value)):
        return "…/" + re.split(r"[\\/]", value.rstrip("/\\"))[-1]
    return str(value)


def format_parameters(values: dict) -> str:
    """``name = value`` for every parameter, separated by semicolons (:func:`format_value`)."""
    return "; ".join(f"{k} = {format_value(v)}" for k, v in values.items())


def to_html(rec: dict) -> str:
    hw = rec["hardware"]
    device = hw["gpu"] or f"{hw['cpu']} ({hw['cpu_count']} cores, CPU only)"
    minutes, seconds = divmod(rec["wall_time_s"], 60)
    rows = [
        ("profile", rec["profile"] + (" (with overrides)" if rec["overrides"] else "")),
        ("parameters", format_parameters(rec["parameters"])),
        ("git commit", rec["git_commit"]),
        ("hardware", device),
        ("precision", rec.get("precision", "not recorded")),
        ("wall time", f"{int(minutes)} min {seconds:.0f} s (whole notebook; results already in the result store are "
                      "read, not recomputed; the Reproduce page gives each chapter's time from an empty store)"),
        ("finished", rec["finished"]),
        ("libraries", ", ".join(f"{k} {v}" for k, v in rec["versions"].items())),
        ("rebuild this page", rebuild_command(rec)),
    ]
    body = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
        f"<td><code>{html.escape(str(v))}</code></td></tr>"
        for k, v in rows
    )
    return f"<div class='rharm-provenance'><p><strong>Provenance of this page</strong></p><table>{body}</table></div>"


def block(P: Any):
    """Display the provenance block (call as the last cell of a notebook) and return the record."""
    from IPython.display import HTML, display

    rec = record(P)
    display(HTML(to_html(rec)), metadata={"rharm_provenance": rec})
    return None
