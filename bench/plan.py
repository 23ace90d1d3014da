"""What a run will measure, checked before any rank starts: backends, ops, sizes, sampling
settings and splits from the options of `commbench run`, and the cases and buffer memory they
make on a given rank count. Shared by the local launcher (bench.local_launcher) and the
ranks (bench.rank_loop)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.backends import backend_class
from bench.core.errors import UsageError
from bench.core.units import parse_sizes
from bench.harness import Sampling
from bench.ops import OPS, get_op
from bench.settings import Settings, settings_of
from bench.world import detect_world

PAGE = 4096
EXIT_WRONG, EXIT_ABORT = 1, 3  # exit statuses: results failed validation; the job was aborted


@dataclass
class Outcome:
    """How `commbench run` ended in this process: the exit status, and the run directory whose
    tables this process should show (None: another process shows them, or there are none)."""
    rc: int
    show: Path | None = None
    written_here: bool = False  # show names the run this process wrote (rank 0, outside launcher)


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
    settings: Settings = field(default_factory=Settings)  # how the ranks measure (bench.settings)


DEFAULT_SIZES = "4:4M:4"


def sizes_text(args) -> str:
    """--sizes, or the range -b/-e/-f give (nccl-tests' habit; each missing one from the
    default range); both at once is refused."""
    b, e, f = (getattr(args, name, None) for name in ("minbytes", "maxbytes", "stepfactor"))
    sizes = getattr(args, "sizes", None)
    if b is None and e is None and f is None:
        return sizes or DEFAULT_SIZES
    if sizes is not None:
        raise UsageError("give --sizes or -b/-e/-f, not both")
    lo, hi, factor = DEFAULT_SIZES.split(":")
    return ":".join(str(v) if v is not None else d for v, d in
                    ((b, lo), (e, hi), (f, factor)))


def make_plan(args) -> Plan:
    """Everything that can be checked before any rank starts; the one place that reads the
    parsed options (the ranks and backends read the plan's settings)."""
    settings = settings_of(args)
    names = [b.strip() for b in args.backend.split(",") if b.strip()]
    if not names:
        raise UsageError("no backend given")
    backends = [backend_class(name) for name in dict.fromkeys(names)]
    for cls in backends:
        problem = cls.problem()
        if problem:
            raise UsageError(problem)
        cls.check_dtype(args.dtype)
        cls.check_options(settings)
    if args.ops.strip() == "all":
        names = [n for n, op in OPS.items() if op.default]
    else:
        names = [s.strip() for s in args.ops.split(",") if s.strip()]
    if not names:
        raise UsageError("no ops given")
    ops = [get_op(name) for name in dict.fromkeys(names)]
    all_ops = args.ops.strip() == "all"
    skip = {}
    for cls in backends:
        for op in ops:
            why = cls.op_problem(op, settings)
            if why and not all_ops:
                raise UsageError(f"backend {cls.name} cannot run {op.name}: {why}")
            if why:
                skip[(cls.name, op.name)] = why
    sizes = parse_sizes(sizes_text(args))
    if 0 in sizes and any(op.sized for op in ops):
        raise UsageError(f"--sizes {sizes_text(args)}: 0 B moves no data; the smallest size is one "
                         f"element ({itemsize_of(args.dtype)} B of {args.dtype})")
    positive = {"--timeout": args.timeout, "--ci-target": args.ci_target, "--budget": args.budget,
                "--sample-time": args.sample_time, "--repeats": args.repeats,
                "--launches": args.launches,
                "--min-samples": args.min_samples, "--max-samples": args.max_samples}
    for flag, value in positive.items():
        if not value > 0:
            raise UsageError(f"{flag} must be positive, got {value}")
    if args.nranks is not None and args.nranks < 1:
        raise UsageError(f"-n must be at least 1, got {args.nranks}")
    if args.min_samples > args.max_samples:
        raise UsageError(f"--min-samples {args.min_samples} is more than --max-samples {args.max_samples}")
    if args.seed is not None and not 0 <= args.seed < 2**32:
        raise UsageError(f"--seed must be between 0 and 2**32 - 1, got {args.seed}")
    if args.out is not None and not str(args.out).strip():
        raise UsageError("--out: empty path")
    sampling = Sampling(sample_time_s=args.sample_time, min_samples=args.min_samples,
                        max_samples=args.max_samples, ci_target=args.ci_target,
                        budget_s=args.budget / (args.repeats * launches_of(settings)))
    from bench.nodes import parse_splits

    splits = parse_splits(getattr(args, "split", "all"))
    return Plan(backends, ops, sizes, args.dtype, sampling, args.repeats, all_ops, skip, splits,
                settings)


def launches_of(settings: Settings) -> int:
    """Launches this run will have: --launches when commbench starts the ranks itself, one
    under an outside launcher (mpirun, srun, torchrun) that started them once."""
    if settings.launch_index is not None or detect_world() is None:
        return settings.launches
    return 1


def itemsize_of(dtype: str) -> int:
    return 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize


def cases_of(plan: Plan, nranks: int, say=None) -> list:
    """(op, Case) for every op and size; sizes that round to the same S run once, and `say`
    is told which sizes were rounded (to whole elements, or whole per-rank blocks)."""
    itemsize = itemsize_of(plan.dtype)
    cases, seen = [], set()
    rounded: dict = {}
    for op in plan.ops:
        for size in (plan.sizes if op.sized else [0]):
            for case in op.cases(size, nranks, itemsize):  # pairs: one per pairing round
                if op.sized and case.nbytes != size:
                    rounded.setdefault(op.name, []).append(f"{size}->{case.nbytes}")
                if (op.name, case.nbytes, case.pairing) not in seen:
                    seen.add((op.name, case.nbytes, case.pairing))
                    cases.append(case)
    if say and rounded:
        say(f"commbench: sizes rounded to whole {plan.dtype} elements on {nranks} rank(s) "
            "(S in bytes, equal results run once): "
            + "; ".join(f"{op} {', '.join(dict.fromkeys(r))}" for op, r in rounded.items()))
    return cases


def skip_notes(plan: Plan) -> list:
    """One line per (backend, op) that `--ops all` leaves out because the backend cannot run it."""
    return [f"commbench: skipping {op} on {backend}: {why}" for (backend, op), why in plan.skip.items()]


def pages(nbytes: int) -> int:
    """nbytes rounded up to whole pages."""
    return -(-nbytes // PAGE) * PAGE


def arena_bytes(cases) -> int:
    """Bytes one rank needs for the largest case: send, recv and ack, each page aligned."""
    return max(pages(c.send_count * c.itemsize) + pages(c.recv_count * c.itemsize) + PAGE
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
    cases = cases_of(plan, nranks, say)
    check_memory(plan, cases, ranks_here)
    return cases


def library_scratch(case) -> int:
    """Bytes a communication library may allocate inside one call of the case, on top of the
    buffers commbench passes it: a collective that moves data gets one temporary as large as
    its largest buffer (a reduction's incoming data, a gather's staging copy, gloo's and MPI's
    segmented algorithms); point-to-point messages and barriers none."""
    if not case.op.primitive or case.op.primitive == "barrier":
        return 0
    return pages(max(case.send_count, case.recv_count) * case.itemsize)


def memory_needed(plan: Plan, cases, ranks_here: int) -> tuple[int, int]:
    """(buffer bytes, process bytes) that ranks_here ranks of the run need on one host: each
    backend of the run holds its own arena on every rank for the whole run (arena_bytes: the
    largest case), and the case run at any moment may add its library's temporaries
    (library_scratch, the largest case's); each rank process needs its backend's
    rank_memory besides."""
    scratch = max((library_scratch(c) for c in cases), default=0)
    buffers = (arena_bytes(cases) * len(plan.backends) + scratch) * ranks_here if cases else 0
    processes = ranks_here * max(cls.rank_memory for cls in plan.backends)
    return buffers, processes


def check_memory(plan: Plan, cases, ranks_here: int) -> None:
    """Refuse, before any rank starts, a run whose buffers and processes would take more than
    80% of the memory available on this host (MemAvailable)."""
    buffers, processes = memory_needed(plan, cases, ranks_here)
    available = mem_available()
    if available and buffers + processes > 0.8 * available:
        raise UsageError(f"{ranks_here} ranks on this host need {buffers / 2**30:.1f} GiB of buffers "
                         f"(every backend's, and the libraries' temporaries) and about "
                         f"{processes / 2**30:.1f} GiB for the processes themselves, more "
                         f"than 80% of the {available / 2**30:.1f} GiB available")


def mem_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
