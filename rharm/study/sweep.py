"""Sweeps: a notebook's training grid as cluster jobs, one job per missing run (submitit: SLURM or local processes).

The result store (:mod:`rharm.store`) already makes the runs of a grid independent: each run is a content-addressed
folder written atomically, and a killed run resumes from its training checkpoint. A sweep therefore only has to

1. expand the notebook's grid into its runs (:func:`plan`: the same runs and store keys as the notebook's
   :func:`rharm.runs.images.run_grid` call), skipping those already in the store;
2. submit each missing run as one job (:func:`submit`; on SLURM one job array), every job training its run with
   :func:`rharm.runs.images.run_one` into the shared store;
3. requeue preempted or timed-out jobs: :class:`TrainRun` has submitit's ``checkpoint`` hook, so on the preemption
   or time-out signal (USR2) submitit requeues the job and the new attempt resumes from the run's last training
   checkpoint, never from scratch and never into a half-written result (an unfinished result folder is temporary
   and is never read);
4. report (:func:`status`): done / running / failed / missing per run, from the store, the submitit job folders and
   the scheduler's queue; a failed job's last log lines are shown.

When every run is done, ``rharm run NOTEBOOK --profile P`` builds the page from the store without training.

Files of a sweep, under ``<results root>/sweeps/<notebook>-<profile>[-<overrides hash>]/``: ``sweep.json`` (what was
asked and which job trains which run), ``jobs/`` (submitit's submission scripts, pickled submissions and logs,
one ``<job id>_0_log.out``/``.err`` pair per job) and ``attempts/<run key>.jsonl`` (one line per start of a job on
the run: job id, host, pid, the training step it resumed from).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from rharm import store
from rharm.core import params as params_mod
from rharm.core import paths
from rharm.runs import images as experiment

EXECUTORS = ("local", "slurm")
STATES = ("done", "running", "failed", "missing")
#: environment variables a job needs to see the same project, data, store and caches as the submitting process
ROOT_VARIABLES = ("RHARM_PROJECT_ROOT", "RHARM_DATA_ROOT", "RHARM_RESULTS_ROOT", "RHARM_CACHE_ROOT")


class SweepError(params_mod.ParameterError):
    """A sweep cannot be planned, submitted or inspected (bad notebook, parameter, executor or option)."""


# ------------------------------------------------------------------------------------------------------------------
# planning
# ------------------------------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One run of a sweep: the model trained for (minority, seed); ``dir`` is its store folder."""

    index: int
    minority: str | None
    seed: int
    config: dict
    dir: Path

    @property
    def key(self) -> str:
        return self.dir.name

    @property
    def label(self) -> str:
        return f"{self.minority or 'balanced'}/seed{self.seed}"

    @property
    def done(self) -> bool:
        """In the store and intact: the same check a run makes before reusing it (:func:`rharm.store.problem`:
        every file's size and sha256, and the stored config matching its key)."""
        return self.dir.is_dir() and store.problem(self.dir) is None


@dataclass
class Plan:
    """A notebook's grid, expanded: ``grid`` (the dict :func:`rharm.runs.images.run_grid` receives) and its runs."""

    notebook: str
    profile: str
    overrides: dict
    grid: dict
    runs: list[Run]

    @property
    def folder(self) -> Path:
        """Where this sweep's manifest, job folders and attempt records live."""
        name = f"{self.notebook}-{self.profile}"
        if self.overrides:
            text = json.dumps(self.overrides, sort_keys=True, separators=(",", ":"))
            name += "-" + hashlib.sha256(text.encode()).hexdigest()[:10]
        return paths.results_root() / "sweeps" / name

    @property
    def missing(self) -> list[Run]:
        return [r for r in self.runs if not r.done]


def run_command(p: Plan) -> str:
    """The ``rharm run`` command that builds the page of ``p`` from the store (its profile and overrides)."""
    import shlex

    parts = ["rharm", "run", p.notebook, "--profile", p.profile]
    for name, value in p.overrides.items():
        parts += ["-p", name, json.dumps(value) if not isinstance(value, str) else value]
    return shlex.join(parts)


