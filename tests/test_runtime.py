import os

import pytest
import torch

from rharm import augment, runtime


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
