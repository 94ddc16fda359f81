"""The papermill runner on a small fixture project (executes real kernels; a few seconds each)."""

import json

import nbformat
import pytest

from rharm.book import cli, runner
from rharm.core import params


def _injected(nb):
    cells = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    return cells[0].source


def _outputs_text(nb):
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(json.dumps(o))
    return "\n".join(out)


def test_run_with_override_writes_its_own_variant(project):
    out = runner.run("notebooks/demo.py", parameters={"alpha": 0.2})
    assert out == project / "runs" / "demo" / "cpu-alpha=0.2.ipynb"
    nb = nbformat.read(out, as_version=4)
    assert "alpha = 0.2" in _injected(nb)
    text = _outputs_text(nb)
    assert "demo alpha=0.2" in text  # the chart was built from the override
    assert "application/vnd.vegalite" in text and "rharm-vega" in text  # both representations
    assert "Provenance of this page" in text
    assert not (project / "book" / "cpu" / "demo.ipynb").exists()  # a variant never replaces the page
    with pytest.raises(runner.RunError, match="exists"):
        runner.run("demo", parameters={"alpha": 0.2})


def test_profile_run_writes_the_profile_page(project):
    out = runner.run("demo", profile="smoke")
    assert out == project / "book" / "smoke" / "demo.ipynb"
    nb = nbformat.read(out, as_version=4)
    assert "'smoke'" in _injected(nb) or '"smoke"' in _injected(nb)
    assert "demo alpha=0.1" in _outputs_text(nb)


def test_unknown_or_bad_parameters_fail_before_any_kernel(project):
    with pytest.raises(params.ParameterError, match="unknown parameter.*'beta'"):
        runner.run("demo", parameters={"beta": 1})
    with pytest.raises(params.ParameterError, match="method='c' is not valid.*one of 'a', 'b'"):
        runner.run("demo", parameters={"method": "c"})
    assert not (project / "_build" / "exec").exists()
    assert cli.main(["run", "demo", "-p", "alpha", "7"]) == 2


def test_plain_papermill_bad_value_fails_in_first_code_cell(project, tmp_path):
    import papermill

    src = project / "notebooks" / "demo.ipynb"
    src.write_text(runner.paired_text(project / "notebooks" / "demo.py"))
    out = tmp_path / "out.ipynb"
    with pytest.raises(papermill.PapermillExecutionError, match="alpha=3.0 is not valid"):
        papermill.execute_notebook(str(src), str(out), parameters={"alpha": 3.0}, kernel_name="python3",
                                   progress_bar=False)
    with pytest.raises(papermill.PapermillExecutionError, match="unknown parameter.*'gamma'"):
        papermill.execute_notebook(str(src), str(out), parameters={"gamma": 1}, kernel_name="python3",
                                   progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    # parameters, injected-parameters, then the check cell is where it failed; nothing after it ran
    assert code[2].outputs and code[2].outputs[-1].output_type == "error"
    assert all(not c.outputs for c in code[3:])


def test_sync_and_drift_check(project):
    assert runner.sync(check=True)  # no paired notebook yet
    runner.sync()
    assert runner.sync(check=True) == []
    src = project / "notebooks" / "demo.py"
    src.write_text(src.read_text() + "\n# %%\nprint('new cell')\n")
    assert runner.sync(check=True) == [project / "notebooks" / "demo.ipynb"]


def test_failed_notebook_keeps_old_page(project):
    runner.run("demo", profile="smoke")
    page = project / "book" / "smoke" / "demo.ipynb"
    before = page.read_text()
    src = project / "notebooks" / "demo.py"
    src.write_text(src.read_text().replace("rharm.page.provenance.block(P)", "raise RuntimeError('boom')"))
    with pytest.raises(runner.RunError, match="boom|failed"):
        runner.run("demo", profile="smoke")
    assert page.read_text() == before
    assert (project / "_build" / "failed" / "smoke-demo.ipynb").exists()


def test_output_elsewhere_writes_the_headline_numbers_beside_it(project, tmp_path):
    out = runner.run("demo", profile="smoke", output=tmp_path / "elsewhere" / "x.ipynb")
    assert json.loads(out.with_suffix(".json").read_text())["values"] == {"alpha": 0.1}
    assert not (project / "book" / "smoke" / "demo.json").exists()  # the page's numbers are not touched
    page = runner.run("demo", profile="smoke")
    assert json.loads(page.with_suffix(".json").read_text())["values"] == {"alpha": 0.1}
    assert "RHARM_HEADLINE_PATH" not in __import__("os").environ  # restored after the run