def grid_notebooks() -> list[str]:
    """Notebooks whose training is one plain grid (they declare both ``seeds`` and ``minority_classes``)."""
    return [n for n in params_mod.notebook_names() if not n.startswith("_")
            and {"seeds", "minority_classes"} <= set(params_mod.specs(n))]


def plan(notebook: str, profile: str = params_mod.DEFAULT_PROFILE, overrides: Mapping[str, Any] | None = None) -> Plan:
    """Expand a notebook's grid (profile values, then ``overrides``) into its runs, without training anything.

    The runs and store keys are exactly those of the notebook's ``run_grid`` call, so once they are all in the store
    ``rharm run NOTEBOOK --profile P`` trains nothing. Raises :class:`SweepError` for a notebook without a plain
    grid, and the usual :class:`rharm.core.params.ParameterError` for a bad parameter, before anything is submitted.
    """
    name = params_mod.notebook_source(notebook).stem
    supported = grid_notebooks()
    if name not in supported:
        raise SweepError(f"notebook {name!r} does not train one plain contrastive grid, so it cannot be swept; "
                         f"notebooks that can: {', '.join(supported)}")
    overrides = dict(overrides or {})
    profile, values = params_mod.resolve(name, {"profile": profile, **overrides})
    grid = {**experiment.grid_from_params(values), "progress": False, "workers": 1}
    try:
        runs = experiment.grid_runs(grid)
    except ValueError as err:
        raise SweepError(f"notebook {name!r}, profile {profile!r}: {err}") from err
    return Plan(notebook=name, profile=profile, overrides=overrides, grid=grid,
                runs=[Run(i, m, s, cfg, d) for i, (m, s, cfg, d) in enumerate(runs)])


# ------------------------------------------------------------------------------------------------------------------
# cost estimates from the measured throughput of the runs already in the store
# ------------------------------------------------------------------------------------------------------------------


def _throughput_key(cfg: Mapping[str, Any]) -> tuple:
    t = cfg.get("train", {})
    return (t.get("method"), t.get("backbone"), t.get("batch_size"), t.get("precision", t.get("amp")))


def measured_throughput(root: Path | None = None) -> dict[tuple, dict]:
    """Median training throughput (images/s) of the completed runs in the store, per (method, backbone,
    batch_size, precision), with the devices it was measured on and the number of runs: ``{key: {"images_per_s",
    "devices", "n"}}``."""
    root = Path(root) if root is not None else paths.results_root()
    seen: dict[tuple, list] = {}
    for folder in sorted((root / experiment.KIND).glob("*")):
        if not store.is_complete(folder):
            continue
        try:
            cfg = store.load_json(folder / store.COMPLETE_MARKER)["config"]
            extra = store.load_meta(folder).get("extra", {})
        except (OSError, ValueError, KeyError):
            continue
        ips = extra.get("images_per_s")
        if isinstance(ips, (int, float)) and ips > 0:
            seen.setdefault(_throughput_key(cfg), []).append((float(ips), str(extra.get("device", "?"))))
    return {k: {"images_per_s": statistics.median(v for v, _ in rows), "devices": sorted({d for _, d in rows}),
                "n": len(rows)} for k, rows in seen.items()}


def _n_train(cfg: Mapping[str, Any]) -> int:
    """Images in a run's contrastive training set (every class keeps n_per_class; the minority 1/ratio of it)."""
    n_classes = 10
    if "dataset" in cfg:
        from rharm.vision import data

        with contextlib.suppress(AttributeError, ValueError):
            n_classes = len(data.dataset_info(cfg["dataset"]).classes)
    npc = int(cfg["n_per_class"])
    if cfg.get("minority") is None:
        return n_classes * npc
    return (n_classes - 1) * npc + int(npc / float(cfg["ratio"]))


