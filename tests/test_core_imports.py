"""The training core imports and runs without the book stack (papermill, jupytext, altair, pingouin, jupyter-book,
myst-nb): the accelerator machine has only torch, torchvision, numpy, scikit-learn and sentence-transformers."""

import subprocess
import sys
import textwrap

BOOK_PACKAGES = ("papermill", "jupytext", "altair", "pingouin", "jupyter_book", "myst_nb", "vl_convert")

SCRIPT = textwrap.dedent("""
    import importlib.abc, sys
    BLOCKED = {blocked!r}

    class Hide(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} is hidden by the test")
            return None

    sys.meta_path.insert(0, Hide())
    import torch
    torch.set_num_threads(1)
    from rharm import store
    from rharm.harm import mediation, metrics, probe
    from rharm.runs import images
    from rharm.study import plan
    from rharm.vision import augment, data, losses, models, train
    assert images and mediation and augment and data and losses and models  # imported without the book stack
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    res = train.train(train.TrainConfig(backbone="small_cnn", epochs=1, batch_size=8), x, progress=False)
    h, z = train.extract_features(res.model, x)
    y = torch.arange(16) % 2
    acc = metrics.linear_probe_accuracy(h, y, h, y, solver="torch", device="cpu")
    cfg = probe.ProbeConfig(c_grid=(1.0,), folds=1)
    probe.fit_probe(metrics.unit_normalise(h), y.numpy(), cfg)
    plan.plan_table("gpu")
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not leaked, leaked
    print("core ok", res.config["resolved_precision"], round(acc, 2))
""")


def test_training_core_runs_with_book_packages_hidden():
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(blocked=BOOK_PACKAGES)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "core ok fp32" in out.stdout


def test_the_hiding_works():
    # the same finder must make a book package unimportable, or the test above proves nothing
    probe = SCRIPT.split("import torch")[0] + "import papermill\n"
    out = subprocess.run([sys.executable, "-c", probe.format(blocked=BOOK_PACKAGES)], capture_output=True, text=True)
    assert out.returncode != 0 and "hidden by the test" in out.stderr
