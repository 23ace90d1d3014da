"""`commbench noise`: a run of the noise calibration alone (plus a short barrier case, which a
run needs), then its one line (bench.noise), not the barrier's table. Its options are
bench.noise's; the command layer (bench.cli) passes in its parser of `commbench run`."""
from __future__ import annotations

from pathlib import Path

from bench.core.errors import UsageError
from bench.core.rundir import load_meta, new_run_id
from bench.core.runmeta import describe_noise
from bench.run import main as run_main
from bench.world import detect_world


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
