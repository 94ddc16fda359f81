import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_PROJECT = Path(__file__).parent / "fixtures" / "project"


@pytest.fixture
def one_thread():
    """Torch on one thread for the test: tiny tensors on a shared 2-core machine run several times faster without
    OpenMP oversubscription. Restored afterwards."""
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A throw-away compendium (one demo notebook) that rharm.core.paths points at, in this process and in kernels."""
    dest = tmp_path / "project"
    shutil.copytree(FIXTURE_PROJECT, dest, symlinks=True)
    shutil.copy2(ROOT / "_config.yml", dest / "_config.yml")
    monkeypatch.setenv("RHARM_PROJECT_ROOT", str(dest))
    for var in ("RHARM_RESULTS_ROOT", "RHARM_BOOK_DIR"):
        monkeypatch.delenv(var, raising=False)
    return dest
