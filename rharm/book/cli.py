"""The ``rharm`` command.

Examples::

    rharm run notebooks/theory.py -p alpha 0.2          # one notebook, cpu profile, alpha overridden
    rharm run theory --profile smoke                    # a profile's page: book/smoke/theory.ipynb
    rharm book                                          # execute every chapter (cpu) and build the book
    rharm book --profile smoke --strict                 # what CI builds
    rharm params theory                                 # the parameters, their constraints and profile values
    rharm sync [--check]                                # regenerate / check the paired notebooks/*.ipynb
    rharm plan --profile gpu [--images-per-s resnet34=5200]   # runs, FLOP, GPU-hours of a profile
    rharm sweep representation_harm --profile gpu --executor slurm --dry-run   # grid runs as cluster jobs
    rharm sweep --status                                # done / running / failed / missing per run
    rharm audit --embeddings E.npy --labels L.txt [--reference R.npy] --out DIR   # audit an encoder
"""

from __future__ import annotations

import argparse
import sys

from rharm.core import params as params_mod
from rharm.book import runner


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rharm", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="execute one notebook with papermill")
    r.add_argument("notebook", help="name (theory) or path (notebooks/theory.py)")
    r.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="override a parameter; VALUE is parsed as YAML (0.2, [1, 2], true)")
    r.add_argument("--profile", default=params_mod.DEFAULT_PROFILE, choices=params_mod.PROFILES)
    r.add_argument("--output", help="where to write the executed notebook")
    r.add_argument("--force", action="store_true", help="replace an existing variant output")
    r.add_argument("--log-output", action="store_true", help="stream the notebook's output")
    r.add_argument("--html", action="store_true", help="also render the executed notebook as a one-page book")

    b = sub.add_parser("book", help="execute every chapter for a profile and build the book")
    b.add_argument("--profile", default=runner.BOOK_PROFILE, choices=params_mod.PROFILES)
    b.add_argument("--no-execute", action="store_true", help="build from the pages already in book/<profile>/")
    b.add_argument("--strict", action="store_true", help="warnings and broken references are errors")
    b.add_argument("--only", nargs="+", help="execute only these chapters (the build still renders all)")

    pa = sub.add_parser("params", help="show a notebook's parameters and profile values")
    pa.add_argument("notebook")
    pa.add_argument("--profile", default=params_mod.DEFAULT_PROFILE, choices=params_mod.PROFILES)

    sw = sub.add_parser("sweep", help="train a notebook's missing grid runs as cluster jobs (SLURM or local)",
                        description="Submit one submitit job per run of NOTEBOOK's grid that is not in the store. "
                                    "Then `rharm run NOTEBOOK --profile P` builds the page without training. "
                                    "`rharm sweep --status` reports every recorded sweep.")
    sw.add_argument("notebook", nargs="?", help="name or path of a notebook with a grid (representation_harm, ...)")
    sw.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="override a parameter; VALUE is parsed as YAML")
    sw.add_argument("--profile", default=params_mod.DEFAULT_PROFILE, choices=params_mod.PROFILES)
    sw.add_argument("--executor", default="local", choices=("local", "slurm"),
                    help="slurm: one job array via sbatch; local: processes here (the command waits for them)")
    sw.add_argument("--slurm-partition", help="SLURM partition (default: the cluster's default)")
    sw.add_argument("--gpus-per-job", type=int, default=0, help="GPUs per job (default 0)")
    sw.add_argument("--cpus-per-job", type=int, help="CPUs per job (default: the grid's threads, or 1)")
    sw.add_argument("--mem-gb", type=float, help="memory per job in GB (default: the cluster's default)")
    sw.add_argument("--timeout-min", type=int, default=60,
                    help="time limit per job attempt; a job reaching it is requeued and resumes (default 60)")
    sw.add_argument("--array-parallelism", type=int,
                    help="jobs running at once (default: all on SLURM; the grid's workers locally)")
    sw.add_argument("--dry-run", action="store_true", help="print the job table and estimated costs, submit nothing")
    sw.add_argument("--status", action="store_true", help="done / running / failed / missing per run")
    sw.add_argument("--wait", action="store_true", help="with --executor slurm: wait until every job has ended")

    pl = sub.add_parser("plan", help="runs, FLOP and estimated GPU-hours of a profile's contrastive grid")
    pl.add_argument("--profile", default="gpu", choices=params_mod.PROFILES)
    pl.add_argument("--images-per-s", nargs="+", metavar="BACKBONE=N",
                    help="measured training throughput (images/s, two views each), e.g. resnet34=5200; "
                         "otherwise assumed from the FLOP (see --utilisation)")
    pl.add_argument("--peak-tflops", type=float, default=989.0, help="device dense bf16 peak (H200: 989)")
    pl.add_argument("--utilisation", type=float, default=0.25, help="assumed fraction of the peak (default 0.25)")

    s = sub.add_parser("sync", help="regenerate the paired notebooks/*.ipynb from the .py sources")
    s.add_argument("--check", action="store_true", help="exit 1 if any paired notebook drifted")

    st = sub.add_parser("store", help="the result store: adopt results keyed before recipes existed",
                        description="rekey: adopt every result written under the old code-hash keys whose code its "
                                    "kind's recipe names (rharm/store/recipes.py), after checking the kind's canary; "
                                    "files are hard-linked under the new keys, nothing is deleted or retrained.")
    st.add_argument("action", choices=("rekey",))
    st.add_argument("--no-canary", action="store_true", help="adopt without running the canaries (not advised)")

    from rharm.book import audit_cli as audit_mod

    audit_mod.add_cli(sub)
    return p