def estimate_s(run: Run, throughput: Mapping[tuple, dict]) -> float | None:
    """Training seconds of ``run`` at the measured throughput of its setting, or None when none was measured
    (feature extraction, data loading and queueing are not included)."""
    t = throughput.get(_throughput_key(run.config))
    if not t:
        return None
    bs = int(run.config["train"]["batch_size"])
    images = (_n_train(run.config) // bs) * bs * int(run.config["train"]["epochs"])
    return images / t["images_per_s"]


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "unknown"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def job_table(p: Plan) -> str:
    """The dry-run table: every run, its store key, whether it is in the store, and its estimated training cost."""
    tp = measured_throughput()
    lines = [f"sweep of {p.notebook} ({p.profile}{', overrides ' + json.dumps(p.overrides) if p.overrides else ''}): "
             f"{len(p.runs)} runs, {len(p.missing)} missing",
             f"{'#':>3}  {'run':24s} {'config hash':22s} {'state':8s} {'est. cost':>10s}"]
    total, unknown = 0.0, 0
    for r in p.runs:
        if r.done:
            wall = store.load_meta(r.dir).get("wall_time_s")
            cost = f"{_fmt_s(wall)} (measured)" if wall is not None else "-"
            lines.append(f"{r.index:3d}  {r.label:24s} {r.key:22s} {'done':8s} {cost:>10s}")
            continue
        est = estimate_s(r, tp)
        total += est or 0.0
        unknown += est is None
        lines.append(f"{r.index:3d}  {r.label:24s} {r.key:22s} {'missing':8s} {_fmt_s(est):>10s}")
    t = tp.get(_throughput_key(p.runs[0].config)) if p.runs else None
    if t:
        lines.append(f"estimates: {t['images_per_s']:.0f} images/s, the median of {t['n']} run(s) of this setting in "
                     f"the store (measured on {', '.join(t['devices'])}); training only")
    else:
        lines.append("estimates: no run of this setting (method, backbone, batch size, precision) is in the store "
                     "yet, so no throughput is known; the first finished job gives one")
    if p.missing:
        known = len(p.missing) - unknown
        lines.append(f"total for the {len(p.missing)} missing runs: "
                     + (f"{_fmt_s(total)} of training" + (f" for {known}, {unknown} unknown" if unknown else "")
                        if known else "unknown"))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------------------
# the job
# ------------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a job, then restore them (the debug executor runs jobs in the
    caller's process, whose environment must not change behind its back)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def checkpoint_path(cfg: Mapping[str, Any]) -> Path:
    """Where :func:`rharm.runs.images.run_one` keeps the training checkpoint of the run with store config ``cfg``
    (deleted once the run is in the store)."""
    return store.result_dir("checkpoints", cfg, experiment.code_modules()).with_suffix(".pt")


def checkpoint_step(cfg: Mapping[str, Any]) -> int | None:
    """The training step saved in a run's checkpoint, or None when it has none (a fresh start)."""
    import torch

    ckpt = checkpoint_path(cfg)
    if not ckpt.is_file():
        return None
    try:  # mmap: read the step without loading the weights
        return int(torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)["step"])
    except (OSError, RuntimeError, KeyError, EOFError):
        return None


