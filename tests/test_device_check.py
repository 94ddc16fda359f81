"""benchmarks/device_check.py runs end to end on the CPU at tiny sizes, so the GPU check cannot rot."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_device_check_tiny_on_cpu(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "device_check.py"), "--tiny", "--device", "cpu",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=600,
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    rec = json.loads((tmp_path / "device_check.json").read_text())
    log = (tmp_path / "device_check.log").read_text()
    for part in ("a", "b", "c"):
        assert "error" not in rec[part], rec[part]
    a = rec["a"]
    assert a["fp32"]["resolved_precision"] == "fp32" and a["bf16"]["resolved_precision"] == "bf16"
    assert all(v == v for v in (a["fp32"]["first_quarter_loss"], a["bf16"]["last_quarter_loss"]))  # not NaN
    assert a["resume"]["exact"] is True  # deterministic resume on the CPU is bit-exact
    assert a["probe"]["agree_within_0.01"] is True
    assert rec["b"]["small_cnn"]["ratio_ours_over_baseline"] > 0
    assert len(rec["c"]["rows"]) == 2 and all("rh_minority_partner" in r for r in rec["c"]["rows"])
    assert "done in" in log
