import os

import pytest
import torch

from rharm.core import runtime
from rharm.vision import augment


def test_torch_threads_sets_and_restores():
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    with runtime.torch_threads(target) as n:
        assert n == target == torch.get_num_threads()
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), runtime.torch_threads(target):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before  # restored on error too
    with runtime.torch_threads(0) as n:  # 0 leaves torch's setting
        assert n == before
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match=f"threads={bad!r} is not valid"), runtime.torch_threads(bad):
            pass


def test_augmentation_leaves_the_thread_count_alone():
    # the caller's setting (or runtime.torch_threads around a whole run) governs; the library never flips it
    before = torch.get_num_threads()
    target = 2 if before == 1 else before
    with runtime.torch_threads(target):
        seen = []
        real = torch.set_num_threads
        try:
            torch.set_num_threads = lambda k: seen.append(k)
            augment.augment_batch(torch.zeros(4, 3, 32, 32, dtype=torch.uint8), augment.SIMCLR,
                                  torch.Generator().manual_seed(0))
        finally:
            torch.set_num_threads = real
        assert seen == []


def test_hf_offline_is_restored(monkeypatch):
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with runtime.hf_offline():
        assert os.environ["HF_HUB_OFFLINE"] == "1" and constants.HF_HUB_OFFLINE is True
    assert "HF_HUB_OFFLINE" not in os.environ and constants.HF_HUB_OFFLINE is False
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with pytest.raises(KeyError), runtime.hf_offline():
        raise KeyError("boom")
    assert os.environ["HF_HUB_OFFLINE"] == "0" and constants.HF_HUB_OFFLINE is False


def test_seeded_draws_from_the_seed_and_restores_every_global_generator():
    import random

    import numpy as np

    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    expect = (torch.rand(3), random.random(), np.random.rand())  # what the caller's generators give next
    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    with runtime.seeded(7):
        inside = (torch.rand(2), random.random(), np.random.rand())
    with runtime.seeded(7):
        again = (torch.rand(2), random.random(), np.random.rand())
    assert torch.equal(inside[0], again[0]) and inside[1:] == again[1:]  # a function of the seed alone
    after = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(after[0], expect[0]) and after[1:] == expect[1:]  # the caller's streams are untouched
    with pytest.raises(ValueError, match="seed=-1 is not valid"), runtime.seeded(-1):
        pass


def test_deterministic_kernels_restores_the_previous_setting():
    before = torch.are_deterministic_algorithms_enabled()
    with runtime.deterministic_kernels(not before, cuda=False):
        assert torch.are_deterministic_algorithms_enabled() == (not before)
    assert torch.are_deterministic_algorithms_enabled() == before


def test_training_leaves_the_callers_generators_alone(monkeypatch):
    from rharm.vision import train

    torch.manual_seed(5)
    expect = torch.rand(4)
    torch.manual_seed(5)
    cfg = train.TrainConfig(backbone="small_cnn", epochs=1, batch_size=8, checkpoint_every=0, lr=0.1)
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    a = train.train(cfg, images).model.state_dict()
    assert torch.equal(torch.rand(4), expect)
    b = train.train(cfg, images).model.state_dict()  # and a run is a function of its seed alone
    assert all(torch.equal(a[k], b[k]) for k in a)
