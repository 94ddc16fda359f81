"""The ``rharm`` command.

Examples::

    rharm run notebooks/theory.py -p alpha 0.2          # one notebook, cpu profile, alpha overridden
    rharm run theory --profile smoke                    # a profile's page: book/smoke/theory.ipynb
    rharm book                                          # execute every chapter (cpu) and build the book
    rharm book --profile smoke --strict                 # what CI builds
    rharm params theory                                 # the parameters, their constraints and profile values
    rharm sync [--check]                                # regenerate / check the paired notebooks/*.ipynb
    rharm plan --profile gpu [--images-per-s resnet34=5200]   # runs, FLOP, GPU-hours of a profile
    rharm audit --embeddings E.npy --labels L.txt [--reference R.npy] --out DIR   # audit an encoder
"""

from __future__ import annotations

import argparse
import sys

from . import params as params_mod
from . import runner


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

    pl = sub.add_parser("plan", help="runs, FLOP and estimated GPU-hours of a profile's contrastive grid")
    pl.add_argument("--profile", default="gpu", choices=params_mod.PROFILES)
    pl.add_argument("--images-per-s", nargs="+", metavar="BACKBONE=N",
                    help="measured training throughput (images/s, two views each), e.g. resnet34=5200; "
                         "otherwise assumed from the FLOP (see --utilisation)")
    pl.add_argument("--peak-tflops", type=float, default=989.0, help="device dense bf16 peak (H200: 989)")
    pl.add_argument("--utilisation", type=float, default=0.25, help="assumed fraction of the peak (default 0.25)")

    s = sub.add_parser("sync", help="regenerate the paired notebooks/*.ipynb from the .py sources")
    s.add_argument("--check", action="store_true", help="exit 1 if any paired notebook drifted")

    from . import audit as audit_mod  # light: heavy imports happen inside its functions

    audit_mod.add_cli(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "audit":  # reports its own bad input (exit 2), writes nothing on error
        from . import audit as audit_mod

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
            name = runner.notebook_source(args.notebook).stem
            values = params_mod.profile_values(name, args.profile)
            for pname, spec in params_mod.specs(name).items():
                print(f"{pname:24s} = {values[pname]!r:32s} {spec.describe()}  {spec.help}")
        elif args.command == "plan":
            from . import plan

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
