"""Overhead of commbench's eager torch.distributed path over a bare loop of the same calls, per op.

Not collected by pytest. Run it on a quiet machine:
    .venv/bin/python tests/benchmarks/perf_torch_eager.py                  # gloo, cpu, 2 local ranks
    .venv/bin/python tests/benchmarks/perf_torch_eager.py --backend nccl   # cuda, 1 rank
    .venv/bin/torchrun --standalone --nproc-per-node 2 tests/benchmarks/perf_torch_eager.py
Options: --backend gloo|nccl, --device cpu|cuda, -n RANKS, --sizes 4,64K,1M, --ops LIST,
--ticks T, --sample-time SECONDS (see --help).

For every eager collective op and size, two variants on the same buffers (commbench's arena,
filled by bench.rank_loop.prepare_case and checked once each against the op's expected result):
  commbench  the op's program from bench.ops built on the backend, one sample of k calls by
             bench.harness.measure (calls=k, one sample), exactly as `commbench run` times it
  bare       for _ in range(k): <the torch.distributed call(s) the backend makes>, e.g.
             recv.copy_(send); dist.all_reduce(recv) for allreduce (out of place)
k is calibrated on the bare loop by bench.harness.calibrate and shared by both. A sample is a
control barrier, the host clock around the k calls and the device synchronize (cuda), the
time of a sample the max over ranks. Each tick takes one sample of each variant, in a seeded
shuffled order (the same on every rank), so paired ratios commbench / bare cancel the slow
drifts of a shared machine. Printed: the median per call of each variant and the median of
the per-tick ratios with its 95% CI; `ok` is yes when the CI lies at or below the 1.10
target, no when it lies above, ? when it straddles it. Exit 0 after the table; 2 on bad input.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

OPS = ("allreduce", "allreduce_inplace", "allgather", "reduce_scatter", "alltoall", "broadcast", "barrier")
TARGET = 1.10


def fail(message: str):
    print(f"perf_torch_eager: error: {message}", file=sys.stderr)
    sys.exit(2)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.error = fail  # bad input: one line, exit 2
    p.add_argument("--backend", choices=("gloo", "nccl"), default="gloo")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="default: cpu for gloo, cuda for nccl")
    p.add_argument("-n", type=int, default=None,
                   help="local ranks to start (default: 2 for gloo, 1 for nccl)")
    p.add_argument("--sizes", default="4,64K,1M",
                   help="S in bytes, as commbench run takes them (default 4,64K,1M)")
    p.add_argument("--ops", default=",".join(OPS), help=f"comma-separated subset of {','.join(OPS)}")
    p.add_argument("--ticks", type=int, default=200, help="samples per variant, case by case (default 200)")
    p.add_argument("--sample-time", type=float, default=0.005,
                   help="seconds a sample lasts, sets k (default 0.005)")
    args = p.parse_args()
    from bench.backends import backend_class
    from bench.core.errors import UsageError
    from bench.core.units import parse_sizes
    from bench.settings import settings_of

    try:
        args.sizes = parse_sizes(args.sizes)
        args.ops = [name.strip() for name in args.ops.split(",") if name.strip()]
        unknown = [name for name in args.ops if name not in OPS]
        if unknown or not args.ops:
            raise UsageError(f"--ops: unknown {', '.join(unknown) or '(none given)'}; "
                             f"known: {', '.join(OPS)}")
        if args.ticks < 6 or args.sample_time <= 0 or (args.n is not None and args.n < 1):
            raise UsageError("--ticks must be at least 6 (for a 95% CI), --sample-time positive "
                             "and -n at least 1")
        args.cls = cls = backend_class(args.backend)
        problem = cls.problem()
        if problem:
            raise UsageError(problem)
        args.device = cls.device_of(settings_of(args))
        cls.check_options(settings_of(args))  # e.g. --device cuda without a GPU, nccl on cpu
    except UsageError as exc:
        fail(str(exc))
    return args


def launch_self(args, argv) -> int:
    from bench.core.errors import UsageError
    from local_ranks import run_self

    from bench.settings import settings_of

    n = args.n or (1 if args.backend == "nccl" else 2)
    try:
        args.cls.check_ranks(settings_of(args), n)  # nccl: one GPU per rank
    except UsageError as exc:
        fail(str(exc))
    return run_self(__file__, argv, n)


def bare_loop(be, name, send, recv):
    """run(k): k calls of what the backend's primitive for `name` calls, written out as a plain
    loop (on the default group, which is the backend's group here)."""
    dist = be.dist
    assert be.group is None
    all_reduce, all_to_all = dist.all_reduce, dist.all_to_all_single
    broadcast, barrier = dist.broadcast, dist.barrier
    # the functions the backend picks: *_single on torch >= 2.13, *_tensor before
    all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    reduce_scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
    copy, ids = recv.copy_, [be.device.index]

    def allreduce(k):
        for _ in range(k):
            copy(send)
            all_reduce(recv)

    def allreduce_inplace(k):
        for _ in range(k):
            all_reduce(recv)

    def allgather(k):
        for _ in range(k):
            all_gather(recv, send)

    def reduce_scatter_(k):
        for _ in range(k):
            reduce_scatter(recv, send)

    def alltoall(k):
        for _ in range(k):
            all_to_all(recv, send)

    def broadcast_(k):
        for _ in range(k):
            broadcast(recv, 0)

    def barrier_(k):
        for _ in range(k):
            barrier()

    def barrier_nccl(k):  # the backend's nccl barrier names the rank's GPU
        for _ in range(k):
            barrier(device_ids=ids)

    return {"allreduce": allreduce, "allreduce_inplace": allreduce_inplace, "allgather": allgather,
            "reduce_scatter": reduce_scatter_, "alltoall": alltoall, "broadcast": broadcast_,
            "barrier": barrier_nccl if be.torch_backend == "nccl" else barrier_}[name]


def main() -> int:
    args = parse_args()
    from bench.world import detect_world

    world = detect_world()
    if world is None:
        return launch_self(args, sys.argv[1:])
    if args.n is not None and args.n != world.size:
        if world.rank == 0:
            print(f"perf_torch_eager: error: -n {args.n} given, but the launcher started {world.size} "
                  "ranks", file=sys.stderr)
        return 2

    import torch

    from bench.core.stats import median_ci
    from bench.harness import Sampling, Sync, calibrate, measure
    from bench.ops import get_op
    from bench.plan import arena_bytes
    from bench.rank_loop import buffers_of, prepare_case, wrong_elements
    from bench.settings import settings_of

    be = args.cls.create(world, settings_of(args))
    rank, n = be.rank, be.size
    sync = Sync(barrier=be.control_barrier(), allreduce_max=be.allreduce_max, device_sync=be.sync)
    one = Sampling(sample_time_s=args.sample_time, min_samples=1, max_samples=1, ci_target=0.0, budget_s=1e9)
    rng = np.random.default_rng(1)
    rows = []
    for name in args.ops:
        op = get_op(name)
        for nbytes in args.sizes if op.sized else [0]:
            case = op.case(nbytes, n, 4)
            arena = be.alloc(arena_bytes([case]))
            send, recv, _ = buffers_of(be, arena, case, "float32")
            bare = bare_loop(be, name, send, recv)
            program, _ = prepare_case(be, case, arena, "float32")
            for run in (bare, program):  # each variant checked once on fresh data, then warmed
                prepare_case(be, case, arena, "float32")  # (re)fills the buffers
                sync.barrier()
                run(1)
                be.sync()
                assert wrong_elements(be, case, recv) == 0, f"{name} at {case.nbytes} B is wrong"
                run(2)
            k = int(np.median([calibrate(bare, sync, one) for _ in range(3)]))  # one hiccup cannot set k

            def plain():  # what measure does for one sample (bench.harness._timed), around the bare loop
                sync.barrier()
                t0 = sync.clock()
                bare(k)
                sync.device_sync()
                return float(be.allreduce_max(np.array([(sync.clock() - t0) / k]))[0])

            def harness():
                return measure(program, op.ops_per_call, sync, one, calls=k).agreed_s[0]

            variants, got = (plain, harness), ([], [])
            for _ in range(args.ticks):
                for i in rng.permutation(2):  # same seed on every rank: same order
                    got[i].append(variants[i]())
            bare_s, cb_s = np.array(got[0]), np.array(got[1])
            rows.append((name, case.nbytes, k, np.median(cb_s), np.median(bare_s), median_ci(cb_s / bare_s)))
            arena = program = bare = None  # free the buffers before the next case
    if rank == 0:
        from bench.core.units import format_size

        print(f"# {args.backend} {be.device.type}, {n} rank(s), float32, torch {torch.__version__}, "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, {args.ticks} ticks, sample "
              f"{args.sample_time * 1e3:g} ms; per call: median over ticks of the max over ranks; "
              f"ratio: median [95% CI] of per-tick commbench/bare; ok: CI vs {TARGET:.2f}")
        print(f"{'op':<18} {'size':>5} {'k':>6} {'commbench(us)':>13} {'bare(us)':>9}  "
              f"{'ratio [95% CI]':<22} ok")
        for name, nbytes, k, cb, bare, (med, lo, hi) in rows:
            ok = "yes" if hi <= TARGET else "no" if lo > TARGET else "?"
            print(f"{name:<18} {format_size(nbytes):>5} {k:>6} {cb * 1e6:>13.2f} {bare * 1e6:>9.2f}  "
                  f"{f'{med:.3f} [{lo:.3f}, {hi:.3f}]':<22} {ok}")
    be.finalize()
    return 0


if __name__ == "__main__":
    sys.exit(main())