class TrainRun:
    """A submitit job that trains one run of a grid into the store (or finds it there) and returns its folder.

    Its ``checkpoint`` method is submitit's hook: on the preemption or time-out signal submitit calls it and
    requeues the job with what it returns, the same run. Training writes its checkpoint atomically, so the new attempt
    resumes from the last one (:func:`rharm.vision.train.train`); the store renames a result into place only when
    complete.
    """

    def __init__(self, grid: Mapping[str, Any], minority: str | None, seed: int, key: str,
                 environment: Mapping[str, str], attempts: str | os.PathLike):
        self.grid = dict(grid)
        self.minority = minority
        self.seed = int(seed)
        self.key = key
        self.environment = dict(environment)
        self.attempts = str(attempts)

    def _record(self, event: dict) -> None:
        path = Path(self.attempts)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:  # one short line per event, appended by the single process running the run
            f.write(json.dumps(event, sort_keys=True) + "\n")

    def __call__(self) -> str:
        import submitit

        try:
            job_id = submitit.JobEnvironment().job_id
        except RuntimeError:
            job_id = None
        with _environment(self.environment):
            cfg, folder = next((c, d) for m, s, c, d in experiment.grid_runs(self.grid)
                               if m == self.minority and s == self.seed)
            if folder.name != self.key:
                raise RuntimeError(f"run {self.minority or 'balanced'}/seed{self.seed} has store key {folder.name} in "
                                   f"this job but {self.key} when submitted: the code or the parameters changed; "
                                   "plan and submit the sweep again")
            step = checkpoint_step(cfg)
            self._record({"event": "start", "job_id": job_id, "host": socket.gethostname(), "pid": os.getpid(),
                          "time": time.time(), "resumed_from_step": step})
            print(f"rharm sweep: run {self.minority or 'balanced'}/seed{self.seed} ({self.key}), "
                  + (f"resuming from the checkpoint at step {step}" if step is not None else "starting from scratch"),
                  flush=True)
            result = experiment.run_one(self.grid, self.minority, self.seed)
            self._record({"event": "done", "job_id": job_id, "time": time.time(), "dir": str(result.dir)})
        return str(result.dir)

    def checkpoint(self, *args: Any, **kwargs: Any):
        import submitit

        print(f"rharm sweep: run {self.key} interrupted; requeued to resume from its last checkpoint", flush=True)
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


# ------------------------------------------------------------------------------------------------------------------
# submission
# ------------------------------------------------------------------------------------------------------------------


def _manifest_path(p: Plan) -> Path:
    return p.folder / "sweep.json"


def _read_manifest(path: Path) -> dict:
    """A sweep record, checked: SweepError naming the file and the remedy when it is damaged."""
    try:
        man = store.load_json(path)
    except (store.UnreadableFileError, OSError) as err:
        why = str(err).split("(", 1)[-1].split(")", 1)[0] if "(" in str(err) else type(err).__name__
        man, problem = None, f"unreadable ({why})"
    else:
        problem = None
    if problem is None:
        if not isinstance(man, dict):
            problem = f"a JSON {type(man).__name__}, not an object"
        elif not isinstance(man.get("notebook"), str) or not isinstance(man.get("profile"), str):
            problem = "no notebook/profile"
        elif not isinstance(man.get("jobs", {}), dict) or not isinstance(man.get("submissions", []), list):
            problem = "jobs/submissions of the wrong type"
    if problem is not None:
        raise SweepError(f"sweep record {path} is damaged ({problem}); move it away or delete it (the results in "
                         "the store are kept; `rharm sweep NOTEBOOK` records the jobs it submits anew)")
    man.setdefault("jobs", {})
    man.setdefault("submissions", [])
    return man


def _load_manifest(p: Plan) -> dict:
    path = _manifest_path(p)
    if path.is_file():
        return _read_manifest(path)
    return {"notebook": p.notebook, "profile": p.profile, "overrides": p.overrides, "jobs": {}, "submissions": []}


def _record_jobs(p: Plan, executor: str, pairs: Sequence[tuple[Run, str]]) -> None:
    man = _load_manifest(p)
    for run, job_id in pairs:  # the latest job of a run is the one that counts; earlier ones stay in submissions
        man["jobs"][run.key] = {"job_id": job_id, "executor": executor, "run": run.label}
    man["submissions"].append({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "executor": executor,
                               "jobs": {run.key: job_id for run, job_id in pairs}})
    store.save_json(_manifest_path(p), man)


