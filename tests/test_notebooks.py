"""Every chapter notebook follows the compendium's contract (parameters, profiles, provenance, paired .ipynb)."""

import ast
from pathlib import Path

import jupytext
import pytest

from rharm.book import runner
from rharm.core import params

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks").glob("*.py"))
NAMES = [p.stem for p in SOURCES]


def _code_cells(src):
    nb = jupytext.read(src)
    return [c for c in nb.cells if c.cell_type == "code"]


def test_there_are_notebooks_and_every_chapter_has_one():
    assert SOURCES
    for chapter in runner.toc_chapters(ROOT / "_toc.yml"):
        assert (ROOT / "notebooks" / f"{chapter}.py").is_file(), chapter


@pytest.mark.parametrize("src", SOURCES, ids=NAMES)
def test_single_parameters_cell_declares_exactly_the_spec(src):
    cells = _code_cells(src)
    tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assigned = {}
    for node in ast.parse(tagged[0].source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, ast.dump(node)
        assigned[node.targets[0].id] = ast.literal_eval(node.value)
    assert assigned.pop("profile") == params.DEFAULT_PROFILE
    spec = params.specs(src.stem, ROOT / "profiles.yml")
    assert list(assigned) == list(spec)
    assert all(v is None for v in assigned.values()), "defaults live in profiles.yml, not in the notebook"


@pytest.mark.parametrize("src", SOURCES, ids=NAMES)
def test_check_first_and_provenance_last(src):
    cells = _code_cells(src)
    idx = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    assert f'rharm.core.params.check("{src.stem}", globals())' in cells[idx + 1].source
    assert "rharm.page.provenance.block(P)" in cells[-1].source


def _bare_parameter_reads(src) -> list[str]:
    """Parameter names a notebook reads as bare globals after its check cell (where they are still ``None``)."""
    cells = _code_cells(src)
    idx = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    names = set(params.specs(src.stem, ROOT / "profiles.yml")) | {"profile"}
    found = []
    for cell in cells[idx + 1:]:
        code = [line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!"))]
        tree = ast.parse("\n".join(code))
        bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        bound |= {a.arg for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.Lambda)) for a in n.args.args}
        found += [f"{n.id} (line {n.lineno})" for n in ast.walk(tree) if isinstance(n, ast.Name)
                  and isinstance(n.ctx, ast.Load) and n.id in names and n.id not in bound]
    return found


@pytest.mark.parametrize("src", SOURCES, ids=NAMES)
def test_parameters_are_read_as_P_attributes_only(src):
    assert _bare_parameter_reads(src) == [], "read parameters as P.<name>: params.check does not set the globals"


def test_the_bare_parameter_check_finds_a_bare_read(tmp_path):
    src = tmp_path / "theory.py"
    src.write_text('# %% tags=["parameters"]\nprofile = "cpu"\nalpha = None\n\n# %%\nimport rharm.core.params\n\n'
                   'P = rharm.core.params.check("theory", globals())\n\n# %%\nx = P.alpha + alpha\n')
    assert [r.split()[0] for r in _bare_parameter_reads(src)] == ["alpha"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("profile", params.PROFILES)
def test_every_profile_validates(name, profile):
    values = params.profile_values(name, profile, ROOT / "profiles.yml")
    assert set(values) == set(params.specs(name, ROOT / "profiles.yml"))


def test_paired_ipynb_in_sync():
    drifted = [p.name for p in SOURCES if not p.with_suffix(".ipynb").is_file()
               or p.with_suffix(".ipynb").read_text() != runner.paired_text(p)]
    assert drifted == [], f"run `rharm sync`: {drifted}"


def test_committed_cpu_pages_exist_for_every_chapter():
    for chapter in runner.toc_chapters(ROOT / "_toc.yml"):
        assert (ROOT / "book" / "cpu" / f"{chapter}.ipynb").is_file(), chapter
