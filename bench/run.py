"""`commbench run`: its options; validate them, then either start local ranks (outside a
launcher: bench.local_launcher) or measure SPMD on the ranks a launcher gave (inside mpiexec, srun,
torchrun or commbench's own: bench.rank_loop)."""
from __future__ import annotations

import argparse

from bench.backends import BACKENDS
from bench.ops import OPS
from bench.harness import Sampling
from bench.plan import DEFAULT_SIZES, Outcome, make_plan
from bench.settings import DEFAULTS
from bench.world import detect_world

SAMPLING = Sampling()  # the stop rule's defaults


def add_arguments(p) -> None:
    p.add_argument("-n", "--nranks", type=int, help="local ranks to start (default 2); inside a "
                   "launcher the ranks it gave (must match when given)")
    p.add_argument("--backend", default=DEFAULTS.backend, metavar="NAME[,NAME...]",
                   help=f"one of {', '.join(BACKENDS)}, or a comma list of them measured side by "
                   f"side in one run (default {DEFAULTS.backend})")
    p.add_argument("--ops", default="all", help=f"comma list or 'all' (known: {', '.join(OPS)}; 'all' means "
                   f"{', '.join(n for n, op in OPS.items() if op.default)})")
    p.add_argument("--sizes", help="MIN:MAX[:FACTOR] or a list, in bytes: KiB/MiB/GiB and a bare "
                   "K/M/G are binary, KB/MB/GB decimal; S as each op defines it (default "
                   f"{DEFAULT_SIZES})")
    p.add_argument("-b", "--minbytes", metavar="SIZE",
                   help="as nccl-tests: the smallest size, MIN of --sizes (default 4)")
    p.add_argument("-e", "--maxbytes", metavar="SIZE",
                   help="as nccl-tests: the largest size, MAX of --sizes (default 4M)")
    p.add_argument("-f", "--stepfactor", metavar="FACTOR",
                   help="as nccl-tests: the factor between sizes, FACTOR of --sizes (default 4)")
    p.add_argument("--dtype", default="float32", help="element type (default float32; torch "
                   "backends also take float16 and bfloat16)")
    p.add_argument("--device", choices=("cpu", "cuda"),
                   help="where buffers live: cpu (host memory) or cuda (one GPU per rank, chosen "
                   "by LOCAL_RANK); default: each backend's own (cpu; cuda for nccl)")
    p.add_argument("--cuda-graph", action="store_true",
                   help="capture the k calls of a sample in a CUDA graph and time its replay "
                   "(like nccl-tests -G): small-message latency without launch overhead (nccl)")
    p.add_argument("--timer", choices=("host", "cuda"), default=DEFAULTS.timer,
                   help="what times a sample: host (the host clock around the k calls, after a "
                   "device synchronize, as nccl-tests; default) or cuda (CUDA events recorded "
                   "before and after the k calls on the device; --device cuda)")
    p.add_argument("--loop", choices=("native", "python"),
                   help="how the k calls of a sample run: native (compiled code against the "
                   "MPI mpi4py uses, built with its mpicc at first use and cached; mpi backend) "
                   "or python (a loop over prepared mpi4py calls). Default: native where it "
                   "builds, else python with a note")
    p.add_argument("-o", "--out", metavar="RUN_DIR", help="run directory (default "
                   "results/<run_id>); one that already holds a run is refused unless --force")
    p.add_argument("--force", action="store_true",
                   help="start --out afresh when it already holds a run (its old results, fits "
                   "and report are removed)")
    p.add_argument("--timeout", type=float, default=DEFAULTS.timeout_s,
                   help="seconds a case may make no progress before the job is aborted "
                   f"(default {DEFAULTS.timeout_s:g})")
    p.add_argument("--repeats", type=int, default=2,
                   help="rounds over all cases per launch, case order shuffled in each (default 2)")
    p.add_argument("--launches", type=int, default=DEFAULTS.launches,
                   help="local runs only: start the ranks this many times, one after the other, "
                   "each doing --repeats rounds into the same run directory, so the "
                   f"launch-to-launch variation of the machine is part of the run (default {DEFAULTS.launches})")
    p.add_argument("--launch-index", type=int, help=argparse.SUPPRESS)  # set by the local launcher
    p.add_argument("--seed", type=int, help="seed of the case order (default: from the clock)")
    p.add_argument("--ci-target", type=float, default=SAMPLING.ci_target,
                   help="stop sampling when the 95%% CI of the median is this narrow, relative "
                   f"to the median: (high - low) / median (default {SAMPLING.ci_target:g}, i.e. "
                   f"{SAMPLING.ci_target:.0%}%)")
    p.add_argument("--min-samples", type=int, default=SAMPLING.min_samples,
                   help=f"per case and round (default {SAMPLING.min_samples})")
    p.add_argument("--max-samples", type=int, default=SAMPLING.max_samples,
                   help=f"per case and round (default {SAMPLING.max_samples})")
    p.add_argument("--budget", type=float, default=SAMPLING.budget_s,
                   help=f"seconds of sampling per case, all rounds together (default {SAMPLING.budget_s})")
    p.add_argument("--sample-time", type=float, default=SAMPLING.sample_time_s,
                   help="a sample (k back-to-back calls) lasts at least this long "
                        f"(default {SAMPLING.sample_time_s:g} s)")
    p.add_argument("--noise", action=argparse.BooleanOptionalAction, default=DEFAULTS.noise,
                   help="calibrate the machine's noise first and store it (default on; ~1 s)")
    p.add_argument("--ceilings", action=argparse.BooleanOptionalAction, default=DEFAULTS.ceilings,
                   help="measure the machine's copy rates and declared line rates first, and give "
                   "each row its share of the one that applies (default on; ~0.3 s)")
    p.add_argument("--split", default="all", metavar="LIST",
                   help="communicators the ops run on, a comma list of all (the world), intra "
                   "(the ranks of each node), inter (one rank per node), group:SIZE:STRIDE "
                   "(groups of SIZE ranks STRIDE apart, e.g. group:8:1 = blocks of 8 "
                   "consecutive ranks); nodes from the hosts the ranks report (default all)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress, no tables")


def main(args, argv) -> Outcome:
    """argv: the command line after `commbench` (recorded in meta.json, and what the local
    launcher starts in every rank)."""
    plan = make_plan(args)
    world = detect_world()
    if world is None:
        from bench.local_launcher import start_local

        return start_local(plan, argv)
    from bench.rank_loop import end_on_signals, run_spmd

    end_on_signals(world.rank)
    return run_spmd(plan, world, argv)
