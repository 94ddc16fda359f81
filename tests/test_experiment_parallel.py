"""Parallel training of a grid on real CIFAR-10 data (no fake loader here: spawned processes could not see it)."""

import pytest
import torch

from rharm.runs import images as experiment


@pytest.mark.slow
def test_parallel_workers_give_the_same_runs_as_serial(tmp_path, monkeypatch):
    """workers=2 trains missing runs in spawned processes; the results equal a serial run's (real CIFAR-10 data)."""
    from rharm.vision import data as rdata

    try:
        rdata.load_cifar10("test")
    except FileNotFoundError:
        pytest.skip("no CIFAR-10 copy under the data root")
    grid = {"method": "simclr", "backbone": "small_cnn", "epochs": 1, "batch_size": 8, "lr": 0.1,
            "minority_classes": ["automobile"], "ratio": 2, "seeds": [0], "n_per_class": 4, "threads": 1,
            "progress": False}
    monkeypatch.setenv("RHARM_RESULTS_ROOT", str(tmp_path / "serial"))
    serial = experiment.run_grid({**grid, "workers": 1})
    monkeypatch.setenv("RHARM_RESULTS_ROOT", str(tmp_path / "parallel"))
    parallel = experiment.run_grid({**grid, "workers": 2})
    assert [(r.minority, r.seed) for r in serial] == [(r.minority, r.seed) for r in parallel]
    for a, b in zip(serial, parallel):
        assert str(tmp_path / "parallel") in str(b.dir)
        assert torch.equal(a.features["test_backbone"], b.features["test_backbone"])