@dataclass
class Submission:
    """Jobs submitted by :func:`submit`: ``jobs`` [(run, submitit job)]; ``queued`` runs not submitted yet (the
    local executor keeps at most ``parallelism`` jobs at once and submits the rest from :meth:`wait`)."""

    plan: Plan
    executor: str
    jobs: list = field(default_factory=list)
    queued: list = field(default_factory=list)
    parallelism: int = 1
    _executor: Any = None

    def _submit(self, runs: Sequence[Run]) -> None:
        if not runs:
            return
        env = {v: str(getattr(paths, f)()) for v, f in zip(
            ROOT_VARIABLES, ("repo_root", "data_root", "results_root", "cache_root"))}
        attempts = self.plan.folder / "attempts"
        fns = [TrainRun(self.plan.grid, r.minority, r.seed, r.key, env, attempts / f"{r.key}.jsonl") for r in runs]
        if self.executor == "slurm":
            with self._executor.batch():  # one job array
                jobs = [self._executor.submit(fn) for fn in fns]
        else:
            jobs = [self._executor.submit(fn) for fn in fns]
        self.jobs += list(zip(runs, jobs))
        _record_jobs(self.plan, self.executor, [(r, str(j.job_id)) for r, j in zip(runs, jobs)])

    def active(self) -> list:
        """[(run, job)] of the submitted jobs that have not ended."""
        return [(r, j) for r, j in self.jobs if not j.done()]

    def wait(self, poll_s: float = 5.0, timeout_s: float | None = None, echo=None) -> dict[str, int]:
        """Block until every run is done or its job ended; submit queued runs as slots free (local executor).
        Returns the count of runs per state (see :func:`status`)."""
        start = time.time()
        last = None
        while True:
            if self.queued:
                free = self.parallelism - len(self.active())
                if free > 0:
                    batch, self.queued = self.queued[:free], self.queued[free:]
                    self._submit(batch)
            states = status(self.plan)
            counts = {s: sum(1 for row in states if row.state == s) for s in STATES}
            if echo is not None and counts != last:
                echo(f"[{time.time() - start:6.0f} s] " + ", ".join(f"{counts[s]} {s}" for s in STATES))
                last = counts
            if not self.queued and counts["running"] == 0:
                return counts
            if timeout_s is not None and time.time() - start > timeout_s:
                raise TimeoutError(f"sweep still running after {timeout_s:.0f} s: {counts}")
            time.sleep(poll_s)


#: (lowest, highest) of each per-job resource option; the names are submit's keywords (``--gpus-per-job`` etc.)
OPTION_RANGES = {"gpus_per_job": (0, 64), "cpus_per_job": (1, 1024), "timeout_min": (1, 60 * 24 * 30),
                 "array_parallelism": (1, 100_000), "max_num_timeout": (0, 1000), "mem_gb": (0.001, 100_000.0)}


def check_options(**options: Any) -> None:
    """Raise :class:`SweepError` (one line naming the option, the value and the valid range) for a per-job option
    out of :data:`OPTION_RANGES` (None: the default, always valid). Checked before planning, dry runs included."""
    for name, value in options.items():
        if value is None:
            continue
        lo, hi = OPTION_RANGES[name]
        flag = "--" + name.replace("_", "-")
        is_float = name == "mem_gb"
        ok = not isinstance(value, bool) and isinstance(value, (int, float) if is_float else int)
        ok = ok and math.isfinite(value) and lo <= value <= hi
        if not ok:
            kind = "a number" if is_float else "an integer"
            raise SweepError(f"{name}={value!r} ({flag}) is not valid; it must be {kind} in [{lo:g}, {hi:g}]")


