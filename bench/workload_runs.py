"""`commbench workload --measure`: the runs that measure a training step's communication, one
`commbench run` per layout group, on that group's communicators (split group:SIZE:STRIDE) into
its own run directory. Which groups, ops and sizes is analysis.workload's to say (measure_runs);
the command layer (bench.cli) passes them in, with its parser of `commbench run`."""
from __future__ import annotations

from bench.backends import backend_class
from bench.core.errors import UsageError
from bench.nodes import group_split
from bench.run import main as run_main
from bench.world import detect_world


def measure_groups(measure_argv: list, need: int, model_dtype: str, runs_for, out_given: bool,
                   parse_run) -> tuple[int, bool]:
    """Run every group's cases. measure_argv: the options after --measure; need: the layout's
    rank count; runs_for(dtype): the runs (group size, stride, ops, sizes, out); parse_run(argv):
    parsed options of `commbench run`. Returns (exit status, whether this process reports:
    the one that starts the ranks, or rank 0 under an outside launcher; False when a run
    ended in neither 0 nor 1)."""
    given = parse_run(["run", *measure_argv])
    if given.ops != "all" or given.split != "all" or given.out is not None or any(
            v is not None for v in (given.sizes, given.minbytes, given.maxbytes, given.stepfactor)):
        raise UsageError("--measure comes last and takes options of commbench run; workload "
                         "sets their --ops, --sizes (-b/-e/-f), --split and --out itself")
    world = detect_world()
    if world is None and (given.nranks or need) != need or world and world.size not in (0, need):
        got = given.nranks if world is None else world.size
        raise UsageError(f"--measure: the layout needs tp × pp × dp = {need} ranks, got {got}")
    if world is not None and not out_given:
        raise UsageError("--measure under a launcher needs --out (the same on every rank)")
    dtype = given.dtype if any(a == "--dtype" or a.startswith("--dtype=") for a in measure_argv) \
        else model_dtype
    try:  # the model's dtype where the backends take it, else float32 of the same S
        for name in given.backend.split(","):
            backend_class(name.strip()).check_dtype(dtype)
    except UsageError:
        dtype = "float32"
    rc = 0
    for r in runs_for(dtype):
        run_argv = ["run", *(["-n", str(need)] if world is None and not given.nranks else []),
                    *measure_argv, "--dtype", dtype, "--ops", ",".join(r.ops), "--sizes",
                    ",".join(map(str, r.sizes)), "--split", group_split(r.size, r.stride),
                    "--out", str(r.out)]
        outcome = run_main(parse_run(run_argv), run_argv)
        if outcome.rc not in (0, 1):
            return outcome.rc, False
        rc = max(rc, outcome.rc)
    return rc, world is None or world.rank == 0
