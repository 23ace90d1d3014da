"""`commbench sweep --nranks 2,4,8 --out DIR [run options]`: one `commbench run` per rank count,
into DIR/n2, DIR/n4, ... — the input of `commbench fit DIR` for the collective algorithm models
and of `commbench predict`. Each run is an ordinary `commbench run` in its own process (it
launches its own ranks), so a sweep measures exactly what single runs measure."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.core.errors import UsageError
from bench.core.run_lock import check_name, in_progress


def add_arguments(parser) -> None:
    from bench import run

    # every option of `commbench run`, passed through; -n/--nranks becomes a list
    run.add_arguments(_Without(parser, {"-n", "--nranks", "--out"}))
    parser.add_argument("-n", "--nranks", required=True,
                        help="comma-separated rank counts, one run each, e.g. 2,4,8")
    parser.add_argument("-o", "--out", required=True, metavar="DIR",
                        help="sweep directory; run directories DIR/n<count> are made in it")
    parser.add_argument("--force-algorithms", action="store_true",
                        help="mpi backend: also run every algorithm the MPI library can be "
                        "forced to run (Open MPI coll/tuned, MPICH CVARs), one run per op and "
                        "algorithm, DIR/n<count>.<op>.<algorithm>; the fit uses each on its "
                        "own cases (bench.forcing, analysis.library)")
    # Slurm: bench.slurm
    parser.add_argument("--slurm", action="store_true",
                        help="submit the sweep as one Slurm batch job (a job step per rank "
                             "count, srun --mpi=pmix or $MPIEXEC if it is srun) and wait for it")
    parser.add_argument("--ranks-per-node", type=int, metavar="R",
                        help="with --slurm: R ranks on each node, so each count P runs on P/R "
                             "nodes (a sweep over node counts)")
    parser.add_argument("--sbatch", default="", metavar="OPTIONS",
                        help="with --slurm: sbatch options, e.g. \"-N 4 -p batch --time 30\"")


class _Without:
    """A parser that ignores the options named in `skip` (the ones sweep redefines)."""

    def __init__(self, parser, skip):
        self.parser, self.skip = parser, skip

    def add_argument(self, *names, **kw):
        if not self.skip.intersection(names):
            return self.parser.add_argument(*names, **kw)
        return None


def parse_counts(text: str) -> list[int]:
    try:
        counts = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"malformed --nranks {text!r}: expected counts like 2,4,8") from None
    if not counts:
        raise UsageError("--nranks: no rank counts given")
    bad = [c for c in counts if c < 1]
    if bad:
        raise UsageError(f"--nranks: counts must be at least 1, got {bad[0]}")
    return sorted(set(counts))


def _forced(args, plan):
    """p -> bench.forcing.forced_runs for --force-algorithms (refused where they cannot
    be); None without it."""
    if not getattr(args, "force_algorithms", False):
        return None
    from bench import forcing

    if args.backend != "mpi":
        raise UsageError("--force-algorithms needs --backend mpi (one MPI library)")
    try:
        text = forcing.mpi_library()
    except ImportError as exc:
        raise UsageError(f"--force-algorithms: mpi4py cannot be loaded ({exc})") from None
    found = forcing.family(text)
    if found is None:
        raise UsageError(f"--force-algorithms: no way known to force algorithms of {text!r}")
    names = [op.name for op in plan.ops]
    if not forcing.forced_runs(*found, names, 2):
        raise UsageError("--force-algorithms: the library cannot be forced for these ops")
    return lambda p: forcing.forced_runs(*found, names, p)


def run_options(argv: list[str]) -> list[str]:
    """The command line after `sweep`, less -n/--nranks and --out (set per run) and the
    sweep's own --slurm, --sbatch and --ranks-per-node."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--force-algorithms":
            continue
        if a in ("-n", "--nranks", "--out", "-o", "--sbatch", "--ranks-per-node"):
            skip = True
            continue
        joined = a.startswith(("--nranks=", "--out=", "--sbatch=", "--ranks-per-node="))
        if a == "--slurm" or joined or (a.startswith("-n") and a[2:3].isdigit()) or (
                a.startswith("-o") and len(a) > 2):
            continue
        out.append(a)
    return out