def submit(p: Plan, *, executor: str = "local", slurm_partition: str | None = None, gpus_per_job: int = 0,
           cpus_per_job: int | None = None, timeout_min: int = 60, array_parallelism: int | None = None,
           mem_gb: float | None = None, max_num_timeout: int = 10) -> Submission:
    """Submit one job per missing run of ``p`` (nothing is submitted when every run is in the store).

    Args:
        executor: "slurm" (one job array through submitit's SLURM executor; needs ``sbatch`` and a reachable
            controller) or "local" (processes on this machine, at most ``array_parallelism`` at once).
        slurm_partition, gpus_per_job, cpus_per_job (default: the grid's ``threads`` or 1), timeout_min, mem_gb:
            per-job resources. A job that reaches ``timeout_min`` is signalled, requeued and resumed, at most
            ``max_num_timeout`` times; preemptions are requeued without limit.
        array_parallelism: jobs running at once (default: all on SLURM, the grid's ``workers`` locally).
    """
    import submitit

    if executor not in EXECUTORS:
        raise SweepError(f"executor={executor!r} is not valid; choose one of {list(EXECUTORS)}")
    check_options(gpus_per_job=gpus_per_job, cpus_per_job=cpus_per_job, timeout_min=timeout_min,
                  array_parallelism=array_parallelism, mem_gb=mem_gb, max_num_timeout=max_num_timeout)
    if executor == "slurm" and shutil.which("sbatch") is None:
        raise SweepError("executor='slurm' needs SLURM's sbatch on PATH (run on a login node of the cluster), "
                         "or use executor='local'")
    if slurm_partition is not None and executor != "slurm":
        raise SweepError(f"slurm_partition={slurm_partition!r} is only valid with executor='slurm'")
    cpus = cpus_per_job or max(1, int(p.grid.get("threads") or 1))
    if array_parallelism is None:
        array_parallelism = len(p.runs) if executor == "slurm" else max(1, int(p.grid.get("workers") or 1))
    folder = p.folder / "jobs"
    folder.mkdir(parents=True, exist_ok=True)
    ex = submitit.AutoExecutor(folder=folder, cluster=executor, slurm_max_num_timeout=max_num_timeout)
    kw: dict[str, Any] = {"name": f"rharm-{p.notebook}", "timeout_min": int(timeout_min), "cpus_per_task": cpus,
                          "gpus_per_node": int(gpus_per_job), "tasks_per_node": 1, "nodes": 1}
    if mem_gb is not None:
        kw["mem_gb"] = float(mem_gb)
    if executor == "slurm":
        kw["slurm_array_parallelism"] = int(array_parallelism)
        if slurm_partition:
            kw["slurm_partition"] = slurm_partition
    ex.update_parameters(**kw)
    sub = Submission(plan=p, executor=executor, parallelism=int(array_parallelism), _executor=ex)
    missing = p.missing
    if executor == "slurm":
        sub._submit(missing)
    else:
        sub._submit(missing[:array_parallelism])
        sub.queued = missing[array_parallelism:]
    return sub


# ------------------------------------------------------------------------------------------------------------------
# status
# ------------------------------------------------------------------------------------------------------------------


@dataclass
class RunStatus:
    """The state of one run: ``state`` in :data:`STATES`; ``job_id`` its latest job; ``detail`` a short note
    (scheduler state, attempts, the step the last attempt resumed from); ``log_tail`` the last lines of a failed
    job's log."""

    run: Run
    state: str
    job_id: str | None = None
    detail: str = ""
    log_tail: list[str] = field(default_factory=list)


def _slurm_queue() -> dict[str, str] | str:
    """Job id -> state of every job in SLURM's queue (array tasks one by one), or the error text."""
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return str(err)
    if out.returncode != 0:
        return (out.stderr or out.stdout).strip() or f"squeue exited with {out.returncode}"
    return dict(line.split("|", 1) for line in out.stdout.split() if "|" in line)


