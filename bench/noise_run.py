"""`commbench noise`: a run of the noise calibration alone (plus a short barrier case, which a
run needs), then its one line (bench.noise), not the barrier's table. Its options are
in add_arguments; the command layer (bench.cli) passes in its parser of `commbench run`."""
from __future__ import annotations

from pathlib import Path

from bench.core.errors import UsageError
from bench.core.rundir import load_meta, new_run_id
from bench.core.runmeta import describe_noise
from bench.run import main as run_main
from bench.world import detect_world


def add_arguments(p) -> None:
    """The options of `commbench noise`."""
    from bench.backends import BACKENDS
    from bench.settings import DEFAULT_TIMEOUT_S

    p.add_argument("-n", "--nranks", type=int, help="local ranks to start (default 2); inside a "
                   "launcher the ranks it gave")
    p.add_argument("--backend", default="mpi", metavar="NAME",
                   help=f"one of {', '.join(BACKENDS)} (default mpi)")
    p.add_argument("-o", "--out", metavar="RUN_DIR", help="run directory (default "
                   "results/<run_id>-noise; needed under a launcher)")
    p.add_argument("--force", action="store_true",
                   help="start --out afresh when it already holds a run")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                   help=f"seconds without progress before the job is aborted (default {DEFAULT_TIMEOUT_S:g})")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the run directory")


def main(args, parse_run) -> int:
    """args: the parsed options of `commbench noise`; parse_run(argv): parsed options of
    `commbench run`."""
    world = detect_world()
    if world is not None and args.out is None:
        raise UsageError("noise under a launcher needs --out (the same on every rank)")
    out = args.out or str(Path("results") / f"{new_run_id(args.backend, args.nranks or 2)}-noise")
    run_argv = ["run", "--ops", "barrier", "--noise", "--no-ceilings", "--launches", "1",
                "--repeats", "1", "--budget", "0.2", "-q", "--backend", args.backend,
                "--timeout", str(args.timeout), "--out", out,
                *(["-n", str(args.nranks)] if args.nranks is not None else []),
                *(["--force"] if args.force else [])]
    rc = run_main(parse_run(run_argv), run_argv).rc
    if rc in (0, 1) and (world is None or world.rank == 0):
        meta = load_meta(out)
        if not args.quiet and meta.get("noise"):
            print(f"# noise: {describe_noise(meta['noise'])}")
        print(f"# results: {out}")
    return rc
