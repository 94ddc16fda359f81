"""rharm.study.sweep with submitit's local executor: planning, the job table, status, and a preempted job that
requeues and
resumes from its checkpoint into a store equal to a serial run's.

The jobs run in separate processes on a tiny deterministic fake CIFAR-10 (installed inside each job process by the
job class below, which cloudpickle ships by value), so this stays fast; tests/test_slurm.py does the same on a real
SLURM cluster with the real data.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import torch

from rharm import store
from rharm.book import cli
from rharm.core import params
from rharm.runs import images as experiment
from rharm.study import sweep

OVERRIDES = {"minority_classes": ["automobile", "truck"], "epochs": 4, "n_per_class": 12, "ratio": 4,
             "batch_size": 16, "threads": 1}


def fake_split(*args):
    """A deterministic 10-class fake CIFAR-10 split (24 train / 3 test images per class); any loader signature."""
    from rharm.vision import data

    split = "train" if "train" in args else "test"
    per = 24 if split == "train" else 3
    g = torch.Generator().manual_seed(0 if split == "train" else 1)
    labels = torch.arange(10).repeat_interleave(per)
    images = torch.randint(0, 256, (10 * per, 3, 32, 32), dtype=torch.uint8, generator=g)
    cls = getattr(data, "ImageData", None) or data.CIFAR10Data
    return cls(images, labels, "fake")


class FakeDataRun(sweep.TrainRun):
    """TrainRun on the fake data. The balanced run pauses after its second epoch on its first attempt (writing a
    marker with its pid) so the test can preempt it at a known point; the truck run fails, as a broken job would."""

    def __call__(self):
        from rharm.runs import images as exp

        exp._load_split = fake_split  # this job's own process
        if self.minority == "truck":
            raise RuntimeError("simulated failure: the node lost its scratch disk")
        marker = Path(self.attempts).with_suffix(".paused")
        if self.minority is None and not marker.exists():
            real_train = exp.train.train

            def pausing_train(*args, **kwargs):
                def on_epoch_end(epoch, history):
                    if epoch == 2:
                        marker.write_text(str(os.getpid()))
                        time.sleep(120)  # the preemption signal arrives here

                return real_train(*args, **{**kwargs, "on_epoch_end": on_epoch_end})

            exp.train.train = pausing_train
        return super().__call__()


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("RHARM_RESULTS_ROOT", str(tmp_path / "results"))
    return tmp_path / "results"


def test_plan_has_the_notebook_grids_runs_and_keys(results):
    p = sweep.plan("representation_harm", "smoke")
    _, values = params.resolve("representation_harm", {"profile": "smoke"})
    expected = experiment.grid_runs({**experiment.grid_from_params(values), "progress": False})
    assert [(r.minority, r.seed, r.dir) for r in p.runs] == [(m, s, d) for m, s, _, d in expected]
    assert len(p.runs) == len(values["seeds"]) * (1 + len(values["minority_classes"]))
    assert [r.label for r in p.runs][:2] == ["balanced/seed0", f"{values['minority_classes'][0]}/seed0"]
    assert p.missing == p.runs and str(results) in str(p.folder)
    other = sweep.plan("representation_harm", "smoke", {"epochs": 2})
    assert other.folder != p.folder and {r.key for r in other.runs}.isdisjoint({r.key for r in p.runs})
    assert sweep.run_command(other) == "rharm run representation_harm --profile smoke -p epochs 2"
    assert params.parse_cli_value(sweep.run_command(sweep.plan("representation_harm", "smoke", {"seeds": [0, 1]}))
                                  .split(" -p seeds ")[1].strip("'")) == [0, 1]


def test_bad_input_is_refused_before_anything_is_submitted(results):
    with pytest.raises(sweep.SweepError, match="'theory'.*representation_harm"):
        sweep.plan("theory", "smoke")
    with pytest.raises(params.ParameterError, match="epochs=0 is not valid"):
        sweep.plan("representation_harm", "smoke", {"epochs": 0})
    p = sweep.plan("representation_harm", "smoke")
    with pytest.raises(sweep.SweepError, match=r"executor='pbs'.*\['local', 'slurm'\]"):
        sweep.submit(p, executor="pbs")
    with pytest.raises(sweep.SweepError, match="timeout_min=0"):
        sweep.submit(p, executor="local", timeout_min=0)
    with pytest.raises(sweep.SweepError, match="slurm_partition='gpu'.*slurm"):
        sweep.submit(p, executor="local", slurm_partition="gpu")
    assert not (p.folder / "jobs").exists()


def test_dry_run_prints_the_job_table_and_submits_nothing(results, capsys):
    assert cli.main(["sweep", "representation_harm", "--profile", "smoke", "--dry-run"]) == 0
    out = capsys.readouterr().out
    p = sweep.plan("representation_harm", "smoke")
    for r in p.runs:
        assert f"{r.label}" in out and r.key in out
    assert out.count("missing") >= len(p.runs) and "no throughput is known" in out
    assert not p.folder.exists()
    assert cli.main(["sweep", "theory", "--dry-run"]) == 2


def test_estimate_uses_the_measured_throughput(results):
    p = sweep.plan("representation_harm", "smoke", OVERRIDES)
    done = p.runs[0]
    done.dir.mkdir(parents=True)
    store.save_json(done.dir / "meta.json", {"wall_time_s": 3.0, "extra": {"images_per_s": 100.0, "device": "cpu"}})
    record = {**store.key_payload(experiment.KIND, done.config),
              "code": store.code_fingerprint(experiment.code_modules())}
    store.save_json(done.dir / store.COMPLETE_MARKER, record)  # what a run writes: kind, config, code of its key
    tp = sweep.measured_throughput()
    # automobile run: 9 x 12 + 12 // 4 = 111 images, 6 batches of 16 per epoch, 4 epochs, at 100 images/s
    assert sweep.estimate_s(p.runs[1], tp) == pytest.approx(6 * 16 * 4 / 100.0)
    table = sweep.job_table(p)
    assert "done" in table and "100 images/s" in table


def test_local_sweep_requeues_a_preempted_job_that_resumes_and_equals_a_serial_run(results, monkeypatch, tmp_path):
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    monkeypatch.setattr(sweep, "TrainRun", FakeDataRun)
    p = sweep.plan("representation_harm", "smoke", OVERRIDES)
    balanced, automobile, truck = p.runs
    assert [r.state for r in sweep.status(p)] == ["missing"] * 3

    sub = sweep.submit(p, executor="local", array_parallelism=2, timeout_min=30)
    assert [r.key for r, _ in sub.jobs] == [balanced.key, automobile.key] and sub.queued == [truck]
    marker = p.folder / "attempts" / f"{balanced.key}.paused"
    deadline = time.time() + 180
    while not marker.exists():
        job = sub.jobs[0][1]
        assert not job.done() and time.time() < deadline, \
            f"the balanced run never reached its second epoch: {sweep.format_status(p, sweep.status(p))}"
        time.sleep(0.2)
    row = {r.run.key: r for r in sweep.status(p)}[balanced.key]
    assert row.state == "running" and row.detail.startswith("attempt 1")
    os.kill(int(marker.read_text()), signal.SIGUSR2)  # what SLURM sends before preempting or timing out a job

    counts = sub.wait(poll_s=0.5, timeout_s=300)
    assert counts == {"done": 2, "running": 0, "failed": 1, "missing": 0}
    starts = [a for a in map(json.loads, (p.folder / "attempts" / f"{balanced.key}.jsonl").read_text().splitlines())
              if a["event"] == "start"]
    assert len(starts) == 2 and starts[0]["resumed_from_step"] is None
    steps_per_epoch = (10 * 12) // 16
    assert starts[1]["resumed_from_step"] == steps_per_epoch  # the epoch-1 checkpoint: not from scratch
    assert starts[0]["pid"] != starts[1]["pid"] and starts[0]["job_id"] == starts[1]["job_id"]

    rows = {r.run.key: r for r in sweep.status(p)}
    assert rows[balanced.key].state == "done" and rows[automobile.key].state == "done"
    assert rows[truck.key].state == "failed"
    assert any("simulated failure: the node lost its scratch disk" in line for line in rows[truck.key].log_tail)
    assert "lost its scratch disk" in sweep.format_status(p, list(rows.values()))
    leftovers = [x.name for x in (results / experiment.KIND).iterdir() if x.name.startswith(".")]
    assert leftovers == [] and not any((results / "checkpoints").glob("*.pt"))

    # the same runs trained serially in this process into another store: same keys, same bits
    monkeypatch.setenv("RHARM_RESULTS_ROOT", str(tmp_path / "serial"))
    monkeypatch.setattr(experiment, "_load_split", fake_split)
    for run in (balanced, automobile):
        ref = experiment.run_one(p.grid, run.minority, run.seed)
        assert ref.dir.name == run.key and ref.dir != run.dir
        swept = store.load_tensors(run.dir / "features.pt")
        assert swept.keys() == ref.features.keys()
        for name in ref.features:
            assert torch.equal(swept[name], ref.features[name]), name
        assert store.load_json(run.dir / "history.json")["loss"] == ref.history["loss"]