def _local_alive(job_id: str) -> bool:
    """Whether the local job's controller process (its pid is the job id) still runs."""
    try:
        stat = Path(f"/proc/{int(job_id)}/stat").read_text()
        cmdline = Path(f"/proc/{int(job_id)}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and b"submitit" in cmdline


def _attempts(p: Plan, run: Run) -> list[dict]:
    path = p.folder / "attempts" / f"{run.key}.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            rows.append(json.loads(line))
    return rows


def _log_tail(p: Plan, job_id: str, n: int = 12) -> list[str]:
    folder = p.folder / "jobs"
    lines: list[str] = []
    for suffix in ("out", "err"):
        path = folder / f"{job_id}_0_log.{suffix}"
        if path.is_file():
            text = path.read_text(errors="replace").splitlines()
            lines += [f"{path.name}: {line}" for line in text[-n:]]
    return lines or [f"(no log file {job_id}_0_log.out/.err under {folder})"]


def status_of(p: Plan, run: Run, queue: Mapping[str, str] | str | None = None, manifest: dict | None = None
              ) -> tuple[str, str | None, str]:
    """(state, job id, detail) of one run; see :func:`status`."""
    man = manifest if manifest is not None else _load_manifest(p)
    entry = man["jobs"].get(run.key)
    if entry is None:
        return ("done", None, "in the store before any sweep job") if run.done else ("missing", None, "")
    job_id, executor = str(entry["job_id"]), entry["executor"]
    starts = [a for a in _attempts(p, run) if a.get("event") == "start" and str(a.get("job_id")) == job_id]
    note = f"attempt {len(starts)}" if starts else "not started"
    if starts and starts[-1].get("resumed_from_step") is not None:
        note += f", resumed from step {starts[-1]['resumed_from_step']}"
    if run.done:
        wall = store.load_meta(run.dir).get("wall_time_s")
        return "done", job_id, f"{len(starts)} attempt(s)" + (f", last {wall:.0f} s" if wall is not None else "") \
            + (f", resumed from step {starts[-1]['resumed_from_step']}"
               if len(starts) > 1 and starts[-1].get("resumed_from_step") is not None else "")
    if executor == "slurm":
        queue = _slurm_queue() if queue is None else queue
        if isinstance(queue, str):
            return "running", job_id, f"{note}; SLURM queue unreadable ({queue}): assuming the job still runs"
        if job_id in queue:
            return "running", job_id, f"{queue[job_id].lower()}, {note}"
    elif _local_alive(job_id):
        return "running", job_id, note
    return "failed", job_id, f"job ended without a result ({note})"


def status(p: Plan) -> list[RunStatus]:
    """Done / running / failed / missing for every run of ``p``.

    done: the run is in the store. running: its latest job is queued or running (SLURM's queue; a local job's
    process), requeued jobs included. failed: its latest job ended without putting the run into the store; the last
    lines of the job's log are in ``log_tail``. missing: no job was ever submitted for it.
    """
    man = _load_manifest(p)
    needs_queue = any(e.get("executor") == "slurm" for e in man["jobs"].values())
    queue = _slurm_queue() if needs_queue else {}
    rows = []
    for r in p.runs:
        state, job_id, detail = status_of(p, r, queue, man)
        rows.append(RunStatus(r, state, job_id, detail, _log_tail(p, job_id) if state == "failed" else []))
    return rows


def known_sweeps() -> list[Plan]:
    """Plans of every sweep recorded under the results root (for ``rharm sweep --status`` without a notebook)."""
    plans = []
    for path in sorted((paths.results_root() / "sweeps").glob("*/sweep.json")):
        try:
            man = _read_manifest(path)
            plans.append(plan(man["notebook"], man["profile"], man.get("overrides") or {}))
        except params_mod.ParameterError as err:  # one damaged record never hides the others
            print(f"rharm: {err}", file=sys.stderr)
    return plans


def format_status(p: Plan, rows: Sequence[RunStatus]) -> str:
    counts = {s: sum(1 for r in rows if r.state == s) for s in STATES}
    lines = [f"sweep of {p.notebook} ({p.profile}{', overrides ' + json.dumps(p.overrides) if p.overrides else ''}): "
             + ", ".join(f"{counts[s]} {s}" for s in STATES) + f"  [{p.folder}]",
             f"{'#':>3}  {'run':24s} {'config hash':22s} {'state':8s} {'job':12s} detail"]
    for row in rows:
        lines.append(f"{row.run.index:3d}  {row.run.label:24s} {row.run.key:22s} {row.state:8s} "
                     f"{row.job_id or '-':12s} {row.detail}")
    for row in rows:
        if row.log_tail:
            lines.append(f"--- failed: {row.run.label} (job {row.job_id}), last log lines:")
            lines += ["    " + line for line in row.log_tail]
    return "\n".join(lines)
