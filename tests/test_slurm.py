"""A smoke-profile sweep on a real SLURM cluster (marked ``slurm``; .ci/run starts one with .ci/slurm-up.sh).

Submits the representation_harm grid (smoke profile, 30 epochs so a job can be interrupted mid-way) through
submitit's SLURM executor as one job array, preempts the balanced run's job once its first checkpoint exists (USR2,
the signal SLURM sends before preempting or timing out a job, via ``scancel --signal``), and checks that the job was
requeued by SLURM, resumed from its checkpoint, and that the store equals a serial run of the same grid in this
process: same keys, same features bit for bit (CPU). Skipped, with the reason, when no cluster or no CIFAR-10 copy.
"""

import json
import shutil
import subprocess
import time

import pytest
import torch

from rharm import store
from rharm.runs import images as experiment
from rharm.study import sweep

pytestmark = pytest.mark.slurm

OVERRIDES = {"epochs": 30}


def _cluster_or_skip() -> str:
    for cmd in ("sbatch", "sinfo", "squeue", "scancel", "scontrol"):
        if shutil.which(cmd) is None:
            pytest.skip(f"no SLURM here: {cmd} is not on PATH (.ci/slurm-up.sh installs and starts a test cluster)")
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.skip("no SLURM controller answered sinfo within 30 s")
    states = out.stdout.split()
    if out.returncode != 0 or not any(s.startswith(("idle", "mixed", "allocated")) for s in states):
        pytest.skip(f"no usable SLURM node: sinfo exited {out.returncode}, states {states}, "
                    f"{(out.stderr or '').strip()[:300]}")
    return ",".join(states)


def _data_or_skip() -> None:
    from rharm.vision import data

    try:
        data.load_cifar10("test")
    except (FileNotFoundError, OSError) as err:
        pytest.skip(f"no CIFAR-10 copy for the SLURM jobs: {str(err).splitlines()[0][:300]}")


def test_slurm_sweep_requeues_a_preempted_job_and_equals_a_serial_run(tmp_path, monkeypatch, capsys):
    nodes = _cluster_or_skip()
    _data_or_skip()
    monkeypatch.setenv("RHARM_RESULTS_ROOT", str(tmp_path / "cluster"))  # the jobs inherit it (sbatch --export=ALL)
    p = sweep.plan("representation_harm", "smoke", OVERRIDES)
    first = p.runs[0]
    ckpt = sweep.checkpoint_path(first.config)

    start = time.time()
    sub = sweep.submit(p, executor="slurm", timeout_min=15, cpus_per_job=1)
    assert len(sub.jobs) == len(p.runs) >= 3 and not sub.queued
    job_id = str(sub.jobs[0][1].job_id)
    assert "_" in job_id  # one job array

    deadline = time.time() + 600
    while not ckpt.exists():
        rows = sweep.status(p)
        assert time.time() < deadline and rows[0].state == "running", sweep.format_status(p, rows)
        time.sleep(0.2)
    preempted_at = time.time() - start
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True, timeout=60)

    counts = sub.wait(poll_s=2.0, timeout_s=900)
    wall = time.time() - start
    report = sweep.format_status(p, sweep.status(p))
    with capsys.disabled():
        print(f"\n[slurm] nodes {nodes}; {len(p.runs)} runs; preempted job {job_id} {preempted_at:.0f} s in; "
              f"sweep wall time {wall:.0f} s\n{report}")
    assert counts["done"] == len(p.runs), report

    starts = [a for a in map(json.loads, (p.folder / "attempts" / f"{first.key}.jsonl").read_text().splitlines())
              if a["event"] == "start"]
    total_steps = store.load_json(first.dir / "history.json")["steps"]
    assert len(starts) == 2, starts
    assert starts[0]["resumed_from_step"] is None
    assert 0 < starts[1]["resumed_from_step"] < total_steps  # resumed mid-way, not from scratch
    log = (p.folder / "jobs" / f"{job_id}_0_log.out").read_text()
    assert "this job is preempted" in (p.folder / "jobs" / f"{job_id}_0_log.err").read_text() + log
    assert f"Requeued job {job_id}" in log or "Requeued job" in log
    assert not ckpt.exists()

    # the same grid trained serially in this process into another store: same keys, same bits
    monkeypatch.setenv("RHARM_RESULTS_ROOT", str(tmp_path / "serial"))
    serial = experiment.run_grid(p.grid)
    assert [r.dir.name for r in serial] == [r.key for r in p.runs]
    for ref, run in zip(serial, p.runs):
        swept = store.load_tensors(run.dir / "features.pt")
        assert swept.keys() == ref.features.keys()
        for name in ref.features:
            assert torch.equal(swept[name], ref.features[name]), (run.label, name)
        assert store.load_json(run.dir / "history.json")["loss"] == ref.history["loss"], run.label
