"""`commbench run`: validate, then either start local ranks (outside a launcher) or measure
SPMD on the ranks a launcher gave (inside mpiexec, srun, torchrun or commbench's own)."""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench import launch
from bench.backends import backend_class
from bench.errors import UsageError
from bench.harness import Sampling
from bench.ops import OPS, get_op
from bench.sizes import parse_sizes

DEFAULT_SIZES = "4:4M:4"
PAGE = 4096
EXIT_WRONG, EXIT_ABORT = 1, 3


def add_arguments(p) -> None:
    p.add_argument("-n", "--nranks", type=int, help="local ranks to start (default 2); inside a "
                   "launcher the ranks it gave (must match when given)")
    p.add_argument("--backend", default="mpi",
                   help="backend, or a comma list measured side by side in one run (default mpi)")
    p.add_argument("--ops", default="all", help=f"comma list or 'all' (known: {', '.join(OPS)}; 'all' means "
                   f"{', '.join(n for n, op in OPS.items() if op.default)})")
    p.add_argument("--sizes", default=DEFAULT_SIZES, help="MIN:MAX[:FACTOR] or a list; K/M/G "
                   f"suffixes are binary; S as each op defines it (default {DEFAULT_SIZES})")
    p.add_argument("--dtype", default="float32", help="element type (default float32; torch "
                   "backends also take float16 and bfloat16)")
    p.add_argument("--device", choices=("cpu", "cuda"),
                   help="where buffers live: cpu (host memory) or cuda (one GPU per rank, chosen "
                   "by LOCAL_RANK); default: each backend's own (cpu; cuda for nccl)")
    p.add_argument("--cuda-graph", action="store_true",
                   help="capture the k calls of a sample in a CUDA graph and time its replay "
                   "(like nccl-tests -G): small-message latency without launch overhead (nccl)")
    p.add_argument("--out", help="run directory (default results/<run_id>)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds a case may make no progress before the job is aborted (default 120)")
    p.add_argument("--repeats", type=int, default=2,
                   help="rounds over all cases per launch, case order shuffled in each (default 2)")
    p.add_argument("--launches", type=int, default=3,
                   help="local runs only: start the ranks this many times, one after the other, "
                   "each doing --repeats rounds into the same run directory, so the "
                   "launch-to-launch variation of the machine is part of the run (default 3)")
    p.add_argument("--launch-index", type=int, help=argparse.SUPPRESS)  # set by the local launcher
    p.add_argument("--seed", type=int, help="seed of the case order (default: from the clock)")
    p.add_argument("--ci-target", type=float, default=0.02,
                   help="stop sampling when the 95%% CI of the median is this narrow (default 0.02)")
    p.add_argument("--min-samples", type=int, default=10, help="per case and round (default 10)")
    p.add_argument("--max-samples", type=int, default=5000, help="per case and round (default 5000)")
    p.add_argument("--budget", type=float, default=1.0,
                   help="seconds of sampling per case, all rounds together (default 1.0)")
    p.add_argument("--sample-time", type=float, default=1e-3,
                   help="a sample (k back-to-back calls) lasts at least this long (default 0.001 s)")
    p.add_argument("--noise", action=argparse.BooleanOptionalAction, default=True,
                   help="calibrate the machine's noise first and store it (default on; ~1 s)")
    p.add_argument("--split", default="all", help="communicators the ops run on, a comma list "
                   "of all (the world), intra (the ranks of each node), inter (one rank per node); "
                   "taken from the hosts the ranks report (default all)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress, no tables")


@dataclass
class Plan:
    backends: list
    ops: list
    sizes: list
    dtype: str
    sampling: Sampling
    repeats: int
    all_ops: bool = False  # ops not named one by one: skip those the rank count rules out
    skip: dict = field(default_factory=dict)  # (backend, op) -> why that backend cannot run it
    splits: tuple = ("all",)  # --split: communicators the cases run on (bench.nodes)


