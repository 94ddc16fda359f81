"""environment.yml (conda) and requirements.txt (pip) cannot drift; the layout the design fixes exists."""

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_installs_exactly_requirements_txt():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    python = [d for d in deps if isinstance(d, str) and d.startswith("python")]
    assert python == [f"python={sys.version_info.major}.{sys.version_info.minor}"] or python == ["python=3.11"]
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1
    pip = pip_sections[0]
    assert "-r requirements.txt" in pip and "-e ." in pip
    # no package pinned in environment.yml itself (it would drift from requirements.txt)
    conda_pkgs = [d for d in deps if isinstance(d, str)]
    assert set(re.split(r"[=<>]", d)[0] for d in conda_pkgs) <= {"python", "pip"}


def test_requirements_are_pinned_and_name_the_design_dependencies():
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    reqs = [line for line in lines if line]
    assert all("==" in r for r in reqs), [r for r in reqs if "==" not in r]
    names = {r.split("==")[0].lower() for r in reqs}
    for needed in ("jupyter-book", "jupytext", "torch", "torchvision", "sentence-transformers", "papermill",
                   "pingouin", "altair"):
        assert needed in names


def test_installed_versions_match_pins():
    import importlib.metadata as md

    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        name, version = line.split("==")
        installed = md.version(name)
        assert installed.split("+")[0] == version, f"{name}: installed {installed}, pinned {version}"


def test_fixed_layout():
    for path in ("book", "notebooks", "rharm", "tests", "_config.yml", "_toc.yml", "environment.yml",
                 "pyproject.toml", "README.md", ".ci/run", "benchmarks", "profiles.yml"):
        assert (ROOT / path).exists(), path
    link = ROOT / "book" / "_toc.yml"
    assert link.is_symlink() and link.resolve() == (ROOT / "_toc.yml").resolve()


def test_readme_first_screen_has_the_two_commands():
    head = "\n".join((ROOT / "README.md").read_text().splitlines()[:25])
    assert "make book" in head and "make test" in head
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
