"""Process-wide settings a run needs, changed only inside a ``with`` block and restored when it ends.

Library functions never flip these behind the caller's back: the entry point of a run (``experiment.run_one``,
``experiment.throughput_table``, ``simcse.load_encoder`` for the bundled encoder) enters the context once.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    import torch

#: the devices a probe or an encoder accepts, as an error message lists them
DEVICES_HELP = "'auto', 'cpu' or 'cuda[:k]'"


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[int]:
    """Run torch's CPU kernels on ``n`` intra-op threads inside the block; ``0`` or ``None`` leaves torch's setting.

    Yields the thread count in force. The previous count is restored on exit, also on error.

    Why a run sets it: SimCLR's per-image augmentation and a small CNN are many small memory-bound kernels; on a
    shared CPU (more runnable threads than cores) each kernel's thread barrier waits for a descheduled thread.
    Measured 2026-11-28 on 2 busy cores: 256 augmented views took 4.3-5.5 s with 2 threads and 0.06-0.08 s with 1,
    so the cpu profiles train with ``threads: 1``. GPU work is unaffected.
    """
    import torch

    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise ValueError(f"threads={n!r} is not valid; it must be an integer >= 0 (0 = leave torch's setting)")
    prev = torch.get_num_threads()
    if n and n != prev:
        torch.set_num_threads(int(n))
    try:
        yield torch.get_num_threads()
    finally:
        if torch.get_num_threads() != prev:
            torch.set_num_threads(prev)


@contextlib.contextmanager
def hf_offline() -> Iterator[None]:
    """Hugging Face hub offline mode inside the block (no network lookups when loading a local model folder).

    Sets the environment variable ``HF_HUB_OFFLINE=1`` and ``huggingface_hub.constants.HF_HUB_OFFLINE`` (read
    from the environment once, at import, so the variable alone would not reach a library already loaded, and a
    library first loaded inside the block would keep offline mode for good); both are restored on exit.
    """
    try:
        from huggingface_hub import constants  # imported before the variable is set: its import-time read is ours
    except ImportError:
        constants = None
    prev_env = os.environ.get("HF_HUB_OFFLINE")
    prev_const = getattr(constants, "HF_HUB_OFFLINE", None)
    os.environ["HF_HUB_OFFLINE"] = "1"
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        if prev_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = prev_env
        if constants is not None:
            constants.HF_HUB_OFFLINE = prev_const


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Python's, NumPy's and torch's global random generators (CPU and every CUDA device) start from ``seed`` inside
    the block; the states they had before are restored on exit, also on error.

    For code that draws from the global generators and cannot be given its own (a module's weight initialisation,
    dropout inside a library's model): its draws are a function of ``seed`` alone, and the caller's generators are
    left as they were.
    """
    import random

    import numpy as np
    import torch

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r} is not valid; it must be an integer >= 0")
    py_state, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


@contextlib.contextmanager
def deterministic_kernels(on: bool, *, cuda: bool) -> Iterator[None]:
    """torch's deterministic algorithms on (``on``; warn-only on CUDA, where a few backward kernels have no
    deterministic version) or, on CUDA, cuDNN's benchmark mode (``on=False``) inside the block; the previous
    settings are restored on exit."""
    import torch

    prev = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.benchmark)
    if on:
        torch.use_deterministic_algorithms(True, warn_only=cuda)
    elif cuda:
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev[0], warn_only=prev[1])
        torch.backends.cudnn.benchmark = prev[2]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/None -> CUDA when available, else CPU; anything else is checked with ``torch.device``."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not valid; use {DEVICES_HELP}") from exc