def make_plan(args) -> Plan:
    """Everything that can be checked before any rank starts."""
    names = [b.strip() for b in args.backend.split(",") if b.strip()]
    if not names:
        raise UsageError("no backend given")
    backends = [backend_class(name) for name in dict.fromkeys(names)]
    for cls in backends:
        problem = cls.problem()
        if problem:
            raise UsageError(problem)
        cls.check_dtype(args.dtype)
        cls.check_args(args)
    names = [n for n, op in OPS.items() if op.default] if args.ops.strip() == "all" else [s.strip() for s in args.ops.split(",") if s.strip()]
    if not names:
        raise UsageError("no ops given")
    ops = [get_op(name) for name in dict.fromkeys(names)]
    all_ops = args.ops.strip() == "all"
    skip = {}
    for cls in backends:
        for op in ops:
            why = cls.op_problem(op, args)
            if why and not all_ops:
                raise UsageError(f"backend {cls.name} cannot run {op.name}: {why}")
            if why:
                skip[(cls.name, op.name)] = why
    sizes = parse_sizes(args.sizes)
    positive = {"--timeout": args.timeout, "--ci-target": args.ci_target, "--budget": args.budget,
                "--sample-time": args.sample_time, "--repeats": args.repeats,
                "--launches": args.launches,
                "--min-samples": args.min_samples, "--max-samples": args.max_samples}
    for flag, value in positive.items():
        if not value > 0:
            raise UsageError(f"{flag} must be positive, got {value}")
    if args.nranks is not None and args.nranks < 1:
        raise UsageError(f"-n must be at least 1, got {args.nranks}")
    sampling = Sampling(sample_time_s=args.sample_time, min_samples=args.min_samples,
                        max_samples=args.max_samples, ci_target=args.ci_target,
                        budget_s=args.budget / (args.repeats * _launches(args)))
    from bench.nodes import parse_splits

    splits = parse_splits(getattr(args, "split", "all"))
    return Plan(backends, ops, sizes, args.dtype, sampling, args.repeats, all_ops, skip, splits)


def _launches(args) -> int:
    """Launches this run will have: --launches when commbench starts the ranks itself, one
    under an outside launcher (mpirun, srun, torchrun) that started them once."""
    if args.launch_index is not None or launch.detect_world() is None:
        return args.launches
    return 1


def cases_of(plan: Plan, nranks: int) -> list:
    """(op, Case) for every op and size; sizes that round to the same S run once."""
    itemsize = np.dtype(plan.dtype).itemsize if plan.dtype != "bfloat16" else 2
    cases, seen = [], set()
    for op in plan.ops:
        for size in (plan.sizes if op.sized else [0]):
            for case in op.cases(size, nranks, itemsize):  # pairs: one per pairing round
                if (op.name, case.nbytes, case.pairing) not in seen:
                    seen.add((op.name, case.nbytes, case.pairing))
                    cases.append(case)
    return cases


def skip_notes(plan: Plan) -> list:
    """One line per (backend, op) that `--ops all` leaves out because the backend cannot run it."""
    return [f"commbench: skipping {op} on {backend}: {why}" for (backend, op), why in plan.skip.items()]