def _store(args) -> int:
    """``rharm store rekey``: print, per kind, what was adopted, found in place, or left alone and why."""
    from rharm import store

    report = store.rekey(check_canary=not args.no_canary)
    for kind, c in report.items():
        line = (f"{kind}: refused ({c['refused']})" if c["refused"] else
                f"{kind}: {c['adopted']} adopted, {c['present']} already under their recipe key, {c['other_code']} "
                f"written by other code (left alone), {c['unusable']} unusable")
        print(line)
    return 1 if any(c["refused"] for c in report.values()) else 0


def _sweep(args) -> int:
    """``rharm sweep``: plan, submit or report a sweep (see :mod:`rharm.study.sweep`)."""
    import time

    from rharm.study import sweep

    overrides = {}
    for name, value in args.parameter:
        if name in overrides:
            raise params_mod.ParameterError(f"parameter {name!r} given twice")
        overrides[name] = params_mod.parse_cli_value(value)
    overrides = params_mod.check_overrides(overrides)
    sweep.check_options(gpus_per_job=args.gpus_per_job, cpus_per_job=args.cpus_per_job, timeout_min=args.timeout_min,
                        array_parallelism=args.array_parallelism, mem_gb=args.mem_gb)
    if args.status:
        plans = [sweep.plan(args.notebook, args.profile, overrides)] if args.notebook else sweep.known_sweeps()
        if not plans:
            print("no sweep recorded under the results root; start one with `rharm sweep NOTEBOOK --profile P`")
        for p in plans:
            print(sweep.format_status(p, sweep.status(p)))
        return 0
    if not args.notebook:
        raise params_mod.ParameterError("rharm sweep needs a NOTEBOOK (or --status); notebooks with a grid: "
                                        + ", ".join(sweep.grid_notebooks()))
    p = sweep.plan(args.notebook, args.profile, overrides)
    page = sweep.run_command(p)
    print(sweep.job_table(p))
    if args.dry_run:
        return 0
    if not p.missing:
        print(f"every run is in the store: `{page}` trains nothing")
        return 0
    start = time.time()
    sub = sweep.submit(p, executor=args.executor, slurm_partition=args.slurm_partition, gpus_per_job=args.gpus_per_job,
                       cpus_per_job=args.cpus_per_job, timeout_min=args.timeout_min,
                       array_parallelism=args.array_parallelism, mem_gb=args.mem_gb)
    print(f"submitted {len(sub.jobs)} job(s) with the {args.executor} executor"
          + (f", {len(sub.queued)} more as slots free" if sub.queued else "") + f"; job folder {p.folder / 'jobs'}")
    if args.executor == "slurm" and not args.wait:
        print(f"follow them with `rharm sweep --status`; when all are done, `{page}` builds the page")
        return 0
    counts = sub.wait(echo=print)
    print(f"sweep ended after {time.time() - start:.0f} s: " + ", ".join(f"{counts[s]} {s}" for s in sweep.STATES))
    if counts["failed"] or counts["missing"]:
        print(sweep.format_status(p, sweep.status(p)))
        return 1
    print(f"every run is in the store: `{page}` builds the page without training")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "audit":  # reports its own bad input (exit 2), writes nothing on error
        from rharm.book import audit_cli as audit_mod

        return audit_mod.run_cli(args)
    try:
        if args.command == "run":
            overrides = {}
            for name, value in args.parameter:
                if name in overrides:
                    raise params_mod.ParameterError(f"parameter {name!r} given twice")
                overrides[name] = params_mod.parse_cli_value(value)
            out = runner.run(args.notebook, profile=args.profile, parameters=overrides, output=args.output,
                             force=args.force, log_output=args.log_output)
            print(f"executed notebook: {out}")
            if args.html:
                print(f"html: {runner.render_page(out)}")
        elif args.command == "book":
            html = runner.book(args.profile, execute=not args.no_execute, strict=args.strict, only=args.only)
            print(f"book: {html / 'index.html'}")
        elif args.command == "params":
            name = params_mod.notebook_source(args.notebook).stem
            values = params_mod.profile_values(name, args.profile)
            for pname, spec in params_mod.specs(name).items():
                print(f"{pname:24s} = {values[pname]!r:32s} {spec.describe()}  {spec.help}")
        elif args.command == "sweep":
            return _sweep(args)
        elif args.command == "store":
            return _store(args)
        elif args.command == "plan":
            from rharm.study import plan

            try:
                rows = plan.plan_table(args.profile, images_per_s=plan.parse_throughputs(args.images_per_s),
                                       peak_tflops=args.peak_tflops, utilisation=args.utilisation)
            except ValueError as err:
                raise params_mod.ParameterError(str(err)) from err
            print(plan.format_plan(args.profile, rows))
        elif args.command == "sync":
            drifted = runner.sync(check=args.check)
            for path in drifted:
                print(("drifted: " if args.check else "wrote: ") + str(path))
            if args.check and drifted:
                return 1
    except (params_mod.ParameterError, runner.RunError) as err:
        print(f"rharm: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line saying what was kept and how to resume, no traceback
        import logging

        # the interrupt also reaches the kernel; when it dies first, the notebook client's pending task fails with
        # DeadKernelError and asyncio would log its traceback at exit: expected after a Ctrl-C, so not shown
        logging.disable(logging.CRITICAL)
        print(runner.interrupted_message(sys.argv[1:] if argv is None else argv), file=sys.stderr)
        return 130
    except OSError as err:  # a full disk: one line with how much was needed where; other OS errors propagate
        message = runner.disk_full_message(err)
        if message is None:
            raise
        print(message, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
