import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from rharm import store


def test_key_depends_on_config_and_code():
    k = store.key("run", {"a": 1, "b": [1, 2]})
    assert k == store.key("run", {"b": [1, 2], "a": 1})  # key order does not matter
    assert k != store.key("run", {"a": 2, "b": [1, 2]})
    assert k != store.key("other", {"a": 1, "b": [1, 2]})
    assert k != store.key("run", {"a": 1, "b": [1, 2]}, code=["def f(): return 1"])
    assert store.key("run", {"a": 1.0}) != store.key("run", {"a": 1.5})


_MODULE = '''"""A result-shaping module."""

SCALE = 2  # the factor


def f(x):
    """Twice ``x``."""
    # why: the paper doubles
    return SCALE * x


class C:
    """A class."""

    def g(self):
        """Only a docstring."""
'''


def _load(tmp_path, name, text):
    import importlib.util

    path = tmp_path / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_key_ignores_docstrings_and_comments_but_not_code(tmp_path):
    base = store.key("run", {"a": 1}, code=[_load(tmp_path, "m0", _MODULE)])
    docs_edited = (_MODULE.replace("A result-shaping module.", "Reworded module doc, two\n\nparagraphs.")
                   .replace("# why: the paper doubles", "# reworded comment\n    # and another line")
                   .replace("Twice ``x``.", "Two times x.")
                   .replace('"""Only a docstring."""', '"""Changed."""  # trailing comment'))
    code_edited = [_MODULE.replace("SCALE = 2", "SCALE = 3"), _MODULE.replace("return SCALE * x", "return SCALE + x"),
                   _MODULE.replace('"""Only a docstring."""', 'return 1')]
    assert store.key("run", {"a": 1}, code=[_load(tmp_path, "m1", docs_edited)]) == base
    for i, text in enumerate(code_edited):
        assert store.key("run", {"a": 1}, code=[_load(tmp_path, f"m{i + 2}", text)]) != base
    # a function is fingerprinted the same way
    f0, f1 = _load(tmp_path, "n0", _MODULE).f, _load(tmp_path, "n1", docs_edited).f
    f2 = _load(tmp_path, "n2", code_edited[1]).f
    assert store.code_fingerprint([f0]) == store.code_fingerprint([f1]) != store.code_fingerprint([f2])


def test_non_json_config_is_rejected():
    with pytest.raises(ValueError, match="JSON-serialisable"):
        store.key("run", {"a": object()})
    with pytest.raises(ValueError, match="JSON-serialisable"):
        store.key("run", {"a": float("nan")})


def test_cached_computes_once_and_records_config(tmp_path):
    calls = []

    def compute(d):
        calls.append(1)
        (d / "x.txt").write_text("hello")
        return {"n": 3}

    a = store.cached("run", {"p": 1}, compute, root=tmp_path)
    b = store.cached("run", {"p": 1}, compute, root=tmp_path)
    assert a == b and len(calls) == 1 and (a / "x.txt").read_text() == "hello"
    assert json.loads((a / "config.json").read_text())["config"] == {"p": 1}
    meta = store.load_meta(a)
    assert meta["extra"] == {"n": 3} and meta["wall_time_s"] >= 0 and "cpu" in meta["hardware"]


def test_changed_parameter_or_code_never_reuses(tmp_path):
    seen = []

    def compute(d):
        seen.append(d)
        (d / "v").write_text("x")

    a = store.cached("run", {"p": 1}, compute, root=tmp_path)
    b = store.cached("run", {"p": 2}, compute, root=tmp_path)
    c = store.cached("run", {"p": 1}, compute, root=tmp_path, code=["changed source"])
    assert len({a, b, c}) == 3 and len(seen) == 3


def test_failed_compute_leaves_nothing_trusted(tmp_path):
    def boom(d):
        (d / "half.bin").write_bytes(b"12")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        store.cached("run", {"p": 1}, boom, root=tmp_path)
    assert not store.is_complete(store.result_dir("run", {"p": 1}, root=tmp_path))
    assert list((tmp_path / "run").iterdir()) == []
    out = store.cached("run", {"p": 1}, lambda d: (d / "ok").write_text("1"), root=tmp_path)
    assert (out / "ok").exists() and not (out / "half.bin").exists()


def test_killed_process_leaves_no_trusted_result(tmp_path):
    """A process killed in the middle of compute leaves a temp folder that is ignored and cleaned up later."""
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from rharm import store
        def compute(d):
            (d / "partial").write_text("x")
            os.kill(os.getpid(), signal.SIGKILL)
        store.cached("run", {{"p": 1}}, compute, root=Path({str(tmp_path)!r}))
    """)
    proc = subprocess.run([sys.executable, "-c", script])
    assert proc.returncode != 0
    final = store.result_dir("run", {"p": 1}, root=tmp_path)
    assert not final.exists()
    leftovers = list((tmp_path / "run").glob(".*.tmp"))
    assert leftovers  # the killed run's temp folder is there ...
    out = store.cached("run", {"p": 1}, lambda d: (d / "done").write_text("1"), root=tmp_path)
    assert (out / "done").exists()
    assert not list((tmp_path / "run").glob(".*.tmp"))  # ... and is cleaned up by the next run


def test_tensors_round_trip_without_pickle(tmp_path):
    path = tmp_path / "t.pt"
    store.save_tensors(path, {"a": torch.arange(4), "b": np.ones((2, 3), dtype=np.float32)})
    out = store.load_tensors(path)
    assert torch.equal(out["a"], torch.arange(4)) and out["b"].shape == (2, 3)
    with pytest.raises(TypeError):
        store.save_tensors(path, {"c": "text"})


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "f.json"
    store.save_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with store.atomic_path(target) as tmp:
            tmp.write_text("garbage")
            raise RuntimeError("interrupted")
    assert store.load_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]