def _pages(nbytes: int) -> int:
    return -(-nbytes // PAGE) * PAGE


def arena_bytes(cases) -> int:
    """Bytes one rank needs for the largest case: send, recv and ack, each page aligned."""
    return max(_pages(c.send_count * c.itemsize) + _pages(c.recv_count * c.itemsize) + PAGE
               for c in cases)


def check_fits(plan: Plan, nranks: int, ranks_here: int, say=None) -> list:
    """The cases to run on nranks, after checking rank counts and memory."""
    problems = {op.name: op.rank_problem(nranks) for op in plan.ops}
    problems = {name: p for name, p in problems.items() if p}
    if problems and not plan.all_ops:
        raise UsageError(next(iter(problems.values())))
    if problems:
        plan.ops = [op for op in plan.ops if op.name not in problems]
        if say:
            say(f"commbench: skipping {', '.join(problems)} on {nranks} rank(s): "
                + "; ".join(problems.values()))
    cases = cases_of(plan, nranks)
    need = arena_bytes(cases) * ranks_here * len(plan.backends)
    available = _mem_available()
    if available and need > 0.8 * available:
        raise UsageError(f"sizes need {need / 2**30:.1f} GiB of buffers for {ranks_here} ranks on "
                         f"this host, more than 80% of the {available / 2**30:.1f} GiB available")
    return cases


def _mem_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def main(args) -> int:
    plan = make_plan(args)
    world = launch.detect_world()
    if world is None:
        return start_local(args, plan)
    from bench.spmd import run_spmd

    return run_spmd(args, plan, world)


def start_local(args, plan: Plan) -> int:
    """Outside any launcher: start N local ranks running this same command."""
    from bench.record import new_run_id

    n = args.nranks or 2
    check_fits(plan, n, n)  # the ranks report skipped ops themselves
    out = Path(args.out or Path("results") / new_run_id(args.backend, n)).resolve()
    extra = [] if args.out else ["--out", str(out)]
    wrong = {}  # case -> wrong elements, summed over launches
    for index in range(args.launches):
        several = ["--launch-index", str(index)] if args.launches > 1 else []
        command = launch.self_command(["run"] + list(args._argv[1:]) + extra + several)
        rc, message = _start_ranks(plan, n, command)
        _mark_if_unfinished(out, rc, message)
        if args.launches > 1:
            _add_wrong(out, wrong)
        if rc not in (0, EXIT_WRONG):
            break
    if args.launches > 1 and rc in (0, EXIT_WRONG):
        _merge_launches(out, wrong, args.quiet)
    return rc if rc in (0, EXIT_WRONG, 2) else EXIT_ABORT


def _start_ranks(plan: Plan, n: int, command: list) -> tuple:
    if any(cls.launcher == "mpi" for cls in plan.backends):
        mpiexec = launch.find_mpiexec()
        flavor = launch.mpi_flavor(mpiexec)
        argv = launch.mpiexec_argv(mpiexec, flavor, n, os.cpu_count() or 1, command)
        return launch.run_local(argv, launch.mpiexec_env(flavor, os.geteuid() == 0))
    # torch backends only: no MPI needed, commbench starts the ranks itself
    return launch.run_ranks(command, launch.torch_local_envs(n, launch.free_port("127.0.0.1")))


def _add_wrong(out: Path, wrong: dict) -> None:
    from analysis.rundir import CASE, load_summary

    for row in load_summary(out).itertuples(index=False):
        key = tuple(getattr(row, c) for c in CASE)
        wrong[key] = wrong.get(key, 0) + int(row.wrong)


def _merge_launches(out: Path, wrong: dict, quiet: bool) -> None:
    """After the last launch: the summary over the samples of all launches (each launch wrote
    one of its own rounds only), the final status, and the tables."""
    from analysis.rundir import CASE, load_meta, load_samples, summarize_samples
    from bench.record import RunWriter

    meta, samples = load_meta(out), load_samples(out)
    itemsize = 2 if meta["dtype"] == "bfloat16" else np.dtype(meta["dtype"]).itemsize
    samples = _pairing_as_sample_group(samples)
    summary = summarize_samples(
        samples, bus_factor=lambda op, n: OPS[op].bus_factor(n),
        msgs_per_op=lambda op, n: OPS[op].msgs_per_op(n),
        count=lambda op, dtype, nbytes, n: OPS[op].case(nbytes, n, itemsize).count)
    summary["wrong"] = [wrong.get(tuple(row[c] for c in CASE), 0) for _, row in summary.iterrows()]
    writer = RunWriter(out, meta)
    writer.write_summary(summary.to_dict("records"))
    writer.finish("wrong" if sum(wrong.values()) else "complete")
    if not quiet:
        from analysis.tables import print_run

        print_run(out)


def _pairing_as_sample_group(samples):
    """`pairs` runs one job per pairing round, all with the same sample numbers: number their
    samples apart so that a sample's max over ranks stays within one pairing round."""
    pairs = samples["op"] == "pairs"
    if not pairs.any():
        return samples
    from bench.ops import pairing_rounds

    samples = samples.copy()
    index = {}
    for n in samples.loc[pairs, "nranks"].unique():
        for p, peers in enumerate(pairing_rounds(int(n))):
            for rank, peer in enumerate(peers):
                index[(int(n), rank, peer)] = p
    keys = zip(samples.loc[pairs, "nranks"], samples.loc[pairs, "rank"], samples.loc[pairs, "peer"])
    samples.loc[pairs, "sample"] += [index.get((int(n), int(r), int(q)), 0) * 1_000_000 for n, r, q in keys]
    return samples


def _mark_if_unfinished(out: Path, rc: int, message: str = "") -> None:
    """A rank killed from outside cannot say so itself: record it in meta.json."""
    from analysis.rundir import RunDirError, load_meta
    from bench.record import RunWriter

    try:
        meta = load_meta(out)
    except RunDirError:
        return
    if meta.get("status") == "running":
        RunWriter(out, meta).finish("aborted", error=message or meta.get("error") or f"ranks exited with status {rc}")