def _run(command: list) -> int:
    """One run in its own process. SIGINT, SIGTERM or SIGHUP to the sweep is passed on to the
    run (which stops its ranks and marks itself aborted), and its exit status returned."""
    import signal

    proc = subprocess.Popen(command)

    def forward(signum, frame):
        proc.send_signal(signum)

    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, forward) for sig in stops}
    try:
        return proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(args, argv) -> int:
    """argv: the command line after `commbench` (`sweep ...`)."""
    import argparse

    from bench.plan import make_plan

    counts = parse_counts(args.nranks)
    # every run option checked once, before any rank starts
    plan = make_plan(argparse.Namespace(**{**vars(args), "nranks": counts[0]}))
    for p in counts:
        for op in plan.ops:
            problem = op.rank_problem(p)
            if problem:
                raise UsageError(f"{problem} (in the sweep over {args.nranks})")
    forced = _forced(args, plan)
    root = Path(args.out)
    check_name(root)
    check_name(root.absolute(), "--out (its absolute path)")
    taken = [root / f"n{p}" for p in counts if (root / f"n{p}").exists()]
    busy = [d for d in taken if in_progress(d)]
    if busy:  # --force or not: a run going on there is never cleared nor mixed into
        raise UsageError(f"{busy[0]} is in use by a commbench run in progress (its lock is "
                         "held); wait until it ends, or give the sweep another --out")
    if taken and not args.force:  # with --force, each run replaces its own (bench.run)
        raise UsageError(f"{taken[0]} exists: give the sweep a new --out directory or --force")
    if args.slurm:
        if forced:
            raise UsageError("--force-algorithms runs its forced runs locally: not with --slurm")
        return _sweep_in_slurm(args, argv, root, counts)
    if args.ranks_per_node is not None:
        raise UsageError("--ranks-per-node places ranks through Slurm: it needs --slurm")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {root}: cannot write there ({exc.strerror or exc})") from None
    rest = run_options(list(argv[1:]))
    (root / "sweep.json").write_text(json.dumps(
        {"nranks": counts, "run_options": rest, "argv": ["commbench"] + list(argv)},
        indent=1) + "\n")
    worst = 0
    for p in counts:
        sub = root / f"n{p}"
        if not args.quiet:
            print(f"commbench sweep: {p} ranks -> {sub}", file=sys.stderr)
        rc = _run([sys.executable, "-m", "bench.cli", "run", "-n", str(p), "--out", str(sub), *rest])
        if rc >= 128:  # stopped by a signal (the run marked itself aborted): the sweep ends too
            print(f"commbench sweep: stopped during {sub}", file=sys.stderr)
            return rc
        if rc == 2:  # bad input is the same for every count: stop
            return 2
        worst = max(worst, rc)
        for op, _, suffix, env in forced(p) if forced else []:  # one op per run: its
            # forced algorithm in meta.env
            sub = root / f"n{p}.{suffix}"
            if not args.quiet:
                print(f"commbench sweep: {p} ranks, {suffix} forced -> {sub}", file=sys.stderr)
            rc = subprocess.call([sys.executable, "-m", "bench.cli", "run", "-n", str(p),
                                  "--out", str(sub), *rest, "--ops", op],
                                 env={**os.environ, **env})
            if rc == 2:
                return 2
            worst = max(worst, rc)
    if not args.quiet:
        print(f"commbench sweep: done; fit it with: commbench fit {root}", file=sys.stderr)
    return worst


def _sweep_in_slurm(args, argv, root: Path, counts: list[int]) -> int:
    """The sweep as one batch job (bench.slurm); sweep.json also names the job."""
    import shlex

    from bench import slurm

    slurm.require_sbatch()  # before anything is written
    slurm.check_ranks_per_node(counts, args.ranks_per_node)
    try:
        sbatch_options = shlex.split(args.sbatch)
    except ValueError as exc:
        raise UsageError(f"malformed --sbatch {args.sbatch!r}: {exc}") from None
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()  # the job's steps may start in another directory
    rest = run_options(list(argv[1:]))
    script = root / "sweep.sbatch"
    script.write_text(slurm.batch_script(root, counts, rest, slurm.srun_command(),
                                         ranks_per_node=args.ranks_per_node))
    record: dict = {"nranks": counts, "run_options": rest, "argv": ["commbench"] + list(argv),
                    "slurm": {"script": script.name, "sbatch_options": sbatch_options,
                              "ranks_per_node": args.ranks_per_node}}
    (root / "sweep.json").write_text(json.dumps(record, indent=1) + "\n")
    rc, job_id = slurm.submit_and_wait(script, sbatch_options, args.quiet)
    record["slurm"]["job_id"] = job_id
    (root / "sweep.json").write_text(json.dumps(record, indent=1) + "\n")
    if rc == 3:
        print(f"commbench sweep: Slurm job {job_id} failed or was cancelled: see "
              f"{root / f'slurm-{job_id}.out'}", file=sys.stderr)
    elif not args.quiet:
        print(f"commbench sweep: done; fit it with: commbench fit {root}", file=sys.stderr)
    return rc
